/*
 * resize.c - Resize (opset 10 to 20) and Upsample (opset 7 to 9).
 *
 * The output shape is fixed at compile time from constant scales or sizes.
 * On NHWC tensors an exact integer 2-D bilinear upscale whose coordinate mode
 * XNNPACK implements (half_pixel, pytorch_half_pixel, align_corners,
 * asymmetric) runs as XNNPACK's resize_bilinear2d; everything else runs the
 * reference kernel, which is N-dimensional, so on NHWC it simply gets the
 * scales permuted to the physical order.
 */
#include <string.h>
#include <xnnpack.h>

#include "core/alloc.h"
#include "engine/ops/ops.h"

static const char *const resize_attrs[] = {"mode",
                                           "coordinate_transformation_mode",
                                           "nearest_mode",
                                           "cubic_coeff_a",
                                           "exclude_outside",
                                           "extrapolation_value",
                                           "antialias",
                                           "axes",
                                           "keep_aspect_ratio_policy",
                                           NULL};
static const char *const upsample_attrs[] = {"mode", "scales", NULL};

typedef struct name_value {
    const char *name;
    int value;
} name_value;

static const name_value modes[] = {{"nearest", KERNELS_RESIZE_NEAREST},
                                   {"linear", KERNELS_RESIZE_LINEAR},
                                   {"bilinear", KERNELS_RESIZE_LINEAR},
                                   {"cubic", KERNELS_RESIZE_CUBIC},
                                   {0, 0}};
static const name_value coords[] = {{"half_pixel", KERNELS_COORD_HALF_PIXEL},
                                    {"half_pixel_symmetric", KERNELS_COORD_HALF_PIXEL_SYMMETRIC},
                                    {"pytorch_half_pixel", KERNELS_COORD_PYTORCH_HALF_PIXEL},
                                    {"align_corners", KERNELS_COORD_ALIGN_CORNERS},
                                    {"asymmetric", KERNELS_COORD_ASYMMETRIC},
                                    {"tf_half_pixel_for_nearest", KERNELS_COORD_TF_HALF_PIXEL_FOR_NEAREST},
                                    {"tf_crop_and_resize", KERNELS_COORD_TF_CROP_AND_RESIZE},
                                    {0, 0}};
static const name_value nearests[] = {{"round_prefer_floor", KERNELS_NEAREST_ROUND_PREFER_FLOOR},
                                      {"round_prefer_ceil", KERNELS_NEAREST_ROUND_PREFER_CEIL},
                                      {"floor", KERNELS_NEAREST_FLOOR},
                                      {"ceil", KERNELS_NEAREST_CEIL},
                                      {0, 0}};
static const name_value policies[] = {{"stretch", 0}, {"not_larger", 1}, {"not_smaller", 2}, {0, 0}};

static int lookup(const name_value *t, const char *s) {
    for (; t->name; t++)
        if (strcmp(t->name, s) == 0) return t->value;
    return -1;
}

static int is_upsample(const onnx_node *node) {
    return strcmp(node->op_type, "Upsample") == 0;
}

static vigil_status check_resize(const onnx_node *node, int64_t opset, vigil_error *err) {
    const char *m = attr_string(node, "mode", "nearest");
    if (lookup(modes, m) < 0 || (is_upsample(node) && lookup(modes, m) == KERNELS_RESIZE_CUBIC))
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "mode '%s' is not supported", m);
    const char *c = attr_string(node, "coordinate_transformation_mode", "half_pixel");
    if (lookup(coords, c) < 0 || (opset < 11 && onnx_node_attr(node, "coordinate_transformation_mode")))
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "coordinate_transformation_mode '%s'", c);
    const char *n = attr_string(node, "nearest_mode", "round_prefer_floor");
    if (lookup(nearests, n) < 0) return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "nearest_mode '%s'", n);
    if (attr_int(node, "antialias", 0) != 0)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "antialias=1 is not supported");
    if (lookup(policies, attr_string(node, "keep_aspect_ratio_policy", "stretch")) < 0)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "keep_aspect_ratio_policy");
    return VIGIL_OK;
}

