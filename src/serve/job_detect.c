/*
 * job_detect.c - detection through the backend, on a worker thread: the
 * detect worker, and the scheduler's detection job kind built on it.
 *
 * The worker owns what a batch needs between the backend's runs: the spec
 * (what the model's tensors say), the batch input (room for the backend's
 * run batch: a larger batch runs as runs of that many, as the backend would
 * run it anyway; each slot remembers the geometry of the padding it holds,
 * so frames of one camera do not rewrite it), and one detections store per
 * image of the batch, since every image is answered after the last run.  The
 * model runs through backend_ops.run alone, and JPEG bands are spread over
 * the pool the backend lends (backend_ops.pool), so nothing here knows
 * which backend or engine is behind the model.
 *
 * For the server, the job kind (job_detect_kind) resolves each job's class
 * list (ids or names, as the request layer handed them over) against the
 * model's labels, runs the batch through the worker and writes the response
 * body into the request's arena: the JSON object that `vigil detect --json`
 * prints, or with render the image with the boxes drawn, as JPEG.  The
 * scheduler sees none of this: it holds the worker as the kind's opaque
 * per-thread state.
 */
#include "serve/job_detect.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "serve/repository.h"

struct detect_worker {
    const backend_ops *ops;
    backend_model *model; /* borrowed */
    size_t n_outputs;
    vigil_detect_spec *spec;
    int64_t max_image_pixels;
    vigil_parallel pool; /* the backend's, or none */
    int64_t run_batch;   /* the backend's (backend_io.run_batch): 0 = any */
    void *input;         /* slots of the batch input (the model input's dtype: float32, float16 or uint8) */
    size_t slots;
    vigil_letterbox_info padded[VIGIL_DETECT_BATCH_MAX]; /* geometry of the padding slot k holds ... */
    int slot_padded[VIGIL_DETECT_BATCH_MAX];             /* ... when 1 */
    vigil_detections *stores[VIGIL_DETECT_BATCH_MAX];    /* created as slots are first used */
};

void detect_worker_destroy(detect_worker *w) {
    if (!w) return;
    for (size_t i = 0; i < VIGIL_DETECT_BATCH_MAX; i++) vigil_detections_destroy(w->stores[i]);
    vigil_free(w->input);
    vigil_detect_spec_destroy(w->spec);
    vigil_free(w);
}

vigil_status detect_worker_create(const backend_ops *ops, backend_model *model, const backend_io *io,
                                  const vigil_detector_options *options, detect_worker **out, vigil_error *err) {
    *out = NULL;
    if (io->n_inputs != 1 || io->n_outputs == 0)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                               "detector: a detection model has one image input and outputs (this one has %zu "
                               "inputs, %zu outputs)",
                               io->n_inputs, io->n_outputs);
    detect_worker *w = vigil_calloc(1, sizeof *w);
    if (!w) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory");
    w->ops = ops;
    w->model = model;
    w->n_outputs = io->n_outputs;
    w->run_batch = io->run_batch;
    const char *(*meta)(const backend_model *, const char *) = ops->metadata;
    vigil_status st = vigil_detect_spec_create(
        io->inputs[0], io->outputs, io->n_outputs, meta ? meta(model, "names") : NULL,
        meta ? meta(model, "task") : NULL, meta ? meta(model, "imgsz") : NULL, options, &w->spec, err);
    if (st) {
        detect_worker_destroy(w);
        return st;
    }
    w->max_image_pixels = options ? options->decode.max_pixels : 0;
    if (ops->pool) ops->pool(model, &w->pool);
    *out = w;
    return VIGIL_OK;
}

const vigil_labels *detect_worker_labels(const detect_worker *w) { return vigil_detect_spec_labels(w->spec); }
vigil_head_family detect_worker_family(const detect_worker *w) { return vigil_detect_spec_family(w->spec); }

/* A store for each of the first n results, and room for `slots` images in
 * the batch input.  The input is sized for the backend's run batch, not the
 * largest batch gathered: at 640x640 a slot is 4.9 MB, and a batch of 8
 * held 39 MB resident for as long as the worker lived. */
