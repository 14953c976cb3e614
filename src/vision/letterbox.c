/*
 * letterbox.c - resize-and-pad an RGB image into a network input tensor,
 * exactly as Ultralytics' LetterBox does it.
 *
 *   r = min(H/h, W/w); resize to round(w*r) x round(h*r) (Python's round:
 *   halves to even); pad left/top = round(d - 0.1), right/bottom the rest.
 *
 * Ultralytics resizes with cv2.resize(INTER_LINEAR), so the resize mirrors
 * OpenCV's 8-bit path: half-pixel centres, 11-bit fixed-point weights rounded
 * from single-precision offsets, a horizontal pass into 32-bit rows, and the
 * vertical pass of OpenCV's SIMD kernel ((b*(S>>4))>>16, then +2 >> 2).  The
 * result matches OpenCV to within one grey level (the usual exact match).
 *
 * Speed: all weights and offsets are computed once per call, each source row
 * is filtered horizontally once (two-row cache) into planar rows (one per
 * channel), and the vertical pass and the conversion to float run over
 * contiguous arrays in fixed blocks of LB_BLOCK, which gcc vectorises even at
 * -O2 (its cheap cost model wants trip counts it knows).  Only the padding
 * the image does not cover is filled.
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "vigil/vision.h"

#define LB_COEF_BITS 11
#define LB_COEF_SCALE (1 << LB_COEF_BITS)
#define LB_BLOCK 16 /* elements per vectorisable block */

vigil_preprocess vigil_preprocess_default(void) {
    vigil_preprocess p = {.layout = VIGIL_LAYOUT_NCHW,
                          .swap_rb = 0,
                          .centred = 1,
                          .stretch = 0,
                          .pad_value = 114,
                          .mean = {0, 0, 0},
                          .scale = {1 / 255.f, 1 / 255.f, 1 / 255.f}};
    return p;
}

/* OpenCV's saturate_cast<short>(float): round half away... to nearest. */
static short lb_weight(float w) {
    return (short)lrintf(w * LB_COEF_SCALE);
}

/* Per destination column: source offset (in bytes of a packed RGB row) and
 * the two weights, for each of the 3 channels. */
typedef struct lb_plan {
    int *xofs;      /* [dw] first source pixel * 3 */
    short *alpha;   /* [dw * 2] */
    int *yofs;      /* [dh] first source row (may be -1 or h-1) */
    short *beta;    /* [dh * 2] */
    int *rows[2];   /* horizontally filtered rows, planar: [3][dw], padded to LB_BLOCK */
    int row_src[2]; /* which source row each holds, -1 = none */
    int *out;       /* one resized row, planar [3][dw] grey levels, padded to LB_BLOCK */
} lb_plan;

static void lb_plan_free(lb_plan *p) {
    vigil_free(p->xofs);
    vigil_free(p->alpha);
    vigil_free(p->yofs);
    vigil_free(p->beta);
    vigil_free(p->rows[0]);
    vigil_free(p->rows[1]);
    vigil_free(p->out);
}

static int lb_plan_init(lb_plan *p, int sw, int sh, int dw, int dh) {
    memset(p, 0, sizeof *p);
    p->xofs = vigil_malloc(sizeof(int) * (size_t)dw);
    p->alpha = vigil_malloc(sizeof(short) * 2 * (size_t)dw);
    p->yofs = vigil_malloc(sizeof(int) * (size_t)dh);
    p->beta = vigil_malloc(sizeof(short) * 2 * (size_t)dh);
    size_t padded = ((size_t)dw * 3 + LB_BLOCK - 1) / LB_BLOCK * LB_BLOCK;
    p->rows[0] = vigil_calloc(padded, sizeof(int));
    p->rows[1] = vigil_calloc(padded, sizeof(int));
    p->out = vigil_calloc(padded, sizeof(int));
    if (!p->xofs || !p->alpha || !p->yofs || !p->beta || !p->rows[0] || !p->rows[1] || !p->out) return -1;
    p->row_src[0] = p->row_src[1] = -1;
    double scale_x = (double)sw / dw, scale_y = (double)sh / dh;
    for (int dx = 0; dx < dw; dx++) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        if (sx < 0) fx = 0, sx = 0;
        if (sx >= sw - 1) fx = 0, sx = sw - 1;
        p->xofs[dx] = sx * 3;
        p->alpha[2 * dx] = lb_weight(1.f - fx);
        p->alpha[2 * dx + 1] = lb_weight(fx);
    }
    for (int dy = 0; dy < dh; dy++) {
        float fy = (float)((dy + 0.5) * scale_y - 0.5);
        int sy = (int)floorf(fy);
        fy -= (float)sy;
        p->yofs[dy] = sy;
        p->beta[2 * dy] = lb_weight(1.f - fy);
        p->beta[2 * dy + 1] = lb_weight(fy);
    }
    return 0;
}