static int resize_nhwc_ok(const onnx_node *node) {
    int m = lookup(modes, attr_string(node, "mode", "nearest"));
    int c = lookup(coords, attr_string(node, "coordinate_transformation_mode", "half_pixel"));
    return m != KERNELS_RESIZE_CUBIC && c != KERNELS_COORD_TF_CROP_AND_RESIZE && !onnx_node_attr(node, "axes");
}

typedef struct resize_state {
    kernels_resize_params p;
    float roi[2 * KERNELS_MAX_DIMS];
} resize_state;

/* Reads the parameters and the logical output shape. */
static vigil_status resize_params(const op_ctx *ctx, resize_state *r, kshape *ys, vigil_error *err) {
    kernels_resize_params *p = &r->p;
    kernels_resize_defaults(p);
    const onnx_node *node = ctx->node;
    p->mode = (kernels_resize_mode)lookup(modes, attr_string(node, "mode", "nearest"));
    if (ctx->opset < 11) {
        p->coord = KERNELS_COORD_ASYMMETRIC;
        p->nearest = KERNELS_NEAREST_FLOOR;
    } else {
        p->coord =
            (kernels_resize_coord)lookup(coords, attr_string(node, "coordinate_transformation_mode", "half_pixel"));
        p->nearest = (kernels_resize_nearest)lookup(nearests, attr_string(node, "nearest_mode", "round_prefer_floor"));
    }
    p->cubic_coeff_a = attr_float(node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = (int)attr_int(node, "exclude_outside", 0);
    p->extrapolation_value = attr_float(node, "extrapolation_value", 0.0f);
    int r_in = ctx->in[0].ndim;
    int scales_idx = ctx->opset < 11 ? 1 : 2, sizes_idx = ctx->opset < 11 ? -1 : 3;
    float scales[KERNELS_MAX_DIMS];
    int64_t sizes[KERNELS_MAX_DIMS], axes[KERNELS_MAX_DIMS];
    int n_axes = attr_ints(node, "axes", axes, KERNELS_MAX_DIMS);
    int want = n_axes >= 0 ? n_axes : r_in;
    const float *sp = NULL;
    const int64_t *zp = NULL;
    if (is_upsample(node) && ctx->opset < 9) {
        const onnx_attr *a = onnx_node_attr(node, "scales");
        if (!a || (int)a->n_floats != r_in) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bad scales");
        memcpy(scales, a->floats, (size_t)r_in * sizeof(float));
        sp = scales;
    } else {
        for (int i = 1; i < ctx->n_in; i++)
            if (in_present(ctx, i) && !ctx->in[i].data && op_count(&ctx->in[i]) > 0)
                return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "resize parameters computed at run time");
        if (in_present(ctx, scales_idx) && op_count(&ctx->in[scales_idx]) > 0) {
            const op_tensor *t = &ctx->in[scales_idx];
            if (t->dtype != VIGIL_DTYPE_F32 || op_count(t) != want)
                return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "scales must be %d floats", want);
            memcpy(scales, t->data, (size_t)want * sizeof(float));
            sp = scales;
        }
        if (sizes_idx > 0 && in_present(ctx, sizes_idx) && op_count(&ctx->in[sizes_idx]) > 0) {
            if (sp) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "both scales and sizes given");
            if (const_ints(&ctx->in[sizes_idx], sizes, KERNELS_MAX_DIMS) != want)
                return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "sizes must be %d ints", want);
            zp = sizes;
        }
        if (!sp && !zp) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs scales or sizes");
    }
    if (p->coord == KERNELS_COORD_TF_CROP_AND_RESIZE) {
        if (!in_present(ctx, 1) || ctx->in[1].dtype != VIGIL_DTYPE_F32 || op_count(&ctx->in[1]) != 2 * want ||
            n_axes >= 0)
            return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "roi must be %d floats", 2 * r_in);
        memcpy(r->roi, ctx->in[1].data, (size_t)(2 * r_in) * sizeof(float));
    }
    kshape xs = op_kshape(&ctx->in[0]);
    int policy = lookup(policies, attr_string(node, "keep_aspect_ratio_policy", "stretch"));
    vigil_status st = kernels_resize_shape(&xs, sp, zp, n_axes >= 0 ? axes : NULL, want, policy, p, ys, err);
    return op_wrap_kernel(ctx, st, err);
}

