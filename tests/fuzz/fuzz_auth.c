/* fuzz_auth.c - libFuzzer target for the auth layer's parsers.  The first
 * byte picks what the rest is: 0 an Authorization header value checked by a
 * verifier holding a fixed HS256 secret and a fresh P-256 public key (so
 * ES256 signatures reach the OpenSSL path), 1 a JWKS document, 2 a PEM
 * public key.  Any bytes must give a status with a reason and a message,
 * never a crash; a token can only pass if it was signed with the secret. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/auth.h"
#include "auth/keys.h"
#include "core/alloc.h"

#define FUZZ_SECRET "vigil-fuzz-secret-0123456789abcdefghij"

static auth_verifier *fuzz_verifier(void) {
    static auth_verifier *v;
    if (v) return v;
    char path[] = "/tmp/vigil-fuzz-auth-XXXXXX", pem[] = "/tmp/vigil-fuzz-auth-pem-XXXXXX";
    int fd = mkstemp(path), pem_fd = mkstemp(pem);
    if (fd < 0 || pem_fd < 0 || write(fd, FUZZ_SECRET, strlen(FUZZ_SECRET)) != (ssize_t)strlen(FUZZ_SECRET)) abort();
    close(fd);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FILE *f = fdopen(pem_fd, "wb");
    if (!key || !f || !PEM_write_PUBKEY(f, key)) abort();
    fclose(f);
    EVP_PKEY_free(key);
    auth_settings s = {.mode = AUTH_MODE_JWT, .secret_file = path, .public_key_file = pem, .issuer = "fuzz",
                       .audience = "vigil", .clock_skew_s = 60};
    vigil_error err;
    if (auth_verifier_create(&s, &v, &err) != VIGIL_OK) abort();
    unlink(path);
    unlink(pem);
    return v;
}

static void fuzz_token(const uint8_t *data, size_t size) {
    char *header = vigil_malloc(size + 1);
    if (!header) return;
    memcpy(header, data, size);
    header[size] = '\0';
    auth_result r;
    vigil_status st = auth_check(fuzz_verifier(), header, AUTH_SCOPE_ADMIN, &r);
    if (st != VIGIL_OK && (r.reason == AUTH_REASON_NONE || r.message[0] == '\0')) __builtin_trap();
    if (st == VIGIL_OK && r.grants != (AUTH_GRANT_INFER | AUTH_GRANT_ADMIN | AUTH_GRANT_EVENTS)) __builtin_trap();
    vigil_free(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    vigil_error err = {0};
    switch (data[0] % 3) {
    case 0:
        fuzz_token(data + 1, size - 1);
        break;
    case 1: {
        auth_key *keys = NULL;
        size_t count = 0;
        if (keys_from_jwks((const char *)data + 1, size - 1, &keys, &count, &err) != VIGIL_OK &&
            err.message[0] == '\0')
            __builtin_trap();
        keys_free(keys, count);
        break;
    }
    default: {
        auth_key key;
        if (keys_from_pem((const char *)data + 1, size - 1, &key, &err) == VIGIL_OK) keys_free_one(&key);
        else if (err.message[0] == '\0') __builtin_trap();
        break;
    }
    }
    return 0;
}
