/*
 * grpc_kserve.c - inference.GRPCInferenceService (KServe v2 / Open Inference
 * Protocol, field-compatible with Triton's grpc_service.proto) and
 * grpc.health.v1.Health/Check.
 *
 * ModelInfer and ModelStreamInfer parse the request into a raw job (job_raw.h)
 * with
 * the same checks as the REST codec (names, datatypes, ranks, fixed
 * dimensions, batch range) and queue it on the model's scheduler; the reply
 * is built from the job's outputs on a completion thread.  A request that
 * sent raw_input_contents gets raw_output_contents (little-endian, one entry
 * per output in order: Triton's client reads only that); a request with
 * typed contents gets typed contents back.  Metadata, readiness, repository
 * and statistics calls answer at once from the repository and the metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "grpc/grpc_codec.h"
#include "grpc/grpc_internal.h"
#include "health.pb-c.h"
#include "inference.pb-c.h"


/* Unpacks a request of type desc, or fails the call and returns NULL. */
static void *unpack(gcall *c, const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len) {
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    vigil_error err = {0};
    if (!m) {
        char message[160];
        snprintf(message, sizeof message, "malformed %s message", desc->short_name);
        gcall_fail(c, VIGIL_ERR_PARSE, message);
    } else if (grpc_check_strings(desc, data, len, &err)) {
        protobuf_c_message_free_unpacked(m, NULL);
        gcall_fail(c, err.status, err.message);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------ infer: reply */

/* Typed contents for one output, in the arena (NULL when out of memory). */
static Inference__InferTensorContents *typed_contents(arena *a, const vigil_tensor *t, size_t count) {
    Inference__InferTensorContents *tc = arena_alloc(a, sizeof *tc, 16);
    if (!tc) return NULL;
    *tc = (Inference__InferTensorContents)INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    switch (t->dtype) {
    case VIGIL_DTYPE_F32: tc->n_fp32_contents = count; tc->fp32_contents = t->data; return tc;
    case VIGIL_DTYPE_F64: tc->n_fp64_contents = count; tc->fp64_contents = t->data; return tc;
    case VIGIL_DTYPE_I64: tc->n_int64_contents = count; tc->int64_contents = t->data; return tc;
    case VIGIL_DTYPE_I32: tc->n_int_contents = count; tc->int_contents = t->data; return tc;
    default: break;
    }
    int32_t *ints = NULL;
    uint32_t *uints = NULL;
    protobuf_c_boolean *bools = NULL;
    if (t->dtype == VIGIL_DTYPE_I8 && !(ints = arena_alloc(a, count * sizeof *ints + 1, 16))) return NULL;
    if (t->dtype == VIGIL_DTYPE_U8 && !(uints = arena_alloc(a, count * sizeof *uints + 1, 16))) return NULL;
    if (t->dtype == VIGIL_DTYPE_BOOL && !(bools = arena_alloc(a, count * sizeof *bools + 1, 16))) return NULL;
    for (size_t i = 0; i < count; i++) {
        if (ints) ints[i] = ((const int8_t *)t->data)[i];
        if (uints) uints[i] = ((const uint8_t *)t->data)[i];
        if (bools) bools[i] = ((const uint8_t *)t->data)[i] != 0;
    }
    if (ints) tc->n_int_contents = count, tc->int_contents = ints;
    if (uints) tc->n_uint_contents = count, tc->uint_contents = uints;
    if (bools) tc->n_bool_contents = count, tc->bool_contents = bools;
    return tc;
}

/* The response for a completed job, in w's arena (NULL: out of memory). */
static Inference__ModelInferResponse *infer_response(gwork *w, const grpc_infer_ctx *ctx) {
    const served_model *m = w->served;
    const job_raw *job = job_raw_of(w->job);
    arena *a = w->arena;
    size_t order[BACKEND_MAX_IO], n = ctx->n_selected;
    if (n) memcpy(order, ctx->selected, n * sizeof order[0]);
    else
        for (n = 0; n < job->n_outputs; n++) order[n] = n;
    int raw = ctx->raw;
    for (size_t k = 0; k < n; k++) raw |= job->outputs[order[k]].dtype == VIGIL_DTYPE_F16;
    Inference__ModelInferResponse *r = arena_alloc(a, sizeof *r, 16);
    Inference__ModelInferResponse__InferOutputTensor *outs = arena_calloc(a, n + 1, sizeof *outs);
    Inference__ModelInferResponse__InferOutputTensor **list = arena_calloc(a, n + 1, sizeof *list);
    ProtobufCBinaryData *raws = arena_calloc(a, n + 1, sizeof *raws);
    char *version = arena_alloc(a, 24, 1);
    if (!r || !outs || !list || !raws || !version) return NULL;
    *r = (Inference__ModelInferResponse)INFERENCE__MODEL_INFER_RESPONSE__INIT;
    snprintf(version, 24, "%lld", (long long)m->version);
    r->model_name = (char *)m->name;
    r->model_version = version;
    r->id = ctx->id;
    for (size_t k = 0; k < n; k++) {
        const vigil_tensor *t = &job->outputs[order[k]];
        Inference__ModelInferResponse__InferOutputTensor *o = &outs[k];
        *o = (Inference__ModelInferResponse__InferOutputTensor)INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
        o->name = (char *)m->io.outputs[order[k]]->name;
        o->datatype = (char *)infer_datatype_name(t->dtype);
        o->n_shape = (size_t)t->ndim;
        o->shape = (int64_t *)t->dims;
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) count *= (size_t)t->dims[d];
        if (raw) {
            raws[k].len = count * vigil_dtype_size(t->dtype);
            raws[k].data = t->data;
        } else if (!(o->contents = typed_contents(a, t, count))) {
            return NULL;
        }
        list[k] = o;
    }
    r->n_outputs = n;
    r->outputs = list;
    if (raw) {
        r->n_raw_output_contents = n;
        r->raw_output_contents = raws;
    }
    return r;
}

/* Answers a ModelInfer (unary) or one ModelStreamInfer message. */
static void infer_answer(gcall *c, uint64_t seq, int streaming, Inference__ModelInferResponse *r, vigil_status st,
                         const char *message) {
    if (!streaming) {
        if (st) gcall_fail(c, st, message);
        else gcall_reply(c, &r->base);
        return;
    }
    Inference__ModelStreamInferResponse s = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    if (st) s.error_message = (char *)message;
    else s.infer_response = r;
    gstream_answer(c, seq, &s.base);
}

/* The response cache, shared with REST: the key is built from the same
 * pieces in the same order as routes_v2.c's (kind "infer", model, version,
 * then each input's dtype, dims and bytes), so either front end hits what
 * the other stored.  Returns 1 with the job's outputs set on a hit. */
static int infer_cache_hit(gwork *w, grpc_infer_ctx *ctx) {
    void *blob;
    size_t size;
    return request_cache_lookup(gcall_server(w->call), w->served, "infer", w->job, w->arena, &ctx->cache_use,
                                &ctx->cache_key, &blob, &size) &&
           infer_outputs_unpack(blob, size, w->job);
}

static void infer_cache_store(gwork *w, const grpc_infer_ctx *ctx) {
    request_cache_store_outputs(gcall_server(w->call), &ctx->cache_key, w->job);
}

static void infer_finish(gwork *w) {
    const grpc_infer_ctx *ctx = w->ctx;
    if (w->job->status) {
        infer_answer(w->call, w->seq, ctx->streaming, NULL, w->job->status, w->job->error.message);
        return;
    }
    if (ctx->cache_use) infer_cache_store(w, ctx);
    Inference__ModelInferResponse *r = infer_response(w, ctx);
    if (!r) infer_answer(w->call, w->seq, ctx->streaming, NULL, VIGIL_ERR_NO_MEMORY, "out of memory building the response");
    else infer_answer(w->call, w->seq, ctx->streaming, r, VIGIL_OK, NULL);
}

static void infer_start(gcall *c, uint64_t seq, const uint8_t *data, size_t len, int streaming) {
    vigil_error err = {0};
    Inference__ModelInferRequest *req = inference__model_infer_request__unpack(NULL, len, data);
    gwork *w = req ? gwork_create(c, seq) : NULL;
    grpc_infer_ctx *ctx = w ? arena_calloc(w->arena, 1, sizeof *ctx) : NULL;
    int64_t version = 0;
    if (!req) vigil_error_set(&err, VIGIL_ERR_PARSE, "malformed ModelInferRequest message");
    else if (!ctx) vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    else if (grpc_check_strings(&inference__model_infer_request__descriptor, data, len, &err)) { /* err says why */
    } else if (!grpc_parse_version(req->model_version, &version))
        vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "model_version: " GRPC_VERSION_RULE);
    else if (!gwork_acquire(w, req->model_name, version, &err) &&
             grpc_infer_parse(w->served, req, request_config(gcall_server(c))->max_tensor_elements, w->arena, w->job, ctx, &err))
        metrics_inference(request_metrics(gcall_server(c)), w->served->name, METRICS_ERROR);
    if (req) inference__model_infer_request__free_unpacked(req, NULL);
    if (err.status) {
        infer_answer(c, seq, streaming, NULL, err.status, err.message);
        gwork_destroy(w);
        return;
    }
    ctx->streaming = streaming;
    w->ctx = ctx;
    if (infer_cache_hit(w, ctx)) { /* answered without the scheduler */
        ctx->cache_use = 0;
        infer_finish(w);
        gwork_destroy(w);
        return;
    }
    gwork_submit(w, infer_finish);
}

