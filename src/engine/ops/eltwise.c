/*
 * eltwise.c - element-wise operators: broadcasting binary ops (arithmetic,
 * comparisons, logic; Max/Min/Sum/Mean variadic), unary activations and math,
 * Clip, Cast, Where, Not, IsNaN, IsInf.
 *
 * float32 Add/Sub/Mul/Div/Max/Min and Sigmoid/Relu/Clip/LeakyRelu/HardSwish/
 * Elu/Abs/Neg/Floor/Ceil/Sqrt/Round run as XNNPACK operators (set up once with
 * the final pointers); everything else calls the reference kernels.  These
 * ops are layout-agnostic: on NHWC tensors the passes have already permuted
 * constant operands, so broadcasting works on the physical shapes unchanged.
 */
#include <math.h>
#include <string.h>
#include <xnnpack.h>

#include "core/alloc.h"
#include "engine/ops/ops.h"

/* ---- binary ---- */

typedef struct binary_info {
    const char *name;
    kernels_binary_op op;
    int variadic;
} binary_info;

static const binary_info binaries[] = {
    {"Add", KERNELS_ADD, 0},
    {"Sub", KERNELS_SUB, 0},
    {"Mul", KERNELS_MUL, 0},
    {"Div", KERNELS_DIV, 0},
    {"Pow", KERNELS_POW, 0},
    {"Mod", KERNELS_MOD, 0},
    {"Max", KERNELS_MAX, 1},
    {"Min", KERNELS_MIN, 1},
    {"Sum", KERNELS_ADD, 1},
    {"Mean", KERNELS_ADD, 1},
    {"Equal", KERNELS_EQUAL, 0},
    {"Less", KERNELS_LESS, 0},
    {"LessOrEqual", KERNELS_LESS_OR_EQUAL, 0},
    {"Greater", KERNELS_GREATER, 0},
    {"GreaterOrEqual", KERNELS_GREATER_OR_EQUAL, 0},
    {"And", KERNELS_AND, 0},
    {"Or", KERNELS_OR, 0},
    {"Xor", KERNELS_XOR, 0},
    {"BitShift", KERNELS_BITSHIFT_LEFT, 0},
};

static const binary_info *binary_lookup(const char *name) {
    for (size_t i = 0; i < sizeof binaries / sizeof binaries[0]; i++)
        if (strcmp(binaries[i].name, name) == 0) return &binaries[i];
    return NULL;
}

static kernels_binary_op binary_op_of(const onnx_node *node, const binary_info *b) {
    if (strcmp(b->name, "Mod") == 0 && attr_int(node, "fmod", 0)) return KERNELS_FMOD;
    if (strcmp(b->name, "BitShift") == 0)
        return strcmp(attr_string(node, "direction", ""), "RIGHT") == 0 ? KERNELS_BITSHIFT_RIGHT
                                                                        : KERNELS_BITSHIFT_LEFT;
    return b->op;
}

static vigil_status check_binary(const onnx_node *node, int64_t opset, vigil_error *err) {
    const binary_info *b = binary_lookup(node->op_type);
    if (!b->variadic && node->n_inputs != 2) return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs 2 inputs");
    if (b->variadic && node->n_inputs < 1) return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs inputs");
    if (strcmp(b->name, "BitShift") == 0) {
        const char *d = attr_string(node, "direction", "");
        if (strcmp(d, "LEFT") != 0 && strcmp(d, "RIGHT") != 0)
            return op_check_fail(node, VIGIL_ERR_PARSE, err, "direction must be LEFT or RIGHT");
    }
    if (opset < 7 && onnx_node_attr(node, "broadcast"))
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "legacy broadcast attribute");
    return VIGIL_OK;
}

