/*
 * vigil/vision.h - object detection on top of the engine: image decode,
 * letterbox, YOLO output decoding by family, NMS, drawing.
 *
 * The pieces are usable one by one (the server decodes on I/O threads and
 * letterboxes straight into a batch slot), and vigil_detector ties them into
 * one call: image bytes in, boxes in original pixels out, with the time spent
 * in each stage.  A detector owns one compiled plan and its buffers, so it is
 * thread-compatible, not thread-safe: create one per worker thread.
 *
 * Ownership: every *_create / *_decode fills or returns an object the caller
 * owns and releases with the matching *_destroy / *_free.  Results handed back
 * by vigil_detector_run live inside the detector until its next run.
 */
#ifndef VIGIL_VISION_H
#define VIGIL_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/engine.h"
#include "vigil/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- images */

/* An 8-bit RGB image, rows of `stride` bytes (>= 3 * width). */
typedef struct vigil_image {
    int width;
    int height;
    int stride;
    uint8_t *data; /* owned: released by vigil_image_free */
} vigil_image;

typedef enum vigil_pixel_format {
    VIGIL_PIXEL_RGB24 = 0,
    VIGIL_PIXEL_BGR24,
    VIGIL_PIXEL_NV12, /* Y plane, then interleaved U/V at half resolution (BT.601 limited range) */
} vigil_pixel_format;

#define VIGIL_DEFAULT_MAX_PIXELS (64LL * 1024 * 1024) /* 64 Mpixel, e.g. 8192 x 8192 */

typedef struct vigil_decode_options {
    int64_t max_pixels; /* refuse images with more pixels than this (VIGIL_ERR_LIMIT); 0 = default */
    int target_size;    /* JPEG: decode with DCT scaling (1/2, 1/4, 1/8) while the long side
                           stays >= 1.5 x this (the network size); 0 = full resolution.
                           Reduced scale changes the pixels (not the reference's pre-processing):
                           the detector sets it only with jpeg_reduced_scale */
    int ignore_exif;    /* 1 = do not apply the JPEG EXIF orientation */
} vigil_decode_options;

/* Facts about a decode, for mapping results back to the file's pixels. */
typedef struct vigil_decode_info {
    int orig_width, orig_height; /* the file's size after EXIF orientation */
    int scale_num, scale_denom;  /* DCT scaling applied: decoded = orig * num / denom */
    int orientation;             /* EXIF orientation found (1 = none) */
} vigil_decode_info;

/* Decodes a JPEG or PNG held in memory into *out (caller frees with
 * vigil_image_free).  options and info may be NULL.  Truncated or corrupt
 * files are VIGIL_ERR_PARSE, unknown formats VIGIL_ERR_UNSUPPORTED, images past
 * the pixel limit VIGIL_ERR_LIMIT; *out is left empty on failure. */
vigil_status vigil_image_decode(const void *bytes, size_t size, const vigil_decode_options *options, vigil_image *out,
                                vigil_decode_info *info, vigil_error *err);

/* Converts a raw frame (stride in bytes of the first plane; for NV12 the UV
 * plane follows the Y plane at data + stride * height) into *out. */
vigil_status vigil_image_from_raw(const void *data, size_t size, vigil_pixel_format format, int width, int height,
                                  int stride, int64_t max_pixels, vigil_image *out, vigil_error *err);

/* Allocates an RGB image of width x height (contents undefined). */
vigil_status vigil_image_alloc(int width, int height, vigil_image *out, vigil_error *err);
void vigil_image_free(vigil_image *image);

typedef enum vigil_image_format { VIGIL_IMAGE_JPEG = 0, VIGIL_IMAGE_PNG } vigil_image_format;

/* Encodes image; *out_bytes is vigil_malloc'd (caller vigil_free's it).
 * quality: JPEG 1..100 (0 = 90); ignored for PNG. */
vigil_status vigil_image_encode(const vigil_image *image, vigil_image_format format, int quality, uint8_t **out_bytes,
                                size_t *out_size, vigil_error *err);

/* -------------------------------------------------------------- letterbox */

typedef enum vigil_layout { VIGIL_LAYOUT_NCHW = 0, VIGIL_LAYOUT_NHWC } vigil_layout;

/* How pixels become network input.  vigil_preprocess_default() gives
 * Ultralytics' convention: RGB, /255, centred pad of 114. */
typedef struct vigil_preprocess {
    vigil_layout layout;
    int swap_rb; /* 1 = feed BGR (YOLOX, NanoDet) instead of RGB */
    int centred; /* 1 = pad both sides (Ultralytics), 0 = image top-left (YOLOX) */
    int stretch; /* 1 = resize to the full input ignoring aspect (NanoDet's default) */
    uint8_t pad_value;
    float mean[3]; /* value = (pixel - mean[c]) * scale[c], in the fed channel order */
    float scale[3];
} vigil_preprocess;

