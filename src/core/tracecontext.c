/*
 * tracecontext.c - W3C Trace Context parsing and formatting, and trace ids
 * (see tracecontext.h for the rules).
 *
 * The parser is strict where the specification is: a value that breaks a
 * rule is not repaired, it is refused, and the caller starts a new trace
 * (a broken header must never fail the request it came with).
 *
 * Ids come from xoshiro256**, one state per thread: the request threads
 * make ids without sharing a lock, and each state is seeded from getrandom
 * the first time its thread asks, so two processes (or two threads) do not
 * repeat each other's ids.  Ids need to be unique, not secret.
 */
#include "core/tracecontext.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ------------------------------------------------------------ hex */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* upper case is no hex here: the specification forbids it */
}

/* Reads 2n lower-case hex characters into out[0..n); 0 on any other byte. */
static int hex_read(const char *text, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

static int all_zero(const uint8_t *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (bytes[i]) return 0;
    return 1;
}

void tracecontext_hex(const uint8_t *bytes, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ------------------------------------------------------------ traceparent */

vigil_status tracecontext_parse(const char *text, size_t len, tracecontext *out) {
    if (!text || len < TRACEPARENT_LEN) return VIGIL_ERR_PARSE;
    uint8_t version;
    if (!hex_read(text, &version, 1) || version == 0xff) return VIGIL_ERR_PARSE;
    /* Version 00 is exactly its four fields; a later version may add
     * fields, after a dash, which this version does not read. */
    if (version == 0 && len != TRACEPARENT_LEN) return VIGIL_ERR_PARSE;
    if (version > 0 && len > TRACEPARENT_LEN && text[TRACEPARENT_LEN] != '-') return VIGIL_ERR_PARSE;
    if (text[2] != '-' || text[35] != '-' || text[52] != '-') return VIGIL_ERR_PARSE;
    tracecontext c;
    if (!hex_read(text + 3, c.trace_id, TRACE_ID_SIZE) || !hex_read(text + 36, c.span_id, TRACE_SPAN_ID_SIZE) ||
        !hex_read(text + 53, &c.flags, 1))
        return VIGIL_ERR_PARSE;
    if (all_zero(c.trace_id, TRACE_ID_SIZE) || all_zero(c.span_id, TRACE_SPAN_ID_SIZE)) return VIGIL_ERR_PARSE;
    *out = c;
    return VIGIL_OK;
}

void tracecontext_format(const tracecontext *c, char *out) {
    memcpy(out, "00-", 3);
    tracecontext_hex(c->trace_id, TRACE_ID_SIZE, out + 3);
    out[35] = '-';
    tracecontext_hex(c->span_id, TRACE_SPAN_ID_SIZE, out + 36);
    out[52] = '-';
    uint8_t flags = c->flags & TRACECONTEXT_SAMPLED; /* version 00 defines no other bit */
    tracecontext_hex(&flags, 1, out + 53);
}

/* ------------------------------------------------------------ tracestate */

static int key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/* simple-key = lcalpha 0*255(key chars); multi-tenant-key = tenant "@"
 * system, tenant = (lcalpha / DIGIT) 0*240(key chars), system = lcalpha
 * 0*13(key chars). */
static int key_valid(const char *k, size_t n) {
    const char *at = memchr(k, '@', n);
    for (size_t i = 0; i < n; i++)
        if (k + i != at && !key_char(k[i])) return 0;
    if (!at) return n >= 1 && n <= 256 && k[0] >= 'a' && k[0] <= 'z';
    size_t tenant = (size_t)(at - k), system = n - tenant - 1;
    if (tenant < 1 || tenant > 241 || system < 1 || system > 14) return 0;
    int tenant_first = (k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9');
    return tenant_first && at[1] >= 'a' && at[1] <= 'z';
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = printable
 * ASCII but ',' and '='. */
static int value_valid(const char *v, size_t n) {
    if (n < 1 || n > 256 || v[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=') return 0;
    return 1;
}

static int ows(char c) { return c == ' ' || c == '\t'; }

int tracecontext_state_valid(const char *text, size_t len) {
    if (len > TRACESTATE_MAX) return 0;
    struct {
        const char *key;
        size_t len;
    } keys[TRACESTATE_MEMBERS_MAX];
    size_t n_keys = 0;
    for (size_t at = 0; at <= len;) {
        const char *comma = memchr(text + at, ',', len - at);
        size_t end = comma ? (size_t)(comma - text) : len;
        size_t b = at, e = end;
        while (b < e && ows(text[b])) b++;
        while (e > b && ows(text[e - 1])) e--;
        at = end + 1;
        if (b == e) continue; /* an empty member is allowed and means nothing */
        const char *eq = memchr(text + b, '=', e - b);
        if (!eq) return 0;
        size_t key_len = (size_t)(eq - (text + b));
        if (!key_valid(text + b, key_len) || !value_valid(eq + 1, e - b - key_len - 1)) return 0;
        if (n_keys == TRACESTATE_MEMBERS_MAX) return 0;
        for (size_t k = 0; k < n_keys; k++)
            if (keys[k].len == key_len && memcmp(keys[k].key, text + b, key_len) == 0) return 0;
        keys[n_keys].key = text + b;
        keys[n_keys++].len = key_len;
    }
    return 1;
}

/* ------------------------------------------------------------ ids */

/* This thread's xoshiro256** state; all zero until seeded. */
static _Thread_local uint64_t rng_state[4];

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64, to spread a weak fallback seed over the whole state. */
static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void rng_seed(void) {
    if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
        /* No entropy source (an old kernel, a seccomp filter): the clock
         * and the thread still make ids that do not repeat in practice. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ (uint64_t)pthread_self();
        for (int i = 0; i < 4; i++) rng_state[i] = splitmix(&x);
    }
    if (!(rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3])) rng_state[0] = 1; /* the one bad state */
}

static uint64_t rng_next(void) {
    if (!(rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3])) rng_seed();
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void tracecontext_random_id(uint8_t *out, size_t n) {
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = rng_next();
            memcpy(out + i, &r, n - i < 8 ? n - i : 8);
        }
    } while (all_zero(out, n));
}

int tracecontext_ratio_sampled(const uint8_t *trace_id, double ratio) {
    if (!(ratio > 0)) return 0;
    if (ratio >= 1) return 1;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++) low = low << 8 | trace_id[i];
    low >>= 1; /* 63 bits, so that the bound below is exact in a double */
    return (double)low < ratio * 9223372036854775808.0;
}
