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
#include "vision/letterbox.h"
#include "vision/letterbox_kernels.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

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

static inline int lb_clamp_row(int sy, int h) {
    return sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
}

/* Vertical pass: OpenCV's VResizeLinearVec_32s8u arithmetic on rows that
 * hold S >> 4 (which fits 16 bits, as OpenCV packs it): the high half of
 * each 16-bit product, summed, + 2 >> 2.  In 16-bit lanes the compiler
 * uses the multiply-high instruction (pmulhw, vqdmulh).  Runs over n
 * elements rounded up to whole blocks (the buffers are padded). */
static void lb_vresize(const short *restrict s0, const short *restrict s1, short b0, short b1, int n,
                       short *restrict out) {
    for (int i = 0; i < n; i += LB_BLOCK)
        for (int k = i; k < i + LB_BLOCK; k++) {
            short x = (short)((b0 * s0[k]) >> 16), y = (short)((b1 * s1[k]) >> 16);
            short v = (short)((x + y + 2) >> 2);
            out[k] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
}

/* The tensor being written and how a byte becomes a value:
 * ((float)v - mean) * mul / div, with div = 255 for the plain /255 (so
 * values equal NumPy's x / 255 exactly) and 1 otherwise; or, for a uint8
 * input (u8), the byte itself, NHWC. */
typedef struct lb_target {
    float *dst;
    uint8_t *dst_u8; /* instead of dst when u8 */
    int u8;
    int in_w, in_h;
    vigil_layout layout;
    int swap_rb;
    float mean[3], mul[3], div[3]; /* per fed channel */
    double factor[3];              /* mul / div, where the fast conversion is exact */
    int fast[3];                   /* 1 = (float)(((float)v - mean) * factor) gives every value */
} lb_target;

static float lb_value(const lb_target *t, int c, int v) {
    return ((float)v - t->mean[c]) * t->mul[c] / t->div[c];
}

/* A planned letterbox (letterbox.h): geometry, pixel convention and the
 * per-column / per-row interpolation tables, read-only once created. */
struct letterbox {
    lb_target t;
    int src_w, src_h; /* the image */
    int nw, nh;       /* its resized size */
    int left, top;    /* where the resized image sits in the input */
    float scale_x, scale_y;
    uint8_t pad;
    int padded;            /* 1 = dst holds the padding already */
    int copy;              /* 1 = already at the resized size: no tables */
    int *xofs;             /* [nw] first source pixel * 3 */
    short *alpha;          /* [nw * 2] */
    int *yofs;             /* [nh] first source row (may be -1 or h-1) */
    short *beta;           /* [nh * 2] */
    lb_hresize_fn hresize; /* the CPU's horizontal kernel ... */
    int kernel_cols;       /* ... for columns [0, kernel_cols) */
};

void lb_hresize_c(const uint8_t *src, const int *xofs, const short *alpha, int n, short *d0, short *d1, short *d2) {
    for (int dx = 0; dx < n; dx++) {
        const uint8_t *a = src + xofs[dx];
        int a0 = alpha[2 * dx], a1 = alpha[2 * dx + 1];
        d0[dx] = (short)((a[0] * a0 + a[3] * a1) >> 4);
        d1[dx] = (short)((a[1] * a0 + a[4] * a1) >> 4);
        d2[dx] = (short)((a[2] * a0 + a[5] * a1) >> 4);
    }
}

/* Horizontal pass of one packed RGB source row into planar dst [3][dw],
 * each value the 32-bit sum shifted right by 4 as the vertical pass wants:
 * the CPU's kernel over the columns it may read 8 bytes at, the reference
 * over the last few, and a one-pixel-wide image on its own. */
static void lb_hresize(const letterbox *p, const uint8_t *restrict src, int sw, int dw, short *restrict dst) {
    short *d0 = dst, *d1 = dst + dw, *d2 = dst + 2 * dw;
    if (sw == 1) {
        for (int dx = 0; dx < dw; dx++) {
            int a = p->alpha[2 * dx] + p->alpha[2 * dx + 1];
            d0[dx] = (short)((src[0] * a) >> 4);
            d1[dx] = (short)((src[1] * a) >> 4);
            d2[dx] = (short)((src[2] * a) >> 4);
        }
        return;
    }
    int k = p->kernel_cols;
    p->hresize(src, p->xofs, p->alpha, k, d0, d1, d2);
    lb_hresize_c(src, p->xofs + k, p->alpha + 2 * k, dw - k, d0 + k, d1 + k, d2 + k);
}

/* Four lanes of GCC/clang's portable vector extension: the compiler maps
 * them to SSE, NEON or scalar code, so there is no per-ISA file to keep. */
typedef short lb_v4s __attribute__((vector_size(8)));
typedef float lb_v4f __attribute__((vector_size(16)));
typedef float lb_v2f __attribute__((vector_size(8)));
typedef double lb_v2d __attribute__((vector_size(16)));

/* Converts n grey levels of one channel into d (contiguous). */
static void lb_convert(const short *restrict src, int n, float mean, float mul, float div, float *restrict d) {
    int x = 0;
    for (; x + 4 <= n; x += 4) {
        lb_v4s vs;
        memcpy(&vs, src + x, sizeof vs);
        lb_v4f vf = (__builtin_convertvector(vs, lb_v4f) - mean) * mul / div;
        memcpy(d + x, &vf, sizeof vf);
    }
    for (; x < n; x++)
        d[x] = ((float)src[x] - mean) * mul / div;
}

/* The same values by one double-precision multiply instead of a float
 * divide (the divider was the slowest part of the letterbox): only used
 * where lb_fast_is_exact found every grey level to come out identical. */
static float lb_fast_value(float mean, double factor, int v) {
    return (float)((double)((float)v - mean) * factor);
}

static void lb_convert_fast(const short *restrict src, int n, float mean, double factor, float *restrict d) {
    int x = 0;
    for (; x + 4 <= n; x += 4) {
        lb_v4s vs;
        memcpy(&vs, src + x, sizeof vs);
        lb_v4f vf = __builtin_convertvector(vs, lb_v4f) - mean;
        lb_v2f lo = {vf[0], vf[1]}, hi = {vf[2], vf[3]};
        lb_v2f rlo = __builtin_convertvector(__builtin_convertvector(lo, lb_v2d) * factor, lb_v2f);
        lb_v2f rhi = __builtin_convertvector(__builtin_convertvector(hi, lb_v2d) * factor, lb_v2f);
        memcpy(d + x, &rlo, sizeof rlo);
        memcpy(d + x + 2, &rhi, sizeof rhi);
    }
    for (; x < n; x++)
        d[x] = lb_fast_value(mean, factor, src[x]);
}

/* 1 when the fast conversion of channel c equals the exact one for all 256
 * grey levels (it does for the plain / 255: checked, not assumed). */
static int lb_fast_is_exact(const lb_target *t, int c, double factor) {
    for (int v = 0; v < 256; v++)
        if (lb_fast_value(t->mean[c], factor, v) != lb_value(t, c, v)) return 0;
    return 1;
}

/* Writes one planar row ([3][stride] bytes, n used) into the tensor at
 * input row y, columns x0.. */
static void lb_store_row(const lb_target *t, const short *row, int stride, int n, int y, int x0) {
    size_t plane = (size_t)t->in_w * t->in_h;
    if (t->u8) { /* the resized grey levels are bytes already (0..255): interleave them */
        const short *r = row + (size_t)(t->swap_rb ? 2 : 0) * stride, *g = row + stride;
        const short *b = row + (size_t)(t->swap_rb ? 0 : 2) * stride;
        uint8_t *d = t->dst_u8 + ((size_t)y * t->in_w + x0) * 3;
        for (int x = 0; x < n; x++) {
            d[3 * x] = (uint8_t)r[x];
            d[3 * x + 1] = (uint8_t)g[x];
            d[3 * x + 2] = (uint8_t)b[x];
        }
        return;
    }
    for (int c = 0; c < 3; c++) {
        const short *src = row + (size_t)(t->swap_rb ? 2 - c : c) * stride;
        if (t->layout == VIGIL_LAYOUT_NCHW) {
            float *d = t->dst + c * plane + (size_t)y * t->in_w + x0;
            if (t->fast[c])
                lb_convert_fast(src, n, t->mean[c], t->factor[c], d);
            else
                lb_convert(src, n, t->mean[c], t->mul[c], t->div[c], d);
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
    if (t->u8) {
        memset(t->dst_u8 + ((size_t)y * t->in_w + x0) * 3, pad, (size_t)(x1 - x0) * 3);
        return;
    }
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
/* Pads only what the image does not cover in input rows [y0, y1): whole
 * rows above and below it, the side columns next to it. */
static void lb_fill_pad(const letterbox *lb, int y0, int y1) {
    const lb_target *t = &lb->t;
    for (int y = y0; y < y1; y++) {
        if (y < lb->top || y >= lb->top + lb->nh) {
            lb_fill_span(t, y, 0, t->in_w, lb->pad);
            continue;
        }
        if (lb->left > 0) lb_fill_span(t, y, 0, lb->left, lb->pad);
        if (lb->left + lb->nw < t->in_w) lb_fill_span(t, y, lb->left + lb->nw, t->in_w, lb->pad);
    }
}

/* Python 3's round(): halves go to the even neighbour. */
static int lb_round_even(double v) {
    return (int)nearbyint(v);
}

void letterbox_destroy(letterbox *lb) {
    if (!lb) return;
    vigil_free(lb->xofs);
    vigil_free(lb->alpha);
    vigil_free(lb->yofs);
    vigil_free(lb->beta);
    vigil_free(lb);
}

/* Interpolation tables, OpenCV's: half-pixel centres, weights from
 * single-precision offsets, columns clamped at the edges (rows are clamped
 * when read, as the vertical pass needs the unclamped offset). */
static int lb_tables(letterbox *lb) {
    int sw = lb->src_w, sh = lb->src_h, dw = lb->nw, dh = lb->nh;
    lb->xofs = vigil_malloc(sizeof(int) * (size_t)dw);
    lb->alpha = vigil_malloc(sizeof(short) * 2 * (size_t)dw);
    lb->yofs = vigil_malloc(sizeof(int) * (size_t)dh);
    lb->beta = vigil_malloc(sizeof(short) * 2 * (size_t)dh);
    if (!lb->xofs || !lb->alpha || !lb->yofs || !lb->beta) return -1;
    double scale_x = (double)sw / dw, scale_y = (double)sh / dh;
    for (int dx = 0; dx < dw; dx++) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        if (sx < 0) fx = 0, sx = 0;
        if (sx >= sw - 1) fx = 0, sx = sw - 1;
        lb->xofs[dx] = sx * 3;
        lb->alpha[2 * dx] = lb_weight(1.f - fx);
        lb->alpha[2 * dx + 1] = lb_weight(fx);
        if (sx == sw - 1 && sw > 1) { /* the last pixel, read as the second of a pair inside the row */
            lb->xofs[dx] = (sx - 1) * 3;
            lb->alpha[2 * dx] = 0;
            lb->alpha[2 * dx + 1] = LB_COEF_SCALE;
        }
        if (lb->xofs[dx] + 8 <= sw * 3) lb->kernel_cols = dx + 1; /* offsets never decrease */
    }
    for (int dy = 0; dy < dh; dy++) {
        float fy = (float)((dy + 0.5) * scale_y - 0.5);
        int sy = (int)floorf(fy);
        fy -= (float)sy;
        lb->yofs[dy] = sy;
        lb->beta[2 * dy] = lb_weight(1.f - fy);
        lb->beta[2 * dy + 1] = lb_weight(fy);
    }
    return 0;
}

vigil_status letterbox_create(int src_w, int src_h, int in_w, int in_h, const vigil_preprocess *pre, void *dst,
                              letterbox **out, vigil_error *err) {
    *out = NULL;
    vigil_preprocess defaults = vigil_preprocess_default();
    if (!pre) pre = &defaults;
    if (src_w <= 0 || src_h <= 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "letterbox: no image");
    if (in_w <= 0 || in_h <= 0 || !dst)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "letterbox: bad input size %d x %d", in_w, in_h);
    letterbox *lb = vigil_calloc(1, sizeof *lb);
    if (!lb) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "letterbox: out of memory");
    double r = fmin((double)in_h / src_h, (double)in_w / src_w);
    int nw = pre->stretch ? in_w : lb_round_even(src_w * r);
    int nh = pre->stretch ? in_h : lb_round_even(src_h * r);
    nw = nw < 1 ? 1 : nw > in_w ? in_w : nw;
    nh = nh < 1 ? 1 : nh > in_h ? in_h : nh;
    int left = 0, top = 0;
    if (pre->centred) {
        left = lb_round_even((in_w - nw) / 2.0 - 0.1);
        top = lb_round_even((in_h - nh) / 2.0 - 0.1);
        if (left < 0) left = 0;
        if (top < 0) top = 0;
    }
    lb->src_w = src_w, lb->src_h = src_h;
    lb->nw = nw, lb->nh = nh, lb->left = left, lb->top = top;
    lb->pad = pre->pad_value;
    lb->copy = nw == src_w && nh == src_h; /* Ultralytics skips the resize too */
    lb->scale_x = pre->stretch ? (float)in_w / src_w : (float)r;
    lb->scale_y = pre->stretch ? (float)in_h / src_h : (float)r;
    if (pre->u8 && pre->layout != VIGIL_LAYOUT_NHWC) {
        letterbox_destroy(lb);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "letterbox: a uint8 input is NHWC");
    }
    lb->t = (lb_target){.dst = pre->u8 ? NULL : dst,
                        .dst_u8 = pre->u8 ? dst : NULL,
                        .u8 = pre->u8,
                        .in_w = in_w,
                        .in_h = in_h,
                        .layout = pre->layout,
                        .swap_rb = pre->swap_rb};
    for (int c = 0; c < 3; c++) {
        int plain = pre->scale[c] == 1 / 255.f; /* divide, as NumPy's x / 255 does */
        lb->t.mean[c] = pre->mean[c];
        lb->t.mul[c] = plain ? 1.f : pre->scale[c];
        lb->t.div[c] = plain ? 255.f : 1.f;
        double factor = (double)lb->t.mul[c] / (double)lb->t.div[c];
        lb->t.fast[c] = lb_fast_is_exact(&lb->t, c, factor);
        lb->t.factor[c] = factor;
    }
    lb->hresize = lb_hresize_best();
    if (!lb->copy && lb_tables(lb) != 0) {
        letterbox_destroy(lb);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "letterbox: out of memory");
    }
    *out = lb;
    return VIGIL_OK;
}

