/*
 * spares.h - a few large buffers kept for the next request of about their
 * size, so that a stream of decoded camera frames (a megabyte each) does not
 * fault a fresh buffer in for every frame.
 *
 * Why: a buffer of a megabyte is, at the server's 1 MiB mmap threshold
 * (cmd_serve.c), a mapping of its own, and just under it, heap memory that
 * glibc trims back to the system when freed; either way each frame paid for
 * faulting 230 pages in and for unmapping them afterwards, as much CPU as
 * the rest of the request's work on the Hailo path (docs/BENCHMARKS.md,
 * "Hailo-8 (test double)").  Only buffers of SPARES_MIN_BYTES to
 * SPARES_MAX_BYTES are kept, by default at most SPARES_DEFAULT_SLOTS of them
 * and SPARES_TOTAL_BYTES in all, so resident memory after a burst stays
 * within a few megabytes of idle; a pool sized for more (spares_init_sized:
 * the device inputs of frames in flight) says why where it is made.
 * Thread-safe (one mutex, held for a slot scan).
 */
#ifndef VIGIL_SERVE_SPARES_H
#define VIGIL_SERVE_SPARES_H

#include <pthread.h>
#include <stddef.h>

#define SPARES_SLOTS 40         /* the most a pool can keep (spares_init_sized) */
#define SPARES_DEFAULT_SLOTS 16
#define SPARES_MIN_BYTES ((size_t)64 << 10)   /* smaller ones come cheaply from the heap's free lists */
#define SPARES_MAX_BYTES ((size_t)4 << 20)    /* a 1080p RGB frame is 6 MB: those still fault in */
#define SPARES_TOTAL_BYTES ((size_t)16 << 20)

typedef struct spares {
    pthread_mutex_t lock;
    struct {
        void *data; /* vigil_malloc'd; NULL: a free slot */
        size_t size;
    } slot[SPARES_SLOTS];
    size_t total; /* bytes of the buffers kept */
    size_t slots, max_total; /* at most this many kept, of at most max_total bytes in all */
} spares;

/* At most SPARES_DEFAULT_SLOTS buffers and SPARES_TOTAL_BYTES. */
void spares_init(spares *s);
/* At most slots (<= SPARES_SLOTS) buffers and max_total bytes. */
void spares_init_sized(spares *s, size_t slots, size_t max_total);
/* Frees the buffers kept. */
void spares_destroy(spares *s);

/* A kept buffer of at least need bytes (and not over twice need), or
 * NULL; *size set to its size.  The caller owns it (vigil_free or give). */
void *spares_take(spares *s, size_t need, size_t *size);
/* Keeps data (size bytes, vigil_malloc'd) for a later take, or frees it
 * when it is out of range or there is no room; data may be NULL. */
void spares_give(spares *s, void *data, size_t size);

#endif
