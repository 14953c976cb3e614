/*
 * config.c - the settings table and the three loaders (YAML, environment,
 * flags) that all write through it.
 *
 * The YAML loader walks libyaml's event stream keeping a stack of mapping
 * keys; a scalar whose joined path ("http.port") matches a table entry is
 * parsed by that entry's type, anything else is an error carrying the file
 * and line.  Sequences are not used by any setting and are rejected.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "core/alloc.h"

typedef enum { SETTING_INT, SETTING_STRING, SETTING_RATIO } setting_type;

typedef struct setting {
    const char *path; /* YAML path; env and flag names derive from it */
    setting_type type;
    size_t offset;
    size_t size;      /* strings: buffer size */
    int64_t min, max; /* ints: inclusive range */
    const char *choices; /* strings: "a|b|c" or NULL for free text */
    const char *help;
} setting;

#define INT_SETTING(p, field, lo, hi, h) \
    {p, SETTING_INT, offsetof(vigil_config, field), sizeof(int64_t), lo, hi, NULL, h}
/* A fraction in [0, 1], held as a double. */
#define RATIO_SETTING(p, field, h) {p, SETTING_RATIO, offsetof(vigil_config, field), sizeof(double), 0, 1, NULL, h}
#define STR_SETTING(p, field, ch, h) \
    {p, SETTING_STRING, offsetof(vigil_config, field), sizeof(((vigil_config *)0)->field), 0, 0, ch, h}

