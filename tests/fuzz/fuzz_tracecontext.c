/* fuzz_tracecontext.c - libFuzzer target for the W3C Trace Context parsers
 * (core/tracecontext.c), which read headers and metadata every client
 * controls.  The first byte picks what the rest is: even, a traceparent,
 * which when accepted must format back to a version 00 value that parses to
 * the same ids; odd, a tracestate, which when accepted must be within the
 * limits.  Never a crash, never an accepted all-zero id. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/tracecontext.h"

static int zero(const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] % 2 == 0) {
        tracecontext c, again;
        if (tracecontext_parse(text, len, &c) != VIGIL_OK) return 0;
        if (zero(c.trace_id, TRACE_ID_SIZE) || zero(c.span_id, TRACE_SPAN_ID_SIZE)) __builtin_trap();
        char out[TRACEPARENT_LEN + 1];
        tracecontext_format(&c, out);
        if (strlen(out) != TRACEPARENT_LEN || tracecontext_parse(out, TRACEPARENT_LEN, &again) != VIGIL_OK ||
            memcmp(again.trace_id, c.trace_id, TRACE_ID_SIZE) || memcmp(again.span_id, c.span_id, TRACE_SPAN_ID_SIZE) ||
            again.flags != (c.flags & TRACECONTEXT_SAMPLED))
            __builtin_trap();
    } else if (tracecontext_state_valid(text, len) && len > TRACESTATE_MAX) {
        __builtin_trap();
    }
    return 0;
}