static void model_infer(gcall *c, uint64_t seq, const uint8_t *data, size_t len) { infer_start(c, seq, data, len, 0); }
static void model_stream_infer(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    infer_start(c, seq, data, len, 1);
}

/* ------------------------------------------------------------ health, metadata */

static void server_live(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__ServerLiveRequest *req = unpack(c, &inference__server_live_request__descriptor, data, len);
    if (!req) return;
    inference__server_live_request__free_unpacked(req, NULL);
    Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    r.live = 1;
    gcall_reply(c, &r.base);
}

static void server_ready(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__ServerReadyRequest *req = unpack(c, &inference__server_ready_request__descriptor, data, len);
    if (!req) return;
    inference__server_ready_request__free_unpacked(req, NULL);
    Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
    r.ready = gcall_serving(c) != 0;
    gcall_reply(c, &r.base);
}

/* Acquires name/version ("" = the served one) for a metadata call. */
static vigil_status acquire_for(gcall *c, const char *name, const char *version_text, served_model **out,
                                vigil_error *err) {
    int64_t version;
    *out = NULL;
    if (!grpc_parse_version(version_text, &version))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "version: " GRPC_VERSION_RULE);
    if (!*name) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "a model name is required");
    return repository_acquire(request_repository(gcall_server(c)), name, version, out, err);
}

