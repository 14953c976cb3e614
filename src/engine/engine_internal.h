/*
 * engine_internal.h - the engine's private data model, shared by the graph
 * builder, shape inference, the passes, the memory planner, the executor and
 * the operator files under ops/.
 *
 * The life of a model:
 *   load    : onnx_model -> validated (every node's operator, opset and
 *             attributes checked against the op table; topological order,
 *             missing inputs and cycles detected), then a trial shape
 *             inference at batch 1 so that type errors surface at load.
 *   compile : graph_build makes a `graph` (values + nodes, one per plan);
 *             shape_infer fixes every shape for the batch and folds constant
 *             subgraphs (Shape/Gather/Concat/Reshape chains ...); passes fuse
 *             and remove dead nodes and choose layouts (4-D activations are
 *             kept NHWC between ops that can work on NHWC); plan_memory gives
 *             every runtime value an offset in one arena by lifetime; then each
 *             node's op `prepare`s a `step` with the final data pointers
 *             (XNNPACK operators are created and set up once, weights packed
 *             once; on a vigil_arena the operators that pack weights belong
 *             to the arena and are shared by every plan of the instance, see
 *             instance.c).
 *   run     : copy inputs in, run steps in order, convert outputs.
 *
 * An op sees tensors through `op_tensor`: logical (ONNX) dims during
 * inference, physical dims during prepare (for a value kept NHWC the physical
 * dims are N,H,W,C).  Ops that are layout-agnostic (element-wise, Concat,
 * Split) therefore need no NHWC code: the passes permute their constant
 * inputs and axes.
 */
#ifndef VIGIL_ENGINE_INTERNAL_H
#define VIGIL_ENGINE_INTERNAL_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/onnx.h"
#include "vigil/engine.h"

/* Bytes of slack after every buffer: XNNPACK micro-kernels may read up to 16
 * bytes past the end of their inputs. */
#define ENGINE_BUFFER_PAD 64
#define ENGINE_ALIGN 64

struct vigil_engine {
    int threads;
    int batch_cap; /* largest batch a compiled graph runs (vigil_engine_options) */
    int portable_kernels; /* vigil_engine_options.portable_kernels */
    int float16_xnnpack;  /* float16 models on XNNPACK's f16 operators (vigil_engine_options.float16 resolved) */
    pthreadpool_t pool; /* NULL when threads == 1 */
};

typedef enum op_layout {
    OP_LAYOUT_ONNX = 0, /* needs every input in ONNX (logical) layout */
    OP_LAYOUT_NHWC,     /* spatial op: input 0 (4-D) must be NHWC, output NHWC */
    OP_LAYOUT_UNARY,    /* element-wise on one input: output follows the input */
    OP_LAYOUT_BINARY,   /* broadcasting element-wise: NHWC when a 4-D runtime input is */
    OP_LAYOUT_AXIS,     /* Concat/Split: NHWC with the axis remapped when inputs are 4-D */
} op_layout;

/* Fused activation applied to an op's output (Conv, ConvTranspose, Gemm...). */
typedef enum act_kind { ACT_NONE = 0, ACT_CLAMP, ACT_SILU } act_kind;

typedef struct op_tensor {
    vigil_dtype dtype;
    int ndim;
    int64_t dims[VIGIL_MAX_DIMS];
    void *data; /* infer: constant data or NULL; prepare: the buffer (constant or arena) */
    int is_const;
    int present; /* 0 for an omitted optional input */
} op_tensor;

struct graph;
struct step;

/* What an op's infer and prepare functions get. */
typedef struct op_ctx {
    const onnx_node *node;
    const char *name; /* node name or its first output's name */
    int64_t opset;
    int n_in, n_out;
    op_tensor *in;  /* n_in entries (see op_tensor.present) */
    op_tensor *out; /* n_out entries: filled by infer, read by prepare */
    int nhwc;       /* prepare: the node runs on NHWC physical tensors */
    act_kind act;   /* prepare: fused activation */
    float act_min, act_max;
    struct graph *graph; /* for constant allocation during infer */
    pthreadpool_t pool;
    void *scratch;     /* prepare: plan-wide scratch buffer (see scratch_bytes) */
    const int *perm;   /* prepare: Transpose permutation chosen by the passes, or NULL */
    struct step *step; /* prepare: the step to fill */
    /* prepare: the instance whose operators the plan shares (NULL: the
     * plan owns its operators), and the lane of the plan (instance.c) */
    struct vigil_arena *instance;
    int lane;
    int portable; /* prepare: XNNPACK and reference kernels only (vigil_engine_options) */
} op_ctx;

