/*
 * qconv_vnni.c - the int8 convolution of QLinearConv on AVX-512 VNNI.
 *
 * Debian's XNNPACK (2022) multiplies int8 through 16-bit madds (vpmaddwd),
 * which on this project's CPUs makes its int8 convolution barely faster
 * than its float32 one; VNNI's vpdpbusd takes four uint8 x int8 products
 * into each int32 lane per instruction.  uint8 activations (what `vigil
 * models quantize` writes) go in as they are; int8 ones are shifted to uint8
 * (x ^ 0x80, zero point + 128) while the input is copied into its padded
 * buffer.
 *
 * Layout: NHWC in and out.  The input is copied into a buffer padded with
 * its zero point (spatial padding) and to a multiple of 4 channels, so the
 * inner loop needs no bounds: sum over taps and channels of x * w, minus
 * x_zp * sum(w) (folded with the bias into one constant per channel), is the
 * convolution of (x - x_zp) * w.  Weights are packed per block of 32 output
 * channels as [tap][channel / 4][32 outputs][4 channels], so one vpdpbusd
 * takes a broadcast of four input channels against 16 outputs.  A tile is 8
 * output pixels of one row x 32 output channels (16 accumulators).
 *
 * Requantization: the int32 sum as float32 times x_scale * w_scale /
 * y_scale, rounded to nearest even (the float32 conversion), plus the
 * output zero point, clamped: within one step of the reference's double
 * arithmetic (float32's 24 bits round sums above 2^24 by under 1e-7 of
 * their value).
 *
 * Also here, for the same CPUs: the 256-byte table lookup of vigil.QLookup
 * on AVX-512 VBMI (two vpermi2b over the table's halves and a blend on the
 * top bit: 64 bytes per four instructions, where the scalar loop took one
 * byte per load).
 */
#include <string.h>

#include "core/alloc.h"
#include "engine/ops/qconv_vnni.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QCONV_VNNI 1
#include <immintrin.h>
#else
#define QCONV_VNNI 0
#endif

#define OC_BLOCK 32 /* output channels per tile */
#define PX_BLOCK 8  /* output pixels per tile */

struct qconv_vnni {
    qconv_vnni_params p;
    int64_t cp;         /* input channels rounded up to 4 */
    int64_t blocks;     /* output channel blocks of 32 */
    int8_t *w;          /* packed weights */
    int32_t *corr;      /* bias - x_zp * sum(w), per output channel (padded to blocks * 32) */
    float *mult;        /* x_scale * w_scale / y_scale, per output channel */
    int in_place;       /* the input needs no padded copy */
};

/* AVX-512 F and BW and the extension ext (a string literal). */
#if QCONV_VNNI
#define CPU_HAS_AVX512_AND(ext)                                                                                        \
    (__builtin_cpu_init(), __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&                   \
                               __builtin_cpu_supports(ext))
#else
#define CPU_HAS_AVX512_AND(ext) 0
#endif

int qconv_vnni_available(void) {
    return CPU_HAS_AVX512_AND("avx512vnni");
}

void qconv_vnni_destroy(qconv_vnni *c) {
    if (!c) return;
    vigil_free(c->w);
    vigil_free(c->corr);
    vigil_free(c->mult);
    vigil_free(c);
}

static int64_t padded_h(const qconv_vnni_params *p) {
    return p->h + p->pad_top + p->pad_bottom;
}

static int64_t padded_w(const qconv_vnni_params *p) {
    return p->w + p->pad_left + p->pad_right;
}

size_t qconv_vnni_scratch(const qconv_vnni_params *p) {
    return (size_t)(p->n * padded_h(p) * padded_w(p) * ((p->c + 3) / 4 * 4));
}

qconv_vnni *qconv_vnni_create(const qconv_vnni_params *p, const int8_t *w, const float *w_scale,
                              const int32_t *bias) {
    qconv_vnni *c = vigil_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->p = *p;
    c->cp = (p->c + 3) / 4 * 4;
    c->blocks = (p->m + OC_BLOCK - 1) / OC_BLOCK;
    c->in_place = p->pad_top == 0 && p->pad_bottom == 0 && p->pad_left == 0 && p->pad_right == 0 &&
                  c->cp == p->c && !p->x_signed;
    int64_t taps = p->kh * p->kw, mp = c->blocks * OC_BLOCK;
    c->w = vigil_calloc((size_t)(mp * taps * c->cp), 1);
    c->corr = vigil_calloc((size_t)mp, sizeof(int32_t));
    c->mult = vigil_calloc((size_t)mp, sizeof(float));
    if (!c->w || !c->corr || !c->mult) {
        qconv_vnni_destroy(c);
        return NULL;
    }
    int32_t xz = p->x_zp + (p->x_signed ? 128 : 0); /* as a uint8 code */
    for (int64_t o = 0; o < p->m; o++) {
        int64_t b = o / OC_BLOCK, lane = o % OC_BLOCK, sum = 0;
        for (int64_t i = 0; i < p->c; i++)
            for (int64_t t = 0; t < taps; t++) {
                int8_t v = w[(o * p->c + i) * taps + t]; /* ONNX [M, C, kh, kw] */
                sum += v;
                c->w[(((b * taps + t) * (c->cp / 4) + i / 4) * OC_BLOCK + lane) * 4 + i % 4] = v;
            }
        c->corr[o] = (int32_t)((bias ? (int64_t)bias[o] : 0) - (int64_t)xz * sum);
        c->mult[o] = p->x_scale * w_scale[o] / p->y_scale;
    }
    return c;
}

