/*
 * test_vision_family.c - vigil_head_family_of: what a model's tensors say it
 * detects, before anything is compiled (the repository's task inference).
 * Hand-made tensor descriptions of each export's layout, and the raw
 * models that must not be taken for detectors; which frames a device input
 * takes by a copy of their rows (vigil_detect_frame_copies).
 */
#include <string.h>

#include "testing.h"
#include "vigil/vision.h"

static vigil_tensor_info info(const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    vigil_tensor_info t = {.name = name, .dtype = VIGIL_DTYPE_F32, .ndim = ndim, .dims = {d0, d1, d2, d3}};
    return t;
}

static const vigil_tensor_info image640 = {
    .name = "images", .dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 3, 640, 640}};

static vigil_head_family family1(vigil_tensor_info out, const char *names, const char *task) {
    return vigil_head_family_of(&image640, &out, 1, names, task, NULL);
}

/* The layouts of Ultralytics' and the other exporters' heads at 640. */
static void test_each_export_layout_is_a_detector(void) {
    CHECK_EQ_INT(family1(info("output0", 3, 1, 25200, 85, 0), NULL, NULL), VIGIL_HEAD_YOLOV5); /* no task metadata */
    CHECK_EQ_INT(family1(info("output0", 3, 1, 84, 8400, 0), NULL, NULL), VIGIL_HEAD_YOLOV8);
    CHECK_EQ_INT(family1(info("output0", 3, -1, 84, 8400, 0), NULL, "detect"), VIGIL_HEAD_YOLOV8); /* dynamic batch */
    CHECK_EQ_INT(family1(info("output", 3, 1, 8400, 85, 0), NULL, NULL), VIGIL_HEAD_YOLOX);
    CHECK_EQ_INT(family1(info("output0", 3, 1, 300, 6, 0), NULL, NULL), VIGIL_HEAD_YOLOV10);
    vigil_tensor_info seg[2] = {info("output0", 3, 1, 116, 8400, 0), info("output1", 4, 1, 32, 160, 160)};
    CHECK_EQ_INT(vigil_head_family_of(&image640, seg, 2, NULL, "segment", NULL), VIGIL_HEAD_YOLOV8_SEG);
    CHECK_EQ_INT(vigil_head_family_of(&image640, seg, 2, NULL, NULL, NULL), VIGIL_HEAD_YOLOV8_SEG);
}

/* A 320 input: YOLOv8's anchors are the 320 grid's (1600+400+100). */
static void test_the_grid_follows_the_input_size(void) {
    vigil_tensor_info in = image640;
    in.dims[2] = in.dims[3] = 320;
    vigil_tensor_info out = info("output0", 3, 1, 84, 2100, 0);
    CHECK_EQ_INT(vigil_head_family_of(&in, &out, 1, NULL, NULL, NULL), VIGIL_HEAD_YOLOV8);
    CHECK_EQ_INT(vigil_head_family_of(&image640, &out, 1, NULL, NULL, NULL), VIGIL_HEAD_AUTO);
    /* symbolic height and width: the metadata's imgsz says 320 */
    in.dims[2] = in.dims[3] = -1;
    CHECK_EQ_INT(vigil_head_family_of(&in, &out, 1, NULL, NULL, "[320, 320]"), VIGIL_HEAD_YOLOV8);
}

