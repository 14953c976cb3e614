/*
 * uplink.h - sends the outbox to the cloud over HTTPS with libcurl
 * (docs/EDGE.md, "Delivery").
 *
 * One drain thread (plus up to `concurrency` transfers in one curl multi
 * handle, connections reused) claims rows from the outbox in priority order
 * and POSTs them as event.h describes.  It sends only while the link is
 * online (uplink_set_online); going online starts a drain at once, with no
 * new traffic needed.  A lower class is never sent while a row of a higher
 * class is eligible.  Results:
 *   2xx (first or replayed)     -> outbox_ack, on_verdict called
 *   408, 429, 5xx, no answer    -> outbox_retry with exponential backoff and
 *                                  full jitter (base..max), Retry-After honoured
 *   other 4xx                   -> outbox_park (kept and counted, never lost)
 * TLS is verified (a CA file for private clouds); client certificate and a
 * bearer token are optional; connect and total timeouts are bounded.
 */
#ifndef VIGIL_EDGE_UPLINK_H
#define VIGIL_EDGE_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "edge/clock.h"
#include "edge/outbox.h"
#include "vigil/status.h"

typedef struct uplink uplink;

typedef struct uplink_config {
    const char *cloud_url;     /* e.g. https://cloud.example:8443 (no trailing path) */
    const char *ca_file;       /* NULL: the system's CAs */
    const char *cert_file;     /* client certificate (mTLS), NULL: none */
    const char *key_file;
    const char *bearer_token;  /* NULL: none */
    double connect_timeout_s;  /* <= 0: 5 */
    double timeout_s;          /* whole transfer, <= 0: 30 */
    int concurrency;           /* transfers at once, <= 0: 2 */
    double backoff_base_s;     /* <= 0: 1 */
    double backoff_max_s;      /* <= 0: 300 */
    /* Called on the drain thread after each acknowledged event. */
    void (*on_verdict)(void *ctx, const char *id, const char *answer_json);
    /* Called after every attempt (for the upload log and metrics). */
    void (*on_attempt)(void *ctx, const char *id, int priority, int http_status, const char *result);
    void *ctx;
} uplink_config;

typedef struct uplink_stats {
    int64_t sent_ok, replayed, retried, parked, failed_transport;
    double drain_rate_per_s; /* acknowledged events per second over the last 10 s */
} uplink_stats;

/* Starts the drain thread (idle until online).  outbox and clock are
 * borrowed and must outlive the uplink.  OUT: *out. */
vigil_status uplink_create(const uplink_config *cfg, outbox *box, const edge_clock *clock, uplink **out,
                           vigil_error *err);
/* Stops the thread; rows in flight go back to pending. */
void uplink_destroy(uplink *up);

void uplink_set_online(uplink *up, bool online);
/* A new event was put: send it soon if online. */
void uplink_kick(uplink *up);

/* GET {cloud_url}/v2/health/ready with the same TLS settings; true on 2xx.
 * The link monitor uses it: "online" for draining means the cloud answered. */
bool uplink_probe(uplink *up);

void uplink_stats_get(uplink *up, uplink_stats *out);

#endif
