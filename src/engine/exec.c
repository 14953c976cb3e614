/*
 * exec.c - compiling a model into a plan and running it.
 *
 * vigil_plan_create: graph_build -> shape_infer (with constant folding) ->
 * passes_run (fusions, dead nodes) -> passes_layout (NHWC/ONNX, conversions,
 * order) -> plan_memory (one arena) -> one step per node, prepared with its
 * final pointers.  vigil_plan_run copies the inputs into their arena slots,
 * runs the steps and exposes the outputs.  A model with a fixed batch smaller
 * than the requested one is compiled at its own batch and run `repeats` times
 * per call, item by item.
 *
 * Adaptive parallelism: XNNPACK's operators take the thread pool at run time,
 * so a plan can run any step on the pool or on the calling thread alone.  On
 * an oversubscribed machine every pool dispatch waits for a worker that the
 * scheduler has parked (a YOLO run has ~130 dispatches), and running alone is
 * then several times faster.  The plan therefore times its runs in both modes
 * (alternating for the first runs, then re-probing the other mode now and
 * then) and uses the faster; the configured thread count stays the upper
 * bound.  A probe costs a slow run, so the gap between probes doubles (16 to
 * 256 runs) while they keep confirming the choice and falls back to 16 when
 * one changes it; the mode in use is timed on every run, so it is dropped as
 * soon as it gets slower than the other's last time.
 *
 * Batches split across threads: a batch of B on T pool threads (B a multiple
 * of T) compiles T plans of B/T that each run on one thread, concurrently,
 * instead of one plan whose every operator is split T ways.  On a small
 * machine one thread runs YOLO's convolutions near XNNPACK's peak while T
 * threads on one small layer do not, so whole items per thread are the
 * better use of the cores (yolov8n at batch 4 on 2 threads: 176 -> 156 ms
 * here).  The split plan probes like any other: its parts in parallel, or
 * one after another on the calling thread.  Its cost: parts run at once, so
 * each has its own XNNPACK operators, and with them a packed copy of the
 * weights (one per lane on an arena, instance.c: yolov8n 12.8 MB plus its
 * indirection buffers, about 28 MB resident in all).  It paid here (about
 * 12% faster at even batches on 2 threads), so batches split, across at
 * most PLAN_SPLIT_MAX threads to bound the copies.
 *
 * Batches above the engine's batch_cap (plan_capped): a plan of the cap run
 * on consecutive slices, then one of the remainder, so activations and
 * indirection buffers follow the cap, not the batch.  On a CPU a compiled
 * batch stops paying once every thread has a whole item (yolov8n, one
 * thread: 0.84 s of CPU for batch 8 compiled whole, 0.80 s as 4 runs of 2),
 * so the default cap is the thread count, at least 2, and a chunk of the cap
 * still splits across the threads.
 */
#include <stdio.h>
#include <string.h>

#define PLAN_SPLIT_MAX 4         /* threads a batch splits across, at most: each part holds a copy of the weights */
#define PLAN_SPLIT_MAX_INPUTS 16 /* inputs of a model whose batches split */
#include <xnnpack.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "engine/exec.h"

void step_release(step *s) {
    if (s->shared) s->xop[0] = NULL; /* the arena's */
    for (int i = 0; i < 4; i++)
        if (s->xop[i]) xnn_delete_operator((xnn_operator_t)s->xop[i]);
    if (s->destroy) s->destroy(s);
    vigil_free(s->state);
    vigil_free(s->in);
    memset(s, 0, sizeof *s);
}

vigil_status exec_prepare_step(const op_def *op, op_ctx *ctx, step *s, vigil_error *err) {
    memset(s, 0, sizeof *s);
    s->name = ctx->name;
    s->op = op->name;
    s->n_in = ctx->n_in;
    s->n_out = ctx->n_out;
    s->in = vigil_calloc((size_t)(ctx->n_in + ctx->n_out) + 1, sizeof(op_tensor));
    if (!s->in) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    s->out = s->in + ctx->n_in;
    memcpy(s->in, ctx->in, (size_t)ctx->n_in * sizeof(op_tensor));
    memcpy(s->out, ctx->out, (size_t)ctx->n_out * sizeof(op_tensor));
    s->pool = ctx->pool;
    s->setup_pool = ctx->pool;
    s->scratch = ctx->scratch;
    ctx->step = s;
    vigil_status st = op->prepare(ctx, err);
    if (st == VIGIL_OK && !s->run) st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "op %s prepared no step", op->name);
    if (st == VIGIL_OK && s->setup) {
        st = s->setup(s, err);
        if (st != VIGIL_OK) vigil_error_prefix(err, "node '%s' (%s)", s->name ? s->name : "", op->name);
        else if (s->shared) {
            s->shared->setup_id = s->setup_id;
            s->shared->setups++;
        }
    }
    if (st != VIGIL_OK) {
        step_release(s);
        return st;
    }
    if (op->flops) s->flops = op->flops(ctx);
    return VIGIL_OK;
}

