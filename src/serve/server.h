/*
 * server.h - the vigil daemon's HTTP side: owns the listener, the model
 * repository, the response cache and the metrics, and routes requests.
 *
 * server_create builds the context (nothing listens yet); server_start binds
 * the HTTP port (live from then on), loads the repository per its mode and
 * marks the server ready; server_stop drains (see server.c).  Routes:
 * docs/API.md.  Request path: docs/ARCHITECTURE.md.
 */
#ifndef VIGIL_SERVE_SERVER_H
#define VIGIL_SERVE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "vigil/status.h"

typedef struct vigil_server vigil_server;

/* Copies what it needs from cfg; cfg need not outlive the server. */
vigil_status server_create(const vigil_config *cfg, vigil_server **out, vigil_error *err);
/* Binds and starts the HTTP listener and the repository. The server is
 * live (healthz) but not ready until server_declare_ready: the caller
 * starts its other front ends (gRPC, the config file's streams) first, so
 * "ready" means every one of them answers. */
vigil_status server_start(vigil_server *server, vigil_error *err);
/* readyz -> 200 and requests served; after server_start. */
void server_declare_ready(vigil_server *server);
/* The bound HTTP port (useful with port 0). */
uint16_t server_http_port(const vigil_server *server);
/* Marks the server not ready (readyz -> 503), stops accepting, and waits up
 * to the shutdown timeout for in-flight requests. */
void server_stop(vigil_server *server);
void server_destroy(vigil_server *server);

/* Re-reads the auth key files (SIGHUP); on failure the old keys stay. */
vigil_status server_reload_auth(vigil_server *server, vigil_error *err);
/* Reads the tls.* files again (SIGHUP): new HTTP and gRPC handshakes use
 * them; on failure the current ones stay and err says why. */
vigil_status server_reload_tls(vigil_server *server, vigil_error *err);

/* Checks that this process could listen on host:port before anything starts
 * (port 0 always can): bound without SO_REUSEPORT, so a port another vigil
 * or any other program listens on is refused.  what names the listener in
 * the message ("HTTP", "gRPC") and setting its port's configuration path
 * ("http.port"): a refusal is one sentence that names the port and where to
 * change it, e.g. "HTTP port 8000 is already in use (setting http.port, flag
 * --http-port, variable VIGIL_HTTP_PORT)".  VIGIL_ERR_EXISTS when in use,
 * VIGIL_ERR_PERMISSION when not permitted, VIGIL_ERR_INVALID_ARGUMENT for a
 * host that is no address of this machine, VIGIL_ERR_IO otherwise. */
vigil_status server_port_check(const char *host, int64_t port, const char *what, const char *setting,
                               vigil_error *err);

/* ---- routes added by front-end modules (routes_ext.c) ----
 *
 * serve must not know the modules that sit beside it (src/edge), so cli lets
 * them add routes here before server_start.  An added route is an ordinary
 * route in every respect but its handler: framing, auth (the scope comes
 * from auth_http_scope, src/auth/scopes.c, like any route's), request ids,
 * body limits and budget (the body is buffered whole before the handler
 * runs), the access log, the metrics and the error format all apply.  The
 * built-in routes are tried first: an added route cannot shadow one.
 *
 * The handler runs on an HTTP I/O thread and answers through the
 * server_call_* functions below, either before it returns, or later from
 * any thread: it calls server_call_defer before it hands the call on, then
 * answers and calls server_call_resume (exactly once).  server_stop waits
 * for deferred calls, up to limits.shutdown_timeout_ms. */
typedef struct server_call server_call; /* one request to an added route; lives until answered */
typedef void (*server_route_fn)(void *ctx, server_call *call);

/* method: "GET" (HEAD too), "POST", ...; path_prefix: "/api/v1/events"
 * matches that path and every path below it ("/api/v1/events/abc"), never
 * "/api/v1/eventsx".  Several methods may share a prefix: a request whose
 * path matches but whose method does not is answered 405.  The first added
 * match wins.  Strings are copied; ctx is borrowed.  VIGIL_ERR_STATE after
 * server_start, VIGIL_ERR_LIMIT beyond SERVER_ROUTES_MAX routes. */
#define SERVER_ROUTES_MAX 16
vigil_status server_route_add(vigil_server *server, const char *method, const char *path_prefix,
                              server_route_fn handler, void *ctx, vigil_error *err);

/* The request, read-only, valid until the call is answered. */
vigil_server *server_call_server(server_call *call);
const char *server_call_method(const server_call *call);
/* The path after the prefix: "" or "/<rest>" (percent-decoded, no query). */
const char *server_call_path(const server_call *call);
/* A query parameter, NULL when absent. */
const char *server_call_query(server_call *call, const char *key);
/* The first query parameter whose name is not in known (NULL-terminated), or NULL. */
const char *server_call_query_unknown(server_call *call, const char *const *known);
/* A request header (case-insensitive name), NULL when absent. */
const char *server_call_header(server_call *call, const char *name);
/* The whole body (NULL and 0 when empty); not NUL-terminated. */
const char *server_call_body(const server_call *call, size_t *len);
const char *server_call_request_id(const server_call *call);
/* Names the route in the metrics and the access log ("/api/v1/events/{id}");
 * a static string.  Default: the prefix as added. */
