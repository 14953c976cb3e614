/*
 * movement.c - data-movement kernels, generic over the element size:
 * Transpose, Concat, Split, Slice, Tile, Pad, DepthToSpace, SpaceToDepth.
 *
 * Most of them are one "strided copy": walk the dense output in order and
 * read the input at a base offset plus per-dim strides (negative for reversed
 * slices).  Dims that stay contiguous are merged first, so the common 4-D
 * cases become a handful of long memcpy rows.  Transposes that move the
 * innermost dim are done in cache-sized 2-D tiles.
 */
#include <string.h>

#include "engine/kernels/kernels_internal.h"

/* Copies one output row of n elements read with element stride s. */
static void copy_strided_row(size_t elem, const char *src, int64_t s, char *dst, int64_t n) {
    if (s == 1) {
        memcpy(dst, src, (size_t)n * elem);
        return;
    }
    switch (elem) {
    case 1: for (int64_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = ((const uint8_t *)src)[i * s]; return;
    case 2: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = ((const uint16_t *)src)[i * s]; return;
    case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)dst)[i] = ((const uint32_t *)src)[i * s]; return;
    case 8: for (int64_t i = 0; i < n; i++) ((uint64_t *)dst)[i] = ((const uint64_t *)src)[i * s]; return;
    default:
        for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * elem, src + (i * s) * (int64_t)elem, elem);
    }
}

/* A strided view: out dims with the input stride of each (in elements). */
typedef struct view {
    int ndim;
    int64_t dims[KERNELS_MAX_DIMS];
    int64_t strides[KERNELS_MAX_DIMS];
} view;

/* Drops size-1 dims and merges neighbours that are contiguous in the input. */
static void view_compact(view *v) {
    int n = 0;
    for (int d = 0; d < v->ndim; d++) {
        if (v->dims[d] == 1) continue;
        if (n > 0 && v->strides[n - 1] == v->strides[d] * v->dims[d]) {
            v->dims[n - 1] *= v->dims[d];
            v->strides[n - 1] = v->strides[d];
        } else {
            v->dims[n] = v->dims[d];
            v->strides[n] = v->strides[d];
            n++;
        }
    }
    v->ndim = n;
}

/* y (dense, in view order) = x[base + sum idx[d] * strides[d]]. */
static void view_copy(size_t elem, const void *x, int64_t base, view v, void *y) {
    for (int d = 0; d < v.ndim; d++)
        if (v.dims[d] == 0) return;
    view_compact(&v);
    int64_t inner = v.ndim ? v.dims[v.ndim - 1] : 1, s = v.ndim ? v.strides[v.ndim - 1] : 1;
    int64_t idx[KERNELS_MAX_DIMS] = {0}, off = base;
    char *dst = y;
    const char *src = x;
    for (;;) {
        copy_strided_row(elem, src + off * (int64_t)elem, s, dst, inner);
        dst += (size_t)inner * elem;
        int d = v.ndim - 2;
        for (; d >= 0; d--) {
            off += v.strides[d];
            if (++idx[d] < v.dims[d]) break;
            off -= v.strides[d] * v.dims[d];
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

/* ---- Transpose ---- */

vigil_status kernels_transpose_shape(const kshape *xs, const int *perm, kshape *ys, vigil_error *err) {
    uint8_t seen[KERNELS_MAX_DIMS] = {0};
    for (int i = 0; i < xs->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= xs->ndim || seen[perm[i]])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "transpose: perm is not a permutation of 0..%d",
                                   xs->ndim - 1);
        seen[perm[i]] = 1;
    }
    ys->ndim = xs->ndim;
    for (int i = 0; i < xs->ndim; i++) ys->dims[i] = xs->dims[perm[i]];
    return VIGIL_OK;
}

#define TILE 32

/* Tiled 2-D transpose of an a x b block: y[i * ys + j] = x[i + j * xs]
 * (x walks i contiguously, y walks j contiguously). */
static void transpose_block(size_t elem, const char *x, int64_t xstride, char *y, int64_t ystride, int64_t a,
                            int64_t b) {
    for (int64_t i0 = 0; i0 < a; i0 += TILE) {
        int64_t i1 = i0 + TILE < a ? i0 + TILE : a;
        for (int64_t j0 = 0; j0 < b; j0 += TILE) {
            int64_t j1 = j0 + TILE < b ? j0 + TILE : b;
#define TRANSPOSE_TILE(T)                                                                       \
    for (int64_t i = i0; i < i1; i++)                                                           \
        for (int64_t j = j0; j < j1; j++) ((T *)y)[i * ystride + j] = ((const T *)x)[i + j * xstride];
            switch (elem) {
            case 1: TRANSPOSE_TILE(uint8_t); break;
            case 2: TRANSPOSE_TILE(uint16_t); break;
            case 4: TRANSPOSE_TILE(uint32_t); break;
            case 8: TRANSPOSE_TILE(uint64_t); break;
            default:
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = j0; j < j1; j++)
                        memcpy(y + (size_t)(i * ystride + j) * elem, x + (size_t)(i + j * xstride) * elem, elem);
            }
#undef TRANSPOSE_TILE
        }
    }
}

