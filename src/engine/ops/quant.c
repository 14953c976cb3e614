/*
 * quant.c - ONNX's quantization operators: QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, ConvInteger, MatMulInteger, QLinearConv and
 * QLinearMatMul, on the reference kernels of kernels/quant.c.
 *
 * The integer operators subtract their zero points into int64 copies in the
 * plan's scratch buffer, run the int64 convolution or matrix product (exact
 * whatever the reduction length) and then narrow (ConvInteger,
 * MatMulInteger: int32, which holds any sum of 8-bit products the spec
 * admits) or requantize (QLinear*: one multiplier per output channel).
 *
 * Scales and zero points are checked when the model loads: a constant scale
 * that is zero or not finite, a zero point whose type or element count does
 * not match its scale or data, an unsupported quantized type, or a
 * per-channel axis out of range is refused with the node named.  Scales
 * computed at run time are not checked again: a zero one saturates, as
 * ONNX's reference does.
 *
 * Also here, from the com.microsoft contrib domain (exporters and ONNX
 * Runtime's quantizer write them): QLinearAdd and QLinearMul, per-tensor
 * parameters, numpy broadcasting.  They compute what DequantizeLinear ->
 * Add/Mul -> QuantizeLinear computes (each input dequantized in float32,
 * the float32 sum or product, quantized half to even and saturated), so a
 * QDQ graph and its contrib form give the same codes in vigil; ONNX
 * Runtime's kernels fold the scales differently and may land one step
 * away on a value at a rounding tie.  The other contrib operators stay
 * refused.
 */
#include <math.h>
#include <string.h>

#include <xnnpack.h>

#include "core/alloc.h"
#include "engine/ops/ops.h"
#include "engine/ops/qconv_vnni.h"
#include "engine/ops/vmath.h"

static const char *const q_attrs[] = {"axis", "saturate", "block_size", NULL};
static const char *const conv_integer_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                                 "pads",     "strides",   NULL};

/* ---- parameter checks shared by every operator here ---- */

static int is_qtype(vigil_dtype t) {
    return t == VIGIL_DTYPE_U8 || t == VIGIL_DTYPE_I8;
}

/* The (scale, zero point) inputs scale_i and zp_i (zp_i < 0 or absent: no
 * zero point) of a tensor with `channels` channels along the quantized axis
 * (0: per tensor only).  The scale is float32 with 1 or `channels` elements,
 * non-zero and finite when constant.  *qtype is the quantized type: when
 * `fixed`, the zero point must have it; otherwise the zero point's U8 or I8
 * type is stored there.  *per_channel is set when the scale has `channels`
 * (> 1) elements. */
static vigil_status check_qparams(const op_ctx *ctx, int scale_i, int zp_i, int64_t channels, int fixed,
                                  vigil_dtype *qtype, int *per_channel, vigil_error *err) {
    const op_tensor *s = &ctx->in[scale_i];
    if (s->dtype != VIGIL_DTYPE_F32)
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "scale (input %d) of type %s is not supported", scale_i,
                       vigil_dtype_name(s->dtype));
    int64_t n = op_count(s);
    if (s->ndim > 1 || (n != 1 && (channels <= 1 || n != channels)))
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err,
                       "scale (input %d) has %lld elements: needs 1 (per tensor) or %lld (per channel)", scale_i,
                       (long long)n, (long long)(channels > 1 ? channels : 1));
    for (int64_t i = 0; s->data && i < n; i++) {
        float v = ((const float *)s->data)[i];
        if (v == 0.0f || !isfinite(v))
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err,
                           "scale (input %d) element %lld is %g: must be non-zero and finite", scale_i, (long long)i,
                           (double)v);
    }
    if (per_channel) *per_channel = n > 1;
    if (zp_i < 0 || !in_present(ctx, zp_i)) return VIGIL_OK;
    const op_tensor *z = &ctx->in[zp_i];
    if (fixed ? z->dtype != *qtype : !is_qtype(z->dtype))
        return op_fail(ctx, fixed ? VIGIL_ERR_INVALID_ARGUMENT : VIGIL_ERR_UNSUPPORTED, err,
                       "zero point (input %d) of type %s: needs %s", zp_i, vigil_dtype_name(z->dtype),
                       fixed ? vigil_dtype_name(*qtype) : "uint8 or int8");
    if (op_count(z) != n || z->ndim > 1)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err,
                       "zero point (input %d) has %lld elements and rank %d, its scale %lld elements", zp_i,
                       (long long)op_count(z), z->ndim, (long long)n);
    *qtype = z->dtype;
    return VIGIL_OK;
}

/* A zero point that is the only quantization parameter (ConvInteger,
 * MatMulInteger): of type want, with 1 or `channels` elements. */
static vigil_status check_zero_point(const op_ctx *ctx, int zp_i, vigil_dtype want, int64_t channels,
                                     vigil_error *err) {
    if (!in_present(ctx, zp_i)) return VIGIL_OK;
    const op_tensor *z = &ctx->in[zp_i];
    if (z->dtype != want)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "zero point (input %d) of type %s: needs %s", zp_i,
                       vigil_dtype_name(z->dtype), vigil_dtype_name(want));
    int64_t n = op_count(z);
    if (z->ndim > 1 || (n != 1 && n != channels))
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "zero point (input %d) has %lld elements: needs 1 or %lld",
                       zp_i, (long long)n, (long long)channels);
    return VIGIL_OK;
}

static vigil_status require_qtype(const op_ctx *ctx, int i, vigil_error *err) {
    static const vigil_dtype q[] = {VIGIL_DTYPE_U8, VIGIL_DTYPE_I8};
    return op_require_dtype(ctx, i, q, 2, err);
}

static const void *zero_point_data(const step *s, int i) {
    return i < s->n_in && s->in[i].present ? s->in[i].data : NULL;
}

/* Output element count of an integer operator's int64 work buffers. */
static size_t i64_bytes(const op_tensor *t) {
    return (size_t)op_count(t) * sizeof(int64_t);
}

/* ---- QuantizeLinear, DequantizeLinear ---- */

static vigil_status check_q(const onnx_node *node, int64_t opset, vigil_error *err) {
    if (attr_int(node, "block_size", 0) != 0)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err,
                             "blocked quantization (block_size, opset 21) is not supported");
    return VIGIL_OK;
}

/* The per-channel axis of node's data input (rank ndim), or -1 per tensor. */
static vigil_status q_axis(const op_ctx *ctx, int per_channel, int *axis, vigil_error *err) {
    *axis = -1;
    if (!per_channel) return VIGIL_OK;
    *axis = norm_axis(attr_int(ctx->node, "axis", 1), ctx->in[0].ndim);
    if (*axis < 0)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis %lld is out of range for rank %d",
                       (long long)attr_int(ctx->node, "axis", 1), ctx->in[0].ndim);
    return VIGIL_OK;
}

/* Channels along the axis attribute (0 when it is out of range: then only
 * per-tensor parameters are accepted and q_axis reports a per-channel one). */
static int64_t q_channels(const op_ctx *ctx) {
    int axis = norm_axis(attr_int(ctx->node, "axis", 1), ctx->in[0].ndim);
    return axis < 0 ? 0 : ctx->in[0].dims[axis];
}

