/*
 * request.c - the transport-neutral request layer (see request.h).
 *
 * REST and gRPC used to write each step of a request themselves and
 * disagreed where they did: a conf of 0 was a threshold over REST and
 * "unset" over gRPC, out of memory was 500 on one side and
 * RESOURCE_EXHAUSTED on the other, the cache key prefix was written twice.
 * Each step that does not depend on the wire now lives here once; the
 * front ends turn their wire format into the structures below and the
 * results back into their answers.
 *
 * The status table is the one place where a vigil_status becomes what a
 * client sees.  Its choices (docs/API.md, docs/GRPC.md):
 *   - bad input (invalid argument, parse) is 400 / INVALID_ARGUMENT;
 *   - unsupported is a well-formed request for what vigil does not
 *     implement (a backend it does not have, an operator it cannot run):
 *     422 / UNIMPLEMENTED, gRPC's code for "not supported by this service";
 *   - a limit is 413 / RESOURCE_EXHAUSTED, and so is out of memory: on a
 *     request path it is nearly always the request's arena reaching its cap
 *     (limits scale it with http.max_body_bytes), i.e. a request too large
 *     for the memory it may use; it is neither a bug (500) nor something a
 *     retry would cure (503);
 *   - a state that forbids the call (409 / FAILED_PRECONDITION), exists
 *     (409 / ALREADY_EXISTS), i/o and internal (500 / INTERNAL).
 */
#include "serve/request.h"

#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "serve/infer_codec.h"
#include "serve/job_detect.h"
#include "serve/server_internal.h"
#include "serve/textbuf.h"
#include "serve/trace.h"

/* ------------------------------------------------------------ the table */

typedef struct outcome {
    int http;
    request_grpc grpc;
} outcome;

/* Indexed by -status (status.h's order). */
static const outcome outcomes[VIGIL_STATUS_COUNT] = {
    [-VIGIL_OK] = {200, REQUEST_GRPC_OK},
    [-VIGIL_ERR_INVALID_ARGUMENT] = {400, REQUEST_GRPC_INVALID_ARGUMENT},
    [-VIGIL_ERR_NOT_FOUND] = {404, REQUEST_GRPC_NOT_FOUND},
    [-VIGIL_ERR_NO_MEMORY] = {413, REQUEST_GRPC_RESOURCE_EXHAUSTED},
    [-VIGIL_ERR_IO] = {500, REQUEST_GRPC_INTERNAL},
    [-VIGIL_ERR_PARSE] = {400, REQUEST_GRPC_INVALID_ARGUMENT},
    [-VIGIL_ERR_UNSUPPORTED] = {422, REQUEST_GRPC_UNIMPLEMENTED},
    [-VIGIL_ERR_LIMIT] = {413, REQUEST_GRPC_RESOURCE_EXHAUSTED},
    [-VIGIL_ERR_UNAVAILABLE] = {503, REQUEST_GRPC_UNAVAILABLE},
    [-VIGIL_ERR_TIMEOUT] = {504, REQUEST_GRPC_DEADLINE_EXCEEDED},
    [-VIGIL_ERR_UNAUTHENTICATED] = {401, REQUEST_GRPC_UNAUTHENTICATED},
    [-VIGIL_ERR_PERMISSION] = {403, REQUEST_GRPC_PERMISSION_DENIED},
    [-VIGIL_ERR_EXISTS] = {409, REQUEST_GRPC_ALREADY_EXISTS},
    [-VIGIL_ERR_STATE] = {409, REQUEST_GRPC_FAILED_PRECONDITION},
    [-VIGIL_ERR_INTERNAL] = {500, REQUEST_GRPC_INTERNAL},
};

static outcome outcome_of(vigil_status status) {
    int index = -(int)status;
    if (index < 0 || index >= VIGIL_STATUS_COUNT) return outcomes[-VIGIL_ERR_INTERNAL];
    return outcomes[index];
}

