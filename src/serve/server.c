/*
 * server.c - HTTP listener and routing on libmicrohttpd.
 *
 * MHD runs its own epoll-driven thread pool (config http.threads); handlers
 * here only parse, route and answer.  Every response is JSON; errors are
 * {"error": "..."} with the status from http_status_for (one mapping from
 * vigil_status to HTTP for the whole server).
 */
#include "serve/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

struct vigil_server {
    vigil_config cfg;
    struct MHD_Daemon *daemon;
    uint16_t http_port;
    atomic_int ready;
    atomic_llong request_count;
};

int http_status_for(vigil_status status) {
    switch (status) {
    case VIGIL_OK: return MHD_HTTP_OK;
    case VIGIL_ERR_INVALID_ARGUMENT:
    case VIGIL_ERR_PARSE: return MHD_HTTP_BAD_REQUEST;
    case VIGIL_ERR_NOT_FOUND: return MHD_HTTP_NOT_FOUND;
    case VIGIL_ERR_LIMIT: return MHD_HTTP_CONTENT_TOO_LARGE;
    case VIGIL_ERR_UNAVAILABLE: return MHD_HTTP_SERVICE_UNAVAILABLE;
    case VIGIL_ERR_TIMEOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
    case VIGIL_ERR_UNAUTHENTICATED: return MHD_HTTP_UNAUTHORIZED;
    case VIGIL_ERR_PERMISSION: return MHD_HTTP_FORBIDDEN;
    case VIGIL_ERR_EXISTS:
    case VIGIL_ERR_STATE: return MHD_HTTP_CONFLICT;
    case VIGIL_ERR_UNSUPPORTED: return MHD_HTTP_UNPROCESSABLE_CONTENT;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int code, const char *body) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int code, const char *message) {
    char body[600];
    char escaped[512];
    size_t n = 0;
    for (const char *p = message; *p && n + 2 < sizeof escaped; p++) {
        if (*p == '"' || *p == '\\') escaped[n++] = '\\';
        escaped[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    }
    escaped[n] = '\0';
    snprintf(body, sizeof body, "{\"error\":\"%s\"}", escaped);
    return send_json(conn, code, body);
}

static enum MHD_Result route(vigil_server *server, struct MHD_Connection *conn, const char *method,
                             const char *url) {
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/v2/health/live") == 0) {
        if (!is_get) return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return send_json(conn, MHD_HTTP_OK, "{\"status\":\"ok\"}");
    }
    if (strcmp(url, "/readyz") == 0 || strcmp(url, "/v2/health/ready") == 0) {
        if (!is_get) return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        if (!atomic_load(&server->ready))
            return send_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"status\":\"not ready\"}");
        return send_json(conn, MHD_HTTP_OK, "{\"status\":\"ready\"}");
    }
    if (strcmp(url, "/v2") == 0) {
        if (!is_get) return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        char body[256];
        snprintf(body, sizeof body, "{\"name\":\"vigil\",\"version\":\"%s\",\"extensions\":[]}", VIGIL_VERSION);
        return send_json(conn, MHD_HTTP_OK, body);
    }
    char message[300];
    snprintf(message, sizeof message, "no route for %s %.200s", method, url);
    return send_error(conn, MHD_HTTP_NOT_FOUND, message);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls) {
    vigil_server *server = cls;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = server;
        return MHD_YES;
    }
    if (*upload_size) { /* bodies are not used by these routes yet: discard */
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&server->request_count, 1);
    return route(server, conn, method, url);
}

vigil_status server_create(const vigil_config *cfg, vigil_server **out, vigil_error *err) {
    vigil_server *server = vigil_calloc(1, sizeof *server);
    if (!server) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "server: out of memory");
    server->cfg = *cfg;
    *out = server;
    return VIGIL_OK;
}

vigil_status server_start(vigil_server *server, vigil_error *err) {
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, server->cfg.host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)server->cfg.http_port);
    } else if (inet_pton(AF_INET6, server->cfg.host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)server->cfg.http_port);
        flags |= MHD_USE_IPv6;
    } else {
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "host '%s' is not an IPv4 or IPv6 address",
                               server->cfg.host);
    }
    server->daemon = MHD_start_daemon(flags, (uint16_t)server->cfg.http_port, NULL, NULL, on_request, server,
                                      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)server->cfg.http_threads,
                                      MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!server->daemon)
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot listen on %s:%lld (port in use or not permitted)",
                               server->cfg.host, (long long)server->cfg.http_port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    server->http_port = info ? info->port : (uint16_t)server->cfg.http_port;
    atomic_store(&server->ready, 1);
    LOG_I("listening on http://%s:%u", server->cfg.host, server->http_port);
    return VIGIL_OK;
}

uint16_t server_http_port(const vigil_server *server) { return server->http_port; }

void server_stop(vigil_server *server) {
    if (!server->daemon) return;
    atomic_store(&server->ready, 0);
    MHD_quiesce_daemon(server->daemon);
    MHD_stop_daemon(server->daemon);
    server->daemon = NULL;
    LOG_I("stopped after %lld requests", (long long)atomic_load(&server->request_count));
}

void server_destroy(vigil_server *server) {
    if (!server) return;
    server_stop(server);
    vigil_free(server);
}