vigil_status exec_run_once(const op_def *op, op_ctx *ctx, vigil_error *err) {
    step s;
    void *scratch = NULL;
    if (op->scratch_bytes) {
        size_t n = op->scratch_bytes(ctx);
        if (n) {
            scratch = vigil_aligned_alloc(ENGINE_ALIGN, n + ENGINE_BUFFER_PAD);
            if (!scratch) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        }
    }
    ctx->scratch = scratch;
    vigil_status st = exec_prepare_step(op, ctx, &s, err);
    if (st == VIGIL_OK) {
        st = s.run(&s, err);
        step_release(&s);
    }
    vigil_free(scratch);
    return st;
}

vigil_status exec_compile_graph(const onnx_model *m, int64_t batch, int float16_xnnpack, graph **out,
                                vigil_error *err) {
    graph *g;
    vigil_status st = graph_build(m, batch, &g, err);
    if (st != VIGIL_OK) return st;
    st = shape_infer(g, err);
    if (st == VIGIL_OK) st = passes_run(g, err);
    if (st == VIGIL_OK) st = passes_layout(g, err);
    if (st == VIGIL_OK) passes_fold_transposes(g);
    if (st == VIGIL_OK && float16_xnnpack) st = passes_float16(g, err);
    if (st != VIGIL_OK) {
        graph_free(g);
        return st;
    }
    *out = g;
    return VIGIL_OK;
}

/* Physical view of value v: N,H,W,C for NHWC values. */
static void physical(const gvalue *v, op_tensor *t) {
    memset(t, 0, sizeof *t);
    t->present = 1;
    t->dtype = v->dtype;
    t->ndim = v->ndim;
    if (v->nhwc) {
        t->dims[0] = v->dims[0];
        t->dims[1] = v->dims[2];
        t->dims[2] = v->dims[3];
        t->dims[3] = v->dims[1];
    } else {
        memcpy(t->dims, v->dims, sizeof v->dims);
    }
    t->data = v->data;
    t->is_const = v->cdata != NULL;
}

static void ctx_for_node(vigil_plan *p, int node, op_ctx *ctx, op_tensor *buf) {
    graph *g = p->g;
    gnode *n = &g->nodes[node];
    memset(ctx, 0, sizeof *ctx);
    ctx->node = n->src;
    ctx->name = n->name;
    ctx->opset = g->opset;
    ctx->n_in = n->n_in;
    ctx->n_out = n->n_out;
    ctx->in = buf;
    ctx->out = buf + n->n_in;
    ctx->nhwc = n->nhwc;
    ctx->act = n->act;
    ctx->act_min = n->act_min;
    ctx->act_max = n->act_max;
    ctx->graph = g;
    ctx->pool = p->model->engine->pool;
    ctx->scratch = p->scratch;
    ctx->instance = p->shared;
    ctx->lane = p->lane;
    ctx->portable = p->model->engine->portable_kernels;
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] < 0)
            memset(&ctx->in[k], 0, sizeof ctx->in[k]);
        else
            physical(&g->values[n->in[k]], &ctx->in[k]);
    }
    if (n->view_ndim) {
        ctx->in[0].ndim = n->view_ndim;
        memcpy(ctx->in[0].dims, n->view_dims, sizeof n->view_dims);
        ctx->perm = n->perm;
    }
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) {
            memset(&ctx->out[k], 0, sizeof ctx->out[k]);
            ctx->out[k].ndim = -1;
        } else {
            physical(&g->values[n->out[k]], &ctx->out[k]);
        }
    }
}

static int max_io(const graph *g) {
    int m = 1;
    for (int i = 0; i < g->n_order; i++) {
        const gnode *n = &g->nodes[g->order[i]];
        if (n->n_in + n->n_out > m) m = n->n_in + n->n_out;
    }
    return m;
}

