/*
 * outbox.c - the edge's durable outbox on SQLite (see outbox.h).
 *
 * One connection, one mutex, prepared statements.  Every change is one
 * transaction that also carries the counters it moves (table `counters`), so
 * a crash leaves rows and counters consistent.  The per-class totals that the
 * caps need on every put (rows and bytes, pending and inflight) are kept in
 * memory, loaded at open and moved only after a successful COMMIT, so a put
 * costs an index lookup, never a scan of the class.
 *
 * Schema (user_version 1):
 *   outbox(id PK, priority, created_ms, traceparent, json, frame, bytes,
 *          state 0 pending | 1 inflight | 2 parked, next_ms, attempts,
 *          last_status, last_reason)
 *   events(id PK, priority, created_ms, json, state TEXT, verdict,
 *          state_ms, last_status, last_reason)   -- the bounded history
 *   counters(name PK, value)                    -- evicted/expired/refused/acked
 *
 * Durability: WAL.  `PRAGMA synchronous` is set before each transaction:
 * FULL for a priority-0 put (the commit is fsynced before put returns), NORMAL
 * for everything else (WAL commits not yet checkpointed may be lost on a power
 * cut, never torn).  A lost ack or claim only means a row is sent again; the
 * receiver's idempotency key makes that harmless.
 *
 * Corruption: PRAGMA quick_check at open; a file that is not a database, is
 * truncated or fails the check is renamed aside with its -wal and -shm (a
 * stale WAL must not be replayed into the fresh file) and a fresh database is
 * created.  Corruption met later is reported as VIGIL_ERR_IO; the next start
 * quarantines the file.
 *
 * Memory: the edge_event fields and the JSON strings handed to callers are
 * plain malloc (edge_event_clear and the callers free() them); the outbox's
 * own structure goes through vigil_calloc.
 */
#include "edge/outbox.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define OUTBOX_SCHEMA_VERSION 1
#define OUTBOX_HISTORY_DEFAULT 10000
#define OUTBOX_SINCE_DEFAULT 100
#define OUTBOX_SINCE_MAX 1000
#define OUTBOX_EXPIRE_BATCH 64

enum { ROW_PENDING = 0, ROW_INFLIGHT = 1, ROW_PARKED = 2 };

/* Statements, prepared once at open. */
enum {
    ST_INSERT_OUTBOX,
    ST_INSERT_EVENT,
    ST_VICTIM,
    ST_DELETE_OUTBOX,
    ST_EVENT_STATE,
    ST_EXPIRED,
    ST_CLAIM,
    ST_MARK_INFLIGHT,
    ST_ROW,
    ST_EVENT_ACK,
    ST_RETRY,
    ST_PARK,
    ST_MIN_DUE,
    ST_OLDEST,
    ST_COUNTER_ADD,
    ST_HISTORY_TRIM,
    ST_EVENT_GET,
    ST_EVENT_SINCE,
    ST_COUNT
};

