/*
 * alloc.h - the one allocation wrapper.
 *
 * All of vigil's own heap memory goes through these functions so that a
 * process-wide byte cap can be enforced and tests can make the Nth allocation
 * fail (SQLite-style fault injection).  The accounting state is the single
 * documented process-global of this module: it is atomic and has no effect
 * unless a cap or a failure point is set.
 *
 * Every function returns NULL on failure (never aborts); vigil_free(NULL) is a
 * no-op.  Memory from vigil_aligned_alloc is released with vigil_free too.
 */
#ifndef VIGIL_CORE_ALLOC_H
#define VIGIL_CORE_ALLOC_H

#include <stddef.h>

void *vigil_malloc(size_t size);
void *vigil_calloc(size_t count, size_t size); /* overflow-checked, zeroed */
void *vigil_realloc(void *ptr, size_t size);   /* on failure ptr stays valid */
void *vigil_aligned_alloc(size_t alignment, size_t size); /* alignment: power of two <= 4096 */
char *vigil_strdup(const char *s);
char *vigil_strndup(const char *s, size_t n);
void vigil_free(void *ptr);

/* Caps the bytes live through this wrapper; 0 removes the cap. */
void alloc_set_cap(size_t bytes);
/* Makes the nth allocation from now fail (1 = the next one); 0 disarms. */
void alloc_fail_nth(long n);
/* Bytes currently live through this wrapper, and the high-water mark. */
size_t alloc_bytes_in_use(void);
size_t alloc_bytes_peak(void);

#endif
