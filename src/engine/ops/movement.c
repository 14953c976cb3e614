/*
 * movement.c - data-movement operators: Transpose, Concat, Split, Slice,
 * Gather, GatherElements, GatherND, Pad, DepthToSpace, SpaceToDepth.
 *
 * Concat and Split are layout-agnostic: on NHWC tensors their axis is mapped
 * to the physical one (C -> 3, H -> 1, W -> 2) and the same kernel runs.
 * Parameters that decide shapes (Split sizes, Slice bounds, Pad amounts) must
 * be compile-time constants.
 */
#include <string.h>

#include "core/alloc.h"
#include "engine/ops/ops.h"

static vigil_status need_const(const op_ctx *ctx, int i, const char *what, vigil_error *err) {
    if (!in_present(ctx, i) || ctx->in[i].data) return VIGIL_OK;
    return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "%s computed at run time is not supported", what);
}

/* Logical axis attribute normalised against rank; physical when nhwc. */
static vigil_status axis_of(const op_ctx *ctx, int64_t dflt, int rank, int *axis, vigil_error *err) {
    *axis = 0; /* on every path: gcc -O3 (Release) cannot see that an error status is never VIGIL_OK and warned maybe-uninitialized */
    int a = norm_axis(attr_int(ctx->node, "axis", dflt), rank);
    if (a < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
    *axis = ctx->nhwc ? nhwc_axis(a) : a;
    return VIGIL_OK;
}

/* ---- Transpose ---- */

static vigil_status read_perm(const op_ctx *ctx, int *perm, vigil_error *err) {
    int r = ctx->in[0].ndim;
    if (ctx->perm) { /* chosen by passes_fold_transposes for a physical view */
        memcpy(perm, ctx->perm, (size_t)r * sizeof(int));
        return VIGIL_OK;
    }
    int64_t p[KERNELS_MAX_DIMS];
    int n = attr_ints(ctx->node, "perm", p, KERNELS_MAX_DIMS);
    if (n < 0) {
        for (int i = 0; i < r; i++)
            perm[i] = r - 1 - i;
        return VIGIL_OK;
    }
    if (n != r) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "perm must have %d entries", r);
    for (int i = 0; i < r; i++)
        perm[i] = (int)p[i];
    return VIGIL_OK;
}