static vigil_status infer_qdq(op_ctx *ctx, int quantize, vigil_error *err) {
    static const vigil_dtype f32[] = {VIGIL_DTYPE_F32};
    static const vigil_dtype ints[] = {VIGIL_DTYPE_U8, VIGIL_DTYPE_I8, VIGIL_DTYPE_I32};
    vigil_status st = op_require_dtype(ctx, 0, quantize ? f32 : ints, quantize ? 1 : 3, err);
    if (st != VIGIL_OK) return st;
    vigil_dtype qtype = quantize ? VIGIL_DTYPE_U8 : ctx->in[0].dtype;
    int per_channel = 0;
    int64_t channels = q_channels(ctx);
    /* a per-channel scale along an out-of-range axis: q_axis names the axis */
    if (channels == 0 && op_count(&ctx->in[1]) > 1) channels = op_count(&ctx->in[1]);
    st = check_qparams(ctx, 1, 2, channels, !quantize, &qtype, &per_channel, err);
    int axis;
    if (st == VIGIL_OK) st = q_axis(ctx, per_channel, &axis, err);
    if (st != VIGIL_OK) return st;
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], quantize ? qtype : VIGIL_DTYPE_F32, &s);
    return VIGIL_OK;
}

static vigil_status infer_quantize(op_ctx *ctx, vigil_error *err) {
    return infer_qdq(ctx, 1, err);
}

static vigil_status infer_dequantize(op_ctx *ctx, vigil_error *err) {
    return infer_qdq(ctx, 0, err);
}

static kernels_qaxis step_qaxis(const step *s) {
    kshape xs = op_kshape(&s->in[0]);
    return kernels_qaxis_make(&xs, *(const int *)s->state);
}

/* Per-tensor QuantizeLinear/DequantizeLinear split into chunks across the
 * thread pool (they sit on every activation of a QDQ model). */
#define QDQ_CHUNK 65536

static void qdq_chunk(void *arg, size_t chunk) {
    const step *s = arg;
    int64_t start = (int64_t)chunk * QDQ_CHUNK, n = op_count(&s->in[0]) - start;
    size_t len = (size_t)(n < QDQ_CHUNK ? n : QDQ_CHUNK);
    float scale = *(const float *)s->in[1].data;
    const void *zp = zero_point_data(s, 2);
    if (s->in[0].dtype == VIGIL_DTYPE_F32) {
        vigil_dtype qt = s->out[0].dtype;
        quantize_f32((const float *)s->in[0].data + start, len, scale, zp ? kernels_qload(qt, zp, 0) : 0,
                     qt == VIGIL_DTYPE_I8, (uint8_t *)s->out[0].data + start);
    } else {
        vigil_dtype xt = s->in[0].dtype;
        dequantize_f32((const uint8_t *)s->in[0].data + start, len, scale, zp ? kernels_qload(xt, zp, 0) : 0,
                       xt == VIGIL_DTYPE_I8, (float *)s->out[0].data + start);
    }
}

static vigil_status run_qdq(step *s, vigil_error *err) {
    if (*(const int *)s->state < 0 && s->in[0].dtype != VIGIL_DTYPE_I32) {
        size_t chunks = (size_t)((op_count(&s->in[0]) + QDQ_CHUNK - 1) / QDQ_CHUNK);
        pthreadpool_parallelize_1d(s->pool, qdq_chunk, s, chunks, 0);
        return VIGIL_OK;
    }
    kernels_qaxis ax = step_qaxis(s);
    if (s->in[0].dtype == VIGIL_DTYPE_F32)
        kernels_quantize_linear(s->in[0].data, &ax, s->in[1].data, s->out[0].dtype, zero_point_data(s, 2),
                                s->out[0].data);
    else
        kernels_dequantize_linear(s->in[0].dtype, s->in[0].data, &ax, s->in[1].data, zero_point_data(s, 2),
                                  s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_qdq(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(int), err);
    if (st != VIGIL_OK) return st;
    int *axis = ctx->step->state;
    st = q_axis(ctx, op_count(&ctx->in[1]) > 1, axis, err);
    if (st != VIGIL_OK) return st;
    if (ctx->nhwc && *axis >= 0) *axis = nhwc_axis(*axis); /* per channel on N,H,W,C data */
    ctx->step->run = run_qdq;
    return VIGIL_OK;
}

/* ---- DynamicQuantizeLinear ---- */

static vigil_status infer_dynamic(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype f32[] = {VIGIL_DTYPE_F32};
    vigil_status st = op_require_dtype(ctx, 0, f32, 1, err);
    if (st != VIGIL_OK) return st;
    kshape s = op_kshape(&ctx->in[0]), scalar = kshape_make(0, NULL);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_U8, &s);
    if (ctx->n_out > 1) op_set_out(&ctx->out[1], VIGIL_DTYPE_F32, &scalar);
    if (ctx->n_out > 2) op_set_out(&ctx->out[2], VIGIL_DTYPE_U8, &scalar);
    return VIGIL_OK;
}

static vigil_status run_dynamic(step *s, vigil_error *err) {
    float scale;
    uint8_t zp;
    kernels_dynamic_quantize_linear(s->in[0].data, op_count(&s->in[0]), s->out[0].data, &scale, &zp);
    if (s->n_out > 1 && s->out[1].data) *(float *)s->out[1].data = scale;
    if (s->n_out > 2 && s->out[2].data) *(uint8_t *)s->out[2].data = zp;
    return VIGIL_OK;
}

static vigil_status prepare_dynamic(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_dynamic;
    return VIGIL_OK;
}

/* ---- ConvInteger, QLinearConv ---- */

/* Where each input sits: ConvInteger (x, w, x_zero_point, w_zero_point),
 * QLinearConv (x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
 * y_zero_point, B). */
typedef struct qconv_inputs {
    int x, x_zp, w, w_zp, x_scale, w_scale, y_scale, y_zp, bias; /* -1: none */
} qconv_inputs;

static const qconv_inputs conv_integer_in = {0, 2, 1, 3, -1, -1, -1, -1, -1};
static const qconv_inputs qlinear_conv_in = {0, 2, 3, 5, 1, 4, 6, 7, 8};

/* By input count: a QLinearConv the QDQ pass made carries the Conv's node. */
static const qconv_inputs *qconv_layout(const op_ctx *ctx) {
    return ctx->n_in >= 8 ? &qlinear_conv_in : &conv_integer_in;
}

/* How a QLinearConv or ConvInteger step runs.  ONNX layout: the reference
 * kernels.  NHWC (QLinearConv between quantized operators, passes.c): XNNPACK's
 * per-channel int8 convolution (qc8) when the weights are int8 and symmetric,
 * uint8 activations shifted to int8 by 128 on the way in and out (exact:
 * x - zp is unchanged); otherwise the reference kernels on N,C,H,W copies. */
typedef struct qconv_state {
    kernels_window w;
    qconv_inputs in;
    int shift_in, shift_out; /* XNNPACK path: uint8 input / output run as int8 */
    int32_t lo, hi;          /* output bounds (a fused Relu or Clip), quantized */
    qconv_vnni *vnni;        /* the AVX-512 VNNI path (NULL: another) */
} qconv_state;

/* The window and output shape of the convolution of ctx's x and w (x read
 * through its logical N,C,H,W view when the node runs NHWC). */
