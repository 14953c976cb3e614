/*
 * http_strict.c - the gate's strict HTTP/1.1 request reader (see
 * http_strict.h).
 *
 * It works on the caller's buffer and keeps only offsets and counters: a
 * head is scanned line by line as it arrives (scan remembers how far), and
 * checked whole once its empty line is there; then it is passed on as
 * sent.  Nothing of a head goes on before it is whole, so a refusal always
 * falls between two requests as far as the server behind can tell, and the
 * gate can answer it there (http_gate.c).  Inside a chunked body the
 * parser re-frames what it passes on, so that it too is always at a chunk
 * boundary; a refusal there ends the body with a last chunk of its own.
 * These checks were framing_refused() in server.c (on what libmicrohttpd
 * had already parsed, and so only for what it let through); they live here
 * now, once.
 */
#include "serve/http_strict.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void strict_init(strict_parser *p) { memset(p, 0, sizeof *p); }

__attribute__((format(printf, 3, 4))) static size_t refuse(strict_parser *p, int code, const char *fmt, ...) {
    p->refused_in_chunked = p->state >= STRICT_CHUNK_SIZE && p->state <= STRICT_TRAILER;
    p->state = STRICT_REFUSED;
    p->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
    return 0;
}

int strict_is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_hex(unsigned char c, unsigned *value) {
    if (c >= '0' && c <= '9') *value = c - '0';
    else if (c >= 'a' && c <= 'f') *value = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') *value = c - 'A' + 10;
    else return 0;
    return 1;
}

/* A field name for a message: printable, no quotes, at most 40 bytes. */
static void clean_name(char *dst, size_t size, const char *src, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < size && k < 40; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[k++] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
    }
    dst[k] = '\0';
    if (!k) snprintf(dst, size, "(empty)");
}

/* What a head says about its framing, gathered field by field. */
typedef struct head_fields {
    unsigned fields;
    const char *length; /* the first Content-Length value */
    size_t length_len;
    int lengths_differ;
    const char *coding; /* the first Transfer-Encoding value */
    size_t coding_len;
    unsigned codings;
    unsigned hosts;
    unsigned expects;
} head_fields;

/* One field line (without its CRLF), in a head (info set) or a trailer
 * section.  Returns 1 when well formed. */
static int field_check(strict_parser *p, const char *line, size_t n, head_fields *info) {
    if (line[0] == ' ' || line[0] == '\t')
        return (int)refuse(p, 400,
                           "a header line starts with a space or a tab (obs-fold, refused by RFC 9112 5.2): "
                           "write each field on one line");
    const char *colon = memchr(line, ':', n);
    if (!colon) return (int)refuse(p, 400, "a header line has no colon: each field is 'Name: value'");
    size_t name_len = (size_t)(colon - line);
    int token = name_len > 0;
    for (size_t i = 0; i < name_len && token; i++) token = strict_is_tchar((unsigned char)line[i]);
    char name[48];
    if (!token) {
        clean_name(name, sizeof name, line, name_len);
        return (int)refuse(p, 400, "header field name '%s' is not a token (no spaces before the colon)", name);
    }
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    for (const char *c = v; c < end; c++) {
        unsigned char u = (unsigned char)*c;
        if ((u < 0x20 && u != '\t') || u == 0x7f) {
            clean_name(name, sizeof name, line, name_len);
            return (int)refuse(p, 400, "header field '%s' holds a control character", name);
        }
    }
    if (!info) return 1;
    if (++info->fields > STRICT_FIELDS_MAX)
        return (int)refuse(p, 431, "more than %d header fields", STRICT_FIELDS_MAX);
    size_t vlen = (size_t)(end - v);
    if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        if (!info->length) info->length = v, info->length_len = vlen;
        else if (vlen != info->length_len || memcmp(v, info->length, vlen) != 0) info->lengths_differ = 1;
    } else if (name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        if (!info->coding) info->coding = v, info->coding_len = vlen;
        info->codings++;
    } else if (name_len == 4 && strncasecmp(line, "Host", 4) == 0) {
        info->hosts++;
    } else if (name_len == 6 && strncasecmp(line, "Expect", 6) == 0) {
        info->expects++;
    } else if (name_len == sizeof STRICT_DIRECT_FIELD - 1 && strncasecmp(line, STRICT_DIRECT_FIELD, name_len) == 0) {
        return (int)refuse(p, 400, "the header field " STRICT_DIRECT_FIELD " is reserved for the server's own use");
    }
    return 1;
}

