/*
 * log.c - the logging sink.  One process-wide configuration (level, format,
 * stream), set at start-up by the CLI.
 *
 * Every line, JSON or text, is built whole in a buffer and handed to the
 * kernel with one writev(2) (looping only on a partial write), under a mutex
 * so that a partial write is finished before another thread's line starts.
 * stdio would split a line into many writes (stderr is unbuffered: one per
 * fputc), and on a non-blocking stderr whose reader lags it drops the ones
 * that fail with EAGAIN, cutting lines in the middle; here a full pipe is
 * waited for instead, as a blocking stderr would.  Every writer in the
 * server (its own lines, the access log, libmicrohttpd's and gRPC core's
 * messages) comes through log_vwrite or log_line.
 */
#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

/* The longest line written; longer messages are cut (and say so). */
#define LOG_LINE_MAX 8192
#define LOG_MESSAGE_MAX 2048

static struct {
    log_level min_level;
    int json;
    FILE *sink; /* NULL means stderr */
    pthread_mutex_t lock;
} log_config = {LOG_INFO, 0, NULL, PTHREAD_MUTEX_INITIALIZER};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_configure(log_level min_level, int json, FILE *sink) {
    pthread_mutex_lock(&log_config.lock);
    log_config.min_level = min_level;
    log_config.json = json;
    log_config.sink = sink;
    pthread_mutex_unlock(&log_config.lock);
}

log_level log_min_level(void) { return log_config.min_level; }

int log_json(void) { return log_config.json; }

int log_level_parse(const char *name) {
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    if (strcmp(name, "warning") == 0) return LOG_WARN;
    return -1;
}

const char *log_level_name(log_level level) {
    return (level >= LOG_DEBUG && level <= LOG_OFF) ? level_names[level] : "unknown";
}

/* A line under construction: appends past the capacity are dropped, and
 * the caller's closing bytes always fit (see LINE_TAIL). */
typedef struct log_text {
    char data[LOG_LINE_MAX];
    size_t len;
} log_text;

#define LINE_TAIL 8 /* room kept for '"}' and '\n' */

static void text_put(log_text *t, const char *s, size_t n) {
    size_t room = sizeof t->data - LINE_TAIL - t->len;
    if (n > room) n = room;
    memcpy(t->data + t->len, s, n);
    t->len += n;
}

static void text_puts(log_text *t, const char *s) { text_put(t, s, strlen(s)); }

/* Appends s as a JSON string body (without quotes); an escape that would
 * not fit whole is left out, so the line stays valid JSON when cut. */
static void text_json_escape(log_text *t, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\') n = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n') n = (size_t)snprintf(esc, sizeof esc, "\\n");
        else if (c == '\t') n = (size_t)snprintf(esc, sizeof esc, "\\t");
        else if (c < 0x20 || c == 0x7f) n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        else esc[0] = (char)c, n = 1;
        if (t->len + n > sizeof t->data - LINE_TAIL) return;
        text_put(t, esc, n);
    }
}

/* Appends s with control bytes (a library's embedded newline) as spaces:
 * one message is one text line. */
static void text_clean(log_text *t, const char *s) {
    for (; *s && t->len < sizeof t->data - LINE_TAIL; s++) {
        unsigned char c = (unsigned char)*s;
        t->data[t->len++] = (char)(c < 0x20 || c == 0x7f ? ' ' : c);
    }
}

/* Writes the pieces to fd with one writev(2), unless the kernel takes only
 * part of them: then the rest follows.  EINTR retries; EAGAIN (a
 * non-blocking sink that is full) waits until it drains.  Called with the
 * lock held, so a line finished by a second call is still whole. */
static void sink_write_all(int fd, struct iovec *iov, int count) {
    while (count > 0) {
        ssize_t n = writev(fd, iov, count);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) return;
            continue;
        }
        if (n <= 0) return; /* the sink is gone (EPIPE, EBADF): nothing more to do */
        size_t done = (size_t)n;
        while (count > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++, count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
}

static void sink_emit(const char *data, size_t len, const char *tail, size_t tail_len) {
    struct iovec iov[2] = {{(void *)data, len}, {(void *)tail, tail_len}};
    pthread_mutex_lock(&log_config.lock);
    FILE *out = log_config.sink ? log_config.sink : stderr;
    fflush(out); /* anything a caller wrote through stdio goes first */
    sink_write_all(fileno(out), iov, tail_len ? 2 : 1);
    pthread_mutex_unlock(&log_config.lock);
}

void log_write(log_level level, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, file, line, fmt, ap);
    va_end(ap);
}

void log_line(const char *text) { sink_emit(text, strlen(text), "\n", 1); }

void log_vwrite(log_level level, const char *file, int line, const char *fmt, va_list ap) {
    char message[LOG_MESSAGE_MAX];
    vsnprintf(message, sizeof message, fmt, ap);
    /* Library messages (libmicrohttpd's) end with a newline of their own. */
    size_t len = strlen(message);
    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) message[--len] = '\0';
    if (level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;

    log_text t;
    t.len = 0;
    if (log_config.json) {
        char stamp[CLOCK_RFC3339_SIZE];
        clock_utc_rfc3339(stamp, sizeof stamp);
        const char *base = strrchr(file, '/');
        char head[160];
        snprintf(head, sizeof head, "{\"ts\":\"%s\",\"level\":\"%s\",\"src\":\"", stamp, level_names[level]);
        text_puts(&t, head);
        char where[16];
        text_json_escape(&t, base ? base + 1 : file);
        snprintf(where, sizeof where, ":%d", line);
        text_puts(&t, where);
        text_puts(&t, "\",\"msg\":\"");
        text_json_escape(&t, message);
        memcpy(t.data + t.len, "\"}\n", 3); /* LINE_TAIL keeps room */
        t.len += 3;
    } else {
        text_puts(&t, "vigil: ");
        text_puts(&t, level_names[level]);
        text_puts(&t, ": ");
        text_clean(&t, message);
        t.data[t.len++] = '\n';
    }
    sink_emit(t.data, t.len, NULL, 0);
}
