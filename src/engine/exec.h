/*
 * exec.h - steps (one prepared operator each) and the plan that runs them.
 *
 * A step is created by an op's prepare function from an op_ctx whose tensors
 * carry their final data pointers; running it touches no allocator.  The same
 * path evaluates constant subgraphs at compile time (exec_run_once).
 */
#ifndef VIGIL_ENGINE_EXEC_H
#define VIGIL_ENGINE_EXEC_H

#include "engine/engine_internal.h"

/* Copies ctx's tensors into s, then calls op->prepare.  On failure s is
 * released. */
vigil_status exec_prepare_step(const op_def *op, op_ctx *ctx, step *s, vigil_error *err);
/* Prepares, runs and releases one step (constant folding). */
vigil_status exec_run_once(const op_def *op, op_ctx *ctx, vigil_error *err);
/* Deletes the step's XNNPACK operators and state; leaves s zeroed. */
void step_release(step *s);

/* plan.c: memory planning over the step order.  Sets every runtime value's
 * offset and returns the arena size in *arena_bytes. */
vigil_status plan_memory(graph *g, const int *order, int n_order, size_t *arena_bytes, vigil_error *err);

/* ---- the public handles (private layout) ---- */

struct vigil_model {
    vigil_engine *engine;
    onnx_model *onnx;
    vigil_tensor_info *inputs;
    size_t n_inputs;
    vigil_tensor_info *outputs;
    size_t n_outputs;
    int64_t native_batch; /* 0 = symbolic */
};

struct vigil_plan {
    vigil_model *model;
    int64_t batch;   /* what the caller runs */
    int64_t repeats; /* runs of the compiled graph per call (fixed-batch models) */
    graph *g;
    step *steps;
    int n_steps;
    uint8_t *arena;
    size_t arena_bytes;
    struct vigil_arena *shared; /* arena's owner when not the plan (vigil_plan_create_in) */
    int lane;                   /* the plan's lane on shared (instance.c) */
    int reserve;                /* activation strides the plan takes (a split's part 0: all parts') */
    void *scratch;
    size_t scratch_bytes;
    /* per graph input: the step that reads it straight from the caller's
     * buffer (its only consumer, a layout conversion), or -1: copied in */
    int *direct_step;
    vigil_tensor *outputs; /* what vigil_plan_output returns */
    /* staged: the outputs are copies that the run writes (repeats > 1, a
     * split or a capped batch), into the staging buffer of stage_on when
     * the plan has an arena, else into output_copies (per output, its own);
     * a parent plan points a staged child's outputs into its own instead */
    int staged;
    struct vigil_arena *stage_on;
    void **output_copies;
    double flops;
    /* adaptive parallelism (exec.c): smoothed run time with the pool [0] and
     * on the calling thread alone [1], runs so far, mode of the last run */
    double run_ms[2];
    uint64_t runs;
    int serial;
    int probing;          /* this run tries the other mode */
    int serial_only;      /* a part of a split batch: never uses the pool */
    /* a batch split across the pool's threads: n_parts plans of batch /
     * n_parts, each run on one thread; g is NULL then */
    struct vigil_plan **parts;
    int n_parts;
    /* a batch above the engine's batch_cap: chunk_runs runs of chunk (a plan
     * of the cap), then one of rest (the remainder, or NULL), one after
     * another on consecutive slices; own: their arena when the caller gave
     * none, so that the two share one copy of the weights */
    struct vigil_plan *chunk, *rest;
    int64_t chunk_runs;
    struct vigil_arena *own;
    uint64_t probe_gap;   /* runs between probes */
    uint64_t next_probe;  /* run number of the next probe */
};

/* Validates every node of m against the op table (opset, attributes). */
vigil_status exec_validate(const onnx_model *m, vigil_error *err);
/* Builds, infers and optimises m's graph for a compile batch (no kernels);
 * float16_xnnpack: a float16 model's NHWC convolutions and their neighbours
 * get float16 tensors (passes_float16). */
vigil_status exec_compile_graph(const onnx_model *m, int64_t batch, int float16_xnnpack, graph **out, vigil_error *err);

#endif
