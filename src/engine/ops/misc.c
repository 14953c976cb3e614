/*
 * misc.c - smaller operators: Dropout (inference: identity), CastLike, PRelu,
 * Shrink, Trilu, ScatterND and ScatterElements (reduction "none").
 *
 * Trilu and Shrink have no reference kernel in kernels/, so their loops live
 * here (plain C, small).
 */
#include <string.h>

#include "engine/ops/ops.h"

/* ---- Dropout ---- */

static const char *const dropout_attrs[] = {"seed", "ratio", NULL};

static vigil_status infer_dropout(op_ctx *ctx, vigil_error *err) {
    if (in_present(ctx, 2)) {
        const op_tensor *t = &ctx->in[2];
        if (!t->data || t->dtype != VIGIL_DTYPE_BOOL || op_count(t) != 1)
            return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "training_mode must be a constant boolean");
        if (*(const uint8_t *)t->data)
            return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "training mode is not supported");
    }
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &s);
    if (ctx->n_out > 1 && ctx->out[1].present) { /* the mask: all kept */
        op_set_out(&ctx->out[1], VIGIL_DTYPE_BOOL, &s);
        uint8_t *mask = op_const_alloc(ctx, &ctx->out[1]);
        if (!mask) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        memset(mask, 1, (size_t)op_count(&ctx->out[1]));
    }
    return VIGIL_OK;
}

static vigil_status run_copy(step *s, vigil_error *err) {
    if (s->out[0].data != s->in[0].data)
        memcpy(s->out[0].data, s->in[0].data, (size_t)op_count(&s->out[0]) * op_elem(&s->out[0]));
    return VIGIL_OK;
}

static vigil_status prepare_copy(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_copy;
    return VIGIL_OK;
}

/* ---- CastLike ---- */

static const char *const castlike_attrs[] = {"saturate", NULL};

static vigil_status infer_castlike(op_ctx *ctx, vigil_error *err) {
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], ctx->in[1].dtype, &s);
    return VIGIL_OK;
}

static vigil_status run_cast(step *s, vigil_error *err) {
    return kernels_cast(s->in[0].dtype, s->in[0].data, s->out[0].dtype, s->out[0].data, op_count(&s->in[0]), err);
}

static vigil_status prepare_cast(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_cast;
    return VIGIL_OK;
}

/* ---- PRelu: slope broadcast (unidirectionally) to X in the scratch buffer ---- */

static vigil_status infer_prelu(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype f32[] = {VIGIL_DTYPE_F32};
    for (int i = 0; i < 2; i++) {
        vigil_status st = op_require_dtype(ctx, i, f32, 1, err);
        if (st != VIGIL_OK) return st;
    }
    kshape xs = op_kshape(&ctx->in[0]), ss = op_kshape(&ctx->in[1]), b;
    vigil_status st = kshape_broadcast(&xs, &ss, &b, err);
    if (st != VIGIL_OK || !kshape_equal(&b, &xs))
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "slope does not broadcast to X");
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &xs);
    return VIGIL_OK;
}

static size_t scratch_prelu(const op_ctx *ctx) {
    return (size_t)op_count(&ctx->in[0]) * sizeof(float);
}

static vigil_status run_prelu(step *s, vigil_error *err) {
    kshape xs = op_kshape(&s->in[0]), ss = op_kshape(&s->in[1]);
    float *slope = s->scratch;
    kernels_broadcast_to(sizeof(float), s->in[1].data, &ss, slope, &xs);
    const float *x = s->in[0].data;
    float *y = s->out[0].data;
    for (int64_t i = 0; i < kshape_count(&xs); i++)
        y[i] = x[i] < 0 ? x[i] * slope[i] : x[i];
    return VIGIL_OK;
}

static vigil_status prepare_prelu(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_prelu;
    return VIGIL_OK;
}

/* ---- Shrink ---- */

static const char *const shrink_attrs[] = {"bias", "lambd", NULL};

static vigil_status infer_shrink(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype f32[] = {VIGIL_DTYPE_F32};
    vigil_status st = op_require_dtype(ctx, 0, f32, 1, err);
    kshape s = op_kshape(&ctx->in[0]);
    if (st == VIGIL_OK) op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &s);
    return st;
}

static vigil_status run_shrink(step *s, vigil_error *err) {
    const float *p = s->state; /* lambd, bias */
    const float *x = s->in[0].data;
    float *y = s->out[0].data;
    for (int64_t i = 0; i < op_count(&s->in[0]); i++)
        y[i] = x[i] < -p[0] ? x[i] + p[1] : x[i] > p[0] ? x[i] - p[1] : 0.0f;
    return VIGIL_OK;
}

static vigil_status prepare_shrink(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, 2 * sizeof(float), err);
    if (st != VIGIL_OK) return st;
    float *p = ctx->step->state;
    p[0] = attr_float(ctx->node, "lambd", 0.5f);
    p[1] = attr_float(ctx->node, "bias", 0.0f);
    ctx->step->run = run_shrink;
    return VIGIL_OK;
}

/* ---- Trilu ---- */

static const char *const trilu_attrs[] = {"upper", NULL};

/* k (the diagonal offset) is a value, not a shape: it may be computed at run time. */
static vigil_status trilu_k(const op_tensor *t, int64_t *k, vigil_error *err) {
    *k = 0;
    if (!t) return VIGIL_OK;
    if (const_ints(t, k, 1) != 1) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "Trilu: k must be one int");
    return VIGIL_OK;
}

