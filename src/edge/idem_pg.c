/*
 * idem_pg.c - the idempotency store on PostgreSQL through libpq
 * (idem_store.h), for a cloud of several receiver replicas sharing one
 * table: "postgresql://user@db.internal/vigil" or "host=... dbname=...".
 *
 * Atomicity lives in the statements, not in this process: a claim is
 * `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so of two replicas racing
 * on a key exactly one gets a row back; a take-over of a stale claim is an
 * UPDATE conditioned on the claim time it read, so of two replicas taking
 * over exactly one matches.  Each statement is its own transaction
 * (autocommit): when it returns, the claim or the answer is durable.
 *
 * One connection behind one mutex (statements are sub-millisecond on a
 * nearby server; the detection dominates).  Connecting waits at most 5 s and
 * a statement 10 s unless the connection string sets connect_timeout or
 * options itself.  A lost connection is reset once
 * and the statement run again; if that fails too, VIGIL_ERR_UNAVAILABLE, which
 * the receiver answers 503 so that the edge retries later.  Every result is
 * checked.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "edge/idem_store.h"

struct idem_backend {
    PGconn *conn;
    pthread_mutex_t lock;
};

static void pg_close(idem_backend *b) {
    if (!b) return;
    if (b->conn) PQfinish(b->conn);
    pthread_mutex_destroy(&b->lock);
    vigil_free(b);
}

/* The first line of libpq's message (they end with a newline). */
static const char *pg_message(const PGconn *conn, char *buf, size_t size) {
    snprintf(buf, size, "%s", conn ? PQerrorMessage(conn) : "no connection");
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* Runs sql with text params; *res is the result when its status is
 * expected.  A statement that failed because the connection broke is run
 * once more after PQreset. */
static vigil_status pg_exec(idem_backend *b, const char *sql, int n, const char *const *params, ExecStatusType expected,
                            PGresult **res, vigil_error *err) {
    char buf[256];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (PQstatus(b->conn) != CONNECTION_OK) {
            PQreset(b->conn);
            if (PQstatus(b->conn) != CONNECTION_OK) break;
            LOG_W("idempotency store (postgresql): reconnected");
        }
        PGresult *r = PQexecParams(b->conn, sql, n, NULL, params, NULL, NULL, 0);
        if (r && PQresultStatus(r) == expected) {
            *res = r;
            return VIGIL_OK;
        }
        if (PQstatus(b->conn) == CONNECTION_OK) { /* the server refused the statement itself */
            vigil_status st = vigil_error_set(err, VIGIL_ERR_IO, "idempotency store (postgresql): %s",
                                              r ? PQresultErrorMessage(r) : pg_message(b->conn, buf, sizeof buf));
            err->message[strcspn(err->message, "\n")] = '\0';
            PQclear(r);
            return st;
        }
        PQclear(r); /* the connection broke: reset and try once more */
    }
    return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "idempotency store (postgresql) unreachable: %s",
                           pg_message(b->conn, buf, sizeof buf));
}

static const idem_backend_ops pg_ops;

/* The server's notices ("relation already exists, skipping") are not
 * errors: debug lines, not stderr. */
