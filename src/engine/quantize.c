/*
 * quantize.c - vigil_model_quantize: a float32 ONNX model in, a QDQ int8
 * model out (what `vigil models quantize` writes).
 *
 * Every 2-D Conv whose weights (and bias) are float32 initializers of its
 * own and whose output an activation function reads gets:
 *   - its weights as int8 per output channel (symmetric: scale max|w| / 127,
 *     zero point 0) behind a DequantizeLinear (axis 0), its bias as int32 at
 *     scale x_scale * w_scale behind another (how ONNX Runtime's quantizer
 *     writes them, and what passes.c turns back into integers);
 *   - QuantizeLinear -> DequantizeLinear on its input and output, uint8 or
 *     int8, scale and zero point from a range within [min(0, lo), max(0, hi)]
 *     of the values the tensor took over the calibration inputs.  A tensor
 *     is quantized once, however many convolutions read it.
 * The engine then runs each DequantizeLinear -> Conv -> QuantizeLinear as one
 * int8 convolution (passes.c, ops/quant.c).
 *
 * Calibration runs the float32 model with every such tensor made a graph
 * output (which also keeps the passes from fusing it away), twice over the
 * inputs: first for each tensor's range and per-channel means, then for a
 * histogram over that range.  Two choices then cut the int8 model's error
 * against float32 (measured on YOLOv8n/YOLOv5n, docs/VISION.md):
 *   - each range is the one of least expected squared error (search_range):
 *     clipping a few outliers buys finer steps for everything else; a
 *     convolution's output that only a SiLU reads is judged after the SiLU,
 *     which is flat where most of such a tensor's negative range lies;
 *   - bias correction: rounding the weights shifts each output channel's
 *     mean by sum((w - w_q) * mean(x)); the bias takes that back.
 * VIGIL_QUANTIZE_MINMAX skips both (whole ranges, biases as rounded: the
 * file earlier versions wrote).  The model's input keeps its whole range,
 * so an image's values k / 255 stay exact.  The output file
 * is the input file rewritten at the protobuf level: every field this code
 * does not change is copied byte for byte (metadata, opsets, other nodes,
 * value_info), so nothing it does not understand is lost.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "engine/exec.h"
#include "engine/onnx_wire.h"

/* ---- a protobuf writer (growable, capped) ---- */

#define QBUF_MAX ((size_t)1 << 32) /* 4 GiB: more than any model this rewrites */

typedef struct qbuf {
    uint8_t *data;
    size_t len, cap;
    int failed; /* an allocation failed or the cap was reached: the content is incomplete */
} qbuf;

static void qb_put(qbuf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n && cap <= QBUF_MAX)
            cap *= 2;
        uint8_t *d = cap > QBUF_MAX ? NULL : vigil_realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void qb_varint(qbuf *b, uint64_t v) {
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    qb_put(b, tmp, (size_t)n);
}

static void qb_int(qbuf *b, uint32_t field, int64_t v) {
    qb_varint(b, (uint64_t)field << 3 | WIRE_VARINT);
    qb_varint(b, (uint64_t)v);
}

static void qb_bytes(qbuf *b, uint32_t field, const void *p, size_t n) {
    qb_varint(b, (uint64_t)field << 3 | WIRE_LEN);
    qb_varint(b, n);
    qb_put(b, p, n);
}

static void qb_str(qbuf *b, uint32_t field, const char *s) {
    qb_bytes(b, field, s, strlen(s));
}

/* Appends sub as a LEN field and empties it. */
static void qb_msg(qbuf *b, uint32_t field, qbuf *sub) {
    if (sub->failed) b->failed = 1;
    qb_bytes(b, field, sub->data, sub->len);
    vigil_free(sub->data);
    memset(sub, 0, sizeof *sub);
}

/* Copies field f of r's message verbatim (key and payload). */
static void qb_copy(qbuf *b, const wire_reader *r, const wire_field *f, size_t end) {
    qb_put(b, r->base + f->offset, end - f->offset);
}

/* TensorProto: dims, data_type, name, raw_data. */
static void qb_tensor(qbuf *b, const char *name, int32_t dtype, int ndim, const int64_t *dims, const void *data,
                      size_t nbytes) {
    qbuf t = {0};
    for (int i = 0; i < ndim; i++)
        qb_int(&t, 1, dims[i]);
    qb_int(&t, 2, dtype);
    qb_str(&t, 8, name);
    qb_bytes(&t, 9, data, nbytes);
    qb_msg(b, 5, &t); /* GraphProto.initializer */
}

/* NodeProto with n_in inputs, one output (also its name) and an optional axis. */
static void qb_node(qbuf *b, const char *op, int n_in, const char *const *in, const char *out, int64_t axis) {
    qbuf n = {0};
    for (int i = 0; i < n_in; i++)
        qb_str(&n, 1, in[i]);
    qb_str(&n, 2, out);
    qb_str(&n, 3, out);
    qb_str(&n, 4, op);
    if (axis >= 0) {
        qbuf a = {0};
        qb_str(&a, 1, "axis");
        qb_int(&a, 3, axis);
        qb_int(&a, 20, 2); /* AttributeProto.INT */
        qb_msg(&n, 5, &a);
    }
    qb_msg(b, 1, &n); /* GraphProto.node */
}

/* ---- what gets quantized ---- */

