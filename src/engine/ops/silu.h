/*
 * silu.h - in-place SiLU (x * sigmoid(x)) on float32, vectorised (see silu.c);
 * the reference is kernels_unary_f32(KERNELS_SILU).
 */
#ifndef VIGIL_ENGINE_OPS_SILU_H
#define VIGIL_ENGINE_OPS_SILU_H

#include <pthreadpool.h>
#include <stddef.h>

void silu_f32_inplace(float *x, size_t n);
/* Splits x into cache-sized tiles across pool (NULL = calling thread only). */
void silu_f32_parallel(float *x, size_t n, pthreadpool_t pool);

#endif
