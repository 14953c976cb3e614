/*
 * scopes.c - which scope each REST route and gRPC method needs.  Kept in the
 * auth layer, next to the checks, so that the front ends make one call per
 * request and the table is tested in one place.  Anything not listed needs
 * "infer": a new route is protected until someone decides otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"

#define SCOPES_MAX_SEGMENTS 8

typedef struct segments {
    char copy[512];
    const char *seg[SCOPES_MAX_SEGMENTS];
    size_t n;
    int too_long; /* path did not fit: classify conservatively */
} segments;

static void segments_split(const char *path, segments *s) {
    size_t len = strcspn(path, "?#");
    s->n = 0;
    s->too_long = len >= sizeof s->copy;
    snprintf(s->copy, sizeof s->copy, "%.*s", (int)len, path);
    for (char *save = NULL, *t = strtok_r(s->copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (s->n == SCOPES_MAX_SEGMENTS) {
            s->too_long = 1;
            break;
        }
        s->seg[s->n++] = t;
    }
}

static int seg_is(const segments *s, size_t i, const char *text) { return i < s->n && strcmp(s->seg[i], text) == 0; }

auth_scope auth_http_scope(const char *method, const char *path) {
    segments s;
    segments_split(path ? path : "", &s);
    if (s.too_long) return AUTH_SCOPE_INFER;
    if (s.n == 0 || seg_is(&s, 0, "ui")) return AUTH_SCOPE_PUBLIC;
    if (s.n == 1 && (seg_is(&s, 0, "healthz") || seg_is(&s, 0, "readyz"))) return AUTH_SCOPE_HEALTH;
    if (s.n == 3 && seg_is(&s, 0, "v2") && seg_is(&s, 1, "health")) return AUTH_SCOPE_HEALTH;
    if (s.n == 1 && seg_is(&s, 0, "metrics")) return AUTH_SCOPE_METRICS;
    if (seg_is(&s, 0, "v2") && seg_is(&s, 1, "repository")) return AUTH_SCOPE_ADMIN;
    if (seg_is(&s, 0, "api") && seg_is(&s, 1, "v1") && seg_is(&s, 2, "models")) {
        if (s.n == 4 && (seg_is(&s, 3, "load") || seg_is(&s, 3, "unload"))) return AUTH_SCOPE_ADMIN;
        if (s.n >= 5 && seg_is(&s, 4, "versions")) return AUTH_SCOPE_ADMIN; /* upload (PUT) and its variants */
        if (method && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return AUTH_SCOPE_ADMIN;
    }
    /* Video streams (docs/STREAMS.md): reading them is like reading models;
     * adding, changing and removing one is the admin's. */
    if (seg_is(&s, 0, "api") && seg_is(&s, 1, "v1") && seg_is(&s, 2, "streams") && method &&
        strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return AUTH_SCOPE_ADMIN;
    /* The cloud receiver's intake (docs/EDGE.md): an edge's upload token
     * carries "events" and nothing more; reading the edge's history is
     * like reading inference results. */
    if (seg_is(&s, 0, "api") && seg_is(&s, 1, "v1") && seg_is(&s, 2, "events") && method &&
        strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return AUTH_SCOPE_EVENTS;
    return AUTH_SCOPE_INFER;
}

auth_scope auth_grpc_scope(const char *method_path) {
    if (!method_path) return AUTH_SCOPE_INFER;
    const char *slash = strrchr(method_path, '/');
    const char *name = slash ? slash + 1 : method_path;
    if (strncmp(method_path, "/grpc.health.v1.Health/", 23) == 0) return AUTH_SCOPE_HEALTH;
    if (strcmp(name, "ServerLive") == 0 || strcmp(name, "ServerReady") == 0) return AUTH_SCOPE_HEALTH;
    if (strncmp(name, "Repository", 10) == 0) return AUTH_SCOPE_ADMIN;
    return AUTH_SCOPE_INFER;
}