static const char *const statement_sql[ST_COUNT] = {
    [ST_INSERT_OUTBOX] = "INSERT INTO outbox(id, priority, created_ms, traceparent, json, frame, bytes, state, "
                         "next_ms, attempts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0, 0)",
    [ST_INSERT_EVENT] = "INSERT INTO events(id, priority, created_ms, json, state, state_ms) "
                        "VALUES(?1, ?2, ?3, ?4, 'pending', ?5)",
    [ST_VICTIM] = "SELECT id, bytes FROM outbox WHERE state = 0 AND priority = ?1 "
                  "ORDER BY created_ms, id LIMIT 1",
    [ST_DELETE_OUTBOX] = "DELETE FROM outbox WHERE id = ?1",
    [ST_EVENT_STATE] =
        "UPDATE events SET state = ?2, state_ms = coalesce(?3, state_ms), last_status = ?4, last_reason = ?5 "
        "WHERE id = ?1",
    [ST_EXPIRED] = "SELECT id, priority, bytes, state FROM outbox WHERE state != 1 AND created_ms < ?1 "
                   "ORDER BY created_ms LIMIT 64", /* OUTBOX_EXPIRE_BATCH */
    [ST_CLAIM] = "SELECT id, priority, created_ms, traceparent, json, frame, attempts FROM outbox "
                 "WHERE state = 0 AND next_ms <= ?1 AND priority <= ?2 ORDER BY priority, created_ms, id LIMIT 1",
    [ST_MARK_INFLIGHT] = "UPDATE outbox SET state = 1, attempts = attempts + 1 WHERE id = ?1",
    [ST_ROW] = "SELECT priority, bytes, state FROM outbox WHERE id = ?1",
    [ST_EVENT_ACK] = "UPDATE events SET state = 'acked', verdict = ?2, state_ms = ?3, last_status = NULL, "
                     "last_reason = NULL WHERE id = ?1",
    [ST_RETRY] = "UPDATE outbox SET state = 0, next_ms = ?2, last_reason = ?3 WHERE id = ?1 AND state = 1",
    [ST_PARK] = "UPDATE outbox SET state = 2, last_status = ?2, last_reason = ?3 WHERE id = ?1",
    [ST_MIN_DUE] = "SELECT min(next_ms) FROM outbox WHERE state = 0",
    [ST_OLDEST] = "SELECT min(created_ms) FROM outbox WHERE state = 0",
    [ST_COUNTER_ADD] = "INSERT INTO counters(name, value) VALUES(?1, ?2) "
                       "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    [ST_HISTORY_TRIM] = "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY created_ms, id LIMIT ?1)",
    [ST_EVENT_GET] = "SELECT id, priority, created_ms, json, state, verdict, state_ms, last_status, last_reason "
                     "FROM events WHERE id = ?1",
    [ST_EVENT_SINCE] = "SELECT id, priority, created_ms, json, state, verdict, state_ms, last_status, last_reason "
                       "FROM events WHERE created_ms >= ?1 ORDER BY created_ms, id LIMIT ?2",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS outbox("
    " id TEXT PRIMARY KEY, priority INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " traceparent TEXT NOT NULL, json TEXT NOT NULL, frame BLOB, bytes INTEGER NOT NULL,"
    " state INTEGER NOT NULL, next_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " last_status INTEGER, last_reason TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_order ON outbox(state, priority, created_ms, id);"
    "CREATE INDEX IF NOT EXISTS outbox_age ON outbox(created_ms);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_ms);"
    "CREATE TABLE IF NOT EXISTS events("
    " id TEXT PRIMARY KEY, priority INTEGER NOT NULL, created_ms INTEGER NOT NULL, json TEXT NOT NULL,"
    " state TEXT NOT NULL, verdict TEXT, state_ms INTEGER NOT NULL, last_status INTEGER, last_reason TEXT);"
    "CREATE INDEX IF NOT EXISTS events_created ON events(created_ms, id);"
    "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

/* What one transaction changes in the in-memory totals; applied after COMMIT. */
typedef struct outbox_delta {
    int64_t rows[EDGE_PRIORITY_CLASSES];
    int64_t bytes[EDGE_PRIORITY_CLASSES];
    int64_t inflight_rows[EDGE_PRIORITY_CLASSES];
    int64_t inflight_bytes[EDGE_PRIORITY_CLASSES];
    int64_t parked, evicted, expired, refused, acked, history;
} outbox_delta;

struct outbox {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    outbox_limits limits;
    /* pending + inflight per class (what the caps count), and inflight alone
     * (what eviction cannot free) */
    int64_t rows[EDGE_PRIORITY_CLASSES], bytes[EDGE_PRIORITY_CLASSES];
    int64_t inflight_rows[EDGE_PRIORITY_CLASSES], inflight_bytes[EDGE_PRIORITY_CLASSES];
    int64_t parked, evicted, expired, refused, acked;
    int64_t history; /* rows in `events` */
    bool quarantined;
    char quarantine_path[512];
};

/* ---- errors ---------------------------------------------------------------- */

static bool rc_is_corrupt(int rc) {
    int primary = rc & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

/* Maps a SQLite failure to a status and a message naming what failed.  A
 * full disk (or the max_db_bytes ceiling) is VIGIL_ERR_IO with "full" in the
 * message so that an operator sees the cause, not a generic I/O error. */
static vigil_status db_error(sqlite3 *db, int rc, const char *what, vigil_error *err) {
    const char *detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return vigil_error_set(err, VIGIL_ERR_IO, "outbox: %s: the disk or the outbox's size ceiling is full (%s)",
                               what, detail);
    case SQLITE_NOMEM: return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: %s: %s", what, detail);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "outbox: %s: database busy (%s)", what, detail);
    case SQLITE_CONSTRAINT: return vigil_error_set(err, VIGIL_ERR_EXISTS, "outbox: %s: %s", what, detail);
    default: return vigil_error_set(err, VIGIL_ERR_IO, "outbox: %s: %s (%s)", what, detail, sqlite3_errstr(rc));
    }
}

/* Resets a statement after use.  reset's result repeats the last step's,
 * which every caller has already checked, so it carries no news here. */
static void stmt_release(sqlite3_stmt *s) {
    (void)sqlite3_reset(s);
    (void)sqlite3_clear_bindings(s);
}

/* Steps a statement that returns no rows to completion. */
static vigil_status stmt_run(outbox *box, sqlite3_stmt *s, const char *what, vigil_error *err) {
    int rc = sqlite3_step(s);
    vigil_status st = rc == SQLITE_DONE ? VIGIL_OK : db_error(box->db, rc, what, err);
    stmt_release(s);
    return st;
}

static int bind_text_or_null(sqlite3_stmt *s, int i, const char *text) {
    return text ? sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static vigil_status bind_check(outbox *box, sqlite3_stmt *s, int rc, const char *what, vigil_error *err) {
    if (rc == SQLITE_OK) return VIGIL_OK;
    vigil_status st = db_error(box->db, rc, what, err);
    stmt_release(s);
    return st;
}

/* ---- transactions ---------------------------------------------------------- */

static vigil_status exec_sql(sqlite3 *db, const char *sql, const char *what, vigil_error *err) {
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? VIGIL_OK : db_error(db, rc, what, err);
}

/* synchronous is a connection setting read at COMMIT, so it is set before
 * each transaction: FULL only where the caller asked for it. */
static vigil_status tx_begin(outbox *box, bool sync_full, vigil_error *err) {
    vigil_status st = exec_sql(box->db, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                               "setting synchronous", err);
    if (st == VIGIL_OK) st = exec_sql(box->db, "BEGIN IMMEDIATE", "beginning a transaction", err);
    return st;
}

static void tx_rollback(outbox *box) {
    if (sqlite3_get_autocommit(box->db)) return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
    int rc = sqlite3_exec(box->db, "ROLLBACK", NULL, NULL, NULL);
    if (rc != SQLITE_OK) LOG_E("outbox: rollback failed: %s", sqlite3_errmsg(box->db));
}

static vigil_status tx_commit(outbox *box, vigil_error *err) {
    vigil_status st = exec_sql(box->db, "COMMIT", "committing", err);
    if (st != VIGIL_OK) tx_rollback(box);
    return st;
}

static void delta_apply(outbox *box, const outbox_delta *d) {
    for (int c = 0; c < EDGE_PRIORITY_CLASSES; c++) {
        box->rows[c] += d->rows[c];
        box->bytes[c] += d->bytes[c];
        box->inflight_rows[c] += d->inflight_rows[c];
        box->inflight_bytes[c] += d->inflight_bytes[c];
    }
    box->parked += d->parked;
    box->evicted += d->evicted;
    box->expired += d->expired;
    box->refused += d->refused;
    box->acked += d->acked;
    box->history += d->history;
}

static vigil_status counter_add(outbox *box, const char *name, int64_t by, vigil_error *err) {
    if (by == 0) return VIGIL_OK;
    sqlite3_stmt *s = box->st[ST_COUNTER_ADD];
    int rc = sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, by);
    vigil_status st = bind_check(box, s, rc, "counting", err);
    return st != VIGIL_OK ? st : stmt_run(box, s, "counting", err);
}

/* Writes the counters a transaction moved (inside that transaction). */
static vigil_status delta_count(outbox *box, const outbox_delta *d, vigil_error *err) {
    vigil_status st = counter_add(box, "evicted_full", d->evicted, err);
    if (st == VIGIL_OK) st = counter_add(box, "expired_ttl", d->expired, err);
    if (st == VIGIL_OK) st = counter_add(box, "refused_full", d->refused, err);
    if (st == VIGIL_OK) st = counter_add(box, "acked", d->acked, err);
    return st;
}

/* Records an event's state in the history; now_ms < 0 keeps the state time
 * it had (park and retry have no clock of their own). */
static vigil_status event_state(outbox *box, const char *id, const char *state, int64_t now_ms, int http_status,
                                const char *reason, vigil_error *err) {
    sqlite3_stmt *s = box->st[ST_EVENT_STATE];
    int rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = now_ms >= 0 ? sqlite3_bind_int64(s, 3, now_ms) : sqlite3_bind_null(s, 3);
    if (rc == SQLITE_OK) rc = http_status ? sqlite3_bind_int(s, 4, http_status) : sqlite3_bind_null(s, 4);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 5, reason);
    vigil_status st = bind_check(box, s, rc, "recording an event's state", err);
    return st != VIGIL_OK ? st : stmt_run(box, s, "recording an event's state", err);
}