/* 1 when the list of transfer codings ends with chunked and names it only
 * there ("gzip, chunked"): a valid framing with a coding vigil lacks. */
static int codings_chunked_last_once(const char *list, size_t n) {
    int chunked = 0, last_chunked = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (list[i] == ' ' || list[i] == '\t' || list[i] == ',')) i++;
        size_t start = i;
        while (i < n && list[i] != ',') i++;
        size_t end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t')) end--;
        if (end == start) continue;
        last_chunked = end - start == 7 && strncasecmp(list + start, "chunked", 7) == 0;
        chunked += last_chunked;
    }
    return chunked == 1 && last_chunked;
}

/* Checks a whole head h[0..len) (its lines end in CRLF, the last one is
 * empty) and sets the state for its body.  Returns 1 when it passes. */
static int head_check(strict_parser *p, const char *h, size_t len) {
    const char *eol = memchr(h, '\n', len);
    const char *line_end = eol - 1; /* the CR */
    static const char form[] = "the request line must be 'METHOD target HTTP/1.1', one space apart";
    const char *sp1 = memchr(h, ' ', (size_t)(line_end - h));
    if (!sp1 || sp1 == h) return (int)refuse(p, 400, "%s", form);
    for (const char *c = h; c < sp1; c++)
        if (!strict_is_tchar((unsigned char)*c)) return (int)refuse(p, 400, "%s (the method is not a token)", form);
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (!sp2 || sp2 == target) return (int)refuse(p, 400, "%s", form);
    for (const char *c = target; c < sp2; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return (int)refuse(p, 400, "the request target holds a space or a control character");
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(line_end - version);
    int http11;
    if (vlen == 8 && memcmp(version, "HTTP/1.", 7) == 0 && (version[7] == '0' || version[7] == '1')) {
        http11 = version[7] == '1';
    } else if (vlen == 8 && memcmp(version, "HTTP/", 5) == 0 && version[5] >= '0' && version[5] <= '9' &&
               version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
        return (int)refuse(p, 505, "HTTP/%c.%c is not supported: use HTTP/1.1 (or HTTP/1.0)", version[5], version[7]);
    } else {
        for (const char *c = version; c < line_end; c++)
            if (*c == ' ') return (int)refuse(p, 400, "the request target holds a space or a control character");
        return (int)refuse(p, 400, "%s", form);
    }

    head_fields info = {0};
    const char *end = h + len;
    for (const char *line = eol + 1; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)(nl - 1 - line);
        if (n == 0) break;
        if (!field_check(p, line, n, &info)) return 0;
        line = nl + 1;
    }

    uint64_t length = 0;
    int length_overflow = 0;
    if (info.length) {
        int digits = info.length_len > 0;
        for (size_t i = 0; i < info.length_len && digits; i++) {
            unsigned d = (unsigned char)info.length[i] - '0';
            if (d > 9) digits = 0;
            else if (length > (UINT64_MAX - d) / 10) length_overflow = 1;
            else length = length * 10 + d;
        }
        if (!digits && !info.lengths_differ)
            return (int)refuse(p, 400, "Content-Length must be one decimal number of bytes");
    }
    if (info.lengths_differ)
        return (int)refuse(p, 400, "Content-Length is given more than once with different values");
    if (info.coding && info.length)
        return (int)refuse(p, 400, "Content-Length and Transfer-Encoding together: send one of them");
    if (info.coding && !http11) return (int)refuse(p, 400, "Transfer-Encoding needs HTTP/1.1");
    if (info.codings > 1 || (info.coding && !(info.coding_len == 7 && strncasecmp(info.coding, "chunked", 7) == 0))) {
        /* chunked not last: the length cannot be known (400); chunked
         * after another coding: a coding vigil does not implement (501). */
        int code = info.codings == 1 && codings_chunked_last_once(info.coding, info.coding_len) ? 501 : 400;
        return (int)refuse(p, code, "Transfer-Encoding must be exactly 'chunked' (no other codings, one field)");
    }
    if (http11 && info.hosts != 1)
        return (int)refuse(p, 400, info.hosts ? "Host is given more than once" : "an HTTP/1.1 request needs a Host header");
    if (length_overflow) return (int)refuse(p, 413, "Content-Length is larger than 2^64-1 bytes");
    p->head_direct = sp1 - h == 4 && memcmp(h, "POST", 4) == 0 && !info.expects;
    if (info.coding) {
        p->state = STRICT_CHUNK_SIZE;
    } else if (length > 0) {
        p->state = STRICT_BODY;
        p->remaining = length;
    }
    return 1;
}

