/*
 * grpc_detect.c - vigil.v1.Detection {Detect, StreamDetect} and the seed's
 * names for the same calls, vigil.v1.HailoInference {Inference,
 * StreamInference}.
 *
 * A request becomes the same detection job (job_detect.h) as POST /api/v1/detect
 * (decode, letterbox, model, NMS on the scheduler's worker); the job's JSON
 * body (the `vigil detect --json` object) is turned into a DetectResponse on
 * a completion thread.  On a stream each frame is answered in order with
 * its frame_id; a frame that fails gets a response with `error` and
 * `error_code` set and the stream goes on.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "detection.pb-c.h"
#include "grpc/grpc_codec.h"
#include "grpc/grpc_internal.h"
#include "serve/job_detect.h"

_Static_assert(VIGIL__V1__RAW_FRAME__FORMAT__RGB24 == (int)VIGIL_PIXEL_RGB24 &&
                   VIGIL__V1__RAW_FRAME__FORMAT__BGR24 == (int)VIGIL_PIXEL_BGR24 &&
                   VIGIL__V1__RAW_FRAME__FORMAT__NV12 == (int)VIGIL_PIXEL_NV12,
               "RawFrame.Format numbers are vigil_pixel_format's");

typedef struct detect_ctx {
    uint64_t frame_id;
    int streaming;
    int cache_use; /* the model caches answers: store this one under cache_key */
    cache_key cache_key;
} detect_ctx;

/* ------------------------------------------------------------ request */

/* req's image is image[0..n_image), which lies in the message being
 * handled (grpc_unpack_aliased): the job reads it there too
 * (gwork_hold_message). */
static vigil_status detect_parse(gcall *c, const Vigil__V1__DetectRequest *req, const vigil_piece *image,
                                 size_t n_image, gwork *w, vigil_error *err) {
    char name[MODEL_NAME_MAX];
    const char *model = req->model;
    if (!*model) {
        vigil_status st = repository_default_detector(request_repository(gcall_server(c)), name, sizeof name, err);
        if (st) return st;
        model = name;
    }
    vigil_status st = gwork_acquire(w, model, 0, err);
    if (st) return st;
    if (w->served->task != MODEL_TASK_DETECT)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model '%s' is not a detection model (task raw)", model);
    if (n_image == 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               req->raw ? "no frame: `raw` is set but `image` is empty"
                                        : "no image: send JPEG or PNG bytes in `image`");
    sched_job *job = w->job;
    job_detect *d = job_detect_prepare(job, w->arena);
    if (!d) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    gwork_hold_message(w); /* read where it arrived: no copy of the frame */
    for (size_t i = 0; i < n_image; i++) d->image_size += image[i].size; /* request_detect_raw checks it */
    if (*req->image_name && !(d->image_name = arena_strdup(w->arena, req->image_name)))
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (req->raw) { /* the wire's enum numbers are vigil_pixel_format's (checked below) */
        static const request_raw_names names = {"raw.width", "raw.height", "raw.stride", "raw.format"};
        const Vigil__V1__RawFrame *r = req->raw;
        request_raw_frame f = {.format = (vigil_pixel_format)r->format, .width = r->width, .height = r->height,
                               .stride = r->stride};
        st = request_detect_raw(gcall_server(c), &f, &names, job, err);
        if (st) return st;
    }
    st = grpc_detect_options(w->served, req, w->arena, w->job, err);
    if (!st) st = request_detect_bytes(gcall_server(c), w->served, job, w->arena, image, n_image, err);
    return st ? st : request_detect_ready(gcall_server(c), w->served, job, w->arena, err);
}

/* ------------------------------------------------------------ response */

/* Sends r (unary) or writes it on the stream. */
static void detect_answer(gcall *c, uint64_t seq, int streaming, Vigil__V1__DetectResponse *r) {
    if (streaming) gstream_answer(c, seq, &r->base);
    else gcall_reply(c, &r->base);
}

static void detect_fail(gcall *c, uint64_t seq, int streaming, uint64_t frame_id, vigil_status st, const char *message) {
    if (!streaming) {
        gcall_fail(c, st, message);
        return;
    }
    Vigil__V1__DetectResponse r = VIGIL__V1__DETECT_RESPONSE__INIT;
    r.frame_id = frame_id;
    r.error = (char *)message;
    r.error_code = (int32_t)grpc_status_for(st);
    gstream_answer(c, seq, &r.base);
}