static vigil_status infer_binary(op_ctx *ctx, vigil_error *err) {
    const binary_info *b = binary_lookup(ctx->node->op_type);
    kernels_binary_op op = binary_op_of(ctx->node, b);
    vigil_dtype dt = ctx->in[0].dtype;
    for (int i = 1; i < ctx->n_in; i++)
        if (ctx->in[i].dtype != dt && op != KERNELS_POW)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "inputs have different types");
    if (op == KERNELS_POW && ctx->in[1].dtype != dt) {
        static const vigil_dtype numeric[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_F64, VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};
        vigil_status st = op_require_dtype(ctx, 1, numeric, 4, err);
        if (st != VIGIL_OK) return st;
    }
    if ((strcmp(b->name, "Mean") == 0 || strcmp(b->name, "Sum") == 0) && dt != VIGIL_DTYPE_F32)
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "only float32 is supported");
    kshape ys = op_kshape(&ctx->in[0]);
    for (int i = 1; i < ctx->n_in; i++) {
        kshape bs = op_kshape(&ctx->in[i]), t;
        vigil_status st = kshape_broadcast(&ys, &bs, &t, err);
        if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
        ys = t;
    }
    /* Probe the kernel's (op, dtype) support on an empty tensor. */
    kshape empty = kshape_make(1, (int64_t[]){0});
    vigil_error probe;
    if (kernels_binary(op, dt, NULL, &empty, NULL, &empty, NULL, &empty, &probe) == VIGIL_ERR_UNSUPPORTED)
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "type %s is not supported", vigil_dtype_name(dt));
    op_set_out(&ctx->out[0], kernels_binary_out_dtype(op, dt), &ys);
    return VIGIL_OK;
}

typedef struct binary_state {
    kernels_binary_op op;
    int mean;
    void *exponent; /* Pow: exponent cast to the base's dtype (scratch), or NULL */
} binary_state;

static size_t scratch_binary(const op_ctx *ctx) {
    if (ctx->n_in == 2 && ctx->in[1].dtype != ctx->in[0].dtype)
        return (size_t)op_count(&ctx->in[1]) * vigil_dtype_size(ctx->in[0].dtype);
    return 0;
}

static vigil_status run_binary_ref(step *s, vigil_error *err) {
    const binary_state *b = s->state;
    vigil_dtype dt = s->in[0].dtype;
    kshape ys = op_kshape(&s->out[0]);
    if (s->n_in == 1) {
        memcpy(s->out[0].data, s->in[0].data, (size_t)kshape_count(&ys) * vigil_dtype_size(dt));
        return VIGIL_OK;
    }
    const void *second = s->in[1].data;
    if (b->exponent) {
        vigil_status st = kernels_cast(s->in[1].dtype, s->in[1].data, dt, b->exponent, op_count(&s->in[1]), err);
        if (st != VIGIL_OK) return st;
        second = b->exponent;
    }
    kshape as = op_kshape(&s->in[0]), bs = op_kshape(&s->in[1]);
    kshape first;
    vigil_status st = kshape_broadcast(&as, &bs, &first, err);
    int start = 2;
    if (st == VIGIL_OK && kshape_equal(&first, &ys)) {
        st = kernels_binary(b->op, dt, s->in[0].data, &as, second, &bs, s->out[0].data, &ys, err);
    } else { /* variadic with a later input widening the shape: start from in[0] broadcast */
        kernels_broadcast_to(vigil_dtype_size(dt), s->in[0].data, &as, s->out[0].data, &ys);
        st = VIGIL_OK;
        start = 1;
    }
    /* Variadic: fold the remaining inputs into y in place. */
    for (int i = start; i < s->n_in && st == VIGIL_OK; i++) {
        kshape is = op_kshape(&s->in[i]);
        st = kernels_binary(b->op, dt, s->out[0].data, &ys, s->in[i].data, &is, s->out[0].data, &ys, err);
    }
    if (st != VIGIL_OK) return st;
    if (b->mean) {
        float *y = s->out[0].data, k = 1.0f / (float)s->n_in;
        for (int64_t i = 0; i < kshape_count(&ys); i++)
            y[i] *= k;
    }
    return VIGIL_OK;
}

static vigil_status run_xnn_single(step *s, vigil_error *err) {
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK run failed (%d)", (int)x);
    return VIGIL_OK;
}

typedef enum xnn_status (*xnn_binary_create)(float, float, uint32_t, xnn_operator_t *);
typedef enum xnn_status (*xnn_binary_setup)(xnn_operator_t, size_t, const size_t *, size_t, const size_t *,
                                            const float *, const float *, float *, pthreadpool_t);

static enum xnn_status create_max(float lo, float hi, uint32_t flags, xnn_operator_t *op) {
    (void)lo, (void)hi;
    return xnn_create_maximum_nd_f32(flags, op);
}
static enum xnn_status create_min(float lo, float hi, uint32_t flags, xnn_operator_t *op) {
    (void)lo, (void)hi;
    return xnn_create_minimum_nd_f32(flags, op);
}

static void xnn_shapes(const step *s, size_t *as, size_t *bs) {
    for (int d = 0; d < s->in[0].ndim; d++)
        as[d] = (size_t)s->in[0].dims[d];
    for (int d = 0; d < s->in[1].ndim; d++)
        bs[d] = (size_t)s->in[1].dims[d];
}