static void pg_notice(void *arg, const char *message) {
    (void)arg;
    LOG_D("postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

vigil_status idem_pg_open(const char *conninfo, idem_backend **out, const idem_backend_ops **ops, vigil_error *err) {
    *out = NULL;
    idem_backend *b = vigil_calloc(1, sizeof *b);
    if (!b) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: out of memory");
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        vigil_free(b);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: cannot create a mutex");
    }
    /* Bounded waits unless the connection string says otherwise (its
     * values come after these and win): a dead server must not hold a
     * receiver worker, and with it a client and a clean shutdown, for
     * minutes.  The options survive PQreset. */
    const char *const keys[] = {"connect_timeout", "options", "dbname", NULL};
    const char *const values[] = {"5", "-c statement_timeout=10000", conninfo, NULL};
    b->conn = PQconnectdbParams(keys, values, 1);
    char buf[256];
    if (!b->conn || PQstatus(b->conn) != CONNECTION_OK) {
        vigil_status st =
            vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "idempotency store: cannot connect to PostgreSQL: %s",
                            pg_message(b->conn, buf, sizeof buf));
        pg_close(b);
        return st;
    }
    PQsetNoticeProcessor(b->conn, pg_notice, NULL);
    /* Two replicas starting together may race on CREATE TABLE IF NOT
     * EXISTS (a unique violation in the catalog): the loser tries again. */
    static const char *const ddl = "CREATE TABLE IF NOT EXISTS vigil_idem ("
                                   " key TEXT PRIMARY KEY,"
                                   " body_sha256 TEXT NOT NULL,"
                                   " state SMALLINT NOT NULL,"
                                   " claimed_ms BIGINT NOT NULL,"
                                   " finished_ms BIGINT,"
                                   " status INTEGER,"
                                   " body TEXT)";
    static const char *const index =
        "CREATE INDEX IF NOT EXISTS vigil_idem_age ON vigil_idem (state, finished_ms, claimed_ms)";
    vigil_status st = VIGIL_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        PGresult *res = NULL;
        st = pg_exec(b, ddl, 0, NULL, PGRES_COMMAND_OK, &res, err);
        PQclear(res);
        res = NULL;
        if (!st) st = pg_exec(b, index, 0, NULL, PGRES_COMMAND_OK, &res, err);
        PQclear(res);
        if (st != VIGIL_ERR_IO) break;
    }
    if (st) {
        pg_close(b);
        return st;
    }
    *out = b;
    *ops = &pg_ops;
    return VIGIL_OK;
}

static vigil_status pg_begin_locked(idem_backend *b, const char *key, const char *hash, int64_t now_ms,
                                    int64_t claim_before_ms, idem_outcome *outcome, int *status, char **body,
                                    vigil_error *err) {
    char now_text[24], old_text[24];
    snprintf(now_text, sizeof now_text, "%" PRId64, now_ms);
    /* A key abandoned between our insert and our read is claimed again:
     * a few rounds at most, each of which another worker made progress in. */
    for (int round = 0; round < 4; round++) {
        const char *insert_params[3] = {key, hash, now_text};
        PGresult *res = NULL;
        vigil_status st = pg_exec(b,
                                  "INSERT INTO vigil_idem (key, body_sha256, state, claimed_ms) VALUES ($1, $2, 0, $3) "
                                  "ON CONFLICT (key) DO NOTHING RETURNING 1",
                                  3, insert_params, PGRES_TUPLES_OK, &res, err);
        if (st) return st;
        int claimed = PQntuples(res) == 1;
        PQclear(res);
        if (claimed) {
            *outcome = IDEM_NEW;
            return VIGIL_OK;
        }
        st = pg_exec(b, "SELECT body_sha256, state, claimed_ms, status, body FROM vigil_idem WHERE key = $1", 1, &key,
                     PGRES_TUPLES_OK, &res, err);
        if (st) return st;
        if (PQntuples(res) != 1) { /* abandoned since: claim again */
            PQclear(res);
            continue;
        }
        const char *stored_hash = PQgetvalue(res, 0, 0);
        int state = atoi(PQgetvalue(res, 0, 1));
        int64_t claimed_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        snprintf(old_text, sizeof old_text, "%s", PQgetvalue(res, 0, 2));
        if (strcmp(stored_hash, hash) != 0) {
            *outcome = IDEM_MISMATCH;
        } else if (state == 1) {
            *outcome = IDEM_REPLAY;
            *status = atoi(PQgetvalue(res, 0, 3));
            *body = vigil_strdup(PQgetisnull(res, 0, 4) ? "" : PQgetvalue(res, 0, 4));
            if (!*body) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: out of memory");
        } else if (claimed_ms < claim_before_ms) {
            PQclear(res);
            res = NULL;
            const char *takeover_params[3] = {key, now_text, old_text};
            st = pg_exec(b,
                         "UPDATE vigil_idem SET claimed_ms = $2 WHERE key = $1 AND state = 0 AND claimed_ms = $3 "
                         "RETURNING 1",
                         3, takeover_params, PGRES_TUPLES_OK, &res, err);
            if (!st) *outcome = PQntuples(res) == 1 ? IDEM_NEW : IDEM_BUSY;
        } else {
            *outcome = IDEM_BUSY;
        }
        PQclear(res);
        return st;
    }
    *outcome = IDEM_BUSY; /* claimed and abandoned over and over: let the client come back */
    return VIGIL_OK;
}

