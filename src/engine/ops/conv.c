/*
 * conv.c - Conv, ConvTranspose and BatchNormalization.
 *
 * With constant weights and a 4-D input, Conv and ConvTranspose run as
 * XNNPACK NHWC operators whose weights are packed once per instance (ONNX's
 * [M, C/g, kh, kw] is reordered to XNNPACK's [g, M/g, kh, kw, C/g] first).
 * A fused activation (passes.c) becomes the operator's output clamp, or for
 * SiLU one vectorised in-place pass over the output (vmath.c).  Anything else (1-D convolution, weights computed at run
 * time) runs the plain-C reference kernel in ONNX layout, with the same activation.
 *
 * A Conv whose tensors the float16 pass made float16 (passes_float16.c, the
 * engine's float16 mode XNNPACK) runs XNNPACK's f16 convolution: the same
 * reordered weights, rounded to half once when the operator is created (a
 * float16 model's weights were half to begin with, so only BatchNormalization
 * folded into them rounds), the clamp as the operator's, SiLU computed in
 * float32 on the half outputs and rounded back.
 */
#include <math.h>
#include <string.h>
#include <xnnpack.h>

#include "core/alloc.h"
#include "core/half.h"
#include "engine/ops/ops.h"
#include "engine/ops/vmath.h"

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", NULL};
static const char *const convt_attrs[] = {"auto_pad",       "dilations",    "group", "kernel_shape", "pads", "strides",
                                          "output_padding", "output_shape", NULL};
static const char *const bn_attrs[] = {"epsilon", "momentum", "spatial", "training_mode", NULL};

vigil_status op_auto_pad(const onnx_node *node, kernels_auto_pad *out) {
    const char *s = attr_string(node, "auto_pad", "NOTSET");
    if (strcmp(s, "NOTSET") == 0)
        *out = KERNELS_PAD_NOTSET;
    else if (strcmp(s, "SAME_UPPER") == 0)
        *out = KERNELS_PAD_SAME_UPPER;
    else if (strcmp(s, "SAME_LOWER") == 0)
        *out = KERNELS_PAD_SAME_LOWER;
    else if (strcmp(s, "VALID") == 0)
        *out = KERNELS_PAD_VALID;
    else
        return VIGIL_ERR_UNSUPPORTED;
    return VIGIL_OK;
}

/* Reads kernel-window attributes for nspatial dims (1 or 2) of input x. */
vigil_status op_read_window(const op_ctx *ctx, const int64_t *kernel, int transpose, kernels_window *w,
                            vigil_error *err) {
    const op_tensor *x = &ctx->in[0];
    int ns = x->ndim - 2;
    if (ns < 1 || ns > 2) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "only 1-D and 2-D windows are supported");
    kernels_window_defaults(w, ns, kernel);
    int64_t v[4];
    if (attr_ints(ctx->node, "strides", v, 4) == ns)
        for (int i = 0; i < ns; i++)
            w->stride[i] = v[i];
    if (attr_ints(ctx->node, "dilations", v, 4) == ns)
        for (int i = 0; i < ns; i++)
            w->dilation[i] = v[i];
    if (attr_ints(ctx->node, "pads", v, 4) == 2 * ns)
        for (int i = 0; i < ns; i++) {
            w->pad_begin[i] = v[i];
            w->pad_end[i] = v[i + ns];
        }
    if (attr_ints(ctx->node, "output_padding", v, 4) == ns)
        for (int i = 0; i < ns; i++)
            w->output_padding[i] = v[i];
    w->group = attr_int(ctx->node, "group", 1);
    w->ceil_mode = (int)attr_int(ctx->node, "ceil_mode", 0);
    for (int i = 0; i < ns; i++)
        if (w->stride[i] < 1 || w->dilation[i] < 1 || w->kernel[i] < 1 || w->pad_begin[i] < 0 || w->pad_end[i] < 0)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "invalid kernel, stride, dilation or pads");
    kernels_auto_pad ap;
    if (op_auto_pad(ctx->node, &ap) != VIGIL_OK) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "bad auto_pad");
    int64_t in[2] = {x->dims[2], ns > 1 ? x->dims[3] : 1};
    if (transpose)
        kernels_resolve_auto_pad_transpose(ap, in, w);
    else
        kernels_resolve_auto_pad(ap, in, w);
    return VIGIL_OK;
}