void kernels_transpose(size_t elem, const void *x, const kshape *xs, const int *perm, void *y) {
    if (kshape_count(xs) == 0) return;
    int64_t xstrides[KERNELS_MAX_DIMS];
    kshape_strides(xs, xstrides);
    view v;
    v.ndim = xs->ndim;
    for (int i = 0; i < xs->ndim; i++) {
        v.dims[i] = xs->dims[perm[i]];
        v.strides[i] = xstrides[perm[i]];
    }
    view_compact(&v);
    /* Find the output dim that is the input's contiguous one. */
    int j = -1;
    for (int d = 0; d < v.ndim; d++)
        if (v.strides[d] == 1) j = d;
    if (j < 0 || j == v.ndim - 1 || v.dims[v.ndim - 1] < 4) {
        view_copy(elem, x, 0, v, y);
        return;
    }
    /* Tiled path: the block [dims[j], dims[last]] is a 2-D transpose; loop over the rest. */
    int last = v.ndim - 1;
    int64_t ystrides[KERNELS_MAX_DIMS], s = 1;
    for (int d = last; d >= 0; d--) {
        ystrides[d] = s;
        s *= v.dims[d];
    }
    int outer_dims[KERNELS_MAX_DIMS], n_outer = 0;
    for (int d = 0; d < last; d++)
        if (d != j) outer_dims[n_outer++] = d;
    int64_t idx[KERNELS_MAX_DIMS] = {0}, xoff = 0, yoff = 0;
    for (;;) {
        transpose_block(elem, (const char *)x + (size_t)xoff * elem, v.strides[last], (char *)y + (size_t)yoff * elem,
                        ystrides[j], v.dims[j], v.dims[last]);
        int k = n_outer - 1;
        for (; k >= 0; k--) {
            int d = outer_dims[k];
            xoff += v.strides[d];
            yoff += ystrides[d];
            if (++idx[k] < v.dims[d]) break;
            xoff -= v.strides[d] * v.dims[d];
            yoff -= ystrides[d] * v.dims[d];
            idx[k] = 0;
        }
        if (k < 0) return;
    }
}

/* ---- Concat / Split ---- */

vigil_status kernels_concat_shape(int axis, int n, const kshape *in, kshape *out, vigil_error *err) {
    if (n < 1) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "concat: no inputs");
    if (axis < 0 || axis >= in[0].ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "concat: axis %d out of range for rank %d", axis,
                               in[0].ndim);
    kshape r = in[0];
    for (int i = 1; i < n; i++) {
        if (in[i].ndim != r.ndim)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "concat: input %d has rank %d, expected %d", i,
                                   in[i].ndim, r.ndim);
        for (int d = 0; d < r.ndim; d++) {
            if (d == axis) continue;
            if (in[i].dims[d] != r.dims[d])
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                       "concat: input %d dim %d is %lld, expected %lld", i, d,
                                       (long long)in[i].dims[d], (long long)r.dims[d]);
        }
        if (!dim_add(r.dims[axis], in[i].dims[axis], &r.dims[axis]))
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "concat: output too large");
    }
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

