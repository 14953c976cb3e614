/*
 * arena.h - bump allocator for per-request and per-load memory.
 *
 * Blocks come from vigil_malloc; everything is released at once by
 * arena_destroy (or arena_reset, which keeps the first block), and so is
 * what was lent to the arena's owner from elsewhere with arena_defer (a
 * pooled buffer goes back to its pool when the request ends, however it
 * ends).  Not thread-safe: one arena belongs to one request or one loader.
 */
#ifndef VIGIL_CORE_ARENA_H
#define VIGIL_CORE_ARENA_H

#include <stddef.h>

typedef struct arena arena;

/* block_size: bytes per block (0 = 64 KiB); cap: max total bytes (0 = none). */
arena *arena_create(size_t block_size, size_t cap);
void arena_destroy(arena *a);
/* Returns NULL when out of memory or past the cap.  align: power of two. */
void *arena_alloc(arena *a, size_t size, size_t align);
void *arena_calloc(arena *a, size_t count, size_t size);
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
/* Has fn(ctx) called when the arena is reset or destroyed, the last
 * deferred first; -1 (and fn not called then) when out of memory or past
 * the cap, 0 otherwise. */
int arena_defer(arena *a, void (*fn)(void *ctx), void *ctx);
void arena_reset(arena *a);
size_t arena_bytes_used(const arena *a);

#endif
