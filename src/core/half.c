/*
 * half.c - binary16 conversions (see half.h).  Written on the bit patterns
 * rather than with _Float16, which not every compiler and target we build
 * for offers, and whose conversions may follow the FPU's rounding mode.
 *
 * The array conversions (half_widen, half_narrow, half_round) are what a
 * float16 model pays at its boundaries on every run: on x86-64 CPUs with
 * F16C they convert eight values per instruction (vcvtph2ps, and vcvtps2ph
 * with the rounding given in the instruction - nearest even - not taken from
 * MXCSR), which rounds exactly as the bit-pattern code does; a block of
 * eight holding a NaN (or, widening, an infinity or NaN) is done by the
 * scalar code, so NaN payloads come out as they always have.
 */
#include "core/half.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HALF_F16C 1
#endif

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float f = (float)mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    bits = exp == 0x1f ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The rounding both widths share: a value of magnitude mant (with its
 * implicit bit when normal) * 2^(e2) where mant has `bits` fraction bits, and
 * the half exponent e (biased) it would take.  Works on 64-bit integers so a
 * double's 52 fraction bits fit. */
static uint16_t round_to_half(uint16_t sign, int e, uint64_t mant, int fraction_bits) {
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00); /* overflow: infinity */
    int shift = fraction_bits - 10;                  /* bits dropped from a normal half */
    uint64_t implicit = (uint64_t)1 << fraction_bits;
    if (e <= 0) { /* subnormal: shift the implicit bit in, and 1 - e more */
        shift += 1 - e;
        mant |= implicit;
        if (shift > fraction_bits + 1) return sign; /* below half the smallest subnormal */
        uint64_t half = mant >> shift, rem = mant & (((uint64_t)1 << shift) - 1), mid = (uint64_t)1 << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++; /* may become the smallest normal: correct */
        return (uint16_t)(sign | half);
    }
    uint64_t half = ((uint64_t)e << 10) | (mant >> shift), rem = mant & (((uint64_t)1 << shift) - 1),
             mid = (uint64_t)1 << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++; /* may carry into the exponent, up to infinity: correct */
    return (uint16_t)(sign | half);
}

uint16_t half_from_float(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t exp = (bits >> 23) & 0xff, mant = bits & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0)); /* infinity, NaN */
    if (exp == 0) return sign; /* float subnormals are far below half's smallest */
    return round_to_half(sign, (int)exp - 127 + 15, mant, 23);
}

uint16_t half_from_double(double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 48) & 0x8000);
    uint64_t exp = (bits >> 52) & 0x7ff, mant = bits & 0xfffffffffffffull;
    if (exp == 0x7ff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp == 0) return sign;
    return round_to_half(sign, (int)exp - 1023 + 15, mant, 52);
}

#ifdef HALF_F16C
static int has_f16c(void) {
    static int known = -1; /* a property of the CPU, the same for every thread: a benign race */
    if (known < 0) known = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
    return known;
}

/* The first n - n % 8 elements; the caller converts the rest. */
__attribute__((target("avx,f16c"))) static size_t widen_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i special = _mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7c00)), _mm_set1_epi16(0x7c00));
        if (_mm_movemask_epi8(special)) { /* infinity or NaN in the block */
            for (size_t k = i; k < i + 8; k++) dst[k] = half_to_float(src[k]);
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    return i;
}

__attribute__((target("avx,f16c"))) static size_t narrow_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q))) { /* a NaN in the block */
            for (size_t k = i; k < i + 8; k++) dst[k] = half_from_float(src[k]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}
#endif

void half_widen(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
#ifdef HALF_F16C
    if (has_f16c()) i = widen_f16c(src, dst, n);
#endif
    for (; i < n; i++)
        dst[i] = half_to_float(src[i]);
}

void half_narrow(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
#ifdef HALF_F16C
    if (has_f16c()) i = narrow_f16c(src, dst, n);
#endif
    for (; i < n; i++)
        dst[i] = half_from_float(src[i]);
}

void half_round(const float *src, float *dst, size_t n) {
    uint16_t block[512];
    for (size_t i = 0; i < n; i += 512) {
        size_t m = n - i < 512 ? n - i : 512;
        half_narrow(src + i, block, m);
        half_widen(block, dst + i, m);
    }
}
