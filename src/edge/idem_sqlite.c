/*
 * idem_sqlite.c - the idempotency store on SQLite (idem_store.h), the
 * single-node default: "sqlite:/var/lib/vigil/receiver.db".
 *
 * One connection behind one mutex: the receiver's workers take turns, and
 * each begin is one IMMEDIATE transaction (the write lock taken at BEGIN),
 * so the insert-or-read-or-take-over decision cannot interleave with
 * another's, even from a second process on the same file (busy_timeout
 * waits for it).  WAL with synchronous=FULL: an answer, once returned to a
 * client, survives a power cut, since a replay must find it.  Every SQLite
 * result is checked; a busy or locked database is VIGIL_ERR_UNAVAILABLE
 * (the client retries), anything else VIGIL_ERR_IO.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "edge/edge_fs.h"
#include "edge/idem_store.h"

struct idem_backend {
    sqlite3 *db;
    pthread_mutex_t lock;
};

static vigil_status sqlite_fail(idem_backend *b, int rc, const char *what, vigil_error *err) {
    vigil_status st = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? VIGIL_ERR_UNAVAILABLE : VIGIL_ERR_IO;
    return vigil_error_set(err, st, "idempotency store (sqlite): %s: %s", what,
                           b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
}

static vigil_status sqlite_exec(idem_backend *b, const char *sql, vigil_error *err) {
    int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? VIGIL_OK : sqlite_fail(b, rc, sql, err);
}

static vigil_status sqlite_prepare(idem_backend *b, const char *sql, sqlite3_stmt **stmt, vigil_error *err) {
    int rc = sqlite3_prepare_v2(b->db, sql, -1, stmt, NULL);
    return rc == SQLITE_OK ? VIGIL_OK : sqlite_fail(b, rc, "prepare", err);
}

/* Creates the directory that holds path (and its parents) when absent. */
static vigil_status make_parent_dirs(const char *path, vigil_error *err) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return VIGIL_OK;
    *slash = '\0';
    return edge_mkdirs(dir, err);
}

static void sqlite_close(idem_backend *b) {
    if (!b) return;
    sqlite3_close(b->db); /* every statement is finalized where it was made */
    pthread_mutex_destroy(&b->lock);
    vigil_free(b);
}

static vigil_status sqlite_check(idem_backend *b, vigil_error *err) {
    sqlite3_stmt *stmt;
    vigil_status st = sqlite_prepare(b, "PRAGMA quick_check", &stmt, err);
    if (st) return st;
    int rc = sqlite3_step(stmt);
    const char *text = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(stmt, 0) : NULL;
    if (rc != SQLITE_ROW)
        st = sqlite_fail(b, rc, "quick_check", err);
    else if (!text || strcmp(text, "ok") != 0)
        st = vigil_error_set(err, VIGIL_ERR_IO,
                             "idempotency store (sqlite): the database fails its integrity check (%.200s); move it "
                             "aside and restart (keys in it will be processed again)",
                             text ? text : "?");
    sqlite3_finalize(stmt);
    return st;
}

static const idem_backend_ops sqlite_ops;

vigil_status idem_sqlite_open(const char *path, idem_backend **out, const idem_backend_ops **ops, vigil_error *err) {
    *out = NULL;
    if (!*path) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "idempotency store: sqlite: needs a path");
    vigil_status st = make_parent_dirs(path, err);
    if (st) return st;
    idem_backend *b = vigil_calloc(1, sizeof *b);
    if (!b) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: out of memory");
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        vigil_free(b);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: cannot create a mutex");
    }
    int rc = sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = vigil_error_set(err, VIGIL_ERR_IO, "idempotency store: cannot open %s: %s", path,
                             b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
        sqlite_close(b);
        return st;
    }
    rc = sqlite3_busy_timeout(b->db, 5000);
    if (rc != SQLITE_OK) st = sqlite_fail(b, rc, "busy_timeout", err);
    if (!st) st = sqlite_check(b, err);
    if (!st) st = sqlite_exec(b, "PRAGMA journal_mode=WAL", err);
    if (!st) st = sqlite_exec(b, "PRAGMA synchronous=FULL", err);
    if (!st)
        st = sqlite_exec(b,
                         "CREATE TABLE IF NOT EXISTS vigil_idem ("
                         " key TEXT PRIMARY KEY,"
                         " body_sha256 TEXT NOT NULL,"
                         " state INTEGER NOT NULL,"
                         " claimed_ms INTEGER NOT NULL,"
                         " finished_ms INTEGER,"
                         " status INTEGER,"
                         " body TEXT);"
                         "CREATE INDEX IF NOT EXISTS vigil_idem_age ON vigil_idem(state, finished_ms, claimed_ms);",
                         err);
    if (st) {
        sqlite_close(b);
        return st;
    }
    *out = b;
    *ops = &sqlite_ops;
    return VIGIL_OK;
}