static vigil_status infer_transpose(op_ctx *ctx, vigil_error *err) {
    int perm[KERNELS_MAX_DIMS];
    vigil_status st = read_perm(ctx, perm, err);
    if (st != VIGIL_OK) return st;
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_transpose_shape(&xs, perm, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

typedef struct transpose_state {
    int perm[KERNELS_MAX_DIMS];
    size_t batch, rows, cols; /* rows == 0: generic kernel */
} transpose_state;

/* A permutation [0..k-1, j..r-1, k..j-1] is a batch of 2-D transposes. */
static void transpose_as_2d(const op_tensor *x, transpose_state *t) {
    int r = x->ndim, k = 0;
    t->rows = 0;
    if (op_elem(x) != 4) return;
    while (k < r && t->perm[k] == k)
        k++;
    if (k >= r - 1) return;
    int j = t->perm[k]; /* first dim of the group that moves to the front */
    for (int i = 0; i < r - j; i++)
        if (t->perm[k + i] != j + i) return;
    for (int i = 0; i < j - k; i++)
        if (t->perm[k + (r - j) + i] != k + i) return;
    t->batch = t->rows = t->cols = 1;
    for (int d = 0; d < r; d++) {
        size_t n = (size_t)x->dims[d];
        if (d < k)
            t->batch *= n;
        else if (d < j)
            t->rows *= n;
        else
            t->cols *= n;
    }
}

static vigil_status run_transpose(step *s, vigil_error *err) {
    const transpose_state *t = s->state;
    if (t->rows) {
        layout_transpose_2d(s->in[0].data, s->out[0].data, t->batch, t->rows, t->cols, s->pool);
        return VIGIL_OK;
    }
    kshape xs = op_kshape(&s->in[0]);
    kernels_transpose(op_elem(&s->in[0]), s->in[0].data, &xs, t->perm, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_transpose(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(transpose_state), err);
    if (st != VIGIL_OK) return st;
    transpose_state *t = ctx->step->state;
    st = read_perm(ctx, t->perm, err);
    if (st == VIGIL_OK) transpose_as_2d(&ctx->in[0], t);
    ctx->step->run = run_transpose;
    return st;
}

/* ---- Concat ---- */

static vigil_status infer_concat(op_ctx *ctx, vigil_error *err) {
    if (ctx->n_in < 1) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs inputs");
    int axis;
    vigil_status st = axis_of(ctx, 0, ctx->in[0].ndim, &axis, err);
    if (st != VIGIL_OK) return st;
    kshape *shapes = vigil_calloc((size_t)ctx->n_in, sizeof(kshape));
    if (!shapes) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < ctx->n_in; i++) {
        shapes[i] = op_kshape(&ctx->in[i]);
        if (ctx->in[i].dtype != ctx->in[0].dtype)
            st = op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "inputs have different types");
    }
    kshape ys;
    if (st == VIGIL_OK) st = op_wrap_kernel(ctx, kernels_concat_shape(axis, ctx->n_in, shapes, &ys, err), err);
    vigil_free(shapes);
    if (st == VIGIL_OK) op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return st;
}

typedef struct concat_state {
    int axis;
    const void **srcs;
    kshape *shapes;
} concat_state;

static void destroy_concat(step *s) {
    concat_state *c = s->state;
    if (c) vigil_free(c->srcs);
}

/* Concat and Split of large tensors spread their rows (the dimensions
 * before the axis) over the pool; small ones are not worth waking it. */
#define MOVE_PARALLEL_BYTES (256 * 1024)

static size_t rows_tile(pthreadpool_t pool, int64_t outer) {
    size_t per = (size_t)outer / (4 * pthreadpool_get_threads_count(pool));
    return per ? per : 1;
}

static void concat_task(void *arg, size_t start, size_t count) {
    const step *s = arg;
    const concat_state *c = s->state;
    kernels_concat_rows(op_elem(&s->out[0]), c->axis, s->n_in, c->srcs, c->shapes, s->out[0].data, (int64_t)start,
                        (int64_t)(start + count));
}

static vigil_status run_concat(step *s, vigil_error *err) {
    const concat_state *c = s->state;
    kshape ys = op_kshape(&s->out[0]);
    int64_t outer = kshape_range_count(&ys, 0, c->axis);
    if (s->pool && outer > 1 && kshape_count(&ys) * op_elem(&s->out[0]) >= MOVE_PARALLEL_BYTES)
        pthreadpool_parallelize_1d_tile_1d(s->pool, concat_task, s, (size_t)outer, rows_tile(s->pool, outer), 0);
    else
        kernels_concat(op_elem(&s->out[0]), c->axis, s->n_in, c->srcs, c->shapes, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_concat(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(concat_state), err);
    if (st != VIGIL_OK) return st;
    step *s = ctx->step;
    concat_state *c = s->state;
    s->destroy = destroy_concat;
    size_t n = (size_t)s->n_in;
    /* one block: pointers then shapes */
    c->srcs = vigil_calloc(1, n * (sizeof(void *) + sizeof(kshape)) + sizeof(kshape));
    if (!c->srcs) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    c->shapes = (kshape *)(void *)((char *)c->srcs + ((n * sizeof(void *) + 15) / 16) * 16);
    for (int i = 0; i < s->n_in; i++) {
        c->srcs[i] = s->in[i].data;
        c->shapes[i] = op_kshape(&s->in[i]);
    }
    st = axis_of(ctx, 0, s->in[0].ndim, &c->axis, err);
    s->run = run_concat;
    return st;
}

/* ---- Split ---- */

static const char *const split_attrs[] = {"axis", "split", "num_outputs", NULL};

static vigil_status split_sizes(const op_ctx *ctx, int axis, int64_t *sizes, vigil_error *err) {
    int n = ctx->n_out;
    int64_t dim = ctx->in[0].dims[axis];
    int got = -1;
    if (ctx->opset < 13) {
        got = attr_ints(ctx->node, "split", sizes, n);
    } else if (in_present(ctx, 1)) {
        vigil_status st = need_const(ctx, 1, "split sizes", err);
        if (st != VIGIL_OK) return st;
        got = const_ints(&ctx->in[1], sizes, n);
        if (got < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "split must have %d entries", n);
    }
    if (got >= 0) {
        if (got != n) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "split must have %d entries", n);
        kshape xs = op_kshape(&ctx->in[0]);
        return op_wrap_kernel(ctx, kernels_split_check(&xs, axis, n, sizes, err), err);
    }
    int64_t num = attr_int(ctx->node, "num_outputs", n);
    if (num != n) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "num_outputs differs from the outputs");
    return op_wrap_kernel(ctx, kernels_split_even(dim, n, ctx->opset < 18, sizes, err), err);
}