static vigil_status qconv_geometry(op_ctx *ctx, const qconv_inputs *in, kernels_window *w, kshape *ys,
                                   vigil_error *err) {
    const op_tensor *wt = &ctx->in[in->w];
    op_tensor saved = ctx->in[0]; /* x is input 0 of both operators; op_read_window reads it */
    ctx->in[0] = op_logical(&saved, ctx->nhwc);
    vigil_status st = VIGIL_OK;
    if (wt->ndim != ctx->in[0].ndim) st = op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "W rank differs from X");
    if (st == VIGIL_OK) st = op_read_window(ctx, wt->dims + 2, 0, w, err);
    kshape xs = op_kshape(&ctx->in[0]), ws = op_kshape(wt);
    ctx->in[0] = saved;
    if (st != VIGIL_OK) return st;
    st = kernels_conv_shape(&xs, &ws, w, ys, err);
    return st != VIGIL_OK ? op_wrap_kernel(ctx, st, err) : VIGIL_OK;
}

/* The fused activation's bounds (Relu, Clip: passes.c) in the output's
 * quantized domain: quantizing is monotonic, so clamping after it is exact. */
static void qconv_bounds(const op_ctx *ctx, const qconv_inputs *in, qconv_state *q) {
    vigil_dtype yt = ctx->out[0].dtype;
    kernels_qrange(yt, &q->lo, &q->hi);
    if (ctx->act != ACT_CLAMP || in->y_scale < 0 || !ctx->in[in->y_scale].data) return;
    float bounds[2] = {ctx->act_min, ctx->act_max};
    uint8_t qb[2];
    kernels_qaxis ax = {1, 1, 2};
    const void *zp = in_present(ctx, in->y_zp) ? ctx->in[in->y_zp].data : NULL;
    kernels_quantize_linear(bounds, &ax, ctx->in[in->y_scale].data, yt, zp, qb);
    q->lo = kernels_qload(yt, qb, 0);
    q->hi = kernels_qload(yt, qb, 1);
}

static vigil_status infer_qconv(op_ctx *ctx, vigil_error *err) {
    const qconv_inputs *in = qconv_layout(ctx);
    vigil_status st = require_qtype(ctx, in->x, err);
    if (st == VIGIL_OK) st = require_qtype(ctx, in->w, err);
    kernels_window w;
    kshape ys;
    if (st == VIGIL_OK) st = qconv_geometry(ctx, in, &w, &ys, err);
    if (st != VIGIL_OK) return st;
    int64_t m = ys.dims[1];
    vigil_dtype xt = ctx->in[in->x].dtype, wt = ctx->in[in->w].dtype, yt = xt;
    if (in->x_scale < 0) {
        st = check_zero_point(ctx, in->x_zp, xt, 1, err);
        if (st == VIGIL_OK) st = check_zero_point(ctx, in->w_zp, wt, m, err);
        if (st == VIGIL_OK) op_set_out(&ctx->out[0], VIGIL_DTYPE_I32, &ys);
        return st;
    }
    st = check_qparams(ctx, in->x_scale, in->x_zp, 0, 1, &xt, NULL, err);
    if (st == VIGIL_OK) st = check_qparams(ctx, in->w_scale, in->w_zp, m, 1, &wt, NULL, err);
    if (st == VIGIL_OK) st = check_qparams(ctx, in->y_scale, in->y_zp, 0, 0, &yt, NULL, err);
    if (st != VIGIL_OK) return st;
    if (in_present(ctx, in->bias)) {
        const op_tensor *b = &ctx->in[in->bias];
        if (b->dtype != VIGIL_DTYPE_I32 || b->ndim != 1 || b->dims[0] != m)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bias must be int32 [%lld]", (long long)m);
    }
    op_set_out(&ctx->out[0], yt, &ys);
    return VIGIL_OK;
}

/* Per-channel view of W [M, C/g, kh, kw] (channels 1 for a scalar zero point or scale). */
static kernels_qaxis weight_axis(const op_tensor *w, int64_t params) {
    kshape ws = op_kshape(w);
    return kernels_qaxis_make(&ws, params > 1 ? 0 : -1);
}

/* ---- reference path ---- */

/* Bytes of the int64 work buffers: x, w and y, then per output channel the
 * bias (int64) and the requantization multiplier (float). */
static size_t qconv_work_bytes(const op_tensor *x, const op_tensor *w, const op_tensor *y) {
    return i64_bytes(x) + i64_bytes(w) + i64_bytes(y) + (size_t)w->dims[0] * (sizeof(int64_t) + sizeof(float));
}

/* The reference convolution of x (N,C,H,W, shape xs) into y (ys) with the
 * step's parameters, in the scratch buffer's work buffers. */
static void qconv_reference(const step *s, const void *x, const kshape *xs, void *y, const kshape *ys) {
    const qconv_state *q = s->state;
    const qconv_inputs *in = &q->in;
    const op_tensor *w = &s->in[in->w];
    vigil_dtype xt = s->in[in->x].dtype, yt = s->out[0].dtype;
    int64_t m = w->dims[0], ny = kshape_count(ys);
    int64_t *xc = s->scratch, *wc = xc + kshape_count(xs), *acc = wc + op_count(w), *bias = acc + ny;
    float *mult = (float *)(bias + m);
    kernels_qaxis xa = kernels_qaxis_make(xs, -1);
    const void *wzp = zero_point_data(s, in->w_zp);
    kernels_qaxis wa = weight_axis(w, wzp ? op_count(&s->in[in->w_zp]) : 1);
    kernels_qcenter(xt, x, &xa, xt, zero_point_data(s, in->x_zp), xc);
    kernels_qcenter(w->dtype, w->data, &wa, w->dtype, wzp, wc);
    int has_bias = in->bias >= 0 && zero_point_data(s, in->bias);
    for (int64_t i = 0; has_bias && i < m; i++)
        bias[i] = ((const int32_t *)s->in[in->bias].data)[i];
    kernels_conv_i64(xc, xs, wc, has_bias ? bias : NULL, &q->w, acc, ys);
    if (in->y_scale < 0) {
        int32_t *out = y;
        for (int64_t i = 0; i < ny; i++)
            out[i] = (int32_t)acc[i];
        return;
    }
    /* multiplier per output channel: x_scale * w_scale / y_scale in float32 */
    const float *xsc = s->in[in->x_scale].data, *wsc = s->in[in->w_scale].data, *ysc = s->in[in->y_scale].data;
    int per_channel = op_count(&s->in[in->w_scale]) > 1;
    for (int64_t i = 0; i < m; i++)
        mult[i] = xsc[0] * wsc[per_channel ? i : 0] / ysc[0];
    kernels_qaxis ya = kernels_qaxis_make(ys, 1);
    kernels_requantize(acc, &ya, mult, yt, zero_point_data(s, in->y_zp), y);
    int32_t lo, hi;
    kernels_qrange(yt, &lo, &hi);
    for (int64_t i = 0; (q->lo > lo || q->hi < hi) && i < ny; i++) {
        int32_t v = kernels_qload(yt, y, i);
        v = v < q->lo ? q->lo : v > q->hi ? q->hi : v;
        if (yt == VIGIL_DTYPE_I8)
            ((int8_t *)y)[i] = (int8_t)v;
        else
            ((uint8_t *)y)[i] = (uint8_t)v;
    }
}

static vigil_status run_qconv(step *s, vigil_error *err) {
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    qconv_reference(s, s->in[0].data, &xs, s->out[0].data, &ys);
    return VIGIL_OK;
}

/* NHWC tensors the XNNPACK path cannot take: the reference kernels on
 * N,C,H,W copies made in the scratch buffer after the work buffers. */
