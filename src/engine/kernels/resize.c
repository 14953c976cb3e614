/*
 * resize.c - ONNX Resize (nearest, N-linear, cubic) on F32 tensors of any rank.
 *
 * Resize is separable: every output coordinate along a dim maps to a few
 * input taps with weights, independently of the other dims.  So the kernel
 * first builds, per dim, a table of (index, weight) taps for every output
 * coordinate (1 tap for nearest, 2 for linear, 4 for cubic, and 1 for any dim
 * that the mapping leaves unchanged), then evaluates each output element as
 * the weighted sum over the product of its taps.  A 4-D NCHW bilinear resize
 * therefore costs 4 multiply-adds per output element and a nearest resize a
 * single table lookup.
 *
 * The coordinate mappings, rounding modes and edge handling follow the ONNX
 * operator specification and its reference implementation: out-of-range taps
 * read the edge value (or get weight 0 with exclude_outside), and with
 * tf_crop_and_resize a coordinate outside the input gives extrapolation_value.
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "engine/kernels/kernels.h"

void kernels_resize_defaults(kernels_resize_params *p) {
    memset(p, 0, sizeof *p);
    p->mode = KERNELS_RESIZE_NEAREST;
    p->coord = KERNELS_COORD_HALF_PIXEL;
    p->nearest = KERNELS_NEAREST_ROUND_PREFER_FLOOR;
    p->cubic_coeff_a = -0.75f;
    for (int i = 0; i < KERNELS_MAX_DIMS; i++) p->scales[i] = 1.0f;
}

vigil_status kernels_resize_shape(const kshape *xs, const float *scales, const int64_t *sizes, const int64_t *axes,
                                  int n, int keep_aspect_ratio_policy, kernels_resize_params *p, kshape *out,
                                  vigil_error *err) {
    if ((scales == NULL) == (sizes == NULL))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: exactly one of scales and sizes is needed");
    if (n < 0 || n > xs->ndim || (!axes && n != xs->ndim))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: %d scales/sizes for rank %d", n, xs->ndim);
    int dim_of[KERNELS_MAX_DIMS];
    uint8_t seen[KERNELS_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int a = i;
        if (axes) {
            vigil_status st = kernels_axis(axes[i], xs->ndim, &a, err);
            if (st != VIGIL_OK) return st;
        }
        if (seen[a]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: axis %d repeated", a);
        seen[a] = 1;
        dim_of[i] = a;
    }
    kshape r = *xs;
    for (int d = 0; d < xs->ndim; d++) p->scales[d] = 1.0f;
    if (scales) {
        for (int i = 0; i < n; i++) {
            int d = dim_of[i];
            if (!(scales[i] > 0))
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: scale %g must be positive",
                                       (double)scales[i]);
            p->scales[d] = scales[i];
            double extent = 1.0;
            if (p->coord == KERNELS_COORD_TF_CROP_AND_RESIZE && p->roi)
                extent = (double)p->roi[d + xs->ndim] - (double)p->roi[d];
            double size = floor((double)xs->dims[d] * extent * (double)scales[i]);
            if (!(size >= 0 && size <= (double)KERNELS_MAX_ELEMENTS))
                return vigil_error_set(err, VIGIL_ERR_LIMIT, "resize: output dim %g out of range", size);
            r.dims[d] = (int64_t)size;
        }
    } else {
        for (int i = 0; i < n; i++) {
            if (sizes[i] < 0)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: negative size %lld",
                                       (long long)sizes[i]);
            if (xs->dims[dim_of[i]] == 0 && sizes[i] != 0)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: cannot resize an empty dim");
        }
        double common = keep_aspect_ratio_policy == 1 ? INFINITY : 0.0;
        for (int i = 0; i < n && keep_aspect_ratio_policy; i++) {
            int64_t in = xs->dims[dim_of[i]];
            double s = in ? (double)sizes[i] / (double)in : 1.0;
            common = keep_aspect_ratio_policy == 1 ? fmin(common, s) : fmax(common, s);
        }
        for (int i = 0; i < n; i++) {
            int d = dim_of[i];
            int64_t in = xs->dims[d];
            if (keep_aspect_ratio_policy) {
                p->scales[d] = (float)common;
                double size = floor((double)in * common + 0.5);
                if (!(size >= 0 && size <= (double)KERNELS_MAX_ELEMENTS))
                    return vigil_error_set(err, VIGIL_ERR_LIMIT, "resize: output dim %g out of range", size);
                r.dims[d] = (int64_t)size;
            } else {
                p->scales[d] = in ? (float)((double)sizes[i] / (double)in) : 1.0f;
                r.dims[d] = sizes[i];
            }
        }
    }
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

/* Input coordinate of output coordinate o along one dim. */
static double resize_coord(const kernels_resize_params *p, int d, int ndim, int64_t o, int64_t in, int64_t out) {
    double scale = p->scales[d], x = (double)o;
    switch (p->coord) {
    case KERNELS_COORD_HALF_PIXEL: return (x + 0.5) / scale - 0.5;
    case KERNELS_COORD_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out / (scale * (double)in), center = (double)in / 2.0;
        return center * (1.0 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case KERNELS_COORD_PYTORCH_HALF_PIXEL: return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case KERNELS_COORD_ALIGN_CORNERS:
        /* The ONNX reference divides by the unrounded resized length in * scale
         * (equal to out when sizes were given); ONNX Runtime uses the integer
         * out, which differs only for non-integral in * scale. */
        return out == 1 ? 0.0 : x * (double)(in - 1) / (scale * (double)in - 1.0);
    case KERNELS_COORD_ASYMMETRIC: return x / scale;
    case KERNELS_COORD_TF_HALF_PIXEL_FOR_NEAREST: return (x + 0.5) / scale;
    case KERNELS_COORD_TF_CROP_AND_RESIZE: {
        double start = p->roi ? p->roi[d] : 0.0, end = p->roi ? p->roi[d + ndim] : 1.0;
        if (out > 1) return start * (double)(in - 1) + x * (end - start) * (double)(in - 1) / (double)(out - 1);
        return 0.5 * (start + end) * (double)(in - 1);
    }
    }
    return x;
}

static int64_t resize_nearest_index(kernels_resize_nearest mode, double x) {
    double f = floor(x), r = x - f;
    int64_t i = (int64_t)f;
    if (r == 0.0) return i;
    switch (mode) {
    case KERNELS_NEAREST_ROUND_PREFER_FLOOR: return r <= 0.5 ? i : i + 1;
    case KERNELS_NEAREST_ROUND_PREFER_CEIL: return r < 0.5 ? i : i + 1;
    case KERNELS_NEAREST_FLOOR: return i;
    case KERNELS_NEAREST_CEIL: return i + 1;
    }
    return i;
}

static void resize_cubic_coeffs(double r, double a, double *c) {
    double r1 = r + 1, s = 1 - r, s1 = s + 1;
    c[0] = ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a;
    c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
    c[2] = ((a + 2) * s - (a + 3)) * s * s + 1;
    c[3] = ((a * s1 - 5 * a) * s1 + 8 * a) * s1 - 4 * a;
}

/* Per-dim tap table. */
typedef struct resize_dim {
    int taps;
    int64_t *index; /* [out * taps] input element offsets (index * stride) */
    float *weight;  /* [out * taps] */
    uint8_t *outside; /* [out] 1 = extrapolation_value */
} resize_dim;

static int64_t clamp_index(int64_t i, int64_t in) {
    return i < 0 ? 0 : i >= in ? in - 1 : i;
}

/* Fills the taps of dim d (nominal tap count `taps`) and then shrinks it to 1
 * tap when every output coordinate reads exactly one input element. */
static void resize_dim_build(const kernels_resize_params *p, int d, int ndim, int64_t in, int64_t out, int64_t stride,
                             resize_dim *rd) {
    int taps = rd->taps;
    int crop = p->coord == KERNELS_COORD_TF_CROP_AND_RESIZE;
    int single = 1;
    for (int64_t o = 0; o < out; o++) {
        double x = resize_coord(p, d, ndim, o, in, out);
        int64_t *idx = rd->index + o * taps;
        float *w = rd->weight + o * taps;
        rd->outside[o] = crop && (x < 0 || x > (double)(in - 1));
        if (p->mode == KERNELS_RESIZE_NEAREST) {
            idx[0] = clamp_index(resize_nearest_index(p->nearest, x), in);
            w[0] = 1.0f;
            continue;
        }
        double f = floor(x), r = x - f, c[4];
        int64_t first = (int64_t)f - (taps == 4 ? 1 : 0);
        if (taps == 2) {
            c[0] = 1.0 - r;
            c[1] = r;
        } else {
            resize_cubic_coeffs(r, p->cubic_coeff_a, c);
        }
        double sum = 0.0;
        for (int t = 0; t < taps; t++) {
            int64_t i = first + t;
            if (p->exclude_outside && (i < 0 || i >= in)) c[t] = 0.0;
            sum += c[t];
        }
        for (int t = 0; t < taps; t++) {
            idx[t] = clamp_index(first + t, in);
            w[t] = (float)(p->exclude_outside && sum != 0.0 ? c[t] / sum : c[t]);
        }
        int nonzero = 0;
        for (int t = 0; t < taps; t++) nonzero += w[t] != 0.0f;
        if (nonzero > 1) single = 0;
        else {
            /* merge the taps into one: all read the same value only if weights sum to 1 */
            int64_t keep = idx[0];
            float total = 0.0f;
            for (int t = 0; t < taps; t++) {
                if (w[t] != 0.0f) keep = idx[t];
                total += w[t];
            }
            if (total != 1.0f) single = 0;
            idx[0] = keep;
        }
    }
    if (single && taps > 1) {
        for (int64_t o = 0; o < out; o++) {
            rd->index[o] = rd->index[o * taps];
            rd->weight[o] = 1.0f;
        }
        rd->taps = 1;
    }
    for (int64_t o = 0; o < out * rd->taps; o++) rd->index[o] *= stride;
}

/* Evaluation state: dims 0..n-2 form rows; the last dim is walked per element. */
typedef struct resize_rows {
    int64_t *offset; /* [max combos] input offset of each contributing row */
    float *weight;   /* [max combos] */
} resize_rows;

/* Lists the (offset, weight) combinations for output row idx[0..n-2]; returns
 * -1 when the row lies outside the crop (extrapolation). */
static int64_t resize_row_combos(const resize_dim *dims, int nrow, const int64_t *idx, resize_rows *rows) {
    int64_t count = 1;
    rows->offset[0] = 0;
    rows->weight[0] = 1.0f;
    for (int d = 0; d < nrow; d++) {
        const resize_dim *rd = &dims[d];
        int64_t o = idx[d];
        if (rd->outside[o]) return -1;
        if (rd->taps == 1) {
            for (int64_t c = 0; c < count; c++) rows->offset[c] += rd->index[o];
            continue;
        }
        /* expand each existing combination by the taps of this dim (in place, back to front) */
        for (int64_t c = count - 1; c >= 0; c--) {
            for (int t = rd->taps - 1; t >= 0; t--) {
                rows->offset[c * rd->taps + t] = rows->offset[c] + rd->index[o * rd->taps + t];
                rows->weight[c * rd->taps + t] = rows->weight[c] * rd->weight[o * rd->taps + t];
            }
        }
        count *= rd->taps;
    }
    return count;
}

vigil_status kernels_resize_f32(const float *x, const kshape *xs, float *y, const kshape *ys,
                                const kernels_resize_params *p, vigil_error *err) {
    int nd = xs->ndim;
    if (ys->ndim != nd) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: rank mismatch");
    int64_t total = kshape_count(ys);
    if (total == 0) return VIGIL_OK;
    if (nd == 0) {
        y[0] = x[0];
        return VIGIL_OK;
    }
    for (int d = 0; d < nd; d++)
        if (xs->dims[d] == 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "resize: empty input dim %d", d);
    int nominal = p->mode == KERNELS_RESIZE_NEAREST ? 1 : p->mode == KERNELS_RESIZE_LINEAR ? 2 : 4;
    int64_t xstrides[KERNELS_MAX_DIMS];
    kshape_strides(xs, xstrides);
    /* One allocation for every table. */
    size_t bytes = 0;
    int64_t max_combos = 1;
    for (int d = 0; d < nd; d++) {
        bytes += (size_t)ys->dims[d] * ((size_t)nominal * (sizeof(int64_t) + sizeof(float)) + 1);
        if (d < nd - 1) max_combos *= nominal;
    }
    bytes += (size_t)max_combos * (sizeof(int64_t) + sizeof(float)) + 64;
    char *block = vigil_malloc(bytes);
    if (!block) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "resize: %zu bytes of tables", bytes);
    resize_dim dims[KERNELS_MAX_DIMS];
    char *cursor = block;
    resize_rows rows;
    rows.offset = (int64_t *)cursor;
    cursor += (size_t)max_combos * sizeof(int64_t);
    for (int d = 0; d < nd; d++) {
        dims[d].taps = nominal;
        dims[d].index = (int64_t *)cursor;
        cursor += (size_t)ys->dims[d] * (size_t)nominal * sizeof(int64_t);
    }
    rows.weight = (float *)cursor;
    cursor += (size_t)max_combos * sizeof(float);
    for (int d = 0; d < nd; d++) {
        dims[d].weight = (float *)cursor;
        cursor += (size_t)ys->dims[d] * (size_t)nominal * sizeof(float);
    }
    for (int d = 0; d < nd; d++) {
        dims[d].outside = (uint8_t *)cursor;
        cursor += (size_t)ys->dims[d];
        resize_dim_build(p, d, nd, xs->dims[d], ys->dims[d], xstrides[d], &dims[d]);
    }
    const resize_dim *col = &dims[nd - 1];
    const int64_t width = ys->dims[nd - 1];
    int col_identity = col->taps == 1 && p->coord != KERNELS_COORD_TF_CROP_AND_RESIZE; /* e.g. C of NHWC */
    for (int64_t o = 0; o < width && col_identity; o++) col_identity = col->index[o] == o;
    const float extrapolation = p->extrapolation_value;
    int64_t idx[KERNELS_MAX_DIMS] = {0};
    for (float *row = y; row < y + total; row += width) {
        int64_t combos = resize_row_combos(dims, nd - 1, idx, &rows);
        if (combos < 0) {
            for (int64_t o = 0; o < width; o++) row[o] = extrapolation;
        } else if (col->taps == 1 && combos == 1) {
            const float *src = x + rows.offset[0];
            const float w0 = rows.weight[0];
            if (col_identity && w0 == 1.0f) memcpy(row, src, (size_t)width * sizeof *row); /* nearest, NHWC */
            else
                for (int64_t o = 0; o < width; o++) row[o] = col->outside[o] ? extrapolation : w0 * src[col->index[o]];
        } else {
            /* Contributing input rows outermost, so each pass is a tight loop
             * over the output row; the sum order per element is unchanged. */
            const int taps = col->taps;
            for (int64_t o = 0; o < width; o++) row[o] = 0.0f;
            for (int64_t c = 0; c < combos; c++) {
                const float *src = x + rows.offset[c];
                const float wc = rows.weight[c];
                const int64_t *ci = col->index;
                const float *cw = col->weight;
                if (col_identity) {
                    for (int64_t o = 0; o < width; o++) row[o] += wc * src[o];
                } else if (taps == 1) {
                    for (int64_t o = 0; o < width; o++) row[o] += wc * src[ci[o]];
                } else if (taps == 2) {
                    for (int64_t o = 0; o < width; o++)
                        row[o] += wc * (cw[2 * o] * src[ci[2 * o]] + cw[2 * o + 1] * src[ci[2 * o + 1]]);
                } else {
                    for (int64_t o = 0; o < width; o++) {
                        float part = 0.0f;
                        for (int t = 0; t < taps; t++) part += cw[o * taps + t] * src[ci[o * taps + t]];
                        row[o] += wc * part;
                    }
                }
            }
            if (p->coord == KERNELS_COORD_TF_CROP_AND_RESIZE)
                for (int64_t o = 0; o < width; o++)
                    if (col->outside[o]) row[o] = extrapolation;
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < ys->dims[d]) break;
            idx[d] = 0;
        }
    }
    vigil_free(block);
    return VIGIL_OK;
}