typedef struct qtarget {
    int node; /* index of the Conv in the model's nodes */
    const onnx_tensor *w, *b;
    int x, y; /* indices into the activation table */
} qtarget;

/* An activation tensor: its range over the calibration inputs, then its
 * quantization parameters, and whether the rewrite has emitted them yet. */
typedef struct qact {
    const char *name;
    float lo, hi;
    float scale;
    int32_t zero_point;
    int emitted; /* its QuantizeLinear -> DequantizeLinear is written */
    int self_dq; /* ... and the DequantizeLinear's output has the tensor's own name (a Conv output) */
    int producer; /* the node after which it is quantized (a SiLU's Mul, a data-movement op, an Add), or -1 */
    int root;     /* the act whose parameters it shares (itself, or one across a data-movement op) */
    int concat;   /* a Concat's output: that node (share_ranges may join its inputs' parameters), or -1 */
    int silu;    /* only a SiLU (Sigmoid(x) * x) reads it */
    int model_input; /* the model's input: its range is kept (an image's k / 255 stay exact) */
    double *sum; /* per channel (dimension 1): the sum of its values over the calibration inputs */
    int64_t channels, per_channel; /* and how many values each sum holds */
    double *hist; /* HIST_BINS counts of its values over [lo, hi] (the second calibration pass; NULL: min/max) */
} qact;

#define HIST_BINS 2048

typedef struct quantizer {
    const onnx_model *m;
    qtarget *targets;
    int n_targets;
    qact *acts;
    int n_acts;
    int int8_activations;
    int minmax; /* VIGIL_QUANTIZE_MINMAX: ranges as measured, biases as rounded */
    int chain;  /* VIGIL_QUANTIZE_CHAIN: tensors stay 8-bit between convolutions (find_chain) */
    char name[1024]; /* scratch for derived tensor names */
} quantizer;

static int act_index(quantizer *q, const char *name) {
    for (int i = 0; i < q->n_acts; i++)
        if (strcmp(q->acts[i].name, name) == 0) return i;
    q->acts[q->n_acts] = (qact){.name = name, .lo = INFINITY, .hi = -INFINITY, .producer = -1, .root = q->n_acts,
                                   .concat = -1};
    return q->n_acts++;
}

static const onnx_tensor *f32_initializer(const onnx_model *m, const char *name, int ndim) {
    const onnx_tensor *t = name[0] ? onnx_find_initializer(m, name) : NULL;
    return t && t->dtype == ONNX_FLOAT && t->ndim == ndim ? t : NULL;
}

/* Whether an activation function reads tensor y.  Convolutions without one
 * are a detection head's last layers, whose outputs are the boxes and class
 * logits themselves: 8-bit steps there move boxes by pixels, so they stay
 * float32 (as quantization tools are usually told to leave them). */
static int activated(const onnx_model *m, const char *y) {
    static const char *const acts[] = {"Sigmoid", "Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Elu"};
    for (size_t i = 0; i < m->n_nodes; i++)
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
            if (m->nodes[i].n_inputs && strcmp(m->nodes[i].inputs[0], y) == 0 &&
                strcmp(m->nodes[i].op_type, acts[a]) == 0)
                return 1;
    return 0;
}

/* When y is read only by a SiLU (a Sigmoid of y and a Mul of y and it),
 * the Mul's node index; else -1. */
static int silu_only(const onnx_model *m, const char *y) {
    const char *sig = NULL;
    int readers = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const onnx_node *n = &m->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            readers += strcmp(n->inputs[k], y) == 0;
        if (strcmp(n->op_type, "Sigmoid") == 0 && n->n_inputs == 1 && strcmp(n->inputs[0], y) == 0)
            sig = n->outputs[0];
    }
    if (!sig || readers != 2) return -1;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const onnx_node *n = &m->nodes[i];
        if (strcmp(n->op_type, "Mul") == 0 && n->n_inputs == 2 &&
            ((strcmp(n->inputs[0], y) == 0 && strcmp(n->inputs[1], sig) == 0) ||
             (strcmp(n->inputs[1], y) == 0 && strcmp(n->inputs[0], sig) == 0)))
            return (int)i;
    }
    return -1;
}

/* The act named `name` when it is quantized where it is made, else -1. */
static int produced_act(const quantizer *q, const char *name) {
    for (int i = 0; i < q->n_acts; i++)
        if (q->acts[i].producer >= 0 && strcmp(q->acts[i].name, name) == 0) return i;
    return -1;
}

static int act_root(const quantizer *q, int a) {
    while (q->acts[a].root != a)
        a = q->acts[a].root;
    return a;
}

/* Between quantized convolutions, keeps the tensors 8-bit in the file's
 * terms: every SiLU output of a quantized convolution is quantized where it
 * is made, and so is every output of a Concat, Split, MaxPool or nearest
 * Resize whose data inputs all are, sharing one scale and zero point with
 * them (what ONNX Runtime's quantizer does for such data-movement ops: the
 * engine then runs them on the codes, exactly), and every Add of two such
 * tensors (a C2f residual: its own output parameters).  The engine's QDQ
 * pass (passes.c) runs each of these between its DequantizeLinear and
 * QuantizeLinear without leaving 8 bits. */
