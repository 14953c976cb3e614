/*
 * family.c - what a model's tensors say it is, before anything is compiled.
 *
 * The server must know whether a model detects objects when it loads it,
 * not when the first image arrives: `/api/v1/detect` refuses a raw model,
 * `/api/v1/models` and `vigil models list` show the task and the head family,
 * and a YOLOv5 export carries no `task` metadata at all.  The answer is the
 * one the detection spec (detect.c) reaches (the same input-size rule and
 * the same head_detect_layout), plus one guard the spec does not need: a
 * [N, a, b] output with a < b is read as YOLOv8 only when b is the anchor
 * count of the input's stride-8/16/32 grid, so a raw model with a wide
 * output is not taken for a detector.
 */
#include <stdio.h>
#include <string.h>

#include "vision/family.h"
#include "vision/heads.h"

vigil_status family_input_size(const vigil_tensor_info *in, const char *imgsz, vigil_layout *layout, int *w, int *h,
                               vigil_error *err) {
    int real = in && (in->dtype == VIGIL_DTYPE_F32 || in->dtype == VIGIL_DTYPE_F16); /* fp16: an fp16 export */
    if (!in || in->ndim != 4 || (!real && in->dtype != VIGIL_DTYPE_U8))
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                               "detection models need one float32 or float16 (or uint8 NHWC) image input of 4 dims");
    /* uint8 (a quantised accelerator's input, e.g. a Hailo HEF's) is NHWC */
    *layout = in->dims[1] == 3 && real ? VIGIL_LAYOUT_NCHW : VIGIL_LAYOUT_NHWC;
    if (*layout == VIGIL_LAYOUT_NHWC && in->dims[3] != 3)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "image input %s must have 3 channels", in->name);
    int64_t rows = *layout == VIGIL_LAYOUT_NCHW ? in->dims[2] : in->dims[1];
    int64_t cols = *layout == VIGIL_LAYOUT_NCHW ? in->dims[3] : in->dims[2];
    if (rows <= 0 || cols <= 0) {
        long mh = 640, mw = 640;
        if (imgsz && sscanf(imgsz, " [ %ld , %ld ]", &mh, &mw) < 1) mh = mw = 640;
        rows = rows > 0 ? rows : mh;
        cols = cols > 0 ? cols : mw;
    }
    if (rows < 8 || cols < 8 || rows > 8192 || cols > 8192)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "image input size %lld x %lld is out of range",
                               (long long)cols, (long long)rows);
    *w = (int)cols;
    *h = (int)rows;
    return VIGIL_OK;
}

/* Anchors of a stride-8/16/32 grid over a w x h input (8400 at 640). */
static int64_t family_grid_anchors(int w, int h) {
    int64_t n = 0;
    for (int s = 8; s <= 32; s *= 2)
        n += (int64_t)((w + s - 1) / s) * ((h + s - 1) / s);
    return n;
}

vigil_head_family vigil_head_family_of(const vigil_tensor_info *input, const vigil_tensor_info *outputs,
                                       size_t n_outputs, const char *names, const char *task, const char *imgsz) {
    if (task && strcmp(task, "detect") != 0 && strcmp(task, "segment") != 0)
        return VIGIL_HEAD_AUTO; /* classify, pose, obb: the exporter said what it is */
    vigil_layout layout;
    int w, h;
    vigil_error err;
    if (!outputs || n_outputs == 0 || family_input_size(input, imgsz, &layout, &w, &h, &err)) return VIGIL_HEAD_AUTO;
    int n_named = 0;
    vigil_labels *labels = NULL;
    if (names && vigil_labels_parse(names, &labels, &err) == VIGIL_OK) n_named = (int)vigil_labels_count(labels);
    vigil_labels_free(labels);
    head_layout found;
    if (n_outputs > HEAD_MAX_OUTPUTS) n_outputs = HEAD_MAX_OUTPUTS; /* the detector reads no more */
    if (head_detect_layout(outputs, n_outputs, n_named, task, w, h, VIGIL_HEAD_AUTO, 0, &found, &err))
        return VIGIL_HEAD_AUTO;
    int channels_first = found.family == VIGIL_HEAD_YOLOV8 || found.family == VIGIL_HEAD_YOLOV8_SEG;
    if (channels_first && !task && found.n_anchors != family_grid_anchors(w, h)) return VIGIL_HEAD_AUTO;
    return found.family;
}