/* Models that are not detectors stay raw. */
static void test_raw_models_are_not_taken_for_detectors(void) {
    /* a wide output that is no stride-8/16/32 grid, without task metadata */
    CHECK_EQ_INT(family1(info("y", 3, 1, 84, 8000, 0), NULL, NULL), VIGIL_HEAD_AUTO);
    /* an exporter that says what it is */
    CHECK_EQ_INT(family1(info("output0", 3, 1, 56, 8400, 0), NULL, "pose"), VIGIL_HEAD_AUTO);
    CHECK_EQ_INT(family1(info("output0", 2, 1, 1000, 0, 0), NULL, "classify"), VIGIL_HEAD_AUTO);
    /* a classifier and an affine model: 2-D outputs */
    CHECK_EQ_INT(family1(info("logits", 2, 1, 1000, 0, 0), NULL, NULL), VIGIL_HEAD_AUTO);
    vigil_tensor_info vec = info("x", 2, -1, 4, 0, 0), y = info("y", 2, -1, 4, 0, 0);
    CHECK_EQ_INT(vigil_head_family_of(&vec, &y, 1, NULL, NULL, NULL), VIGIL_HEAD_AUTO);
    /* no outputs, no input */
    CHECK_EQ_INT(vigil_head_family_of(&image640, NULL, 0, NULL, NULL, NULL), VIGIL_HEAD_AUTO);
    vigil_tensor_info out = info("output0", 3, 1, 84, 8400, 0);
    CHECK_EQ_INT(vigil_head_family_of(NULL, &out, 1, NULL, NULL, NULL), VIGIL_HEAD_AUTO);
}

/* The names metadata tells YOLOX's class count from another layout's. */
static void test_named_classes_are_counted(void) {
    const char *two = "{0: 'cat', 1: 'dog'}";
    CHECK_EQ_INT(family1(info("output", 3, 1, 8400, 7, 0), two, NULL), VIGIL_HEAD_YOLOX);
    CHECK_EQ_INT(family1(info("output", 3, 1, 25200, 7, 0), two, NULL), VIGIL_HEAD_YOLOV5);
}

/* Which frames a device's uint8 input takes by a copy of their rows (the
 * ones a front end letterboxes where they arrive): those that fill it
 * along one side, none that must be scaled, and nothing for a float input. */
static void test_frame_copies(void) {
    vigil_tensor_info in = {.name = "images", .dtype = VIGIL_DTYPE_U8, .ndim = 4, .dims = {1, 64, 64, 3}};
    vigil_tensor_info out = {.name = "nms",
                             .dtype = VIGIL_DTYPE_F32,
                             .ndim = 3,
                             .dims = {-1, 8, 1 + 5 * 4},
                             .dim_names = {"batch", "classes", "hailo_nms"}};
    const vigil_tensor_info *outs[1] = {&out};
    vigil_detect_spec *spec = NULL;
    vigil_error err;
    CHECK_EQ_INT(vigil_detect_spec_create(&in, outs, 1, NULL, "detect", NULL, NULL, &spec, &err), VIGIL_OK);
    CHECK_EQ_INT(vigil_detect_spec_family(spec), VIGIL_HEAD_HAILO_NMS);
    CHECK(vigil_detect_frame_copies(spec, 64, 48));  /* landscape: padding above and below */
    CHECK(vigil_detect_frame_copies(spec, 48, 64));  /* portrait: padding left and right */
    CHECK(vigil_detect_frame_copies(spec, 64, 64));  /* no padding */
    CHECK(vigil_detect_frame_copies(spec, 64, 1));   /* one row */
    CHECK(!vigil_detect_frame_copies(spec, 32, 24)); /* scaled up */
    CHECK(!vigil_detect_frame_copies(spec, 65, 48)); /* scaled down, by a pixel */
    CHECK(!vigil_detect_frame_copies(spec, 0, 48));
    CHECK(!vigil_detect_frame_copies(NULL, 64, 48));
    vigil_detect_spec_destroy(spec);
    in.dtype = VIGIL_DTYPE_F32; /* a CPU model's float input: letterboxed by its worker */
    in.dims[1] = 3, in.dims[3] = 64;
    vigil_detector_options opt = vigil_detector_options_default();
    CHECK_EQ_INT(vigil_detect_spec_create(&in, outs, 1, NULL, "detect", NULL, &opt, &spec, &err), VIGIL_OK);
    CHECK(!vigil_detect_frame_copies(spec, 64, 48));
    vigil_detect_spec_destroy(spec);
}

int main(void) {
    RUN(test_each_export_layout_is_a_detector);
    RUN(test_the_grid_follows_the_input_size);
    RUN(test_raw_models_are_not_taken_for_detectors);
    RUN(test_named_classes_are_counted);
    RUN(test_frame_copies);
    return testing_report();
}
