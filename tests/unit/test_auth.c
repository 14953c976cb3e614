/*
 * test_auth.c - the JWT verifier against tokens minted here: HS256 with a
 * shared secret, RS256 and ES256 with keys generated at run time (OpenSSL),
 * a JWKS built from those keys, and hand-made hostile tokens (alg none,
 * algorithm confusion, truncation, garbage).  Every rejection reason is
 * checked for both its status and its metrics label.
 *
 * Tokens are signed by this file's own minimal JWS code (so that headers and
 * claims can be anything), and once through libjwt for interoperability.
 */
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/b64url.h"
#include "auth/keys.h"
#include "auth/tls.h"
#include "core/alloc.h"
#include "testing.h"

#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define SECRET2 "another-secret-0123456789-abcdefghijklmn"

static char tmp_dir[256];

/* ------------------------------------------------------------ helpers */

static const char *tmp_path(const char *name) {
    static char paths[16][512];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, 512, "%s/%s", tmp_dir, name);
    return p;
}

static const char *write_file(const char *name, const char *text, size_t len) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

static void b64url(const unsigned char *in, size_t len, char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len) out[o++] = alphabet[(v >> 6) & 63];
        if (i + 2 < len) out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
}

typedef enum { SIGN_HS256, SIGN_RS256, SIGN_ES256, SIGN_NONE } sign_kind;

/* Signs input with key into out (raw JWS signature bytes); returns length. */
static size_t sign(sign_kind kind, const void *key, size_t key_len, const char *input, unsigned char *out) {
    if (kind == SIGN_HS256) {
        unsigned int n = 0;
        HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)input, strlen(input), out, &n);
        return n;
    }
    if (kind == SIGN_NONE) return 0;
    EVP_PKEY *pkey = (EVP_PKEY *)key;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[1024];
    size_t n = sizeof der;
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey);
    EVP_DigestSign(md, der, &n, (const unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(md);
    if (kind == SIGN_RS256) {
        memcpy(out, der, n);
        return n;
    }
    /* JWS ES256 wants R || S, 32 bytes each, not DER. */
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32);
    ECDSA_SIG_free(sig);
    return 64;
}

/* "Bearer <header>.<payload>.<signature>" built from JSON texts. */
static char *mint(sign_kind kind, const void *key, size_t key_len, const char *header, const char *payload) {
    static char tokens[8][8192];
    static int next;
    char *out = tokens[next++ % 8];
    char h[2048], p[4096], input[6200], s[400];
    unsigned char sig[600] = {0}; /* SIGN_NONE writes nothing: gcc -O3 warned maybe-uninitialized */
    b64url((const unsigned char *)header, strlen(header), h);
    b64url((const unsigned char *)payload, strlen(payload), p);
    snprintf(input, sizeof input, "%s.%s", h, p);
    b64url(sig, sign(kind, key, key_len, input, sig), s);
    snprintf(out, 8192, "Bearer %s.%s", input, s);
    return out;
}

static char *claims(const char *extra, long exp_offset) {
    static char buf[8][1024];
    static int next;
    char *out = buf[next++ % 8];
    snprintf(out, 1024, "{\"sub\":\"tester\",\"exp\":%ld%s%s}", (long)time(NULL) + exp_offset, extra[0] ? "," : "",
             extra);
    return out;
}

static char *hs(const char *extra) {
    return mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims(extra, 600));
}

static auth_verifier *make_verifier(const char *secret_file, const char *pem_file, const char *jwks_file) {
    auth_settings s = {.mode = AUTH_MODE_JWT,
                       .secret_file = secret_file,
                       .public_key_file = pem_file,
                       .jwks_file = jwks_file,
                       .clock_skew_s = 60};
    auth_verifier *v = NULL;
    vigil_error err = {0};
    vigil_status st = auth_verifier_create(&s, &v, &err);
    if (st) fprintf(stderr, "auth_verifier_create: %s\n", err.message);
    return v;
}

static const char *secret_file(void) { return write_file("secret", SECRET "\n", strlen(SECRET) + 1); }

/* Expects header to fail for `needed` with status and reason. */
#define EXPECT(v, header, needed, want_status, want_reason)                   \
    do {                                                                      \
        auth_result r_;                                                       \
        CHECK_EQ_INT(auth_check((v), (header), (needed), &r_), (want_status)); \
        CHECK_STR(auth_reason_name(r_.reason), (want_reason));                \
    } while (0)

#define UNAUTH VIGIL_ERR_UNAUTHENTICATED

static EVP_PKEY *rsa_key(unsigned bits) { return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits); }
static EVP_PKEY *ec_key(void) { return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); }

static const char *write_pem(const char *name, EVP_PKEY *pkey, int private_key) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    if (private_key) PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    else PEM_write_PUBKEY(f, pkey);
    fclose(f);
    return path;
}

