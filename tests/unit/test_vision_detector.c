/*
 * test_vision_detector.c - vigil_detector on the real yolov8n and yolov5n
 * models: the reference detections for bus.jpg and zidane.jpg (same classes,
 * scores within 0.01, corners within 2 px), repeat runs, decoded-image runs,
 * class filter, max detections, bad images and a wrong family override.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"
#include "vigil/engine.h"
#include "vigil/vision.h"

/* Checks result against reference/<model>__<image>.json, pairing each
 * reference detection with the closest unused one of its class. */
static void check_reference(const char *model, const char *image, const vigil_detect_result *r) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "reference/%s__%s.json", model, image);
    if (!testing_shared_path(path, sizeof path, rel)) {
        CHECK(!"reference file missing");
        return;
    }
    json_t *ref = json_load_file(path, 0, NULL);
    json_t *dets = json_object_get(ref, "detections");
    CHECK_EQ_INT(r->count, json_array_size(dets));
    int used[64] = {0};
    for (size_t i = 0; i < json_array_size(dets) && r->count <= 64; i++) {
        json_t *want = json_array_get(dets, i);
        json_t *box = json_object_get(want, "box_xyxy");
        int best = -1;
        double best_d = 1e9;
        for (size_t k = 0; k < r->count; k++) {
            const vigil_detection *d = &r->detections[k];
            if (used[k] || d->class_id != json_integer_value(json_object_get(want, "class_id"))) continue;
            float got[4] = {d->x1, d->y1, d->x2, d->y2};
            double worst = 0;
            for (int c = 0; c < 4; c++) {
                double diff = fabs(got[c] - json_number_value(json_array_get(box, c)));
                worst = diff > worst ? diff : worst;
            }
            if (worst < best_d) best_d = worst, best = (int)k;
        }
        CHECK(best >= 0);
        if (best < 0) continue;
        used[best] = 1;
        CHECK(best_d <= 2.0);
        CHECK_NEAR(r->detections[best].score, json_real_value(json_object_get(want, "score")), 0.01);
        CHECK_STR(r->detections[best].class_name, json_string_value(json_object_get(want, "class_name")));
    }
    json_decref(ref);
}

static vigil_engine *engine;

static vigil_model *load(const char *name) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "models/%s.onnx", name);
    if (!testing_shared_path(path, sizeof path, rel)) return NULL;
    vigil_model *m = NULL;
    vigil_error err;
    vigil_status st = vigil_model_load(engine, path, &m, &err);
    if (st) fprintf(stderr, "  load %s: %s\n", path, err.message);
    CHECK_EQ_INT(st, VIGIL_OK);
    return m;
}

static uint8_t *image_bytes(const char *name, size_t *size) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "images/%s.jpg", name);
    return testing_shared_path(path, sizeof path, rel) ? testing_read_file(path, size) : NULL;
}

