/*
 * test_onnx.c - the ONNX loader (src/engine/onnx.c) on the real YOLO models
 * of ../shared and on small protobuf buffers built here byte by byte: every
 * field the loader reads, every error path (with the field and byte offset in
 * the message), external data in a temporary directory, every truncation of
 * a valid model, and allocation failure at every step.
 */
#include <stdint.h>
#include <unistd.h>

#include "core/alloc.h"
#include "engine/onnx.h"
#include "testing.h"

/* ------------------------------------------------------------------------ */
/* a tiny protobuf writer                                                   */

typedef struct pb {
    uint8_t data[8192];
    size_t len;
} pb;

static void pb_raw(pb *b, const void *data, size_t n) {
    if (b->len + n > sizeof b->data) {
        fprintf(stderr, "pb buffer overflow in test\n");
        abort();
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void pb_varint(pb *b, uint64_t v) {
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) byte |= 0x80;
        pb_raw(b, &byte, 1);
    } while (v);
}

static void pb_tag(pb *b, int field, int wire) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }
static void pb_int(pb *b, int field, uint64_t v) { pb_tag(b, field, 0); pb_varint(b, v); }
static void pb_bytes(pb *b, int field, const void *data, size_t n) {
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_raw(b, data, n);
}
static void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_msg(pb *b, int field, const pb *sub) { pb_bytes(b, field, sub->data, sub->len); }
static void pb_f32(pb *b, int field, float f) {
    pb_tag(b, field, 5);
    pb_raw(b, &f, 4);
}

/* TensorProto with dims, data_type and raw_data. */
static void pb_tensor_raw(pb *t, const char *name, int dtype, int ndim, const int64_t *dims, const void *raw,
                          size_t nbytes) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < ndim; i++) pb_int(t, 1, (uint64_t)dims[i]);
    pb_int(t, 2, (uint64_t)dtype);
    if (name) pb_str(t, 8, name);
    if (raw) pb_bytes(t, 9, raw, nbytes);
}

/* ValueInfoProto for a float tensor; dims < 0 become dim_param "N". */
static void pb_value_info(pb *vi, const char *name, int ndim, const int64_t *dims) {
    pb shape = {0}, tensor = {0}, type = {0};
    for (int i = 0; i < ndim; i++) {
        pb dim = {0};
        if (dims[i] < 0) pb_str(&dim, 2, "N");
        else pb_int(&dim, 1, (uint64_t)dims[i]);
        pb_msg(&shape, 1, &dim);
    }
    pb_int(&tensor, 1, ONNX_FLOAT);
    pb_msg(&tensor, 2, &shape);
    pb_msg(&type, 1, &tensor);
    memset(vi, 0, sizeof *vi);
    pb_str(vi, 1, name);
    pb_msg(vi, 2, &type);
}

/* ModelProto around a graph. */
static void pb_model(pb *m, const pb *graph, int opset) {
    pb op = {0};
    pb_int(&op, 2, (uint64_t)opset);
    memset(m, 0, sizeof *m);
    pb_int(m, 1, 8);
    pb_str(m, 2, "vigil-test");
    pb_msg(m, 8, &op);
    pb_msg(m, 7, graph);
}

/* Graph with one node y = Add(x, w) plus extra_node (may be NULL) and the
 * initializer w (extra_init replaces it when not NULL). */
static void pb_small_graph(pb *g, const pb *extra_node, const pb *extra_init) {
    static const float w[2] = {1.5f, -2.0f};
    static const int64_t wdims[1] = {2}, xdims[2] = {-1, 2};
    pb node = {0}, attr = {0}, ints = {0}, init, x, wi, y;
    pb_str(&node, 1, "x");
    pb_str(&node, 1, "w");
    pb_str(&node, 2, "y");
    pb_str(&node, 3, "add0");
    pb_str(&node, 4, "Add");
    pb_str(&attr, 1, "alpha");
    pb_int(&attr, 20, ONNX_ATTR_FLOAT);
    pb_f32(&attr, 2, 0.5f);
    pb_msg(&node, 5, &attr);
    pb_varint(&ints, 3);
    pb_varint(&ints, (uint64_t)-1);
    memset(&attr, 0, sizeof attr);
    pb_str(&attr, 1, "axes");
    pb_int(&attr, 20, ONNX_ATTR_INTS);
    pb_bytes(&attr, 8, ints.data, ints.len); /* packed */
    pb_int(&attr, 8, 7);                     /* and one unpacked */
    pb_msg(&node, 5, &attr);
    pb_tensor_raw(&init, "w", ONNX_FLOAT, 1, wdims, w, sizeof w);
    pb_value_info(&x, "x", 2, xdims);
    pb_value_info(&wi, "w", 1, wdims);
    pb_value_info(&y, "y", 2, xdims);
    memset(g, 0, sizeof *g);
    pb_msg(g, 1, &node);
    if (extra_node) pb_msg(g, 1, extra_node);
    pb_str(g, 2, "tiny");
    pb_msg(g, 5, extra_init ? extra_init : &init);
    pb_msg(g, 11, &x);
    pb_msg(g, 11, &wi);
    pb_msg(g, 12, &y);
}

