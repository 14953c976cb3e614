/*
 * test_routes_ext.c - routes added by modules (server_route_add, routes_ext.c):
 * a real server on a loopback port, spoken to over a plain socket, so that
 * what is checked is what a client sees: the handler's answer and headers,
 * the path after the prefix and the query, 405 and 404 around the prefix,
 * answers deferred to another thread, the common error format and request
 * ids, and auth applied to an added route like to any other.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "serve/server.h"
#include "serve/textbuf.h"
#include "testing.h"

/* One HTTP/1.1 exchange with Connection: close; the whole answer in out. */
static int http_call(uint16_t port, const char *request, char *out, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t len = strlen(request), sent = 0;
    while (sent < len) {
        ssize_t n = write(fd, request + sent, len - sent);
        if (n <= 0) break;
        sent += (size_t)n;
    }
    size_t got = 0;
    for (ssize_t n; got + 1 < size && (n = read(fd, out + got, size - 1 - got)) > 0;)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
    int status = 0;
    return sscanf(out, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

static void echo_route(void *ctx, server_call *call) {
    CHECK(ctx == (void *)0x1);
    size_t len;
    const char *body = server_call_body(call, &len);
    char text[512];
    snprintf(text, sizeof text, "{\"method\":\"%s\",\"path\":\"%s\",\"q\":\"%s\",\"h\":\"%s\",\"body\":\"%.*s\"}",
             server_call_method(call), server_call_path(call),
             server_call_query(call, "q") ? server_call_query(call, "q") : "",
             server_call_header(call, "X-Test") ? server_call_header(call, "X-Test") : "", (int)len, body ? body : "");
    static const char *const known[] = {"q", NULL};
    const char *unknown = server_call_query_unknown(call, known);
    if (unknown) {
        server_call_error_code(call, 400, "unknown parameter");
        return;
    }
    server_call_respond_json(call, strcmp(server_call_method(call), "POST") == 0 ? 201 : 200, text);
    CHECK_EQ_INT(server_call_header_add(call, "X-Echo", "yes"), VIGIL_OK);
    CHECK_EQ_INT(server_call_header_add(call, "Bad Name", "x"), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(server_call_header_add(call, "X-Bad", "a\r\nb"), VIGIL_ERR_INVALID_ARGUMENT);
}

static void silent_route(void *ctx, server_call *call) {
    (void)ctx, (void)call;
}

static void error_route(void *ctx, server_call *call) {
    (void)ctx;
    server_call_error(call, VIGIL_ERR_UNAVAILABLE, "store unavailable");
}

static void *answer_later(void *arg) {
    server_call *call = arg;
    usleep(50000);
    char *body = vigil_strdup("later");
    server_call_respond(call, 202, "text/plain", body, 5);
    server_call_resume(call);
    return NULL;
}

static void deferred_route(void *ctx, server_call *call) {
    (void)ctx;
    server_call_set_route(call, "/later/{x}");
    server_call_defer(call);
    pthread_t t;
    if (pthread_create(&t, NULL, answer_later, call) == 0)
        pthread_detach(t);
    else {
        server_call_error_code(call, 500, "no thread");
        server_call_resume(call);
    }
}

static void module_metrics(void *ctx, textbuf *out) {
    textbuf_printf(out,
                   "# HELP vigil_test_module_things Things.\n# TYPE vigil_test_module_things gauge\n"
                   "vigil_test_module_things %d\n",
                   *(int *)ctx);
}

static vigil_server *start_server(const char *auth_secret_file) {
    vigil_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.http_port = 0;
    snprintf(cfg.models_dir, sizeof cfg.models_dir, "/tmp");
    snprintf(cfg.log_level, sizeof cfg.log_level, "error");
    cfg.shutdown_timeout_ms = 2000;
    if (auth_secret_file) {
        snprintf(cfg.auth_mode, sizeof cfg.auth_mode, "jwt");
        snprintf(cfg.auth_secret_file, sizeof cfg.auth_secret_file, "%s", auth_secret_file);
    }
    vigil_server *server = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(server_create(&cfg, &server, &err), VIGIL_OK);
    if (!server) return NULL;
    CHECK_EQ_INT(server_route_add(server, "GET", "/x/ab", echo_route, (void *)0x1, &err), VIGIL_OK);
    CHECK_EQ_INT(server_route_add(server, "POST", "/x/ab", echo_route, (void *)0x1, &err), VIGIL_OK);
    CHECK_EQ_INT(server_route_add(server, "GET", "/later", deferred_route, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(server_route_add(server, "GET", "/silent", silent_route, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(server_route_add(server, "POST", "/api/v1/events", error_route, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(server_route_add(server, "GET", "noslash", echo_route, NULL, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(server_route_add(server, "GET", "/trailing/", echo_route, NULL, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(server_route_add(server, "G T", "/x", echo_route, NULL, &err), VIGIL_ERR_INVALID_ARGUMENT);
    static int things = 42;
    CHECK_EQ_INT(server_metrics_add(server, module_metrics, &things, &err), VIGIL_OK);
    if (server_start(server, &err)) {
        CHECK(0);
        server_destroy(server);
        return NULL;
    }
    CHECK_EQ_INT(server_route_add(server, "GET", "/late", echo_route, NULL, &err), VIGIL_ERR_STATE);
    CHECK_EQ_INT(server_metrics_add(server, module_metrics, NULL, &err), VIGIL_ERR_STATE);
    return server;
}

static void test_added_routes_answer(void) {
    vigil_server *server = start_server(NULL);
    if (!server) return;
    uint16_t port = server_http_port(server);
    static char out[8192];
    CHECK_EQ_INT(http_call(port, "GET /x/ab/c/d?q=7 HTTP/1.1\r\nHost: t\r\nX-Test: hi\r\nConnection: close\r\n\r\n",
                           out, sizeof out),
                 200);
    CHECK(strstr(out, "\"path\":\"/c/d\"") != NULL);
    CHECK(strstr(out, "\"q\":\"7\"") != NULL);
    CHECK(strstr(out, "\"h\":\"hi\"") != NULL);
    CHECK(strstr(out, "X-Echo: yes\r\n") != NULL);
    CHECK(strstr(out, "X-Request-Id: ") != NULL);
    CHECK(strstr(out, "Content-Type: application/json") != NULL);
    /* the prefix itself, with a body */
    CHECK_EQ_INT(http_call(port,
                           "POST /x/ab HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-Request-Id: abc-1\r\n"
                           "Connection: close\r\n\r\nhello",
                           out, sizeof out),
                 201);
    CHECK(strstr(out, "\"path\":\"\"") != NULL);
    CHECK(strstr(out, "\"body\":\"hello\"") != NULL);
    CHECK(strstr(out, "X-Request-Id: abc-1\r\n") != NULL);
    /* not below the prefix: no route */
    CHECK_EQ_INT(http_call(port, "GET /x/abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out, sizeof out), 404);
    /* the path but not the method: 405 naming the methods */
    CHECK_EQ_INT(http_call(port, "DELETE /x/ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out, sizeof out),
                 405);
    CHECK(strstr(out, "GET or POST") != NULL);
    /* HEAD is GET without the body */
    CHECK_EQ_INT(http_call(port, "HEAD /x/ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out, sizeof out), 200);
    CHECK(strstr(out, "\"method\"") == NULL);
    /* the handler's own refusal, in the common error format */
    CHECK_EQ_INT(http_call(port, "GET /x/ab?z=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out, sizeof out),
                 400);
    CHECK(strstr(out, "{\"error\":\"unknown parameter\"}") != NULL);
    CHECK_EQ_INT(http_call(port,
                           "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: "
                           "close\r\n\r\n",
                           out, sizeof out),
                 503);
    CHECK(strstr(out, "Retry-After: 1\r\n") != NULL);
    CHECK(strstr(out, "{\"error\":\"store unavailable\"}") != NULL);
    /* a handler that answers nothing is a 500, not a hang */
    CHECK_EQ_INT(http_call(port, "GET /silent HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out, sizeof out), 500);
    /* the body limits hold as for built-in routes */
    CHECK_EQ_INT(http_call(port,
                           "POST /x/ab HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999999\r\n"
                           "Connection: close\r\n\r\n",
                           out, sizeof out),
                 413);
    server_destroy(server);
}

static void test_deferred_answer(void) {
    vigil_server *server = start_server(NULL);
    if (!server) return;
    static char out[1 << 17]; /* /metrics is long */
    CHECK_EQ_INT(http_call(server_http_port(server), "GET /later/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           out, sizeof out),
                 202);
    CHECK(strstr(out, "\r\n\r\nlater") != NULL);
    CHECK(strstr(out, "Content-Type: text/plain") != NULL);
    CHECK(strstr(out, "vigil_http_requests_total") == NULL);
    CHECK_EQ_INT(http_call(server_http_port(server), "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           out, sizeof out),
                 200);
    CHECK(strstr(out, "/later/{x}") != NULL);                      /* the label the handler set */
    CHECK(strstr(out, "\nvigil_test_module_things 42\n") != NULL); /* a module's own lines */
    server_destroy(server);
}

static void test_auth_applies(void) {
    char secret_path[] = "/tmp/vigil-routes-ext-XXXXXX";
    int fd = mkstemp(secret_path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *secret = "0123456789abcdef0123456789abcdef0123456789";
    CHECK_EQ_INT(write(fd, secret, strlen(secret)), (long long)strlen(secret));
    close(fd);
    vigil_server *server = start_server(secret_path);
    if (server) {
        static char out[8192];
        CHECK_EQ_INT(
            http_call(server_http_port(server),
                      "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", out,
                      sizeof out),
            401);
        CHECK(strstr(out, "WWW-Authenticate: Bearer") != NULL);
        CHECK_EQ_INT(http_call(server_http_port(server), "GET /x/ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                               out, sizeof out),
                     401);
        server_destroy(server);
    }
    unlink(secret_path);
}

int main(void) {
    RUN(test_added_routes_answer);
    RUN(test_deferred_answer);
    RUN(test_auth_applies);
    return testing_report();
}
