/*
 * reduce.c - operators that combine values along axes: Softmax, LogSoftmax,
 * Hardmax, the Reduce* family, ArgMax/ArgMin, CumSum and TopK.
 *
 * Softmax follows each opset's rule: before 13 the input is coerced to 2-D at
 * the axis (default 1), from 13 it works along one axis (default -1).  A
 * float32 softmax over the innermost extent runs on XNNPACK.
 */
#include <string.h>
#include <xnnpack.h>

#include "engine/ops/ops.h"
#include "engine/ops/vmath.h"

static const vigil_dtype f32_only[] = {VIGIL_DTYPE_F32};

/* [outer, axis_len, inner] of t around axis (coerce: opset < 13 2-D rule). */
static void split_dims(const op_tensor *t, int axis, int coerce, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = 1;
    *len = 1;
    *inner = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (d < axis)
            *outer *= t->dims[d];
        else if (d == axis || coerce)
            *len *= t->dims[d];
        else
            *inner *= t->dims[d];
    }
}

/* ---- Softmax, LogSoftmax, Hardmax ---- */

static const char *const axis_attr[] = {"axis", NULL};

static vigil_status softmax_axis(const op_ctx *ctx, int *axis, vigil_error *err) {
    int r = ctx->in[0].ndim;
    int64_t dflt = ctx->opset < 13 ? 1 : -1;
    *axis = norm_axis(attr_int(ctx->node, "axis", dflt), r > 0 ? r : 1);
    if (*axis < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
    return VIGIL_OK;
}

static vigil_status infer_softmax(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_require_dtype(ctx, 0, f32_only, 1, err);
    int axis;
    if (st == VIGIL_OK) st = softmax_axis(ctx, &axis, err);
    if (st != VIGIL_OK) return st;
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], VIGIL_DTYPE_F32, &s);
    return VIGIL_OK;
}

typedef struct softmax_state {
    int64_t outer, len, inner;
} softmax_state;

/* The strided float32 softmax keeps a running max and sum per inner position. */
static size_t scratch_softmax(const op_ctx *ctx) {
    int axis;
    int64_t outer, len, inner;
    if (ctx->in[0].dtype != VIGIL_DTYPE_F32 || softmax_axis(ctx, &axis, NULL) != VIGIL_OK) return 0;
    split_dims(&ctx->in[0], axis, ctx->opset < 13, &outer, &len, &inner);
    return inner > 1 ? 2 * sizeof(float) * (size_t)inner : 0;
}

static vigil_status run_softmax(step *s, vigil_error *err) {
    const softmax_state *m = s->state;
    if (strcmp(s->op, "Softmax") == 0 && m->inner > 1)
        softmax_f32_strided(s->in[0].data, s->out[0].data, (size_t)m->outer, (size_t)m->len, (size_t)m->inner,
                            s->scratch);
    else if (strcmp(s->op, "Softmax") == 0)
        kernels_softmax_f32(s->in[0].data, s->out[0].data, m->outer, m->len, m->inner);
    else if (strcmp(s->op, "LogSoftmax") == 0)
        kernels_log_softmax_f32(s->in[0].data, s->out[0].data, m->outer, m->len, m->inner);
    else
        kernels_hardmax_f32(s->in[0].data, s->out[0].data, m->outer, m->len, m->inner);
    return VIGIL_OK;
}

static vigil_status run_xnn(step *s, vigil_error *err) {
    enum xnn_status x = xnn_run_operator(s->xop[0], s->pool);
    if (x != xnn_status_success) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "XNNPACK softmax failed (%d)", (int)x);
    return VIGIL_OK;
}

static vigil_status prepare_softmax(op_ctx *ctx, vigil_error *err) {
    int axis;
    vigil_status st = softmax_axis(ctx, &axis, err);
    if (st == VIGIL_OK) st = op_step_alloc(ctx, sizeof(softmax_state), err);
    if (st != VIGIL_OK) return st;
    step *s = ctx->step;
    softmax_state *m = s->state;
    split_dims(&s->in[0], axis, ctx->opset < 13, &m->outer, &m->len, &m->inner);
    s->run = run_softmax;
    if (strcmp(ctx->node->op_type, "Softmax") == 0 && m->inner == 1 && m->len > 0 && m->outer > 0) {
        size_t c = (size_t)m->len;
        enum xnn_status x = xnn_create_softmax_nc_f32(c, c, c, 0, (xnn_operator_t *)&s->xop[0]);
        if (x == xnn_status_success)
            x = xnn_setup_softmax_nc_f32(s->xop[0], (size_t)m->outer, s->in[0].data, s->out[0].data, s->pool);
        if (x != xnn_status_success) return xnn_fail(ctx, "softmax", x, err);
        s->run = run_xnn;
    }
    return VIGIL_OK;
}

