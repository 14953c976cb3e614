/*
 * test_vision_detector.c - detection on the real yolov8n and yolov5n models
 * through the CPU backend, as the server and `vigil detect` run it: the
 * detect worker (image bytes -> batch slot -> backend run -> boxes), and the
 * vision steps by hand for images already decoded (preprocess_image, the
 * backend's run, postprocess per item).  The reference detections for
 * bus.jpg and zidane.jpg (same classes, scores within 0.01, corners within
 * 2 px), repeat runs, batches, class filter, max detections, bad images and
 * a wrong family override.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testing.h"
#include "backends/backend.h"
#include "serve/job_detect.h"
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

/* A model on the CPU backend, read for detection. */
static const backend_ops *cpu;
static backend_device *device;

typedef struct tdet {
    backend_model *model;
    backend_io io;
    detect_worker *worker;    /* image bytes -> detections */
    vigil_detect_spec *spec;  /* the steps by hand, for decoded images */
    vigil_detections *stores[6];
    float *input;
} tdet;

static void tdet_close(tdet *t) {
    detect_worker_destroy(t->worker);
    vigil_detect_spec_destroy(t->spec);
    for (int i = 0; i < 6; i++) vigil_detections_destroy(t->stores[i]);
    free(t->input);
    if (t->model) cpu->unload(t->model);
    memset(t, 0, sizeof *t);
}

/* Loads models/<name>.onnx; returns the status of reading it for detection
 * (the model stays loaded: tdet_close). */
static vigil_status tdet_open(tdet *t, const char *name, const vigil_detector_options *o, vigil_error *err) {
    char rel[256], path[4096];
    memset(t, 0, sizeof *t);
    snprintf(rel, sizeof rel, "models/%s.onnx", name);
    if (!testing_shared_path(path, sizeof path, rel)) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "no model");
    vigil_status st = cpu->load(device, path, &t->model, &t->io, err);
    CHECK_EQ_INT(st, VIGIL_OK);
    if (st) return st;
    st = detect_worker_create(cpu, t->model, &t->io, o, &t->worker, err);
    if (!st)
        st = vigil_detect_spec_create(t->io.inputs[0], t->io.outputs, t->io.n_outputs, cpu->metadata(t->model, "names"),
                                      cpu->metadata(t->model, "task"), cpu->metadata(t->model, "imgsz"), o, &t->spec,
                                      err);
    for (int i = 0; !st && i < 6; i++) st = vigil_detections_create(&t->stores[i], err);
    return st;
}

/* Image bytes through the detect worker, as the server runs one request. */
static vigil_status run_bytes(tdet *t, const void *bytes, size_t size, const vigil_detect_options *o,
                              vigil_detect_result *r, vigil_error *err) {
    detect_request req = {.image = bytes, .size = size, .options = o};
    detect_worker_detect(t->worker, &req, 1);
    *r = req.result;
    if (req.status) *err = req.error;
    return req.status;
}

/* Decoded images as one batch, by the steps: each into its slot, the
 * backend's run, each item post-processed into its own store. */
static vigil_status run_images(tdet *t, size_t n, const vigil_image *images, const int *ow, const int *oh,
                               const vigil_detect_options *const *opts, vigil_detect_result *rs, vigil_error *err) {
    if (n < 1 || n > 6) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "1 to 6 images");
    vigil_tensor input = vigil_detect_spec_input(t->spec, n);
    free(t->input);
    t->input = malloc(vigil_tensor_bytes(&input));
    input.data = t->input;
    vigil_detect_item items[6];
    for (size_t i = 0; i < n; i++) {
        vigil_status st = vigil_detect_preprocess_image(t->spec, &images[i], ow[i], oh[i], &input, i, &items[i], err);
        if (st) return st;
    }
    const vigil_tensor *outs[BACKEND_MAX_IO] = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vigil_status st = cpu->run(t->model, (int64_t)n, &input, 1, outs, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double inference_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    for (size_t i = 0; !st && i < n; i++) {
        st = vigil_detect_postprocess(t->spec, outs, t->io.n_outputs, n, i, &items[i], opts ? opts[i] : NULL,
                                      t->stores[i], &rs[i], err);
        rs[i].timing.inference_ms = inference_ms;
        rs[i].timing.total_ms += inference_ms;
    }
    return st;
}