int request_http_status(vigil_status status) { return outcome_of(status).http; }
request_grpc request_grpc_code(vigil_status status) { return outcome_of(status).grpc; }

vigil_status request_job_status(const sched_job *job) {
    if (job->kind == &job_detect_kind && (job->status == VIGIL_ERR_UNSUPPORTED || job->status == VIGIL_ERR_PARSE))
        return VIGIL_ERR_INVALID_ARGUMENT;
    return job->status;
}

/* ------------------------------------------------------------ finish */

void request_id_make(const char *given, size_t given_len, char *out) {
    size_t n = 0;
    if (given)
        for (; n < given_len && n < REQUEST_ID_SIZE - 1; n++) {
            unsigned char c = (unsigned char)given[n];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') break;
        }
    if (given && n > 0 && n == given_len) {
        memcpy(out, given, n);
        out[n] = '\0';
        return;
    }
    static atomic_ullong counter; /* ids of this process differ even within one clock tick */
    unsigned long long k = atomic_fetch_add(&counter, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, REQUEST_ID_SIZE, "%08llx-%04x-%06llx", (unsigned long long)ts.tv_sec,
             (unsigned)(ts.tv_nsec >> 14) & 0xffff, k & 0xffffff);
}

/* Appends text with control bytes replaced: MHD hands over the path
 * percent-decoded, and a decoded newline must not start a forged line. */
static void text_append_clean(textbuf *b, const char *text) {
    for (const char *c = text; *c; c++) {
        unsigned char u = (unsigned char)*c;
        textbuf_printf(b, "%c", u < 0x20 || u == 0x7f ? '?' : *c);
    }
}

/* One line per answered request, in the form log.format asks for: a JSON
 * object ("type":"access") or a text line like the other log lines. */
static void access_log(const request_record *r) {
    if (log_min_level() > LOG_INFO) return;
    double ms = (double)(sched_now_ns() - r->start_ns) / 1e6;
    const char *model = r->model ? r->model : "";
    char trace_id[2 * TRACE_ID_SIZE + 1] = "";
    if (r->trace) trace_request_trace_id(r->trace, trace_id);
    textbuf b;
    textbuf_init(&b, 4096);
    if (log_json()) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        textbuf_printf(&b, "{\"ts\":%lld.%03ld,\"level\":\"info\",\"type\":\"access\",\"request_id\":",
                       (long long)ts.tv_sec, ts.tv_nsec / 1000000);
        json_append_string(&b, r->request_id);
        textbuf_printf(&b, ",\"method\":");
        json_append_string(&b, r->method);
        textbuf_printf(&b, ",\"path\":");
        json_append_string(&b, r->path);
        textbuf_printf(&b, ",\"route\":");
        json_append_string(&b, r->route);
        textbuf_printf(&b, ",\"status\":%d,\"bytes_in\":%zu,\"bytes_out\":%zu,\"ms\":%.3f", r->status,
                       r->bytes_in, r->bytes_out, ms);
        if (model[0]) {
            textbuf_printf(&b, ",\"model\":");
            json_append_string(&b, model);
        }
        if (r->grpc) textbuf_printf(&b, ",\"proto\":\"grpc\",\"grpc_status\":%d", r->grpc_code);
        if (trace_id[0]) textbuf_printf(&b, ",\"trace_id\":\"%s\"", trace_id);
        textbuf_printf(&b, "}");
    } else {
        textbuf_printf(&b, "vigil: access: ");
        text_append_clean(&b, r->method);
        textbuf_printf(&b, " ");
        text_append_clean(&b, r->path);
        textbuf_printf(&b, " %d route=", r->status);
        text_append_clean(&b, r->route);
        textbuf_printf(&b, " bytes_in=%zu bytes_out=%zu ms=%.3f request_id=%s", r->bytes_in, r->bytes_out, ms,
                       r->request_id);
        if (model[0]) {
            textbuf_printf(&b, " model=");
            text_append_clean(&b, model);
        }
        if (r->grpc) textbuf_printf(&b, " proto=grpc grpc_status=%d", r->grpc_code);
        if (trace_id[0]) textbuf_printf(&b, " trace_id=%s", trace_id);
    }
    if (!b.status) log_line(b.data);
    textbuf_free(&b);
}