void server_call_set_route(server_call *call, const char *route_label);
/* Names the model in the access log (copied). */
void server_call_set_model(server_call *call, const char *model);
/* A job the handler runs for the call (request_submit): tag it before it is
 * submitted and hand it back once done, and its queue, inference and
 * post-processing become children of the call's server span (trace.h),
 * like a built-in route's job.  Nothing happens while tracing is off. */
struct sched_job;
void server_call_trace_submit(server_call *call, struct sched_job *job);
void server_call_trace_done(server_call *call, const struct sched_job *job, int64_t model_version);

/* The answer; each replaces any answer set before.  body: vigil_malloc'd,
 * owned by the call from then on (NULL with len 0 for none).  content_type
 * is copied. */
void server_call_respond(server_call *call, int http_status, const char *content_type, char *body, size_t len);
void server_call_respond_json(server_call *call, int http_status, const char *json);
/* {"error": message} with the status's HTTP code (request_http_status),
 * Retry-After on 503: the built-in routes' errors. */
void server_call_error(server_call *call, vigil_status status, const char *message);
void server_call_error_code(server_call *call, int http_status, const char *message);
/* Adds a header to the answer (copied; at most SERVER_CALL_HEADERS_MAX;
 * VIGIL_ERR_LIMIT beyond, VIGIL_ERR_INVALID_ARGUMENT for a name or value
 * that is no valid header text). */
#define SERVER_CALL_HEADERS_MAX 8
vigil_status server_call_header_add(server_call *call, const char *name, const char *value);

/* Asynchronous answers: see above.  defer only on the handler's thread,
 * before anything else sees the call; resume after the answer is set. */
void server_call_defer(server_call *call);
void server_call_resume(server_call *call);

/* ---- streamed answers (stream_response.c) ----
 *
 * An answer whose body has no end known in advance: MJPEG live views
 * (multipart/x-mixed-replace), event feeds.  The body is pulled, not pushed:
 * produce is called on the connection's I/O thread whenever the client can
 * take more (so a slow client slows its producer; nothing queues up) and
 * writes at most max bytes into buf, returning
 *   > 0                   that many bytes were written;
 *   0                     nothing yet: the connection is suspended (it costs
 *                         no thread and no polling) until server_stream_wake;
 *   SERVER_STREAM_END     the body is complete (the chunked body ends cleanly);
 *   SERVER_STREAM_ABORT   something failed: the connection is closed.
 * produce must not block: an I/O thread serves many connections.
 *
 * free_ctx(ctx) is called exactly once, on some thread, when the answer is
 * over for any reason: the body ended, the client went away (seen on the
 * next write after a wake), the call was answered otherwise, or the server
 * stops.  server_stop ends every stream (produce is not called again; the
 * chunked body is ended) before it waits for the last answers, so an open
 * viewer never holds up a shutdown.
 *
 * server_stream_wake is safe from any thread, cheap when the connection is
 * not waiting, and never loses a wake that races with produce returning 0.
 * The handle is valid until free_ctx has returned: the usual producer keeps
 * a list of its viewers, free_ctx takes its viewer out under the list's
 * lock, and the thread with news wakes every viewer under the same lock.
 * The access log line and the request metrics are written when the stream
 * ends, with the bytes sent and the whole duration.
 *
 * Returns the stream's handle (the call's answer from then on; defer and
 * resume work as for any answer), or NULL when out of memory: then free_ctx
 * has been called and the answer is a 503. */
typedef struct server_stream server_stream;
#define SERVER_STREAM_END (-1L)
#define SERVER_STREAM_ABORT (-2L)
typedef long (*server_stream_fn)(void *ctx, server_stream *stream, char *buf, size_t max);
typedef void (*server_stream_free_fn)(void *ctx);
server_stream *server_call_respond_stream(server_call *call, int http_status, const char *content_type,
                                          server_stream_fn produce, void *ctx, server_stream_free_fn free_ctx);
void server_stream_wake(server_stream *stream);

/* A module's lines in GET /metrics (Prometheus text, HELP and TYPE
 * included), appended after the server's own on every scrape, on an I/O
 * thread: fn must be quick and thread-safe.  out is a textbuf
 * (serve/textbuf.h).  Added before server_start, like routes;
 * VIGIL_ERR_LIMIT beyond SERVER_METRICS_MAX. */
#define SERVER_METRICS_MAX 8
struct textbuf;
typedef void (*server_metrics_fn)(void *ctx, struct textbuf *out);
vigil_status server_metrics_add(vigil_server *server, server_metrics_fn fn, void *ctx, vigil_error *err);

#endif
