/*
 * vmath.c - vectorised float32 math where the engine's hot paths need it and
 * XNNPACK (2022) has nothing: the fused SiLU (x * sigmoid(x)) that follows
 * most convolutions of YOLOv5/v8/11, and softmax along a non-innermost axis
 * (YOLOv8's distribution-focal-loss head); and per-tensor QuantizeLinear /
 * DequantizeLinear, which sit on every activation of a QDQ model.
 *
 * XNNPACK (2022) has no SiLU, and sigmoid-then-multiply costs two extra passes
 * over memory and two thread-pool dispatches per layer.  This is one pass:
 * x / (1 + exp(-x)) with exp from a Cody-Waite range reduction and a degree-6
 * polynomial (relative error ~2e-7), written with GCC vector extensions so
 * that it is portable C; target_clones builds an AVX2+FMA variant next to the
 * baseline one and picks it at load time on CPUs that have it.  The plain-C
 * references are kernels_unary_f32(KERNELS_SILU) and kernels_softmax_f32;
 * test_engine_kernels.c compares them.
 */
#include <math.h>
#include <string.h>

#include "engine/ops/vmath.h"

#include "core/half.h"

/* The 8-lane helpers are static and inlined: the ABI of passing 32-byte
 * vectors without AVX, which GCC warns about, never applies. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
#define LANES 8

/* GCC on x86-64 builds an AVX2 and an FMA clone beside the baseline and picks
 * one at load time; other compilers and ISAs get the portable loop (clang 14
 * rejects GCC's clone spelling, and ARM has no such targets). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VMATH_CLONES __attribute__((target_clones("avx2,fma", "default")))
#else
#define VMATH_CLONES
#endif
#define CHUNK 4096 /* elements per thread-pool task: 16 KiB, stays in L1/L2 */

static inline __attribute__((always_inline)) vf splat(float f) {
    return (vf){f, f, f, f, f, f, f, f};
}

static inline __attribute__((always_inline)) vf clamp(vf x, float lo, float hi) {
    vi below = x<splat(lo), above = x> splat(hi);
    vf y = (vf)(((vi)splat(lo) & below) | ((vi)x & ~below));
    return (vf)(((vi)splat(hi) & above) | ((vi)y & ~above));
}

static inline __attribute__((always_inline)) vf vexp(vf x) {
    x = clamp(x, -87.0f, 88.0f);
    const vf magic = splat(12582912.0f); /* 1.5 * 2^23: rounds to nearest */
    vf n = (x * splat(1.44269504088896341f) + magic) - magic;
    vf r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    vf p = splat(1.0f / 720.0f);
    p = p * r + splat(1.0f / 120.0f);
    p = p * r + splat(1.0f / 24.0f);
    p = p * r + splat(1.0f / 6.0f);
    p = p * r + splat(0.5f);
    p = p * r + splat(1.0f);
    p = p * r + splat(1.0f);
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

VMATH_CLONES static void silu_block(float *x, size_t n) {
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        vi tiny = v < splat(-88.0f); /* x * sigmoid(x) underflows to 0 there */
        v = v / (splat(1.0f) + vexp(-v));
        v = (vf)((vi)v & ~tiny);
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-x[i]));
}

void silu_f32_inplace(float *x, size_t n) {
    silu_block(x, n);
}

/* float16 values (XNNPACK's f16 convolution with a fused SiLU): widened a
 * tile at a time into a stack buffer, computed in float32 like the float32
 * path, and rounded back once. */
#define SILU_F16_TILE 512
static void silu_half_block(uint16_t *x, size_t n) {
    float buf[SILU_F16_TILE];
    for (size_t i = 0; i < n; i += SILU_F16_TILE) {
        size_t k = n - i < SILU_F16_TILE ? n - i : SILU_F16_TILE;
        half_widen(x + i, buf, k);
        silu_block(buf, k);
        half_narrow(buf, x + i, k);
    }
}