static vigil_status check_conv(const onnx_node *node, int64_t opset, vigil_error *err) {
    kernels_auto_pad ap;
    if (op_auto_pad(node, &ap) != VIGIL_OK)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "auto_pad '%s' is not supported",
                             attr_string(node, "auto_pad", ""));
    if (node->n_inputs < 2) return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs inputs X and W");
    return VIGIL_OK;
}

static vigil_status check_convt(const onnx_node *node, int64_t opset, vigil_error *err) {
    vigil_status st = check_conv(node, opset, err);
    if (st == VIGIL_OK && onnx_node_attr(node, "output_shape"))
        st = op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "attribute 'output_shape' is not supported");
    return st;
}

static const vigil_dtype f32_only[] = {VIGIL_DTYPE_F32};

static vigil_status conv_window(const op_ctx *ctx, int transpose, kernels_window *w, vigil_error *err) {
    const op_tensor *wt = &ctx->in[1];
    if (wt->ndim != ctx->in[0].ndim) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "W rank differs from X");
    return op_read_window(ctx, wt->dims + 2, transpose, w, err);
}

static vigil_status infer_conv_common(op_ctx *ctx, int transpose, vigil_error *err) {
    for (int i = 0; i < 3; i++) {
        vigil_status st = op_require_dtype(ctx, i, f32_only, 1, err);
        if (st != VIGIL_OK) return st;
    }
    kernels_window w;
    vigil_status st = conv_window(ctx, transpose, &w, err);
    if (st != VIGIL_OK) return st;
    kshape xs = op_kshape(&ctx->in[0]), ws = op_kshape(&ctx->in[1]), ys;
    st = transpose ? kernels_convtranspose_shape(&xs, &ws, &w, &ys, err) : kernels_conv_shape(&xs, &ws, &w, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    int64_t m = ys.dims[1];
    if (in_present(ctx, 2) && (ctx->in[2].ndim != 1 || ctx->in[2].dims[0] != m))
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bias must be [%lld]", (long long)m);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    return VIGIL_OK;
}

static vigil_status infer_conv(op_ctx *ctx, vigil_error *err) {
    return infer_conv_common(ctx, 0, err);
}
static vigil_status infer_convt(op_ctx *ctx, vigil_error *err) {
    return infer_conv_common(ctx, 1, err);
}

/* ---- fused activation, shared by both paths ---- */

/* What run and setup need beyond the step's tensors. */
typedef struct xnn_conv_state {
    act_kind act;        /* fused SiLU is a pass over the output after the operator */
    int transpose;       /* deconvolution */
    uint32_t adj_h, adj_w; /* ConvTranspose output_padding */
} xnn_conv_state;

/* Runs the XNNPACK operator, then the fused SiLU over the output if any. */
static vigil_status run_xnn_conv(step *s, vigil_error *err) {
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK run failed (status %d)", (int)x);
    if (((const xnn_conv_state *)s->state)->act != ACT_SILU) return VIGIL_OK;
    if (s->out[0].dtype == VIGIL_DTYPE_F16)
        silu_f16_parallel(s->out[0].data, (size_t)op_count(&s->out[0]), s->pool);
    else
        silu_f32_parallel(s->out[0].data, (size_t)op_count(&s->out[0]), s->pool);
    return VIGIL_OK;
}

/* Sets the (possibly shared) operator up for this step's batch, size and
 * pointers: cheap next to create, which packed the weights. */
static vigil_status setup_xnn_conv(step *s, vigil_error *err) {
    const xnn_conv_state *c = s->state;
    const op_tensor *x = &s->in[0];
    enum xnn_status st =
        x->dtype == VIGIL_DTYPE_F16
            ? xnn_setup_convolution2d_nhwc_f16(s->xop[0], (size_t)x->dims[0], (size_t)x->dims[1], (size_t)x->dims[2],
                                               x->data, s->out[0].data, s->setup_pool)
        : c->transpose
            ? xnn_setup_deconvolution2d_nhwc_f32(s->xop[0], (size_t)x->dims[0], (size_t)x->dims[1], (size_t)x->dims[2],
                                                 c->adj_h, c->adj_w, x->data, s->out[0].data, s->setup_pool)
            : xnn_setup_convolution2d_nhwc_f32(s->xop[0], (size_t)x->dims[0], (size_t)x->dims[1], (size_t)x->dims[2],
                                               x->data, s->out[0].data, s->setup_pool);
    if (st != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "XNNPACK %s setup failed (status %d)",
                               c->transpose ? "deconvolution" : "convolution", (int)st);
    return VIGIL_OK;
}

/* Remembers what run_xnn_conv and setup_xnn_conv need. */
static vigil_status xnn_conv_done(op_ctx *ctx, int transpose, const kernels_window *w, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(xnn_conv_state), err);
    if (st != VIGIL_OK) return st;
    xnn_conv_state *c = ctx->step->state;
    c->act = ctx->act;
    c->transpose = transpose;
    c->adj_h = transpose ? (uint32_t)w->output_padding[0] : 0;
    c->adj_w = transpose ? (uint32_t)w->output_padding[1] : 0;
    ctx->step->run = run_xnn_conv;
    ctx->step->setup = setup_xnn_conv;
    return VIGIL_OK;
}