static vigil_status plan_buffers(vigil_plan *p, vigil_arena *shared, vigil_error *err) {
    graph *g = p->g;
    vigil_status st = plan_memory(g, g->order, g->n_order, &p->arena_bytes, err);
    if (st != VIGIL_OK) return st;
    size_t bytes = p->arena_bytes ? p->arena_bytes : ENGINE_ALIGN;
    if (shared) {
        /* Part k of a split batch works at k strides into the arena (the
         * parts run at once; their plans are equal, so are their sizes), and
         * part 0 reserves room for all of them, so that a split plan needs
         * no more than a whole plan of its batch. */
        size_t stride = (bytes + ENGINE_ALIGN - 1) / ENGINE_ALIGN * ENGINE_ALIGN;
        size_t offset = stride * (size_t)p->lane;
        uint8_t *base = NULL;
        st = arena_take(shared, p->model, offset, p->lane == 0 ? stride * (size_t)p->reserve : stride, &base, err);
        if (st) return st;
        p->shared = shared;
        p->arena = base + offset;
    } else {
        p->arena = vigil_aligned_alloc(ENGINE_ALIGN, bytes);
    }
    if (!p->arena) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory (activation arena)");
    for (int v = 0; v < g->n_values; v++) {
        gvalue *val = &g->values[v];
        if (val->cdata)
            val->data = val->cdata;
        else if (val->first != -2)
            val->data = p->arena + val->offset;
        else
            val->data = NULL;
    }
    op_tensor *buf = vigil_calloc((size_t)max_io(g), sizeof *buf);
    if (!buf) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < g->n_order; i++) {
        const gnode *n = &g->nodes[g->order[i]];
        if (!n->op->scratch_bytes) continue;
        op_ctx ctx;
        ctx_for_node(p, g->order[i], &ctx, buf);
        size_t need = n->op->scratch_bytes(&ctx);
        if (need > p->scratch_bytes) p->scratch_bytes = need;
    }
    vigil_free(buf);
    if (p->scratch_bytes) {
        p->scratch = vigil_aligned_alloc(ENGINE_ALIGN, p->scratch_bytes + ENGINE_BUFFER_PAD);
        if (!p->scratch) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory (scratch)");
    }
    return VIGIL_OK;
}

static vigil_status plan_steps(vigil_plan *p, vigil_error *err) {
    graph *g = p->g;
    p->steps = vigil_calloc((size_t)g->n_order + 1, sizeof(step));
    op_tensor *buf = vigil_calloc((size_t)max_io(g), sizeof *buf);
    if (!p->steps || !buf) {
        vigil_free(buf);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    vigil_status st = VIGIL_OK;
    for (int i = 0; i < g->n_order && st == VIGIL_OK; i++) {
        op_ctx ctx;
        ctx_for_node(p, g->order[i], &ctx, buf);
        st = exec_prepare_step(g->nodes[g->order[i]].op, &ctx, &p->steps[i], err);
        if (st == VIGIL_OK) {
            p->n_steps++;
            p->flops += p->steps[i].flops;
        }
    }
    vigil_free(buf);
    return st;
}

/* An input whose only reader is a vigil.ToNHWC (or vigil.F16ToF32) step is converted straight
 * from the caller's buffer: no copy into the arena first (for an image batch
 * that copy is a pass over many megabytes, most of them out of cache). */
static vigil_status plan_direct_inputs(vigil_plan *p, vigil_error *err) {
    graph *g = p->g;
    p->direct_step = vigil_calloc((size_t)g->n_inputs + 1, sizeof *p->direct_step);
    if (!p->direct_step) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < g->n_inputs; i++) {
        int value = g->inputs[i], readers = 0, reader = -1;
        for (int v = 0; v < g->n_values; v++) readers += g->values[v].alias_of == value;
        for (int k = 0; k < g->n_outputs; k++) readers += g->outputs[k] == value;
        for (int s = 0; s < p->n_steps; s++) {
            const gnode *n = &g->nodes[g->order[s]];
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] == value) {
                    readers++;
                    reader = j == 0 && (strcmp(n->op->name, "vigil.ToNHWC") == 0 ||
                                        strcmp(n->op->name, "vigil.F16ToF32") == 0)
                                 ? s
                                 : -1;
                }
        }
        p->direct_step[i] = readers == 1 ? reader : -1;
    }
    return VIGIL_OK;
}

/* Marks p's outputs (their shapes set) as copies that its run writes: into
 * arena's staging buffer at run time, or, without an arena, into buffers of
 * p's own allocated here. */
static vigil_status plan_stage(vigil_plan *p, struct vigil_arena *arena, vigil_error *err) {
    p->staged = 1;
    p->stage_on = arena;
    if (arena) return VIGIL_OK;
    for (size_t i = 0; i < p->model->n_outputs; i++) {
        vigil_tensor *t = &p->outputs[i];
        p->output_copies[i] = vigil_aligned_alloc(ENGINE_ALIGN, tensor_bytes(t->dtype, t->ndim, t->dims) + 1);
        if (!p->output_copies[i]) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        t->data = p->output_copies[i];
    }
    return VIGIL_OK;
}

/* Points a staged plan's outputs at the arena's staging buffer for this run
 * (plans with their own copies already point at them). */
