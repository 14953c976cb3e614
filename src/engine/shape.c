/*
 * shape.c - shape and type inference for a whole graph, with constant
 * folding.
 *
 * Nodes are visited in topological order.  Each op's infer function gets the
 * logical shapes (and the data of constant inputs) and fills in its outputs;
 * ops such as Shape produce constant outputs straight away.  A foldable node
 * whose inputs are all constant is then executed once, here, through the
 * same prepare/run code that the plan uses, and its outputs become constants
 * - so the Shape -> Gather -> Concat -> Reshape chains of exported models
 * collapse before any memory is planned.  Folded nodes are marked dead.
 */
#include <string.h>

#include "core/alloc.h"
#include "engine/engine_internal.h"
#include "engine/exec.h"

/* Largest tensor the engine will create (elements). */
#define SHAPE_MAX_ELEMENTS ((int64_t)1 << 32)

void op_ctx_init_infer(graph *g, int node, op_ctx *ctx, op_tensor *in, op_tensor *out) {
    gnode *n = &g->nodes[node];
    memset(ctx, 0, sizeof *ctx);
    ctx->node = n->src;
    ctx->name = n->name;
    ctx->opset = g->opset;
    ctx->n_in = n->n_in;
    ctx->n_out = n->n_out;
    ctx->in = in;
    ctx->out = out;
    ctx->graph = g;
    ctx->act = n->act;
    ctx->act_min = n->act_min;
    ctx->act_max = n->act_max;
    for (int i = 0; i < n->n_in; i++) {
        memset(&in[i], 0, sizeof in[i]);
        if (n->in[i] < 0) continue;
        const gvalue *v = &g->values[n->in[i]];
        in[i].present = 1;
        in[i].dtype = v->dtype;
        in[i].ndim = v->ndim;
        memcpy(in[i].dims, v->dims, sizeof v->dims);
        in[i].data = v->cdata;
        in[i].is_const = v->cdata != NULL;
    }
    for (int i = 0; i < n->n_out; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].ndim = -1;
        out[i].present = n->out[i] >= 0;
    }
}

vigil_status shape_fold_node(graph *g, int node, vigil_error *err) {
    gnode *n = &g->nodes[node];
    int k = n->n_in + n->n_out;
    op_tensor *t = vigil_calloc((size_t)k + 1, sizeof *t);
    if (!t) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    op_ctx ctx;
    op_ctx_init_infer(g, node, &ctx, t, t + n->n_in);
    vigil_status st = VIGIL_OK;
    for (int i = 0; i < n->n_out && st == VIGIL_OK; i++) {
        if (n->out[i] < 0) continue;
        gvalue *v = &g->values[n->out[i]];
        ctx.out[i].dtype = v->dtype;
        ctx.out[i].ndim = v->ndim;
        memcpy(ctx.out[i].dims, v->dims, sizeof v->dims);
        ctx.out[i].data = graph_alloc_const(g, tensor_bytes(v->dtype, v->ndim, v->dims));
        ctx.out[i].is_const = 1;
        if (!ctx.out[i].data) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    if (st == VIGIL_OK) st = exec_run_once(n->op, &ctx, err);
    if (st == VIGIL_OK) {
        for (int i = 0; i < n->n_out; i++)
            if (n->out[i] >= 0) g->values[n->out[i]].cdata = ctx.out[i].data;
        n->dead = 1;
    }
    vigil_free(t);
    return st;
}

static vigil_status infer_node(graph *g, int node, op_tensor *buf, vigil_error *err) {
    gnode *n = &g->nodes[node];
    if (!n->op)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "node '%s' (%s): unsupported operator", n->name,
                               n->src ? n->src->op_type : "?");
    op_ctx ctx;
    op_ctx_init_infer(g, node, &ctx, buf, buf + n->n_in);
    vigil_status st = n->op->infer(&ctx, err);
    if (st != VIGIL_OK) return st;
    int all_const_out = 1;
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] < 0) continue;
        gvalue *v = &g->values[n->out[i]];
        const op_tensor *o = &ctx.out[i];
        if (o->ndim < 0 || o->ndim > VIGIL_MAX_DIMS)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "node '%s' (%s): the operator has no output %d",
                                   n->name, n->op->name, i);
        int64_t count = 1;
        for (int d = 0; d < o->ndim; d++) {
            if (o->dims[d] < 0)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "node '%s' (%s): negative output dimension",
                                       n->name, n->op->name);
            if (o->dims[d] && count > SHAPE_MAX_ELEMENTS / o->dims[d])
                return vigil_error_set(err, VIGIL_ERR_LIMIT, "node '%s' (%s): output too large", n->name, n->op->name);
            count *= o->dims[d];
        }
        v->dtype = o->dtype;
        v->ndim = o->ndim;
        memcpy(v->dims, o->dims, sizeof v->dims);
        v->cdata = o->data;
        if (!o->data) all_const_out = 0;
    }
    if (all_const_out) {
        n->dead = 1;
        return VIGIL_OK;
    }
    if (!n->op->foldable) return VIGIL_OK;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0 && !g->values[n->in[i]].cdata) return VIGIL_OK;
    return shape_fold_node(g, node, err);
}

vigil_status shape_infer(graph *g, vigil_error *err) {
    int max_io = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_in + g->nodes[i].n_out > max_io) max_io = g->nodes[i].n_in + g->nodes[i].n_out;
    op_tensor *buf = vigil_calloc((size_t)max_io, sizeof *buf);
    if (!buf) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    vigil_status st = VIGIL_OK;
    for (int i = 0; i < g->n_nodes && st == VIGIL_OK; i++)
        if (!g->nodes[i].dead) st = infer_node(g, i, buf, err);
    vigil_free(buf);
    return st;
}