static vigil_status infer_resize(op_ctx *ctx, vigil_error *err) {
    vigil_status st = ctx->in[0].dtype == VIGIL_DTYPE_F32
                          ? VIGIL_OK
                          : op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "only float32 is supported");
    resize_state r;
    kshape ys;
    if (st == VIGIL_OK) st = resize_params(ctx, &r, &ys, err);
    if (st == VIGIL_OK) op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &ys);
    return st;
}

static vigil_status run_resize_ref(step *s, vigil_error *err) {
    resize_state *r = s->state;
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    return kernels_resize_f32(s->in[0].data, &xs, s->out[0].data, &ys, &r->p, err);
}

static vigil_status run_xnn(step *s, vigil_error *err) {
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK resize failed (%d)", (int)x);
    return VIGIL_OK;
}

/* XNNPACK bilinear for exact integer spatial upscales in a mode it knows. */
static int try_xnn_bilinear(op_ctx *ctx, const resize_state *r, vigil_error *err, vigil_status *st) {
    step *s = ctx->step;
    const op_tensor *x = &s->in[0], *y = &s->out[0];
    const kernels_resize_params *p = &r->p;
    *st = VIGIL_OK;
    if (p->mode != KERNELS_RESIZE_LINEAR || x->dims[0] != y->dims[0] || x->dims[3] != y->dims[3]) return 0;
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[1 + i], out = y->dims[1 + i];
        float scale = p->scales[2 + i];
        if (in < 2 || out % in != 0 || (float)(out / in) != scale) return 0;
    }
    uint32_t flags;
    switch (p->coord) {
    case KERNELS_COORD_HALF_PIXEL:
    case KERNELS_COORD_PYTORCH_HALF_PIXEL: flags = 0; break;
    case KERNELS_COORD_ALIGN_CORNERS: flags = XNN_FLAG_ALIGN_CORNERS; break;
    case KERNELS_COORD_ASYMMETRIC: flags = XNN_FLAG_TENSORFLOW_LEGACY_MODE; break;
    default: return 0;
    }
    size_t c = (size_t)x->dims[3];
    enum xnn_status xs = xnn_create_resize_bilinear2d_nhwc_f32(c, c, c, flags, (xnn_operator_t *)&s->xop[0]);
    if (xs == xnn_status_success)
        xs = xnn_setup_resize_bilinear2d_nhwc_f32(s->xop[0], (size_t)x->dims[0], (size_t)x->dims[1], (size_t)x->dims[2],
                                                  (size_t)y->dims[1], (size_t)y->dims[2], x->data, y->data, s->pool);
    if (xs != xnn_status_success) *st = xnn_fail(ctx, "resize", xs, err);
    s->run = run_xnn;
    return 1;
}

/* 8-bit codes (a nearest Resize between DequantizeLinear and QuantizeLinear,
 * passes.c): the float kernel is run once on the element indices, which
 * nearest only selects, and the copy it implies is kept as runs of
 * consecutive bytes (a 2x upscale of NHWC codes: one run of C bytes per
 * output pixel).  Exact: each output is the input code it selects.  float16
 * values (passes_float16.c) take the same path, two bytes per element. */
typedef struct code_run {
    int64_t dst, src, len;
} code_run;

typedef struct code_runs {
    size_t n;
    code_run run[];
} code_runs;

static vigil_status run_resize_codes(step *s, vigil_error *err) {
    (void)err;
    const code_runs *c = s->state;
    const uint8_t *x = s->in[0].data;
    uint8_t *y = s->out[0].data;
    for (size_t i = 0; i < c->n; i++)
        memcpy(y + c->run[i].dst, x + c->run[i].src, (size_t)c->run[i].len);
    return VIGIL_OK;
}