/* Add and Mul of two float16 tensors computed at run time (passes_float16.c
 * makes only those float16): XNNPACK's f16 operators, with broadcasting. */
static vigil_status prepare_xnn_binary_f16(op_ctx *ctx, kernels_binary_op op, vigil_error *err) {
    step *s = ctx->step;
    if (s->n_in != 2 || s->in[1].dtype != VIGIL_DTYPE_F16 || (op != KERNELS_ADD && op != KERNELS_MUL) ||
        s->in[0].ndim > XNN_MAX_TENSOR_DIMS || s->in[1].ndim > XNN_MAX_TENSOR_DIMS)
        return op_fail(ctx, VIGIL_ERR_INTERNAL, err, "float16 operands only for Add and Mul of two float16 tensors");
    size_t as[XNN_MAX_TENSOR_DIMS], bs[XNN_MAX_TENSOR_DIMS];
    xnn_shapes(s, as, bs);
    xnn_operator_t *xop = (xnn_operator_t *)&s->xop[0];
    int add = op == KERNELS_ADD;
    enum xnn_status x = add ? xnn_create_add_nd_f16(-INFINITY, INFINITY, 0, xop)
                            : xnn_create_multiply_nd_f16(-INFINITY, INFINITY, 0, xop);
    if (x == xnn_status_success)
        x = (add ? xnn_setup_add_nd_f16 : xnn_setup_multiply_nd_f16)(*xop, (size_t)s->in[0].ndim, as,
                                                                     (size_t)s->in[1].ndim, bs, s->in[0].data,
                                                                     s->in[1].data, s->out[0].data, s->pool);
    if (x != xnn_status_success) return xnn_fail(ctx, "float16 binary", x, err);
    s->run = run_xnn_single;
    return VIGIL_OK;
}

/* Tries the XNNPACK path for float32 two-input arithmetic; *used = 0 when it does not apply. */
static vigil_status prepare_xnn_binary(op_ctx *ctx, kernels_binary_op op, int *used, vigil_error *err) {
    step *s = ctx->step;
    *used = 0;
    if (s->n_in != 2 || s->in[0].dtype != VIGIL_DTYPE_F32 || s->in[1].dtype != VIGIL_DTYPE_F32) return VIGIL_OK;
    if (s->in[0].ndim > XNN_MAX_TENSOR_DIMS || s->in[1].ndim > XNN_MAX_TENSOR_DIMS) return VIGIL_OK;
    xnn_binary_create create = NULL;
    xnn_binary_setup setup = NULL;
    switch (op) {
    case KERNELS_ADD:
        create = xnn_create_add_nd_f32;
        setup = xnn_setup_add_nd_f32;
        break;
    case KERNELS_SUB:
        create = xnn_create_subtract_nd_f32;
        setup = xnn_setup_subtract_nd_f32;
        break;
    case KERNELS_MUL:
        create = xnn_create_multiply_nd_f32;
        setup = xnn_setup_multiply_nd_f32;
        break;
    case KERNELS_DIV:
        create = xnn_create_divide_nd_f32;
        setup = xnn_setup_divide_nd_f32;
        break;
    case KERNELS_MAX:
        create = create_max;
        setup = xnn_setup_maximum_nd_f32;
        break;
    case KERNELS_MIN:
        create = create_min;
        setup = xnn_setup_minimum_nd_f32;
        break;
    default: return VIGIL_OK;
    }
    if (op_count(&s->out[0]) == 0) return VIGIL_OK;
    /* XNNPACK may read a little past a constant operand: give it a padded copy. */
    for (int i = 0; i < 2; i++) {
        if (!s->in[i].is_const) continue;
        size_t bytes = (size_t)op_count(&s->in[i]) * sizeof(float);
        void *copy = graph_alloc_const(ctx->graph, bytes);
        if (!copy) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        memcpy(copy, s->in[i].data, bytes);
        s->in[i].data = copy;
    }
    size_t as[XNN_MAX_TENSOR_DIMS], bs[XNN_MAX_TENSOR_DIMS];
    xnn_shapes(s, as, bs);
    enum xnn_status x = create(-INFINITY, INFINITY, 0, (xnn_operator_t *)&s->xop[0]);
    if (x == xnn_status_success)
        x = setup(s->xop[0], (size_t)s->in[0].ndim, as, (size_t)s->in[1].ndim, bs, s->in[0].data, s->in[1].data,
                  s->out[0].data, s->pool);
    if (x != xnn_status_success) return xnn_fail(ctx, "binary", x, err);
    s->run = run_xnn_single;
    *used = 1;
    return VIGIL_OK;
}

