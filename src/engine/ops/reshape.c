/*
 * reshape.c - operators about shapes rather than values: Shape, Size,
 * Constant, ConstantOfShape, Reshape, Flatten, Squeeze, Unsqueeze, Identity,
 * Expand, Range, Tile.
 *
 * Shape, Size and Constant produce constants during inference; the others
 * need their shape-like inputs to be constants after folding (a shape that is
 * only known at run time is VIGIL_ERR_UNSUPPORTED: plans are static).
 * Reshape, Flatten, Squeeze, Unsqueeze and Identity never move data: the
 * planner makes their output share the input's buffer (op_def.alias), and
 * their run is a copy only when it could not.
 */
#include <string.h>

#include "core/half.h"
#include "engine/ops/ops.h"

static vigil_status run_alias(step *s, vigil_error *err) {
    if (s->out[0].data != s->in[0].data)
        memcpy(s->out[0].data, s->in[0].data, (size_t)op_count(&s->out[0]) * op_elem(&s->out[0]));
    return VIGIL_OK;
}

static vigil_status prepare_alias(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_alias;
    return VIGIL_OK;
}

static vigil_status need_const(const op_ctx *ctx, int i, const char *what, vigil_error *err) {
    if (!in_present(ctx, i) || ctx->in[i].data) return VIGIL_OK;
    return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "%s computed at run time is not supported", what);
}

static vigil_status set_shape(op_ctx *ctx, vigil_dtype dt, const kshape *s) {
    op_set_out(&ctx->out[0], dt, s);
    return VIGIL_OK;
}

/* ---- Shape, Size ---- */

static const char *const shape_attrs[] = {"start", "end", NULL};

static vigil_status infer_shape(op_ctx *ctx, vigil_error *err) {
    int r = ctx->in[0].ndim;
    int64_t start = attr_int(ctx->node, "start", 0), end = attr_int(ctx->node, "end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    int64_t n = end > start ? end - start : 0;
    kshape s = kshape_make(1, &n);
    set_shape(ctx, VIGIL_DTYPE_I64, &s);
    int64_t *d = op_const_alloc(ctx, &ctx->out[0]);
    if (!d) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++)
        d[i] = ctx->in[0].dims[start + i];
    return VIGIL_OK;
}

static vigil_status infer_size(op_ctx *ctx, vigil_error *err) {
    kshape s = kshape_make(0, NULL);
    set_shape(ctx, VIGIL_DTYPE_I64, &s);
    int64_t *d = op_const_alloc(ctx, &ctx->out[0]);
    if (!d) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    *d = op_count(&ctx->in[0]);
    return VIGIL_OK;
}

/* ---- Constant ---- */

static const char *const constant_attrs[] = {"value",        "value_float",  "value_floats",  "value_int", "value_ints",
                                             "sparse_value", "value_string", "value_strings", NULL};

static vigil_status check_constant(const onnx_node *node, int64_t opset, vigil_error *err) {
    if (node->n_attrs != 1) return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs exactly one value attribute");
    const char *a = node->attrs[0].name;
    if (strcmp(a, "sparse_value") == 0 || strncmp(a, "value_string", 12) == 0)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "attribute '%s' is not supported", a);
    if (strcmp(a, "value") == 0) {
        vigil_dtype dt;
        const onnx_tensor *t = node->attrs[0].t;
        if (!t || dtype_from_onnx(t->dtype, &dt) != VIGIL_OK)
            return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "tensor type %s is not supported",
                                 t ? onnx_dtype_name(t->dtype) : "?");
        if (t->count && !t->data) return op_check_fail(node, VIGIL_ERR_PARSE, err, "tensor has no data");
    }
    return VIGIL_OK;
}

static vigil_status infer_constant(op_ctx *ctx, vigil_error *err) {
    const onnx_attr *a = &ctx->node->attrs[0];
    op_tensor *o = &ctx->out[0];
    const void *src = NULL;
    size_t bytes = 0;
    if (strcmp(a->name, "value") == 0) {
        const onnx_tensor *t = a->t;
        dtype_from_onnx(t->dtype, &o->dtype);
        o->ndim = t->ndim;
        memcpy(o->dims, t->dims, (size_t)t->ndim * sizeof(int64_t));
        src = t->data;
        bytes = t->nbytes;
    } else if (strcmp(a->name, "value_float") == 0) {
        o->dtype = VIGIL_DTYPE_F32;
        o->ndim = 0;
        src = &a->f;
        bytes = sizeof(float);
    } else if (strcmp(a->name, "value_floats") == 0) {
        o->dtype = VIGIL_DTYPE_F32;
        o->ndim = 1;
        o->dims[0] = (int64_t)a->n_floats;
        src = a->floats;
        bytes = a->n_floats * sizeof(float);
    } else if (strcmp(a->name, "value_int") == 0) {
        o->dtype = VIGIL_DTYPE_I64;
        o->ndim = 0;
        src = &a->i;
        bytes = sizeof(int64_t);
    } else {
        o->dtype = VIGIL_DTYPE_I64;
        o->ndim = 1;
        o->dims[0] = (int64_t)a->n_ints;
        src = a->ints;
        bytes = a->n_ints * sizeof(int64_t);
    }
    int f16 = o->dtype == VIGIL_DTYPE_F16; /* computed in float32 (graph.c) */
    if (f16) o->dtype = VIGIL_DTYPE_F32;
    void *d = op_const_alloc(ctx, o);
    if (!d) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (f16) return kernels_cast(VIGIL_DTYPE_F16, src, VIGIL_DTYPE_F32, d, op_count(o), err);
    if (bytes) memcpy(d, src, bytes);
    return VIGIL_OK;
}