void request_finish(vigil_server *server, const request_record *r) {
    metrics_http_request(server->metrics, r->route, r->status);
    access_log(r);
    if (r->trace) trace_request_finish(server->tracer, r->trace, r);
}

/* ------------------------------------------------------------ begin */

int request_serving(const vigil_server *server) {
    return atomic_load(&server->ready) && !atomic_load(&server->stopping);
}
const vigil_config *request_config(const vigil_server *server) { return &server->cfg; }
repository *request_repository(vigil_server *server) { return server->repo; }
metrics *request_metrics(vigil_server *server) { return server->metrics; }
auth_verifier *request_auth(vigil_server *server) { return server->auth; }
tls_material *request_tls(vigil_server *server) { return server->tls; }
tracer *request_tracer(vigil_server *server) { return server->tracer; }

int64_t request_job_deadline(const vigil_server *server, int64_t client_left_ns) {
    int64_t now = sched_now_ns();
    int64_t deadline = now + server->cfg.request_timeout_ms * INT64_C(1000000);
    if (client_left_ns >= 0 && now + client_left_ns < deadline) deadline = now + client_left_ns;
    return deadline;
}

vigil_status request_acquire(vigil_server *server, const char *model, int64_t version, served_model **out,
                             vigil_error *err) {
    vigil_status st = repository_acquire(server->repo, model, version, out, err);
    if (st == VIGIL_ERR_UNAVAILABLE) metrics_inference(server->metrics, model, METRICS_REJECTED);
    return st;
}

vigil_status request_submit(vigil_server *server, served_model *m, sched_job *job, vigil_error *err) {
    if (atomic_load(&server->stopping))
        return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "the server is shutting down");
    return sched_submit(m->sched, job, err);
}

typedef struct submit_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} submit_wait;

static void submit_wait_done(sched_job *job) {
    submit_wait *w = job->user;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

vigil_status request_submit_wait(vigil_server *server, served_model *m, sched_job *job, vigil_error *err) {
    submit_wait w = {.done = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    job->done = submit_wait_done;
    job->user = &w;
    vigil_status st = request_submit(server, m, job, err);
    if (!st) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return st;
}

/* ------------------------------------------------------------ options */

vigil_status request_detect_resolve(const served_model *m, const request_detect_options *o,
                                    const request_detect_names *names, arena *a, sched_job *job, vigil_error *err) {
    job_detect *dj = job_detect_prepare(job, a);
    if (!dj) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    vigil_detect_options *d = &dj->options;
    *d = vigil_detect_options_default();
    if (m->config.conf_threshold >= 0) d->conf_threshold = (float)m->config.conf_threshold;
    if (m->config.iou_threshold >= 0) d->iou_threshold = (float)m->config.iou_threshold;
    dj->classes = NULL;
    dj->n_classes = 0;
    dj->render = 0;
    job->priority = 0;
    if (!o) return VIGIL_OK;
    /* One sentence per field, naming the field as the request spells it. */
    if (o->has_conf && !(o->conf >= 0 && o->conf <= 1))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be " REQUEST_THRESHOLD_RULE ", got %g",
                               names->conf, o->conf);
    if (o->has_iou && !(o->iou >= 0 && o->iou <= 1))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be " REQUEST_THRESHOLD_RULE ", got %g",
                               names->iou, o->iou);
    if (o->has_max_det && !(o->max_det >= 1 && o->max_det <= REQUEST_MAX_DET_MAX))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be " REQUEST_MAX_DET_RULE ", got %lld",
                               names->max_det, (long long)o->max_det);
    if (o->has_priority && !(o->priority >= -REQUEST_PRIORITY_MAX && o->priority <= REQUEST_PRIORITY_MAX))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be " REQUEST_PRIORITY_RULE ", got %lld",
                               names->priority, (long long)o->priority);
    if (o->has_conf) d->conf_threshold = (float)o->conf;
    if (o->has_iou) d->iou_threshold = (float)o->iou;
    if (o->has_max_det) d->max_detections = (int)o->max_det;
    if (o->has_priority) job->priority = (int)o->priority;
    if (o->has_render) dj->render = o->render != 0;
    if (o->n_classes == 0) return VIGIL_OK;
    /* The list goes to the detection job as it is (the worker resolves ids
     * and names against the model's labels, which it holds), copied into
     * the request's arena since o's strings are the front end's.  An entry
     * holding a comma is refused over both front ends alike: over REST the
     * comma separates entries. */
    const char **list = arena_alloc(a, o->n_classes * sizeof *list, _Alignof(const char *));
    if (!list) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    for (size_t i = 0; i < o->n_classes; i++) {
        const char *c = o->classes[i];
        if (!*c || strchr(c, ','))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "%s must hold one class id or name per entry, got '%.64s'", names->classes, c);
        if (!(list[i] = arena_strdup(a, c))) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    }
    dj->classes = list;
    dj->n_classes = o->n_classes;
    return VIGIL_OK;
}