static void bn_b64url(EVP_PKEY *pkey, const char *param, size_t pad, char *out) {
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(pkey, param, &bn);
    unsigned char buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

/* Appends pkey as a JWK with kid to the JSON array text in jwks. */
static void jwk_append(char *jwks, size_t size, EVP_PKEY *pkey, const char *kid) {
    char a[800], b[800], entry[2000];
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
        bn_b64url(pkey, OSSL_PKEY_PARAM_RSA_N, 0, a);
        bn_b64url(pkey, OSSL_PKEY_PARAM_RSA_E, 0, b);
        snprintf(entry, sizeof entry, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                 kid, a, b);
    } else {
        bn_b64url(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        bn_b64url(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        snprintf(entry, sizeof entry,
                 "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"x\":\"%s\",\"y\":\"%s\"}", kid,
                 a, b);
    }
    size_t n = strlen(jwks);
    snprintf(jwks + n, size - n, "%s%s", n ? "," : "", entry);
}

/* ------------------------------------------------------------ tests */

static void test_hs256_accepts_valid_token(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    CHECK(v != NULL);
    if (!v) return;
    CHECK(auth_enabled(v));
    auth_result r;
    CHECK_EQ_INT(auth_check(v, hs("\"scope\":\"infer\""), AUTH_SCOPE_INFER, &r), VIGIL_OK);
    CHECK_STR(r.subject, "tester");
    CHECK_EQ_INT(r.grants, AUTH_GRANT_INFER);
    /* infer is not events: an upload token and an inference token are different things */
    CHECK_EQ_INT(auth_check(v, hs("\"scope\":\"infer\""), AUTH_SCOPE_EVENTS, &r), VIGIL_ERR_PERMISSION);
    CHECK_EQ_INT(auth_check(v, hs("\"scope\":\"events\""), AUTH_SCOPE_EVENTS, &r), VIGIL_OK);
    CHECK_EQ_INT(r.grants, AUTH_GRANT_EVENTS);
    CHECK_EQ_INT(auth_check(v, hs("\"scope\":\"events\""), AUTH_SCOPE_INFER, &r), VIGIL_ERR_PERMISSION);
    /* scheme is case-insensitive; extra blanks are tolerated */
    char header[8300];
    snprintf(header, sizeof header, "bearer   %s  ", hs("\"scope\":\"infer\"") + 7);
    CHECK_EQ_INT(auth_check(v, header, AUTH_SCOPE_INFER, &r), VIGIL_OK);
    auth_verifier_destroy(v);
}

static void test_interop_libjwt_minted_token(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    jwt_t *jwt = NULL;
    CHECK_EQ_INT(jwt_new(&jwt), 0);
    jwt_add_grant(jwt, "scope", "admin");
    jwt_add_grant_int(jwt, "exp", (long)time(NULL) + 60);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET));
    char *token = jwt_encode_str(jwt);
    char header[4096];
    snprintf(header, sizeof header, "Bearer %s", token);
    auth_result r;
    CHECK_EQ_INT(auth_check(v, header, AUTH_SCOPE_ADMIN, &r), VIGIL_OK);
    CHECK_EQ_INT(r.grants, AUTH_GRANT_INFER | AUTH_GRANT_ADMIN | AUTH_GRANT_EVENTS); /* admin implies events */
    CHECK_EQ_INT(auth_check(v, header, AUTH_SCOPE_EVENTS, &r), VIGIL_OK);
    free(token);
    jwt_free(jwt);
    auth_verifier_destroy(v);
}

static void test_missing_and_malformed(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    EXPECT(v, NULL, AUTH_SCOPE_INFER, UNAUTH, "missing");
    EXPECT(v, "", AUTH_SCOPE_INFER, UNAUTH, "missing");
    EXPECT(v, "Bearer", AUTH_SCOPE_INFER, UNAUTH, "missing");
    EXPECT(v, "Bearer    ", AUTH_SCOPE_INFER, UNAUTH, "missing");
    EXPECT(v, "Basic dXNlcjpwYXNz", AUTH_SCOPE_INFER, UNAUTH, "missing");
    EXPECT(v, "Bearerxyz", AUTH_SCOPE_INFER, UNAUTH, "missing");
    EXPECT(v, "Bearer abc", AUTH_SCOPE_INFER, UNAUTH, "malformed");
    EXPECT(v, "Bearer a.b", AUTH_SCOPE_INFER, UNAUTH, "malformed");
    EXPECT(v, "Bearer a.b.c.d", AUTH_SCOPE_INFER, UNAUTH, "malformed");
    EXPECT(v, "Bearer ...", AUTH_SCOPE_INFER, UNAUTH, "malformed");
    EXPECT(v, "Bearer e30.e30.!!!", AUTH_SCOPE_INFER, UNAUTH, "malformed"); /* {} {} bad signature chars */
    EXPECT(v, "Bearer W10.e30.AAAA", AUTH_SCOPE_INFER, UNAUTH, "malformed"); /* header is [] */
    EXPECT(v, "Bearer e30.bm90IGpzb24.AAAA", AUTH_SCOPE_INFER, UNAUTH, "malformed"); /* payload "not json" */
    /* duplicate claims are ambiguous and refused before the signature check */
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", "{\"exp\":1,\"exp\":99999999999}"),
           AUTH_SCOPE_INFER, UNAUTH, "malformed");
    /* no exp, exp as a string */
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", "{\"scope\":\"infer\"}"),
           AUTH_SCOPE_INFER, UNAUTH, "malformed");
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", "{\"exp\":\"tomorrow\"}"),
           AUTH_SCOPE_INFER, UNAUTH, "malformed");
    /* crit header extensions are not understood, hence refused */
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}",
                   claims("\"scope\":\"infer\"", 600)),
           AUTH_SCOPE_INFER, UNAUTH, "malformed");
    /* oversized */
    char *big = malloc(20000);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', 19990);
    big[19997] = '\0';
    EXPECT(v, big, AUTH_SCOPE_INFER, UNAUTH, "malformed");
    free(big);
    auth_verifier_destroy(v);
}