static vigil_status infer_trilu(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype i64[] = {VIGIL_DTYPE_I64};
    vigil_status st = op_require_dtype(ctx, 1, i64, 1, err);
    if (st != VIGIL_OK) return st;
    if (in_present(ctx, 1) && op_count(&ctx->in[1]) != 1)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "k must be a scalar");
    if (ctx->in[0].ndim < 2) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "input rank must be >= 2");
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &s);
    return VIGIL_OK;
}

static vigil_status run_trilu(step *s, vigil_error *err) {
    int64_t p[2] = {0, *(const int64_t *)s->state}; /* k, upper */
    vigil_status st = trilu_k(s->n_in > 1 && s->in[1].present ? &s->in[1] : NULL, &p[0], err);
    if (st != VIGIL_OK) return st;
    const op_tensor *x = &s->in[0];
    int64_t rows = x->dims[x->ndim - 2], cols = x->dims[x->ndim - 1];
    int64_t mats = rows * cols != 0 ? op_count(x) / (rows * cols) : 0;
    size_t e = op_elem(x);
    const uint8_t *src = x->data;
    uint8_t *dst = s->out[0].data;
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                size_t off = (size_t)((m * rows + i) * cols + j) * e;
                int keep = p[1] ? j - i >= p[0] : j - i <= p[0];
                if (keep)
                    memcpy(dst + off, src + off, e);
                else
                    memset(dst + off, 0, e);
            }
    return VIGIL_OK;
}

static vigil_status prepare_trilu(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(int64_t), err);
    if (st != VIGIL_OK) return st;
    *(int64_t *)ctx->step->state = attr_int(ctx->node, "upper", 1);
    ctx->step->run = run_trilu;
    return VIGIL_OK;
}

/* ---- ScatterND, ScatterElements ---- */

static const char *const scatter_attrs[] = {"reduction", "axis", NULL};

static vigil_status check_scatter(const onnx_node *node, int64_t opset, vigil_error *err) {
    const char *r = attr_string(node, "reduction", "none");
    if (strcmp(r, "none") != 0)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "reduction '%s' is not supported", r);
    if (strcmp(node->op_type, "ScatterND") == 0 && onnx_node_attr(node, "axis"))
        return op_check_fail(node, VIGIL_ERR_PARSE, err, "ScatterND has no axis");
    return VIGIL_OK;
}

static vigil_status infer_scatter(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype idx[] = {VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};
    int nd = strcmp(ctx->node->op_type, "ScatterND") == 0;
    vigil_status st = op_require_dtype(ctx, 1, idx, nd ? 1 : 2, err);
    if (st != VIGIL_OK) return st;
    if (ctx->in[2].dtype != ctx->in[0].dtype)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "updates type differs from data");
    if (!nd && norm_axis(attr_int(ctx->node, "axis", 0), ctx->in[0].ndim) < 0)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &s);
    return VIGIL_OK;
}

static vigil_status run_scatter(step *s, vigil_error *err) {
    size_t e = op_elem(&s->in[0]);
    kshape ds = op_kshape(&s->in[0]), is = op_kshape(&s->in[1]);
    memcpy(s->out[0].data, s->in[0].data, (size_t)op_count(&s->in[0]) * e);
    if (strcmp(s->op, "ScatterND") == 0)
        return kernels_scatter_nd(e, s->out[0].data, &ds, s->in[1].data, &is, s->in[2].data, err);
    return kernels_scatter_elements(e, s->out[0].data, &ds, *(const int *)s->state, s->in[1].data, s->in[1].dtype, &is,
                                    s->in[2].data, err);
}

static vigil_status prepare_scatter(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(int), err);
    if (st != VIGIL_OK) return st;
    *(int *)ctx->step->state = norm_axis(attr_int(ctx->node, "axis", 0), ctx->in[0].ndim);
    ctx->step->run = run_scatter;
    return VIGIL_OK;
}

const op_def ops_misc[] = {
    {.name = "Dropout",
     .min_opset = 7,
     .max_opset = 20,
     .foldable = 1,
     .alias = 1,
     .attrs = dropout_attrs,
     .infer = infer_dropout,
     .prepare = prepare_copy},
    {.name = "CastLike",
     .min_opset = 15,
     .max_opset = 20,
     .min_inputs = 2,
     .foldable = 1,
     .attrs = castlike_attrs,
     .infer = infer_castlike,
     .prepare = prepare_cast},
    {.name = "PRelu",
     .min_opset = 7,
     .max_opset = 20,
     .min_inputs = 2,
     .foldable = 1,
     .infer = infer_prelu,
     .scratch_bytes = scratch_prelu,
     .prepare = prepare_prelu},
    {.name = "Shrink",
     .min_opset = 9,
     .max_opset = 20,
     .foldable = 1,
     .attrs = shrink_attrs,
     .infer = infer_shrink,
     .prepare = prepare_shrink},
    {.name = "Trilu",
     .min_opset = 14,
     .max_opset = 20,
     .foldable = 1,
     .attrs = trilu_attrs,
     .infer = infer_trilu,
     .prepare = prepare_trilu},
    {.name = "ScatterND",
     .min_opset = 11,
     .max_opset = 20,
     .min_inputs = 3,
     .foldable = 1,
     .attrs = scatter_attrs,
     .check = check_scatter,
     .infer = infer_scatter,
     .prepare = prepare_scatter},
    {.name = "ScatterElements",
     .min_opset = 11,
     .max_opset = 20,
     .min_inputs = 3,
     .foldable = 1,
     .attrs = scatter_attrs,
     .check = check_scatter,
     .infer = infer_scatter,
     .prepare = prepare_scatter},
    {0},
};