static void act_bounds(const op_ctx *ctx, float *lo, float *hi) {
    *lo = ctx->act == ACT_CLAMP ? ctx->act_min : -INFINITY;
    *hi = ctx->act == ACT_CLAMP ? ctx->act_max : INFINITY;
}

/* ---- XNNPACK path ---- */

static double flops_conv(const op_ctx *ctx) {
    const op_tensor *w = &ctx->in[1];
    double per_out = 2.0 * (double)op_count(w) / (double)w->dims[0];
    return per_out * (double)op_count(&ctx->out[0]);
}

static double flops_convt(const op_ctx *ctx) {
    const op_tensor *w = &ctx->in[1];
    return 2.0 * (double)op_count(&ctx->in[0]) * (double)op_count(w) / (double)w->dims[0];
}

/* Everything xnn_create_(de)convolution2d_nhwc_f32 takes besides the
 * weights: with the weights' and bias's bytes, the fingerprint under which
 * the instance's plans share the operator. */
typedef struct xnn_conv_params {
    uint32_t pad_top, pad_right, pad_bottom, pad_left, kh, kw, stride_h, stride_w, dil_h, dil_w, groups;
    uint32_t transpose, has_bias, half;
    uint64_t group_in, group_out, in_stride, out_stride;
    float lo, hi;
} xnn_conv_params;

static uint64_t conv_fingerprint(const op_ctx *ctx, const xnn_conv_params *p) {
    const step *s = ctx->step;
    uint64_t h = op_hash(OP_HASH_SEED, p, sizeof *p);
    h = op_hash(h, s->in[1].data, (size_t)op_count(&s->in[1]) * sizeof(float));
    if (p->has_bias) h = op_hash(h, s->in[2].data, (size_t)op_count(&s->in[2]) * sizeof(float));
    return h;
}

