/*
 * server.c - HTTP listener, request lifecycle and routing on libmicrohttpd.
 *
 * MHD runs its own epoll-driven thread pool (config http.threads); those I/O
 * threads only read bodies, parse, route and write responses.  Inference
 * goes to the model's scheduler: the handler suspends the connection
 * (MHD_suspend_connection) and the worker that completes the job resumes it,
 * after which MHD calls on_request again and the response is written.  Every
 * response carries X-Request-Id (the client's, or a generated one) and is
 * counted in /metrics and written to the access log (one line per request,
 * JSON or text as log.format says, through core/log.c).  Errors are
 * {"error": "..."} with the status from request_http_status (request.c),
 * the one table from vigil_status to HTTP and gRPC.
 *
 * Nothing reaches the library unchecked: the gate (http_gate.c) owns the
 * port, terminates TLS and reads every request through a strict HTTP/1.1
 * parser (http_strict.c) before libmicrohttpd sees it, over a socketpair.
 * What the gate refuses (ambiguous or malformed framing, oversized heads,
 * obs-fold, ...) is answered here, in the library's response order: the
 * gate writes a request of its own in place of the refused one and
 * gate_refused() answers it with the gate's status and message, as JSON
 * with X-Request-Id and Connection: close, so that bytes a proxy in front
 * may have read as a second request never run as one.  A body that crosses
 * http.max_body_bytes while it streams (chunked) is refused at once
 * (exchange_refuse_now).  A POST body of known length of GATE_DIRECT_MIN
 * bytes or more never crosses the pair: after the head's checks the gate
 * reads it from the client straight into the exchange's buffer while the
 * connection is suspended (exchange_direct_take).  docs/ARCHITECTURE.md
 * ("HTTP library") says why.
 *
 * Shutdown (server_stop): readiness goes to 503, the gate stops accepting,
 * every model's queue drains within limits.shutdown_timeout_ms, streamed
 * answers (stream_response.c) end their bodies, and the daemon stops once
 * the last response is out (the gate passes it on).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "serve/backend_report.h"
#include "serve/http_gate.h"
#include "serve/http_strict.h"
#include "serve/request.h"
#include "serve/server_internal.h"
#ifdef VIGIL_HAVE_WEBUI
#include "webui/webui.h"
#endif

#define ARENA_MIN_CAP (INT64_C(256) << 20)

/* ------------------------------------------------------------ responses */

void respond_take(http_exchange *ex, int code, const char *content_type, char *body, size_t len) {
    stream_discard(ex->stream); /* a streamed answer set before is replaced too */
    ex->stream = NULL;
    vigil_free(ex->resp);
    ex->resp = body;
    ex->resp_len = len;
    ex->code = code;
    ex->content_type = content_type;
    ex->have_response = 1;
}

