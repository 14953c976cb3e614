/*
 * textbuf.h - a growable byte buffer with a hard maximum (curl's dynbuf
 * idea), for response bodies the server assembles: metrics text, detection
 * JSON, binary-tensor responses.
 *
 * Appends past the maximum or out of memory fail with VIGIL_ERR_LIMIT /
 * VIGIL_ERR_NO_MEMORY and leave the contents as they were, so a caller can
 * append many pieces and check the status once via textbuf_status().
 */
#ifndef VIGIL_SERVE_TEXTBUF_H
#define VIGIL_SERVE_TEXTBUF_H

#include <stddef.h>

#include "vigil/status.h"

typedef struct textbuf {
    char *data;   /* vigil_malloc'd, NUL-terminated while len < cap */
    size_t len;
    size_t cap;
    size_t max;   /* hard limit on len */
    vigil_status status; /* first failure, sticky */
} textbuf;

void textbuf_init(textbuf *b, size_t max);
void textbuf_free(textbuf *b);
vigil_status textbuf_append(textbuf *b, const void *data, size_t size);
/* Makes room for extra more bytes at once (a body of known length). */
vigil_status textbuf_reserve(textbuf *b, size_t extra);
vigil_status textbuf_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (vigil_free them); the buffer is left empty. */
char *textbuf_take(textbuf *b, size_t *len);
/* Gives an empty buffer data (vigil_malloc'd, cap bytes) as its storage;
 * the buffer owns it from then on. */
void textbuf_adopt(textbuf *b, char *data, size_t cap);

#endif
