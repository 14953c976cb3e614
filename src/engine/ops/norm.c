/*
 * norm.c - normalisation operators run by the reference kernels:
 * LayerNormalization, InstanceNormalization and LRN (BatchNormalization lives
 * in conv.c because it usually folds into a Conv).
 */
#include <string.h>

#include "engine/ops/ops.h"

static const vigil_dtype f32_only[] = {VIGIL_DTYPE_F32};

static vigil_status require_f32(const op_ctx *ctx, vigil_error *err) {
    for (int i = 0; i < ctx->n_in; i++) {
        vigil_status st = op_require_dtype(ctx, i, f32_only, 1, err);
        if (st != VIGIL_OK) return st;
    }
    return VIGIL_OK;
}

/* ---- LayerNormalization ---- */

static const char *const layernorm_attrs[] = {"axis", "epsilon", "stash_type", NULL};

static vigil_status check_layernorm(const onnx_node *node, int64_t opset, vigil_error *err) {
    if (attr_int(node, "stash_type", 1) != 1)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "stash_type other than float32");
    return VIGIL_OK;
}

static vigil_status layernorm_split(const op_ctx *ctx, int64_t *outer, int64_t *inner, int *axis, vigil_error *err) {
    const op_tensor *x = &ctx->in[0];
    *outer = 1; /* before any return: gcc -O3 (Release) cannot see that an error status is never VIGIL_OK and warned maybe-uninitialized */
    *inner = 1;
    *axis = norm_axis(attr_int(ctx->node, "axis", -1), x->ndim);
    if (*axis < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
    for (int d = 0; d < x->ndim; d++) {
        if (d < *axis)
            *outer *= x->dims[d];
        else
            *inner *= x->dims[d];
    }
    return VIGIL_OK;
}

static vigil_status infer_layernorm(op_ctx *ctx, vigil_error *err) {
    vigil_status st = require_f32(ctx, err);
    int64_t outer, inner;
    int axis;
    if (st == VIGIL_OK) st = layernorm_split(ctx, &outer, &inner, &axis, err);
    if (st != VIGIL_OK) return st;
    for (int i = 1; i < 3; i++)
        if (in_present(ctx, i) && op_count(&ctx->in[i]) != inner)
            return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "scale and bias must have the normalised shape");
    kshape ys = op_kshape(&ctx->in[0]), stats = ys;
    for (int d = axis; d < stats.ndim; d++)
        stats.dims[d] = 1;
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    for (int i = 1; i < ctx->n_out && i < 3; i++)
        op_set_out(&ctx->out[i], VIGIL_DTYPE_F32, &stats);
    return VIGIL_OK;
}

static vigil_status run_layernorm(step *s, vigil_error *err) {
    const int64_t *p = s->state; /* outer, inner */
    float eps = *(const float *)(p + 2);
    const float *bias = s->n_in > 2 && s->in[2].present ? s->in[2].data : NULL;
    float *mean = s->n_out > 1 && s->out[1].present ? s->out[1].data : NULL;
    float *inv = s->n_out > 2 && s->out[2].present ? s->out[2].data : NULL;
    kernels_layernorm_f32(s->in[0].data, p[0], p[1], s->in[1].data, bias, eps, s->out[0].data, mean, inv);
    return VIGIL_OK;
}

static vigil_status prepare_layernorm(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, 3 * sizeof(int64_t), err);
    if (st != VIGIL_OK) return st;
    int64_t *p = ctx->step->state;
    int axis;
    st = layernorm_split(ctx, &p[0], &p[1], &axis, err);
    *(float *)(p + 2) = attr_float(ctx->node, "epsilon", 1e-5f);
    ctx->step->run = run_layernorm;
    return st;
}

/* ---- InstanceNormalization ---- */

static const char *const eps_attr[] = {"epsilon", NULL};

static vigil_status infer_instancenorm(op_ctx *ctx, vigil_error *err) {
    vigil_status st = require_f32(ctx, err);
    if (st != VIGIL_OK) return st;
    const op_tensor *x = &ctx->in[0];
    if (x->ndim < 3 || op_count(&ctx->in[1]) != x->dims[1] || op_count(&ctx->in[2]) != x->dims[1])
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs X [N, C, ...], scale [C], B [C]");
    kshape ys = op_kshape(x);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    return VIGIL_OK;
}

static vigil_status run_instancenorm(step *s, vigil_error *err) {
    const op_tensor *x = &s->in[0];
    int64_t spatial = x->dims[0] * x->dims[1] != 0 ? op_count(x) / (x->dims[0] * x->dims[1]) : 0;
    kernels_instancenorm_f32(x->data, x->dims[0], x->dims[1], spatial, s->in[1].data, s->in[2].data,
                             *(const float *)s->state, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_instancenorm(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(float), err);
    if (st != VIGIL_OK) return st;
    *(float *)ctx->step->state = attr_float(ctx->node, "epsilon", 1e-5f);
    ctx->step->run = run_instancenorm;
    return VIGIL_OK;
}

/* ---- LRN ---- */

static const char *const lrn_attrs[] = {"alpha", "beta", "bias", "size", NULL};

typedef struct lrn_state {
    int64_t size;
    float alpha, beta, bias;
} lrn_state;

static vigil_status check_lrn(const onnx_node *node, int64_t opset, vigil_error *err) {
    if (attr_int(node, "size", 0) < 1) return op_check_fail(node, VIGIL_ERR_PARSE, err, "size must be >= 1");
    return VIGIL_OK;
}

static vigil_status infer_lrn(op_ctx *ctx, vigil_error *err) {
    vigil_status st = require_f32(ctx, err);
    if (st != VIGIL_OK) return st;
    if (ctx->in[0].ndim < 3) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs X [N, C, ...]");
    kshape ys = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    return VIGIL_OK;
}

static vigil_status run_lrn(step *s, vigil_error *err) {
    const lrn_state *l = s->state;
    const op_tensor *x = &s->in[0];
    int64_t spatial = x->dims[0] * x->dims[1] != 0 ? op_count(x) / (x->dims[0] * x->dims[1]) : 0;
    kernels_lrn_f32(x->data, x->dims[0], x->dims[1], spatial, l->size, l->alpha, l->beta, l->bias, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_lrn(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(lrn_state), err);
    if (st != VIGIL_OK) return st;
    lrn_state *l = ctx->step->state;
    l->size = attr_int(ctx->node, "size", 1);
    l->alpha = attr_float(ctx->node, "alpha", 1e-4f);
    l->beta = attr_float(ctx->node, "beta", 0.75f);
    l->bias = attr_float(ctx->node, "bias", 1.0f);
    ctx->step->run = run_lrn;
    return VIGIL_OK;
}

const op_def ops_norm[] = {
    {.name = "LayerNormalization",
     .min_opset = 17,
     .max_opset = 20,
     .min_inputs = 2,
     .foldable = 1,
     .attrs = layernorm_attrs,
     .check = check_layernorm,
     .infer = infer_layernorm,
     .prepare = prepare_layernorm},
    {.name = "InstanceNormalization",
     .min_opset = 6,
     .max_opset = 20,
     .min_inputs = 3,
     .foldable = 1,
     .attrs = eps_attr,
     .infer = infer_instancenorm,
     .prepare = prepare_instancenorm},
    {.name = "LRN",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = lrn_attrs,
     .check = check_lrn,
     .infer = infer_lrn,
     .prepare = prepare_lrn},
    {0},
};
