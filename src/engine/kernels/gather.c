/*
 * gather.c - index-driven data movement: Gather, GatherElements, GatherND,
 * ScatterND and ScatterElements, generic over the element size.
 *
 * Indices come from tensors (I64 or I32), so they are data, not programmer
 * input: every index is range-checked and negative indices count from the
 * end, as ONNX specifies.  An out-of-range index is a status, never a read
 * outside the buffer.
 */
#include <string.h>

#include "engine/kernels/kernels.h"

static inline int64_t gather_index(const void *indices, vigil_dtype dtype, int64_t i) {
    return dtype == VIGIL_DTYPE_I32 ? ((const int32_t *)indices)[i] : ((const int64_t *)indices)[i];
}

/* Checks every index against [-dim, dim). */
static vigil_status gather_check(const void *indices, vigil_dtype dtype, int64_t n, int64_t dim, const char *op,
                                 vigil_error *err) {
    if (dtype != VIGIL_DTYPE_I64 && dtype != VIGIL_DTYPE_I32)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s: indices must be int64 or int32", op);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = gather_index(indices, dtype, i);
        if (v < -dim || v >= dim)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: index %lld out of range [-%lld, %lld)", op,
                                   (long long)v, (long long)dim, (long long)dim);
    }
    return VIGIL_OK;
}

static inline int64_t wrap_index(int64_t v, int64_t dim) {
    return v < 0 ? v + dim : v;
}

vigil_status kernels_gather_shape(const kshape *data, const kshape *indices, int axis, kshape *out,
                                  vigil_error *err) {
    if (axis < 0 || axis >= data->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gather: axis %d out of range for rank %d", axis,
                               data->ndim);
    int rank = data->ndim - 1 + indices->ndim;
    if (rank > KERNELS_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "gather: output rank %d (max %d)", rank,
                               KERNELS_MAX_DIMS);
    kshape r;
    r.ndim = 0;
    for (int d = 0; d < axis; d++) r.dims[r.ndim++] = data->dims[d];
    for (int d = 0; d < indices->ndim; d++) r.dims[r.ndim++] = indices->dims[d];
    for (int d = axis + 1; d < data->ndim; d++) r.dims[r.ndim++] = data->dims[d];
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

vigil_status kernels_gather(size_t elem, const void *data, const kshape *ds, int axis, const void *indices,
                            vigil_dtype index_dtype, const kshape *is, void *y, vigil_error *err) {
    int64_t n_idx = kshape_count(is), dim = ds->dims[axis];
    vigil_status st = gather_check(indices, index_dtype, n_idx, dim, "gather", err);
    if (st != VIGIL_OK) return st;
    int64_t outer = kshape_range_count(ds, 0, axis), inner = kshape_range_count(ds, axis + 1, ds->ndim);
    size_t row = (size_t)inner * elem;
    if (row == 0 || n_idx == 0) return VIGIL_OK;
    char *dst = y;
    for (int64_t o = 0; o < outer; o++) {
        const char *base = (const char *)data + (size_t)(o * dim) * row;
        for (int64_t k = 0; k < n_idx; k++) {
            int64_t v = wrap_index(gather_index(indices, index_dtype, k), dim);
            memcpy(dst, base + (size_t)v * row, row);
            dst += row;
        }
    }
    return VIGIL_OK;
}

/* Walks every position of shape `is` calling the element-offset callback via
 * a counter; used by the *Elements kernels.  Returns the data offset of
 * position i given its multi-index and the index value along axis. */
static inline int64_t elements_offset(const int64_t *idx, int ndim, int axis, int64_t v, const int64_t *dstrides) {
    int64_t off = 0;
    for (int d = 0; d < ndim; d++) off += (d == axis ? v : idx[d]) * dstrides[d];
    return off;
}

static vigil_status elements_check(const kshape *ds, int axis, const kshape *is, const char *op, vigil_error *err) {
    if (is->ndim != ds->ndim || axis < 0 || axis >= ds->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: indices rank %d / axis %d vs data rank %d", op,
                               is->ndim, axis, ds->ndim);
    for (int d = 0; d < ds->ndim; d++)
        if (d != axis && is->dims[d] > ds->dims[d])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: indices dim %d (%lld) exceeds data (%lld)",
                                   op, d, (long long)is->dims[d], (long long)ds->dims[d]);
    return VIGIL_OK;
}

/* Shared walk of GatherElements / ScatterElements: scatter = 0 copies
 * data[off] -> y[i], scatter = 1 copies updates[i] -> y[off]. */
static vigil_status elements_walk(size_t elem, const void *src, void *dst, const kshape *ds, int axis,
                                  const void *indices, vigil_dtype index_dtype, const kshape *is, int scatter,
                                  const char *op, vigil_error *err) {
    vigil_status st = elements_check(ds, axis, is, op, err);
    if (st != VIGIL_OK) return st;
    int64_t n = kshape_count(is);
    st = gather_check(indices, index_dtype, n, ds->dims[axis], op, err);
    if (st != VIGIL_OK || n == 0) return st;
    int64_t dstrides[KERNELS_MAX_DIMS], idx[KERNELS_MAX_DIMS] = {0};
    kshape_strides(ds, dstrides);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = wrap_index(gather_index(indices, index_dtype, i), ds->dims[axis]);
        int64_t off = elements_offset(idx, ds->ndim, axis, v, dstrides);
        if (scatter) memcpy((char *)dst + (size_t)off * elem, (const char *)src + (size_t)i * elem, elem);
        else memcpy((char *)dst + (size_t)i * elem, (const char *)src + (size_t)off * elem, elem);
        for (int d = is->ndim - 1; d >= 0; d--) {
            if (++idx[d] < is->dims[d]) break;
            idx[d] = 0;
        }
    }
    return VIGIL_OK;
}

