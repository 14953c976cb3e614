/*
 * test_vision_reference.c - vision's post-processing on ONNX Runtime's own
 * raw outputs for bus.jpg (../shared/reference/<model>__bus__output0.npy):
 * head decode, NMS and mapping back must give the reference detections
 * (same classes, scores within 1e-3, boxes within 0.5 px).  This pins the
 * post-processing independently of the engine's numerics.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "testing.h"
#include "vision/heads.h"

static void check_model(const char *model) {
    char out_rel[256], json_rel[256], out_path[4096], json_path[4096];
    snprintf(out_rel, sizeof out_rel, "reference/%s__bus__output0.npy", model);
    snprintf(json_rel, sizeof json_rel, "reference/%s__bus.json", model);
    if (!testing_shared_path(out_path, sizeof out_path, out_rel) ||
        !testing_shared_path(json_path, sizeof json_path, json_rel))
        SKIP("../shared reference outputs are absent");
    npy_array out;
    vigil_error err;
    CHECK_EQ_INT(npy_read(out_path, &out, &err), VIGIL_OK);
    json_error_t jerr;
    json_t *ref = json_load_file(json_path, 0, &jerr);
    CHECK(ref != NULL);
    if (!ref) return;
    vigil_tensor_info info = {.dtype = VIGIL_DTYPE_F32, .ndim = 3, .dims = {1, out.dims[1], out.dims[2]}};
    head_layout l;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 80, "detect", 640, 640, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, strcmp(model, "yolov8n") == 0 ? VIGIL_HEAD_YOLOV8 : VIGIL_HEAD_YOLOV5);
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 3, .dims = {1, out.dims[1], out.dims[2]}, .data = out.data};
    head_params p = {.conf_threshold = 0.25f, .input_w = 640, .input_h = 640};
    head_boxes boxes = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &boxes, &err), VIGIL_OK);
    size_t kept = head_nms(&boxes, 0.45f, 0, 300);
    /* bus.jpg is 810 x 1080: r = 640 / 1080, padded 80 left */
    double r = json_real_value(json_object_get(ref, "scale_r"));
    head_geometry geo = {.gain_x = (float)r,
                         .gain_y = (float)r,
                         .pad_x = 80,
                         .pad_y = 0,
                         .input_w = 640,
                         .input_h = 640,
                         .orig_w = 810,
                         .orig_h = 1080};
    json_t *dets = json_object_get(ref, "detections");
    CHECK_EQ_INT(kept, json_array_size(dets));
    for (size_t i = 0; i < kept && i < json_array_size(dets); i++) {
        json_t *want = json_array_get(dets, i);
        vigil_detection d;
        head_map_box(&boxes.items[i], &geo, &d);
        CHECK_EQ_INT(d.class_id, json_integer_value(json_object_get(want, "class_id")));
        CHECK_NEAR(d.score, json_real_value(json_object_get(want, "score")), 1e-3);
        json_t *box = json_object_get(want, "box_xyxy");
        float got[4] = {d.x1, d.y1, d.x2, d.y2};
        for (int k = 0; k < 4; k++)
            CHECK_NEAR(got[k], json_number_value(json_array_get(box, k)), 0.5);
    }
    head_boxes_free(&boxes);
    json_decref(ref);
    npy_free(&out);
}

static void test_yolov8n_bus(void) {
    check_model("yolov8n");
}
static void test_yolov5n_bus(void) {
    check_model("yolov5n");
}

int main(void) {
    RUN(test_yolov8n_bus);
    RUN(test_yolov5n_bus);
    return testing_report();
}