static void find_chain(quantizer *q) {
    const onnx_model *m = q->m;
    for (int t = 0; t < q->n_targets; t++) {
        int mul = silu_only(m, m->nodes[q->targets[t].node].outputs[0]);
        if (mul >= 0) q->acts[act_index(q, m->nodes[mul].outputs[0])].producer = mul;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        const onnx_node *n = &m->nodes[i];
        int move = strcmp(n->op_type, "Concat") == 0 || strcmp(n->op_type, "Split") == 0 ||
                   (strcmp(n->op_type, "MaxPool") == 0 && n->n_outputs == 1) ||
                   (strcmp(n->op_type, "Resize") == 0 && strcmp(attr_string(n, "mode", "nearest"), "nearest") == 0);
        int add = strcmp(n->op_type, "Add") == 0 && n->n_inputs == 2;
        /* a Concat's inputs keep their own parameters (one scale for the
         * neck's upsampled and lateral tensors cost YOLOv8n boxes 5 px);
         * the engine requantizes them on the way in */
        int share = move && strcmp(n->op_type, "Concat") != 0;
        if (n->domain[0] || (!move && !add) || n->n_inputs == 0) continue;
        size_t n_data = strcmp(n->op_type, "Concat") == 0 || add ? n->n_inputs : 1;
        int first = produced_act(q, n->inputs[0]), ok = first >= 0;
        for (size_t k = 1; k < n_data && ok; k++)
            ok = produced_act(q, n->inputs[k]) >= 0;
        if (!ok) continue;
        for (size_t k = 0; k < n->n_outputs; k++) {
            if (!n->outputs[k][0]) continue;
            int a = act_index(q, n->outputs[k]);
            q->acts[a].producer = (int)i;
            if (share) q->acts[act_root(q, a)].root = act_root(q, first);
            if (move && !share) q->acts[a].concat = (int)i;
        }
        for (size_t k = 1; k < n_data && share; k++)
            q->acts[act_root(q, produced_act(q, n->inputs[k]))].root = act_root(q, first);
    }
}

static vigil_status find_targets(quantizer *q, vigil_error *err) {
    const onnx_model *m = q->m;
    q->targets = vigil_calloc(m->n_nodes + 1, sizeof *q->targets);
    size_t n_values = 2 * m->n_nodes + 1; /* every Conv's input and output, every node's outputs */
    for (size_t i = 0; i < m->n_nodes; i++)
        n_values += m->nodes[i].n_outputs;
    q->acts = vigil_calloc(n_values, sizeof *q->acts);
    if (!q->targets || !q->acts) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < m->n_nodes; i++) {
        const onnx_node *n = &m->nodes[i];
        if (strcmp(n->op_type, "Conv") != 0 || n->domain[0] || n->n_inputs < 2 || n->n_outputs != 1) continue;
        const onnx_tensor *w = f32_initializer(m, n->inputs[1], 4), *b = NULL;
        if (!w || onnx_find_initializer(m, n->inputs[0]) || !activated(m, n->outputs[0])) continue;
        if (n->n_inputs > 2 && n->inputs[2][0]) {
            b = f32_initializer(m, n->inputs[2], 1);
            if (!b || b->dims[0] != w->dims[0]) continue;
        }
        /* weights or a bias that an earlier target also reads would be
         * written twice (under one name, perhaps at two scales): left float */
        int shared = 0;
        for (int k = 0; k < q->n_targets; k++) {
            const qtarget *o = &q->targets[k];
            shared |= o->w == w || o->w == b || (o->b && (o->b == w || o->b == b));
        }
        if (shared) continue;
        qtarget *t = &q->targets[q->n_targets++];
        t->node = (int)i;
        t->w = w;
        t->b = b;
        t->x = act_index(q, n->inputs[0]);
        t->y = act_index(q, n->outputs[0]);
        q->acts[t->y].silu = silu_only(m, n->outputs[0]) >= 0;
    }
    if (q->n_targets == 0)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "no Conv with float32 weights to quantize");
    if (q->chain) find_chain(q);
    return VIGIL_OK;
}

/* ---- calibration ---- */

static void widen_range(qact *a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (x[i] < a->lo) a->lo = x[i];
        if (x[i] > a->hi) a->hi = x[i];
    }
}

/* Counts x into a's histogram over [lo, hi] (NaN into the first bin). */
static void add_histogram(qact *a, const float *x, int64_t n) {
    double width = ((double)a->hi - a->lo) / HIST_BINS;
    for (int64_t i = 0; i < n && width > 0 && width < INFINITY; i++) {
        double d = ((double)x[i] - a->lo) / width;
        a->hist[!(d >= 0) ? 0 : d >= HIST_BINS ? HIST_BINS - 1 : (int)d] += 1;
    }
}

/* Adds an NCHW tensor's values to a's per-channel sums (the weights' bias
 * correction reads their means). */
static vigil_status add_channel_sums(qact *a, const vigil_tensor *t, vigil_error *err) {
    if (t->ndim != 4) return VIGIL_OK;
    int64_t c = t->dims[1], hw = t->dims[2] * t->dims[3];
    if (!a->sum) {
        a->sum = vigil_calloc((size_t)c + 1, sizeof *a->sum);
        if (!a->sum) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        a->channels = c;
    }
    if (a->channels != c) return VIGIL_OK;
    const float *x = t->data;
    for (int64_t n = 0; n < t->dims[0]; n++)
        for (int64_t k = 0; k < c; k++) {
            double s = 0;
            for (int64_t i = 0; i < hw; i++)
                s += x[(n * c + k) * hw + i];
            a->sum[k] += s;
        }
    a->per_channel += t->dims[0] * hw;
    return VIGIL_OK;
}