static void run_model(const char *name, vigil_head_family family) {
    vigil_model *m = load(name);
    if (!m) return;
    vigil_detector *det = NULL;
    vigil_error err;
    CHECK_EQ_INT(vigil_detector_create(m, NULL, &det, &err), VIGIL_OK);
    if (!det) {
        fprintf(stderr, "  %s\n", err.message);
        vigil_model_free(m);
        return;
    }
    CHECK_EQ_INT(vigil_detector_family(det), family);
    CHECK_EQ_INT(vigil_labels_count(vigil_detector_labels(det)), 80);
    CHECK_STR(vigil_labels_name(vigil_detector_labels(det), 0), "person");
    vigil_detect_options o = vigil_detect_options_default();
    size_t size = 0;
    uint8_t *bus = image_bytes("bus", &size);
    vigil_detect_result r;
    for (int round = 0; round < 2; round++) { /* the second run reuses every buffer */
        CHECK_EQ_INT(vigil_detector_run(det, bus, size, &o, &r, &err), VIGIL_OK);
        CHECK_EQ_INT(r.image_width, 810);
        CHECK_EQ_INT(r.image_height, 1080);
        check_reference(name, "bus", &r);
        CHECK(r.timing.inference_ms > 0);
        CHECK(r.timing.total_ms >= r.timing.decode_ms + r.timing.inference_ms);
    }
    /* class filter and max detections */
    int only_bus[] = {5};
    o.classes = only_bus, o.n_classes = 1;
    CHECK_EQ_INT(vigil_detector_run(det, bus, size, &o, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.count, 1);
    CHECK_STR(r.count ? r.detections[0].class_name : NULL, "bus");
    o = vigil_detect_options_default();
    o.max_detections = 2;
    CHECK_EQ_INT(vigil_detector_run(det, bus, size, &o, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.count, 2);
    /* a truncated image is an error, and the detector keeps working */
    CHECK_EQ_INT(vigil_detector_run(det, bus, size / 3, NULL, &r, &err), VIGIL_ERR_PARSE);
    CHECK_EQ_INT(r.count, 0);
    CHECK_EQ_INT(vigil_detector_run(det, bus, 0, NULL, &r, &err), VIGIL_ERR_PARSE);
    /* an already decoded image */
    size_t zsize = 0;
    uint8_t *zidane = image_bytes("zidane", &zsize);
    vigil_image img;
    CHECK_EQ_INT(vigil_image_decode(zidane, zsize, NULL, &img, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(vigil_detector_run_image(det, &img, NULL, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.timing.decode_ms, 0);
    check_reference(name, "zidane", &r);
    /* a 1x1 image runs and finds nothing sensible to crash on */
    vigil_image tiny;
    CHECK_EQ_INT(vigil_image_alloc(1, 1, &tiny, &err), VIGIL_OK);
    memset(tiny.data, 128, 3);
    CHECK_EQ_INT(vigil_detector_run_image(det, &tiny, NULL, &r, &err), VIGIL_OK);
    /* one batch of four: each image gets what it gets alone, with its own options */
    vigil_image busimg;
    CHECK_EQ_INT(vigil_image_decode(bus, size, NULL, &busimg, NULL, &err), VIGIL_OK);
    vigil_image batch[4] = {busimg, img, tiny, busimg};
    int ow[4] = {busimg.width, img.width, 1, busimg.width}, oh[4] = {busimg.height, img.height, 1, busimg.height};
    vigil_detect_options only = vigil_detect_options_default();
    only.classes = only_bus, only.n_classes = 1;
    const vigil_detect_options *opts[4] = {NULL, NULL, NULL, &only};
    vigil_detect_result rs[6];
    for (int round = 0; round < 2; round++) {
        CHECK_EQ_INT(vigil_detector_run_batch(det, 4, batch, ow, oh, opts, rs, &err), VIGIL_OK);
        check_reference(name, "bus", &rs[0]);
        check_reference(name, "zidane", &rs[1]);
        CHECK_EQ_INT(rs[3].count, 1);
        CHECK_STR(rs[3].count ? rs[3].detections[0].class_name : NULL, "bus");
        CHECK(rs[0].timing.inference_ms > 0 && rs[0].timing.inference_ms == rs[1].timing.inference_ms);
    }
    CHECK_EQ_INT(vigil_detector_run_batch(det, 0, batch, ow, oh, NULL, rs, &err), VIGIL_ERR_INVALID_ARGUMENT);
    if (strcmp(name, "yolov8n") == 0) { /* more batch sizes than the detector keeps plans for, then an evicted one */
        vigil_image same[6] = {busimg, busimg, busimg, busimg, busimg, busimg};
        int sw[6], sh[6];
        for (int k = 0; k < 6; k++)
            sw[k] = busimg.width, sh[k] = busimg.height;
        static const size_t sizes[] = {2, 3, 5, 6, 2};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            CHECK_EQ_INT(vigil_detector_run_batch(det, sizes[i], same, sw, sh, NULL, rs, &err), VIGIL_OK);
            check_reference(name, "bus", &rs[0]);
        }
    }
    vigil_image_free(&busimg);
    vigil_image_free(&tiny);
    vigil_image_free(&img);
    free(zidane);
    free(bus);
    vigil_detector_destroy(det);
    vigil_model_free(m);
}

/* A photo whose EXIF says "rotate 90 degrees clockwise" is not streamed
 * into the letterbox (that path does not rotate): it is decoded whole and
 * turned, and finds what the turned image finds. */
static void test_rotated_photo_takes_the_whole_image_path(void) {
    if (!testing_shared_dir()) SKIP("../shared is absent");
    vigil_model *m = load("yolov8n");
    if (!m) return;
    size_t size = 0;
    uint8_t *bus = image_bytes("bus", &size);
    size_t n;
    uint8_t *turned = testing_jpeg_with_orientation(bus, size, 6, &n);
    vigil_detector *det = NULL;
    vigil_error err;
    CHECK_EQ_INT(vigil_detector_create(m, NULL, &det, &err), VIGIL_OK);
    vigil_detect_result r;
    CHECK_EQ_INT(vigil_detector_run(det, turned, n, NULL, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.image_width, 1080);
    CHECK_EQ_INT(r.image_height, 810);
    size_t count = r.count;
    vigil_detection first = count ? r.detections[0] : (vigil_detection){0};
    vigil_image img;
    CHECK_EQ_INT(vigil_image_decode(turned, n, NULL, &img, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(vigil_detector_run_image(det, &img, NULL, &r, &err), VIGIL_OK);
    CHECK(count > 0 && r.count == count);
    CHECK(count && r.detections[0].x1 == first.x1 && r.detections[0].y2 == first.y2);
    CHECK(count && r.detections[0].score == first.score);
    /* ignoring EXIF, the same bytes stream and find what bus.jpg finds */
    vigil_detector_destroy(det);
    vigil_detector_options o = vigil_detector_options_default();
    o.decode.ignore_exif = 1;
    CHECK_EQ_INT(vigil_detector_create(m, &o, &det, &err), VIGIL_OK);
    CHECK_EQ_INT(vigil_detector_run(det, turned, n, NULL, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.image_width, 810);
    check_reference("yolov8n", "bus", &r);
    vigil_image_free(&img);
    vigil_detector_destroy(det);
    free(turned);
    free(bus);
    vigil_model_free(m);
}

static void test_yolov8n(void) {
    if (!testing_shared_dir()) SKIP("../shared is absent");
    run_model("yolov8n", VIGIL_HEAD_YOLOV8);
}

static void test_yolov5n(void) {
    if (!testing_shared_dir()) SKIP("../shared is absent");
    run_model("yolov5n", VIGIL_HEAD_YOLOV5);
}

static void test_wrong_family_is_refused(void) {
    if (!testing_shared_dir()) SKIP("../shared is absent");
    vigil_model *m = load("yolov8n");
    if (!m) return;
    vigil_detector_options opt = vigil_detector_options_default();
    opt.family = VIGIL_HEAD_YOLOV10;
    vigil_detector *det = NULL;
    vigil_error err;
    CHECK_EQ_INT(vigil_detector_create(m, &opt, &det, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK(det == NULL);
    fprintf(stderr, "  %s\n", err.message);
    opt.family = VIGIL_HEAD_AUTO;
    opt.labels_path = "/nonexistent/labels.txt";
    CHECK_EQ_INT(vigil_detector_create(m, &opt, &det, &err), VIGIL_ERR_NOT_FOUND);
    vigil_model_free(m);
}

int main(void) {
    vigil_error err;
    vigil_engine_options eo = {.threads = 0};
    if (vigil_engine_create(&eo, &engine, &err) != VIGIL_OK) {
        fprintf(stderr, "engine: %s\n", err.message);
        return 1;
    }
    RUN(test_yolov8n);
    RUN(test_rotated_photo_takes_the_whole_image_path);
    RUN(test_yolov5n);
    RUN(test_wrong_family_is_refused);
    vigil_engine_destroy(engine);
    return testing_report();
}