static vigil_status worker_reserve(detect_worker *w, size_t n, size_t slots, vigil_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!w->stores[i]) {
            vigil_status st = vigil_detections_create(&w->stores[i], err);
            if (st) return st;
        }
    if (slots <= w->slots) return VIGIL_OK;
    vigil_tensor t = vigil_detect_spec_input(w->spec, slots);
    size_t bytes = vigil_tensor_bytes(&t);
    void *grown = vigil_aligned_alloc(64, bytes);
    if (!grown)
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detector: out of memory for a batch of %zu", slots);
    /* touched now, so the first image does not pay the page faults of megabytes of fresh memory */
    memset(grown, 0, bytes);
    vigil_free(w->input);
    w->input = grown;
    w->slots = slots;
    memset(w->slot_padded, 0, sizeof w->slot_padded);
    return VIGIL_OK;
}

/* A raw frame into slot: an RGB24 one letterboxed where it lies, the
 * others converted to RGB first (their "decode" time). */
static vigil_status preprocess_raw(const detect_worker *w, detect_request *r, const vigil_tensor *input, size_t slot,
                                   const vigil_letterbox_info *padded, vigil_detect_item *item) {
    const detect_raw *raw = r->raw;
    if (!r->image) /* RGB24 where it arrived (request_detect_bytes): checked there */
        return vigil_detect_preprocess_pieces(w->spec, r->pieces, r->n_pieces, raw->width, raw->height, raw->stride,
                                              input, slot, padded, item, &r->error);
    double t0 = clock_now_ms();
    /* RGB24: a view of the caller's bytes, read only and never freed, once
     * their geometry is checked; the others: converted (which checks it) */
    vigil_image image = {.width = raw->width, .height = raw->height, .stride = raw->stride, .data = (uint8_t *)r->image};
    int converted = raw->format != VIGIL_PIXEL_RGB24;
    vigil_status st = converted ? vigil_image_from_raw(r->image, r->size, raw->format, raw->width, raw->height,
                                                       raw->stride, w->max_image_pixels, &image, &r->error)
                                : vigil_image_raw_check(r->image, r->size, raw->format, raw->width, raw->height,
                                                        raw->stride, w->max_image_pixels, &r->error);
    if (st) return st;
    double convert_ms = clock_now_ms() - t0;
    st = converted ? vigil_detect_preprocess_image(w->spec, &image, raw->width, raw->height, input, slot, item, &r->error)
                   : vigil_detect_preprocess_pieces(w->spec, &(vigil_piece){r->image, r->size}, 1, raw->width,
                                                    raw->height, raw->stride, input, slot, padded, item, &r->error);
    item->decode_ms = convert_ms;
    if (converted) vigil_image_free(&image);
    return st;
}

/* Runs input, items[0..m) of it for in_slot[0..m), and post-processes
 * each into stores[first..]. */
static void worker_infer(detect_worker *w, vigil_tensor *input, detect_request **in_slot, const vigil_detect_item *items,
                         size_t m, size_t first) {
    vigil_error err = {0};
    input->dims[0] = (int64_t)m;
    const vigil_tensor *outs[BACKEND_MAX_IO] = {0};
    double t0 = clock_now_ms();
    vigil_status st = w->ops->run(w->model, (int64_t)m, input, 1, outs, &err);
    double inference_ms = clock_now_ms() - t0;
    for (size_t k = 0; k < m; k++) {
        detect_request *r = in_slot[k];
        r->post_start_ns = sched_now_ns();
        r->status = st ? st
                       : vigil_detect_postprocess(w->spec, outs, w->n_outputs, m, k, &items[k], r->options,
                                                  w->stores[first + k], &r->result, &r->error);
        r->post_end_ns = sched_now_ns();
        if (st) r->error = err;
        r->result.timing.inference_ms = inference_ms;
        r->result.timing.total_ms += inference_ms;
    }
}

/* Pre-processes reqs[0..n) into the batch input, runs what decoded, and
 * post-processes each into stores[first..]; returns how many decoded. */
static size_t worker_run(detect_worker *w, detect_request *reqs, size_t n, size_t first) {
    vigil_tensor input = vigil_detect_spec_input(w->spec, w->slots);
    input.data = w->input;
    vigil_detect_item items[VIGIL_DETECT_BATCH_MAX];
    detect_request *in_slot[VIGIL_DETECT_BATCH_MAX];
    size_t m = 0;
    for (size_t j = 0; j < n; j++) { /* a bad image fails alone; the next one takes its slot */
        detect_request *r = &reqs[j];
        r->status = r->raw ? preprocess_raw(w, r, &input, m, w->slot_padded[m] ? &w->padded[m] : NULL, &items[m])
                           : vigil_detect_preprocess(w->spec, r->image, r->size, &input, m, &w->pool,
                                                     w->slot_padded[m] ? &w->padded[m] : NULL, &items[m], &r->error);
        w->slot_padded[m] = !r->status;
        if (r->status) continue;
        w->padded[m] = items[m].letterbox;
        in_slot[m++] = r;
    }
    if (m) worker_infer(w, &input, in_slot, items, m, first);
    return m;
}