/* ------------------------------------------------------------ raw frames */

static const char *const raw_format_names[] = {
    [VIGIL_PIXEL_RGB24] = "rgb24",
    [VIGIL_PIXEL_BGR24] = "bgr24",
    [VIGIL_PIXEL_NV12] = "nv12",
};

int request_raw_format_parse(const char *name, vigil_pixel_format *out) {
    for (size_t i = 0; i < sizeof raw_format_names / sizeof *raw_format_names; i++)
        if (strcmp(name, raw_format_names[i]) == 0) {
            *out = (vigil_pixel_format)i;
            return 1;
        }
    return 0;
}

vigil_status request_detect_raw(const vigil_server *server, const request_raw_frame *f, const request_raw_names *names,
                                sched_job *job, vigil_error *err) {
    const struct {
        const char *name;
        int64_t value;
    } sizes[] = {{names->width, f->width}, {names->height, f->height}, {names->stride, f->stride}};
    for (size_t i = 0; i < 3; i++) /* stride 0 is "packed" */
        if (sizes[i].value > INT32_MAX || sizes[i].value < (i < 2))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be " REQUEST_RAW_SIZE_RULE ", got %lld",
                                   sizes[i].name, (long long)sizes[i].value);
    if ((unsigned)f->format >= sizeof raw_format_names / sizeof *raw_format_names)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be " REQUEST_RAW_FORMAT_RULE ", got %d",
                               names->format, (int)f->format);
    job_detect *d = job_detect_of(job);
    int nv12 = f->format == VIGIL_PIXEL_NV12;
    int64_t row = nv12 ? f->width : f->width * 3, rows = nv12 ? f->height * 3 / 2 : f->height;
    int64_t stride = f->stride ? f->stride : row; /* row fits an int once the pixel limit held */
    /* The pixel limit first (413, as for a JPEG too large), then the
     * geometry; the size is checked below, exactly (SIZE_MAX passes the
     * check's "at least"). */
    vigil_status st = vigil_image_raw_check(d->image ? d->image : "", SIZE_MAX, f->format, (int)f->width,
                                            (int)f->height, (int)(stride > INT32_MAX ? INT32_MAX : stride),
                                            server->cfg.max_image_pixels, err);
    if (st) return st;
    /* A longer body is refused as a shorter one is: either says the
     * geometry is not the sender's. */
    size_t packed = (size_t)((rows - 1) * stride + row), padded = (size_t)(rows * stride);
    if (d->image_size != packed && d->image_size != padded) {
        if (packed == padded)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "a %lld x %lld %s frame with rows %lld bytes apart is %zu bytes, got %zu",
                                   (long long)f->width, (long long)f->height, raw_format_names[f->format],
                                   (long long)stride, packed, d->image_size);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "a %lld x %lld %s frame with rows %lld bytes apart is %zu bytes (%zu with its last "
                               "row padded), got %zu",
                               (long long)f->width, (long long)f->height, raw_format_names[f->format],
                               (long long)stride, packed, padded, d->image_size);
    }
    d->raw = (detect_raw){.format = f->format, .width = (int)f->width, .height = (int)f->height, .stride = (int)stride};
    return VIGIL_OK;
}

