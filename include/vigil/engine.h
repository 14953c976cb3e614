/*
 * vigil/engine.h - vigil's CPU inference engine: load ONNX models, compile
 * them for a batch size, run them.
 *
 * Three handles with one owner each:
 *   vigil_engine  - the thread pool and options; create one per backend instance.
 *   vigil_model   - a loaded, validated ONNX file (weights mapped from disk).
 *                   Immutable after load; may be shared by several plans.
 *   vigil_plan    - the model compiled for one batch size: shapes fixed,
 *                   passes applied, kernels created, activation memory planned.
 *                   One thread runs a plan at a time; create one per worker.
 *   vigil_arena   - one model instance's memory: the activations and the
 *                   packed weights that its plans (one per batch size) share.
 * Destroy in reverse order: plans, then arenas and models, then the engine.
 *
 * Threads: plans made from one engine share its pool; runs of different plans
 * on different threads are safe (each kernel call takes the pool in turn), so
 * give each backend instance its own engine when instances must not contend.
 * Plans are static: every shape is fixed when the plan is created (see
 * docs/OPERATORS.md for what that excludes).
 */
#ifndef VIGIL_ENGINE_H
#define VIGIL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"
#include "vigil/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* vigil_dtype, vigil_tensor, vigil_tensor_info and their byte size: vigil/tensor.h. */

typedef struct vigil_engine vigil_engine;
typedef struct vigil_model vigil_model;
typedef struct vigil_plan vigil_plan;

typedef struct vigil_engine_options {
    /* Worker threads for kernels; 0 = number of online CPUs.  An upper bound:
     * a plan that measures its runs faster on the calling thread alone (an
     * oversubscribed machine) runs there until re-probing says otherwise. */
    int threads;
    /* Largest batch one compiled graph runs, 0 = the default (the thread
     * count, at least 2).  A plan for a larger batch (of a model whose batch
     * dimension is symbolic) runs as several runs of a plan of this size,
     * each on its slice of the inputs and outputs, so activation memory
     * follows this cap, not the largest batch.  Batching gains on a CPU stop
     * once every thread has a whole item (docs/BENCHMARKS.md). */
    int batch_cap;
    /* 1: never the engine's own ISA-specific kernels (the AVX-512 VNNI int8
     * convolution, the VBMI byte lookup) even where the CPU has them, only
     * XNNPACK and the reference kernels: the path every other CPU (an ARM
     * board) takes, so that tests on an AVX-512 machine cover it too. */
    int portable_kernels;
    /* How a float16 model computes (vigil_float16_mode; 0 = AUTO). */
    int float16;
} vigil_engine_options;

/* A float16 model's arithmetic.  FP32: in float32 between the model's float16
 * boundaries (weights widened once at load, docs/OPERATORS.md).  XNNPACK:
 * XNNPACK's f16 operators (Conv, Add, MaxPool, ...) on float16 activations
 * kept float16 between them, converted at the edges of each run of them.
 * AUTO: XNNPACK where the CPU has float16 arithmetic (AVX512-FP16 on x86-64,
 * FEAT_FP16 on aarch64), else FP32: elsewhere XNNPACK emulates f16 with
 * conversions around float32 arithmetic, which only costs.  A float32 model
 * never takes the f16 path. */
typedef enum vigil_float16_mode {
    VIGIL_FLOAT16_AUTO = 0,
    VIGIL_FLOAT16_FP32 = 1,
    VIGIL_FLOAT16_XNNPACK = 2,
} vigil_float16_mode;

/* "auto", "fp32" or "xnnpack" -> *out; VIGIL_ERR_INVALID_ARGUMENT otherwise. */
vigil_status vigil_float16_mode_parse(const char *text, int *out);
/* Whether this CPU does float16 arithmetic natively (asked of the CPU once). */
int vigil_cpu_has_float16_arithmetic(void);

