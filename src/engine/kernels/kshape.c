/*
 * kshape.c - shape arithmetic shared by every kernel: element counts, strides,
 * numpy broadcasting, axis normalisation and the shape-only operators
 * (Reshape, Flatten, Squeeze, Unsqueeze) that need no data kernel.
 */
#include <stdio.h>
#include <string.h>

#include "engine/kernels/kernels_internal.h"

kshape kshape_make(int ndim, const int64_t *dims) {
    kshape s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.dims[i] = dims[i];
    return s;
}

int64_t kshape_count(const kshape *shape) {
    return kshape_range_count(shape, 0, shape->ndim);
}

int64_t kshape_range_count(const kshape *shape, int begin, int end) {
    int64_t n = 1;
    for (int i = begin; i < end; i++) n *= shape->dims[i];
    return n;
}

int kshape_equal(const kshape *a, const kshape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

void kshape_strides(const kshape *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = shape->ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape->dims[i];
    }
}

vigil_status kshape_check(const kshape *shape, vigil_error *err) {
    if (shape->ndim < 0 || shape->ndim > KERNELS_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "rank %d (max %d)", shape->ndim, KERNELS_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < shape->ndim; i++) {
        int64_t d = shape->dims[i];
        if (d < 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "negative dim %lld", (long long)d);
        if (d == 0) continue;
        if (!dim_mul(n, d, &n) || n > KERNELS_MAX_ELEMENTS)
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "tensor of more than %lld elements",
                                   (long long)KERNELS_MAX_ELEMENTS);
    }
    return VIGIL_OK;
}

static void shape_format(const kshape *s, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < s->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "", (long long)s->dims[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

vigil_status kshape_broadcast(const kshape *a, const kshape *b, kshape *out, vigil_error *err) {
    kshape r;
    r.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < r.ndim; i++) {
        int ia = i - (r.ndim - a->ndim), ib = i - (r.ndim - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[160], sb[160];
            shape_format(a, sa, sizeof sa);
            shape_format(b, sb, sizeof sb);
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "shapes %s and %s do not broadcast", sa, sb);
        }
        r.dims[i] = da == 1 ? db : da;
    }
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

vigil_status kshape_broadcast3(const kshape *a, const kshape *b, const kshape *c, kshape *out, vigil_error *err) {
    kshape ab;
    vigil_status st = kshape_broadcast(a, b, &ab, err);
    if (st != VIGIL_OK) return st;
    return kshape_broadcast(&ab, c, out, err);
}

vigil_status kernels_axis(int64_t axis, int ndim, int *out, vigil_error *err) {
    if (axis < -(int64_t)ndim || axis >= ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "axis %lld out of range for rank %d",
                               (long long)axis, ndim);
    *out = (int)(axis < 0 ? axis + ndim : axis);
    return VIGIL_OK;
}

vigil_status kernels_reshape_shape(const kshape *in, const int64_t *shape, int n, int allowzero, kshape *out,
                                   vigil_error *err) {
    if (n < 0 || n > KERNELS_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "reshape to rank %d (max %d)", n, KERNELS_MAX_DIMS);
    kshape r;
    r.ndim = n;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        int64_t d = shape[i];
        if (d == -1) {
            if (infer >= 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "reshape: more than one -1");
            infer = i;
            continue;
        }
        if (d == 0 && !allowzero) {
            if (i >= in->ndim)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "reshape: 0 at %d beyond input rank %d", i,
                                       in->ndim);
            d = in->dims[i];
        }
        if (d < 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "reshape: invalid dim %lld", (long long)d);
        r.dims[i] = d;
        if (!dim_mul(known, d, &known) || known > KERNELS_MAX_ELEMENTS)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "reshape: shape too large");
    }
    int64_t total = kshape_count(in);
    if (infer >= 0) {
        if (allowzero) {
            for (int i = 0; i < n; i++)
                if (shape[i] == 0)
                    return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "reshape: -1 with 0 under allowzero");
        }
        if (known == 0 || total % known != 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "reshape: cannot infer -1 (%lld elements, %lld known)", (long long)total,
                                   (long long)known);
        r.dims[infer] = total / known;
        known *= r.dims[infer];
    }
    if (known != total)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "reshape: %lld elements into %lld", (long long)total,
                               (long long)known);
    *out = r;
    return VIGIL_OK;
}

vigil_status kernels_flatten_shape(const kshape *in, int64_t axis, kshape *out, vigil_error *err) {
    if (axis < -(int64_t)in->ndim || axis > in->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "flatten: axis %lld out of range for rank %d",
                               (long long)axis, in->ndim);
    int a = (int)(axis < 0 ? axis + in->ndim : axis);
    out->ndim = 2;
    out->dims[0] = kshape_range_count(in, 0, a);
    out->dims[1] = kshape_range_count(in, a, in->ndim);
    return VIGIL_OK;
}

/* Marks axes[n] (relative to rank) in mask; duplicates and range errors fail. */
static vigil_status shape_axes_mask(const int64_t *axes, int n, int rank, uint8_t *mask, vigil_error *err) {
    memset(mask, 0, (size_t)rank);
    for (int i = 0; i < n; i++) {
        int a = 0;
        vigil_status st = kernels_axis(axes[i], rank, &a, err);
        if (st != VIGIL_OK) return st;
        if (mask[a]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "axis %lld repeated", (long long)axes[i]);
        mask[a] = 1;
    }
    return VIGIL_OK;
}

vigil_status kernels_squeeze_shape(const kshape *in, const int64_t *axes, int n, kshape *out, vigil_error *err) {
    uint8_t mask[KERNELS_MAX_DIMS];
    if (n == 0) {
        for (int i = 0; i < in->ndim; i++) mask[i] = in->dims[i] == 1;
    } else {
        vigil_status st = shape_axes_mask(axes, n, in->ndim, mask, err);
        if (st != VIGIL_OK) return st;
    }
    kshape r;
    r.ndim = 0;
    for (int i = 0; i < in->ndim; i++) {
        if (!mask[i]) {
            r.dims[r.ndim++] = in->dims[i];
        } else if (in->dims[i] != 1) {
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "squeeze: dim %d has size %lld, not 1", i,
                                   (long long)in->dims[i]);
        }
    }
    *out = r;
    return VIGIL_OK;
}

vigil_status kernels_unsqueeze_shape(const kshape *in, const int64_t *axes, int n, kshape *out, vigil_error *err) {
    int rank = in->ndim + n;
    if (n < 0 || rank > KERNELS_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "unsqueeze to rank %d (max %d)", rank, KERNELS_MAX_DIMS);
    uint8_t mask[KERNELS_MAX_DIMS];
    vigil_status st = shape_axes_mask(axes, n, rank, mask, err);
    if (st != VIGIL_OK) return st;
    kshape r;
    r.ndim = rank;
    for (int i = 0, j = 0; i < rank; i++) r.dims[i] = mask[i] ? 1 : in->dims[j++];
    *out = r;
    return VIGIL_OK;
}