vigil_status request_detect_bytes(const vigil_server *server, const served_model *m, sched_job *job, arena *a,
                                  const vigil_piece *pieces, size_t n, vigil_error *err) {
    job_detect *d = job_detect_of(job);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += pieces[i].size;
    d->image_size = total;
    if (n == 1) {
        d->image = pieces[0].data;
        return VIGIL_OK;
    }
    int in_place = d->raw.width && d->raw.format == VIGIL_PIXEL_RGB24 && !d->render && !m->config.response_cache &&
                   !request_detect_observed(server, m);
    if (in_place) {
        vigil_piece *kept = arena_alloc(a, n * sizeof *kept, _Alignof(vigil_piece));
        if (!kept) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
        memcpy(kept, pieces, n * sizeof *kept);
        d->image = NULL;
        d->pieces = kept;
        d->n_pieces = n;
        return VIGIL_OK;
    }
    uint8_t *whole = arena_alloc(a, total ? total : 1, 64), *to = whole;
    if (!whole) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    for (size_t i = 0; i < n; i++) {
        memcpy(to, pieces[i].data, pieces[i].size);
        to += pieces[i].size;
    }
    d->image = whole;
    return VIGIL_OK;
}

/* A model input of the server's pool, lent to a request's arena. */
typedef struct ready_input {
    spares *home;
    uint8_t *block; /* a ready_header, then the input at READY_HEADER */
    size_t size;
} ready_input;

/* At the start of a pooled block: the size of the input it held last and
 * the geometry of the padding around that input's frame, so that frames of
 * one camera write their padding once per block, not once per frame. */
typedef struct ready_header {
    size_t input_bytes;
    vigil_letterbox_info padded;
} ready_header;

#define READY_HEADER ((size_t)64) /* keeps the input 64-byte aligned */

static void ready_input_give(void *ctx) {
    ready_input *r = ctx;
    spares_give(r->home, r->block, r->size);
}

vigil_status request_detect_ready(vigil_server *server, const served_model *m, sched_job *job, arena *a,
                                  vigil_error *err) {
    job_detect *d = job_detect_of(job);
    const vigil_detect_spec *spec = m->frame_spec;
    if (!spec || !d->raw.width || d->raw.format != VIGIL_PIXEL_RGB24 || d->render || m->config.response_cache)
        return VIGIL_OK;
    uint8_t *in_place = NULL; /* read with room around it: padded where it lies */
    if (d->image && d->image_room &&
        vigil_detect_frame_in_place(spec, (uint8_t *)d->image, d->raw.width, d->raw.height, d->raw.stride,
                                    d->image_room, &in_place, &d->ready_item)) {
        d->ready = in_place;
        return VIGIL_OK;
    }
    if (!vigil_detect_frame_copies(spec, d->raw.width, d->raw.height)) return VIGIL_OK; /* the worker scales it */
    vigil_tensor input = vigil_detect_spec_input(spec, 1);
    size_t bytes = vigil_tensor_bytes(&input), size = 0;
    ready_input *r = arena_alloc(a, sizeof *r, _Alignof(ready_input));
    if (!r) return VIGIL_OK; /* the worker letterboxes it */
    uint8_t *block = spares_take(&server->frame_inputs, READY_HEADER + bytes, &size);
    if (!block) {
        size = READY_HEADER + bytes;
        if (!(block = vigil_aligned_alloc(64, size))) return VIGIL_OK;
        memset(block, 0, READY_HEADER);
    }
    *r = (ready_input){.home = &server->frame_inputs, .block = block, .size = size};
    if (arena_defer(a, ready_input_give, r)) {
        ready_input_give(r);
        return VIGIL_OK;
    }
    ready_header *h = (ready_header *)block;
    int padded = h->input_bytes == bytes;
    h->input_bytes = 0; /* until this frame is in: a failed run leaves the padding unknown */
    input.data = block + READY_HEADER;
    vigil_piece whole = {d->image, d->image_size};
    vigil_status st = vigil_detect_preprocess_pieces(spec, d->image ? &whole : d->pieces, d->image ? 1 : d->n_pieces,
                                                     d->raw.width, d->raw.height, d->raw.stride, &input, 0,
                                                     padded ? &h->padded : NULL, &d->ready_item, err);
    if (st) return st;
    h->input_bytes = bytes;
    h->padded = d->ready_item.letterbox;
    d->ready = input.data;
    return VIGIL_OK;
}

