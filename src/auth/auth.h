/*
 * auth.h - caller authentication for the HTTP and gRPC front ends.
 *
 * An auth_verifier holds the configured keys (an HS256 shared secret, an
 * RS256/ES256 PEM public key, a JWKS with keys selected by "kid") and checks
 * "Authorization: Bearer <JWT>" values: signature, algorithm (only HS256,
 * RS256 and ES256, each only with a key of its own kind; "none" is always
 * refused), exp/nbf with a clock skew, iss, aud (string or array) and scopes
 * (claim "scope", space-separated, or "scopes", an array; "admin" implies
 * "infer").  Checks are thread-safe and run concurrently; auth_verifier_reload
 * (for SIGHUP) swaps in freshly read keys and keeps the old ones on failure.
 *
 * The result carries a reason code for metrics and a message that is safe to
 * send to the client: it never contains the token, a key or a secret.
 */
#ifndef VIGIL_AUTH_AUTH_H
#define VIGIL_AUTH_AUTH_H

#include <stdint.h>

#include "core/config.h"
#include "vigil/status.h"

typedef struct auth_verifier auth_verifier;

typedef enum auth_mode { AUTH_MODE_OFF = 0, AUTH_MODE_JWT = 1 } auth_mode;

/* What a route needs.  Public routes (the web UI's static files) are always
 * open; health and metrics are open when the settings say so and otherwise
 * need any valid token; infer, admin and events need that scope ("events":
 * what an edge vigil's uploads to the cloud's receiver carry, nothing else;
 * admin implies it). */
typedef enum auth_scope {
    AUTH_SCOPE_PUBLIC = 0,
    AUTH_SCOPE_HEALTH = 1,
    AUTH_SCOPE_METRICS = 2,
    AUTH_SCOPE_INFER = 3,
    AUTH_SCOPE_ADMIN = 4,
    AUTH_SCOPE_EVENTS = 5,
} auth_scope;

/* Why a check failed; AUTH_REASON_NONE on success.  auth_reason_name gives
 * the metrics label ("missing", "malformed", ...). */
typedef enum auth_reason {
    AUTH_REASON_NONE = 0,
    AUTH_REASON_MISSING,       /* no Authorization header or not "Bearer" */
    AUTH_REASON_MALFORMED,     /* not a well-formed JWT, or required claims absent */
    AUTH_REASON_SIGNATURE,     /* bad signature, or no key with the token's kid */
    AUTH_REASON_ALGORITHM,     /* alg not HS256/RS256/ES256 ("none", HS384, absent), or no key of that kind */
    AUTH_REASON_EXPIRED,       /* exp passed (beyond the skew) */
    AUTH_REASON_NOT_YET_VALID, /* nbf in the future (beyond the skew) */
    AUTH_REASON_ISSUER,        /* iss differs from auth.issuer */
    AUTH_REASON_AUDIENCE,      /* aud does not contain auth.audience */
    AUTH_REASON_SCOPE,         /* valid token without the needed scope */
    AUTH_REASON_COUNT
} auth_reason;

#define AUTH_GRANT_INFER 1u
#define AUTH_GRANT_ADMIN 2u
#define AUTH_GRANT_EVENTS 4u

typedef struct auth_result {
    auth_reason reason;
    char message[128];  /* client-safe explanation ("token expired") */
    char subject[128];  /* "sub" of an accepted token ("" if none), for logs */
    unsigned grants;    /* AUTH_GRANT_* bits of an accepted token */
} auth_result;

/* Settings; strings are copied by auth_verifier_create. NULL or "" = unset. */
typedef struct auth_settings {
    auth_mode mode;
    const char *secret_file;     /* HS256 secret, >= 32 bytes, trailing whitespace ignored */
    const char *public_key_file; /* PEM public key: RSA >= 2048 bits (RS256) or P-256 (ES256) */
    const char *jwks_file;       /* JWKS document */
    const char *issuer;          /* required iss */
    const char *audience;        /* required aud */
    int64_t clock_skew_s;
    int open_health;
    int open_metrics;
} auth_settings;

/* Fills s from the auth.* rows of cfg (pointers into cfg). */
void auth_settings_from_config(const vigil_config *cfg, auth_settings *s);

/* Creates a verifier and loads its keys.  Mode jwt with no key source, or a
 * key file that cannot be read or parsed, is an error naming the file.  Mode
 * off gives a verifier that accepts everything.  The caller owns *out. */
vigil_status auth_verifier_create(const auth_settings *s, auth_verifier **out, vigil_error *err);
void auth_verifier_destroy(auth_verifier *v);

/* Re-reads the key files.  On failure the previous keys stay in use. */
vigil_status auth_verifier_reload(auth_verifier *v, vigil_error *err);

/* 1 when v checks tokens (mode jwt); a NULL verifier is mode off. */
int auth_enabled(const auth_verifier *v);

/* Checks an Authorization header value (NULL when absent) for a route that
 * needs `needed`.  Returns VIGIL_OK, VIGIL_ERR_UNAUTHENTICATED or
 * VIGIL_ERR_PERMISSION (scope); *out says why.  v may be NULL (mode off). */
vigil_status auth_check(auth_verifier *v, const char *authorization, auth_scope needed, auth_result *out);

const char *auth_reason_name(auth_reason reason);

/* Checks refused for reason since v was created (for the metrics endpoint's
 * vigil_auth_failures_total{reason}); 0 for a NULL verifier. */
uint64_t auth_failures(auth_verifier *v, auth_reason reason);

/* Writes vigil_auth_failures_total (Prometheus text format, HELP and TYPE
 * lines, one sample per reason) into buf; returns the length, truncated to
 * size - 1 like snprintf.  Nothing is written when auth is off. */
size_t auth_metrics_render(auth_verifier *v, char *buf, size_t size);

/* The scope a REST request needs, from its method and path (query string
 * allowed): public for the web UI ("/", "/ui/..."), health and metrics
 * endpoints, admin for the repository (load, unload, upload, index), infer
 * for everything else (unknown paths too, so that probing needs a token). */
auth_scope auth_http_scope(const char *method, const char *path);

/* The scope a gRPC call needs, from its method path
 * ("/inference.GRPCInferenceService/ModelInfer"). */
auth_scope auth_grpc_scope(const char *method_path);

#endif
