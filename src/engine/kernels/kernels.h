/*
 * kernels.h - vigil's plain-C reference kernels with exact ONNX semantics.
 *
 * Every operator the engine runs exists here once, written for correctness
 * first and speed second (tight loops, contiguous fast paths, no SIMD
 * intrinsics).  The engine calls these for everything XNNPACK does not cover,
 * and tests compare the optimised paths against them.
 *
 * Design rules:
 *   - Pure functions on raw, dense, C-order buffers with explicit shapes; no IR
 *     types.  Attribute decoding is the caller's job: kernels take resolved
 *     parameters (axes already made non-negative where the doc says so).
 *   - Shape helpers (the *_shape functions) validate inputs and compute the
 *     output shape; they return a status with a clear message on bad input.
 *     A kernel called with shapes that its helper accepted does not fail,
 *     except where its doc says so (data-dependent errors such as an index
 *     out of range or an integer division by zero).
 *   - Kernels never allocate, except resize/topk which say so and return
 *     VIGIL_ERR_NO_MEMORY when the allocation fails.
 *   - Data-movement kernels are generic over the element size in bytes
 *     (elem = vigil_dtype_size(dtype)); bool tensors are one byte per element
 *     holding 0 or 1.
 *   - Output buffers never alias inputs unless the doc says so (the unary and
 *     same-shape binary kernels allow y == x).
 *   - Tensors with a zero dimension are valid everywhere: the kernel writes
 *     nothing and returns OK.
 *
 * err may be NULL everywhere.
 */
#ifndef VIGIL_ENGINE_KERNELS_H
#define VIGIL_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/engine.h"
#include "vigil/status.h"

#define KERNELS_MAX_DIMS 8

/* ------------------------------------------------------------------------- */
/* Shapes                                                                    */
/* ------------------------------------------------------------------------- */

/* A tensor shape: ndim 0 is a scalar (one element). */
typedef struct kshape {
    int ndim;
    int64_t dims[KERNELS_MAX_DIMS];
} kshape;

/* Builds a shape from ndim dims (ndim <= KERNELS_MAX_DIMS, dims may be NULL when ndim is 0). */
kshape kshape_make(int ndim, const int64_t *dims);
/* Product of the dims (1 for a scalar, 0 when any dim is 0). */
int64_t kshape_count(const kshape *shape);
/* Equal rank and dims. */
int kshape_equal(const kshape *a, const kshape *b);
/* OUT strides[ndim]: C-order element strides. */
void kshape_strides(const kshape *shape, int64_t *strides);
/* Product of dims[begin..end) (1 for an empty range). */
int64_t kshape_range_count(const kshape *shape, int begin, int end);
/* Largest element count a helper accepts for an output: far enough below
 * INT64_MAX that byte sizes and strides of any dtype cannot overflow. */
#define KERNELS_MAX_ELEMENTS ((int64_t)1 << 56)
/* Checks rank <= KERNELS_MAX_DIMS, every dim >= 0 and the element count (of
 * the non-zero dims) <= KERNELS_MAX_ELEMENTS: VIGIL_ERR_INVALID_ARGUMENT /
 * VIGIL_ERR_LIMIT.  Every *_shape helper applies it to its output, so hostile
 * attributes (huge pads, repeats, scales) become a status, never an overflow. */
vigil_status kshape_check(const kshape *shape, vigil_error *err);
/* Numpy multidirectional broadcast of a and b into *out.  Incompatible dims
 * (neither equal nor 1) are VIGIL_ERR_INVALID_ARGUMENT. */
vigil_status kshape_broadcast(const kshape *a, const kshape *b, kshape *out, vigil_error *err);
/* Same for three shapes (Where). */
vigil_status kshape_broadcast3(const kshape *a, const kshape *b, const kshape *c, kshape *out, vigil_error *err);
/* Makes an ONNX axis in [-ndim, ndim) non-negative; out of range is
 * VIGIL_ERR_INVALID_ARGUMENT.  (Unsqueeze passes the output rank.) */
vigil_status kernels_axis(int64_t axis, int ndim, int *out, vigil_error *err);

/* Reshape: resolves 0 (copy the input dim, unless allowzero) and one -1
 * (inferred) in shape[n]; the element count must match. */
vigil_status kernels_reshape_shape(const kshape *in, const int64_t *shape, int n, int allowzero, kshape *out,
                                   vigil_error *err);
/* Flatten to 2-D around axis in [-ndim, ndim]. */
vigil_status kernels_flatten_shape(const kshape *in, int64_t axis, kshape *out, vigil_error *err);
/* Squeeze axes[n] (may be negative); n == 0 removes every dim of size 1.
 * Squeezing a dim that is not 1 is an error. */