/* ------------------------------------------------------------ observe */

void server_set_detect_observer(vigil_server *server, request_detect_observer fn, void *ctx) {
    server->detect_observer = fn;
    server->detect_observer_ctx = ctx;
}

int request_detect_observed(const vigil_server *server, const served_model *m) {
    return server->detect_observer && m && m->config.escalation.enabled;
}

void request_detect_observe(vigil_server *server, const served_model *m, const sched_job *job, const char *source,
                            const char *traceparent) {
    if (!request_detect_observed(server, m) || job->status || job->kind != &job_detect_kind) return;
    const job_detect *d = job_detect_of(job);
    if (d->render || !d->body) return;
    request_detection_seen seen = {
        .model = m->name,
        .version = m->version,
        .escalation = &m->config.escalation,
        .source = source ? source : "",
        .traceparent = traceparent ? traceparent : "",
        .image = d->image,
        .image_size = d->image_size,
        .raw_format = d->raw.format,
        .raw_width = d->raw.width,
        .raw_height = d->raw.height,
        .raw_stride = d->raw.stride,
        .json = d->body,
        .json_len = d->body_len,
    };
    server->detect_observer(server->detect_observer_ctx, &seen);
}

void request_detect_observe_image(vigil_server *server, const served_model *m, const void *image, size_t image_size,
                                  const char *json, size_t json_len, const char *source) {
    if (!request_detect_observed(server, m)) return;
    request_detection_seen seen = {
        .model = m->name,
        .version = m->version,
        .escalation = &m->config.escalation,
        .source = source ? source : "",
        .traceparent = "",
        .image = image,
        .image_size = image_size,
        .json = json,
        .json_len = json_len,
    };
    server->detect_observer(server->detect_observer_ctx, &seen);
}

/* ------------------------------------------------------------ cache */

int request_cache_lookup(vigil_server *server, const served_model *m, const char *kind, const sched_job *job,
                         arena *a, int *use, cache_key *key, void **value, size_t *size) {
    *use = 0;
    if (!m->config.response_cache || server->cfg.cache_max_bytes == 0) return 0;
    cache_hasher h;
    cache_hasher_init(server->cache, &h);
    cache_hasher_add_str(&h, kind);
    cache_hasher_add_str(&h, m->name);
    cache_hasher_add(&h, &m->version, sizeof m->version);
    sched_job_cache_key(job, &h);
    *key = cache_hasher_done(&h);
    *use = 1;
    int hit = cache_get(server->cache, key, a, value, size);
    metrics_cache(server->metrics, m->name, hit);
    return hit;
}

void request_cache_store(vigil_server *server, const cache_key *key, const void *value, size_t size) {
    cache_put(server->cache, key, value, size);
}

void request_cache_store_outputs(vigil_server *server, const cache_key *key, const sched_job *job) {
    textbuf blob;
    textbuf_init(&blob, (size_t)server->cfg.cache_max_bytes);
    if (!infer_outputs_pack(job, &blob)) cache_put(server->cache, key, blob.data, blob.len);
    textbuf_free(&blob);
}