/* options may be NULL for defaults. */
vigil_status vigil_engine_create(const vigil_engine_options *options, vigil_engine **out, vigil_error *err);
void vigil_engine_destroy(vigil_engine *engine);
int vigil_engine_threads(const vigil_engine *engine);
/* The batch cap in effect (vigil_engine_options.batch_cap, or its default). */
int vigil_engine_batch_cap(const vigil_engine *engine);
/* Whether float16 models run on XNNPACK's f16 operators (the float16 option
 * resolved: AUTO on this CPU is FP32 or XNNPACK). */
int vigil_engine_float16_xnnpack(const vigil_engine *engine);
/* Runs task(ctx, 0) .. task(ctx, n - 1) on the engine's pool, the calling
 * thread taking part, and returns when all are done; one after another on
 * the calling thread when engine is NULL or has one thread.  For work around
 * inference (pre-processing) that would otherwise leave the pool idle. */
void vigil_engine_parallelize(vigil_engine *engine, void (*task)(void *ctx, size_t index), void *ctx, size_t n);

/* Loads and validates path.  Every node is checked: an unsupported operator,
 * attribute or opset is VIGIL_ERR_UNSUPPORTED with a message naming the node,
 * the operator and what is missing. */
vigil_status vigil_model_load(vigil_engine *engine, const char *path, vigil_model **out, vigil_error *err);
void vigil_model_free(vigil_model *model);

size_t vigil_model_input_count(const vigil_model *model);
size_t vigil_model_output_count(const vigil_model *model);
const vigil_tensor_info *vigil_model_input(const vigil_model *model, size_t index);
const vigil_tensor_info *vigil_model_output(const vigil_model *model, size_t index);
/* metadata_props value for key (Ultralytics: names, stride, imgsz, task), or NULL. */
const char *vigil_model_metadata(const vigil_model *model, const char *key);

/* Writes a QDQ int8 version of the float32 model at in_path to out_path
 * (src/engine/quantize.c): every 2-D Conv with float32 weights gets int8
 * weights per output channel and an int32 bias, and QuantizeLinear ->
 * DequantizeLinear pairs on its input and output, uint8 or int8
 * (VIGIL_QUANTIZE_INT8_ACTIVATIONS), their ranges chosen from the values
 * they take when the model runs on the n_inputs calibration inputs (each
 * one input tensor of the model at its native batch): the least squared
 * quantization error, and each bias corrected for its weights' rounding;
 * or, with VIGIL_QUANTIZE_MINMAX, each range the values' whole span and the
 * biases as rounded.  Every other part of the file is copied unchanged.
 * The model needs opset 13 or later and one input. */
#define VIGIL_QUANTIZE_INT8_ACTIVATIONS 1u
#define VIGIL_QUANTIZE_MINMAX 2u
/* VIGIL_QUANTIZE_CHAIN: also every SiLU output of a quantized convolution,
 * every Concat/Split/MaxPool/nearest Resize of such tensors and every Add of
 * two, so that the engine keeps the tensors 8-bit between convolutions
 * (faster; each extra rounding also moves boxes a little: docs/OPERATORS.md). */
#define VIGIL_QUANTIZE_CHAIN 4u
vigil_status vigil_model_quantize(vigil_engine *engine, const char *in_path, const char *out_path,
                                  const vigil_tensor *inputs, size_t n_inputs, unsigned flags, vigil_error *err);
int64_t vigil_model_opset(const vigil_model *model);
/* The engine the model was loaded on. */
vigil_engine *vigil_model_engine(const vigil_model *model);
/* Largest batch the model's own graph accepts in one run: 0 when the batch
 * dimension is symbolic (any), else the fixed leading dimension. */
int64_t vigil_model_native_batch(const vigil_model *model);

/* Compiles model for batch items.  Symbolic batch dimensions become batch
 * (up to the engine's batch_cap: a larger batch runs as runs of a plan of
 * the cap, and one of the remainder); a model exported with a fixed batch of
 * 1 runs batch items one after another inside the plan, so any model accepts
 * any batch. */
