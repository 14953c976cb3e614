/*
 * vigil/status.h - the one status type used across vigil.
 *
 * Every fallible function returns a vigil_status: 0 means success, a negative
 * value names the kind of failure.  The human-readable detail (which node,
 * which file line, which key) travels separately in a vigil_error so that the
 * status itself stays a cheap integer that callers can switch on and that the
 * servers map to HTTP and gRPC codes in one table (src/serve/request.c,
 * printed in docs/API.md and docs/GRPC.md).
 */
#ifndef VIGIL_STATUS_H
#define VIGIL_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vigil_status {
    VIGIL_OK = 0,
    VIGIL_ERR_INVALID_ARGUMENT = -1, /* caller passed something malformed */
    VIGIL_ERR_NOT_FOUND = -2,        /* file, model, key or route does not exist */
    VIGIL_ERR_NO_MEMORY = -3,        /* allocation failed or a byte cap was hit */
    VIGIL_ERR_IO = -4,               /* read, write, mmap or socket failure */
    VIGIL_ERR_PARSE = -5,            /* malformed file or message (ONNX, YAML, JSON, image) */
    VIGIL_ERR_UNSUPPORTED = -6,      /* well-formed but beyond what vigil implements */
    VIGIL_ERR_LIMIT = -7,            /* a configured limit was exceeded (size, pixels, elements) */
    VIGIL_ERR_UNAVAILABLE = -8,      /* temporarily cannot serve: queue full, shutting down */
    VIGIL_ERR_TIMEOUT = -9,          /* a deadline passed */
    VIGIL_ERR_UNAUTHENTICATED = -10, /* missing or invalid credentials */
    VIGIL_ERR_PERMISSION = -11,      /* credentials valid but not allowed */
    VIGIL_ERR_EXISTS = -12,          /* the thing to create is already there */
    VIGIL_ERR_STATE = -13,           /* object is not in a state that allows the call */
    VIGIL_ERR_INTERNAL = -14,        /* a bug in vigil: report it */
} vigil_status;

/* Number of distinct status values, for tables indexed by -status. */
#define VIGIL_STATUS_COUNT 15

/* Short, stable, lower-case name of a status ("ok", "invalid argument", ...).
 * Never returns NULL: unknown values give "unknown status". */
const char *vigil_status_str(vigil_status status);

/* A status plus a human message.  Fixed size so that it can live on the stack
 * or inside any handle without allocation. */
typedef struct vigil_error {
    vigil_status status;
    char message[512];
} vigil_error;

/* Sets err (if not NULL) to status and a printf-formatted message, and returns
 * status so that callers can write `return vigil_error_set(err, ...);`. */
vigil_status vigil_error_set(vigil_error *err, vigil_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an existing message (keeps the status). */
void vigil_error_prefix(vigil_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears err to VIGIL_OK with an empty message. */
void vigil_error_clear(vigil_error *err);

#ifdef __cplusplus
}
#endif
#endif
