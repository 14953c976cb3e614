/*
 * passes_float16.c - a float16 model's convolutions on XNNPACK's f16
 * operators (the engine's float16 mode XNNPACK, vigil_float16_mode).
 *
 * The graph is compiled exactly as for the float32 path first (graph.c
 * widens the float16 weights; fusions and layouts as usual), then this pass
 * walks the execution order and gives float16 tensors to the nodes that have
 * an f16 kernel and run NHWC: Conv (with its fused clamp or SiLU), Add and
 * Mul of two computed tensors, MaxPool, Concat, Split and nearest Resize
 * (the last three only move values).  Those are what sits between one
 * convolution and the next in YOLO backbones and necks, so the activations
 * stay float16 through each run of them; where a float32 node reads a
 * float16 value, or the reverse, one conversion node (vigil.F16ToF32 /
 * vigil.F32ToF16, core/half.c: F16C where the CPU has it) is added per value
 * and direction, just before its first reader.  Weights stay float32 in the
 * graph and are rounded to half when the convolution is created (conv.c).
 *
 * The pass runs after the layout pass so that it sees the final NHWC nodes
 * and their order, and before memory planning, which sizes the float16
 * values at two bytes an element.  It changes nothing on a float32 model
 * or when the engine computes float16 models in float32.
 */
#include <string.h>

#include "core/alloc.h"
#include "engine/engine_internal.h"

static int op_named(const gnode *n, const char *name) {
    return n->op && strcmp(n->op->name, name) == 0;
}

/* A value a float16 node may read: computed at run time, float32 (or made
 * float16 already), NHWC-sized. */
static int half_input(const graph *g, int v, const char *is_half) {
    if (v < 0) return 0;
    const gvalue *val = &g->values[v];
    return !val->cdata && (is_half[v] || val->dtype == VIGIL_DTYPE_F32);
}

/* How many leading inputs of node n would be float16 (0: n stays float32). */
static int half_inputs(const graph *g, const gnode *n, const char *is_half) {
    if (n->dead || !n->nhwc || !n->op) return 0;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] < 0 || g->values[n->out[k]].dtype != VIGIL_DTYPE_F32) return 0;
    int count;
    if (op_named(n, "Conv") || op_named(n, "MaxPool") || op_named(n, "Split")) {
        count = 1;
        if (op_named(n, "MaxPool") && n->n_out > 1) return 0; /* indices */
    } else if (op_named(n, "Add") || op_named(n, "Mul")) {
        count = n->n_in == 2 ? 2 : 0;
    } else if (op_named(n, "Concat")) {
        count = n->n_in;
    } else if (op_named(n, "Resize")) {
        /* nearest selects values: the byte-run copy (resize.c), under 2^24 elements */
        const gvalue *x = &g->values[n->in[0]];
        if (!n->src || strcmp(attr_string(n->src, "mode", "nearest"), "nearest") != 0 ||
            tensor_count(x->ndim, x->dims) >= (int64_t)1 << 24)
            return 0;
        count = 1;
    } else {
        return 0;
    }
    for (int k = 0; k < count; k++)
        if (!half_input(g, n->in[k], is_half)) return 0;
    return count;
}

/* Adds the conversion node op (vigil.F16ToF32 or vigil.F32ToF16) from v to
 * a new value of type to, in v's layout, at the end of order. */
static int add_twin(graph *g, int v, const char *op, vigil_dtype to, int *order, int *n_order) {
    int n = graph_add_node(g, NULL, ops_find_internal(op), g->values[v].name, 1, 1);
    int t = n < 0 ? -1 : graph_add_value(g, g->values[v].name);
    if (t < 0) return -1;
    const gvalue *src = &g->values[v];
    gvalue *tv = &g->values[t];
    tv->dtype = to;
    tv->ndim = src->ndim;
    memcpy(tv->dims, src->dims, sizeof tv->dims);
    tv->nhwc = src->nhwc;
    tv->producer = n;
    g->nodes[n].in[0] = v;
    g->nodes[n].out[0] = t;
    g->nodes[n].nhwc = src->nhwc;
    order[(*n_order)++] = n;
    return t;
}

/* Where node input or graph output *slot holds v of the wrong type: points
 * it at v's twin of the other type (made the first time; twin[v]). */
static int retype(graph *g, int *slot, int want_half, int *twin, int *order, int *n_order) {
    int v = *slot;
    if (twin[v] < 0)
        twin[v] = add_twin(g, v, want_half ? "vigil.F32ToF16" : "vigil.F16ToF32",
                           want_half ? VIGIL_DTYPE_F16 : VIGIL_DTYPE_F32, order, n_order);
    if (twin[v] < 0) return -1;
    *slot = twin[v];
    return 0;
}

vigil_status passes_float16(graph *g, vigil_error *err) {
    if (!g->float16) return VIGIL_OK;
    int n_values = g->n_values, cap = g->n_order + g->n_outputs + 1;
    for (int i = 0; i < g->n_order; i++)
        cap += g->nodes[g->order[i]].n_in;
    char *is_half = vigil_calloc((size_t)n_values + 1, 1);
    int *twin = vigil_malloc(((size_t)n_values + 1) * sizeof(int));
    int *order = vigil_malloc((size_t)cap * sizeof(int));
    if (!is_half || !twin || !order) {
        vigil_free(is_half), vigil_free(twin), vigil_free(order);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    /* one twin per value: a float32 value's float16 copy, or the reverse */
    for (int v = 0; v <= n_values; v++)
        twin[v] = -1;
    int n_order = 0, failed = 0;
    for (int i = 0; i < g->n_order && !failed; i++) {
        int node = g->order[i];
        int count = half_inputs(g, &g->nodes[node], is_half);
        for (int k = 0; k < g->nodes[node].n_in && !failed; k++) {
            int v = g->nodes[node].in[k];
            if (v < 0 || v >= n_values) continue;
            int want_half = k < count;
            if (want_half != is_half[v])
                failed = retype(g, &g->nodes[node].in[k], want_half, twin, order, &n_order) < 0;
        }
        order[n_order++] = node;
        if (!count) continue;
        const gnode *n = &g->nodes[node];
        for (int k = 0; k < n->n_out; k++) {
            g->values[n->out[k]].dtype = VIGIL_DTYPE_F16;
            is_half[n->out[k]] = 1;
        }
    }
    for (int i = 0; i < g->n_outputs && !failed; i++)
        if (g->outputs[i] < n_values && is_half[g->outputs[i]])
            failed = retype(g, &g->outputs[i], 0, twin, order, &n_order) < 0;
    vigil_free(is_half);
    vigil_free(twin);
    if (failed) {
        vigil_free(order);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    vigil_free(g->order);
    g->order = order;
    g->n_order = n_order;
    return VIGIL_OK;
}