static vigil_status run_qconv_nhwc(step *s, vigil_error *err) {
    static const int to_nchw[4] = {0, 3, 1, 2}, to_nhwc[4] = {0, 2, 3, 1};
    op_tensor xl = op_logical(&s->in[0], 1), yl = op_logical(&s->out[0], 1);
    kshape xp = op_kshape(&s->in[0]), xs = op_kshape(&xl), ys = op_kshape(&yl);
    uint8_t *xb = (uint8_t *)s->scratch + qconv_work_bytes(&xl, &s->in[((const qconv_state *)s->state)->in.w], &yl);
    uint8_t *yb = xb + kshape_count(&xs);
    kernels_transpose(1, s->in[0].data, &xp, to_nchw, xb);
    qconv_reference(s, xb, &xs, yb, &ys);
    kernels_transpose(1, yb, &ys, to_nhwc, s->out[0].data);
    return VIGIL_OK;
}

/* ---- XNNPACK path (NHWC, int8 symmetric weights) ---- */

/* Whether XNNPACK's qc8 convolution computes this node: NHWC, QLinearConv
 * with int8 weights whose zero points are 0, and requantization scales in
 * the range XNNPACK accepts (x_scale * w_scale / y_scale < 256). */
static int qconv_xnn_ok(const op_ctx *ctx, const qconv_inputs *in) {
    if (!ctx->nhwc || in->x_scale < 0) return 0;
    const op_tensor *w = &ctx->in[in->w], *ws = &ctx->in[in->w_scale];
    const float *xs = ctx->in[in->x_scale].data, *wsc = ws->data, *ysc = ctx->in[in->y_scale].data;
    if (w->dtype != VIGIL_DTYPE_I8 || w->ndim != 4 || !xs || !wsc || !ysc) return 0;
    if (in_present(ctx, in->w_zp)) {
        const op_tensor *z = &ctx->in[in->w_zp];
        for (int64_t i = 0; i < op_count(z); i++)
            if (!z->data || ((const int8_t *)z->data)[i] != 0) return 0;
    }
    for (int64_t i = 0; i < op_count(ws); i++)
        if (!(wsc[i] > 0 && xs[0] > 0 && ysc[0] > 0 && xs[0] * wsc[i] / ysc[0] < 256.0f)) return 0;
    return 1;
}

/* Whether a convolution XNNPACK could run takes the VNNI kernel instead
 * (one group, no dilation, 2-D, a VNNI CPU); fills p but for lo and hi. */
static int qconv_vnni_ok(const op_ctx *ctx, const qconv_inputs *in, const kernels_window *w, qconv_vnni_params *p) {
    const op_tensor *x = &ctx->in[in->x], *wt = &ctx->in[in->w], *y = &ctx->out[0];
    if (w->nspatial != 2 || w->group != 1 || w->dilation[0] != 1 || w->dilation[1] != 1 || x->ndim != 4 ||
        wt->dims[1] != x->dims[3] || ctx->portable || !qconv_vnni_available())
        return 0;
    memset(p, 0, sizeof *p);
    p->n = x->dims[0], p->h = x->dims[1], p->w = x->dims[2], p->c = x->dims[3];
    p->m = wt->dims[0], p->kh = wt->dims[2], p->kw = wt->dims[3];
    p->stride_h = w->stride[0], p->stride_w = w->stride[1];
    p->pad_top = w->pad_begin[0], p->pad_left = w->pad_begin[1];
    p->pad_bottom = w->pad_end[0], p->pad_right = w->pad_end[1];
    /* the output the padded input gives must be the node's */
    if ((p->h + p->pad_top + p->pad_bottom - p->kh) / p->stride_h + 1 != y->dims[1] ||
        (p->w + p->pad_left + p->pad_right - p->kw) / p->stride_w + 1 != y->dims[2] || y->dims[3] != p->m)
        return 0;
    p->x_signed = x->dtype == VIGIL_DTYPE_I8;
    p->x_zp = in_present(ctx, in->x_zp) ? kernels_qload(x->dtype, ctx->in[in->x_zp].data, 0) : 0;
    p->y_zp = in_present(ctx, in->y_zp) ? kernels_qload(y->dtype, ctx->in[in->y_zp].data, 0) : 0;
    p->x_scale = *(const float *)ctx->in[in->x_scale].data;
    p->y_scale = *(const float *)ctx->in[in->y_scale].data;
    return 1;
}

/* Scratch: the VNNI path needs its padded input, the XNNPACK path the
 * shifted input of a uint8 x; the reference path its work buffers (and
 * N,C,H,W copies when NHWC). */
static size_t scratch_qconv(const op_ctx *ctx) {
    const qconv_inputs *in = qconv_layout(ctx);
    const op_tensor *x = &ctx->in[in->x];
    if (qconv_xnn_ok(ctx, in)) {
        op_ctx c = *ctx; /* qconv_geometry reads x's logical view through it, and puts it back */
        kernels_window w;
        kshape ys;
        vigil_error err;
        qconv_vnni_params p;
        if (qconv_geometry(&c, in, &w, &ys, &err) == VIGIL_OK && qconv_vnni_ok(ctx, in, &w, &p))
            return qconv_vnni_scratch(&p);
        return x->dtype == VIGIL_DTYPE_U8 ? (size_t)op_count(x) : 0;
    }
    op_tensor xl = op_logical(x, ctx->nhwc), yl = op_logical(&ctx->out[0], ctx->nhwc);
    size_t n = qconv_work_bytes(&xl, &ctx->in[in->w], &yl);
    return ctx->nhwc ? n + (size_t)op_count(x) + (size_t)op_count(&ctx->out[0]) : n;
}

/* dst = src ^ 0x80 (uint8 <-> int8 shifted by 128), eight bytes at a time. */
static void xor_128(const uint8_t *src, uint8_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, sizeof w);
        w ^= 0x8080808080808080ull;
        memcpy(dst + i, &w, sizeof w);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ 0x80;
}

static vigil_status run_qconv_xnn(step *s, vigil_error *err) {
    const qconv_state *q = s->state;
    if (q->shift_in) xor_128(s->in[0].data, s->scratch, op_count(&s->in[0]));
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK run failed (status %d)", (int)x);
    if (q->shift_out) xor_128(s->out[0].data, s->out[0].data, op_count(&s->out[0]));
    return VIGIL_OK;
}

static vigil_status setup_qconv_xnn(step *s, vigil_error *err) {
    const op_tensor *x = &s->in[0];
    const void *input = ((const qconv_state *)s->state)->shift_in ? s->scratch : x->data;
    enum xnn_status st = xnn_setup_convolution2d_nhwc_qc8(s->xop[0], (size_t)x->dims[0], (size_t)x->dims[1],
                                                          (size_t)x->dims[2], input, s->out[0].data, s->setup_pool);
    if (st != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "XNNPACK int8 convolution setup failed (status %d)",
                               (int)st);
    return VIGIL_OK;
}

/* What xnn_create_convolution2d_nhwc_qc8 takes besides the arrays (hashed
 * with them into the fingerprint the instance's plans share it under). */
typedef struct qc8_params {
    uint32_t pad_top, pad_right, pad_bottom, pad_left, kh, kw, stride_h, stride_w, dil_h, dil_w, groups;
    int32_t x_zp, y_zp, lo, hi;
    uint64_t group_in, group_out, in_stride, out_stride;
    float x_scale, y_scale;
} qc8_params;

