/*
 * npy.h - NumPy .npy v1/v2 files: read and write little-endian f32, f64, f16,
 * i64, i32, i8, u8 and bool arrays in C order.  Used by `vigil infer`, the tests and the
 * reference comparisons.
 */
#ifndef VIGIL_CORE_NPY_H
#define VIGIL_CORE_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

#define NPY_MAX_DIMS 8

typedef enum npy_dtype { NPY_F32, NPY_F64, NPY_I64, NPY_I32, NPY_U8, NPY_BOOL, NPY_F16, NPY_I8 } npy_dtype;

typedef struct npy_array {
    npy_dtype dtype;
    int ndim;
    int64_t dims[NPY_MAX_DIMS];
    size_t count;   /* product of dims */
    void *data;     /* owned; vigil_aligned_alloc'd (64 bytes); freed by npy_free */
} npy_array;

size_t npy_dtype_size(npy_dtype dtype);
/* Reads path into *out (fields owned by out).  Fortran order, big-endian and
 * other dtypes are VIGIL_ERR_UNSUPPORTED; malformed headers VIGIL_ERR_PARSE. */
vigil_status npy_read(const char *path, npy_array *out, vigil_error *err);
/* Parses an in-memory .npy image. */
vigil_status npy_parse(const void *buf, size_t size, npy_array *out, vigil_error *err);
/* Writes data (count = product of dims elements of dtype) to path. */
vigil_status npy_write(const char *path, npy_dtype dtype, int ndim, const int64_t *dims, const void *data,
                       vigil_error *err);
void npy_free(npy_array *arr);

#endif
