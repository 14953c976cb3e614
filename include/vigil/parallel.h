/*
 * vigil/parallel.h - a parallel-for lent by whoever owns threads.
 *
 * Libraries that have work to spread (the vision library's JPEG bands) own
 * no threads: the caller lends them a vigil_parallel, built on whatever pool
 * it has (the CPU backend's pthreadpool, which inference leaves idle while
 * images are decoded).  A NULL vigil_parallel, or threads < 2, means "one
 * task after another on the calling thread".
 */
#ifndef VIGIL_PARALLEL_H
#define VIGIL_PARALLEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vigil_parallel {
    /* Runs task(arg, 0) .. task(arg, n - 1), the calling thread taking part,
     * and returns when all are done.  With n <= threads every task must get
     * a thread of its own at the same time (a pipelined decoder and its
     * consumer wait for each other). */
    void (*run)(void *ctx, size_t n, void (*task)(void *arg, size_t index), void *arg);
    void *ctx;   /* the pool; borrowed */
    int threads; /* tasks that run at the same time */
} vigil_parallel;

#ifdef __cplusplus
}
#endif
#endif
