/*
 * detect_job.c - detection on a worker thread.
 *
 * The detector (one compiled batch-1 plan and its buffers) belongs to the
 * worker; the detections it returns live in it until the next run, so the
 * response body is written here, into the request's arena: the JSON object
 * that `vigil detect --json` prints, or with render the image with the boxes
 * drawn, as JPEG.
 */
#include "serve/detect_job.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "serve/repository.h"

struct detect_worker {
    vigil_detector *detector;
    int64_t max_image_pixels;
};

vigil_status detect_worker_create(vigil_model *model, const char *labels_path, int64_t max_image_pixels,
                                  int jpeg_reduced_scale, detect_worker **out, vigil_error *err) {
    detect_worker *w = vigil_calloc(1, sizeof *w);
    if (!w) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory");
    vigil_detector_options opts = vigil_detector_options_default();
    opts.labels_path = labels_path;
    opts.decode.max_pixels = max_image_pixels;
    opts.jpeg_reduced_scale = jpeg_reduced_scale; /* the batched path decodes through the detector too */
    vigil_status st = vigil_detector_create(model, &opts, &w->detector, err);
    if (st) {
        vigil_free(w);
        return st;
    }
    w->max_image_pixels = max_image_pixels;
    *out = w;
    return VIGIL_OK;
}

void detect_worker_destroy(detect_worker *w) {
    if (!w) return;
    vigil_detector_destroy(w->detector);
    vigil_free(w);
}

/* Rounds half away from zero to a multiple of unit, as `vigil detect --json` does. */
static double round_to(double v, double unit) { return (double)(long long)(v / unit + (v >= 0 ? 0.5 : -0.5)) * unit; }

/* The `vigil detect --json` object (same keys, order and rounding), plus the model. */
static json_t *detections_json(const char *model_name, const char *image_name, const vigil_detect_result *r) {
    json_t *list = json_array();
    for (size_t i = 0; i < r->count; i++) {
        const vigil_detection *d = &r->detections[i];
        json_t *box = json_pack("[f,f,f,f]", round_to(d->x1, 0.01), round_to(d->y1, 0.01), round_to(d->x2, 0.01),
                                round_to(d->y2, 0.01));
        json_t *obj = json_pack("{s:i,s:s?,s:f,s:o}", "class_id", d->class_id, "class_name", d->class_name, "score",
                                round_to(d->score, 0.00001), "box", box);
        if (d->mask.counts) {
            json_t *counts = json_array();
            for (size_t k = 0; k < d->mask.n_counts; k++) json_array_append_new(counts, json_integer(d->mask.counts[k]));
            json_object_set_new(obj, "mask_rle", counts);
        }
        json_array_append_new(list, obj);
    }
    const vigil_detect_timing *t = &r->timing;
    return json_pack("{s:s,s:i,s:i,s:o,s:{s:f,s:f,s:f,s:f,s:f},s:s}", "image", image_name, "width", r->image_width,
                     "height", r->image_height, "detections", list, "timing_ms", "decode", t->decode_ms, "letterbox",
                     t->letterbox_ms, "inference", t->inference_ms, "postprocess", t->postprocess_ms, "total",
                     t->total_ms, "model", model_name);
}

/* Resolves job->classes_spec ("0,bus,person") into ids in the job's arena. */
static vigil_status resolve_classes(detect_worker *w, sched_job *job, vigil_error *err) {
    const char *spec = job->classes_spec;
    if (!spec) return VIGIL_OK;
    size_t n = 1;
    for (const char *c = spec; *c; c++) n += *c == ',';
    int *ids = arena_alloc(job->arena, n * sizeof *ids, 16);
    char *copy = arena_strdup(job->arena, spec);
    if (!ids || !copy) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "request memory limit reached");
    const vigil_labels *labels = vigil_detector_labels(w->detector);
    size_t count = labels ? vigil_labels_count(labels) : 0; /* 0: the model names no classes */
    size_t k = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        errno = 0;
        long id = strtol(tok, &end, 10);
        int numeric = end != tok && !*end;
        if (!numeric) id = labels ? vigil_labels_find(labels, tok) : -1;
        if (!numeric && id < 0) {
            char quoted[64 * 4 + 8];
            repository_quote(tok, strlen(tok), quoted, sizeof quoted);
            if (count)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                       "classes: unknown class '%s': give class ids 0-%zu or the model's class "
                                       "names (GET /v2/models/{m} lists the model, its labels name them)",
                                       quoted, count - 1);
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "classes: unknown class '%s': the model names no classes, give class ids "
                                   "(integers from 0)",
                                   quoted);
        }
        if (count && (errno || id < 0 || (size_t)id >= count))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "classes: class id %.24s is out of range: the model has %zu classes (0-%zu)", tok,
                                   count, count - 1);
        if (errno || id < 0 || id > 1000000)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "classes: class id %.24s is out of range: class ids are integers from 0 to 1000000",
                                   tok);
        ids[k++] = (int)id;
    }
    job->detect.classes = ids;
    job->detect.n_classes = k;
    return VIGIL_OK;
}