void letterbox_info(const letterbox *lb, vigil_letterbox_info *info) {
    *info = (vigil_letterbox_info){.scale_x = lb->scale_x,
                                   .scale_y = lb->scale_y,
                                   .pad_left = lb->left,
                                   .pad_top = lb->top,
                                   .resized_w = lb->nw,
                                   .resized_h = lb->nh};
}

void letterbox_assume_padded(letterbox *lb) {
    lb->padded = 1;
}

int letterbox_copies(const letterbox *lb) { return lb->copy && lb->t.u8 && !lb->t.swap_rb; }

int letterbox_rows(const letterbox *lb) {
    return lb->nh;
}

int letterbox_first_reader(const letterbox *lb, int sy) {
    if (lb->copy) return sy < 0 ? 0 : sy > lb->nh ? lb->nh : sy;
    int lo = 0, hi = lb->nh; /* yofs never decreases: binary search */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (lb_clamp_row(lb->yofs[mid], lb->src_h) >= sy)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* One run's working rows: the two horizontally filtered source rows it
 * interpolates between and the resized row, planar [3][nw] each, padded to
 * whole LB_BLOCKs. */
typedef struct lb_cache {
    short *rows[2];
    int row_src[2]; /* which source row each holds, -1 = none */
    short *out;
} lb_cache;

static void lb_cache_free(lb_cache *c) {
    vigil_free(c->rows[0]);
    vigil_free(c->rows[1]);
    vigil_free(c->out);
}

static int lb_cache_init(lb_cache *c, int nw) {
    size_t padded = ((size_t)nw * 3 + LB_BLOCK - 1) / LB_BLOCK * LB_BLOCK;
    c->rows[0] = vigil_calloc(padded, sizeof(short));
    c->rows[1] = vigil_calloc(padded, sizeof(short));
    c->out = vigil_calloc(padded, sizeof(short));
    c->row_src[0] = c->row_src[1] = -1;
    return c->rows[0] && c->rows[1] && c->out ? 0 : -1;
}

/* Points *out at the filtered row for source row sy, computed into the slot
 * that is not holding `keep` unless a slot has it already. */
static vigil_status lb_row(const letterbox *lb, lb_cache *c, const letterbox_source *src, int sy, int keep,
                           const short **out, vigil_error *err) {
    for (int i = 0; i < 2; i++)
        if (c->row_src[i] == sy) {
            *out = c->rows[i];
            return VIGIL_OK;
        }
    const uint8_t *pixels;
    vigil_status st = src->row(src->ctx, sy, &pixels, err);
    if (st) return st;
    int slot = c->row_src[0] == keep ? 1 : 0;
    lb_hresize(lb, pixels, lb->src_w, lb->nw, c->rows[slot]);
    c->row_src[slot] = sy;
    *out = c->rows[slot];
    return VIGIL_OK;
}

/* n bytes of a row into a uint8 input, written past the caches where the
 * CPU can (x86-64: SSE2 streaming stores, fenced by the caller): a uint8
 * NHWC input is a device's, which the host's cores do not read again, and
 * one of a megabyte last written frames ago is no longer cached, so plain
 * stores would first read every line of it from memory.  The bytes are the
 * same either way. */
static void lb_stream_row(uint8_t *dst, const uint8_t *src, size_t n) {
#if defined(__x86_64__)
    size_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];
    for (; i + 16 <= n; i += 16) _mm_stream_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
    memcpy(dst + i, src + i, n - i);
#else
    memcpy(dst, src, n);
#endif
}