static vigil_status infer_split(op_ctx *ctx, vigil_error *err) {
    int axis;
    vigil_status st = axis_of(ctx, 0, ctx->in[0].ndim, &axis, err);
    if (st != VIGIL_OK) return st;
    int64_t *sizes = vigil_calloc((size_t)ctx->n_out + 1, sizeof(int64_t));
    if (!sizes) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    st = split_sizes(ctx, axis, sizes, err);
    for (int i = 0; i < ctx->n_out && st == VIGIL_OK; i++) {
        kshape ys = op_kshape(&ctx->in[0]);
        ys.dims[axis] = sizes[i];
        op_set_out(&ctx->out[i], ctx->in[0].dtype, &ys);
    }
    vigil_free(sizes);
    return st;
}

typedef struct split_state {
    int axis;
    int64_t *sizes;
    void **dsts;
} split_state;

static void destroy_split(step *s) {
    split_state *sp = s->state;
    if (sp) vigil_free(sp->sizes);
}

static void split_task(void *arg, size_t start, size_t count) {
    const step *s = arg;
    const split_state *sp = s->state;
    kshape xs = op_kshape(&s->in[0]);
    kernels_split_rows(op_elem(&s->in[0]), s->in[0].data, &xs, sp->axis, s->n_out, sp->sizes, sp->dsts,
                       (int64_t)start, (int64_t)(start + count));
}

static vigil_status run_split(step *s, vigil_error *err) {
    const split_state *sp = s->state;
    kshape xs = op_kshape(&s->in[0]);
    int64_t outer = kshape_range_count(&xs, 0, sp->axis);
    if (s->pool && outer > 1 && kshape_count(&xs) * op_elem(&s->in[0]) >= MOVE_PARALLEL_BYTES)
        pthreadpool_parallelize_1d_tile_1d(s->pool, split_task, s, (size_t)outer, rows_tile(s->pool, outer), 0);
    else
        kernels_split(op_elem(&s->in[0]), s->in[0].data, &xs, sp->axis, s->n_out, sp->sizes, sp->dsts);
    return VIGIL_OK;
}

static vigil_status prepare_split(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(split_state), err);
    if (st != VIGIL_OK) return st;
    step *s = ctx->step;
    split_state *sp = s->state;
    s->destroy = destroy_split;
    size_t n = (size_t)s->n_out;
    sp->sizes = vigil_calloc(n + 1, sizeof(int64_t) + sizeof(void *));
    if (!sp->sizes) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    sp->dsts = (void **)(sp->sizes + n + 1);
    st = axis_of(ctx, 0, s->in[0].ndim, &sp->axis, err);
    for (int i = 0; i < s->n_out && st == VIGIL_OK; i++) {
        sp->sizes[i] = s->out[i].dims[sp->axis];
        sp->dsts[i] = s->out[i].data;
    }
    /* omitted outputs still need somewhere to go: the kernel writes every part */
    for (int i = 0; i < s->n_out && st == VIGIL_OK; i++)
        if (!sp->dsts[i]) st = op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "omitted Split outputs are not supported");
    s->run = run_split;
    return st;
}

/* ---- Slice ---- */

static const char *const slice_attrs[] = {"starts", "ends", "axes", NULL};

static vigil_status slice_params(const op_ctx *ctx, kslice *out, vigil_error *err) {
    int64_t starts[KERNELS_MAX_DIMS], ends[KERNELS_MAX_DIMS], axes[KERNELS_MAX_DIMS], steps[KERNELS_MAX_DIMS];
    int n, na = -1, ns = -1;
    if (ctx->opset < 10) {
        n = attr_ints(ctx->node, "starts", starts, KERNELS_MAX_DIMS);
        if (attr_ints(ctx->node, "ends", ends, KERNELS_MAX_DIMS) != n || n < 0)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "starts and ends differ");
        na = attr_ints(ctx->node, "axes", axes, KERNELS_MAX_DIMS);
    } else {
        if (ctx->n_in < 3) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs data, starts and ends");
        for (int i = 1; i < ctx->n_in; i++) {
            vigil_status st = need_const(ctx, i, "slice parameters", err);
            if (st != VIGIL_OK) return st;
        }
        n = const_ints(&ctx->in[1], starts, KERNELS_MAX_DIMS);
        if (n < 0 || const_ints(&ctx->in[2], ends, KERNELS_MAX_DIMS) != n)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "starts and ends differ");
        if (in_present(ctx, 3)) na = const_ints(&ctx->in[3], axes, KERNELS_MAX_DIMS);
        if (in_present(ctx, 4)) ns = const_ints(&ctx->in[4], steps, KERNELS_MAX_DIMS);
        if ((in_present(ctx, 4) && ns != n) || (in_present(ctx, 3) && na != n))
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axes/steps must match starts");
    }
    if (na >= 0 && na != n) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axes must match starts");
    kshape xs = op_kshape(&ctx->in[0]);
    return op_wrap_kernel(
        ctx, kernels_slice_normalize(&xs, starts, ends, na >= 0 ? axes : NULL, ns >= 0 ? steps : NULL, n, out, err),
        err);
}