void kernels_concat_rows(size_t elem, int axis, int n, const void *const *x, const kshape *xs, void *y, int64_t o0,
                         int64_t o1) {
    int64_t inner = kshape_range_count(&xs[0], axis + 1, xs[0].ndim), row = 0;
    for (int i = 0; i < n; i++) row += xs[i].dims[axis] * inner;
    char *dst = (char *)y + (size_t)(o0 * row) * elem;
    for (int64_t o = o0; o < o1; o++) {
        for (int i = 0; i < n; i++) {
            size_t chunk = (size_t)(xs[i].dims[axis] * inner) * elem;
            if (!chunk) continue; /* empty inputs may have no buffer */
            memcpy(dst, (const char *)x[i] + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    }
}

void kernels_concat(size_t elem, int axis, int n, const void *const *x, const kshape *xs, void *y) {
    kernels_concat_rows(elem, axis, n, x, xs, y, 0, kshape_range_count(&xs[0], 0, axis));
}

vigil_status kernels_split_check(const kshape *xs, int axis, int n, const int64_t *sizes, vigil_error *err) {
    if (axis < 0 || axis >= xs->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "split: axis %d out of range for rank %d", axis,
                               xs->ndim);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "split: negative size %lld", (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != xs->dims[axis])
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "split: sizes sum to %lld, dim is %lld",
                               (long long)total, (long long)xs->dims[axis]);
    return VIGIL_OK;
}

vigil_status kernels_split_even(int64_t dim, int n, int exact, int64_t *sizes, vigil_error *err) {
    if (n < 1) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "split: %d outputs", n);
    if (exact && dim % n != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "split: dim %lld does not divide into %d parts",
                               (long long)dim, n);
    int64_t part = (dim + n - 1) / n, left = dim;
    for (int i = 0; i < n; i++) {
        sizes[i] = part < left ? part : left;
        left -= sizes[i];
    }
    return VIGIL_OK;
}

void kernels_split_rows(size_t elem, const void *x, const kshape *xs, int axis, int n, const int64_t *sizes,
                        void *const *y, int64_t o0, int64_t o1) {
    int64_t inner = kshape_range_count(xs, axis + 1, xs->ndim);
    const char *src = (const char *)x + (size_t)(o0 * xs->dims[axis] * inner) * elem;
    for (int64_t o = o0; o < o1; o++) {
        for (int i = 0; i < n; i++) {
            size_t chunk = (size_t)(sizes[i] * inner) * elem;
            if (!chunk) continue;
            memcpy((char *)y[i] + (size_t)o * chunk, src, chunk);
            src += chunk;
        }
    }
}

void kernels_split(size_t elem, const void *x, const kshape *xs, int axis, int n, const int64_t *sizes, void *const *y) {
    kernels_split_rows(elem, x, xs, axis, n, sizes, y, 0, kshape_range_count(xs, 0, axis));
}

/* ---- Slice ---- */

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

vigil_status kernels_slice_normalize(const kshape *xs, const int64_t *starts, const int64_t *ends,
                                     const int64_t *axes, const int64_t *steps, int n, kslice *out,
                                     vigil_error *err) {
    if (n < 0 || n > xs->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "slice: %d axes for rank %d", n, xs->ndim);
    kslice r;
    r.out = *xs;
    for (int d = 0; d < xs->ndim; d++) {
        r.start[d] = 0;
        r.step[d] = 1;
    }
    uint8_t seen[KERNELS_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int a = i;
        if (axes) {
            vigil_status st = kernels_axis(axes[i], xs->ndim, &a, err);
            if (st != VIGIL_OK) return st;
        }
        if (seen[a]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "slice: axis %d repeated", a);
        seen[a] = 1;
        int64_t step = steps ? steps[i] : 1, dim = xs->dims[a];
        if (step == 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "slice: step 0 on axis %d", a);
        int64_t s = starts[i], e = ends[i];
        /* INT64_MIN + dim cannot overflow; INT64_MAX stays large. */
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        int64_t count;
        if (dim == 0) {
            s = 0;
            count = 0;
        } else if (step > 0) {
            s = clamp64(s, 0, dim);
            e = clamp64(e, 0, dim);
            count = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = clamp64(s, 0, dim - 1);
            e = clamp64(e, -1, dim - 1);
            count = s > e ? (s - e + (-step) - 1) / (-step) : 0;
        }
        r.start[a] = count ? s : 0;
        r.step[a] = step;
        r.out.dims[a] = count;
    }
    *out = r;
    return VIGIL_OK;
}

