/*
 * test_tracecontext.c - the W3C Trace Context rules (core/tracecontext.c):
 * every rule of traceparent (version, lengths, case, zero ids, flags,
 * future versions and their trailing data), tracestate's grammar and
 * limits, ids that are never zero and do not repeat, and the ratio
 * sampler's edges.
 */
#include <stdio.h>
#include <string.h>

#include "core/tracecontext.h"
#include "testing.h"

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parses(const char *text) {
    tracecontext c;
    return tracecontext_parse(text, strlen(text), &c) == VIGIL_OK;
}

static void test_version_00(void) {
    tracecontext c;
    CHECK_EQ_INT(tracecontext_parse(TP_OK, strlen(TP_OK), &c), VIGIL_OK);
    CHECK_EQ_INT(c.trace_id[0], 0x4b);
    CHECK_EQ_INT(c.trace_id[15], 0x36);
    CHECK_EQ_INT(c.span_id[0], 0x00);
    CHECK_EQ_INT(c.span_id[7], 0xb7);
    CHECK_EQ_INT(c.flags, 1);
    char out[TRACEPARENT_LEN + 1];
    tracecontext_format(&c, out);
    CHECK_STR(out, TP_OK);
    CHECK(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    /* flags other than sampled are read, and not passed on by version 00 */
    CHECK_EQ_INT(tracecontext_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", 55, &c), VIGIL_OK);
    CHECK_EQ_INT(c.flags, 3);
    tracecontext_format(&c, out);
    CHECK_STR(out + 53, "01");
}

static void test_invalid(void) {
    CHECK(!parses("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")); /* version ff */
    CHECK(!parses("00-00000000000000000000000000000000-00f067aa0ba902b7-01")); /* zero trace id */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")); /* zero parent id */
    CHECK(!parses("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")); /* upper-case trace id */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01")); /* upper-case parent id */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A")); /* upper-case flags */
    CHECK(!parses("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")); /* upper-case version */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));  /* trace id short */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01")); /* trace id long */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"));  /* parent short */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"));  /* flags short */
    CHECK(!parses("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));  /* version short */
    CHECK(!parses(TP_OK "-"));                                                 /* 00 with trailing data */
    CHECK(!parses(TP_OK " "));
    CHECK(!parses("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")); /* separator */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01"));
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01")); /* not hex */
    CHECK(!parses(""));
    tracecontext c;
    CHECK_EQ_INT(tracecontext_parse(NULL, 0, &c), VIGIL_ERR_PARSE);
    /* a refused value leaves the output as it was */
    memset(&c, 0x5a, sizeof c);
    tracecontext_parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55, &c);
    CHECK_EQ_INT(c.trace_id[0], 0x5a);
}

static void test_future_versions(void) {
    CHECK(parses("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    CHECK(parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"));
    CHECK(!parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what"));    /* no dash after flags */
    CHECK(!parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"));           /* too short */
    CHECK(!parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x"));
    CHECK(!parses("cc-00000000000000000000000000000000-00f067aa0ba902b7-01-x")); /* zero ids stay invalid */
    tracecontext c;
    const char *v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-x";
    CHECK_EQ_INT(tracecontext_parse(v, strlen(v), &c), VIGIL_OK);
    char out[TRACEPARENT_LEN + 1];
    tracecontext_format(&c, out); /* passed on as version 00 */
    CHECK_STR(out, TP_OK);
}

static int state_ok(const char *s) { return tracecontext_state_valid(s, strlen(s)); }

static void test_tracestate(void) {
    CHECK(state_ok(""));
    CHECK(state_ok("congo=t61rcWkgMzE"));
    CHECK(state_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    CHECK(state_ok("rojo=00f067aa0ba902b7 ,\t congo=t61rcWkgMzE"));
    CHECK(state_ok("a=1,,b=2"));                    /* empty members are allowed */
    CHECK(state_ok("tenant@vendor=x"));
    CHECK(state_ok("0tenant@v_1=x y"));             /* a space inside a value */
    CHECK(state_ok("k/*_-9=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"));
    CHECK(!state_ok("Congo=x"));                    /* upper-case key */
    CHECK(!state_ok("1abc=x"));                     /* a simple key starts with a letter */
    CHECK(!state_ok("a=1,a=2"));                    /* a key twice */
    CHECK(!state_ok("a"));                          /* no value */
    CHECK(!state_ok("a="));                         /* empty value */
    CHECK(!state_ok("a=b=c"));                      /* '=' in a value */
    CHECK(!state_ok("a=\x01"));                     /* control byte */
    CHECK(!state_ok("tenant@Vendor=x"));            /* system id starts lower-case */
    CHECK(!state_ok("tenant@vendorvendorvendo=x")); /* system id longer than 14 */
    CHECK(!state_ok("@vendor=x"));
    char s[1200];
    size_t n = 0;
    for (int i = 0; i < 32; i++) n += (size_t)snprintf(s + n, sizeof s - n, "%sk%d=v", i ? "," : "", i);
    CHECK(state_ok(s)); /* 32 members */
    snprintf(s + n, sizeof s - n, ",k32=v");
    CHECK(!state_ok(s)); /* 33 */
    memset(s, 0, sizeof s);
    memcpy(s, "a=", 2);
    memset(s + 2, 'x', 257);
    CHECK(!state_ok(s)); /* a value longer than 256 */
    s[2 + 256] = '\0';
    CHECK(state_ok(s));
    n = 0;
    for (int i = 0; i < 3; i++) n += (size_t)snprintf(s + n, sizeof s - n, "%sk%d=%0200d", i ? "," : "", i, 0);
    CHECK(n > TRACESTATE_MAX);
    CHECK(!state_ok(s)); /* longer than 512 */
}

static void test_random_ids(void) {
    uint8_t a[16], b[16], span[8];
    tracecontext_random_id(a, sizeof a);
    tracecontext_random_id(b, sizeof b);
    tracecontext_random_id(span, sizeof span);
    CHECK(memcmp(a, b, sizeof a) != 0);
    static const uint8_t zero[16];
    int zeros = 0;
    for (int i = 0; i < 10000; i++) {
        tracecontext_random_id(span, sizeof span);
        zeros += memcmp(span, zero, sizeof span) == 0;
    }
    CHECK_EQ_INT(zeros, 0);
    char hex[33];
    uint8_t bytes[] = {0x00, 0x0f, 0xa0, 0xff};
    tracecontext_hex(bytes, sizeof bytes, hex);
    CHECK_STR(hex, "000fa0ff");
}

static void test_ratio(void) {
    uint8_t id[16] = {1};
    CHECK(!tracecontext_ratio_sampled(id, 0));
    CHECK(tracecontext_ratio_sampled(id, 1));
    memset(id + 8, 0xff, 8);
    CHECK(!tracecontext_ratio_sampled(id, 0.999)); /* the top of the range */
    memset(id + 8, 0x00, 8);
    CHECK(tracecontext_ratio_sampled(id, 0.001)); /* the bottom */
    int hits = 0;
    for (int i = 0; i < 4000; i++) {
        tracecontext_random_id(id, sizeof id);
        hits += tracecontext_ratio_sampled(id, 0.25);
    }
    CHECK(hits > 800 && hits < 1200); /* about a quarter */
}

int main(void) {
    RUN(test_version_00);
    RUN(test_invalid);
    RUN(test_future_versions);
    RUN(test_tracestate);
    RUN(test_random_ids);
    RUN(test_ratio);
    return testing_report();
}
