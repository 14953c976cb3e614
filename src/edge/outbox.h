/*
 * outbox.h - the edge's durable outbox on SQLite (docs/EDGE.md, "Outbox").
 *
 * An event is committed before anything acknowledges it, and its row is
 * deleted only after the cloud acknowledged it.  One database file holds two
 * tables: `outbox` (events still to send: pending, inflight or parked) and
 * `events` (the recent history the edge serves on /api/v1/events: every
 * event made, its state and, once answered, the cloud's verdict).
 *
 * Durability: WAL; a priority-0 insert commits with synchronous=FULL, the
 * others with NORMAL (a power cut can lose the last NORMAL commits, never a
 * FULL one).  Every SQLite result is checked.  At open: PRAGMA quick_check;
 * a corrupt or truncated file is renamed aside (<path>.corrupt-<unix ms>) and
 * a fresh one created, with outbox_stats.quarantined set; `inflight` rows go
 * back to `pending`.
 *
 * Caps per priority class in rows and bytes (json + frame): when a class is
 * full, the oldest pending row of the lowest class that holds any is evicted
 * (counted by reason "full") - except priority 0, which is never evicted: a
 * priority-0 put into a full outbox is refused with VIGIL_ERR_LIMIT.  Rows
 * older than ttl_ms are expired (counted by reason "ttl").
 *
 * Thread-safe: one mutex around one connection.  The outbox keeps no clock
 * of its own: callers pass now_ms from their edge_clock.
 */
#ifndef VIGIL_EDGE_OUTBOX_H
#define VIGIL_EDGE_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "edge/event.h"
#include "vigil/status.h"

typedef struct outbox outbox;

typedef struct outbox_limits {
    int64_t max_rows[EDGE_PRIORITY_CLASSES];  /* <= 0: unbounded */
    int64_t max_bytes[EDGE_PRIORITY_CLASSES]; /* <= 0: unbounded */
    int64_t ttl_ms;                           /* <= 0: never expire */
    int64_t history_rows;                     /* rows kept in `events` (oldest dropped), <= 0: 10000 */
} outbox_limits;

typedef struct outbox_stats {
    int64_t rows[EDGE_PRIORITY_CLASSES];   /* pending + inflight per class */
    int64_t bytes[EDGE_PRIORITY_CLASSES];
    int64_t parked;                        /* rows parked after a final 4xx */
    int64_t oldest_pending_ms;             /* created_ms of the oldest pending row, 0 when none */
    int64_t evicted_full;                  /* since open */
    int64_t expired_ttl;
    int64_t refused_full;                  /* priority-0 puts refused */
    int64_t acked;
    bool quarantined;                      /* a corrupt file was moved aside at open */
    char quarantine_path[512];
} outbox_stats;

/* Opens (creating) the database at path.  OUT: *out, owned by the caller. */
vigil_status outbox_open(const char *path, const outbox_limits *limits, outbox **out, vigil_error *err);
void outbox_close(outbox *box);

/* Commits the event (copies what it needs; the caller keeps event).
 * Expires and evicts first as the caps say.  VIGIL_ERR_LIMIT: priority 0 and
 * its class is full (nothing stored).  VIGIL_ERR_EXISTS: the id is there. */
vigil_status outbox_put(outbox *box, const edge_event *event, int64_t now_ms, vigil_error *err);

/* Takes the next row to send: the highest priority, then the oldest, among
 * pending rows whose next attempt is due at now_ms; marks it inflight.
 * OUT: *event filled and owned by the caller (edge_event_clear), *found. */
vigil_status outbox_claim(outbox *box, int64_t now_ms, edge_event *event, bool *found, vigil_error *err);

/* The cloud answered 2xx: deletes the outbox row and records the verdict
 * (the answer's JSON) with the event in `events`. */
vigil_status outbox_ack(outbox *box, const char *id, const char *answer_json, int64_t now_ms, vigil_error *err);

/* The send failed and may be retried: back to pending, due at next_ms. */
vigil_status outbox_retry(outbox *box, const char *id, int64_t next_ms, const char *reason, vigil_error *err);

/* A final refusal (4xx other than 408/429): kept, parked, counted, not sent again. */
vigil_status outbox_park(outbox *box, const char *id, int http_status, const char *reason, vigil_error *err);

/* Earliest next-attempt time among pending rows (INT64_MAX when none). */
int64_t outbox_next_due_ms(outbox *box);

vigil_status outbox_stats_get(outbox *box, int64_t now_ms, outbox_stats *out, vigil_error *err);

/* History for the API.  OUT: *json (malloc'd, caller frees): for one id the
 * event document plus "state" and "verdict" (null until answered);
 * VIGIL_ERR_NOT_FOUND when unknown.  For since: {"events":[...]} of events
 * created at or after since_ms, oldest first, at most limit. */
vigil_status outbox_event_json(outbox *box, const char *id, char **json, vigil_error *err);
vigil_status outbox_events_since_json(outbox *box, int64_t since_ms, int limit, char **json, vigil_error *err);

#endif