static void model_ready(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__ModelReadyRequest *req = unpack(c, &inference__model_ready_request__descriptor, data, len);
    if (!req) return;
    vigil_error err = {0};
    served_model *m = NULL;
    vigil_status st = acquire_for(c, req->name, req->version, &m, &err);
    inference__model_ready_request__free_unpacked(req, NULL);
    if (st && st != VIGIL_ERR_UNAVAILABLE) { /* exists but not READY: ready = false */
        gcall_fail(c, st, err.message);
        return;
    }
    Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
    r.ready = m != NULL;
    repository_release(request_repository(gcall_server(c)), m);
    gcall_reply(c, &r.base);
}

static void server_metadata(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__ServerMetadataRequest *req =
        unpack(c, &inference__server_metadata_request__descriptor, data, len);
    if (!req) return;
    inference__server_metadata_request__free_unpacked(req, NULL);
    static char *extensions[] = {"model_repository", "statistics", "binary_tensor_data"};
    Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    r.name = "vigil";
    r.version = VIGIL_VERSION;
    r.n_extensions = 3;
    r.extensions = extensions;
    gcall_reply(c, &r.base);
}

static void tensor_metadata(const vigil_tensor_info *const *infos, size_t n, int batch_dim,
                            Inference__ModelMetadataResponse__TensorMetadata *md,
                            Inference__ModelMetadataResponse__TensorMetadata **list, int64_t (*shapes)[VIGIL_MAX_DIMS]) {
    for (size_t i = 0; i < n; i++) {
        md[i] = (Inference__ModelMetadataResponse__TensorMetadata)INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
        md[i].name = (char *)infos[i]->name;
        md[i].datatype = (char *)infer_datatype_name(infos[i]->dtype);
        for (int d = 0; d < infos[i]->ndim; d++) shapes[i][d] = d == 0 && batch_dim ? -1 : infos[i]->dims[d];
        md[i].n_shape = (size_t)infos[i]->ndim;
        md[i].shape = shapes[i];
        list[i] = &md[i];
    }
}

