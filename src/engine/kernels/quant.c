/*
 * quant.c - reference kernels of ONNX's linear quantization: QuantizeLinear,
 * DequantizeLinear, DynamicQuantizeLinear, and the two steps the integer
 * operators (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul) are
 * built from: subtracting zero points into int64 (so that the convolution or
 * matrix product that follows sums exactly, whatever its length) and
 * requantizing the sums.
 *
 * Rounding is the spec's: half to even (nearbyint in the default rounding
 * mode), then saturation to the quantized type.  The arithmetic follows ONNX's
 * reference implementation operation by operation (x / scale in float32, the
 * requantization product in double) so that results match bit for bit.
 */
#include <math.h>

#include "engine/kernels/kernels.h"

kernels_qaxis kernels_qaxis_make(const kshape *s, int axis) {
    kernels_qaxis ax = {1, 1, kshape_count(s)};
    if (axis >= 0 && axis < s->ndim) {
        ax.outer = kshape_range_count(s, 0, axis);
        ax.channels = s->dims[axis];
        ax.inner = kshape_range_count(s, axis + 1, s->ndim);
    }
    return ax;
}

void kernels_qrange(vigil_dtype qtype, int32_t *lo, int32_t *hi) {
    *lo = qtype == VIGIL_DTYPE_I8 ? INT8_MIN : 0;
    *hi = qtype == VIGIL_DTYPE_I8 ? INT8_MAX : UINT8_MAX;
}

int32_t kernels_qload(vigil_dtype dtype, const void *x, int64_t i) {
    switch (dtype) {
    case VIGIL_DTYPE_U8: return ((const uint8_t *)x)[i];
    case VIGIL_DTYPE_I8: return ((const int8_t *)x)[i];
    case VIGIL_DTYPE_I32: return ((const int32_t *)x)[i];
    default: return 0;
    }
}

/* Rounds half to even and saturates v (already offset by the zero point),
 * then stores it as element i of y. */
static void qstore(double v, vigil_dtype qtype, int32_t lo, int32_t hi, void *y, int64_t i) {
    double r = isnan(v) ? 0.0 : nearbyint(v);
    int32_t q = r <= lo ? lo : r >= hi ? hi : (int32_t)r;
    if (qtype == VIGIL_DTYPE_I8)
        ((int8_t *)y)[i] = (int8_t)q;
    else
        ((uint8_t *)y)[i] = (uint8_t)q;
}

/* x / scale clamped to [lo, hi] (integers: clamping before rounding is the
 * same as saturating after), NaN as 0, rounded half to even: adding 1.5 *
 * 2^23 leaves no fraction bits of a float this small, and the default
 * rounding mode rounds that addition to even.  Written so that the compiler
 * can vectorise the loops below. */
static inline int32_t quantize_one(float x, float scale, float lo, float hi) {
    float v = x / scale;
    v = v != v ? 0.0f : v;
    v = v < lo ? lo : v > hi ? hi : v;
    return (int32_t)((v + 12582912.0f) - 12582912.0f);
}

void kernels_quantize_linear(const float *x, const kernels_qaxis *ax, const float *scale, vigil_dtype qtype,
                             const void *zero_point, void *y) {
    int32_t qmin, qmax;
    kernels_qrange(qtype, &qmin, &qmax);
    int64_t i = 0;
    for (int64_t o = 0; o < ax->outer; o++)
        for (int64_t c = 0; c < ax->channels; c++, i += ax->inner) {
            int32_t zp = zero_point ? kernels_qload(qtype, zero_point, c) : 0;
            float s = scale[c], lo = (float)(qmin - zp), hi = (float)(qmax - zp);
            const float *xr = x + i;
            if (qtype == VIGIL_DTYPE_I8) {
                int8_t *yr = (int8_t *)y + i;
                for (int64_t k = 0; k < ax->inner; k++)
                    yr[k] = (int8_t)(quantize_one(xr[k], s, lo, hi) + zp);
            } else {
                uint8_t *yr = (uint8_t *)y + i;
                for (int64_t k = 0; k < ax->inner; k++)
                    yr[k] = (uint8_t)(quantize_one(xr[k], s, lo, hi) + zp);
            }
        }
}

void kernels_dequantize_linear(vigil_dtype xtype, const void *x, const kernels_qaxis *ax, const float *scale,
                               const void *zero_point, float *y) {
    int64_t i = 0;
    for (int64_t o = 0; o < ax->outer; o++)
        for (int64_t c = 0; c < ax->channels; c++, i += ax->inner) {
            float s = scale[c], zp = zero_point ? (float)kernels_qload(xtype, zero_point, c) : 0.0f;
            float *yr = y + i;
            if (xtype == VIGIL_DTYPE_U8) {
                const uint8_t *xr = (const uint8_t *)x + i;
                for (int64_t k = 0; k < ax->inner; k++)
                    yr[k] = ((float)xr[k] - zp) * s;
            } else if (xtype == VIGIL_DTYPE_I8) {
                const int8_t *xr = (const int8_t *)x + i;
                for (int64_t k = 0; k < ax->inner; k++)
                    yr[k] = ((float)xr[k] - zp) * s;
            } else {
                for (int64_t k = 0; k < ax->inner; k++)
                    yr[k] = ((float)kernels_qload(xtype, x, i + k) - zp) * s;
            }
        }
}

void kernels_dynamic_quantize_linear(const float *x, int64_t n, uint8_t *y, float *scale, uint8_t *zero_point) {
    float max = 0.0f, min = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] > max) max = x[i];
        if (x[i] < min) min = x[i];
    }
    float s = (max == min ? 1.0f : max - min) / 255.0f;
    float zp = 0.0f - min / s;
    zp = zp < 0.0f ? 0.0f : zp > 255.0f ? 255.0f : zp;
    uint8_t z = (uint8_t)nearbyintf(zp);
    *scale = s;
    *zero_point = z;
    kernels_qaxis ax = {1, 1, n};
    kernels_quantize_linear(x, &ax, &s, VIGIL_DTYPE_U8, &z, y);
}

void kernels_qcenter(vigil_dtype xtype, const void *x, const kernels_qaxis *ax, vigil_dtype zptype,
                     const void *zero_point, int64_t *y) {
    int64_t i = 0;
    for (int64_t o = 0; o < ax->outer; o++)
        for (int64_t c = 0; c < ax->channels; c++) {
            int64_t zp = zero_point ? kernels_qload(zptype, zero_point, c) : 0;
            for (int64_t k = 0; k < ax->inner; k++, i++)
                y[i] = kernels_qload(xtype, x, i) - zp;
        }
}

void kernels_requantize(const int64_t *acc, const kernels_qaxis *ax, const float *multiplier, vigil_dtype qtype,
                        const void *zero_point, void *y) {
    int32_t lo, hi;
    kernels_qrange(qtype, &lo, &hi);
    double zp = zero_point ? kernels_qload(qtype, zero_point, 0) : 0;
    int64_t i = 0;
    for (int64_t o = 0; o < ax->outer; o++)
        for (int64_t c = 0; c < ax->channels; c++) {
            double m = multiplier[c];
            for (int64_t k = 0; k < ax->inner; k++, i++)
                qstore(nearbyint((double)acc[i] * m) + zp, qtype, lo, hi, y, i);
        }
}
