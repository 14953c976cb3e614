/*
 * server_internal.h - what server.c shares with the route handlers
 * (routes_v2.c, routes_api.c): the server context, one HTTP exchange (a
 * request and its response), and the helpers that fill a response.
 *
 * An exchange lives from the first header callback to MHD's completion
 * notice.  A handler either fills the response before returning, or starts
 * an asynchronous job (exchange_submit): the connection is suspended, the
 * worker's completion resumes it, and `finish` turns the job into the
 * response on an I/O thread.
 */
#ifndef VIGIL_SERVE_SERVER_INTERNAL_H
#define VIGIL_SERVE_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "auth/auth.h"
#include "auth/tls.h"
#include "core/arena.h"
#include "serve/body_budget.h"
#include "serve/cache.h"
#include "serve/infer_codec.h"
#include "serve/metrics.h"
#include "serve/repository.h"
#include "serve/request.h"
#include "serve/server.h"
#include "serve/spares.h"
#include "serve/textbuf.h"
#include "serve/trace.h"

/* A route added by a module (server_route_add). */
typedef struct server_route {
    char method[16];
    char prefix[128];
    size_t prefix_len;
    server_route_fn handler;
    void *ctx;
} server_route;

#define FRAME_INPUTS_BYTES ((size_t)48 << 20)

struct vigil_server {
    vigil_config cfg;
    struct MHD_Daemon *daemon;
    struct http_gate *gate; /* owns the port; hands each connection to daemon */
    uint16_t http_port;
    atomic_int ready;
    atomic_int stopping;
    atomic_llong request_count;
    atomic_int active; /* exchanges not yet completed */
    metrics *metrics;
    repository *repo;
    result_cache *cache;
    auth_verifier *auth; /* auth.* settings (mode off accepts everything) */
    tls_material *tls;   /* tls.* files; NULL = plain HTTP */
    tracer *tracer;      /* tracing.* (trace.h); NULL = tracing off */
    body_budget bodies;  /* http.max_buffered_bytes: request bodies held in memory */
    spares body_spares;  /* the buffers of the last large bodies, for the next ones */
    /* Device inputs letterboxed where frames arrived (request_detect_ready):
     * one per frame in flight (4 gRPC streams hold 32), so up to
     * FRAME_INPUTS_BYTES are kept for the next ones rather than faulted in
     * (1.2 MB each at 640x640: 12 page faults per frame without). */
    spares frame_inputs;
    atomic_int mhd_started;     /* 0 while MHD_start_daemon runs: its messages go to listen_error */
    char listen_error[256];     /* libmicrohttpd's last message while starting, for the failure */
    request_detect_observer detect_observer; /* set before server_start, or NULL */
    void *detect_observer_ctx;
    server_route routes[SERVER_ROUTES_MAX]; /* added by modules before server_start (routes_ext.c) */
    size_t n_routes;
    atomic_int deferred; /* calls to added routes answered later (server_call_defer) */
    struct {
        server_metrics_fn fn;
        void *ctx;
    } metrics_ext[SERVER_METRICS_MAX]; /* modules' /metrics lines (server_metrics_add) */
    size_t n_metrics_ext;
    pthread_mutex_t streams_lock; /* guards streams: streamed answers in flight (stream_response.c) */
    server_stream *streams;
};

/* EXCHANGE_GATE_BODY: the gate is reading a direct body (http_gate.h) into
 * body, the connection suspended until it says it is done. */
typedef enum exchange_state { EXCHANGE_BODY = 0, EXCHANGE_WAITING, EXCHANGE_DONE, EXCHANGE_GATE_BODY } exchange_state;

typedef struct http_exchange http_exchange;
struct http_exchange {
    vigil_server *server;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    arena *arena;     /* everything the request allocates; freed at completion */
    textbuf body;
    size_t body_held; /* bytes of server->bodies this exchange holds */
    /* A direct application/octet-stream body is read with body_room bytes
     * free before and after it (the buffer, body_block bytes, starts
     * body_room before body.data): a raw frame that needs padding only above
     * and below is padded there (request_detect_ready), not copied. */
    size_t body_room, body_block;
    int close_after; /* the framing was refused: answer with Connection: close */
    size_t direct_len;  /* the head's GATE_BODY_FIELD: a body the gate reads (0: none) */
    int direct_pending; /* that body has not arrived: any answer closes the connection */
    atomic_int direct_status; /* how the gate's read ended (gate_body_done) */
    int64_t start_ns;
    char request_id[REQUEST_ID_SIZE];
    trace_request trace; /* its spans (trace.h); off when tracing is */
    const char *route; /* route pattern for metrics and the access log */
    char model[MODEL_NAME_MAX];
    exchange_state state;

    /* asynchronous work */
    served_model *served; /* reference held until completion */
    sched_job *job;
    infer_request *infer;
    atomic_int job_done;
    void (*finish)(http_exchange *ex);
    int cache_use;       /* the model caches answers: store this one under cache_key */
    cache_key cache_key;