static vigil_status load(const pb *m, onnx_model **out, vigil_error *err) {
    return onnx_load_buffer(m->data, m->len, NULL, out, err);
}

/* Loads m, expects status and a message containing want; frees on success. */
static void expect_error(const pb *m, vigil_status status, const char *want) {
    onnx_model *model = NULL;
    vigil_error err = {0};
    vigil_status st = load(m, &model, &err);
    CHECK_EQ_INT(st, status);
    CHECK(model == NULL);
    if (!strstr(err.message, want)) fprintf(stderr, "  message was: %s (wanted '%s')\n", err.message, want);
    CHECK(strstr(err.message, want) != NULL);
    onnx_free(model);
}

/* ------------------------------------------------------------------------ */
/* valid models                                                             */

static void test_small_model_fields(void) {
    pb g, m, meta = {0};
    pb_small_graph(&g, NULL, NULL);
    pb_model(&m, &g, 13);
    pb_str(&meta, 1, "stride");
    pb_str(&meta, 2, "32");
    pb_msg(&m, 14, &meta);
    onnx_model *model = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(load(&m, &model, &err), VIGIL_OK);
    if (!model) return;
    CHECK_EQ_INT(model->ir_version, 8);
    CHECK_EQ_INT(model->opset, 13);
    CHECK_STR(model->producer_name, "vigil-test");
    CHECK_STR(model->graph_name, "tiny");
    CHECK_EQ_INT(model->n_nodes, 1);
    const onnx_node *n = &model->nodes[0];
    CHECK_STR(n->op_type, "Add");
    CHECK_STR(n->name, "add0");
    CHECK_STR(n->domain, "");
    CHECK_EQ_INT(n->n_inputs, 2);
    CHECK_STR(n->inputs[1], "w");
    CHECK_EQ_INT(n->n_outputs, 1);
    CHECK_STR(n->outputs[0], "y");
    const onnx_attr *alpha = onnx_node_attr(n, "alpha");
    CHECK(alpha && alpha->type == ONNX_ATTR_FLOAT && alpha->f == 0.5f);
    const onnx_attr *axes = onnx_node_attr(n, "axes");
    CHECK(axes && axes->type == ONNX_ATTR_INTS && axes->n_ints == 3);
    if (axes && axes->n_ints == 3) {
        CHECK_EQ_INT(axes->ints[0], 3);
        CHECK_EQ_INT(axes->ints[1], -1);
        CHECK_EQ_INT(axes->ints[2], 7);
    }
    CHECK(onnx_node_attr(n, "missing") == NULL);
    /* w is an initializer, so only x is a real input */
    CHECK_EQ_INT(model->n_inputs, 1);
    CHECK_STR(model->inputs[0].name, "x");
    CHECK_EQ_INT(model->inputs[0].dtype, ONNX_FLOAT);
    CHECK_EQ_INT(model->inputs[0].ndim, 2);
    CHECK_EQ_INT(model->inputs[0].dims[0], -1);
    CHECK_STR(model->inputs[0].dim_params[0], "N");
    CHECK_EQ_INT(model->inputs[0].dims[1], 2);
    CHECK(model->inputs[0].dim_params[1] == NULL);
    CHECK_EQ_INT(model->n_outputs, 1);
    CHECK_EQ_INT(model->n_initializers, 1);
    const onnx_tensor *w = onnx_find_initializer(model, "w");
    CHECK(w == &model->initializers[0]);
    CHECK(onnx_find_initializer(model, "x") == NULL);
    if (w) {
        CHECK_EQ_INT(w->count, 2);
        CHECK_EQ_INT(w->nbytes, 8);
        CHECK_EQ_INT((uintptr_t)w->data % 4, 0);
        CHECK(((const float *)w->data)[0] == 1.5f && ((const float *)w->data)[1] == -2.0f);
    }
    CHECK_STR(onnx_metadata(model, "stride"), "32");
    CHECK(onnx_metadata(model, "names") == NULL);
    onnx_free(model);
}