/* Fills r from the job's JSON body; the response's pieces go in a. */
static vigil_status response_from_json(const char *text, size_t len, arena *a, Vigil__V1__DetectResponse *r,
                                       vigil_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    const json_t *list = json_object_get(root, "detections");
    if (!json_is_array(list)) {
        json_decref(root);
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "detect: unexpected job body");
    }
    size_t n = json_array_size(list);
    Vigil__V1__DetectedObject *objs = arena_calloc(a, n + 1, sizeof *objs);
    Vigil__V1__DetectedObject **ptrs = arena_calloc(a, n + 1, sizeof *ptrs);
    Vigil__V1__Box *boxes = arena_calloc(a, n + 1, sizeof *boxes);
    Vigil__V1__Timing *timing = arena_alloc(a, sizeof *timing, 16);
    char *image = arena_strdup(a, json_string_value(json_object_get(root, "image")) ? json_string_value(json_object_get(root, "image")) : "");
    char *model = arena_strdup(a, json_string_value(json_object_get(root, "model")) ? json_string_value(json_object_get(root, "model")) : "");
    vigil_status st = objs && ptrs && boxes && timing && image && model ? VIGIL_OK
                                                                         : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        const json_t *d = json_array_get(list, i), *box = json_object_get(d, "box"), *rle = json_object_get(d, "mask_rle");
        Vigil__V1__DetectedObject *o = &objs[i];
        *o = (Vigil__V1__DetectedObject)VIGIL__V1__DETECTED_OBJECT__INIT;
        boxes[i] = (Vigil__V1__Box)VIGIL__V1__BOX__INIT;
        boxes[i].x1 = (float)json_number_value(json_array_get(box, 0));
        boxes[i].y1 = (float)json_number_value(json_array_get(box, 1));
        boxes[i].x2 = (float)json_number_value(json_array_get(box, 2));
        boxes[i].y2 = (float)json_number_value(json_array_get(box, 3));
        o->box = &boxes[i];
        o->class_id = (int32_t)json_integer_value(json_object_get(d, "class_id"));
        o->score = (float)json_number_value(json_object_get(d, "score"));
        const char *cname = json_string_value(json_object_get(d, "class_name"));
        if (cname && !(o->class_name = arena_strdup(a, cname))) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        if (json_is_array(rle)) {
            o->n_mask_rle = json_array_size(rle);
            o->mask_rle = arena_alloc(a, (o->n_mask_rle + 1) * sizeof *o->mask_rle, 16);
            if (!o->mask_rle) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
            for (size_t k = 0; !st && k < o->n_mask_rle; k++) o->mask_rle[k] = json_integer_value(json_array_get(rle, k));
        }
        ptrs[i] = o;
    }
    if (!st) {
        const json_t *t = json_object_get(root, "timing_ms");
        *timing = (Vigil__V1__Timing)VIGIL__V1__TIMING__INIT;
        timing->decode_ms = json_number_value(json_object_get(t, "decode"));
        timing->letterbox_ms = json_number_value(json_object_get(t, "letterbox"));
        timing->inference_ms = json_number_value(json_object_get(t, "inference"));
        timing->postprocess_ms = json_number_value(json_object_get(t, "postprocess"));
        timing->total_ms = json_number_value(json_object_get(t, "total"));
        r->timing = timing;
        r->n_detections = n;
        r->detections = ptrs;
        r->image = image;
        r->model = model;
        r->width = (int32_t)json_integer_value(json_object_get(root, "width"));
        r->height = (int32_t)json_integer_value(json_object_get(root, "height"));
    }
    json_decref(root);
    return st;
}

/* The response cache, with the REST detection key (routes_api.c): image
 * bytes, thresholds, max detections, render, classes.  1 with the job's body set
 * on a hit. */
static int detect_cache_hit(gwork *w, detect_ctx *ctx) {
    sched_job *job = w->job;
    void *body;
    size_t size;
    if (!request_cache_lookup(gcall_server(w->call), w->served, "detect", job, w->arena, &ctx->cache_use,
                              &ctx->cache_key, &body, &size))
        return 0;
    job_detect_of(job)->body = body;
    job_detect_of(job)->body_len = size;
    return 1;
}