/* Gives every act of a group (one parameter set) the group's whole range,
 * so that their histograms share bins and add up in the root's. */
static void group_ranges(quantizer *q) {
    for (int i = 0; i < q->n_acts; i++) {
        qact *r = &q->acts[act_root(q, i)];
        r->lo = fminf(r->lo, q->acts[i].lo);
        r->hi = fmaxf(r->hi, q->acts[i].hi);
    }
    for (int i = 0; i < q->n_acts; i++) {
        q->acts[i].lo = q->acts[act_root(q, i)].lo;
        q->acts[i].hi = q->acts[act_root(q, i)].hi;
    }
}

static float range_width(const qact *a) {
    return fmaxf(a->hi, 0) - fminf(a->lo, 0);
}

/* A Concat whose inputs' ranges are all at least CONCAT_SHARE of the whole
 * range shares one parameter set with them (no requantization on the way
 * in: one rounding fewer); one that joins tensors of unlike ranges (a
 * neck's upsampled deep features and lateral ones) keeps its own and the
 * engine requantizes its inputs.  Measured on YOLOv8n (bus.jpg, zidane.jpg):
 * sharing every Concat moved the bus's box 5.2 px, sharing none 3.9 px but
 * a marginal person's 7.5 px; 0.9 kept all within 3.5 px.  At this level
 * the differences between such choices are mostly rounding noise. */
#define CONCAT_SHARE 0.9f

static void share_ranges(quantizer *q) {
    group_ranges(q);
    for (int i = 0; i < q->n_acts; i++) {
        if (q->acts[i].concat < 0) continue;
        const onnx_node *n = &q->m->nodes[q->acts[i].concat];
        float lo = q->acts[i].lo, hi = q->acts[i].hi;
        for (size_t k = 0; k < n->n_inputs; k++) {
            const qact *in = &q->acts[act_root(q, produced_act(q, n->inputs[k]))];
            lo = fminf(lo, in->lo);
            hi = fmaxf(hi, in->hi);
        }
        qact whole = {.lo = lo, .hi = hi};
        int like = 1;
        for (size_t k = 0; k < n->n_inputs; k++)
            like &= range_width(&q->acts[act_root(q, produced_act(q, n->inputs[k]))]) >= CONCAT_SHARE * range_width(&whole);
        for (size_t k = 0; k < n->n_inputs && like; k++)
            q->acts[act_root(q, produced_act(q, n->inputs[k]))].root = act_root(q, i);
    }
    group_ranges(q);
}

/* Runs the model with every activation of the table as an extra output (the
 * model's input, when a convolution reads it, is measured directly). */
static vigil_status calibrate(quantizer *q, vigil_model *model, const vigil_tensor *inputs, size_t n_inputs,
                              vigil_error *err) {
    const onnx_model *m = q->m;
    size_t n_out = m->n_outputs;
    onnx_value_info *outs = vigil_calloc(m->n_outputs + (size_t)q->n_acts, sizeof *outs);
    vigil_tensor_info *infos = vigil_calloc(m->n_outputs + (size_t)q->n_acts, sizeof *infos);
    int *measured = vigil_calloc((size_t)q->n_acts + 1, sizeof *measured); /* extra output index, or -1 */
    vigil_status st = outs && infos && measured ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    onnx_model copy = *m;
    vigil_model cal = *model;
    vigil_plan *plan = NULL;
    if (st == VIGIL_OK) {
        memcpy(outs, m->outputs, m->n_outputs * sizeof *outs);
        memcpy(infos, model->outputs, model->n_outputs * sizeof *infos);
        for (int i = 0; i < q->n_acts; i++) {
            const char *name = q->acts[i].name;
            measured[i] = -1;
            q->acts[i].model_input = strcmp(name, model->inputs[0].name) == 0;
            if (q->acts[i].model_input) continue;
            measured[i] = (int)n_out;
            outs[n_out] = (onnx_value_info){.name = name, .dtype = ONNX_FLOAT, .ndim = -1};
            infos[n_out++] = (vigil_tensor_info){.name = name, .dtype = VIGIL_DTYPE_F32};
        }
        copy.outputs = outs;
        copy.n_outputs = n_out;
        cal.onnx = &copy;
        cal.outputs = infos;
        cal.n_outputs = n_out;
        st = vigil_plan_create(&cal, 1, &plan, err);
    }
    /* pass 0 measures ranges and channel means, pass 1 histograms over those ranges */
    for (size_t run = 0; run < (q->minmax ? 1 : 2) * n_inputs && st == VIGIL_OK; run++) {
        size_t k = run % n_inputs;
        int pass = run >= n_inputs;
        if (pass && k == 0) share_ranges(q);
        if (pass && k == 0)
            for (int i = 0; i < q->n_acts && st == VIGIL_OK; i++)
                if (!(q->acts[i].hist = vigil_calloc(HIST_BINS, sizeof(double))))
                    st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        if (st == VIGIL_OK && inputs[k].dtype != VIGIL_DTYPE_F32)
            st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "calibration input %zu is not float32", k);
        if (st == VIGIL_OK) st = vigil_plan_run(plan, &inputs[k], 1, err);
        for (int i = 0; i < q->n_acts && st == VIGIL_OK; i++) {
            const vigil_tensor *t = measured[i] < 0 ? &inputs[k] : vigil_plan_output(plan, (size_t)measured[i]);
            if (t->dtype != VIGIL_DTYPE_F32)
                st = vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "tensor '%s' is not float32", q->acts[i].name);
            else if (pass)
                add_histogram(&q->acts[i], t->data, tensor_count(t->ndim, t->dims));
            else {
                widen_range(&q->acts[i], t->data, tensor_count(t->ndim, t->dims));
                if (!q->minmax) st = add_channel_sums(&q->acts[i], t, err);
            }
        }
    }
    vigil_plan_destroy(plan);
    vigil_free(outs);
    vigil_free(infos);
    vigil_free(measured);
    return st;
}

