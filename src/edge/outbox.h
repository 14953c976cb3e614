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
 * Caps per priority class in rows and bytes (json + frame), counting the
 * class's pending and inflight rows: a put into a full class 1..3 evicts that
 * class's oldest pending rows (created_ms, then id) until the new one fits,
 * each counted by reason "full" (the caps are per class, so only the class's
 * own rows can make room; a class never takes room from another).  Priority 0
 * is never evicted: a priority-0 put that does not fit is refused with
 * VIGIL_ERR_LIMIT and counted (refused_full).  A put that cannot fit even
 * with every pending row of its class evicted (inflight rows are never
 * evicted; an event larger than the byte cap) is refused the same way.
 * Pending and parked rows older than ttl_ms are expired (counted by reason
 * "ttl"); inflight rows are left to their answer.
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
    int64_t max_db_bytes;                     /* ceiling on the database file (PRAGMA max_page_count);
                                                 a put past it fails like a full disk.  <= 0: none */
} outbox_limits;

typedef struct outbox_stats {
    int64_t rows[EDGE_PRIORITY_CLASSES]; /* pending + inflight per class */
    int64_t bytes[EDGE_PRIORITY_CLASSES];
    int64_t parked;            /* rows parked after a final 4xx */
    int64_t oldest_pending_ms; /* created_ms of the oldest pending row, 0 when none */
    /* The counters below live in the database (table `counters`), updated
     * in the same transaction as the change they count, so they survive
     * restarts; they start again at 0 after a quarantine. */
    int64_t evicted_full;
    int64_t expired_ttl;
    int64_t refused_full; /* puts refused (priority 0 full, or too large to fit) */
    int64_t acked;
    bool quarantined; /* a corrupt file was moved aside at open */
    char quarantine_path[512];
} outbox_stats;

/* Opens (creating) the database at path.  OUT: *out, owned by the caller. */
vigil_status outbox_open(const char *path, const outbox_limits *limits, outbox **out, vigil_error *err);
void outbox_close(outbox *box);

/* Commits the event (copies what it needs; the caller keeps event).
 * Expires and evicts first as the caps say.  VIGIL_ERR_LIMIT: priority 0 and
 * its class is full (nothing stored).  VIGIL_ERR_EXISTS: the id is there. */
vigil_status outbox_put(outbox *box, const edge_event *event, int64_t now_ms, vigil_error *err);

/* Takes the next row to send: the highest priority, then the oldest
 * (created_ms, then id), among pending rows whose next attempt is due at
 * now_ms; marks it inflight.  Expires first.
 * OUT: *event filled and owned by the caller (edge_event_clear), *found. */
vigil_status outbox_claim(outbox *box, int64_t now_ms, edge_event *event, bool *found, vigil_error *err);
/* outbox_claim among rows of priority <= max_priority only (the uplink's
 * strict-priority rule); OUT: *attempts, the sends before this one. */
vigil_status outbox_claim_next(outbox *box, int64_t now_ms, int max_priority, edge_event *event, bool *found,
                               int *attempts, vigil_error *err);

/* The cloud answered 2xx: deletes the outbox row and records the verdict
 * (the answer's JSON) with the event in `events`.  VIGIL_ERR_NOT_FOUND when
 * the id is not in the outbox (nothing changed). */
vigil_status outbox_ack(outbox *box, const char *id, const char *answer_json, int64_t now_ms, vigil_error *err);

/* The send failed and may be retried: back to pending, due at next_ms.
 * VIGIL_ERR_NOT_FOUND when the id is not inflight. */
vigil_status outbox_retry(outbox *box, const char *id, int64_t next_ms, const char *reason, vigil_error *err);

/* A final refusal (4xx other than 408/429): kept, parked, counted, not sent again. */
vigil_status outbox_park(outbox *box, const char *id, int http_status, const char *reason, vigil_error *err);

/* Earliest next-attempt time among pending rows (INT64_MAX when none). */
int64_t outbox_next_due_ms(outbox *box);

vigil_status outbox_stats_get(outbox *box, int64_t now_ms, outbox_stats *out, vigil_error *err);

/* History for the API.  OUT: *json (malloc'd, caller frees): for one id the
 * event document plus "state" ("pending", "acked", "parked", "evicted",
 * "expired"), "verdict" (the answer's "verdict" member, or the whole answer
 * when it has none; null until answered), "state_ms" (when the state last
 * changed), and "last_status"/"last_error" after a failed send, a park, an
 * eviction or an expiry; VIGIL_ERR_NOT_FOUND when unknown (or dropped from
 * the bounded history).  For since: {"events":[...]} of events
 * created at or after since_ms, oldest first, at most limit. */
vigil_status outbox_event_json(outbox *box, const char *id, char **json, vigil_error *err);
vigil_status outbox_events_since_json(outbox *box, int64_t since_ms, int limit, char **json, vigil_error *err);

#endif