vigil_preprocess vigil_preprocess_default(void);

/* Where the image went inside the network input. */
typedef struct vigil_letterbox_info {
    float scale_x, scale_y; /* input pixels per source pixel */
    int pad_left, pad_top;  /* offset of the resized image */
    int resized_w, resized_h;
} vigil_letterbox_info;

/* Letterboxes image into dst, one float tensor of in_w x in_h x 3 in
 * pre->layout (batch item only).  info may be NULL. */
vigil_status vigil_letterbox(const vigil_image *image, int in_w, int in_h, const vigil_preprocess *pre, float *dst,
                             vigil_letterbox_info *info, vigil_error *err);

/* ------------------------------------------------------------ detections */

typedef enum vigil_head_family {
    VIGIL_HEAD_AUTO = 0,
    VIGIL_HEAD_YOLOV5,    /* [N, A, 5+nc]: cx, cy, w, h, objectness, class scores */
    VIGIL_HEAD_YOLOV8,    /* [N, 4+nc, A]: cx, cy, w, h, class scores (also YOLO11) */
    VIGIL_HEAD_YOLOX,     /* [N, A, 5+nc] raw grid offsets over strides 8/16/32 */
    VIGIL_HEAD_NANODET,   /* [N, A, nc + 4*(reg_max+1)] scores + distribution-focal regression (Plus, or the
                             original head), or the original six outputs: per stride 8/16/32 scores
                             [N, cells, nc] and distributions [N, cells, 4*(reg_max+1)] */
    VIGIL_HEAD_YOLOV10,   /* [N, K, 6]: x1, y1, x2, y2, score, class; NMS-free */
    VIGIL_HEAD_YOLOV8_SEG /* [N, 4+nc+nm, A] + prototypes [N, nm, mh, mw] */
} vigil_head_family;

const char *vigil_head_family_name(vigil_head_family family);
/* Parses "yolov5", "yolov8", "yolo11", "yolox", "nanodet", "yolov10", "yolov8-seg"; -1 if unknown. */
int vigil_head_family_parse(const char *name);

/* The head family a model's tensors describe, as vigil_detector_create would
 * choose it, without compiling anything: input is the model's input 0,
 * outputs its n_outputs outputs; names, task and imgsz are the Ultralytics
 * metadata_props (NULL when absent).  VIGIL_HEAD_AUTO when the model is no
 * detector vigil can decode: a task other than detect or segment, or outputs
 * that match no head (a [N, a, b] output is read as YOLOv8 without a task
 * only when b is the anchor count of the input's stride 8/16/32 grid). */
vigil_head_family vigil_head_family_of(const vigil_tensor_info *input, const vigil_tensor_info *outputs,
                                       size_t n_outputs, const char *names, const char *task, const char *imgsz);

/* A segmentation mask as run-length encoding over the original image, row
 * major, alternating runs of background and foreground starting with
 * background (so counts[0] may be 0). */
typedef struct vigil_mask_rle {
    uint32_t *counts;
    size_t n_counts;
} vigil_mask_rle;

typedef struct vigil_detection {
    float x1, y1, x2, y2; /* original image pixels, clipped */
    float score;
    int class_id;
    const char *class_name; /* owned by the detector or the label set; NULL when unknown */
    vigil_mask_rle mask;    /* segmentation models only; counts == NULL otherwise */
} vigil_detection;

/* Post-processing knobs (vigil_detect_options_default: 0.25, 0.45, 300). */
typedef struct vigil_detect_options {
    float conf_threshold; /* keep scores > this (strictly, as Ultralytics: equal is dropped) */
    float iou_threshold;  /* suppress overlaps with IoU > this (strictly, as torchvision's nms) */
    int max_detections;
    int agnostic;       /* 1 = NMS across classes */
    const int *classes; /* keep only these class ids (NULL = all) */
    size_t n_classes;
    int with_masks; /* segmentation: 1 = compute RLE masks */
} vigil_detect_options;

vigil_detect_options vigil_detect_options_default(void);

/* ---------------------------------------------------------------- labels */

typedef struct vigil_labels vigil_labels;

/* From Ultralytics metadata ("{0: 'person', 1: 'bicycle'}"), a JSON-ish list
 * (['a', 'b']) or one name per line. */
