/*
 * mask.c - YOLOv8-seg instance masks as run-length encoding.
 *
 * A mask is sigmoid(coefficients . prototypes) at prototype resolution
 * (input / 4), cut to the box and thresholded at 0.5, upsampled to the image.
 * sigmoid(v) > 0.5 exactly when v > 0, so the logits are sampled bilinearly
 * at each original pixel's centre mapped through the letterbox, and no
 * sigmoid is ever computed.  Only the prototype cells under the box are
 * combined, and pixels outside the box are background without sampling.
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "vision/heads.h"

typedef struct rle_builder {
    uint32_t *counts;
    size_t n, cap;
    int current; /* value of the open run */
    uint32_t run;
} rle_builder;

static int rle_flush(rle_builder *r) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        uint32_t *grown = vigil_realloc(r->counts, cap * sizeof *grown);
        if (!grown) return -1;
        r->counts = grown;
        r->cap = cap;
    }
    r->counts[r->n++] = r->run;
    r->run = 0;
    r->current ^= 1;
    return 0;
}

/* Appends count pixels of value v. */
static int rle_add(rle_builder *r, int v, uint32_t count) {
    if (count == 0) return 0;
    if (v != r->current && rle_flush(r) != 0) return -1;
    r->run += count;
    return 0;
}

static float mask_sample(const float *logits, int x0, int y0, int cw, int ch, float px, float py) {
    px -= (float)x0;
    py -= (float)y0;
    px = fminf(fmaxf(px, 0), (float)(cw - 1));
    py = fminf(fmaxf(py, 0), (float)(ch - 1));
    int ix = (int)px, iy = (int)py;
    int ix1 = ix + 1 < cw ? ix + 1 : ix, iy1 = iy + 1 < ch ? iy + 1 : iy;
    float fx = px - (float)ix, fy = py - (float)iy;
    const float *r0 = logits + (size_t)iy * cw, *r1 = logits + (size_t)iy1 * cw;
    return (r0[ix] * (1 - fx) + r0[ix1] * fx) * (1 - fy) + (r1[ix] * (1 - fx) + r1[ix1] * fx) * fy;
}

vigil_status head_mask_rle(const head_layout *layout, const float *out0, const float *protos, int mh, int mw,
                           int anchor, const vigil_detection *det, const head_geometry *geo, vigil_mask_rle *out,
                           vigil_error *err) {
    memset(out, 0, sizeof *out);
    int nm = layout->n_mask_coeffs;
    size_t A = (size_t)layout->n_anchors;
    float sx = (float)mw / geo->input_w, sy = (float)mh / geo->input_h; /* prototype cells per input pixel */
    /* Box in prototype cells, one cell of margin for interpolation. */
    int x0 = (int)floorf((det->x1 * geo->gain_x + geo->pad_x) * sx) - 1;
    int y0 = (int)floorf((det->y1 * geo->gain_y + geo->pad_y) * sy) - 1;
    int x1 = (int)ceilf((det->x2 * geo->gain_x + geo->pad_x) * sx) + 1;
    int y1 = (int)ceilf((det->y2 * geo->gain_y + geo->pad_y) * sy) + 1;
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > mw ? mw : x1, y1 = y1 > mh ? mh : y1;
    int cw = x1 - x0, ch = y1 - y0;
    if (cw <= 0 || ch <= 0) cw = ch = 1, x0 = y0 = 0;
    float *logits = vigil_calloc((size_t)cw * ch, sizeof(float));
    if (!logits) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for a mask");
    for (int k = 0; k < nm; k++) {
        float c = out0[(4 + (size_t)layout->n_classes + k) * A + (size_t)anchor];
        const float *plane = protos + (size_t)k * mh * mw;
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++)
                logits[(size_t)y * cw + x] += c * plane[(size_t)(y0 + y) * mw + x0 + x];
    }
    rle_builder r = {0};
    int bx0 = (int)ceilf(det->x1 - 0.5f), bx1 = (int)floorf(det->x2 - 0.5f); /* pixel centres inside */
    int by0 = (int)ceilf(det->y1 - 0.5f), by1 = (int)floorf(det->y2 - 0.5f);
    int fail = 0;
    for (int y = 0; y < geo->orig_h && !fail; y++) {
        if (y < by0 || y > by1 || bx1 < bx0) {
            fail |= rle_add(&r, 0, (uint32_t)geo->orig_w);
            continue;
        }
        fail |= rle_add(&r, 0, (uint32_t)bx0);
        float py = ((y + 0.5f) * geo->gain_y + geo->pad_y) * sy - 0.5f;
        for (int x = bx0; x <= bx1 && x < geo->orig_w && !fail; x++) {
            float px = ((x + 0.5f) * geo->gain_x + geo->pad_x) * sx - 0.5f;
            fail |= rle_add(&r, mask_sample(logits, x0, y0, cw, ch, px, py) > 0, 1);
        }
        int right = bx1 + 1 < geo->orig_w ? bx1 + 1 : geo->orig_w;
        fail |= rle_add(&r, 0, (uint32_t)(geo->orig_w - right));
    }
    if (!fail && (r.run > 0 || r.n == 0)) fail = rle_flush(&r);
    vigil_free(logits);
    if (fail) {
        vigil_free(r.counts);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory encoding a mask");
    }
    out->counts = r.counts;
    out->n_counts = r.n;
    return VIGIL_OK;
}