/* Binds text params 1..n, then int64 params after them. */
static int bind_all(sqlite3_stmt *stmt, const char *const *texts, int n_texts, const int64_t *ints, int n_ints) {
    int rc = SQLITE_OK;
    for (int i = 0; i < n_texts && rc == SQLITE_OK; i++)
        rc = sqlite3_bind_text(stmt, i + 1, texts[i], -1, SQLITE_STATIC);
    for (int i = 0; i < n_ints && rc == SQLITE_OK; i++)
        rc = sqlite3_bind_int64(stmt, n_texts + i + 1, ints[i]);
    return rc;
}

/* Runs a statement that returns no rows; *changes gets sqlite3_changes. */
static vigil_status sqlite_run(idem_backend *b, const char *sql, const char *const *texts, int n_texts,
                               const int64_t *ints, int n_ints, int *changes, vigil_error *err) {
    sqlite3_stmt *stmt;
    vigil_status st = sqlite_prepare(b, sql, &stmt, err);
    if (st) return st;
    int rc = bind_all(stmt, texts, n_texts, ints, n_ints);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE)
        st = sqlite_fail(b, rc, "write", err);
    else if (changes)
        *changes = sqlite3_changes(b->db);
    sqlite3_finalize(stmt);
    return st;
}

typedef struct idem_row {
    int found;
    char hash[65];
    int state;
    int64_t claimed_ms;
    int status;
    char *body; /* vigil_malloc'd, NULL when none */
} idem_row;

static vigil_status sqlite_read(idem_backend *b, const char *key, idem_row *row, vigil_error *err) {
    memset(row, 0, sizeof *row);
    sqlite3_stmt *stmt;
    vigil_status st = sqlite_prepare(
        b, "SELECT body_sha256, state, claimed_ms, status, body FROM vigil_idem WHERE key = ?1", &stmt, err);
    if (st) return st;
    int rc = sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        row->found = 1;
        const char *hash = (const char *)sqlite3_column_text(stmt, 0);
        snprintf(row->hash, sizeof row->hash, "%s", hash ? hash : "");
        row->state = sqlite3_column_int(stmt, 1);
        row->claimed_ms = sqlite3_column_int64(stmt, 2);
        row->status = sqlite3_column_int(stmt, 3);
        const char *body = (const char *)sqlite3_column_text(stmt, 4);
        if (body && !(row->body = vigil_strdup(body)))
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: out of memory");
    } else if (rc != SQLITE_DONE) {
        st = sqlite_fail(b, rc, "read", err);
    }
    sqlite3_finalize(stmt);
    return st;
}

