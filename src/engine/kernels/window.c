/*
 * window.c - geometry shared by convolution and pooling: defaults, auto_pad
 * resolution and output shapes for Conv, ConvTranspose and the pools, plus
 * the normalisation of 1-D and 2-D windows into one 2-D description that the
 * reference kernels (conv_ref.c, pool_ref.c) loop over.
 */
#include <string.h>

#include "engine/kernels/kernels_internal.h"
#include "engine/kernels/window_internal.h"

/* Largest kernel, stride, dilation or pad accepted: keeps all window
 * arithmetic (extent, padded sizes, transposed outputs) far from overflow. */
#define WINDOW_MAX_PARAM ((int64_t)1 << 24)

/* Parameters small enough for the auto_pad arithmetic; insane ones are left
 * for the shape helpers to reject with a status. */
static int window_sane(const kernels_window *w, int i, int64_t in) {
    return w->stride[i] >= 1 && w->stride[i] <= WINDOW_MAX_PARAM && w->kernel[i] >= 1 &&
           w->kernel[i] <= WINDOW_MAX_PARAM && w->dilation[i] >= 1 && w->dilation[i] <= WINDOW_MAX_PARAM &&
           w->output_padding[i] >= 0 && w->output_padding[i] <= WINDOW_MAX_PARAM && in >= 0 &&
           in <= WINDOW_MAX_PARAM * 64;
}

void kernels_window_defaults(kernels_window *w, int nspatial, const int64_t *kernel) {
    memset(w, 0, sizeof *w);
    w->nspatial = nspatial;
    w->group = 1;
    for (int i = 0; i < 2; i++) {
        w->kernel[i] = (kernel && i < nspatial) ? kernel[i] : 1;
        w->stride[i] = 1;
        w->dilation[i] = 1;
    }
}

static int64_t window_extent(const kernels_window *w, int i) {
    return (w->kernel[i] - 1) * w->dilation[i] + 1;
}

void kernels_resolve_auto_pad(kernels_auto_pad auto_pad, const int64_t *in, kernels_window *w) {
    if (auto_pad == KERNELS_PAD_NOTSET) return;
    for (int i = 0; i < w->nspatial; i++) {
        if (auto_pad == KERNELS_PAD_VALID) {
            w->pad_begin[i] = w->pad_end[i] = 0;
            continue;
        }
        if (!window_sane(w, i, in[i])) continue;
        int64_t out = (in[i] + w->stride[i] - 1) / w->stride[i];
        int64_t total = (out - 1) * w->stride[i] + window_extent(w, i) - in[i];
        if (total < 0) total = 0;
        int64_t small = total / 2, big = total - small;
        w->pad_begin[i] = auto_pad == KERNELS_PAD_SAME_UPPER ? small : big;
        w->pad_end[i] = auto_pad == KERNELS_PAD_SAME_UPPER ? big : small;
    }
}

void kernels_resolve_auto_pad_transpose(kernels_auto_pad auto_pad, const int64_t *in, kernels_window *w) {
    if (auto_pad == KERNELS_PAD_NOTSET) return;
    for (int i = 0; i < w->nspatial; i++) {
        if (auto_pad == KERNELS_PAD_VALID) {
            w->pad_begin[i] = w->pad_end[i] = 0;
            continue;
        }
        if (!window_sane(w, i, in[i])) continue;
        int64_t out = in[i] * w->stride[i];
        int64_t total = w->stride[i] * (in[i] - 1) + w->output_padding[i] + window_extent(w, i) - out;
        if (total < 0) total = 0;
        int64_t small = total / 2, big = total - small;
        w->pad_begin[i] = auto_pad == KERNELS_PAD_SAME_UPPER ? small : big;
        w->pad_end[i] = auto_pad == KERNELS_PAD_SAME_UPPER ? big : small;
    }
}

/* Floor division (Python's //), which the spec's pad formulas use. */
static int64_t floor_div2(int64_t v) {
    return v >= 0 ? v / 2 : -((-v + 1) / 2);
}

vigil_status kernels_convtranspose_pads_for_output(const int64_t *in, const int64_t *out, int same_upper,
                                                   kernels_window *w, vigil_error *err) {
    for (int i = 0; i < w->nspatial; i++) {
        if (out[i] < 0 || out[i] > WINDOW_MAX_PARAM * 64 || !window_sane(w, i, in[i]))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conv_transpose: bad output_shape %lld",
                                   (long long)out[i]);
        int64_t total = w->stride[i] * (in[i] - 1) + w->output_padding[i] + window_extent(w, i) - out[i];
        if (same_upper) {
            w->pad_begin[i] = floor_div2(total);
            w->pad_end[i] = total - w->pad_begin[i];
        } else {
            w->pad_end[i] = floor_div2(total);
            w->pad_begin[i] = total - w->pad_end[i];
        }
    }
    return VIGIL_OK;
}