static vigil_status pg_begin(idem_backend *b, const char *key, const char *hash, int64_t now_ms,
                             int64_t claim_before_ms, idem_outcome *outcome, int *status, char **body,
                             vigil_error *err) {
    pthread_mutex_lock(&b->lock);
    vigil_status st = pg_begin_locked(b, key, hash, now_ms, claim_before_ms, outcome, status, body, err);
    pthread_mutex_unlock(&b->lock);
    return st;
}

static vigil_status pg_finish(idem_backend *b, const char *key, int status, const char *body, int64_t now_ms,
                              vigil_error *err) {
    char status_text[16], now_text[24];
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(now_text, sizeof now_text, "%" PRId64, now_ms);
    const char *params[4] = {key, body, status_text, now_text};
    pthread_mutex_lock(&b->lock);
    PGresult *res = NULL;
    vigil_status st = pg_exec(b,
                              "UPDATE vigil_idem SET state = 1, body = $2, status = $3, finished_ms = $4 "
                              "WHERE key = $1 AND state = 0 RETURNING 1",
                              4, params, PGRES_TUPLES_OK, &res, err);
    int done = !st && PQntuples(res) == 1;
    PQclear(res);
    res = NULL;
    if (!st && !done) {
        st = pg_exec(b, "SELECT 1 FROM vigil_idem WHERE key = $1", 1, &key, PGRES_TUPLES_OK, &res, err);
        if (!st)
            st = PQntuples(res) == 1
                     ? vigil_error_set(err, VIGIL_ERR_EXISTS, "idempotency store: %s was answered by another worker",
                                       key)
                     : vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "idempotency store: %s is not claimed", key);
        PQclear(res);
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}

static vigil_status pg_abandon(idem_backend *b, const char *key, vigil_error *err) {
    pthread_mutex_lock(&b->lock);
    PGresult *res = NULL;
    vigil_status st =
        pg_exec(b, "DELETE FROM vigil_idem WHERE key = $1 AND state = 0", 1, &key, PGRES_COMMAND_OK, &res, err);
    PQclear(res);
    pthread_mutex_unlock(&b->lock);
    return st;
}

static int64_t pg_expire(idem_backend *b, int64_t before_ms, vigil_error *err) {
    char before_text[24];
    snprintf(before_text, sizeof before_text, "%" PRId64, before_ms);
    const char *params[1] = {before_text};
    pthread_mutex_lock(&b->lock);
    PGresult *res = NULL;
    vigil_status st = pg_exec(b,
                              "DELETE FROM vigil_idem WHERE (state = 1 AND finished_ms < $1) OR "
                              "(state = 0 AND claimed_ms < $1)",
                              1, params, PGRES_COMMAND_OK, &res, err);
    int64_t n = st ? -1 : strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    pthread_mutex_unlock(&b->lock);
    return n;
}

static const idem_backend_ops pg_ops = {
    .name = "postgresql",
    .begin = pg_begin,
    .finish = pg_finish,
    .abandon = pg_abandon,
    .expire = pg_expire,
    .close = pg_close,
};
