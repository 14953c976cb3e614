/*
 * linalg.c - MatMul and Gemm.
 *
 * With a constant 2-D float32 B (the usual classifier head or projection) both
 * run as XNNPACK fully-connected operators with B packed once (Gemm's 1-D or
 * scalar C becomes the bias when alpha = beta = 1); otherwise the reference
 * kernels run (batched, broadcasting MatMul; full Gemm).
 */
#include <math.h>
#include <string.h>
#include <xnnpack.h>

#include "core/alloc.h"
#include "engine/ops/ops.h"

static const char *const gemm_attrs[] = {"alpha", "beta", "transA", "transB", NULL};

static vigil_status run_xnn(step *s, vigil_error *err) {
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK fully connected failed (%d)", (int)x);
    return VIGIL_OK;
}

static vigil_status setup_fc(step *s, vigil_error *err) {
    enum xnn_status x = xnn_setup_fully_connected_nc_f32(s->xop[0], *(const size_t *)s->state, s->in[0].data,
                                                         s->out[0].data, s->setup_pool);
    if (x != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "XNNPACK fully connected setup failed (%d)", (int)x);
    return VIGIL_OK;
}

/* y[rows, n] = a[rows, k] * B + bias with B [k, n] (transposed = 0) or [n, k].
 * B is packed once per instance (its plans share the operator). */
static vigil_status prepare_fc(op_ctx *ctx, size_t rows, size_t k, size_t n, const float *b, int transposed,
                               const float *bias, vigil_error *err) {
    step *s = ctx->step;
    uint64_t params[4] = {k, n, (uint64_t)transposed, bias != NULL};
    uint64_t fingerprint = op_hash(op_hash(OP_HASH_SEED, params, sizeof params), b, k * n * sizeof(float));
    if (bias) fingerprint = op_hash(fingerprint, bias, n * sizeof(float));
    if (!op_xop_find(ctx, fingerprint)) {
        size_t bytes = 0;
        xnn_count_begin(&bytes);
        enum xnn_status x =
            xnn_create_fully_connected_nc_f32(k, n, k, n, b, bias, -INFINITY, INFINITY,
                                              transposed ? 0 : XNN_FLAG_TRANSPOSE_WEIGHTS, (xnn_operator_t *)&s->xop[0]);
        xnn_count_end();
        if (x != xnn_status_success) return xnn_fail(ctx, "fully connected", x, err);
        vigil_status st = op_xop_keep(ctx, fingerprint, bytes, err);
        if (st != VIGIL_OK) return st;
    }
    vigil_free(s->state); /* Gemm's, which the reference path would have used */
    s->state = NULL;
    vigil_status st = op_step_alloc(ctx, sizeof(size_t), err);
    if (st != VIGIL_OK) return st;
    *(size_t *)s->state = rows;
    s->run = run_xnn;
    s->setup = setup_fc;
    return VIGIL_OK;
}

/* ---- MatMul ---- */

