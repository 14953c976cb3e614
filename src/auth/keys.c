/*
 * keys.c - PEM and JWKS key loading (see keys.h).
 *
 * Both sources end in an OpenSSL EVP_PKEY, which key_from_pkey checks (type,
 * size, curve) and keeps.  RS256/ES256 signatures are verified here with
 * that parsed key rather than through libjwt, which re-parses a PEM text on
 * every call (measured: about 1 ms per RS256 check and 1.7 ms per ES256
 * check that way, against tens of microseconds with the key kept).  JWK members are rebuilt through OSSL_PARAM_BLD and
 * EVP_PKEY_fromdata (the OpenSSL 3 API, free of deprecation warnings), which
 * also rejects EC points that are not on the curve.
 */
#include "auth/keys.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "auth/b64url.h"
#include "core/alloc.h"

#define KEYS_RSA_MIN_BITS 2048
#define KEYS_SECRET_MIN 32
#define KEYS_PEM_MAX (64 * 1024)

vigil_status keys_read_file(const char *path, size_t max, const char *what, char **out, size_t *out_len,
                            vigil_error *err) {
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "%s %s: %s", what, path, strerror(errno));
    char *buf = vigil_malloc(max + 1);
    if (!buf) {
        fclose(f);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "%s %s: out of memory", what, path);
    }
    size_t n = fread(buf, 1, max + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > max) {
        vigil_free(buf);
        return vigil_error_set(err, failed ? VIGIL_ERR_IO : VIGIL_ERR_LIMIT, "%s %s: %s", what, path,
                               failed ? "read error" : "file too large");
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return VIGIL_OK;
}

vigil_status keys_read_text_secret(const char *path, size_t max, const char *what, char **out, size_t *out_len,
                                   vigil_error *err) {
    char *text;
    size_t len;
    vigil_status st = keys_read_file(path, max, what, &text, &len, err);
    if (st) return st;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                       text[len - 1] == '\t'))
        text[--len] = '\0';
    *out = text;
    if (out_len) *out_len = len;
    return VIGIL_OK;
}

vigil_status keys_read_secret(const char *path, unsigned char **out, size_t *out_len, vigil_error *err) {
    char *text;
    size_t len;
    vigil_status st = keys_read_text_secret(path, 4096, "auth secret file", &text, &len, err);
    if (st) return st;
    if (len < KEYS_SECRET_MIN) {
        vigil_free(text);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "auth secret file %s: the secret must be at least %d bytes", path, KEYS_SECRET_MIN);
    }
    *out = (unsigned char *)text;
    *out_len = len;
    return VIGIL_OK;
}

/* Checks pkey and fills out with its algorithm and a reference to it.
 * Takes no ownership of the caller's reference. */
static vigil_status key_from_pkey(EVP_PKEY *pkey, const char *kid, auth_key *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    int type = EVP_PKEY_get_base_id(pkey);
    if (type == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pkey) < KEYS_RSA_MIN_BITS)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "RSA key shorter than %d bits",
                                   KEYS_RSA_MIN_BITS);
        out->alg = JWT_ALG_RS256;
    } else if (type == EVP_PKEY_EC) {
        char group[64] = "";
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) ||
            strcmp(group, "prime256v1") != 0)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "EC key on curve '%s': only P-256 (ES256) is accepted",
                                   group);
        out->alg = JWT_ALG_ES256;
    } else {
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "key type is neither RSA nor EC");
    }
    if (!EVP_PKEY_up_ref(pkey)) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "cannot reference the key");
    out->pkey = pkey;
    snprintf(out->kid, sizeof out->kid, "%s", kid ? kid : "");
    return VIGIL_OK;
}

