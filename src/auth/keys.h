/*
 * keys.h - verification key material for JWTs: a PEM public key file and a
 * JWKS document (RFC 7517) turned into one list of OpenSSL keys, each bound to
 * the one algorithm it may verify (RSA -> RS256, P-256 -> ES256).  Binding
 * the algorithm to the key, not to the token, is what stops algorithm
 * confusion (an RS256 public key used as an HS256 secret).
 */
#ifndef VIGIL_AUTH_KEYS_H
#define VIGIL_AUTH_KEYS_H

#include <jwt.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "vigil/status.h"

#define KEYS_KID_MAX 128
#define KEYS_MAX 64 /* keys kept from one JWKS */

typedef struct auth_key {
    char kid[KEYS_KID_MAX]; /* "" when the key has none */
    jwt_alg_t alg;          /* JWT_ALG_RS256 or JWT_ALG_ES256 */
    int from_jwks;          /* 0: the public_key_file key */
    EVP_PKEY *pkey;         /* owned; only read after loading, so checks share it across threads */
} auth_key;

/* Reads a whole file of at most max bytes into a NUL-terminated buffer that
 * the caller releases with vigil_free.  what names the file in messages. */
vigil_status keys_read_file(const char *path, size_t max, const char *what, char **out, size_t *out_len,
                            vigil_error *err);

/* Reads a secret kept in a file (a token, a password): the file's bytes, at
 * most max, with trailing whitespace removed; NUL-terminated, the caller
 * frees *out with vigil_free.  what names the file in messages. */
vigil_status keys_read_text_secret(const char *path, size_t max, const char *what, char **out, size_t *out_len,
                                   vigil_error *err);

/* Reads an HS256 secret: the file's bytes with trailing whitespace removed;
 * fewer than 32 bytes is refused (RFC 7518 3.2).  Caller frees *out. */
vigil_status keys_read_secret(const char *path, unsigned char **out, size_t *out_len, vigil_error *err);

/* Parses one PEM public key into *out (RSA of at least 2048 bits, or EC
 * P-256); the caller frees it with keys_free_one. */
vigil_status keys_from_pem(const char *pem, size_t len, auth_key *out, vigil_error *err);

/* Parses a JWKS document and appends its usable keys (kty RSA or EC P-256,
 * use "sig" or absent, alg absent or matching) to *keys (a vigil_realloc'd
 * array of *count entries).  Keys of other types are skipped; a document
 * without one usable key is an error. */
vigil_status keys_from_jwks(const char *json, size_t len, auth_key **keys, size_t *count, vigil_error *err);

/* 1 when sig (the JWS signature bytes: PKCS#1 v1.5 for RS256, R || S for
 * ES256) is key's signature of input with SHA-256; 0 otherwise. */
int keys_verify(const auth_key *key, const char *input, size_t input_len, const unsigned char *sig, size_t sig_len);

void keys_free_one(auth_key *key);
void keys_free(auth_key *keys, size_t count);

#endif