/* What an error in a's values costs: SiLU of them when only a SiLU reads
 * a, else the values themselves. */
static double act_image(const qact *a, double x) {
    return a->silu ? x / (1 + exp(-x)) : x;
}

/* The expected squared error (in act_image's terms) of quantizing a's
 * values to 256 steps over [lo, hi]: values outside are clipped to the
 * ends, values inside rounded (step^2 / 12, times SiLU's slope squared). */
static double range_error(const qact *a, double lo, double hi) {
    double width = ((double)a->hi - a->lo) / HIST_BINS, q_step = (hi - lo) / 255, err = 0;
    double flo = act_image(a, lo), fhi = act_image(a, hi);
    for (int b = 0; b < HIST_BINS; b++) {
        if (a->hist[b] == 0) continue;
        double c = a->lo + (b + 0.5) * width, fc = act_image(a, c), e;
        if (c < lo)
            e = (fc - flo) * (fc - flo);
        else if (c > hi)
            e = (fc - fhi) * (fc - fhi);
        else {
            double slope = 1;
            if (a->silu) {
                double sg = 1 / (1 + exp(-c));
                slope = sg * (1 + c * (1 - sg));
            }
            e = q_step * q_step * slope * slope / 12;
        }
        err += a->hist[b] * e;
    }
    return err;
}

/* The range of a that range_error finds best: the upper end, then the lower,
 * each shrunk toward 0 in steps of 1 % of the measured one (at most 79 %).
 * Min/max ranges spend steps on a few outliers (a SiLU's input, mostly
 * negative where SiLU is flat, worst): on YOLOv8n this halved the mean box
 * error against float32 (docs/VISION.md). */
static void search_range(const qact *a, float *lo, float *hi) {
    for (int side = 0; side < 2; side++) {
        float *end = side ? lo : hi, full = *end, bestv = full;
        double best = INFINITY;
        for (int i = 0; i < 80; i++) {
            float v = full * (1 - i / 100.0f);
            *end = v;
            double e = range_error(a, *lo, *hi);
            if (e < best) {
                best = e;
                bestv = v;
            }
        }
        *end = bestv;
    }
}

/* Scale and zero point covering [min(0, lo), max(0, hi)] in uint8 or int8,
 * or the part of it search_range picks when a histogram was taken. */
static void act_params(qact *a, int int8) {
    float lo = a->lo < 0 ? a->lo : 0, hi = a->hi > 0 ? a->hi : 0;
    if (a->hist && !a->model_input) search_range(a, &lo, &hi);
    a->scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    double zp = (int8 ? -128.0 : 0.0) - (double)lo / a->scale;
    double qmin = int8 ? -128 : 0, qmax = int8 ? 127 : 255;
    zp = nearbyint(zp);
    a->zero_point = (int32_t)(zp < qmin ? qmin : zp > qmax ? qmax : zp);
}

/* ---- the rewrite ---- */

static const char *derived(quantizer *q, const char *name, const char *suffix) {
    snprintf(q->name, sizeof q->name, "%s/vigil_%s", name, suffix);
    return q->name;
}

/* Initializers: the activation's scale and zero point ("<name>/vigil_s", "_z"). */
static void emit_act_params(quantizer *q, qbuf *g, const qact *a) {
    uint8_t zp = (uint8_t)(a->zero_point & 0xff); /* int8 or uint8: the same byte */
    qb_tensor(g, derived(q, a->name, "s"), ONNX_FLOAT, 0, NULL, &a->scale, sizeof(float));
    qb_tensor(g, derived(q, a->name, "z"), q->int8_activations ? ONNX_INT8 : ONNX_UINT8, 0, NULL, &zp, 1);
}

/* QuantizeLinear -> DequantizeLinear of activation a from tensor `from` to
 * tensor `to`. */
static void emit_qdq(quantizer *q, qbuf *g, const qact *a, const char *from, const char *to) {
    char s[1024], z[1024], qn[1024];
    snprintf(s, sizeof s, "%s/vigil_s", a->name);
    snprintf(z, sizeof z, "%s/vigil_z", a->name);
    snprintf(qn, sizeof qn, "%s/vigil_q", a->name);
    qb_node(g, "QuantizeLinear", 3, (const char *[]){from, s, z}, qn, -1);
    qb_node(g, "DequantizeLinear", 3, (const char *[]){qn, s, z}, to, -1);
}

