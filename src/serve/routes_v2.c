/*
 * routes_v2.c - the KServe v2 / Open Inference Protocol REST routes, the
 * repository extension, and the seed's POST /api/v1/inference (the same body
 * with a "model" key).
 *
 *   GET  /v2                                   server metadata
 *   GET  /v2/models/{m}[/versions/{v}]         model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready   model readiness
 *   POST /v2/models/{m}[/versions/{v}]/infer   inference (JSON or binary tensors)
 *   POST /v2/repository/index                  every model and its state
 *   POST /v2/repository/models/{m}/load|unload
 *   POST /api/v1/inference                     {"model": m, "inputs": [...]}
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "serve/request.h"
#include "serve/server_internal.h"

static json_t *tensor_list(const vigil_tensor_info *const *infos, size_t n, int batch_dim) {
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < infos[i]->ndim; d++)
            json_array_append_new(shape, json_integer(d == 0 && batch_dim ? -1 : infos[i]->dims[d]));
        json_array_append_new(list, json_pack("{s:s,s:s,s:o}", "name", infos[i]->name, "datatype",
                                              infer_datatype_name(infos[i]->dtype), "shape", shape));
    }
    return list;
}

static void model_metadata(http_exchange *ex) {
    const served_model *m = ex->served;
    char version[24];
    snprintf(version, sizeof version, "%lld", (long long)m->version);
    int batch_dim = m->config.max_batch_size > 1; /* symbolic dims stay -1 anyway */
    json_t *obj = json_pack("{s:s,s:[s],s:s,s:o,s:o,s:s,s:s,s:I}", "name", m->name, "versions", version, "platform",
                            "onnx", "inputs", tensor_list(m->io.inputs, m->io.n_inputs, batch_dim), "outputs",
                            tensor_list(m->io.outputs, m->io.n_outputs, batch_dim), "backend", m->ops->name, "task",
                            m->task == MODEL_TASK_DETECT ? "detect" : "raw", "max_batch_size",
                            (json_int_t)m->config.max_batch_size);
    respond_jansson(ex, MHD_HTTP_OK, obj);
}

/* Keeps a successful answer's outputs for later identical requests. */
static void infer_cache_store(http_exchange *ex) {
    request_cache_store_outputs(ex->server, &ex->cache_key, ex->job);
}

static void infer_finish(http_exchange *ex) {
    const sched_job *job = ex->job;
    if (job->status) {
        respond_error(ex, job->status, job->error.message);
        return;
    }
    if (ex->cache_use && ex->state == EXCHANGE_WAITING) infer_cache_store(ex);
    textbuf out;
    textbuf_init(&out, (size_t)1 << 34);
    size_t json_len = 0;
    vigil_status st = infer_respond(ex->served, ex->infer, job, &out, &json_len);
    if (st) {
        textbuf_free(&out);
        respond_error(ex, st, "cannot build the response (too large or out of memory)");
        return;
    }
    size_t len;
    char *body = textbuf_take(&out, &len);
    if (ex->infer->any_binary) {
        snprintf(ex->header_length, sizeof ex->header_length, "%zu", json_len);
        respond_take(ex, MHD_HTTP_OK, "application/octet-stream", body, len);
    } else {
        respond_take(ex, MHD_HTTP_OK, "application/json", body, len);
    }
}

/* Looks the parsed request up in the response cache; 1 with the job's outputs set on a hit. */
static int infer_cache_hit(http_exchange *ex) {
    void *blob;
    size_t size;
    return request_cache_lookup(ex->server, ex->served, "infer", ex->job, ex->arena, &ex->cache_use, &ex->cache_key,
                                &blob, &size) &&
           infer_outputs_unpack(blob, size, ex->job);
}