typedef struct silu_job {
    void *x;
    int half; /* x holds float16 values */
} silu_job;

static void silu_task(void *arg, size_t start, size_t count) {
    const silu_job *j = arg;
    if (j->half)
        silu_half_block((uint16_t *)j->x + start, count);
    else
        silu_block((float *)j->x + start, count);
}

static void silu_parallel(silu_job *j, size_t n, pthreadpool_t pool) {
    if (!pool || n <= CHUNK)
        silu_task(j, 0, n);
    else
        pthreadpool_parallelize_1d_tile_1d(pool, silu_task, j, n, CHUNK, 0);
}

void silu_f32_parallel(float *x, size_t n, pthreadpool_t pool) {
    silu_job j = {x, 0};
    silu_parallel(&j, n, pool);
}

void silu_f16_parallel(uint16_t *x, size_t n, pthreadpool_t pool) {
    silu_job j = {x, 1};
    silu_parallel(&j, n, pool);
}

/* y = exp(x - m) for n elements (m broadcast), returns nothing; tail scalar. */
VMATH_CLONES static void exp_shifted(const float *x, const float *m, float *y,
                                                                              size_t n) {
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v, mv;
        memcpy(&v, x + i, sizeof v);
        memcpy(&mv, m + i, sizeof mv);
        v = vexp(v - mv);
        memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++)
        y[i] = expf(x[i] - m[i]);
}

void softmax_f32_strided(const float *x, float *y, size_t outer, size_t len, size_t inner, float *scratch) {
    float *mx = scratch, *sum = scratch + inner;
    for (size_t o = 0; o < outer; o++) {
        const float *xo = x + o * len * inner;
        float *yo = y + o * len * inner;
        for (size_t i = 0; i < inner; i++)
            mx[i] = xo[i];
        for (size_t k = 1; k < len; k++)
            for (size_t i = 0; i < inner; i++)
                mx[i] = xo[k * inner + i] > mx[i] ? xo[k * inner + i] : mx[i];
        for (size_t i = 0; i < inner; i++)
            sum[i] = 0.0f;
        for (size_t k = 0; k < len; k++) {
            exp_shifted(xo + k * inner, mx, yo + k * inner, inner);
            for (size_t i = 0; i < inner; i++)
                sum[i] += yo[k * inner + i];
        }
        for (size_t i = 0; i < inner; i++)
            sum[i] = 1.0f / sum[i];
        for (size_t k = 0; k < len; k++)
            for (size_t i = 0; i < inner; i++)
                yo[k * inner + i] *= sum[i];
    }
}

/* ---- QuantizeLinear / DequantizeLinear, per tensor ---- */

typedef int8_t vs8 __attribute__((vector_size(LANES)));
typedef uint8_t vu8 __attribute__((vector_size(LANES)));

/* kernels_quantize_linear's arithmetic, lane by lane: x / scale, NaN as 0,
 * clamped to the quantized range less the zero point, rounded half to even
 * by adding and subtracting 1.5 * 2^23, plus the zero point. */
static inline float quantize_scalar(float x, float scale, float lo, float hi) {
    float v = x / scale;
    v = v != v ? 0.0f : v;
    v = v < lo ? lo : v > hi ? hi : v;
    return (v + 12582912.0f) - 12582912.0f;
}

typedef uint8_t vb32 __attribute__((vector_size(LANES * 4)));
typedef uint64_t v4u64 __attribute__((vector_size(LANES * 4)));

/* Little-endian compilers whose __builtin_shufflevector may change the
 * vector length: the low byte of an int32 lane is its first. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && (defined(__clang__) || __GNUC__ >= 12)
#define LOW_BYTES_SHUFFLE 1
#else
#define LOW_BYTES_SHUFFLE 0
#endif

static inline __attribute__((always_inline)) vu8 low_bytes(vi q) {
#if LOW_BYTES_SHUFFLE
    return __builtin_shufflevector((vb32)q, (vb32)q, 0, 4, 8, 12, 16, 20, 24, 28);
#else
    return __builtin_convertvector(q & 255, vu8);
#endif
}

/* 8 bytes to 8 int32 lanes, sign- or zero-extended, by a byte shuffle (the
 * inverse of low_bytes, and for the same reason). */