/* A checked head h[0..len) passed on for a direct body of p->remaining
 * bytes: its Content-Length fields replaced by "Content-Length: 0" and
 * STRICT_DIRECT_FIELD.  The fields removed are at least as long as
 * "Content-Length: 0\r\n", so it grows by less than STRICT_DIRECT_GROWTH. */
static size_t direct_head(const strict_parser *p, const char *h, size_t len, char *out) {
    size_t k = 0;
    for (const char *line = h, *end = h + len; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)(nl + 1 - line);
        if (n == 2 && line > h) break; /* the empty line */
        if (!(line > h && n > 15 && strncasecmp(line, "Content-Length:", 15) == 0)) {
            memcpy(out + k, line, n);
            k += n;
        }
        line = nl + 1;
    }
    k += (size_t)sprintf(out + k, "Content-Length: 0\r\n" STRICT_DIRECT_FIELD ": %llu\r\n\r\n",
                         (unsigned long long)p->remaining);
    return k;
}

/* In STRICT_HEAD: passes a whole head on, or waits for more of it. */
static size_t feed_head(strict_parser *p, const char *s, size_t n, char *out, size_t cap, size_t *out_len) {
    if (p->scan == 0 && n >= 2 && s[0] == '\r' && s[1] == '\n') return 2; /* an empty line before a request (RFC 9112 2.2) */
    size_t pos = p->scan;
    for (;;) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        if (!nl) break;
        size_t at = (size_t)(nl - s);
        if (at == 0 || s[at - 1] != '\r') return refuse(p, 400, "lines must end with CRLF (a bare LF was sent)");
        if (pos == 0 && at + 1 > STRICT_LINE_MAX)
            return refuse(p, 414, "the request line is longer than %d bytes", STRICT_LINE_MAX);
        if (at + 1 > STRICT_HEAD_MAX) return refuse(p, 431, "the request head is larger than %d bytes", STRICT_HEAD_MAX);
        if (at + 1 - pos == 2 && pos > 0) { /* the empty line: the head is whole */
            size_t head_len = at + 1;
            size_t room = head_len + (p->direct_min ? STRICT_DIRECT_GROWTH : 0);
            if (cap - *out_len < room) {
                p->scan = pos;
                return 0; /* the output must drain first */
            }
            if (!head_check(p, s, head_len)) return 0;
            if (p->state == STRICT_BODY && p->direct_min && p->head_direct && p->remaining >= p->direct_min) {
                *out_len += direct_head(p, s, head_len, out + *out_len);
                p->state = STRICT_DIRECT;
            } else {
                memcpy(out + *out_len, s, head_len);
                *out_len += head_len;
            }
            p->scan = 0;
            p->heads++;
            return head_len;
        }
        pos = at + 1;
    }
    p->scan = pos;
    if (pos == 0 && n >= STRICT_LINE_MAX)
        return refuse(p, 414, "the request line is longer than %d bytes", STRICT_LINE_MAX);
    if (n >= STRICT_HEAD_MAX) return refuse(p, 431, "the request head is larger than %d bytes", STRICT_HEAD_MAX);
    return 0;
}

static size_t feed_chunk_size(strict_parser *p, const char *s, size_t n) {
    const char *nl = memchr(s, '\n', n < STRICT_CHUNK_LINE_MAX ? n : STRICT_CHUNK_LINE_MAX);
    if (!nl) {
        if (n >= STRICT_CHUNK_LINE_MAX)
            return refuse(p, 400, "a chunk-size line (with its extensions) is longer than %d bytes",
                          STRICT_CHUNK_LINE_MAX);
        return 0;
    }
    size_t at = (size_t)(nl - s);
    if (at == 0 || s[at - 1] != '\r') return refuse(p, 400, "lines must end with CRLF (a bare LF was sent)");
    size_t line = at - 1, i = 0, digits = 0;
    uint64_t size = 0;
    int overflow = 0;
    for (unsigned d; i < line && is_hex((unsigned char)s[i], &d); i++, digits++) {
        if (size > (UINT64_MAX - d) / 16) overflow = 1;
        else size = size * 16 + d;
    }
    if (!digits) return refuse(p, 400, "a chunk size must be hexadecimal digits");
    if (overflow) return refuse(p, 413, "a chunk size is larger than 2^64-1 bytes");
    while (i < line && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i < line && s[i] != ';') return refuse(p, 400, "a chunk size must be hexadecimal digits, then ';' extensions");
    for (; i < line; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return refuse(p, 400, "a chunk extension holds a control character");
    }
    if (size == 0) {
        p->state = STRICT_TRAILER;
        p->trailer_bytes = 0;
    } else {
        p->state = STRICT_CHUNK_DATA;
        p->remaining = size;
    }
    return at + 1;
}

