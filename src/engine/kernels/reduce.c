/*
 * reduce.c - operators that combine elements along axes: Softmax,
 * LogSoftmax, Hardmax, the Reduce* family, ArgMax/ArgMin, CumSum, TopK,
 * plus the small generators Range and NonZero.
 *
 * Axis operators see the tensor as [outer, axis_len, inner].  When inner > 1
 * the axis is strided, so Softmax works on blocks of up to SOFTMAX_BLOCK
 * columns at once with per-column state on the stack: every pass then reads
 * contiguous memory.  Reductions collapse the shape into alternating kept and
 * reduced runs and accumulate whole rows at a time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "engine/kernels/kernels.h"

/* ---- Softmax family ---- */

#define SOFTMAX_BLOCK 256

typedef enum softmax_kind { SOFTMAX_PLAIN, SOFTMAX_LOG, SOFTMAX_HARD } softmax_kind;

/* One block of w columns (w <= SOFTMAX_BLOCK) of one outer slice. */
static void softmax_block(const float *x, float *y, int64_t len, int64_t inner, int64_t w, softmax_kind kind) {
    float m[SOFTMAX_BLOCK], s[SOFTMAX_BLOCK];
    int64_t arg[SOFTMAX_BLOCK];
    for (int64_t j = 0; j < w; j++) {
        m[j] = x[j];
        s[j] = 0.0f;
        arg[j] = 0;
    }
    for (int64_t a = 1; a < len; a++) {
        const float *row = x + a * inner;
        for (int64_t j = 0; j < w; j++)
            if (row[j] > m[j]) {
                m[j] = row[j];
                arg[j] = a;
            }
    }
    if (kind == SOFTMAX_HARD) {
        for (int64_t a = 0; a < len; a++)
            for (int64_t j = 0; j < w; j++) y[a * inner + j] = arg[j] == a ? 1.0f : 0.0f;
        return;
    }
    for (int64_t a = 0; a < len; a++) {
        const float *row = x + a * inner;
        float *out = y + a * inner;
        for (int64_t j = 0; j < w; j++) {
            float e = expf(row[j] - m[j]);
            if (kind == SOFTMAX_PLAIN) out[j] = e;
            s[j] += e;
        }
    }
    if (kind == SOFTMAX_PLAIN) {
        for (int64_t j = 0; j < w; j++) s[j] = 1.0f / s[j];
        for (int64_t a = 0; a < len; a++)
            for (int64_t j = 0; j < w; j++) y[a * inner + j] *= s[j];
    } else {
        for (int64_t j = 0; j < w; j++) s[j] = m[j] + logf(s[j]);
        for (int64_t a = 0; a < len; a++)
            for (int64_t j = 0; j < w; j++) y[a * inner + j] = x[a * inner + j] - s[j];
    }
}

static void softmax_run(const float *x, float *y, int64_t outer, int64_t len, int64_t inner, softmax_kind kind) {
    if (len == 0) return;
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * len * inner;
        float *yo = y + o * len * inner;
        for (int64_t j0 = 0; j0 < inner; j0 += SOFTMAX_BLOCK) {
            int64_t w = inner - j0 < SOFTMAX_BLOCK ? inner - j0 : SOFTMAX_BLOCK;
            softmax_block(xo + j0, yo + j0, len, inner, w, kind);
        }
    }
}

void kernels_softmax_f32(const float *x, float *y, int64_t outer, int64_t axis_len, int64_t inner) {
    softmax_run(x, y, outer, axis_len, inner, SOFTMAX_PLAIN);
}

void kernels_log_softmax_f32(const float *x, float *y, int64_t outer, int64_t axis_len, int64_t inner) {
    softmax_run(x, y, outer, axis_len, inner, SOFTMAX_LOG);
}

void kernels_hardmax_f32(const float *x, float *y, int64_t outer, int64_t axis_len, int64_t inner) {
    softmax_run(x, y, outer, axis_len, inner, SOFTMAX_HARD);
}

/* ---- Reduce ---- */

