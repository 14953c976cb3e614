/*
 * window_internal.h - the 2-D geometry that conv_ref.c and pool_ref.c loop
 * over (1-D windows become H = 1), built by window.c.
 */
#ifndef VIGIL_ENGINE_KERNELS_WINDOW_INTERNAL_H
#define VIGIL_ENGINE_KERNELS_WINDOW_INTERNAL_H

#include "engine/kernels/kernels.h"

typedef struct window_geom {
    int64_t n, c, m;            /* batch, input channels, output channels */
    int64_t h, w, oh, ow;       /* input and output spatial sizes */
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t ph, pw, ph_end, pw_end; /* begin and end pads */
    int64_t group;
} window_geom;

void window_geom_init(window_geom *g, const kshape *xs, const kshape *ys, const kernels_window *w);

/* OUT [lo, hi): the outputs o in [0, out) with 0 <= o * stride + offset < in. */
void window_valid_range(int64_t offset, int64_t stride, int64_t in, int64_t out, int64_t *lo, int64_t *hi);

#endif
