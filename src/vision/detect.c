/*
 * detect.c - detection as steps around a model run that happens elsewhere:
 * a spec (what the tensors say), pre-processing into a slot of the caller's
 * batch input, post-processing of one item of the caller's outputs.
 *
 *   preprocess:  decode (full size; JPEG DCT-scaled towards the input size
 *                only with jpeg_reduced_scale) -> letterbox into the slot;
 *                a JPEG that needs no rotation streams into the slot in
 *                bands (jpeg_letterbox.c) over the pool the caller lends
 *   postprocess: decode the head from the item's slice of the outputs ->
 *                NMS -> map boxes back through the letterbox and any DCT
 *                scale, clip -> masks for seg models
 *
 * An fp16 model (an fp16 export keeps float16 inputs and outputs) is met
 * at this boundary alone: the letterbox writes float32 as for any model
 * and the slot receives it rounded once to half (ties to even); the
 * item's float16 outputs are widened (exactly) into the store before the
 * head reads them.  The heads, NMS and masks only ever see float32.
 *
 * No model, plan or backend is known here: the server's detection job and
 * `vigil detect` run the model through a backend between the two steps, so
 * detection answers on any backend.  The spec is read-only after creation;
 * the per-run memory (candidates, detections, masks) is the caller's
 * vigil_detections store, reused run after run.
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/half.h"
#include "vigil/vision.h"
#include "vision/family.h"
#include "vision/heads.h"
#include "vision/jpeg_letterbox.h"
#include "vision/letterbox.h"

struct vigil_detect_spec {
    vigil_detector_options options;
    head_layout layout;
    vigil_preprocess pre;
    vigil_layout input_layout;
    vigil_dtype input_dtype; /* float32, float16 (letterboxed in float32, then narrowed), or uint8 NHWC (pre.u8) */
    int in_w, in_h;
    vigil_labels *labels; /* NULL when the model names none */
};

struct vigil_detections {
    head_boxes boxes; /* the kept candidates, in the order of dets (masks need their anchors) */
    float *widened;   /* an fp16 model's outputs for the item, as float32 (NULL until one is met) */
    size_t widened_cap;
    vigil_detection *dets;
    size_t cap, count;
};

vigil_detect_options vigil_detect_options_default(void) {
    vigil_detect_options o = {.conf_threshold = 0.25f, .iou_threshold = 0.45f, .max_detections = 300};
    return o;
}

vigil_detector_options vigil_detector_options_default(void) {
    vigil_detector_options o = {.family = VIGIL_HEAD_AUTO}; /* full-size JPEG decode */
    return o;
}

/* ------------------------------------------------------------ the spec */

/* The pixel convention each family was trained with. */
static vigil_preprocess spec_preprocess(vigil_head_family family, vigil_layout layout) {
    vigil_preprocess p = vigil_preprocess_default();
    p.layout = layout;
    if (family == VIGIL_HEAD_YOLOX) { /* BGR, 0..255, image at the top-left */
        p.swap_rb = 1, p.centred = 0;
        p.scale[0] = p.scale[1] = p.scale[2] = 1.f;
    } else if (family == VIGIL_HEAD_NANODET) { /* BGR, ImageNet mean/std in 0..255, stretched */
        static const float mean[3] = {103.53f, 116.28f, 123.675f}, std[3] = {57.375f, 57.12f, 58.395f};
        p.swap_rb = 1, p.stretch = 1;
        for (int c = 0; c < 3; c++)
            p.mean[c] = mean[c], p.scale[c] = 1.f / std[c];
    }
    return p;
}

static vigil_status spec_labels(vigil_detect_spec *spec, const char *labels_path, const char *names,
                                vigil_error *err) {
    if (labels_path) return vigil_labels_load(labels_path, &spec->labels, err);
    if (!names) return VIGIL_OK;
    vigil_error ignored;
    if (vigil_labels_parse(names, &spec->labels, &ignored) != VIGIL_OK) spec->labels = NULL; /* ids only */
    return VIGIL_OK;
}

void vigil_detect_spec_destroy(vigil_detect_spec *spec) {
    if (!spec) return;
    vigil_labels_free(spec->labels);
    vigil_free(spec);
}

