/*
 * routes_api.c - the seed's REST routes, detection and metrics.
 *
 *   GET  /api/v1/models                    models and their states
 *   POST /api/v1/models/load|unload        {"model": name}
 *   GET  /api/v1/device/info               CPU, ISA features, memory, backends
 *   POST /api/v1/detect                    JPEG/PNG body or multipart field "image";
 *                                          query model, conf, iou, max_det, classes, render;
 *                                          or a decoded frame: application/octet-stream
 *                                          body, query width, height, format, stride
 *   GET  /metrics                          Prometheus text 0.0.4, or OpenMetrics 1.0 on Accept
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "serve/backend_report.h"
#include "serve/device_info.h"
#include "serve/job_detect.h"
#include "serve/multipart.h"
#include "serve/request.h"
#include "serve/server_internal.h"

static int seg_is(const route_path *p, size_t i, const char *s) { return i < p->n && strcmp(p->seg[i], s) == 0; }

/* ------------------------------------------------------------ models */

static void models_item(const repository_item *item, void *user) {
    json_t *list = user;
    json_t *obj = json_pack("{s:s,s:I,s:s,s:s,s:I}", "name", item->name, "version", (json_int_t)item->version, "state",
                            model_state_name(item->state), "reason", item->reason, "queue_length",
                            (json_int_t)item->queue_length);
    if (item->state == MODEL_READY) {
        json_object_set_new(obj, "task", json_string(item->task == MODEL_TASK_DETECT ? "detect" : "raw"));
        if (item->family != VIGIL_HEAD_AUTO)
            json_object_set_new(obj, "family", json_string(vigil_head_family_name(item->family)));
    }
    json_array_append_new(list, obj);
}

static int route_models(http_exchange *ex, const route_path *p) {
    if (p->n == 3) {
        ex->route = "/api/v1/models";
        if (!method_is(ex, "GET")) return respond_method(ex, "GET");
        json_t *list = json_array();
        repository_each(ex->server->repo, models_item, list);
        char name[MODEL_NAME_MAX];
        const char *chosen = repository_default_detector_name(ex->server->repo, name, sizeof name);
        respond_jansson(ex, MHD_HTTP_OK,
                        json_pack("{s:o,s:o}", "models", list, "default_detection_model",
                                  chosen ? json_string(chosen) : json_null()));
        return 1;
    }
    if (p->n == 6 && seg_is(p, 4, "versions")) {
        ex->route = "/api/v1/models/{m}/versions/{v}";
        if (!method_is(ex, "PUT")) return respond_method(ex, "PUT");
        upload_finish(ex, p->seg[3], p->seg[5]);
        return 1;
    }
    int load = seg_is(p, 3, "load");
    if (p->n != 4 || (!load && !seg_is(p, 3, "unload"))) return 0;
    ex->route = load ? "/api/v1/models/load" : "/api/v1/models/unload";
    if (!method_is(ex, "POST")) return respond_method(ex, "POST");
    json_t *req = ex->body.len ? json_loadb(ex->body.data, ex->body.len, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(req, "model"));
    if (!name) {
        respond_error_code(ex, MHD_HTTP_BAD_REQUEST, "the body must be {\"model\": \"<name>\"}");
    } else {
        vigil_error err = {0};
        snprintf(ex->model, sizeof ex->model, "%.127s", name);
        vigil_status st = load ? repository_load(ex->server->repo, name, &err)
                               : repository_unload(ex->server->repo, name, &err);
        if (st) respond_error(ex, st, err.message);
        else respond_jansson(ex, MHD_HTTP_OK, json_pack("{s:s,s:s}", "model", name, "state", load ? "READY" : "UNAVAILABLE"));
    }
    json_decref(req);
    return 1;
}

/* ------------------------------------------------------------ device */

static void route_device(http_exchange *ex) {
    device_info d;
    device_info_collect(&d);
    json_t *backends = backend_report_list(ex->server->repo);
    json_t *obj = json_pack("{s:{s:s,s:i,s:{s:b,s:b,s:b,s:b}},s:{s:I,s:I},s:o}", "cpu", "model", d.cpu_model,
                            "cores", d.cores, "isa", "avx2", d.avx2, "avx512f", d.avx512f, "fma", d.fma, "neon",
                            d.neon, "memory", "total_bytes", (json_int_t)d.mem_total_bytes, "available_bytes",
                            (json_int_t)d.mem_available_bytes, "backends", backends);
    respond_jansson(ex, MHD_HTTP_OK, obj);
}