static size_t feed_chunk_data(strict_parser *p, const char *s, size_t n, char *out, size_t cap, size_t *out_len) {
    size_t space = cap - *out_len;
    if (space <= STRICT_CHUNK_FRAMING) return 0;
    size_t take = space - STRICT_CHUNK_FRAMING;
    if (take > n) take = n;
    if (take > p->remaining) take = (size_t)p->remaining;
    if (take == 0) return 0;
    int k = snprintf(out + *out_len, space, "%zx\r\n", take);
    memcpy(out + *out_len + k, s, take);
    memcpy(out + *out_len + k + take, "\r\n", 2);
    *out_len += (size_t)k + take + 2;
    p->remaining -= take;
    if (p->remaining == 0) p->state = STRICT_CHUNK_END;
    return take;
}

static size_t feed_chunk_end(strict_parser *p, const char *s, size_t n) {
    if (n >= 1 && s[0] != '\r')
        return refuse(p, 400, "chunk data must be followed by CRLF (the chunk is longer than its size)");
    if (n < 2) return 0;
    if (s[1] != '\n') return refuse(p, 400, "chunk data must be followed by CRLF (the chunk is longer than its size)");
    p->state = STRICT_CHUNK_SIZE;
    return 2;
}

/* The trailer section after the last chunk: checked, not passed on. */
static size_t feed_trailer(strict_parser *p, const char *s, size_t n, char *out, size_t cap, size_t *out_len) {
    const char *nl = memchr(s, '\n', n);
    if (!nl) {
        if (p->trailer_bytes + n >= STRICT_HEAD_MAX)
            return refuse(p, 431, "the trailer section is larger than %d bytes", STRICT_HEAD_MAX);
        return 0;
    }
    size_t at = (size_t)(nl - s);
    if (at == 0 || s[at - 1] != '\r') return refuse(p, 400, "lines must end with CRLF (a bare LF was sent)");
    if (at == 1) { /* the empty line: the body is whole */
        if (cap - *out_len < 5) return 0;
        memcpy(out + *out_len, "0\r\n\r\n", 5);
        *out_len += 5;
        p->state = STRICT_HEAD;
        return 2;
    }
    p->trailer_bytes += at + 1;
    if (p->trailer_bytes > STRICT_HEAD_MAX)
        return refuse(p, 431, "the trailer section is larger than %d bytes", STRICT_HEAD_MAX);
    if (!field_check(p, s, at - 1, NULL)) return 0;
    return at + 1;
}

void strict_direct_done(strict_parser *p) {
    if (p->state != STRICT_DIRECT) return;
    p->state = STRICT_HEAD;
    p->remaining = 0;
}

size_t strict_feed(strict_parser *p, const char *in, size_t len, char *out, size_t cap, size_t *out_len) {
    size_t used = 0;
    while (used < len && p->state != STRICT_REFUSED) {
        const char *s = in + used;
        size_t n = len - used, step = 0;
        switch (p->state) {
        case STRICT_HEAD: step = feed_head(p, s, n, out, cap, out_len); break;
        case STRICT_BODY: {
            size_t take = cap - *out_len;
            if (take > n) take = n;
            if (take > p->remaining) take = (size_t)p->remaining;
            memcpy(out + *out_len, s, take);
            *out_len += take;
            p->remaining -= take;
            if (p->remaining == 0) p->state = STRICT_HEAD;
            step = take;
            break;
        }
        case STRICT_CHUNK_SIZE: step = feed_chunk_size(p, s, n); break;
        case STRICT_CHUNK_DATA: step = feed_chunk_data(p, s, n, out, cap, out_len); break;
        case STRICT_CHUNK_END: step = feed_chunk_end(p, s, n); break;
        case STRICT_TRAILER: step = feed_trailer(p, s, n, out, cap, out_len); break;
        case STRICT_DIRECT: /* the caller's to read */
        case STRICT_REFUSED: break;
        }
        if (step == 0) break;
        used += step;
    }
    return used;
}