vigil_status kernels_squeeze_shape(const kshape *in, const int64_t *axes, int n, kshape *out, vigil_error *err);
/* Unsqueeze: axes[n] index the OUTPUT rank (ndim + n), may be negative, no duplicates. */
vigil_status kernels_unsqueeze_shape(const kshape *in, const int64_t *axes, int n, kshape *out, vigil_error *err);

/* ------------------------------------------------------------------------- */
/* Element-wise binary (numpy broadcasting)                                   */
/* ------------------------------------------------------------------------- */

typedef enum kernels_binary_op {
    KERNELS_ADD,
    KERNELS_SUB,
    KERNELS_MUL,
    KERNELS_DIV,   /* integers truncate toward zero like C; x / 0 is an error for integers */
    KERNELS_POW,   /* caller casts the exponent to the base's dtype first */
    KERNELS_MAX,   /* Max/Min are variadic in ONNX: fold pairwise; NaN propagates */
    KERNELS_MIN,
    KERNELS_MOD,   /* ONNX Mod fmod=0: result has the divisor's sign (numpy/Python %) */
    KERNELS_FMOD,  /* ONNX Mod fmod=1: result has the dividend's sign (C fmod / %) */
    /* comparisons: output dtype is BOOL */
    KERNELS_EQUAL,
    KERNELS_LESS,
    KERNELS_LESS_OR_EQUAL,
    KERNELS_GREATER,
    KERNELS_GREATER_OR_EQUAL,
    /* logical: BOOL in, BOOL out */
    KERNELS_AND,
    KERNELS_OR,
    KERNELS_XOR,
    /* bitwise on integers (BitShift: LEFT/RIGHT on unsigned semantics of the bits) */
    KERNELS_BITSHIFT_LEFT,
    KERNELS_BITSHIFT_RIGHT,
} kernels_binary_op;

/* y = a op b with broadcasting.  dtype is the INPUT dtype: arithmetic ops and
 * comparisons take F32, F64, I64, I32, I8 and U8 (integer math wraps like
 * unsigned C arithmetic, INT_MIN / -1 included); bit shifts take the integer
 * dtypes; Equal also takes BOOL; And/Or/Xor take BOOL only.  ys must be
 * kshape_broadcast(as, bs).  y may alias a or b when its shape equals theirs.
 * Unsupported (op, dtype) pairs are VIGIL_ERR_UNSUPPORTED; integer division or
 * modulo by zero is VIGIL_ERR_INVALID_ARGUMENT (y partly written). */
vigil_status kernels_binary(kernels_binary_op op, vigil_dtype dtype, const void *a, const kshape *as, const void *b,
                            const kshape *bs, void *y, const kshape *ys, vigil_error *err);
/* Output dtype of op on inputs of dtype (BOOL for comparisons, else dtype). */
vigil_dtype kernels_binary_out_dtype(kernels_binary_op op, vigil_dtype dtype);

/* Where: y = cond ? x : z, three-way broadcast, any dtype (elem bytes).
 * cond is BOOL; ys must be kshape_broadcast3(cs, xs, zs). */
void kernels_where(size_t elem, const uint8_t *cond, const kshape *cs, const void *x, const kshape *xs, const void *z,
                   const kshape *zs, void *y, const kshape *ys);

/* ------------------------------------------------------------------------- */
/* Element-wise unary                                                        */
/* ------------------------------------------------------------------------- */

typedef enum kernels_unary_op {
    KERNELS_RELU,
    KERNELS_SIGMOID,
    KERNELS_TANH,
    KERNELS_EXP,
    KERNELS_LOG,
    KERNELS_SQRT,
    KERNELS_NEG,
    KERNELS_ABS,
    KERNELS_RECIPROCAL,
    KERNELS_FLOOR,
    KERNELS_CEIL,
    KERNELS_ROUND,        /* half to even */
    KERNELS_ERF,
    KERNELS_SIGN,
    KERNELS_SIN,
    KERNELS_COS,
    KERNELS_IDENTITY,
    KERNELS_CLIP,         /* min(max(x, p.min), p.max) */
    KERNELS_LEAKY_RELU,   /* alpha (default 0.01) */
    KERNELS_HARD_SIGMOID, /* max(0, min(1, alpha * x + beta)), defaults 0.2, 0.5 */
    KERNELS_HARD_SWISH,   /* x * max(0, min(1, x / 6 + 0.5)) */
    KERNELS_ELU,          /* alpha (default 1) */
    KERNELS_SELU,         /* alpha (1.67326319217681884765625), gamma in beta (1.05070102214813232421875) */
    KERNELS_CELU,         /* alpha (default 1) */
    KERNELS_SOFTPLUS,     /* log(1 + exp(x)), overflow-safe */
    KERNELS_SOFTSIGN,     /* x / (1 + |x|) */
    KERNELS_SILU,         /* x * sigmoid(x) (fused Sigmoid+Mul) */
    KERNELS_MISH,         /* x * tanh(softplus(x)) */
    KERNELS_GELU,         /* 0.5 x (1 + erf(x / sqrt 2)); alpha != 0 selects the tanh approximation */
    KERNELS_THRESHOLDED_RELU, /* x > alpha ? x : 0 (default alpha 1) */
} kernels_unary_op;

