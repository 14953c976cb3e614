/*
 * passes.c - graph rewrites between shape inference and memory planning.
 *
 *   fold_batchnorm   BatchNormalization after a Conv whose output nothing else
 *                    reads is folded into the Conv's weights and bias.
 *   fuse_activation  Conv/ConvTranspose followed by Relu or Clip (constant
 *                    bounds) becomes one op with an output clamp; Conv followed
 *                    by Sigmoid and Mul(x, Sigmoid(x)) becomes Conv+SiLU.
 *   fuse_qdq_conv    DequantizeLinear -> Conv (weights a folded DequantizeLinear
 *                    of int8/uint8 constants; a fused Relu/Clip allowed) ->
 *                    QuantizeLinear becomes one QLinearConv on the quantized
 *                    tensors (ops/quant.c runs it on XNNPACK's int8
 *                    convolution), so QDQ models compute their convolutions
 *                    in int8 and keep the tensors between them quantized.
 *   fuse_qdq_silu    DequantizeLinear -> Sigmoid, Mul(x, Sigmoid(x)), per
 *                    tensor, becomes one 256-entry table lookup
 *                    (vigil.QLookup) of the 8-bit input: to the codes of a
 *                    QuantizeLinear that alone reads the Mul (replaced too),
 *                    else to the float32 values.  The table is the float
 *                    path run once per input value, so the result is the
 *                    unfused graph's bit for bit.
 *   fuse_qdq_move    DequantizeLinear -> Concat/Split/MaxPool/nearest Resize
 *                    -> QuantizeLinear, one set of per-tensor parameters on
 *                    every input and output, runs the op on the 8-bit codes
 *                    (exact: the values only move); DequantizeLinear x2 ->
 *                    Add -> QuantizeLinear of one shape becomes a lookup in
 *                    a table of the float path's codes (vigil.QAdd).  With
 *                    these the tensors of a quantized YOLO stay 8-bit (and
 *                    NHWC) from one convolution to the next.
 *   remove_dead      nodes whose outputs reach no graph output are dropped.
 *   layout           chooses NHWC or ONNX layout per node (see op_layout in
 *                    engine_internal.h), inserts conversion nodes where a
 *                    consumer needs the other layout (each value is converted
 *                    at most once per direction; constants are converted here,
 *                    at compile time) and fixes the execution order.
 *   fold_transposes  ToONNX -> Reshape splitting C -> Transpose reads the NHWC
 *                    data directly as one transpose (two passes over memory
 *                    become one).
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "engine/engine_internal.h"

static int is_graph_output(const graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return 1;
    return 0;
}

static int op_is(const gnode *n, const char *name) {
    return !n->dead && n->op && strcmp(n->op->name, name) == 0;
}

/* Live consumers of v (graph outputs count as one each). */
static int count_uses(const graph *g, int v, int *only_consumer) {
    int uses = 0;
    *only_consumer = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const gnode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == v) {
                uses++;
                *only_consumer = i;
            }
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) uses++;
    return uses;
}

static int is_f32_const(const graph *g, int v) {
    return v >= 0 && g->values[v].cdata && g->values[v].dtype == VIGIL_DTYPE_F32;
}

/* Moves node `from`'s output 0 onto node `to` (to now produces it). */
static void take_output(graph *g, int to, int from) {
    int v = g->nodes[from].out[0];
    g->nodes[to].out[0] = v;
    g->values[v].producer = to;
    g->nodes[from].dead = 1;
}

