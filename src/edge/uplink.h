/*
 * uplink.h - sends the outbox to the cloud over HTTPS with libcurl
 * (docs/EDGE.md, "Delivery").
 *
 * One drain thread (plus up to `concurrency` transfers in one curl multi
 * handle, connections reused) claims rows from the outbox in priority order
 * and POSTs them as event.h describes.  It sends only while the link is
 * online (uplink_set_online); going online wakes the thread at once (a
 * condition variable and curl_multi_wakeup, no polling), with no new
 * traffic needed; going offline aborts the transfers in flight and puts
 * their rows back to pending, due at once.
 *
 * Strict priority: rows are claimed one at a time, each when a transfer slot
 * is free, and a claim may take a row of class c only when no transfer of a
 * class higher than c (a smaller number) is in flight; the outbox picks the
 * highest class among the rows due now.  So a transfer of class c starts
 * only when no row of a higher class is due (eligible) or in flight; rows of
 * one class go out concurrently.  A row waiting out its own backoff is not
 * eligible: lower classes go on meanwhile, so one failing event cannot stall
 * the outbox.
 *
 * Results (on_attempt's `result` in quotes):
 *   2xx                          -> outbox_ack, on_verdict called ("ok", or
 *                                   "replayed" with Idempotent-Replayed: true)
 *   408, 409, 429, 5xx, and any
 *   other non-2xx, non-4xx       -> outbox_retry ("retry"); 409 because the
 *                                   receiver answers it while the first copy
 *                                   of the event is still being processed
 *   no answer (refused, reset,
 *   timeout, TLS failure)        -> outbox_retry ("error", http_status 0)
 *   other 4xx                    -> outbox_park ("parked": kept, counted, never sent again)
 *   link went offline / destroy  -> back to pending, due now ("aborted")
 * A retry waits uplink_backoff_ms (exponential, full jitter: uniform in
 * [0, min(max, base * 2^attempts)]), or the answer's Retry-After (seconds or
 * an HTTP-date) when it has one (even beyond backoff_max_s: the cloud knows
 * its load; at most an hour).  A Retry-After on a 429 or 503, or a failure
 * to reach the cloud at all, also holds every new transfer for that long
 * (the cloud as a whole asked for, or needs, the pause); the transport hold grows with
 * consecutive transport failures and ends at the first answer or when the
 * link comes back online.  Deadlines are on the edge clock; the thread re-reads it at
 * least once a second while rows wait, so a test clock jump is seen.
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
    const char *cloud_url; /* e.g. https://cloud.example:8443 (no trailing path) */
    const char *ca_file;   /* NULL: the system's CAs */
    const char *cert_file; /* client certificate (mTLS), NULL: none */
    const char *key_file;
    const char *bearer_token; /* NULL: none */
    double connect_timeout_s; /* <= 0: 5 */
    double timeout_s;         /* whole transfer, <= 0: 30 */
    int concurrency;          /* transfers at once, <= 0: 2 */
    double backoff_base_s;    /* <= 0: 1 */
    double backoff_max_s;     /* <= 0: 300 */
    /* Called on the drain thread after each acknowledged event. */
    void (*on_verdict)(void *ctx, const char *id, const char *answer_json);
    /* Called after every attempt (for the upload log and metrics). */
    void (*on_attempt)(void *ctx, const char *id, int priority, int http_status, const char *result);
    void *ctx;
} uplink_config;

/* Upper bounds (seconds) of the round-trip histogram's buckets. */
#define UPLINK_ROUND_TRIP_BUCKETS 12
extern const double uplink_round_trip_bounds[UPLINK_ROUND_TRIP_BUCKETS];

typedef struct uplink_stats {
    int64_t sent_ok, replayed, retried, parked, failed_transport; /* attempts by result, since create */
    int64_t aborted;
    double drain_rate_per_s; /* acknowledged events per second over the last 10 s */
    /* Round trip of the uploads the cloud answered 2xx (request sent to
     * answer read, libcurl's total time): per bucket, not cumulative; the
     * last slot counts those above every bound. */
    int64_t round_trip_buckets[UPLINK_ROUND_TRIP_BUCKETS + 1];
    int64_t round_trip_count;
    double round_trip_sum_s;
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
 * The link monitor uses it: "online" for draining means the cloud answered.
 * Bounded by connect_timeout_s for the whole request; thread-safe. */
bool uplink_probe(uplink *up);

void uplink_stats_get(uplink *up, uplink_stats *out);

/* The retry delay after a send that had `attempts` sends before it (0 for
 * the first): full jitter, uniform in [0, min(max_s, base_s * 2^attempts)]
 * drawn from random.  Pure; exposed for tests. */
int64_t uplink_backoff_ms(int attempts, double base_s, double max_s, uint64_t random);

/* A Retry-After header's value (delta seconds or an HTTP-date) as a delay
 * from now_unix_s in ms (0 for a date in the past); -1 when unparsable. */
int64_t uplink_retry_after_ms(const char *value, int64_t now_unix_s);

#endif