void kernels_slice(size_t elem, const void *x, const kshape *xs, const kslice *slice, void *y) {
    int64_t strides[KERNELS_MAX_DIMS], base = 0;
    kshape_strides(xs, strides);
    view v;
    v.ndim = xs->ndim;
    for (int d = 0; d < xs->ndim; d++) {
        base += slice->start[d] * strides[d];
        v.dims[d] = slice->out.dims[d];
        v.strides[d] = slice->step[d] * strides[d];
    }
    view_copy(elem, x, base, v, y);
}

/* ---- Tile ---- */

vigil_status kernels_tile_shape(const kshape *xs, const int64_t *repeats, kshape *out, vigil_error *err) {
    kshape r = *xs;
    for (int d = 0; d < xs->ndim; d++) {
        if (repeats[d] < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tile: negative repeat %lld",
                                   (long long)repeats[d]);
        if (!dim_mul(r.dims[d], repeats[d], &r.dims[d]))
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "tile: output too large");
    }
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

void kernels_tile(size_t elem, const void *x, const kshape *xs, void *y, const kshape *ys) {
    if (kshape_count(ys) == 0) return;
    if (xs->ndim == 0) {
        memcpy(y, x, elem);
        return;
    }
    int64_t xstrides[KERNELS_MAX_DIMS];
    kshape_strides(xs, xstrides);
    int last = xs->ndim - 1;
    int64_t row = xs->dims[last], reps = ys->dims[last] / row;
    int64_t idx[KERNELS_MAX_DIMS] = {0};
    char *dst = y;
    for (;;) {
        int64_t off = 0;
        for (int d = 0; d < last; d++) off += (idx[d] % xs->dims[d]) * xstrides[d];
        for (int64_t r = 0; r < reps; r++) {
            memcpy(dst, (const char *)x + (size_t)off * elem, (size_t)row * elem);
            dst += (size_t)row * elem;
        }
        int d = last - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < ys->dims[d]) break;
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

/* ---- Pad ---- */

vigil_status kernels_pad_shape(const kshape *xs, const int64_t *pads, kernels_pad_mode mode, kshape *out,
                               vigil_error *err) {
    kshape r = *xs;
    for (int d = 0; d < xs->ndim; d++) {
        int64_t b = pads[d], e = pads[d + xs->ndim];
        if (!dim_add(xs->dims[d], b, &r.dims[d]) || !dim_add(r.dims[d], e, &r.dims[d]))
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "pad: pads too large on dim %d", d);
        if (r.dims[d] < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "pad: dim %d becomes negative (%lld)", d,
                                   (long long)r.dims[d]);
        int padded = b > 0 || e > 0;
        if (padded && mode != KERNELS_PAD_CONSTANT && xs->dims[d] == 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "pad: cannot %s-pad an empty dim %d",
                                   mode == KERNELS_PAD_REFLECT ? "reflect" : "edge/wrap", d);
    }
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

/* Source index along one dim for output index i, or -1 for the constant. */
static inline int64_t pad_source(int64_t i, int64_t dim, int64_t begin, kernels_pad_mode mode) {
    int64_t s = i - begin;
    if (s >= 0 && s < dim) return s;
    switch (mode) {
    case KERNELS_PAD_CONSTANT: return -1;
    case KERNELS_PAD_EDGE: return s < 0 ? 0 : dim - 1;
    case KERNELS_PAD_WRAP: return ((s % dim) + dim) % dim;
    case KERNELS_PAD_REFLECT: {
        if (dim == 1) return 0;
        int64_t period = 2 * (dim - 1), r = ((s % period) + period) % period;
        return r < dim ? r : period - r;
    }
    }
    return -1;
}

void kernels_pad(size_t elem, const void *x, const kshape *xs, const int64_t *pads, kernels_pad_mode mode,
                 const void *value, void *y, const kshape *ys) {
    if (kshape_count(ys) == 0) return;
    static const uint64_t zero[4] = {0, 0, 0, 0};
    const void *fill = value ? value : (elem <= sizeof zero ? (const void *)zero : NULL);
    int nd = xs->ndim;
    if (nd == 0) {
        memcpy(y, x, elem);
        return;
    }
    int64_t xstrides[KERNELS_MAX_DIMS];
    kshape_strides(xs, xstrides);
    int last = nd - 1;
    int64_t width = ys->dims[last], xdim = xs->dims[last], begin = pads[last];
    /* Middle part of each row that copies straight from the input row. */
    int64_t mid_lo = begin > 0 ? begin : 0, mid_hi = begin + xdim < width ? begin + xdim : width;
    if (mid_hi < mid_lo) mid_hi = mid_lo;
    int64_t idx[KERNELS_MAX_DIMS] = {0};
    char *dst = y;
    const char *src = x;
    for (;;) {
        int64_t off = 0;
        int constant_row = 0;
        for (int d = 0; d < last && !constant_row; d++) {
            int64_t s = xs->dims[d] ? pad_source(idx[d], xs->dims[d], pads[d], mode) : -1;
            if (s < 0) constant_row = 1;
            else off += s * xstrides[d];
        }
        if (constant_row || xdim == 0) {
            if (fill) kernels_fill(elem, fill, dst, width);
            else memset(dst, 0, (size_t)width * elem);
        } else {
            const char *row = src + (size_t)off * elem;
            for (int64_t j = 0; j < width; j++) {
                if (j == mid_lo && mid_hi > mid_lo) {
                    memcpy(dst + (size_t)j * elem, row + (size_t)(j - begin) * elem, (size_t)(mid_hi - mid_lo) * elem);
                    j = mid_hi - 1;
                    continue;
                }
                int64_t s = pad_source(j, xdim, begin, mode);
                if (s >= 0) memcpy(dst + (size_t)j * elem, row + (size_t)s * elem, elem);
                else if (fill) memcpy(dst + (size_t)j * elem, fill, elem);
                else memset(dst + (size_t)j * elem, 0, elem);
            }
        }
        dst += (size_t)width * elem;
        int d = last - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < ys->dims[d]) break;
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

/* ---- DepthToSpace / SpaceToDepth: transposes of a 6-D view ---- */

vigil_status kernels_depth_to_space_shape(const kshape *xs, int64_t blocksize, kshape *out, vigil_error *err) {
    if (xs->ndim != 4 || blocksize < 1 || blocksize > (1 << 16) || xs->dims[1] % (blocksize * blocksize) != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "depth_to_space: needs 4-D input with channels divisible by blocksize^2");
    int64_t d[4] = {xs->dims[0], xs->dims[1] / (blocksize * blocksize), 0, 0};
    if (!dim_mul(xs->dims[2], blocksize, &d[2]) || !dim_mul(xs->dims[3], blocksize, &d[3]))
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "depth_to_space: output too large");
    kshape r = kshape_make(4, d);
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

void kernels_depth_to_space(size_t elem, const void *x, const kshape *xs, int64_t blocksize, int crd, void *y) {
    int64_t b = blocksize, n = xs->dims[0], c = xs->dims[1] / (b * b), h = xs->dims[2], w = xs->dims[3];
    if (crd) {
        int64_t d[6] = {n, c, b, b, h, w};
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        kshape s = kshape_make(6, d);
        kernels_transpose(elem, x, &s, perm, y);
    } else {
        int64_t d[6] = {n, b, b, c, h, w};
        static const int perm[6] = {0, 3, 4, 1, 5, 2};
        kshape s = kshape_make(6, d);
        kernels_transpose(elem, x, &s, perm, y);
    }
}

vigil_status kernels_space_to_depth_shape(const kshape *xs, int64_t blocksize, kshape *out, vigil_error *err) {
    if (xs->ndim != 4 || blocksize < 1 || blocksize > (1 << 16) || xs->dims[2] % blocksize != 0 ||
        xs->dims[3] % blocksize != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "space_to_depth: needs 4-D input with H and W divisible by blocksize");
    int64_t d[4] = {xs->dims[0], 0, xs->dims[2] / blocksize, xs->dims[3] / blocksize};
    if (!dim_mul(xs->dims[1], blocksize * blocksize, &d[1]))
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "space_to_depth: output too large");
    kshape r = kshape_make(4, d);
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

void kernels_space_to_depth(size_t elem, const void *x, const kshape *xs, int64_t blocksize, void *y) {
    int64_t b = blocksize;
    int64_t d[6] = {xs->dims[0], xs->dims[1], xs->dims[2] / b, b, xs->dims[3] / b, b};
    static const int perm[6] = {0, 3, 5, 1, 2, 4};
    kshape s = kshape_make(6, d);
    kernels_transpose(elem, x, &s, perm, y);
}