/* A request whose input is ready: a run of its own, from where it lies,
 * post-processed into stores[first]. */
static void worker_run_ready(detect_worker *w, detect_request *r, size_t first) {
    vigil_tensor input = vigil_detect_spec_input(w->spec, 1);
    input.data = (void *)r->ready; /* backends read their inputs only */
    worker_infer(w, &input, &r, r->ready_item, 1, first);
}

void detect_worker_detect(detect_worker *w, detect_request *reqs, size_t n) {
    vigil_error err = {0};
    /* runs of the backend's run batch: what it would do with the whole batch itself */
    size_t step = w->run_batch > 0 && (size_t)w->run_batch < n ? (size_t)w->run_batch : n;
    vigil_status st = n >= 1 && n <= VIGIL_DETECT_BATCH_MAX
                          ? worker_reserve(w, n, step, &err)
                          : vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "detector: a batch is 1 to %d images",
                                            VIGIL_DETECT_BATCH_MAX);
    for (size_t j = 0; j < n && j < VIGIL_DETECT_BATCH_MAX; j++) {
        memset(&reqs[j].result, 0, sizeof reqs[j].result);
        reqs[j].status = st;
        if (st) reqs[j].error = err;
    }
    if (st) return;
    size_t done = 0; /* results so far: each keeps its store until the next batch */
    for (size_t j = 0, k; j < n; j = k) {
        if (reqs[j].ready) {
            worker_run_ready(w, &reqs[j], done++);
            k = j + 1;
            continue;
        }
        for (k = j; k < n && k - j < step && !reqs[k].ready; k++) {
        }
        done += worker_run(w, reqs + j, k - j, done);
    }
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

/* ------------------------------------------------------------ the job kind */

job_detect *job_detect_prepare(sched_job *job, arena *a) {
    if (job->kind == &job_detect_kind && job->data) return job->data;
    job_detect *d = arena_calloc(a, 1, sizeof *d);
    if (!d) return NULL;
    d->options = vigil_detect_options_default();
    job->kind = &job_detect_kind;
    job->data = d;
    job->batch = 1;
    return d;
}

job_detect *job_detect_of(const sched_job *job) {
    if (job->kind != &job_detect_kind || !job->data) {
        fprintf(stderr, "%s:%d: job_detect_of: not a detection job\n", __FILE__, __LINE__);
        abort();
    }
    return job->data;
}

/* Resolves the job's class list (ids or names) into ids in the job's arena. */
static vigil_status resolve_classes(detect_worker *w, sched_job *job, vigil_error *err) {
    job_detect *d = job->data;
    if (d->n_classes == 0) return VIGIL_OK;
    int *ids = arena_alloc(job->arena, d->n_classes * sizeof *ids, 16);
    if (!ids) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "request memory limit reached");
    const vigil_labels *labels = detect_worker_labels(w);
    size_t count = labels ? vigil_labels_count(labels) : 0; /* 0: the model names no classes */
    for (size_t k = 0; k < d->n_classes; k++) {
        const char *tok = d->classes[k];
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
        ids[k] = (int)id;
    }
    d->options.classes = ids;
    d->options.n_classes = d->n_classes;
    return VIGIL_OK;
}

static vigil_status body_from(sched_job *job, const void *data, size_t len, vigil_error *err) {
    job_detect *d = job->data;
    d->body = arena_alloc(job->arena, len + 1, 16);
    if (!d->body) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "request memory limit reached");
    memcpy(d->body, data, len);
    d->body[len] = '\0';
    d->body_len = len;
    return VIGIL_OK;
}

/* Decodes the image again at full size (a raw frame: converts it), draws
 * the boxes, encodes JPEG. */
static vigil_status render_body(detect_worker *w, sched_job *job, const vigil_detect_result *r, vigil_error *err) {
    const job_detect *d = job->data;
    vigil_decode_options dopts = {.max_pixels = w->max_image_pixels};
    vigil_image image = {0};
    vigil_status st = d->raw.width ? vigil_image_from_raw(d->image, d->image_size, d->raw.format, d->raw.width,
                                                          d->raw.height, d->raw.stride, w->max_image_pixels, &image, err)
                                   : vigil_image_decode(d->image, d->image_size, &dopts, &image, NULL, err);
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
    const job_detect *d = job->data;
    json_t *obj = detections_json(model_name, d->image_name ? d->image_name : "upload", result);
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(obj);
    if (!text) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "detect: cannot build the JSON response");
    vigil_status st = body_from(job, text, strlen(text), err);
    free(text); /* jansson allocates with malloc */
    return st;
}