static void model_metadata(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__ModelMetadataRequest *req = unpack(c, &inference__model_metadata_request__descriptor, data, len);
    if (!req) return;
    served_model *m = NULL;
    vigil_error err = {0};
    vigil_status st = acquire_for(c, req->name, req->version, &m, &err);
    inference__model_metadata_request__free_unpacked(req, NULL);
    if (st) {
        gcall_fail(c, st, err.message);
        return;
    }
    Inference__ModelMetadataResponse__TensorMetadata md[2 * BACKEND_MAX_IO], *list[2 * BACKEND_MAX_IO];
    int64_t shapes[2 * BACKEND_MAX_IO][VIGIL_MAX_DIMS];
    int batch_dim = m->config.max_batch_size > 1; /* as the REST metadata */
    size_t ni = m->io.n_inputs, no = m->io.n_outputs;
    tensor_metadata(m->io.inputs, ni, batch_dim, md, list, shapes);
    tensor_metadata(m->io.outputs, no, batch_dim, md + ni, list + ni, shapes + ni);
    char version[24];
    snprintf(version, sizeof version, "%lld", (long long)m->version);
    char *versions[1] = {version};
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    r.name = m->name;
    r.n_versions = 1;
    r.versions = versions;
    r.platform = "onnx";
    r.n_inputs = ni;
    r.inputs = list;
    r.n_outputs = no;
    r.outputs = list + ni;
    gcall_reply(c, &r.base);
    repository_release(request_repository(gcall_server(c)), m);
}

/* ------------------------------------------------------------ repository */

typedef struct index_ctx {
    Inference__RepositoryIndexResponse__ModelIndex *items;
    Inference__RepositoryIndexResponse__ModelIndex **list;
    char (*versions)[24];
    size_t n, cap;
    int ready_only;
    int names_only; /* first pass: count */
    char *names;    /* name storage, MODEL_NAME_MAX each */
    char *reasons;  /* 256 each */
} index_ctx;

static void index_item(const repository_item *item, void *user) {
    index_ctx *x = user;
    if (x->ready_only && item->state != MODEL_READY) return;
    if (x->names_only || x->n == x->cap) {
        x->n++;
        return;
    }
    Inference__RepositoryIndexResponse__ModelIndex *e = &x->items[x->n];
    *e = (Inference__RepositoryIndexResponse__ModelIndex)INFERENCE__REPOSITORY_INDEX_RESPONSE__MODEL_INDEX__INIT;
    char *name = x->names + x->n * MODEL_NAME_MAX, *reason = x->reasons + x->n * 256;
    snprintf(name, MODEL_NAME_MAX, "%s", item->name);
    snprintf(reason, 256, "%s", item->reason);
    x->versions[x->n][0] = '\0';
    if (item->version) snprintf(x->versions[x->n], 24, "%lld", (long long)item->version);
    e->name = name;
    e->version = x->versions[x->n];
    e->state = (char *)model_state_name(item->state);
    e->reason = reason;
    x->list[x->n] = e;
    x->n++;
}