static inline __attribute__((always_inline)) vi widen_bytes(const void *p, int is_signed) {
#if LOW_BYTES_SHUFFLE
    uint64_t u; /* one 8-byte load into lane 0: a byte-vector load went through the stack */
    memcpy(&u, p, sizeof u);
    vb32 b = (vb32)(v4u64){u, 0, 0, 0};
    if (is_signed) /* each byte to the top of its lane, then an arithmetic shift */
        return (vi)__builtin_shufflevector(b, b, 31, 31, 31, 0, 31, 31, 31, 1, 31, 31, 31, 2, 31, 31, 31, 3, 31, 31,
                                           31, 4, 31, 31, 31, 5, 31, 31, 31, 6, 31, 31, 31, 7) >>
               24;
    return (vi)__builtin_shufflevector(b, b, 0, 31, 31, 31, 1, 31, 31, 31, 2, 31, 31, 31, 3, 31, 31, 31, 4, 31, 31,
                                       31, 5, 31, 31, 31, 6, 31, 31, 31, 7, 31, 31, 31);
#else
    vu8 b;
    memcpy(&b, p, sizeof b);
    return is_signed ? __builtin_convertvector((vs8)b, vi) : __builtin_convertvector(b, vi);
#endif
}

VMATH_CLONES static void quantize_block(const float *x, size_t n, float scale, int32_t zp, int is_signed, void *y) {
    float lo = (float)((is_signed ? -128 : 0) - zp), hi = (float)((is_signed ? 127 : 255) - zp);
    /* The splats live outside the loop: GCC rebuilt them lane by lane in
     * every iteration (a quarter of an int8 model's time went there). */
    const vf magic = splat(12582912.0f), sv = splat(scale), lov = splat(lo), hiv = splat(hi);
    vi zpv = {zp, zp, zp, zp, zp, zp, zp, zp};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        v = v / sv;
        v = (vf)((vi)v & (vi)(v == v)); /* NaN -> 0 */
        vi below = v < lov, above = v > hiv;
        v = (vf)(((vi)lov & below) | ((vi)v & ~below));
        v = (vf)(((vi)hiv & above) | ((vi)v & ~above));
        vi q = __builtin_convertvector((v + magic) - magic, vi) + zpv;
        /* q is in range, so its low bytes are the answer (int8 or uint8
         * alike); a byte shuffle takes them where __builtin_convertvector
         * narrowed lane by lane through general registers. */
        vu8 b = low_bytes(q);
        memcpy((uint8_t *)y + i, &b, sizeof b);
    }
    for (; i < n; i++) {
        int32_t q = (int32_t)quantize_scalar(x[i], scale, lo, hi) + zp;
        if (is_signed)
            ((int8_t *)y)[i] = (int8_t)q;
        else
            ((uint8_t *)y)[i] = (uint8_t)q;
    }
}

void quantize_f32(const float *x, size_t n, float scale, int32_t zero_point, int is_signed, void *y) {
    quantize_block(x, n, scale, zero_point, is_signed, y);
}

VMATH_CLONES static void dequantize_block(const void *x, size_t n, float scale, int32_t zp, int is_signed, float *y) {
    vf s = splat(scale), z = splat((float)zp);
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v = __builtin_convertvector(widen_bytes((const uint8_t *)x + i, is_signed), vf);
        v = (v - z) * s;
        memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++)
        y[i] = ((float)(is_signed ? ((const int8_t *)x)[i] : ((const uint8_t *)x)[i]) - (float)zp) * scale;
}

void dequantize_f32(const void *x, size_t n, float scale, int32_t zero_point, int is_signed, float *y) {
    dequantize_block(x, n, scale, zero_point, is_signed, y);
}
