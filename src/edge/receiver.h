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

/* Claims key for a request whose body hashes to body_sha256_hex, or says
 * why not.  OUT: *outcome; for IDEM_REPLAY *status and *body (vigil_malloc'd,
 * the caller vigil_frees it).  An unfinished claim older than claim_timeout_s
 * is taken over (IDEM_NEW): its worker is presumed dead.
 * VIGIL_ERR_UNAVAILABLE when the store cannot be reached (PostgreSQL after
 * one reconnection), VIGIL_ERR_IO for other store failures. */
vigil_status idem_begin(idem_store *store, const char *key, const char body_sha256_hex[65], idem_outcome *outcome,
                        int *status, char **body, vigil_error *err);
/* Stores the first answer with the claim.  VIGIL_ERR_EXISTS when another
 * worker finished the key first (it took the claim over, or this worker's
 * claim was taken over): that answer stands, read it with idem_begin. */
vigil_status idem_finish(idem_store *store, const char *key, int status, const char *body, vigil_error *err);
/* The work failed in a way worth retrying: the claim is removed. */
vigil_status idem_abandon(idem_store *store, const char *key, vigil_error *err);
/* Deletes keys older than the retention; returns how many, or -1 (err set). */
int64_t idem_expire(idem_store *store, vigil_error *err);

/* ---------------------------------------------------------------- the receiver */

typedef struct vigil_server vigil_server;
typedef struct receiver receiver;

typedef struct receiver_config {
    const char *store_url;  /* idem_open's url */
    const char *frames_dir; /* frames land at <frames_dir>/<id>.jpg (created when absent) */
    const char *model;      /* the cloud's model; "" or NULL: the server's default detection model */
    double retention_s;     /* >= 86400 in production; idem_open's */
    double claim_timeout_s; /* <= 0: 120 */
    int workers;            /* threads doing the work, <= 0: 4 */
    int queue_max;          /* requests waiting for a worker, <= 0: 64 (beyond: 503) */
} receiver_config;

/* Opens the store, starts the workers and adds POST /api/v1/events (and
 * the receiver's /metrics lines) to server, before server_start.  server is
 * borrowed and must outlive the receiver.  Shutdown order: server_stop
 * (which waits for the calls the workers hold, so they must still run),
 * then receiver_destroy, then server_destroy.  OUT: *out. */
vigil_status receiver_create(vigil_server *server, const receiver_config *cfg, receiver **out, vigil_error *err);
/* Stops the workers (calls still queued are answered 503) and closes the store. */
void receiver_destroy(receiver *r);

#endif