typedef struct kernels_unary_params {
    float alpha;
    float beta;
    float min; /* Clip bounds: -INFINITY / INFINITY when absent */
    float max;
} kernels_unary_params;

/* Fills p with ONNX's default attributes for op (alpha, beta, clip bounds). */
void kernels_unary_defaults(kernels_unary_op op, kernels_unary_params *p);
/* y[i] = op(x[i]) on F32, n elements; y may equal x; p may be NULL for defaults. */
void kernels_unary_f32(kernels_unary_op op, const kernels_unary_params *p, const float *x, float *y, int64_t n);
/* Integer unary ops on I64/I32/I8 (NEG, ABS, SIGN, RELU, IDENTITY, and CLIP with
 * bounds lo/hi).  Others are VIGIL_ERR_UNSUPPORTED. */
vigil_status kernels_unary_int(kernels_unary_op op, vigil_dtype dtype, const void *x, void *y, int64_t n, int64_t lo,
                               int64_t hi, vigil_error *err);
/* Not on BOOL. */
void kernels_not(const uint8_t *x, uint8_t *y, int64_t n);
/* IsNaN / IsInf (F32 in, BOOL out). */
void kernels_isnan_f32(const float *x, uint8_t *y, int64_t n);
void kernels_isinf_f32(const float *x, uint8_t *y, int64_t n, int detect_negative, int detect_positive);

/* Cast n elements between F32, F64, F16, I64, I32, U8, I8 and BOOL.
 * Float to integer truncates toward zero (out-of-range and NaN values give an
 * implementation-defined but deterministic result: saturation, NaN -> 0); to
 * BOOL is (x != 0); from BOOL is 0/1.  from == to copies. */
vigil_status kernels_cast(vigil_dtype from, const void *x, vigil_dtype to, void *y, int64_t n, vigil_error *err);
/* Cast to float16 for a graph that computes float16 in float32: y[i] is
 * x[i] rounded once to half precision (nearest, ties to even; subnormals,
 * infinities and NaN as IEEE says), stored as float. */
void kernels_cast_to_f16_as_f32(vigil_dtype from, const void *x, float *y, int64_t n);
/* IEEE half <-> float. */

/* Fills n elements of elem bytes with *value (ConstantOfShape, Expand of a scalar). */
void kernels_fill(size_t elem, const void *value, void *y, int64_t n);

/* ------------------------------------------------------------------------- */
/* Data movement (generic over element size)                                 */
/* ------------------------------------------------------------------------- */

/* Transpose: y's dim i is x's dim perm[i] (perm is a permutation of 0..ndim-1,
 * validated by kernels_transpose_shape). */
vigil_status kernels_transpose_shape(const kshape *xs, const int *perm, kshape *ys, vigil_error *err);
void kernels_transpose(size_t elem, const void *x, const kshape *xs, const int *perm, void *y);

/* Concat n inputs along axis (non-negative): all dims but axis must match. */
vigil_status kernels_concat_shape(int axis, int n, const kshape *in, kshape *out, vigil_error *err);
void kernels_concat(size_t elem, int axis, int n, const void *const *x, const kshape *xs, void *y);
/* The part of kernels_concat for outer indices [o0, o1) (the dimensions
 * before axis, flattened): disjoint ranges may run in parallel. */
void kernels_concat_rows(size_t elem, int axis, int n, const void *const *x, const kshape *xs, void *y, int64_t o0,
                         int64_t o1);

/* Split x along axis (non-negative) into n outputs of sizes[i] along axis. */
vigil_status kernels_split_check(const kshape *xs, int axis, int n, const int64_t *sizes, vigil_error *err);
/* Sizes for Split without a 'split' input: n near-equal parts, ceil(dim / n)
 * each and the last smaller (opset 18 num_outputs rule; for opset < 18 the
 * dim must divide evenly, checked when exact is set). */