static vigil_status prepare_qconv_xnn(op_ctx *ctx, qconv_state *q, vigil_error *err) {
    step *s = ctx->step;
    const qconv_inputs *in = &q->in;
    const op_tensor *x = &s->in[in->x], *wt = &s->in[in->w];
    int64_t m = wt->dims[0], cg = wt->dims[1], kh = wt->dims[2], kw = wt->dims[3], groups = q->w.group;
    if (groups < 1 || cg * groups != x->dims[3] || m % groups != 0)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "channels do not match group");
    q->shift_in = x->dtype == VIGIL_DTYPE_U8;
    q->shift_out = s->out[0].dtype == VIGIL_DTYPE_U8;
    qc8_params p;
    memset(&p, 0, sizeof p); /* padding bytes are hashed */
    p.pad_top = (uint32_t)q->w.pad_begin[0];
    p.pad_left = (uint32_t)q->w.pad_begin[1];
    p.pad_bottom = (uint32_t)q->w.pad_end[0];
    p.pad_right = (uint32_t)q->w.pad_end[1];
    p.kh = (uint32_t)kh;
    p.kw = (uint32_t)kw;
    p.stride_h = (uint32_t)q->w.stride[0];
    p.stride_w = (uint32_t)q->w.stride[1];
    p.dil_h = (uint32_t)q->w.dilation[0];
    p.dil_w = (uint32_t)q->w.dilation[1];
    p.groups = (uint32_t)groups;
    p.group_in = (uint64_t)cg;
    p.group_out = (uint64_t)(m / groups);
    p.in_stride = (uint64_t)x->dims[3];
    p.out_stride = (uint64_t)m;
    /* uint8 tensors run shifted to int8: q - 128 with zero point zp - 128 */
    p.x_zp = (zero_point_data(s, in->x_zp) ? kernels_qload(x->dtype, s->in[in->x_zp].data, 0) : 0) - 128 * q->shift_in;
    p.y_zp = (zero_point_data(s, in->y_zp) ? kernels_qload(s->out[0].dtype, s->in[in->y_zp].data, 0) : 0) -
             128 * q->shift_out;
    p.lo = q->lo - 128 * q->shift_out;
    p.hi = q->hi - 128 * q->shift_out;
    p.x_scale = *(const float *)s->in[in->x_scale].data;
    p.y_scale = *(const float *)s->in[in->y_scale].data;
    /* per-channel kernel scales (a per-tensor scale repeated), weights
     * reordered from ONNX [M, C/g, kh, kw] to XNNPACK [M, kh, kw, C/g] */
    size_t taps = (size_t)(kh * kw), nw = (size_t)m * (size_t)cg * taps;
    float *scales = vigil_malloc((size_t)m * sizeof(float) + nw + 1);
    if (!scales) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    int8_t *packed = (int8_t *)(scales + m);
    const float *wsc = s->in[in->w_scale].data;
    int per_channel = op_count(&s->in[in->w_scale]) > 1;
    for (int64_t o = 0; o < m; o++)
        scales[o] = wsc[per_channel ? o : 0];
    const int8_t *src = wt->data;
    for (int64_t o = 0; o < m; o++)
        for (int64_t i = 0; i < cg; i++)
            for (size_t r = 0; r < taps; r++)
                packed[((size_t)o * taps + r) * (size_t)cg + (size_t)i] =
                    src[((size_t)o * (size_t)cg + (size_t)i) * taps + r];
    const int32_t *bias = zero_point_data(s, in->bias);
    uint64_t fingerprint =
        op_hash(op_hash(op_hash(OP_HASH_SEED, &p, sizeof p), packed, nw), scales, (size_t)m * sizeof(float));
    if (bias) fingerprint = op_hash(fingerprint, bias, (size_t)m * sizeof(int32_t));
    vigil_status vs = VIGIL_OK;
    if (!op_xop_find(ctx, fingerprint)) {
        size_t bytes = 0;
        xnn_count_begin(&bytes);
        enum xnn_status st = xnn_create_convolution2d_nhwc_qc8(
            p.pad_top, p.pad_right, p.pad_bottom, p.pad_left, p.kh, p.kw, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
            p.groups, (size_t)cg, (size_t)(m / groups), (size_t)p.in_stride, (size_t)m, (int8_t)p.x_zp, p.x_scale,
            scales, packed, bias, (int8_t)p.y_zp, p.y_scale, (int8_t)p.lo, (int8_t)p.hi, 0,
            (xnn_operator_t *)&s->xop[0]);
        xnn_count_end();
        vs = st == xnn_status_success ? op_xop_keep(ctx, fingerprint, bytes, err)
                                      : xnn_fail(ctx, "int8 convolution", st, err);
    }
    vigil_free(scales);
    if (vs != VIGIL_OK) return vs;
    s->run = run_qconv_xnn;
    s->setup = setup_qconv_xnn;
    return VIGIL_OK;
}

static vigil_status run_qconv_vnni(step *s, vigil_error *err) {
    const qconv_state *q = s->state;
    qconv_vnni_run(q->vnni, s->in[0].data, s->out[0].data, s->scratch, s->pool);
    return VIGIL_OK;
}

static void destroy_qconv(step *s) {
    qconv_vnni_destroy(((qconv_state *)s->state)->vnni);
}

static vigil_status prepare_qconv_vnni(op_ctx *ctx, qconv_state *q, qconv_vnni_params *p, vigil_error *err) {
    step *s = ctx->step;
    const qconv_inputs *in = &q->in;
    p->lo = q->lo;
    p->hi = q->hi;
    int64_t m = p->m;
    float *scales = vigil_malloc((size_t)m * sizeof(float));
    if (!scales) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    const float *wsc = s->in[in->w_scale].data;
    int per_channel = op_count(&s->in[in->w_scale]) > 1;
    for (int64_t o = 0; o < m; o++)
        scales[o] = wsc[per_channel ? o : 0];
    q->vnni = qconv_vnni_create(p, s->in[in->w].data, scales, zero_point_data(s, in->bias));
    vigil_free(scales);
    if (!q->vnni) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    s->destroy = destroy_qconv;
    s->run = run_qconv_vnni;
    return VIGIL_OK;
}

static vigil_status prepare_qconv(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(qconv_state), err);
    if (st != VIGIL_OK) return st;
    qconv_state *q = ctx->step->state;
    q->in = *qconv_layout(ctx);
    kshape ys;
    st = qconv_geometry(ctx, &q->in, &q->w, &ys, err);
    if (st != VIGIL_OK) return st;
    qconv_bounds(ctx, &q->in, q);
    qconv_vnni_params p;
    if (qconv_xnn_ok(ctx, &q->in) && qconv_vnni_ok(ctx, &q->in, &q->w, &p)) return prepare_qconv_vnni(ctx, q, &p, err);
    if (qconv_xnn_ok(ctx, &q->in)) return prepare_qconv_xnn(ctx, q, err);
    ctx->step->run = ctx->nhwc ? run_qconv_nhwc : run_qconv;
    return VIGIL_OK;
}

static double flops_qconv(const op_ctx *ctx) {
    const op_tensor *w = &ctx->in[qconv_layout(ctx)->w];
    return 2.0 * (double)op_count(&ctx->out[0]) * (double)(w->dims[0] ? op_count(w) / w->dims[0] : 0);
}

/* ---- MatMulInteger, QLinearMatMul ---- */

/* Inputs: MatMulInteger (A, B, a_zero_point, b_zero_point), QLinearMatMul
 * (a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
 * y_zero_point).  A's zero point may be per row (M elements), B's zero point
 * and scale per column (N elements). */
