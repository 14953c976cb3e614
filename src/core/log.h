/*
 * log.h - levelled logging through one macro.
 *
 * Text lines ("vigil: warn: ...") for the command line, JSON lines
 * ({"ts":..,"level":..,"msg":..}) for the server.  The sink settings are the
 * process's logging configuration (documented global, set once at start-up);
 * log.format governs every line, the server's access lines included (they
 * ask log_json() which form to build and write it with log_line()).
 */
#ifndef VIGIL_CORE_LOG_H
#define VIGIL_CORE_LOG_H

#include <stdarg.h>
#include <stdio.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 } log_level;

void log_configure(log_level min_level, int json, FILE *sink);
log_level log_min_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 on anything else. */
int log_level_parse(const char *name);
const char *log_level_name(log_level level);
/* 1 when lines are JSON (log.format json), 0 for text. */
int log_json(void);
void log_write(log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* log_write for callers holding a va_list (a library's log callback). */
void log_vwrite(log_level level, const char *file, int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Writes one finished line (text ends without '\n'; it is added) to the sink in one write,
 * serialised with the other lines.  For records whose layout the caller
 * builds (the access log), in the form log_json() asks for. */
void log_line(const char *text);

#define VIGIL_LOG(level, ...)                                                     \
    do {                                                                          \
        if ((level) >= log_min_level()) log_write((level), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
#define LOG_D(...) VIGIL_LOG(LOG_DEBUG, __VA_ARGS__)
#define LOG_I(...) VIGIL_LOG(LOG_INFO, __VA_ARGS__)
#define LOG_W(...) VIGIL_LOG(LOG_WARN, __VA_ARGS__)
#define LOG_E(...) VIGIL_LOG(LOG_ERROR, __VA_ARGS__)

#endif