vigil_status kernels_split_even(int64_t dim, int n, int exact, int64_t *sizes, vigil_error *err);
void kernels_split(size_t elem, const void *x, const kshape *xs, int axis, int n, const int64_t *sizes, void *const *y);
/* kernels_split for outer indices [o0, o1) only (see kernels_concat_rows). */
void kernels_split_rows(size_t elem, const void *x, const kshape *xs, int axis, int n, const int64_t *sizes,
                        void *const *y, int64_t o0, int64_t o1);

/* Slice, normalised: per input dim a start index and a step (dims not sliced
 * have start 0, step 1) and the output shape. */
typedef struct kslice {
    kshape out;
    int64_t start[KERNELS_MAX_DIMS];
    int64_t step[KERNELS_MAX_DIMS];
} kslice;
/* Applies ONNX's Slice rules: negative starts/ends add the dim; starts clamp to
 * [0, dim] (step > 0) or [0, dim - 1] (step < 0); ends clamp to [0, dim]
 * (step > 0) or [-1, dim - 1] (step < 0), so INT64_MAX / INT64_MIN mean "to
 * the end".  axes may be NULL (0..n-1), steps may be NULL (all 1); axes may be
 * negative; repeated axes or step 0 are errors. */
vigil_status kernels_slice_normalize(const kshape *xs, const int64_t *starts, const int64_t *ends,
                                     const int64_t *axes, const int64_t *steps, int n, kslice *out,
                                     vigil_error *err);
void kernels_slice(size_t elem, const void *x, const kshape *xs, const kslice *slice, void *y);

/* Gather along axis (non-negative): out shape = data[:axis] + indices + data[axis+1:]. */
vigil_status kernels_gather_shape(const kshape *data, const kshape *indices, int axis, kshape *out,
                                  vigil_error *err);
/* indices are I64 or I32 (index_dtype), may be negative; out of [-dim, dim) is
 * VIGIL_ERR_INVALID_ARGUMENT. */
vigil_status kernels_gather(size_t elem, const void *data, const kshape *ds, int axis, const void *indices,
                            vigil_dtype index_dtype, const kshape *is, void *y, vigil_error *err);
/* GatherElements: indices has data's rank; y has the shape of indices. */
vigil_status kernels_gather_elements(size_t elem, const void *data, const kshape *ds, int axis, const void *indices,
                                     vigil_dtype index_dtype, const kshape *is, void *y, vigil_error *err);
/* GatherND (batch_dims): out shape helper and kernel; indices I64. */
vigil_status kernels_gather_nd_shape(const kshape *data, const kshape *indices, int batch_dims, kshape *out,
                                     vigil_error *err);
vigil_status kernels_gather_nd(size_t elem, const void *data, const kshape *ds, const int64_t *indices,
                               const kshape *is, int batch_dims, void *y, vigil_error *err);
/* ScatterND with reduction none: y = copy of data (caller copies first; y may
 * equal data) with updates written at indices (I64, shape [..., k]). */
vigil_status kernels_scatter_nd(size_t elem, void *y, const kshape *ds, const int64_t *indices, const kshape *is,
                                const void *updates, vigil_error *err);
/* ScatterElements with reduction none, same conventions (y pre-filled with data). */
vigil_status kernels_scatter_elements(size_t elem, void *y, const kshape *ds, int axis, const void *indices,
                                      vigil_dtype index_dtype, const kshape *is, const void *updates,
                                      vigil_error *err);

/* Expand: out = broadcast(xs, shape[n]) (bidirectional, like numpy). */
vigil_status kernels_expand_shape(const kshape *xs, const int64_t *shape, int n, kshape *out, vigil_error *err);
/* Copies x broadcast to ys (ys must be a valid broadcast target of xs; ranks may differ). */
void kernels_broadcast_to(size_t elem, const void *x, const kshape *xs, void *y, const kshape *ys);

/* Tile: out dim i = xs dim i * repeats[i] (repeats[xs->ndim], >= 0). */
vigil_status kernels_tile_shape(const kshape *xs, const int64_t *repeats, kshape *out, vigil_error *err);
void kernels_tile(size_t elem, const void *x, const kshape *xs, void *y, const kshape *ys);

typedef enum kernels_pad_mode {
    KERNELS_PAD_CONSTANT,
    KERNELS_PAD_REFLECT,
    KERNELS_PAD_EDGE,
    KERNELS_PAD_WRAP,
} kernels_pad_mode;
/* pads[2 * ndim] in ONNX order: all begins, then all ends; negative pads crop.
 * Reflect needs dim >= 2 and pads < dim on padded axes; edge/wrap need dim >= 1. */
vigil_status kernels_pad_shape(const kshape *xs, const int64_t *pads, kernels_pad_mode mode, kshape *out,
                               vigil_error *err);
