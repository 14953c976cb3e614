/*
 * b64url.h - base64url (RFC 4648 section 5) decoding for JWT segments and
 * JWK members.  Padding is optional; anything outside the url-safe alphabet
 * is an error, so a token that decodes here has exactly one reading.
 */
#ifndef VIGIL_AUTH_B64URL_H
#define VIGIL_AUTH_B64URL_H

#include <stddef.h>

/* Decodes len characters of text into out (capacity cap bytes; the result
 * is NUL-terminated, so cap needs one spare byte).  Returns the decoded byte
 * count, or -1 when text is not valid base64url or does not fit. */
long b64url_decode(const char *text, size_t len, unsigned char *out, size_t cap);

/* Bytes needed to decode len characters, plus the terminating NUL. */
size_t b64url_decoded_cap(size_t len);

#endif