static vigil_status delete_row(outbox *box, const char *id, vigil_error *err) {
    sqlite3_stmt *s = box->st[ST_DELETE_OUTBOX];
    vigil_status st = bind_check(box, s, sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC), "deleting a row", err);
    return st != VIGIL_OK ? st : stmt_run(box, s, "deleting a row", err);
}

/* ---- expiry and eviction (inside a transaction) ------------------------------ */

/* Deletes pending and parked rows created before now_ms - ttl_ms, in batches
 * (ids are copied out before the deletes, which the open SELECT must not see). */
static vigil_status expire_rows(outbox *box, int64_t now_ms, outbox_delta *d, vigil_error *err) {
    if (box->limits.ttl_ms <= 0) return VIGIL_OK;
    for (;;) {
        char ids[OUTBOX_EXPIRE_BATCH][EDGE_EVENT_ID_LEN + 1];
        int prio[OUTBOX_EXPIRE_BATCH], state[OUTBOX_EXPIRE_BATCH];
        int64_t bytes[OUTBOX_EXPIRE_BATCH];
        int n = 0;
        sqlite3_stmt *s = box->st[ST_EXPIRED];
        vigil_status st =
            bind_check(box, s, sqlite3_bind_int64(s, 1, now_ms - box->limits.ttl_ms), "finding expired rows", err);
        if (st != VIGIL_OK) return st;
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < OUTBOX_EXPIRE_BATCH) {
            const unsigned char *id = sqlite3_column_text(s, 0);
            snprintf(ids[n], sizeof ids[n], "%s", id ? (const char *)id : "");
            prio[n] = sqlite3_column_int(s, 1);
            bytes[n] = sqlite3_column_int64(s, 2);
            state[n] = sqlite3_column_int(s, 3);
            n++;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            st = db_error(box->db, rc, "finding expired rows", err);
            stmt_release(s);
            return st;
        }
        stmt_release(s);
        for (int i = 0; i < n; i++) {
            st = delete_row(box, ids[i], err);
            if (st == VIGIL_OK) st = event_state(box, ids[i], "expired", now_ms, 0, "ttl", err);
            if (st != VIGIL_OK) return st;
            if (state[i] == ROW_PARKED) {
                d->parked--;
            } else if (prio[i] >= 0 && prio[i] < EDGE_PRIORITY_CLASSES) {
                d->rows[prio[i]]--;
                d->bytes[prio[i]] -= bytes[i];
            }
            d->expired++;
            LOG_D("outbox: event %s expired (older than %lld ms)", ids[i], (long long)box->limits.ttl_ms);
        }
        if (n < OUTBOX_EXPIRE_BATCH) return VIGIL_OK;
    }
}

/* Commits an expiry alone (claim and stats expire too, outside any put). */
static vigil_status expire_now(outbox *box, int64_t now_ms, vigil_error *err) {
    if (box->limits.ttl_ms <= 0) return VIGIL_OK;
    outbox_delta d = {0};
    vigil_status st = tx_begin(box, false, err);
    if (st != VIGIL_OK) return st;
    st = expire_rows(box, now_ms, &d, err);
    if (st == VIGIL_OK) st = delta_count(box, &d, err);
    if (st == VIGIL_OK)
        st = tx_commit(box, err);
    else
        tx_rollback(box);
    if (st == VIGIL_OK) delta_apply(box, &d);
    return st;
}

static bool class_fits(const outbox *box, const outbox_delta *d, int c, int64_t size) {
    int64_t rows = box->rows[c] + d->rows[c], bytes = box->bytes[c] + d->bytes[c];
    if (box->limits.max_rows[c] > 0 && rows + 1 > box->limits.max_rows[c]) return false;
    if (box->limits.max_bytes[c] > 0 && bytes + size > box->limits.max_bytes[c]) return false;
    return true;
}

/* Could the class hold the event if every pending row of it were evicted? */
static bool class_could_fit(const outbox *box, int c, int64_t size) {
    if (box->limits.max_rows[c] > 0 && box->inflight_rows[c] + 1 > box->limits.max_rows[c]) return false;
    if (box->limits.max_bytes[c] > 0 && box->inflight_bytes[c] + size > box->limits.max_bytes[c]) return false;
    return true;
}

/* Evicts the class's oldest pending rows until size more bytes and one more
 * row fit.  The caller checked class_could_fit, so pending rows run out only
 * if the in-memory totals disagree with the table (reported, not looped on). */
static vigil_status evict_for(outbox *box, int c, int64_t size, int64_t now_ms, outbox_delta *d, vigil_error *err) {
    while (!class_fits(box, d, c, size)) {
        sqlite3_stmt *s = box->st[ST_VICTIM];
        vigil_status st = bind_check(box, s, sqlite3_bind_int(s, 1, c), "finding a row to evict", err);
        if (st != VIGIL_OK) return st;
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            stmt_release(s);
            return vigil_error_set(err, VIGIL_ERR_INTERNAL,
                                   "outbox: class %d is over its cap with no pending row to evict", c);
        }
        if (rc != SQLITE_ROW) {
            st = db_error(box->db, rc, "finding a row to evict", err);
            stmt_release(s);
            return st;
        }
        char id[EDGE_EVENT_ID_LEN + 1];
        const unsigned char *text = sqlite3_column_text(s, 0);
        snprintf(id, sizeof id, "%s", text ? (const char *)text : "");
        int64_t bytes = sqlite3_column_int64(s, 1);
        stmt_release(s);
        st = delete_row(box, id, err);
        if (st == VIGIL_OK) st = event_state(box, id, "evicted", now_ms, 0, "full", err);
        if (st != VIGIL_OK) return st;
        d->rows[c]--;
        d->bytes[c] -= bytes;
        d->evicted++;
        LOG_D("outbox: class %d full: evicted event %s (%lld bytes)", c, id, (long long)bytes);
    }
    return VIGIL_OK;
}

/* ---- open and close ---------------------------------------------------------- */

