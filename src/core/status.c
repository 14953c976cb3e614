/*
 * status.c - names for vigil_status values and the vigil_error helpers.
 * The table is indexed by -status so that adding a status means adding one
 * line here and one in status.h.
 */
#include "vigil/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[VIGIL_STATUS_COUNT] = {
    "ok",
    "invalid argument",
    "not found",
    "out of memory",
    "i/o error",
    "parse error",
    "unsupported",
    "limit exceeded",
    "unavailable",
    "timeout",
    "unauthenticated",
    "permission denied",
    "already exists",
    "wrong state",
    "internal error",
};

const char *vigil_status_str(vigil_status status) {
    int index = -(int)status;
    if (index < 0 || index >= VIGIL_STATUS_COUNT) return "unknown status";
    return status_names[index];
}

vigil_status vigil_error_set(vigil_error *err, vigil_status status, const char *fmt, ...) {
    if (!err) return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

void vigil_error_prefix(vigil_error *err, const char *fmt, ...) {
    if (!err) return;
    char joined[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, sizeof joined, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t used = (size_t)n < sizeof joined ? (size_t)n : sizeof joined - 1;
    size_t room = sizeof joined - used;
    if (room > 2) {
        memcpy(joined + used, ": ", 2);
        used += 2;
        room -= 2;
        size_t len = strnlen(err->message, sizeof err->message);
        if (len >= room) len = room - 1;
        memcpy(joined + used, err->message, len);
        used += len;
    }
    joined[used] = '\0';
    memcpy(err->message, joined, used + 1);
}

void vigil_error_clear(vigil_error *err) {
    if (!err) return;
    err->status = VIGIL_OK;
    err->message[0] = '\0';
}