vigil_status vigil_labels_parse(const char *text, vigil_labels **out, vigil_error *err);
vigil_status vigil_labels_load(const char *path, vigil_labels **out, vigil_error *err);
void vigil_labels_free(vigil_labels *labels);
size_t vigil_labels_count(const vigil_labels *labels);
/* Name of class id, or NULL when out of range. */
const char *vigil_labels_name(const vigil_labels *labels, int id);
/* Class id whose name is name, or -1. */
int vigil_labels_find(const vigil_labels *labels, const char *name);

/* -------------------------------------------------------------- detector */

typedef struct vigil_detector vigil_detector;

typedef struct vigil_detector_options {
    vigil_head_family family;    /* AUTO = from output shapes and metadata */
    const char *labels_path;     /* overrides the model's names; NULL = metadata */
    vigil_decode_options decode; /* pixel limit, EXIF; target_size is set by jpeg_reduced_scale */
    int jpeg_reduced_scale;      /* 0 (the default) = every JPEG decoded at full size, then resized,
                                    as the reference (Ultralytics) does: the detections equal those
                                    of the same pixels as PNG.  1 = JPEGs at least 3x the input size
                                    are decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling
                                    (long side kept >= 1.5x the input): much faster on big photos,
                                    but scores and boxes drift from the reference (docs/BENCHMARKS.md
                                    "Reduced-scale JPEG decoding" gives the measured cost) */
    int nanodet_reg_max;         /* 0 = 7 */
} vigil_detector_options;

vigil_detector_options vigil_detector_options_default(void);

typedef struct vigil_detect_timing {
    double decode_ms, letterbox_ms, inference_ms, postprocess_ms, total_ms;
} vigil_detect_timing;

typedef struct vigil_detect_result {
    const vigil_detection *detections; /* owned by the detector until its next run */
    size_t count;
    int image_width, image_height; /* original pixels */
    vigil_detect_timing timing;
} vigil_detect_result;

/* Builds a detector for model (not taken over: it must outlive the
 * detector).  options may be NULL. */
vigil_status vigil_detector_create(vigil_model *model, const vigil_detector_options *options, vigil_detector **out,
                                   vigil_error *err);
void vigil_detector_destroy(vigil_detector *det);

vigil_head_family vigil_detector_family(const vigil_detector *det);
const vigil_labels *vigil_detector_labels(const vigil_detector *det);

/* Runs encoded image bytes (JPEG/PNG) through the detector. */
vigil_status vigil_detector_run(vigil_detector *det, const void *bytes, size_t size,
                                const vigil_detect_options *options, vigil_detect_result *result, vigil_error *err);
/* Runs an already decoded image (the decode time is then 0). */
vigil_status vigil_detector_run_image(vigil_detector *det, const vigil_image *image,
                                      const vigil_detect_options *options, vigil_detect_result *result,
                                      vigil_error *err);

/* Decodes image bytes as vigil_detector_run does (the detector's pixel limit
 * and EXIF handling; DCT scaling towards its input size only with
 * jpeg_reduced_scale); info->orig_width
 * and orig_height are what boxes map back to. */
vigil_status vigil_detector_decode(const vigil_detector *det, const void *bytes, size_t size, vigil_image *image,
                                   vigil_decode_info *info, vigil_error *err);

#define VIGIL_DETECT_BATCH_MAX 32

/* Runs n decoded images as one batch of the model (the server's dynamic
 * batcher): each is letterboxed into its slot, the model runs once at batch
 * n (a plan per batch size, kept), and each item is decoded, NMS-ed and
 * mapped back to its orig_w[i] x orig_h[i] pixels with its own options
 * (options may be NULL, or hold NULLs, for defaults).  results[i] stay
 * valid until the next batch; their inference time is the whole batch's.
 * Segmentation models are VIGIL_ERR_UNSUPPORTED here (run them one by one). */
vigil_status vigil_detector_run_batch(vigil_detector *det, size_t n, const vigil_image *images, const int *orig_w,
                                      const int *orig_h, const vigil_detect_options *const *options,
                                      vigil_detect_result *results, vigil_error *err);
/* ---------------------------------------------------------------- render */

/* Draws boxes, class names and scores onto image, sized for legibility at
 * any image size.  Detections without a class_name show their class id. */
void vigil_render_detections(vigil_image *image, const vigil_detection *dets, size_t count);

/* Draws text with the built-in 5x7 font at (x, y) top-left, each font pixel
 * scale x scale image pixels, in rgb on a filled background bg (or no
 * background when bg is NULL). */
void vigil_draw_text(vigil_image *image, int x, int y, int scale, const char *text, const uint8_t rgb[3],
                     const uint8_t *bg);

#ifdef __cplusplus
}
#endif
#endif