static vigil_status prepare_binary(op_ctx *ctx, vigil_error *err) {
    const binary_info *b = binary_lookup(ctx->node->op_type);
    kernels_binary_op op = binary_op_of(ctx->node, b);
    int used = 0, mean = strcmp(b->name, "Mean") == 0;
    if (ctx->in[0].dtype == VIGIL_DTYPE_F16) return prepare_xnn_binary_f16(ctx, op, err);
    vigil_status st = mean ? VIGIL_OK : prepare_xnn_binary(ctx, op, &used, err);
    if (st != VIGIL_OK || used) return st;
    st = op_step_alloc(ctx, sizeof(binary_state), err);
    if (st != VIGIL_OK) return st;
    binary_state *bs = ctx->step->state;
    bs->op = op;
    bs->mean = mean;
    if (scratch_binary(ctx)) bs->exponent = ctx->scratch;
    ctx->step->run = run_binary_ref;
    return VIGIL_OK;
}

/* ---- unary ---- */

typedef struct unary_info {
    const char *name;
    kernels_unary_op op;
    int min_opset;
    const char *const *attrs;
} unary_info;

static const char *const alpha_attr[] = {"alpha", NULL};
static const char *const alpha_beta_attrs[] = {"alpha", "beta", NULL};
static const char *const selu_attrs[] = {"alpha", "gamma", NULL};
static const char *const gelu_attrs[] = {"approximate", NULL};
/* Union of the unary ops' attributes; check_unary validates per op. */
static const char *const unary_attrs[] = {"alpha", "beta", "gamma", "approximate", "min", "max", NULL};

static const unary_info unaries[] = {
    {"Relu", KERNELS_RELU, 1, NULL},
    {"Sigmoid", KERNELS_SIGMOID, 1, NULL},
    {"Tanh", KERNELS_TANH, 1, NULL},
    {"Exp", KERNELS_EXP, 1, NULL},
    {"Log", KERNELS_LOG, 1, NULL},
    {"Sqrt", KERNELS_SQRT, 1, NULL},
    {"Neg", KERNELS_NEG, 1, NULL},
    {"Abs", KERNELS_ABS, 1, NULL},
    {"Reciprocal", KERNELS_RECIPROCAL, 1, NULL},
    {"Floor", KERNELS_FLOOR, 1, NULL},
    {"Ceil", KERNELS_CEIL, 1, NULL},
    {"Round", KERNELS_ROUND, 11, NULL},
    {"Erf", KERNELS_ERF, 9, NULL},
    {"Sign", KERNELS_SIGN, 9, NULL},
    {"Sin", KERNELS_SIN, 7, NULL},
    {"Cos", KERNELS_COS, 7, NULL},
    {"Clip", KERNELS_CLIP, 1, NULL},
    {"LeakyRelu", KERNELS_LEAKY_RELU, 1, alpha_attr},
    {"HardSigmoid", KERNELS_HARD_SIGMOID, 1, alpha_beta_attrs},
    {"HardSwish", KERNELS_HARD_SWISH, 14, NULL},
    {"Elu", KERNELS_ELU, 1, alpha_attr},
    {"Selu", KERNELS_SELU, 1, selu_attrs},
    {"Celu", KERNELS_CELU, 12, alpha_attr},
    {"Softplus", KERNELS_SOFTPLUS, 1, NULL},
    {"Softsign", KERNELS_SOFTSIGN, 1, NULL},
    {"Mish", KERNELS_MISH, 18, NULL},
    {"Gelu", KERNELS_GELU, 20, gelu_attrs},
    {"ThresholdedRelu", KERNELS_THRESHOLDED_RELU, 10, alpha_attr},
};

static const unary_info *unary_lookup(const char *name) {
    for (size_t i = 0; i < sizeof unaries / sizeof unaries[0]; i++)
        if (strcmp(unaries[i].name, name) == 0) return &unaries[i];
    return NULL;
}

static vigil_status check_unary(const onnx_node *node, int64_t opset, vigil_error *err) {
    const unary_info *u = unary_lookup(node->op_type);
    if (opset < u->min_opset) return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "needs opset >= %d", u->min_opset);
    for (size_t i = 0; i < node->n_attrs; i++) {
        const char *a = node->attrs[i].name;
        int known = strcmp(node->op_type, "Clip") == 0 && opset < 11 && (!strcmp(a, "min") || !strcmp(a, "max"));
        for (const char *const *k = u->attrs; k && *k && !known; k++)
            known = strcmp(*k, a) == 0;
        if (!known) return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "attribute '%s' is not supported", a);
    }
    if (strcmp(node->op_type, "Gelu") == 0) {
        const char *ap = attr_string(node, "approximate", "none");
        if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
            return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "approximate '%s'", ap);
    }
    return VIGIL_OK;
}

