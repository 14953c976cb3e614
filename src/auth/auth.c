/*
 * auth.c - the JWT verifier (see auth.h).
 *
 * A check runs in a fixed order so that the reason reported is the first
 * thing wrong: header present and "Bearer" -> three base64url segments ->
 * header and payload are JSON objects (duplicate members refused, so that
 * libjwt and this file can never read different claims) -> algorithm allowed
 * and a key of that kind selected (by kid for JWKS keys) -> the signature is
 * verified with exactly that key (HS256 by libjwt, RS256/ES256 by OpenSSL
 * with the key parsed once at load, see keys.c) -> exp, nbf, iss, aud ->
 * scope.  The algorithm comes from the header only to pick among keys that
 * are already bound to one algorithm each; no key is ever used with an
 * algorithm it was not loaded for, and "none" never reaches a verifier.
 *
 * Keys live in an immutable keyset behind a read-write lock: checks share it,
 * a reload builds a new keyset outside the lock and swaps it in.
 */
#include "auth/auth.h"

#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/b64url.h"
#include "auth/keys.h"
#include "core/alloc.h"

#define AUTH_TOKEN_MAX 8192 /* longer Authorization values are refused unread */
#define AUTH_FIELD_MAX 256

typedef struct keyset {
    unsigned char *secret; /* HS256 secret or NULL */
    size_t secret_len;
    auth_key *keys; /* PEM-file key first, then JWKS keys */
    size_t count;
} keyset;

struct auth_verifier {
    auth_mode mode;
    char secret_file[CONFIG_STR_MAX];
    char public_key_file[CONFIG_STR_MAX];
    char jwks_file[CONFIG_STR_MAX];
    char issuer[AUTH_FIELD_MAX];
    char audience[AUTH_FIELD_MAX];
    int64_t clock_skew_s;
    int open_health, open_metrics;
    pthread_rwlock_t lock;
    keyset *keys; /* guarded by lock */
    atomic_ullong failures[AUTH_REASON_COUNT];
};

static const char *const reason_names[AUTH_REASON_COUNT] = {
    "none", "missing", "malformed", "signature", "algorithm", "expired", "not_yet_valid", "issuer", "audience",
    "scope"};

const char *auth_reason_name(auth_reason reason) {
    return reason >= 0 && reason < AUTH_REASON_COUNT ? reason_names[reason] : "unknown";
}

void auth_settings_from_config(const vigil_config *cfg, auth_settings *s) {
    memset(s, 0, sizeof *s);
    s->mode = strcmp(cfg->auth_mode, "jwt") == 0 ? AUTH_MODE_JWT : AUTH_MODE_OFF;
    s->secret_file = cfg->auth_secret_file;
    s->public_key_file = cfg->auth_public_key_file;
    s->jwks_file = cfg->auth_jwks_file;
    s->issuer = cfg->auth_issuer;
    s->audience = cfg->auth_audience;
    s->clock_skew_s = cfg->auth_clock_skew_s;
    s->open_health = (int)cfg->auth_open_health;
    s->open_metrics = (int)cfg->auth_open_metrics;
}

/* ------------------------------------------------------------ keysets */

static void keyset_free(keyset *ks) {
    if (!ks) return;
    if (ks->secret) {
        memset(ks->secret, 0, ks->secret_len);
        vigil_free(ks->secret);
    }
    keys_free(ks->keys, ks->count);
    vigil_free(ks);
}

static vigil_status keyset_add_pem(keyset *ks, const char *path, vigil_error *err) {
    char *text;
    size_t len;
    vigil_status st = keys_read_file(path, 64 * 1024, "auth public key file", &text, &len, err);
    if (st) return st;
    auth_key key;
    st = keys_from_pem(text, len, &key, err);
    vigil_free(text);
    if (st) {
        vigil_error_prefix(err, "auth public key file %s", path);
        return st;
    }
    auth_key *grown = vigil_realloc(ks->keys, (ks->count + 1) * sizeof *grown);
    if (!grown) {
        keys_free_one(&key);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "auth: out of memory");
    }
    ks->keys = grown;
    ks->keys[ks->count++] = key;
    return VIGIL_OK;
}

static vigil_status keyset_add_jwks(keyset *ks, const char *path, vigil_error *err) {
    char *text;
    size_t len;
    vigil_status st = keys_read_file(path, 1024 * 1024, "auth JWKS file", &text, &len, err);
    if (st) return st;
    st = keys_from_jwks(text, len, &ks->keys, &ks->count, err);
    vigil_free(text);
    if (st) vigil_error_prefix(err, "auth JWKS file %s", path);
    return st;
}

