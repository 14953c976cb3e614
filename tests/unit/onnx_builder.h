/*
 * onnx_builder.h - a minimal ONNX writer (protobuf wire format) so that unit
 * tests can build graphs in code: nodes with int/float/ints attributes,
 * raw-data initializers of any type, typed graph inputs/outputs (dimension
 * -1 is written as the symbolic "batch"), and loading the result through a
 * temporary file.  Aborts on allocation failure (tests only).  Static
 * functions: a test file includes it once and uses what it needs.
 */
#ifndef VIGIL_TEST_ONNX_BUILDER_H
#define VIGIL_TEST_ONNX_BUILDER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vigil/engine.h"

typedef struct pbuf {
    uint8_t *data;
    size_t len, cap;
} pbuf;

static inline void pb_put(pbuf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data) abort();
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void pb_varint(pbuf *b, uint64_t v) {
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    pb_put(b, tmp, (size_t)n);
}

static inline void pb_tag(pbuf *b, int field, int wire) {
    pb_varint(b, (uint64_t)(field << 3 | wire));
}
static inline void pb_int(pbuf *b, int field, int64_t v) {
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v);
}
static inline void pb_bytes(pbuf *b, int field, const void *p, size_t n) {
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_put(b, p, n);
}
static inline void pb_str(pbuf *b, int field, const char *s) {
    pb_bytes(b, field, s, strlen(s));
}
static inline void pb_msg(pbuf *b, int field, pbuf *sub) { /* appends and frees sub */
    pb_bytes(b, field, sub->data, sub->len);
    free(sub->data);
    memset(sub, 0, sizeof *sub);
}
static inline void pb_float(pbuf *b, int field, float f) {
    pb_tag(b, field, 5);
    pb_put(b, &f, 4);
}

/* ---- model pieces ---- */

typedef struct onnx_builder {
    pbuf graph;
    int64_t opset;
} onnx_builder;

/* TensorProto with raw data (elem_type 1 = float, 7 = int64). */
static inline void ob_tensor(pbuf *t, const char *name, int elem_type, int ndim, const int64_t *dims, const void *data,
                             size_t nbytes) {
    for (int i = 0; i < ndim; i++)
        pb_int(t, 1, dims[i]);
    pb_int(t, 2, elem_type);
    pb_str(t, 8, name);
    pb_bytes(t, 9, data, nbytes);
}

static inline void ob_initializer(onnx_builder *ob, const char *name, int elem_type, int ndim, const int64_t *dims,
                                  const void *data, size_t nbytes) {
    pbuf t = {0};
    ob_tensor(&t, name, elem_type, ndim, dims, data, nbytes);
    pb_msg(&ob->graph, 5, &t);
}

static inline void ob_value(onnx_builder *ob, int field, const char *name, int elem_type, int ndim,
                            const int64_t *dims) {
    pbuf shape = {0}, tt = {0}, type = {0}, vi = {0};
    for (int i = 0; i < ndim; i++) {
        pbuf dim = {0};
        if (dims[i] < 0)
            pb_str(&dim, 2, "batch");
        else
            pb_int(&dim, 1, dims[i]);
        pb_msg(&shape, 1, &dim);
    }
    pb_int(&tt, 1, elem_type);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(&ob->graph, field, &vi);
}
static inline void ob_input(onnx_builder *ob, const char *name, int ndim, const int64_t *dims) {
    ob_value(ob, 11, name, 1, ndim, dims);
}
static inline void ob_output(onnx_builder *ob, const char *name, int ndim, const int64_t *dims) {
    ob_value(ob, 12, name, 1, ndim, dims);
}

/* Attribute helpers: write into a node's attribute list. */
static inline void ob_attr_int(pbuf *node, const char *name, int64_t v) {
    pbuf a = {0};
    pb_str(&a, 1, name);
    pb_int(&a, 3, v);
    pb_int(&a, 20, 2);
    pb_msg(node, 5, &a);
}
static inline void ob_attr_float(pbuf *node, const char *name, float v) {
    pbuf a = {0};
    pb_str(&a, 1, name);
    pb_float(&a, 2, v);
    pb_int(&a, 20, 1);
    pb_msg(node, 5, &a);
}
static inline void ob_attr_ints(pbuf *node, const char *name, int n, const int64_t *v) {
    pbuf a = {0};
    pb_str(&a, 1, name);
    for (int i = 0; i < n; i++)
        pb_int(&a, 8, v[i]);
    pb_int(&a, 20, 7);
    pb_msg(node, 5, &a);
}

/* Starts a node; add attributes with ob_attr_* on the returned buffer, then ob_node_end. */
static inline pbuf ob_node(const char *op, const char *name, int n_in, const char *const *in, int n_out,
                           const char *const *out) {
    pbuf n = {0};
    for (int i = 0; i < n_in; i++)
        pb_str(&n, 1, in[i]);
    for (int i = 0; i < n_out; i++)
        pb_str(&n, 2, out[i]);
    pb_str(&n, 3, name);
    pb_str(&n, 4, op);
    return n;
}
static inline void ob_node_end(onnx_builder *ob, pbuf *node) {
    pb_msg(&ob->graph, 1, node);
}

/* Finishes the model; returns malloc'ed bytes in *out (caller frees). */
static inline size_t ob_finish(onnx_builder *ob, uint8_t **out) {
    pbuf m = {0}, opset = {0};
    pb_int(&m, 1, 8); /* ir_version */
    pb_str(&m, 2, "vigil-test");
    pb_str(&ob->graph, 2, "g");
    pb_msg(&m, 7, &ob->graph);
    pb_str(&opset, 1, "");
    pb_int(&opset, 2, ob->opset);
    pb_msg(&m, 8, &opset);
    *out = m.data;
    return m.len;
}

/* Writes the model to a temporary file and loads it. */
static inline vigil_status load_bytes(vigil_engine *e, onnx_builder *ob, vigil_model **m, vigil_error *err) {
    uint8_t *bytes;
    size_t n = ob_finish(ob, &bytes);
    char path[] = "/tmp/vigil-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        free(bytes);
        return vigil_error_set(err, VIGIL_ERR_IO, "mkstemp");
    }
    ssize_t w = write(fd, bytes, n);
    close(fd);
    free(bytes);
    vigil_status st = w == (ssize_t)n ? vigil_model_load(e, path, m, err) : VIGIL_ERR_IO;
    unlink(path);
    return st;
}

#endif
