/*
 * log.c - the logging sink.  One process-wide configuration (level, format,
 * stream), set at start-up by the CLI; writes are serialised by a mutex so
 * JSON lines from different threads never interleave.
 */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

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

/* Writes s as a JSON string body (without quotes). */
static void log_json_escape(FILE *out, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c < 0x20) fprintf(out, "\\u%04x", c);
        else fputc(c, out);
    }
}

void log_write(log_level level, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, file, line, fmt, ap);
    va_end(ap);
}

void log_line(const char *text) {
    pthread_mutex_lock(&log_config.lock);
    FILE *out = log_config.sink ? log_config.sink : stderr;
    fputs(text, out);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&log_config.lock);
}

void log_vwrite(log_level level, const char *file, int line, const char *fmt, va_list ap) {
    char message[2048];
    vsnprintf(message, sizeof message, fmt, ap);
    /* Library messages (libmicrohttpd's) end with a newline of their own. */
    size_t len = strlen(message);
    while (len && message[len - 1] == '\n') message[--len] = '\0';

    pthread_mutex_lock(&log_config.lock);
    FILE *out = log_config.sink ? log_config.sink : stderr;
    if (log_config.json) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        const char *base = strrchr(file, '/');
        fprintf(out, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"src\":\"%s:%d\",\"msg\":\"", stamp,
                now.tv_nsec / 1000000, level_names[level], base ? base + 1 : file, line);
        log_json_escape(out, message);
        fputs("\"}\n", out);
    } else {
        fprintf(out, "vigil: %s: %s\n", level_names[level], message);
    }
    fflush(out);
    pthread_mutex_unlock(&log_config.lock);
}