/* Horizontal pass of one packed RGB source row into planar dst [3][dw]. */
static void lb_hresize(const lb_plan *p, const uint8_t *restrict src, int sw, int dw, int *restrict dst) {
    int *restrict d0 = dst, *restrict d1 = dst + dw, *restrict d2 = dst + 2 * dw;
    for (int dx = 0; dx < dw; dx++) {
        int o = p->xofs[dx];
        int a0 = p->alpha[2 * dx], a1 = p->alpha[2 * dx + 1];
        int o1 = o + 3 < sw * 3 ? o + 3 : o; /* right edge: weight a1 is 0 there */
        d0[dx] = src[o] * a0 + src[o1] * a1;
        d1[dx] = src[o + 1] * a0 + src[o1 + 1] * a1;
        d2[dx] = src[o + 2] * a0 + src[o1 + 2] * a1;
    }
}

/* Returns the filtered row for source row sy (clamped), computing it into
 * the cache slot that is not holding `keep`. */
static const int *lb_row(lb_plan *p, const vigil_image *img, int sy, int keep, int dw) {
    if (sy < 0) sy = 0;
    if (sy > img->height - 1) sy = img->height - 1;
    for (int i = 0; i < 2; i++)
        if (p->row_src[i] == sy) return p->rows[i];
    int slot = p->row_src[0] == keep ? 1 : 0;
    lb_hresize(p, img->data + (size_t)sy * img->stride, img->width, dw, p->rows[slot]);
    p->row_src[slot] = sy;
    return p->rows[slot];
}

static inline int lb_clamp_row(int sy, int h) {
    return sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
}

/* Vertical pass: OpenCV's VResizeLinearVec_32s8u arithmetic, over n
 * elements rounded up to whole blocks (the buffers are padded). */
static void lb_vresize(const int *restrict s0, const int *restrict s1, int b0, int b1, int n, int *restrict out) {
    for (int i = 0; i < n; i += LB_BLOCK)
        for (int k = i; k < i + LB_BLOCK; k++) {
            int v = (((b0 * (s0[k] >> 4)) >> 16) + ((b1 * (s1[k] >> 4)) >> 16) + 2) >> 2;
            out[k] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
}

/* The tensor being written and how a byte becomes a value:
 * ((float)v - mean) * mul / div, with div = 255 for the plain /255 (so
 * values equal NumPy's x / 255 exactly) and 1 otherwise. */
typedef struct lb_target {
    float *dst;
    int in_w, in_h;
    vigil_layout layout;
    int swap_rb;
    float mean[3], mul[3], div[3]; /* per fed channel */
} lb_target;

static float lb_value(const lb_target *t, int c, int v) {
    return ((float)v - t->mean[c]) * t->mul[c] / t->div[c];
}

/* Four lanes of GCC/clang's portable vector extension: the compiler maps
 * them to SSE, NEON or scalar code, so there is no per-ISA file to keep. */
typedef int lb_v4i __attribute__((vector_size(16)));
typedef float lb_v4f __attribute__((vector_size(16)));

/* Converts n grey levels of one channel into d (contiguous). */
static void lb_convert(const int *restrict src, int n, float mean, float mul, float div, float *restrict d) {
    int x = 0;
    for (; x + 4 <= n; x += 4) {
        lb_v4i vi;
        memcpy(&vi, src + x, sizeof vi);
        lb_v4f vf = (__builtin_convertvector(vi, lb_v4f) - mean) * mul / div;
        memcpy(d + x, &vf, sizeof vf);
    }
    for (; x < n; x++)
        d[x] = ((float)src[x] - mean) * mul / div;
}

/* Writes one planar row ([3][stride] bytes, n used) into the tensor at
 * input row y, columns x0.. */
static void lb_store_row(const lb_target *t, const int *row, int stride, int n, int y, int x0) {
    size_t plane = (size_t)t->in_w * t->in_h;
    for (int c = 0; c < 3; c++) {
        const int *src = row + (size_t)(t->swap_rb ? 2 - c : c) * stride;
        if (t->layout == VIGIL_LAYOUT_NCHW) {
            lb_convert(src, n, t->mean[c], t->mul[c], t->div[c], t->dst + c * plane + (size_t)y * t->in_w + x0);
        } else {
            float *d = t->dst + ((size_t)y * t->in_w + x0) * 3 + c;
            for (int x = 0; x < n; x++)
                d[3 * x] = lb_value(t, c, src[x]);
        }
    }
}

/* Fills value into columns [x0, x1) of input row y, every channel. */
static void lb_fill_span(const lb_target *t, int y, int x0, int x1, uint8_t pad) {
    size_t plane = (size_t)t->in_w * t->in_h;
    for (int c = 0; c < 3; c++) {
        float v = lb_value(t, c, pad);
        if (t->layout == VIGIL_LAYOUT_NCHW) {
            float *d = t->dst + c * plane + (size_t)y * t->in_w;
            lb_v4f vv = {v, v, v, v};
            int x = x0;
            for (; x + 4 <= x1; x += 4)
                memcpy(d + x, &vv, sizeof vv);
            for (; x < x1; x++)
                d[x] = v;
        } else {
            float *d = t->dst + (size_t)y * t->in_w * 3 + c;
            for (int x = x0; x < x1; x++)
                d[3 * x] = v;
        }
    }
}

/* Pads only what the image does not cover: whole rows above and below, the
 * side columns next to it. */
static void lb_fill_pad(const lb_target *t, int left, int top, int nw, int nh, uint8_t pad) {
    for (int y = 0; y < t->in_h; y++) {
        if (y < top || y >= top + nh) {
            lb_fill_span(t, y, 0, t->in_w, pad);
            continue;
        }
        if (left > 0) lb_fill_span(t, y, 0, left, pad);
        if (left + nw < t->in_w) lb_fill_span(t, y, left + nw, t->in_w, pad);
    }
}

/* Image already at the resized size: deinterleave each row and store it. */
static vigil_status lb_copy(const lb_target *t, const vigil_image *img, int left, int top, vigil_error *err) {
    int *planar = vigil_malloc(3 * sizeof(int) * (size_t)img->width);
    if (!planar) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "letterbox: out of memory");
    for (int y = 0; y < img->height; y++) {
        const uint8_t *src = img->data + (size_t)y * img->stride;
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < 3; c++)
                planar[(size_t)c * img->width + x] = src[3 * x + c];
        lb_store_row(t, planar, img->width, img->width, top + y, left);
    }
    vigil_free(planar);
    return VIGIL_OK;
}