static void finalize_all(outbox *box) {
    for (int i = 0; i < ST_COUNT; i++) {
        if (box->st[i]) (void)sqlite3_finalize(box->st[i]); /* returns the last step's error, already seen */
        box->st[i] = NULL;
    }
}

static void db_close(outbox *box) {
    finalize_all(box);
    if (box->db) {
        int rc = sqlite3_close(box->db);
        if (rc != SQLITE_OK) LOG_E("outbox: closing the database: %s", sqlite3_errstr(rc));
        box->db = NULL;
    }
}

/* Runs PRAGMA quick_check; *ok is false when it reported any problem. */
static vigil_status quick_check(sqlite3 *db, bool *ok, char *why, size_t why_size, vigil_error *err) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        vigil_status st = db_error(db, rc, "quick_check", err);
        (void)sqlite3_finalize(s);
        return st;
    }
    *ok = true;
    int rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(s, 0);
        if (rows++ == 0 && text && strcmp((const char *)text, "ok") == 0) continue;
        if (*ok) snprintf(why, why_size, "quick_check: %s", text ? (const char *)text : "(null)");
        *ok = false;
    }
    vigil_status st = rc == SQLITE_DONE ? VIGIL_OK : db_error(db, rc, "quick_check", err);
    (void)sqlite3_finalize(s); /* repeats the step's result, checked above */
    if (st == VIGIL_OK && rows == 0) {
        *ok = false;
        snprintf(why, why_size, "quick_check returned nothing");
    }
    return st;
}

/* Opens path and readies it.  *corrupt is set (with a VIGIL_ERR_IO error,
 * the connection left open) when the file is not a usable database, so the
 * caller can move it aside and then db_close; any other failure
 * (permissions, a newer schema) is returned as is, the connection closed. */
static vigil_status db_open(outbox *box, const char *path, bool *corrupt, vigil_error *err) {
    *corrupt = false;
    int rc = sqlite3_open_v2(path, &box->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        vigil_status st = db_error(box->db, rc, "opening", err);
        vigil_error_prefix(err, "%s", path);
        db_close(box);
        return st;
    }
    vigil_status st = VIGIL_OK;
    rc = sqlite3_extended_result_codes(box->db, 1);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(box->db, 5000);
    if (rc != SQLITE_OK) st = db_error(box->db, rc, "configuring the connection", err);
    char why[256] = "";
    /* journal_mode reads the header: a file that is not a database fails here */
    if (st == VIGIL_OK) {
        rc = sqlite3_exec(box->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            st = db_error(box->db, rc, "switching to WAL", err);
            if (rc_is_corrupt(rc)) *corrupt = true;
        }
    }
    if (st == VIGIL_OK) {
        bool ok = true;
        st = quick_check(box->db, &ok, why, sizeof why, err);
        if (st != VIGIL_OK && rc_is_corrupt(sqlite3_extended_errcode(box->db))) *corrupt = true;
        if (st == VIGIL_OK && !ok) {
            *corrupt = true;
            st = vigil_error_set(err, VIGIL_ERR_IO, "outbox: %s", why);
        }
    }
    if (st == VIGIL_OK && box->limits.max_db_bytes > 0) {
        char sql[96];
        int page = 4096;
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(box->db, "PRAGMA page_size", -1, &s, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            page = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
        (void)sqlite3_finalize(s);
        if (rc != SQLITE_OK) st = db_error(box->db, rc, "reading the page size", err);
        if (st == VIGIL_OK) {
            int64_t pages = box->limits.max_db_bytes / (page > 0 ? page : 4096);
            snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)(pages > 1 ? pages : 1));
            st = exec_sql(box->db, sql, "setting max_page_count", err);
        }
    }
    int version = 0;
    if (st == VIGIL_OK) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(box->db, "PRAGMA user_version", -1, &s, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            version = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
        (void)sqlite3_finalize(s);
        if (rc != SQLITE_OK) {
            st = db_error(box->db, rc, "reading user_version", err);
            if (rc_is_corrupt(rc)) *corrupt = true;
        } else if (version > OUTBOX_SCHEMA_VERSION) {
            st = vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                                 "outbox: %s has schema version %d, newer than this vigil's %d", path, version,
                                 OUTBOX_SCHEMA_VERSION);
        }
    }
    if (st == VIGIL_OK) {
        rc = sqlite3_exec(box->db, schema_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK && version < OUTBOX_SCHEMA_VERSION)
            rc = sqlite3_exec(box->db, "PRAGMA user_version=1", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            st = db_error(box->db, rc, "creating the schema", err);
            if (rc_is_corrupt(rc)) *corrupt = true;
        }
    }
    for (int i = 0; st == VIGIL_OK && i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(box->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &box->st[i], NULL);
        if (rc != SQLITE_OK) st = db_error(box->db, rc, "preparing a statement", err);
    }
    /* A corrupt file stays open: the caller renames it and its -wal and -shm
     * aside first, because closing the last connection would delete them. */
    if (st != VIGIL_OK && !*corrupt) {
        vigil_error_prefix(err, "%s", path);
        db_close(box);
    }
    return st;
}

/* Renames path (and its -wal and -shm, so that a stale WAL is never replayed
 * into the fresh file) to path.corrupt-<unix ms>[-wal|-shm]. */
static vigil_status quarantine(outbox *box, const char *path, vigil_error *err) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int n = snprintf(box->quarantine_path, sizeof box->quarantine_path, "%s.corrupt-%lld", path, ms);
    /* never rename over an earlier quarantine (two in one millisecond) */
    for (int k = 1; n >= 0 && (size_t)n < sizeof box->quarantine_path && access(box->quarantine_path, F_OK) == 0; k++)
        n = snprintf(box->quarantine_path, sizeof box->quarantine_path, "%s.corrupt-%lld-%d", path, ms, k);
    if (n < 0 || (size_t)n >= sizeof box->quarantine_path)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "outbox: path too long to quarantine: %s", path);
    if (rename(path, box->quarantine_path) != 0)
        return vigil_error_set(err, VIGIL_ERR_IO, "outbox: cannot move corrupt %s aside: %s", path, strerror(errno));
    static const char *const sidecars[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof sidecars / sizeof sidecars[0]; i++) {
        char from[600], to[600];
        snprintf(from, sizeof from, "%s%s", path, sidecars[i]);
        snprintf(to, sizeof to, "%s%s", box->quarantine_path, sidecars[i]);
        if (rename(from, to) != 0 && errno != ENOENT)
            return vigil_error_set(err, VIGIL_ERR_IO, "outbox: cannot move %s aside: %s", from, strerror(errno));
    }
    box->quarantined = true;
    return VIGIL_OK;
}

