/*
 * idem_store.h - what idem.c shares with the idempotency store's two
 * backends (idem_sqlite.c, idem_pg.c): one small vtable, so that the
 * receiver's logic is written once and each backend only says how its
 * database claims, finishes, abandons and expires a key.
 *
 * Each backend keeps one table of the same shape:
 *   key          the Idempotency-Key (an event id), primary key
 *   body_sha256  hex SHA-256 of what the first request carried
 *   state        0 claimed (work under way), 1 finished
 *   claimed_ms   when the current claim was made (unix ms)
 *   finished_ms  when the answer was stored
 *   status, body the first answer (HTTP status and JSON)
 * and decides begin's outcome inside one atomic step of its database
 * (SQLite: an IMMEDIATE transaction; PostgreSQL: INSERT ... ON CONFLICT DO
 * NOTHING RETURNING, then a conditional UPDATE for a take-over), so that
 * two receivers, threads or replicas, never both get IDEM_NEW for a key
 * whose claim is live.
 */
#ifndef VIGIL_EDGE_IDEM_STORE_H
#define VIGIL_EDGE_IDEM_STORE_H

#include <stdint.h>

#include "edge/receiver.h"

typedef struct idem_backend idem_backend;

typedef struct idem_backend_ops {
    const char *name; /* "sqlite", "postgresql" */
    /* claim_before_ms: a claim made before it is stale and taken over. */
    vigil_status (*begin)(idem_backend *b, const char *key, const char *hash, int64_t now_ms, int64_t claim_before_ms,
                          idem_outcome *outcome, int *status, char **body, vigil_error *err);
    vigil_status (*finish)(idem_backend *b, const char *key, int status, const char *body, int64_t now_ms,
                           vigil_error *err);
    vigil_status (*abandon)(idem_backend *b, const char *key, vigil_error *err);
    /* Deletes finished keys answered before before_ms and claims made before it. */
    int64_t (*expire)(idem_backend *b, int64_t before_ms, vigil_error *err);
    void (*close)(idem_backend *b);
} idem_backend_ops;

/* Each backend's open: OUT *out and *ops. */
vigil_status idem_sqlite_open(const char *path, idem_backend **out, const idem_backend_ops **ops, vigil_error *err);
vigil_status idem_pg_open(const char *conninfo, idem_backend **out, const idem_backend_ops **ops, vigil_error *err);

#endif
