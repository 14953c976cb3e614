/*
 * routes_ext.c - routes that modules beside serve add (server_route_add),
 * and the transport-neutral view their handlers get (server_call_*).
 *
 * serve may not include the modules' headers (src/edge is a front end that
 * uses serve, not the other way round), yet their routes must be served by
 * this listener, under its auth, limits, access log and metrics.  So cli
 * hands serve a handler per (method, path prefix), and the handler sees the
 * request through server_call_* only: a server_call is the exchange itself,
 * seen through a narrower type, so an added route costs nothing a built-in
 * one does not.  Everything before routing (framing, auth with the scope
 * from auth_http_scope, the body buffered under http.max_body_bytes and the
 * body budget) and after it (exchange_send: X-Request-Id, Retry-After,
 * metrics, the access log) is the built-in routes' own code.
 *
 * A deferred call is the same suspension the inference routes use
 * (exchange_submit): the connection is suspended on the I/O thread, the
 * module answers from its own thread and resumes it, and MHD calls
 * on_request again, which sends the answer that was set.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "serve/http_strict.h"
#include "serve/server_internal.h"

static http_exchange *exchange_of(server_call *call) {
    return (http_exchange *)(void *)call;
}
static const http_exchange *exchange_of_const(const server_call *call) {
    return (const http_exchange *)(const void *)call;
}

/* RFC 9110 token (field names, methods), with the strict front's tchar. */
static int is_token(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!strict_is_tchar((unsigned char)*s)) return 0;
    return 1;
}

vigil_status server_route_add(vigil_server *server, const char *method, const char *path_prefix,
                              server_route_fn handler, void *ctx, vigil_error *err) {
    if (server->daemon) return vigil_error_set(err, VIGIL_ERR_STATE, "routes are added before the server starts");
    if (!method || !is_token(method) || strlen(method) >= sizeof server->routes[0].method || !handler)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "a route needs a method and a handler");
    size_t len = path_prefix ? strlen(path_prefix) : 0;
    if (len < 2 || path_prefix[0] != '/' || path_prefix[len - 1] == '/' || len >= sizeof server->routes[0].prefix ||
        strpbrk(path_prefix, "?# "))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "route prefix '%.64s' must start with '/' and not end with one",
                               path_prefix ? path_prefix : "");
    if (server->n_routes == SERVER_ROUTES_MAX)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "at most %d added routes", SERVER_ROUTES_MAX);
    server_route *r = &server->routes[server->n_routes++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->prefix, sizeof r->prefix, "%s", path_prefix);
    r->prefix_len = len;
    r->handler = handler;
    r->ctx = ctx;
    return VIGIL_OK;
}

static int prefix_matches(const server_route *r, const char *url) {
    return strncmp(url, r->prefix, r->prefix_len) == 0 && (url[r->prefix_len] == '\0' || url[r->prefix_len] == '/');
}

int routes_ext(http_exchange *ex) {
    vigil_server *server = ex->server;
    const server_route *path_match = NULL;
    char allowed[64] = "";
    for (size_t i = 0; i < server->n_routes; i++) {
        const server_route *r = &server->routes[i];
        if (!prefix_matches(r, ex->url)) continue;
        if (!path_match) path_match = r;
        if (method_is(ex, r->method)) {
            ex->route = r->prefix;
            ex->call_path = ex->url + r->prefix_len;
            r->handler(r->ctx, (server_call *)(void *)ex);
            if (!ex->call_deferred && !ex->have_response) /* deferred: another thread may be answering now */
                respond_error_code(ex, MHD_HTTP_INTERNAL_SERVER_ERROR, "the route set no answer");
            return 1;
        }
        if (!strstr(allowed, r->method) && strlen(allowed) + strlen(r->method) + 5 < sizeof allowed)
            snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", allowed[0] ? " or " : "",
                     r->method);
    }
    if (!path_match) return 0;
    ex->route = path_match->prefix;
    return respond_method(ex, allowed);
}

vigil_status server_metrics_add(vigil_server *server, server_metrics_fn fn, void *ctx, vigil_error *err) {
    if (server->daemon) return vigil_error_set(err, VIGIL_ERR_STATE, "metrics are added before the server starts");
    if (!fn) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "metrics need a function");
    if (server->n_metrics_ext == SERVER_METRICS_MAX)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "at most %d added metrics functions", SERVER_METRICS_MAX);
    server->metrics_ext[server->n_metrics_ext].fn = fn;
    server->metrics_ext[server->n_metrics_ext].ctx = ctx;
    server->n_metrics_ext++;
    return VIGIL_OK;
}

