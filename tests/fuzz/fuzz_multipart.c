/*
 * fuzz_multipart.c - libFuzzer target for the multipart/form-data field
 * finder.  The input up to the first newline is the Content-Type header
 * (which carries the boundary); the rest is the body.  Whatever it returns
 * must lie inside the body.
 */
#include <stdint.h>
#include <string.h>

#include "serve/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    const char *newline = memchr(text, '\n', size);
    if (!newline) return 0;
    char content_type[512];
    size_t ct_len = (size_t)(newline - text);
    if (ct_len >= sizeof content_type) return 0;
    memcpy(content_type, text, ct_len);
    content_type[ct_len] = '\0';
    const char *body = newline + 1;
    size_t len = size - ct_len - 1;
    const char *field = NULL;
    size_t field_size = 0;
    vigil_error err = {0};
    if (multipart_find(content_type, body, len, "image", &field, &field_size, &err) == VIGIL_OK) {
        if (field < body || field + field_size > body + len) __builtin_trap();
    } else if (err.message[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