static vigil_status infer_slice(op_ctx *ctx, vigil_error *err) {
    kslice sl;
    vigil_status st = slice_params(ctx, &sl, err);
    if (st == VIGIL_OK) op_set_out(&ctx->out[0], ctx->in[0].dtype, &sl.out);
    return st;
}

static vigil_status run_slice(step *s, vigil_error *err) {
    kshape xs = op_kshape(&s->in[0]);
    kernels_slice(op_elem(&s->in[0]), s->in[0].data, &xs, s->state, s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_slice(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(kslice), err);
    if (st == VIGIL_OK) st = slice_params(ctx, ctx->step->state, err);
    ctx->step->run = run_slice;
    return st;
}

/* ---- Gather, GatherElements, GatherND ---- */

static const char *const gather_attrs[] = {"axis", NULL};
static const char *const gathernd_attrs[] = {"batch_dims", NULL};
static const vigil_dtype index_types[] = {VIGIL_DTYPE_I64, VIGIL_DTYPE_I32};

static vigil_status infer_gather(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_require_dtype(ctx, 1, index_types, 2, err);
    if (st != VIGIL_OK) return st;
    int axis;
    st = axis_of(ctx, 0, ctx->in[0].ndim, &axis, err);
    if (st != VIGIL_OK) return st;
    kshape ds = op_kshape(&ctx->in[0]), is = op_kshape(&ctx->in[1]), ys;
    int elements = strcmp(ctx->node->op_type, "GatherElements") == 0;
    if (elements) {
        if (is.ndim != ds.ndim) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "indices rank differs");
        ys = is;
    } else {
        st = kernels_gather_shape(&ds, &is, axis, &ys, err);
        if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    }
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_gather(step *s, vigil_error *err) {
    kshape ds = op_kshape(&s->in[0]), is = op_kshape(&s->in[1]);
    int axis = *(const int *)s->state;
    if (strcmp(s->op, "GatherElements") == 0)
        return kernels_gather_elements(op_elem(&s->in[0]), s->in[0].data, &ds, axis, s->in[1].data, s->in[1].dtype, &is,
                                       s->out[0].data, err);
    return kernels_gather(op_elem(&s->in[0]), s->in[0].data, &ds, axis, s->in[1].data, s->in[1].dtype, &is,
                          s->out[0].data, err);
}

static vigil_status prepare_gather(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(int), err);
    if (st == VIGIL_OK) st = axis_of(ctx, 0, ctx->in[0].ndim, ctx->step->state, err);
    ctx->step->run = run_gather;
    return st;
}

static vigil_status infer_gather_nd(op_ctx *ctx, vigil_error *err) {
    vigil_dtype i64 = VIGIL_DTYPE_I64;
    vigil_status st = op_require_dtype(ctx, 1, &i64, 1, err);
    if (st != VIGIL_OK) return st;
    kshape ds = op_kshape(&ctx->in[0]), is = op_kshape(&ctx->in[1]), ys;
    st = kernels_gather_nd_shape(&ds, &is, (int)attr_int(ctx->node, "batch_dims", 0), &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_gather_nd(step *s, vigil_error *err) {
    kshape ds = op_kshape(&s->in[0]), is = op_kshape(&s->in[1]);
    return kernels_gather_nd(op_elem(&s->in[0]), s->in[0].data, &ds, s->in[1].data, &is, *(const int *)s->state,
                             s->out[0].data, err);
}

static vigil_status prepare_gather_nd(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(int), err);
    if (st != VIGIL_OK) return st;
    *(int *)ctx->step->state = (int)attr_int(ctx->node, "batch_dims", 0);
    ctx->step->run = run_gather_nd;
    return VIGIL_OK;
}

/* ---- Pad ---- */

static const char *const pad_attrs[] = {"mode", "pads", "value", NULL};

typedef struct pad_state {
    kernels_pad_mode mode;
    int64_t pads[2 * KERNELS_MAX_DIMS];
    uint8_t value[16];
} pad_state;

static vigil_status check_pad(const onnx_node *node, int64_t opset, vigil_error *err) {
    const char *m = attr_string(node, "mode", "constant");
    if (strcmp(m, "constant") && strcmp(m, "reflect") && strcmp(m, "edge") && strcmp(m, "wrap"))
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "mode '%s' is not supported", m);
    return VIGIL_OK;
}

