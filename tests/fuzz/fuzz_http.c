/*
 * fuzz_http.c - libFuzzer target for HTTP/1.1 request framing: the real
 * server (server_create/server_start: the gate with its strict parser in
 * front of libmicrohttpd, vigil's handler, body limits and routes) runs in
 * this process on a loopback port with an empty repository, and each input
 * becomes the bytes of one connection, sent, half-closed and read to the
 * end.
 *
 * Inputs are grammar-aware: one starting with an ASCII letter is sent as it
 * is (raw requests to mutate); any other is a little program whose opcodes
 * build request lines, header fields from a table of framing-relevant names
 * and values (Content-Length and Transfer-Encoding variants, repeats, a
 * space before the colon, obs-fold), chunks with sizes and extensions of
 * every kind, last chunks with trailers, and raw bytes.  Sanitizers catch
 * memory errors in the handler and the library alike; the target itself
 * traps when the answer is not HTTP, when a request whose head was
 * ambiguous (two Content-Lengths, Content-Length with Transfer-Encoding)
 * got more than one answer from vigil (a smuggled request ran), or when an
 * answer to a built input has no X-Request-Id (libmicrohttpd's own HTML
 * page: the gate in front of it must have refused first, in JSON).
 */
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "serve/server.h"

#define OUT_MAX (256u << 10)

static vigil_server *fuzz_server;
static uint16_t fuzz_port;
static char fuzz_models[] = "/tmp/vigil-fuzz-http-XXXXXX"; /* the empty repository */

static void fuzz_models_remove(void) { rmdir(fuzz_models); }

static void fuzz_server_start(void) {
    if (fuzz_server) return;
    signal(SIGPIPE, SIG_IGN);
    log_configure(LOG_OFF, 1, stderr);
    if (!mkdtemp(fuzz_models)) abort();
    atexit(fuzz_models_remove);
    vigil_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    snprintf(cfg.models_dir, sizeof cfg.models_dir, "%s", fuzz_models);
    cfg.http_port = 0;
    cfg.http_threads = 1;
    cfg.idle_timeout_s = 2;
    cfg.max_body_bytes = 4096; /* small, so that the limit paths run */
    cfg.max_upload_bytes = 8192;
    vigil_error err = {0};
    if (server_create(&cfg, &fuzz_server, &err) || server_start(fuzz_server, &err)) {
        fprintf(stderr, "fuzz_http: cannot start the server: %s\n", err.message);
        abort();
    }
    fuzz_port = server_http_port(fuzz_server);
}

/* ------------------------------------------------------------ building the request */

typedef struct wire {
    char data[OUT_MAX];
    size_t len;
    int lengths;        /* Content-Length fields in the first head */
    char length[32];    /* the first one's value */
    int length_differs;
    int codings;        /* Transfer-Encoding fields in the first head */
    int heads_done;
} wire;

