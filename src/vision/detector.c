/*
 * detector.c - one model, one compiled plan and the buffers around it:
 * image bytes in, boxes in original pixels out.
 *
 *   decode (full size; JPEG DCT-scaled towards the input size only with
 *   jpeg_reduced_scale) -> letterbox into the plan's input -> run the plan ->
 *   decode the head -> NMS -> map boxes back through the letterbox and any
 *   DCT scale, clip -> masks for seg models.
 *
 * Everything a run needs is owned here and reused across runs (input tensor,
 * candidate list, detection array), so steady-state runs allocate only the
 * decoded image and any masks.  One detector per worker thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "vigil/vision.h"
#include "vision/family.h"
#include "vision/heads.h"
#include "vision/jpeg_letterbox.h"

struct vigil_detector {
    vigil_model *model; /* borrowed */
    vigil_plan *plan;
    vigil_detector_options options;
    head_layout layout;
    vigil_preprocess pre;
    int in_w, in_h;
    float *input;                        /* [1, 3, in_h, in_w] or NHWC */
    vigil_letterbox_info input_geometry; /* of the padding input holds ... */
    int input_padded;                    /* ... when 1 */
    vigil_tensor input_tensor;
    vigil_labels *labels; /* NULL when the model names none */
    head_boxes boxes;
    vigil_detection *dets;
    size_t dets_cap, n_dets;
    /* batches (vigil_detector_run_batch): a plan per size, one input, and
     * each item's detections */
    vigil_plan *batch_plans[VIGIL_DETECT_BATCH_MAX + 1];
    uint64_t batch_used[VIGIL_DETECT_BATCH_MAX + 1]; /* for evicting the least recently used */
    uint64_t batch_runs;
    float *batch_input;
    size_t batch_input_items;
    vigil_detection *batch_dets[VIGIL_DETECT_BATCH_MAX];
    size_t batch_caps[VIGIL_DETECT_BATCH_MAX];
};

vigil_detect_options vigil_detect_options_default(void) {
    vigil_detect_options o = {.conf_threshold = 0.25f, .iou_threshold = 0.45f, .max_detections = 300};
    return o;
}

vigil_detector_options vigil_detector_options_default(void) {
    vigil_detector_options o = {.family = VIGIL_HEAD_AUTO}; /* full-size JPEG decode */
    return o;
}

vigil_head_family vigil_detector_family(const vigil_detector *det) {
    return det->layout.family;
}
const vigil_labels *vigil_detector_labels(const vigil_detector *det) {
    return det->labels;
}

static void detector_free_masks(vigil_detector *det) {
    for (size_t i = 0; i < det->n_dets; i++) {
        vigil_free(det->dets[i].mask.counts);
        det->dets[i].mask = (vigil_mask_rle){0};
    }
    det->n_dets = 0;
}

void vigil_detector_destroy(vigil_detector *det) {
    if (!det) return;
    detector_free_masks(det);
    vigil_plan_destroy(det->plan);
    for (int i = 0; i <= VIGIL_DETECT_BATCH_MAX; i++)
        vigil_plan_destroy(det->batch_plans[i]);
    for (int i = 0; i < VIGIL_DETECT_BATCH_MAX; i++)
        vigil_free(det->batch_dets[i]);
    vigil_free(det->batch_input);
    vigil_free(det->input);
    vigil_labels_free(det->labels);
    head_boxes_free(&det->boxes);
    vigil_free(det->dets);
    vigil_free(det);
}