static vigil_status pad_params(const op_ctx *ctx, pad_state *p, vigil_error *err) {
    const char *m = attr_string(ctx->node, "mode", "constant");
    p->mode = !strcmp(m, "reflect") ? KERNELS_PAD_REFLECT
              : !strcmp(m, "edge")  ? KERNELS_PAD_EDGE
              : !strcmp(m, "wrap")  ? KERNELS_PAD_WRAP
                                    : KERNELS_PAD_CONSTANT;
    int r = ctx->in[0].ndim;
    memset(p->value, 0, sizeof p->value);
    if (ctx->opset < 11) {
        if (attr_ints(ctx->node, "pads", p->pads, 2 * KERNELS_MAX_DIMS) != 2 * r)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "pads must have %d entries", 2 * r);
        if (ctx->in[0].dtype != VIGIL_DTYPE_F32)
            return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "only float32 for opset < 11");
        float v = attr_float(ctx->node, "value", 0.0f);
        memcpy(p->value, &v, sizeof v);
        return VIGIL_OK;
    }
    if (!in_present(ctx, 1)) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "needs pads");
    for (int i = 1; i < ctx->n_in; i++) {
        vigil_status st = need_const(ctx, i, "pad parameters", err);
        if (st != VIGIL_OK) return st;
    }
    int64_t raw[2 * KERNELS_MAX_DIMS], axes[KERNELS_MAX_DIMS];
    int n = const_ints(&ctx->in[1], raw, 2 * KERNELS_MAX_DIMS);
    int na = r;
    for (int i = 0; i < r; i++)
        axes[i] = i;
    if (in_present(ctx, 3)) {
        na = const_ints(&ctx->in[3], axes, KERNELS_MAX_DIMS);
        if (na < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "bad axes");
    }
    if (n != 2 * na) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "pads must have %d entries", 2 * na);
    memset(p->pads, 0, sizeof p->pads);
    for (int i = 0; i < na; i++) {
        int a = norm_axis(axes[i], r);
        if (a < 0) return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "axis out of range");
        p->pads[a] = raw[i];
        p->pads[a + r] = raw[i + na];
    }
    if (in_present(ctx, 2) && op_count(&ctx->in[2]) == 1) {
        if (ctx->in[2].dtype != ctx->in[0].dtype)
            return op_fail(ctx, VIGIL_ERR_INVALID_ARGUMENT, err, "constant_value type differs");
        memcpy(p->value, ctx->in[2].data, op_elem(&ctx->in[2]));
    }
    return VIGIL_OK;
}

static vigil_status infer_pad(op_ctx *ctx, vigil_error *err) {
    pad_state p;
    vigil_status st = pad_params(ctx, &p, err);
    if (st != VIGIL_OK) return st;
    kshape xs = op_kshape(&ctx->in[0]), ys;
    st = kernels_pad_shape(&xs, p.pads, p.mode, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_pad(step *s, vigil_error *err) {
    const pad_state *p = s->state;
    kshape xs = op_kshape(&s->in[0]), ys = op_kshape(&s->out[0]);
    kernels_pad(op_elem(&s->in[0]), s->in[0].data, &xs, p->pads, p->mode, p->value, s->out[0].data, &ys);
    return VIGIL_OK;
}

static vigil_status prepare_pad(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, sizeof(pad_state), err);
    if (st == VIGIL_OK) st = pad_params(ctx, ctx->step->state, err);
    ctx->step->run = run_pad;
    return st;
}

/* ---- DepthToSpace, SpaceToDepth ---- */

static const char *const d2s_attrs[] = {"blocksize", "mode", NULL};

static vigil_status check_d2s(const onnx_node *node, int64_t opset, vigil_error *err) {
    const char *m = attr_string(node, "mode", "DCR");
    if (strcmp(m, "DCR") && strcmp(m, "CRD"))
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "mode '%s' is not supported", m);
    return VIGIL_OK;
}