/* Decodes one TensorProto with onnx_tensor_decode; returns NULL on error. */
static onnx_tensor *decode(const pb *t, vigil_error *err) {
    onnx_tensor *out = NULL;
    onnx_tensor_decode(t->data, t->len, &out, err);
    return out;
}

static void test_tensor_typed_fields(void) {
    vigil_error err = {0};
    /* float_data packed, then unpacked */
    pb t = {0}, packed = {0};
    float vals[3] = {1.0f, -0.25f, 3e5f};
    pb_int(&t, 1, 3);
    pb_int(&t, 2, ONNX_FLOAT);
    memcpy(packed.data, vals, 8);
    pb_bytes(&t, 4, vals, 8);
    pb_f32(&t, 4, vals[2]);
    onnx_tensor *x = decode(&t, &err);
    CHECK(x != NULL);
    if (x) {
        CHECK_EQ_INT(x->count, 3);
        const float *f = x->data;
        CHECK(f[0] == 1.0f && f[1] == -0.25f && f[2] == 3e5f);
    }
    onnx_tensor_free(x);
    /* int8 from int32_data, including negative values */
    memset(&t, 0, sizeof t);
    pb_int(&t, 1, 4);
    pb_int(&t, 2, ONNX_INT8);
    pb_int(&t, 5, (uint64_t)(int64_t)-128);
    pb_int(&t, 5, 127);
    pb_int(&t, 5, (uint64_t)(int64_t)-1);
    pb_int(&t, 5, 0);
    x = decode(&t, &err);
    CHECK(x != NULL);
    if (x) {
        const int8_t *v = x->data;
        CHECK_EQ_INT(x->nbytes, 4);
        CHECK(v[0] == -128 && v[1] == 127 && v[2] == -1 && v[3] == 0);
    }
    onnx_tensor_free(x);
    /* int64 scalar (no dims) */
    memset(&t, 0, sizeof t);
    pb_int(&t, 2, ONNX_INT64);
    pb_int(&t, 7, (uint64_t)(int64_t)-5);
    x = decode(&t, &err);
    CHECK(x && x->ndim == 0 && x->count == 1 && *(const int64_t *)x->data == -5);
    onnx_tensor_free(x);
    /* float16 bits through int32_data */
    memset(&t, 0, sizeof t);
    pb_int(&t, 1, 1);
    pb_int(&t, 2, ONNX_FLOAT16);
    pb_int(&t, 5, 0x3c00);
    x = decode(&t, &err);
    CHECK(x && x->nbytes == 2 && *(const uint16_t *)x->data == 0x3c00);
    onnx_tensor_free(x);
    /* raw data is owned by the standalone tensor: the buffer can go */
    pb *heap = vigil_malloc(sizeof *heap);
    int64_t dims[2] = {1, 3};
    pb_tensor_raw(heap, "r", ONNX_FLOAT, 2, dims, vals, sizeof vals);
    x = decode(heap, &err);
    memset(heap, 0xff, sizeof *heap);
    vigil_free(heap);
    CHECK(x && x->ndim == 2 && ((const float *)x->data)[2] == 3e5f);
    if (x) CHECK_STR(x->name, "r");
    onnx_tensor_free(x);
}

