/*
 * mint.c - HS256 token issuing (see mint.h).  The secret is scrubbed from
 * memory as soon as libjwt has signed.
 */
#include "auth/mint.h"

#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#include "auth/keys.h"
#include "core/alloc.h"

static int add_text(jwt_t *jwt, const char *name, const char *value) {
    return value && value[0] ? jwt_add_grant(jwt, name, value) : 0;
}

vigil_status mint_hs256(const char *secret_file, const mint_options *opt, char **out, vigil_error *err) {
    *out = NULL;
    if (opt->ttl_s <= 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "ttl must be positive");
    unsigned char *secret;
    size_t secret_len;
    vigil_status st = keys_read_secret(secret_file, &secret, &secret_len, err);
    if (st) return st;
    jwt_t *jwt = NULL;
    int rc = jwt_new(&jwt);
    if (!rc) rc = add_text(jwt, "sub", opt->subject);
    if (!rc) rc = add_text(jwt, "scope", opt->scope);
    if (!rc) rc = add_text(jwt, "iss", opt->issuer);
    if (!rc) rc = add_text(jwt, "aud", opt->audience);
    if (!rc) rc = jwt_add_grant_int(jwt, "iat", (long)opt->now);
    if (!rc) rc = jwt_add_grant_int(jwt, "exp", (long)(opt->now + opt->ttl_s));
    if (!rc) rc = jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len);
    char *token = rc ? NULL : jwt_encode_str(jwt);
    jwt_free(jwt);
    memset(secret, 0, secret_len);
    vigil_free(secret);
    if (!token) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "cannot sign the token (libjwt error %d)", rc);
    *out = vigil_strdup(token);
    free(token); /* libjwt's allocation */
    if (!*out) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    return VIGIL_OK;
}