static vigil_status fold_one_batchnorm(graph *g, int bn, int conv, vigil_error *err) {
    gnode *b = &g->nodes[bn];
    int x = b->in[0];
    int s_v = b->in[1], beta_v = b->in[2], mean_v = b->in[3], var_v = b->in[4];
    int w_v = g->nodes[conv].in[0 + 1];
    int bias_v = g->nodes[conv].n_in > 2 ? g->nodes[conv].in[2] : -1;
    (void)x;
    const gvalue *w = &g->values[w_v];
    int64_t m = w->dims[0];
    int64_t per = tensor_count(w->ndim, w->dims) / (m ? m : 1);
    float eps = attr_float(b->src, "epsilon", 1e-5f);
    const float *scale = g->values[s_v].cdata, *beta = g->values[beta_v].cdata;
    const float *mean = g->values[mean_v].cdata, *var = g->values[var_v].cdata;
    const float *bias = bias_v >= 0 ? g->values[bias_v].cdata : NULL;
    float *nw = graph_alloc_const(g, tensor_bytes(VIGIL_DTYPE_F32, w->ndim, w->dims));
    float *nb = graph_alloc_const(g, (size_t)m * sizeof(float));
    if (!nw || !nb) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    const float *ow = g->values[w_v].cdata;
    for (int64_t o = 0; o < m; o++) {
        float k = scale[o] / sqrtf(var[o] + eps);
        for (int64_t i = 0; i < per; i++)
            nw[o * per + i] = ow[o * per + i] * k;
        nb[o] = ((bias ? bias[o] : 0.0f) - mean[o]) * k + beta[o];
    }
    int64_t wdims[VIGIL_MAX_DIMS];
    int wnd = w->ndim;
    memcpy(wdims, w->dims, sizeof wdims);
    int nwv = graph_add_value(g, g->nodes[conv].name);
    int nbv = graph_add_value(g, g->nodes[conv].name);
    if (nwv < 0 || nbv < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    g->values[nwv].dtype = VIGIL_DTYPE_F32;
    g->values[nwv].ndim = wnd;
    memcpy(g->values[nwv].dims, wdims, sizeof wdims);
    g->values[nwv].cdata = nw;
    g->values[nbv].dtype = VIGIL_DTYPE_F32;
    g->values[nbv].ndim = 1;
    g->values[nbv].dims[0] = m;
    g->values[nbv].cdata = nb;
    gnode *c = &g->nodes[conv];
    if (c->n_in < 3) {
        int *io = vigil_calloc((size_t)(3 + c->n_out + 1), sizeof(int));
        if (!io) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        memcpy(io, c->in, (size_t)c->n_in * sizeof(int));
        memcpy(io + 3, c->out, (size_t)c->n_out * sizeof(int));
        vigil_free(c->in);
        c->in = io;
        c->out = io + 3;
        c->n_in = 3;
    }
    c->in[1] = nwv;
    c->in[2] = nbv;
    take_output(g, conv, bn);
    return VIGIL_OK;
}

static vigil_status fold_batchnorm(graph *g, vigil_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        gnode *b = &g->nodes[i];
        if (!op_is(b, "BatchNormalization") || b->n_in < 5 || b->n_out != 1) continue;
        int x = b->in[0], consumer;
        if (x < 0 || g->values[x].producer < 0) continue;
        int conv = g->values[x].producer;
        if (!op_is(&g->nodes[conv], "Conv") || g->nodes[conv].act != ACT_NONE) continue;
        if (count_uses(g, x, &consumer) != 1) continue;
        int ok = 1;
        for (int k = 1; k < 5; k++)
            ok = ok && is_f32_const(g, b->in[k]);
        ok = ok && is_f32_const(g, g->nodes[conv].in[1]);
        if (g->nodes[conv].n_in > 2 && g->nodes[conv].in[2] >= 0) ok = ok && is_f32_const(g, g->nodes[conv].in[2]);
        if (!ok) continue;
        vigil_status st = fold_one_batchnorm(g, i, conv, err);
        if (st != VIGIL_OK) return st;
    }
    return VIGIL_OK;
}

/* Clamp bounds of a Relu or Clip node; 0 when they are not compile-time constants. */
static int clamp_bounds(const graph *g, const gnode *n, float *lo, float *hi) {
    *lo = -INFINITY;
    *hi = INFINITY;
    if (strcmp(n->op->name, "Relu") == 0) {
        *lo = 0.0f;
        return 1;
    }
    if (strcmp(n->op->name, "Clip") != 0) return 0;
    if (g->opset < 11) {
        *lo = attr_float(n->src, "min", -INFINITY);
        *hi = attr_float(n->src, "max", INFINITY);
        return 1;
    }
    for (int k = 1; k < n->n_in && k < 3; k++) {
        int v = n->in[k];
        if (v < 0) continue;
        if (!is_f32_const(g, v) || tensor_count(g->values[v].ndim, g->values[v].dims) != 1) return 0;
        float b = *(const float *)g->values[v].cdata;
        if (k == 1)
            *lo = b;
        else
            *hi = b;
    }
    return 1;
}

static int fusable_producer(const graph *g, int v) {
    if (v < 0 || g->values[v].producer < 0 || is_graph_output(g, v)) return -1;
    int p = g->values[v].producer;
    const gnode *n = &g->nodes[p];
    if ((op_is(n, "Conv") || op_is(n, "ConvTranspose")) && n->act == ACT_NONE && g->values[v].dtype == VIGIL_DTYPE_F32)
        return p;
    return -1;
}

static void fuse_clamps(graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        gnode *a = &g->nodes[i];
        if (!(op_is(a, "Relu") || op_is(a, "Clip"))) continue;
        int conv = fusable_producer(g, a->in[0]), consumer;
        float lo, hi;
        if (conv < 0 || count_uses(g, a->in[0], &consumer) != 1 || !clamp_bounds(g, a, &lo, &hi)) continue;
        g->nodes[conv].act = ACT_CLAMP;
        g->nodes[conv].act_min = lo;
        g->nodes[conv].act_max = hi;
        take_output(g, conv, i);
    }
}

static void fuse_silu(graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        gnode *s = &g->nodes[i];
        if (!op_is(s, "Sigmoid")) continue;
        int x = s->in[0], y = s->out[0], mul, other;
        int conv = fusable_producer(g, x);
        if (conv < 0 || is_graph_output(g, y) || count_uses(g, y, &mul) != 1) continue;
        gnode *m = &g->nodes[mul];
        if (!op_is(m, "Mul") || m->n_in != 2) continue;
        if (!((m->in[0] == x && m->in[1] == y) || (m->in[0] == y && m->in[1] == x))) continue;
        if (count_uses(g, x, &other) != 2) continue;
        g->nodes[conv].act = ACT_SILU;
        s->dead = 1;
        take_output(g, conv, mul);
    }
}

