/*
 * pool.c - MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
 *
 * 2-D pools on NHWC run as XNNPACK operators; ceil_mode becomes extra end
 * padding (XNNPACK max pooling ignores padded positions and its average
 * pooling excludes them, which is ONNX's count_include_pad=0).  What XNNPACK
 * cannot express (the Indices output, count_include_pad=1 with padding,
 * dilated average pooling, 1-D pools) runs the reference kernels in ONNX
 * layout.
 */
#include <math.h>
#include <string.h>
#include <xnnpack.h>

#include "engine/ops/ops.h"

static const char *const maxpool_attrs[] = {"auto_pad", "ceil_mode",     "dilations", "kernel_shape",
                                            "pads",     "storage_order", "strides",   NULL};
static const char *const avgpool_attrs[] = {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape",
                                            "pads",     "strides",   "dilations",         NULL};
static const vigil_dtype f32_only[] = {VIGIL_DTYPE_F32};

static int is_maxpool(const op_ctx *ctx) {
    return strcmp(ctx->node->op_type, "MaxPool") == 0;
}

static vigil_status check_pool(const onnx_node *node, int64_t opset, vigil_error *err) {
    kernels_auto_pad ap;
    if (op_auto_pad(node, &ap) != VIGIL_OK)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "auto_pad '%s' is not supported",
                             attr_string(node, "auto_pad", ""));
    int64_t k[4];
    if (attr_ints(node, "kernel_shape", k, 4) < 1)
        return op_check_fail(node, VIGIL_ERR_PARSE, err, "kernel_shape is required");
    if (node->n_outputs > 1 && node->outputs[1][0] && attr_int(node, "storage_order", 0) != 0)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "storage_order=1 is not supported");
    return VIGIL_OK;
}

static int maxpool_nhwc_ok(const onnx_node *node) {
    return node->n_outputs < 2 || !node->outputs[1][0];
}

static int avgpool_nhwc_ok(const onnx_node *node) {
    int64_t v[8];
    int n = attr_ints(node, "dilations", v, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (v[i] != 1) return 0;
    if (attr_int(node, "count_include_pad", 0) == 0) return 1;
    const char *ap = attr_string(node, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0) return 0;
    n = attr_ints(node, "pads", v, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (v[i] != 0) return 0;
    return attr_int(node, "ceil_mode", 0) == 0;
}

/* Window from the logical (ONNX) view of input 0. */
static vigil_status pool_window(op_ctx *ctx, kernels_window *w, vigil_error *err) {
    int64_t k[4];
    int ns = ctx->in[0].ndim - 2;
    if (attr_ints(ctx->node, "kernel_shape", k, 4) != ns)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "kernel_shape must have %d values", ns);
    op_tensor saved = ctx->in[0];
    if (ctx->nhwc) {
        ctx->in[0].dims[1] = saved.dims[3];
        ctx->in[0].dims[2] = saved.dims[1];
        ctx->in[0].dims[3] = saved.dims[2];
    }
    vigil_status st = op_read_window(ctx, k, 0, w, err);
    ctx->in[0] = saved;
    w->group = 1;
    return st;
}

static vigil_status infer_pool(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_require_dtype(ctx, 0, f32_only, 1, err);
    if (st != VIGIL_OK) return st;
    kernels_window w;
    st = pool_window(ctx, &w, err);
    if (st != VIGIL_OK) return st;
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_pool_shape(&xs, &w, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    if (ctx->n_out > 1 && ctx->out[1].present) {
        if (!is_maxpool(ctx)) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "only MaxPool has 2 outputs");
        op_set_out(&ctx->out[1], VIGIL_DTYPE_I64, &ys);
    }
    return VIGIL_OK;
}

typedef struct ref_pool {
    kernels_window w;
    int include_pad;
} ref_pool;

static vigil_status run_ref_pool(step *s, vigil_error *err) {
    const ref_pool *r = s->state;
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    if (strcmp(s->op, "MaxPool") == 0)
        kernels_maxpool_f32(s->in[0].data, &xs, &r->w, s->out[0].data, &ys,
                            s->n_out > 1 && s->out[1].present ? s->out[1].data : NULL);
    else
        kernels_avgpool_f32(s->in[0].data, &xs, &r->w, r->include_pad, s->out[0].data, &ys);
    return VIGIL_OK;
}

static vigil_status run_xnn(step *s, vigil_error *err) {
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK pooling failed (status %d)", (int)x);
    return VIGIL_OK;
}

static vigil_status prepare_xnn_pool(op_ctx *ctx, const kernels_window *w, vigil_error *err) {
    step *s = ctx->step;
    const op_tensor *x = &s->in[0], *y = &s->out[0];
    int64_t pad_end[2];
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[1 + i], out = y->dims[1 + i];
        int64_t eff = (w->kernel[i] - 1) * w->dilation[i] + 1;
        int64_t need = (out - 1) * w->stride[i] + eff - (in + w->pad_begin[i] + w->pad_end[i]);
        pad_end[i] = w->pad_end[i] + (need > 0 ? need : 0);
    }
    size_t c = (size_t)x->dims[3];
    enum xnn_status st;
    if (is_maxpool(ctx)) {
        /* float16 values from the float16 pass (passes_float16.c): max only selects */
        int half = x->dtype == VIGIL_DTYPE_F16;
        st = (half ? xnn_create_max_pooling2d_nhwc_f16 : xnn_create_max_pooling2d_nhwc_f32)(
            (uint32_t)w->pad_begin[0], (uint32_t)pad_end[1], (uint32_t)pad_end[0], (uint32_t)w->pad_begin[1],
            (uint32_t)w->kernel[0], (uint32_t)w->kernel[1], (uint32_t)w->stride[0], (uint32_t)w->stride[1],
            (uint32_t)w->dilation[0], (uint32_t)w->dilation[1], c, c, c, -INFINITY, INFINITY, 0,
            (xnn_operator_t *)&s->xop[0]);
        size_t n = (size_t)x->dims[0], h = (size_t)x->dims[1], wd = (size_t)x->dims[2];
        if (st == xnn_status_success)
            st = half ? xnn_setup_max_pooling2d_nhwc_f16(s->xop[0], n, h, wd, x->data, y->data, s->pool)
                      : xnn_setup_max_pooling2d_nhwc_f32(s->xop[0], n, h, wd, x->data, y->data, s->pool);
    } else {
        st = xnn_create_average_pooling2d_nhwc_f32(
            (uint32_t)w->pad_begin[0], (uint32_t)pad_end[1], (uint32_t)pad_end[0], (uint32_t)w->pad_begin[1],
            (uint32_t)w->kernel[0], (uint32_t)w->kernel[1], (uint32_t)w->stride[0], (uint32_t)w->stride[1], c, c, c,
            -INFINITY, INFINITY, 0, (xnn_operator_t *)&s->xop[0]);
        if (st == xnn_status_success)
            st = xnn_setup_average_pooling2d_nhwc_f32(s->xop[0], (size_t)x->dims[0], (size_t)x->dims[1],
                                                      (size_t)x->dims[2], x->data, y->data, s->pool);
    }
    if (st != xnn_status_success) return xnn_fail(ctx, "pooling", st, err);
    s->run = run_xnn;
    return VIGIL_OK;
}

