/* test_http_strict.c - the gate's strict HTTP/1.1 request reader
 * (serve/http_strict.c): what it passes on, how it re-frames chunked
 * bodies, and what it refuses with which status, fed whole and one byte at
 * a time (a client may split its bytes anywhere). */
#include "serve/http_strict.h"
#include "testing.h"

#define OUT_CAP (STRICT_HEAD_MAX + STRICT_CHUNK_FRAMING + 256)

typedef struct run {
    char out[1 << 17];
    size_t out_len;
    strict_parser p;
} run;

/* Feeds text in pieces of step bytes (0: whole), the way the gate does:
 * bytes not taken are offered again with the next ones.  Returns the
 * refusal's status, or 0. */
static int feed(run *r, const char *text, size_t len, size_t step) {
    static char in[1 << 18];
    size_t in_len = 0, given = 0;
    strict_init(&r->p);
    r->out_len = 0;
    while (given < len || in_len) {
        size_t n = step && len - given > step ? step : len - given;
        memcpy(in + in_len, text + given, n);
        in_len += n;
        given += n;
        size_t cap = r->out_len + OUT_CAP < sizeof r->out ? r->out_len + OUT_CAP : sizeof r->out;
        size_t used = strict_feed(&r->p, in, in_len, r->out, cap, &r->out_len);
        memmove(in, in + used, in_len - used);
        in_len -= used;
        if (r->p.state == STRICT_REFUSED) return r->p.code;
        if (n == 0 && used == 0) break; /* all given, the rest waits for more */
    }
    return 0;
}

static int verdict(const char *text, size_t step) {
    static run r;
    return feed(&r, text, strlen(text), step);
}

static void test_good_requests_pass_as_sent(void) {
    static run r;
    const char *text = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                       "\r\nGET / HTTP/1.0\r\n\r\n";
    for (size_t step = 0; step < 3; step++) {
        CHECK_EQ_INT(feed(&r, text, strlen(text), step), 0);
        const char *expect = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                             "GET / HTTP/1.0\r\n\r\n"; /* the empty line between requests is dropped */
        CHECK_EQ_INT(r.out_len, strlen(expect));
        CHECK(memcmp(r.out, expect, r.out_len) == 0);
        CHECK_EQ_INT(r.p.heads, 3);
    }
}

static void test_chunked_bodies_are_framed_again(void) {
    static run r;
    const char *text = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "0003;name=value\r\nabc\r\n2 ;x\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n";
    CHECK_EQ_INT(feed(&r, text, strlen(text), 0), 0);
    const char *expect = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    CHECK_EQ_INT(r.out_len, strlen(expect));
    CHECK(memcmp(r.out, expect, r.out_len) == 0);
    CHECK_EQ_INT(r.p.state, STRICT_HEAD);
    /* byte by byte: the same data, in one-byte chunks */
    CHECK_EQ_INT(feed(&r, text, strlen(text), 1), 0);
    CHECK_EQ_INT(r.p.state, STRICT_HEAD);
    CHECK(strstr(r.out, "1\r\na\r\n1\r\nb\r\n") != NULL);
}

static void test_framing_refusals(void) {
    for (size_t step = 0; step < 2; step++) {
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 54\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", step), 413);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n", step), 0);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", step), 0);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                             step), 400);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", step), 501);
        CHECK_EQ_INT(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\n\r\n", step), 400);                     /* no Host */
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", step), 400);
    }
}

static void test_line_refusals(void) {
    for (size_t step = 0; step < 2; step++) {
        CHECK_EQ_INT(verdict("GET /\r\nHost: x\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/2.0\r\nHost: x\r\n\r\n", step), 505);
        CHECK_EQ_INT(verdict("GET / HTTP/1.10\r\nHost: x\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\nHost: x\r\n\r\n", step), 400);          /* bare LF */
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", step), 400); /* bare CR */
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", step), 400); /* obs-fold */
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nX: \x7f\r\n\r\n", step), 400);
        CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n", step), 0); /* obs-text */
    }
}

