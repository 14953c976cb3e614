/*
 * vigil/vision.h - object detection as a library over images and tensors:
 * image decode, letterbox, YOLO output decoding by family, NMS, masks,
 * drawing.  It runs no model: whoever holds one (a backend, through the
 * server's detection job or `vigil detect`) calls the steps around its run:
 *
 *   vigil_detect_spec_create   what the model's tensors and metadata say:
 *                              head family, classes, input geometry, layout,
 *                              the family's pixel convention
 *   vigil_detect_preprocess    image bytes -> slot k of the caller's batch
 *                              input tensor (JPEGs streamed in bands over a
 *                              pool the caller lends: vigil/parallel.h)
 *   ... the caller runs the model on the batch ...
 *   vigil_detect_postprocess   item k of the output tensors -> boxes in the
 *                              original image's pixels, NMS-ed, with masks
 *
 * Nothing here includes the engine (make check greps for it), so a model on
 * any backend is detected the same way.
 *
 * Ownership: every *_create / *_decode fills or returns an object the caller
 * owns and releases with the matching *_destroy / *_free.  Detections handed
 * back by vigil_detect_postprocess live in the vigil_detections store it was
 * given, until that store's next postprocess.  A spec is read-only once
 * created (threads may share it); a store belongs to one thread at a time.
 */
#ifndef VIGIL_VISION_H
#define VIGIL_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/parallel.h"
#include "vigil/status.h"
#include "vigil/tensor.h"

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

/* Whether size bytes at data hold a width x height frame of format with
 * rows stride bytes apart (the first plane's; for NV12 the UV plane follows
 * the Y plane at data + stride * height), within max_pixels (0 = default):
 * VIGIL_ERR_INVALID_ARGUMENT or VIGIL_ERR_LIMIT saying what is wrong. */
vigil_status vigil_image_raw_check(const void *data, size_t size, vigil_pixel_format format, int width, int height,
                                   int stride, int64_t max_pixels, vigil_error *err);
/* Converts a raw frame (checked as vigil_image_raw_check does) into *out. */
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
    int u8; /* 1 = a uint8 NHWC input (a quantised accelerator's, e.g. a Hailo HEF): each resized
             * byte is stored as it is; mean and scale are the device's business and unused */
} vigil_preprocess;

vigil_preprocess vigil_preprocess_default(void);

/* Where the image went inside the network input. */
typedef struct vigil_letterbox_info {
    float scale_x, scale_y; /* input pixels per source pixel */
    int pad_left, pad_top;  /* offset of the resized image */
    int resized_w, resized_h;
} vigil_letterbox_info;

/* Letterboxes image into dst, one float tensor of in_w x in_h x 3 in
 * pre->layout (batch item only), or uint8 NHWC bytes with pre->u8.  info
 * may be NULL. */
vigil_status vigil_letterbox(const vigil_image *image, int in_w, int in_h, const vigil_preprocess *pre, void *dst,
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
    VIGIL_HEAD_YOLOV8_SEG, /* [N, 4+nc+nm, A] + prototypes [N, nm, mh, mw] */
    VIGIL_HEAD_HAILO_NMS   /* [N, nc, 1+5K], last dim named "hailo_nms": per class a count, then K boxes
                            * y_min, x_min, y_max, x_max (0..1), score: HailoRT's on-chip NMS by class */
} vigil_head_family;

const char *vigil_head_family_name(vigil_head_family family);
/* Parses "yolov5", "yolov8", "yolo11", "yolox", "nanodet", "yolov10", "yolov8-seg", "hailo_nms"; -1 if unknown. */
int vigil_head_family_parse(const char *name);

/* The head family a model's tensors describe, as vigil_detect_spec_create
 * would choose it, without compiling anything: input is the model's input 0,
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

/* ------------------------------------------------------- detection steps */

/* How a detection model is read (vigil_detector_options_default: the
 * family from the tensors, names from the metadata, full-size decode). */
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
    const vigil_detection *detections; /* owned by the vigil_detections store */
    size_t count;
    int image_width, image_height; /* original pixels */
    vigil_detect_timing timing;
} vigil_detect_result;

/* Most images in one batch the detection steps are given. */
#define VIGIL_DETECT_BATCH_MAX 32

typedef struct vigil_detect_spec vigil_detect_spec;

/* Reads a model for detection: input is its input 0, outputs its n_outputs
 * outputs (borrowed for the call), names/task/imgsz its Ultralytics
 * metadata_props (NULL when absent); options may be NULL.  The labels file,
 * when options name one, is read now.  VIGIL_ERR_UNSUPPORTED when the
 * tensors describe no head vigil decodes (or not the family asked for). */
vigil_status vigil_detect_spec_create(const vigil_tensor_info *input, const vigil_tensor_info *const *outputs,
                                      size_t n_outputs, const char *names, const char *task, const char *imgsz,
                                      const vigil_detector_options *options, vigil_detect_spec **out,
                                      vigil_error *err);