/* Loads the in-memory totals and the counters, and turns inflight rows (a
 * send the previous process never saw answered) back into pending ones. */
static vigil_status load_state(outbox *box, vigil_error *err) {
    vigil_status st = tx_begin(box, false, err);
    if (st != VIGIL_OK) return st;
    st = exec_sql(box->db, "UPDATE outbox SET state = 0 WHERE state = 1", "resetting inflight rows", err);
    int changed = st == VIGIL_OK ? sqlite3_changes(box->db) : 0;
    sqlite3_stmt *s = NULL;
    int rc = SQLITE_OK;
    if (st == VIGIL_OK) {
        rc = sqlite3_prepare_v2(box->db,
                                "SELECT priority, state, count(*), total(bytes) FROM outbox GROUP BY priority, state",
                                -1, &s, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            int c = sqlite3_column_int(s, 0), state = sqlite3_column_int(s, 1);
            int64_t count = sqlite3_column_int64(s, 2), bytes = (int64_t)sqlite3_column_double(s, 3);
            if (state == ROW_PARKED)
                box->parked += count;
            else if (c >= 0 && c < EDGE_PRIORITY_CLASSES) {
                box->rows[c] += count;
                box->bytes[c] += bytes;
            }
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_DONE) st = db_error(box->db, rc, "counting rows", err);
        (void)sqlite3_finalize(s);
    }
    if (st == VIGIL_OK) {
        s = NULL;
        rc = sqlite3_prepare_v2(box->db, "SELECT name, value FROM counters", -1, &s, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(s, 0);
            int64_t value = sqlite3_column_int64(s, 1);
            if (!name) name = "";
            if (strcmp(name, "evicted_full") == 0)
                box->evicted = value;
            else if (strcmp(name, "expired_ttl") == 0)
                box->expired = value;
            else if (strcmp(name, "refused_full") == 0)
                box->refused = value;
            else if (strcmp(name, "acked") == 0)
                box->acked = value;
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_DONE) st = db_error(box->db, rc, "reading counters", err);
        (void)sqlite3_finalize(s);
    }
    if (st == VIGIL_OK) {
        s = NULL;
        rc = sqlite3_prepare_v2(box->db, "SELECT count(*) FROM events", -1, &s, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            box->history = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK) st = db_error(box->db, rc, "counting history", err);
        (void)sqlite3_finalize(s);
    }
    if (st == VIGIL_OK)
        st = tx_commit(box, err);
    else
        tx_rollback(box);
    if (st == VIGIL_OK && changed > 0) LOG_I("outbox: %d inflight row(s) from the last run are pending again", changed);
    return st;
}

vigil_status outbox_open(const char *path, const outbox_limits *limits, outbox **out, vigil_error *err) {
    if (!path || !path[0] || !out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox: no path");
    *out = NULL;
    outbox *box = vigil_calloc(1, sizeof *box);
    if (!box) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory");
    if (limits) box->limits = *limits;
    if (box->limits.history_rows <= 0) box->limits.history_rows = OUTBOX_HISTORY_DEFAULT;
    bool corrupt = false;
    vigil_status st = db_open(box, path, &corrupt, err);
    if (st != VIGIL_OK && corrupt) {
        LOG_W("outbox: %s is not a usable database (%s): moving it aside", path, err ? err->message : "");
        st = quarantine(box, path, err);
        db_close(box);
        if (st == VIGIL_OK) {
            LOG_W("outbox: the corrupt database is now %s; a fresh outbox replaces it", box->quarantine_path);
            st = db_open(box, path, &corrupt, err);
            if (st != VIGIL_OK && corrupt) {
                db_close(box);
                vigil_error_prefix(err, "%s: the fresh database is unusable too", path);
            }
        }
    }
    if (st == VIGIL_OK) st = load_state(box, err);
    if (st != VIGIL_OK) {
        db_close(box);
        vigil_free(box);
        return st;
    }
    if (pthread_mutex_init(&box->lock, NULL) != 0) {
        db_close(box);
        vigil_free(box);
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "outbox: pthread_mutex_init failed");
    }
    *out = box;
    return VIGIL_OK;
}

void outbox_close(outbox *box) {
    if (!box) return;
    db_close(box);
    pthread_mutex_destroy(&box->lock);
    vigil_free(box);
}

/* ---- put, claim, ack, retry, park ------------------------------------------------ */

static bool priority_valid(int priority) {
    return priority >= 0 && priority < EDGE_PRIORITY_CLASSES;
}

static vigil_status insert_event(outbox *box, const edge_event *e, int64_t size, int64_t now_ms, vigil_error *err) {
    sqlite3_stmt *s = box->st[ST_INSERT_OUTBOX];
    int rc = sqlite3_bind_text(s, 1, e->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, e->priority);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, e->created_ms);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 4, e->traceparent, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 5, e->json, (int)e->json_bytes, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = e->frame ? sqlite3_bind_blob64(s, 6, e->frame, e->frame_bytes, SQLITE_STATIC) : sqlite3_bind_null(s, 6);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 7, size);
    vigil_status st = bind_check(box, s, rc, "storing the event", err);
    if (st == VIGIL_OK) st = stmt_run(box, s, "storing the event", err);
    if (st != VIGIL_OK) return st;
    s = box->st[ST_INSERT_EVENT];
    rc = sqlite3_bind_text(s, 1, e->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, e->priority);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, e->created_ms);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 4, e->json, (int)e->json_bytes, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 5, now_ms);
    st = bind_check(box, s, rc, "recording the event", err);
    return st != VIGIL_OK ? st : stmt_run(box, s, "recording the event", err);
}

static vigil_status trim_history(outbox *box, outbox_delta *d, vigil_error *err) {
    int64_t over = box->history + d->history - box->limits.history_rows;
    if (over <= 0) return VIGIL_OK;
    sqlite3_stmt *s = box->st[ST_HISTORY_TRIM];
    vigil_status st = bind_check(box, s, sqlite3_bind_int64(s, 1, over), "trimming the history", err);
    if (st == VIGIL_OK) st = stmt_run(box, s, "trimming the history", err);
    if (st == VIGIL_OK) d->history -= sqlite3_changes(box->db);
    return st;
}