static void test_size_limits(void) {
    static char text[1 << 18];
    strcpy(text, "GET /");
    memset(text + 5, 'a', STRICT_LINE_MAX);
    strcpy(text + 5 + STRICT_LINE_MAX, " HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(verdict(text, 0), 414);
    CHECK_EQ_INT(verdict(text, 1000), 414);
    strcpy(text, "GET / HTTP/1.1\r\nHost: x\r\nX: ");
    size_t at = strlen(text);
    memset(text + at, 'a', STRICT_HEAD_MAX);
    strcpy(text + at + STRICT_HEAD_MAX, "\r\n\r\n");
    CHECK_EQ_INT(verdict(text, 0), 431);
    strcpy(text, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < STRICT_FIELDS_MAX; i++) sprintf(text + strlen(text), "X-%d: 1\r\n", i);
    strcat(text, "\r\n");
    CHECK_EQ_INT(verdict(text, 0), 431); /* Host and 100 more */
}

static void test_chunk_refusals(void) {
    const char *head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const struct {
        const char *body;
        int code;
    } cases[] = {
        {"ffffffffffffffff\r\n", 0},      /* 2^64-1 is a size */
        {"10000000000000000\r\n", 413},   /* past it */
        {"00000000000000000001\r\n", 0},  /* leading zeros are not significant */
        {"zz\r\n", 400},
        {"5 x\r\n", 400},
        {";x\r\n", 400},
        {"2\r\nabcd\r\n", 400},           /* longer than its size */
        {"2\nab\r\n", 400},
        {"2;a\x01\r\nab\r\n", 400},
        {"2\r\nab\r\n0\r\nBad Trailer: 1\r\n\r\n", 400},
        {"2\r\nab\r\n0\r\n\r\n", 0},
    };
    static char text[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].body);
        int code = verdict(text, 0);
        if (code != cases[i].code) fprintf(stderr, "chunk case %zu: %d\n", i, code);
        CHECK_EQ_INT(code, cases[i].code);
        CHECK_EQ_INT(verdict(text, 1), cases[i].code);
    }
    static run r;
    snprintf(text, sizeof text, "%s2\r\nab\r\nzz\r\n", head);
    CHECK_EQ_INT(feed(&r, text, strlen(text), 0), 400);
    CHECK(r.p.refused_in_chunked); /* the gate ends this body with a last chunk of its own */
    CHECK_EQ_INT(feed(&r, "GET / HTTP/1.1\r\n\r\n", 18, 0), 400);
    CHECK(!r.p.refused_in_chunked);
    /* a 200 KB extension is refused at the line limit */
    static char big[300000];
    snprintf(big, sizeof big, "%s2;", head);
    size_t at = strlen(big);
    memset(big + at, 'e', 200000);
    strcpy(big + at + 200000, "\r\nab\r\n0\r\n\r\n");
    CHECK_EQ_INT(verdict(big, 0), 400);
    CHECK_EQ_INT(verdict(big, 4096), 400);
}

/* Direct bodies (direct_min): a large POST's head is passed on rewritten
 * and the parser stops for the caller to move the body; smaller bodies,
 * other methods and Expect heads pass as sent; the private field is
 * refused from a client. */
static void test_direct_bodies(void) {
    static run r;
    static const char head[] = "POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 70000\r\nX-A: b\r\n\r\n";
    static const char next[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char in[sizeof head + 8 + sizeof next];
    size_t len = (size_t)snprintf(in, sizeof in, "%sbodybody%s", head, next);
    strict_init(&r.p);
    r.p.direct_min = 65536;
    r.out_len = 0;
    size_t used = strict_feed(&r.p, in, len, r.out, OUT_CAP + STRICT_DIRECT_GROWTH, &r.out_len);
    CHECK_EQ_INT(used, sizeof head - 1); /* the body is left to the caller */
    CHECK_EQ_INT(r.p.state, STRICT_DIRECT);
    CHECK_EQ_INT(r.p.remaining, 70000);
    const char *want = "POST /a HTTP/1.1\r\nHost: x\r\nX-A: b\r\nContent-Length: 0\r\n" STRICT_DIRECT_FIELD
                       ": 70000\r\n\r\n";
    CHECK_EQ_INT(r.out_len, strlen(want));
    CHECK(memcmp(r.out, want, r.out_len) == 0);
    CHECK_EQ_INT(strict_feed(&r.p, in + used, len - used, r.out, sizeof r.out, &r.out_len), 0);
    strict_direct_done(&r.p); /* the caller took "bodybody" as if it were all 70000 */
    used += 8;
    size_t before = r.out_len;
    CHECK_EQ_INT(strict_feed(&r.p, in + used, len - used, r.out, sizeof r.out, &r.out_len), sizeof next - 1);
    CHECK(r.out_len - before == sizeof next - 1 && memcmp(r.out + before, next, sizeof next - 1) == 0);

    /* as sent: under direct_min, another method, Expect: 100-continue */
    static const char *const as_sent[] = {
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 65535\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof as_sent / sizeof *as_sent; i++) {
        strict_init(&r.p);
        r.p.direct_min = 65536;
        r.out_len = 0;
        size_t n = strlen(as_sent[i]);
        CHECK_EQ_INT(strict_feed(&r.p, as_sent[i], n, r.out, OUT_CAP, &r.out_len), n);
        CHECK_EQ_INT(r.p.state, STRICT_BODY);
        CHECK(r.out_len == n && memcmp(r.out, as_sent[i], n) == 0);
    }
    CHECK_EQ_INT(verdict("GET / HTTP/1.1\r\nHost: x\r\nx-vigil-gate-body: 70000\r\n\r\n", 0), 400);
}

int main(void) {
    RUN(test_good_requests_pass_as_sent);
    RUN(test_chunked_bodies_are_framed_again);
    RUN(test_framing_refusals);
    RUN(test_line_refusals);
    RUN(test_size_limits);
    RUN(test_chunk_refusals);
    RUN(test_direct_bodies);
    return testing_report();
}
