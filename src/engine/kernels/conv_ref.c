/*
 * conv_ref.c - reference NCHW Conv and ConvTranspose (1-D and 2-D; groups,
 * strides, dilations, explicit pads, output_padding).
 *
 * These are the yardstick for the XNNPACK paths and the fallback for shapes
 * XNNPACK refuses, so they favour obvious correctness: a direct convolution
 * that, for each (input channel, kernel tap), adds one scaled input row to one
 * output row.  The range of output columns whose input column is inside the
 * image is computed up front, so the inner loop has no bounds checks and is
 * contiguous when the stride is 1.
 */
#include <string.h>

#include "engine/kernels/window_internal.h"

/* yrow[o] += wv * xrow[o * stride + off] for o in [lo, hi). */
static void conv_axpy_row(float *restrict yrow, const float *restrict xrow, float wv, int64_t stride, int64_t off,
                          int64_t lo, int64_t hi) {
    if (stride == 1) {
        const float *src = xrow + off;
        for (int64_t o = lo; o < hi; o++) yrow[o] += wv * src[o];
    } else {
        for (int64_t o = lo; o < hi; o++) yrow[o] += wv * xrow[o * stride + off];
    }
}

static void conv_fill_bias(float *y, int64_t n, const float *b, int64_t m) {
    float v = b ? b[m] : 0.0f;
    for (int64_t i = 0; i < n; i++) y[i] = v;
}

void kernels_conv_f32(const float *x, const kshape *xs, const float *w, const float *b, const kernels_window *win,
                      float *y, const kshape *ys) {
    window_geom g;
    window_geom_init(&g, xs, ys, win);
    int64_t cg = g.c / g.group, mg = g.m / g.group, plane = g.oh * g.ow, taps = g.kh * g.kw;
    for (int64_t n = 0; n < g.n; n++) {
        for (int64_t m = 0; m < g.m; m++) {
            float *yp = y + (n * g.m + m) * plane;
            conv_fill_bias(yp, plane, b, m);
            int64_t c0 = (m / mg) * cg;
            for (int64_t ci = 0; ci < cg; ci++) {
                const float *xp = x + (n * g.c + c0 + ci) * g.h * g.w;
                const float *wp = w + (m * cg + ci) * taps;
                for (int64_t kh = 0; kh < g.kh; kh++) {
                    int64_t hoff = kh * g.dh - g.ph, hlo, hhi;
                    window_valid_range(hoff, g.sh, g.h, g.oh, &hlo, &hhi);
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        float wv = wp[kh * g.kw + kw];
                        int64_t woff = kw * g.dw - g.pw, wlo, whi;
                        window_valid_range(woff, g.sw, g.w, g.ow, &wlo, &whi);
                        for (int64_t oh = hlo; oh < hhi; oh++)
                            conv_axpy_row(yp + oh * g.ow, xp + (oh * g.sh + hoff) * g.w, wv, g.sw, woff, wlo, whi);
                    }
                }
            }
        }
    }
}

void kernels_convtranspose_f32(const float *x, const kshape *xs, const float *w, const float *b,
                               const kernels_window *win, float *y, const kshape *ys) {
    window_geom g;
    window_geom_init(&g, xs, ys, win);
    int64_t cg = g.c / g.group, mg = g.m / g.group, oplane = g.oh * g.ow, taps = g.kh * g.kw;
    for (int64_t n = 0; n < g.n; n++) {
        for (int64_t m = 0; m < g.m; m++) conv_fill_bias(y + (n * g.m + m) * oplane, oplane, b, m);
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