/* The pixel convention each family was trained with. */
static vigil_preprocess detector_preprocess(vigil_head_family family, vigil_layout layout) {
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

/* Input size from the model's input 0 (family_input_size: the rule the
 * repository's task inference applies too). */
static vigil_status detector_input_size(vigil_detector *det, vigil_layout *layout, vigil_error *err) {
    return family_input_size(vigil_model_input(det->model, 0), vigil_model_metadata(det->model, "imgsz"), layout,
                             &det->in_w, &det->in_h, err);
}

static vigil_status detector_labels(vigil_detector *det, const char *labels_path, vigil_error *err) {
    if (labels_path) return vigil_labels_load(labels_path, &det->labels, err);
    const char *names = vigil_model_metadata(det->model, "names");
    if (!names) return VIGIL_OK;
    vigil_error ignored;
    if (vigil_labels_parse(names, &det->labels, &ignored) != VIGIL_OK) det->labels = NULL; /* ids only */
    return VIGIL_OK;
}

vigil_status vigil_detector_create(vigil_model *model, const vigil_detector_options *options, vigil_detector **out,
                                   vigil_error *err) {
    *out = NULL;
    if (!model) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: no model");
    vigil_detector *det = vigil_calloc(1, sizeof *det);
    if (!det) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory");
    det->model = model;
    det->options = options ? *options : vigil_detector_options_default();
    det->options.labels_path = NULL; /* not kept: the caller's string may go away */
    vigil_layout layout = VIGIL_LAYOUT_NCHW;
    vigil_status st = detector_input_size(det, &layout, err);
    if (!st) st = detector_labels(det, options ? options->labels_path : NULL, err);
    size_t n_out = vigil_model_output_count(model);
    vigil_tensor_info infos[HEAD_MAX_OUTPUTS];
    for (size_t i = 0; !st && i < n_out && i < HEAD_MAX_OUTPUTS; i++)
        infos[i] = *vigil_model_output(model, i);
    if (!st)
        st = head_detect_layout(infos, n_out < HEAD_MAX_OUTPUTS ? n_out : HEAD_MAX_OUTPUTS,
                                (int)vigil_labels_count(det->labels), vigil_model_metadata(model, "task"), det->in_w,
                                det->in_h, det->options.family, det->options.nanodet_reg_max, &det->layout, err);
    if (!st) st = vigil_plan_create(model, 1, &det->plan, err);
    if (!st) {
        det->pre = detector_preprocess(det->layout.family, layout);
        size_t n = (size_t)det->in_w * det->in_h * 3;
        det->input = vigil_aligned_alloc(64, n * sizeof(float));
        if (!det->input)
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory for the input");
        else /* touched now, so the first image does not pay the page faults of megabytes of fresh memory */
            memset(det->input, 0, n * sizeof(float));
        det->input_tensor = (vigil_tensor){.dtype = VIGIL_DTYPE_F32, .ndim = 4, .data = det->input};
        int64_t dims[4] = {1, 3, det->in_h, det->in_w};
        if (layout == VIGIL_LAYOUT_NHWC) dims[1] = det->in_h, dims[2] = det->in_w, dims[3] = 3;
        memcpy(det->input_tensor.dims, dims, sizeof dims);
    }
    if (st) {
        vigil_error_prefix(err, "detector");
        vigil_detector_destroy(det);
        return st;
    }
    *out = det;
    return VIGIL_OK;
}

/* Grows *dets to hold n detections. */
static vigil_status dets_reserve(vigil_detection **dets, size_t *cap, size_t n, vigil_error *err) {
    if (n <= *cap) return VIGIL_OK;
    vigil_detection *grown = vigil_realloc(*dets, n * sizeof *grown);
    if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for %zu detections", n);
    *dets = grown;
    *cap = n;
    return VIGIL_OK;
}

/* Prototypes for seg models (output 1), or NULL. */
static const vigil_tensor *detector_protos(const vigil_detector *det) {
    if (det->layout.family != VIGIL_HEAD_YOLOV8_SEG) return NULL;
    const vigil_tensor *p = vigil_plan_output(det->plan, 1);
    return p && p->ndim == 4 && p->dtype == VIGIL_DTYPE_F32 && p->dims[1] == det->layout.n_mask_coeffs ? p : NULL;
}

/* How boxes in the network input map back to the orig_w x orig_h original
 * of image (which a DCT-scaled decode may have made smaller). */
static head_geometry detector_geometry(const vigil_detector *det, const vigil_letterbox_info *lb, int decoded_w,
                                       int decoded_h, int orig_w, int orig_h) {
    return (head_geometry){.gain_x = lb->scale_x * (float)decoded_w / (float)orig_w,
                           .gain_y = lb->scale_y * (float)decoded_h / (float)orig_h,
                           .pad_x = (float)lb->pad_left,
                           .pad_y = (float)lb->pad_top,
                           .input_w = det->in_w,
                           .input_h = det->in_h,
                           .orig_w = orig_w,
                           .orig_h = orig_h};
}

/* Item i of a batch output as a batch-1 tensor. */
static vigil_tensor batch_slice(const vigil_tensor *t, size_t n, size_t i) {
    vigil_tensor s = *t;
    size_t bytes = vigil_tensor_bytes(t);
    s.dims[0] = t->dims[0] / (int64_t)n;
    s.data = (char *)t->data + bytes / n * i;
    return s;
}

/* Item i of a batch of n: the outputs the head reads (one, or six for
 * NanoDet's original export) into outs[]; returns how many. */
static size_t detector_head_outputs(const vigil_detector *det, const vigil_plan *plan, size_t n, size_t i,
                                    vigil_tensor outs[HEAD_MAX_OUTPUTS]) {
    size_t count = det->layout.n_outputs > 1 ? (size_t)det->layout.n_outputs : 1, k = 0;
    for (const vigil_tensor *t; k < count && (t = vigil_plan_output(plan, k)) != NULL; k++)
        outs[k] = batch_slice(t, n, i);
    return k; /* fewer than the head reads: head_decode_outputs says so */
}

/* One image's outputs (batch 1): head decode, NMS, and the kept boxes
 * in original pixels with their names into *dets (grown as needed, masks
 * empty), *n of them.  det->boxes keeps the kept head boxes in the same
 * order (masks need their anchors). */
static vigil_status detector_select(vigil_detector *det, const vigil_detect_options *o, const vigil_tensor *outs,
                                    size_t n_outs, const head_geometry *geo, vigil_detection **dets, size_t *cap,
                                    size_t *n, vigil_error *err) {
    head_params hp = {.conf_threshold = o->conf_threshold,
                      .classes = o->classes,
                      .n_classes = o->n_classes,
                      .input_w = det->in_w,
                      .input_h = det->in_h};
    det->boxes.count = 0;
    *n = 0;
    vigil_status st = head_decode_outputs(&det->layout, outs, n_outs, &hp, &det->boxes, err);
    if (st) return st;
    /* YOLOv10 did its NMS in the graph: rank and cap only. */
    float iou = det->layout.family == VIGIL_HEAD_YOLOV10 ? INFINITY : o->iou_threshold;
    size_t kept = head_nms(&det->boxes, iou, o->agnostic || iou == INFINITY, o->max_detections);
    st = dets_reserve(dets, cap, kept, err);
    if (st) return st;
    for (size_t i = 0; i < kept; i++) {
        const head_box *b = &det->boxes.items[i];
        vigil_detection *d = &(*dets)[i];
        head_map_box(b, geo, d);
        d->class_name = vigil_labels_name(det->labels, b->class_id);
        d->mask = (vigil_mask_rle){0};
    }
    *n = kept;
    return VIGIL_OK;
}

/* Masks for the selected detections of a seg model (when asked for). */
static vigil_status detector_masks(vigil_detector *det, const vigil_detect_options *o, const head_geometry *geo,
                                   vigil_error *err) {
    const vigil_tensor *out0 = vigil_plan_output(det->plan, 0);
    const vigil_tensor *protos = o->with_masks ? detector_protos(det) : NULL;
    for (size_t i = 0; protos && i < det->n_dets; i++) {
        vigil_detection *d = &det->dets[i];
        vigil_status st = head_mask_rle(&det->layout, out0->data, protos->data, (int)protos->dims[2],
                                        (int)protos->dims[3], det->boxes.items[i].anchor, d, geo, &d->mask, err);
        if (st) return st;
    }
    return VIGIL_OK;
}

/* Infers on det->input, letterboxed as lb says from a decoded_w x decoded_h
 * image, and post-processes; orig_w/h is the size boxes map back to. */
static vigil_status detector_infer(vigil_detector *det, const vigil_letterbox_info *lb, int decoded_w, int decoded_h,
                                   int orig_w, int orig_h, const vigil_detect_options *options,
                                   vigil_detect_result *res, vigil_error *err) {
    vigil_detect_options defaults = vigil_detect_options_default();
    const vigil_detect_options *o = options ? options : &defaults;
    double t1 = clock_now_ms();
    vigil_status st = vigil_plan_run(det->plan, &det->input_tensor, 1, err);
    if (st) return st;
    double t2 = clock_now_ms();
    head_geometry geo = detector_geometry(det, lb, decoded_w, decoded_h, orig_w, orig_h);
    vigil_tensor outs[HEAD_MAX_OUTPUTS];
    size_t n_outs = detector_head_outputs(det, det->plan, 1, 0, outs);
    st = detector_select(det, o, outs, n_outs, &geo, &det->dets, &det->dets_cap, &det->n_dets, err);
    if (!st) st = detector_masks(det, o, &geo, err);
    if (st) return st;
    double t3 = clock_now_ms();
    res->detections = det->dets;
    res->count = det->n_dets;
    res->image_width = orig_w;
    res->image_height = orig_h;
    res->timing.inference_ms = t2 - t1;
    res->timing.postprocess_ms = t3 - t2;
    return VIGIL_OK;
}

/* Letterbox an image in memory, infer, post-process. */
static vigil_status detector_infer_image(vigil_detector *det, const vigil_image *image, int orig_w, int orig_h,
                                         const vigil_detect_options *options, vigil_detect_result *res,
                                         vigil_error *err) {
    detector_free_masks(det);
    double t0 = clock_now_ms();
    vigil_letterbox_info lb = {0};
    vigil_status st = vigil_letterbox(image, det->in_w, det->in_h, &det->pre, det->input, &lb, err);
    det->input_padded = !st;
    det->input_geometry = lb;
    if (st) return st;
    res->timing.letterbox_ms = clock_now_ms() - t0;
    return detector_infer(det, &lb, image->width, image->height, orig_w, orig_h, options, res, err);
}

vigil_status vigil_detector_run_image(vigil_detector *det, const vigil_image *image,
                                      const vigil_detect_options *options, vigil_detect_result *result,
                                      vigil_error *err) {
    memset(result, 0, sizeof *result);
    if (!image || !image->data) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: no image");
    vigil_status st = detector_infer_image(det, image, image->width, image->height, options, result, err);
    result->timing.total_ms = result->timing.letterbox_ms + result->timing.inference_ms + result->timing.postprocess_ms;
    return st;
}

static vigil_decode_options detector_decode_options(const vigil_detector *det) {
    vigil_decode_options dec = det->options.decode;
    /* Only on request: a reduced-scale decode changes the pixels the resize sees. */
    if (det->options.jpeg_reduced_scale) dec.target_size = det->in_w > det->in_h ? det->in_w : det->in_h;
    return dec;
}

vigil_status vigil_detector_decode(const vigil_detector *det, const void *bytes, size_t size, vigil_image *image,
                                   vigil_decode_info *info, vigil_error *err) {
    vigil_decode_options dec = detector_decode_options(det);
    return vigil_image_decode(bytes, size, &dec, image, info, err);
}

/* A JPEG that needs no rotation is decoded straight into the input, in bands
 * spread over the engine's pool (jpeg_letterbox.c): no whole image in
 * memory, and the cores inference will use are not idle meanwhile. */
static vigil_status detector_run_jpeg(vigil_detector *det, const void *bytes, size_t size,
                                      const vigil_detect_options *options, vigil_detect_result *result,
                                      vigil_error *err) {
    vigil_decode_options dec = detector_decode_options(det);
    vigil_engine *engine = vigil_model_engine(det->model);
    vigil_decode_info info;
    vigil_letterbox_info lb = {0};
    jpeg_letterbox_stats timing;
    detector_free_masks(det);
    jpeg_letterbox_dst dst = {.data = det->input,
                              .in_w = det->in_w,
                              .in_h = det->in_h,
                              .pre = &det->pre,
                              .padded = det->input_padded ? &det->input_geometry : NULL};
    vigil_status st =
        jpeg_letterbox(bytes, size, &dec, &dst, engine, vigil_engine_threads(engine), &info, &lb, &timing, err);
    det->input_padded = !st;
    det->input_geometry = lb;
    if (st) return st;
    result->timing.decode_ms = timing.decode_ms;
    result->timing.letterbox_ms = timing.letterbox_ms;
    int decoded_w = (info.orig_width + info.scale_denom - 1) / info.scale_denom;
    int decoded_h = (info.orig_height + info.scale_denom - 1) / info.scale_denom;
    return detector_infer(det, &lb, decoded_w, decoded_h, info.orig_width, info.orig_height, options, result, err);
}

vigil_status vigil_detector_run(vigil_detector *det, const void *bytes, size_t size,
                                const vigil_detect_options *options, vigil_detect_result *result, vigil_error *err) {
    memset(result, 0, sizeof *result);
    double t0 = clock_now_ms();
    vigil_decode_options dec = detector_decode_options(det);
    vigil_status st;
    if (jpeg_letterbox_applies(bytes, size, &dec)) {
        st = detector_run_jpeg(det, bytes, size, options, result, err);
    } else {
        vigil_image image;
        vigil_decode_info info;
        st = vigil_image_decode(bytes, size, &dec, &image, &info, err);
        if (st) return st;
        result->timing.decode_ms = clock_now_ms() - t0;
        st = detector_infer_image(det, &image, info.orig_width, info.orig_height, options, result, err);
        vigil_image_free(&image);
    }
    result->timing.total_ms = clock_now_ms() - t0;
    return st;
}

/* ------------------------------------------------------------ batches */

/* Batch plans kept at once: each holds its activations and XNNPACK's
 * packed weights, so a batcher that forms many sizes must not keep them all. */
#define DETECT_BATCH_PLANS 4

/* The plan and input buffer for a batch of n. */
static vigil_status batch_prepare(vigil_detector *det, size_t n, vigil_error *err) {
    det->batch_used[n] = ++det->batch_runs;
    if (!det->batch_plans[n]) {
        size_t kept = 0, oldest = 0;
        for (size_t k = 1; k <= VIGIL_DETECT_BATCH_MAX; k++) {
            if (!det->batch_plans[k]) continue;
            kept++;
            if (!oldest || det->batch_used[k] < det->batch_used[oldest]) oldest = k;
        }
        if (kept >= DETECT_BATCH_PLANS) {
            vigil_plan_destroy(det->batch_plans[oldest]);
            det->batch_plans[oldest] = NULL;
        }
        vigil_status st = vigil_plan_create(det->model, (int64_t)n, &det->batch_plans[n], err);
        if (st) return st;
    }
    if (det->batch_input_items < n) {
        size_t floats = (size_t)det->in_w * det->in_h * 3 * n;
        float *grown = vigil_aligned_alloc(64, floats * sizeof(float));
        if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory for a batch of %zu", n);
        vigil_free(det->batch_input);
        det->batch_input = grown;
        det->batch_input_items = n;
    }
    return VIGIL_OK;
}

vigil_status vigil_detector_run_batch(vigil_detector *det, size_t n, const vigil_image *images, const int *orig_w,
                                      const int *orig_h, const vigil_detect_options *const *options,
                                      vigil_detect_result *results, vigil_error *err) {
    if (n < 1 || n > VIGIL_DETECT_BATCH_MAX)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detector: a batch is 1 to %d images",
                               VIGIL_DETECT_BATCH_MAX);
    if (det->layout.family == VIGIL_HEAD_YOLOV8_SEG)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "detector: segmentation models run one image at a time");
    vigil_status st = batch_prepare(det, n, err);
    if (st) return st;
    size_t per_image = (size_t)det->in_w * det->in_h * 3;
    vigil_letterbox_info lb[VIGIL_DETECT_BATCH_MAX];
    double letterbox_ms[VIGIL_DETECT_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        double t0 = clock_now_ms();
        st =
            vigil_letterbox(&images[i], det->in_w, det->in_h, &det->pre, det->batch_input + i * per_image, &lb[i], err);
        if (st) return st;
        letterbox_ms[i] = clock_now_ms() - t0;
    }
    vigil_tensor input = det->input_tensor;
    input.dims[0] = (int64_t)n;
    input.data = det->batch_input;
    double t1 = clock_now_ms();
    st = vigil_plan_run(det->batch_plans[n], &input, 1, err);
    if (st) return st;
    double inference_ms = clock_now_ms() - t1;
    vigil_detect_options defaults = vigil_detect_options_default();
    for (size_t i = 0; i < n; i++) {
        double t2 = clock_now_ms();
        const vigil_detect_options *o = options && options[i] ? options[i] : &defaults;
        head_geometry geo = detector_geometry(det, &lb[i], images[i].width, images[i].height, orig_w[i], orig_h[i]);
        vigil_tensor outs[HEAD_MAX_OUTPUTS];
        size_t n_outs = detector_head_outputs(det, det->batch_plans[n], n, i, outs);
        size_t kept = 0;
        st = detector_select(det, o, outs, n_outs, &geo, &det->batch_dets[i], &det->batch_caps[i], &kept, err);
        if (st) return st;
        vigil_detect_result *r = &results[i];
        r->detections = det->batch_dets[i];
        r->count = kept;
        r->image_width = orig_w[i];
        r->image_height = orig_h[i];
        r->timing.letterbox_ms = letterbox_ms[i];
        r->timing.inference_ms = inference_ms;
        r->timing.postprocess_ms = clock_now_ms() - t2;
        r->timing.total_ms = r->timing.letterbox_ms + inference_ms + r->timing.postprocess_ms;
    }
    return VIGIL_OK;
}
