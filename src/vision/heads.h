/*
 * heads.h - decoding YOLO output tensors into candidate boxes, by family,
 * and the NMS that follows.  Internal to vision (the detector drives it) but
 * callable on hand-built tensors, which is how the unit tests check each
 * family against answers worked out by hand.
 *
 * All boxes here are corners in network-input pixels; mapping back to the
 * original image is the detector's job.
 */
#ifndef VIGIL_VISION_HEADS_H
#define VIGIL_VISION_HEADS_H

#include <stddef.h>

#include "vigil/tensor.h"
#include "vigil/vision.h"

/* Most candidates kept for NMS (Ultralytics' max_nms). */
#define HEAD_MAX_CANDIDATES 30000

/* Most model outputs a head reads (NanoDet's legacy export has six). */
#define HEAD_MAX_OUTPUTS 8

typedef struct head_box {
    float x1, y1, x2, y2;
    float score;
    int class_id;
    int anchor; /* row / column of the output it came from (mask coefficients) */
} head_box;

/* A growable candidate list, capped at HEAD_MAX_CANDIDATES: past the cap the
 * lowest-scoring candidates are dropped when NMS sorts. */
typedef struct head_boxes {
    head_box *items;
    size_t count, capacity;
} head_boxes;

void head_boxes_free(head_boxes *boxes);

typedef struct head_params {
    float conf_threshold;
    const int *classes; /* keep only these ids (NULL = all) */
    size_t n_classes;
    int input_w, input_h;
    int n_mask_coeffs; /* YOLOv8-seg: coefficients after the class scores */
    int reg_max;       /* NanoDet: bins - 1 per side (7) */
} head_params;

/* What the shapes say: the family, the number of classes, the number of
 * anchors and the layout facts the decoders need. */
typedef struct head_layout {
    vigil_head_family family;
    int n_classes;
    int n_anchors;     /* over all outputs read */
    int n_outputs;     /* model outputs the decoder reads: 1, or 6 for NanoDet's legacy export */
    int n_mask_coeffs; /* seg */
    int reg_max;       /* nanodet */
    /* NanoDet: strides 8/16/32 (3 levels, the original head) or 8/16/32/64
     * (4, NanoDet-Plus); the grid point of cell (x, y) is ((x + offset) s,
     * (y + offset) s), offset 0.5 for the original head (GFL's cell
     * centres), 0 for Plus; with six outputs, the output index of each
     * level's scores [1, cells, nc] and distributions [1, cells, 4 (R+1)]. */
    int nanodet_levels;
    float nanodet_offset;
    int nanodet_cls_output[3], nanodet_dis_output[3];
    int nms_max_boxes; /* hailo_nms: boxes room per class (K) */
} head_layout;

/* Chooses the family from the output shapes (dims of output 0 and, for seg,
 * output 1; all six for NanoDet's legacy export), the number of classes the
 * metadata names (0 = unknown), the metadata task ("detect", "segment", or
 * NULL) and the input size.  A family other than AUTO is checked against the
 * shapes instead. */
vigil_status head_detect_layout(const vigil_tensor_info *outputs, size_t n_outputs, int n_named_classes,
                                const char *task, int input_w, int input_h, vigil_head_family requested, int reg_max,
                                head_layout *out, vigil_error *err);

/* Decodes batch item 0 of the model's outputs (the first layout->n_outputs
 * of outputs[0 .. n_outputs); seg prototypes are used by head_mask_rle after
 * NMS, not here) into boxes, appending candidates with score >
 * conf_threshold (strictly, as the references do) that pass the class
 * filter. */
vigil_status head_decode_outputs(const head_layout *layout, const vigil_tensor *outputs, size_t n_outputs,
                                 const head_params *params, head_boxes *boxes, vigil_error *err);

/* head_decode_outputs for the single-output layouts (every family but
 * NanoDet's six-output export). */
vigil_status head_decode(const head_layout *layout, const vigil_tensor *out0, const head_params *params,
                         head_boxes *boxes, vigil_error *err);

/* Sorts boxes by score (ties: lower anchor first), suppresses overlaps with
 * IoU > iou_threshold (strictly, as torchvision.ops.nms: an IoU equal to it
 * keeps both) within a class unless agnostic, keeps at most max_det.  The
 * kept boxes are moved to the front; returns their number. */
size_t head_nms(head_boxes *boxes, float iou_threshold, int agnostic, int max_det);

/* Where the network input sits in the original image: input = orig * gain + pad. */
typedef struct head_geometry {
    float gain_x, gain_y, pad_x, pad_y;
    int input_w, input_h, orig_w, orig_h;
} head_geometry;

/* Maps a box from input pixels to original pixels, clipped to the image,
 * into det's corners, score and class (name and mask untouched). */
void head_map_box(const head_box *box, const head_geometry *geo, vigil_detection *det);

/* YOLOv8-seg: the mask of the candidate from anchor `anchor` (coefficients
 * read from out0 item 0, prototypes [nm, mh, mw] item 0), cut to the
 * detection's box (original pixels) and run-length encoded over the original
 * image into *out (counts vigil_malloc'd; caller frees). */
vigil_status head_mask_rle(const head_layout *layout, const float *out0, const float *protos, int mh, int mw,
                           int anchor, const vigil_detection *det, const head_geometry *geo, vigil_mask_rle *out,
                           vigil_error *err);

/* Intersection over union of two corner boxes (0 when either is empty). */
float head_iou(const head_box *a, const head_box *b);

#endif
