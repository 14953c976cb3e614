/*
 * arena.c - bump allocation in a chain of blocks.
 *
 * Requests larger than the block size get a block of their own, so the arena
 * never wastes more than one block's tail per allocation.  The optional cap
 * bounds the total bytes the arena may take from vigil_malloc, which is how a
 * request's memory is limited.
 */
#include "core/arena.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"

typedef struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} arena_block;

typedef struct arena_deferred {
    struct arena_deferred *next; /* the one deferred before */
    void (*fn)(void *ctx);
    void *ctx;
} arena_deferred;

struct arena {
    arena_block *head; /* current block; older ones follow through next */
    arena_deferred *deferred; /* in the arena's blocks, newest first */
    size_t block_size;
    size_t cap;
    size_t reserved; /* bytes taken from vigil_malloc, headers included */
    size_t used;     /* bytes handed out, padding included */
};

#define ARENA_DEFAULT_BLOCK (64u * 1024u)
#define ARENA_HEADER ((sizeof(arena_block) + 63u) & ~(size_t)63u)

arena *arena_create(size_t block_size, size_t cap) {
    arena *a = vigil_calloc(1, sizeof *a);
    if (!a) return NULL;
    a->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
    a->cap = cap;
    return a;
}

static void arena_free_blocks(arena_block *block) {
    while (block) {
        arena_block *next = block->next;
        vigil_free(block);
        block = next;
    }
}

/* Calls what was deferred, newest first (before the blocks holding the
 * list are freed). */
static void arena_run_deferred(arena *a) {
    while (a->deferred) {
        arena_deferred *d = a->deferred;
        a->deferred = d->next;
        d->fn(d->ctx);
    }
}

void arena_destroy(arena *a) {
    if (!a) return;
    arena_run_deferred(a);
    arena_free_blocks(a->head);
    vigil_free(a);
}

static arena_block *arena_grow(arena *a, size_t min_size) {
    size_t size = min_size > a->block_size ? min_size : a->block_size;
    if (size > SIZE_MAX - ARENA_HEADER) return NULL;
    if (a->cap && (a->reserved + ARENA_HEADER + size > a->cap)) return NULL;
    arena_block *block = vigil_aligned_alloc(64, ARENA_HEADER + size);
    if (!block) return NULL;
    block->size = size;
    block->used = 0;
    block->next = a->head;
    a->head = block;
    a->reserved += ARENA_HEADER + size;
    return block;
}

void *arena_alloc(arena *a, size_t size, size_t align) {
    if (align == 0) align = 16;
    if ((align & (align - 1)) != 0 || align > 64) return NULL;
    if (size == 0) size = 1;
    arena_block *block = a->head;
    size_t start = 0;
    if (block) start = (block->used + align - 1) & ~(align - 1);
    if (!block || start > block->size || size > block->size - start) {
        if (size > SIZE_MAX - align) return NULL;
        block = arena_grow(a, size + align);
        if (!block) return NULL;
        start = 0;
    }
    unsigned char *base = (unsigned char *)block + ARENA_HEADER;
    a->used += start - block->used + size;
    block->used = start + size;
    return base + start;
}

void *arena_calloc(arena *a, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *ptr = arena_alloc(a, count * size, 16);
    if (ptr) memset(ptr, 0, count * size);
    return ptr;
}

char *arena_strndup(arena *a, const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *copy = arena_alloc(a, len + 1, 1);
    if (!copy) return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *arena_strdup(arena *a, const char *s) { return arena_strndup(a, s, SIZE_MAX); }

int arena_defer(arena *a, void (*fn)(void *ctx), void *ctx) {
    arena_deferred *d = arena_alloc(a, sizeof *d, _Alignof(arena_deferred));
    if (!d) return -1;
    *d = (arena_deferred){.next = a->deferred, .fn = fn, .ctx = ctx};
    a->deferred = d;
    return 0;
}

void arena_reset(arena *a) {
    arena_run_deferred(a);
    if (!a->head) return;
    /* Keep the oldest block (the tail of the chain), free the rest. */
    arena_block *keep = a->head;
    while (keep->next) keep = keep->next;
    arena_block *block = a->head;
    while (block != keep) {
        arena_block *next = block->next;
        a->reserved -= ARENA_HEADER + block->size;
        vigil_free(block);
        block = next;
    }
    keep->used = 0;
    a->head = keep;
    a->used = 0;
}

size_t arena_bytes_used(const arena *a) { return a->used; }