static vigil_status keyset_load(const auth_verifier *v, keyset **out, vigil_error *err) {
    *out = NULL;
    keyset *ks = vigil_calloc(1, sizeof *ks);
    if (!ks) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "auth: out of memory");
    vigil_status st = VIGIL_OK;
    if (v->secret_file[0]) st = keys_read_secret(v->secret_file, &ks->secret, &ks->secret_len, err);
    if (!st && v->public_key_file[0]) st = keyset_add_pem(ks, v->public_key_file, err);
    if (!st && v->jwks_file[0]) st = keyset_add_jwks(ks, v->jwks_file, err);
    if (!st && !ks->secret && ks->count == 0)
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                             "auth.mode is jwt but none of auth.secret_file, auth.public_key_file, auth.jwks_file is set");
    if (st) {
        keyset_free(ks);
        return st;
    }
    *out = ks;
    return VIGIL_OK;
}

/* ------------------------------------------------------------ lifecycle */

static vigil_status copy_setting(char *dst, size_t size, const char *src, const char *name, vigil_error *err) {
    if (!src) src = "";
    if (strlen(src) >= size) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: value too long", name);
    snprintf(dst, size, "%s", src);
    return VIGIL_OK;
}

vigil_status auth_verifier_create(const auth_settings *s, auth_verifier **out, vigil_error *err) {
    *out = NULL;
    auth_verifier *v = vigil_calloc(1, sizeof *v);
    if (!v) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "auth: out of memory");
    v->mode = s->mode;
    v->clock_skew_s = s->clock_skew_s < 0 ? 0 : s->clock_skew_s;
    v->open_health = s->open_health;
    v->open_metrics = s->open_metrics;
    vigil_status st = copy_setting(v->secret_file, sizeof v->secret_file, s->secret_file, "auth.secret_file", err);
    if (!st) st = copy_setting(v->public_key_file, sizeof v->public_key_file, s->public_key_file,
                               "auth.public_key_file", err);
    if (!st) st = copy_setting(v->jwks_file, sizeof v->jwks_file, s->jwks_file, "auth.jwks_file", err);
    if (!st) st = copy_setting(v->issuer, sizeof v->issuer, s->issuer, "auth.issuer", err);
    if (!st) st = copy_setting(v->audience, sizeof v->audience, s->audience, "auth.audience", err);
    if (!st && v->mode == AUTH_MODE_JWT) st = keyset_load(v, &v->keys, err);
    if (!st && pthread_rwlock_init(&v->lock, NULL) != 0)
        st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "auth: cannot create lock");
    if (st) {
        keyset_free(v->keys);
        vigil_free(v);
        return st;
    }
    *out = v;
    return VIGIL_OK;
}

void auth_verifier_destroy(auth_verifier *v) {
    if (!v) return;
    pthread_rwlock_destroy(&v->lock);
    keyset_free(v->keys);
    vigil_free(v);
}

vigil_status auth_verifier_reload(auth_verifier *v, vigil_error *err) {
    if (!v || v->mode != AUTH_MODE_JWT) return VIGIL_OK;
    keyset *fresh;
    vigil_status st = keyset_load(v, &fresh, err);
    if (st) return st;
    pthread_rwlock_wrlock(&v->lock);
    keyset *old = v->keys;
    v->keys = fresh;
    pthread_rwlock_unlock(&v->lock);
    keyset_free(old);
    return VIGIL_OK;
}

int auth_enabled(const auth_verifier *v) { return v && v->mode == AUTH_MODE_JWT; }

uint64_t auth_failures(auth_verifier *v, auth_reason reason) {
    if (!v || reason <= AUTH_REASON_NONE || reason >= AUTH_REASON_COUNT) return 0;
    return atomic_load(&v->failures[reason]);
}

size_t auth_metrics_render(auth_verifier *v, char *buf, size_t size) {
    if (size) buf[0] = '\0';
    if (!auth_enabled(v)) return 0;
    size_t n = (size_t)snprintf(buf, size,
                                "# HELP vigil_auth_failures_total Requests refused by authentication, by reason.\n"
                                "# TYPE vigil_auth_failures_total counter\n");
    for (int r = AUTH_REASON_NONE + 1; r < AUTH_REASON_COUNT; r++)
        n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                              "vigil_auth_failures_total{reason=\"%s\"} %llu\n", auth_reason_name((auth_reason)r),
                              (unsigned long long)auth_failures(v, (auth_reason)r));
    return n < size ? n : (size ? size - 1 : 0);
}