static vigil_status plan_stage_run(vigil_plan *p, vigil_error *err) {
    if (!p->stage_on) return VIGIL_OK;
    size_t n_out = p->model->n_outputs, total = 0;
    for (size_t i = 0; i < n_out; i++) {
        const vigil_tensor *t = &p->outputs[i];
        total += (tensor_bytes(t->dtype, t->ndim, t->dims) + ENGINE_ALIGN) / ENGINE_ALIGN * ENGINE_ALIGN;
    }
    uint8_t *base = arena_staging(p->stage_on, total ? total : 1);
    if (!base) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory (output staging)");
    for (size_t i = 0; i < n_out; i++) {
        vigil_tensor *t = &p->outputs[i];
        t->data = base;
        base += (tensor_bytes(t->dtype, t->ndim, t->dims) + ENGINE_ALIGN) / ENGINE_ALIGN * ENGINE_ALIGN;
    }
    return VIGIL_OK;
}

static vigil_status plan_outputs(vigil_plan *p, vigil_error *err) {
    graph *g = p->g;
    p->outputs = vigil_calloc((size_t)g->n_outputs + 1, sizeof(vigil_tensor));
    p->output_copies = vigil_calloc((size_t)g->n_outputs + 1, sizeof(void *));
    if (!p->outputs || !p->output_copies) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < g->n_outputs; i++) {
        const gvalue *v = &g->values[g->outputs[i]];
        vigil_tensor *t = &p->outputs[i];
        t->dtype = v->dtype;
        t->ndim = v->ndim;
        memcpy(t->dims, v->dims, sizeof v->dims);
        t->data = v->data;
        if (p->repeats > 1) t->dims[0] *= p->repeats;
    }
    if (p->repeats > 1) return plan_stage(p, p->shared, err);
    return VIGIL_OK;
}

vigil_status vigil_plan_create(vigil_model *model, int64_t batch, vigil_plan **out, vigil_error *err) {
    return vigil_plan_create_in(model, batch, NULL, out, err);
}

static vigil_status plan_compile(vigil_model *model, int64_t batch, vigil_arena *arena, int part, int n_parts,
                                 vigil_plan **out, vigil_error *err);

/* A batch splits across the pool when every thread gets whole parts and
 * every input and output has a batch dimension to split and join along. */
static int plan_splits(const vigil_model *model, int64_t batch, int threads) {
    if (threads < 2 || threads > PLAN_SPLIT_MAX || batch < threads || batch % threads != 0) return 0;
    if (model->n_inputs > PLAN_SPLIT_MAX_INPUTS) return 0;
    int64_t part = batch / threads;
    if (model->native_batch > 0 && part % model->native_batch != 0) return 0;
    for (size_t i = 0; i < model->n_inputs; i++)
        if (model->inputs[i].ndim < 1 || (model->inputs[i].dims[0] >= 0 && model->native_batch == 0)) return 0;
    for (size_t i = 0; i < model->n_outputs; i++)
        if (model->outputs[i].ndim < 1) return 0;
    return 1;
}

/* Data parallelism for batches: a batch of B on T threads as T plans of
 * B/T, one per thread, instead of one plan whose every operator is split T
 * ways. */
static vigil_status plan_split(vigil_model *model, int64_t batch, int threads, vigil_arena *arena, vigil_plan **out,
                               vigil_error *err) {
    vigil_plan *p = vigil_calloc(1, sizeof *p);
    if (!p) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    p->model = model;
    p->batch = batch;
    p->repeats = 1;
    p->parts = vigil_calloc((size_t)threads, sizeof *p->parts);
    p->outputs = vigil_calloc(model->n_outputs + 1, sizeof(vigil_tensor));
    p->output_copies = vigil_calloc(model->n_outputs + 1, sizeof(void *));
    vigil_status st = p->parts && p->outputs && p->output_copies
                          ? VIGIL_OK
                          : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int k = 0; k < threads && !st; k++) {
        st = plan_compile(model, batch / threads, arena, k, threads, &p->parts[k], err);
        if (!st) p->n_parts++;
    }
    for (size_t i = 0; i < model->n_outputs && !st; i++) {
        const vigil_tensor *part = vigil_plan_output(p->parts[0], i);
        vigil_tensor *t = &p->outputs[i];
        *t = *part;
        t->dims[0] *= threads;
    }
    if (!st) st = plan_stage(p, arena, err);
    for (int k = 0; k < p->n_parts; k++) {
        p->flops += p->parts[k]->flops;
        p->arena_bytes += p->parts[k]->arena_bytes;
        p->scratch_bytes += p->parts[k]->scratch_bytes;
    }
    if (st) {
        vigil_plan_destroy(p);
        return st;
    }
    *out = p;
    return VIGIL_OK;
}

/* Whether a batch of model can be cut into slices along dimension 0: every
 * input's batch dimension symbolic, every output with one to join along. */