/* Weights (int8 per output channel) and bias (int32) with their parameters. */
static vigil_status emit_weights(quantizer *q, qbuf *g, const qtarget *t, vigil_error *err) {
    const onnx_tensor *w = t->w;
    int64_t m = w->dims[0], per = (int64_t)w->count / (m ? m : 1);
    float *scales = vigil_calloc((size_t)m + 1, 2 * sizeof(float));
    int8_t *wq = vigil_calloc(w->count + (size_t)m + 1, 1);         /* the values, then m zero points */
    int32_t *bq = vigil_calloc((size_t)m + 1, 2 * sizeof(int32_t)); /* values, then zero points */
    if (!scales || !wq || !bq) {
        vigil_free(scales);
        vigil_free(wq);
        vigil_free(bq);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    float *bscales = scales + m;
    const float *wf = w->data, x_scale = q->acts[t->x].scale;
    const qact *x = &q->acts[t->x];
    int64_t in_ch = w->dims[1], kernel = per / (in_ch ? in_ch : 1);
    int correct = x->sum && x->per_channel && x->channels == in_ch; /* not grouped convolutions */
    for (int64_t o = 0; o < m; o++) {
        float big = 0;
        for (int64_t i = 0; i < per; i++)
            big = fmaxf(big, fabsf(wf[o * per + i]));
        scales[o] = big > 0 ? big / 127.0f : 1.0f;
        for (int64_t i = 0; i < per; i++) {
            float v = nearbyintf(wf[o * per + i] / scales[o]);
            wq[o * per + i] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
        }
        bscales[o] = x_scale * scales[o];
        double shift = 0;
        for (int64_t i = 0; correct && i < per; i++)
            shift += ((double)wf[o * per + i] - (double)wq[o * per + i] * scales[o]) * x->sum[i / kernel];
        shift /= correct ? (double)x->per_channel : 1;
        double b = t->b ? nearbyint(((double)((const float *)t->b->data)[o] + shift) / bscales[o]) : 0;
        bq[o] = (int32_t)(b < INT32_MIN ? INT32_MIN : b > INT32_MAX ? INT32_MAX : b);
    }
    char wname[1024], bname[1024], ws[1024], wz[1024], bs[1024], bz[1024];
    snprintf(wname, sizeof wname, "%s/vigil_q", w->name);
    snprintf(ws, sizeof ws, "%s/vigil_s", w->name);
    snprintf(wz, sizeof wz, "%s/vigil_z", w->name);
    qb_tensor(g, wname, ONNX_INT8, w->ndim, w->dims, wq, w->count);
    qb_tensor(g, ws, ONNX_FLOAT, 1, &m, scales, (size_t)m * sizeof(float));
    qb_tensor(g, wz, ONNX_INT8, 1, &m, wq + w->count, (size_t)m); /* zeros: calloc'd past the end */
    vigil_free(wq);
    if (t->b) {
        snprintf(bname, sizeof bname, "%s/vigil_q", t->b->name);
        snprintf(bs, sizeof bs, "%s/vigil_s", t->b->name);
        snprintf(bz, sizeof bz, "%s/vigil_z", t->b->name);
        qb_tensor(g, bname, ONNX_INT32, 1, &m, bq, (size_t)m * sizeof(int32_t));
        qb_tensor(g, bs, ONNX_FLOAT, 1, &m, bscales, (size_t)m * sizeof(float));
        qb_tensor(g, bz, ONNX_INT32, 1, &m, bq + m, (size_t)m * sizeof(int32_t));
    }
    vigil_free(scales);
    vigil_free(bq);
    return VIGIL_OK;
}

/* The name a quantized convolution reads activation a under. */
static void act_dq_name(const qact *a, char *out, size_t size) {
    snprintf(out, size, a->self_dq ? "%s" : "%s/vigil_dq", a->name);
}

/* The Conv node re-written: inputs from the DequantizeLinear outputs, output
 * renamed "<y>/vigil_raw"; its other fields (name, attributes) copied. */
static vigil_status emit_conv(quantizer *q, qbuf *g, const wire_reader *r, const wire_field *f, const qtarget *t,
                              vigil_error *err) {
    const onnx_node *n = &q->m->nodes[t->node];
    wire_reader nr = wire_sub(r, f, "NodeProto");
    qbuf node = {0};
    char name[1024];
    act_dq_name(&q->acts[t->x], name, sizeof name);
    qb_str(&node, 1, name);
    snprintf(name, sizeof name, "%s/vigil_dq", t->w->name);
    qb_str(&node, 1, name);
    if (t->b) {
        snprintf(name, sizeof name, "%s/vigil_dq", t->b->name);
        qb_str(&node, 1, name);
    }
    qb_str(&node, 2, derived(q, n->outputs[0], "raw"));
    wire_field nf;
    int rc;
    while ((rc = wire_next(&nr, &nf, err)) > 0)
        if (nf.number != 1 && nf.number != 2) qb_copy(&node, &nr, &nf, nr.pos);
    if (rc < 0) {
        vigil_free(node.data);
        return (vigil_status)rc;
    }
    qb_msg(g, 1, &node);
    return VIGIL_OK;
}

/* Everything one target needs before its Conv, the Conv, and the Q/DQ after it. */
static vigil_status emit_target(quantizer *q, qbuf *g, const wire_reader *r, const wire_field *f, const qtarget *t,
                                vigil_error *err) {
    qact *x = &q->acts[t->x], *y = &q->acts[t->y];
    char dq[1024], s[1024], z[1024], qn[1024];
    snprintf(dq, sizeof dq, "%s/vigil_dq", x->name);
    if (!x->emitted) { /* first reader of x: quantize it here */
        emit_qdq(q, g, x, x->name, dq);
        x->emitted = 1;
    }
    const onnx_tensor *params[2] = {t->w, t->b};
    for (int k = 0; k < 2 && params[k]; k++) {
        const char *nm = params[k]->name;
        snprintf(s, sizeof s, "%s/vigil_s", nm);
        snprintf(z, sizeof z, "%s/vigil_z", nm);
        snprintf(qn, sizeof qn, "%s/vigil_q", nm);
        snprintf(dq, sizeof dq, "%s/vigil_dq", nm);
        qb_node(g, "DequantizeLinear", 3, (const char *[]){qn, s, z}, dq, 0);
    }
    vigil_status st = emit_conv(q, g, r, f, t, err);
    if (st != VIGIL_OK) return st;
    /* y: quantized right after the Conv, the DequantizeLinear giving back its
     * name, so that every reader (a quantized Conv among them) sees it */
    char raw[1024];
    snprintf(raw, sizeof raw, "%s/vigil_raw", y->name);
    emit_qdq(q, g, y, raw, y->name);
    y->emitted = y->self_dq = 1;
    return VIGIL_OK;
}

/* A node whose outputs are quantized where they are made (find_chain):
 * copied with those outputs renamed "<name>/vigil_raw", then
 * QuantizeLinear -> DequantizeLinear back to each name. */
static vigil_status emit_producer(quantizer *q, qbuf *g, const wire_reader *r, const wire_field *f, int node,
                                  vigil_error *err) {
    wire_reader nr = wire_sub(r, f, "NodeProto");
    qbuf out = {0};
    wire_field nf;
    int rc, k = 0;
    const onnx_node *n = &q->m->nodes[node];
    while ((rc = wire_next(&nr, &nf, err)) > 0) {
        int a = nf.number == 2 && (size_t)k < n->n_outputs ? produced_act(q, n->outputs[k++]) : -1;
        if (a >= 0 && q->acts[a].producer == node)
            qb_str(&out, 2, derived(q, q->acts[a].name, "raw"));
        else
            qb_copy(&out, &nr, &nf, nr.pos);
    }
    if (rc < 0) {
        vigil_free(out.data);
        return (vigil_status)rc;
    }
    qb_msg(g, 1, &out);
    char raw[1024];
    for (size_t i = 0; i < n->n_outputs; i++) {
        int a = produced_act(q, n->outputs[i]);
        if (a < 0 || q->acts[a].producer != node) continue;
        snprintf(raw, sizeof raw, "%s/vigil_raw", q->acts[a].name);
        emit_qdq(q, g, &q->acts[a], raw, q->acts[a].name);
        q->acts[a].emitted = q->acts[a].self_dq = 1;
    }
    return VIGIL_OK;
}

/* Whether node i makes a tensor find_chain quantizes. */
static int is_producer(const quantizer *q, int node) {
    for (int i = 0; i < q->n_acts; i++)
        if (q->acts[i].producer == node) return 1;
    return 0;
}

/* The string field `number` of the message in f (a name), or "". */
static void sub_string(const wire_reader *r, const wire_field *f, uint32_t number, char *out, size_t size) {
    wire_reader sr = wire_sub(r, f, "name");
    wire_field sf;
    vigil_error ignored;
    out[0] = 0;
    while (wire_next(&sr, &sf, &ignored) > 0)
        if (sf.number == number && sf.type == WIRE_LEN) {
            size_t n = sf.len < size - 1 ? sf.len : size - 1;
            memcpy(out, r->base + sf.start, n);
            out[n] = 0;
            return;
        }
}

/* Whether initializer `name` is read only as the weights or bias of
 * quantized convolutions (then its float32 copy is dropped). */
static int replaced(const quantizer *q, const char *name) {
    int uses = 0, as_param = 0;
    for (size_t i = 0; i < q->m->n_nodes; i++)
        for (size_t k = 0; k < q->m->nodes[i].n_inputs; k++)
            uses += strcmp(q->m->nodes[i].inputs[k], name) == 0;
    for (int t = 0; t < q->n_targets; t++)
        as_param +=
            strcmp(q->targets[t].w->name, name) == 0 || (q->targets[t].b && strcmp(q->targets[t].b->name, name) == 0);
    return as_param > 0 && as_param == uses;
}

static vigil_status rewrite_graph(quantizer *q, const wire_reader *mr, const wire_field *gf, qbuf *out,
                                  vigil_error *err) {
    wire_reader r = wire_sub(mr, gf, "GraphProto");
    qbuf g = {0};
    wire_field f;
    int rc, node = 0, next = 0;
    vigil_status st = VIGIL_OK;
    char name[1024];
    while (st == VIGIL_OK && (rc = wire_next(&r, &f, err)) > 0) {
        int skip = 0;
        if (f.number == 1 && f.type == WIRE_LEN) {
            if (next < q->n_targets && q->targets[next].node == node) {
                st = emit_target(q, &g, &r, &f, &q->targets[next++], err);
                skip = 1;
            } else if (is_producer(q, node)) {
                st = emit_producer(q, &g, &r, &f, node, err);
                skip = 1;
            }
            node++;
        } else if ((f.number == 5 || f.number == 11) && f.type == WIRE_LEN) { /* initializer, input */
            sub_string(&r, &f, f.number == 5 ? 8 : 1, name, sizeof name);
            skip = replaced(q, name);
        }
        if (!skip) qb_copy(&g, &r, &f, r.pos);
    }
    if (st == VIGIL_OK && rc < 0) st = (vigil_status)rc;
    for (int i = 0; st == VIGIL_OK && i < q->n_acts; i++)
        if (q->acts[i].emitted) emit_act_params(q, &g, &q->acts[i]);
    for (int t = 0; st == VIGIL_OK && t < q->n_targets; t++)
        st = emit_weights(q, &g, &q->targets[t], err);
    if (st == VIGIL_OK && g.failed) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory writing the model");
    if (st != VIGIL_OK) {
        vigil_free(g.data);
        return st;
    }
    qb_msg(out, 7, &g);
    return VIGIL_OK;
}

static vigil_status read_whole(const char *path, uint8_t **buf, size_t *size, vigil_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_IO, "%s: cannot open", path);
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    *buf = n >= 0 ? vigil_malloc((size_t)n + 1) : NULL;
    int ok = *buf && fseek(f, 0, SEEK_SET) == 0 && fread(*buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) {
        vigil_free(*buf);
        return vigil_error_set(err, VIGIL_ERR_IO, "%s: cannot read", path);
    }
    *size = (size_t)n;
    return VIGIL_OK;
}