vigil_status outbox_put(outbox *box, const edge_event *event, int64_t now_ms, vigil_error *err) {
    if (!box || !event) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_put: no event");
    if (!edge_uuid_valid(event->id))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_put: event id is not a UUID");
    if (!priority_valid(event->priority))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_put: priority %d outside 0..%d",
                               event->priority, EDGE_PRIORITY_CLASSES - 1);
    if (!event->json || event->json_bytes > (size_t)INT32_MAX || event->frame_bytes > (size_t)INT32_MAX ||
        (!event->frame && event->frame_bytes))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_put: event %s has no JSON or a bad size",
                               event->id);
    int c = event->priority;
    int64_t size = (int64_t)event->json_bytes + (int64_t)event->frame_bytes;
    outbox_delta d = {0};
    pthread_mutex_lock(&box->lock);
    vigil_status st = tx_begin(box, c == 0, err);
    if (st != VIGIL_OK) goto out;
    st = expire_rows(box, now_ms, &d, err);
    if (st != VIGIL_OK) goto fail;
    bool refuse = false;
    if (!class_fits(box, &d, c, size)) {
        if (c == 0 || !class_could_fit(box, c, size))
            refuse = true;
        else
            st = evict_for(box, c, size, now_ms, &d, err);
        if (st != VIGIL_OK) goto fail;
    }
    if (refuse) {
        /* Nothing stored; the expiry and the refusal's count still commit. */
        d.refused++;
        st = delta_count(box, &d, err);
        if (st == VIGIL_OK)
            st = tx_commit(box, err);
        else
            tx_rollback(box);
        if (st != VIGIL_OK) goto out;
        delta_apply(box, &d);
        LOG_W("outbox: priority %d is full (%lld of %lld rows, %lld of %lld bytes): event %s (%lld bytes) refused", c,
              (long long)box->rows[c], (long long)box->limits.max_rows[c], (long long)box->bytes[c],
              (long long)box->limits.max_bytes[c], event->id, (long long)size);
        st = vigil_error_set(err, VIGIL_ERR_LIMIT, "outbox: priority %d is full: event %s refused", c, event->id);
        goto out;
    }
    st = insert_event(box, event, size, now_ms, err);
    if (st != VIGIL_OK) goto fail;
    d.rows[c]++;
    d.bytes[c] += size;
    d.history++;
    st = trim_history(box, &d, err);
    if (st == VIGIL_OK) st = delta_count(box, &d, err);
    if (st != VIGIL_OK) goto fail;
    st = tx_commit(box, err);
    if (st == VIGIL_OK) delta_apply(box, &d);
    goto out;
fail:
    tx_rollback(box);
out:
    pthread_mutex_unlock(&box->lock);
    return st;
}

/* Copies a column into a fresh malloc'd buffer with a NUL after it (the
 * event's fields are freed by edge_event_clear with free()). */
static void *column_copy(sqlite3_stmt *s, int col, size_t *bytes) {
    const void *data = sqlite3_column_type(s, col) == SQLITE_BLOB ? sqlite3_column_blob(s, col)
                                                                  : (const void *)sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    *bytes = n;
    char *copy = malloc(n + 1);
    if (!copy) return NULL;
    if (n && data) memcpy(copy, data, n);
    copy[n] = '\0';
    return copy;
}

vigil_status outbox_claim_next(outbox *box, int64_t now_ms, int max_priority, edge_event *event, bool *found,
                               int *attempts, vigil_error *err) {
    if (!box || !event || !found) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_claim: no output");
    memset(event, 0, sizeof *event);
    *found = false;
    if (attempts) *attempts = 0;
    if (max_priority < 0) return VIGIL_OK;
    pthread_mutex_lock(&box->lock);
    outbox_delta d = {0};
    vigil_status st = tx_begin(box, false, err);
    if (st != VIGIL_OK) goto out;
    st = expire_rows(box, now_ms, &d, err);
    if (st != VIGIL_OK) goto fail;
    sqlite3_stmt *s = box->st[ST_CLAIM];
    int rc = sqlite3_bind_int64(s, 1, now_ms);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, max_priority);
    st = bind_check(box, s, rc, "claiming a row", err);
    if (st != VIGIL_OK) goto fail;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(s, 0);
        const unsigned char *trace = sqlite3_column_text(s, 3);
        snprintf(event->id, sizeof event->id, "%s", id ? (const char *)id : "");
        event->priority = sqlite3_column_int(s, 1);
        event->created_ms = sqlite3_column_int64(s, 2);
        snprintf(event->traceparent, sizeof event->traceparent, "%s", trace ? (const char *)trace : "");
        event->json = column_copy(s, 4, &event->json_bytes);
        if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
            event->frame = column_copy(s, 5, &event->frame_bytes);
            if (!event->frame) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory for a frame");
        }
        if (!event->json) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory for an event");
        if (attempts) *attempts = sqlite3_column_int(s, 6);
        stmt_release(s);
    } else {
        if (rc != SQLITE_DONE) st = db_error(box->db, rc, "claiming a row", err);
        stmt_release(s);
        if (st != VIGIL_OK) goto fail;
        st = delta_count(box, &d, err);
        if (st != VIGIL_OK) goto fail;
        st = tx_commit(box, err);
        if (st == VIGIL_OK) delta_apply(box, &d);
        goto out;
    }
    if (st != VIGIL_OK) goto fail;
    int c = event->priority;
    if (!priority_valid(c)) {
        st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "outbox: row %s has priority %d", event->id, c);
        goto fail;
    }
    s = box->st[ST_MARK_INFLIGHT];
    st = bind_check(box, s, sqlite3_bind_text(s, 1, event->id, -1, SQLITE_STATIC), "marking a row inflight", err);
    if (st == VIGIL_OK) st = stmt_run(box, s, "marking a row inflight", err);
    if (st == VIGIL_OK) st = delta_count(box, &d, err);
    if (st != VIGIL_OK) goto fail;
    st = tx_commit(box, err);
    if (st == VIGIL_OK) {
        d.inflight_rows[c]++;
        d.inflight_bytes[c] += (int64_t)(event->json_bytes + event->frame_bytes);
        delta_apply(box, &d);
        *found = true;
    }
    goto out;
fail:
    tx_rollback(box);
out:
    pthread_mutex_unlock(&box->lock);
    if (!*found) edge_event_clear(event);
    return st;
}

vigil_status outbox_claim(outbox *box, int64_t now_ms, edge_event *event, bool *found, vigil_error *err) {
    return outbox_claim_next(box, now_ms, EDGE_PRIORITY_CLASSES - 1, event, found, NULL, err);
}

/* A row as row_transition's step sees it (ack, retry, park): row_get fills its class, size and state; the step
 * checks them, writes its own rows and fills delta with the change to the totals, applied once the transaction
 * commits. */