/* Python 3's round(): halves go to the even neighbour. */
static int lb_round_even(double v) {
    return (int)nearbyint(v);
}

vigil_status vigil_letterbox(const vigil_image *image, int in_w, int in_h, const vigil_preprocess *pre, float *dst,
                             vigil_letterbox_info *info, vigil_error *err) {
    vigil_preprocess defaults = vigil_preprocess_default();
    if (!pre) pre = &defaults;
    if (!image || !image->data || image->width <= 0 || image->height <= 0 || image->stride < image->width * 3)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "letterbox: no image");
    if (in_w <= 0 || in_h <= 0 || !dst)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "letterbox: bad input size %d x %d", in_w, in_h);
    int w = image->width, h = image->height;
    double r = fmin((double)in_h / h, (double)in_w / w);
    int nw = pre->stretch ? in_w : lb_round_even(w * r);
    int nh = pre->stretch ? in_h : lb_round_even(h * r);
    if (nw < 1) nw = 1;
    if (nh < 1) nh = 1;
    if (nw > in_w) nw = in_w;
    if (nh > in_h) nh = in_h;
    int left = 0, top = 0;
    if (pre->centred) {
        left = lb_round_even((in_w - nw) / 2.0 - 0.1);
        top = lb_round_even((in_h - nh) / 2.0 - 0.1);
        if (left < 0) left = 0;
        if (top < 0) top = 0;
    }
    if (info) {
        info->scale_x = pre->stretch ? (float)in_w / w : (float)r;
        info->scale_y = pre->stretch ? (float)in_h / h : (float)r;
        info->pad_left = left;
        info->pad_top = top;
        info->resized_w = nw;
        info->resized_h = nh;
    }
    lb_target t = {.dst = dst, .in_w = in_w, .in_h = in_h, .layout = pre->layout, .swap_rb = pre->swap_rb};
    for (int c = 0; c < 3; c++) {
        int plain = pre->scale[c] == 1 / 255.f; /* divide, as NumPy's x / 255 does */
        t.mean[c] = pre->mean[c];
        t.mul[c] = plain ? 1.f : pre->scale[c];
        t.div[c] = plain ? 255.f : 1.f;
    }
    lb_fill_pad(&t, left, top, nw, nh, pre->pad_value);
    if (nw == w && nh == h) return lb_copy(&t, image, left, top, err); /* Ultralytics skips the resize too */
    lb_plan p;
    if (lb_plan_init(&p, w, h, nw, nh) != 0) {
        lb_plan_free(&p);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "letterbox: out of memory");
    }
    for (int dy = 0; dy < nh; dy++) {
        int sy0 = lb_clamp_row(p.yofs[dy], h), sy1 = lb_clamp_row(p.yofs[dy] + 1, h);
        const int *r0 = lb_row(&p, image, sy0, sy1, nw);
        const int *r1 = lb_row(&p, image, sy1, sy0, nw);
        lb_vresize(r0, r1, p.beta[2 * dy], p.beta[2 * dy + 1], nw * 3, p.out);
        lb_store_row(&t, p.out, nw, nw, top + dy, left);
    }
    lb_plan_free(&p);
    return VIGIL_OK;
}
