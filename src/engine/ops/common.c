/*
 * common.c - helpers shared by the operator files: attribute access, error
 * messages that name the node, constant-input decoding and shape utilities.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "engine/ops/ops.h"

vigil_status op_fail(const op_ctx *ctx, vigil_status st, vigil_error *err, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = ctx->node ? ctx->node->op_type : (ctx->step ? ctx->step->op : "?");
    return vigil_error_set(err, st, "node '%s' (%s): %s", ctx->name ? ctx->name : "", type, msg);
}

int64_t attr_int(const onnx_node *node, const char *name, int64_t dflt) {
    const onnx_attr *a = node ? onnx_node_attr(node, name) : NULL;
    return a && a->type == ONNX_ATTR_INT ? a->i : dflt;
}

float attr_float(const onnx_node *node, const char *name, float dflt) {
    const onnx_attr *a = node ? onnx_node_attr(node, name) : NULL;
    if (!a) return dflt;
    if (a->type == ONNX_ATTR_FLOAT) return a->f;
    if (a->type == ONNX_ATTR_INT) return (float)a->i;
    return dflt;
}

const char *attr_string(const onnx_node *node, const char *name, const char *dflt) {
    const onnx_attr *a = node ? onnx_node_attr(node, name) : NULL;
    return a && a->type == ONNX_ATTR_STRING ? a->s : dflt;
}

int attr_ints(const onnx_node *node, const char *name, int64_t *out, int max) {
    const onnx_attr *a = node ? onnx_node_attr(node, name) : NULL;
    if (!a || a->type != ONNX_ATTR_INTS) return -1;
    int n = (int)a->n_ints;
    for (int i = 0; i < n && i < max; i++)
        out[i] = a->ints[i];
    return n;
}

int in_present(const op_ctx *ctx, int i) {
    return i < ctx->n_in && ctx->in[i].present;
}

int const_ints(const op_tensor *t, int64_t *out, int max) {
    if (!t->present || !t->data) return -1;
    int64_t n = tensor_count(t->ndim, t->dims);
    if (n > max) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == VIGIL_DTYPE_I64)
            out[i] = ((const int64_t *)t->data)[i];
        else if (t->dtype == VIGIL_DTYPE_I32)
            out[i] = ((const int32_t *)t->data)[i];
        else
            return -1;
    }
    return (int)n;
}

vigil_status op_require_dtype(const op_ctx *ctx, int input, const vigil_dtype *allowed, int n, vigil_error *err) {
    if (!in_present(ctx, input)) return VIGIL_OK;
    for (int i = 0; i < n; i++)
        if (ctx->in[input].dtype == allowed[i]) return VIGIL_OK;
    return op_fail(ctx, VIGIL_ERR_UNSUPPORTED, err, "input %d of type %s is not supported", input,
                   vigil_dtype_name(ctx->in[input].dtype));
}

vigil_status op_step_alloc(op_ctx *ctx, size_t state_bytes, vigil_error *err) {
    ctx->step->state = vigil_calloc(1, state_bytes);
    if (!ctx->step->state) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    return VIGIL_OK;
}

vigil_status xnn_fail(const op_ctx *ctx, const char *what, int status, vigil_error *err) {
    return op_fail(ctx, status == 1 /* xnn_status_uninitialized */ ? VIGIL_ERR_INTERNAL : VIGIL_ERR_UNSUPPORTED, err,
                   "XNNPACK %s failed (status %d)", what, status);
}

uint64_t op_hash(uint64_t h, const void *data, size_t n) {
    /* FNV-1a, eight bytes a round where it can (weights are megabytes) */
    const uint8_t *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int op_xop_find(op_ctx *ctx, uint64_t fingerprint) {
    if (!ctx->instance) return 0;
    shared_op *op = arena_find_op(ctx->instance, ctx->node, ctx->lane, fingerprint);
    if (!op) return 0;
    ctx->step->xop[0] = op->xop;
    ctx->step->shared = op;
    ctx->step->setup_id = arena_setup_id(ctx->instance);
    return 1;
}

vigil_status op_xop_keep(op_ctx *ctx, uint64_t fingerprint, size_t packed_bytes, vigil_error *err) {
    step *s = ctx->step;
    if (!ctx->instance) {
        s->packed_bytes = packed_bytes;
        return VIGIL_OK;
    }
    vigil_status st =
        arena_keep_op(ctx->instance, ctx->node, ctx->lane, fingerprint, s->xop[0], packed_bytes, &s->shared, err);
    if (st != VIGIL_OK) return st; /* the step still owns xop[0] and releases it */
    s->setup_id = arena_setup_id(ctx->instance);
    return VIGIL_OK;
}

int norm_axis(int64_t axis, int rank) {
    if (axis < -rank || axis >= rank) return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}

int broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1) return 0;
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return 1;
}

int nhwc_axis(int axis) {
    static const int map[4] = {0, 3, 1, 2};
    return axis >= 0 && axis < 4 ? map[axis] : axis;
}

op_tensor op_logical(const op_tensor *t, int nhwc) {
    op_tensor l = *t;
    if (nhwc && t->ndim == 4) {
        l.dims[1] = t->dims[3];
        l.dims[2] = t->dims[1];
        l.dims[3] = t->dims[2];
    }
    return l;
}

kshape op_kshape(const op_tensor *t) {
    return kshape_make(t->ndim, t->dims);
}

void op_set_out(op_tensor *o, vigil_dtype dtype, const kshape *s) {
    o->dtype = dtype;
    o->ndim = s->ndim;
    memcpy(o->dims, s->dims, (size_t)s->ndim * sizeof(int64_t));
}

vigil_status op_check_attrs(const onnx_node *node, const op_def *op, vigil_error *err) {
    for (size_t i = 0; i < node->n_attrs; i++) {
        const char *name = node->attrs[i].name;
        int known = 0;
        for (const char *const *a = op->attrs; a && *a && !known; a++)
            known = strcmp(*a, name) == 0;
        if (!known)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "node '%s' (%s): attribute '%s' is not supported",
                                   node->name[0] ? node->name : (node->n_outputs ? node->outputs[0] : ""),
                                   node->op_type, name);
    }
    return VIGIL_OK;
}

vigil_status op_check_fail(const onnx_node *node, vigil_status st, vigil_error *err, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vigil_error_set(err, st, "node '%s' (%s): %s",
                           node->name[0] ? node->name : (node->n_outputs ? node->outputs[0] : ""), node->op_type, msg);
}

vigil_status op_wrap_kernel(const op_ctx *ctx, vigil_status st, vigil_error *err) {
    if (st == VIGIL_OK || !err) return st;
    vigil_error_prefix(err, "node '%s' (%s)", ctx->name ? ctx->name : "",
                       ctx->node ? ctx->node->op_type : (ctx->step ? ctx->step->op : "?"));
    return st;
}

void *op_const_alloc(op_ctx *ctx, op_tensor *o) {
    o->data = graph_alloc_const(ctx->graph, tensor_bytes(o->dtype, o->ndim, o->dims));
    o->is_const = o->data != NULL;
    return o->data;
}

size_t op_elem(const op_tensor *t) {
    return vigil_dtype_size(t->dtype);
}

int64_t op_count(const op_tensor *t) {
    return tensor_count(t->ndim, t->dims);
}
