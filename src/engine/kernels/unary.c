/*
 * unary.c - element-wise unary operators (activations and math functions),
 * Not/IsNaN/IsInf, and Cast between every dtype the engine carries.
 *
 * kernels_unary_f32 switches on the operator once and then runs one tight
 * loop; the activation formulas follow the ONNX operator definitions
 * (Round is half-to-even, Softplus is written to not overflow).
 */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "engine/kernels/kernels.h"

void kernels_unary_defaults(kernels_unary_op op, kernels_unary_params *p) {
    p->alpha = 0.0f;
    p->beta = 0.0f;
    p->min = -INFINITY;
    p->max = INFINITY;
    switch (op) {
    case KERNELS_LEAKY_RELU: p->alpha = 0.01f; break;
    case KERNELS_HARD_SIGMOID: p->alpha = 0.2f; p->beta = 0.5f; break;
    case KERNELS_ELU:
    case KERNELS_CELU:
    case KERNELS_THRESHOLDED_RELU: p->alpha = 1.0f; break;
    case KERNELS_SELU: p->alpha = 1.67326319217681884765625f; p->beta = 1.05070102214813232421875f; break;
    default: break;
    }
}

/* Applies EXPR (in terms of v) to every element. */
#define UNARY_LOOP(EXPR)                                   \
    do {                                                   \
        for (int64_t i = 0; i < n; i++) {                  \
            const float v = x[i];                          \
            y[i] = (EXPR);                                 \
        }                                                  \
    } while (0)

static inline float unary_sigmoid(float v) {
    /* Never exponentiates a large positive number. */
    if (v >= 0) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

static inline float unary_softplus(float v) {
    return v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v));
}

void kernels_unary_f32(kernels_unary_op op, const kernels_unary_params *p, const float *x, float *y, int64_t n) {
    kernels_unary_params defaults;
    if (!p) {
        kernels_unary_defaults(op, &defaults);
        p = &defaults;
    }
    const float alpha = p->alpha, beta = p->beta, lo = p->min, hi = p->max;
    switch (op) {
    case KERNELS_RELU: UNARY_LOOP(v > 0 ? v : 0.0f); break;
    case KERNELS_SIGMOID: UNARY_LOOP(unary_sigmoid(v)); break;
    case KERNELS_TANH: UNARY_LOOP(tanhf(v)); break;
    case KERNELS_EXP: UNARY_LOOP(expf(v)); break;
    case KERNELS_LOG: UNARY_LOOP(logf(v)); break;
    case KERNELS_SQRT: UNARY_LOOP(sqrtf(v)); break;
    case KERNELS_NEG: UNARY_LOOP(-v); break;
    case KERNELS_ABS: UNARY_LOOP(fabsf(v)); break;
    case KERNELS_RECIPROCAL: UNARY_LOOP(1.0f / v); break;
    case KERNELS_FLOOR: UNARY_LOOP(floorf(v)); break;
    case KERNELS_CEIL: UNARY_LOOP(ceilf(v)); break;
    case KERNELS_ROUND: UNARY_LOOP(nearbyintf(v)); break; /* default rounding mode: half to even */
    case KERNELS_ERF: UNARY_LOOP(erff(v)); break;
    case KERNELS_SIGN: UNARY_LOOP(v > 0 ? 1.0f : v < 0 ? -1.0f : v); break;
    case KERNELS_SIN: UNARY_LOOP(sinf(v)); break;
    case KERNELS_COS: UNARY_LOOP(cosf(v)); break;
    case KERNELS_IDENTITY: if (x != y && n > 0) memmove(y, x, (size_t)n * sizeof *y); break;
    case KERNELS_CLIP: UNARY_LOOP(v < lo ? lo : v > hi ? hi : v); break;
    case KERNELS_LEAKY_RELU: UNARY_LOOP(v >= 0 ? v : alpha * v); break;
    case KERNELS_HARD_SIGMOID: UNARY_LOOP(fmaxf(0.0f, fminf(1.0f, alpha * v + beta))); break;
    case KERNELS_HARD_SWISH: UNARY_LOOP(v * fmaxf(0.0f, fminf(1.0f, v / 6.0f + 0.5f))); break;
    case KERNELS_ELU: UNARY_LOOP(v >= 0 ? v : alpha * expm1f(v)); break;
    case KERNELS_SELU: UNARY_LOOP(v > 0 ? beta * v : beta * alpha * expm1f(v)); break;
    case KERNELS_CELU: UNARY_LOOP(fmaxf(0.0f, v) + fminf(0.0f, alpha * expm1f(v / alpha))); break;
    case KERNELS_SOFTPLUS: UNARY_LOOP(unary_softplus(v)); break;
    case KERNELS_SOFTSIGN: UNARY_LOOP(v / (1.0f + fabsf(v))); break;
    case KERNELS_SILU: UNARY_LOOP(v * unary_sigmoid(v)); break;
    case KERNELS_MISH: UNARY_LOOP(v * tanhf(unary_softplus(v))); break;
    case KERNELS_GELU:
        if (alpha != 0.0f) {
            const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
            UNARY_LOOP(0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v))));
        } else {
            UNARY_LOOP(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
        }
        break;
    case KERNELS_THRESHOLDED_RELU: UNARY_LOOP(v > alpha ? v : 0.0f); break;
    }
}