vigil_status vigil_detect_spec_create(const vigil_tensor_info *input, const vigil_tensor_info *const *outputs,
                                      size_t n_outputs, const char *names, const char *task, const char *imgsz,
                                      const vigil_detector_options *options, vigil_detect_spec **out,
                                      vigil_error *err) {
    *out = NULL;
    if (!input || !outputs || n_outputs == 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: the model has no input or no output");
    vigil_detect_spec *spec = vigil_calloc(1, sizeof *spec);
    if (!spec) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory");
    spec->options = options ? *options : vigil_detector_options_default();
    spec->options.labels_path = NULL; /* not kept: the caller's string may go away */
    spec->input_layout = VIGIL_LAYOUT_NCHW;
    vigil_status st = family_input_size(input, imgsz, &spec->input_layout, &spec->in_w, &spec->in_h, err);
    if (!st) st = spec_labels(spec, options ? options->labels_path : NULL, names, err);
    size_t n_out = n_outputs < HEAD_MAX_OUTPUTS ? n_outputs : HEAD_MAX_OUTPUTS;
    vigil_tensor_info infos[HEAD_MAX_OUTPUTS];
    for (size_t i = 0; i < n_out; i++) {
        infos[i] = *outputs[i];
        if (infos[i].dtype == VIGIL_DTYPE_F16) infos[i].dtype = VIGIL_DTYPE_F32; /* the head sees them widened */
    }
    if (!st)
        st = head_detect_layout(infos, n_out, (int)vigil_labels_count(spec->labels), task, spec->in_w, spec->in_h,
                                spec->options.family, spec->options.nanodet_reg_max, &spec->layout, err);
    if (st) {
        vigil_error_prefix(err, "detector");
        vigil_detect_spec_destroy(spec);
        return st;
    }
    spec->pre = spec_preprocess(spec->layout.family, spec->input_layout);
    spec->input_dtype = input->dtype;
    spec->pre.u8 = input->dtype == VIGIL_DTYPE_U8;
    *out = spec;
    return VIGIL_OK;
}

vigil_head_family vigil_detect_spec_family(const vigil_detect_spec *spec) { return spec->layout.family; }
const vigil_labels *vigil_detect_spec_labels(const vigil_detect_spec *spec) { return spec->labels; }

vigil_tensor vigil_detect_spec_input(const vigil_detect_spec *spec, size_t n) {
    vigil_tensor t = {.dtype = spec->input_dtype, .ndim = 4};
    int64_t dims[4] = {(int64_t)n, 3, spec->in_h, spec->in_w};
    if (spec->input_layout == VIGIL_LAYOUT_NHWC) dims[1] = spec->in_h, dims[2] = spec->in_w, dims[3] = 3;
    memcpy(t.dims, dims, sizeof dims);
    return t;
}

/* ------------------------------------------------------ pre-processing */

static vigil_decode_options spec_decode_options(const vigil_detect_spec *spec) {
    vigil_decode_options dec = spec->options.decode;
    /* Only on request: a reduced-scale decode changes the pixels the resize sees. */
    if (spec->options.jpeg_reduced_scale) dec.target_size = spec->in_w > spec->in_h ? spec->in_w : spec->in_h;
    return dec;
}

vigil_status vigil_detect_decode(const vigil_detect_spec *spec, const void *bytes, size_t size, vigil_image *image,
                                 vigil_decode_info *info, vigil_error *err) {
    vigil_decode_options dec = spec_decode_options(spec);
    return vigil_image_decode(bytes, size, &dec, image, info, err);
}

/* Where the letterbox writes for slot_dst: the slot itself, or for an fp16
 * input a float32 image of the input's size, narrowed into the slot by
 * half_finish (a fresh one per image: the spec is shared by threads and
 * read-only, and 4.9 MB at 640x640 is small beside the run it feeds). */
static vigil_status half_scratch(const vigil_detect_spec *spec, void *slot_dst, void **dst, vigil_error *err) {
    *dst = slot_dst;
    if (spec->input_dtype != VIGIL_DTYPE_F16) return VIGIL_OK;
    *dst = vigil_malloc((size_t)spec->in_w * (size_t)spec->in_h * 3 * sizeof(float));
    return *dst ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory for an fp16 input");
}

static void half_finish(const vigil_detect_spec *spec, void *dst, void *slot_dst, vigil_status st) {
    if (spec->input_dtype != VIGIL_DTYPE_F16) return;
    if (!st) half_narrow(dst, slot_dst, (size_t)spec->in_w * (size_t)spec->in_h * 3);
    vigil_free(dst);
}

/* Slot `slot` of input, checked against the spec's geometry. */
static vigil_status spec_slot(const vigil_detect_spec *spec, const vigil_tensor *input, size_t slot, void **out,
                              vigil_error *err) {
    vigil_tensor want = vigil_detect_spec_input(spec, 1);
    int same = input && input->data && input->dtype == spec->input_dtype && input->ndim == 4 && input->dims[0] > 0 &&
               (int64_t)slot < input->dims[0];
    for (int d = 1; same && d < 4; d++) same = input->dims[d] == want.dims[d];
    if (!same)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: slot %zu is not in the batch input", slot);
    *out = (uint8_t *)input->data + vigil_tensor_bytes(&want) * slot;
    return VIGIL_OK;
}

/* Row y of a frame whose bytes lie in pieces; rows are asked for in
 * increasing order (a row asked again, or an earlier one, restarts the
 * walk), so finding one is a step along the pieces. */
typedef struct piece_rows {
    const vigil_piece *pieces;
    size_t n, at, base; /* piece `at` starts at byte `base` of the frame */
    size_t stride, row_bytes;
    uint8_t *scratch; /* a row that crosses pieces, gathered */
} piece_rows;

static vigil_status piece_row(void *ctx, int y, const uint8_t **pixels, vigil_error *err) {
    piece_rows *p = ctx;
    size_t off = (size_t)y * p->stride;
    if (off < p->base) p->at = 0, p->base = 0;
    while (p->at < p->n && off - p->base >= p->pieces[p->at].size) p->base += p->pieces[p->at++].size;
    size_t from = off - p->base, got = 0;
    if (p->at < p->n && p->pieces[p->at].size - from >= p->row_bytes) {
        *pixels = p->pieces[p->at].data + from;
        return VIGIL_OK;
    }
    for (size_t i = p->at; i < p->n && got < p->row_bytes; i++, from = 0) {
        size_t take = p->pieces[i].size - from < p->row_bytes - got ? p->pieces[i].size - from : p->row_bytes - got;
        memcpy(p->scratch + got, p->pieces[i].data + from, take);
        got += take;
    }
    if (got < p->row_bytes) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "frame: row %d is cut short", y);
    *pixels = p->scratch;
    return VIGIL_OK;
}