/* ------------------------------------------------------------ checking */

static vigil_status deny(auth_verifier *v, auth_result *out, auth_reason reason, const char *message) {
    atomic_fetch_add(&v->failures[reason], 1);
    out->reason = reason;
    snprintf(out->message, sizeof out->message, "%s", message);
    return reason == AUTH_REASON_SCOPE ? VIGIL_ERR_PERMISSION : VIGIL_ERR_UNAUTHENTICATED;
}

/* The token after "Bearer " (scheme case-insensitive), or NULL. */
static const char *bearer_token(const char *header) {
    if (!header) return NULL;
    while (*header == ' ' || *header == '\t') header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t')) return NULL;
    header += 6;
    while (*header == ' ' || *header == '\t') header++;
    return *header ? header : NULL;
}

/* Decodes one base64url segment into a JSON object (duplicates refused). */
static json_t *segment_json(const char *text, size_t len) {
    size_t cap = b64url_decoded_cap(len);
    unsigned char *buf = vigil_malloc(cap);
    if (!buf) return NULL;
    long n = b64url_decode(text, len, buf, cap);
    json_t *obj = n > 0 ? json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    vigil_free(buf);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

typedef struct parsed_token {
    json_t *header;
    json_t *claims;
} parsed_token;

/* Splits the compact serialisation and decodes header and payload. */
static int token_parse(const char *token, size_t len, parsed_token *pt) {
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) return 0;
    if (dot2 + 1 == token + len) return 0; /* empty signature: unsigned token */
    for (const char *c = dot2 + 1; c < token + len; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              *c == '_'))
            return 0;
    pt->header = segment_json(token, (size_t)(dot1 - token));
    pt->claims = pt->header ? segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1)) : NULL;
    return pt->header && pt->claims;
}

/* Picks the RS256/ES256 key for alg/kid from ks: the JWKS key with that kid,
 * else the public_key_file key, else (token without kid) the only JWKS key
 * of that algorithm.  NULL when none fits. */
static const auth_key *key_select(const keyset *ks, jwt_alg_t alg, const char *kid) {
    const auth_key *only = NULL, *pem = NULL;
    size_t jwks_matches = 0;
    for (size_t i = 0; i < ks->count; i++) {
        const auth_key *k = &ks->keys[i];
        if (k->alg != alg) continue;
        if (!k->from_jwks) {
            pem = k;
            continue;
        }
        if (kid && strcmp(k->kid, kid) == 0) return k;
        only = k;
        jwks_matches++;
    }
    return pem ? pem : (!kid && jwks_matches == 1 ? only : NULL);
}

/* HS256 through libjwt, with the secret as the only key it is given. */
static int verify_hs256(const keyset *ks, const char *token) {
    if (!ks->secret) return -1;
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, ks->secret, (int)ks->secret_len);
    int ok = rc == 0 && jwt && jwt_get_alg(jwt) == JWT_ALG_HS256;
    jwt_free(jwt);
    return ok;
}

/* RS256/ES256 with the parsed key (see keys.c for why not libjwt). */
static int verify_public(const keyset *ks, jwt_alg_t alg, const char *kid, const char *token) {
    const auth_key *key = key_select(ks, alg, kid);
    if (!key) return -1;
    const char *dot2 = strrchr(token, '.');
    size_t sig_text = strlen(dot2 + 1);
    unsigned char sig[1100];
    if (b64url_decoded_cap(sig_text) > sizeof sig) return 0;
    long n = b64url_decode(dot2 + 1, sig_text, sig, sizeof sig);
    return n > 0 && keys_verify(key, token, (size_t)(dot2 - token), sig, (size_t)n);
}

/* The algorithm header names, JWT_ALG_INVAL unless it is one vigil accepts. */
static jwt_alg_t header_alg(json_t *header) {
    const char *alg_name = json_string_value(json_object_get(header, "alg"));
    if (alg_name && strcmp(alg_name, "HS256") == 0) return JWT_ALG_HS256;
    if (alg_name && strcmp(alg_name, "RS256") == 0) return JWT_ALG_RS256;
    if (alg_name && strcmp(alg_name, "ES256") == 0) return JWT_ALG_ES256;
    return JWT_ALG_INVAL;
}

/* Why header's alg is refused, for the client: names it when it is a short
 * word ("none", "HS384"), never echoes anything else. */