static void conv_params(const op_ctx *ctx, const kernels_window *w, int transpose, int64_t groups, int64_t gin,
                        int64_t gout, int64_t in_stride, int64_t out_stride, int64_t kh, int64_t kw,
                        xnn_conv_params *p) {
    memset(p, 0, sizeof *p); /* the padding bytes are hashed too */
    p->pad_top = (uint32_t)w->pad_begin[0];
    p->pad_right = (uint32_t)w->pad_end[1];
    p->pad_bottom = (uint32_t)w->pad_end[0];
    p->pad_left = (uint32_t)w->pad_begin[1];
    p->kh = (uint32_t)kh;
    p->kw = (uint32_t)kw;
    p->stride_h = (uint32_t)w->stride[0];
    p->stride_w = (uint32_t)w->stride[1];
    p->dil_h = (uint32_t)w->dilation[0];
    p->dil_w = (uint32_t)w->dilation[1];
    p->groups = (uint32_t)groups;
    p->transpose = (uint32_t)transpose;
    p->has_bias = (uint32_t)in_present(ctx, 2);
    p->half = ctx->in[0].dtype == VIGIL_DTYPE_F16;
    p->group_in = (uint64_t)gin;
    p->group_out = (uint64_t)gout;
    p->in_stride = (uint64_t)in_stride;
    p->out_stride = (uint64_t)out_stride;
    act_bounds(ctx, &p->lo, &p->hi);
}

/* XNNPACK's f16 convolution from the reordered float32 weights (n of them)
 * and the bias (m), both rounded to half here.  XNNPACK copies them into its
 * packed buffer, so the halves live only for the call. */
static enum xnn_status create_xnn_conv_f16(const xnn_conv_params *p, step *s, const float *weights, size_t n, int64_t m,
                                           size_t *bytes) {
    uint16_t *w16 = vigil_malloc((n + (size_t)m) * sizeof(uint16_t) + 1);
    if (!w16) return xnn_status_out_of_memory;
    half_narrow(weights, w16, n);
    if (p->has_bias) half_narrow(s->in[2].data, w16 + n, (size_t)m);
    xnn_count_begin(bytes);
    enum xnn_status st = xnn_create_convolution2d_nhwc_f16(
        p->pad_top, p->pad_right, p->pad_bottom, p->pad_left, p->kh, p->kw, p->stride_h, p->stride_w, p->dil_h,
        p->dil_w, p->groups, (size_t)p->group_in, (size_t)p->group_out, (size_t)p->in_stride, (size_t)p->out_stride,
        w16, p->has_bias ? w16 + n : NULL, p->lo, p->hi, 0, (xnn_operator_t *)&s->xop[0]);
    xnn_count_end();
    vigil_free(w16);
    return st;
}

static vigil_status prepare_xnn_conv(op_ctx *ctx, const kernels_window *w, vigil_error *err) {
    step *s = ctx->step;
    const op_tensor *x = &s->in[0], *wt = &s->in[1];
    int64_t m = wt->dims[0], cg = wt->dims[1], kh = wt->dims[2], kw = wt->dims[3];
    int64_t groups = w->group, c = x->dims[3];
    if (groups < 1 || cg * groups != c || m % groups != 0)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "channels do not match group");
    xnn_conv_params p;
    conv_params(ctx, w, 0, groups, cg, m / groups, c, m, kh, kw, &p);
    uint64_t fingerprint = conv_fingerprint(ctx, &p);
    if (op_xop_find(ctx, fingerprint)) return xnn_conv_done(ctx, 0, w, err);
    float *packed = vigil_malloc((size_t)(m * cg * kh * kw) * sizeof(float) + 1);
    if (!packed) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    const float *src = wt->data;
    for (int64_t o = 0; o < m; o++)
        for (int64_t i = 0; i < cg; i++)
            for (int64_t r = 0; r < kh * kw; r++)
                packed[(o * kh * kw + r) * cg + i] = src[(o * cg + i) * kh * kw + r];
    size_t bytes = 0;
    enum xnn_status st;
    if (p.half) {
        st = create_xnn_conv_f16(&p, s, packed, (size_t)(m * cg * kh * kw), m, &bytes);
    } else {
        xnn_count_begin(&bytes);
        st = xnn_create_convolution2d_nhwc_f32(p.pad_top, p.pad_right, p.pad_bottom, p.pad_left, p.kh, p.kw, p.stride_h,
                                               p.stride_w, p.dil_h, p.dil_w, p.groups, (size_t)cg, (size_t)(m / groups),
                                               (size_t)c, (size_t)m, packed, p.has_bias ? s->in[2].data : NULL, p.lo,
                                               p.hi, 0, (xnn_operator_t *)&s->xop[0]);
        xnn_count_end();
    }
    vigil_free(packed);
    if (st != xnn_status_success) return xnn_fail(ctx, "convolution", st, err);
    vigil_status vs = op_xop_keep(ctx, fingerprint, bytes, err);
    return vs != VIGIL_OK ? vs : xnn_conv_done(ctx, 0, w, err);
}

