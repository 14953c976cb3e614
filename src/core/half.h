/*
 * half.h - IEEE 754 binary16 ("half", KServe's FP16) to and from float and
 * double, for the layers that carry fp16 tensors across a boundary: the
 * request codecs (JSON numbers in, numbers out) and detection (a letterboxed
 * image into an fp16 model input, fp16 outputs widened for the heads).
 * Rounding is IEEE's default, to nearest with ties to even, done once;
 * subnormals, infinities and NaN as IEEE says.  Widening is exact.
 */
#ifndef VIGIL_CORE_HALF_H
#define VIGIL_CORE_HALF_H

#include <stddef.h>
#include <stdint.h>

float half_to_float(uint16_t h);
/* f rounded to half (nearest, ties to even). */
uint16_t half_from_float(float f);
/* d rounded to half once (not through float, which could round twice). */
uint16_t half_from_double(double d);

/* n elements each way, vectorised where the CPU converts (F16C), with
 * the same results as the scalar functions above; the buffers must not
 * overlap. */
void half_widen(const uint16_t *src, float *dst, size_t n);
void half_narrow(const float *src, uint16_t *dst, size_t n);
/* Each of n floats rounded to half and widened back (a Cast to float16
 * kept in float32); src and dst may be the same buffer. */
void half_round(const float *src, float *dst, size_t n);

#endif
