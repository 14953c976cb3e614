/*
 * http_strict.h - a strict, incremental reader of the client-to-server half
 * of an HTTP/1.1 connection (RFC 9112), for the gate (http_gate.c) that
 * stands in front of libmicrohttpd.
 *
 * It takes the bytes a client sends, in whatever pieces they arrive, and
 * gives back the bytes the HTTP library behind it may read: each request
 * head once it is whole and has passed every check (copied as sent), a body
 * of known length as it comes, and a chunked body decoded and framed again
 * in chunks of its own making (canonical sizes, no extensions, no
 * trailers), so that the library never meets a chunk-size line, an
 * extension or a trailer a client wrote.  The first violation stops it: the
 * parser keeps the HTTP status and a message that says what was wrong and
 * what is valid, and reads nothing more.  The caller answers it.
 *
 * Checks: a request line "METHOD SP target SP HTTP/1.x" (method a token,
 * target visible bytes, 414 past STRICT_LINE_MAX, 505 for another version),
 * lines ending in CRLF (no bare LF or CR), field names that are tokens,
 * values without control bytes, no obs-fold (RFC 9112 5.2: refused), at
 * most STRICT_FIELDS_MAX fields and STRICT_HEAD_MAX bytes per head (431),
 * Content-Length one decimal number (the same value when repeated; past
 * 2^64-1: 413), Transfer-Encoding exactly "chunked" in one field on
 * HTTP/1.1 (501 for "gzip, chunked"), not with Content-Length, one Host on
 * HTTP/1.1; chunk sizes of at most 16 significant hex digits (413 past
 * 2^64-1), chunk-size lines (with extensions) of at most
 * STRICT_CHUNK_LINE_MAX bytes, CRLF after each chunk's data, trailer fields
 * well formed and within STRICT_HEAD_MAX.
 *
 * No allocation, no I/O: the state is this struct, so one per connection.
 */
#ifndef VIGIL_SERVE_HTTP_STRICT_H
#define VIGIL_SERVE_HTTP_STRICT_H

#include <stddef.h>
#include <stdint.h>

#define STRICT_LINE_MAX 8192       /* request line, CRLF included: 414 past it */
#define STRICT_HEAD_MAX 16384      /* a whole head, or a trailer section: 431 past it */
#define STRICT_FIELDS_MAX 100      /* header fields in one head: 431 past it */
#define STRICT_CHUNK_LINE_MAX 1024 /* chunk size, extensions and CRLF: 400 past it */
#define STRICT_CHUNK_FRAMING 24    /* what re-framing adds to a chunk's data ("%zx\r\n" ... "\r\n") */
#define STRICT_DIRECT_GROWTH 64    /* what rewriting a head for a direct body may add to it */

/* The field a head rewritten for a direct body carries: the body's real
 * length (its Content-Length then says 0).  Reserved: a client that sends
 * it is refused (400), so the server can trust it came from the gate. */
#define STRICT_DIRECT_FIELD "X-Vigil-Gate-Body"

typedef enum strict_state {
    STRICT_HEAD = 0,  /* between requests or inside a head */
    STRICT_BODY,      /* a body of known length */
    STRICT_CHUNK_SIZE,
    STRICT_CHUNK_DATA,
    STRICT_CHUNK_END, /* the CRLF after a chunk's data */
    STRICT_TRAILER,
    STRICT_DIRECT,    /* a body the caller reads itself (direct_min): nothing is taken until strict_direct_done */
    STRICT_REFUSED
} strict_state;

typedef struct strict_parser {
    strict_state state;
    uint64_t remaining;     /* bytes left of the body or of the chunk */
    size_t scan;            /* bytes of the current head already seen to be whole lines */
    size_t trailer_bytes;   /* of the trailer section so far */
    uint64_t heads;         /* heads passed so far */
    uint64_t direct_min;    /* 0, or: a POST body of a known length of at least this many bytes is direct */
    int head_direct;        /* the head just checked may have a direct body (POST, no Expect) */
    int refused_in_chunked; /* the refusal came in a chunked body whose head was passed */
    int code;               /* the refusal's HTTP status */
    char message[200];      /* and what was wrong, ASCII without quotes or backslashes */
} strict_parser;

/* Direct bodies (direct_min set after strict_init): a POST head with a
 * Content-Length of at least direct_min, without Expect (100-continue is
 * the library's to answer, so such a body takes the usual way), is passed
 * on rewritten, with Content-Length: 0 and STRICT_DIRECT_FIELD giving the
 * real length, and the parser stops in STRICT_DIRECT with remaining set to
 * that length: the caller moves the body itself, then calls
 * strict_direct_done to read the next request. */
void strict_direct_done(strict_parser *p);

/* RFC 9110 5.6.2: a character of a token (methods, field names). */
int strict_is_tchar(unsigned char c);

void strict_init(strict_parser *p);

/* Reads in[0..len) and returns how many bytes it has taken; the ones it has
 * not (a head or a line not yet whole) are to be offered again with what
 * follows them.  What the server behind may read is appended at
 * out[*out_len..cap) (*out_len grows; a head is appended only when it fits
 * whole, so cap must be at least STRICT_HEAD_MAX + STRICT_CHUNK_FRAMING,
 * plus STRICT_DIRECT_GROWTH with direct_min set).
 * After a violation p->state is STRICT_REFUSED and nothing more is taken. */
size_t strict_feed(strict_parser *p, const char *in, size_t len, char *out, size_t cap, size_t *out_len);

#endif