/* Integer unary loop for element type T. */
#define INT_UNARY(T, UT)                                                                           \
    do {                                                                                           \
        const T *xv = (const T *)x;                                                                \
        T *yv = (T *)y;                                                                            \
        switch (op) {                                                                              \
        case KERNELS_NEG: for (int64_t i = 0; i < n; i++) yv[i] = (T)(0 - (UT)xv[i]); break;        \
        case KERNELS_ABS:                                                                          \
            for (int64_t i = 0; i < n; i++) yv[i] = xv[i] < 0 ? (T)(0 - (UT)xv[i]) : xv[i];         \
            break;                                                                                 \
        case KERNELS_SIGN: for (int64_t i = 0; i < n; i++) yv[i] = (T)((xv[i] > 0) - (xv[i] < 0)); break; \
        case KERNELS_RELU: for (int64_t i = 0; i < n; i++) yv[i] = xv[i] > 0 ? xv[i] : 0; break;   \
        case KERNELS_IDENTITY: if (x != y && n > 0) memmove(y, x, (size_t)n * sizeof(T)); break;           \
        case KERNELS_CLIP:                                                                         \
            for (int64_t i = 0; i < n; i++) yv[i] = xv[i] < lo ? (T)lo : xv[i] > hi ? (T)hi : xv[i]; \
            break;                                                                                 \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)

vigil_status kernels_unary_int(kernels_unary_op op, vigil_dtype dtype, const void *x, void *y, int64_t n, int64_t lo,
                               int64_t hi, vigil_error *err) {
    if (op != KERNELS_NEG && op != KERNELS_ABS && op != KERNELS_SIGN && op != KERNELS_RELU &&
        op != KERNELS_IDENTITY && op != KERNELS_CLIP)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "unary op %d not supported for integers", (int)op);
    switch (dtype) {
    case VIGIL_DTYPE_I64: INT_UNARY(int64_t, uint64_t); return VIGIL_OK;
    case VIGIL_DTYPE_I32: INT_UNARY(int32_t, uint32_t); return VIGIL_OK;
    case VIGIL_DTYPE_I8: INT_UNARY(int8_t, uint8_t); return VIGIL_OK;
    default:
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "integer unary op on %s", vigil_dtype_name(dtype));
    }
}

void kernels_not(const uint8_t *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = !x[i];
}

void kernels_isnan_f32(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] != x[i];
}

void kernels_isinf_f32(const float *x, uint8_t *y, int64_t n, int detect_negative, int detect_positive) {
    for (int64_t i = 0; i < n; i++)
        y[i] = (detect_positive && x[i] == INFINITY) || (detect_negative && x[i] == -INFINITY);
}

/* ---- half precision: core/half.c (one rounding, to nearest even) ---- */

/* ---- Cast ---- */

/* Float to integer: truncate toward zero, saturate, NaN -> 0. */
#define FLOAT_TO_INT(v, T, TMIN, TMAX) \
    ((v) != (v) ? (T)0 : (v) <= (double)(TMIN) ? (T)(TMIN) : (v) >= (double)(TMAX) ? (T)(TMAX) : (T)(v))

/* Reads element i of x (dtype from) as double / int64 / bool. */
static inline double cast_load_f64(vigil_dtype from, const void *x, int64_t i) {
    switch (from) {
    case VIGIL_DTYPE_F32: return ((const float *)x)[i];
    case VIGIL_DTYPE_F64: return ((const double *)x)[i];
    case VIGIL_DTYPE_F16: return half_to_float(((const uint16_t *)x)[i]);
    case VIGIL_DTYPE_I64: return (double)((const int64_t *)x)[i];
    case VIGIL_DTYPE_I32: return ((const int32_t *)x)[i];
    case VIGIL_DTYPE_U8: return ((const uint8_t *)x)[i];
    case VIGIL_DTYPE_I8: return ((const int8_t *)x)[i];
    case VIGIL_DTYPE_BOOL: return ((const uint8_t *)x)[i] != 0;
    }
    return 0;
}

static int cast_is_float(vigil_dtype t) {
    return t == VIGIL_DTYPE_F32 || t == VIGIL_DTYPE_F64 || t == VIGIL_DTYPE_F16;
}

static int cast_known(vigil_dtype t) {
    return (unsigned)t <= VIGIL_DTYPE_F16;
}