static vigil_status sqlite_begin_locked(idem_backend *b, const char *key, const char *hash, int64_t now_ms,
                                        int64_t claim_before_ms, idem_outcome *outcome, int *status, char **body,
                                        vigil_error *err) {
    const char *texts[2] = {key, hash};
    int changes = 0;
    vigil_status st = sqlite_run(b,
                                 "INSERT INTO vigil_idem (key, body_sha256, state, claimed_ms) VALUES (?1, ?2, 0, ?3) "
                                 "ON CONFLICT (key) DO NOTHING",
                                 texts, 2, &now_ms, 1, &changes, err);
    if (st) return st;
    if (changes == 1) {
        *outcome = IDEM_NEW;
        return VIGIL_OK;
    }
    idem_row row;
    st = sqlite_read(b, key, &row, err);
    if (st) return st;
    if (!row.found) /* cannot happen inside the transaction that saw the conflict */
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "idempotency store (sqlite): key vanished");
    if (strcmp(row.hash, hash) != 0) {
        *outcome = IDEM_MISMATCH;
    } else if (row.state == 1) {
        *outcome = IDEM_REPLAY;
        *status = row.status;
        *body = row.body;
        row.body = NULL;
        if (!*body && !(*body = vigil_strdup("")))
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: out of memory");
    } else if (row.claimed_ms < claim_before_ms) {
        /* the worker that claimed it died (or is hopelessly late): take over */
        const int64_t ints[2] = {now_ms, row.claimed_ms};
        st = sqlite_run(b, "UPDATE vigil_idem SET claimed_ms = ?2 WHERE key = ?1 AND state = 0 AND claimed_ms = ?3",
                        texts, 1, ints, 2, &changes, err);
        if (!st) *outcome = changes == 1 ? IDEM_NEW : IDEM_BUSY;
    } else {
        *outcome = IDEM_BUSY;
    }
    vigil_free(row.body);
    return st;
}

static vigil_status sqlite_begin(idem_backend *b, const char *key, const char *hash, int64_t now_ms,
                                 int64_t claim_before_ms, idem_outcome *outcome, int *status, char **body,
                                 vigil_error *err) {
    pthread_mutex_lock(&b->lock);
    vigil_status st = sqlite_exec(b, "BEGIN IMMEDIATE", err);
    if (!st) {
        st = sqlite_begin_locked(b, key, hash, now_ms, claim_before_ms, outcome, status, body, err);
        if (!st) st = sqlite_exec(b, "COMMIT", err);
        if (st) {
            sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL); /* fails harmlessly when nothing is open */
            vigil_free(*body);
            *body = NULL;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}

static vigil_status sqlite_finish(idem_backend *b, const char *key, int status, const char *body, int64_t now_ms,
                                  vigil_error *err) {
    pthread_mutex_lock(&b->lock);
    const char *texts[2] = {key, body};
    const int64_t ints[2] = {status, now_ms};
    int changes = 0;
    vigil_status st = sqlite_run(b,
                                 "UPDATE vigil_idem SET state = 1, body = ?2, status = ?3, finished_ms = ?4 "
                                 "WHERE key = ?1 AND state = 0",
                                 texts, 2, ints, 2, &changes, err);
    if (!st && changes != 1) {
        idem_row row;
        st = sqlite_read(b, key, &row, err);
        if (!st)
            st = row.found ? vigil_error_set(err, VIGIL_ERR_EXISTS,
                                             "idempotency store: %s was answered by another worker", key)
                           : vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "idempotency store: %s is not claimed", key);
        vigil_free(row.body);
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}

static vigil_status sqlite_abandon(idem_backend *b, const char *key, vigil_error *err) {
    pthread_mutex_lock(&b->lock);
    vigil_status st = sqlite_run(b, "DELETE FROM vigil_idem WHERE key = ?1 AND state = 0", &key, 1, NULL, 0, NULL, err);
    pthread_mutex_unlock(&b->lock);
    return st;
}

static int64_t sqlite_expire(idem_backend *b, int64_t before_ms, vigil_error *err) {
    pthread_mutex_lock(&b->lock);
    int changes = 0;
    vigil_status st = sqlite_run(b,
                                 "DELETE FROM vigil_idem WHERE (state = 1 AND finished_ms < ?1) OR "
                                 "(state = 0 AND claimed_ms < ?1)",
                                 NULL, 0, &before_ms, 1, &changes, err);
    pthread_mutex_unlock(&b->lock);
    return st ? -1 : changes;
}

static const idem_backend_ops sqlite_ops = {
    .name = "sqlite",
    .begin = sqlite_begin,
    .finish = sqlite_finish,
    .abandon = sqlite_abandon,
    .expire = sqlite_expire,
    .close = sqlite_close,
};