typedef struct row_change {
    const char *id;
    int priority, state;
    int64_t bytes;
    bool exists;
    bool unchanged; /* OUT: nothing to write (park of a parked row): roll back and return OK */
    outbox_delta delta;
} row_change;

/* Reads row->id's class, size and state inside the current transaction. */
static vigil_status row_get(outbox *box, row_change *row, vigil_error *err) {
    sqlite3_stmt *s = box->st[ST_ROW];
    vigil_status st = bind_check(box, s, sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC), "reading a row", err);
    if (st != VIGIL_OK) return st;
    int rc = sqlite3_step(s);
    row->exists = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        row->priority = sqlite3_column_int(s, 0);
        row->bytes = sqlite3_column_int64(s, 1);
        row->state = sqlite3_column_int(s, 2);
        if (!priority_valid(row->priority)) row->priority = EDGE_PRIORITY_CLASSES - 1;
    } else if (rc != SQLITE_DONE) {
        st = db_error(box->db, rc, "reading a row", err);
    }
    stmt_release(s);
    return st;
}

/* The row leaves the pending/inflight totals (ack, park). */
static void delta_leave(outbox_delta *d, int c, int64_t bytes, int state) {
    if (state == ROW_PARKED) {
        d->parked--;
        return;
    }
    d->rows[c]--;
    d->bytes[c] -= bytes;
    if (state == ROW_INFLIGHT) {
        d->inflight_rows[c]--;
        d->inflight_bytes[c] -= bytes;
    }
}

typedef vigil_status (*row_step)(outbox *box, row_change *row, const void *args, vigil_error *err);

/* The frame ack, retry and park share: lock, one transaction around row_get and the step, the totals after commit. */
static vigil_status row_transition(outbox *box, const char *id, row_step step, const void *args, vigil_error *err) {
    row_change row = {.id = id};
    pthread_mutex_lock(&box->lock);
    vigil_status st = tx_begin(box, false, err);
    if (st == VIGIL_OK) {
        st = row_get(box, &row, err);
        if (st == VIGIL_OK) st = step(box, &row, args, err);
        if (st != VIGIL_OK || row.unchanged) {
            tx_rollback(box);
        } else {
            st = tx_commit(box, err);
            if (st == VIGIL_OK) delta_apply(box, &row.delta);
        }
    }
    pthread_mutex_unlock(&box->lock);
    return st;
}

typedef struct ack_args {
    const char *answer_json;
    int64_t now_ms;
} ack_args;

static vigil_status ack_step(outbox *box, row_change *row, const void *args, vigil_error *err) {
    const ack_args *a = args;
    if (!row->exists) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "outbox: no event %s to ack", row->id);
    vigil_status st = delete_row(box, row->id, err);
    if (st != VIGIL_OK) return st;
    sqlite3_stmt *s = box->st[ST_EVENT_ACK];
    int rc = sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 2, a->answer_json);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, a->now_ms);
    st = bind_check(box, s, rc, "recording the verdict", err);
    if (st == VIGIL_OK) st = stmt_run(box, s, "recording the verdict", err);
    if (st != VIGIL_OK) return st;
    delta_leave(&row->delta, row->priority, row->bytes, row->state);
    row->delta.acked++;
    return delta_count(box, &row->delta, err);
}

vigil_status outbox_ack(outbox *box, const char *id, const char *answer_json, int64_t now_ms, vigil_error *err) {
    if (!box || !id) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_ack: no id");
    return row_transition(box, id, ack_step, &(ack_args){answer_json, now_ms}, err);
}

typedef struct retry_args {
    int64_t next_ms;
    const char *reason;
} retry_args;

static vigil_status retry_step(outbox *box, row_change *row, const void *args, vigil_error *err) {
    const retry_args *a = args;
    if (!row->exists || row->state != ROW_INFLIGHT)
        return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "outbox: event %s is not inflight", row->id);
    sqlite3_stmt *s = box->st[ST_RETRY];
    int rc = sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, a->next_ms);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 3, a->reason);
    vigil_status st = bind_check(box, s, rc, "scheduling a retry", err);
    if (st == VIGIL_OK) st = stmt_run(box, s, "scheduling a retry", err);
    if (st == VIGIL_OK) st = event_state(box, row->id, "pending", -1, 0, a->reason, err);
    row->delta.inflight_rows[row->priority]--;
    row->delta.inflight_bytes[row->priority] -= row->bytes;
    return st;
}

vigil_status outbox_retry(outbox *box, const char *id, int64_t next_ms, const char *reason, vigil_error *err) {
    if (!box || !id) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_retry: no id");
    return row_transition(box, id, retry_step, &(retry_args){next_ms, reason}, err);
}

typedef struct park_args {
    int http_status;
    const char *reason;
} park_args;

static vigil_status park_step(outbox *box, row_change *row, const void *args, vigil_error *err) {
    const park_args *a = args;
    if (!row->exists) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "outbox: no event %s to park", row->id);
    row->unchanged = row->state == ROW_PARKED;
    if (row->unchanged) return VIGIL_OK;
    sqlite3_stmt *s = box->st[ST_PARK];
    int rc = sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, a->http_status);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 3, a->reason);
    vigil_status st = bind_check(box, s, rc, "parking a row", err);
    if (st == VIGIL_OK) st = stmt_run(box, s, "parking a row", err);
    if (st == VIGIL_OK) st = event_state(box, row->id, "parked", -1, a->http_status, a->reason, err);
    delta_leave(&row->delta, row->priority, row->bytes, row->state);
    row->delta.parked++;
    return st;
}

vigil_status outbox_park(outbox *box, const char *id, int http_status, const char *reason, vigil_error *err) {
    if (!box || !id) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_park: no id");
    return row_transition(box, id, park_step, &(park_args){http_status, reason}, err);
}

/* ---- reading -------------------------------------------------------------------- */

/* Runs a one-value query (min(...)); *value stays as given when it is NULL. */
static vigil_status query_int64(outbox *box, sqlite3_stmt *s, int64_t *value, const char *what, vigil_error *err) {
    int rc = sqlite3_step(s);
    vigil_status st = VIGIL_OK;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(s, 0) != SQLITE_NULL) *value = sqlite3_column_int64(s, 0);
    } else if (rc != SQLITE_DONE) {
        st = db_error(box->db, rc, what, err);
    }
    stmt_release(s);
    return st;
}