/* Integer source to integer destination: exact through int64 with C
 * wrap-around to the destination width (what ONNX Runtime does). */
static inline int64_t cast_load_i64(vigil_dtype from, const void *x, int64_t i) {
    switch (from) {
    case VIGIL_DTYPE_I64: return ((const int64_t *)x)[i];
    case VIGIL_DTYPE_I32: return ((const int32_t *)x)[i];
    case VIGIL_DTYPE_U8: return ((const uint8_t *)x)[i];
    case VIGIL_DTYPE_I8: return ((const int8_t *)x)[i];
    case VIGIL_DTYPE_BOOL: return ((const uint8_t *)x)[i] != 0;
    default: return 0;
    }
}

/* Fast path for the hot pairs (f32 <-> i64/i32, u8 -> f32, f16 <-> f32:
 * a float16 model's boundaries). */
static int cast_fast(vigil_dtype from, const void *x, vigil_dtype to, void *y, int64_t n) {
    if (from == VIGIL_DTYPE_F16 && to == VIGIL_DTYPE_F32) {
        half_widen(x, y, (size_t)n);
        return 1;
    }
    if (from == VIGIL_DTYPE_F32 && to == VIGIL_DTYPE_F16) {
        half_narrow(x, y, (size_t)n);
        return 1;
    }
    if (from == VIGIL_DTYPE_U8 && to == VIGIL_DTYPE_F32) {
        const uint8_t *s = x;
        float *d = y;
        for (int64_t i = 0; i < n; i++) d[i] = s[i];
        return 1;
    }
    if (from == VIGIL_DTYPE_I64 && to == VIGIL_DTYPE_F32) {
        const int64_t *s = x;
        float *d = y;
        for (int64_t i = 0; i < n; i++) d[i] = (float)s[i];
        return 1;
    }
    if (from == VIGIL_DTYPE_F32 && to == VIGIL_DTYPE_I64) {
        const float *s = x;
        int64_t *d = y;
        for (int64_t i = 0; i < n; i++) d[i] = FLOAT_TO_INT(s[i], int64_t, INT64_MIN, INT64_MAX);
        return 1;
    }
    return 0;
}

vigil_status kernels_cast(vigil_dtype from, const void *x, vigil_dtype to, void *y, int64_t n, vigil_error *err) {
    if (!cast_known(from) || !cast_known(to))
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "cast from dtype %d to %d", (int)from, (int)to);
    if (from == to) {
        if (x != y && n > 0) memmove(y, x, (size_t)n * vigil_dtype_size(to));
        return VIGIL_OK;
    }
    if (cast_fast(from, x, to, y, n)) return VIGIL_OK;
    if (!cast_is_float(from) && !cast_is_float(to)) {
        for (int64_t i = 0; i < n; i++) {
            int64_t v = cast_load_i64(from, x, i);
            switch (to) {
            case VIGIL_DTYPE_I64: ((int64_t *)y)[i] = v; break;
            case VIGIL_DTYPE_I32: ((int32_t *)y)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
            case VIGIL_DTYPE_U8: ((uint8_t *)y)[i] = (uint8_t)(uint64_t)v; break;
            case VIGIL_DTYPE_I8: ((int8_t *)y)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
            case VIGIL_DTYPE_BOOL: ((uint8_t *)y)[i] = v != 0; break;
            default: break;
            }
        }
        return VIGIL_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = cast_load_f64(from, x, i);
        switch (to) {
        case VIGIL_DTYPE_F32: ((float *)y)[i] = (float)v; break;
        case VIGIL_DTYPE_F64: ((double *)y)[i] = v; break;
        case VIGIL_DTYPE_F16: ((uint16_t *)y)[i] = half_from_double(v); break;
        case VIGIL_DTYPE_I64: ((int64_t *)y)[i] = FLOAT_TO_INT(v, int64_t, INT64_MIN, INT64_MAX); break;
        case VIGIL_DTYPE_I32: ((int32_t *)y)[i] = FLOAT_TO_INT(v, int32_t, INT32_MIN, INT32_MAX); break;
        case VIGIL_DTYPE_U8: ((uint8_t *)y)[i] = FLOAT_TO_INT(v, uint8_t, 0, UINT8_MAX); break;
        case VIGIL_DTYPE_I8: ((int8_t *)y)[i] = FLOAT_TO_INT(v, int8_t, INT8_MIN, INT8_MAX); break;
        case VIGIL_DTYPE_BOOL: ((uint8_t *)y)[i] = v != 0; break;
        }
    }
    return VIGIL_OK;
}

void kernels_cast_to_f16_as_f32(vigil_dtype from, const void *x, float *y, int64_t n) {
    if (from == VIGIL_DTYPE_F32) {
        half_round(x, y, (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = half_to_float(half_from_double(cast_load_f64(from, x, i)));
}