static int unary_int_ok(kernels_unary_op op) {
    return op == KERNELS_NEG || op == KERNELS_ABS || op == KERNELS_SIGN || op == KERNELS_RELU || op == KERNELS_CLIP;
}

static vigil_status infer_unary(op_ctx *ctx, vigil_error *err) {
    const unary_info *u = unary_lookup(ctx->node->op_type);
    vigil_dtype dt = ctx->in[0].dtype;
    int ok = dt == VIGIL_DTYPE_F32 ||
             (unary_int_ok(u->op) && (dt == VIGIL_DTYPE_I64 || dt == VIGIL_DTYPE_I32 || dt == VIGIL_DTYPE_I8));
    if (!ok) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "type %s is not supported", vigil_dtype_name(dt));
    for (int i = 1; i < ctx->n_in; i++)
        if (in_present(ctx, i) && (ctx->in[i].dtype != dt || op_count(&ctx->in[i]) != 1))
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bounds must be scalars of the input's type");
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], dt, &s);
    return VIGIL_OK;
}

typedef struct unary_state {
    kernels_unary_op op;
    kernels_unary_params p;
} unary_state;

static double bound_value(const op_tensor *t, double dflt) {
    if (!t->present) return dflt;
    switch (t->dtype) {
    case VIGIL_DTYPE_F32: return *(const float *)t->data;
    case VIGIL_DTYPE_I64: return (double)*(const int64_t *)t->data;
    case VIGIL_DTYPE_I32: return *(const int32_t *)t->data;
    case VIGIL_DTYPE_I8: return *(const int8_t *)t->data;
    default: return dflt;
    }
}

static vigil_status run_unary_ref(step *s, vigil_error *err) {
    const unary_state *u = s->state;
    int64_t n = op_count(&s->in[0]);
    kernels_unary_params p = u->p;
    if (u->op == KERNELS_CLIP && s->n_in > 1) { /* opset >= 11: bounds are inputs, maybe computed */
        p.min = (float)bound_value(&s->in[1], -INFINITY);
        p.max = s->n_in > 2 ? (float)bound_value(&s->in[2], INFINITY) : INFINITY;
    }
    if (s->in[0].dtype == VIGIL_DTYPE_F32) {
        kernels_unary_f32(u->op, &p, s->in[0].data, s->out[0].data, n);
        return VIGIL_OK;
    }
    double lo = -9.2e18, hi = 9.2e18;
    if (u->op == KERNELS_CLIP && s->n_in > 1) {
        lo = bound_value(&s->in[1], lo);
        hi = s->n_in > 2 ? bound_value(&s->in[2], hi) : hi;
    }
    return kernels_unary_int(u->op, s->in[0].dtype, s->in[0].data, s->out[0].data, n, (int64_t)lo, (int64_t)hi, err);
}