static vigil_status body_from(sched_job *job, const void *data, size_t len, vigil_error *err) {
    job->body = arena_alloc(job->arena, len + 1, 16);
    if (!job->body) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "request memory limit reached");
    memcpy(job->body, data, len);
    job->body[len] = '\0';
    job->body_len = len;
    return VIGIL_OK;
}

/* Decodes the image again at full size, draws the boxes, encodes JPEG. */
static vigil_status render_body(detect_worker *w, sched_job *job, const vigil_detect_result *r, vigil_error *err) {
    vigil_decode_options dopts = {.max_pixels = w->max_image_pixels};
    vigil_image image = {0};
    vigil_status st = vigil_image_decode(job->image, job->image_size, &dopts, &image, NULL, err);
    if (st) return st;
    vigil_render_detections(&image, r->detections, r->count);
    uint8_t *jpeg = NULL;
    size_t jpeg_size = 0;
    st = vigil_image_encode(&image, VIGIL_IMAGE_JPEG, 90, &jpeg, &jpeg_size, err);
    vigil_image_free(&image);
    if (!st) st = body_from(job, jpeg, jpeg_size, err);
    vigil_free(jpeg);
    return st;
}

/* The JSON body for a finished detection. */
static vigil_status json_body(const char *model_name, sched_job *job, const vigil_detect_result *result,
                              vigil_error *err) {
    json_t *obj = detections_json(model_name, job->image_name ? job->image_name : "upload", result);
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(obj);
    if (!text) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detect: cannot build the JSON response");
    vigil_status st = body_from(job, text, strlen(text), err);
    free(text); /* jansson allocates with malloc */
    return st;
}

vigil_status detect_worker_run(detect_worker *w, const char *model_name, sched_job *job, vigil_error *err) {
    vigil_detect_result result;
    memset(&result, 0, sizeof result);
    vigil_status st = resolve_classes(w, job, err);
    if (st) return st;
    st = vigil_detector_run(w->detector, job->image, job->image_size, &job->detect, &result, err);
    if (st) return st;
    if (job->render) return render_body(w, job, &result, err);
    return json_body(model_name, job, &result, err);
}

void detect_worker_run_batch(detect_worker *w, const char *model_name, sched_job **jobs, size_t n) {
    vigil_image images[VIGIL_DETECT_BATCH_MAX];
    int orig_w[VIGIL_DETECT_BATCH_MAX], orig_h[VIGIL_DETECT_BATCH_MAX];
    const vigil_detect_options *opts[VIGIL_DETECT_BATCH_MAX];
    vigil_detect_result results[VIGIL_DETECT_BATCH_MAX];
    double decode_ms[VIGIL_DETECT_BATCH_MAX];
    sched_job *ok[VIGIL_DETECT_BATCH_MAX];
    size_t m = 0;
    if (n > VIGIL_DETECT_BATCH_MAX) n = VIGIL_DETECT_BATCH_MAX; /* the scheduler never gathers more */
    for (size_t j = 0; j < n; j++) { /* a job whose image or classes are bad fails alone */
        sched_job *job = jobs[j];
        int64_t t0 = sched_now_ns();
        vigil_decode_info info;
        job->status = resolve_classes(w, job, &job->error);
        if (!job->status)
            job->status = vigil_detector_decode(w->detector, job->image, job->image_size, &images[m], &info, &job->error);
        if (job->status) continue;
        orig_w[m] = info.orig_width;
        orig_h[m] = info.orig_height;
        opts[m] = &job->detect;
        decode_ms[m] = (double)(sched_now_ns() - t0) * 1e-6;
        ok[m++] = job;
    }
    if (m == 0) return;
    vigil_error err = {0};
    vigil_status st = vigil_detector_run_batch(w->detector, m, images, orig_w, orig_h, opts, results, &err);
    for (size_t k = 0; k < m; k++) {
        sched_job *job = ok[k];
        if (st) {
            job->status = st;
            job->error = err;
        } else {
            results[k].timing.decode_ms = decode_ms[k];
            results[k].timing.total_ms += decode_ms[k];
            job->status = json_body(model_name, job, &results[k], &job->error);
        }
        vigil_image_free(&images[k]);
    }
}