/* The one letterbox of an image in memory: rows from src, into slot, the
 * padding left as it is when padded says the slot holds this geometry's. */
static vigil_status preprocess_rows(const vigil_detect_spec *spec, int width, int height, const letterbox_source *src,
                                    int orig_w, int orig_h, const vigil_tensor *input, size_t slot,
                                    const vigil_letterbox_info *padded, vigil_detect_item *item, vigil_error *err) {
    memset(item, 0, sizeof *item);
    void *dst = NULL, *slot_dst = NULL;
    vigil_status st = spec_slot(spec, input, slot, &slot_dst, err);
    if (!st) st = half_scratch(spec, slot_dst, &dst, err);
    if (st) return st;
    double t0 = clock_now_ms();
    letterbox *lb = NULL;
    st = letterbox_create(width, height, spec->in_w, spec->in_h, &spec->pre, dst, &lb, err);
    if (!st) {
        letterbox_info(lb, &item->letterbox);
        /* an fp16 input's scratch is fresh: its padding is written each time */
        if (padded && dst == slot_dst && memcmp(padded, &item->letterbox, sizeof *padded) == 0)
            letterbox_assume_padded(lb);
        st = letterbox_run(lb, src, 0, letterbox_rows(lb), err);
        letterbox_destroy(lb);
    }
    half_finish(spec, dst, slot_dst, st);
    if (st) return st;
    item->letterbox_ms = clock_now_ms() - t0;
    item->decoded_w = width, item->decoded_h = height;
    item->orig_w = orig_w, item->orig_h = orig_h;
    return VIGIL_OK;
}

/* 1 with *info set when a width x height RGB24 frame's letterbox into
 * spec's input only copies rows (vigil_detect_frame_copies). */
static int frame_copy_geometry(const vigil_detect_spec *spec, int width, int height, vigil_letterbox_info *info) {
    if (!spec || spec->input_dtype != VIGIL_DTYPE_U8 || width <= 0 || height <= 0) return 0;
    uint8_t probe; /* letterbox_create wants a destination; nothing is written */
    letterbox *lb = NULL;
    vigil_error err = {0};
    if (letterbox_create(width, height, spec->in_w, spec->in_h, &spec->pre, &probe, &lb, &err)) return 0;
    int copies = letterbox_copies(lb);
    letterbox_info(lb, info);
    letterbox_destroy(lb);
    return copies;
}