static void test_truncated_and_garbage_tokens(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    char good[8300];
    snprintf(good, sizeof good, "%s", hs("\"scope\":\"infer\""));
    size_t len = strlen(good);
    auth_result r;
    for (size_t cut = 8; cut < len; cut += 3) {
        char tmp[8300];
        snprintf(tmp, sizeof tmp, "%.*s", (int)cut, good);
        vigil_status st = auth_check(v, tmp, AUTH_SCOPE_INFER, &r);
        CHECK_EQ_INT(st, UNAUTH);
        CHECK(r.reason == AUTH_REASON_MALFORMED || r.reason == AUTH_REASON_SIGNATURE);
        CHECK(r.message[0] != '\0');
    }
    unsigned seed = 12345;
    for (int i = 0; i < 300; i++) {
        char tmp[200] = "Bearer ";
        size_t n = 7 + (size_t)(rand_r(&seed) % 150);
        for (size_t k = 7; k < n; k++) tmp[k] = (char)(1 + rand_r(&seed) % 255);
        tmp[n] = '\0';
        CHECK_EQ_INT(auth_check(v, tmp, AUTH_SCOPE_INFER, &r), UNAUTH);
    }
    auth_verifier_destroy(v);
}

static void test_signature_failures(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    /* signed with another secret */
    EXPECT(v, mint(SIGN_HS256, SECRET2, strlen(SECRET2), "{\"alg\":\"HS256\"}", claims("\"scope\":\"admin\"", 600)),
           AUTH_SCOPE_INFER, UNAUTH, "signature");
    /* payload swapped under an existing signature */
    char good[8300], forged[8300];
    snprintf(good, sizeof good, "%s", hs("\"scope\":\"infer\""));
    char *dot1 = strchr(good, '.'), *dot2 = strchr(dot1 + 1, '.');
    char payload[1024], p64[1400];
    snprintf(payload, sizeof payload, "%s", claims("\"scope\":\"admin\"", 600));
    b64url((const unsigned char *)payload, strlen(payload), p64);
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - good), good, p64, dot2);
    EXPECT(v, forged, AUTH_SCOPE_INFER, UNAUTH, "signature");
    /* flipped last signature character (keeping canonical base64url) */
    snprintf(forged, sizeof forged, "%s", good);
    size_t n = strlen(forged);
    forged[n - 2] = forged[n - 2] == 'A' ? 'B' : 'A';
    auth_result r;
    CHECK_EQ_INT(auth_check(v, forged, AUTH_SCOPE_INFER, &r), UNAUTH);
    /* RS256 and ES256 tokens with no such key configured: an algorithm this server does not take */
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"RS256\"}", claims("\"scope\":\"infer\"", 600)),
           AUTH_SCOPE_INFER, UNAUTH, "algorithm");
    auth_verifier_destroy(v);
}

static void test_alg_none_and_unlisted_algorithms_refused(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    const char *payload = claims("\"scope\":\"admin\"", 600);
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                             "{\"alg\":\"HS512\"}", "{\"alg\":\"HS384\"}", "{}", "{\"alg\":42}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        auth_result r;
        /* with an empty signature (the classic form) and with some bytes */
        CHECK_EQ_INT(auth_check(v, mint(SIGN_NONE, NULL, 0, headers[i], payload), AUTH_SCOPE_INFER, &r), UNAUTH);
        CHECK_EQ_INT(r.reason, AUTH_REASON_ALGORITHM); /* not "malformed": the header says what is wrong */
        CHECK(strstr(r.message, "HS256, RS256 and ES256") != NULL);
        CHECK_EQ_INT(auth_check(v, mint(SIGN_HS256, SECRET, strlen(SECRET), headers[i], payload), AUTH_SCOPE_INFER,
                                &r),
                     UNAUTH);
        CHECK_EQ_INT(r.reason, AUTH_REASON_ALGORITHM);
        CHECK(strstr(r.message, "HS256, RS256 and ES256") != NULL);
    }
    auth_verifier_destroy(v);
}

static void test_expiry_and_skew(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL); /* skew 60 s */
    if (!v) {
        CHECK(0);
        return;
    }
    const char *h = "{\"alg\":\"HS256\"}";
    long now = (long)time(NULL);
    char c[256];
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld}", now - 30);
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld}", now - 120);
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, UNAUTH, "expired");
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld.5}", now - 120); /* NumericDate may be fractional */
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, UNAUTH, "expired");
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld,\"nbf\":%ld}", now + 600, now + 30);
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld,\"nbf\":%ld}", now + 600, now + 300);
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, UNAUTH, "not_yet_valid");
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld,\"nbf\":\"soon\"}", now + 600);
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, UNAUTH, "malformed");
    auth_verifier_destroy(v);

    /* with no skew, a token that expired a few seconds ago is refused */
    auth_settings s = {.mode = AUTH_MODE_JWT, .secret_file = secret_file(), .clock_skew_s = 0};
    vigil_error err;
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_OK);
    snprintf(c, sizeof c, "{\"scope\":\"infer\",\"exp\":%ld}", now - 5);
    EXPECT(v, mint(SIGN_HS256, SECRET, strlen(SECRET), h, c), AUTH_SCOPE_INFER, UNAUTH, "expired");
    auth_verifier_destroy(v);
}