vigil_status kernels_reduce_shape(const kshape *xs, const int64_t *axes, int n, int keepdims,
                                  int noop_with_empty_axes, uint8_t *mask, kshape *out, vigil_error *err) {
    for (int d = 0; d < xs->ndim; d++) mask[d] = n == 0 && !noop_with_empty_axes;
    for (int i = 0; i < n; i++) {
        int a = 0;
        vigil_status st = kernels_axis(axes[i], xs->ndim, &a, err);
        if (st != VIGIL_OK) return st;
        mask[a] = 1; /* ONNX tolerates repeated axes here */
    }
    kshape r;
    r.ndim = 0;
    for (int d = 0; d < xs->ndim; d++) {
        if (!mask[d]) r.dims[r.ndim++] = xs->dims[d];
        else if (keepdims) r.dims[r.ndim++] = 1;
    }
    *out = r;
    return VIGIL_OK;
}

/* Collapsed layout: runs of dims alternately kept / reduced. */
typedef struct reduce_layout {
    int ndim;
    int64_t dims[KERNELS_MAX_DIMS];
    int64_t ystrides[KERNELS_MAX_DIMS]; /* 0 on reduced runs */
    int reduced_last;                   /* the innermost run is reduced */
    int64_t reduced_count;              /* elements folded into each output */
    int64_t out_count;
} reduce_layout;

static void reduce_layout_init(reduce_layout *l, const kshape *xs, const uint8_t *mask) {
    int kinds[KERNELS_MAX_DIMS];
    l->ndim = 0;
    l->reduced_count = 1;
    l->out_count = 1;
    for (int d = 0; d < xs->ndim; d++) {
        if (mask[d]) l->reduced_count *= xs->dims[d];
        else l->out_count *= xs->dims[d];
        if (xs->dims[d] == 1) continue;
        if (l->ndim && kinds[l->ndim - 1] == mask[d]) {
            l->dims[l->ndim - 1] *= xs->dims[d];
        } else {
            kinds[l->ndim] = mask[d];
            l->dims[l->ndim++] = xs->dims[d];
        }
    }
    int64_t s = 1;
    for (int d = l->ndim - 1; d >= 0; d--) {
        l->ystrides[d] = kinds[d] ? 0 : s;
        if (!kinds[d]) s *= l->dims[d];
    }
    l->reduced_last = l->ndim > 0 && kinds[l->ndim - 1];
}

/* Walks x row by row: COMBINE(acc, v) folds v into acc (both of type A).
 * y was initialised with the identity. */
#define REDUCE_WALK(T, A, COMBINE)                                                       \
    do {                                                                                 \
        if (in_count == 0) break;                                                        \
        const T *xv = (const T *)x;                                                      \
        A *acc_base = (A *)yacc;                                                         \
        int64_t inner = l.ndim ? l.dims[l.ndim - 1] : 1, rows = in_count / inner;        \
        int64_t idx[KERNELS_MAX_DIMS] = {0}, yoff = 0;                                   \
        for (int64_t r = 0; r < rows; r++) {                                             \
            const T *row = xv + r * inner;                                               \
            A *acc = acc_base + yoff;                                                    \
            if (l.reduced_last) {                                                        \
                A a = acc[0];                                                            \
                for (int64_t i = 0; i < inner; i++) { A v = (A)row[i]; COMBINE(a, v); }  \
                acc[0] = a;                                                              \
            } else {                                                                     \
                for (int64_t i = 0; i < inner; i++) { A v = (A)row[i]; COMBINE(acc[i], v); } \
            }                                                                            \
            for (int d = l.ndim - 2; d >= 0; d--) {                                      \
                yoff += l.ystrides[d];                                                   \
                if (++idx[d] < l.dims[d]) break;                                         \
                yoff -= l.ystrides[d] * l.dims[d];                                       \
                idx[d] = 0;                                                              \
            }                                                                            \
        }                                                                                \
    } while (0)

#define C_SUM(a, v) ((a) += (v))
#define C_MAX(a, v) ((a) = ((v) > (a) || (v) != (v)) ? (v) : (a))
#define C_MIN(a, v) ((a) = ((v) < (a) || (v) != (v)) ? (v) : (a))
#define C_PROD(a, v) ((a) *= (v))
#define C_L1I(a, v) ((a) += (v) < 0 ? -(v) : (v))
#define C_SQ(a, v) ((a) += (v) * (v))
/* Running log-sum-exp: stable without a separate max pass. */
#define C_LSE_F(a, v) ((a) = (a) == -INFINITY ? (v) : fmaxf((a), (v)) + log1pf(expf(-fabsf((a) - (v)))))
#define C_LSE_D(a, v) ((a) = (a) == -INFINITY ? (v) : fmax((a), (v)) + log1p(exp(-fabs((a) - (v)))))
#define C_L1F(a, v) ((a) += fabsf(v))
#define C_L1D(a, v) ((a) += fabs(v))