    /* model upload (PUT /api/v1/models/{m}/versions/{v}): the body streams to a temp file */
    int upload_fd;       /* -1 when not an upload */
    char upload_path[2300];
    size_t upload_bytes;
    vigil_status upload_status; /* first failure while receiving */
    char upload_error[256];

    /* the response */
    int have_response;
    int code;
    char *resp; /* vigil_malloc'd */
    size_t resp_len;
    const char *content_type;
    char retry_after[16];
    char header_length[32]; /* Inference-Header-Content-Length */
    const char *extra_name[SERVER_CALL_HEADERS_MAX]; /* headers an added route asked for (in arena) */
    const char *extra_value[SERVER_CALL_HEADERS_MAX];
    size_t n_extra;

    /* a call to an added route */
    const char *call_path; /* the path after the route's prefix */
    int call_deferred;     /* server_call_defer: counted in server->deferred until resumed */

    /* a streamed answer (server_call_respond_stream): owned here until
     * exchange_send hands it to the library's response */
    server_stream *stream;
    int finish_at_completion; /* streamed: metrics and access line when the connection is done */
};

/* ---- responses (each replaces any response already set) ---- */
void respond_take(http_exchange *ex, int code, const char *content_type, char *body, size_t len);
void respond_json(http_exchange *ex, int code, const char *json);
/* Takes ownership of obj (jansson). */
void respond_jansson(http_exchange *ex, int code, void *obj);
/* {"error": message} with the status's HTTP code (Retry-After on 503). */
void respond_error(http_exchange *ex, vigil_status status, const char *message);
void respond_error_code(http_exchange *ex, int code, const char *message);

/* ---- streamed answers (stream_response.c) ---- */
/* The library's response for ex->stream, which it owns from then on (its
 * free callback ends the stream); NULL when out of memory (the stream stays
 * with ex). */
struct MHD_Response *stream_response_create(http_exchange *ex);
/* server_call_respond_stream's work: the stream becomes ex's answer. */
server_stream *stream_attach(http_exchange *ex, int http_status, const char *content_type, server_stream_fn produce,
                             void *ctx, server_stream_free_fn free_ctx);
/* Ends a stream the library never got (answer replaced, exchange gone). */
void stream_discard(server_stream *stream);
/* server_stop: ends every stream and waits up to timeout_ms for them to close. */
void stream_end_all(vigil_server *server, int64_t timeout_ms);

/* ---- requests ---- */
const char *exchange_query(http_exchange *ex, const char *key);
/* The first query parameter whose name is not in known (NULL-terminated),
 * or NULL: a misspelt option is refused rather than silently ignored. */
const char *exchange_query_unknown(http_exchange *ex, const char *const *known);
const char *exchange_header(http_exchange *ex, const char *key);
/* 1 when a Content-Type is application/octet-stream (parameters allowed). */
int exchange_is_octet_stream(const char *ctype);
/* Takes a reference on the model (version 0 = served one) into ex->served;
 * on failure the error response is set and 0 returned. */
int exchange_acquire(http_exchange *ex, const char *model, int64_t version);
/* Suspends the connection and queues ex->job on ex->served; finish runs on
 * an I/O thread after the job completed. */
void exchange_submit(http_exchange *ex, void (*finish)(http_exchange *ex));

/* ---- uploads (upload.c) ---- */
/* Called with the headers: when ex is an upload, opens the temp file. */
void upload_begin(http_exchange *ex);
/* Called for each body chunk of an upload. */
void upload_write(http_exchange *ex, const char *data, size_t size);
/* The route: checks the file by loading it, renames it into place, answers. */
void upload_finish(http_exchange *ex, const char *model, const char *version);
/* Removes a temp file left by an unfinished upload. */
void upload_abort(http_exchange *ex);

/* MHD_OPTION_UNESCAPE_CALLBACK (routes_v2.c): percent-decoding of the path
 * and the query, except that %00 is kept as sent, so that no decoded string
 * is cut short by a NUL ("yolov8n%00.evil" is an invalid name, not yolov8n). */
size_t route_unescape(void *cls, struct MHD_Connection *connection, char *text);

/* ---- routes: path segments after splitting on '/' ---- */
#define ROUTE_MAX_SEGMENTS 8
typedef struct route_path {
    const char *seg[ROUTE_MAX_SEGMENTS];
    size_t n;
} route_path;

/* Each returns 1 when it handled the path (response set or job started). */
int routes_v2(http_exchange *ex, const route_path *p);
int routes_api(http_exchange *ex, const route_path *p);
/* The routes modules added (routes_ext.c), tried after the built-in ones. */
int routes_ext(http_exchange *ex);
/* Appends the modules' metrics (server_metrics_add) to a /metrics answer. */
void routes_ext_metrics(vigil_server *server, textbuf *out);

/* 405 with a message naming the allowed method; returns 1. */
int respond_method(http_exchange *ex, const char *allowed);
int method_is(const http_exchange *ex, const char *method);

#endif