/* ---- Reduce* ---- */

static const char *const reduce_attrs[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};

typedef struct reduce_info {
    const char *name;
    kernels_reduce_op op;
} reduce_info;

static const reduce_info reduces[] = {
    {"ReduceSum", KERNELS_REDUCE_SUM},
    {"ReduceMean", KERNELS_REDUCE_MEAN},
    {"ReduceMax", KERNELS_REDUCE_MAX},
    {"ReduceMin", KERNELS_REDUCE_MIN},
    {"ReduceProd", KERNELS_REDUCE_PROD},
    {"ReduceL1", KERNELS_REDUCE_L1},
    {"ReduceL2", KERNELS_REDUCE_L2},
    {"ReduceLogSum", KERNELS_REDUCE_LOG_SUM},
    {"ReduceLogSumExp", KERNELS_REDUCE_LOG_SUM_EXP},
    {"ReduceSumSquare", KERNELS_REDUCE_SUM_SQUARE},
};

static kernels_reduce_op reduce_op(const char *name) {
    for (size_t i = 0; i < sizeof reduces / sizeof reduces[0]; i++)
        if (strcmp(reduces[i].name, name) == 0) return reduces[i].op;
    return KERNELS_REDUCE_SUM;
}

typedef struct reduce_state {
    kernels_reduce_op op;
    uint8_t mask[KERNELS_MAX_DIMS];
} reduce_state;

static vigil_status reduce_params(const op_ctx *ctx, reduce_state *r, kshape *ys, vigil_error *err) {
    int64_t axes[KERNELS_MAX_DIMS];
    int n = 0;
    int axes_input = ctx->opset >= 18 || (ctx->opset >= 13 && strcmp(ctx->node->op_type, "ReduceSum") == 0);
    if (axes_input) {
        if (in_present(ctx, 1)) {
            if (!ctx->in[1].data)
                return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "axes computed at run time are not supported");
            n = const_ints(&ctx->in[1], axes, KERNELS_MAX_DIMS);
            if (n < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bad axes");
        }
    } else {
        n = attr_ints(ctx->node, "axes", axes, KERNELS_MAX_DIMS);
        if (n < 0) n = 0;
    }
    r->op = reduce_op(ctx->node->op_type);
    kshape xs = op_kshape(&ctx->in[0]);
    vigil_status st = kernels_reduce_shape(&xs, axes, n, (int)attr_int(ctx->node, "keepdims", 1),
                                           (int)attr_int(ctx->node, "noop_with_empty_axes", 0), r->mask, ys, err);
    return op_wrap_kernel(ctx, st, err);
}

static vigil_status infer_reduce(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype types[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};
    vigil_status st = op_require_dtype(ctx, 0, types, 3, err);
    reduce_state r;
    kshape ys;
    if (st == VIGIL_OK) st = reduce_params(ctx, &r, &ys, err);
    if (st != VIGIL_OK) return st;
    if (ctx->in[0].dtype != VIGIL_DTYPE_F32 &&
        (r.op == KERNELS_REDUCE_L2 || r.op == KERNELS_REDUCE_LOG_SUM || r.op == KERNELS_REDUCE_LOG_SUM_EXP))
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "integer input is not supported");
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_reduce(step *s, vigil_error *err) {
    const reduce_state *r = s->state;
    kshape xs = op_kshape(&s->in[0]);
    return kernels_reduce(r->op, s->in[0].dtype, s->in[0].data, &xs, r->mask, s->out[0].data, err);
}

static vigil_status prepare_reduce(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(reduce_state), err);
    kshape ys;
    if (st == VIGIL_OK) st = reduce_params(ctx, ctx->step->state, &ys, err);
    ctx->step->run = run_reduce;
    return st;
}