static vigil_status infer_d2s(op_ctx *ctx, vigil_error *err) {
    kshape xs = op_kshape(&ctx->in[0]), ys;
    int64_t b = attr_int(ctx->node, "blocksize", 0);
    vigil_status st = strcmp(ctx->node->op_type, "DepthToSpace") == 0 ? kernels_depth_to_space_shape(&xs, b, &ys, err)
                                                                      : kernels_space_to_depth_shape(&xs, b, &ys, err);
    if (st != VIGIL_OK) return op_wrap_kernel(ctx, st, err);
    op_set_out(&ctx->out[0], ctx->in[0].dtype, &ys);
    return VIGIL_OK;
}

static vigil_status run_d2s(step *s, vigil_error *err) {
    const int64_t *p = s->state; /* blocksize, crd */
    kshape xs = op_kshape(&s->in[0]);
    if (strcmp(s->op, "DepthToSpace") == 0)
        kernels_depth_to_space(op_elem(&s->in[0]), s->in[0].data, &xs, p[0], (int)p[1], s->out[0].data);
    else
        kernels_space_to_depth(op_elem(&s->in[0]), s->in[0].data, &xs, p[0], s->out[0].data);
    return VIGIL_OK;
}

static vigil_status prepare_d2s(op_ctx *ctx, vigil_error *err) {
    vigil_status st = op_step_alloc(ctx, 2 * sizeof(int64_t), err);
    if (st != VIGIL_OK) return st;
    int64_t *p = ctx->step->state;
    p[0] = attr_int(ctx->node, "blocksize", 0);
    p[1] = strcmp(attr_string(ctx->node, "mode", "DCR"), "CRD") == 0;
    ctx->step->run = run_d2s;
    return VIGIL_OK;
}

const op_def ops_movement[] = {
    {.name = "Transpose",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = (const char *const[]){"perm", NULL},
     .infer = infer_transpose,
     .prepare = prepare_transpose},
    {.name = "Concat",
     .quantized = 1, /* its 8-bit codes may stay NHWC (passes.c: fuse_qdq_move) */
     .min_opset = 4,
     .max_opset = 20,
     .layout = OP_LAYOUT_AXIS,
     .foldable = 1,
     .attrs = gather_attrs,
     .infer = infer_concat,
     .prepare = prepare_concat},
    {.name = "Split",
     .quantized = 1, /* its 8-bit codes may stay NHWC (passes.c: fuse_qdq_move) */
     .min_opset = 2,
     .max_opset = 20,
     .layout = OP_LAYOUT_AXIS,
     .layout_inputs = 1,
     .foldable = 1,
     .attrs = split_attrs,
     .infer = infer_split,
     .prepare = prepare_split},
    {.name = "Slice",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = slice_attrs,
     .infer = infer_slice,
     .prepare = prepare_slice},
    {.name = "Gather",
     .min_inputs = 2,
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = gather_attrs,
     .infer = infer_gather,
     .prepare = prepare_gather},
    {.name = "GatherElements",
     .min_inputs = 2,
     .min_opset = 11,
     .max_opset = 20,
     .foldable = 1,
     .attrs = gather_attrs,
     .infer = infer_gather,
     .prepare = prepare_gather},
    {.name = "GatherND",
     .min_inputs = 2,
     .min_opset = 11,
     .max_opset = 20,
     .foldable = 1,
     .attrs = gathernd_attrs,
     .infer = infer_gather_nd,
     .prepare = prepare_gather_nd},
    {.name = "Pad",
     .min_opset = 2,
     .max_opset = 20,
     .foldable = 1,
     .attrs = pad_attrs,
     .check = check_pad,
     .infer = infer_pad,
     .prepare = prepare_pad},
    {.name = "DepthToSpace",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = d2s_attrs,
     .check = check_d2s,
     .infer = infer_d2s,
     .prepare = prepare_d2s},
    {.name = "SpaceToDepth",
     .min_opset = 1,
     .max_opset = 20,
     .foldable = 1,
     .attrs = d2s_attrs,
     .check = check_d2s,
     .infer = infer_d2s,
     .prepare = prepare_d2s},
    {0},
};