static const char *alg_refusal(json_t *header) {
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (!alg) return "token header has no \"alg\" string: vigil accepts HS256, RS256 and ES256";
    if (strcasecmp(alg, "none") == 0)
        return "unsigned token (alg \"none\") refused: vigil accepts HS256, RS256 and ES256";
    static const char *const known[] = {"HS384", "HS512", "RS384", "RS512", "ES384", "ES512", "PS256", "PS384",
                                        "PS512", "EdDSA", "ES256K"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(alg, known[i]) == 0) return "token algorithm not supported: vigil accepts HS256, RS256 and ES256";
    return "unknown token algorithm: vigil accepts HS256, RS256 and ES256";
}

/* 1 when ks holds a key for alg. */
static int keyset_has(const keyset *ks, jwt_alg_t alg) {
    if (alg == JWT_ALG_HS256) return ks->secret != NULL;
    for (size_t i = 0; i < ks->count; i++)
        if (ks->keys[i].alg == alg) return 1;
    return 0;
}

/* Verifies the signature; the header's alg must be one vigil accepts and
 * one a key is configured for. */
static auth_reason verify_signature(auth_verifier *v, const char *token, const parsed_token *pt, const char **why) {
    const char *kid = json_string_value(json_object_get(pt->header, "kid"));
    if (json_object_get(pt->header, "crit")) {
        *why = "token uses critical header extensions";
        return AUTH_REASON_MALFORMED;
    }
    jwt_alg_t alg = header_alg(pt->header);
    if (alg == JWT_ALG_INVAL) {
        *why = alg_refusal(pt->header);
        return AUTH_REASON_ALGORITHM;
    }
    pthread_rwlock_rdlock(&v->lock);
    int have = keyset_has(v->keys, alg);
    int ok = !have ? -1 : alg == JWT_ALG_HS256 ? verify_hs256(v->keys, token) : verify_public(v->keys, alg, kid, token);
    pthread_rwlock_unlock(&v->lock);
    if (ok == 1) return AUTH_REASON_NONE;
    if (!have) {
        *why = alg == JWT_ALG_HS256 ? "HS256 tokens are not accepted here: no auth.secret_file is configured"
                                    : "this token's algorithm is not accepted here: no key of that kind is configured "
                                      "(auth.public_key_file or auth.jwks_file)";
        return AUTH_REASON_ALGORITHM;
    }
    *why = ok < 0 ? "no key has this token's kid" : "invalid token signature";
    return AUTH_REASON_SIGNATURE;
}

/* A token that is not well-formed (an empty signature, the classic unsigned
 * form) but whose header decodes and names an algorithm vigil refuses: say
 * so, not "malformed".  1 with *why set when that is the case. */
static int refused_algorithm(const char *token, size_t len, const char **why) {
    const char *dot = memchr(token, '.', len);
    const char *dot2 = dot ? memchr(dot + 1, '.', len - (size_t)(dot + 1 - token)) : NULL;
    if (!dot2 || dot2 + 1 != token + len) return 0; /* only the unsigned form "header.payload." */
    json_t *header = segment_json(token, (size_t)(dot - token));
    int refused = header && header_alg(header) == JWT_ALG_INVAL;
    if (refused) *why = alg_refusal(header);
    json_decref(header);
    return refused;
}

/* Reads a NumericDate claim: 1 present and valid, 0 absent, -1 not a number. */
static int claim_time(json_t *claims, const char *name, double *out) {
    json_t *value = json_object_get(claims, name);
    if (!value) return 0;
    if (!json_is_number(value)) return -1;
    *out = json_number_value(value);
    return 1;
}

static int audience_matches(json_t *aud, const char *want) {
    if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *item;
    json_array_foreach(aud, i, item) {
        if (json_is_string(item) && strcmp(json_string_value(item), want) == 0) return 1;
    }
    return 0;
}

