/*
 * cache.c - LRU response cache: a chained hash table over a doubly linked
 * recency list, all under one mutex.  Byte accounting includes the entry
 * headers so that many tiny values cannot exceed the bound either.
 *
 * The key hash is two 64-bit lanes of multiply-xorshift mixing over 8-byte
 * words, seeded from the clock and the address space at creation: fast
 * enough to hash a 5 MB image in a few milliseconds, and unpredictable to
 * clients.  It is not a cryptographic hash.
 */
#include "serve/cache.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

#define CACHE_BUCKETS 4096

typedef struct cache_entry {
    cache_key key;
    struct cache_entry *chain;      /* next in the bucket */
    struct cache_entry *newer, *older;
    size_t size;
    unsigned char value[];
} cache_entry;

struct result_cache {
    pthread_mutex_t lock;
    size_t max_bytes, bytes;
    uint64_t seed_a, seed_b;
    cache_entry *newest, *oldest;
    cache_entry *buckets[CACHE_BUCKETS];
};

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

vigil_status cache_create(size_t max_bytes, result_cache **out, vigil_error *err) {
    result_cache *c = vigil_calloc(1, sizeof *c);
    if (!c) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cache: out of memory");
    pthread_mutex_init(&c->lock, NULL);
    c->max_bytes = max_bytes;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->seed_a = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)c);
    c->seed_b = mix(c->seed_a ^ (uint64_t)(uintptr_t)&ts);
    *out = c;
    return VIGIL_OK;
}

void cache_destroy(result_cache *c) {
    if (!c) return;
    for (cache_entry *e = c->newest; e;) {
        cache_entry *next = e->older;
        vigil_free(e);
        e = next;
    }
    pthread_mutex_destroy(&c->lock);
    vigil_free(c);
}

void cache_hasher_init(const result_cache *c, cache_hasher *h) {
    h->a = c->seed_a;
    h->b = c->seed_b;
    h->n = 0;
}

static void hasher_word(cache_hasher *h, uint64_t w) {
    h->a = (h->a ^ w) * UINT64_C(0x9e3779b97f4a7c15);
    h->a ^= h->a >> 29;
    h->b = (h->b + w) * UINT64_C(0xbf58476d1ce4e5b9);
    h->b ^= (h->b >> 31) ^ (h->a << 7);
}

void cache_hasher_add(cache_hasher *h, const void *data, size_t size) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        hasher_word(h, w);
    }
    uint64_t tail = 0;
    if (size > i) memcpy(&tail, p + i, size - i);
    hasher_word(h, tail);
    hasher_word(h, (uint64_t)size); /* piece boundaries matter */
    h->n += size;
}

void cache_hasher_add_str(cache_hasher *h, const char *s) { cache_hasher_add(h, s, strlen(s) + 1); }

cache_key cache_hasher_done(const cache_hasher *h) {
    cache_key k = {mix(h->a ^ h->n), mix(h->b + mix(h->a))};
    return k;
}

static size_t bucket_of(const cache_key *k) { return (size_t)(k->a % CACHE_BUCKETS); }

/* Lock held. */
static void lru_unlink(result_cache *c, cache_entry *e) {
    if (e->newer) e->newer->older = e->older;
    else c->newest = e->older;
    if (e->older) e->older->newer = e->newer;
    else c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(result_cache *c, cache_entry *e) {
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest) c->newest->newer = e;
    c->newest = e;
    if (!c->oldest) c->oldest = e;
}

static cache_entry *find(result_cache *c, const cache_key *k) {
    for (cache_entry *e = c->buckets[bucket_of(k)]; e; e = e->chain)
        if (e->key.a == k->a && e->key.b == k->b) return e;
    return NULL;
}

static void evict(result_cache *c, cache_entry *e) {
    cache_entry **link = &c->buckets[bucket_of(&e->key)];
    while (*link != e) link = &(*link)->chain;
    *link = e->chain;
    lru_unlink(c, e);
    c->bytes -= sizeof *e + e->size;
    vigil_free(e);
}

int cache_get(result_cache *c, const cache_key *key, arena *a, void **value, size_t *size) {
    int hit = 0;
    pthread_mutex_lock(&c->lock);
    cache_entry *e = find(c, key);
    if (e) {
        void *copy = arena_alloc(a, e->size ? e->size : 1, 64);
        if (copy) {
            memcpy(copy, e->value, e->size);
            *value = copy;
            *size = e->size;
            lru_unlink(c, e);
            lru_push(c, e);
            hit = 1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void cache_put(result_cache *c, const cache_key *key, const void *value, size_t size) {
    size_t need = sizeof(cache_entry) + size;
    if (need > c->max_bytes / 4) return;
    cache_entry *e = vigil_malloc(need);
    if (!e) return;
    e->key = *key;
    e->size = size;
    memcpy(e->value, value, size);
    pthread_mutex_lock(&c->lock);
    cache_entry *old = find(c, key);
    if (old) evict(c, old);
    while (c->oldest && c->bytes + need > c->max_bytes) evict(c, c->oldest);
    e->chain = c->buckets[bucket_of(key)];
    c->buckets[bucket_of(key)] = e;
    lru_push(c, e);
    c->bytes += need;
    pthread_mutex_unlock(&c->lock);
}

size_t cache_bytes(result_cache *c) {
    pthread_mutex_lock(&c->lock);
    size_t n = c->bytes;
    pthread_mutex_unlock(&c->lock);
    return n;
}