static int plan_slices(const vigil_model *model) {
    if (model->native_batch != 0 || model->n_inputs > PLAN_SPLIT_MAX_INPUTS) return 0;
    for (size_t i = 0; i < model->n_inputs; i++)
        if (model->inputs[i].ndim < 1 || model->inputs[i].dims[0] >= 0) return 0;
    for (size_t i = 0; i < model->n_outputs; i++)
        if (model->outputs[i].ndim < 1) return 0;
    return 1;
}

/* The arena's plan of model for batch, shared, or a new one kept there. */
static vigil_status plan_piece(vigil_model *model, int64_t batch, vigil_arena *arena, vigil_plan **out,
                               vigil_error *err) {
    *out = arena_piece_get(arena, model, batch);
    if (*out) return VIGIL_OK;
    vigil_status st = vigil_plan_create_in(model, batch, arena, out, err);
    if (!st) arena_piece_keep(arena, *out);
    return st;
}

/* A batch above the engine's cap: runs of a plan of the cap, one after
 * another on consecutive slices, and one of the remainder.  Activations (and
 * the split's indirection buffers) follow the cap, not the batch; the
 * outputs are staged on the arena, which a staged chunk writes into
 * directly. */
static vigil_status plan_capped(vigil_model *model, int64_t batch, int64_t cap, vigil_arena *arena,
                                vigil_plan **out, vigil_error *err) {
    vigil_plan *p = vigil_calloc(1, sizeof *p);
    if (!p) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    p->model = model;
    p->batch = batch;
    p->repeats = 1;
    p->chunk_runs = batch / cap;
    p->outputs = vigil_calloc(model->n_outputs + 1, sizeof(vigil_tensor));
    p->output_copies = vigil_calloc(model->n_outputs + 1, sizeof(void *));
    vigil_status st = p->outputs && p->output_copies ? VIGIL_OK
                                                     : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (!st && !arena) {
        st = vigil_arena_create(&p->own, err);
        arena = p->own;
    }
    p->stage_on = arena; /* where the pieces below go back when p is destroyed */
    /* the larger plan first: the arena grows for it, the remainder fits;
     * both are shared with the arena's other capped plans */
    if (!st) st = plan_piece(model, cap, arena, &p->chunk, err);
    if (!st && batch % cap) st = plan_piece(model, batch % cap, arena, &p->rest, err);
    for (size_t i = 0; i < model->n_outputs && !st; i++) {
        vigil_tensor *t = &p->outputs[i];
        *t = *vigil_plan_output(p->chunk, i);
        t->dims[0] = t->dims[0] / cap * batch;
        t->data = NULL;
    }
    if (!st) st = plan_stage(p, arena, err);
    if (st) {
        vigil_plan_destroy(p);
        return st;
    }
    p->flops = p->chunk->flops * (double)p->chunk_runs + (p->rest ? p->rest->flops : 0.0);
    p->arena_bytes = p->chunk->arena_bytes;
    p->scratch_bytes = p->chunk->scratch_bytes;
    *out = p;
    return VIGIL_OK;
}

vigil_status vigil_plan_create_in(vigil_model *model, int64_t batch, vigil_arena *arena, vigil_plan **out,
                                  vigil_error *err) {
    if (model && out && batch > model->engine->batch_cap && plan_slices(model))
        return plan_capped(model, batch, model->engine->batch_cap, arena, out, err);
    if (model && out && plan_splits(model, batch, model->engine->pool ? model->engine->threads : 1))
        return plan_split(model, batch, model->engine->threads, arena, out, err);
    return plan_compile(model, batch, arena, -1, 1, out, err);
}

/* part: which of n_parts of a split batch the plan is (its lane on the
 * arena, and it never uses the pool), or -1 for a whole batch (lane 0). */
static vigil_status plan_compile(vigil_model *model, int64_t batch, vigil_arena *arena, int part, int n_parts,
                                 vigil_plan **out, vigil_error *err) {
    if (!model || !out || batch < 1)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "plan: need a model and a batch >= 1");
    *out = NULL;
    int64_t native = model->native_batch, compile = batch, repeats = 1;
    if (native > 0 && batch != native) {
        if (batch % native != 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "batch %lld is not a multiple of the model's fixed batch %lld", (long long)batch,
                                   (long long)native);
        compile = native;
        repeats = batch / native;
        for (size_t i = 0; i < model->n_inputs; i++)
            if (model->inputs[i].ndim < 1 || model->inputs[i].dims[0] != native)
                return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                                       "input '%s' has no batch dimension: the model runs only at batch %lld",
                                       model->inputs[i].name, (long long)native);
    }
    vigil_plan *p = vigil_calloc(1, sizeof *p);
    if (!p) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    p->model = model;
    p->batch = batch;
    p->repeats = repeats;
    p->serial_only = part >= 0;
    p->lane = part >= 0 ? part : 0;
    p->reserve = part >= 0 ? n_parts : 1;
    vigil_status st = exec_compile_graph(model->onnx, compile, model->engine->float16_xnnpack, &p->g, err);
    if (st == VIGIL_OK) st = plan_buffers(p, arena, err);
    if (st == VIGIL_OK) st = plan_steps(p, err);
    if (st == VIGIL_OK) st = plan_direct_inputs(p, err);
    if (st == VIGIL_OK) st = plan_outputs(p, err);
    if (st != VIGIL_OK) {
        vigil_plan_destroy(p);
        return st;
    }
    p->flops *= (double)repeats;
    *out = p;
    return VIGIL_OK;
}