static void put(wire *w, const void *p, size_t n) {
    if (n > sizeof w->data - w->len) n = sizeof w->data - w->len;
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

static void puts_(wire *w, const char *s) { put(w, s, strlen(s)); }

static const char *const methods[] = {"GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "G ET", "get"};
static const char *const targets[] = {"/healthz", "/v2", "/v2/repository/index", "/api/v1/models/m/versions/1",
                                      "/v2/models/m/infer", "/a b", "*", "/%00", "/v2/health/ready?x=1", ""};
static const char *const versions[] = {"HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "HTTP/1.10", ""};
static const char *const length_names[] = {"Content-Length", "content-length", "Content-Length ", "Content-Length\t",
                                           " Content-Length"};
static const char *const length_values[] = {"0", "2", "3", "5", "16", "-1", "abc", "18446744073709551617",
                                            "3, 54", "+3", " 3", "4097", "9000", "03"};
static const char *const coding_names[] = {"Transfer-Encoding", "transfer-encoding", "Transfer-Encoding ",
                                           "Transfer_Encoding"};
static const char *const coding_values[] = {"chunked", "gzip", "chunked, chunked", "gzip, chunked", "Chunked",
                                            "chunked\x0b", "identity", " chunked", "chunked;q=1"};
static const char *const other_fields[] = {"Host: x", "Host: y", "Expect: 100-continue", "Connection: close",
                                           "Connection: keep-alive", "X-Request-Id: fuzz", "Content-Type: application/json",
                                           "Authorization: Bearer x", "Upgrade: h2c", "NoColon", ": empty-name"};

#define PICK(table, b) table[(b) % (sizeof table / sizeof table[0])]

static uint8_t next(const uint8_t **p, const uint8_t *end) { return *p < end ? *(*p)++ : 0; }

static void header(wire *w, const char *name, const char *value) {
    puts_(w, name);
    puts_(w, ": ");
    puts_(w, value);
    puts_(w, "\r\n");
}

static void build(wire *w, const uint8_t *p, const uint8_t *end) {
    while (p < end && w->len < sizeof w->data) {
        uint8_t op = next(&p, end) % 8;
        uint8_t a = next(&p, end), b = next(&p, end);
        char line[160];
        switch (op) {
        case 0: /* request line */
            snprintf(line, sizeof line, "%s %s %s\r\n", PICK(methods, a), PICK(targets, b),
                     PICK(versions, a / 8 + b));
            puts_(w, line);
            break;
        case 1: /* a framing field */
            /* The oracle counts only the spellings both MHD and a proxy
             * read as the field (the others are refused as non-tokens). */
            if (a & 1) {
                const char *name = PICK(length_names, a / 2), *value = PICK(length_values, b);
                header(w, name, value);
                while (*value == ' ') value++; /* MHD drops the value's leading space */
                if (!w->heads_done && strcasecmp(name, "Content-Length") == 0) {
                    if (w->lengths++ == 0) snprintf(w->length, sizeof w->length, "%s", value);
                    else if (strcmp(w->length, value) != 0) w->length_differs = 1;
                }
            } else {
                const char *name = PICK(coding_names, a / 2);
                header(w, name, PICK(coding_values, b));
                if (!w->heads_done && strcasecmp(name, "Transfer-Encoding") == 0) w->codings++;
            }
            break;
        case 2: /* another field, or the end of the head */
            if (a & 1) {
                puts_(w, PICK(other_fields, b));
                puts_(w, "\r\n");
            } else {
                puts_(w, b & 1 ? "\n" : "\r\n");
                w->heads_done = 1;
            }
            break;
        case 3: { /* a chunk: size line in one of several spellings, data, CRLF */
            unsigned size = b;
            switch (a % 6) {
            case 0: snprintf(line, sizeof line, "%x\r\n", size); break;
            case 1: snprintf(line, sizeof line, "%X;ext=1\r\n", size); break;
            case 2: snprintf(line, sizeof line, "0000%x\r\n", size); break;
            case 3: snprintf(line, sizeof line, "%x\n", size); break;
            case 4: snprintf(line, sizeof line, "%x ;x\r\n", size); break;
            default: snprintf(line, sizeof line, "%x;", size); break; /* a long extension follows */
            }
            puts_(w, line);
            if (a % 6 == 5) {
                for (unsigned i = 0; i < (unsigned)a * 64; i++) puts_(w, "e");
                puts_(w, "\r\n");
            }
            for (unsigned i = 0; i < size; i++) puts_(w, "a");
            puts_(w, a & 0x40 ? "\n" : "\r\n");
            break;
        }
        case 4: /* the last chunk, with or without a trailer */
            puts_(w, a & 1 ? "0\r\nX-Trailer: 1\r\n\r\n" : "0\r\n\r\n");
            break;
        case 5: { /* raw bytes from the input */
            size_t n = (size_t)a;
            if (n > (size_t)(end - p)) n = (size_t)(end - p);
            put(w, p, n);
            p += n;
            break;
        }
        case 6: /* obs-fold: a continuation line */
            puts_(w, b & 1 ? " chunked\r\n" : "\tfolded\r\n");
            break;
        default: /* chunk sizes at and past the 64-bit edge */
            puts_(w, a & 1 ? "ffffffffffffffff\r\n" : "1ffffffffffffffff\r\n");
            break;
        }
    }
}

/* ------------------------------------------------------------ one connection */

static size_t converse(const char *data, size_t len, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct linger hard = {1, 0}; /* RST on close: no TIME_WAIT per execution */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(fuzz_port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        for (size_t sent = 0; sent < len;) {
            ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
            if (n <= 0) break; /* refused early, or closed */
            sent += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        /* Until the server closes, or a pause: libmicrohttpd 0.9.75
         * notices a half-closed connection only at its idle timeout (a
         * keep-alive one after its answers, one still owed body bytes with
         * none), and loopback answers come in well under the first wait. */
        for (int wait_ms = 200; got < cap; wait_ms = 30) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, wait_ms) <= 0) break;
            ssize_t n = recv(fd, out + got, cap - got, 0);
            if (n <= 0) break;
            got += (size_t)n;
        }
    }
    close(fd);
    return got;
}

static size_t count(const char *hay, size_t len, const char *needle) {
    size_t n = 0, k = strlen(needle);
    for (const char *p = hay; (p = memmem(p, len - (size_t)(p - hay), needle, k)); p += k) n++;
    return n;
}

/* Walks the answers one by one (heads to their empty line, bodies by
 * Content-Length, so that what a body echoes of the request is skipped):
 * each final answer's head must carry X-Request-Id, as vigil's do and
 * libmicrohttpd's own HTML pages did not.  An answer cut short by the
 * close ends the walk. */
static int every_answer_is_vigils(const char *answer, size_t len) {
    const char *p = answer, *end = answer + len;
    while (p < end) {
        const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!head_end) return 1;
        size_t head_len = (size_t)(head_end - p) + 4;
        int interim = head_len >= 12 && memcmp(p, "HTTP/1.1 1", 10) == 0;
        if (!interim && !memmem(p, head_len, "\r\nX-Request-Id: ", 16)) return 0;
        const char *cl = memmem(p, head_len, "\r\nContent-Length: ", 18);
        size_t body = cl ? strtoul(cl + 18, NULL, 10) : 0;
        if (body > (size_t)(end - head_end - 4)) return 1;
        p = head_end + 4 + body;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_server_start();
    static wire w;
    static char answer[OUT_MAX];
    w.len = 0, w.lengths = 0, w.length[0] = '\0', w.length_differs = 0, w.codings = 0, w.heads_done = 0;
    int raw = size > 0 && ((data[0] >= 'A' && data[0] <= 'Z') || (data[0] >= 'a' && data[0] <= 'z'));
    if (raw) put(&w, data, size);
    else build(&w, data, data + size);
    if (w.len == 0) return 0;
    size_t got = converse(w.data, w.len, answer, sizeof answer);
    if (got == 0) return 0; /* closed without an answer (e.g. the peer reset) */
    if (got >= 7 && memcmp(answer, "HTTP/1.", 7) != 0) __builtin_trap(); /* not an HTTP answer */
    int ambiguous = !raw && (w.length_differs || (w.lengths && w.codings));
    if (ambiguous && count(answer, got, "X-Request-Id:") > 1) __builtin_trap(); /* a smuggled request ran */
    if (!raw && !every_answer_is_vigils(answer, got)) __builtin_trap(); /* the library answered, not vigil */
    return 0;
}