/* Floating-point reductions for element type T with its math functions. */
#define REDUCE_FLOAT(T, L1, LSE, SQRT, LOG)                                              \
    do {                                                                                 \
        T *yv = (T *)y, init = 0;                                                        \
        if (op == KERNELS_REDUCE_MAX || op == KERNELS_REDUCE_LOG_SUM_EXP) init = -INFINITY; \
        if (op == KERNELS_REDUCE_MIN) init = INFINITY;                                   \
        if (op == KERNELS_REDUCE_PROD) init = 1;                                         \
        for (int64_t i = 0; i < l.out_count; i++) yv[i] = init;                          \
        T *yacc = yv;                                                                    \
        switch (op) {                                                                    \
        case KERNELS_REDUCE_SUM:                                                         \
        case KERNELS_REDUCE_MEAN:                                                        \
        case KERNELS_REDUCE_LOG_SUM: REDUCE_WALK(T, T, C_SUM); break;                    \
        case KERNELS_REDUCE_MAX: REDUCE_WALK(T, T, C_MAX); break;                        \
        case KERNELS_REDUCE_MIN: REDUCE_WALK(T, T, C_MIN); break;                        \
        case KERNELS_REDUCE_PROD: REDUCE_WALK(T, T, C_PROD); break;                      \
        case KERNELS_REDUCE_L1: REDUCE_WALK(T, T, L1); break;                            \
        case KERNELS_REDUCE_L2:                                                          \
        case KERNELS_REDUCE_SUM_SQUARE: REDUCE_WALK(T, T, C_SQ); break;                  \
        case KERNELS_REDUCE_LOG_SUM_EXP: REDUCE_WALK(T, T, LSE); break;                  \
        }                                                                                \
        for (int64_t i = 0; i < l.out_count; i++) {                                      \
            if (op == KERNELS_REDUCE_MEAN) yv[i] = l.reduced_count ? yv[i] / (T)l.reduced_count : (T)NAN; \
            else if (op == KERNELS_REDUCE_L2) yv[i] = SQRT(yv[i]);                       \
            else if (op == KERNELS_REDUCE_LOG_SUM) yv[i] = LOG(yv[i]);                   \
        }                                                                                \
    } while (0)

/* Integer reductions for element type T (accumulated in T). */
#define REDUCE_INT(T, TMIN, TMAX)                                                          \
    do {                                                                                   \
        T *yv = (T *)y, init = 0;                                                          \
        if (op == KERNELS_REDUCE_MAX) init = TMIN;                                         \
        if (op == KERNELS_REDUCE_MIN) init = TMAX;                                         \
        if (op == KERNELS_REDUCE_PROD) init = 1;                                           \
        for (int64_t i = 0; i < l.out_count; i++) yv[i] = init;                            \
        T *yacc = yv;                                                                      \
        switch (op) {                                                                      \
        case KERNELS_REDUCE_SUM:                                                           \
        case KERNELS_REDUCE_MEAN: REDUCE_WALK(T, T, C_SUM); break;                         \
        case KERNELS_REDUCE_MAX: REDUCE_WALK(T, T, C_MAX); break;                          \
        case KERNELS_REDUCE_MIN: REDUCE_WALK(T, T, C_MIN); break;                          \
        case KERNELS_REDUCE_PROD: REDUCE_WALK(T, T, C_PROD); break;                        \
        case KERNELS_REDUCE_L1: REDUCE_WALK(T, T, C_L1I); break;                           \
        case KERNELS_REDUCE_SUM_SQUARE: REDUCE_WALK(T, T, C_SQ); break;                    \
        default: break;                                                                    \
        }                                                                                  \
        if (op == KERNELS_REDUCE_MEAN)                                                     \
            for (int64_t i = 0; i < l.out_count; i++)                                      \
                yv[i] = l.reduced_count ? (T)(yv[i] / l.reduced_count) : 0;                \
    } while (0)