/* value: one element (elem bytes) for constant mode, NULL means zero. */
void kernels_pad(size_t elem, const void *x, const kshape *xs, const int64_t *pads, kernels_pad_mode mode,
                 const void *value, void *y, const kshape *ys);

/* DepthToSpace (4-D NCHW; crd = 0 for DCR, 1 for CRD) and SpaceToDepth. */
vigil_status kernels_depth_to_space_shape(const kshape *xs, int64_t blocksize, kshape *out, vigil_error *err);
void kernels_depth_to_space(size_t elem, const void *x, const kshape *xs, int64_t blocksize, int crd, void *y);
vigil_status kernels_space_to_depth_shape(const kshape *xs, int64_t blocksize, kshape *out, vigil_error *err);
void kernels_space_to_depth(size_t elem, const void *x, const kshape *xs, int64_t blocksize, void *y);

/* ------------------------------------------------------------------------- */
/* Resize (F32, any rank)                                                     */
/* ------------------------------------------------------------------------- */

typedef enum kernels_resize_mode { KERNELS_RESIZE_NEAREST, KERNELS_RESIZE_LINEAR, KERNELS_RESIZE_CUBIC } kernels_resize_mode;

typedef enum kernels_resize_coord {
    KERNELS_COORD_HALF_PIXEL,
    KERNELS_COORD_HALF_PIXEL_SYMMETRIC,
    KERNELS_COORD_PYTORCH_HALF_PIXEL,
    KERNELS_COORD_ALIGN_CORNERS,
    KERNELS_COORD_ASYMMETRIC,
    KERNELS_COORD_TF_HALF_PIXEL_FOR_NEAREST,
    KERNELS_COORD_TF_CROP_AND_RESIZE,
} kernels_resize_coord;

typedef enum kernels_resize_nearest {
    KERNELS_NEAREST_ROUND_PREFER_FLOOR,
    KERNELS_NEAREST_ROUND_PREFER_CEIL,
    KERNELS_NEAREST_FLOOR,
    KERNELS_NEAREST_CEIL,
} kernels_resize_nearest;

typedef struct kernels_resize_params {
    kernels_resize_mode mode;
    kernels_resize_coord coord;
    kernels_resize_nearest nearest;
    float cubic_coeff_a;       /* default -0.75 */
    int exclude_outside;       /* cubic: drop taps outside the input and renormalise */
    float extrapolation_value; /* tf_crop_and_resize: value outside the roi (default 0) */
    const float *roi;          /* tf_crop_and_resize: [2 * ndim] starts then ends (normalised), else NULL */
    float scales[KERNELS_MAX_DIMS]; /* per-dim scale used for coordinate mapping */
} kernels_resize_params;

/* Sets defaults: nearest, half_pixel, round_prefer_floor, a = -0.75, scales 1. */
void kernels_resize_defaults(kernels_resize_params *p);
/* Resolves Resize's output shape and p->scales from either scales[n] or
 * sizes[n] (exactly one non-NULL; n == ndim, or n == number of axes when
 * axes != NULL (opset 18)).  From scales: out = floor(in * scale).  From sizes:
 * scale = out / in, adjusted by keep_aspect_ratio_policy (0 stretch,
 * 1 not_larger, 2 not_smaller) over the given axes. */
vigil_status kernels_resize_shape(const kshape *xs, const float *scales, const int64_t *sizes, const int64_t *axes,
                                  int n, int keep_aspect_ratio_policy, kernels_resize_params *p, kshape *out,
                                  vigil_error *err);
/* Resizes x to ys.  Nearest and linear work on any rank (linear is N-linear
 * over every resized dim, as ONNX specifies); cubic likewise.  Allocates small
 * per-dim index tables: VIGIL_ERR_NO_MEMORY when that fails. */
vigil_status kernels_resize_f32(const float *x, const kshape *xs, float *y, const kshape *ys,
                                const kernels_resize_params *p, vigil_error *err);

/* ------------------------------------------------------------------------- */
/* Softmax, reductions, scans, sorting                                       */
/* ------------------------------------------------------------------------- */

/* The tensor seen as [outer, axis_len, inner] (opset >= 13: around the axis;
 * opset < 13 coerces to 2-D: outer = prod(dims[:axis]), axis_len = prod(dims[axis:]), inner = 1). */
void kernels_softmax_f32(const float *x, float *y, int64_t outer, int64_t axis_len, int64_t inner);
void kernels_log_softmax_f32(const float *x, float *y, int64_t outer, int64_t axis_len, int64_t inner);
/* 1 at the first maximum along the axis, 0 elsewhere. */
void kernels_hardmax_f32(const float *x, float *y, int64_t outer, int64_t axis_len, int64_t inner);