int64_t outbox_next_due_ms(outbox *box) {
    if (!box) return INT64_MAX;
    int64_t due = INT64_MAX;
    vigil_error err;
    pthread_mutex_lock(&box->lock);
    vigil_status st = query_int64(box, box->st[ST_MIN_DUE], &due, "finding the next due row", &err);
    pthread_mutex_unlock(&box->lock);
    if (st != VIGIL_OK) LOG_E("%s", err.message);
    return st == VIGIL_OK ? due : INT64_MAX;
}

vigil_status outbox_stats_get(outbox *box, int64_t now_ms, outbox_stats *out, vigil_error *err) {
    if (!box || !out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_stats_get: no output");
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&box->lock);
    /* expired rows must not show as depth in the metrics while no put or
     * claim runs (an outage); an expiry that fails (a full disk) leaves them
     * counted a little longer and is no reason to lose the metrics */
    vigil_error expire_err = {0};
    if (expire_now(box, now_ms, &expire_err) != VIGIL_OK) LOG_W("outbox: expiry: %s", expire_err.message);
    int64_t oldest = 0;
    vigil_status st = query_int64(box, box->st[ST_OLDEST], &oldest, "finding the oldest row", err);
    if (st == VIGIL_OK) {
        for (int c = 0; c < EDGE_PRIORITY_CLASSES; c++) {
            out->rows[c] = box->rows[c];
            out->bytes[c] = box->bytes[c];
        }
        out->parked = box->parked;
        out->oldest_pending_ms = oldest;
        out->evicted_full = box->evicted;
        out->expired_ttl = box->expired;
        out->refused_full = box->refused;
        out->acked = box->acked;
    }
    out->quarantined = box->quarantined;
    snprintf(out->quarantine_path, sizeof out->quarantine_path, "%s", box->quarantine_path);
    pthread_mutex_unlock(&box->lock);
    return st;
}

/* Builds the API's view of one `events` row (ST_EVENT_GET / ST_EVENT_SINCE
 * columns): the event document with "state", "verdict" (the answer's
 * "verdict" member, or the whole answer when it has none; null until
 * answered), "state_ms", and "last_status"/"last_error" when a send failed. */
static json_t *event_row_json(sqlite3_stmt *s) {
    const char *id = (const char *)sqlite3_column_text(s, 0);
    const char *doc = (const char *)sqlite3_column_text(s, 3);
    const char *state = (const char *)sqlite3_column_text(s, 4);
    const char *answer = (const char *)sqlite3_column_text(s, 5);
    json_t *obj = doc ? json_loads(doc, 0, NULL) : NULL;
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    if (!obj) { /* a document the runtime wrote badly still shows its identity */
        obj = json_object();
        if (!obj) return NULL;
        json_object_set_new(obj, "id", json_string(id ? id : ""));
        json_object_set_new(obj, "priority", json_integer(sqlite3_column_int(s, 1)));
        json_object_set_new(obj, "created_ms", json_integer(sqlite3_column_int64(s, 2)));
    }
    json_t *verdict = json_null();
    if (answer) {
        json_t *parsed = json_loads(answer, 0, NULL);
        json_t *member = json_is_object(parsed) ? json_object_get(parsed, "verdict") : NULL;
        if (member)
            verdict = json_incref(member);
        else if (parsed)
            verdict = json_incref(parsed);
        else
            verdict = json_string(answer);
        json_decref(parsed);
    }
    int failed = json_object_set_new(obj, "state", json_string(state ? state : "unknown"));
    failed |= json_object_set_new(obj, "verdict", verdict);
    failed |= json_object_set_new(obj, "state_ms", json_integer(sqlite3_column_int64(s, 6)));
    if (sqlite3_column_type(s, 7) != SQLITE_NULL)
        failed |= json_object_set_new(obj, "last_status", json_integer(sqlite3_column_int(s, 7)));
    if (sqlite3_column_type(s, 8) != SQLITE_NULL)
        failed |= json_object_set_new(obj, "last_error", json_string((const char *)sqlite3_column_text(s, 8)));
    if (failed) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The flags /api/v1/detect answers with (job_detect.c): a score read back
 * from the stored document prints as the client saw it (0.91386, not
 * 0.91386000000000001), in the document's own key order. */
static vigil_status dump_json(json_t *value, char **json, vigil_error *err) {
    *json = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(value);
    return *json ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory for JSON");
}

vigil_status outbox_event_json(outbox *box, const char *id, char **json, vigil_error *err) {
    if (!box || !id || !json) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_event_json: no id");
    *json = NULL;
    json_t *obj = NULL;
    pthread_mutex_lock(&box->lock);
    sqlite3_stmt *s = box->st[ST_EVENT_GET];
    vigil_status st = bind_check(box, s, sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC), "reading an event", err);
    if (st == VIGIL_OK) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            obj = event_row_json(s);
            if (!obj) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory for JSON");
        } else if (rc == SQLITE_DONE) {
            st = vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "outbox: no event %s", id);
        } else {
            st = db_error(box->db, rc, "reading an event", err);
        }
        stmt_release(s);
    }
    pthread_mutex_unlock(&box->lock);
    return st == VIGIL_OK ? dump_json(obj, json, err) : st;
}

vigil_status outbox_events_since_json(outbox *box, int64_t since_ms, int limit, char **json, vigil_error *err) {
    if (!box || !json) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "outbox_events_since_json: no output");
    *json = NULL;
    if (limit <= 0) limit = OUTBOX_SINCE_DEFAULT;
    if (limit > OUTBOX_SINCE_MAX) limit = OUTBOX_SINCE_MAX;
    json_t *list = json_array();
    json_t *root = json_object();
    if (!list || !root || json_object_set(root, "events", list) != 0) {
        json_decref(list);
        json_decref(root);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory for JSON");
    }
    json_decref(list); /* root holds it */
    pthread_mutex_lock(&box->lock);
    sqlite3_stmt *s = box->st[ST_EVENT_SINCE];
    int rc = sqlite3_bind_int64(s, 1, since_ms);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, limit);
    vigil_status st = bind_check(box, s, rc, "listing events", err);
    if (st == VIGIL_OK) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            json_t *item = event_row_json(s);
            if (!item || json_array_append_new(list, item) != 0) {
                st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "outbox: out of memory for JSON");
                break;
            }
        }
        if (st == VIGIL_OK && rc != SQLITE_DONE) st = db_error(box->db, rc, "listing events", err);
        stmt_release(s);
    }
    pthread_mutex_unlock(&box->lock);
    if (st != VIGIL_OK) {
        json_decref(root);
        return st;
    }
    return dump_json(root, json, err);
}
