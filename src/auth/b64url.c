/*
 * b64url.c - strict base64url decoding (see b64url.h).  Trailing bits that
 * are not zero are rejected so that two different strings never decode to
 * the same bytes (a signature cannot be varied without changing its text).
 */
#include "auth/b64url.h"

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

size_t b64url_decoded_cap(size_t len) { return len / 4 * 3 + 3 + 1; }

long b64url_decode(const char *text, size_t len, unsigned char *out, size_t cap) {
    while (len > 0 && text[len - 1] == '=') len--;
    if (len % 4 == 1) return -1;
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)text[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap) return -1;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    if (acc != 0) return -1; /* non-canonical trailing bits */
    if (n >= cap) return -1;
    out[n] = '\0';
    return (long)n;
}