typedef enum kernels_reduce_op {
    KERNELS_REDUCE_SUM,
    KERNELS_REDUCE_MEAN,
    KERNELS_REDUCE_MAX,
    KERNELS_REDUCE_MIN,
    KERNELS_REDUCE_PROD,
    KERNELS_REDUCE_L1,
    KERNELS_REDUCE_L2,
    KERNELS_REDUCE_LOG_SUM,
    KERNELS_REDUCE_LOG_SUM_EXP,
    KERNELS_REDUCE_SUM_SQUARE,
} kernels_reduce_op;

/* Resolves axes[n] (may be negative; n == 0 means all axes unless
 * noop_with_empty_axes, which means none) into OUT mask[ndim] (1 = reduced)
 * and the output shape (reduced dims kept as 1 when keepdims, else dropped). */
vigil_status kernels_reduce_shape(const kshape *xs, const int64_t *axes, int n, int keepdims,
                                  int noop_with_empty_axes, uint8_t *mask, kshape *out, vigil_error *err);
/* Reduces x over the dims where mask[d] is 1; y has count = product of the
 * unreduced dims (keepdims does not change the layout).  dtype F32, F64, I64 or I32
 * (integers: SUM, MEAN (truncating), MAX, MIN, PROD, L1, SUM_SQUARE only).
 * Empty reductions give the identity: 0 for sums, 1 for PROD, -inf/+inf (or the
 * integer limits) for MAX/MIN, NaN for MEAN. */
vigil_status kernels_reduce(kernels_reduce_op op, vigil_dtype dtype, const void *x, const kshape *xs,
                            const uint8_t *mask, void *y, vigil_error *err);

/* ArgMax (is_min = 0) / ArgMin over [outer, axis_len, inner] of F32/I64/I32
 * into I64 [outer, inner]; first occurrence unless select_last_index.
 * axis_len 0 (with outer*inner > 0) is VIGIL_ERR_INVALID_ARGUMENT. */
vigil_status kernels_argreduce(int is_min, vigil_dtype dtype, const void *x, int64_t outer, int64_t axis_len,
                               int64_t inner, int select_last_index, int64_t *y, vigil_error *err);

/* CumSum of F32/F64/I64/I32 over [outer, axis_len, inner]. */
vigil_status kernels_cumsum(vigil_dtype dtype, const void *x, void *y, int64_t outer, int64_t axis_len, int64_t inner,
                            int exclusive, int reverse, vigil_error *err);

/* TopK of F32/I64/I32 over [outer, axis_len, inner] into values (dtype) and
 * I64 indices, both [outer, k, inner].  Equal values keep the lower index
 * first.  sorted = 0 still returns sorted output (allowed by ONNX).
 * k > axis_len or k < 0 is VIGIL_ERR_INVALID_ARGUMENT.  Allocates axis_len
 * scratch entries (VIGIL_ERR_NO_MEMORY). */
vigil_status kernels_topk(vigil_dtype dtype, const void *x, int64_t outer, int64_t axis_len, int64_t inner, int64_t k,
                          int largest, int sorted, void *values, int64_t *indices, vigil_error *err);

/* Range for F32/F64/I64/I32: start, limit, delta point to one element of
 * dtype.  count = max(ceil((limit - start) / delta), 0); delta 0 is an error. */
vigil_status kernels_range_count(vigil_dtype dtype, const void *start, const void *limit, const void *delta,
                                 int64_t *count, vigil_error *err);
void kernels_range(vigil_dtype dtype, const void *start, const void *delta, int64_t count, void *y);

/* NonZero: number of non-zero elements, then their coordinates as I64
 * [ndim, count] (row-major order of appearance).  Any dtype. */
int64_t kernels_nonzero_count(vigil_dtype dtype, const void *x, int64_t n);
void kernels_nonzero(vigil_dtype dtype, const void *x, const kshape *xs, int64_t count, int64_t *y);

/* ------------------------------------------------------------------------- */
/* Linear algebra (F32)                                                      */
/* ------------------------------------------------------------------------- */

/* C[M,N] (+)= A[M,K] * B[K,N] with row strides lda, ldb, ldc; accumulate = 0
 * overwrites C.  The building block of MatMul, Gemm and Conv. */
void kernels_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                   float *C, int64_t ldc, int accumulate);

/* MatMul shapes with numpy semantics: 1-D a is [1,K] (dim dropped), 1-D b is
 * [K,1] (dim dropped), batch dims broadcast. */
vigil_status kernels_matmul_shape(const kshape *as, const kshape *bs, kshape *out, vigil_error *err);
/* F32 or I64 (dtype); ys from kernels_matmul_shape. */
vigil_status kernels_matmul(vigil_dtype dtype, const void *a, const kshape *as, const void *b, const kshape *bs,
                            void *y, const kshape *ys, vigil_error *err);