/* XNNPACK for the common float32 activations with compile-time parameters. */
static vigil_status prepare_xnn_unary(op_ctx *ctx, const unary_state *u, int *used, vigil_error *err) {
    step *s = ctx->step;
    *used = 0;
    size_t n = (size_t)op_count(&s->in[0]);
    if (s->in[0].dtype != VIGIL_DTYPE_F32 || n == 0) return VIGIL_OK;
    for (int i = 1; i < s->n_in; i++)
        if (s->in[i].present && !s->in[i].is_const) return VIGIL_OK;
    xnn_operator_t *op = (xnn_operator_t *)&s->xop[0];
    enum xnn_status x;
    float lo = u->p.min, hi = u->p.max;
    if (u->op == KERNELS_CLIP && s->n_in > 1) {
        lo = (float)bound_value(&s->in[1], -INFINITY);
        hi = s->n_in > 2 ? (float)bound_value(&s->in[2], INFINITY) : INFINITY;
    }
    switch (u->op) {
    case KERNELS_SIGMOID: x = xnn_create_sigmoid_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_RELU: x = xnn_create_clamp_nc_f32(1, 1, 1, 0.0f, INFINITY, 0, op); break;
    case KERNELS_CLIP:
        if (isnan(lo) || isnan(hi) || lo > hi) return VIGIL_OK;
        x = xnn_create_clamp_nc_f32(1, 1, 1, lo, hi, 0, op);
        break;
    case KERNELS_LEAKY_RELU: x = xnn_create_leaky_relu_nc_f32(1, 1, 1, u->p.alpha, 0, op); break;
    case KERNELS_HARD_SWISH: x = xnn_create_hardswish_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_ABS: x = xnn_create_abs_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_NEG: x = xnn_create_negate_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_FLOOR: x = xnn_create_floor_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_CEIL: x = xnn_create_ceiling_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_SQRT: x = xnn_create_square_root_nc_f32(1, 1, 1, 0, op); break;
    case KERNELS_ROUND: x = xnn_create_bankers_rounding_nc_f32(1, 1, 1, 0, op); break;
    default: return VIGIL_OK;
    }
    if (x != xnn_status_success) return xnn_fail(ctx, "unary", x, err);
    const float *in = s->in[0].data;
    float *out = s->out[0].data;
    switch (u->op) {
    case KERNELS_SIGMOID: x = xnn_setup_sigmoid_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_RELU:
    case KERNELS_CLIP: x = xnn_setup_clamp_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_LEAKY_RELU: x = xnn_setup_leaky_relu_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_HARD_SWISH: x = xnn_setup_hardswish_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_ABS: x = xnn_setup_abs_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_NEG: x = xnn_setup_negate_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_FLOOR: x = xnn_setup_floor_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_CEIL: x = xnn_setup_ceiling_nc_f32(*op, n, in, out, s->pool); break;
    case KERNELS_SQRT: x = xnn_setup_square_root_nc_f32(*op, n, in, out, s->pool); break;
    default: x = xnn_setup_bankers_rounding_nc_f32(*op, n, in, out, s->pool); break;
    }
    if (x != xnn_status_success) return xnn_fail(ctx, "unary setup", x, err);
    s->run = run_xnn_single;
    *used = 1;
    return VIGIL_OK;
}

static vigil_status prepare_unary(op_ctx *ctx, vigil_error *err) {
    const unary_info *info = unary_lookup(ctx->node->op_type);
    vigil_status st = op_step_alloc(ctx, sizeof(unary_state), err);
    if (st != VIGIL_OK) return st;
    unary_state *u = ctx->step->state;
    u->op = info->op;
    kernels_unary_defaults(u->op, &u->p);
    u->p.alpha = attr_float(ctx->node, "alpha", u->p.alpha);
    u->p.beta = attr_float(ctx->node, info->op == KERNELS_SELU ? "gamma" : "beta", u->p.beta);
    if (info->op == KERNELS_GELU)
        u->p.alpha = strcmp(attr_string(ctx->node, "approximate", "none"), "tanh") == 0 ? 1.0f : 0.0f;
    if (info->op == KERNELS_CLIP && ctx->opset < 11) {
        u->p.min = attr_float(ctx->node, "min", -INFINITY);
        u->p.max = attr_float(ctx->node, "max", INFINITY);
    }
    int used;
    st = prepare_xnn_unary(ctx, u, &used, err);
    if (st != VIGIL_OK || used) return st;
    ctx->step->run = run_unary_ref;
    return VIGIL_OK;
}

/* ---- Not, IsNaN, IsInf ---- */

static vigil_status infer_predicate(op_ctx *ctx, vigil_error *err) {
    int is_not = strcmp(ctx->node->op_type, "Not") == 0;
    vigil_dtype want = is_not ? VIGIL_DTYPE_BOOL : VIGIL_DTYPE_F32;
    vigil_status st = op_require_dtype(ctx, 0, &want, 1, err);
    if (st != VIGIL_OK) return st;
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_BOOL, &s);
    return VIGIL_OK;
}

static vigil_status run_predicate(step *s, vigil_error *err) {
    int64_t n = op_count(&s->in[0]);
    const int *inf_flags = s->state;
    if (strcmp(s->op, "Not") == 0)
        kernels_not(s->in[0].data, s->out[0].data, n);
    else if (strcmp(s->op, "IsNaN") == 0)
        kernels_isnan_f32(s->in[0].data, s->out[0].data, n);
    else
        kernels_isinf_f32(s->in[0].data, s->out[0].data, n, inf_flags[0], inf_flags[1]);
    return VIGIL_OK;
}

static vigil_status prepare_predicate(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, 2 * sizeof(int), err);
    if (st != VIGIL_OK) return st;
    int *flags = ctx->step->state;
    flags[0] = (int)attr_int(ctx->node, "detect_negative", 1);
    flags[1] = (int)attr_int(ctx->node, "detect_positive", 1);
    ctx->step->run = run_predicate;
    return VIGIL_OK;
}