vigil_status kernels_reduce(kernels_reduce_op op, vigil_dtype dtype, const void *x, const kshape *xs,
                            const uint8_t *mask, void *y, vigil_error *err) {
    reduce_layout l;
    reduce_layout_init(&l, xs, mask);
    int64_t in_count = kshape_count(xs);
    if (l.out_count == 0) return VIGIL_OK;
    if (dtype == VIGIL_DTYPE_F32) {
        REDUCE_FLOAT(float, C_L1F, C_LSE_F, sqrtf, logf);
        return VIGIL_OK;
    }
    if (dtype == VIGIL_DTYPE_F64) {
        REDUCE_FLOAT(double, C_L1D, C_LSE_D, sqrt, log);
        return VIGIL_OK;
    }
    int int_ok = op == KERNELS_REDUCE_SUM || op == KERNELS_REDUCE_MEAN || op == KERNELS_REDUCE_MAX ||
                 op == KERNELS_REDUCE_MIN || op == KERNELS_REDUCE_PROD || op == KERNELS_REDUCE_L1 ||
                 op == KERNELS_REDUCE_SUM_SQUARE;
    if (int_ok && dtype == VIGIL_DTYPE_I64) {
        REDUCE_INT(int64_t, INT64_MIN, INT64_MAX);
        return VIGIL_OK;
    }
    if (int_ok && dtype == VIGIL_DTYPE_I32) {
        REDUCE_INT(int32_t, INT32_MIN, INT32_MAX);
        return VIGIL_OK;
    }
    return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "reduce op %d not supported for %s", (int)op,
                           vigil_dtype_name(dtype));
}

/* ---- ArgMax / ArgMin ---- */

#define ARG_REDUCE(T)                                                                          \
    do {                                                                                       \
        const T *xv = (const T *)x;                                                            \
        for (int64_t o = 0; o < outer; o++)                                                    \
            for (int64_t j = 0; j < inner; j++) {                                              \
                const T *col = xv + o * axis_len * inner + j;                                  \
                T best = col[0];                                                               \
                int64_t at = 0;                                                                \
                for (int64_t a = 1; a < axis_len; a++) {                                       \
                    T v = col[a * inner];                                                      \
                    int better = is_min ? (v < best) : (v > best);                             \
                    if (better || (last && v == best)) {                                       \
                        best = v;                                                              \
                        at = a;                                                                \
                    }                                                                          \
                }                                                                              \
                y[o * inner + j] = at;                                                         \
            }                                                                                  \
    } while (0)

vigil_status kernels_argreduce(int is_min, vigil_dtype dtype, const void *x, int64_t outer, int64_t axis_len,
                               int64_t inner, int select_last_index, int64_t *y, vigil_error *err) {
    if (outer * inner == 0) return VIGIL_OK;
    if (axis_len == 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "argmax/argmin over an empty axis");
    int last = select_last_index;
    switch (dtype) {
    case VIGIL_DTYPE_F32: ARG_REDUCE(float); return VIGIL_OK;
    case VIGIL_DTYPE_I64: ARG_REDUCE(int64_t); return VIGIL_OK;
    case VIGIL_DTYPE_I32: ARG_REDUCE(int32_t); return VIGIL_OK;
    default:
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "argmax/argmin on %s", vigil_dtype_name(dtype));
    }
}

/* ---- CumSum ---- */

#define CUMSUM(T)                                                                                 \
    do {                                                                                          \
        const T *xv = (const T *)x;                                                               \
        T *yv = (T *)y;                                                                           \
        for (int64_t o = 0; o < outer; o++) {                                                     \
            const T *xo = xv + o * axis_len * inner;                                              \
            T *yo = yv + o * axis_len * inner;                                                    \
            for (int64_t k = 0; k < axis_len; k++) {                                              \
                int64_t a = reverse ? axis_len - 1 - k : k, prev = reverse ? a + 1 : a - 1;       \
                T *out = yo + a * inner;                                                          \
                if (k == 0) {                                                                     \
                    for (int64_t j = 0; j < inner; j++) out[j] = exclusive ? (T)0 : xo[a * inner + j]; \
                    continue;                                                                     \
                }                                                                                 \
                const T *before = yo + prev * inner;                                              \
                const T *add = xo + (exclusive ? prev : a) * inner;                               \
                for (int64_t j = 0; j < inner; j++) out[j] = before[j] + add[j];                  \
            }                                                                                     \
        }                                                                                         \
    } while (0)