/* Gemm: Y[M,N] = alpha * op(A) * op(B) + beta * C, op = transpose when trans*.
 * A is [M,K] (or [K,M]), B is [K,N] (or [N,K]); C may be NULL or any shape
 * unidirectionally broadcastable to [M,N] (cs rank 0..2). */
vigil_status kernels_gemm_shape(const kshape *as, const kshape *bs, const kshape *cs, int trans_a, int trans_b,
                                kshape *out, vigil_error *err);
void kernels_gemm_f32(const float *A, const kshape *as, const float *B, const kshape *bs, const float *C,
                      const kshape *cs, int trans_a, int trans_b, float alpha, float beta, float *Y);

/* ------------------------------------------------------------------------- */
/* Linear quantization (quant.c)                                             */
/* ------------------------------------------------------------------------- */

/* ONNX's linear quantization: q = saturate(round_half_even(x / scale) + zp),
 * x = (q - zp) * scale, computed in float32 as ONNX's reference does.
 *
 * A tensor is seen as [outer, channels, inner] with one scale and zero point
 * per channel (channels = 1: per tensor).  Quantized types are U8 and I8;
 * zero_point NULL means 0.  A NaN quantizes to the zero point; +-inf and
 * values out of range saturate. */
typedef struct kernels_qaxis {
    int64_t outer, channels, inner;
} kernels_qaxis;

/* The view of shape s around axis (axis < 0: per tensor). */
kernels_qaxis kernels_qaxis_make(const kshape *s, int axis);
/* Smallest and largest value of U8 or I8. */
void kernels_qrange(vigil_dtype qtype, int32_t *lo, int32_t *hi);
/* Element i of a U8, I8 or I32 tensor. */
int32_t kernels_qload(vigil_dtype dtype, const void *x, int64_t i);
void kernels_quantize_linear(const float *x, const kernels_qaxis *ax, const float *scale, vigil_dtype qtype,
                             const void *zero_point, void *y);
/* x is U8, I8 or I32 (I32 has no zero point). */
void kernels_dequantize_linear(vigil_dtype xtype, const void *x, const kernels_qaxis *ax, const float *scale,
                               const void *zero_point, float *y);
/* DynamicQuantizeLinear (uint8): scale = (max(0, max x) - min(0, min x)) / 255
 * (1 / 255 when that range is 0, as ONNX's reference does), zero point =
 * round(saturate(-min(0, min x) / scale)), then y as above.  n == 0 gives
 * scale 1 / 255 and zero point 0. */
void kernels_dynamic_quantize_linear(const float *x, int64_t n, uint8_t *y, float *scale, uint8_t *zero_point);
/* y = x - zero_point per channel, widened to int64 (x U8, I8 or I32; the
 * integer operators compute on these so that their sums are exact). */
void kernels_qcenter(vigil_dtype xtype, const void *x, const kernels_qaxis *ax, vigil_dtype zptype,
                     const void *zero_point, int64_t *y);
/* Requantizes accumulators: y = saturate(round_half_even(acc * multiplier[c])
 * + zp) with one multiplier per channel (the product in double from float32
 * multipliers, as ONNX's reference does) and one zero point (NULL: 0). */
void kernels_requantize(const int64_t *acc, const kernels_qaxis *ax, const float *multiplier, vigil_dtype qtype,
                        const void *zero_point, void *y);

/* ------------------------------------------------------------------------- */
/* NCHW reference convolution, pooling and normalisation (F32)               */
/* ------------------------------------------------------------------------- */

/* Spatial rank 1 or 2 (1-D runs as H = 1); index 0 is H (or the only dim). */
typedef enum kernels_auto_pad { KERNELS_PAD_NOTSET, KERNELS_PAD_SAME_UPPER, KERNELS_PAD_SAME_LOWER, KERNELS_PAD_VALID } kernels_auto_pad;

typedef struct kernels_window {
    int nspatial;                      /* 1 or 2 */
    int64_t kernel[2];                 /* kernel spatial size */
    int64_t stride[2];                 /* default 1 */
    int64_t dilation[2];               /* default 1 */
    int64_t pad_begin[2];              /* ONNX pads[0..n) */
    int64_t pad_end[2];                /* ONNX pads[n..2n) */
    int64_t output_padding[2];         /* ConvTranspose only */
    int64_t group;                     /* Conv / ConvTranspose, default 1 */
    int ceil_mode;                     /* pooling only */
} kernels_window;

