/*
 * alloc.c - allocation wrapper with a byte cap and fault injection.
 *
 * Each block carries a 16-byte prefix {size, offset-to-raw} just before the
 * pointer handed out, so vigil_free can release plain and aligned blocks alike
 * and the live byte count stays exact.  The counters are this module's
 * documented process-global state; they are atomics so any thread may
 * allocate.  With no cap and no failure point armed, the cost is two relaxed
 * atomic adds per call.
 */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct alloc_prefix {
    size_t size;   /* bytes requested by the caller */
    size_t offset; /* bytes from the raw malloc'd pointer to the user pointer */
} alloc_prefix;

_Static_assert(sizeof(alloc_prefix) == 16, "prefix keeps 16-byte alignment");

static _Atomic size_t alloc_in_use;
static _Atomic size_t alloc_peak;
static _Atomic size_t alloc_cap;
static _Atomic long alloc_countdown; /* > 0: armed; the call that takes it to 0 fails */

void alloc_set_cap(size_t bytes) { atomic_store(&alloc_cap, bytes); }
void alloc_fail_nth(long n) { atomic_store(&alloc_countdown, n > 0 ? n : 0); }
size_t alloc_bytes_in_use(void) { return atomic_load(&alloc_in_use); }
size_t alloc_bytes_peak(void) { return atomic_load(&alloc_peak); }

/* Decides whether an allocation of size bytes may proceed and, if so,
 * accounts for it.  Returns 0 when it must fail. */
static int alloc_admit(size_t size) {
    long countdown = atomic_load(&alloc_countdown);
    while (countdown > 0) {
        if (atomic_compare_exchange_weak(&alloc_countdown, &countdown, countdown - 1)) {
            if (countdown == 1) return 0;
            break;
        }
    }
    size_t now = atomic_fetch_add(&alloc_in_use, size) + size;
    size_t cap = atomic_load(&alloc_cap);
    if (cap && now > cap) {
        atomic_fetch_sub(&alloc_in_use, size);
        return 0;
    }
    size_t peak = atomic_load(&alloc_peak);
    while (now > peak && !atomic_compare_exchange_weak(&alloc_peak, &peak, now)) {
    }
    return 1;
}

static void alloc_release(size_t size) { atomic_fetch_sub(&alloc_in_use, size); }

void *vigil_aligned_alloc(size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 4096) return NULL;
    if (alignment < 16) alignment = 16;
    if (size > SIZE_MAX - alignment - sizeof(alloc_prefix)) return NULL;
    if (!alloc_admit(size)) return NULL;
    size_t offset = alignment >= sizeof(alloc_prefix) ? alignment : sizeof(alloc_prefix);
    unsigned char *raw = NULL;
    if (alignment == 16) {
        raw = malloc(size + offset);
    } else if (posix_memalign((void **)&raw, alignment, size + offset) != 0) {
        raw = NULL;
    }
    if (!raw) {
        alloc_release(size);
        return NULL;
    }
    unsigned char *user = raw + offset;
    alloc_prefix prefix = {size, offset};
    memcpy(user - sizeof prefix, &prefix, sizeof prefix);
    return user;
}

void *vigil_malloc(size_t size) { return vigil_aligned_alloc(16, size); }

void *vigil_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *ptr = vigil_malloc(count * size);
    if (ptr) memset(ptr, 0, count * size);
    return ptr;
}

static alloc_prefix alloc_prefix_of(const void *ptr) {
    alloc_prefix prefix;
    memcpy(&prefix, (const unsigned char *)ptr - sizeof prefix, sizeof prefix);
    return prefix;
}

void vigil_free(void *ptr) {
    if (!ptr) return;
    alloc_prefix prefix = alloc_prefix_of(ptr);
    alloc_release(prefix.size);
    free((unsigned char *)ptr - prefix.offset);
}

void *vigil_realloc(void *ptr, size_t size) {
    if (!ptr) return vigil_malloc(size);
    alloc_prefix prefix = alloc_prefix_of(ptr);
    void *fresh = vigil_aligned_alloc(prefix.offset, size);
    if (!fresh) return NULL;
    memcpy(fresh, ptr, prefix.size < size ? prefix.size : size);
    vigil_free(ptr);
    return fresh;
}

char *vigil_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *copy = vigil_malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *vigil_strdup(const char *s) { return vigil_strndup(s, SIZE_MAX); }