/* MaxPool on NHWC 8-bit codes (between DequantizeLinear and QuantizeLinear
 * of one scale, passes.c): dequantizing is monotonic, so the largest code
 * is the code of the largest value.  int8 codes are compared as uint8 with
 * the sign bit flipped (order-preserving).  One task per output row.  The
 * channels go in blocks of 32 so that -O2's cheap vectoriser takes the
 * inner loops (it only vectorises a loop whose count is a multiple of the
 * vector length: unblocked, this ran 10x slower than XNNPACK's float32
 * pooling on YOLOv8n's SPPF). */
#define MAXPOOL_BLOCK 32

/* y[k] = max(y[k], x[k] ^ flip) for k < n (n <= MAXPOOL_BLOCK). */
static void max_block(uint8_t *restrict y, const uint8_t *restrict x, int64_t n, uint8_t flip) {
    if (n == MAXPOOL_BLOCK) {
        for (int k = 0; k < MAXPOOL_BLOCK; k++) {
            uint8_t v = x[k] ^ flip;
            y[k] = v > y[k] ? v : y[k];
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        uint8_t v = x[k] ^ flip;
        y[k] = v > y[k] ? v : y[k];
    }
}

static void maxpool_codes_row(void *arg, size_t row) {
    const step *s = arg;
    const ref_pool *r = s->state;
    const op_tensor *x = &s->in[0], *y = &s->out[0];
    int64_t h = x->dims[1], w = x->dims[2], c = x->dims[3], oh = y->dims[1], ow = y->dims[2];
    int64_t n = (int64_t)row / oh, oy = (int64_t)row % oh;
    uint8_t flip = x->dtype == VIGIL_DTYPE_I8 ? 0x80 : 0;
    const uint8_t *xd = (const uint8_t *)x->data + n * h * w * c;
    for (int64_t ox = 0; ox < ow; ox++) {
        uint8_t *yp = (uint8_t *)y->data + ((n * oh + oy) * ow + ox) * c;
        memset(yp, 0, (size_t)c);
        for (int64_t ky = 0; ky < r->w.kernel[0]; ky++) {
            int64_t iy = oy * r->w.stride[0] - r->w.pad_begin[0] + ky * r->w.dilation[0];
            if (iy < 0 || iy >= h) continue;
            for (int64_t kx = 0; kx < r->w.kernel[1]; kx++) {
                int64_t ix = ox * r->w.stride[1] - r->w.pad_begin[1] + kx * r->w.dilation[1];
                if (ix < 0 || ix >= w) continue;
                const uint8_t *xp = xd + (iy * w + ix) * c;
                for (int64_t k = 0; k < c; k += MAXPOOL_BLOCK)
                    max_block(yp + k, xp + k, c - k < MAXPOOL_BLOCK ? c - k : MAXPOOL_BLOCK, flip);
            }
        }
        for (int64_t k = 0; k < c; k++)
            yp[k] ^= flip;
    }
}

static vigil_status run_maxpool_codes(step *s, vigil_error *err) {
    (void)err;
    pthreadpool_parallelize_1d(s->pool, maxpool_codes_row, s, (size_t)(s->out[0].dims[0] * s->out[0].dims[1]), 0);
    return VIGIL_OK;
}

static vigil_status prepare_pool(op_ctx *ctx, vigil_error *err) {
    kernels_window w;
    vigil_status st = pool_window(ctx, &w, err);
    if (st != VIGIL_OK) return st;
    if (ctx->in[0].dtype != VIGIL_DTYPE_F32 && ctx->in[0].dtype != VIGIL_DTYPE_F16) {
        if (!ctx->nhwc || !is_maxpool(ctx) || w.nspatial != 2 || op_elem(&ctx->in[0]) != 1)
            return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "8-bit pooling: only 2-D MaxPool on NHWC tensors");
        st = op_step_alloc(ctx, sizeof(ref_pool), err);
        if (st != VIGIL_OK) return st;
        ((ref_pool *)ctx->step->state)->w = w;
        ctx->step->run = run_maxpool_codes;
        return VIGIL_OK;
    }
    if (ctx->nhwc) return prepare_xnn_pool(ctx, &w, err);
    st = op_step_alloc(ctx, sizeof(ref_pool), err);
    if (st != VIGIL_OK) return st;
    ref_pool *r = ctx->step->state;
    r->w = w;
    r->include_pad = (int)attr_int(ctx->node, "count_include_pad", 0);
    ctx->step->run = run_ref_pool;
    return VIGIL_OK;
}