void routes_ext_metrics(vigil_server *server, textbuf *out) {
    for (size_t i = 0; i < server->n_metrics_ext; i++)
        server->metrics_ext[i].fn(server->metrics_ext[i].ctx, out);
}

/* ------------------------------------------------------------ the request */

vigil_server *server_call_server(server_call *call) {
    return exchange_of(call)->server;
}
const char *server_call_method(const server_call *call) {
    return exchange_of_const(call)->method;
}
const char *server_call_path(const server_call *call) {
    return exchange_of_const(call)->call_path;
}
const char *server_call_query(server_call *call, const char *key) {
    return exchange_query(exchange_of(call), key);
}
const char *server_call_query_unknown(server_call *call, const char *const *known) {
    return exchange_query_unknown(exchange_of(call), known);
}
const char *server_call_header(server_call *call, const char *name) {
    return exchange_header(exchange_of(call), name);
}
const char *server_call_body(const server_call *call, size_t *len) {
    const http_exchange *ex = exchange_of_const(call);
    *len = ex->body.len;
    return ex->body.len ? ex->body.data : NULL;
}
const char *server_call_request_id(const server_call *call) {
    return exchange_of_const(call)->request_id;
}
void server_call_set_route(server_call *call, const char *route_label) {
    if (route_label) exchange_of(call)->route = route_label;
}
void server_call_set_model(server_call *call, const char *model) {
    http_exchange *ex = exchange_of(call);
    snprintf(ex->model, sizeof ex->model, "%.127s", model ? model : "");
}
void server_call_trace_submit(server_call *call, struct sched_job *job) {
    trace_request_tag_job(&exchange_of(call)->trace, job);
}
void server_call_trace_done(server_call *call, const struct sched_job *job, int64_t model_version) {
    trace_request_job(&exchange_of(call)->trace, job, model_version);
}

/* ------------------------------------------------------------ the answer */

void server_call_respond(server_call *call, int http_status, const char *content_type, char *body, size_t len) {
    http_exchange *ex = exchange_of(call);
    const char *type = arena_strdup(ex->arena, content_type ? content_type : "application/json");
    if (!type) {
        vigil_free(body);
        respond_error(ex, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    respond_take(ex, http_status, type, body, body ? len : 0);
}
server_stream *server_call_respond_stream(server_call *call, int http_status, const char *content_type,
                                          server_stream_fn produce, void *ctx, server_stream_free_fn free_ctx) {
    return stream_attach(exchange_of(call), http_status, content_type, produce, ctx, free_ctx);
}
void server_call_respond_json(server_call *call, int http_status, const char *json) {
    respond_json(exchange_of(call), http_status, json);
}
void server_call_error(server_call *call, vigil_status status, const char *message) {
    respond_error(exchange_of(call), status, message);
}
void server_call_error_code(server_call *call, int http_status, const char *message) {
    respond_error_code(exchange_of(call), http_status, message);
}

vigil_status server_call_header_add(server_call *call, const char *name, const char *value) {
    http_exchange *ex = exchange_of(call);
    vigil_error err = {0};
    if (!name || !value || !is_token(name))
        return vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "invalid header name");
    for (const char *c = value; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            return vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "invalid header value");
    if (ex->n_extra == SERVER_CALL_HEADERS_MAX) return vigil_error_set(&err, VIGIL_ERR_LIMIT, "too many headers");
    const char *n = arena_strdup(ex->arena, name), *v = arena_strdup(ex->arena, value);
    if (!n || !v) return vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    ex->extra_name[ex->n_extra] = n;
    ex->extra_value[ex->n_extra] = v;
    ex->n_extra++;
    return VIGIL_OK;
}

/* ------------------------------------------------------------ deferred answers */

void server_call_defer(server_call *call) {
    http_exchange *ex = exchange_of(call);
    if (ex->call_deferred) return;
    ex->call_deferred = 1;
    ex->finish = NULL;
    ex->state = EXCHANGE_WAITING;
    atomic_fetch_add(&ex->server->deferred, 1);
    MHD_suspend_connection(ex->conn);
}

void server_call_resume(server_call *call) {
    http_exchange *ex = exchange_of(call);
    vigil_server *server = ex->server;
    atomic_store(&ex->job_done, 1);
    MHD_resume_connection(ex->conn);
    atomic_fetch_sub(&server->deferred, 1); /* after the resume: server_stop waits for it */
}
