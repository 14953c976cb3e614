/*
 * link.h - the link monitor: is the cloud reachable? (docs/EDGE.md, "Link monitor").
 *
 * Over MQTT 5 with libmosquitto against a broker (mosquitto):
 *  - the cloud publishes a heartbeat on {prefix}/cloud/heartbeat every
 *    heartbeat_s (role cloud runs a link_monitor that publishes; role edge
 *    one that listens):
 *      {"node":"cloud1","epoch":E,"seq":N,"period_ms":1000,"ts_ms":T}
 *  - each side publishes a retained birth on {prefix}/{role}/{node}/status
 *    ({"state":"online","epoch":E,...}) and sets a retained Will with the same
 *    epoch ({"state":"offline","epoch":E,...}); the epoch is the session's
 *    start time in unix ms (a session is one MQTT connection: every
 *    (re)connect starts a new, larger epoch), so a stale Will from an older
 *    session never marks a newer session offline;
 *  - the edge is offline after `missed` heartbeat periods without one, when
 *    the broker connection is lost (MQTT keepalive detects a silent cut
 *    within about 1.5 x keepalive, at most 2 x keepalive), or when the
 *    cloud's status says offline with an epoch at least as new as the newest
 *    it knows; it is online again only after `rise` consecutive heartbeats
 *    (same session, sequence numbers in a row, each within 1.5 periods of
 *    the last) AND a successful probe (the cloud's HTTPS endpoint answered:
 *    uplink_probe), which is the hysteresis against flapping.
 * Role cloud is ONLINE while its broker connection is up.
 * State changes are reported through on_change (on the monitor's thread).
 *
 * Changes to the first contract (all additions): cert_file/key_file,
 * probe_interval_s, reconnect_max_s in link_config; epoch, cloud_epoch,
 * heartbeats, connections, probe_failures, stale_ignored, reason in
 * link_stats; link_topic.
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
    int port;                /* <= 0: 1883 (8883 with ca_file) */
    const char *node_id;     /* this node's name (client id, topic part): [A-Za-z0-9._-], 1..64 */
    const char *prefix;      /* topic prefix, NULL: "vigil"; no '+' or '#' */
    const char *username, *password; /* NULL: none */
    const char *ca_file;     /* non-NULL: TLS to the broker, server certificate verified against it */
    const char *cert_file, *key_file; /* client certificate for the broker (mTLS), NULL: none */
    int keepalive_s;         /* MQTT keepalive, <= 0: 5; below 5 raised to 5 (libmosquitto's minimum) */
    double heartbeat_s;      /* <= 0: 1 (the edge follows the period the cloud announces) */
    int missed;              /* heartbeats missed before offline, <= 0: 3 */
    int rise;                /* heartbeats in a row before online, <= 0: 2 */
    double probe_interval_s; /* least time between two probes, <= 0: 2 */
    double reconnect_max_s;  /* cap of the reconnect backoff (from 0.5 s, doubling, jittered), <= 0: 30 */
    /* Edge: NULL means no probe.  Called on the monitor's thread, never on
     * MQTT's, so it may block (an HTTPS request) - but boundedly: it delays
     * link_destroy and the monitor's other work by as long as it takes. */
    bool (*probe)(void *ctx);
    /* Called on the monitor's thread after each state change, with no lock
     * held; why is valid for the call only. */
    void (*on_change)(void *ctx, link_state state, const char *why);
    void *ctx;
} link_config;

typedef struct link_stats {
    link_state state;
    int64_t transitions;       /* state changes since start */
    int64_t last_heartbeat_ms; /* edge clock: last heartbeat received (edge) or sent (cloud), 0 when none */
    int64_t since_ms;          /* edge clock: when the current state began */
    bool broker_connected;
    int64_t epoch;             /* this monitor's current session epoch (unix ms), 0 before the first connect */
    int64_t cloud_epoch;       /* edge: the newest cloud session epoch seen, 0 when none */
    int64_t heartbeats;        /* received (edge) or sent (cloud) */
    int64_t connections;       /* broker connections accepted (CONNACK success) */
    int64_t probe_failures;
    int64_t stale_ignored;     /* offline statuses ignored because their epoch was older */
    char reason[128];          /* why the current state (the last on_change's why) */
} link_stats;

/* Starts the monitor (connects and reconnects on its own; an unreachable
 * broker is not an error here).  cfg's strings are copied; clock is borrowed
 * and must outlive the monitor.  OUT: *out. */
vigil_status link_create(const link_config *cfg, const edge_clock *clock, link_monitor **out, vigil_error *err);
/* Disconnects with the Will (the broker publishes this session's offline
 * status), stops the threads and frees.  NULL is a no-op.  Not from
 * on_change or probe (it waits for the thread that runs them). */
void link_destroy(link_monitor *link);

link_state link_state_get(link_monitor *link);
void link_stats_get(link_monitor *link, link_stats *out);
const char *link_state_name(link_state state);

/* Publishes on the monitor's connection (verdicts go out on
 * {prefix}/edge/{node}/verdicts, see link_topic); thread-safe, never blocks
 * on the network (the message is queued and the network thread woken).
 * Best effort: a message queued when the connection drops may be lost (the
 * session is clean), so the durable record stays the outbox's.
 * VIGIL_ERR_UNAVAILABLE when not connected, VIGIL_ERR_INVALID_ARGUMENT for a
 * bad topic or qos, VIGIL_ERR_LIMIT beyond MQTT's payload limit. */
vigil_status link_publish(link_monitor *link, const char *topic, const void *payload, size_t bytes, int qos,
                          bool retain, vigil_error *err);

/* Writes this node's topic {prefix}/{role}/{node}/{leaf} into out (e.g.
 * leaf "verdicts").  VIGIL_ERR_LIMIT when it does not fit. */
vigil_status link_topic(link_monitor *link, const char *leaf, char *out, size_t size, vigil_error *err);

#endif