void vigil_plan_destroy(vigil_plan *p) {
    if (!p) return;
    for (int k = 0; k < p->n_parts; k++) vigil_plan_destroy(p->parts[k]);
    vigil_free(p->parts);
    if (p->chunk) arena_piece_put(p->stage_on, p->chunk);
    if (p->rest) arena_piece_put(p->stage_on, p->rest);
    vigil_arena_destroy(p->own); /* after the plans on it */
    for (int i = 0; i < p->n_steps; i++)
        step_release(&p->steps[i]);
    vigil_free(p->steps);
    if (p->output_copies)
        for (size_t i = 0; i < p->model->n_outputs; i++)
            vigil_free(p->output_copies[i]);
    vigil_free(p->output_copies);
    vigil_free(p->outputs);
    vigil_free(p->direct_step);
    if (p->shared) arena_release(p->shared);
    else vigil_free(p->arena);
    vigil_free(p->scratch);
    graph_free(p->g);
    vigil_free(p);
}

static vigil_status check_input(const vigil_plan *p, size_t i, const vigil_tensor *t, vigil_error *err) {
    const gvalue *v = &p->g->values[p->g->inputs[i]];
    const char *name = p->model->inputs[i].name;
    if (t->dtype != v->dtype)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': expected %s, got %s", name,
                               vigil_dtype_name(v->dtype), vigil_dtype_name(t->dtype));
    int bad = t->ndim != v->ndim || (t->ndim > 0 && !t->data && tensor_count(v->ndim, v->dims) > 0);
    for (int d = 0; d < v->ndim && !bad; d++) {
        int64_t want = d == 0 ? v->dims[0] * p->repeats : v->dims[d];
        if (t->dims[d] != want) bad = 1;
    }
    if (bad) {
        char want[160] = "", *w = want;
        for (int d = 0; d < v->ndim; d++)
            w += snprintf(w, (size_t)(want + sizeof want - w), "%s%lld", d ? "," : "",
                          (long long)(d == 0 ? v->dims[0] * p->repeats : v->dims[d]));
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': expected shape [%s]", name, want);
    }
    return VIGIL_OK;
}

/* Lets the pool's workers sleep once a run is over instead of spinning until
 * the next request (XNNPACK's operators keep them spinning between ops, which
 * is what we want inside a run). */
static void pool_noop(void *arg, size_t i) {
    (void)arg;
    (void)i;
}

#define PROBE_FIRST_RUNS 6
#define PROBE_GAP_MIN 16
#define PROBE_GAP_MAX 256

/* Chooses this run's mode and points every step at the pool or at none. */
static void choose_mode(vigil_plan *p) {
    pthreadpool_t pool = p->serial_only ? NULL : p->model->engine->pool;
    int serial = 1;
    if (pool) {
        int best = p->run_ms[1] > 0 && p->run_ms[1] < p->run_ms[0];
        if (p->runs < PROBE_FIRST_RUNS) {
            serial = (int)(p->runs & 1);
            p->probe_gap = PROBE_GAP_MIN;
            p->next_probe = PROBE_FIRST_RUNS + PROBE_GAP_MIN;
        } else {
            p->probing = p->runs >= p->next_probe;
            serial = p->probing ? !best : best;
        }
    }
    if (serial != p->serial || p->runs == 0)
        for (int s = 0; s < p->n_steps; s++)
            p->steps[s].pool = serial ? NULL : pool;
    p->serial = serial;
}

static void record_mode(vigil_plan *p, double ms) {
    double *t = &p->run_ms[p->serial];
    *t = *t > 0 ? 0.5 * *t + 0.5 * ms : ms;
    p->runs++;
    if (!p->probing) return;
    int probe_won = (p->run_ms[p->serial] < p->run_ms[!p->serial]);
    p->probe_gap = probe_won ? PROBE_GAP_MIN : (p->probe_gap * 2 > PROBE_GAP_MAX ? PROBE_GAP_MAX : p->probe_gap * 2);
    p->next_probe = p->runs + p->probe_gap;
    p->probing = 0;
}