static const setting settings[] = {
    STR_SETTING("host", host, NULL, "address to listen on"),
    INT_SETTING("http.port", http_port, 0, 65535, "HTTP port (0 picks a free port)"),
    INT_SETTING("http.threads", http_threads, 1, 256, "HTTP I/O threads"),
    INT_SETTING("http.max_connections", max_connections, 1, 1000000,
                "open HTTP connections at once (more wait in the listen backlog)"),
    INT_SETTING("http.idle_timeout_s", idle_timeout_s, 1, 86400, "an idle HTTP connection is closed after this"),
    INT_SETTING("http.max_body_bytes", max_body_bytes, 1024, INT64_C(1) << 34, "largest request body accepted"),
    INT_SETTING("http.max_buffered_bytes", max_buffered_bytes, INT64_C(1) << 20, INT64_C(1) << 44,
                "request bodies held in memory at once, all connections together (503 beyond; default a quarter "
                "of the machine's memory)"),
    INT_SETTING("http.max_upload_bytes", max_upload_bytes, 1024, INT64_C(1) << 40,
                "largest model upload (PUT /api/v1/models/{m}/versions/{v})"),
    INT_SETTING("grpc.port", grpc_port, 0, 65535, "gRPC port"),
    INT_SETTING("grpc.threads", grpc_threads, 1, 8,
                "gRPC threads: they read and parse every call and run its handler; each also takes answers"),
    STR_SETTING("models", models_dir, NULL, "model repository directory"),
    STR_SETTING("repository.mode", repository_mode, "none|poll|explicit", "how models are loaded"),
    STR_SETTING("detect.default_model", default_detect_model, NULL,
                "detection model for requests that name none (empty: the only detection model ready)"),
    INT_SETTING("repository.poll_interval_ms", poll_interval_ms, 100, 3600000, "poll mode scan interval"),
    INT_SETTING("threads", threads, 0, 1024, "inference threads (0 = all cores)"),
    INT_SETTING("engine.batch_cap", engine_batch_cap, 0, 1024,
                "largest batch one compiled graph of the CPU engine runs; larger batches run as runs of it "
                "(0 = the thread count, at least 2)"),
    STR_SETTING("engine.float16", engine_float16, "auto|fp32|xnnpack",
                "a float16 model's arithmetic: fp32 between its float16 boundaries, or XNNPACK's f16 operators "
                "(auto: xnnpack where the CPU has float16 arithmetic, AVX512-FP16 or ARMv8.2 FP16, else fp32)"),
    STR_SETTING("log.level", log_level, "debug|info|warn|error", "minimum log level"),
    STR_SETTING("log.format", log_format, "json|text", "log line format"),
    INT_SETTING("limits.max_image_pixels", max_image_pixels, 1, INT64_C(1) << 32, "largest decoded image"),
    INT_SETTING("limits.max_tensor_elements", max_tensor_elements, 1, INT64_C(1) << 34,
                "elements in one input tensor of an infer request"),
    INT_SETTING("limits.max_queue", max_queue, 1, 1000000, "per-model queue bound"),
    INT_SETTING("limits.request_timeout_ms", request_timeout_ms, 1, 3600000, "per-request deadline"),
    INT_SETTING("limits.shutdown_timeout_ms", shutdown_timeout_ms, 0, 3600000, "drain time on SIGTERM"),
    INT_SETTING("cache.max_bytes", cache_max_bytes, 0, INT64_C(1) << 40,
                "response cache size for models with response_cache: true (0 = off)"),
    STR_SETTING("auth.mode", auth_mode, "off|jwt", "caller authentication"),
    STR_SETTING("auth.secret_file", auth_secret_file, NULL, "file holding the HS256 shared secret"),
    STR_SETTING("auth.public_key_file", auth_public_key_file, NULL, "PEM public key for RS256/ES256 tokens"),
    STR_SETTING("auth.jwks_file", auth_jwks_file, NULL, "JWKS file with RS256/ES256 keys selected by kid"),
    STR_SETTING("auth.issuer", auth_issuer, NULL, "required token issuer (iss)"),
    STR_SETTING("auth.audience", auth_audience, NULL, "required token audience (aud)"),
    INT_SETTING("auth.clock_skew_s", auth_clock_skew_s, 0, 3600, "leeway for token exp and nbf"),
    INT_SETTING("auth.open_health", auth_open_health, 0, 1, "1: health endpoints need no token"),
    INT_SETTING("auth.open_metrics", auth_open_metrics, 0, 1, "1: /metrics needs no token"),
    STR_SETTING("tls.cert_file", tls_cert_file, NULL, "PEM certificate chain: serve HTTPS"),
    STR_SETTING("tls.key_file", tls_key_file, NULL, "PEM private key for tls.cert_file"),
    STR_SETTING("tls.client_ca_file", tls_client_ca_file, NULL, "PEM CA bundle: require client certificates (mTLS)"),
    STR_SETTING("edge.role", edge_role, "off|edge|cloud", "edge-cloud hybrid role (also --role; docs/EDGE.md)"),
    STR_SETTING("metrics.node_type", metrics_node_type, "edge|cloud",
                "node_type label on the per-model metrics (empty: cloud under --role cloud, else edge)"),
    STR_SETTING("edge.data_dir", edge_data_dir, NULL, "directory for the edge parts' files (outbox, receiver store, frames)"),
    STR_SETTING("edge.receiver.model", edge_receiver_model, NULL, "cloud role: the model run on escalated frames"),
    STR_SETTING("edge.receiver.store", edge_receiver_store, NULL,
                "cloud role: idempotency store, sqlite:/path or a PostgreSQL connection string"),
    STR_SETTING("edge.receiver.frames_dir", edge_receiver_frames_dir, NULL, "cloud role: where escalated frames are kept"),
    INT_SETTING("edge.receiver.retention_s", edge_receiver_retention_s, 86400, INT64_C(315360000),
                "cloud role: keys and answers kept at least this long"),
    INT_SETTING("edge.receiver.claim_timeout_s", edge_receiver_claim_timeout_s, 1, 86400,
                "cloud role: an unfinished claim older than this is taken over"),
    INT_SETTING("edge.receiver.workers", edge_receiver_workers, 1, 256, "cloud role: receiver worker threads"),
    STR_SETTING("edge.node_id", edge_node_id, NULL, "this node's name in topics and events (empty: the host name)"),
    STR_SETTING("edge.cloud_url", edge_cloud_url, NULL, "edge: the cloud vigil's base URL (https://host:port)"),
    STR_SETTING("edge.ca_file", edge_ca_file, NULL, "edge: PEM CA bundle to verify the cloud (empty: the system's)"),
    STR_SETTING("edge.cert_file", edge_cert_file, NULL, "edge: PEM client certificate for the cloud (mTLS)"),
    STR_SETTING("edge.key_file", edge_key_file, NULL, "edge: PEM private key for edge.cert_file"),
    STR_SETTING("edge.token_file", edge_token_file, NULL, "edge: file holding the bearer token sent to the cloud"),
    INT_SETTING("edge.peak_events_per_s", edge_peak_events_per_s, 1, 100000,
                "edge: expected peak escalations per second (sizes the outbox for a 2-hour outage)"),
    INT_SETTING("edge.outbox.max_rows", edge_outbox_max_rows, 0, INT64_C(1) << 40,
                "edge: outbox rows per priority class (0: 2 hours at the peak rate)"),
    INT_SETTING("edge.outbox.max_bytes", edge_outbox_max_bytes, 0, INT64_C(1) << 50,
                "edge: outbox bytes per priority class (0: max_rows x 256 KiB)"),
    INT_SETTING("edge.outbox.ttl_s", edge_outbox_ttl_s, 0, INT64_C(1) << 32,
                "edge: events older than this are expired unsent (0: never)"),
    INT_SETTING("edge.queue_max", edge_queue_max, 1, 1000000,
                "edge: escalations waiting to be committed (more are dropped and counted)"),
    STR_SETTING("edge.mqtt.host", edge_mqtt_host, NULL, "the MQTT broker of the link monitor"),
    INT_SETTING("edge.mqtt.port", edge_mqtt_port, 1, 65535, "the MQTT broker's port"),
    INT_SETTING("edge.mqtt.keepalive_s", edge_mqtt_keepalive_s, 5, 3600,
                "MQTT keepalive (libmosquitto's least is 5): a silent cut of the broker connection is noticed "
                "within 2 x this"),
    INT_SETTING("edge.mqtt.reconnect_max_ms", edge_mqtt_reconnect_max_ms, 500, 3600000,
                "cap of the broker reconnect backoff (doubling from 0.5 s, jittered); bounds how late a "
                "returning link is seen"),
    STR_SETTING("edge.mqtt.username", edge_mqtt_username, NULL, "broker user name (empty: none)"),
    STR_SETTING("edge.mqtt.password_file", edge_mqtt_password_file, NULL, "file holding the broker password"),
    STR_SETTING("edge.mqtt.ca_file", edge_mqtt_ca_file, NULL, "PEM CA bundle: TLS to the broker, verified"),
    STR_SETTING("edge.mqtt.cert_file", edge_mqtt_cert_file, NULL, "PEM client certificate for the broker"),
    STR_SETTING("edge.mqtt.key_file", edge_mqtt_key_file, NULL, "PEM private key of edge.mqtt.cert_file"),
    STR_SETTING("edge.mqtt.prefix", edge_mqtt_prefix, NULL, "topic prefix of heartbeats, status and verdicts"),
    INT_SETTING("edge.heartbeat_ms", edge_heartbeat_ms, 10, 3600000, "cloud: heartbeat period; edge: expected period"),
    INT_SETTING("edge.heartbeat_missed", edge_heartbeat_missed, 1, 1000, "edge: heartbeats missed before offline"),
    INT_SETTING("edge.heartbeat_rise", edge_heartbeat_rise, 1, 1000,
                "edge: heartbeats in a row (and a cloud probe) before online again"),
    INT_SETTING("edge.uplink.concurrency", edge_uplink_concurrency, 1, 64, "edge: uploads in flight at once"),
    INT_SETTING("edge.uplink.timeout_ms", edge_uplink_timeout_ms, 100, 3600000, "edge: bound on one upload"),
    INT_SETTING("edge.uplink.backoff_base_ms", edge_uplink_backoff_base_ms, 1, 3600000,
                "edge: first retry delay (exponential, full jitter)"),
    INT_SETTING("edge.uplink.backoff_max_ms", edge_uplink_backoff_max_ms, 1, 86400000, "edge: longest retry delay"),
    STR_SETTING("edge.upload_log_file", edge_upload_log_file, NULL,
                "edge: append one line per upload attempt here (empty: none)"),
    STR_SETTING("edge.test_clock_file", edge_test_clock_file, NULL,
                "tests only: a file holding milliseconds added to the edge clock"),
    INT_SETTING("tracing.enabled", tracing_enabled, 0, 1, "1: record spans and export them over OTLP/HTTP"),
    STR_SETTING("tracing.endpoint", tracing_endpoint, NULL,
                "OTLP/HTTP collector base URL (spans are POSTed to {endpoint}/v1/traces)"),
    RATIO_SETTING("tracing.sampling_ratio", tracing_sampling_ratio,
                  "share of new traces recorded; a caller's sampled flag is honoured"),
    STR_SETTING("tracing.service_name", tracing_service_name, NULL, "service.name of the exported spans"),
    INT_SETTING("tracing.queue_size", tracing_queue_size, 1, 1000000, "spans waiting for export (more are dropped)"),
    INT_SETTING("tracing.batch_size", tracing_batch_size, 1, 100000, "spans per export request"),
    INT_SETTING("tracing.flush_interval_ms", tracing_flush_interval_ms, 1, 3600000,
                "longest wait before a partial batch is exported"),
    INT_SETTING("tracing.timeout_ms", tracing_timeout_ms, 1, 600000, "bound on one export request"),
    STR_SETTING("stream.mqtt.host", stream_mqtt_host, NULL,
                "broker of the streams' events (empty: edge.mqtt.host under an edge.role, else no MQTT)"),
    INT_SETTING("stream.mqtt.port", stream_mqtt_port, 0, 65535, "its port (0: edge.mqtt.port)"),
    STR_SETTING("stream.mqtt.prefix", stream_mqtt_prefix, NULL,
                "topic prefix: <prefix>/streams/<name>/events (empty: edge.mqtt.prefix)"),
    INT_SETTING("stream.events_max", stream_events_max, 16, 1000000,
                "stream events (with their snapshots) kept for GET /api/v1/events"),
};
#define SETTING_COUNT (sizeof settings / sizeof settings[0])

