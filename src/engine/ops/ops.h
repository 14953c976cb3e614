/*
 * ops.h - what operator files share: the helpers of common.c and the op
 * tables each file exports (a {0}-terminated array of op_def per family),
 * collected by registry.c.
 */
#ifndef VIGIL_ENGINE_OPS_H
#define VIGIL_ENGINE_OPS_H

#include "engine/engine_internal.h"
#include "engine/kernels/kernels.h"

kshape op_kshape(const op_tensor *t);
/* The logical (N,C,H,W) view of a 4-D tensor stored N,H,W,C when nhwc (the
 * same data; only the dims differ), else t itself. */
op_tensor op_logical(const op_tensor *t, int nhwc);
void op_set_out(op_tensor *o, vigil_dtype dtype, const kshape *s);
/* Unknown attribute names -> VIGIL_ERR_UNSUPPORTED naming the node. */
vigil_status op_check_attrs(const onnx_node *node, const op_def *op, vigil_error *err);
/* Load-time failure naming the node. */
vigil_status op_check_fail(const onnx_node *node, vigil_status st, vigil_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefixes a kernel's error with the node. */
vigil_status op_wrap_kernel(const op_ctx *ctx, vigil_status st, vigil_error *err);
/* Allocates constant storage for output o (shape already set) during infer. */
void *op_const_alloc(op_ctx *ctx, op_tensor *o);
size_t op_elem(const op_tensor *t);
int64_t op_count(const op_tensor *t);

/* conv.c: auto_pad attribute, and the window attributes of Conv/ConvTranspose/pools
 * for input 0 (logical layout) with the given kernel size. */
vigil_status op_auto_pad(const onnx_node *node, kernels_auto_pad *out);
vigil_status op_read_window(const op_ctx *ctx, const int64_t *kernel, int transpose, kernels_window *w,
                            vigil_error *err);

extern const op_def ops_conv[];
extern const op_def ops_pool[];
extern const op_def ops_eltwise[];
extern const op_def ops_shape[];
extern const op_def ops_movement[];
extern const op_def ops_resize[];
extern const op_def ops_reduce[];
extern const op_def ops_linalg[];
extern const op_def ops_layout[];
extern const op_def ops_norm[];
extern const op_def ops_misc[];
extern const op_def ops_quant[];

#endif