int vigil_detect_frame_copies(const vigil_detect_spec *spec, int width, int height) {
    vigil_letterbox_info info;
    return frame_copy_geometry(spec, width, height, &info);
}

int vigil_detect_frame_in_place(const vigil_detect_spec *spec, uint8_t *frame, int width, int height, int stride,
                                size_t room, uint8_t **input, vigil_detect_item *item) {
    double t0 = clock_now_ms();
    vigil_letterbox_info info;
    if (!frame_copy_geometry(spec, width, height, &info) || width != spec->in_w || stride != width * 3) return 0;
    size_t row = (size_t)stride, above = (size_t)info.pad_top * row;
    size_t below = (size_t)(spec->in_h - info.pad_top - height) * row;
    if (info.pad_left != 0 || above > room || below > room) return 0;
    memset(frame - above, spec->pre.pad_value, above);
    memset(frame + (size_t)height * row, spec->pre.pad_value, below);
    *input = frame - above;
    *item = (vigil_detect_item){.letterbox = info,
                                .decoded_w = width,
                                .decoded_h = height,
                                .orig_w = width,
                                .orig_h = height,
                                .letterbox_ms = clock_now_ms() - t0};
    return 1;
}

vigil_status vigil_detect_preprocess_pieces(const vigil_detect_spec *spec, const vigil_piece *pieces, size_t n,
                                            int width, int height, int stride, const vigil_tensor *input,
                                            size_t slot, const vigil_letterbox_info *padded,
                                            vigil_detect_item *item, vigil_error *err) {
    memset(item, 0, sizeof *item);
    if (!pieces || !n || width <= 0 || height <= 0 || stride < width * 3)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: no frame");
    piece_rows rows = {.pieces = pieces, .n = n, .stride = (size_t)stride, .row_bytes = (size_t)width * 3};
    if (!(rows.scratch = vigil_malloc(rows.row_bytes)))
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory for a row");
    letterbox_source src = {.row = piece_row, .ctx = &rows};
    vigil_status st = preprocess_rows(spec, width, height, &src, width, height, input, slot, padded, item, err);
    vigil_free(rows.scratch);
    return st;
}

vigil_status vigil_detect_preprocess_image(const vigil_detect_spec *spec, const vigil_image *image, int orig_w,
                                           int orig_h, const vigil_tensor *input, size_t slot,
                                           vigil_detect_item *item, vigil_error *err) {
    memset(item, 0, sizeof *item);
    if (!image || !image->data || image->width <= 0 || image->height <= 0 || image->stride < image->width * 3)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: no image");
    vigil_piece whole = {image->data, (size_t)(image->height - 1) * (size_t)image->stride + (size_t)image->width * 3};
    piece_rows rows = {.pieces = &whole, .n = 1, .stride = (size_t)image->stride, .row_bytes = (size_t)image->width * 3};
    letterbox_source src = {.row = piece_row, .ctx = &rows}; /* one piece: no row crosses, no scratch */
    return preprocess_rows(spec, image->width, image->height, &src, orig_w, orig_h, input, slot, NULL, item, err);
}

vigil_status vigil_detect_preprocess(const vigil_detect_spec *spec, const void *bytes, size_t size,
                                     const vigil_tensor *input, size_t slot, const vigil_parallel *pool,
                                     const vigil_letterbox_info *padded, vigil_detect_item *item, vigil_error *err) {
    memset(item, 0, sizeof *item);
    void *dst = NULL, *slot_dst = NULL;
    vigil_status st = spec_slot(spec, input, slot, &slot_dst, err);
    if (st) return st;
    double t0 = clock_now_ms();
    vigil_decode_options dec = spec_decode_options(spec);
    if (!jpeg_letterbox_applies(bytes, size, &dec)) { /* PNG, or a JPEG to rotate: the whole image first */
        vigil_image image;
        vigil_decode_info info;
        st = vigil_image_decode(bytes, size, &dec, &image, &info, err);
        if (st) return st;
        double decode_ms = clock_now_ms() - t0;
        st = vigil_detect_preprocess_image(spec, &image, info.orig_width, info.orig_height, input, slot, item, err);
        item->decode_ms = decode_ms;
        vigil_image_free(&image);
        return st;
    }
    /* Straight into the slot, in bands over the lent pool: no whole image
     * in memory, and the cores inference will use are not idle meanwhile.
     * (An fp16 slot gets its image through a float32 one, padding and all.) */
    st = half_scratch(spec, slot_dst, &dst, err);
    if (st) return st;
    vigil_decode_info info;
    jpeg_letterbox_stats timing;
    jpeg_letterbox_dst to = {.data = dst,
                             .in_w = spec->in_w,
                             .in_h = spec->in_h,
                             .pre = &spec->pre,
                             .padded = spec->input_dtype == VIGIL_DTYPE_F16 ? NULL : padded};
    int parts = pool && pool->run && pool->threads > 1 ? pool->threads : 1;
    st = jpeg_letterbox(bytes, size, &dec, &to, pool, parts, &info, &item->letterbox, &timing, err);
    double t1 = clock_now_ms();
    half_finish(spec, dst, slot_dst, st);
    if (st) return st;
    item->decode_ms = timing.decode_ms;
    item->letterbox_ms = timing.letterbox_ms + (clock_now_ms() - t1); /* with the narrowing of an fp16 input */
    item->decoded_w = (info.orig_width + info.scale_denom - 1) / info.scale_denom;
    item->decoded_h = (info.orig_height + info.scale_denom - 1) / info.scale_denom;
    item->orig_w = info.orig_width, item->orig_h = info.orig_height;
    return VIGIL_OK;
}