/* VIGIL_ variables that belong to tools and tests, not to the server. */
/* VIGIL_HAILORT and VIGIL_HAILO_MULTI_PROCESS are read by the Hailo backend
 * when it opens (src/backends/hailo/), as `vigil device info` reads them
 * too: which libhailort to dlopen, and whether to go through HailoRT's
 * service (docs/HAILO.md). */
static const char *const env_foreign[] = {"VIGIL_SHARED_DIR", "VIGIL_BINARY", "VIGIL_SOURCE_DIR", "VIGIL_MODEL",
                                          "VIGIL_BUILD_DIR", "VIGIL_CONFIG", "VIGIL_HAILORT",
                                          "VIGIL_HAILO_MULTI_PROCESS"};

/* A quarter of the machine's memory, at least 256 MiB: an edge box of 2 GB
 * keeps three quarters for models and activations whatever clients send. */
static int64_t default_buffered_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t quarter = pages > 0 && page > 0 ? (int64_t)pages / 4 * page : 0;
    int64_t least = INT64_C(256) << 20;
    return quarter > least ? quarter : least;
}

void config_defaults(vigil_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->host, sizeof cfg->host, "0.0.0.0");
    cfg->http_port = 8000;
    cfg->grpc_port = 50051;
    cfg->grpc_threads = 1;
    snprintf(cfg->models_dir, sizeof cfg->models_dir, "./models");
    snprintf(cfg->repository_mode, sizeof cfg->repository_mode, "none");
    snprintf(cfg->engine_float16, sizeof cfg->engine_float16, "auto");
    cfg->poll_interval_ms = 2000;
    cfg->threads = 0;
    cfg->http_threads = 4;
    cfg->max_connections = 1024;
    cfg->idle_timeout_s = 60;
    snprintf(cfg->log_level, sizeof cfg->log_level, "info");
    snprintf(cfg->log_format, sizeof cfg->log_format, "json");
    cfg->max_body_bytes = 64 << 20;
    cfg->max_upload_bytes = INT64_C(2) << 30;
    cfg->max_buffered_bytes = default_buffered_bytes();
    cfg->max_image_pixels = 40000000;
    cfg->max_tensor_elements = INT64_C(1) << 26;
    cfg->max_queue = 256;
    cfg->request_timeout_ms = 30000;
    cfg->shutdown_timeout_ms = 10000;
    cfg->cache_max_bytes = 256 << 20;
    snprintf(cfg->auth_mode, sizeof cfg->auth_mode, "off");
    cfg->auth_clock_skew_s = 60;
    cfg->auth_open_health = 1;
    cfg->auth_open_metrics = 1;
    snprintf(cfg->edge_role, sizeof cfg->edge_role, "off");
    snprintf(cfg->edge_data_dir, sizeof cfg->edge_data_dir, "./data");
    cfg->edge_receiver_retention_s = 86400;
    cfg->edge_receiver_claim_timeout_s = 120;
    cfg->edge_receiver_workers = 4;
    cfg->edge_peak_events_per_s = 2;
    cfg->edge_outbox_ttl_s = 7 * 86400;
    cfg->edge_queue_max = 256;
    snprintf(cfg->edge_mqtt_host, sizeof cfg->edge_mqtt_host, "127.0.0.1");
    cfg->edge_mqtt_port = 1883;
    cfg->edge_mqtt_keepalive_s = 5;
    cfg->edge_mqtt_reconnect_max_ms = 2000;
    snprintf(cfg->edge_mqtt_prefix, sizeof cfg->edge_mqtt_prefix, "vigil");
    cfg->edge_heartbeat_ms = 1000;
    cfg->edge_heartbeat_missed = 3;
    cfg->edge_heartbeat_rise = 2;
    cfg->edge_uplink_concurrency = 2;
    cfg->edge_uplink_timeout_ms = 30000;
    cfg->edge_uplink_backoff_base_ms = 1000;
    cfg->edge_uplink_backoff_max_ms = 300000;
    snprintf(cfg->tracing_endpoint, sizeof cfg->tracing_endpoint, "http://127.0.0.1:4318");
    cfg->tracing_sampling_ratio = 1.0;
    snprintf(cfg->tracing_service_name, sizeof cfg->tracing_service_name, "vigil");
    cfg->tracing_queue_size = 2048;
    cfg->tracing_batch_size = 512;
    cfg->tracing_flush_interval_ms = 1000;
    cfg->tracing_timeout_ms = 2000;
    cfg->stream_events_max = 1024;
}