void respond_json(http_exchange *ex, int code, const char *json) {
    size_t len = strlen(json);
    char *copy = vigil_strdup(json);
    respond_take(ex, copy ? code : MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", copy, copy ? len : 0);
}

void respond_jansson(http_exchange *ex, int code, void *obj) {
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        respond_error_code(ex, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory building the response");
        return;
    }
    respond_json(ex, code, text);
    free(text); /* jansson's allocation */
}

void respond_error_code(http_exchange *ex, int code, const char *message) {
    textbuf b;
    textbuf_init(&b, 4096);
    textbuf_printf(&b, "{\"error\":");
    json_append_string(&b, message);
    textbuf_printf(&b, "}");
    size_t len;
    char *body = textbuf_take(&b, &len);
    respond_take(ex, code, "application/json", body, body ? len : 0);
}

void respond_error(http_exchange *ex, vigil_status status, const char *message) {
    int code = request_http_status(status);
    respond_error_code(ex, code, message);
    if (code == MHD_HTTP_SERVICE_UNAVAILABLE) snprintf(ex->retry_after, sizeof ex->retry_after, "1");
}

int respond_method(http_exchange *ex, const char *allowed) {
    char message[64];
    snprintf(message, sizeof message, "use %s", allowed);
    respond_error_code(ex, MHD_HTTP_METHOD_NOT_ALLOWED, message);
    return 1;
}

int method_is(const http_exchange *ex, const char *method) {
    if (strcmp(method, "GET") == 0 && strcmp(ex->method, "HEAD") == 0) return 1;
    return strcmp(ex->method, method) == 0;
}

const char *exchange_query(http_exchange *ex, const char *key) {
    return MHD_lookup_connection_value(ex->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct query_scan {
    const char *const *known;
    const char *unknown; /* the first key not in known */
} query_scan;

static enum MHD_Result query_scan_key(void *user, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind, (void)value;
    query_scan *scan = user;
    for (const char *const *k = scan->known; *k; k++)
        if (strcmp(*k, key) == 0) return MHD_YES;
    scan->unknown = key;
    return MHD_NO;
}

const char *exchange_query_unknown(http_exchange *ex, const char *const *known) {
    query_scan scan = {.known = known};
    MHD_get_connection_values(ex->conn, MHD_GET_ARGUMENT_KIND, query_scan_key, &scan);
    return scan.unknown;
}

const char *exchange_header(http_exchange *ex, const char *key) {
    return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, key);
}

/* ------------------------------------------------------------ jobs */

int exchange_acquire(http_exchange *ex, const char *model, int64_t version) {
    vigil_error err = {0};
    snprintf(ex->model, sizeof ex->model, "%.127s", model);
    if (request_acquire(ex->server, model, version, &ex->served, &err)) {
        respond_error(ex, err.status, err.message);
        return 0;
    }
    return 1;
}

/* Worker thread: the job is complete; hand the connection back to MHD. */
static void exchange_job_done(sched_job *job) {
    http_exchange *ex = job->user;
    atomic_store(&ex->job_done, 1);
    MHD_resume_connection(ex->conn);
}

void exchange_submit(http_exchange *ex, void (*finish)(http_exchange *ex)) {
    sched_job *job = ex->job;
    job->arena = ex->arena;
    job->done = exchange_job_done;
    job->user = ex;
    job->deadline_ns = request_job_deadline(ex->server, -1);
    trace_request_tag_job(&ex->trace, job);
    ex->finish = finish;
    ex->state = EXCHANGE_WAITING;
    MHD_suspend_connection(ex->conn);
    vigil_error err = {0};
    if (request_submit(ex->server, ex->served, job, &err)) { /* answered when MHD calls back after the resume */
        respond_error(ex, err.status, err.message);
        MHD_resume_connection(ex->conn);
    }
}

/* ------------------------------------------------------------ routing */

static void split_path(const char *url, char *copy, size_t size, route_path *p) {
    snprintf(copy, size, "%s", url);
    p->n = 0;
    for (char *save = NULL, *s = strtok_r(copy, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (p->n == ROUTE_MAX_SEGMENTS) {
            p->n++; /* too deep for any route */
            break;
        }
        p->seg[p->n++] = s;
    }
}

static int route_health(http_exchange *ex, const route_path *p) {
    int live = (p->n == 1 && strcmp(p->seg[0], "healthz") == 0) ||
               (p->n == 3 && strcmp(p->seg[0], "v2") == 0 && strcmp(p->seg[1], "health") == 0 &&
                strcmp(p->seg[2], "live") == 0);
    int ready = (p->n == 1 && strcmp(p->seg[0], "readyz") == 0) ||
                (p->n == 3 && strcmp(p->seg[0], "v2") == 0 && strcmp(p->seg[1], "health") == 0 &&
                 strcmp(p->seg[2], "ready") == 0);
    if (!live && !ready) return 0;
    ex->route = live ? (p->n == 1 ? "/healthz" : "/v2/health/live") : (p->n == 1 ? "/readyz" : "/v2/health/ready");
    if (!method_is(ex, "GET")) return respond_method(ex, "GET");
    int v2 = p->n == 3;
    if (live) {
        respond_json(ex, MHD_HTTP_OK, v2 ? "{\"live\":true}" : "{\"status\":\"ok\"}");
    } else if (atomic_load(&ex->server->ready)) {
        respond_json(ex, MHD_HTTP_OK, v2 ? "{\"ready\":true}" : "{\"status\":\"ready\"}");
    } else {
        respond_json(ex, MHD_HTTP_SERVICE_UNAVAILABLE, v2 ? "{\"ready\":false}" : "{\"status\":\"not ready\"}");
        snprintf(ex->retry_after, sizeof ex->retry_after, "1");
    }
    return 1;
}

#ifdef VIGIL_HAVE_WEBUI
/* GET / and /ui/...: the browser UI embedded from web/ (src/webui). */
static int route_webui(http_exchange *ex) {
    const webui_file *f = webui_find(ex->url);
    if (!f) return 0;
    ex->route = "/ui";
    if (!method_is(ex, "GET")) return respond_method(ex, "GET");
    char *copy = vigil_malloc(f->size + 1);
    if (!copy) respond_error(ex, VIGIL_ERR_NO_MEMORY, "out of memory");
    else respond_take(ex, MHD_HTTP_OK, f->content_type, memcpy(copy, f->data, f->size + 1), f->size);
    return 1;
}
#endif

static void route(http_exchange *ex) {
    char copy[2048];
    route_path p;
    split_path(ex->url, copy, sizeof copy, &p);
    ex->route = "other";
#ifdef VIGIL_HAVE_WEBUI
    if (route_webui(ex)) return;
#endif
    if (route_health(ex, &p) || routes_v2(ex, &p) || routes_api(ex, &p) || routes_ext(ex)) return;
    ex->route = "unknown";
    char message[300];
    snprintf(message, sizeof message, "no route for %s %.200s", ex->method, ex->url);
    respond_error_code(ex, MHD_HTTP_NOT_FOUND, message);
}

/* ------------------------------------------------------------ exchange */

static void request_id_init(http_exchange *ex) {
    const char *given = exchange_header(ex, "X-Request-Id");
    request_id_make(given, given ? strlen(given) : 0, ex->request_id);
}

static http_exchange *exchange_create(vigil_server *server, struct MHD_Connection *conn, const char *url,
                                      const char *method) {
    http_exchange *ex = vigil_calloc(1, sizeof *ex);
    if (!ex) return NULL;
    int64_t cap = server->cfg.max_body_bytes * 4;
    ex->arena = arena_create(0, (size_t)(cap > ARENA_MIN_CAP ? cap : ARENA_MIN_CAP));
    if (!ex->arena) {
        vigil_free(ex);
        return NULL;
    }
    ex->server = server;
    ex->conn = conn;
    ex->url = url;
    ex->method = method;
    ex->start_ns = sched_now_ns();
    ex->route = "other";
    ex->upload_fd = -1;
    textbuf_init(&ex->body, (size_t)server->cfg.max_body_bytes);
    request_id_init(ex);
    trace_request_begin(server->tracer, &ex->trace, ex->start_ns, exchange_header(ex, "traceparent"),
                        exchange_header(ex, "tracestate"));
    atomic_fetch_add(&server->active, 1);
    return ex;
}

static void exchange_destroy(http_exchange *ex) {
    upload_abort(ex);
    stream_discard(ex->stream); /* one the library never took */
    repository_release(ex->server->repo, ex->served);
    atomic_fetch_sub(&ex->server->active, 1);
    arena_destroy(ex->arena);
    size_t body_cap = ex->body_room ? ex->body_block : ex->body.cap;
    char *body = textbuf_take(&ex->body, NULL);
    spares_give(&ex->server->body_spares, body ? body - ex->body_room : NULL, body_cap); /* or frees it */
    vigil_free(ex->resp);
    body_budget_release(&ex->server->bodies, &ex->body_held); /* after the frees: it may trim the heap */
    vigil_free(ex);
}

/* The request layer's finish step (metrics, access line) for an answer. */
static void exchange_finish(const http_exchange *ex) {
    request_record r = {.request_id = ex->request_id,
                        .method = ex->method,
                        .path = ex->url,
                        .route = ex->route,
                        .status = ex->code,
                        .bytes_in = ex->body.len,
                        .bytes_out = ex->resp_len,
                        .start_ns = ex->start_ns,
                        .model = ex->model,
                        .trace = &ex->trace};
    request_finish(ex->server, &r);
}

static enum MHD_Result exchange_send(http_exchange *ex) {
    struct MHD_Response *resp =
        ex->stream ? stream_response_create(ex)
                   : MHD_create_response_from_buffer(ex->resp_len, ex->resp ? ex->resp : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ex->content_type ? ex->content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", ex->request_id);
    char traceparent[TRACEPARENT_LEN + 1]; /* the answer names the request's span: the client can find it */
    if (trace_request_traceparent(&ex->trace, traceparent)) MHD_add_response_header(resp, "traceparent", traceparent);
    if (ex->retry_after[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ex->retry_after);
    if (ex->code == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vigil\"");
    if (ex->header_length[0]) MHD_add_response_header(resp, "Inference-Header-Content-Length", ex->header_length);
    for (size_t i = 0; i < ex->n_extra; i++) MHD_add_response_header(resp, ex->extra_name[i], ex->extra_value[i]);
    if (ex->close_after || ex->direct_pending || atomic_load(&ex->server->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(ex->conn, (unsigned)ex->code, resp);
    MHD_destroy_response(resp);
    ex->state = EXCHANGE_DONE;
    if (!ex->finish_at_completion) exchange_finish(ex); /* a stream's line waits for its end (on_completed) */
    return ret;
}

/* ------------------------------------------------------------ framing */

/* The library's end of the connection's socketpair: how the gate knows it. */
static int exchange_fd(http_exchange *ex) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

/* The gate (http_gate.c) refused what the client sent and wrote this
 * request, or this chunked body's last chunk, in its place (marked with
 * GATE_REFUSAL_FIELD as a header or a trailer; the gate passes no client
 * trailers on).  Sets the refusal the gate keeps as the response, with
 * Connection: close; returns 1 when it did.  The refusal is taken once, so
 * a client that sends the field itself, before a request of its own that
 * the gate refuses, only gets that refusal one request early on its own
 * connection. */
static int gate_refused(http_exchange *ex, enum MHD_ValueKind kind) {
    if (!MHD_lookup_connection_value(ex->conn, kind, GATE_REFUSAL_FIELD)) return 0;
    int code;
    char message[256];
    if (!gate_refusal_take(ex->server->gate, exchange_fd(ex), &code, message, sizeof message)) return 0;
    ex->close_after = 1;
    ex->route = "other";
    respond_error_code(ex, code, message);
    return 1;
}

/* Writes the response (an error set by respond_error_code) on the socket
 * itself and has MHD close the connection; for a refusal in the middle of
 * a body, where libmicrohttpd 0.9.75 accepts no response (it would read the
 * whole body first).  Nothing of this request has been written yet, and
 * the caller runs on the connection's I/O thread, so the bytes go out
 * whole, in order, before the close.  The socket is the library's end of
 * the gate's socketpair (plain even under HTTPS: the gate holds the TLS
 * session), and the gate passes the answer on, then closes the client.
 * Returns MHD_NO (close). */
static enum MHD_Result exchange_refuse_now(http_exchange *ex) {
    char date[64];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    const char *reason = MHD_get_reason_phrase_for((unsigned)ex->code);
    textbuf b;
    textbuf_init(&b, 8192);
    textbuf_printf(&b,
                   "HTTP/1.1 %d %s\r\nConnection: close\r\nDate: %s\r\nContent-Type: application/json\r\n"
                   "X-Request-Id: %s\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                   ex->code, reason, date, ex->request_id, ex->retry_after[0] ? "Retry-After: " : "",
                   ex->retry_after, ex->retry_after[0] ? "\r\n" : "", ex->resp_len);
    textbuf_append(&b, ex->resp ? ex->resp : "", ex->resp_len);
    int fd = exchange_fd(ex);
    if (!b.status && fd >= 0) {
        const char *data = b.data;
        size_t left = b.len;
        int64_t deadline = sched_now_ns() + INT64_C(1000000000); /* a gate that reads nothing loses it */
        while (left > 0 && sched_now_ns() < deadline) {
            ssize_t n = send(fd, data, left, MSG_NOSIGNAL);
            if (n > 0) {
                data += n;
                left -= (size_t)n;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, 100);
            } else {
                break;
            }
        }
        shutdown(fd, SHUT_WR); /* the answer, then the end of the stream */
    }
    textbuf_free(&b);
    ex->state = EXCHANGE_DONE;
    exchange_finish(ex);
    return MHD_NO;
}

/* Reserves want bytes of http.max_buffered_bytes for ex's body (what it
 * already holds counts); returns 1, or 0 with a 503 (Retry-After) set. */
static int body_budget_hold_or_refuse(http_exchange *ex, size_t want) {
    vigil_server *server = ex->server;
    if (body_budget_hold(&server->bodies, &ex->body_held, want) == 0) return 1;
    char message[256];
    snprintf(message, sizeof message,
             "the request bodies being received would exceed http.max_buffered_bytes (%lld bytes for all "
             "connections together); retry later",
             (long long)server->cfg.max_buffered_bytes);
    respond_error(ex, VIGIL_ERR_UNAVAILABLE, message);
    return 0;
}

int exchange_is_octet_stream(const char *ctype) {
    static const char type[] = "application/octet-stream";
    if (!ctype || strncasecmp(ctype, type, sizeof type - 1) != 0) return 0;
    char next = ctype[sizeof type - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

/* Room on each side of a direct octet-stream body, as a share of its size:
 * a quarter covers the padding rows of frames down to half the input's
 * height (640x480 into 640x640 needs a sixth above and a sixth below). */
#define BODY_ROOM_DIVISOR 4

/* Sizes the body buffer from Content-Length, or refuses the body; returns 1
 * when it answered.  A body whose declared length is over the limit is
 * answered 413 before it is read (MHD then closes the connection); a body
 * without a length (chunked) is refused in on_request the moment it crosses
 * the limit (exchange_refuse_now).  A body within the limit gets its whole
 * buffer at once instead of growing through a dozen copies. */
static int size_body_or_refuse(http_exchange *ex) {
    const char *length = exchange_header(ex, ex->direct_len ? GATE_BODY_FIELD : MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!length) return 0;
    char *end;
    unsigned long long n = strtoull(length, &end, 10);
    if (end == length || *end) return 0;
    if (n <= (unsigned long long)ex->server->cfg.max_body_bytes) {
        /* a decoded frame's: room for its padding on both sides (body_room) */
        size_t room = ex->direct_len && exchange_is_octet_stream(exchange_header(ex, MHD_HTTP_HEADER_CONTENT_TYPE))
                          ? ((size_t)n / BODY_ROOM_DIVISOR + 63) & ~(size_t)63
                          : 0;
        size_t need = (size_t)n + 1 + 2 * room;
        if (n && !body_budget_hold_or_refuse(ex, need)) return 1;
        /* A kept buffer (pages already faulted in), else one of exactly
         * the body's size: a large one goes to the spares afterwards. */
        size_t cap = 0;
        char *buffer = n ? spares_take(&ex->server->body_spares, need, &cap) : NULL;
        if (!buffer && n >= SPARES_MIN_BYTES && (buffer = vigil_malloc(need))) cap = need;
        if (buffer && room) {
            ex->body_room = room;
            ex->body_block = cap;
            textbuf_adopt(&ex->body, buffer + room, (size_t)n + 1);
        } else if (buffer) {
            textbuf_adopt(&ex->body, buffer, cap);
        } else if (n) {
            textbuf_reserve(&ex->body, (size_t)n); /* on failure the appends report it */
        }
        return 0;
    }
    char message[128];
    snprintf(message, sizeof message, "request body of %llu bytes is larger than http.max_body_bytes (%lld)", n,
             (long long)ex->server->cfg.max_body_bytes);
    respond_error_code(ex, MHD_HTTP_CONTENT_TOO_LARGE, message);
    return 1;
}

/* Runs on the headers, before any body is read: with mTLS the client
 * certificate must verify, with auth.mode jwt the bearer token must carry
 * the scope the route needs (src/auth/scopes.c).  Returns 1 to go on;
 * otherwise the refusal (401/403, {"error": ...}) is the response. */
static int exchange_authorized(http_exchange *ex) {
    vigil_server *server = ex->server;
    if (tls_client_ca_pem(server->tls) && !gate_peer_verified(server->gate, exchange_fd(ex))) {
        respond_error(ex, VIGIL_ERR_UNAUTHENTICATED, "a client certificate signed by tls.client_ca_file is required");
        return 0;
    }
    auth_result result;
    vigil_status st = auth_check(server->auth, exchange_header(ex, MHD_HTTP_HEADER_AUTHORIZATION),
                                 auth_http_scope(ex->method, ex->url), &result);
    if (st == VIGIL_OK) return 1;
    respond_error(ex, st, result.message);
    return 0;
}

/* The head carried GATE_BODY_FIELD (only the gate can write it: it
 * refuses a client's): the body is not in the library's stream but still
 * on the client's socket, and the gate reads it when asked to. */
static void exchange_direct_init(http_exchange *ex) {
    const char *field = exchange_header(ex, GATE_BODY_FIELD);
    if (!field) return;
    char *end;
    unsigned long long n = strtoull(field, &end, 10);
    if (end == field || *end || n == 0) return; /* never written so by the gate */
    ex->direct_len = (size_t)n; /* over http.max_body_bytes: refused (413) before anything is read */
    ex->direct_pending = 1;
}

/* Gate thread: the direct body is in (or will not come); hand the
 * connection back to the library. */
static void exchange_direct_done(void *user, vigil_status status) {
    http_exchange *ex = user;
    atomic_store(&ex->direct_status, status);
    MHD_resume_connection(ex->conn);
}

/* After the checks on the head passed and the buffer is sized: has the
 * gate read the body into it, the connection suspended meanwhile (like a
 * job, exchange_submit).  Returns MHD_YES; the answer comes on resume. */
static enum MHD_Result exchange_direct_take(http_exchange *ex) {
    if (ex->body.cap <= ex->direct_len) { /* textbuf_reserve failed */
        respond_error(ex, VIGIL_ERR_UNAVAILABLE, "out of memory buffering the request body");
        return exchange_send(ex);
    }
    ex->state = EXCHANGE_GATE_BODY;
    MHD_suspend_connection(ex->conn);
    if (gate_body_take(ex->server->gate, exchange_fd(ex), ex->body.data, ex->direct_len, exchange_direct_done, ex)) {
        atomic_store(&ex->direct_status, VIGIL_ERR_UNAVAILABLE); /* closed or stopping: answered on resume */
        MHD_resume_connection(ex->conn);
    }
    return MHD_YES;
}

/* Resumed after exchange_direct_take: goes on as if the body had come
 * through the library, or answers how it did not. */
static int exchange_direct_arrived(http_exchange *ex) {
    vigil_status status = atomic_load(&ex->direct_status);
    if (status == VIGIL_OK) {
        ex->body.len = ex->direct_len;
        ex->body.data[ex->body.len] = '\0';
        ex->direct_pending = 0;
        ex->state = EXCHANGE_BODY;
        return 1;
    }
    if (status == VIGIL_ERR_UNAVAILABLE) {
        respond_error(ex, status, "the server is stopping; retry on another instance or later");
        return 1;
    }
    return 0; /* the client left, or sent nothing for http.idle_timeout_s: closed without an answer, as before */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls) {
    vigil_server *server = cls;
    http_exchange *ex = *con_cls;
    (void)version; /* the gate let only HTTP/1.0 and HTTP/1.1 through */
    if (!ex) { /* first call: headers only */
        ex = exchange_create(server, conn, url, method);
        if (!ex) return MHD_NO;
        *con_cls = ex;
        atomic_fetch_add(&server->request_count, 1);
        if (gate_refused(ex, MHD_HEADER_KIND)) return exchange_send(ex);
        exchange_direct_init(ex);
        if (!exchange_authorized(ex)) return exchange_send(ex);
        upload_begin(ex);
        if (ex->upload_fd < 0 && !ex->upload_status && size_body_or_refuse(ex)) return exchange_send(ex);
        if (ex->direct_pending) return exchange_direct_take(ex); /* POST only: never an upload (PUT) */
        return MHD_YES;
    }
    if (*upload_size && ex->upload_fd >= 0) {
        upload_write(ex, upload_data, *upload_size);
        *upload_size = 0;
        if (ex->upload_status == VIGIL_ERR_LIMIT) { /* refused now, not after the rest of the model */
            respond_error(ex, ex->upload_status, ex->upload_error);
            return exchange_refuse_now(ex);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!body_budget_hold_or_refuse(ex, ex->body.len + *upload_size + 1)) { /* a chunked body growing */
            *upload_size = 0;
            return exchange_refuse_now(ex);
        }
        vigil_status st = textbuf_append(&ex->body, upload_data, *upload_size);
        *upload_size = 0;
        if (st) { /* a body without a length (chunked) that crossed the limit: refused as it crosses */
            char message[128];
            snprintf(message, sizeof message, "request body larger than http.max_body_bytes (%lld)",
                     (long long)server->cfg.max_body_bytes);
            if (st == VIGIL_ERR_LIMIT) respond_error_code(ex, MHD_HTTP_CONTENT_TOO_LARGE, message);
            else respond_error(ex, VIGIL_ERR_UNAVAILABLE, "out of memory buffering the request body");
            ex->route = "other";
            return exchange_refuse_now(ex);
        }
        return MHD_YES;
    }
    if (ex->state == EXCHANGE_WAITING) { /* resumed */
        if (atomic_load(&ex->job_done) && ex->job)
            trace_request_job(&ex->trace, ex->job, ex->served ? ex->served->version : 0);
        if (atomic_load(&ex->job_done) && ex->finish) ex->finish(ex);
        if (!ex->have_response) respond_error_code(ex, MHD_HTTP_INTERNAL_SERVER_ERROR, "no response");
        return exchange_send(ex);
    }
    if (ex->state == EXCHANGE_DONE) return MHD_YES;
    if (ex->state == EXCHANGE_GATE_BODY) {
        /* Resumed, the library calls as it did on the head: an answer
         * queued now would close the connection (libmicrohttpd takes it
         * for one given before the body), so the route runs on its next
         * call, the one that says the (empty) body is complete. */
        if (!exchange_direct_arrived(ex)) return MHD_NO;
        return ex->have_response ? exchange_send(ex) : MHD_YES;
    }
    if (gate_refused(ex, MHD_FOOTER_KIND)) return exchange_send(ex); /* the chunked body the gate ended */
    route(ex);
    if (ex->state == EXCHANGE_WAITING) return MHD_YES;
    return exchange_send(ex);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    http_exchange *ex = *con_cls;
    if (ex && ex->finish_at_completion) exchange_finish(ex); /* a streamed answer: all its bytes, its whole time */
    if (ex) exchange_destroy(ex);
    *con_cls = NULL;
}

/* ------------------------------------------------------------ lifecycle */

vigil_status server_create(const vigil_config *cfg, vigil_server **out, vigil_error *err) {
    vigil_server *server = vigil_calloc(1, sizeof *server);
    if (!server) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "server: out of memory");
    server->cfg = *cfg;
    pthread_mutex_init(&server->streams_lock, NULL);
    body_budget_init(&server->bodies, (size_t)cfg->max_buffered_bytes);
    spares_init(&server->body_spares);
    spares_init_sized(&server->frame_inputs, SPARES_SLOTS, FRAME_INPUTS_BYTES);
    vigil_status st = metrics_create(&server->metrics, config_node_type(cfg), err);
    if (!st) st = cache_create((size_t)cfg->cache_max_bytes, &server->cache, err);
    auth_settings auth;
    auth_settings_from_config(cfg, &auth);
    if (!st) st = auth_verifier_create(&auth, &server->auth, err);
    if (!st) st = tls_material_load(cfg, &server->tls, err);
    if (!st) st = repository_create(&server->cfg, server->metrics, &server->repo, err);
    if (!st) st = tracer_create(cfg, &server->tracer, err);
    if (!st && server->tracer) st = server_metrics_add(server, tracer_metrics, server->tracer, err);
    if (!st) st = server_metrics_add(server, backend_report_metrics, server->repo, err);
    if (st) {
        server_destroy(server);
        return st;
    }
    *out = server;
    return VIGIL_OK;
}

/* The gate's hand-over: the library takes the connection's end of the
 * socketpair with the client's address (access log, limits).  On failure
 * the library has closed fd. */
static int hand_over(void *user, int fd, const struct sockaddr *addr, socklen_t addr_len) {
    vigil_server *server = user;
    return MHD_add_connection(server->daemon, fd, addr, addr_len) == MHD_YES ? 0 : -1;
}

/* libmicrohttpd's messages go through vigil's log (in log.format).  While
 * the daemon starts they are kept instead: a failed start is reported once,
 * in vigil's words (server_start), not as MHD's raw "Failed to bind".
 * Its connections are the gate's socketpairs, which it takes for TCP (it is
 * given the client's address): its attempts to set TCP_NODELAY and TCP_CORK
 * on them fail with EOPNOTSUPP, which 0.9.75 reports on every response
 * rather than noting the socket is not TCP.  Those lines say nothing, and
 * neither does the failed write that is how a streamed answer learns that
 * its viewer left (stream_response.c). */
__attribute__((format(printf, 2, 0))) static void on_mhd_message(void *cls, const char *fmt, va_list ap) {
    vigil_server *server = cls;
    if (!atomic_load(&server->mhd_started)) {
        vsnprintf(server->listen_error, sizeof server->listen_error, fmt, ap);
        size_t len = strlen(server->listen_error);
        while (len && server->listen_error[len - 1] == '\n') server->listen_error[--len] = '\0';
        return;
    }
    if (strncmp(fmt, "Setting %s option to", 20) == 0 || strncmp(fmt, "Failed to push the data", 23) == 0 ||
        strncmp(fmt, "Failed to send the chunked response body", 40) == 0)
        return;
    if (log_min_level() <= LOG_WARN) log_vwrite(LOG_WARN, __FILE__, __LINE__, fmt, ap);
}

vigil_status server_port_check(const char *host, int64_t port, const char *what, const char *setting,
                               vigil_error *err) {
    if (port == 0) return VIGIL_OK; /* the kernel picks a free one */
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    socklen_t len;
    char sources[160];
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof *v6;
    } else {
        config_setting_sources("host", sources, sizeof sources);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "host '%s' is not an IPv4 or IPv6 address (%s)", host,
                               sources);
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return vigil_error_set(err, VIGIL_ERR_IO, "cannot open a socket: %s", strerror(errno));
    /* SO_REUSEADDR as the listeners themselves set it (a port whose old
     * connections linger in TIME_WAIT is free); never SO_REUSEPORT, which
     * would let this probe share the port with a running listener. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&addr, len);
    int bind_errno = errno;
    close(fd);
    if (rc == 0) return VIGIL_OK;
    config_setting_sources(setting, sources, sizeof sources);
    switch (bind_errno) {
    case EADDRINUSE:
        return vigil_error_set(err, VIGIL_ERR_EXISTS, "%s port %lld is already in use (%s)", what, (long long)port,
                               sources);
    case EACCES:
        return vigil_error_set(err, VIGIL_ERR_PERMISSION, "%s port %lld needs privileges this user lacks (%s)", what,
                               (long long)port, sources);
    case EADDRNOTAVAIL:
        config_setting_sources("host", sources, sizeof sources);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "host %s is not an address of this machine (%s)", host,
                               sources);
    default:
        return vigil_error_set(err, VIGIL_ERR_IO, "%s port %lld: cannot listen on %s: %s (%s)", what, (long long)port,
                               host, strerror(bind_errno), sources);
    }
}

/* The gate holds http.max_connections (http_gate.c); the library's own
 * limit is only a backstop and must never refuse a connection the gate let
 * in.  libmicrohttpd splits its limit evenly over its pool threads and picks
 * a connection's thread by socket number (fd % threads), and reaps a closed
 * connection a little after the gate has counted it free, so a limit of
 * max_connections could refuse, and reset, a client the gate admitted.
 * Every pool thread may therefore hold max_connections, plus one more for a
 * connection not yet reaped. */
static unsigned mhd_connection_limit(const vigil_config *cfg) {
    uint64_t threads = cfg->http_threads > 0 ? (uint64_t)cfg->http_threads : 1;
    uint64_t limit = ((uint64_t)cfg->max_connections + 1) * threads;
    return limit > 1000000 ? 1000000u : (unsigned)limit;
}

vigil_status server_start(vigil_server *server, vigil_error *err) {
    /* libmicrohttpd listens on nothing: the gate owns the port and hands
     * it each connection (http_gate.h). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET;
    vigil_status st = server_port_check(server->cfg.host, server->cfg.http_port, "HTTP", "http.port", err);
    if (st) return st;
    gate_options gate = {
        .host = server->cfg.host,
        .port = (uint16_t)server->cfg.http_port,
        .threads = (unsigned)server->cfg.http_threads, /* TLS and relaying scale as the library's threads do */
        .max_connections = (unsigned)server->cfg.max_connections,
        .idle_timeout_s = (unsigned)server->cfg.idle_timeout_s,
        .tls = server->tls,
        .hand_over = hand_over,
        .user = server,
    };
    st = gate_create(&gate, &server->gate, err);
    if (st) {
        /* The port may have been taken since the check above. */
        vigil_error taken = {0};
        if (server_port_check(server->cfg.host, server->cfg.http_port, "HTTP", "http.port", &taken)) *err = taken;
        return err->status;
    }
    server->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, server,
                                      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_message, server,
                                      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)server->cfg.http_threads,
                                      MHD_OPTION_NOTIFY_COMPLETED, on_completed, server,
                                      MHD_OPTION_UNESCAPE_CALLBACK, route_unescape, NULL, /* %00 kept: routes_v2.c */
                                      MHD_OPTION_CONNECTION_LIMIT, mhd_connection_limit(&server->cfg),
                                      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)server->cfg.idle_timeout_s,
                                      /* room for the largest head the gate lets through */
                                      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(4 * STRICT_HEAD_MAX),
                                      MHD_OPTION_END);
    if (!server->daemon)
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot start the HTTP server on %s:%lld: %s", server->cfg.host,
                               (long long)server->cfg.http_port,
                               server->listen_error[0] ? server->listen_error : "libmicrohttpd refused");
    st = gate_start(server->gate, err);
    if (st) return st;
    atomic_store(&server->mhd_started, 1);
    if (server->listen_error[0]) LOG_W("%s", server->listen_error); /* a warning while starting */
    server->http_port = gate_port(server->gate);
    LOG_I("listening on %s://%s:%u%s%s", server->tls ? "https" : "http", server->cfg.host, server->http_port,
          tls_client_ca_pem(server->tls) ? " (client certificates required)" : "",
          auth_enabled(server->auth) ? " (bearer tokens required)" : "");
    /* Live while models load; ready once the repository has started and
     * the caller's other front ends run (server_declare_ready). */
    return repository_start(server->repo, err);
}

void server_declare_ready(vigil_server *server) {
    atomic_store(&server->ready, 1);
    LOG_I("ready (repository %s, mode %s)", server->cfg.models_dir, server->cfg.repository_mode);
}

uint16_t server_http_port(const vigil_server *server) { return server->http_port; }

vigil_status server_reload_auth(vigil_server *server, vigil_error *err) {
    return auth_verifier_reload(server->auth, err);
}

vigil_status server_reload_tls(vigil_server *server, vigil_error *err) {
    return tls_material_reload(server->tls, err);
}

void server_stop(vigil_server *server) {
    if (!server || !server->daemon) return;
    atomic_store(&server->ready, 0);
    atomic_store(&server->stopping, 1);
    gate_stop_accepting(server->gate);
    /* A connection suspended while the gate reads its body would keep the
     * library from stopping: those bodies end now, answered 503. */
    gate_bodies_abort(server->gate, 2000);
    int64_t t0 = sched_now_ns();
    repository_drain(server->repo, server->cfg.shutdown_timeout_ms);
    /* Calls an added route answers later (routes_ext.c) must be resumed
     * before the daemon stops: MHD cannot stop with suspended connections. */
    int64_t deferred_deadline = sched_now_ns() + server->cfg.shutdown_timeout_ms * INT64_C(1000000);
    while (atomic_load(&server->deferred) > 0 && sched_now_ns() < deferred_deadline) usleep(5000);
    if (atomic_load(&server->deferred) > 0)
        LOG_W("%d deferred calls still unanswered at shutdown", atomic_load(&server->deferred));
    /* Streamed answers never end by themselves: end them (stream_response.c). */
    stream_end_all(server, 2000);
    /* Every job has completed; give the I/O threads a moment to write the answers. */
    int64_t deadline = sched_now_ns() + INT64_C(2000000000);
    while (atomic_load(&server->active) > 0 && sched_now_ns() < deadline) usleep(5000);
    MHD_stop_daemon(server->daemon);
    server->daemon = NULL;
    gate_drain(server->gate, 1000); /* the clients get what the library wrote last */
    tracer_stop(server->tracer, server->cfg.shutdown_timeout_ms); /* the last requests' spans go out */
    LOG_I("stopped after %lld requests (drained in %.0f ms)", (long long)atomic_load(&server->request_count),
          (double)(sched_now_ns() - t0) / 1e6);
}

void server_destroy(vigil_server *server) {
    if (!server) return;
    server_stop(server);
    gate_destroy(server->gate);
    spares_destroy(&server->body_spares);
    spares_destroy(&server->frame_inputs);
    repository_destroy(server->repo);
    cache_destroy(server->cache);
    metrics_destroy(server->metrics);
    auth_verifier_destroy(server->auth);
    tls_material_destroy(server->tls);
    tracer_destroy(server->tracer);
    pthread_mutex_destroy(&server->streams_lock);
    vigil_free(server);
}
