/*
 * test_routes_ext.c - routes added by modules (server_route_add, routes_ext.c):
 * a real server on a loopback port, spoken to over a plain socket, so that
 * what is checked is what a client sees: the handler's answer and headers,
 * the path after the prefix and the query, 405 and 404 around the prefix,
 * answers deferred to another thread, the common error format and request
 * ids, and auth applied to an added route like to any other; streamed
 * answers (server_call_respond_stream): parts as a producer thread has
 * them, a viewer that leaves, and viewers still attached at shutdown.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "serve/server.h"
#include "serve/textbuf.h"
#include "testing.h"

/* A connection with request sent (reads time out after 10 s, so a server
 * that never answers fails the test rather than hanging it); -1 on failure. */
static int http_open(uint16_t port, const char *request) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    struct timeval timeout = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    size_t len = strlen(request), sent = 0;
    while (sent < len) {
        ssize_t n = write(fd, request + sent, len - sent);
        if (n <= 0) break;
        sent += (size_t)n;
    }
    return fd;
}

/* One HTTP/1.1 exchange with Connection: close; the whole answer in out. */
static int http_call(uint16_t port, const char *request, char *out, size_t size) {
    int fd = http_open(port, request);
    if (fd < 0) return -1;
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

/* ---- streamed answers: a ticker thread that publishes a numbered part
 * every few milliseconds and wakes its viewers, like a camera's live view */
#define VIEWERS_MAX 16
typedef struct viewer {
    struct ticker *ticker;
    server_stream *stream;
    int idle;       /* never has a part (a camera that sends nothing) */
    long seq_sent;  /* the ticker's part last formatted */
    long parts_max; /* end the body after this many parts; 0: never */
    long parts;
    char part[128];
    size_t part_len, part_off;
} viewer;

typedef struct ticker {
    pthread_mutex_t lock;
    long seq; /* parts published */
    int stop;
    viewer *viewers[VIEWERS_MAX];
    int freed; /* viewers whose free_ctx ran */
    pthread_t thread;
} ticker;

static ticker the_ticker = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *ticker_run(void *arg) {
    ticker *t = arg;
    for (;;) {
        usleep(5000);
        pthread_mutex_lock(&t->lock);
        if (t->stop) {
            pthread_mutex_unlock(&t->lock);
            return NULL;
        }
        t->seq++;
        for (int i = 0; i < VIEWERS_MAX; i++)
            if (t->viewers[i]) server_stream_wake(t->viewers[i]->stream);
        pthread_mutex_unlock(&t->lock);
    }
}

static int ticker_freed(ticker *t) {
    pthread_mutex_lock(&t->lock);
    int freed = t->freed;
    pthread_mutex_unlock(&t->lock);
    return freed;
}

static long viewer_produce(void *ctx, server_stream *stream, char *buf, size_t max) {
    viewer *v = ctx;
    CHECK(stream == v->stream);
    if (v->idle) return 0;
    if (v->part_off == v->part_len) { /* the last part is out: the next, if there is one */
        if (v->parts_max && v->parts == v->parts_max) return SERVER_STREAM_END;
        pthread_mutex_lock(&v->ticker->lock);
        long seq = v->ticker->seq;
        pthread_mutex_unlock(&v->ticker->lock);
        if (seq == v->seq_sent) return 0;
        v->seq_sent = seq;
        v->parts++;
        char text[32];
        int n = snprintf(text, sizeof text, "part %ld", v->parts);
        v->part_len = (size_t)snprintf(v->part, sizeof v->part,
                                       "--frame\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s\r\n", n,
                                       text);
        v->part_off = 0;
    }
    size_t n = v->part_len - v->part_off < max ? v->part_len - v->part_off : max;
    memcpy(buf, v->part + v->part_off, n);
    v->part_off += n;
    return (long)n;
}

static void viewer_free(void *ctx) {
    viewer *v = ctx;
    ticker *t = v->ticker;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < VIEWERS_MAX; i++)
        if (t->viewers[i] == v) t->viewers[i] = NULL;
    t->freed++;
    pthread_mutex_unlock(&t->lock);
    vigil_free(v);
}