typedef struct op_def {
    const char *name;
    const char *domain; /* NULL: ONNX's own (""/"ai.onnx"); else e.g. "com.microsoft" (contrib operators) */
    int min_opset, max_opset;
    op_layout layout;
    int foldable;             /* may be evaluated at compile time when all inputs are constant */
    int layout_inputs;        /* inputs subject to the layout policy (0 = all) */
    int alias;                /* output 0 may share input 0's buffer (Reshape & co., ONNX layout) */
    int min_inputs;           /* inputs the node must name (checked at load; 0 = 1, -1 = none) */
    const char *const *attrs; /* NULL-terminated attribute names the op understands */
    /* Load-time check of attributes and static facts (may be NULL). */
    vigil_status (*check)(const onnx_node *node, int64_t opset, vigil_error *err);
    /* Output dtypes and logical shapes; may set out[i].data (then constant). */
    vigil_status (*infer)(op_ctx *ctx, vigil_error *err);
    /* Bytes of scratch the step needs at run time (may be NULL). */
    size_t (*scratch_bytes)(const op_ctx *ctx);
    /* Creates the step (run function, state) for physical tensors. */
    vigil_status (*prepare)(op_ctx *ctx, vigil_error *err);
    /* The layout pass may keep this op's uint8/int8 tensors NHWC too (quantized
     * operators); otherwise only float32 tensors are ever NHWC. */
    int quantized;
    /* For OP_LAYOUT_NHWC ops: whether this node can run NHWC (may be NULL = yes). */
    int (*nhwc_ok)(const onnx_node *node);
    /* Floating-point operations of one run (may be NULL). */
    double (*flops)(const op_ctx *ctx);
} op_def;

/* An XNNPACK operator with packed weights, owned by a vigil_arena and shared
 * by the steps of the instance's plans for one node (instance.c). */
typedef struct shared_op {
    const void *node;     /* the ONNX node it was created for */
    int lane;             /* the lane whose plans use it */
    uint64_t fingerprint; /* hash of the create parameters and the weights */
    void *xop;            /* xnn_operator_t */
    size_t packed_bytes;  /* what XNNPACK allocated creating it */
    uint64_t setup_id;    /* the step it is set up for now (0: none) */
    uint64_t setups;      /* xnn_setup_* calls so far (tests check runs skip them) */
} shared_op;

typedef struct step {
    const char *name;
    const char *op;
    vigil_status (*run)(struct step *s, vigil_error *err);
    void (*destroy)(struct step *s); /* frees state beyond xop (may be NULL) */
    int n_in, n_out;
    op_tensor *in, *out; /* physical tensors with final data pointers */
    void *xop[4];        /* xnn_operator_t, deleted by the executor unless shared */
    void *state;         /* op-owned, freed with vigil_free unless destroy says otherwise */
    pthreadpool_t pool;
    void *scratch;
    double flops;
    /* Operators that pack weights: setup (may be NULL) sets xop[0] up for
     * this step's shapes and pointers.  The executor calls it after prepare,
     * and before a run when the operator is shared and was last set up for
     * another step (shared->setup_id != setup_id). */
    vigil_status (*setup)(struct step *s, vigil_error *err);
    pthreadpool_t setup_pool; /* the pool setup tiles for (runs may use none) */
    shared_op *shared;        /* xop[0] belongs to the arena (NULL: to the step) */
    uint64_t setup_id;
    size_t packed_bytes; /* XNNPACK's bytes for an operator the step owns */
} step;

/* ---- graph ---- */

typedef struct gvalue {
    const char *name;
    vigil_dtype dtype;
    int ndim; /* -1 until inferred */
    int64_t dims[VIGIL_MAX_DIMS];
    void *cdata;     /* constant data (logical layout), owned by the graph or the model */
    int producer;    /* node index; -1 for graph inputs and constants */
    int graph_input; /* index + 1 into the model inputs, 0 otherwise */
    int nhwc;        /* physical layout N,H,W,C (4-D only) */
    int nhwc_twin;   /* index of the NHWC (or ONNX) converted copy, -1 if none */
    int onnx_twin;
    int alias_of; /* shares the buffer of this value (Reshape & co.), -1 otherwise */
    int uses;     /* live consumers */
    /* memory plan */
    size_t nbytes;
    size_t offset;
    int first, last; /* step indices of the lifetime */
    void *data;      /* runtime pointer */
} gvalue;

