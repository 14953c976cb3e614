/*
 * tensor.c - the element types and the one tensor byte-size rule
 * (vigil/tensor.h), in core because every layer above computes sizes.
 */
#include "vigil/tensor.h"

const char *vigil_dtype_name(vigil_dtype dtype) {
    switch (dtype) {
    case VIGIL_DTYPE_F32: return "float32";
    case VIGIL_DTYPE_I64: return "int64";
    case VIGIL_DTYPE_I32: return "int32";
    case VIGIL_DTYPE_U8: return "uint8";
    case VIGIL_DTYPE_I8: return "int8";
    case VIGIL_DTYPE_BOOL: return "bool";
    case VIGIL_DTYPE_F64: return "float64";
    case VIGIL_DTYPE_F16: return "float16";
    }
    return "unknown";
}

size_t vigil_dtype_size(vigil_dtype dtype) {
    switch (dtype) {
    case VIGIL_DTYPE_F32:
    case VIGIL_DTYPE_I32: return 4;
    case VIGIL_DTYPE_I64:
    case VIGIL_DTYPE_F64: return 8;
    case VIGIL_DTYPE_U8:
    case VIGIL_DTYPE_I8:
    case VIGIL_DTYPE_BOOL: return 1;
    case VIGIL_DTYPE_F16: return 2;
    }
    return 0;
}

size_t vigil_tensor_bytes(const vigil_tensor *t) {
    size_t n = vigil_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->dims[d];
    return n;
}
