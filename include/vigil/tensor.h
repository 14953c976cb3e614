/*
 * vigil/tensor.h - what a tensor is, for every layer: element types, a
 * non-owning view of a dense tensor, the description of a model's input or
 * output, and the one function that says how many bytes a tensor takes.
 *
 * The engine, the backends, the vision library and the request layer all
 * pass tensors in this form, so none of them needs another's header to talk
 * about one; the engine's own API (vigil/engine.h) includes this file.
 * Implemented in src/core/tensor.c.
 */
#ifndef VIGIL_TENSOR_H
#define VIGIL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_MAX_DIMS 8

typedef enum vigil_dtype {
    VIGIL_DTYPE_F32 = 0,
    VIGIL_DTYPE_I64,
    VIGIL_DTYPE_I32,
    VIGIL_DTYPE_U8,
    VIGIL_DTYPE_I8,
    VIGIL_DTYPE_BOOL,
    VIGIL_DTYPE_F64,
    VIGIL_DTYPE_F16,
} vigil_dtype;

const char *vigil_dtype_name(vigil_dtype dtype); /* "float32", "int64", ... */
/* Bytes of one element (0 for a value outside the enum). */
size_t vigil_dtype_size(vigil_dtype dtype);

/* A non-owning view of a dense, C-order tensor. */
typedef struct vigil_tensor {
    vigil_dtype dtype;
    int ndim;
    int64_t dims[VIGIL_MAX_DIMS];
    void *data;
} vigil_tensor;

/* Description of a model input or output.  dims[i] == -1 where the model
 * leaves the dimension symbolic (dim_names[i] then holds its name, if any). */
typedef struct vigil_tensor_info {
    const char *name;
    vigil_dtype dtype;
    int ndim;
    int64_t dims[VIGIL_MAX_DIMS];
    const char *dim_names[VIGIL_MAX_DIMS];
} vigil_tensor_info;

/* The bytes of t's data: its elements times vigil_dtype_size.  The one place
 * a tensor's size is computed; callers that validated dims beforehand (no
 * negative dimension, no overflow) get an exact answer. */
size_t vigil_tensor_bytes(const vigil_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