/* ---- ConstantOfShape ---- */

static vigil_status infer_constant_of_shape(op_ctx *ctx, vigil_error *err) {
    vigil_status st = need_const(ctx, 0, "the shape", err);
    if (st != VIGIL_OK) return st;
    int64_t dims[KERNELS_MAX_DIMS];
    int n = const_ints(&ctx->in[0], dims, KERNELS_MAX_DIMS);
    if (n < 0) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "shape must be int64 of rank <= %d", KERNELS_MAX_DIMS);
    for (int i = 0; i < n; i++)
        if (dims[i] < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "negative dimension");
    const onnx_attr *a = onnx_node_attr(ctx->node, "value");
    vigil_dtype dt = VIGIL_DTYPE_F32;
    if (a && (!a->t || dtype_from_onnx(a->t->dtype, &dt) != VIGIL_OK || a->t->count != 1))
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "value must be a one-element tensor of a supported type");
    kshape s = kshape_make(n, dims);
    float widened; /* a float16 value is computed in float32 (graph.c) */
    const void *value = a ? a->t->data : NULL;
    if (dt == VIGIL_DTYPE_F16) {
        uint16_t h;
        memcpy(&h, value, sizeof h);
        widened = half_to_float(h);
        value = &widened;
        dt = VIGIL_DTYPE_F32;
    }
    set_shape(ctx, dt, &s);
    void *d = op_const_alloc(ctx, &ctx->out[0]);
    if (!d) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (value) kernels_fill(vigil_dtype_size(dt), value, d, kshape_count(&s));
    return VIGIL_OK;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze, Identity ---- */

static vigil_status infer_reshape(op_ctx *ctx, vigil_error *err) {
    if (!in_present(ctx, 1)) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs a shape input");
    vigil_status st = need_const(ctx, 1, "the target shape", err);
    if (st != VIGIL_OK) return st;
    int64_t shape[KERNELS_MAX_DIMS];
    int n = const_ints(&ctx->in[1], shape, KERNELS_MAX_DIMS);
    if (n < 0) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "shape must be int64 of rank <= %d", KERNELS_MAX_DIMS);
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_reshape_shape(&xs, shape, n, (int)attr_int(ctx->node, "allowzero", 0), &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    return set_shape(ctx, ctx->in[0].dtype, &ys);
}