void vigil_detect_spec_destroy(vigil_detect_spec *spec);
vigil_head_family vigil_detect_spec_family(const vigil_detect_spec *spec);
/* The class names (NULL when the model names none); owned by the spec. */
const vigil_labels *vigil_detect_spec_labels(const vigil_detect_spec *spec);
/* The model input for a batch of n: the model's dtype (float32, float16 for an
 * fp16 export, uint8 NHWC), NCHW or NHWC; data NULL
 * (vigil_tensor_bytes gives what to allocate). */
vigil_tensor vigil_detect_spec_input(const vigil_detect_spec *spec, size_t n);

/* Decodes image bytes as vigil_detect_preprocess does (the spec's pixel
 * limit and EXIF handling; DCT scaling towards its input size only with
 * jpeg_reduced_scale); info->orig_width and orig_height are what boxes map
 * back to. */
vigil_status vigil_detect_decode(const vigil_detect_spec *spec, const void *bytes, size_t size, vigil_image *image,
                                 vigil_decode_info *info, vigil_error *err);

/* One image between pre- and post-processing: where it went in its slot. */
typedef struct vigil_detect_item {
    vigil_letterbox_info letterbox;
    int decoded_w, decoded_h; /* the image the letterbox read (smaller than orig after DCT scaling) */
    int orig_w, orig_h;       /* what boxes map back to */
    double decode_ms, letterbox_ms;
} vigil_detect_item;

/* Decodes a JPEG or PNG and letterboxes it into slot `slot` of input (a
 * tensor shaped as vigil_detect_spec_input says, data the caller's).  A JPEG
 * that needs no rotation is decoded straight into the slot, in bands over
 * pool (NULL = this thread alone), never whole in memory.  padded, when not
 * NULL, is the geometry of the image the slot held last: when this one's is
 * the same, its padding is not written again.  On failure the slot is partly
 * written (and its padding unknown). */
vigil_status vigil_detect_preprocess(const vigil_detect_spec *spec, const void *bytes, size_t size,
                                     const vigil_tensor *input, size_t slot, const vigil_parallel *pool,
                                     const vigil_letterbox_info *padded, vigil_detect_item *item, vigil_error *err);
/* The same for an image already decoded from an orig_w x orig_h original. */
vigil_status vigil_detect_preprocess_image(const vigil_detect_spec *spec, const vigil_image *image, int orig_w,
                                           int orig_h, const vigil_tensor *input, size_t slot,
                                           vigil_detect_item *item, vigil_error *err);

/* Bytes in memory, one piece of something that lies in several (a message
 * as a transport received it: gRPC hands a frame over in dozens of slices). */
typedef struct vigil_piece {
    const uint8_t *data;
    size_t size;
} vigil_piece;

/* An RGB24 width x height frame whose bytes are the concatenation of
 * pieces[0..n), rows stride bytes apart (the caller checked the geometry
 * against the total size), letterboxed from where its bytes lie: a row
 * that crosses from one piece to the next is gathered alone, so the frame
 * is never copied whole.  padded as for vigil_detect_preprocess. */
/* 1 when an RGB24 width x height frame's letterbox into spec's input only
 * copies its rows: a uint8 NHWC input (a device's) that the frame fills
 * along one side, its channels in order.  Cheap enough for a thread that
 * must not be kept waiting, such as the one that received the frame. */
int vigil_detect_frame_copies(const vigil_detect_spec *spec, int width, int height);
/* Pads in place an RGB24 frame whose rows already lie as spec's input holds
 * them (packed, as wide as the input, its letterbox a copy: padding only
 * above and below), when room bytes before and after it may be written:
 * the padding rows go there, *input points at the first of them, and item
 * says where the frame went, as vigil_detect_preprocess_pieces would.
 * Returns 0 (writing nothing) for any other frame. */
int vigil_detect_frame_in_place(const vigil_detect_spec *spec, uint8_t *frame, int width, int height, int stride,
                                size_t room, uint8_t **input, vigil_detect_item *item);
vigil_status vigil_detect_preprocess_pieces(const vigil_detect_spec *spec, const vigil_piece *pieces, size_t n,
                                            int width, int height, int stride, const vigil_tensor *input,
                                            size_t slot, const vigil_letterbox_info *padded,
                                            vigil_detect_item *item, vigil_error *err);

/* Where post-processing puts its detections and works (candidates, masks);
 * reused run after run, so steady state allocates nothing but masks. */
typedef struct vigil_detections vigil_detections;
vigil_status vigil_detections_create(vigil_detections **out, vigil_error *err);
void vigil_detections_destroy(vigil_detections *store);

/* Decodes item `slot` of a batch of n from the model's outputs (in the
 * model's order, dims[0] == n), NMS, maps the boxes back through item's
 * letterbox to its original pixels, adds masks for seg models when options
 * ask; options NULL = defaults.  result->detections live in store until its
 * next postprocess; the timing has item's decode and letterbox, this step's
 * postprocess, and inference 0 (the caller's to add, to total_ms too). */
vigil_status vigil_detect_postprocess(const vigil_detect_spec *spec, const vigil_tensor *const *outputs,
                                      size_t n_outputs, size_t n, size_t slot, const vigil_detect_item *item,
                                      const vigil_detect_options *options, vigil_detections *store,
                                      vigil_detect_result *result, vigil_error *err);

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