/* raw_data that is not aligned in the buffer is copied into aligned memory. */
static void test_misaligned_raw_copied(void) {
    static const float w[2] = {1.5f, -2.0f};
    int64_t dims[1] = {2};
    int aligned = 0, copied = 0;
    for (int pad = 0; pad < 4; pad++) {
        pb init, g, m;
        char name[8] = "wwww";
        name[pad + 1] = '\0'; /* shifts the raw payload by one byte per step */
        pb_tensor_raw(&init, name, ONNX_FLOAT, 1, dims, w, sizeof w);
        pb_small_graph(&g, NULL, &init);
        pb_model(&m, &g, 13);
        pb *heap = vigil_aligned_alloc(64, sizeof *heap);
        memcpy(heap, &m, sizeof m);
        onnx_model *model = NULL;
        vigil_error err = {0};
        CHECK_EQ_INT(load(heap, &model, &err), VIGIL_OK);
        if (model) {
            const onnx_tensor *t = &model->initializers[0];
            CHECK_EQ_INT((uintptr_t)t->data % 4, 0);
            CHECK(((const float *)t->data)[0] == 1.5f && ((const float *)t->data)[1] == -2.0f);
            int inside = (const uint8_t *)t->data >= heap->data && (const uint8_t *)t->data < heap->data + heap->len;
            aligned += inside;
            copied += !inside;
        }
        onnx_free(model);
        vigil_free(heap);
    }
    CHECK_EQ_INT(aligned, 1); /* one of four shifts lands on a 4-byte boundary: used in place */
    CHECK_EQ_INT(copied, 3);
}

/* ------------------------------------------------------------------------ */
/* error paths                                                              */

static void test_wire_errors(void) {
    pb m = {0};
    /* 11-byte varint for ir_version */
    pb_tag(&m, 1, 0);
    for (int i = 0; i < 10; i++) pb_raw(&m, "\xff", 1);
    pb_raw(&m, "\x01", 1);
    expect_error(&m, VIGIL_ERR_PARSE, "varint");
    /* 10th byte overflowing 64 bits */
    memset(&m, 0, sizeof m);
    pb_tag(&m, 1, 0);
    for (int i = 0; i < 9; i++) pb_raw(&m, "\xff", 1);
    pb_raw(&m, "\x7f", 1);
    expect_error(&m, VIGIL_ERR_PARSE, "overflows 64 bits");
    /* truncated varint */
    memset(&m, 0, sizeof m);
    pb_tag(&m, 1, 0);
    pb_raw(&m, "\x80", 1);
    expect_error(&m, VIGIL_ERR_PARSE, "truncated varint");
    /* length past the end */
    memset(&m, 0, sizeof m);
    pb_tag(&m, 7, 2);
    pb_varint(&m, 1000);
    pb_raw(&m, "\x0a\x00", 2);
    expect_error(&m, VIGIL_ERR_PARSE, "runs past the end");
    /* group wire type */
    memset(&m, 0, sizeof m);
    pb_tag(&m, 9, 3);
    expect_error(&m, VIGIL_ERR_PARSE, "wire type 3");
    /* field number 0 */
    memset(&m, 0, sizeof m);
    pb_raw(&m, "\x00\x01", 2);
    expect_error(&m, VIGIL_ERR_PARSE, "field number");
    /* graph given as a varint */
    memset(&m, 0, sizeof m);
    pb_int(&m, 7, 1);
    expect_error(&m, VIGIL_ERR_PARSE, "ModelProto.graph at byte 0: wrong wire type");
    /* no graph at all */
    memset(&m, 0, sizeof m);
    pb_int(&m, 1, 8);
    expect_error(&m, VIGIL_ERR_PARSE, "no graph");
    /* empty buffer */
    memset(&m, 0, sizeof m);
    expect_error(&m, VIGIL_ERR_PARSE, "empty");
}

/* Loads a model whose only initializer is init. */
static void expect_init_error(const pb *init, vigil_status status, const char *want) {
    pb g, m;
    pb_small_graph(&g, NULL, init);
    pb_model(&m, &g, 13);
    expect_error(&m, status, want);
}