static vigil_status plan_run(vigil_plan *p, const vigil_tensor *inputs, size_t n_inputs, int staged_by_parent,
                             vigil_error *err);

/* Runs child (a split's part or a capped batch's chunk) on items first ..
 * first + child->batch of the parent's inputs and leaves its outputs at the
 * same items of the parent's: a staged child writes them there itself, an
 * unstaged one's are copied from its activations. */
static vigil_status run_child(const vigil_plan *parent, vigil_plan *child, const vigil_tensor *inputs,
                              size_t n_inputs, int64_t first, vigil_error *err) {
    vigil_tensor slices[PLAN_SPLIT_MAX_INPUTS];
    for (size_t i = 0; i < n_inputs; i++) {
        const vigil_tensor *t = &inputs[i];
        slices[i] = *t;
        slices[i].dims[0] = child->batch;
        size_t item = tensor_bytes(t->dtype, t->ndim, slices[i].dims) / (size_t)child->batch;
        slices[i].data = t->data ? (uint8_t *)t->data + item * (size_t)first : NULL;
    }
    size_t n_out = parent->model->n_outputs;
    for (size_t i = 0; i < n_out && child->staged; i++) {
        const vigil_tensor *o = &child->outputs[i];
        size_t item = tensor_bytes(o->dtype, o->ndim, o->dims) / (size_t)child->batch;
        child->outputs[i].data = (uint8_t *)parent->outputs[i].data + item * (size_t)first;
    }
    vigil_status st = plan_run(child, slices, n_inputs, 1, err);
    if (st || child->staged) return st;
    for (size_t i = 0; i < n_out; i++) {
        const vigil_tensor *o = &child->outputs[i];
        size_t bytes = tensor_bytes(o->dtype, o->ndim, o->dims);
        if (bytes) memcpy((uint8_t *)parent->outputs[i].data + bytes / (size_t)child->batch * (size_t)first, o->data,
                          bytes);
    }
    return VIGIL_OK;
}

typedef struct split_run {
    vigil_plan *p;
    const vigil_tensor *inputs;
    size_t n_inputs;
    vigil_status status[PLAN_SPLIT_MAX];
    vigil_error errors[PLAN_SPLIT_MAX];
} split_run;

/* One part of a split batch, on one pool thread: its slice of every input,
 * its rows of every output. */
static void split_task(void *arg, size_t k) {
    split_run *r = arg;
    vigil_plan *part = r->p->parts[k];
    r->status[k] = run_child(r->p, part, r->inputs, r->n_inputs, part->batch * (int64_t)k, &r->errors[k]);
}

static vigil_status check_batch_inputs(const vigil_plan *p, const vigil_tensor *inputs, size_t n_inputs,
                                       vigil_error *err) {
    if (n_inputs != p->model->n_inputs)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "expected %zu inputs, got %zu", p->model->n_inputs,
                               n_inputs);
    for (size_t i = 0; i < n_inputs; i++)
        if (inputs[i].ndim < 1 || inputs[i].dims[0] != p->batch)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': expected a batch of %lld",
                                   p->model->inputs[i].name, (long long)p->batch);
    return VIGIL_OK;
}

static vigil_status split_run_all(vigil_plan *p, const vigil_tensor *inputs, size_t n_inputs, vigil_error *err) {
    split_run r = {.p = p, .inputs = inputs, .n_inputs = n_inputs};
    choose_mode(p); /* the same probing as a single plan: parts in parallel, or one after another */
    double start = clock_now_ms();
    if (p->serial) {
        for (int k = 0; k < p->n_parts; k++) split_task(&r, (size_t)k);
    } else {
        /* the parts are whole runs: the workers may sleep as soon as theirs is done */
        pthreadpool_parallelize_1d(p->model->engine->pool, split_task, &r, (size_t)p->n_parts,
                                   PTHREADPOOL_FLAG_YIELD_WORKERS);
    }
    record_mode(p, clock_now_ms() - start);
    for (int k = 0; k < p->n_parts; k++)
        if (r.status[k]) {
            *err = r.errors[k];
            return r.status[k];
        }
    return VIGIL_OK;
}

/* A capped batch: its chunks one after another, then the remainder. */
static vigil_status capped_run_all(vigil_plan *p, const vigil_tensor *inputs, size_t n_inputs, vigil_error *err) {
    vigil_status st = VIGIL_OK;
    for (int64_t r = 0; r < p->chunk_runs && !st; r++)
        st = run_child(p, p->chunk, inputs, n_inputs, r * p->chunk->batch, err);
    if (!st && p->rest) st = run_child(p, p->rest, inputs, n_inputs, p->chunk_runs * p->chunk->batch, err);
    return st;
}