static int choice_allowed(const char *choices, const char *value) {
    size_t len = strlen(value);
    for (const char *at = choices; at && *at;) {
        const char *bar = strchr(at, '|');
        size_t n = bar ? (size_t)(bar - at) : strlen(at);
        if (n == len && strncmp(at, value, n) == 0) return 1;
        at = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* Parses value into cfg's field for s; where labels the source in messages. */
static vigil_status setting_assign(vigil_config *cfg, const setting *s, const char *value, const char *where,
                                   vigil_error *err) {
    char *field = (char *)cfg + s->offset;
    if (s->type == SETTING_INT) {
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: %s: expected an integer, got '%s'", where,
                                   s->path, value);
        if (v < s->min || v > s->max)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: %s: %lld is outside [%lld, %lld]", where,
                                   s->path, v, (long long)s->min, (long long)s->max);
        int64_t v64 = v;
        memcpy(field, &v64, sizeof v64);
        return VIGIL_OK;
    }
    if (s->type == SETTING_RATIO) {
        errno = 0;
        char *end;
        double v = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !(v >= 0 && v <= 1)) /* NaN fails the range too */
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: %s: expected a number in [0, 1], got '%s'",
                                   where, s->path, value);
        memcpy(field, &v, sizeof v);
        return VIGIL_OK;
    }
    if (s->choices && !choice_allowed(s->choices, value))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: %s: '%s' is not one of %s", where, s->path,
                               value, s->choices);
    if (strlen(value) >= s->size)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: %s: value longer than %zu bytes", where,
                               s->path, s->size - 1);
    snprintf(field, s->size, "%s", value);
    return VIGIL_OK;
}