/* ---- Cast ---- */

static const char *const cast_attrs[] = {"to", "saturate", NULL};

static vigil_status check_cast(const onnx_node *node, int64_t opset, vigil_error *err) {
    vigil_dtype dt;
    const onnx_attr *to = onnx_node_attr(node, "to");
    if (!to) return op_check_fail(node, VIGIL_ERR_PARSE, err, "attribute 'to' is required");
    if (dtype_from_onnx((int32_t)to->i, &dt) != VIGIL_OK)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "cast to %s is not supported",
                             onnx_dtype_name((int32_t)to->i));
    return VIGIL_OK;
}

/* float16 values are computed in float32 (graph.c): a Cast to float16 keeps
 * float32 and rounds each value to half precision, so that everything
 * after it sees exactly the values a float16 tensor would hold. */
static vigil_status infer_cast(op_ctx *ctx, vigil_error *err) {
    vigil_dtype to;
    if (dtype_from_onnx((int32_t)attr_int(ctx->node, "to", 0), &to) != VIGIL_OK)
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "unsupported target type");
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], to == VIGIL_DTYPE_F16 ? VIGIL_DTYPE_F32 : to, &s);
    return VIGIL_OK;
}

static vigil_status run_cast(step *s, vigil_error *err) {
    return kernels_cast(s->in[0].dtype, s->in[0].data, s->out[0].dtype, s->out[0].data, op_count(&s->in[0]), err);
}

static vigil_status run_cast_f16(step *s, vigil_error *err) {
    kernels_cast_to_f16_as_f32(s->in[0].dtype, s->in[0].data, s->out[0].data, op_count(&s->in[0]));
    return VIGIL_OK;
}

static vigil_status prepare_cast(op_ctx *ctx, vigil_error *err) {
    int to_f16 = attr_int(ctx->node, "to", 0) == ONNX_FLOAT16;
    ctx->step->run = to_f16 ? run_cast_f16 : run_cast;
    return VIGIL_OK;
}

/* ---- vigil.F16ToF32, vigil.F32ToF16: a float16 model's boundaries ---- */

/* The graph's float16 inputs are read through F16ToF32 and its float16
 * outputs written by F32ToF16 (graph.c); between them the model computes in
 * float32.  Both conversions are exact or round once (to nearest even). */
static vigil_status infer_to_f32(op_ctx *ctx, vigil_error *err) {
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &s);
    return VIGIL_OK;
}

static vigil_status infer_to_f16(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype floats[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_F16};
    vigil_status st = op_require_dtype(ctx, 0, floats, 2, err);
    kshape s = op_kshape(&ctx->in[0]);
    if (st == VIGIL_OK) op_set_out(&ctx->out[0], VIGIL_DTYPE_F16, &s);
    return st;
}

static vigil_status prepare_boundary(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_cast;
    return VIGIL_OK;
}

/* ---- Where ---- */

static vigil_status infer_where(op_ctx *ctx, vigil_error *err) {
    vigil_dtype b = VIGIL_DTYPE_BOOL;
    vigil_status st = op_require_dtype(ctx, 0, &b, 1, err);
    if (st != VIGIL_OK) return st;
    if (ctx->in[1].dtype != ctx->in[2].dtype)
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "X and Y have different types");
    kshape cs = op_kshape(&ctx->in[0]), xs = op_kshape(&ctx->in[1]), zs = op_kshape(&ctx->in[2]), ys;
    st = kshape_broadcast3(&cs, &xs, &zs, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], ctx->in[1].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_where(step *s, vigil_error *err) {
    kshape cs = op_kshape(&s->in[0]), xs = op_kshape(&s->in[1]), zs = op_kshape(&s->in[2]), ys = op_kshape(&s->out[0]);
    kernels_where(op_elem(&s->out[0]), s->in[0].data, &cs, s->in[1].data, &xs, s->in[2].data, &zs, s->out[0].data, &ys);
    return VIGIL_OK;
}

static vigil_status prepare_where(op_ctx *ctx, vigil_error *err) {
    ctx->step->run = run_where;
    return VIGIL_OK;
}

#define BINARY(n, lay)                                                                                                 \
    {                                                                                                                  \
        .name = n, .min_opset = 7, .max_opset = 20, .layout = lay, .foldable = 1, .check = check_binary,               \
        .infer = infer_binary, .scratch_bytes = scratch_binary, .prepare = prepare_binary                              \
    }