static void test_tensor_errors(void) {
    float w[2] = {0};
    pb t;
    int64_t neg[1] = {-2};
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, neg, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "dims[0] is a negative dimension (-2)");
    int64_t huge[4] = {1ll << 40, 1ll << 40, 1ll << 40, 4};
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 4, huge, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "dims: element count overflows");
    int64_t three[1] = {3};
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, three, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "raw_data has 8 bytes, dims and data_type say 12");
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 2};
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 9, nine, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "TensorProto.dims at byte");
    expect_init_error(&t, VIGIL_ERR_PARSE, "9 dims");
    int64_t two[1] = {2};
    pb_tensor_raw(&t, "w", 0, 1, two, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "data_type");
    pb_tensor_raw(&t, "w", 21 /* int4 */, 1, two, w, 1);
    expect_init_error(&t, VIGIL_ERR_UNSUPPORTED, "data_type 21");
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, two, NULL, 0);
    expect_init_error(&t, VIGIL_ERR_PARSE, "no data");
    /* wrong typed field for the dtype, and wrong count */
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, two, NULL, 0);
    pb_int(&t, 7, 1);
    pb_int(&t, 7, 2);
    expect_init_error(&t, VIGIL_ERR_PARSE, "int64_data given for a float32 tensor");
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, two, NULL, 0);
    pb_f32(&t, 4, 1.0f);
    expect_init_error(&t, VIGIL_ERR_PARSE, "float_data has 1 values, dims say 2");
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, two, NULL, 0);
    pb_bytes(&t, 4, w, 7);
    expect_init_error(&t, VIGIL_ERR_PARSE, "not a multiple of 4");
    /* dims with the wrong wire type name the field and the byte */
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 0, NULL, w, sizeof w);
    pb_f32(&t, 1, 2.0f);
    expect_init_error(&t, VIGIL_ERR_PARSE, "TensorProto.dims at byte");
    /* both raw and typed data */
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, two, w, sizeof w);
    pb_bytes(&t, 4, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "more than one form");
    /* segments */
    pb seg = {0};
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, two, w, sizeof w);
    pb_int(&seg, 1, 0);
    pb_msg(&t, 3, &seg);
    expect_init_error(&t, VIGIL_ERR_UNSUPPORTED, "segment");
    /* the error names the initializer index */
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, neg, w, sizeof w);
    expect_init_error(&t, VIGIL_ERR_PARSE, "GraphProto.initializer[0]");
}

static void test_graph_errors(void) {
    pb node = {0}, g, m, sparse = {0};
    pb_str(&node, 1, "y");
    pb_str(&node, 2, "z");
    pb_small_graph(&g, &node, NULL);
    pb_model(&m, &g, 13);
    expect_error(&m, VIGIL_ERR_PARSE, "missing op_type");
    /* the node index is named */
    onnx_model *model = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(load(&m, &model, &err), VIGIL_ERR_PARSE);
    CHECK(strstr(err.message, "GraphProto.node[1]") != NULL);
    /* sparse initializers */
    pb_small_graph(&g, NULL, NULL);
    pb_int(&sparse, 3, 1);
    pb_msg(&g, 15, &sparse);
    pb_model(&m, &g, 13);
    expect_error(&m, VIGIL_ERR_UNSUPPORTED, "sparse");
    /* duplicate initializer names */
    static const float w[2] = {0};
    static const int64_t dims[1] = {2};
    pb init;
    pb_small_graph(&g, NULL, NULL);
    pb_tensor_raw(&init, "w", ONNX_FLOAT, 1, dims, w, sizeof w);
    pb_msg(&g, 5, &init);
    pb_model(&m, &g, 13);
    expect_error(&m, VIGIL_ERR_PARSE, "duplicate initializer 'w'");
    /* attribute TENSOR type without a tensor */
    pb attr = {0};
    memset(&node, 0, sizeof node);
    pb_str(&node, 2, "c");
    pb_str(&node, 4, "Constant");
    pb_str(&attr, 1, "value");
    pb_int(&attr, 20, ONNX_ATTR_TENSOR);
    pb_msg(&node, 5, &attr);
    pb_small_graph(&g, &node, NULL);
    pb_model(&m, &g, 13);
    expect_error(&m, VIGIL_ERR_PARSE, "TENSOR without t");
    /* a graph input with more than 8 dims */
    static const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    pb vi9;
    pb_value_info(&vi9, "x9", 9, nine);
    pb_small_graph(&g, NULL, NULL);
    pb_msg(&g, 11, &vi9);
    pb_model(&m, &g, 13);
    expect_error(&m, VIGIL_ERR_PARSE, "more than 8 dims");
}

/* Every strict prefix of a valid model must fail cleanly (or, rarely, load a
 * smaller valid model); none may crash or leak. */
