/*
 * pool_ref.c - reference NCHW pooling and normalisation: MaxPool (with
 * Indices), AveragePool, GlobalAverage/MaxPool, BatchNormalization
 * (inference), InstanceNormalization, LayerNormalization and LRN.
 *
 * Pooling walks each output position's window with the in-image tap range
 * precomputed per output row and column; normalisations make two passes
 * (mean, then variance) in double precision so that large planes stay exact.
 */
#include <math.h>

#include "engine/kernels/window_internal.h"

/* Tap range [lo, hi) of window position o along one dim, and the count of
 * taps inside the padded extent [-pad_begin, in + pad_end). */
static void pool_taps(int64_t o, int64_t stride, int64_t dil, int64_t k, int64_t pad, int64_t pad_end, int64_t in,
                      int64_t *lo, int64_t *hi, int64_t *padded_count) {
    int64_t start = o * stride - pad;
    /* first tap t with start + t * dil >= 0, and one past the last with < in */
    int64_t l = start >= 0 ? 0 : (-start + dil - 1) / dil;
    int64_t h = in - start <= 0 ? 0 : (in - start + dil - 1) / dil;
    if (h > k) h = k;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
    int64_t pl = start >= -pad ? 0 : (-pad - start + dil - 1) / dil;
    int64_t limit = in + pad_end - start, ph = limit <= 0 ? 0 : (limit + dil - 1) / dil;
    if (ph > k) ph = k;
    *padded_count = ph > pl ? ph - pl : 0;
}

/* Runs the window loop; MAX selects max pooling, else average. */
static void pool_run(const float *x, const kshape *xs, const kernels_window *win, float *y, const kshape *ys,
                     int is_max, int count_include_pad, int64_t *indices) {
    window_geom g;
    window_geom_init(&g, xs, ys, win);
    int64_t planes = g.n * g.c, iplane = g.h * g.w;
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * iplane;
        float *yp = y + p * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; oh++) {
            int64_t hlo, hhi, hcount;
            pool_taps(oh, g.sh, g.dh, g.kh, g.ph, g.ph_end, g.h, &hlo, &hhi, &hcount);
            int64_t hstart = oh * g.sh - g.ph;
            for (int64_t ow = 0; ow < g.ow; ow++) {
                int64_t wlo, whi, wcount;
                pool_taps(ow, g.sw, g.dw, g.kw, g.pw, g.pw_end, g.w, &wlo, &whi, &wcount);
                int64_t wstart = ow * g.sw - g.pw;
                float acc = is_max ? -INFINITY : 0.0f;
                int64_t at = -1;
                for (int64_t th = hlo; th < hhi; th++) {
                    const float *row = xp + (hstart + th * g.dh) * g.w + wstart;
                    for (int64_t tw = wlo; tw < whi; tw++) {
                        float v = row[tw * g.dw];
                        if (!is_max) acc += v;
                        else if (v > acc || at < 0) {
                            acc = v;
                            at = (hstart + th * g.dh) * g.w + wstart + tw * g.dw;
                        }
                    }
                }
                if (!is_max) {
                    int64_t count = count_include_pad ? hcount * wcount : (hhi - hlo) * (whi - wlo);
                    acc = count ? acc / (float)count : 0.0f;
                }
                yp[oh * g.ow + ow] = acc;
                if (indices) indices[p * g.oh * g.ow + oh * g.ow + ow] = at < 0 ? 0 : p * iplane + at;
            }
        }
    }
}

void kernels_maxpool_f32(const float *x, const kshape *xs, const kernels_window *win, float *y, const kshape *ys,
                         int64_t *indices) {
    pool_run(x, xs, win, y, ys, 1, 0, indices);
}

void kernels_avgpool_f32(const float *x, const kshape *xs, const kernels_window *win, int count_include_pad, float *y,
                         const kshape *ys) {
    pool_run(x, xs, win, y, ys, 0, count_include_pad, NULL);
}

void kernels_global_pool_f32(int is_max, const float *x, int64_t planes, int64_t spatial, float *y) {
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * spatial;
        if (is_max) {
            float m = -INFINITY;
            for (int64_t i = 0; i < spatial; i++) m = xp[i] > m ? xp[i] : m;
            y[p] = m;
        } else {
            double s = 0.0;
            for (int64_t i = 0; i < spatial; i++) s += xp[i];
            y[p] = spatial ? (float)(s / (double)spatial) : NAN;
        }
    }
}

void kernels_batchnorm_f32(const float *x, int64_t n, int64_t c, int64_t spatial, const float *scale,
                           const float *bias, const float *mean, const float *var, float epsilon, float *y) {
    for (int64_t ch = 0; ch < c; ch++) {
        float a = scale[ch] / sqrtf(var[ch] + epsilon), b = bias[ch] - mean[ch] * a;
        for (int64_t i = 0; i < n; i++) {
            const float *xp = x + (i * c + ch) * spatial;
            float *yp = y + (i * c + ch) * spatial;
            for (int64_t s = 0; s < spatial; s++) yp[s] = xp[s] * a + b;
        }
    }
}

/* Mean and 1 / sqrt(variance + epsilon) of n values. */
static void norm_moments(const float *x, int64_t n, float epsilon, float *mean, float *inv_std) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    double m = n ? s / (double)n : 0.0, v = 0.0;
    for (int64_t i = 0; i < n; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
    v = n ? v / (double)n : 0.0;
    *mean = (float)m;
    *inv_std = (float)(1.0 / sqrt(v + (double)epsilon));
}

void kernels_instancenorm_f32(const float *x, int64_t n, int64_t c, int64_t spatial, const float *scale,
                              const float *bias, float epsilon, float *y) {
    for (int64_t p = 0; p < n * c; p++) {
        const float *xp = x + p * spatial;
        float *yp = y + p * spatial, mean, inv;
        norm_moments(xp, spatial, epsilon, &mean, &inv);
        float a = scale[p % c] * inv, b = bias[p % c] - mean * a;
        for (int64_t s = 0; s < spatial; s++) yp[s] = xp[s] * a + b;
    }
}

void kernels_layernorm_f32(const float *x, int64_t outer, int64_t inner, const float *scale, const float *bias,
                           float epsilon, float *y, float *mean, float *inv_std_dev) {
    for (int64_t o = 0; o < outer; o++) {
        const float *xp = x + o * inner;
        float *yp = y + o * inner, m, inv;
        norm_moments(xp, inner, epsilon, &m, &inv);
        for (int64_t i = 0; i < inner; i++) yp[i] = (xp[i] - m) * inv * scale[i] + (bias ? bias[i] : 0.0f);
        if (mean) mean[o] = m;
        if (inv_std_dev) inv_std_dev[o] = inv;
    }
}

void kernels_lrn_f32(const float *x, int64_t n, int64_t c, int64_t spatial, int64_t size, float alpha, float beta,
                     float bias, float *y) {
    int64_t before = (size - 1) / 2, after = size - 1 - before; /* floor and ceil of (size - 1) / 2 */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t ch = 0; ch < c; ch++) {
            int64_t lo = ch - before < 0 ? 0 : ch - before, hi = ch + after >= c ? c - 1 : ch + after;
            const float *xp = x + (i * c + ch) * spatial;
            float *yp = y + (i * c + ch) * spatial;
            for (int64_t s = 0; s < spatial; s++) {
                float sq = 0.0f;
                for (int64_t k = lo; k <= hi; k++) {
                    float v = x[(i * c + k) * spatial + s];
                    sq += v * v;
                }
                yp[s] = xp[s] / powf(bias + alpha / (float)size * sq, beta);
            }
        }
    }
}
