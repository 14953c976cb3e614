/*
 * fuzz_served_model.h - the served model the request-parser fuzz targets
 * (fuzz_infer_request.c, fuzz_grpc.c) parse against: a detection-task model
 * with max_batch_size 8, an FP32 [-1, 4] input "x", an INT64 [-1, 2] input
 * "ids" and an FP32 [-1, 4] output "y".
 */
#ifndef VIGIL_FUZZ_SERVED_MODEL_H
#define VIGIL_FUZZ_SERVED_MODEL_H

#include <string.h>

#include "serve/server_internal.h"

static const vigil_tensor_info fuzz_input_x = {"x", VIGIL_DTYPE_F32, 2, {-1, 4}, {"batch"}};
static const vigil_tensor_info fuzz_input_ids = {"ids", VIGIL_DTYPE_I64, 2, {-1, 2}, {"batch"}};
static const vigil_tensor_info fuzz_output_y = {"y", VIGIL_DTYPE_F32, 2, {-1, 4}, {"batch"}};

static inline void fuzz_served_model(served_model *model) {
    memset(model, 0, sizeof *model);
    strcpy(model->name, "fuzz");
    model->version = 1;
    model->task = MODEL_TASK_DETECT;
    model->config.max_batch_size = 8;
    model->config.conf_threshold = -1;
    model->config.iou_threshold = -1;
    model->io.n_inputs = 2;
    model->io.inputs[0] = &fuzz_input_x;
    model->io.inputs[1] = &fuzz_input_ids;
    model->io.n_outputs = 1;
    model->io.outputs[0] = &fuzz_output_y;
}

#endif