/* ---- DequantizeLinear -> Conv -> QuantizeLinear ---- */

/* v's producer when it is a DequantizeLinear (live or folded) with
 * per-tensor constant parameters, or with per-channel ones along axis
 * `channel_axis` (-1: per tensor only); else -1. */
static int qdq_producer(const graph *g, int v, int channel_axis) {
    if (v < 0 || g->values[v].producer < 0) return -1;
    int p = g->values[v].producer;
    const gnode *d = &g->nodes[p];
    if (!d->op || strcmp(d->op->name, "DequantizeLinear") != 0 || d->n_in < 2) return -1;
    int x = d->in[0], scale = d->in[1], zp = d->n_in > 2 ? d->in[2] : -1;
    if (!is_f32_const(g, scale) || (zp >= 0 && !g->values[zp].cdata)) return -1;
    vigil_dtype t = g->values[x].dtype;
    if (t != VIGIL_DTYPE_U8 && t != VIGIL_DTYPE_I8) return -1;
    int64_t n = tensor_count(g->values[scale].ndim, g->values[scale].dims);
    if (n > 1 && (channel_axis < 0 || attr_int(d->src, "axis", 1) != channel_axis)) return -1;
    return p;
}

/* The Conv's bias in int32 at scale x_scale * w_scale[c] (how QDQ exporters
 * store it, dequantized and folded here: this recovers their integers). */
static int quantize_bias(graph *g, int bias_f32, int x_scale, int w_scale, int64_t m) {
    int v = graph_add_value(g, g->values[bias_f32].name); /* may move g->values */
    int32_t *q = v < 0 ? NULL : graph_alloc_const(g, (size_t)m * sizeof(int32_t));
    if (!q) return -1;
    const float *b = g->values[bias_f32].cdata, *xs = g->values[x_scale].cdata, *ws = g->values[w_scale].cdata;
    int per_channel = tensor_count(g->values[w_scale].ndim, g->values[w_scale].dims) > 1;
    for (int64_t c = 0; c < m; c++) {
        double r = nearbyint((double)b[c] / (double)(xs[0] * ws[per_channel ? c : 0]));
        q[c] = r < INT32_MIN ? INT32_MIN : r > INT32_MAX ? INT32_MAX : (int32_t)r;
    }
    gvalue *bv = &g->values[v];
    bv->dtype = VIGIL_DTYPE_I32;
    bv->ndim = 1;
    bv->dims[0] = m;
    bv->cdata = q;
    return v;
}

