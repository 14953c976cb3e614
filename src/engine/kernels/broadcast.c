/*
 * broadcast.c - the broadcast plan (see kernels_internal.h) and the kernels
 * built directly on it: Where, Expand (broadcast_to) and fill.
 *
 * Broadcasting is reduced to "rows": after dropping size-1 output dims and
 * merging dims that are laid out alike in every input, the innermost dim is a
 * run that each input either walks contiguously or repeats one element of, so
 * the per-element work is a tight loop with no index arithmetic.
 */
#include <string.h>

#include "engine/kernels/kernels_internal.h"

void bplan_init(bplan *plan, const kshape *out, int n_inputs, const kshape *const *ins) {
    int64_t full[BPLAN_MAX_INPUTS][KERNELS_MAX_DIMS];
    for (int k = 0; k < n_inputs; k++) {
        const kshape *s = ins[k];
        int64_t stride = 1;
        for (int d = out->ndim - 1; d >= 0; d--) {
            int di = d - (out->ndim - s->ndim);
            int64_t dim = di >= 0 ? s->dims[di] : 1;
            full[k][d] = (dim == 1) ? 0 : stride;
            stride *= dim;
        }
    }
    plan->n_inputs = n_inputs;
    plan->ndim = 0;
    for (int d = 0; d < out->ndim; d++) {
        if (out->dims[d] == 1) continue;
        int nd = plan->ndim;
        int merge = nd > 0;
        for (int k = 0; k < n_inputs && merge; k++)
            merge = plan->strides[k][nd - 1] == full[k][d] * out->dims[d];
        if (merge) {
            plan->dims[nd - 1] *= out->dims[d];
            for (int k = 0; k < n_inputs; k++) plan->strides[k][nd - 1] = full[k][d];
        } else {
            plan->dims[nd] = out->dims[d];
            for (int k = 0; k < n_inputs; k++) plan->strides[k][nd] = full[k][d];
            plan->ndim++;
        }
    }
}

void kernels_copy_row(size_t elem, const void *src, int64_t sstride, void *dst, int64_t n) {
    if (sstride) {
        memcpy(dst, src, (size_t)n * elem);
        return;
    }
    switch (elem) {
    case 1: memset(dst, *(const uint8_t *)src, (size_t)n); return;
    case 2: { uint16_t v; memcpy(&v, src, 2); uint16_t *d = dst; for (int64_t i = 0; i < n; i++) d[i] = v; return; }
    case 4: { uint32_t v; memcpy(&v, src, 4); uint32_t *d = dst; for (int64_t i = 0; i < n; i++) d[i] = v; return; }
    case 8: { uint64_t v; memcpy(&v, src, 8); uint64_t *d = dst; for (int64_t i = 0; i < n; i++) d[i] = v; return; }
    default:
        for (int64_t i = 0; i < n; i++) memcpy((char *)dst + (size_t)i * elem, src, elem);
    }
}

void kernels_fill(size_t elem, const void *value, void *y, int64_t n) {
    kernels_copy_row(elem, value, 0, y, n);
}

void kernels_broadcast_to(size_t elem, const void *x, const kshape *xs, void *y, const kshape *ys) {
    if (kshape_count(ys) == 0) return;
    bplan plan;
    const kshape *ins[1] = {xs};
    bplan_init(&plan, ys, 1, ins);
    int64_t inner = bplan_inner(&plan), rows = bplan_rows(&plan);
    bplan_iter it;
    bplan_iter_start(&it);
    const char *src = x;
    char *dst = y;
    int64_t s = plan.ndim ? plan.strides[0][plan.ndim - 1] : 1;
    for (int64_t r = 0; r < rows; r++) {
        kernels_copy_row(elem, src + (size_t)it.off[0] * elem, s, dst + (size_t)(r * inner) * elem, inner);
        bplan_iter_next(&plan, &it);
    }
}

/* One Where row for element type T: the three strides are 0 or 1. */
#define WHERE_ROW(T)                                                                              \
    do {                                                                                          \
        const T *xv = (const T *)xp, *zv = (const T *)zp;                                         \
        T *yv = (T *)yp;                                                                          \
        for (int64_t i = 0; i < n; i++) yv[i] = cp[i * sc] ? xv[i * sx] : zv[i * sz];             \
    } while (0)

static void where_row(size_t elem, const uint8_t *cp, int64_t sc, const void *xp, int64_t sx, const void *zp,
                      int64_t sz, void *yp, int64_t n) {
    switch (elem) {
    case 1: WHERE_ROW(uint8_t); return;
    case 2: WHERE_ROW(uint16_t); return;
    case 4: WHERE_ROW(uint32_t); return;
    case 8: WHERE_ROW(uint64_t); return;
    default:
        for (int64_t i = 0; i < n; i++) {
            const void *src = cp[i * sc] ? (const char *)xp + (size_t)(i * sx) * elem
                                         : (const char *)zp + (size_t)(i * sz) * elem;
            memcpy((char *)yp + (size_t)i * elem, src, elem);
        }
    }
}

void kernels_where(size_t elem, const uint8_t *cond, const kshape *cs, const void *x, const kshape *xs, const void *z,
                   const kshape *zs, void *y, const kshape *ys) {
    if (kshape_count(ys) == 0) return;
    bplan plan;
    const kshape *ins[3] = {cs, xs, zs};
    bplan_init(&plan, ys, 3, ins);
    int64_t inner = bplan_inner(&plan), rows = bplan_rows(&plan);
    int last = plan.ndim - 1;
    int64_t sc = last >= 0 ? plan.strides[0][last] : 0, sx = last >= 0 ? plan.strides[1][last] : 0,
            sz = last >= 0 ? plan.strides[2][last] : 0;
    bplan_iter it;
    bplan_iter_start(&it);
    for (int64_t r = 0; r < rows; r++) {
        where_row(elem, cond + it.off[0], sc, (const char *)x + (size_t)it.off[1] * elem, sx,
                  (const char *)z + (size_t)it.off[2] * elem, sz, (char *)y + (size_t)(r * inner) * elem, inner);
        bplan_iter_next(&plan, &it);
    }
}

vigil_status kernels_expand_shape(const kshape *xs, const int64_t *shape, int n, kshape *out, vigil_error *err) {
    if (n < 0 || n > KERNELS_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "expand to rank %d (max %d)", n, KERNELS_MAX_DIMS);
    for (int i = 0; i < n; i++)
        if (shape[i] < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "expand: negative dim %lld", (long long)shape[i]);
    kshape target = kshape_make(n, shape);
    return kshape_broadcast(xs, &target, out, err);
}