/* A rendered job runs alone (it needs the full-size decode of its own). */
static int detect_batches(const sched_job *job) { return !((const job_detect *)job->data)->render; }

static int detect_compatible(const sched_job *a, const sched_job *b) {
    (void)a, (void)b;
    return 1;
}

/* Runs jobs[0..n) as one batch of the model (a single job may render). */
static double detect_run(const sched_instance *in, void **state, sched_job **jobs, size_t n, int64_t items) {
    (void)items;
    vigil_error err = {0};
    vigil_status st = VIGIL_OK;
    if (!*state) { /* through the backend's run, whichever backend it is */
        vigil_detector_options opts = vigil_detector_options_default();
        opts.labels_path = in->labels_path;
        opts.decode.max_pixels = in->max_image_pixels;
        opts.jpeg_reduced_scale = in->config->jpeg_reduced_scale;
        detect_worker *w = NULL;
        st = detect_worker_create(in->ops, in->model, in->io, &opts, &w, &err);
        *state = w;
    }
    int64_t t0 = sched_now_ns();
    detect_worker *w = *state;
    detect_request reqs[VIGIL_DETECT_BATCH_MAX];
    sched_job *ok[VIGIL_DETECT_BATCH_MAX];
    size_t m = 0;
    if (n > VIGIL_DETECT_BATCH_MAX) n = VIGIL_DETECT_BATCH_MAX; /* the scheduler never gathers more */
    for (size_t j = 0; j < n; j++) { /* a job whose classes are bad fails alone */
        sched_job *job = jobs[j];
        job_detect *d = job->data;
        if (st) {
            job->status = st, job->error = err;
            continue;
        }
        job->status = resolve_classes(w, job, &job->error);
        if (job->status) continue;
        reqs[m] = (detect_request){
            .image = d->image,
            .size = d->image_size,
            .pieces = d->pieces,
            .n_pieces = d->n_pieces,
            .raw = d->raw.width ? &d->raw : NULL,
            .ready = d->ready,
            .ready_item = &d->ready_item,
            .options = &d->options};
        ok[m++] = job;
    }
    if (m) detect_worker_detect(w, reqs, m);
    for (size_t k = 0; k < m; k++) {
        sched_job *job = ok[k];
        job->status = reqs[k].status;
        job->post_start_ns = reqs[k].post_start_ns;
        job->post_end_ns = reqs[k].post_end_ns;
        if (job->status) job->error = reqs[k].error;
        else if (((job_detect *)job->data)->render) job->status = render_body(w, job, &reqs[k].result, &job->error);
        else job->status = json_body(in->model_name, job, &reqs[k].result, &job->error);
    }
    return (double)(sched_now_ns() - t0) * 1e-9;
}

static void detect_state_free(void *state) { detect_worker_destroy(state); }

/* The image bytes (and a raw frame's geometry), thresholds, max
 * detections, render flag and class list. */
static void detect_cache_key(const sched_job *job, cache_hasher *h) {
    const job_detect *d = job->data;
    const vigil_detect_options *o = &d->options;
    cache_hasher_add(h, d->image, d->image_size);
    cache_hasher_add(h, &d->raw, sizeof d->raw);
    cache_hasher_add(h, &o->conf_threshold, sizeof o->conf_threshold);
    cache_hasher_add(h, &o->iou_threshold, sizeof o->iou_threshold);
    cache_hasher_add(h, &o->max_detections, sizeof o->max_detections);
    cache_hasher_add(h, &d->render, sizeof d->render);
    cache_hasher_add(h, &d->n_classes, sizeof d->n_classes);
    for (size_t k = 0; k < d->n_classes; k++) cache_hasher_add_str(h, d->classes[k]);
}

const sched_job_kind job_detect_kind = {
    .name = "detect",
    .max_jobs = VIGIL_DETECT_BATCH_MAX,
    .batches = detect_batches,
    .compatible = detect_compatible,
    .run = detect_run,
    .state_free = detect_state_free,
    .cache_key = detect_cache_key,
};