/* GET /stream[?n=N]: a part per tick until N (or forever); /stream/idle: none. */
static void stream_route(void *ctx, server_call *call) {
    ticker *t = ctx;
    viewer *v = vigil_calloc(1, sizeof *v);
    if (!v) {
        server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    v->ticker = t;
    v->idle = strcmp(server_call_path(call), "/idle") == 0;
    const char *n = server_call_query(call, "n");
    v->parts_max = n ? atol(n) : 0;
    v->seq_sent = -1; /* a live view starts with the current part */
    server_stream *stream =
        server_call_respond_stream(call, 200, "multipart/x-mixed-replace; boundary=frame", viewer_produce, v, viewer_free);
    CHECK(stream != NULL);
    if (!stream) return;
    v->stream = stream;
    pthread_mutex_lock(&t->lock);
    int slot = -1;
    for (int i = 0; i < VIEWERS_MAX && slot < 0; i++)
        if (!t->viewers[i]) slot = i;
    if (slot >= 0) t->viewers[slot] = v;
    pthread_mutex_unlock(&t->lock);
    if (slot < 0) server_call_error_code(call, 503, "too many viewers"); /* ends the stream: viewer_free */
}

/* An empty repository of the tests' own (removed at the end): /tmp's
 * directories would each be a model that failed to load, with its lines on
 * /metrics. */
static char models[] = "/tmp/vigil-routes-ext-models-XXXXXX";

static vigil_server *start_server(const char *auth_secret_file) {
    vigil_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.http_port = 0;
    if (models[sizeof models - 2] == 'X' && !mkdtemp(models)) {
        CHECK(0);
        return NULL;
    }
    snprintf(cfg.models_dir, sizeof cfg.models_dir, "%s", models);
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
    CHECK_EQ_INT(server_route_add(server, "GET", "/stream", stream_route, &the_ticker, &err), VIGIL_OK);
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
    server_declare_ready(server);
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

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Reads from fd into out until `parts` parts have come, or EOF, or the
 * read timeout; returns the parts seen. */
static int read_parts(int fd, char *out, size_t size, int parts) {
    size_t got = strlen(out);
    while (count_of(out, "--frame\r\n") < parts && got + 1 < size) {
        ssize_t n = read(fd, out + got, size - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        out[got] = '\0';
    }
    return count_of(out, "--frame\r\n");
}

static const char stream_request[] = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";

/* A body of N parts, written as the producer has them, ended cleanly, and
 * counted like any answer. */
static void test_stream_parts(void) {
    vigil_server *server = start_server(NULL);
    if (!server) return;
    int freed = ticker_freed(&the_ticker);
    static char out[1 << 17];
    CHECK_EQ_INT(http_call(server_http_port(server), "GET /stream?n=40 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           out, sizeof out),
                 200);
    CHECK(strstr(out, "Content-Type: multipart/x-mixed-replace; boundary=frame\r\n") != NULL);
    CHECK(strstr(out, "Transfer-Encoding: chunked\r\n") != NULL);
    CHECK(strstr(out, "X-Request-Id: ") != NULL);
    CHECK_EQ_INT(count_of(out, "--frame\r\n"), 40);
    CHECK(strstr(out, "part 1\r\n") != NULL && strstr(out, "part 40\r\n") != NULL);
    CHECK(strstr(out, "\r\n0\r\n\r\n") != NULL); /* the chunked body's clean end */
    CHECK_EQ_INT(ticker_freed(&the_ticker), freed + 1);
    /* HEAD: the head alone, and the producer's context is still freed */
    CHECK_EQ_INT(http_call(server_http_port(server), "HEAD /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           out, sizeof out),
                 200);
    CHECK(strstr(out, "--frame") == NULL);
    CHECK_EQ_INT(ticker_freed(&the_ticker), freed + 2);
    CHECK_EQ_INT(http_call(server_http_port(server), "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           out, sizeof out),
                 200);
    CHECK(strstr(out, "route=\"/stream\"") != NULL); /* counted at its end */
    server_destroy(server);
}

/* A viewer that goes away mid-stream: its producer's context is freed (the
 * ASan build checks that nothing else is left), and the server serves on. */
static void test_stream_client_gone(void) {
    vigil_server *server = start_server(NULL);
    if (!server) return;
    int freed = ticker_freed(&the_ticker);
    static char out[1 << 16];
    for (int round = 0; round < 3; round++) {
        int fd = http_open(server_http_port(server), stream_request);
        CHECK(fd >= 0);
        if (fd < 0) break;
        out[0] = '\0';
        CHECK(read_parts(fd, out, sizeof out, 10) >= 10);
        close(fd);
    }
    for (int i = 0; i < 1000 && ticker_freed(&the_ticker) < freed + 3; i++) usleep(10000);
    CHECK_EQ_INT(ticker_freed(&the_ticker), freed + 3);
    CHECK_EQ_INT(http_call(server_http_port(server), "GET /x/ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
                           sizeof out),
                 200);
    server_destroy(server);
}

/* Viewers attached at shutdown, some waiting for a part that never comes,
 * more of them than I/O threads: requests are still answered meanwhile
 * (a waiting stream holds no thread), and server_stop ends every body
 * cleanly and frees every producer's context instead of hanging. */
static void test_stream_shutdown(void) {
    vigil_server *server = start_server(NULL);
    if (!server) return;
    int freed = ticker_freed(&the_ticker);
    enum { LIVE = 2, IDLE = 6 };
    int fds[LIVE + IDLE];
    static char out[1 << 16];
    for (int i = 0; i < LIVE + IDLE; i++) {
        fds[i] = http_open(server_http_port(server),
                           i < LIVE ? stream_request : "GET /stream/idle HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK(fds[i] >= 0);
    }
    for (int i = 0; i < LIVE; i++) {
        out[0] = '\0';
        if (fds[i] >= 0) CHECK(read_parts(fds[i], out, sizeof out, 5) >= 5);
    }
    for (int i = LIVE; i < LIVE + IDLE; i++) { /* the idle ones have their head */
        if (fds[i] < 0) continue;
        ssize_t n = read(fds[i], out, sizeof out - 1);
        out[n > 0 ? n : 0] = '\0';
        CHECK(strstr(out, "HTTP/1.1 200") != NULL);
    }
    CHECK_EQ_INT(http_call(server_http_port(server), "GET /x/ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
                           sizeof out),
                 200);
    server_destroy(server);
    CHECK_EQ_INT(ticker_freed(&the_ticker), freed + LIVE + IDLE);
    for (int i = 0; i < LIVE + IDLE; i++) { /* each body ends with its last chunk, then EOF */
        if (fds[i] < 0) continue;
        size_t got = 0;
        for (ssize_t n; got + 1 < sizeof out && (n = read(fds[i], out + got, sizeof out - 1 - got)) > 0;)
            got += (size_t)n;
        out[got] = '\0';
        CHECK(got >= 5 && strcmp(out + got - 5, "0\r\n\r\n") == 0);
        close(fds[i]);
    }
}

int main(void) {
    if (pthread_create(&the_ticker.thread, NULL, ticker_run, &the_ticker) != 0) return 1;
    RUN(test_stream_parts);
    RUN(test_stream_client_gone);
    RUN(test_stream_shutdown);
    pthread_mutex_lock(&the_ticker.lock);
    the_ticker.stop = 1;
    pthread_mutex_unlock(&the_ticker.lock);
    pthread_join(the_ticker.thread, NULL);
    RUN(test_added_routes_answer);
    RUN(test_deferred_answer);
    RUN(test_auth_applies);
    if (models[sizeof models - 2] != 'X') rmdir(models);
    return testing_report();
}