/* ----------------------------------------------------- post-processing */

vigil_status vigil_detections_create(vigil_detections **out, vigil_error *err) {
    *out = vigil_calloc(1, sizeof **out);
    return *out ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory");
}

static void store_free_masks(vigil_detections *store) {
    for (size_t i = 0; i < store->count; i++) {
        vigil_free(store->dets[i].mask.counts);
        store->dets[i].mask = (vigil_mask_rle){0};
    }
    store->count = 0;
}

void vigil_detections_destroy(vigil_detections *store) {
    if (!store) return;
    store_free_masks(store);
    head_boxes_free(&store->boxes);
    vigil_free(store->widened);
    vigil_free(store->dets);
    vigil_free(store);
}

static vigil_status store_reserve(vigil_detections *store, size_t n, vigil_error *err) {
    if (n <= store->cap) return VIGIL_OK;
    vigil_detection *grown = vigil_realloc(store->dets, n * sizeof *grown);
    if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for %zu detections", n);
    store->dets = grown;
    store->cap = n;
    return VIGIL_OK;
}

/* Item i of a batch output of n items as a batch-1 tensor. */
static vigil_tensor batch_slice(const vigil_tensor *t, size_t n, size_t i) {
    vigil_tensor s = *t;
    size_t bytes = vigil_tensor_bytes(t);
    s.dims[0] = t->dims[0] / (int64_t)n;
    s.data = (char *)t->data + bytes / n * i;
    return s;
}

/* The item's float16 outputs widened into the store, so the head reads
 * float32 as from any model; float32 ones are left as they are. */
static vigil_status widen_outputs(vigil_tensor *outs, size_t n, vigil_detections *store, vigil_error *err) {
    size_t need = 0;
    for (size_t k = 0; k < n; k++)
        if (outs[k].dtype == VIGIL_DTYPE_F16) need += vigil_tensor_bytes(&outs[k]) / sizeof(uint16_t);
    if (need > store->widened_cap) {
        float *grown = vigil_realloc(store->widened, need * sizeof *grown);
        if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory widening fp16 outputs");
        store->widened = grown;
        store->widened_cap = need;
    }
    float *at = store->widened;
    for (size_t k = 0; k < n; k++) {
        if (outs[k].dtype != VIGIL_DTYPE_F16) continue;
        size_t count = vigil_tensor_bytes(&outs[k]) / sizeof(uint16_t);
        half_widen(outs[k].data, at, count);
        outs[k].dtype = VIGIL_DTYPE_F32;
        outs[k].data = at;
        at += count;
    }
    return VIGIL_OK;
}

/* How boxes in the network input map back to the item's original (which a
 * DCT-scaled decode may have made larger than what the letterbox read). */
static head_geometry item_geometry(const vigil_detect_spec *spec, const vigil_detect_item *item) {
    const vigil_letterbox_info *lb = &item->letterbox;
    return (head_geometry){.gain_x = lb->scale_x * (float)item->decoded_w / (float)item->orig_w,
                           .gain_y = lb->scale_y * (float)item->decoded_h / (float)item->orig_h,
                           .pad_x = (float)lb->pad_left,
                           .pad_y = (float)lb->pad_top,
                           .input_w = spec->in_w,
                           .input_h = spec->in_h,
                           .orig_w = item->orig_w,
                           .orig_h = item->orig_h};
}