/* Validates rank and window parameters; negative pads only where allowed. */
static vigil_status window_check(const kshape *xs, const kernels_window *w, int negative_pads_ok, const char *op,
                                 vigil_error *err) {
    if (w->nspatial < 1 || w->nspatial > 2 || xs->ndim != 2 + w->nspatial)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s: input rank %d with %d spatial dims (1-D and 2-D only)",
                               op, xs->ndim, w->nspatial);
    vigil_status st = kshape_check(xs, err);
    if (st != VIGIL_OK) return st;
    for (int i = 0; i < w->nspatial; i++) {
        if (w->kernel[i] < 1 || w->stride[i] < 1 || w->dilation[i] < 1)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: kernel, strides and dilations must be >= 1",
                                   op);
        if (w->kernel[i] > WINDOW_MAX_PARAM || w->stride[i] > WINDOW_MAX_PARAM ||
            w->dilation[i] > WINDOW_MAX_PARAM || w->pad_begin[i] > WINDOW_MAX_PARAM ||
            w->pad_end[i] > WINDOW_MAX_PARAM || w->pad_begin[i] < -WINDOW_MAX_PARAM ||
            w->pad_end[i] < -WINDOW_MAX_PARAM || w->output_padding[i] > WINDOW_MAX_PARAM ||
            xs->dims[2 + i] > WINDOW_MAX_PARAM * 64)
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "%s: window parameters too large", op);
        if (!negative_pads_ok && (w->pad_begin[i] < 0 || w->pad_end[i] < 0))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: negative pads", op);
    }
    return VIGIL_OK;
}

vigil_status kernels_conv_shape(const kshape *xs, const kshape *ws, const kernels_window *win, kshape *out,
                                vigil_error *err) {
    vigil_status st = window_check(xs, win, 0, "conv", err);
    if (st != VIGIL_OK) return st;
    if (ws->ndim != xs->ndim || win->group < 1)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conv: weight rank %d for input rank %d", ws->ndim,
                               xs->ndim);
    int64_t c = xs->dims[1], m = ws->dims[0];
    if (c % win->group != 0 || m % win->group != 0 || ws->dims[1] != c / win->group)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "conv: %lld input channels, %lld filters of %lld channels, group %lld", (long long)c,
                               (long long)m, (long long)ws->dims[1], (long long)win->group);
    kshape r = *xs;
    r.dims[1] = m;
    for (int i = 0; i < win->nspatial; i++) {
        if (ws->dims[2 + i] != win->kernel[i])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conv: kernel_shape %lld but weight dim %lld",
                                   (long long)win->kernel[i], (long long)ws->dims[2 + i]);
        int64_t span = xs->dims[2 + i] + win->pad_begin[i] + win->pad_end[i] - window_extent(win, i);
        if (span < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conv: kernel larger than padded input");
        r.dims[2 + i] = span / win->stride[i] + 1;
    }
    st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

vigil_status kernels_convtranspose_shape(const kshape *xs, const kshape *ws, const kernels_window *win, kshape *out,
                                         vigil_error *err) {
    vigil_status st = window_check(xs, win, 1, "conv_transpose", err);
    if (st != VIGIL_OK) return st;
    if (ws->ndim != xs->ndim || win->group < 1 || ws->dims[0] != xs->dims[1] || xs->dims[1] % win->group != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "conv_transpose: weight [%lld, ...] for %lld input channels, group %lld",
                               (long long)ws->dims[0], (long long)xs->dims[1], (long long)win->group);
    kshape r = *xs;
    r.dims[1] = ws->dims[1] * win->group;
    for (int i = 0; i < win->nspatial; i++) {
        if (ws->dims[2 + i] != win->kernel[i])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "conv_transpose: kernel_shape %lld but weight dim %lld", (long long)win->kernel[i],
                                   (long long)ws->dims[2 + i]);
        if (win->output_padding[i] < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conv_transpose: negative output_padding");
        r.dims[2 + i] = win->stride[i] * (xs->dims[2 + i] - 1) + win->output_padding[i] + window_extent(win, i) -
                        win->pad_begin[i] - win->pad_end[i];
        if (r.dims[2 + i] < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conv_transpose: pads exceed the output");
    }
    st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

vigil_status kernels_pool_shape(const kshape *xs, const kernels_window *win, kshape *out, vigil_error *err) {
    vigil_status st = window_check(xs, win, 0, "pool", err);
    if (st != VIGIL_OK) return st;
    kshape r = *xs;
    for (int i = 0; i < win->nspatial; i++) {
        int64_t in = xs->dims[2 + i], s = win->stride[i];
        int64_t span = in + win->pad_begin[i] + win->pad_end[i] - window_extent(win, i);
        if (span < 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "pool: kernel larger than padded input");
        int64_t o = (win->ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (win->ceil_mode && (o - 1) * s >= in + win->pad_begin[i]) o--;
        r.dims[2 + i] = o;
    }
    st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

void window_geom_init(window_geom *g, const kshape *xs, const kshape *ys, const kernels_window *w) {
    int two = w->nspatial == 2;
    g->n = xs->dims[0];
    g->c = xs->dims[1];
    g->m = ys->dims[1];
    g->h = two ? xs->dims[2] : 1;
    g->w = xs->dims[1 + w->nspatial];
    g->oh = two ? ys->dims[2] : 1;
    g->ow = ys->dims[1 + w->nspatial];
    int x = w->nspatial - 1; /* index of the W dim in the window arrays */
    g->kh = two ? w->kernel[0] : 1;
    g->kw = w->kernel[x];
    g->sh = two ? w->stride[0] : 1;
    g->sw = w->stride[x];
    g->dh = two ? w->dilation[0] : 1;
    g->dw = w->dilation[x];
    g->ph = two ? w->pad_begin[0] : 0;
    g->pw = w->pad_begin[x];
    g->ph_end = two ? w->pad_end[0] : 0;
    g->pw_end = w->pad_end[x];
    g->group = w->group;
}

void window_valid_range(int64_t offset, int64_t stride, int64_t in, int64_t out, int64_t *lo, int64_t *hi) {
    /* o is valid when 0 <= o * stride + offset < in */
    int64_t l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t h = in - offset <= 0 ? 0 : (in - offset + stride - 1) / stride;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}
