/*
 * letterbox_x86.c - SSSE3 horizontal pass of the letterbox (see
 * letterbox_kernels.h), built with -mssse3 and chosen at run time only
 * where the CPU has it.
 *
 * A column's two source pixels are six consecutive bytes: one 8-byte load,
 * a byte shuffle into (first, second) 16-bit pairs per channel, and one
 * multiply-add against (a0, a1) give its red, green and blue sums at once.
 * Four columns are then transposed into the three planar rows.  The
 * arithmetic is the reference's exactly (sums below 2^19, >> 4 fits 16 bits).
 */
#include "vision/letterbox_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <string.h>
#include <tmmintrin.h>

static void lb_hresize_ssse3(const uint8_t *src, const int *xofs, const short *alpha, int n, short *d0, short *d1,
                             short *d2) {
    /* bytes R0 G0 B0 R1 G1 B1 -> words R0 R1 G0 G1 B0 B1 0 0 */
    const __m128i pairs = _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
    int dx = 0;
    for (; dx + 4 <= n; dx += 4) {
        __m128i sums[4];
        for (int k = 0; k < 4; k++) {
            __m128i px = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(src + xofs[dx + k])), pairs);
            int w;
            memcpy(&w, alpha + 2 * (dx + k), sizeof w);                         /* a0 | a1 << 16 */
            sums[k] = _mm_srai_epi32(_mm_madd_epi16(px, _mm_set1_epi32(w)), 4); /* R G B 0 */
        }
        __m128i rg01 = _mm_unpacklo_epi32(sums[0], sums[1]), rg23 = _mm_unpacklo_epi32(sums[2], sums[3]);
        __m128i b01 = _mm_unpackhi_epi32(sums[0], sums[1]), b23 = _mm_unpackhi_epi32(sums[2], sums[3]);
        __m128i r = _mm_unpacklo_epi64(rg01, rg23), g = _mm_unpackhi_epi64(rg01, rg23);
        __m128i b = _mm_unpacklo_epi64(b01, b23);
        __m128i rg = _mm_packs_epi32(r, g), bb = _mm_packs_epi32(b, b);
        _mm_storel_epi64((__m128i *)(d0 + dx), rg);
        _mm_storel_epi64((__m128i *)(d1 + dx), _mm_srli_si128(rg, 8));
        _mm_storel_epi64((__m128i *)(d2 + dx), bb);
    }
    if (dx < n) lb_hresize_c(src, xofs + dx, alpha + 2 * dx, n - dx, d0 + dx, d1 + dx, d2 + dx);
}

lb_hresize_fn lb_hresize_best(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("ssse3") ? lb_hresize_ssse3 : lb_hresize_c;
}
#else
lb_hresize_fn lb_hresize_best(void) {
    return lb_hresize_c;
}
#endif
