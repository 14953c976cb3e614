/*
 * vmath.h - vectorised float32 math for the engine's hot paths (see vmath.c);
 * the references are kernels_unary_f32(KERNELS_SILU), kernels_softmax_f32,
 * kernels_quantize_linear and kernels_dequantize_linear.
 */
#ifndef VIGIL_ENGINE_OPS_VMATH_H
#define VIGIL_ENGINE_OPS_VMATH_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

void silu_f32_inplace(float *x, size_t n);
/* Splits x into cache-sized tiles across pool (NULL = calling thread only). */
void silu_f32_parallel(float *x, size_t n, pthreadpool_t pool);
/* The same on float16 values, computed in float32 and rounded once. */
void silu_f16_parallel(uint16_t *x, size_t n, pthreadpool_t pool);

/* Softmax of x viewed as [outer, len, inner] along the middle axis, for
 * inner > 1 (contiguous, vectorisable loops).  scratch: 2 * inner floats. */
void softmax_f32_strided(const float *x, float *y, size_t outer, size_t len, size_t inner, float *scratch);

/* Per-tensor QuantizeLinear of n floats into uint8 (is_signed 0) or int8
 * bytes, bit for bit kernels_quantize_linear (round half to even,
 * saturation, NaN to the zero point), and DequantizeLinear back, bit for bit
 * kernels_dequantize_linear.  Calling thread only: callers split the work. */
void quantize_f32(const float *x, size_t n, float scale, int32_t zero_point, int is_signed, void *y);
void dequantize_f32(const void *x, size_t n, float scale, int32_t zero_point, int is_signed, float *y);

#endif