static void test_issuer_and_audience(void) {
    auth_settings s = {.mode = AUTH_MODE_JWT,
                       .secret_file = secret_file(),
                       .issuer = "https://issuer.example",
                       .audience = "vigil",
                       .clock_skew_s = 60};
    auth_verifier *v;
    vigil_error err;
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_OK);
    const char *iss = "\"scope\":\"infer\",\"iss\":\"https://issuer.example\"";
    char extra[512];
    snprintf(extra, sizeof extra, "%s,\"aud\":\"vigil\"", iss);
    EXPECT(v, hs(extra), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    snprintf(extra, sizeof extra, "%s,\"aud\":[\"other\",\"vigil\"]", iss);
    EXPECT(v, hs(extra), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    snprintf(extra, sizeof extra, "%s,\"aud\":[\"other\",\"vigil2\"]", iss);
    EXPECT(v, hs(extra), AUTH_SCOPE_INFER, UNAUTH, "audience");
    snprintf(extra, sizeof extra, "%s,\"aud\":\"VIGIL\"", iss);
    EXPECT(v, hs(extra), AUTH_SCOPE_INFER, UNAUTH, "audience");
    EXPECT(v, hs(iss), AUTH_SCOPE_INFER, UNAUTH, "audience"); /* aud absent */
    EXPECT(v, hs("\"scope\":\"infer\",\"iss\":\"https://evil.example\",\"aud\":\"vigil\""), AUTH_SCOPE_INFER, UNAUTH,
           "issuer");
    EXPECT(v, hs("\"scope\":\"infer\",\"aud\":\"vigil\""), AUTH_SCOPE_INFER, UNAUTH, "issuer"); /* iss absent */
    auth_verifier_destroy(v);
}

static void test_scopes(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    EXPECT(v, hs("\"scope\":\"infer\""), AUTH_SCOPE_ADMIN, VIGIL_ERR_PERMISSION, "scope");
    EXPECT(v, hs("\"scope\":\"admin\""), AUTH_SCOPE_ADMIN, VIGIL_OK, "none");
    EXPECT(v, hs("\"scope\":\"admin\""), AUTH_SCOPE_INFER, VIGIL_OK, "none"); /* admin implies infer */
    EXPECT(v, hs("\"scope\":\"read  infer  write\""), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    EXPECT(v, hs("\"scopes\":[\"other\",\"admin\"]"), AUTH_SCOPE_ADMIN, VIGIL_OK, "none");
    EXPECT(v, hs("\"scopes\":[\"infer\"]"), AUTH_SCOPE_ADMIN, VIGIL_ERR_PERMISSION, "scope");
    EXPECT(v, hs(""), AUTH_SCOPE_INFER, VIGIL_ERR_PERMISSION, "scope");
    EXPECT(v, hs("\"scope\":\"inference administrator\""), AUTH_SCOPE_INFER, VIGIL_ERR_PERMISSION, "scope");
    EXPECT(v, hs("\"scope\":[\"admin\"]"), AUTH_SCOPE_INFER, VIGIL_ERR_PERMISSION, "scope");
    auth_result r;
    CHECK_EQ_INT(auth_check(v, hs("\"scope\":\"infer\""), AUTH_SCOPE_ADMIN, &r), VIGIL_ERR_PERMISSION);
    CHECK(strstr(r.message, "admin") != NULL);
    CHECK_EQ_INT(r.grants, AUTH_GRANT_INFER);
    auth_verifier_destroy(v);
}

static void test_open_routes_and_mode_off(void) {
    auth_settings s = {.mode = AUTH_MODE_JWT, .secret_file = secret_file(), .open_health = 1, .open_metrics = 0};
    auth_verifier *v;
    vigil_error err;
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_OK);
    EXPECT(v, NULL, AUTH_SCOPE_HEALTH, VIGIL_OK, "none");
    EXPECT(v, NULL, AUTH_SCOPE_PUBLIC, VIGIL_OK, "none");
    EXPECT(v, NULL, AUTH_SCOPE_METRICS, UNAUTH, "missing");
    EXPECT(v, hs(""), AUTH_SCOPE_METRICS, VIGIL_OK, "none"); /* any valid token */
    EXPECT(v, "Bearer x.y.z", AUTH_SCOPE_METRICS, UNAUTH, "malformed");
    auth_verifier_destroy(v);

    auth_settings off = {.mode = AUTH_MODE_OFF};
    CHECK_EQ_INT(auth_verifier_create(&off, &v, &err), VIGIL_OK);
    CHECK(!auth_enabled(v));
    EXPECT(v, NULL, AUTH_SCOPE_ADMIN, VIGIL_OK, "none");
    EXPECT(v, "Bearer garbage", AUTH_SCOPE_ADMIN, VIGIL_OK, "none");
    auth_verifier_destroy(v);
    EXPECT(NULL, NULL, AUTH_SCOPE_ADMIN, VIGIL_OK, "none");
}

static void test_messages_never_echo_secrets(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    const char *tokens[] = {hs("\"scope\":\"infer\""), "Bearer " SECRET,
                            mint(SIGN_HS256, SECRET2, 10, "{\"alg\":\"HS256\"}", claims("", 600))};
    for (size_t i = 0; i < 3; i++) {
        auth_result r;
        auth_check(v, tokens[i], AUTH_SCOPE_ADMIN, &r);
        CHECK(r.message[0] != '\0');
        CHECK(strstr(r.message, "test-secret") == NULL);
        CHECK(strstr(r.message, "eyJ") == NULL);
        CHECK(strstr(r.message, tokens[i] + 7) == NULL);
    }
    auth_verifier_destroy(v);
}

static void test_rs256_and_es256_pem(void) {
    EVP_PKEY *rsa = rsa_key(2048), *rsa_other = rsa_key(2048), *ec = ec_key(), *ec_other = ec_key();
    CHECK(rsa && rsa_other && ec && ec_other);
    const char *claims_infer = claims("\"scope\":\"infer\"", 600);
    const char *rs = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", *es = "{\"alg\":\"ES256\"}";

    auth_verifier *v = make_verifier(NULL, write_pem("rsa.pub", rsa, 0), NULL);
    CHECK(v != NULL);
    if (v) {
        EXPECT(v, mint(SIGN_RS256, rsa, 0, rs, claims_infer), AUTH_SCOPE_INFER, VIGIL_OK, "none");
        EXPECT(v, mint(SIGN_RS256, rsa_other, 0, rs, claims_infer), AUTH_SCOPE_INFER, UNAUTH, "signature");
        EXPECT(v, mint(SIGN_ES256, ec, 0, es, claims_infer), AUTH_SCOPE_INFER, UNAUTH, "algorithm"); /* no EC key */
        /* algorithm confusion: an HS256 token whose secret is the public key PEM text */
        char *pem = NULL;
        size_t pem_len = 0;
        vigil_error err;
        CHECK_EQ_INT(keys_read_file(tmp_path("rsa.pub"), 65536, "pem", &pem, &pem_len, &err), VIGIL_OK);
        EXPECT(v, mint(SIGN_HS256, pem, pem_len, "{\"alg\":\"HS256\"}", claims_infer), AUTH_SCOPE_INFER, UNAUTH,
               "algorithm"); /* no HS256 secret configured: HS256 is not accepted at all */
        vigil_free(pem);
        auth_verifier_destroy(v);
    }

    v = make_verifier(NULL, write_pem("ec.pub", ec, 0), NULL);
    CHECK(v != NULL);
    if (v) {
        EXPECT(v, mint(SIGN_ES256, ec, 0, es, claims_infer), AUTH_SCOPE_INFER, VIGIL_OK, "none");
        EXPECT(v, mint(SIGN_ES256, ec_other, 0, es, claims_infer), AUTH_SCOPE_INFER, UNAUTH, "signature");
        EXPECT(v, mint(SIGN_RS256, rsa, 0, rs, claims_infer), AUTH_SCOPE_INFER, UNAUTH, "algorithm"); /* no RSA key */
        /* libjwt-signed ES256 must be the same JOSE format */
        jwt_t *jwt = NULL;
        jwt_new(&jwt);
        jwt_add_grant(jwt, "scope", "infer");
        jwt_add_grant_int(jwt, "exp", (long)time(NULL) + 60);
        char *priv = NULL;
        size_t priv_len = 0;
        vigil_error err;
        CHECK_EQ_INT(keys_read_file(write_pem("ec.key", ec, 1), 65536, "key", &priv, &priv_len, &err), VIGIL_OK);
        jwt_set_alg(jwt, JWT_ALG_ES256, (unsigned char *)priv, (int)priv_len);
        char *token = jwt_encode_str(jwt), header[2048];
        CHECK(token != NULL);
        snprintf(header, sizeof header, "Bearer %s", token ? token : "");
        EXPECT(v, header, AUTH_SCOPE_INFER, VIGIL_OK, "none");
        free(token);
        vigil_free(priv);
        jwt_free(jwt);
        auth_verifier_destroy(v);
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec_other);
}

static void test_jwks_selects_by_kid(void) {
    EVP_PKEY *k1 = rsa_key(2048), *k2 = rsa_key(2048), *k3 = ec_key();
    char keys[8000] = "", doc[8200];
    jwk_append(keys, sizeof keys, k1, "k1");
    jwk_append(keys, sizeof keys, k2, "k2");
    jwk_append(keys, sizeof keys, k3, "k3");
    /* keys vigil cannot use are skipped, not fatal */
    size_t n = strlen(keys);
    snprintf(keys + n, sizeof keys - n, ",{\"kty\":\"oct\",\"kid\":\"s\",\"k\":\"AAAA\"},"
                                        "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}");
    snprintf(doc, sizeof doc, "{\"keys\":[%s]}", keys);
    auth_verifier *v = make_verifier(NULL, NULL, write_file("jwks.json", doc, strlen(doc)));
    CHECK(v != NULL);
    if (!v) return;
    const char *c = claims("\"scope\":\"infer\"", 600);
    EXPECT(v, mint(SIGN_RS256, k2, 0, "{\"alg\":\"RS256\",\"kid\":\"k2\"}", c), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    EXPECT(v, mint(SIGN_RS256, k1, 0, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", c), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    EXPECT(v, mint(SIGN_ES256, k3, 0, "{\"alg\":\"ES256\",\"kid\":\"k3\"}", c), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    EXPECT(v, mint(SIGN_RS256, k2, 0, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", c), AUTH_SCOPE_INFER, UNAUTH, "signature");
    EXPECT(v, mint(SIGN_RS256, k2, 0, "{\"alg\":\"RS256\",\"kid\":\"k9\"}", c), AUTH_SCOPE_INFER, UNAUTH, "signature");
    /* kid names an EC key but the token says RS256: no key of that kind */
    EXPECT(v, mint(SIGN_RS256, k1, 0, "{\"alg\":\"RS256\",\"kid\":\"k3\"}", c), AUTH_SCOPE_INFER, UNAUTH, "signature");
    /* two RSA keys and no kid: ambiguous, refused */
    EXPECT(v, mint(SIGN_RS256, k1, 0, "{\"alg\":\"RS256\"}", c), AUTH_SCOPE_INFER, UNAUTH, "signature");
    /* one EC key and no kid: unambiguous */
    EXPECT(v, mint(SIGN_ES256, k3, 0, "{\"alg\":\"ES256\"}", c), AUTH_SCOPE_INFER, VIGIL_OK, "none");
    auth_verifier_destroy(v);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k3);
}

static void test_create_errors(void) {
    auth_verifier *v = NULL;
    vigil_error err;
    auth_settings s = {.mode = AUTH_MODE_JWT};
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(v == NULL);
    CHECK(strstr(err.message, "auth.secret_file") != NULL);
    s.secret_file = write_file("short", "tooshort\n", 9);
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "32") != NULL);
    CHECK(strstr(err.message, "tooshort") == NULL);
    s.secret_file = tmp_path("does-not-exist");
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_ERR_NOT_FOUND);
    s.secret_file = NULL;
    s.public_key_file = write_file("bad.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 57);
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_ERR_PARSE);
    EVP_PKEY *weak = rsa_key(1024);
    s.public_key_file = write_pem("weak.pub", weak, 0);
    CHECK_EQ_INT(auth_verifier_create(&s, &v, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "2048") != NULL);
    EVP_PKEY_free(weak);
    s.public_key_file = NULL;
    const char *docs[] = {"{\"keys\":[]}", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", "[1,2]", "{not json",
                          "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        s.jwks_file = write_file("bad.jwks", docs[i], strlen(docs[i]));
        CHECK(auth_verifier_create(&s, &v, &err) != VIGIL_OK);
        CHECK(v == NULL);
        CHECK(strstr(err.message, "JWKS") != NULL);
    }
    /* an EC point that is not on the curve */
    char x[64], doc[300];
    unsigned char raw[32];
    memset(raw, 7, sizeof raw);
    b64url(raw, 32, x);
    snprintf(doc, sizeof doc, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", x, x);
    s.jwks_file = write_file("offcurve.jwks", doc, strlen(doc));
    CHECK(auth_verifier_create(&s, &v, &err) != VIGIL_OK);
}

static void test_reload_swaps_keys(void) {
    const char *path = secret_file();
    auth_verifier *v = make_verifier(path, NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    const char *c = claims("\"scope\":\"infer\"", 600);
    char old_token[8300], new_token[8300];
    snprintf(old_token, sizeof old_token, "%s", mint(SIGN_HS256, SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", c));
    snprintf(new_token, sizeof new_token, "%s", mint(SIGN_HS256, SECRET2, strlen(SECRET2), "{\"alg\":\"HS256\"}", c));
    EXPECT(v, old_token, AUTH_SCOPE_INFER, VIGIL_OK, "none");
    EXPECT(v, new_token, AUTH_SCOPE_INFER, UNAUTH, "signature");
    write_file("secret", SECRET2, strlen(SECRET2));
    vigil_error err;
    CHECK_EQ_INT(auth_verifier_reload(v, &err), VIGIL_OK);
    EXPECT(v, old_token, AUTH_SCOPE_INFER, UNAUTH, "signature");
    EXPECT(v, new_token, AUTH_SCOPE_INFER, VIGIL_OK, "none");
    /* a broken file on reload keeps the keys in use */
    write_file("secret", "short", 5);
    CHECK(auth_verifier_reload(v, &err) != VIGIL_OK);
    EXPECT(v, new_token, AUTH_SCOPE_INFER, VIGIL_OK, "none");
    auth_verifier_destroy(v);
}

typedef struct race_ctx {
    auth_verifier *v;
    const char *header;
    int failures;
} race_ctx;

static void *race_checker(void *arg) {
    race_ctx *c = arg;
    for (int i = 0; i < 300; i++) {
        auth_result r;
        if (auth_check(c->v, c->header, AUTH_SCOPE_INFER, &r) != VIGIL_OK) c->failures++;
    }
    return NULL;
}

static void test_concurrent_checks_during_reload(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    char header[8300];
    snprintf(header, sizeof header, "%s", hs("\"scope\":\"infer\""));
    race_ctx ctx[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        ctx[i] = (race_ctx){v, header, 0};
        pthread_create(&threads[i], NULL, race_checker, &ctx[i]);
    }
    for (int i = 0; i < 50; i++) {
        vigil_error err;
        CHECK_EQ_INT(auth_verifier_reload(v, &err), VIGIL_OK); /* same secret: checks must keep passing */
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK_EQ_INT(ctx[i].failures, 0);
    }
    auth_verifier_destroy(v);
}

static void test_failure_counters(void) {
    auth_verifier *v = make_verifier(secret_file(), NULL, NULL);
    if (!v) {
        CHECK(0);
        return;
    }
    auth_result r;
    for (int i = 0; i < 3; i++) auth_check(v, NULL, AUTH_SCOPE_INFER, &r);
    auth_check(v, "Bearer x", AUTH_SCOPE_INFER, &r);
    auth_check(v, hs("\"scope\":\"infer\""), AUTH_SCOPE_ADMIN, &r);
    auth_check(v, hs("\"scope\":\"infer\""), AUTH_SCOPE_INFER, &r); /* accepted: not counted */
    CHECK_EQ_INT(auth_failures(v, AUTH_REASON_MISSING), 3);
    CHECK_EQ_INT(auth_failures(v, AUTH_REASON_MALFORMED), 1);
    CHECK_EQ_INT(auth_failures(v, AUTH_REASON_SCOPE), 1);
    CHECK_EQ_INT(auth_failures(v, AUTH_REASON_SIGNATURE), 0);
    CHECK_EQ_INT(auth_failures(v, AUTH_REASON_NONE), 0);
    CHECK_EQ_INT(auth_failures(NULL, AUTH_REASON_MISSING), 0);
    char text[2048];
    size_t n = auth_metrics_render(v, text, sizeof text);
    CHECK_EQ_INT(n, strlen(text));
    CHECK(strstr(text, "# TYPE vigil_auth_failures_total counter\n") != NULL);
    CHECK(strstr(text, "vigil_auth_failures_total{reason=\"missing\"} 3\n") != NULL);
    CHECK(strstr(text, "vigil_auth_failures_total{reason=\"not_yet_valid\"} 0\n") != NULL);
    CHECK(strstr(text, "reason=\"none\"") == NULL);
    char small[40];
    CHECK_EQ_INT(auth_metrics_render(v, small, sizeof small), sizeof small - 1);
    CHECK_EQ_INT(auth_metrics_render(NULL, text, sizeof text), 0);
    CHECK_STR(text, "");
    auth_verifier_destroy(v);
}

static void test_route_scopes(void) {
    CHECK_EQ_INT(auth_http_scope("GET", "/healthz"), AUTH_SCOPE_HEALTH);
    CHECK_EQ_INT(auth_http_scope("GET", "/v2/health/ready"), AUTH_SCOPE_HEALTH);
    CHECK_EQ_INT(auth_http_scope("GET", "/metrics"), AUTH_SCOPE_METRICS);
    CHECK_EQ_INT(auth_http_scope("GET", "/"), AUTH_SCOPE_PUBLIC);
    CHECK_EQ_INT(auth_http_scope("GET", "/ui/app.js"), AUTH_SCOPE_PUBLIC);
    CHECK_EQ_INT(auth_http_scope("POST", "/v2/models/yolo/infer"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("GET", "/v2/models/yolo"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("POST", "/api/v1/detect?model=yolo"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("GET", "/api/v1/models"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("POST", "/api/v1/models/load"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("POST", "/api/v1/models/unload"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("PUT", "/api/v1/models/m/versions/3"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("POST", "//v2//repository/index"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("POST", "/v2/repository/models/m/load"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("GET", "/no/such/route"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("POST", "/api/v1/events"), AUTH_SCOPE_EVENTS);
    CHECK_EQ_INT(auth_http_scope("GET", "/api/v1/events?since=0"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("GET", "/api/v1/events/0190d3a0-0000-7000-8000-000000000000"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("GET", "/api/v1/streams"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("GET", "/api/v1/streams/gate/live"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("GET", "/api/v1/events?stream=gate&after=3"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_http_scope("POST", "/api/v1/streams"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("PUT", "/api/v1/streams/gate"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_http_scope("DELETE", "/api/v1/streams/gate"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_grpc_scope("/inference.GRPCInferenceService/ModelInfer"), AUTH_SCOPE_INFER);
    CHECK_EQ_INT(auth_grpc_scope("/inference.GRPCInferenceService/ServerLive"), AUTH_SCOPE_HEALTH);
    CHECK_EQ_INT(auth_grpc_scope("/inference.GRPCInferenceService/RepositoryModelLoad"), AUTH_SCOPE_ADMIN);
    CHECK_EQ_INT(auth_grpc_scope("/grpc.health.v1.Health/Check"), AUTH_SCOPE_HEALTH);
    CHECK_EQ_INT(auth_grpc_scope("/vigil.Detection/StreamDetect"), AUTH_SCOPE_INFER);
}

/* A self-signed certificate for key, as PEM in tmp_dir/name. */
static const char *write_cert(const char *name, EVP_PKEY *key) {
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *subject = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)"vigil-test", -1, -1, 0);
    X509_set_issuer_name(x, subject);
    X509_sign(x, key, EVP_sha256());
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (f) {
        PEM_write_X509(f, x);
        fclose(f);
    }
    X509_free(x);
    return path;
}

static void test_tls_material(void) {
    EVP_PKEY *key = ec_key(), *other = ec_key();
    vigil_config cfg;
    config_defaults(&cfg);
    tls_material *tls = NULL;
    vigil_error err;
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_OK); /* TLS off */
    CHECK(tls == NULL);
    CHECK(tls_client_ca_pem(NULL) == NULL);
    snprintf(cfg.tls_key_file, sizeof cfg.tls_key_file, "%s", write_pem("tls.key", key, 1));
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "tls.cert_file") != NULL);
    snprintf(cfg.tls_cert_file, sizeof cfg.tls_cert_file, "%s", write_cert("tls.pem", key));
    cfg.tls_key_file[0] = '\0';
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "tls.key_file") != NULL);
    snprintf(cfg.tls_key_file, sizeof cfg.tls_key_file, "%s", tmp_path("tls.key"));
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_OK);
    CHECK(tls != NULL);
    char *cert = NULL, *pem_key = NULL, *ca = NULL;
    uint64_t generation = 0;
    CHECK_EQ_INT(tls_material_copy(tls, &cert, &pem_key, &ca, &generation), VIGIL_OK);
    CHECK(cert && strstr(cert, "BEGIN CERTIFICATE") != NULL);
    CHECK(pem_key && strstr(pem_key, "PRIVATE KEY") != NULL);
    CHECK(ca == NULL);
    CHECK_EQ_INT((int)generation, 1);
    vigil_free(cert);
    vigil_free(pem_key);
    CHECK(tls_client_ca_pem(tls) == NULL);
    /* reload: a new certificate and key become generation 2 */
    write_cert("tls.pem", other);
    write_pem("tls.key", other, 1);
    CHECK_EQ_INT(tls_material_reload(tls, &err), VIGIL_OK);
    CHECK_EQ_INT((int)tls_material_generation(tls), 2);
    /* a broken file on reload keeps the current generation */
    write_file("tls.key", "junk\n", 5);
    CHECK_EQ_INT(tls_material_reload(tls, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "tls.key_file") != NULL);
    CHECK_EQ_INT((int)tls_material_generation(tls), 2);
    write_cert("tls.pem", key);
    write_pem("tls.key", key, 1);
    tls_material_destroy(tls);
    tls = NULL;
    /* mTLS: the CA bundle must parse */
    snprintf(cfg.tls_client_ca_file, sizeof cfg.tls_client_ca_file, "%s", tmp_path("tls.pem"));
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_OK);
    CHECK(tls_client_ca_pem(tls) != NULL);
    tls_material_destroy(tls);
    tls = NULL;
    snprintf(cfg.tls_client_ca_file, sizeof cfg.tls_client_ca_file, "%s", write_file("junk.pem", "junk\n", 5));
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "tls.client_ca_file") != NULL);
    cfg.tls_client_ca_file[0] = '\0';
    /* a key that does not belong to the certificate */
    snprintf(cfg.tls_key_file, sizeof cfg.tls_key_file, "%s", write_pem("other.key", other, 1));
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(tls == NULL);
    snprintf(cfg.tls_key_file, sizeof cfg.tls_key_file, "%s", tmp_path("missing.key"));
    CHECK_EQ_INT(tls_material_load(&cfg, &tls, &err), VIGIL_ERR_NOT_FOUND);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

static void test_b64url_is_strict(void) {
    unsigned char out[16];
    CHECK_EQ_INT(b64url_decode("aGk", 3, out, sizeof out), 2);
    CHECK_STR((char *)out, "hi");
    CHECK_EQ_INT(b64url_decode("aGk=", 4, out, sizeof out), 2);
    CHECK_EQ_INT(b64url_decode("aGl", 3, out, sizeof out), -1); /* non-zero trailing bits */
    CHECK_EQ_INT(b64url_decode("a+k", 3, out, sizeof out), -1); /* standard alphabet is not base64url */
    CHECK_EQ_INT(b64url_decode("a", 1, out, sizeof out), -1);
    CHECK_EQ_INT(b64url_decode("aGVsbG8gd29ybGQ", 15, out, 4), -1); /* does not fit */
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/vigil-test-auth-XXXXXX");
    if (!mkdtemp(tmp_dir)) return 1;
    RUN(test_hs256_accepts_valid_token);
    RUN(test_interop_libjwt_minted_token);
    RUN(test_missing_and_malformed);
    RUN(test_truncated_and_garbage_tokens);
    RUN(test_signature_failures);
    RUN(test_alg_none_and_unlisted_algorithms_refused);
    RUN(test_expiry_and_skew);
    RUN(test_issuer_and_audience);
    RUN(test_scopes);
    RUN(test_open_routes_and_mode_off);
    RUN(test_messages_never_echo_secrets);
    RUN(test_rs256_and_es256_pem);
    RUN(test_jwks_selects_by_kid);
    RUN(test_create_errors);
    RUN(test_reload_swaps_keys);
    RUN(test_concurrent_checks_during_reload);
    RUN(test_failure_counters);
    RUN(test_route_scopes);
    RUN(test_tls_material);
    RUN(test_b64url_is_strict);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    return testing_report();
}