static void repository_index(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__RepositoryIndexRequest *req = unpack(c, &inference__repository_index_request__descriptor, data, len);
    if (!req) return;
    repository *repo = request_repository(gcall_server(c));
    index_ctx x = {.ready_only = req->ready, .names_only = 1};
    inference__repository_index_request__free_unpacked(req, NULL);
    repository_each(repo, index_item, &x);
    x.cap = x.n + 16; /* models may appear between the passes */
    x.n = 0;
    x.names_only = 0;
    x.items = vigil_calloc(x.cap, sizeof *x.items);
    x.list = vigil_calloc(x.cap, sizeof *x.list);
    x.versions = vigil_calloc(x.cap, sizeof *x.versions);
    x.names = vigil_calloc(x.cap, MODEL_NAME_MAX);
    x.reasons = vigil_calloc(x.cap, 256);
    if (!x.items || !x.list || !x.versions || !x.names || !x.reasons) {
        gcall_fail(c, VIGIL_ERR_NO_MEMORY, "out of memory");
    } else {
        repository_each(repo, index_item, &x);
        Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
        r.n_models = x.n < x.cap ? x.n : x.cap;
        r.models = x.list;
        gcall_reply(c, &r.base);
    }
    vigil_free(x.items);
    vigil_free(x.list);
    vigil_free(x.versions);
    vigil_free(x.names);
    vigil_free(x.reasons);
}

/* Load and unload share everything but the repository call. */
/* What a deferred load or unload needs (in its work's arena). */
typedef struct load_work {
    char *model;
    int load;
} load_work;

static void load_or_unload_run(gwork *w) {
    const load_work *lw = w->ctx;
    gcall *c = w->call;
    const char *model = lw->model;
    int load = lw->load;
    vigil_error err = {0};
    repository *repo = request_repository(gcall_server(c));
    vigil_status st = !*model ? vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "model_name is required")
                      : load  ? repository_load(repo, model, &err)
                              : repository_unload(repo, model, &err);
    if (st) {
        gcall_fail(c, st, err.message);
    } else if (load) {
        Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
        gcall_reply(c, &r.base);
    } else {
        Inference__RepositoryModelUnloadResponse r = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
        gcall_reply(c, &r.base);
    }
}

/* A load takes seconds and an unload waits for the version's requests:
 * on a completion thread, not the poller's. */