/* Derived names: mode 'e' gives VIGIL_HTTP_PORT, mode 'f' gives http-port. */
static void setting_name(const setting *s, char mode, char *out, size_t size) {
    size_t n = 0;
    if (mode == 'e') n = (size_t)snprintf(out, size, "VIGIL_");
    for (const char *p = s->path; *p && n + 1 < size; p++) {
        char c = *p;
        if (c == '.' || c == '_') c = mode == 'e' ? '_' : '-';
        out[n++] = mode == 'e' ? (char)toupper((unsigned char)c) : c;
    }
    out[n] = '\0';
}

static const setting *setting_find_path(const char *path) {
    for (size_t i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings[i].path, path) == 0) return &settings[i];
    return NULL;
}

/* ---- YAML ---- */

#define YAML_DEPTH 8

typedef struct yaml_walk {
    vigil_config *cfg;
    const char *name;
    char keys[YAML_DEPTH][128];
    int depth;         /* number of open mappings */
    int expecting_key; /* per the innermost mapping */
    int key_pending[YAML_DEPTH + 1];
    int skip; /* > 0: inside the top-level `streams` list, read by src/stream/spec.c instead */
} yaml_walk;

static void yaml_path(const yaml_walk *w, char *out, size_t size) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < w->depth; i++)
        n += (size_t)snprintf(out + n, size > n ? size - n : 0, "%s%s", i ? "." : "", w->keys[i]);
}

