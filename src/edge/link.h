/*
 * link.h - the link monitor: is the cloud reachable? (docs/EDGE.md, "Link").
 *
 * Over MQTT 5 with libmosquitto against a broker (mosquitto):
 *  - the cloud publishes a heartbeat on {prefix}/cloud/heartbeat every
 *    heartbeat_s (role cloud runs a link_monitor that publishes; role edge
 *    one that listens);
 *  - each side publishes a retained birth on {prefix}/{role}/{node}/status
 *    ({"state":"online","epoch":E}) and sets a retained Will with the same
 *    epoch ({"state":"offline","epoch":E}); the epoch is the session's start
 *    time in unix ms, so a stale Will from an older session never marks a
 *    newer session offline;
 *  - the edge is offline after `missed` heartbeat periods without one, or
 *    when the broker connection is lost (MQTT keepalive detects a silent cut
 *    within about 1.5 x keepalive); it is online again only after `rise`
 *    consecutive heartbeats AND a successful probe (the cloud's HTTPS
 *    endpoint answered: uplink_probe), which is the hysteresis against
 *    flapping.
 * State changes are reported through on_change (on the monitor's thread).
 */
#ifndef VIGIL_EDGE_LINK_H
#define VIGIL_EDGE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/clock.h"
#include "vigil/status.h"

typedef struct link_monitor link_monitor;

typedef enum link_state { LINK_UNKNOWN = 0, LINK_ONLINE = 1, LINK_OFFLINE = 2 } link_state;

typedef enum link_role { LINK_ROLE_EDGE = 0, LINK_ROLE_CLOUD = 1 } link_role;

typedef struct link_config {
    link_role role;
    const char *host;        /* broker */
    int port;                /* <= 0: 1883 */
    const char *node_id;     /* this node's name (client id, topic part) */
    const char *prefix;      /* topic prefix, NULL: "vigil" */
    const char *username, *password; /* NULL: none */
    const char *ca_file;     /* non-NULL: TLS to the broker */
    int keepalive_s;         /* MQTT keepalive, <= 0: 5 */
    double heartbeat_s;      /* <= 0: 1 */
    int missed;              /* heartbeats missed before offline, <= 0: 3 */
    int rise;                /* heartbeats in a row before online, <= 0: 2 */
    bool (*probe)(void *ctx);                     /* edge: NULL means no probe */
    void (*on_change)(void *ctx, link_state state, const char *why);
    void *ctx;
} link_config;

typedef struct link_stats {
    link_state state;
    int64_t transitions;      /* since start */
    int64_t last_heartbeat_ms; /* edge clock, 0 when none yet */
    int64_t since_ms;          /* when the current state began */
    bool broker_connected;
} link_stats;

/* Starts the monitor's thread (connects and reconnects on its own).
 * clock is borrowed.  OUT: *out. */
vigil_status link_create(const link_config *cfg, const edge_clock *clock, link_monitor **out, vigil_error *err);
void link_destroy(link_monitor *link);

link_state link_state_get(link_monitor *link);
void link_stats_get(link_monitor *link, link_stats *out);
const char *link_state_name(link_state state);

/* Publishes on the monitor's connection (verdicts go out on
 * {prefix}/edge/{node}/verdicts).  VIGIL_ERR_UNAVAILABLE when not connected. */
vigil_status link_publish(link_monitor *link, const char *topic, const void *payload, size_t bytes, int qos,
                          bool retain, vigil_error *err);

#endif