/* ---- ArgMax, ArgMin ---- */

static const char *const arg_attrs[] = {"axis", "keepdims", "select_last_index", NULL};

static vigil_status infer_arg(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype types[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};
    vigil_status st = op_require_dtype(ctx, 0, types, 3, err);
    if (st != VIGIL_OK) return st;
    int axis = norm_axis(attr_int(ctx->node, "axis", 0), ctx->in[0].ndim);
    if (axis < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
    kshape ys = op_kshape(&ctx->in[0]);
    if (attr_int(ctx->node, "keepdims", 1)) {
        ys.dims[axis] = 1;
    } else {
        for (int d = axis; d + 1 < ys.ndim; d++)
            ys.dims[d] = ys.dims[d + 1];
        ys.ndim--;
    }
    op_set_out(&ctx->out[0], VIGIL_DTYPE_I64, &ys);
    return VIGIL_OK;
}

typedef struct arg_state {
    int64_t outer, len, inner;
    int is_min, last;
} arg_state;

static vigil_status run_arg(step *s, vigil_error *err) {
    const arg_state *a = s->state;
    return kernels_argreduce(a->is_min, s->in[0].dtype, s->in[0].data, a->outer, a->len, a->inner, a->last,
                             s->out[0].data, err);
}

static vigil_status prepare_arg(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(arg_state), err);
    if (st != VIGIL_OK) return st;
    arg_state *a = ctx->step->state;
    int axis = norm_axis(attr_int(ctx->node, "axis", 0), ctx->in[0].ndim);
    split_dims(&ctx->in[0], axis, 0, &a->outer, &a->len, &a->inner);
    a->is_min = strcmp(ctx->node->op_type, "ArgMin") == 0;
    a->last = (int)attr_int(ctx->node, "select_last_index", 0);
    ctx->step->run = run_arg;
    return VIGIL_OK;
}

/* ---- CumSum ---- */

static const char *const cumsum_attrs[] = {"exclusive", "reverse", NULL};

static vigil_status cumsum_axis(const op_ctx *ctx, int *axis, vigil_error *err) {
    int64_t a;
    *axis = 0; /* on every path: gcc -O3 (Release) cannot see that an error status is never VIGIL_OK and warned maybe-uninitialized */
    if (!ctx->in[1].data) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "axis computed at run time");
    if (const_ints(&ctx->in[1], &a, 1) != 1) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bad axis");
    *axis = norm_axis(a, ctx->in[0].ndim);
    if (*axis < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
    return VIGIL_OK;
}

static vigil_status infer_cumsum(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype types[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_F64, VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};
    vigil_status st = op_require_dtype(ctx, 0, types, 4, err);
    int axis;
    if (st == VIGIL_OK) st = cumsum_axis(ctx, &axis, err);
    if (st != VIGIL_OK) return st;
    kshape s = op_kshape(&ctx->in[0]);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &s);
    return VIGIL_OK;
}

static vigil_status run_cumsum(step *s, vigil_error *err) {
    const int64_t *p = s->state; /* outer, len, inner, exclusive, reverse */
    return kernels_cumsum(s->in[0].dtype, s->in[0].data, s->out[0].data, p[0], p[1], p[2], (int)p[3], (int)p[4], err);
}

static vigil_status prepare_cumsum(op_ctx *ctx, vigil_error *err) {
    int axis;
    vigil_status st = cumsum_axis(ctx, &axis, err);
    if (st == VIGIL_OK) st = op_step_alloc(ctx, 5 * sizeof(int64_t), err);
    if (st != VIGIL_OK) return st;
    int64_t *p = ctx->step->state;
    split_dims(&ctx->in[0], axis, 0, &p[0], &p[1], &p[2]);
    p[3] = attr_int(ctx->node, "exclusive", 0);
    p[4] = attr_int(ctx->node, "reverse", 0);
    ctx->step->run = run_cumsum;
    return VIGIL_OK;
}

/* ---- TopK ---- */

static const char *const topk_attrs[] = {"axis", "largest", "sorted", "k", NULL};

static vigil_status topk_k(const op_ctx *ctx, int64_t *k, vigil_error *err) {
    if (ctx->opset < 10) {
        *k = attr_int(ctx->node, "k", -1);
        return VIGIL_OK;
    }
    if (!in_present(ctx, 1)) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs K");
    if (!ctx->in[1].data) return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "K computed at run time");
    if (const_ints(&ctx->in[1], k, 1) != 1) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "K must be one int");
    return VIGIL_OK;
}