vigil_status kernels_gather_elements(size_t elem, const void *data, const kshape *ds, int axis, const void *indices,
                                     vigil_dtype index_dtype, const kshape *is, void *y, vigil_error *err) {
    return elements_walk(elem, data, y, ds, axis, indices, index_dtype, is, 0, "gather_elements", err);
}

vigil_status kernels_scatter_elements(size_t elem, void *y, const kshape *ds, int axis, const void *indices,
                                      vigil_dtype index_dtype, const kshape *is, const void *updates,
                                      vigil_error *err) {
    return elements_walk(elem, updates, y, ds, axis, indices, index_dtype, is, 1, "scatter_elements", err);
}

/* ---- GatherND / ScatterND ---- */

vigil_status kernels_gather_nd_shape(const kshape *data, const kshape *indices, int batch_dims, kshape *out,
                                     vigil_error *err) {
    if (indices->ndim < 1 || batch_dims < 0 || batch_dims >= indices->ndim || batch_dims >= data->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gather_nd: bad ranks or batch_dims");
    int64_t k = indices->dims[indices->ndim - 1];
    if (k < 1 || batch_dims + k > data->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gather_nd: index depth %lld too large",
                               (long long)k);
    for (int d = 0; d < batch_dims; d++)
        if (indices->dims[d] != data->dims[d])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gather_nd: batch dim %d differs", d);
    int rank = indices->ndim - 1 + data->ndim - batch_dims - (int)k;
    if (rank > KERNELS_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "gather_nd: output rank %d", rank);
    kshape r;
    r.ndim = 0;
    for (int d = 0; d < indices->ndim - 1; d++) r.dims[r.ndim++] = indices->dims[d];
    for (int d = batch_dims + (int)k; d < data->ndim; d++) r.dims[r.ndim++] = data->dims[d];
    vigil_status st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

/* Offset (elements) of an index tuple tup[k] into data starting at dim first.
 * *off is written on every path: gcc -O3 (Release) cannot see that the
 * error path's status is never VIGIL_OK and warned maybe-uninitialized. */
static vigil_status nd_offset(const int64_t *tup, int64_t k, const kshape *ds, int first, const int64_t *dstrides,
                              int64_t *off, const char *op, vigil_error *err) {
    int64_t o = 0;
    *off = 0;
    for (int64_t j = 0; j < k; j++) {
        int64_t dim = ds->dims[first + j], v = tup[j];
        if (v < -dim || v >= dim)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: index %lld out of range for dim %lld", op,
                                   (long long)v, (long long)dim);
        o += wrap_index(v, dim) * dstrides[first + j];
    }
    *off = o;
    return VIGIL_OK;
}

vigil_status kernels_gather_nd(size_t elem, const void *data, const kshape *ds, const int64_t *indices,
                               const kshape *is, int batch_dims, void *y, vigil_error *err) {
    kshape os;
    vigil_status st = kernels_gather_nd_shape(ds, is, batch_dims, &os, err);
    if (st != VIGIL_OK) return st;
    int64_t k = is->dims[is->ndim - 1];
    int64_t batches = kshape_range_count(ds, 0, batch_dims);
    int64_t per_batch = kshape_range_count(is, batch_dims, is->ndim - 1);
    int64_t slice = kshape_range_count(ds, batch_dims + (int)k, ds->ndim);
    int64_t batch_stride = kshape_range_count(ds, batch_dims, ds->ndim);
    int64_t dstrides[KERNELS_MAX_DIMS];
    kshape_strides(ds, dstrides);
    char *dst = y;
    for (int64_t b = 0; b < batches; b++) {
        for (int64_t t = 0; t < per_batch; t++) {
            int64_t off;
            st = nd_offset(indices + (b * per_batch + t) * k, k, ds, batch_dims, dstrides, &off, "gather_nd", err);
            if (st != VIGIL_OK) return st;
            if (slice == 0) continue;
            memcpy(dst, (const char *)data + (size_t)(b * batch_stride + off) * elem, (size_t)slice * elem);
            dst += (size_t)slice * elem;
        }
    }
    return VIGIL_OK;
}

vigil_status kernels_scatter_nd(size_t elem, void *y, const kshape *ds, const int64_t *indices, const kshape *is,
                                const void *updates, vigil_error *err) {
    if (is->ndim < 1) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "scatter_nd: indices must have rank >= 1");
    int64_t k = is->dims[is->ndim - 1];
    if (k < 1 || k > ds->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "scatter_nd: index depth %lld for rank %d",
                               (long long)k, ds->ndim);
    int64_t tuples = kshape_range_count(is, 0, is->ndim - 1);
    int64_t slice = kshape_range_count(ds, (int)k, ds->ndim);
    int64_t dstrides[KERNELS_MAX_DIMS];
    kshape_strides(ds, dstrides);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off;
        vigil_status st = nd_offset(indices + t * k, k, ds, 0, dstrides, &off, "scatter_nd", err);
        if (st != VIGIL_OK) return st;
        if (slice == 0) continue;
        memcpy((char *)y + (size_t)off * elem, (const char *)updates + (size_t)(t * slice) * elem,
               (size_t)slice * elem);
    }
    return VIGIL_OK;
}
