/*
 * otlp.c - finished requests to an OTLP ExportTraceServiceRequest (see
 * otlp.h).
 *
 * A nested message is written in place: its tag, five bytes kept for its
 * length, then its fields; when it ends the length is known, written as the
 * shortest varint, and the body moved back over the bytes not needed.  The
 * bodies here are small (a span is a few hundred bytes), so the moves cost
 * less than sizing every message first.
 *
 * Field numbers (opentelemetry-proto):
 *   ExportTraceServiceRequest: resource_spans 1
 *   ResourceSpans: resource 1, scope_spans 2
 *   Resource: attributes 1
 *   ScopeSpans: scope 1, spans 2;  InstrumentationScope: name 1, version 2
 *   Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5,
 *         kind 6, start_time_unix_nano 7 (fixed64), end_time_unix_nano 8
 *         (fixed64), attributes 9, status 15
 *   Status: message 2, code 3 (UNSET 0, OK 1, ERROR 2)
 *   KeyValue: key 1, value 2;  AnyValue: string 1, bool 2, int 3
 *   SpanKind: INTERNAL 1, SERVER 2
 */
#include "serve/otlp.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ protobuf */

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2 };
#define LEN_RESERVED 5 /* a varint of up to 2^35 - 1: any message we write */

static size_t varint_put(uint8_t *out, uint64_t v) {
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        out[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static void pb_varint(textbuf *b, uint64_t v) {
    uint8_t buf[10];
    textbuf_append(b, buf, varint_put(buf, v));
}

static void pb_tag(textbuf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static void pb_bytes(textbuf *b, int field, const void *data, size_t n) {
    pb_tag(b, field, WIRE_LEN);
    pb_varint(b, n);
    textbuf_append(b, data, n);
}

static void pb_string(textbuf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

static void pb_uint(textbuf *b, int field, uint64_t v) {
    pb_tag(b, field, WIRE_VARINT);
    pb_varint(b, v);
}

static void pb_fixed64(textbuf *b, int field, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    pb_tag(b, field, WIRE_FIXED64);
    textbuf_append(b, le, sizeof le);
}

/* Opens a nested message; returns where its length goes (for pb_end). */
static size_t pb_begin(textbuf *b, int field) {
    static const uint8_t room[LEN_RESERVED];
    pb_tag(b, field, WIRE_LEN);
    size_t at = b->len;
    textbuf_append(b, room, sizeof room);
    return at;
}

static void pb_end(textbuf *b, size_t at) {
    if (b->status) return;
    size_t body = b->len - at - LEN_RESERVED;
    uint8_t len[10];
    size_t n = varint_put(len, body);
    memmove(b->data + at + n, b->data + at + LEN_RESERVED, body);
    memcpy(b->data + at, len, n);
    b->len -= LEN_RESERVED - n;
}

/* ------------------------------------------------------------ attributes */

static void attr_string(textbuf *b, int field, const char *key, const char *value) {
    size_t kv = pb_begin(b, field);
    pb_string(b, 1, key);
    size_t any = pb_begin(b, 2);
    pb_string(b, 1, value);
    pb_end(b, any);
    pb_end(b, kv);
}

static void attr_int(textbuf *b, int field, const char *key, int64_t value) {
    size_t kv = pb_begin(b, field);
    pb_string(b, 1, key);
    size_t any = pb_begin(b, 2);
    pb_uint(b, 3, (uint64_t)value);
    pb_end(b, any);
    pb_end(b, kv);
}

/* ------------------------------------------------------------ spans */

enum { KIND_INTERNAL = 1, KIND_SERVER = 2 };
enum { STATUS_UNSET = 0, STATUS_ERROR = 2 };
#define ATTRS 9 /* Span.attributes */

/* The fields every span has; opens the span and leaves it open for its
 * attributes (close with span_end). */
static size_t span_begin(textbuf *b, const trace_item *it, const uint8_t *span_id, const uint8_t *parent,
                         const char *name, int kind, int64_t start_ns, int64_t end_ns, int64_t offset) {
    size_t span = pb_begin(b, 2);
    pb_bytes(b, 1, it->req.self.trace_id, TRACE_ID_SIZE);
    pb_bytes(b, 2, span_id, TRACE_SPAN_ID_SIZE);
    if (it->req.tracestate[0]) pb_string(b, 3, it->req.tracestate);
    if (parent) pb_bytes(b, 4, parent, TRACE_SPAN_ID_SIZE);
    pb_string(b, 5, name);
    pb_uint(b, 6, (uint64_t)kind);
    if (end_ns < start_ns) end_ns = start_ns;
    pb_fixed64(b, 7, (uint64_t)(start_ns + offset));
    pb_fixed64(b, 8, (uint64_t)(end_ns + offset));
    return span;
}

static void span_status_error(textbuf *b, const char *message) {
    size_t st = pb_begin(b, 15);
    pb_string(b, 2, message);
    pb_uint(b, 3, STATUS_ERROR);
    pb_end(b, st);
}

/* A child of the server span over [start, end]; a span whose times were
 * not taken (0) is not written. */
static void child(textbuf *b, const trace_item *it, const char *name, int64_t start_ns, int64_t end_ns,
                  int64_t offset, int with_batch, int failed) {
    if (!start_ns || !end_ns) return;
    uint8_t id[TRACE_SPAN_ID_SIZE];
    tracecontext_random_id(id, sizeof id);
    size_t span = span_begin(b, it, id, it->req.self.span_id, name, KIND_INTERNAL, start_ns, end_ns, offset);
    if (it->model[0]) attr_string(b, ATTRS, "vigil.model", it->model);
    if (with_batch) {
        attr_int(b, ATTRS, "vigil.batch_size", it->req.batch_items);
        if (it->req.model_version > 0) attr_int(b, ATTRS, "vigil.model_version", it->req.model_version);
    }
    if (failed) span_status_error(b, "the job failed");
    pb_end(b, span);
}

/* OpenTelemetry's rule for server spans: a 5xx answer (and the gRPC codes
 * that mean the same) is the server's error; a 4xx is the client's, and
 * leaves the status unset. */
static int server_error(const trace_item *it) { return it->status >= 500; }

static void server_span(textbuf *b, const trace_item *it, int64_t offset) {
    const trace_request *r = &it->req;
    char name[160];
    if (it->grpc) snprintf(name, sizeof name, "%s", it->route[0] == '/' ? it->route + 1 : it->route);
    else snprintf(name, sizeof name, "%s %s", it->method, it->route);
    size_t span = span_begin(b, it, r->self.span_id, r->has_parent ? r->parent_span_id : NULL, name, KIND_SERVER,
                             r->start_ns, it->end_ns, offset);
    if (it->grpc) {
        const char *path = it->route[0] == '/' ? it->route + 1 : it->route;
        const char *slash = strchr(path, '/');
        char service[128];
        snprintf(service, sizeof service, "%.*s", slash ? (int)(slash - path) : (int)strlen(path), path);
        attr_string(b, ATTRS, "rpc.system", "grpc");
        attr_string(b, ATTRS, "rpc.service", service);
        attr_string(b, ATTRS, "rpc.method", slash ? slash + 1 : path);
        attr_int(b, ATTRS, "rpc.grpc.status_code", it->grpc_code);
    } else {
        attr_string(b, ATTRS, "http.request.method", it->method);
        attr_string(b, ATTRS, "http.route", it->route);
    }
    attr_int(b, ATTRS, "http.response.status_code", it->status);
    attr_string(b, ATTRS, "vigil.request_id", it->request_id);
    if (it->model[0]) attr_string(b, ATTRS, "vigil.model", it->model);
    if (r->model_version > 0) attr_int(b, ATTRS, "vigil.model_version", r->model_version);
    if (r->batch_items > 0) attr_int(b, ATTRS, "vigil.batch_size", r->batch_items);
    attr_string(b, ATTRS, "vigil.outcome", it->status < 400 ? "ok" : it->status < 500 ? "client_error" : "error");
    if (server_error(it)) {
        char message[64];
        if (it->grpc) snprintf(message, sizeof message, "gRPC status %d", it->grpc_code);
        else snprintf(message, sizeof message, "HTTP %d", it->status);
        span_status_error(b, message);
    }
    pb_end(b, span);
}

size_t otlp_spans(const trace_request *r) {
    size_t n = 1;
    if (r->enqueue_ns) n += 2; /* receive, queue */
    if (r->run_end_ns) n++;
    if (r->post_end_ns) n++;
    if (r->respond_ns) n++;
    return n;
}

static void item_spans(textbuf *b, const trace_item *it, int64_t offset) {
    const trace_request *r = &it->req;
    server_span(b, it, offset);
    child(b, it, "receive", r->start_ns, r->enqueue_ns, offset, 0, 0);
    child(b, it, "queue", r->enqueue_ns, r->run_start_ns ? r->run_start_ns : r->respond_ns, offset, 0, 0);
    child(b, it, "inference", r->run_start_ns, r->run_end_ns, offset, 1, r->job_failed);
    child(b, it, "postprocess", r->post_start_ns, r->post_end_ns, offset, 0, 0);
    child(b, it, "respond", r->respond_ns, it->end_ns, offset, 0, 0);
}

void otlp_encode(const otlp_resource *res, const trace_item *items, int64_t unix_offset_ns, textbuf *out) {
    size_t rs = pb_begin(out, 1);
    size_t resource = pb_begin(out, 1);
    attr_string(out, 1, "service.name", res->service_name);
    attr_string(out, 1, "service.version", res->service_version);
    attr_string(out, 1, "host.name", res->host_name);
    attr_string(out, 1, "vigil.node_type", res->node_type);
    attr_string(out, 1, "telemetry.sdk.language", "c");
    attr_string(out, 1, "telemetry.sdk.name", "vigil");
    pb_end(out, resource);
    size_t ss = pb_begin(out, 2);
    size_t scope = pb_begin(out, 1);
    pb_string(out, 1, "vigil");
    pb_string(out, 2, res->service_version);
    pb_end(out, scope);
    for (const trace_item *it = items; it; it = it->next) item_spans(out, it, unix_offset_ns);
    pb_end(out, ss);
    pb_end(out, rs);
}