typedef struct qmatmul_inputs {
    int a, a_zp, b, b_zp, a_scale, b_scale, y_scale, y_zp;
} qmatmul_inputs;

static const qmatmul_inputs matmul_integer_in = {0, 2, 1, 3, -1, -1, -1, -1};
static const qmatmul_inputs qlinear_matmul_in = {0, 2, 3, 5, 1, 4, 6, 7};

static const qmatmul_inputs *qmatmul_layout(const op_ctx *ctx) {
    return ctx->n_in >= 8 ? &qlinear_matmul_in : &matmul_integer_in;
}

/* Rows of A and columns of B (1 for a vector operand). */
static int64_t rows_of(const op_tensor *a) {
    return a->ndim >= 2 ? a->dims[a->ndim - 2] : 1;
}

static int64_t cols_of(const op_tensor *b) {
    return b->ndim >= 2 ? b->dims[b->ndim - 1] : 1;
}

static vigil_status infer_qmatmul(op_ctx *ctx, vigil_error *err) {
    const qmatmul_inputs *in = qmatmul_layout(ctx);
    vigil_status st = require_qtype(ctx, in->a, err);
    if (st == VIGIL_OK) st = require_qtype(ctx, in->b, err);
    if (st != VIGIL_OK) return st;
    const op_tensor *a = &ctx->in[in->a], *b = &ctx->in[in->b];
    kshape as = op_kshape(a), bs = op_kshape(b), ys;
    st = kernels_matmul_shape(&as, &bs, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    vigil_dtype at = a->dtype, bt = b->dtype, yt = at;
    if (in->a_scale < 0) {
        st = check_zero_point(ctx, in->a_zp, at, rows_of(a), err);
        if (st == VIGIL_OK) st = check_zero_point(ctx, in->b_zp, bt, cols_of(b), err);
        if (st == VIGIL_OK) op_set_out(&ctx->out[0], VIGIL_DTYPE_I32, &ys);
        return st;
    }
    st = check_qparams(ctx, in->a_scale, in->a_zp, 0, 1, &at, NULL, err);
    if (st == VIGIL_OK) st = check_qparams(ctx, in->b_scale, in->b_zp, cols_of(b), 1, &bt, NULL, err);
    if (st == VIGIL_OK) st = check_qparams(ctx, in->y_scale, in->y_zp, 0, 0, &yt, NULL, err);
    if (st == VIGIL_OK) op_set_out(&ctx->out[0], yt, &ys);
    return st;
}

static size_t scratch_qmatmul(const op_ctx *ctx) {
    const qmatmul_inputs *in = qmatmul_layout(ctx);
    return i64_bytes(&ctx->in[in->a]) + i64_bytes(&ctx->in[in->b]) + i64_bytes(&ctx->out[0]) +
           (size_t)cols_of(&ctx->in[in->b]) * sizeof(float);
}

/* The view of t for parameters with `params` elements along its dim `dim`
 * counted from the end (2: rows, 1: columns). */
static kernels_qaxis param_axis(const op_tensor *t, int64_t params, int dim) {
    kshape s = op_kshape(t);
    return kernels_qaxis_make(&s, params > 1 ? t->ndim - dim : -1);
}

static int64_t param_count(const step *s, int i) {
    return zero_point_data(s, i) ? op_count(&s->in[i]) : 1;
}

static vigil_status run_qmatmul(step *s, vigil_error *err) {
    const qmatmul_inputs *in = s->state;
    const op_tensor *a = &s->in[in->a], *b = &s->in[in->b], *y = &s->out[0];
    int64_t *ac = s->scratch, *bc = ac + op_count(a), *acc = bc + op_count(b), ny = op_count(y);
    float *mult = (float *)(acc + ny);
    kernels_qaxis aa = param_axis(a, param_count(s, in->a_zp), 2), ba = param_axis(b, param_count(s, in->b_zp), 1);
    kernels_qcenter(a->dtype, a->data, &aa, a->dtype, zero_point_data(s, in->a_zp), ac);
    kernels_qcenter(b->dtype, b->data, &ba, b->dtype, zero_point_data(s, in->b_zp), bc);
    kshape as = op_kshape(a), bs = op_kshape(b), ys = op_kshape(y);
    vigil_status st = kernels_matmul(VIGIL_DTYPE_I64, ac, &as, bc, &bs, acc, &ys, err);
    if (st != VIGIL_OK) return st;
    if (in->y_scale < 0) {
        int32_t *out = y->data;
        for (int64_t i = 0; i < ny; i++)
            out[i] = (int32_t)acc[i];
        return VIGIL_OK;
    }
    /* multiplier per column: a_scale * b_scale / y_scale in float32 */
    int64_t nb = op_count(&s->in[in->b_scale]);
    const float *asc = s->in[in->a_scale].data, *bsc = s->in[in->b_scale].data, *ysc = s->in[in->y_scale].data;
    for (int64_t j = 0; j < nb; j++)
        mult[j] = asc[0] * bsc[j] / ysc[0];
    kernels_qaxis ya = kernels_qaxis_make(&ys, nb > 1 ? ys.ndim - 1 : -1);
    kernels_requantize(acc, &ya, mult, y->dtype, zero_point_data(s, in->y_zp), y->data);
    return VIGIL_OK;
}

static vigil_status prepare_qmatmul(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(qmatmul_inputs), err);
    if (st != VIGIL_OK) return st;
    *(qmatmul_inputs *)ctx->step->state = *qmatmul_layout(ctx);
    ctx->step->run = run_qmatmul;
    return VIGIL_OK;
}

static double flops_qmatmul(const op_ctx *ctx) {
    const op_tensor *a = &ctx->in[0];
    return 2.0 * (double)op_count(&ctx->out[0]) * (double)(a->ndim ? a->dims[a->ndim - 1] : 1);
}

/* ---- vigil.QLookup: DequantizeLinear -> SiLU (-> QuantizeLinear) ---- */

/* passes.c turns DequantizeLinear -> Sigmoid, Mul(x, Sigmoid(x)), per
 * tensor, into one lookup over the 8-bit input: 256 values in, so the float
 * path is run once per value here, with the kernels the unfused graph runs
 * (dequantize_f32, XNNPACK's float32 sigmoid, one float multiply, and
 * quantize_f32 when a QuantizeLinear follows, yt 8-bit): the table (uint8
 * codes, or float32 when yt is float32) is that path's answer bit for bit. */
