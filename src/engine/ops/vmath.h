/*
 * vmath.h - vectorised float32 math for the engine's hot paths (see vmath.c);
 * the references are kernels_unary_f32(KERNELS_SILU) and kernels_softmax_f32.
 */
#ifndef VIGIL_ENGINE_OPS_VMATH_H
#define VIGIL_ENGINE_OPS_VMATH_H

#include <pthreadpool.h>
#include <stddef.h>

void silu_f32_inplace(float *x, size_t n);
/* Splits x into cache-sized tiles across pool (NULL = calling thread only). */
void silu_f32_parallel(float *x, size_t n, pthreadpool_t pool);

/* Softmax of x viewed as [outer, len, inner] along the middle axis, for
 * inner > 1 (contiguous, vectorisable loops).  scratch: 2 * inner floats. */
void softmax_f32_strided(const float *x, float *y, size_t outer, size_t len, size_t inner, float *scratch);

#endif