static vigil_status infer_matmul(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype types[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_I64};
    vigil_status st = op_require_dtype(ctx, 0, types, 2, err);
    if (st != VIGIL_OK) return st;
    if (ctx->in[1].dtype != ctx->in[0].dtype)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "inputs have different types");
    kshape as = op_kshape(&ctx->in[0]), bs = op_kshape(&ctx->in[1]), ys;
    st = kernels_matmul_shape(&as, &bs, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_matmul(step *s, vigil_error *err) {
    kshape as = op_kshape(&s->in[0]), bs = op_kshape(&s->in[1]), ys = op_kshape(&s->out[0]);
    return kernels_matmul(s->in[0].dtype, s->in[0].data, &as, s->in[1].data, &bs, s->out[0].data, &ys, err);
}

static double flops_matmul(const op_ctx *ctx) {
    const op_tensor *a = &ctx->in[0];
    return 2.0 * (double)op_count(&ctx->out[0]) * (double)(a->ndim ? a->dims[a->ndim - 1] : 1);
}

static vigil_status prepare_matmul(op_ctx *ctx, vigil_error *err) {
    const op_tensor *a = &ctx->in[0], *b = &ctx->in[1];
    if (a->dtype == VIGIL_DTYPE_F32 && b->is_const && b->ndim == 2 && a->ndim >= 1 && op_count(&ctx->out[0]) > 0) {
        size_t k = (size_t)b->dims[0], n = (size_t)b->dims[1];
        return prepare_fc(ctx, (size_t)(op_count(a) / (int64_t)k), k, n, b->data, 0, NULL, err);
    }
    ctx->step->run = run_matmul;
    return VIGIL_OK;
}

/* ---- Gemm ---- */

typedef struct gemm_state {
    int trans_a, trans_b;
    float alpha, beta;
} gemm_state;

static void gemm_read(const op_ctx *ctx, gemm_state *g) {
    g->trans_a = (int)attr_int(ctx->node, "transA", 0);
    g->trans_b = (int)attr_int(ctx->node, "transB", 0);
    g->alpha = attr_float(ctx->node, "alpha", 1.0f);
    g->beta = attr_float(ctx->node, "beta", 1.0f);
}

static vigil_status infer_gemm(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype f32[] = {VIGIL_DTYPE_F32};
    for (int i = 0; i < 3; i++) {
        vigil_status st = op_require_dtype(ctx, i, f32, 1, err);
        if (st != VIGIL_OK) return st;
    }
    gemm_state g;
    gemm_read(ctx, &g);
    kshape as = op_kshape(&ctx->in[0]), bs = op_kshape(&ctx->in[1]), cs, ys;
    if (in_present(ctx, 2)) cs = op_kshape(&ctx->in[2]);
    vigil_status st = kernels_gemm_shape(&as, &bs, in_present(ctx, 2) ? &cs : NULL, g.trans_a, g.trans_b, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    return VIGIL_OK;
}

static vigil_status run_gemm(step *s, vigil_error *err) {
    const gemm_state *g = s->state;
    kshape as = op_kshape(&s->in[0]), bs = op_kshape(&s->in[1]), cs;
    int has_c = s->n_in > 2 && s->in[2].present;
    if (has_c) cs = op_kshape(&s->in[2]);
    kernels_gemm_f32(s->in[0].data, &as, s->in[1].data, &bs, has_c ? s->in[2].data : NULL, has_c ? &cs : NULL,
                     g->trans_a, g->trans_b, g->alpha, g->beta, s->out[0].data);
    return VIGIL_OK;
}

static double flops_gemm(const op_ctx *ctx) {
    const op_tensor *a = &ctx->in[0];
    int64_t k = attr_int(ctx->node, "transA", 0) ? a->dims[0] : a->dims[1];
    return 2.0 * (double)op_count(&ctx->out[0]) * (double)k;
}

static vigil_status prepare_gemm(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(gemm_state), err);
    if (st != VIGIL_OK) return st;
    gemm_state *g = ctx->step->state;
    gemm_read(ctx, g);
    const op_tensor *b = &ctx->in[1], *c = in_present(ctx, 2) ? &ctx->in[2] : NULL;
    int64_t n = ctx->out[0].dims[1];
    int bias_ok = !c || (c->is_const &&
                         ((c->ndim == 1 && c->dims[0] == n) || (c->ndim == 2 && c->dims[0] == 1 && c->dims[1] == n)));
    if (b->is_const && !g->trans_a && g->alpha == 1.0f && (g->beta == 1.0f || !c) && bias_ok && n > 0 &&
        ctx->out[0].dims[0] > 0) {
        size_t k = (size_t)ctx->in[0].dims[1];
        return prepare_fc(ctx, (size_t)ctx->in[0].dims[0], k, (size_t)n, b->data, g->trans_b, c ? c->data : NULL, err);
    }
    ctx->step->run = run_gemm;
    return VIGIL_OK;
}

const op_def ops_linalg[] = {
    {.name = "MatMul",
     .min_inputs = 2,
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .infer = infer_matmul,
     .prepare = prepare_matmul,
     .flops = flops_matmul},
    {.name = "Gemm",
     .min_inputs = 2,
     .min_opset = 7,
     .max_opset = 20,
     .foldable = 1,
     .attrs = gemm_attrs,
     .infer = infer_gemm,
     .prepare = prepare_gemm,
     .flops = flops_gemm},
    {0},
};