vigil_status quant_silu_table(vigil_dtype xt, float x_scale, int32_t x_zp, vigil_dtype yt, float y_scale,
                              int32_t y_zp, void *table, vigil_error *err) {
    uint8_t codes[256];
    float x[256], sig[256];
    for (int i = 0; i < 256; i++)
        codes[i] = (uint8_t)i; /* byte i is code i (uint8) or (int8_t)i (int8) */
    dequantize_f32(codes, 256, x_scale, x_zp, xt == VIGIL_DTYPE_I8, x);
    xnn_operator_t op = NULL;
    enum xnn_status st = xnn_create_sigmoid_nc_f32(1, 1, 1, 0, &op);
    if (st == xnn_status_success) st = xnn_setup_sigmoid_nc_f32(op, 256, x, sig, NULL);
    if (st == xnn_status_success) st = xnn_run_operator(op, NULL);
    if (op) xnn_delete_operator(op);
    if (st != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK sigmoid failed (status %d)", (int)st);
    for (int i = 0; i < 256; i++)
        sig[i] *= x[i];
    if (yt == VIGIL_DTYPE_F32)
        memcpy(table, sig, sizeof sig);
    else
        quantize_f32(sig, 256, y_scale, y_zp, yt == VIGIL_DTYPE_I8, table);
    return VIGIL_OK;
}

#define LOOKUP_CHUNK 65536

static void lookup_chunk(void *arg, size_t chunk) {
    const step *s = arg;
    const uint8_t *table = s->in[1].data, *x = (const uint8_t *)s->in[0].data + chunk * LOOKUP_CHUNK;
    uint8_t *y = (uint8_t *)s->out[0].data + chunk * LOOKUP_CHUNK;
    size_t n = (size_t)op_count(&s->in[0]) - chunk * LOOKUP_CHUNK;
    if (n > LOOKUP_CHUNK) n = LOOKUP_CHUNK;
    if (s->out[0].dtype == VIGIL_DTYPE_F32) { /* a float32 result: one load and store per value */
        const float *tf = s->in[1].data;
        float *yf = (float *)s->out[0].data + chunk * LOOKUP_CHUNK;
        for (size_t i = 0; i < n; i++)
            yf[i] = tf[x[i]];
        return;
    }
    if (*(const int *)s->state) { /* the CPU has AVX-512 VBMI */
        qlookup_vbmi(table, x, y, n);
        return;
    }
    uint8_t t[256]; /* a local copy: the compiler need not reload it after each store through y */
    memcpy(t, table, sizeof t);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* eight bytes in one load, out in one store */
        uint64_t v, r = 0;
        memcpy(&v, x + i, sizeof v);
        for (int k = 0; k < 8; k++)
            r |= (uint64_t)t[(v >> (8 * k)) & 255] << (8 * k);
        memcpy(y + i, &r, sizeof r);
    }
    for (; i < n; i++)
        y[i] = t[x[i]];
}

static vigil_status run_lookup(step *s, vigil_error *err) {
    size_t chunks = (size_t)((op_count(&s->in[0]) + LOOKUP_CHUNK - 1) / LOOKUP_CHUNK);
    pthreadpool_parallelize_1d(s->pool, lookup_chunk, s, chunks, 0);
    return VIGIL_OK;
}

static vigil_status prepare_lookup(op_ctx *ctx, vigil_error *err) {
    int float_out = ctx->out[0].dtype == VIGIL_DTYPE_F32;
    int table_ok = float_out ? ctx->in[1].dtype == VIGIL_DTYPE_F32
                             : op_elem(&ctx->out[0]) == 1 && ctx->in[1].dtype == VIGIL_DTYPE_U8;
    if (op_count(&ctx->in[1]) != 256 || op_elem(&ctx->in[0]) != 1 || !table_ok)
        return op_fail(ctx, VIGIL_ERR_INTERNAL, err, "lookup needs an 8-bit input and a 256-entry table");
    vigil_status st = op_step_alloc(ctx, sizeof(int), err); /* state: whether to take qlookup_vbmi */
    if (st != VIGIL_OK) return st;
    *(int *)ctx->step->state = !ctx->portable && qlookup_vbmi_available();
    ctx->step->run = run_lookup;
    return VIGIL_OK;
}

static vigil_status infer_lookup(op_ctx *ctx, vigil_error *err) {
    return op_fail(ctx, VIGIL_ERR_INTERNAL, err, "lookups are made after inference");
}

/* ---- vigil.QAdd: DequantizeLinear x2 -> Add -> QuantizeLinear ---- */

/* passes.c turns a same-shape Add between per-tensor DequantizeLinears and a
 * QuantizeLinear (a C2f residual of a quantized YOLO) into one lookup of
 * both codes: 65536 sums, each the float path's (the vectorised dequantize,
 * one float32 addition, the vectorised quantize), so bit for bit. */
vigil_status quant_add_table(vigil_dtype t, float a_scale, int32_t a_zp, float b_scale, int32_t b_zp, float c_scale,
                             int32_t c_zp, uint8_t *table, vigil_error *err) {
    (void)err;
    uint8_t codes[256];
    float a[256], b[256], sum[256];
    int is_signed = t == VIGIL_DTYPE_I8;
    for (int i = 0; i < 256; i++)
        codes[i] = (uint8_t)i; /* byte i is code i (uint8) or (int8_t)i (int8) */
    dequantize_f32(codes, 256, a_scale, a_zp, is_signed, a);
    dequantize_f32(codes, 256, b_scale, b_zp, is_signed, b);
    for (int i = 0; i < 256; i++) {
        for (int j = 0; j < 256; j++)
            sum[j] = a[i] + b[j];
        quantize_f32(sum, 256, c_scale, c_zp, is_signed, table + 256 * i);
    }
    return VIGIL_OK;
}

/* Code c at (a_scale, a_zp) requantized to (c_scale, c_zp): a Concat input
 * at other parameters than its output (passes.c), the float path's codes. */
void quant_requantize_table(vigil_dtype t, float a_scale, int32_t a_zp, float c_scale, int32_t c_zp, uint8_t *table) {
    uint8_t codes[256];
    float a[256];
    int is_signed = t == VIGIL_DTYPE_I8;
    for (int i = 0; i < 256; i++)
        codes[i] = (uint8_t)i;
    dequantize_f32(codes, 256, a_scale, a_zp, is_signed, a);
    quantize_f32(a, 256, c_scale, c_zp, is_signed, table);
}

static void qadd_chunk(void *arg, size_t chunk) {
    const step *s = arg;
    const uint8_t *table = s->in[2].data;
    const uint8_t *a = (const uint8_t *)s->in[0].data + chunk * LOOKUP_CHUNK;
    const uint8_t *b = (const uint8_t *)s->in[1].data + chunk * LOOKUP_CHUNK;
    uint8_t *y = (uint8_t *)s->out[0].data + chunk * LOOKUP_CHUNK;
    size_t n = (size_t)op_count(&s->out[0]) - chunk * LOOKUP_CHUNK;
    if (n > LOOKUP_CHUNK) n = LOOKUP_CHUNK;
    for (size_t i = 0; i < n; i++)
        y[i] = table[(size_t)a[i] << 8 | b[i]];
}

static vigil_status run_qadd(step *s, vigil_error *err) {
    (void)err;
    size_t chunks = (size_t)((op_count(&s->out[0]) + LOOKUP_CHUNK - 1) / LOOKUP_CHUNK);
    pthreadpool_parallelize_1d(s->pool, qadd_chunk, s, chunks, 0);
    return VIGIL_OK;
}

static vigil_status prepare_qadd(op_ctx *ctx, vigil_error *err) {
    int64_t n = op_count(&ctx->out[0]);
    if (op_count(&ctx->in[0]) != n || op_count(&ctx->in[1]) != n || op_elem(&ctx->in[0]) != 1 ||
        op_elem(&ctx->in[1]) != 1 || op_elem(&ctx->out[0]) != 1 || op_count(&ctx->in[2]) != 65536)
        return op_fail(ctx, VIGIL_ERR_INTERNAL, err, "the 8-bit add needs two 8-bit inputs of its output's size");
    ctx->step->run = run_qadd;
    return VIGIL_OK;
}

/* ---- QLinearAdd, QLinearMul (com.microsoft) ---- */

/* Inputs: A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale,
 * C_zero_point (the zero points optional). */
enum { QB_A = 0, QB_B = 3, QB_C_SCALE = 6 };

