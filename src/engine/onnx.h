/*
 * onnx.h - the ONNX file as read from disk: a faithful, read-only view of the
 * ModelProto (graph nodes, attributes, initializers, value infos, opsets and
 * metadata), decoded by a careful hand-written protobuf reader.
 *
 * The file is mmap'ed; initializer data points into the mapping wherever it is
 * suitably aligned and is copied once (into memory owned by the model) where it
 * is not, so weights are never copied twice.  External data files
 * (data_location = EXTERNAL) are mapped the same way, relative to the model's
 * directory, and refused when the location escapes that directory.
 *
 * The graph compiler (graph.c) turns an onnx_model into vigil's IR; nothing
 * outside src/engine/ includes this header.
 */
#ifndef VIGIL_ENGINE_ONNX_H
#define VIGIL_ENGINE_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

#define ONNX_MAX_DIMS 8

/* TensorProto.DataType values. */
typedef enum onnx_dtype {
    ONNX_UNDEFINED = 0, ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_UINT16 = 4,
    ONNX_INT16 = 5, ONNX_INT32 = 6, ONNX_INT64 = 7, ONNX_STRING = 8, ONNX_BOOL = 9,
    ONNX_FLOAT16 = 10, ONNX_DOUBLE = 11, ONNX_UINT32 = 12, ONNX_UINT64 = 13, ONNX_BFLOAT16 = 16,
} onnx_dtype;

typedef struct onnx_tensor {
    const char *name;      /* "" when unnamed (attribute tensors) */
    int32_t dtype;         /* onnx_dtype */
    int ndim;
    int64_t dims[ONNX_MAX_DIMS];
    const void *data;      /* element data, little-endian, aligned to the element size;
                              NULL only when count == 0 or dtype is STRING */
    size_t nbytes;         /* count * element size */
    size_t count;          /* product of dims (1 for a scalar) */
} onnx_tensor;

typedef enum onnx_attr_type {
    ONNX_ATTR_UNDEFINED = 0, ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_STRING = 3,
    ONNX_ATTR_TENSOR = 4, ONNX_ATTR_GRAPH = 5, ONNX_ATTR_FLOATS = 6, ONNX_ATTR_INTS = 7,
    ONNX_ATTR_STRINGS = 8,
} onnx_attr_type;

typedef struct onnx_attr {
    const char *name;
    int32_t type;            /* onnx_attr_type */
    float f;
    int64_t i;
    const char *s;           /* NUL-terminated copy; s_len excludes the NUL */
    size_t s_len;
    const float *floats;     size_t n_floats;
    const int64_t *ints;     size_t n_ints;
    const char **strings;    size_t n_strings;
    const onnx_tensor *t;    /* for ONNX_ATTR_TENSOR */
} onnx_attr;

typedef struct onnx_node {
    const char *name;        /* "" when the file left it empty */
    const char *op_type;
    const char *domain;      /* "" for the default ai.onnx domain */
    const char **inputs;     size_t n_inputs;   /* "" marks an omitted optional input */
    const char **outputs;    size_t n_outputs;
    const onnx_attr *attrs;  size_t n_attrs;
} onnx_node;

typedef struct onnx_value_info {
    const char *name;
    int32_t dtype;           /* ONNX_UNDEFINED when the file gives no type */
    int ndim;                /* -1 when the rank is unknown */
    int64_t dims[ONNX_MAX_DIMS];        /* -1 where the dimension is symbolic or unknown */
    const char *dim_params[ONNX_MAX_DIMS]; /* symbolic name ("batch") or NULL */
} onnx_value_info;

typedef struct onnx_kv {
    const char *key;
    const char *value;
} onnx_kv;

/* One opset_import entry (addition: lets tools show every domain). */
typedef struct onnx_opset {
    const char *domain;      /* "" for the default domain */
    int64_t version;
} onnx_opset;

typedef struct onnx_model {
    int64_t ir_version;
    int64_t opset;           /* version of the default domain ("" or "ai.onnx") */
    const char *producer_name;
    const char *graph_name;
    const onnx_node *nodes;            size_t n_nodes;        /* file order */
    const onnx_tensor *initializers;   size_t n_initializers;
    const onnx_value_info *inputs;     size_t n_inputs;       /* graph inputs that are not initializers */
    const onnx_value_info *outputs;    size_t n_outputs;
    const onnx_value_info *value_infos; size_t n_value_infos;
    const onnx_kv *metadata;           size_t n_metadata;     /* metadata_props */
    size_t file_bytes;                 /* size of the model file (0 for buffers) */
    const char *producer_version;      /* "" when absent */
    const onnx_opset *opsets;          size_t n_opsets;       /* every opset_import, file order */
    struct onnx_model_private *priv;   /* mapping, arena: private to onnx.c */
} onnx_model;

/* Maps and decodes path.  On failure *out is NULL and err says what and where
 * (byte offset, field) went wrong. */
vigil_status onnx_load_file(const char *path, onnx_model **out, vigil_error *err);
/* Decodes an in-memory model.  buf must outlive the model (it is not copied);
 * base_dir resolves external data and may be NULL (then external data is an
 * error). */
vigil_status onnx_load_buffer(const void *buf, size_t size, const char *base_dir, onnx_model **out,
                              vigil_error *err);
void onnx_free(onnx_model *model);

/* Decodes a standalone serialized TensorProto (the input_N.pb / output_N.pb
 * files of ONNX's backend tests) into a newly allocated tensor whose data it
 * owns; release with onnx_tensor_free. */
vigil_status onnx_tensor_decode(const void *buf, size_t size, onnx_tensor **out, vigil_error *err);
void onnx_tensor_free(onnx_tensor *tensor);

const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name);
const onnx_tensor *onnx_find_initializer(const onnx_model *model, const char *name);
const char *onnx_metadata(const onnx_model *model, const char *key); /* NULL when absent */
size_t onnx_dtype_size(int32_t dtype);       /* 0 for STRING/unknown */
const char *onnx_dtype_name(int32_t dtype);  /* "float32", "int64", ... */

#endif