static vigil_status fuse_one_qdq_conv(graph *g, int c, vigil_error *err) {
    gnode *conv = &g->nodes[c];
    int y = conv->out[0], q_node;
    if (conv->act == ACT_SILU || conv->n_in < 2 || is_graph_output(g, y) || count_uses(g, y, &q_node) != 1)
        return VIGIL_OK;
    const gnode *q = &g->nodes[q_node];
    if (!op_is(q, "QuantizeLinear") || q->in[0] != y || q->n_in < 2 || !is_f32_const(g, q->in[1])) return VIGIL_OK;
    int y_zp = q->n_in > 2 ? q->in[2] : -1;
    if (tensor_count(g->values[q->in[1]].ndim, g->values[q->in[1]].dims) != 1 || (y_zp >= 0 && !g->values[y_zp].cdata))
        return VIGIL_OK;
    int dx = qdq_producer(g, conv->in[0], -1), dw = qdq_producer(g, conv->in[1], 0);
    if (dx < 0 || dw < 0 || g->nodes[dx].dead || g->values[conv->in[1]].ndim != 4) return VIGIL_OK;
    int bias = conv->n_in > 2 ? conv->in[2] : -1;
    int64_t m = g->values[conv->in[1]].dims[0];
    if (bias >= 0 && (!is_f32_const(g, bias) || tensor_count(g->values[bias].ndim, g->values[bias].dims) != m))
        return VIGIL_OK;
    const gnode *x = &g->nodes[dx], *w = &g->nodes[dw];
    int in[9] = {x->in[0], x->in[1], x->n_in > 2 ? x->in[2] : -1,
                 w->in[0], w->in[1], w->n_in > 2 ? w->in[2] : -1,
                 q->in[1], y_zp,     -1};
    if (bias >= 0) {
        in[8] = quantize_bias(g, bias, in[1], in[4], m);
        if (in[8] < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    int *io = vigil_calloc(9 + 1 + 1, sizeof(int)); /* QLinearConv's 9 inputs, 1 output */
    if (!io) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    conv = &g->nodes[c];
    memcpy(io, in, sizeof in);
    vigil_free(conv->in);
    conv->in = io;
    conv->out = io + 9;
    conv->n_in = 9;
    conv->n_out = 1;
    conv->out[0] = y;
    conv->op = ops_find("", "QLinearConv");
    take_output(g, c, q_node); /* the QuantizeLinear's output: the Conv's float output is gone */
    return VIGIL_OK;
}

/* Runs fuse on every live node of type op, in order, until one fails. */
static vigil_status fuse_each(graph *g, const char *op, vigil_status (*fuse)(graph *, int, vigil_error *),
                              vigil_error *err) {
    vigil_status st = VIGIL_OK;
    for (int i = 0; i < g->n_nodes && st == VIGIL_OK; i++)
        if (op_is(&g->nodes[i], op)) st = fuse(g, i, err);
    return st;
}

/* ---- DequantizeLinear -> SiLU -> QuantizeLinear ---- */

/* The per-tensor (scale, zero point) of a Q or DQ node, as numbers; 0 when
 * they are not constants of one element. */
static int qparams(const graph *g, const gnode *n, vigil_dtype qt, float *scale, int32_t *zp) {
    int s = n->in[1], z = n->n_in > 2 ? n->in[2] : -1;
    if (!is_f32_const(g, s) || tensor_count(g->values[s].ndim, g->values[s].dims) != 1) return 0;
    *scale = *(const float *)g->values[s].cdata;
    *zp = 0;
    if (z < 0) return 1;
    if (!g->values[z].cdata || g->values[z].dtype != qt || tensor_count(g->values[z].ndim, g->values[z].dims) != 1)
        return 0;
    *zp = qt == VIGIL_DTYPE_I8 ? *(const int8_t *)g->values[z].cdata : *(const uint8_t *)g->values[z].cdata;
    return 1;
}

/* A new constant value: a table of n elements of type t named after `name`,
 * its (zeroed) data in *data to fill; -1 when out of memory.  May move
 * g->values. */
static int add_table(graph *g, const char *name, vigil_dtype t, int64_t n, void **data) {
    *data = graph_alloc_const(g, (size_t)n * vigil_dtype_size(t));
    int v = *data ? graph_add_value(g, name) : -1;
    if (v < 0) return -1;
    gvalue *tv = &g->values[v];
    tv->dtype = t;
    tv->ndim = 1;
    tv->dims[0] = n;
    tv->cdata = *data;
    return v;
}

static vigil_status fuse_one_qdq_silu(graph *g, int d, vigil_error *err) {
    const gnode *dq = &g->nodes[d];
    int x = dq->out[0], sig_node, mul_node, q_node;
    vigil_dtype xt = g->values[dq->in[0]].dtype;
    if (dq->n_in < 2 || (xt != VIGIL_DTYPE_U8 && xt != VIGIL_DTYPE_I8) || is_graph_output(g, x)) return VIGIL_OK;
    if (count_uses(g, x, &sig_node) != 2) return VIGIL_OK;
    /* the two consumers: a Sigmoid of x and a Mul of x and that Sigmoid */
    sig_node = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (op_is(&g->nodes[i], "Sigmoid") && g->nodes[i].in[0] == x) sig_node = i;
    if (sig_node < 0) return VIGIL_OK;
    int sy = g->nodes[sig_node].out[0];
    if (is_graph_output(g, sy) || count_uses(g, sy, &mul_node) != 1) return VIGIL_OK;
    const gnode *m = &g->nodes[mul_node];
    if (!op_is(m, "Mul") || m->n_in != 2 || !((m->in[0] == x && m->in[1] == sy) || (m->in[0] == sy && m->in[1] == x)))
        return VIGIL_OK;
    int my = m->out[0];
    float xs, ys = 1.0f;
    int32_t xz, yz = 0;
    if (g->values[x].dtype != VIGIL_DTYPE_F32 || g->values[my].dtype != VIGIL_DTYPE_F32 || !qparams(g, dq, xt, &xs, &xz))
        return VIGIL_OK;
    /* A per-tensor QuantizeLinear as the only reader: a table of its codes,
     * replacing it too; otherwise a table of the float32 results. */
    int quantized = !is_graph_output(g, my) && count_uses(g, my, &q_node) == 1;
    const gnode *q = quantized ? &g->nodes[q_node] : NULL;
    quantized = q && op_is(q, "QuantizeLinear") && q->in[0] == my && q->n_in >= 2;
    vigil_dtype yt = quantized ? g->values[q->out[0]].dtype : VIGIL_DTYPE_F32;
    if (quantized && ((yt != VIGIL_DTYPE_U8 && yt != VIGIL_DTYPE_I8) || !qparams(g, q, yt, &ys, &yz))) {
        quantized = 0;
        yt = VIGIL_DTYPE_F32;
    }
    void *table;
    int tv = add_table(g, dq->name, quantized ? VIGIL_DTYPE_U8 : VIGIL_DTYPE_F32, 256, &table);
    if (tv < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    vigil_status st = quant_silu_table(xt, xs, xz, yt, ys, yz, table, err);
    if (st != VIGIL_OK) return st;
    gnode *n = &g->nodes[d]; /* the DequantizeLinear becomes the lookup; its in[] holds >= 2 */
    n->op = ops_find_internal("vigil.QLookup");
    n->in[1] = tv;
    n->n_in = 2;
    g->nodes[sig_node].dead = 1;
    if (quantized) {
        g->nodes[mul_node].dead = 1;
        take_output(g, d, q_node);
    } else {
        take_output(g, d, mul_node);
    }
    return VIGIL_OK;
}

/* ---- DequantizeLinear -> data movement / Add -> QuantizeLinear ---- */

/* The per-tensor parameters of an 8-bit tensor between Q and DQ. */
typedef struct qkey {
    vigil_dtype type;
    float scale;
    int32_t zp;
} qkey;

/* The codes v dequantizes (the input of v's per-tensor DequantizeLinear
 * producer, 8-bit, float32 out) and their parameters in *k; -1 if none. */
static int dq_codes(const graph *g, int v, qkey *k) {
    if (v < 0 || g->values[v].producer < 0 || g->values[v].dtype != VIGIL_DTYPE_F32) return -1;
    const gnode *d = &g->nodes[g->values[v].producer];
    if (!op_is(d, "DequantizeLinear") || d->n_in < 2) return -1;
    k->type = g->values[d->in[0]].dtype;
    if ((k->type != VIGIL_DTYPE_U8 && k->type != VIGIL_DTYPE_I8) || !qparams(g, d, k->type, &k->scale, &k->zp))
        return -1;
    return d->in[0];
}

/* The per-tensor QuantizeLinear that alone reads float32 value v (its
 * parameters in *k), or -1. */
static int q_reader(const graph *g, int v, qkey *k) {
    int q;
    if (v < 0 || is_graph_output(g, v) || g->values[v].dtype != VIGIL_DTYPE_F32 || count_uses(g, v, &q) != 1)
        return -1;
    const gnode *n = &g->nodes[q];
    if (!op_is(n, "QuantizeLinear") || n->in[0] != v || n->n_in < 2) return -1;
    k->type = g->values[n->out[0]].dtype;
    if ((k->type != VIGIL_DTYPE_U8 && k->type != VIGIL_DTYPE_I8) || !qparams(g, n, k->type, &k->scale, &k->zp))
        return -1;
    return q;
}

static int qkey_equal(const qkey *a, const qkey *b) {
    return a->type == b->type && a->zp == b->zp && memcmp(&a->scale, &b->scale, sizeof a->scale) == 0;
}

/* Node `node` takes over output k of QuantizeLinear q (the codes). */
static void take_codes(graph *g, int node, int k, int q) {
    int v = g->nodes[q].out[0];
    g->nodes[node].out[k] = v;
    g->values[v].producer = node;
    g->nodes[q].dead = 1;
}

/* Concat, Split, MaxPool and nearest Resize only move or select values, so
 * with every data input a DequantizeLinear and every output read by a
 * QuantizeLinear, all with one set of parameters, the op on the codes gives
 * the codes the float path would (dequantize, move, quantize back: each
 * value returns to its own code, as the scale is the same).  MaxPool keeps
 * order because dequantizing is monotonic. */
/* Whether Concat input v, at parameters `from`, can be requantized to `to`
 * by requantize_input: one type, and the Concat its only reader. */
static int can_requantize(const graph *g, int v, const qkey *from, const qkey *to) {
    int reader;
    return from->type == to->type && !is_graph_output(g, v) && count_uses(g, v, &reader) == 1;
}

/* Turns the DequantizeLinear that makes v into a lookup of its codes at
 * the Concat's parameters `to`: the float path's quantize(dequantize(code))
 * for each of the 256 codes. */
static vigil_status requantize_input(graph *g, int v, const qkey *from, const qkey *to, vigil_error *err) {
    int d = g->values[v].producer;
    void *table;
    int tv = add_table(g, g->nodes[d].name, VIGIL_DTYPE_U8, 256, &table);
    if (tv < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    quant_requantize_table(from->type, from->scale, from->zp, to->scale, to->zp, table);
    gnode *n = &g->nodes[d]; /* its in[] holds >= 2 */
    n->op = ops_find_internal("vigil.QLookup");
    n->in[1] = tv;
    n->n_in = 2;
    g->values[v].dtype = to->type;
    return VIGIL_OK;
}

static vigil_status fuse_one_qdq_move(graph *g, int i, vigil_error *err) {
    gnode *n = &g->nodes[i];
    int n_data = strcmp(n->op->name, "Concat") == 0 ? n->n_in : 1;
    if (strcmp(n->op->name, "MaxPool") == 0 && n->n_out > 1 && n->out[1] >= 0) return VIGIL_OK; /* Indices */
    if (strcmp(n->op->name, "Resize") == 0 && strcmp(attr_string(n->src, "mode", "nearest"), "nearest") != 0)
        return VIGIL_OK;
    qkey in[64], out, k;
    int codes[64], qs[64], concat = strcmp(n->op->name, "Concat") == 0;
    if (n_data > 64 || n->n_out > 64) return VIGIL_OK;
    for (int j = 0; j < n_data; j++)
        if ((codes[j] = dq_codes(g, n->in[j], &in[j])) < 0) return VIGIL_OK;
    for (int j = 0; j < n->n_out; j++) {
        qs[j] = q_reader(g, n->out[j], &k);
        if (qs[j] < 0 || (j > 0 && !qkey_equal(&k, &out))) return VIGIL_OK;
        out = k;
    }
    /* A Concat input at other parameters is requantized on the way in
     * (exact too: each value is quantized once, at the output's
     * parameters, as the float path does); the other ops need one set. */
    for (int j = 0; j < n_data; j++)
        if (!qkey_equal(&in[j], &out) && (!concat || !can_requantize(g, n->in[j], &in[j], &out))) return VIGIL_OK;
    for (int j = 0; j < n_data; j++) {
        if (qkey_equal(&in[j], &out)) continue;
        vigil_status st = requantize_input(g, g->nodes[i].in[j], &in[j], &out, err);
        if (st != VIGIL_OK) return st;
        codes[j] = g->nodes[i].in[j]; /* the lookup's output: the value the DequantizeLinear made */
    }
    n = &g->nodes[i];
    for (int j = 0; j < n_data; j++)
        n->in[j] = codes[j];
    for (int j = 0; j < n->n_out; j++)
        take_codes(g, i, j, qs[j]);
    return VIGIL_OK;
}

/* DequantizeLinear (A), DequantizeLinear (B) -> Add -> QuantizeLinear, all
 * per tensor, A, B and the sum of one shape and 8-bit type: one lookup in a
 * 256 x 256 table of the float path's codes (vigil.QAdd, ops/quant.c), so
 * the result is the unfused graph's bit for bit.  Broadcasting Adds stay
 * as they are. */
static vigil_status fuse_one_qdq_add(graph *g, int i, vigil_error *err) {
    const gnode *n = &g->nodes[i];
    qkey a, b, c;
    if (n->n_in != 2) return VIGIL_OK;
    int ca = dq_codes(g, n->in[0], &a), cb = dq_codes(g, n->in[1], &b), q = q_reader(g, n->out[0], &c);
    if (ca < 0 || cb < 0 || q < 0 || a.type != b.type || a.type != c.type) return VIGIL_OK;
    const gvalue *va = &g->values[ca], *vb = &g->values[cb], *vy = &g->values[g->nodes[q].out[0]];
    if (va->ndim != vb->ndim || va->ndim != vy->ndim ||
        memcmp(va->dims, vb->dims, (size_t)va->ndim * sizeof va->dims[0]) != 0 ||
        memcmp(va->dims, vy->dims, (size_t)va->ndim * sizeof va->dims[0]) != 0)
        return VIGIL_OK;
    void *table;
    int tv = add_table(g, n->name, VIGIL_DTYPE_U8, 65536, &table);
    if (tv < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    vigil_status st = quant_add_table(a.type, a.scale, a.zp, b.scale, b.zp, c.scale, c.zp, table, err);
    if (st != VIGIL_OK) return st;
    int *io = vigil_calloc(3 + 1 + 1, sizeof(int)); /* a, b, table; the sum */
    if (!io) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    gnode *add = &g->nodes[i];
    io[0] = ca;
    io[1] = cb;
    io[2] = tv;
    vigil_free(add->in);
    add->in = io;
    add->out = io + 3;
    add->n_in = 3;
    add->n_out = 1;
    add->op = ops_find_internal("vigil.QAdd");
    take_codes(g, i, 0, q);
    return VIGIL_OK;
}

void passes_remove_dead(graph *g) {
    char *live = vigil_calloc((size_t)g->n_values + 1, 1);
    if (!live) return; /* keeping dead nodes is harmless */
    for (int i = 0; i < g->n_outputs; i++)
        live[g->outputs[i]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        gnode *n = &g->nodes[i];
        if (n->dead) continue;
        int needed = 0;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && live[n->out[k]]) needed = 1;
        if (!needed) {
            n->dead = 1;
            continue;
        }
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) live[n->in[k]] = 1;
    }
    vigil_free(live);
}

vigil_status passes_run(graph *g, vigil_error *err) {
    passes_remove_dead(g);
    vigil_status st = fold_batchnorm(g, err);
    if (st != VIGIL_OK) return st;
    fuse_silu(g);
    fuse_clamps(g);
    st = fuse_each(g, "Conv", fuse_one_qdq_conv, err);
    if (st == VIGIL_OK) st = fuse_each(g, "DequantizeLinear", fuse_one_qdq_silu, err);
    /* Concats last: an input to requantize must have the Concat as its only
     * float reader, so the Adds, MaxPools and Resizes that also read it
     * (C2f residuals, SPPF, the neck) must read its codes first */
    if (st == VIGIL_OK) st = fuse_each(g, "Add", fuse_one_qdq_add, err);
    static const char *const moves[] = {"Split", "MaxPool", "Resize", "Concat"};
    for (size_t k = 0; k < sizeof moves / sizeof moves[0] && st == VIGIL_OK; k++)
        st = fuse_each(g, moves[k], fuse_one_qdq_move, err);
    passes_remove_dead(g);
    return st;
}

/* ---- layout ---- */

typedef struct order_buf {
    int *items;
    int n, cap;
} order_buf;

static int order_push(order_buf *o, int node) {
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 128;
        int *p = vigil_realloc(o->items, (size_t)cap * sizeof(int));
        if (!p) return -1;
        o->items = p;
        o->cap = cap;
    }
    o->items[o->n++] = node;
    return 0;
}

/* Logical dims of v extended with leading 1s to rank 4. */
static void dims4(const gvalue *v, int64_t *out) {
    int pad = 4 - v->ndim;
    for (int d = 0; d < 4; d++)
        out[d] = d < pad ? 1 : v->dims[d - pad];
}

/* The NHWC twin of constant v (rank-extended to 4, then N,C,H,W -> N,H,W,C). */
static vigil_status convert_const(graph *g, int v, int *out, vigil_error *err) {
    gvalue src = g->values[v];
    int64_t d4[4];
    dims4(&src, d4);
    size_t esize = vigil_dtype_size(src.dtype);
    void *data = graph_alloc_const(g, tensor_bytes(src.dtype, src.ndim, src.dims));
    if (!data) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    /* Constants are always stored in logical (ONNX) order; the NHWC twin is
     * the N,C,H,W -> N,H,W,C permutation of the rank-4 extension. */
    static const int64_t to_nhwc_perm[4] = {0, 2, 3, 1};
    transpose_generic(src.cdata, data, esize, 4, d4, to_nhwc_perm);
    int t = graph_add_value(g, src.name);
    if (t < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    gvalue *tv = &g->values[t];
    tv->dtype = src.dtype;
    tv->ndim = 4;
    memcpy(tv->dims, d4, sizeof d4);
    tv->cdata = data;
    tv->nhwc = 1;
    g->values[v].nhwc_twin = t;
    *out = t;
    return VIGIL_OK;
}

/* Returns in *out a value holding v's data in the wanted layout, adding a
 * conversion node (pushed to the order) the first time. */
static vigil_status value_in_layout(graph *g, int v, int want_nhwc, order_buf *o, int *out, vigil_error *err) {
    gvalue *val = &g->values[v];
    if (val->nhwc == want_nhwc) {
        *out = v;
        return VIGIL_OK;
    }
    int twin = want_nhwc ? val->nhwc_twin : val->onnx_twin;
    if (twin >= 0) {
        *out = twin;
        return VIGIL_OK;
    }
    if (want_nhwc && val->cdata) return convert_const(g, v, out, err);
    const op_def *op = ops_find_internal(want_nhwc ? "vigil.ToNHWC" : "vigil.ToONNX");
    int n = graph_add_node(g, NULL, op, val->name, 1, 1);
    int t = graph_add_value(g, g->values[v].name);
    if (n < 0 || t < 0 || order_push(o, n) < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    val = &g->values[v];
    gvalue *tv = &g->values[t];
    tv->dtype = val->dtype;
    tv->nhwc = want_nhwc;
    if (want_nhwc) {
        tv->ndim = 4;
        dims4(val, tv->dims);
        val->nhwc_twin = t;
    } else {
        tv->ndim = val->ndim;
        memcpy(tv->dims, val->dims, sizeof val->dims);
        val->onnx_twin = t;
    }
    tv->producer = n;
    g->nodes[n].in[0] = v;
    g->nodes[n].out[0] = t;
    g->nodes[n].nhwc = want_nhwc;
    *out = t;
    return VIGIL_OK;
}

static int layout_input_count(const gnode *n) {
    return n->op->layout_inputs ? (n->op->layout_inputs < n->n_in ? n->op->layout_inputs : n->n_in) : n->n_in;
}

/* float32 tensors may be NHWC; uint8/int8 ones between quantized operators. */
static int nhwc_dtype(const gnode *n, vigil_dtype t) {
    return t == VIGIL_DTYPE_F32 || (n->op->quantized && (t == VIGIL_DTYPE_U8 || t == VIGIL_DTYPE_I8));
}

/* Whether node n should run on NHWC tensors. */
static int choose_nhwc(const graph *g, const gnode *n) {
    int n_data = layout_input_count(n);
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        const gvalue *o = &g->values[n->out[k]];
        if (o->ndim != 4 || !nhwc_dtype(n, o->dtype)) return 0;
    }
    int any_nhwc = 0;
    for (int k = 0; k < n_data; k++) {
        if (n->in[k] < 0) continue;
        const gvalue *v = &g->values[n->in[k]];
        if (v->ndim > 4 || !nhwc_dtype(n, v->dtype)) return 0;
        if (v->nhwc) any_nhwc = 1;
    }
    switch (n->op->layout) {
    case OP_LAYOUT_NHWC:
        /* Parameters (weights, scales) must be known at compile time. */
        for (int k = n_data; k < n->n_in; k++)
            if (n->in[k] >= 0 && !g->values[n->in[k]].cdata) return 0;
        if (n->op->nhwc_ok && !n->op->nhwc_ok(n->src)) return 0;
        return n->in[0] >= 0 && g->values[n->in[0]].ndim == 4;
    case OP_LAYOUT_UNARY: return n->in[0] >= 0 && g->values[n->in[0]].nhwc;
    case OP_LAYOUT_BINARY:
    case OP_LAYOUT_AXIS: return any_nhwc;
    default: return 0;
    }
}

vigil_status passes_layout(graph *g, vigil_error *err) {
    order_buf o = {0};
    int n_nodes = g->n_nodes; /* conversion nodes appended below are already ordered */
    vigil_status st = VIGIL_OK;
    for (int i = 0; i < n_nodes && st == VIGIL_OK; i++) {
        if (g->nodes[i].dead) continue;
        int nhwc = choose_nhwc(g, &g->nodes[i]);
        int n_data = layout_input_count(&g->nodes[i]);
        g->nodes[i].nhwc = nhwc;
        for (int k = 0; k < g->nodes[i].n_in && st == VIGIL_OK; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0) continue;
            int want = nhwc && k < n_data;
            int t;
            st = value_in_layout(g, v, want, &o, &t, err);
            if (st == VIGIL_OK) g->nodes[i].in[k] = t;
        }
        if (st != VIGIL_OK) break;
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0) g->values[g->nodes[i].out[k]].nhwc = nhwc;
        if (order_push(&o, i) < 0) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    for (int i = 0; i < g->n_outputs && st == VIGIL_OK; i++) {
        int t;
        st = value_in_layout(g, g->outputs[i], 0, &o, &t, err);
        if (st == VIGIL_OK) g->outputs[i] = t;
    }
    if (st != VIGIL_OK) {
        vigil_free(o.items);
        return st;
    }
    vigil_free(g->order);
    g->order = o.items;
    g->n_order = o.n;
    return VIGIL_OK;
}

/* ---- ToONNX -> Reshape -> Transpose ---- */

static int only_use_in_order(const graph *g, int v) {
    int uses = 0;
    for (int i = 0; i < g->n_order; i++) {
        const gnode *n = &g->nodes[g->order[i]];
        for (int k = 0; k < n->n_in; k++)
            uses += n->in[k] == v;
    }
    return uses == 1 && !is_graph_output(g, v);
}

/* If transpose node t reads Reshape(ToONNX(a)) where the Reshape only splits
 * the channel dimension, points t at a's NHWC buffer through a view. */
static int fold_one_transpose(graph *g, int t) {
    gnode *tn = &g->nodes[t];
    int r_v = tn->in[0];
    if (r_v < 0 || g->values[r_v].producer < 0 || !only_use_in_order(g, r_v)) return 0;
    const gnode *rn = &g->nodes[g->values[r_v].producer];
    if (rn->dead || strcmp(rn->op->name, "Reshape") != 0 || rn->nhwc) return 0;
    int b_v = rn->in[0];
    if (b_v < 0 || g->values[b_v].producer < 0 || !only_use_in_order(g, b_v)) return 0;
    const gnode *cn = &g->nodes[g->values[b_v].producer];
    if (strcmp(cn->op->name, "vigil.ToONNX") != 0) return 0;
    const gvalue *a = &g->values[cn->in[0]], *rv = &g->values[r_v];
    int m = rv->ndim - 3; /* channel factors */
    if (m < 1 || rv->ndim > VIGIL_MAX_DIMS || a->ndim != 4) return 0;
    if (rv->dims[0] != a->dims[0] || rv->dims[rv->ndim - 2] != a->dims[2] || rv->dims[rv->ndim - 1] != a->dims[3])
        return 0;
    int64_t c = 1;
    for (int i = 0; i < m; i++)
        c *= rv->dims[1 + i];
    if (c != a->dims[1]) return 0;
    int p[VIGIL_MAX_DIMS], q[VIGIL_MAX_DIMS];
    if (!tn->src) return 0;
    int64_t pa[VIGIL_MAX_DIMS];
    int np = attr_ints(tn->src, "perm", pa, VIGIL_MAX_DIMS);
    for (int i = 0; i < rv->ndim; i++)
        p[i] = np < 0 ? rv->ndim - 1 - i : (int)pa[i];
    if (np >= 0 && np != rv->ndim) return 0;
    /* R's dim i is the view's dim q[i]: view = [N, H, W, c_1..c_m] */
    q[0] = 0;
    for (int i = 0; i < m; i++)
        q[1 + i] = 3 + i;
    q[rv->ndim - 2] = 1;
    q[rv->ndim - 1] = 2;
    tn->view_ndim = rv->ndim;
    tn->view_dims[0] = a->dims[0];
    tn->view_dims[1] = a->dims[2];
    tn->view_dims[2] = a->dims[3];
    for (int i = 0; i < m; i++)
        tn->view_dims[3 + i] = rv->dims[1 + i];
    for (int i = 0; i < rv->ndim; i++)
        tn->perm[i] = q[p[i]];
    tn->in[0] = cn->in[0];
    g->nodes[g->values[r_v].producer].dead = 1;
    g->nodes[g->values[b_v].producer].dead = 1;
    return 1;
}

void passes_fold_transposes(graph *g) {
    int folded = 0;
    for (int i = 0; i < g->n_order; i++) {
        gnode *n = &g->nodes[g->order[i]];
        if (!n->dead && !n->nhwc && strcmp(n->op->name, "Transpose") == 0) folded += fold_one_transpose(g, g->order[i]);
    }
    if (!folded) return;
    int k = 0;
    for (int i = 0; i < g->n_order; i++)
        if (!g->nodes[g->order[i]].dead) g->order[k++] = g->order[i];
    g->n_order = k;
}
