/*
 * family.h - the input-size rule shared by the detector and
 * vigil_head_family_of (what a model's tensors say it detects).
 */
#ifndef VIGIL_VISION_FAMILY_H
#define VIGIL_VISION_FAMILY_H

#include "vigil/vision.h"

/* The network's input size from input 0 (NCHW when dims[1] is 3, else NHWC
 * with 3 channels; a uint8 input is always NHWC), falling back on the metadata's imgsz ("[640, 640]", may
 * be NULL) where the exporter left height and width symbolic, else 640.
 * OUT: *layout, *w, *h.  VIGIL_ERR_UNSUPPORTED for anything but one float32
 * (or uint8) image input of 4 dims, or a size outside 8..8192. */
vigil_status family_input_size(const vigil_tensor_info *input, const char *imgsz, vigil_layout *layout, int *w,
                               int *h, vigil_error *err);

#endif