vigil_status kernels_cumsum(vigil_dtype dtype, const void *x, void *y, int64_t outer, int64_t axis_len, int64_t inner,
                            int exclusive, int reverse, vigil_error *err) {
    switch (dtype) {
    case VIGIL_DTYPE_F32: CUMSUM(float); return VIGIL_OK;
    case VIGIL_DTYPE_F64: CUMSUM(double); return VIGIL_OK;
    case VIGIL_DTYPE_I64: CUMSUM(int64_t); return VIGIL_OK;
    case VIGIL_DTYPE_I32: CUMSUM(int32_t); return VIGIL_OK;
    default: return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "cumsum on %s", vigil_dtype_name(dtype));
    }
}

/* ---- TopK ---- */

typedef struct topk_entry {
    union {
        float f;
        int64_t l;
        int32_t i;
    } v;
    int64_t index;
} topk_entry;

/* Comparators: "a comes first" ordering with ties broken by the lower index;
 * NaN ranks above every number. */
#define TOPK_CMP(name, FIELD, BEFORE)                                     \
    static int name(const void *pa, const void *pb) {                     \
        const topk_entry *a = pa, *b = pb;                                \
        if (BEFORE(a->v.FIELD, b->v.FIELD)) return -1;                    \
        if (BEFORE(b->v.FIELD, a->v.FIELD)) return 1;                     \
        return a->index < b->index ? -1 : a->index > b->index;            \
    }
#define GT_NAN(a, b) (((a) != (a) && (b) == (b)) || (a) > (b))
#define LT_NAN(a, b) (((b) != (b) && (a) == (a)) || (a) < (b))
TOPK_CMP(topk_largest_f, f, GT_NAN)
TOPK_CMP(topk_smallest_f, f, LT_NAN)
TOPK_CMP(topk_largest_l, l, GT_NAN)
TOPK_CMP(topk_smallest_l, l, LT_NAN)
TOPK_CMP(topk_largest_i, i, GT_NAN)
TOPK_CMP(topk_smallest_i, i, LT_NAN)

vigil_status kernels_topk(vigil_dtype dtype, const void *x, int64_t outer, int64_t axis_len, int64_t inner, int64_t k,
                          int largest, int sorted, void *values, int64_t *indices, vigil_error *err) {
    if (k < 0 || k > axis_len)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "topk: k = %lld for axis of %lld", (long long)k,
                               (long long)axis_len);
    int (*cmp)(const void *, const void *);
    switch (dtype) {
    case VIGIL_DTYPE_F32: cmp = largest ? topk_largest_f : topk_smallest_f; break;
    case VIGIL_DTYPE_I64: cmp = largest ? topk_largest_l : topk_smallest_l; break;
    case VIGIL_DTYPE_I32: cmp = largest ? topk_largest_i : topk_smallest_i; break;
    default: return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "topk on %s", vigil_dtype_name(dtype));
    }
    if (k == 0 || outer * inner == 0) return VIGIL_OK;
    topk_entry *scratch = vigil_malloc((size_t)axis_len * sizeof *scratch);
    if (!scratch) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "topk: scratch for %lld", (long long)axis_len);
    size_t elem = vigil_dtype_size(dtype);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < inner; j++) {
            const char *col = (const char *)x + (size_t)(o * axis_len * inner + j) * elem;
            for (int64_t a = 0; a < axis_len; a++) {
                memcpy(&scratch[a].v, col + (size_t)(a * inner) * elem, elem);
                scratch[a].index = a;
            }
            qsort(scratch, (size_t)axis_len, sizeof *scratch, cmp);
            char *vout = (char *)values + (size_t)(o * k * inner + j) * elem;
            int64_t *iout = indices + o * k * inner + j;
            for (int64_t t = 0; t < k; t++) {
                memcpy(vout + (size_t)(t * inner) * elem, &scratch[t].v, elem);
                iout[t * inner] = scratch[t].index;
            }
        }
    }
    vigil_free(scratch);
    return VIGIL_OK;
}

/* ---- Range ---- */