static vigil_status yaml_scalar(yaml_walk *w, const yaml_event_t *ev, vigil_error *err) {
    const char *text = (const char *)ev->data.scalar.value;
    unsigned long line = (unsigned long)ev->start_mark.line + 1;
    if (w->depth == 0)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: the document must be a mapping", w->name, line);
    if (!w->key_pending[w->depth]) {
        snprintf(w->keys[w->depth - 1], sizeof w->keys[0], "%s", text);
        w->key_pending[w->depth] = 1;
        return VIGIL_OK;
    }
    w->key_pending[w->depth] = 0;
    char path[1024], where[1100];
    yaml_path(w, path, sizeof path);
    const setting *s = setting_find_path(path);
    if (!s && strcmp(path, "streams") == 0 && (!*text || strcmp(text, "~") == 0 || strcmp(text, "null") == 0))
        return VIGIL_OK; /* an empty streams list */
    if (!s) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: unknown key '%s'", w->name, line, path);
    snprintf(where, sizeof where, "%s:%lu", w->name, line);
    return setting_assign(w->cfg, s, text, where, err);
}

static vigil_status yaml_event(yaml_walk *w, const yaml_event_t *ev, vigil_error *err) {
    unsigned long line = (unsigned long)ev->start_mark.line + 1;
    if (w->skip) {
        if (ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT) w->skip++;
        if (ev->type == YAML_SEQUENCE_END_EVENT || ev->type == YAML_MAPPING_END_EVENT) w->skip--;
        if (!w->skip) w->key_pending[w->depth] = 0;
        return VIGIL_OK;
    }
    /* streams: a list of records that the table cannot hold (docs/STREAMS.md) */
    if (ev->type == YAML_SEQUENCE_START_EVENT && w->depth == 1 && w->key_pending[1] &&
        strcmp(w->keys[0], "streams") == 0) {
        w->skip = 1;
        return VIGIL_OK;
    }
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        if (w->depth > 0 && !w->key_pending[w->depth])
            return vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: a mapping cannot be a key", w->name, line);
        if (w->depth == YAML_DEPTH)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: nesting too deep", w->name, line);
        if (w->depth > 0) {
            char path[1024];
            yaml_path(w, path, sizeof path);
            if (setting_find_path(path))
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: '%s' takes a value, not a mapping",
                                       w->name, line, path);
        }
        w->depth++;
        w->key_pending[w->depth] = 0;
        return VIGIL_OK;
    case YAML_MAPPING_END_EVENT:
        w->depth--;
        if (w->depth > 0) w->key_pending[w->depth] = 0;
        return VIGIL_OK;
    case YAML_SCALAR_EVENT:
        return yaml_scalar(w, ev, err);
    case YAML_SEQUENCE_START_EVENT:
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: lists are not valid here", w->name, line);
    case YAML_ALIAS_EVENT:
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s:%lu: YAML aliases are not supported", w->name, line);
    default:
        return VIGIL_OK;
    }
}

vigil_status config_load_string(vigil_config *cfg, const char *text, size_t len, const char *name, vigil_error *err) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "%s: yaml init", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_walk walk = {.cfg = cfg, .name = name};
    vigil_status st = VIGIL_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: %s", name, (unsigned long)parser.problem_mark.line + 1,
                                 parser.problem ? parser.problem : "invalid YAML");
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        st = yaml_event(&walk, &ev, err);
        yaml_event_delete(&ev);
        if (st || done) break;
    }
    yaml_parser_delete(&parser);
    return st;
}

vigil_status config_load_file(vigil_config *cfg, const char *path, vigil_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "config %s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0;
    long size = (fseek(f, 0, SEEK_END) == 0) ? ftell(f) : -1;
    vigil_status st = VIGIL_OK;
    if (size < 0 || size > (1 << 20) || fseek(f, 0, SEEK_SET) != 0) {
        st = vigil_error_set(err, VIGIL_ERR_LIMIT, "config %s: unreadable or larger than 1 MiB", path);
    } else if (!(text = vigil_malloc((size_t)size + 1))) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "config %s: out of memory", path);
    } else {
        len = fread(text, 1, (size_t)size, f);
        st = config_load_string(cfg, text, len, path, err);
    }
    vigil_free(text);
    fclose(f);
    return st;
}