static void test_every_truncation(void) {
    pb g, m;
    pb_small_graph(&g, NULL, NULL);
    pb_model(&m, &g, 13);
    int failed = 0;
    for (size_t len = 0; len < m.len; len++) {
        onnx_model *model = NULL;
        vigil_error err = {0};
        if (onnx_load_buffer(m.data, len, NULL, &model, &err) != VIGIL_OK) {
            failed++;
            CHECK(model == NULL && err.message[0] != '\0');
        }
        onnx_free(model);
    }
    CHECK(failed >= (int)m.len - 8); /* only cuts between top-level fields may parse */
}

/* Allocation failure at every step of a load fails cleanly (ASan checks
 * for leaks) with VIGIL_ERR_NO_MEMORY. */
static void test_allocation_failures(void) {
    pb g, m;
    pb_small_graph(&g, NULL, NULL);
    pb_model(&m, &g, 13);
    int ok = 0;
    for (long n = 1; n < 200 && !ok; n++) {
        onnx_model *model = NULL;
        vigil_error err = {0};
        alloc_fail_nth(n);
        vigil_status st = load(&m, &model, &err);
        alloc_fail_nth(0);
        if (st == VIGIL_OK) ok = 1;
        else CHECK_EQ_INT(st, VIGIL_ERR_NO_MEMORY);
        onnx_free(model);
    }
    CHECK(ok);
}

/* ------------------------------------------------------------------------ */
/* external data                                                            */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ_INT(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void pb_kv(pb *t, const char *key, const char *value) {
    pb kv = {0};
    pb_str(&kv, 1, key);
    pb_str(&kv, 2, value);
    pb_msg(t, 13, &kv);
}

/* Writes dir/model.onnx whose initializer w lives in external data. */
static void write_external_model(const char *dir, const char *location, const char *offset, const char *length) {
    static const int64_t dims[1] = {2};
    pb t, g, m;
    pb_tensor_raw(&t, "w", ONNX_FLOAT, 1, dims, NULL, 0);
    pb_kv(&t, "location", location);
    if (offset) pb_kv(&t, "offset", offset);
    if (length) pb_kv(&t, "length", length);
    pb_int(&t, 14, 1);
    pb_small_graph(&g, NULL, &t);
    pb_model(&m, &g, 13);
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_file(path, m.data, m.len);
}

static vigil_status load_dir(const char *dir, onnx_model **model, vigil_error *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    return onnx_load_file(path, model, err);
}

static void test_external_data(void) {
    char dir[] = "/tmp/vigil_onnx_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512];
    float weights[4] = {9.0f, 8.0f, 1.25f, -4.5f};
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    write_file(path, weights, sizeof weights);
    onnx_model *model = NULL;
    vigil_error err = {0};
    /* offset 8: the last two floats, used in place (aligned in the mapping) */
    write_external_model(dir, "weights.bin", "8", "8");
    CHECK_EQ_INT(load_dir(dir, &model, &err), VIGIL_OK);
    if (model) {
        const float *w = model->initializers[0].data;
        CHECK(w && w[0] == 1.25f && w[1] == -4.5f);
        CHECK(model->file_bytes > 0);
    }
    onnx_free(model);
    /* offset 2 is misaligned: copied, same values as the bytes there */
    write_external_model(dir, "weights.bin", "2", NULL);
    CHECK_EQ_INT(load_dir(dir, &model, &err), VIGIL_OK);
    if (model) {
        float want[2];
        memcpy(want, (const uint8_t *)weights + 2, sizeof want);
        CHECK_EQ_INT((uintptr_t)model->initializers[0].data % 4, 0);
        CHECK(memcmp(model->initializers[0].data, want, sizeof want) == 0);
    }
    onnx_free(model);
    struct { const char *loc, *off, *len; vigil_status st; const char *msg; } bad[] = {
        {"../weights.bin", NULL, NULL, VIGIL_ERR_PERMISSION, "leaves the model directory"},
        {"sub/../../etc/passwd", NULL, NULL, VIGIL_ERR_PERMISSION, "leaves the model directory"},
        {"/etc/passwd", NULL, NULL, VIGIL_ERR_PERMISSION, "leaves the model directory"},
        {"missing.bin", NULL, NULL, VIGIL_ERR_NOT_FOUND, "missing.bin"},
        {"weights.bin", "12", NULL, VIGIL_ERR_PARSE, "runs past the end"},
        {"weights.bin", "0", "12", VIGIL_ERR_PARSE, "length 12"},
        {"weights.bin", "-1", NULL, VIGIL_ERR_PARSE, "offset"},
        {"weights.bin", "99999999999999999999999", NULL, VIGIL_ERR_PARSE, "offset"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_external_model(dir, bad[i].loc, bad[i].off, bad[i].len);
        model = NULL;
        vigil_status st = load_dir(dir, &model, &err);
        CHECK_EQ_INT(st, bad[i].st);
        if (!strstr(err.message, bad[i].msg)) fprintf(stderr, "  case %zu: %s\n", i, err.message);
        CHECK(strstr(err.message, bad[i].msg) != NULL);
        CHECK(model == NULL);
        onnx_free(model);
    }
    /* a symbolic link inside the directory that points outside it */
    char link_path[512];
    snprintf(link_path, sizeof link_path, "%s/escape.bin", dir);
    CHECK_EQ_INT(symlink("/etc/hostname", link_path), 0);
    write_external_model(dir, "escape.bin", NULL, NULL);
    model = NULL;
    CHECK_EQ_INT(load_dir(dir, &model, &err), VIGIL_ERR_PERMISSION);
    CHECK(strstr(err.message, "outside the model directory") != NULL);
    onnx_free(model);
    unlink(link_path);
    /* a buffer has no directory: external data is refused */
    write_external_model(dir, "weights.bin", NULL, NULL);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *f = fopen(path, "rb");
    pb buf = {0};
    if (f) {
        buf.len = fread(buf.data, 1, sizeof buf.data, f);
        fclose(f);
    }
    expect_error(&buf, VIGIL_ERR_UNSUPPORTED, "external data");
    unlink(path);
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    unlink(path);
    rmdir(dir);
    /* and a missing model file */
    CHECK_EQ_INT(onnx_load_file("/nonexistent/model.onnx", &model, &err), VIGIL_ERR_NOT_FOUND);
}

/* ------------------------------------------------------------------------ */
/* the real YOLO models                                                     */

typedef struct op_expect {
    const char *op;
    size_t count;
} op_expect;

static size_t count_op(const onnx_model *m, const char *op) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_nodes; i++) n += strcmp(m->nodes[i].op_type, op) == 0;
    return n;
}