/* Fills w with defaults for nspatial dims and the given kernel size. */
void kernels_window_defaults(kernels_window *w, int nspatial, const int64_t *kernel);
/* Resolves auto_pad into w->pad_begin/pad_end for input spatial sizes in[]
 * (NOTSET keeps the explicit pads).  SAME_*: out = ceil(in / stride), total pad
 * = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - in), the extra
 * unit at the end (UPPER) or beginning (LOWER).  VALID: pads 0. */
void kernels_resolve_auto_pad(kernels_auto_pad auto_pad, const int64_t *in, kernels_window *w);
/* ConvTranspose variant: SAME_* gives out = in * stride and total pad
 * = stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - out. */
void kernels_resolve_auto_pad_transpose(kernels_auto_pad auto_pad, const int64_t *in, kernels_window *w);
/* For ConvTranspose's explicit output_shape attribute: sets pads so the output
 * has spatial size out[].  As the spec says, total = stride * (in - 1) +
 * output_padding + (kernel - 1) * dilation + 1 - out is split with floor
 * division: same_upper (auto_pad SAME_UPPER) gives begin = total / 2, anything
 * else (NOTSET, SAME_LOWER) end = total / 2, the rest to the other side.  The
 * total may be negative (an output larger than the natural one): the negative
 * pad then extends the output with bias-only rows/columns. */
vigil_status kernels_convtranspose_pads_for_output(const int64_t *in, const int64_t *out, int same_upper,
                                                   kernels_window *w, vigil_error *err);

/* Conv: x [N, C, spatial], w [M, C / group, kernel] -> y [N, M, out spatial]. */
vigil_status kernels_conv_shape(const kshape *xs, const kshape *ws, const kernels_window *win, kshape *out,
                                vigil_error *err);
/* b [M] may be NULL. */
void kernels_conv_f32(const float *x, const kshape *xs, const float *w, const float *b, const kernels_window *win,
                      float *y, const kshape *ys);
/* The same on int64 (ConvInteger, QLinearConv after their zero points are
 * subtracted: every sum is exact). */
void kernels_conv_i64(const int64_t *x, const kshape *xs, const int64_t *w, const int64_t *b,
                      const kernels_window *win, int64_t *y, const kshape *ys);

/* ConvTranspose: x [N, C, spatial], w [C, M / group, kernel] -> y [N, M, out]
 * with out = stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - pads
 * (pads may be negative here, see kernels_convtranspose_pads_for_output). */
vigil_status kernels_convtranspose_shape(const kshape *xs, const kshape *ws, const kernels_window *win, kshape *out,
                                         vigil_error *err);
void kernels_convtranspose_f32(const float *x, const kshape *xs, const float *w, const float *b,
                               const kernels_window *win, float *y, const kshape *ys);

/* Pool output shape: out = floor_or_ceil((in + pads - ((kernel - 1) * dilation + 1)) / stride) + 1;
 * with ceil_mode a last window that would start in the end padding is dropped. */
vigil_status kernels_pool_shape(const kshape *xs, const kernels_window *win, kshape *out, vigil_error *err);
/* MaxPool; indices (NULL to skip) get ONNX's flattened NCHW index (storage_order 0). */
void kernels_maxpool_f32(const float *x, const kshape *xs, const kernels_window *win, float *y, const kshape *ys,
                         int64_t *indices);
/* AveragePool: divides by the window's in-image size, or by the full window
 * (clipped to the padded image) when count_include_pad. */
void kernels_avgpool_f32(const float *x, const kshape *xs, const kernels_window *win, int count_include_pad, float *y,
                         const kshape *ys);
/* GlobalAveragePool / GlobalMaxPool over planes of `spatial` elements. */
void kernels_global_pool_f32(int is_max, const float *x, int64_t planes, int64_t spatial, float *y);

/* BatchNormalization (inference) over x [N, C, spatial...]. */
void kernels_batchnorm_f32(const float *x, int64_t n, int64_t c, int64_t spatial, const float *scale,
                           const float *bias, const float *mean, const float *var, float epsilon, float *y);
/* InstanceNormalization over x [N, C, spatial...]. */
void kernels_instancenorm_f32(const float *x, int64_t n, int64_t c, int64_t spatial, const float *scale,
                              const float *bias, float epsilon, float *y);
/* LayerNormalization over [outer, inner]: scale [inner], bias [inner] or NULL;
 * mean / inv_std_dev [outer] optional outputs (NULL to skip). */
void kernels_layernorm_f32(const float *x, int64_t outer, int64_t inner, const float *scale, const float *bias,
                           float epsilon, float *y, float *mean, float *inv_std_dev);
/* LRN across channels of x [N, C, spatial]. */
void kernels_lrn_f32(const float *x, int64_t n, int64_t c, int64_t spatial, int64_t size, float alpha, float beta,
                     float bias, float *y);

#endif