/* ---- environment and flags ---- */

vigil_status config_apply_env(vigil_config *cfg, char *const *envp, vigil_error *err) {
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, "VIGIL_", 6) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        size_t name_len = (size_t)(eq - *e);
        int foreign = 0;
        for (size_t i = 0; i < sizeof env_foreign / sizeof env_foreign[0]; i++)
            if (strlen(env_foreign[i]) == name_len && strncmp(*e, env_foreign[i], name_len) == 0) foreign = 1;
        if (foreign) continue;
        const setting *match = NULL;
        for (size_t i = 0; i < SETTING_COUNT && !match; i++) {
            char name[128];
            setting_name(&settings[i], 'e', name, sizeof name);
            if (strlen(name) == name_len && strncmp(*e, name, name_len) == 0) match = &settings[i];
        }
        if (!match)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "environment: unknown variable %.*s", (int)name_len,
                                   *e);
        char where[160];
        snprintf(where, sizeof where, "environment %.*s", (int)name_len, *e);
        vigil_status st = setting_assign(cfg, match, eq + 1, where, err);
        if (st) return st;
    }
    return VIGIL_OK;
}

/* Short flags for settings used often enough to earn one (`vigil serve
 * --role cloud`); the derived name works too. */
static const struct {
    const char *flag, *derived;
} flag_aliases[] = {{"role", "edge-role"}};

vigil_status config_apply_flag(vigil_config *cfg, const char *flag, const char *value, vigil_error *err) {
    for (size_t i = 0; i < sizeof flag_aliases / sizeof flag_aliases[0]; i++)
        if (strcmp(flag, flag_aliases[i].flag) == 0) flag = flag_aliases[i].derived;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        char name[128];
        setting_name(&settings[i], 'f', name, sizeof name);
        if (strcmp(name, flag) != 0) continue;
        char where[160];
        snprintf(where, sizeof where, "flag --%s", flag);
        return setting_assign(cfg, &settings[i], value, where, err);
    }
    return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "unknown flag --%s", flag);
}

vigil_status config_validate(const vigil_config *cfg, vigil_error *err) {
    if (strcmp(cfg->edge_role, "edge") == 0 && !cfg->edge_cloud_url[0])
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "edge.role is edge but edge.cloud_url is empty (flag --edge-cloud-url)");
    if (cfg->http_port != 0 && cfg->http_port == cfg->grpc_port)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "http.port and grpc.port are both %lld",
                               (long long)cfg->http_port);
    if (cfg->max_connections < cfg->http_threads)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "http.max_connections (%lld) is below http.threads (%lld): each I/O thread needs one",
                               (long long)cfg->max_connections, (long long)cfg->http_threads);
    if (cfg->max_buffered_bytes < cfg->max_body_bytes)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "http.max_buffered_bytes (%lld) is below http.max_body_bytes (%lld): a body of the "
                               "largest size could never be read",
                               (long long)cfg->max_buffered_bytes, (long long)cfg->max_body_bytes);
    if (cfg->models_dir[0] == '\0')
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "models: the repository directory is empty");
    return VIGIL_OK;
}

const char *config_node_type(const vigil_config *cfg) {
    if (strcmp(cfg->metrics_node_type, "cloud") == 0) return "cloud";
    if (strcmp(cfg->metrics_node_type, "edge") == 0) return "edge";
    return strcmp(cfg->edge_role, "cloud") == 0 ? "cloud" : "edge";
}

void config_describe(void (*fn)(const char *flag, const char *value_name, const char *help, void *user), void *user) {
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        char name[128];
        setting_name(&settings[i], 'f', name, sizeof name);
        const setting *s = &settings[i];
        fn(name, s->type == SETTING_INT ? "N" : s->type == SETTING_RATIO ? "0..1" : (s->choices ? s->choices : "TEXT"),
           s->help, user);
    }
}

void config_setting_sources(const char *path, char *out, size_t size) {
    const setting *s = setting_find_path(path);
    if (!s) {
        snprintf(out, size, "setting %s", path);
        return;
    }
    char flag[128], env[128];
    setting_name(s, 'f', flag, sizeof flag);
    setting_name(s, 'e', env, sizeof env);
    snprintf(out, size, "setting %s, flag --%s, variable %s", s->path, flag, env);
}
