/*
 * mint.h - issuing HS256 tokens, for `vigil token` and for tests.  Signing
 * is libjwt's; the claims are the ones auth.c checks (sub, scope, iss, aud,
 * iat, exp).
 */
#ifndef VIGIL_AUTH_MINT_H
#define VIGIL_AUTH_MINT_H

#include <stdint.h>

#include "vigil/status.h"

typedef struct mint_options {
    const char *scope;    /* space-separated, e.g. "infer admin"; NULL or "" = no scope claim */
    const char *issuer;   /* NULL or "" = no iss */
    const char *audience; /* NULL or "" = no aud */
    const char *subject;  /* NULL or "" = no sub */
    int64_t ttl_s;        /* exp = now + ttl_s; must be > 0 */
    int64_t now;          /* issue time (seconds since the epoch) */
} mint_options;

/* Signs a token with the secret read from secret_file (same rules as
 * auth.secret_file).  *out is a NUL-terminated compact JWT that the caller
 * releases with vigil_free. */
vigil_status mint_hs256(const char *secret_file, const mint_options *opt, char **out, vigil_error *err);

#endif