typedef struct gnode {
    const onnx_node *src;
    const op_def *op;
    int n_in, n_out;
    int *in; /* value indices, -1 for omitted optional inputs */
    int *out;
    int dead;
    int nhwc;
    act_kind act;
    float act_min, act_max;
    const char *name;
    /* Set by passes_fold_transposes: input 0 is read through this physical
     * view, and Transpose uses this permutation instead of its attribute. */
    int view_ndim;
    int64_t view_dims[VIGIL_MAX_DIMS];
    int perm[VIGIL_MAX_DIMS];
} gnode;

typedef struct graph {
    const onnx_model *onnx;
    int64_t opset;
    int64_t batch; /* symbolic dims become this */
    gvalue *values;
    int n_values, cap_values;
    gnode *nodes;
    int n_nodes, cap_nodes;
    int *inputs;
    int n_inputs; /* value index per model input */
    int *outputs;
    int n_outputs; /* value index per model output */
    void **owned;
    int n_owned, cap_owned; /* constant buffers to free */
    int *order;
    int n_order; /* execution order of live nodes (set by passes_layout) */
    int float16; /* the model's weights were float16 (widened at build: graph.c) */
} graph;

/* graph.c */
vigil_status graph_build(const onnx_model *m, int64_t batch, graph **out, vigil_error *err);
void graph_free(graph *g);
int graph_add_value(graph *g, const char *name);
int graph_add_node(graph *g, const onnx_node *src, const op_def *op, const char *name, int n_in, int n_out);
void *graph_alloc_const(graph *g, size_t nbytes); /* zeroed, padded, owned by g */
int64_t tensor_count(int ndim, const int64_t *dims);
size_t tensor_bytes(vigil_dtype dtype, int ndim, const int64_t *dims);
vigil_status dtype_from_onnx(int32_t onnx, vigil_dtype *out);

/* shape.c: infers shapes and folds constants in node order. */
vigil_status shape_infer(graph *g, vigil_error *err);
vigil_status shape_fold_node(graph *g, int node, vigil_error *err);
void op_ctx_init_infer(graph *g, int node, op_ctx *ctx, op_tensor *in, op_tensor *out);

/* passes.c */
vigil_status passes_run(graph *g, vigil_error *err);
vigil_status passes_layout(graph *g, vigil_error *err);
/* After layout: ToONNX -> Reshape (splitting C) -> Transpose becomes one
 * Transpose of the NHWC data (YOLOv5's detection head). */
void passes_fold_transposes(graph *g);
void passes_remove_dead(graph *g);

/* passes_float16.c: after layout, on a float16 model, gives the NHWC Conv,
 * Add, Mul, MaxPool, Concat, Split and nearest Resize nodes float16 tensors
 * (XNNPACK's f16 operators), with conversions where float32 meets them. */
vigil_status passes_float16(graph *g, vigil_error *err);

/* ops/quant.c: the 256-entry table of DequantizeLinear -> SiLU (uint8
 * codes of a QuantizeLinear after it when yt is 8-bit, float32 values when
 * yt is float32), computed with the float path's own kernels. */
vigil_status quant_silu_table(vigil_dtype xt, float x_scale, int32_t x_zp, vigil_dtype yt, float y_scale,
                              int32_t y_zp, void *table, vigil_error *err);

/* ops/quant.c: the 65536-entry table of DequantizeLinear (A), DequantizeLinear
 * (B) -> Add -> QuantizeLinear, all of 8-bit type t, indexed by A's byte
 * * 256 + B's byte, computed with the float path's own kernels. */
vigil_status quant_add_table(vigil_dtype t, float a_scale, int32_t a_zp, float b_scale, int32_t b_zp, float c_scale,
                             int32_t c_zp, uint8_t *table, vigil_error *err);

/* ops/quant.c: the 256-entry table of DequantizeLinear -> QuantizeLinear from
 * (a_scale, a_zp) to (c_scale, c_zp), type t. */
void quant_requantize_table(vigil_dtype t, float a_scale, int32_t a_zp, float c_scale, int32_t c_zp, uint8_t *table);

/* ops/registry.c */
const op_def *ops_find(const char *domain, const char *name);
const op_def *ops_find_internal(const char *name); /* vigil-internal ops ("vigil.ToNHWC"...) */
vigil_status ops_check_node(const onnx_node *node, int64_t opset, vigil_error *err);
int ops_list(const char **names, int max); /* claimed operators */

/* instance.c: the arena's lanes and shared operators, and the XNNPACK
 * allocator that measures packed weights. */