static void detect_finish(gwork *w) {
    const detect_ctx *ctx = w->ctx;
    const sched_job *job = w->job;
    if (job->status) {
        detect_fail(w->call, w->seq, ctx->streaming, ctx->frame_id, request_job_status(job), job->error.message);
        return;
    }
    const job_detect *d = job_detect_of(job);
    if (ctx->cache_use) request_cache_store(gcall_server(w->call), &ctx->cache_key, d->body, d->body_len);
    Vigil__V1__DetectResponse r = VIGIL__V1__DETECT_RESPONSE__INIT;
    r.frame_id = ctx->frame_id;
    vigil_error err = {0};
    if (d->render) {
        r.rendered.data = (uint8_t *)d->body;
        r.rendered.len = d->body_len;
        r.model = w->served->name;
    } else if (response_from_json(d->body, d->body_len, w->arena, &r, &err)) {
        detect_fail(w->call, w->seq, ctx->streaming, ctx->frame_id, err.status, err.message);
        return;
    }
    detect_answer(w->call, w->seq, ctx->streaming, &r);
    if (request_detect_observed(gcall_server(w->call), w->served)) { /* escalation (docs/EDGE.md) */
        char source[REQUEST_SOURCE_MAX], traceparent[REQUEST_TRACEPARENT_MAX];
        gcall_metadata(w->call, "x-source-id", source, sizeof source);
        /* the event's parent is this call's span (the cloud joins its trace), else the client's */
        if (!gcall_traceparent(w->call, traceparent)) gcall_metadata(w->call, "traceparent", traceparent, sizeof traceparent);
        request_detect_observe(gcall_server(w->call), w->served, job, source, traceparent);
    }
}

static void detect_start(gcall *c, uint64_t seq, const vigil_piece *pieces, size_t n, int streaming) {
    vigil_error err = {0};
    vigil_piece on_stack[64], *image = n <= 64 ? on_stack : vigil_malloc(n * sizeof *image);
    size_t n_image = 0;
    Vigil__V1__DetectRequest *req =
        image ? (Vigil__V1__DetectRequest *)grpc_unpack_aliased(&vigil__v1__detect_request__descriptor, pieces, n,
                                                                 1 /* image */, image, &n_image, &err)
              : NULL;
    gwork *w = req ? gwork_create(c, seq) : NULL;
    detect_ctx *ctx = w ? arena_calloc(w->arena, 1, sizeof *ctx) : NULL;
    uint64_t frame_id = req ? req->frame_id : 0;
    if (!image) vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    else if (!req) { /* err says why */
    } else if (!ctx) vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    else if (detect_parse(c, req, image, n_image, w, &err) && w->served)
        metrics_inference(request_metrics(gcall_server(c)), w->served->name, METRICS_ERROR);
    if (req) vigil__v1__detect_request__free_unpacked(req, NULL);
    if (image != on_stack) vigil_free(image);
    if (err.status) {
        detect_fail(c, seq, streaming, frame_id, err.status, err.message);
        gwork_destroy(w);
        return;
    }
    ctx->frame_id = frame_id;
    ctx->streaming = streaming;
    w->ctx = ctx;
    if (detect_cache_hit(w, ctx)) { /* answered without the scheduler */
        ctx->cache_use = 0;
        detect_finish(w);
        gwork_destroy(w);
        return;
    }
    job_detect *d = job_detect_of(w->job);
    if (d->ready && !d->image) { /* the frame is in its input: its slices go back to gRPC */
        d->pieces = NULL;
        d->n_pieces = 0;
        gwork_drop_message(w);
    }
    w->finish_inline = 1; /* boxes, or a JPEG the job encoded already: packed in a moment */
    gwork_submit(w, detect_finish);
}

static void detect(gcall *c, uint64_t seq, const vigil_piece *pieces, size_t n) { detect_start(c, seq, pieces, n, 0); }
static void stream_detect(gcall *c, uint64_t seq, const vigil_piece *pieces, size_t n) {
    detect_start(c, seq, pieces, n, 1);
}

const gmethod grpc_detect_methods[] = {
    {"/vigil.v1.Detection/Detect", 0, NULL, detect},
    {"/vigil.v1.Detection/StreamDetect", 1, NULL, stream_detect},
    {"/vigil.v1.HailoInference/Inference", 0, NULL, detect},
    {"/vigil.v1.HailoInference/StreamInference", 1, NULL, stream_detect},
    {NULL, 0, NULL, NULL},
};