static vigil_status prepare_resize_codes(op_ctx *ctx, const resize_state *r, vigil_error *err) {
    step *s = ctx->step;
    int64_t nx = op_count(&s->in[0]), ny = op_count(&s->out[0]);
    int64_t elem = op_elem(&s->in[0]); /* 1: 8-bit codes; 2: float16 (passes_float16.c) */
    if (r->p.mode != KERNELS_RESIZE_NEAREST || elem > 2 || nx >= (int64_t)1 << 24)
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err,
                       "8-bit or float16 Resize: only nearest on fewer than 2^24 values");
    float *fx = vigil_malloc((size_t)(nx + ny + 1) * sizeof(float)), *fy = fx ? fx + nx : NULL;
    if (!fx) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < nx; i++)
        fx[i] = (float)i;
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    vigil_status st = kernels_resize_f32(fx, &xs, fy, &ys, &r->p, err);
    size_t n = 0;
    for (int64_t i = 0; i < ny && st == VIGIL_OK; i++) {
        if (!(fy[i] >= 0 && fy[i] < (float)nx && fy[i] == (float)(int64_t)fy[i]))
            st = op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "8-bit Resize: an output is not an input value");
        n += i == 0 || fy[i] != fy[i - 1] + 1;
    }
    code_runs *c = st == VIGIL_OK ? vigil_calloc(1, sizeof *c + n * sizeof c->run[0]) : NULL;
    if (st == VIGIL_OK && !c) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < ny && st == VIGIL_OK; i++) {
        if (i == 0 || fy[i] != fy[i - 1] + 1)
            c->run[c->n++] = (code_run){.dst = i * elem, .src = (int64_t)fy[i] * elem};
        c->run[c->n - 1].len += elem;
    }
    vigil_free(fx);
    if (st != VIGIL_OK) return st;
    vigil_free(s->state);
    s->state = c;
    s->run = run_resize_codes;
    return VIGIL_OK;
}

static vigil_status prepare_resize(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(resize_state), err);
    if (st != VIGIL_OK) return st;
    resize_state *r = ctx->step->state;
    kshape ys;
    op_tensor physical = ctx->in[0];
    if (ctx->nhwc) { /* parameters are read against the logical shape */
        ctx->in[0].dims[1] = physical.dims[3];
        ctx->in[0].dims[2] = physical.dims[1];
        ctx->in[0].dims[3] = physical.dims[2];
    }
    st = resize_params(ctx, r, &ys, err);
    ctx->in[0] = physical;
    if (st != VIGIL_OK) return st;
    if (ctx->nhwc) {
        if (ctx->in[0].dtype == VIGIL_DTYPE_F32 && try_xnn_bilinear(ctx, r, err, &st)) return st;
        float sc[4] = {r->p.scales[0], r->p.scales[2], r->p.scales[3], r->p.scales[1]};
        memcpy(r->p.scales, sc, sizeof sc);
    }
    if (r->p.coord == KERNELS_COORD_TF_CROP_AND_RESIZE) r->p.roi = r->roi;
    if (ctx->in[0].dtype != VIGIL_DTYPE_F32) return prepare_resize_codes(ctx, r, err);
    ctx->step->run = run_resize_ref;
    return VIGIL_OK;
}

const op_def ops_resize[] = {
    {.name = "Resize",
     .quantized = 1, /* nearest on 8-bit codes (passes.c: fuse_qdq_move) */
     .min_opset = 10,
     .max_opset = 20,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .foldable = 1,
     .attrs = resize_attrs,
     .check = check_resize,
     .infer = infer_resize,
     .prepare = prepare_resize,
     .nhwc_ok = resize_nhwc_ok},
    {.name = "Upsample",
     .min_opset = 7,
     .max_opset = 9,
     .layout = OP_LAYOUT_NHWC,
     .layout_inputs = 1,
     .foldable = 1,
     .attrs = upsample_attrs,
     .check = check_resize,
     .infer = infer_resize,
     .prepare = prepare_resize,
     .nhwc_ok = resize_nhwc_ok},
    {0},
};