/* ------------------------------------------------------------ detect */

static int parse_double(const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

/* Answers 400 for one query parameter: its name, what it must be and what
 * came, e.g. "conf must be in [0, 1], got 2".  Returns 0 for the caller. */
static int query_refuse(http_exchange *ex, const char *name, const char *rule, const char *got) {
    char message[256];
    if (*got)
        snprintf(message, sizeof message, "%s must be %s, got %.64s%s", name, rule, got, strlen(got) > 64 ? "..." : "");
    else snprintf(message, sizeof message, "%s must be %s, got nothing", name, rule);
    respond_error_code(ex, MHD_HTTP_BAD_REQUEST, message);
    return 0;
}

/* "0,bus": ids or names, none empty; "" is no list (every class), as when
 * the parameter is absent.  Names are resolved (and unknown ones refused)
 * by the worker, which holds the model's labels. */
static int classes_well_formed(const char *spec) {
    if (*spec == ',') return 0;
    for (const char *c = spec; *c; c++)
        if (*c == ',' && (c[1] == ',' || c[1] == '\0')) return 0;
    return 1;
}

/* Splits a well-formed class list into o->classes (in a); 0 when out of memory. */
static int classes_split(const char *spec, arena *a, request_detect_options *o) {
    size_t n = *spec ? 1 : 0;
    for (const char *c = spec; *c; c++) n += *c == ',';
    char *copy = arena_strdup(a, spec);
    char **list = arena_calloc(a, n ? n : 1, sizeof *list);
    if (!copy || !list) return 0;
    size_t i = 0;
    for (char *at = copy; n && at;) {
        list[i++] = at;
        at = strchr(at, ',');
        if (at) *at++ = '\0';
    }
    o->classes = (const char *const *)list;
    o->n_classes = n;
    return 1;
}

/* Reads the query into the detection job's options through the request layer's options
 * (request_detect_resolve: an absent parameter is unset, a present one is
 * used as sent, conf=0 included); 0 (with the response set) on bad input,
 * naming the one parameter that was wrong. */
static int detect_options(http_exchange *ex, sched_job *job) {
    static const request_detect_names names = {"conf", "iou", "max_det", "classes", "priority"};
    request_detect_options o = {0};
    const char *conf = exchange_query(ex, "conf"), *iou = exchange_query(ex, "iou");
    const char *max_det = exchange_query(ex, "max_det"), *classes = exchange_query(ex, "classes");
    const char *render = exchange_query(ex, "render"), *priority = exchange_query(ex, "priority");
    double v;
    if (conf) {
        if (!parse_double(conf, 0, 1, &o.conf)) return query_refuse(ex, "conf", REQUEST_THRESHOLD_RULE, conf);
        o.has_conf = 1;
    }
    if (iou) {
        if (!parse_double(iou, 0, 1, &o.iou)) return query_refuse(ex, "iou", REQUEST_THRESHOLD_RULE, iou);
        o.has_iou = 1;
    }
    if (max_det) {
        if (!parse_double(max_det, 1, REQUEST_MAX_DET_MAX, &v) || v != (int)v)
            return query_refuse(ex, "max_det", REQUEST_MAX_DET_RULE, max_det);
        o.has_max_det = 1;
        o.max_det = (int64_t)v;
    }
    if (priority) { /* its range is the request layer's */
        if (!parse_double(priority, -1e9, 1e9, &v) || v != (int)v)
            return query_refuse(ex, "priority", REQUEST_PRIORITY_RULE, priority);
        o.has_priority = 1;
        o.priority = (int64_t)v;
    }
    if (classes) {
        if (!classes_well_formed(classes))
            return query_refuse(ex, "classes", "class ids or names separated by commas, like 0,bus", classes);
        if (!classes_split(classes, ex->arena, &o)) {
            respond_error(ex, VIGIL_ERR_LIMIT, "request memory limit reached");
            return 0;
        }
    }
    if (render) {
        int on = strcmp(render, "1") == 0 || strcmp(render, "true") == 0;
        if (!on && strcmp(render, "0") != 0 && strcmp(render, "false") != 0)
            return query_refuse(ex, "render", "1, true, 0 or false", render);
        o.has_render = 1;
        o.render = on;
    }
    vigil_error err = {0};
    if (request_detect_resolve(ex->served, &o, &names, ex->arena, job, &err)) {
        respond_error(ex, err.status, err.message);
        return 0;
    }
    return 1;
}

/* An integral query value for the request layer's range check (a
 * non-number is refused here, naming the parameter). */
static int query_integer(http_exchange *ex, const char *name, const char *text, int64_t *out) {
    double v;
    if (!parse_double(text, -1e15, 1e15, &v) || v != (double)(int64_t)v)
        return query_refuse(ex, name, REQUEST_RAW_SIZE_RULE, text);
    *out = (int64_t)v;
    return 1;
}

/* Reads a decoded frame's geometry from the query and has the request
 * layer check the body against it (request_detect_raw); 0 with the
 * response set on bad input.  Without an application/octet-stream body
 * the geometry parameters are refused: they would describe nothing. */
static int detect_raw_frame(http_exchange *ex, int raw) {
    static const request_raw_names names = {"width", "height", "stride", "format"};
    const char *width = exchange_query(ex, "width"), *height = exchange_query(ex, "height");
    const char *format = exchange_query(ex, "format"), *stride = exchange_query(ex, "stride");
    if (!raw) {
        if (!width && !height && !format && !stride) return 1;
        respond_error_code(ex, MHD_HTTP_BAD_REQUEST,
                           "width, height, format and stride describe a decoded frame: send its pixels with "
                           "Content-Type: application/octet-stream");
        return 0;
    }
    request_raw_frame f = {.format = VIGIL_PIXEL_RGB24};
    if (!width) return query_refuse(ex, "width", REQUEST_RAW_SIZE_RULE, "");
    if (!height) return query_refuse(ex, "height", REQUEST_RAW_SIZE_RULE, "");
    if (!query_integer(ex, "width", width, &f.width) || !query_integer(ex, "height", height, &f.height)) return 0;
    if (format && !request_raw_format_parse(format, &f.format))
        return query_refuse(ex, "format", REQUEST_RAW_FORMAT_RULE, format);
    if (stride) { /* absent: packed rows; sent, it must be a row length */
        if (!query_integer(ex, "stride", stride, &f.stride)) return 0;
        if (f.stride < 1) return query_refuse(ex, "stride", REQUEST_RAW_SIZE_RULE, stride);
    }
    vigil_error err = {0};
    if (request_detect_raw(ex->server, &f, &names, ex->job, &err)) {
        respond_error(ex, err.status, err.message);
        return 0;
    }
    return 1;
}

static void detect_finish(http_exchange *ex) {
    const sched_job *job = ex->job;
    if (job->status) {
        respond_error(ex, request_job_status(job), job->error.message);
        return;
    }
    const job_detect *d = job_detect_of(job);
    char *body = vigil_malloc(d->body_len ? d->body_len : 1);
    if (!body) {
        respond_error(ex, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    memcpy(body, d->body, d->body_len);
    if (ex->cache_use && ex->state == EXCHANGE_WAITING)
        request_cache_store(ex->server, &ex->cache_key, d->body, d->body_len);
    respond_take(ex, MHD_HTTP_OK, d->render ? "image/jpeg" : "application/json", body, d->body_len);
    if (request_detect_observed(ex->server, ex->served)) { /* escalation (docs/EDGE.md) */
        const char *source = exchange_header(ex, "X-Source-Id");
        if (!source) source = exchange_query(ex, "source");
        /* the event's parent is this request's span (the cloud joins its trace), else the client's */
        char own[TRACEPARENT_LEN + 1];
        const char *traceparent = trace_request_traceparent(&ex->trace, own) ? own : exchange_header(ex, "traceparent");
        request_detect_observe(ex->server, ex->served, job, source, traceparent);
    }
}

/* Looks the image and options up in the response cache; 1 with job->body set on a hit. */
static int detect_cache_hit(http_exchange *ex) {
    sched_job *job = ex->job;
    void *body;
    size_t size;
    if (!request_cache_lookup(ex->server, ex->served, "detect", job, ex->arena, &ex->cache_use, &ex->cache_key, &body,
                              &size))
        return 0;
    job_detect_of(job)->body = body;
    job_detect_of(job)->body_len = size;
    return 1;
}

static void route_detect(http_exchange *ex) {
    static const char *const parameters[] = {"model",  "conf",   "iou",    "max_det", "classes", "render", "priority",
                                             "source", "width",  "height", "format",  "stride",  NULL};
    const char *unknown = exchange_query_unknown(ex, parameters);
    if (unknown) {
        char message[256];
        snprintf(message, sizeof message,
                 "unknown query parameter '%.64s': /api/v1/detect takes model, conf, iou, max_det, classes, render, "
                 "priority and source (and width, height, format and stride for a decoded frame)",
                 unknown);
        respond_error_code(ex, MHD_HTTP_BAD_REQUEST, message);
        return;
    }
    char model[MODEL_NAME_MAX];
    const char *name = exchange_query(ex, "model");
    vigil_error err = {0};
    if (!name) {
        if (repository_default_detector(ex->server->repo, model, sizeof model, &err)) {
            respond_error(ex, err.status, err.message);
            return;
        }
        name = model;
    }
    if (!exchange_acquire(ex, name, 0)) return;
    if (ex->served->task != MODEL_TASK_DETECT) {
        respond_error_code(ex, MHD_HTTP_BAD_REQUEST,
                           "this model is not a detection model (its outputs are no YOLO head, or its config.yaml "
                           "says task: raw)");
        return;
    }
    const char *image = ex->body.data;
    size_t size = ex->body.len;
    const char *ctype = exchange_header(ex, "Content-Type");
    int raw = exchange_is_octet_stream(ctype);
    if (ctype && strncasecmp(ctype, "multipart/form-data", 19) == 0 &&
        multipart_find(ctype, ex->body.data ? ex->body.data : "", ex->body.len, "image", &image, &size, &err)) {
        respond_error(ex, err.status == VIGIL_ERR_NOT_FOUND ? VIGIL_ERR_INVALID_ARGUMENT : err.status, err.message);
        return;
    }
    if (!image || size == 0) {
        respond_error_code(ex, MHD_HTTP_BAD_REQUEST,
                           raw ? "no frame: the application/octet-stream body is empty"
                               : "no image: send JPEG or PNG bytes, or a multipart field 'image'");
        return;
    }
    ex->job = arena_calloc(ex->arena, 1, sizeof *ex->job);
    job_detect *d = ex->job ? job_detect_prepare(ex->job, ex->arena) : NULL;
    if (!d) {
        respond_error(ex, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    d->image = image;
    d->image_size = size;
    d->image_room = image == ex->body.data ? ex->body_room : 0; /* a multipart part has none */
    if (!detect_raw_frame(ex, raw)) return;
    if (!detect_options(ex, ex->job)) return;
    if (detect_cache_hit(ex)) {
        detect_finish(ex);
        return;
    }
    if (request_detect_ready(ex->server, ex->served, ex->job, ex->arena, &err)) {
        respond_error(ex, err.status, err.message);
        return;
    }
    exchange_submit(ex, detect_finish);
}

/* ------------------------------------------------------------ metrics */

/* The per-model gauges of one repository_each walk. */
typedef struct gauge_walk {
    textbuf *out;
    const char *node_type;
    int64_t max_queue;
} gauge_walk;

static void gauge_item(const repository_item *item, void *user) {
    gauge_walk *w = user;
    if (item->state == MODEL_READY)
        textbuf_printf(w->out, "vigil_inference_queue_length{model=\"%s\",node_type=\"%s\"} %zu\n", item->name,
                       w->node_type, item->queue_length);
}

static void capacity_item(const repository_item *item, void *user) {
    gauge_walk *w = user;
    if (item->state == MODEL_READY)
        textbuf_printf(w->out, "vigil_inference_queue_capacity{model=\"%s\",node_type=\"%s\"} %lld\n", item->name,
                       w->node_type, (long long)w->max_queue);
}

static void state_item(const repository_item *item, void *user) {
    gauge_walk *w = user;
    for (int s = 0; s < MODEL_STATE_COUNT; s++)
        textbuf_printf(w->out, "vigil_model_state{model=\"%s\",node_type=\"%s\",version=\"%lld\",state=\"%s\"} %d\n",
                       item->name, w->node_type, (long long)item->version, model_state_name((model_state)s),
                       (int)item->state == s);
}

static void route_metrics(http_exchange *ex) {
    /* Prometheus asks for OpenMetrics first; it is the format that carries
     * exemplars (trace ids on the latency buckets). */
    int openmetrics = metrics_accepts_openmetrics(exchange_header(ex, "Accept"));
    textbuf out;
    textbuf_init(&out, (size_t)64 << 20);
    metrics_render(ex->server->metrics, &out, openmetrics);
    gauge_walk walk = {&out, metrics_node_type(ex->server->metrics), ex->server->cfg.max_queue};
    textbuf_printf(&out, "# HELP vigil_inference_queue_length Requests waiting in the model's queue.\n"
                         "# TYPE vigil_inference_queue_length gauge\n");
    repository_each(ex->server->repo, gauge_item, &walk);
    textbuf_printf(&out, "# HELP vigil_inference_queue_capacity Requests the model's queue holds before it rejects "
                         "(limits.max_queue).\n"
                         "# TYPE vigil_inference_queue_capacity gauge\n");
    repository_each(ex->server->repo, capacity_item, &walk);
    textbuf_printf(&out, "# HELP vigil_model_state 1 for the state each model is in.\n"
                         "# TYPE vigil_model_state gauge\n");
    repository_each(ex->server->repo, state_item, &walk);
    textbuf_printf(&out, "# HELP vigil_process_resident_memory_bytes Resident memory of the server.\n"
                         "# TYPE vigil_process_resident_memory_bytes gauge\n"
                         "vigil_process_resident_memory_bytes %lld\n",
                   (long long)device_info_rss_bytes());
    const union MHD_DaemonInfo *open = MHD_get_daemon_info(ex->server->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    textbuf_printf(&out, "# HELP vigil_http_connections Open HTTP connections (http.max_connections is the bound).\n"
                         "# TYPE vigil_http_connections gauge\n"
                         "vigil_http_connections %u\n"
                         "# HELP vigil_http_max_connections The configured bound on open HTTP connections.\n"
                         "# TYPE vigil_http_max_connections gauge\n"
                         "vigil_http_max_connections %lld\n",
                   open ? open->num_connections : 0u, (long long)ex->server->cfg.max_connections);
    char auth_text[1024];
    if (auth_metrics_render(ex->server->auth, auth_text, sizeof auth_text)) textbuf_printf(&out, "%s", auth_text);
    routes_ext_metrics(ex->server, &out); /* modules beside serve (server_metrics_add) */
    if (openmetrics) metrics_to_openmetrics(&out);
    if (out.status) {
        textbuf_free(&out);
        respond_error(ex, VIGIL_ERR_NO_MEMORY, "cannot render the metrics");
        return;
    }
    size_t len;
    char *body = textbuf_take(&out, &len);
    respond_take(ex, MHD_HTTP_OK,
                 openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                             : "text/plain; version=0.0.4; charset=utf-8",
                 body, len);
}

int routes_api(http_exchange *ex, const route_path *p) {
    if (p->n == 1 && seg_is(p, 0, "metrics")) {
        ex->route = "/metrics";
        if (!method_is(ex, "GET")) return respond_method(ex, "GET");
        route_metrics(ex);
        return 1;
    }
    if (!seg_is(p, 0, "api") || !seg_is(p, 1, "v1") || p->n < 3) return 0;
    if (seg_is(p, 2, "models")) return route_models(ex, p);
    if (p->n == 4 && seg_is(p, 2, "device") && seg_is(p, 3, "info")) {
        ex->route = "/api/v1/device/info";
        if (!method_is(ex, "GET")) return respond_method(ex, "GET");
        route_device(ex);
        return 1;
    }
    if (p->n == 3 && seg_is(p, 2, "detect")) {
        ex->route = "/api/v1/detect";
        if (!method_is(ex, "POST")) return respond_method(ex, "POST");
        route_detect(ex);
        return 1;
    }
    return 0;
}