#define UNARY(n)                                                                                                       \
    {                                                                                                                  \
        .name = n, .min_opset = 1, .max_opset = 20, .layout = OP_LAYOUT_UNARY, .layout_inputs = 1, .foldable = 1,      \
        .attrs = unary_attrs, .check = check_unary, .infer = infer_unary, .prepare = prepare_unary                     \
    }
#define PREDICATE(n, a)                                                                                                \
    {                                                                                                                  \
        .name = n, .min_opset = 1, .max_opset = 20, .foldable = 1, .attrs = a, .infer = infer_predicate,               \
        .prepare = prepare_predicate                                                                                   \
    }

static const char *const isinf_attrs[] = {"detect_negative", "detect_positive", NULL};
static const char *const bitshift_attrs[] = {"direction", NULL};
static const char *const mod_attrs[] = {"fmod", NULL};

const op_def ops_eltwise[] = {
    BINARY("Add", OP_LAYOUT_BINARY),
    BINARY("Sub", OP_LAYOUT_BINARY),
    BINARY("Mul", OP_LAYOUT_BINARY),
    BINARY("Div", OP_LAYOUT_BINARY),
    BINARY("Pow", OP_LAYOUT_BINARY),
    BINARY("Max", OP_LAYOUT_BINARY),
    BINARY("Min", OP_LAYOUT_BINARY),
    BINARY("Sum", OP_LAYOUT_BINARY),
    BINARY("Mean", OP_LAYOUT_BINARY),
    {.name = "Mod",
     .min_inputs = 2,
     .min_opset = 10,
     .max_opset = 20,
     .foldable = 1,
     .attrs = mod_attrs,
     .check = check_binary,
     .infer = infer_binary,
     .prepare = prepare_binary},
    BINARY("Equal", OP_LAYOUT_ONNX),
    BINARY("Less", OP_LAYOUT_ONNX),
    BINARY("LessOrEqual", OP_LAYOUT_ONNX),
    BINARY("Greater", OP_LAYOUT_ONNX),
    BINARY("GreaterOrEqual", OP_LAYOUT_ONNX),
    BINARY("And", OP_LAYOUT_ONNX),
    BINARY("Or", OP_LAYOUT_ONNX),
    BINARY("Xor", OP_LAYOUT_ONNX),
    {.name = "BitShift",
     .min_inputs = 2,
     .min_opset = 11,
     .max_opset = 20,
     .foldable = 1,
     .attrs = bitshift_attrs,
     .check = check_binary,
     .infer = infer_binary,
     .prepare = prepare_binary},
    UNARY("Relu"),
    UNARY("Sigmoid"),
    UNARY("Tanh"),
    UNARY("Exp"),
    UNARY("Log"),
    UNARY("Sqrt"),
    UNARY("Neg"),
    UNARY("Abs"),
    UNARY("Reciprocal"),
    UNARY("Floor"),
    UNARY("Ceil"),
    UNARY("Round"),
    UNARY("Erf"),
    UNARY("Sign"),
    UNARY("Sin"),
    UNARY("Cos"),
    UNARY("Clip"),
    UNARY("LeakyRelu"),
    UNARY("HardSigmoid"),
    UNARY("HardSwish"),
    UNARY("Elu"),
    UNARY("Selu"),
    UNARY("Celu"),
    UNARY("Softplus"),
    UNARY("Softsign"),
    UNARY("Mish"),
    UNARY("Gelu"),
    UNARY("ThresholdedRelu"),
    PREDICATE("Not", NULL),
    PREDICATE("IsNaN", NULL),
    PREDICATE("IsInf", isinf_attrs),
    {.name = "Cast",
     .min_opset = 6,
     .max_opset = 20,
     .foldable = 1,
     .attrs = cast_attrs,
     .check = check_cast,
     .infer = infer_cast,
     .prepare = prepare_cast},
    {.name = "vigil.F16ToF32",
     .min_opset = 1,
     .max_opset = 99,
     .foldable = 1,
     .infer = infer_to_f32,
     .prepare = prepare_boundary},
    {.name = "vigil.F32ToF16",
     .min_opset = 1,
     .max_opset = 99,
     .foldable = 1,
     .infer = infer_to_f16,
     .prepare = prepare_boundary},
    {.name = "Where",
     .min_inputs = 3,
     .min_opset = 9,
     .max_opset = 20,
     .foldable = 1,
     .infer = infer_where,
     .prepare = prepare_where},
    {0},
};
