/*
 * tracecontext.h - W3C Trace Context (level 1): the `traceparent` and
 * `tracestate` values that carry a trace from one process to the next, and
 * the random ids a new trace or span needs.  Transport-neutral: the REST
 * header, the gRPC metadata and the edge's escalation upload all carry the
 * same text, and the tracing module (src/serve/trace.c) is its one user on
 * the request path.
 *
 * traceparent = version "-" trace-id "-" parent-id "-" trace-flags, in
 * lower-case hex only.  Version 00 is exactly 55 characters.  A higher
 * version (not ff) is read by its first four fields, as the specification
 * asks, when it is at least 55 characters and, if longer, the 56th is a
 * dash.  An all-zero trace id or parent id is invalid.  What we send is
 * always version 00.
 *
 * tracestate is kept verbatim when valid (keys and values per the grammar,
 * at most 32 members, at most 512 characters, no key twice); anything else
 * is dropped whole, as the specification allows for a value that cannot be
 * parsed.
 */
#ifndef VIGIL_CORE_TRACECONTEXT_H
#define VIGIL_CORE_TRACECONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

#define TRACE_ID_SIZE 16      /* bytes of a trace id */
#define TRACE_SPAN_ID_SIZE 8  /* bytes of a span (parent) id */
#define TRACEPARENT_LEN 55    /* characters of a version 00 traceparent */
#define TRACESTATE_MAX 512    /* characters of a tracestate kept */
#define TRACESTATE_MEMBERS_MAX 32
#define TRACECONTEXT_SAMPLED 0x01 /* the trace-flags bit that says the caller records */

/* One traceparent, as read or as sent. */
typedef struct tracecontext {
    uint8_t trace_id[TRACE_ID_SIZE];
    uint8_t span_id[TRACE_SPAN_ID_SIZE]; /* the parent-id field: the sender's span */
    uint8_t flags;                       /* trace-flags; only TRACECONTEXT_SAMPLED has a meaning */
} tracecontext;

/* Reads a traceparent value of len bytes (not NUL-terminated).
 * VIGIL_ERR_PARSE, with *out untouched, for anything the rules above
 * refuse. */
vigil_status tracecontext_parse(const char *text, size_t len, tracecontext *out);

/* Writes c as a version 00 traceparent.  OUT: out, TRACEPARENT_LEN + 1 bytes. */
void tracecontext_format(const tracecontext *c, char *out);

/* 1 when text (len bytes) is a tracestate value we pass on: the grammar's
 * list members, at most TRACESTATE_MEMBERS_MAX of them, at most
 * TRACESTATE_MAX characters, no key twice.  An empty value is valid (and
 * passes nothing on). */
int tracecontext_state_valid(const char *text, size_t len);

/* Fills out[0..n) with random bytes from this thread's generator (seeded
 * once per thread from getrandom), never all zero: a new trace or span id. */
void tracecontext_random_id(uint8_t *out, size_t n);

/* Lower-case hex of bytes[0..n).  OUT: out, 2n + 1 bytes. */
void tracecontext_hex(const uint8_t *bytes, size_t n, char *out);

/* OpenTelemetry's TraceIdRatioBased decision: 1 when the trace id's last 8
 * bytes (big-endian, top bit ignored) fall below ratio of their range, so
 * every process that sees the trace with the same ratio decides the same.
 * ratio <= 0 never samples, ratio >= 1 always does. */
int tracecontext_ratio_sampled(const uint8_t *trace_id, double ratio);

#endif