/* Checks the structure every shared YOLO model has; returns the model. */
static onnx_model *load_shared(const char *rel, const char *batch_param, int64_t out1, int64_t out2,
                               const char *task) {
    char path[8192];
    if (!testing_shared_path(path, sizeof path, rel)) return NULL;
    onnx_model *m = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(onnx_load_file(path, &m, &err), VIGIL_OK);
    if (!m) {
        fprintf(stderr, "  %s\n", err.message);
        return NULL;
    }
    CHECK_EQ_INT(m->opset, 17);
    CHECK_EQ_INT(m->n_inputs, 1);
    CHECK_STR(m->inputs[0].name, "images");
    CHECK_EQ_INT(m->inputs[0].dtype, ONNX_FLOAT);
    CHECK_EQ_INT(m->inputs[0].ndim, 4);
    int64_t want_in[4] = {batch_param ? -1 : 1, 3, 640, 640};
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(m->inputs[0].dims[i], want_in[i]);
    if (batch_param) CHECK_STR(m->inputs[0].dim_params[0], batch_param);
    CHECK_EQ_INT(m->n_outputs, 1);
    CHECK_STR(m->outputs[0].name, "output0");
    CHECK_EQ_INT(m->outputs[0].ndim, 3);
    CHECK_EQ_INT(m->outputs[0].dims[1], out1);
    CHECK_EQ_INT(m->outputs[0].dims[2], out2);
    CHECK_STR(onnx_metadata(m, "stride"), "32");
    if (task) CHECK_STR(onnx_metadata(m, "task"), task);
    else CHECK(onnx_metadata(m, "task") == NULL); /* YOLOv5's exporter writes only stride and names */
    const char *names = onnx_metadata(m, "names");
    CHECK(names && strstr(names, "'person'") && strstr(names, "'toothbrush'"));
    /* every initializer is findable, aligned and sized consistently */
    size_t bytes = 0;
    for (size_t i = 0; i < m->n_initializers; i++) {
        const onnx_tensor *t = &m->initializers[i];
        CHECK(onnx_find_initializer(m, t->name) == t);
        CHECK(t->nbytes == t->count * onnx_dtype_size(t->dtype));
        CHECK(t->count == 0 || (t->data && (uintptr_t)t->data % onnx_dtype_size(t->dtype) == 0));
        bytes += t->nbytes;
    }
    CHECK(bytes > m->file_bytes * 9 / 10 && bytes < m->file_bytes); /* weights are most of the file */
    return m;
}