/* R || S (32 bytes each) to the DER ECDSA-Sig-Value OpenSSL verifies. */
static int es256_to_der(const unsigned char *sig, unsigned char *der, size_t cap) {
    ECDSA_SIG *ecdsa = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (!ecdsa || !r || !s || !ECDSA_SIG_set0(ecdsa, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(ecdsa);
        return -1;
    }
    int n = i2d_ECDSA_SIG(ecdsa, NULL);
    unsigned char *p = der;
    if (n <= 0 || (size_t)n > cap || i2d_ECDSA_SIG(ecdsa, &p) != n) n = -1;
    ECDSA_SIG_free(ecdsa);
    return n;
}

int keys_verify(const auth_key *key, const char *input, size_t input_len, const unsigned char *sig, size_t sig_len) {
    unsigned char der[80];
    if (key->alg == JWT_ALG_ES256) {
        int n = sig_len == 64 ? es256_to_der(sig, der, sizeof der) : -1;
        if (n < 0) return 0;
        sig = der;
        sig_len = (size_t)n;
    } else if (key->alg != JWT_ALG_RS256 || sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        return 0;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

vigil_status keys_from_pem(const char *pem, size_t len, auth_key *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    if (len > KEYS_PEM_MAX) return vigil_error_set(err, VIGIL_ERR_LIMIT, "PEM key larger than 64 KiB");
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey) return vigil_error_set(err, VIGIL_ERR_PARSE, "not a PEM public key (expected BEGIN PUBLIC KEY)");
    vigil_status st = key_from_pkey(pkey, "", out, err);
    EVP_PKEY_free(pkey);
    return st;
}

/* Decodes the base64url JSON string member name of jwk into buf (cap bytes).
 * Returns the byte count or -1. */
static long jwk_bytes(json_t *jwk, const char *name, unsigned char *buf, size_t cap) {
    const char *text = json_string_value(json_object_get(jwk, name));
    if (!text) return -1;
    size_t len = strlen(text);
    if (b64url_decoded_cap(len) > cap) return -1;
    return b64url_decode(text, len, buf, cap);
}

/* Builds a public EVP_PKEY of the named OpenSSL type from params. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld) {
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (!pkey) return NULL;
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = check && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!ok) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

static EVP_PKEY *jwk_rsa(json_t *jwk) {
    unsigned char n[1024 + 4], e[16];
    long n_len = jwk_bytes(jwk, "n", n, sizeof n), e_len = jwk_bytes(jwk, "e", e, sizeof e);
    if (n_len <= 0 || e_len <= 0) return NULL;
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        pkey = pkey_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

static EVP_PKEY *jwk_ec(json_t *jwk) {
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0) return NULL;
    unsigned char x[40], y[40], point[65];
    if (jwk_bytes(jwk, "x", x, sizeof x) != 32 || jwk_bytes(jwk, "y", y, sizeof y) != 32) return NULL;
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
        pkey = pkey_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* Turns one JWK into *out.  VIGIL_ERR_UNSUPPORTED means "skip this key";
 * other errors mean the key claims to be usable but is broken. */
static vigil_status jwk_to_key(json_t *jwk, auth_key *out, vigil_error *err) {
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    if (!json_is_object(jwk) || !kty) return vigil_error_set(err, VIGIL_ERR_PARSE, "a key has no \"kty\"");
    if (use && strcmp(use, "sig") != 0) return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "not a signing key");
    if (kid && strlen(kid) >= KEYS_KID_MAX) return vigil_error_set(err, VIGIL_ERR_PARSE, "kid too long");
    EVP_PKEY *pkey;
    const char *want;
    if (strcmp(kty, "RSA") == 0) {
        pkey = jwk_rsa(jwk);
        want = "RS256";
    } else if (strcmp(kty, "EC") == 0) {
        pkey = jwk_ec(jwk);
        want = "ES256";
    } else {
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "kty %s is not supported", kty);
    }
    if (alg && strcmp(alg, want) != 0) {
        EVP_PKEY_free(pkey);
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "alg %s is not supported", alg);
    }
    if (!pkey) return vigil_error_set(err, VIGIL_ERR_PARSE, "%s key '%s' is invalid", kty, kid ? kid : "");
    vigil_status st = key_from_pkey(pkey, kid, out, err);
    EVP_PKEY_free(pkey);
    if (st) vigil_error_prefix(err, "key '%s'", kid ? kid : "");
    if (!st) out->from_jwks = 1;
    return st;
}

vigil_status keys_from_jwks(const char *json, size_t len, auth_key **keys, size_t *count, vigil_error *err) {
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) return vigil_error_set(err, VIGIL_ERR_PARSE, "JWKS: line %d: %s", jerr.line, jerr.text);
    json_t *list = json_object_get(doc, "keys");
    vigil_status st = VIGIL_OK;
    size_t added = 0;
    if (!json_is_array(list)) st = vigil_error_set(err, VIGIL_ERR_PARSE, "JWKS: no \"keys\" array");
    for (size_t i = 0; !st && i < json_array_size(list) && added < KEYS_MAX; i++) {
        auth_key key;
        vigil_error skip;
        vigil_status kst = jwk_to_key(json_array_get(list, i), &key, &skip);
        if (kst == VIGIL_ERR_UNSUPPORTED) continue;
        if (kst) {
            st = vigil_error_set(err, kst, "JWKS: key %zu: %s", i, skip.message);
            break;
        }
        auth_key *grown = vigil_realloc(*keys, (*count + 1) * sizeof *grown);
        if (!grown) {
            keys_free_one(&key);
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "JWKS: out of memory");
            break;
        }
        *keys = grown;
        (*keys)[(*count)++] = key;
        added++;
    }
    json_decref(doc);
    if (!st && added == 0)
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "JWKS: no RS256 or ES256 signing key in the set");
    return st;
}

void keys_free_one(auth_key *key) {
    if (!key) return;
    EVP_PKEY_free(key->pkey);
    key->pkey = NULL;
}

void keys_free(auth_key *keys, size_t count) {
    for (size_t i = 0; i < count; i++) keys_free_one(&keys[i]);
    vigil_free(keys);
}
