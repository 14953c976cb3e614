/*
 * cache.h - the response cache: results of earlier requests, looked up by a
 * 128-bit keyed hash of everything that determines the answer (model,
 * version, input tensors or image bytes, detection options), bounded in
 * bytes and evicted least-recently-used.
 *
 * A model opts in with `response_cache: true` in its config.yaml; the server
 * then checks the cache on the I/O thread before queueing and fills it when
 * a job completes, so a hit never reaches the scheduler.  The hash is seeded
 * randomly per process, so clients cannot aim collisions at each other.
 * Thread-safe (one mutex).
 */
#ifndef VIGIL_SERVE_CACHE_H
#define VIGIL_SERVE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "vigil/status.h"

typedef struct result_cache result_cache;

typedef struct cache_key {
    uint64_t a, b;
} cache_key;

/* Incremental key construction: init, add the pieces in a fixed order, done. */
typedef struct cache_hasher {
    uint64_t a, b, n;
} cache_hasher;

/* max_bytes == 0 gives a cache that stores nothing (every get misses). */
vigil_status cache_create(size_t max_bytes, result_cache **out, vigil_error *err);
void cache_destroy(result_cache *c);

void cache_hasher_init(const result_cache *c, cache_hasher *h);
void cache_hasher_add(cache_hasher *h, const void *data, size_t size);
void cache_hasher_add_str(cache_hasher *h, const char *s); /* includes the terminator */
cache_key cache_hasher_done(const cache_hasher *h);

/* On a hit copies the value into a and returns 1; 0 on a miss. */
int cache_get(result_cache *c, const cache_key *key, arena *a, void **value, size_t *size);
/* Stores a copy (values larger than a quarter of the cache are not kept). */
void cache_put(result_cache *c, const cache_key *key, const void *value, size_t size);

size_t cache_bytes(result_cache *c);

#endif