static void check_ops(const onnx_model *m, const op_expect *ops, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t got = count_op(m, ops[i].op);
        if (got != ops[i].count) fprintf(stderr, "  %s: %zu, expected %zu\n", ops[i].op, got, ops[i].count);
        CHECK_EQ_INT(got, ops[i].count);
    }
}

static void test_yolov8n(void) {
    /* the operator histogram documented in shared/README.md */
    static const op_expect ops[] = {
        {"Conv", 64}, {"Sigmoid", 58}, {"Mul", 58}, {"Concat", 19}, {"Split", 9}, {"Add", 8}, {"Reshape", 5},
        {"MaxPool", 3}, {"Resize", 2}, {"Slice", 2}, {"Sub", 2}, {"Transpose", 1}, {"Softmax", 1}, {"Div", 1},
    };
    const char *rels[2] = {"models/yolov8n.onnx", "models/yolov8n_dynbatch.onnx"};
    for (int k = 0; k < 2; k++) {
        onnx_model *m = load_shared(rels[k], k ? "batch" : NULL, 84, 8400, "detect");
        if (!m) SKIP("../shared/models/yolov8n*.onnx absent");
        CHECK_EQ_INT(m->n_nodes, 233);
        check_ops(m, ops, sizeof ops / sizeof ops[0]);
        CHECK_STR(onnx_metadata(m, "imgsz"), "[640, 640]");
        /* Conv weights: the first Conv's W is a 4-D float initializer with 3 input channels */
        const onnx_node *conv = NULL;
        for (size_t i = 0; i < m->n_nodes && !conv; i++)
            if (strcmp(m->nodes[i].op_type, "Conv") == 0) conv = &m->nodes[i];
        const onnx_tensor *w = conv ? onnx_find_initializer(m, conv->inputs[1]) : NULL;
        CHECK(w && w->dtype == ONNX_FLOAT && w->ndim == 4 && w->dims[1] == 3);
        const onnx_attr *strides = conv ? onnx_node_attr(conv, "strides") : NULL;
        CHECK(strides && strides->type == ONNX_ATTR_INTS && strides->n_ints == 2);
        onnx_free(m);
    }
}

static void test_yolov5n(void) {
    const char *rels[2] = {"models/yolov5n.onnx", "models/yolov5n_dynbatch.onnx"};
    for (int k = 0; k < 2; k++) {
        onnx_model *m = load_shared(rels[k], k ? "batch" : NULL, 25200, 85, NULL);
        if (!m) SKIP("../shared/models/yolov5n*.onnx absent");
        CHECK(count_op(m, "Pow") > 0);
        CHECK(count_op(m, "Constant") > 0);
        /* a Split on axis 4 (the 5-D head split) */
        int split5 = 0;
        for (size_t i = 0; i < m->n_nodes; i++) {
            const onnx_attr *axis = onnx_node_attr(&m->nodes[i], "axis");
            split5 |= strcmp(m->nodes[i].op_type, "Split") == 0 && axis && axis->i == 4;
        }
        CHECK(split5);
        /* Constant nodes carry their value as a TENSOR attribute */
        for (size_t i = 0; i < m->n_nodes; i++) {
            if (strcmp(m->nodes[i].op_type, "Constant") != 0) continue;
            const onnx_attr *value = onnx_node_attr(&m->nodes[i], "value");
            CHECK(value && value->type == ONNX_ATTR_TENSOR && value->t);
        }
        onnx_free(m);
    }
}

int main(void) {
    RUN(test_small_model_fields);
    RUN(test_tensor_typed_fields);
    RUN(test_misaligned_raw_copied);
    RUN(test_wire_errors);
    RUN(test_tensor_errors);
    RUN(test_graph_errors);
    RUN(test_every_truncation);
    RUN(test_allocation_failures);
    RUN(test_external_data);
    RUN(test_yolov8n);
    RUN(test_yolov5n);
    return testing_report();
}
