/* textbuf.c - growable, capped byte buffer (see textbuf.h). */
#include "serve/textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

void textbuf_init(textbuf *b, size_t max) {
    memset(b, 0, sizeof *b);
    b->max = max;
}

void textbuf_free(textbuf *b) {
    vigil_free(b->data);
    textbuf_init(b, b->max);
}

vigil_status textbuf_reserve(textbuf *b, size_t extra) {
    if (b->status) return b->status;
    if (extra > b->max - b->len) return b->status = VIGIL_ERR_LIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return VIGIL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = vigil_realloc(b->data, cap);
    if (!p) return b->status = VIGIL_ERR_NO_MEMORY;
    b->data = p;
    b->cap = cap;
    return VIGIL_OK;
}

vigil_status textbuf_append(textbuf *b, const void *data, size_t size) {
    vigil_status st = textbuf_reserve(b, size);
    if (st) return st;
    if (size) memcpy(b->data + b->len, data, size);
    b->len += size;
    b->data[b->len] = '\0';
    return VIGIL_OK;
}

vigil_status textbuf_printf(textbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return b->status = VIGIL_ERR_INTERNAL;
    if ((size_t)n < sizeof small) return textbuf_append(b, small, (size_t)n);
    vigil_status st = textbuf_reserve(b, (size_t)n);
    if (st) return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return VIGIL_OK;
}

char *textbuf_take(textbuf *b, size_t *len) {
    char *data = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}

void textbuf_adopt(textbuf *b, char *data, size_t cap) {
    vigil_free(b->data);
    b->data = data;
    b->cap = cap;
    b->len = 0;
    if (cap) data[0] = '\0';
}