static auth_reason check_claims(const auth_verifier *v, json_t *claims, const char **why) {
    double exp = 0, nbf = 0, now = (double)time(NULL), skew = (double)v->clock_skew_s;
    int has_exp = claim_time(claims, "exp", &exp), has_nbf = claim_time(claims, "nbf", &nbf);
    if (has_exp <= 0 || has_nbf < 0) {
        *why = has_exp == 0 ? "token has no exp claim" : "token exp or nbf is not a number";
        return AUTH_REASON_MALFORMED;
    }
    if (now >= exp + skew) {
        *why = "token expired";
        return AUTH_REASON_EXPIRED;
    }
    if (has_nbf && now + skew < nbf) {
        *why = "token not yet valid";
        return AUTH_REASON_NOT_YET_VALID;
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (v->issuer[0] && (!iss || strcmp(iss, v->issuer) != 0)) {
        *why = "token issuer not accepted";
        return AUTH_REASON_ISSUER;
    }
    if (v->audience[0] && !audience_matches(json_object_get(claims, "aud"), v->audience)) {
        *why = "token audience not accepted";
        return AUTH_REASON_AUDIENCE;
    }
    return AUTH_REASON_NONE;
}

static unsigned scope_word(const char *word, size_t len) {
    if (len == 5 && strncmp(word, "admin", 5) == 0) return AUTH_GRANT_ADMIN | AUTH_GRANT_INFER | AUTH_GRANT_EVENTS;
    if (len == 6 && strncmp(word, "events", 6) == 0) return AUTH_GRANT_EVENTS;
    if (len == 5 && strncmp(word, "infer", 5) == 0) return AUTH_GRANT_INFER;
    return 0;
}

/* Grants from "scope" (space-separated string) and "scopes" (array). */
static unsigned claim_grants(json_t *claims) {
    unsigned grants = 0;
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    for (const char *at = scope; at && *at;) {
        size_t skip = strspn(at, " "), len = strcspn(at + skip, " ");
        grants |= scope_word(at + skip, len);
        at += skip + len;
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(claims, "scopes"), i, item) {
        if (json_is_string(item)) grants |= scope_word(json_string_value(item), strlen(json_string_value(item)));
    }
    return grants;
}

static int route_open(const auth_verifier *v, auth_scope needed) {
    return needed == AUTH_SCOPE_PUBLIC || (needed == AUTH_SCOPE_HEALTH && v->open_health) ||
           (needed == AUTH_SCOPE_METRICS && v->open_metrics);
}

vigil_status auth_check(auth_verifier *v, const char *authorization, auth_scope needed, auth_result *out) {
    memset(out, 0, sizeof *out);
    if (!auth_enabled(v) || route_open(v, needed)) {
        out->grants = AUTH_GRANT_INFER | AUTH_GRANT_ADMIN | AUTH_GRANT_EVENTS;
        return VIGIL_OK;
    }
    const char *token = bearer_token(authorization);
    if (!token) return deny(v, out, AUTH_REASON_MISSING, "missing bearer token (Authorization: Bearer <token>)");
    size_t len = strnlen(token, AUTH_TOKEN_MAX + 1);
    while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t')) len--;
    if (len > AUTH_TOKEN_MAX) return deny(v, out, AUTH_REASON_MALFORMED, "token too long");
    char *copy = vigil_strndup(token, len); /* NUL-terminated for libjwt, without trailing blanks */
    if (!copy) return deny(v, out, AUTH_REASON_MALFORMED, "token could not be processed");
    parsed_token pt = {0};
    const char *why = "malformed token";
    auth_reason reason = token_parse(copy, len, &pt)              ? AUTH_REASON_NONE
                         : refused_algorithm(copy, len, &why) ? AUTH_REASON_ALGORITHM
                                                              : AUTH_REASON_MALFORMED;
    if (!reason) reason = verify_signature(v, copy, &pt, &why);
    if (!reason) reason = check_claims(v, pt.claims, &why);
    unsigned grants = reason ? 0 : claim_grants(pt.claims);
    const char *sub = reason ? NULL : json_string_value(json_object_get(pt.claims, "sub"));
    if (sub) snprintf(out->subject, sizeof out->subject, "%s", sub);
    json_decref(pt.header);
    json_decref(pt.claims);
    vigil_free(copy);
    if (reason) return deny(v, out, reason, why);
    out->grants = grants;
    if (needed == AUTH_SCOPE_ADMIN && !(grants & AUTH_GRANT_ADMIN))
        return deny(v, out, AUTH_REASON_SCOPE, "token lacks the 'admin' scope");
    if (needed == AUTH_SCOPE_INFER && !(grants & AUTH_GRANT_INFER))
        return deny(v, out, AUTH_REASON_SCOPE, "token lacks the 'infer' scope");
    if (needed == AUTH_SCOPE_EVENTS && !(grants & AUTH_GRANT_EVENTS))
        return deny(v, out, AUTH_REASON_SCOPE, "token lacks the 'events' scope");
    return VIGIL_OK;
}