const struct xnn_allocator *engine_xnn_allocator(void);
/* Counts what XNNPACK allocates on this thread into *bytes until the end call. */
void xnn_count_begin(size_t *bytes);
void xnn_count_end(void);
/* Activation memory for a plan of model that works on bytes at offset:
 * *base gets the arena's memory, grown when no plan uses it;
 * VIGIL_ERR_LIMIT when the plan needs more while others use it.
 * arena_release undoes it. */
vigil_status arena_take(struct vigil_arena *a, const vigil_model *model, size_t offset, size_t bytes,
                        uint8_t **base, vigil_error *err);
void arena_release(struct vigil_arena *a);
/* The arena's output staging buffer, at least bytes (grown when smaller,
 * reallocated when more than twice bytes: its old contents are dead, since a
 * run overwrites every plan's outputs), or NULL when out of memory. */
uint8_t *arena_staging(struct vigil_arena *a, size_t bytes);
/* Plans that capped batches run on slices (a plan of the cap, one of a
 * remainder), shared by the capped plans of an arena: get finds one of
 * model for batch (a user more) or NULL; keep records a new one (its first
 * user; when every place is taken it stays its creator's alone); put drops
 * a user and destroys the plan after its last. */
struct vigil_plan *arena_piece_get(struct vigil_arena *a, const vigil_model *model, int64_t batch);
void arena_piece_keep(struct vigil_arena *a, struct vigil_plan *plan);
void arena_piece_put(struct vigil_arena *a, struct vigil_plan *plan);
shared_op *arena_find_op(struct vigil_arena *a, const void *node, int lane, uint64_t fingerprint);
/* Hands xop to the arena (on failure the caller still owns it). */
vigil_status arena_keep_op(struct vigil_arena *a, const void *node, int lane, uint64_t fingerprint, void *xop,
                           size_t packed_bytes, shared_op **out, vigil_error *err);
uint64_t arena_setup_id(struct vigil_arena *a);

/* helpers for ops (ops/common.c) */
vigil_status op_fail(const op_ctx *ctx, vigil_status st, vigil_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int64_t attr_int(const onnx_node *node, const char *name, int64_t dflt);
float attr_float(const onnx_node *node, const char *name, float dflt);
const char *attr_string(const onnx_node *node, const char *name, const char *dflt);
/* ints attribute: returns count (-1 when absent), copies up to max values. */
int attr_ints(const onnx_node *node, const char *name, int64_t *out, int max);
int in_present(const op_ctx *ctx, int i);
/* Reads a constant integer tensor (i64 or i32) input into out; returns count or -1. */
int const_ints(const op_tensor *t, int64_t *out, int max);
vigil_status op_require_dtype(const op_ctx *ctx, int input, const vigil_dtype *allowed, int n, vigil_error *err);
vigil_status op_step_alloc(op_ctx *ctx, size_t state_bytes, vigil_error *err);
vigil_status xnn_fail(const op_ctx *ctx, const char *what, int status, vigil_error *err);
/* Operators that pack weights (Conv, ConvTranspose, fully connected): a
 * fingerprint of what the create call takes (hashed in pieces with
 * op_hash, starting from OP_HASH_SEED); op_xop_find points step->xop[0]
 * at the instance's operator for ctx's node with that fingerprint and
 * returns 1, or returns 0 when the op must create it (counting its bytes
 * with xnn_count_begin/end) and then call op_xop_keep. */
#define OP_HASH_SEED 0xcbf29ce484222325ull
uint64_t op_hash(uint64_t h, const void *data, size_t n);
int op_xop_find(op_ctx *ctx, uint64_t fingerprint);
vigil_status op_xop_keep(op_ctx *ctx, uint64_t fingerprint, size_t packed_bytes, vigil_error *err);
/* Normalises axis against rank; -1 when out of range. */
int norm_axis(int64_t axis, int rank);
/* Broadcast shape of a and b into out; returns 0 when incompatible. */
int broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out);
/* Physical-axis of logical axis for a 4-D NHWC tensor. */
int nhwc_axis(int axis);

/* layout.c */
void layout_nchw_to_nhwc(const float *src, float *dst, const int64_t *nchw, pthreadpool_t pool);
void layout_nhwc_to_nchw(const float *src, float *dst, const int64_t *nchw, pthreadpool_t pool);
/* batch x [rows, cols] -> batch x [cols, rows] for 4-byte elements, tiled and threaded. */
void layout_transpose_2d(const float *src, float *dst, size_t batch, size_t rows, size_t cols, pthreadpool_t pool);
void transpose_generic(const void *src, void *dst, size_t esize, int ndim, const int64_t *dims, const int64_t *perm);

#endif