/* ---- global pools ---- */

static vigil_status infer_global(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_require_dtype(ctx, 0, f32_only, 1, err);
    if (st != VIGIL_OK) return st;
    const op_tensor *x = &ctx->in[0];
    if (x->ndim < 3) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "input must have rank >= 3");
    kshape ys = op_kshape(x);
    for (int d = 2; d < ys.ndim; d++)
        ys.dims[d] = 1;
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    return VIGIL_OK;
}

static vigil_status run_global_ref(step *s, vigil_error *err) {
    const op_tensor *x = &s->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t spatial = planes ? op_count(x) / planes : 0;
    kernels_global_pool_f32(strcmp(s->op, "GlobalMaxPool") == 0, x->data, planes, spatial, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_global(op_ctx *ctx, vigil_error *err) {
    step *s = ctx->step;
    if (!ctx->nhwc || strcmp(ctx->node->op_type, "GlobalAveragePool") != 0) {
        s->run = run_global_ref;
        return VIGIL_OK;
    }
    const op_tensor *x = &s->in[0];
    size_t c = (size_t)x->dims[3];
    enum xnn_status st =
        xnn_create_global_average_pooling_nwc_f32(c, c, c, -INFINITY, INFINITY, 0, (xnn_operator_t *)&s->xop[0]);
    if (st == xnn_status_success)
        st = xnn_setup_global_average_pooling_nwc_f32(s->xop[0], (size_t)x->dims[0], (size_t)(x->dims[1] * x->dims[2]),
                                                      x->data, s->out[0].data, s->pool);
    if (st != xnn_status_success) return xnn_fail(ctx, "global average pooling", st, err);
    s->run = run_xnn;
    return VIGIL_OK;
}

static int global_nhwc_ok(const onnx_node *node) {
    return strcmp(node->op_type, "GlobalAveragePool") == 0;
}

const op_def ops_pool[] = {
    {.name = "MaxPool",
     .quantized = 1, /* 8-bit codes, NHWC (passes.c: fuse_qdq_move) */
     .min_opset = 1,
     .max_opset = 20,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .attrs = maxpool_attrs,
     .check = check_pool,
     .infer = infer_pool,
     .prepare = prepare_pool,
     .nhwc_ok = maxpool_nhwc_ok},
    {.name = "AveragePool",
     .min_opset = 1,
     .max_opset = 20,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .attrs = avgpool_attrs,
     .check = check_pool,
     .infer = infer_pool,
     .prepare = prepare_pool,
     .nhwc_ok = avgpool_nhwc_ok},
    {.name = "GlobalAveragePool",
     .min_opset = 1,
     .max_opset = 20,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .infer = infer_global,
     .prepare = prepare_global,
     .nhwc_ok = global_nhwc_ok},
    {.name = "GlobalMaxPool",
     .min_opset = 1,
     .max_opset = 20,
     .layout = OP_LAYOUT_ONNX,
     .infer = infer_global,
     .prepare = prepare_global,
     .nhwc_ok = global_nhwc_ok},
    {0},
};