static vigil_status prepare_xnn_convt(op_ctx *ctx, const kernels_window *w, vigil_error *err) {
    step *s = ctx->step;
    const op_tensor *x = &s->in[0], *wt = &s->in[1];
    int64_t c = wt->dims[0], mg = wt->dims[1], kh = wt->dims[2], kw = wt->dims[3];
    int64_t groups = w->group;
    if (groups < 1 || c != x->dims[3] || c % groups != 0)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "channels do not match group");
    int64_t cg = c / groups, m = mg * groups;
    if (s->out[0].dims[3] != m) return op_fail(ctx, VIGIL_ERR_INTERNAL, err, "deconvolution channel mismatch");
    xnn_conv_params p;
    conv_params(ctx, w, 1, groups, cg, mg, c, m, kh, kw, &p);
    uint64_t fingerprint = conv_fingerprint(ctx, &p);
    if (op_xop_find(ctx, fingerprint)) return xnn_conv_done(ctx, 1, w, err);
    float *packed = vigil_malloc((size_t)(c * mg * kh * kw) * sizeof(float) + 1);
    if (!packed) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    const float *src = wt->data;
    /* ONNX [C, M/g, kh, kw] -> XNNPACK [g, M/g, kh, kw, C/g] */
    for (int64_t g = 0; g < groups; g++)
        for (int64_t o = 0; o < mg; o++)
            for (int64_t r = 0; r < kh * kw; r++)
                for (int64_t i = 0; i < cg; i++)
                    packed[((g * mg + o) * kh * kw + r) * cg + i] = src[((g * cg + i) * mg + o) * kh * kw + r];
    size_t bytes = 0;
    xnn_count_begin(&bytes);
    enum xnn_status st = xnn_create_deconvolution2d_nhwc_f32(
        p.pad_top, p.pad_right, p.pad_bottom, p.pad_left, p.kh, p.kw, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
        p.groups, (size_t)cg, (size_t)mg, (size_t)c, (size_t)m, packed, p.has_bias ? s->in[2].data : NULL, p.lo,
        p.hi, 0, (xnn_operator_t *)&s->xop[0]);
    xnn_count_end();
    vigil_free(packed);
    if (st != xnn_status_success) return xnn_fail(ctx, "deconvolution", st, err);
    vigil_status vs = op_xop_keep(ctx, fingerprint, bytes, err);
    return vs != VIGIL_OK ? vs : xnn_conv_done(ctx, 1, w, err);
}

/* ---- reference path (ONNX layout) ---- */

typedef struct ref_conv {
    kernels_window w;
    int transpose;
    act_kind act;
    float lo, hi;
} ref_conv;

static void apply_act(const ref_conv *r, float *y, int64_t n) {
    if (r->act == ACT_SILU) {
        kernels_unary_f32(KERNELS_SILU, NULL, y, y, n);
    } else if (r->act == ACT_CLAMP) {
        kernels_unary_params p = {.min = r->lo, .max = r->hi};
        kernels_unary_f32(KERNELS_CLIP, &p, y, y, n);
    }
}

static vigil_status run_ref_conv(step *s, vigil_error *err) {
    const ref_conv *r = s->state;
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    const float *b = s->n_in > 2 && s->in[2].present ? s->in[2].data : NULL;
    if (r->transpose)
        kernels_convtranspose_f32(s->in[0].data, &xs, s->in[1].data, b, &r->w, s->out[0].data, &ys);
    else
        kernels_conv_f32(s->in[0].data, &xs, s->in[1].data, b, &r->w, s->out[0].data, &ys);
    apply_act(r, s->out[0].data, kshape_count(&ys));
    return VIGIL_OK;
}

