/*
 * idem.c - the idempotency store's front (receiver.h): picks the backend
 * from the URL, holds the retention and the claim timeout, reads the clock,
 * and checks arguments once for both backends (idem_store.h).
 *
 * Times are wall-clock unix milliseconds (CLOCK_REALTIME) because several
 * replicas share one PostgreSQL table: a stale claim is judged by the time
 * another replica wrote, so their clocks must agree to within much less
 * than claim_timeout_s (NTP does).
 */
#include <string.h>

#include "core/alloc.h"
#include "edge/clock.h"
#include "edge/event.h"
#include "edge/idem_store.h"

struct idem_store {
    idem_backend *backend;
    const idem_backend_ops *ops;
    int64_t retention_ms;
    int64_t claim_timeout_ms;
};

vigil_status idem_open(const char *url, double retention_s, double claim_timeout_s, idem_store **out,
                       vigil_error *err) {
    *out = NULL;
    if (!url || !*url) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "idempotency store: no URL");
    if (!(retention_s > 0) || !(claim_timeout_s > 0))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "idempotency store: retention and claim timeout must be positive");
    idem_store *store = vigil_calloc(1, sizeof *store);
    if (!store) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "idempotency store: out of memory");
    store->retention_ms = (int64_t)(retention_s * 1000.0);
    store->claim_timeout_ms = (int64_t)(claim_timeout_s * 1000.0);
    vigil_status st;
    if (strncmp(url, "sqlite:", 7) == 0)
        st = idem_sqlite_open(url + 7, &store->backend, &store->ops, err);
    else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 || strchr(url, '='))
        st = idem_pg_open(url, &store->backend, &store->ops, err);
    else
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                             "idempotency store '%.200s': use sqlite:/path/file.db or a PostgreSQL connection string "
                             "(postgresql://... or host=... dbname=...)",
                             url);
    if (st) {
        vigil_free(store);
        return st;
    }
    *out = store;
    return VIGIL_OK;
}

void idem_close(idem_store *store) {
    if (!store) return;
    store->ops->close(store->backend);
    vigil_free(store);
}

static int hash_valid(const char *hex) {
    if (!hex || strlen(hex) != 64) return 0;
    for (const char *c = hex; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
    return 1;
}

static int key_valid(const char *key) {
    return edge_uuid_valid(key);
}

vigil_status idem_begin(idem_store *store, const char *key, const char body_sha256_hex[65], idem_outcome *outcome,
                        int *status, char **body, vigil_error *err) {
    *status = 0;
    *body = NULL;
    if (!key_valid(key) || !hash_valid(body_sha256_hex))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "idempotency store: malformed key or hash");
    int64_t now = edge_clock_now_ms(NULL);
    return store->ops->begin(store->backend, key, body_sha256_hex, now, now - store->claim_timeout_ms, outcome, status,
                             body, err);
}

vigil_status idem_finish(idem_store *store, const char *key, int status, const char *body, vigil_error *err) {
    if (!key_valid(key) || !body)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "idempotency store: malformed key or answer");
    return store->ops->finish(store->backend, key, status, body, edge_clock_now_ms(NULL), err);
}

vigil_status idem_abandon(idem_store *store, const char *key, vigil_error *err) {
    if (!key_valid(key)) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "idempotency store: malformed key");
    return store->ops->abandon(store->backend, key, err);
}

int64_t idem_expire(idem_store *store, vigil_error *err) {
    return store->ops->expire(store->backend, edge_clock_now_ms(NULL) - store->retention_ms, err);
}