static vigil_status run_image(tdet *t, const vigil_image *img, const vigil_detect_options *o, vigil_detect_result *r,
                              vigil_error *err) {
    const vigil_detect_options *opts[1] = {o};
    return run_images(t, 1, img, &img->width, &img->height, opts, r, err);
}

static uint8_t *image_bytes(const char *name, size_t *size) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "images/%s.jpg", name);
    return testing_shared_path(path, sizeof path, rel) ? testing_read_file(path, size) : NULL;
}

static void run_model(const char *name, vigil_head_family family) {
    tdet det_, *det = &det_;
    vigil_error err;
    vigil_status opened = tdet_open(det, name, NULL, &err);
    CHECK_EQ_INT(opened, VIGIL_OK);
    if (opened) {
        fprintf(stderr, "  %s\n", err.message);
        tdet_close(det);
        return;
    }
    CHECK_EQ_INT(detect_worker_family(det->worker), family);
    CHECK_EQ_INT(vigil_detect_spec_family(det->spec), family);
    CHECK_EQ_INT(vigil_labels_count(detect_worker_labels(det->worker)), 80);
    CHECK_STR(vigil_labels_name(detect_worker_labels(det->worker), 0), "person");
    vigil_detect_options o = vigil_detect_options_default();
    size_t size = 0;
    uint8_t *bus = image_bytes("bus", &size);
    vigil_detect_result r;
    for (int round = 0; round < 2; round++) { /* the second run reuses every buffer */
        CHECK_EQ_INT(run_bytes(det, bus, size, &o, &r, &err), VIGIL_OK);
        CHECK_EQ_INT(r.image_width, 810);
        CHECK_EQ_INT(r.image_height, 1080);
        check_reference(name, "bus", &r);
        CHECK(r.timing.inference_ms > 0);
        CHECK(r.timing.total_ms >= r.timing.decode_ms + r.timing.inference_ms);
    }
    /* class filter and max detections */
    int only_bus[] = {5};
    o.classes = only_bus, o.n_classes = 1;
    CHECK_EQ_INT(run_bytes(det, bus, size, &o, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.count, 1);
    CHECK_STR(r.count ? r.detections[0].class_name : NULL, "bus");
    o = vigil_detect_options_default();
    o.max_detections = 2;
    CHECK_EQ_INT(run_bytes(det, bus, size, &o, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.count, 2);
    /* a truncated image is an error, and the detector keeps working */
    CHECK_EQ_INT(run_bytes(det, bus, size / 3, NULL, &r, &err), VIGIL_ERR_PARSE);
    CHECK_EQ_INT(r.count, 0);
    CHECK_EQ_INT(run_bytes(det, bus, 0, NULL, &r, &err), VIGIL_ERR_PARSE);
    /* an already decoded image */
    size_t zsize = 0;
    uint8_t *zidane = image_bytes("zidane", &zsize);
    vigil_image img;
    CHECK_EQ_INT(vigil_image_decode(zidane, zsize, NULL, &img, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(run_image(det, &img, NULL, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.timing.decode_ms, 0);
    check_reference(name, "zidane", &r);
    /* a 1x1 image runs and finds nothing sensible to crash on */
    vigil_image tiny;
    CHECK_EQ_INT(vigil_image_alloc(1, 1, &tiny, &err), VIGIL_OK);
    memset(tiny.data, 128, 3);
    CHECK_EQ_INT(run_image(det, &tiny, NULL, &r, &err), VIGIL_OK);
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
        CHECK_EQ_INT(run_images(det, 4, batch, ow, oh, opts, rs, &err), VIGIL_OK);
        check_reference(name, "bus", &rs[0]);
        check_reference(name, "zidane", &rs[1]);
        CHECK_EQ_INT(rs[3].count, 1);
        CHECK_STR(rs[3].count ? rs[3].detections[0].class_name : NULL, "bus");
        CHECK(rs[0].timing.inference_ms > 0 && rs[0].timing.inference_ms == rs[1].timing.inference_ms);
    }
    CHECK_EQ_INT(run_images(det, 0, batch, ow, oh, NULL, rs, &err), VIGIL_ERR_INVALID_ARGUMENT);
    if (strcmp(name, "yolov8n") == 0) { /* many batch sizes on the backend's one plan cache, then one seen before */
        vigil_image same[6] = {busimg, busimg, busimg, busimg, busimg, busimg};
        int sw[6], sh[6];
        for (int k = 0; k < 6; k++)
            sw[k] = busimg.width, sh[k] = busimg.height;
        static const size_t sizes[] = {2, 3, 5, 6, 2};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            CHECK_EQ_INT(run_images(det, sizes[i], same, sw, sh, NULL, rs, &err), VIGIL_OK);
            check_reference(name, "bus", &rs[0]);
        }
    }
    vigil_image_free(&busimg);
    vigil_image_free(&tiny);
    vigil_image_free(&img);
    free(zidane);
    free(bus);
    tdet_close(det);
}

/* A photo whose EXIF says "rotate 90 degrees clockwise" is not streamed
 * into the letterbox (that path does not rotate): it is decoded whole and
 * turned, and finds what the turned image finds. */
static void test_rotated_photo_takes_the_whole_image_path(void) {
    if (!testing_shared_dir()) SKIP("../shared is absent");
    size_t size = 0;
    uint8_t *bus = image_bytes("bus", &size);
    size_t n;
    uint8_t *turned = testing_jpeg_with_orientation(bus, size, 6, &n);
    tdet det_, *det = &det_;
    vigil_error err;
    CHECK_EQ_INT(tdet_open(det, "yolov8n", NULL, &err), VIGIL_OK);
    vigil_detect_result r;
    CHECK_EQ_INT(run_bytes(det, turned, n, NULL, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.image_width, 1080);
    CHECK_EQ_INT(r.image_height, 810);
    size_t count = r.count;
    vigil_detection first = count ? r.detections[0] : (vigil_detection){0};
    vigil_image img;
    CHECK_EQ_INT(vigil_image_decode(turned, n, NULL, &img, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(run_image(det, &img, NULL, &r, &err), VIGIL_OK);
    CHECK(count > 0 && r.count == count);
    CHECK(count && r.detections[0].x1 == first.x1 && r.detections[0].y2 == first.y2);
    CHECK(count && r.detections[0].score == first.score);
    /* ignoring EXIF, the same bytes stream and find what bus.jpg finds */
    tdet_close(det);
    vigil_detector_options o = vigil_detector_options_default();
    o.decode.ignore_exif = 1;
    CHECK_EQ_INT(tdet_open(det, "yolov8n", &o, &err), VIGIL_OK);
    CHECK_EQ_INT(run_bytes(det, turned, n, NULL, &r, &err), VIGIL_OK);
    CHECK_EQ_INT(r.image_width, 810);
    check_reference("yolov8n", "bus", &r);
    vigil_image_free(&img);
    tdet_close(det);
    free(turned);
    free(bus);
}

/* yolov8n read for detection, and bus.jpg's bytes and pixels; 0 without
 * ../shared. */
static int open_yolov8n_bus(tdet *det, uint8_t **bus, size_t *size, vigil_image *img) {
    if (!testing_shared_dir()) return 0;
    vigil_error err;
    CHECK_EQ_INT(tdet_open(det, "yolov8n", NULL, &err), VIGIL_OK);
    *bus = image_bytes("bus", size);
    CHECK_EQ_INT(vigil_image_decode(*bus, *size, NULL, img, NULL, &err), VIGIL_OK);
    return 1;
}

/* Decoded frames through the detect worker (a camera's, a client's): an
 * RGB24 frame with padded rows and a BGR24 one find what the JPEG finds, in
 * one batch with the JPEG itself; a frame shorter than its geometry, an odd
 * NV12 size and an unknown format fail alone, with the reason. */
static void test_raw_frames(void) {
    tdet det_, *det = &det_;
    size_t size = 0;
    uint8_t *bus = NULL;
    vigil_image img;
    if (!open_yolov8n_bus(det, &bus, &size, &img)) SKIP("../shared is absent");
    int stride = img.width * 3 + 13; /* rows not packed */
    size_t frame_size = (size_t)stride * (size_t)img.height;
    uint8_t *rgb = calloc(1, frame_size), *bgr = calloc(1, frame_size);
    for (int y = 0; y < img.height; y++) {
        const uint8_t *src = img.data + (size_t)y * img.stride;
        memcpy(rgb + (size_t)y * stride, src, (size_t)img.width * 3);
        for (int x = 0; x < img.width; x++)
            for (int c = 0; c < 3; c++) bgr[(size_t)y * stride + 3 * x + c] = src[3 * x + 2 - c];
    }
    detect_raw as_rgb = {VIGIL_PIXEL_RGB24, img.width, img.height, stride};
    detect_raw as_bgr = {VIGIL_PIXEL_BGR24, img.width, img.height, stride};
    detect_raw odd = {VIGIL_PIXEL_NV12, 3, 3, 3}, unknown = {(vigil_pixel_format)7, 2, 2, 6};
    detect_request reqs[6] = {
        {.image = rgb, .size = frame_size, .raw = &as_rgb},
        {.image = bus, .size = size},
        {.image = bgr, .size = frame_size, .raw = &as_bgr},
        {.image = rgb, .size = frame_size - 14, .raw = &as_rgb}, /* one byte short of the last row */
        {.image = rgb, .size = frame_size, .raw = &odd},
        {.image = rgb, .size = frame_size, .raw = &unknown},
    };
    detect_worker_detect(det->worker, reqs, 6);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(reqs[k].status, VIGIL_OK);
        CHECK_EQ_INT(reqs[k].result.image_width, 810);
        check_reference("yolov8n", "bus", &reqs[k].result);
    }
    CHECK_EQ_INT(reqs[3].status, VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(reqs[3].error.message, "raw frame needs") != NULL);
    CHECK_EQ_INT(reqs[4].status, VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(reqs[4].error.message, "even size") != NULL);
    CHECK_EQ_INT(reqs[5].status, VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(reqs[5].error.message, "unknown pixel format") != NULL);
    /* the exact size is enough: the last row needs no padding after it */
    detect_request exact = {.image = rgb, .size = frame_size - 13, .raw = &as_rgb};
    detect_worker_detect(det->worker, &exact, 1);
    CHECK_EQ_INT(exact.status, VIGIL_OK);
    free(rgb);
    free(bgr);
    vigil_image_free(&img);
    free(bus);
    tdet_close(det);
}

/* A frame whose bytes lie in pieces (as gRPC's slices hold it) letterboxes
 * to the very bytes of the frame whole, rows crossing pieces and empty
 * pieces included; the padding is written unless the slot's last geometry
 * was this frame's, and then it is the same too. */
static void test_frame_in_pieces(void) {
    tdet det_, *det = &det_;
    size_t size = 0;
    uint8_t *bus = NULL;
    vigil_image img;
    if (!open_yolov8n_bus(det, &bus, &size, &img)) SKIP("../shared is absent");
    vigil_error err;
    size_t frame_size = (size_t)img.stride * (size_t)img.height;
    vigil_piece pieces[512];
    size_t n = 0;
    for (size_t at = 0, k = 0; at < frame_size; k++) { /* 1 byte to ~16 KiB, and now and then nothing */
        size_t len = k % 4 == 0 ? 1 + k % 7 : 4000 + (k * 2731) % 12385;
        if (len > frame_size - at) len = frame_size - at;
        if (k % 9 == 8) pieces[n++] = (vigil_piece){img.data + at, 0};
        pieces[n++] = (vigil_piece){img.data + at, len};
        at += len;
        CHECK(n < 510);
    }
    vigil_tensor input = vigil_detect_spec_input(det->spec, 2);
    size_t slot_bytes = vigil_tensor_bytes(&input) / 2;
    uint8_t *slots = malloc(2 * slot_bytes);
    memset(slots, 0xee, 2 * slot_bytes);
    input.data = slots;
    vigil_detect_item whole, piecewise, small;
    CHECK_EQ_INT(vigil_detect_preprocess_image(det->spec, &img, img.width, img.height, &input, 0, &whole, &err),
                 VIGIL_OK);
    /* slot 1 first holds a landscape frame: pixels where the portrait one has padding */
    vigil_image half = {.width = img.width, .height = img.height / 2, .stride = img.stride, .data = img.data};
    CHECK_EQ_INT(vigil_detect_preprocess_image(det->spec, &half, half.width, half.height, &input, 1, &small, &err),
                 VIGIL_OK);
    CHECK_EQ_INT(vigil_detect_preprocess_pieces(det->spec, pieces, n, img.width, img.height, img.stride, &input, 1,
                                                &small.letterbox, &piecewise, &err),
                 VIGIL_OK);
    CHECK(memcmp(slots, slots + slot_bytes, slot_bytes) == 0);
    CHECK(memcmp(&whole.letterbox, &piecewise.letterbox, sizeof whole.letterbox) == 0);
    CHECK_EQ_INT(piecewise.orig_w, img.width);
    /* the same geometry again: the padding is left, and is right */
    CHECK_EQ_INT(vigil_detect_preprocess_pieces(det->spec, pieces, n, img.width, img.height, img.stride, &input, 1,
                                                &piecewise.letterbox, &piecewise, &err),
                 VIGIL_OK);
    CHECK(memcmp(slots, slots + slot_bytes, slot_bytes) == 0);
    /* pieces one byte short of the last row: refused, naming the row */
    pieces[n - 1].size--;
    CHECK_EQ_INT(vigil_detect_preprocess_pieces(det->spec, pieces, n, img.width, img.height, img.stride, &input, 1,
                                                NULL, &piecewise, &err),
                 VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "cut short") != NULL);
    free(slots);
    vigil_image_free(&img);
    free(bus);
    tdet_close(det);
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
    vigil_detector_options opt = vigil_detector_options_default();
    opt.family = VIGIL_HEAD_YOLOV10;
    tdet det;
    vigil_error err;
    CHECK_EQ_INT(tdet_open(&det, "yolov8n", &opt, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK(det.worker == NULL);
    fprintf(stderr, "  %s\n", err.message);
    tdet_close(&det);
    opt.family = VIGIL_HEAD_AUTO;
    opt.labels_path = "/nonexistent/labels.txt";
    CHECK_EQ_INT(tdet_open(&det, "yolov8n", &opt, &err), VIGIL_ERR_NOT_FOUND);
    tdet_close(&det);
}

int main(void) {
    vigil_error err;
    cpu = backend_find("cpu");
    if (cpu->open(NULL, &device, &err) != VIGIL_OK) {
        fprintf(stderr, "cpu backend: %s\n", err.message);
        return 1;
    }
    RUN(test_yolov8n);
    RUN(test_raw_frames);
    RUN(test_frame_in_pieces);
    RUN(test_rotated_photo_takes_the_whole_image_path);
    RUN(test_yolov5n);
    RUN(test_wrong_family_is_refused);
    cpu->close(device);
    return testing_report();
}
