/*
 * plan.c - activation memory planning.
 *
 * Every runtime value (not a constant) lives from the step that writes it to
 * the last step that reads it; graph inputs from before the first step and
 * graph outputs to after the last.  Values produced by aliasing ops (Reshape,
 * Flatten, Squeeze, Unsqueeze, Identity in ONNX layout) share their input's
 * buffer, which then lives as long as either.  Buffers are placed in one
 * arena, largest first, each at the lowest offset that does not overlap a
 * placed buffer whose lifetime overlaps its own (greedy by size, the classic
 * heuristic that TFLite and ncnn use).  The arena size is the peak activation
 * memory that vigil_plan_peak_activation_bytes reports.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "engine/exec.h"

static size_t round_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

static int root_of(const graph *g, int v) {
    while (g->values[v].alias_of >= 0)
        v = g->values[v].alias_of;
    return v;
}

typedef struct placed {
    size_t offset, size;
    int first, last;
} placed;

static int by_size_desc(const void *a, const void *b, void *arg) {
    const graph *g = arg;
    size_t sa = g->values[*(const int *)a].nbytes, sb = g->values[*(const int *)b].nbytes;
    if (sa != sb) return sa < sb ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

static void mark_lifetimes(graph *g, const int *order, int n_order) {
    for (int v = 0; v < g->n_values; v++) {
        g->values[v].first = -2; /* unused */
        g->values[v].last = -2;
        g->values[v].alias_of = -1;
    }
    for (int i = 0; i < g->n_inputs; i++)
        g->values[g->inputs[i]].first = g->values[g->inputs[i]].last = -1;
    for (int s = 0; s < n_order; s++) {
        const gnode *n = &g->nodes[order[s]];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v >= 0 && !g->values[v].cdata) g->values[v].last = s;
        }
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            g->values[v].first = s;
            if (g->values[v].last < s) g->values[v].last = s;
        }
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (!g->values[g->outputs[i]].cdata) g->values[g->outputs[i]].last = n_order;
    for (int s = 0; s < n_order; s++) {
        const gnode *n = &g->nodes[order[s]];
        if (!n->op->alias || n->nhwc || n->in[0] < 0 || n->out[0] < 0) continue;
        if (g->values[n->in[0]].cdata) continue;
        g->values[n->out[0]].alias_of = root_of(g, n->in[0]);
    }
    for (int v = 0; v < g->n_values; v++) {
        if (g->values[v].alias_of < 0) continue;
        gvalue *r = &g->values[g->values[v].alias_of];
        if (g->values[v].last > r->last) r->last = g->values[v].last;
    }
}

vigil_status plan_memory(graph *g, const int *order, int n_order, size_t *arena_bytes, vigil_error *err) {
    mark_lifetimes(g, order, n_order);
    int *roots = vigil_malloc(((size_t)g->n_values + 1) * sizeof(int));
    placed *done = vigil_malloc(((size_t)g->n_values + 1) * sizeof(placed));
    if (!roots || !done) {
        vigil_free(roots);
        vigil_free(done);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    int n_roots = 0;
    for (int v = 0; v < g->n_values; v++) {
        gvalue *val = &g->values[v];
        if (val->cdata || val->alias_of >= 0 || val->first == -2) continue;
        val->nbytes = round_up(tensor_bytes(val->dtype, val->ndim, val->dims), ENGINE_ALIGN) + ENGINE_BUFFER_PAD;
        roots[n_roots++] = v;
    }
    qsort_r(roots, (size_t)n_roots, sizeof(int), by_size_desc, g);
    size_t total = 0;
    for (int i = 0; i < n_roots; i++) {
        gvalue *val = &g->values[roots[i]];
        size_t offset = 0;
        /* First fit: move past every conflicting buffer until none overlaps. */
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++) {
                const placed *p = &done[j];
                if (p->last < val->first || val->last < p->first) continue;
                if (offset + val->nbytes <= p->offset || p->offset + p->size <= offset) continue;
                offset = p->offset + p->size;
                moved = 1;
            }
        }
        val->offset = offset;
        done[i] = (placed){offset, val->nbytes, val->first, val->last};
        if (offset + val->nbytes > total) total = offset + val->nbytes;
    }
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].alias_of >= 0) g->values[v].offset = g->values[g->values[v].alias_of].offset;
    vigil_free(roots);
    vigil_free(done);
    *arena_bytes = total;
    return VIGIL_OK;
}