vigil_status vigil_plan_create(vigil_model *model, int64_t batch, vigil_plan **out, vigil_error *err);
void vigil_plan_destroy(vigil_plan *plan);

/* Runs the plan.  inputs[i] must match model input i with the batch
 * dimension equal to the plan's batch (checked: VIGIL_ERR_INVALID_ARGUMENT). */
vigil_status vigil_plan_run(vigil_plan *plan, const vigil_tensor *inputs, size_t n_inputs, vigil_error *err);
/* Output i of the last run; the data stays valid until the next run or destroy. */
const vigil_tensor *vigil_plan_output(const vigil_plan *plan, size_t index);

/* The memory of one model instance: the plans that one worker creates for
 * the batch sizes it runs, which never run at the same time.  They share
 *   - activation memory: the arena holds the largest plan's, not their sum
 *     (and no plan's graph is compiled above the engine's batch_cap);
 *   - output staging: a plan whose outputs are copies (a split or capped
 *     batch) writes them into one buffer of the arena, sized for the
 *     largest batch's outputs;
 *   - the weights: every operator that packs weights (Conv, ConvTranspose,
 *     Gemm/MatMul with constant B) is created once per arena and set up
 *     again for a plan's batch size and buffers when that plan runs after
 *     another (a plan that runs twice in a row pays no setup), so the
 *     instance holds one packed copy of the weights whatever batch sizes it
 *     runs.  A batch split across the engine's threads (see
 *     vigil_plan_create_in) runs its parts at the same time: part k uses a
 *     k-th set of operators and activations, shared with part k of every
 *     other split plan, so a split adds at most one copy per extra thread.
 * Running one plan overwrites the outputs of the others.
 * Not thread-safe: one owner (the instance's worker) creates, runs and
 * destroys every plan on an arena, one call at a time.
 * Ownership: the creator owns the arena; the arena owns its memory and its
 * operators, which outlive the plans that use them (a plan created again
 * for a batch size finds them) until vigil_arena_destroy. */
typedef struct vigil_arena vigil_arena;
vigil_status vigil_arena_create(vigil_arena **out, vigil_error *err);
/* Every plan created on the arena must be destroyed first. */
void vigil_arena_destroy(vigil_arena *arena);
size_t vigil_arena_bytes(const vigil_arena *arena); /* activation memory held */
/* Bytes XNNPACK allocated creating the arena's weighted operators (packed
 * weights and their small fixed state), measured at creation. */
size_t vigil_arena_weight_bytes(const vigil_arena *arena);
/* Gives back what only a run needs between runs: the output staging buffer
 * of split and capped plans (the outputs of the last run become invalid;
 * the next run that needs it allocates it again).  For an owner that goes
 * idle after a burst of large batches. */
void vigil_arena_trim(vigil_arena *arena);

/* vigil_plan_create with the activations and weighted operators of arena.
 * The arena grows when no plan uses it; when the plan needs more than it
 * holds while other plans use it, the result is VIGIL_ERR_LIMIT (nothing
 * created): destroy those plans and call again (their operators stay on the
 * arena).  A batch of B on an engine of T threads (B a multiple of T) runs
 * as T parts of B/T at the same time, one per thread.  Operators are shared
 * between plans of one model; the arena drops another model's operators
 * once none of its plans is left. */
vigil_status vigil_plan_create_in(vigil_model *model, int64_t batch, vigil_arena *arena, vigil_plan **out,
                                  vigil_error *err);

int64_t vigil_plan_batch(const vigil_plan *plan);
size_t vigil_plan_peak_activation_bytes(const vigil_plan *plan);
double vigil_plan_flops(const vigil_plan *plan); /* floating-point operations per run */
/* Packed-weight bytes of the operators the plan runs (its own, or its
 * arena's that it shares: then they are not the plan's alone). */
size_t vigil_plan_weight_bytes(const vigil_plan *plan);

#ifdef __cplusplus
}
#endif
#endif
