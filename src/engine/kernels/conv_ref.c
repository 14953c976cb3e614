/*
 * conv_ref.c - reference NCHW Conv and ConvTranspose (1-D and 2-D; groups,
 * strides, dilations, explicit pads, output_padding).
 *
 * These are the yardstick for the XNNPACK paths and the fallback for shapes
 * XNNPACK refuses, so they favour obvious correctness: a direct convolution
 * that, for each (input channel, kernel tap), adds one scaled input row to one
 * output row.  The range of output columns whose input column is inside the
 * image is computed up front, so the inner loop has no bounds checks and is
 * contiguous when the stride is 1.  The convolution is written once for
 * float and int64 (the integer convolutions of quant.c's callers).
 */
#include <string.h>

#include "engine/kernels/window_internal.h"

/* The direct convolution, written once for each element type T that it
 * runs on: float (Conv) and int64_t (ConvInteger, QLinearConv, on inputs
 * with their zero points already subtracted, so that every sum is exact). */
#define CONV_DEFINE(SUFFIX, T)                                                                                   \
    /* yrow[o] += wv * xrow[o * stride + off] for o in [lo, hi). */                                             \
    static void conv_axpy_row_##SUFFIX(T *restrict yrow, const T *restrict xrow, T wv, int64_t stride,          \
                                       int64_t off, int64_t lo, int64_t hi) {                                   \
        if (stride == 1) {                                                                                       \
            const T *src = xrow + off;                                                                           \
            for (int64_t o = lo; o < hi; o++) yrow[o] += wv * src[o];                                            \
        } else {                                                                                                 \
            for (int64_t o = lo; o < hi; o++) yrow[o] += wv * xrow[o * stride + off];                            \
        }                                                                                                        \
    }                                                                                                            \
                                                                                                                 \
    static void conv_fill_bias_##SUFFIX(T *y, int64_t n, const T *b, int64_t m) {                                \
        T v = b ? b[m] : (T)0;                                                                                   \
        for (int64_t i = 0; i < n; i++) y[i] = v;                                                                \
    }                                                                                                            \
                                                                                                                 \
    void kernels_conv_##SUFFIX(const T *x, const kshape *xs, const T *w, const T *b, const kernels_window *win, \
                               T *y, const kshape *ys) {                                                         \
        window_geom g;                                                                                           \
        window_geom_init(&g, xs, ys, win);                                                                       \
        int64_t cg = g.c / g.group, mg = g.m / g.group, plane = g.oh * g.ow, taps = g.kh * g.kw;                 \
        for (int64_t n = 0; n < g.n; n++) {                                                                      \
            for (int64_t m = 0; m < g.m; m++) {                                                                  \
                T *yp = y + (n * g.m + m) * plane;                                                               \
                conv_fill_bias_##SUFFIX(yp, plane, b, m);                                                        \
                int64_t c0 = (m / mg) * cg;                                                                      \
                for (int64_t ci = 0; ci < cg; ci++) {                                                            \
                    const T *xp = x + (n * g.c + c0 + ci) * g.h * g.w;                                           \
                    const T *wp = w + (m * cg + ci) * taps;                                                      \
                    for (int64_t kh = 0; kh < g.kh; kh++) {                                                      \
                        int64_t hoff = kh * g.dh - g.ph, hlo, hhi;                                               \
                        window_valid_range(hoff, g.sh, g.h, g.oh, &hlo, &hhi);                                   \
                        for (int64_t kw = 0; kw < g.kw; kw++) {                                                  \
                            T wv = wp[kh * g.kw + kw];                                                           \
                            int64_t woff = kw * g.dw - g.pw, wlo, whi;                                           \
                            window_valid_range(woff, g.sw, g.w, g.ow, &wlo, &whi);                               \
                            for (int64_t oh = hlo; oh < hhi; oh++)                                               \
                                conv_axpy_row_##SUFFIX(yp + oh * g.ow, xp + (oh * g.sh + hoff) * g.w, wv, g.sw,  \
                                                       woff, wlo, whi);                                          \
                        }                                                                                        \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }

CONV_DEFINE(f32, float)
CONV_DEFINE(i64, int64_t)

void kernels_convtranspose_f32(const float *x, const kshape *xs, const float *w, const float *b,
                               const kernels_window *win, float *y, const kshape *ys) {
    window_geom g;
    window_geom_init(&g, xs, ys, win);
    int64_t cg = g.c / g.group, mg = g.m / g.group, oplane = g.oh * g.ow, taps = g.kh * g.kw;
    for (int64_t n = 0; n < g.n; n++) {
        for (int64_t m = 0; m < g.m; m++) conv_fill_bias_f32(y + (n * g.m + m) * oplane, oplane, b, m);
        for (int64_t c = 0; c < g.c; c++) {
            const float *xp = x + (n * g.c + c) * g.h * g.w;
            int64_t gi = c / cg;
            for (int64_t mo = 0; mo < mg; mo++) {
                float *yp = y + (n * g.m + gi * mg + mo) * oplane;
                const float *wp = w + (c * mg + mo) * taps;
                for (int64_t kh = 0; kh < g.kh; kh++) {
                    /* output row oh = ih * sh + kh * dh - ph */
                    int64_t hoff = kh * g.dh - g.ph;
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        float wv = wp[kh * g.kw + kw];
                        int64_t woff = kw * g.dw - g.pw;
                        for (int64_t ih = 0; ih < g.h; ih++) {
                            int64_t oh = ih * g.sh + hoff;
                            if (oh < 0 || oh >= g.oh) continue;
                            float *yrow = yp + oh * g.ow;
                            const float *xrow = xp + ih * g.w;
                            for (int64_t iw = 0; iw < g.w; iw++) {
                                int64_t ow = iw * g.sw + woff;
                                if (ow >= 0 && ow < g.ow) yrow[ow] += wv * xrow[iw];
                            }
                        }
                    }
                }
            }
        }
    }
}