/* The zero points may be left out by an empty name; the rest may not. */
static vigil_status check_qbinary(const onnx_node *node, int64_t opset, vigil_error *err) {
    (void)opset;
    static const int required[] = {QB_A, QB_A + 1, QB_B, QB_B + 1, QB_C_SCALE};
    if (node->n_inputs < QB_C_SCALE + 1)
        return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs at least %d inputs", QB_C_SCALE + 1);
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!node->inputs[required[i]][0])
            return op_check_fail(node, VIGIL_ERR_PARSE, err, "input %d is required", required[i]);
    return VIGIL_OK;
}

static vigil_status infer_qbinary(op_ctx *ctx, vigil_error *err) {
    vigil_status st = require_qtype(ctx, QB_A, err);
    if (st == VIGIL_OK) st = require_qtype(ctx, QB_B, err);
    if (st != VIGIL_OK) return st;
    vigil_dtype t = ctx->in[QB_A].dtype;
    if (ctx->in[QB_B].dtype != t)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "A is %s, B %s: they need one type",
                       vigil_dtype_name(t), vigil_dtype_name(ctx->in[QB_B].dtype));
    static const int params[3][2] = {{QB_A + 1, QB_A + 2}, {QB_B + 1, QB_B + 2}, {QB_C_SCALE, QB_C_SCALE + 1}};
    for (int i = 0; i < 3 && st == VIGIL_OK; i++) /* every zero point of A's type */
        st = check_qparams(ctx, params[i][0], params[i][1], 0, 1, &t, NULL, err);
    kshape as = op_kshape(&ctx->in[QB_A]), bs = op_kshape(&ctx->in[QB_B]), ys;
    if (st == VIGIL_OK) st = kshape_broadcast(&as, &bs, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], t, &ys);
    return VIGIL_OK;
}

/* float32 copies of A, B and the result, in that order. */
static size_t scratch_qbinary(const op_ctx *ctx) {
    return (size_t)(op_count(&ctx->in[QB_A]) + op_count(&ctx->in[QB_B]) + op_count(&ctx->out[0])) * sizeof(float);
}

static vigil_status run_qbinary(step *s, vigil_error *err) {
    const op_tensor *a = &s->in[QB_A], *b = &s->in[QB_B], *y = &s->out[0];
    float *fa = s->scratch, *fb = fa + op_count(a), *fy = fb + op_count(b);
    kshape as = op_kshape(a), bs = op_kshape(b), ys = op_kshape(y);
    kernels_qaxis pa = kernels_qaxis_make(&as, -1), pb = kernels_qaxis_make(&bs, -1), py = kernels_qaxis_make(&ys, -1);
    kernels_dequantize_linear(a->dtype, a->data, &pa, s->in[QB_A + 1].data, zero_point_data(s, QB_A + 2), fa);
    kernels_dequantize_linear(b->dtype, b->data, &pb, s->in[QB_B + 1].data, zero_point_data(s, QB_B + 2), fb);
    kernels_binary_op op = *(const kernels_binary_op *)s->state;
    vigil_status st = kernels_binary(op, VIGIL_DTYPE_F32, fa, &as, fb, &bs, fy, &ys, err);
    if (st == VIGIL_OK)
        kernels_quantize_linear(fy, &py, s->in[QB_C_SCALE].data, y->dtype, zero_point_data(s, QB_C_SCALE + 1),
                                y->data);
    return st;
}

static vigil_status prepare_qbinary(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(kernels_binary_op), err);
    if (st != VIGIL_OK) return st;
    *(kernels_binary_op *)ctx->step->state = strcmp(ctx->node->op_type, "QLinearMul") == 0 ? KERNELS_MUL : KERNELS_ADD;
    ctx->step->run = run_qbinary;
    return VIGIL_OK;
}

/* Table rows differ only in name, opsets, required inputs, layout and
 * functions.  Every one may keep its 8-bit tensors NHWC (quantized): the
 * layout policy only uses that for QuantizeLinear/DequantizeLinear
 * (layout-agnostic) and QLinearConv (NHWC); input 0 alone follows it. */
#define QUANT_OP(op_name, first, last, inputs, layout_kind, attr_list, check_fn, infer_fn, scratch_fn, prepare_fn,     \
                 flops_fn)                                                                                             \
    {                                                                                                                  \
        .name = op_name, .min_opset = first, .max_opset = last, .min_inputs = inputs, .layout = layout_kind,           \
        .layout_inputs = 1, .quantized = 1, .foldable = 1, .attrs = attr_list, .check = check_fn, .infer = infer_fn,   \
        .scratch_bytes = scratch_fn, .prepare = prepare_fn, .flops = flops_fn                                          \
    }

const op_def ops_quant[] = {
    QUANT_OP("QuantizeLinear", 10, 21, 2, OP_LAYOUT_UNARY, q_attrs, check_q, infer_quantize, NULL, prepare_qdq, NULL),
    QUANT_OP("DequantizeLinear", 10, 21, 2, OP_LAYOUT_UNARY, q_attrs, check_q, infer_dequantize, NULL, prepare_qdq,
             NULL),
    QUANT_OP("DynamicQuantizeLinear", 11, 20, 0, OP_LAYOUT_ONNX, NULL, NULL, infer_dynamic, NULL, prepare_dynamic,
             NULL),
    QUANT_OP("ConvInteger", 10, 20, 2, OP_LAYOUT_ONNX, conv_integer_attrs, NULL, infer_qconv, scratch_qconv,
             prepare_qconv, flops_qconv),
    QUANT_OP("QLinearConv", 10, 20, 8, OP_LAYOUT_NHWC, conv_integer_attrs, NULL, infer_qconv, scratch_qconv,
             prepare_qconv, flops_qconv),
    QUANT_OP("MatMulInteger", 10, 20, 2, OP_LAYOUT_ONNX, NULL, NULL, infer_qmatmul, scratch_qmatmul, prepare_qmatmul,
             flops_qmatmul),
    QUANT_OP("QLinearMatMul", 10, 20, 8, OP_LAYOUT_ONNX, NULL, NULL, infer_qmatmul, scratch_qmatmul, prepare_qmatmul,
             flops_qmatmul),
    QUANT_OP("vigil.QLookup", 1, 99, 2, OP_LAYOUT_UNARY, NULL, NULL, infer_lookup, NULL, prepare_lookup, NULL),
    /* both codes follow the layout (one shape: elementwise in either) */
    {.name = "vigil.QAdd", .min_opset = 1, .max_opset = 99, .min_inputs = 3, .layout = OP_LAYOUT_BINARY,
     .layout_inputs = 2, .quantized = 1, .infer = infer_lookup, .prepare = prepare_qadd},
    /* contrib: any ONNX opset (their own versions are com.microsoft's) */
    {.name = "QLinearAdd", .domain = "com.microsoft", .min_opset = 1, .max_opset = 99, .min_inputs = 1,
     .layout = OP_LAYOUT_ONNX, .quantized = 1, .foldable = 1, .check = check_qbinary, .infer = infer_qbinary,
     .scratch_bytes = scratch_qbinary, .prepare = prepare_qbinary},
    {.name = "QLinearMul", .domain = "com.microsoft", .min_opset = 1, .max_opset = 99, .min_inputs = 1,
     .layout = OP_LAYOUT_ONNX, .quantized = 1, .foldable = 1, .check = check_qbinary, .infer = infer_qbinary,
     .scratch_bytes = scratch_qbinary, .prepare = prepare_qbinary},
    {0},
};