int qlookup_vbmi_available(void) {
    return CPU_HAS_AVX512_AND("avx512vbmi");
}

#if QCONV_VNNI

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void qlookup_vbmi(const uint8_t table[256], const uint8_t *x,
                                                                         uint8_t *y, size_t n) {
    __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_loadu_si512(x + i);
        __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
    if (i < n) {
        __mmask64 m = ((__mmask64)1 << (n - i)) - 1;
        __m512i v = _mm512_maskz_loadu_epi8(m, x + i);
        __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_mask_storeu_epi8(y + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
}

typedef struct vnni_job {
    const qconv_vnni *c;
    const uint8_t *x; /* padded NHWC, cp channels */
    void *y;
    const void *src; /* the input before padding, and where pad_row writes */
    void *padded;
    int64_t hp, wp, oh, ow;
} vnni_job;

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/* The epilogue of one pixel's 16 channels: requantize, clamp, store bytes. */
VNNI_TARGET static inline void store16(const qconv_vnni *c, __m512i acc, int64_t o, uint8_t *dst, __mmask16 mask) {
    __m512 v = _mm512_cvtepi32_ps(_mm512_add_epi32(acc, _mm512_loadu_si512(c->corr + o)));
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v, _mm512_loadu_ps(c->mult + o))); /* half to even */
    q = _mm512_add_epi32(q, _mm512_set1_epi32(c->p.y_zp));
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(c->p.lo)), _mm512_set1_epi32(c->p.hi));
    _mm_mask_storeu_epi8(dst, mask, _mm512_cvtepi32_epi8(q)); /* in range: the low bytes, int8 or uint8 */
}

/* The full tile: 8 pixels x 32 channels in 16 named registers (arrays
 * indexed in a loop stayed in memory). */
VNNI_TARGET static inline void tile8(const uint8_t *xp, int64_t step, const int8_t *wp, int64_t k4, __m512i *a0,
                                     __m512i *a1) {
    __m512i c00 = a0[0], c01 = a0[1], c02 = a0[2], c03 = a0[3], c04 = a0[4], c05 = a0[5], c06 = a0[6], c07 = a0[7];
    __m512i c10 = a1[0], c11 = a1[1], c12 = a1[2], c13 = a1[3], c14 = a1[4], c15 = a1[5], c16 = a1[6], c17 = a1[7];
    for (int64_t i = 0; i < k4; i++) {
        __m512i w0 = _mm512_loadu_si512(wp + i * 128), w1 = _mm512_loadu_si512(wp + i * 128 + 64);
        const uint8_t *xi = xp + i * 4;
#define VNNI_PIXEL(k)                                                                                                  \
    do {                                                                                                               \
        int32_t v;                                                                                                     \
        memcpy(&v, xi + (k) * step, 4);                                                                                \
        __m512i bx = _mm512_set1_epi32(v);                                                                             \
        c0##k = _mm512_dpbusd_epi32(c0##k, bx, w0);                                                                    \
        c1##k = _mm512_dpbusd_epi32(c1##k, bx, w1);                                                                    \
    } while (0)
        VNNI_PIXEL(0);
        VNNI_PIXEL(1);
        VNNI_PIXEL(2);
        VNNI_PIXEL(3);
        VNNI_PIXEL(4);
        VNNI_PIXEL(5);
        VNNI_PIXEL(6);
        VNNI_PIXEL(7);
#undef VNNI_PIXEL
    }
    a0[0] = c00, a0[1] = c01, a0[2] = c02, a0[3] = c03, a0[4] = c04, a0[5] = c05, a0[6] = c06, a0[7] = c07;
    a1[0] = c10, a1[1] = c11, a1[2] = c12, a1[3] = c13, a1[4] = c14, a1[5] = c15, a1[6] = c16, a1[7] = c17;
}