static vigil_status prepare_conv_common(op_ctx *ctx, int transpose, vigil_error *err) {
    kernels_window w;
    /* The window is read against the logical input (pads depend on H, W). */
    op_tensor saved = ctx->in[0];
    ctx->in[0] = op_logical(&saved, ctx->nhwc);
    vigil_status st = conv_window(ctx, transpose, &w, err);
    ctx->in[0] = saved;
    if (st != VIGIL_OK) return st;
    if (ctx->nhwc) return transpose ? prepare_xnn_convt(ctx, &w, err) : prepare_xnn_conv(ctx, &w, err);
    st = op_step_alloc(ctx, sizeof(ref_conv), err);
    if (st != VIGIL_OK) return st;
    ref_conv *r = ctx->step->state;
    r->w = w;
    r->transpose = transpose;
    r->act = ctx->act;
    act_bounds(ctx, &r->lo, &r->hi);
    ctx->step->run = run_ref_conv;
    return VIGIL_OK;
}

static vigil_status prepare_conv(op_ctx *ctx, vigil_error *err) {
    return prepare_conv_common(ctx, 0, err);
}
static vigil_status prepare_convt(op_ctx *ctx, vigil_error *err) {
    return prepare_conv_common(ctx, 1, err);
}

/* ---- BatchNormalization (when not folded into a Conv) ---- */

static vigil_status check_bn(const onnx_node *node, int64_t opset, vigil_error *err) {
    if (attr_int(node, "training_mode", 0) != 0 || node->n_outputs > 1)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "training mode is not supported");
    if (node->n_inputs != 5) return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs 5 inputs");
    if (opset < 9 && attr_int(node, "spatial", 1) != 1)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "spatial=0 is not supported");
    return VIGIL_OK;
}

static vigil_status infer_bn(op_ctx *ctx, vigil_error *err) {
    for (int i = 0; i < 5; i++) {
        vigil_status st = op_require_dtype(ctx, i, f32_only, 1, err);
        if (st != VIGIL_OK) return st;
    }
    const op_tensor *x = &ctx->in[0];
    if (x->ndim < 2) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "X must have rank >= 2");
    for (int i = 1; i < 5; i++)
        if (op_count(&ctx->in[i]) != x->dims[1])
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "input %d must have C elements", i);
    kshape s = op_kshape(x);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &s);
    return VIGIL_OK;
}

static vigil_status run_bn(step *s, vigil_error *err) {
    const op_tensor *x = &s->in[0];
    int64_t spatial = x->dims[1] ? op_count(x) / x->dims[0] / x->dims[1] : 0;
    kernels_batchnorm_f32(x->data, x->dims[0], x->dims[1], spatial, s->in[1].data, s->in[2].data, s->in[3].data,
                          s->in[4].data, *(float *)s->state, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_bn(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(float), err);
    if (st != VIGIL_OK) return st;
    *(float *)ctx->step->state = attr_float(ctx->node, "epsilon", 1e-5f);
    ctx->step->run = run_bn;
    return VIGIL_OK;
}

const op_def ops_conv[] = {
    {.name = "Conv",
     .min_inputs = 2,
     .min_opset = 1,
     .max_opset = 20,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .attrs = conv_attrs,
     .check = check_conv,
     .infer = infer_conv,
     .prepare = prepare_conv,
     .flops = flops_conv},
    {.name = "ConvTranspose",
     .min_inputs = 2,
     .min_opset = 1,
     .max_opset = 20,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .attrs = convt_attrs,
     .check = check_convt,
     .infer = infer_convt,
     .prepare = prepare_convt,
     .flops = flops_convt},
    {.name = "BatchNormalization",
     .min_inputs = 5,
     .min_opset = 7,
     .max_opset = 20,
     .layout = OP_LAYOUT_ONNX,
     .foldable = 1,
     .attrs = bn_attrs,
     .check = check_bn,
     .infer = infer_bn,
     .prepare = prepare_bn},
    {0},
};