/* Masks of the kept detections of a seg model, from the item's slices of
 * output 0 (coefficients) and output 1 (prototypes). */
static vigil_status item_masks(const vigil_detect_spec *spec, const vigil_tensor *outs, size_t n_outs,
                               const head_geometry *geo, vigil_detections *store, vigil_error *err) {
    if (spec->layout.family != VIGIL_HEAD_YOLOV8_SEG || n_outs < 2) return VIGIL_OK;
    const vigil_tensor *p = &outs[1];
    if (p->ndim != 4 || p->dtype != VIGIL_DTYPE_F32 || p->dims[1] != spec->layout.n_mask_coeffs) return VIGIL_OK;
    for (size_t i = 0; i < store->count; i++) {
        vigil_detection *d = &store->dets[i];
        vigil_status st = head_mask_rle(&spec->layout, outs[0].data, p->data, (int)p->dims[2], (int)p->dims[3],
                                        store->boxes.items[i].anchor, d, geo, &d->mask, err);
        if (st) return st;
    }
    return VIGIL_OK;
}

vigil_status vigil_detect_postprocess(const vigil_detect_spec *spec, const vigil_tensor *const *outputs,
                                      size_t n_outputs, size_t n, size_t slot, const vigil_detect_item *item,
                                      const vigil_detect_options *options, vigil_detections *store,
                                      vigil_detect_result *result, vigil_error *err) {
    double t0 = clock_now_ms();
    memset(result, 0, sizeof *result);
    store_free_masks(store);
    if (n < 1 || slot >= n) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: no item %zu", slot);
    vigil_detect_options defaults = vigil_detect_options_default();
    const vigil_detect_options *o = options ? options : &defaults;
    /* The outputs the head reads (one, or six for NanoDet's original
     * export; two for seg: the prototypes), each sliced to this item. */
    size_t want = spec->layout.n_outputs > 1 ? (size_t)spec->layout.n_outputs : 1;
    if (spec->layout.family == VIGIL_HEAD_YOLOV8_SEG) want = 2;
    vigil_tensor outs[HEAD_MAX_OUTPUTS];
    size_t k = 0;
    for (; k < want && k < n_outputs && outputs[k]; k++) {
        if (n > 1 && (outputs[k]->ndim < 1 || outputs[k]->dims[0] != (int64_t)n))
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "detector: output %zu has no batch of %zu", k, n);
        outs[k] = batch_slice(outputs[k], n, slot);
    }
    head_params hp = {.conf_threshold = o->conf_threshold,
                      .classes = o->classes,
                      .n_classes = o->n_classes,
                      .input_w = spec->in_w,
                      .input_h = spec->in_h};
    store->boxes.count = 0;
    vigil_status st = widen_outputs(outs, k, store, err);
    if (st) return st;
    size_t n_head = spec->layout.family == VIGIL_HEAD_YOLOV8_SEG ? 1 : k; /* the head reads output 0 alone */
    st = head_decode_outputs(&spec->layout, outs, n_head, &hp, &store->boxes, err);
    if (st) return st;
    /* YOLOv10 did its NMS in the graph, Hailo's on the chip: rank and cap only. */
    int nms_done = spec->layout.family == VIGIL_HEAD_YOLOV10 || spec->layout.family == VIGIL_HEAD_HAILO_NMS;
    float iou = nms_done ? INFINITY : o->iou_threshold;
    size_t kept = head_nms(&store->boxes, iou, o->agnostic || iou == INFINITY, o->max_detections);
    st = store_reserve(store, kept, err);
    if (st) return st;
    head_geometry geo = item_geometry(spec, item);
    for (size_t i = 0; i < kept; i++) {
        const head_box *b = &store->boxes.items[i];
        vigil_detection *d = &store->dets[i];
        head_map_box(b, &geo, d);
        d->class_name = vigil_labels_name(spec->labels, b->class_id);
        d->mask = (vigil_mask_rle){0};
    }
    store->count = kept;
    if (o->with_masks) st = item_masks(spec, outs, k, &geo, store, err);
    if (st) return st;
    result->detections = store->dets;
    result->count = store->count;
    result->image_width = item->orig_w;
    result->image_height = item->orig_h;
    result->timing.decode_ms = item->decode_ms;
    result->timing.letterbox_ms = item->letterbox_ms;
    result->timing.postprocess_ms = clock_now_ms() - t0;
    result->timing.total_ms = item->decode_ms + item->letterbox_ms + result->timing.postprocess_ms;
    return VIGIL_OK;
}