VNNI_TARGET static void vnni_row(void *arg, size_t row) {
    const vnni_job *j = arg;
    const qconv_vnni *c = j->c;
    const qconv_vnni_params *p = &c->p;
    int64_t n = (int64_t)row / j->oh, oy = (int64_t)row % j->oh, taps = p->kh * p->kw, k4 = c->cp / 4;
    const uint8_t *xn = j->x + n * j->hp * j->wp * c->cp;
    uint8_t *yrow = (uint8_t *)j->y + (((n * j->oh) + oy) * j->ow) * p->m;
    for (int64_t b = 0; b < c->blocks; b++) {
        int64_t o = b * OC_BLOCK, left = p->m - o;
        __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        const int8_t *wb = c->w + b * taps * k4 * OC_BLOCK * 4;
        for (int64_t ox = 0; ox < j->ow; ox += PX_BLOCK) {
            int64_t np = j->ow - ox < PX_BLOCK ? j->ow - ox : PX_BLOCK;
            __m512i a0[PX_BLOCK], a1[PX_BLOCK];
            for (int k = 0; k < PX_BLOCK; k++)
                a0[k] = a1[k] = _mm512_setzero_si512();
            for (int64_t ky = 0; ky < p->kh; ky++)
                for (int64_t kx = 0; kx < p->kw; kx++) {
                    const uint8_t *xp = xn + ((oy * p->stride_h + ky) * j->wp + ox * p->stride_w + kx) * c->cp;
                    const int8_t *wp = wb + (ky * p->kw + kx) * k4 * OC_BLOCK * 4;
                    int64_t step = p->stride_w * c->cp;
                    if (np == PX_BLOCK) {
                        tile8(xp, step, wp, k4, a0, a1);
                    } else {
                        for (int64_t i = 0; i < k4; i++) {
                            __m512i w0 = _mm512_loadu_si512(wp + i * 128), w1 = _mm512_loadu_si512(wp + i * 128 + 64);
                            for (int k = 0; k < np; k++) {
                                int32_t v;
                                memcpy(&v, xp + k * step + i * 4, 4);
                                __m512i bx = _mm512_set1_epi32(v);
                                a0[k] = _mm512_dpbusd_epi32(a0[k], bx, w0);
                                a1[k] = _mm512_dpbusd_epi32(a1[k], bx, w1);
                            }
                        }
                    }
                }
            for (int k = 0; k < np; k++) {
                uint8_t *dst = yrow + (ox + k) * p->m + o;
                store16(c, a0[k], o, dst, m0);
                if (m1) store16(c, a1[k], o + 16, dst + 16, m1);
            }
        }
    }
}

/* One row of the padded copy of x: zero-point borders, channels rounded up
 * to 4, int8 shifted to uint8 (rows split across the pool). */
static void pad_row(void *arg, size_t row) {
    const vnni_job *j = arg;
    const qconv_vnni *c = j->c;
    const qconv_vnni_params *p = &c->p;
    uint8_t fill = (uint8_t)(p->x_zp + (p->x_signed ? 128 : 0)), flip = p->x_signed ? 0x80 : 0;
    int64_t n = (int64_t)row / j->hp, h = (int64_t)row % j->hp - p->pad_top, cp = c->cp;
    uint8_t *d = (uint8_t *)j->padded + (int64_t)row * j->wp * cp;
    if (h < 0 || h >= p->h) {
        memset(d, fill, (size_t)(j->wp * cp));
        return;
    }
    memset(d, fill, (size_t)(p->pad_left * cp));
    memset(d + (p->pad_left + p->w) * cp, fill, (size_t)(p->pad_right * cp));
    const uint8_t *s = (const uint8_t *)j->src + (n * p->h + h) * p->w * p->c;
    d += p->pad_left * cp;
    if (!flip && cp == p->c) {
        memcpy(d, s, (size_t)(p->w * p->c));
        return;
    }
    for (int64_t w = 0; w < p->w; w++, d += cp, s += p->c) {
        for (int64_t i = 0; i < p->c; i++)
            d[i] = s[i] ^ flip;
        memset(d + p->c, fill, (size_t)(cp - p->c));
    }
}

void qconv_vnni_run(const qconv_vnni *c, const void *x, void *y, void *scratch, pthreadpool_t pool) {
    const qconv_vnni_params *p = &c->p;
    vnni_job j = {c, x, y, x, scratch, padded_h(p), padded_w(p), 0, 0};
    j.oh = (j.hp - p->kh) / p->stride_h + 1;
    j.ow = (j.wp - p->kw) / p->stride_w + 1;
    if (!c->in_place) {
        pthreadpool_parallelize_1d(pool, pad_row, &j, (size_t)(p->n * j.hp), 0);
        j.x = scratch;
    }
    pthreadpool_parallelize_1d(pool, vnni_row, &j, (size_t)(p->n * j.oh), 0);
}

#else

void qlookup_vbmi(const uint8_t table[256], const uint8_t *x, uint8_t *y, size_t n) {
    (void)table, (void)x, (void)y, (void)n; /* never called: qlookup_vbmi_available() is 0 */
}

void qconv_vnni_run(const qconv_vnni *c, const void *x, void *y, void *scratch, pthreadpool_t pool) {
    (void)c, (void)x, (void)y, (void)scratch, (void)pool; /* never created: qconv_vnni_available() is 0 */
}

#endif
