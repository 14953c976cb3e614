/*
 * multipart.c - a small multipart/form-data reader.
 *
 * Parts are delimited by "--boundary" lines; each has header lines up to an
 * empty line, and its data runs to the CRLF before the next delimiter.  Only
 * Content-Disposition's name parameter is read.  The parser never reads past
 * len and treats anything unexpected as a parse error.
 */
#include "serve/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 200

/* Copies the boundary parameter of content_type into out ("--" prefixed). */
static int boundary_of(const char *content_type, char *out, size_t size) {
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0) return 0;
    const char *b = strcasestr(content_type, "boundary=");
    if (!b) return 0;
    b += 9;
    int quoted = *b == '"';
    if (quoted) b++;
    size_t n = 0;
    while (b[n] && (quoted ? b[n] != '"' : (b[n] != ';' && b[n] != ' '))) n++;
    if (n == 0 || n > BOUNDARY_MAX || n + 3 > size) return 0;
    snprintf(out, size, "--%.*s", (int)n, b);
    return 1;
}

/* The value of name="..." in the part's headers [h, end), or 0. */
static int part_name(const char *h, const char *end, char *out, size_t size) {
    static const char key[] = "name=\"";
    for (const char *p = h; p + sizeof key - 1 < end; p++) {
        if (memcmp(p, key, sizeof key - 1) != 0 || (p > h && (p[-1] != ' ' && p[-1] != ';'))) continue;
        p += sizeof key - 1;
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q || (size_t)(q - p) >= size) return 0;
        memcpy(out, p, (size_t)(q - p));
        out[q - p] = '\0';
        return 1;
    }
    return 0;
}

vigil_status multipart_find(const char *content_type, const char *body, size_t len, const char *field,
                            const char **data, size_t *size, vigil_error *err) {
    char delim[BOUNDARY_MAX + 8];
    if (!boundary_of(content_type, delim, sizeof delim))
        return vigil_error_set(err, VIGIL_ERR_PARSE, "multipart/form-data without a valid boundary");
    size_t dlen = strlen(delim);
    const char *end = body + len;
    const char *at = len >= dlen ? memmem(body, len, delim, dlen) : NULL;
    while (at) {
        const char *part = at + dlen;
        if (end - part >= 2 && part[0] == '-' && part[1] == '-') break; /* closing delimiter */
        if (end - part < 2 || part[0] != '\r' || part[1] != '\n') break;
        part += 2;
        const char *headers_end = memmem(part, (size_t)(end - part), "\r\n\r\n", 4);
        if (!headers_end) break;
        const char *content = headers_end + 4;
        char next_delim[BOUNDARY_MAX + 10];
        snprintf(next_delim, sizeof next_delim, "\r\n%s", delim);
        const char *next = memmem(content, (size_t)(end - content), next_delim, dlen + 2);
        if (!next) break;
        char name[128];
        if (part_name(part, headers_end, name, sizeof name) && strcmp(name, field) == 0) {
            *data = content;
            *size = (size_t)(next - content);
            return VIGIL_OK;
        }
        at = next + 2;
    }
    if (at == NULL || at >= end)
        return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "multipart body has no field '%s'", field);
    return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "multipart body has no field '%s' (or is truncated)", field);
}
