/*
 * receiver.h - the cloud's idempotent event receiver (docs/EDGE.md,
 * "Receiver"): POST /api/v1/events as event.h describes.
 *
 * Keys and first answers live in an idempotency store: SQLite for one node
 * (the default), PostgreSQL through libpq for several replicas.  A key is
 * claimed atomically before the work; the work is the cloud model's
 * detection on the frame (through the request layer, like any REST detect)
 * and writing the frame under frames_dir/<id>.jpg; the answer is stored with
 * the key and replayed for every later request with that key.  Keys are
 * kept at least retention_s (default 24 h).  A claim whose worker died
 * (receiver restart) is taken over after claim_timeout_s.
 */
#ifndef VIGIL_EDGE_RECEIVER_H
#define VIGIL_EDGE_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

typedef struct idem_store idem_store;

typedef enum idem_outcome {
    IDEM_NEW = 0,       /* claimed: do the work, then idem_finish or idem_abandon */
    IDEM_REPLAY = 1,    /* finished before: *status and *body hold the first answer */
    IDEM_BUSY = 2,      /* claimed by another worker now: 409 */
    IDEM_MISMATCH = 3,  /* same key, different body hash: 422 */
} idem_outcome;

/* url: "sqlite:/path/to/file.db" or a libpq connection string
 * ("postgresql://..." or "host=... dbname=..."). */
vigil_status idem_open(const char *url, double retention_s, double claim_timeout_s, idem_store **out,
                       vigil_error *err);
void idem_close(idem_store *store);

/* OUT: *outcome; for IDEM_REPLAY *status and *body (malloc'd, caller frees). */
vigil_status idem_begin(idem_store *store, const char *key, const char body_sha256_hex[65], idem_outcome *outcome,
                        int *status, char **body, vigil_error *err);
vigil_status idem_finish(idem_store *store, const char *key, int status, const char *body, vigil_error *err);
/* The work failed in a way worth retrying: the claim is removed. */
vigil_status idem_abandon(idem_store *store, const char *key, vigil_error *err);
/* Deletes keys older than the retention; returns how many. */
int64_t idem_expire(idem_store *store, vigil_error *err);

#endif