/* Image already at the resized size: deinterleave each row and store it. */
static vigil_status lb_copy_rows(const letterbox *lb, lb_cache *c, const letterbox_source *src, int dy0, int dy1,
                                 vigil_error *err) {
    int w = lb->src_w;
    vigil_status st = VIGIL_OK;
    for (int y = dy0; y < dy1; y++) {
        const uint8_t *pixels;
        st = src->row(src->ctx, y, &pixels, err);
        if (st) break;
        if (lb->t.u8 && !lb->t.swap_rb) { /* the row is the input's bytes already */
            lb_stream_row(lb->t.dst_u8 + ((size_t)(lb->top + y) * lb->t.in_w + lb->left) * 3, pixels, (size_t)w * 3);
            continue;
        }
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++)
                c->out[(size_t)ch * w + x] = (short)pixels[3 * x + ch];
        lb_store_row(&lb->t, c->out, w, w, lb->top + y, lb->left);
    }
#if defined(__x86_64__)
    _mm_sfence(); /* the streamed rows are visible before the input is handed on */
#endif
    return st;
}

vigil_status letterbox_run(const letterbox *lb, const letterbox_source *src, int dy0, int dy1, vigil_error *err) {
    lb_cache c;
    if (lb_cache_init(&c, lb->nw) != 0) {
        lb_cache_free(&c);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "letterbox: out of memory");
    }
    vigil_status st = VIGIL_OK;
    /* the padding of these rows: with the first row everything above, with
     * the last everything below */
    if (!lb->padded) lb_fill_pad(lb, dy0 == 0 ? 0 : lb->top + dy0, dy1 == lb->nh ? lb->t.in_h : lb->top + dy1);
    if (lb->copy) {
        st = lb_copy_rows(lb, &c, src, dy0, dy1, err);
        lb_cache_free(&c);
        return st;
    }
    for (int dy = dy0; dy < dy1; dy++) {
        int sy0 = lb_clamp_row(lb->yofs[dy], lb->src_h), sy1 = lb_clamp_row(lb->yofs[dy] + 1, lb->src_h);
        const short *r0, *r1;
        st = lb_row(lb, &c, src, sy0, sy1, &r0, err);
        if (!st) st = lb_row(lb, &c, src, sy1, sy0, &r1, err);
        if (st) break;
        lb_vresize(r0, r1, lb->beta[2 * dy], lb->beta[2 * dy + 1], lb->nw * 3, c.out);
        lb_store_row(&lb->t, c.out, lb->nw, lb->nw, lb->top + dy, lb->left);
    }
    lb_cache_free(&c);
    return st;
}

/* ------------------------------------------------ an image in memory */

static vigil_status lb_image_row(void *ctx, int y, const uint8_t **pixels, vigil_error *err) {
    (void)err;
    const vigil_image *img = ctx;
    *pixels = img->data + (size_t)y * img->stride;
    return VIGIL_OK;
}

vigil_status vigil_letterbox(const vigil_image *image, int in_w, int in_h, const vigil_preprocess *pre, void *dst,
                             vigil_letterbox_info *info, vigil_error *err) {
    if (!image || !image->data || image->width <= 0 || image->height <= 0 || image->stride < image->width * 3)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "letterbox: no image");
    letterbox *lb;
    vigil_status st = letterbox_create(image->width, image->height, in_w, in_h, pre, dst, &lb, err);
    if (st) return st;
    if (info) letterbox_info(lb, info);
    letterbox_source src = {.row = lb_image_row, .ctx = (void *)image};
    st = letterbox_run(lb, &src, 0, lb->nh, err);
    letterbox_destroy(lb);
    return st;
}