vigil_status kernels_range_count(vigil_dtype dtype, const void *start, const void *limit, const void *delta,
                                 int64_t *count, vigil_error *err) {
    double n;
    switch (dtype) {
    case VIGIL_DTYPE_F32: {
        float s = *(const float *)start, l = *(const float *)limit, d = *(const float *)delta;
        if (d == 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "range: delta is 0");
        n = ceil((double)((l - s) / d));
        break;
    }
    case VIGIL_DTYPE_F64: {
        double s = *(const double *)start, l = *(const double *)limit, d = *(const double *)delta;
        if (d == 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "range: delta is 0");
        n = ceil((l - s) / d);
        break;
    }
    case VIGIL_DTYPE_I64:
    case VIGIL_DTYPE_I32: {
        int64_t s, l, d;
        if (dtype == VIGIL_DTYPE_I64) {
            s = *(const int64_t *)start, l = *(const int64_t *)limit, d = *(const int64_t *)delta;
        } else {
            s = *(const int32_t *)start, l = *(const int32_t *)limit, d = *(const int32_t *)delta;
        }
        if (d == 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "range: delta is 0");
        /* unsigned distance and step: exact for the whole int64 range */
        uint64_t dist = 0, step = d > 0 ? (uint64_t)d : 0 - (uint64_t)d;
        if (d > 0 && l > s) dist = (uint64_t)l - (uint64_t)s;
        if (d < 0 && l < s) dist = (uint64_t)s - (uint64_t)l;
        uint64_t c = dist / step + (dist % step != 0);
        if (c > (uint64_t)KERNELS_MAX_ELEMENTS) return vigil_error_set(err, VIGIL_ERR_LIMIT, "range: too many elements");
        *count = (int64_t)c;
        return VIGIL_OK;
    }
    default: return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "range on %s", vigil_dtype_name(dtype));
    }
    if (!(n <= (double)KERNELS_MAX_ELEMENTS)) return vigil_error_set(err, VIGIL_ERR_LIMIT, "range: too many elements");
    *count = n > 0 ? (int64_t)n : 0;
    return VIGIL_OK;
}

void kernels_range(vigil_dtype dtype, const void *start, const void *delta, int64_t count, void *y) {
    switch (dtype) {
    case VIGIL_DTYPE_F32: {
        float s = *(const float *)start, d = *(const float *)delta;
        for (int64_t i = 0; i < count; i++) ((float *)y)[i] = s + (float)i * d;
        return;
    }
    case VIGIL_DTYPE_F64: {
        double s = *(const double *)start, d = *(const double *)delta;
        for (int64_t i = 0; i < count; i++) ((double *)y)[i] = s + (double)i * d;
        return;
    }
    case VIGIL_DTYPE_I64: {
        uint64_t s = (uint64_t)*(const int64_t *)start, d = (uint64_t)*(const int64_t *)delta;
        for (int64_t i = 0; i < count; i++) ((int64_t *)y)[i] = (int64_t)(s + (uint64_t)i * d);
        return;
    }
    case VIGIL_DTYPE_I32: {
        uint32_t s = (uint32_t)*(const int32_t *)start, d = (uint32_t)*(const int32_t *)delta;
        for (int64_t i = 0; i < count; i++) ((int32_t *)y)[i] = (int32_t)(s + (uint32_t)i * d);
        return;
    }
    default: return;
    }
}

/* ---- NonZero ---- */

static inline int nonzero_at(vigil_dtype dtype, const void *x, int64_t i) {
    switch (dtype) {
    case VIGIL_DTYPE_F32: return ((const float *)x)[i] != 0.0f;
    case VIGIL_DTYPE_F64: return ((const double *)x)[i] != 0.0;
    case VIGIL_DTYPE_F16: return (((const uint16_t *)x)[i] & 0x7fff) != 0;
    case VIGIL_DTYPE_I64: return ((const int64_t *)x)[i] != 0;
    case VIGIL_DTYPE_I32: return ((const int32_t *)x)[i] != 0;
    case VIGIL_DTYPE_U8:
    case VIGIL_DTYPE_I8:
    case VIGIL_DTYPE_BOOL: return ((const uint8_t *)x)[i] != 0;
    }
    return 0;
}

int64_t kernels_nonzero_count(vigil_dtype dtype, const void *x, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += nonzero_at(dtype, x, i);
    return c;
}

void kernels_nonzero(vigil_dtype dtype, const void *x, const kshape *xs, int64_t count, int64_t *y) {
    int64_t n = kshape_count(xs), found = 0, idx[KERNELS_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n && found < count; i++) {
        if (nonzero_at(dtype, x, i)) {
            for (int d = 0; d < xs->ndim; d++) y[d * count + found] = idx[d];
            found++;
        }
        for (int d = xs->ndim - 1; d >= 0; d--) {
            if (++idx[d] < xs->dims[d]) break;
            idx[d] = 0;
        }
    }
}