static void infer_start(http_exchange *ex, const char *model, int64_t version) {
    if (!exchange_acquire(ex, model, version)) return;
    size_t body_len = ex->body.len, json_len = body_len;
    const char *header = exchange_header(ex, "Inference-Header-Content-Length");
    if (header) {
        char *end;
        unsigned long long v = strtoull(header, &end, 10);
        if (end == header || *end || v > body_len) {
            respond_error_code(ex, MHD_HTTP_BAD_REQUEST, "Inference-Header-Content-Length is not a length within the body");
            return;
        }
        json_len = (size_t)v;
    }
    ex->job = arena_calloc(ex->arena, 1, sizeof *ex->job);
    ex->infer = arena_calloc(ex->arena, 1, sizeof *ex->infer);
    if (!ex->job || !ex->infer) {
        respond_error(ex, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    vigil_error err = {0};
    if (infer_parse(ex->served, ex->body.data ? ex->body.data : "", body_len, json_len,
                    ex->server->cfg.max_tensor_elements, ex->arena, ex->infer, ex->job, &err)) {
        metrics_inference(ex->server->metrics, ex->model, METRICS_ERROR);
        respond_error(ex, err.status, err.message);
        return;
    }
    if (infer_cache_hit(ex)) {
        infer_finish(ex);
        return;
    }
    exchange_submit(ex, infer_finish);
}

/* A version from the path or a body, by the repository's one rule; 0 with a
 * 400 set when it is not one. */
static int parse_version(http_exchange *ex, const char *text, int64_t *out) {
    if (repository_parse_version(text, strlen(text), out)) return 1;
    vigil_error err = {0};
    repository_version_error(text, strlen(text), &err);
    respond_error(ex, err.status, err.message);
    return 0;
}

size_t route_unescape(void *cls, struct MHD_Connection *connection, char *text) {
    (void)cls, (void)connection;
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    char *out = text;
    for (const char *in = text; *in;) {
        const char *hi = in[0] == '%' && in[1] ? strchr(hex, in[1]) : NULL;
        const char *lo = hi && in[2] ? strchr(hex, in[2]) : NULL;
        int byte = lo ? (int)((hi - hex) % 16) * 16 + (int)((lo - hex) % 16) : -1;
        if (byte > 0) { /* %00 stays as it was sent: a NUL would cut the C string short */
            *out++ = (char)byte;
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - text);
}

/* /v2/models/{m}[/versions/{v}][/ready|/infer] */
static int route_model(http_exchange *ex, const route_path *p) {
    const char *model = p->seg[2];
    int64_t version = 0;
    size_t at = 3;
    if (p->n >= 5 && strcmp(p->seg[3], "versions") == 0) {
        if (!parse_version(ex, p->seg[4], &version)) {
            ex->route = "/v2/models/{m}/versions/{v}";
            return 1;
        }
        at = 5;
    }
    const char *action = at < p->n ? p->seg[at] : NULL;
    if (at + (action ? 1 : 0) != p->n) return 0;
    if (!action) {
        ex->route = version ? "/v2/models/{m}/versions/{v}" : "/v2/models/{m}";
        if (!method_is(ex, "GET")) return respond_method(ex, "GET");
        if (exchange_acquire(ex, model, version)) model_metadata(ex);
        return 1;
    }
    if (strcmp(action, "ready") == 0) {
        ex->route = version ? "/v2/models/{m}/versions/{v}/ready" : "/v2/models/{m}/ready";
        if (!method_is(ex, "GET")) return respond_method(ex, "GET");
        if (exchange_acquire(ex, model, version)) {
            json_t *obj = json_pack("{s:s,s:b}", "name", model, "ready", 1);
            respond_jansson(ex, MHD_HTTP_OK, obj);
        }
        return 1;
    }
    if (strcmp(action, "infer") == 0) {
        ex->route = version ? "/v2/models/{m}/versions/{v}/infer" : "/v2/models/{m}/infer";
        if (!method_is(ex, "POST")) return respond_method(ex, "POST");
        infer_start(ex, model, version);
        return 1;
    }
    return 0;
}

typedef struct index_ctx {
    json_t *list;
    int ready_only;
} index_ctx;

static void index_item(const repository_item *item, void *user) {
    index_ctx *c = user;
    if (c->ready_only && item->state != MODEL_READY) return;
    char version[24] = "";
    if (item->version) snprintf(version, sizeof version, "%lld", (long long)item->version);
    json_array_append_new(c->list, json_pack("{s:s,s:s,s:s,s:s}", "name", item->name, "version", version, "state",
                                             model_state_name(item->state), "reason", item->reason));
}

/* The JSON body of a repository request: empty or an object. */
static json_t *body_object(http_exchange *ex) {
    if (ex->body.len == 0) return json_object();
    json_t *obj = json_loadb(ex->body.data, ex->body.len, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        respond_error_code(ex, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return obj;
}

static int route_repository(http_exchange *ex, const route_path *p) {
    if (p->n == 3 && strcmp(p->seg[2], "index") == 0) {
        ex->route = "/v2/repository/index";
        if (!method_is(ex, "POST") && !method_is(ex, "GET")) return respond_method(ex, "POST");
        json_t *req = body_object(ex);
        if (!req) return 1;
        index_ctx c = {json_array(), json_is_true(json_object_get(req, "ready"))};
        json_decref(req);
        repository_each(ex->server->repo, index_item, &c);
        respond_jansson(ex, MHD_HTTP_OK, c.list);
        return 1;
    }
    if (p->n != 5 || strcmp(p->seg[2], "models") != 0) return 0;
    int load = strcmp(p->seg[4], "load") == 0;
    if (!load && strcmp(p->seg[4], "unload") != 0) return 0;
    ex->route = load ? "/v2/repository/models/{m}/load" : "/v2/repository/models/{m}/unload";
    if (!method_is(ex, "POST")) return respond_method(ex, "POST");
    json_t *req = body_object(ex);
    if (!req) return 1;
    json_decref(req);
    snprintf(ex->model, sizeof ex->model, "%.127s", p->seg[3]);
    vigil_error err = {0};
    vigil_status st = load ? repository_load(ex->server->repo, p->seg[3], &err)
                           : repository_unload(ex->server->repo, p->seg[3], &err);
    if (st) respond_error(ex, st, err.message);
    else respond_json(ex, MHD_HTTP_OK, "{}");
    return 1;
}

/* POST /api/v1/inference: the v2 body plus "model" (and optional "version"). */
static int route_seed_inference(http_exchange *ex) {
    ex->route = "/api/v1/inference";
    if (!method_is(ex, "POST")) return respond_method(ex, "POST");
    /* The skeleton: the request without its tensors, which infer_parse reads after. */
    vigil_error err = {0};
    json_t *root = infer_json_skeleton(ex->body.data ? ex->body.data : "", ex->body.len, JSON_DISABLE_EOF_CHECK, &err);
    const char *model = json_string_value(json_object_get(root, "model"));
    const json_t *jversion = json_object_get(root, "version");
    int64_t version = 0;
    int version_ok = !jversion || (json_is_integer(jversion) && (version = json_integer_value(jversion)) >= 1) ||
                     (json_is_string(jversion) &&
                      repository_parse_version(json_string_value(jversion), json_string_length(jversion), &version));
    if (!root) respond_error(ex, err.status, err.message);
    else if (!model) respond_error_code(ex, MHD_HTTP_BAD_REQUEST, "the body needs \"model\": the model's name");
    else if (!version_ok) respond_error_code(ex, MHD_HTTP_BAD_REQUEST, "\"version\": " REPOSITORY_VERSION_RULE);
    else infer_start(ex, model, version);
    json_decref(root);
    return 1;
}

int routes_v2(http_exchange *ex, const route_path *p) {
    if (p->n == 3 && strcmp(p->seg[0], "api") == 0 && strcmp(p->seg[1], "v1") == 0 &&
        strcmp(p->seg[2], "inference") == 0)
        return route_seed_inference(ex);
    if (p->n < 1 || strcmp(p->seg[0], "v2") != 0) return 0;
    if (p->n == 1) {
        ex->route = "/v2";
        if (!method_is(ex, "GET")) return respond_method(ex, "GET");
        json_t *obj = json_pack("{s:s,s:s,s:[s,s]}", "name", "vigil", "version", VIGIL_VERSION, "extensions",
                                "model_repository", "binary_tensor_data");
        respond_jansson(ex, MHD_HTTP_OK, obj);
        return 1;
    }
    if (p->n >= 3 && strcmp(p->seg[1], "models") == 0) return route_model(ex, p);
    if (p->n >= 3 && strcmp(p->seg[1], "repository") == 0) return route_repository(ex, p);
    return 0;
}