static vigil_status write_whole(const char *path, const qbuf *b, vigil_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_IO, "%s: cannot create", path);
    int ok = fwrite(b->data, 1, b->len, f) == b->len;
    ok = fclose(f) == 0 && ok;
    return ok ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_IO, "%s: write failed", path);
}

static vigil_status quantize_loaded(quantizer *q, vigil_model *model, const char *in_path, const char *out_path,
                                    const vigil_tensor *inputs, size_t n_inputs, vigil_error *err) {
    if (model->onnx->opset < 13)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                               "opset %lld: per-channel quantization needs opset 13 or later",
                               (long long)model->onnx->opset);
    if (model->n_inputs != 1 || n_inputs == 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "needs a model of one input and calibration inputs");
    vigil_status st = find_targets(q, err);
    if (st == VIGIL_OK) st = calibrate(q, model, inputs, n_inputs, err);
    if (st != VIGIL_OK) return st;
    if (q->minmax) share_ranges(q); /* (else done between the calibration passes) */
    for (int i = 0; i < q->n_acts; i++) { /* each group's histogram: the sum of its members' */
        qact *a = &q->acts[i], *r = &q->acts[act_root(q, i)];
        for (int b = 0; a != r && a->hist && r->hist && b < HIST_BINS; b++)
            r->hist[b] += a->hist[b];
    }
    for (int i = 0; i < q->n_acts; i++)
        if (act_root(q, i) == i) act_params(&q->acts[i], q->int8_activations);
    for (int i = 0; i < q->n_acts; i++) {
        q->acts[i].scale = q->acts[act_root(q, i)].scale;
        q->acts[i].zero_point = q->acts[act_root(q, i)].zero_point;
    }
    uint8_t *buf = NULL;
    size_t size = 0;
    st = read_whole(in_path, &buf, &size, err);
    qbuf out = {0};
    wire_reader r;
    wire_field f;
    int rc = 0;
    if (st == VIGIL_OK) wire_init(&r, buf, 0, size, "ModelProto");
    while (st == VIGIL_OK && (rc = wire_next(&r, &f, err)) > 0) {
        if (f.number == 7 && f.type == WIRE_LEN)
            st = rewrite_graph(q, &r, &f, &out, err);
        else
            qb_copy(&out, &r, &f, r.pos);
    }
    if (st == VIGIL_OK && rc < 0) st = (vigil_status)rc;
    if (st == VIGIL_OK && out.failed) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory writing the model");
    if (st == VIGIL_OK) st = write_whole(out_path, &out, err);
    vigil_free(out.data);
    vigil_free(buf);
    return st;
}

vigil_status vigil_model_quantize(vigil_engine *engine, const char *in_path, const char *out_path,
                                  const vigil_tensor *inputs, size_t n_inputs, unsigned flags, vigil_error *err) {
    if (!engine || !in_path || !out_path || (n_inputs && !inputs))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model_quantize: NULL argument");
    vigil_model *model = NULL;
    vigil_status st = vigil_model_load(engine, in_path, &model, err);
    if (st != VIGIL_OK) return st;
    quantizer q = {.m = model->onnx,
                   .int8_activations = (flags & VIGIL_QUANTIZE_INT8_ACTIVATIONS) != 0,
                   .minmax = (flags & VIGIL_QUANTIZE_MINMAX) != 0,
                   .chain = (flags & VIGIL_QUANTIZE_CHAIN) != 0};
    st = quantize_loaded(&q, model, in_path, out_path, inputs, n_inputs, err);
    vigil_free(q.targets);
    for (int i = 0; q.acts && i < q.n_acts; i++) {
        vigil_free(q.acts[i].sum);
        vigil_free(q.acts[i].hist);
    }
    vigil_free(q.acts);
    vigil_model_free(model);
    return st;
}