vigil_status vigil_plan_run(vigil_plan *p, const vigil_tensor *inputs, size_t n_inputs, vigil_error *err) {
    if (!p || (n_inputs && !inputs)) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "plan_run: NULL argument");
    return plan_run(p, inputs, n_inputs, 0, err);
}

/* staged_by_parent: a parent pointed p's staged outputs into its own. */
static vigil_status plan_run(vigil_plan *p, const vigil_tensor *inputs, size_t n_inputs, int staged_by_parent,
                             vigil_error *err) {
    if (p->staged && !staged_by_parent) {
        vigil_status st = plan_stage_run(p, err);
        if (st) return st;
    }
    if (p->parts || p->chunk) {
        vigil_status st = check_batch_inputs(p, inputs, n_inputs, err);
        if (st) return st;
        return p->parts ? split_run_all(p, inputs, n_inputs, err) : capped_run_all(p, inputs, n_inputs, err);
    }
    graph *g = p->g;
    if (n_inputs != (size_t)g->n_inputs)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "expected %d inputs, got %zu", g->n_inputs, n_inputs);
    for (size_t i = 0; i < n_inputs; i++) {
        vigil_status st = check_input(p, i, &inputs[i], err);
        if (st != VIGIL_OK) return st;
    }
    choose_mode(p);
    double start = clock_now_ms();
    for (int64_t r = 0; r < p->repeats; r++) {
        for (size_t i = 0; i < n_inputs; i++) {
            const gvalue *v = &g->values[g->inputs[i]];
            size_t bytes = tensor_bytes(v->dtype, v->ndim, v->dims);
            if (!v->data || !bytes) continue;
            const uint8_t *from = (const uint8_t *)inputs[i].data + (size_t)r * bytes;
            if (p->direct_step[i] >= 0) /* read in place; the step never writes its input */
                p->steps[p->direct_step[i]].in[0].data = (void *)(uintptr_t)from;
            else
                memcpy(v->data, from, bytes);
        }
        for (int s = 0; s < p->n_steps; s++) {
            step *x = &p->steps[s];
            vigil_status st = VIGIL_OK;
            if (x->shared && x->shared->setup_id != x->setup_id) { /* another plan set the operator up last */
                st = x->setup(x, err);
                if (st == VIGIL_OK) {
                    x->shared->setup_id = x->setup_id;
                    x->shared->setups++;
                }
            }
            if (st == VIGIL_OK) st = x->run(x, err);
            if (st != VIGIL_OK) {
                vigil_error_prefix(err, "node '%s' (%s)", p->steps[s].name, p->steps[s].op);
                return st;
            }
        }
        if (p->repeats == 1) continue;
        for (int i = 0; i < g->n_outputs; i++) {
            const gvalue *v = &g->values[g->outputs[i]];
            size_t bytes = tensor_bytes(v->dtype, v->ndim, v->dims);
            if (bytes) memcpy((uint8_t *)p->outputs[i].data + (size_t)r * bytes, v->data, bytes);
        }
    }
    record_mode(p, clock_now_ms() - start);
    pthreadpool_t pool = p->model->engine->pool;
    if (pool && !p->serial)
        pthreadpool_parallelize_1d(pool, pool_noop, NULL, pthreadpool_get_threads_count(pool),
                                   PTHREADPOOL_FLAG_YIELD_WORKERS);
    return VIGIL_OK;
}

const vigil_tensor *vigil_plan_output(const vigil_plan *p, size_t index) {
    if (!p || index >= p->model->n_outputs) return NULL;
    return &p->outputs[index];
}

int64_t vigil_plan_batch(const vigil_plan *p) {
    return p ? p->batch : 0;
}

size_t vigil_plan_peak_activation_bytes(const vigil_plan *p) {
    return p ? p->arena_bytes + p->scratch_bytes : 0;
}

size_t vigil_plan_weight_bytes(const vigil_plan *p) {
    size_t n = 0;
    if (!p) return 0;
    for (int k = 0; k < p->n_parts; k++) n += vigil_plan_weight_bytes(p->parts[k]);
    if (p->chunk) { /* the remainder's operators are the chunk's (one arena): at most its lanes */
        size_t chunk = vigil_plan_weight_bytes(p->chunk), rest = vigil_plan_weight_bytes(p->rest);
        n += chunk > rest ? chunk : rest;
    }
    for (int i = 0; i < p->n_steps; i++)
        n += p->steps[i].shared ? p->steps[i].shared->packed_bytes : p->steps[i].packed_bytes;
    return n;
}

double vigil_plan_flops(const vigil_plan *p) {
    return p ? p->flops : 0.0;
}
