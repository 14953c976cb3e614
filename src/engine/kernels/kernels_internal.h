/*
 * kernels_internal.h - machinery shared by the kernel files but not by their
 * callers: the broadcast plan that turns numpy broadcasting into a loop over
 * contiguous rows, and a small multi-index counter.
 */
#ifndef VIGIL_ENGINE_KERNELS_INTERNAL_H
#define VIGIL_ENGINE_KERNELS_INTERNAL_H

#include <stdint.h>

#include "engine/kernels/kernels.h"

#define BPLAN_MAX_INPUTS 3

/* Up to three inputs broadcast to one output, with size-1 output dims removed
 * and adjacent dims merged wherever every input allows it.  The innermost
 * stride of each input is then 0 (broadcast) or 1 (contiguous). */
typedef struct bplan {
    int ndim;
    int n_inputs;
    int64_t dims[KERNELS_MAX_DIMS];
    int64_t strides[BPLAN_MAX_INPUTS][KERNELS_MAX_DIMS]; /* element strides, 0 = broadcast */
} bplan;

/* ins[k] must broadcast to out (ranks may be smaller). */
void bplan_init(bplan *plan, const kshape *out, int n_inputs, const kshape *const *ins);

/* Length of the innermost row (1 for a scalar output). */
static inline int64_t bplan_inner(const bplan *plan) {
    return plan->ndim ? plan->dims[plan->ndim - 1] : 1;
}

/* Number of rows (product of all but the innermost dim). */
static inline int64_t bplan_rows(const bplan *plan) {
    int64_t n = 1;
    for (int i = 0; i + 1 < plan->ndim; i++) n *= plan->dims[i];
    return n;
}

/* Row iterator: offsets (in elements) of each input for the current row. */
typedef struct bplan_iter {
    int64_t idx[KERNELS_MAX_DIMS];
    int64_t off[BPLAN_MAX_INPUTS];
} bplan_iter;

static inline void bplan_iter_start(bplan_iter *it) {
    for (int i = 0; i < KERNELS_MAX_DIMS; i++) it->idx[i] = 0;
    for (int k = 0; k < BPLAN_MAX_INPUTS; k++) it->off[k] = 0;
}

/* Advances to the next row. */
static inline void bplan_iter_next(const bplan *plan, bplan_iter *it) {
    for (int d = plan->ndim - 2; d >= 0; d--) {
        for (int k = 0; k < plan->n_inputs; k++) it->off[k] += plan->strides[k][d];
        if (++it->idx[d] < plan->dims[d]) return;
        for (int k = 0; k < plan->n_inputs; k++) it->off[k] -= plan->strides[k][d] * plan->dims[d];
        it->idx[d] = 0;
    }
}

/* Overflow-checked dim arithmetic for the shape helpers: 1 on success. */
static inline int dim_add(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline int dim_mul(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

/* Copies n elements of elem bytes from src with element stride sstride (0 or 1). */
void kernels_copy_row(size_t elem, const void *src, int64_t sstride, void *dst, int64_t n);

#endif