static vigil_status infer_topk(op_ctx *ctx, vigil_error *err) {
    static const vigil_dtype types[] = {VIGIL_DTYPE_F32, VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};
    vigil_status st = op_require_dtype(ctx, 0, types, 3, err);
    int64_t k;
    if (st == VIGIL_OK) st = topk_k(ctx, &k, err);
    if (st != VIGIL_OK) return st;
    int axis = norm_axis(attr_int(ctx->node, "axis", -1), ctx->in[0].ndim);
    if (axis < 0 || k < 0 || k > ctx->in[0].dims[axis])
        return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bad axis or K");
    kshape ys = op_kshape(&ctx->in[0]);
    ys.dims[axis] = k;
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    if (ctx->n_out > 1) op_set_out(&ctx->out[1], VIGIL_DTYPE_I64, &ys);
    return VIGIL_OK;
}

static vigil_status run_topk(step *s, vigil_error *err) {
    const int64_t *p = s->state; /* outer, len, inner, k, largest, sorted */
    if (s->n_out < 2 || !s->out[1].data)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "TopK without its indices output");
    return kernels_topk(s->in[0].dtype, s->in[0].data, p[0], p[1], p[2], p[3], (int)p[4], (int)p[5], s->out[0].data,
                        s->out[1].data, err);
}

static vigil_status prepare_topk(op_ctx *ctx, vigil_error *err) {
    int64_t k;
    vigil_status st = topk_k(ctx, &k, err);
    if (st == VIGIL_OK) st = op_step_alloc(ctx, 6 * sizeof(int64_t), err);
    if (st != VIGIL_OK) return st;
    int64_t *p = ctx->step->state;
    int axis = norm_axis(attr_int(ctx->node, "axis", -1), ctx->in[0].ndim);
    split_dims(&ctx->in[0], axis, 0, &p[0], &p[1], &p[2]);
    p[3] = k;
    p[4] = attr_int(ctx->node, "largest", 1);
    p[5] = attr_int(ctx->node, "sorted", 1);
    if (ctx->n_out < 2 || !ctx->out[0].present || !ctx->out[1].present)
        return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "both outputs are required");
    ctx->step->run = run_topk;
    return VIGIL_OK;
}

#define REDUCE(n)                                                                                                      \
    {                                                                                                                  \
        .name = n, .min_opset = 1, .max_opset = 20, .foldable = 1, .attrs = reduce_attrs, .infer = infer_reduce,       \
        .prepare = prepare_reduce                                                                                      \
    }
#define SOFTMAX(n)                                                                                                     \
    {                                                                                                                  \
        .name = n, .min_opset = 1, .max_opset = 20, .foldable = 1, .attrs = axis_attr, .infer = infer_softmax,         \
        .scratch_bytes = scratch_softmax, .prepare = prepare_softmax                                                   \
    }

const op_def ops_reduce[] = {
    SOFTMAX("Softmax"),
    SOFTMAX("LogSoftmax"),
    SOFTMAX("Hardmax"),
    REDUCE("ReduceSum"),
    REDUCE("ReduceMean"),
    REDUCE("ReduceMax"),
    REDUCE("ReduceMin"),
    REDUCE("ReduceProd"),
    REDUCE("ReduceL1"),
    REDUCE("ReduceL2"),
    REDUCE("ReduceLogSum"),
    REDUCE("ReduceLogSumExp"),
    REDUCE("ReduceSumSquare"),
    {.name = "ArgMax",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = arg_attrs,
     .infer = infer_arg,
     .prepare = prepare_arg},
    {.name = "ArgMin",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = arg_attrs,
     .infer = infer_arg,
     .prepare = prepare_arg},
    {.name = "CumSum",
     .min_inputs = 2,
     .min_opset = 11,
     .max_opset = 20,
     .foldable = 1,
     .attrs = cumsum_attrs,
     .infer = infer_cumsum,
     .prepare = prepare_cumsum},
    {.name = "TopK",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = topk_attrs,
     .infer = infer_topk,
     .prepare = prepare_topk},
    {0},
};