static vigil_status infer_flatten(op_ctx *ctx, vigil_error *err) {
    kshape xs = op_kshape(&ctx->in[0]), ys;
    vigil_status st = kernels_flatten_shape(&xs, attr_int(ctx->node, "axis", 1), &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    return set_shape(ctx, ctx->in[0].dtype, &ys);
}

/* Axes from the attribute (opset < 13) or input 1; returns count, -1 = absent. */
static int read_axes(const op_ctx *ctx, int64_t *axes, vigil_error *err, vigil_status *st) {
    *st = VIGIL_OK;
    if (ctx->opset < 13) return attr_ints(ctx->node, "axes", axes, KERNELS_MAX_DIMS);
    if (!in_present(ctx, 1)) return -1;
    *st = need_const(ctx, 1, "axes", err);
    if (*st != VIGIL_OK) return -1;
    int n = const_ints(&ctx->in[1], axes, KERNELS_MAX_DIMS);
    if (n < 0) *st = op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bad axes");
    return n;
}

static vigil_status infer_squeeze(op_ctx *ctx, vigil_error *err) {
    int64_t axes[KERNELS_MAX_DIMS];
    vigil_status st;
    int n = read_axes(ctx, axes, err, &st);
    if (st != VIGIL_OK) return st;
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_squeeze_shape(&xs, axes, n < 0 ? 0 : n, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    return set_shape(ctx, ctx->in[0].dtype, &ys);
}

static vigil_status infer_unsqueeze(op_ctx *ctx, vigil_error *err) {
    int64_t axes[KERNELS_MAX_DIMS];
    vigil_status st;
    int n = read_axes(ctx, axes, err, &st);
    if (st != VIGIL_OK) return st;
    if (n < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axes are required");
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_unsqueeze_shape(&xs, axes, n, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    return set_shape(ctx, ctx->in[0].dtype, &ys);
}

static vigil_status infer_identity(op_ctx *ctx, vigil_error *err) {
    kshape xs = op_kshape(&ctx->in[0]);
    return set_shape(ctx, ctx->in[0].dtype, &xs);
}

/* ---- Expand, Tile ---- */

static vigil_status infer_expand(op_ctx *ctx, vigil_error *err) {
    vigil_status st = need_const(ctx, 1, "the shape", err);
    if (st != VIGIL_OK) return st;
    int64_t shape[KERNELS_MAX_DIMS];
    int n = const_ints(&ctx->in[1], shape, KERNELS_MAX_DIMS);
    if (n < 0) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "shape must be int64 of rank <= %d", KERNELS_MAX_DIMS);
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_expand_shape(&xs, shape, n, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    return set_shape(ctx, ctx->in[0].dtype, &ys);
}

static vigil_status run_expand(step *s, vigil_error *err) {
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    kernels_broadcast_to(op_elem(&s->in[0]), s->in[0].data, &xs, s->out[0].data, &ys);
    return VIGIL_OK;
}

static vigil_status prepare_expand(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_expand;
    return VIGIL_OK;
}

static vigil_status infer_tile(op_ctx *ctx, vigil_error *err) {
    vigil_status st = need_const(ctx, 1, "repeats", err);
    if (st != VIGIL_OK) return st;
    int64_t rep[KERNELS_MAX_DIMS];
    int n = const_ints(&ctx->in[1], rep, KERNELS_MAX_DIMS);
    if (n != ctx->in[0].ndim) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "repeats must match the rank");
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_tile_shape(&xs, rep, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    return set_shape(ctx, ctx->in[0].dtype, &ys);
}

static vigil_status run_tile(step *s, vigil_error *err) {
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    kernels_tile(op_elem(&s->in[0]), s->in[0].data, &xs, s->out[0].data, &ys);
    return VIGIL_OK;
}

static vigil_status prepare_tile(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_tile;
    return VIGIL_OK;
}

/* ---- Range ---- */

static vigil_status infer_range(op_ctx *ctx, vigil_error *err) {
    for (int i = 0; i < 3; i++) {
        vigil_status st = need_const(ctx, i, "a Range bound", err);
        if (st != VIGIL_OK) return st;
        if (op_count(&ctx->in[i]) != 1 || ctx->in[i].dtype != ctx->in[0].dtype)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "inputs must be scalars of one type");
    }
    int64_t count;
    vigil_dtype dt = ctx->in[0].dtype;
    vigil_status st = kernels_range_count(dt, ctx->in[0].data, ctx->in[1].data, ctx->in[2].data, &count, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    kshape s = kshape_make(1, &count);
    set_shape(ctx, dt, &s);
    void *d = op_const_alloc(ctx, &ctx->out[0]);
    if (!d) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    kernels_range(dt, ctx->in[0].data, ctx->in[2].data, count, d);
    return VIGIL_OK;
}

static vigil_status prepare_none(op_ctx *ctx, vigil_error *err) {
    return op_fail(ctx, VIGIL_ERR_INTERNAL, err, "constant op reached execution");
}

static const char *const reshape_attrs[] = {"allowzero", NULL};
static const char *const axis_attr[] = {"axis", NULL};
static const char *const axes_attr[] = {"axes", NULL};
static const char *const cos_attrs[] = {"value", NULL};

#define ALIAS_OP(n, a, inf)                                                                                            \
    {                                                                                                                  \
        .name = n, .min_opset = 1, .max_opset = 20, .foldable = 1, .alias = 1, .attrs = a, .infer = inf,               \
        .prepare = prepare_alias                                                                                       \
    }

const op_def ops_shape[] = {
    {.name = "Shape",
     .min_opset = 1,
     .max_opset = 20,
     .attrs = shape_attrs,
     .infer = infer_shape,
     .prepare = prepare_none},
    {.name = "Size", .min_opset = 1, .max_opset = 20, .infer = infer_size, .prepare = prepare_none},
    {.name = "Constant",
     .min_inputs = -1,
     .min_opset = 1,
     .max_opset = 20,
     .attrs = constant_attrs,
     .check = check_constant,
     .infer = infer_constant,
     .prepare = prepare_none},
    {.name = "ConstantOfShape",
     .min_opset = 9,
     .max_opset = 20,
     .attrs = cos_attrs,
     .infer = infer_constant_of_shape,
     .prepare = prepare_none},
    {.name = "Range", .min_inputs = 3, .min_opset = 11, .max_opset = 20, .infer = infer_range, .prepare = prepare_none},
    {.name = "Reshape",
     .min_opset = 5,
     .max_opset = 20,
     .min_inputs = 2,
     .foldable = 1,
     .alias = 1,
     .attrs = reshape_attrs,
     .infer = infer_reshape,
     .prepare = prepare_alias},
    ALIAS_OP("Flatten", axis_attr, infer_flatten),
    ALIAS_OP("Squeeze", axes_attr, infer_squeeze),
    ALIAS_OP("Unsqueeze", axes_attr, infer_unsqueeze),
    ALIAS_OP("Identity", NULL, infer_identity),
    {.name = "Expand",
     .min_inputs = 2,
     .min_opset = 8,
     .max_opset = 20,
     .foldable = 1,
     .infer = infer_expand,
     .prepare = prepare_expand},
    {.name = "Tile",
     .min_inputs = 2,
     .min_opset = 6,
     .max_opset = 20,
     .foldable = 1,
     .infer = infer_tile,
     .prepare = prepare_tile},
    {0},
};