static void load_or_unload(gcall *c, const char *model, int load) {
    gwork *w = gwork_create(c, 0);
    load_work *lw = w ? arena_calloc(w->arena, 1, sizeof *lw) : NULL;
    if (lw) lw->model = arena_strdup(w->arena, model);
    if (!lw || !lw->model) {
        gwork_destroy(w);
        gcall_fail(c, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    lw->load = load;
    w->ctx = lw;
    gwork_defer(w, load_or_unload_run);
}

static void repository_model_load(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__RepositoryModelLoadRequest *req =
        unpack(c, &inference__repository_model_load_request__descriptor, data, len);
    if (!req) return;
    load_or_unload(c, req->model_name, 1);
    inference__repository_model_load_request__free_unpacked(req, NULL);
}

static void repository_model_unload(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__RepositoryModelUnloadRequest *req =
        unpack(c, &inference__repository_model_unload_request__descriptor, data, len);
    if (!req) return;
    load_or_unload(c, req->model_name, 0);
    inference__repository_model_unload_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------ statistics */

/* One model's numbers, read back from the rendered metrics so that REST and
 * gRPC traffic are counted once, by the scheduler. */
typedef struct model_numbers {
    double success, fail, queue_count, queue_sum, compute_count, compute_sum, total_sum, batch_count, batch_sum;
} model_numbers;

/* The value of name{model="m",node_type="t"...} on the lines of text (0 when
 * absent). */
static double sample(const char *text, const char *node_type, const char *name, const char *model,
                     const char *extra) {
    char key[512];
    snprintf(key, sizeof key, "%s{model=\"%s\",node_type=\"%s\"%s", name, model, node_type, extra);
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, klen) == 0) {
            const char *space = strchr(line + klen, ' ');
            const char *eol = strchr(line + klen, '\n');
            if (space && (!eol || space < eol)) return strtod(space + 1, NULL);
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    return 0;
}

static void numbers_for(const char *text, const char *node_type, const char *model, model_numbers *n) {
    n->success = sample(text, node_type, "vigil_inference_requests_total", model, ",outcome=\"success\"}");
    n->fail = sample(text, node_type, "vigil_inference_requests_total", model, ",outcome=\"error\"}") +
              sample(text, node_type, "vigil_inference_requests_total", model, ",outcome=\"timeout\"}");
    n->queue_count = sample(text, node_type, "vigil_inference_queue_seconds_count", model, "}");
    n->queue_sum = sample(text, node_type, "vigil_inference_queue_seconds_sum", model, "}");
    n->compute_count = sample(text, node_type, "vigil_inference_compute_seconds_count", model, "}");
    n->compute_sum = sample(text, node_type, "vigil_inference_compute_seconds_sum", model, "}");
    n->total_sum = sample(text, node_type, "vigil_inference_total_seconds_sum", model, "}");
    n->batch_count = sample(text, node_type, "vigil_batch_size_count", model, "}");
    n->batch_sum = sample(text, node_type, "vigil_batch_size_sum", model, "}");
}

typedef struct stats_ctx {
    const char *want; /* "" = all */
    int64_t want_version;
    char names[64][MODEL_NAME_MAX];
    int64_t versions[64];
    size_t n;
} stats_ctx;

static void stats_item(const repository_item *item, void *user) {
    stats_ctx *x = user;
    if (item->state != MODEL_READY || x->n == 64) return;
    if (*x->want && strcmp(x->want, item->name) != 0) return;
    if (x->want_version && x->want_version != item->version) return;
    snprintf(x->names[x->n], MODEL_NAME_MAX, "%s", item->name);
    x->versions[x->n++] = item->version;
}

static uint64_t ns_of(double seconds) { return (uint64_t)(seconds * 1e9 + 0.5); }

static void model_statistics(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Inference__ModelStatisticsRequest *req = unpack(c, &inference__model_statistics_request__descriptor, data, len);
    if (!req) return;
    stats_ctx *x = vigil_calloc(1, sizeof *x);
    int64_t version = 0;
    int ok = grpc_parse_version(req->version, &version);
    if (x) {
        x->want = req->name;
        x->want_version = version;
        repository_each(request_repository(gcall_server(c)), stats_item, x);
    }
    int named = *req->name != 0;
    if (!x) gcall_fail(c, VIGIL_ERR_NO_MEMORY, "out of memory");
    vigil_error err = {0};
    int bad_name = named && repository_check_name(req->name, &err);
    if (!x) gcall_fail(c, VIGIL_ERR_NO_MEMORY, "out of memory");
    else if (bad_name) gcall_fail(c, err.status, err.message);
    else if (!ok) gcall_fail(c, VIGIL_ERR_INVALID_ARGUMENT, "version: " GRPC_VERSION_RULE);
    else if (named && x->n == 0) gcall_fail(c, VIGIL_ERR_NOT_FOUND, "no ready model with that name and version");
    inference__model_statistics_request__free_unpacked(req, NULL);
    if (!x || bad_name || !ok || (named && x->n == 0)) {
        vigil_free(x);
        return;
    }
    textbuf text;
    textbuf_init(&text, (size_t)64 << 20);
    metrics_render(request_metrics(gcall_server(c)), &text, 0);
    Inference__ModelStatistics *ms = vigil_calloc(x->n + 1, sizeof *ms);
    Inference__ModelStatistics **list = vigil_calloc(x->n + 1, sizeof *list);
    Inference__InferStatistics *is = vigil_calloc(x->n + 1, sizeof *is);
    Inference__StatisticDuration *d = vigil_calloc(6 * (x->n + 1), sizeof *d);
    char(*versions)[24] = vigil_calloc(x->n + 1, sizeof *versions);
    if (!ms || !list || !is || !d || !versions || text.status) {
        gcall_fail(c, VIGIL_ERR_NO_MEMORY, "out of memory");
    } else {
        for (size_t i = 0; i < x->n; i++) {
            model_numbers n;
            numbers_for(text.data, metrics_node_type(request_metrics(gcall_server(c))), x->names[i], &n);
            Inference__StatisticDuration *di = d + 6 * i;
            for (int k = 0; k < 6; k++) di[k] = (Inference__StatisticDuration)INFERENCE__STATISTIC_DURATION__INIT;
            di[0].count = (uint64_t)n.success, di[0].ns = ns_of(n.total_sum);
            di[1].count = (uint64_t)n.fail;
            di[2].count = (uint64_t)n.queue_count, di[2].ns = ns_of(n.queue_sum);
            di[4].count = (uint64_t)n.compute_count, di[4].ns = ns_of(n.compute_sum);
            is[i] = (Inference__InferStatistics)INFERENCE__INFER_STATISTICS__INIT;
            is[i].success = &di[0], is[i].fail = &di[1], is[i].queue = &di[2];
            is[i].compute_input = &di[3], is[i].compute_infer = &di[4], is[i].compute_output = &di[5];
            ms[i] = (Inference__ModelStatistics)INFERENCE__MODEL_STATISTICS__INIT;
            snprintf(versions[i], 24, "%lld", (long long)x->versions[i]);
            ms[i].name = x->names[i];
            ms[i].version = versions[i];
            ms[i].inference_count = (uint64_t)n.batch_sum;
            ms[i].execution_count = (uint64_t)n.batch_count;
            ms[i].inference_stats = &is[i];
            list[i] = &ms[i];
        }
        Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
        r.n_model_stats = x->n;
        r.model_stats = list;
        gcall_reply(c, &r.base);
    }
    textbuf_free(&text);
    vigil_free(ms);
    vigil_free(list);
    vigil_free(is);
    vigil_free(d);
    vigil_free(versions);
    vigil_free(x);
}

/* ------------------------------------------------------------ health */

static void health_check(gcall *c, uint64_t seq, const uint8_t *data, size_t len) {
    Grpc__Health__V1__HealthCheckRequest *req =
        unpack(c, &grpc__health__v1__health_check_request__descriptor, data, len);
    if (!req) return;
    static const char *const services[] = {"", "inference.GRPCInferenceService", "vigil.v1.Detection",
                                           "vigil.v1.HailoInference", "grpc.health.v1.Health"};
    int known = 0;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) known |= strcmp(req->service, services[i]) == 0;
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    if (!known) {
        gcall_fail(c, VIGIL_ERR_NOT_FOUND, "unknown service");
        return;
    }
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = gcall_serving(c) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    gcall_reply(c, &r.base);
}

#define KSERVE(name) "/inference.GRPCInferenceService/" name
const gmethod grpc_kserve_methods[] = {
    {KSERVE("ServerLive"), 0, server_live, NULL},
    {KSERVE("ServerReady"), 0, server_ready, NULL},
    {KSERVE("ModelReady"), 0, model_ready, NULL},
    {KSERVE("ServerMetadata"), 0, server_metadata, NULL},
    {KSERVE("ModelMetadata"), 0, model_metadata, NULL},
    {KSERVE("ModelInfer"), 0, model_infer, NULL},
    {KSERVE("ModelStreamInfer"), 1, model_stream_infer, NULL},
    {KSERVE("ModelStatistics"), 0, model_statistics, NULL},
    {KSERVE("RepositoryIndex"), 0, repository_index, NULL},
    {KSERVE("RepositoryModelLoad"), 0, repository_model_load, NULL},
    {KSERVE("RepositoryModelUnload"), 0, repository_model_unload, NULL},
    {NULL, 0, NULL, NULL},
};

const gmethod grpc_health_methods[] = {
    {"/grpc.health.v1.Health/Check", 0, health_check, NULL},
    {NULL, 0, NULL, NULL},
};
