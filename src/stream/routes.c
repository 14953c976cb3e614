/*
 * routes.c - the streams' REST API (docs/STREAMS.md, "REST API"), added
 * to the server through serve's extension interface (server_route_add), so
 * auth, limits, request ids, the access log and the metrics are the
 * server's: reading needs the scope that reading models needs (infer),
 * changing a stream needs admin (auth/scopes.c).
 *
 *   GET    /api/v1/streams                      {"streams":[S...]}
 *   POST   /api/v1/streams                      a spec -> 201 S
 *   GET    /api/v1/streams/{name}               S
 *   PUT    /api/v1/streams/{name}               a spec -> 200 S (restarted)
 *   DELETE /api/v1/streams/{name}               204
 *   GET    /api/v1/streams/{name}/detections    ?after=N: the last frames' results
 *   GET    /api/v1/streams/{name}/frame.jpg     the newest frame, boxes drawn
 *   GET    /api/v1/streams/{name}/live          MJPEG of the processed frames (live.c)
 *   GET    /api/v1/streams/{name}/events        ?after=&limit=: its events
 *   GET    /api/v1/streams/{name}/events/{id}/snapshot.jpg
 *   GET    /api/v1/events                       ?stream=&after=&limit=: all streams' events
 *   GET    /api/v1/events/{id}/snapshot.jpg
 *
 * The last two are not added when the edge serves GET /api/v1/events (its
 * outbox history, edge.role edge): the per-stream routes serve the same.
 * POST /api/v1/events (the cloud receiver) shares the prefix: another
 * method, another route.
 *
 * Handlers run on the HTTP I/O thread.  Everything but PUT and DELETE only
 * copies under a lock; those two stop a source, which joins its threads
 * after the frame in detection, so they finish on a thread of their own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "stream/stream_internal.h"

#define EVENTS_LIMIT_MAX 10000

static void respond_json_obj(server_call *call, int status, json_t *obj) {
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(obj);
    if (!text) {
        server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    server_call_respond_json(call, status, text);
    free(text);
}

static void respond_text(server_call *call, char *text, size_t len) {
    if (!text) server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
    else server_call_respond(call, 200, "application/json", text, len);
}

static void respond_jpeg(server_call *call, stream_blob *b, const char *missing) {
    if (!b) {
        server_call_error_code(call, 404, missing);
        return;
    }
    char *copy = vigil_malloc(b->len);
    if (copy) memcpy(copy, b->data, b->len);
    size_t len = b->len;
    stream_blob_unref(b);
    if (!copy) {
        server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    server_call_respond(call, 200, "image/jpeg", copy, len);
    server_call_header_add(call, "Cache-Control", "no-store");
}

/* A non-negative integer query parameter; 1 with *out set (absent: kept),
 * 0 with the answer 400 set. */
static int query_uint(server_call *call, const char *key, int64_t max, int64_t *out) {
    const char *text = server_call_query(call, key);
    if (!text) return 1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || !*text || *end || v < 0 || v > max) {
        char message[128];
        snprintf(message, sizeof message, "%s must be an integer in [0, %lld]", key, (long long)max);
        server_call_error_code(call, 400, message);
        return 0;
    }
    *out = v;
    return 1;
}

static int query_known(server_call *call, const char *const *known, const char *what) {
    const char *unknown = server_call_query_unknown(call, known);
    if (!unknown) return 1;
    char message[200];
    snprintf(message, sizeof message, "unknown query parameter '%.64s' for %s", unknown, what);
    server_call_error_code(call, 400, message);
    return 0;
}

/* The events of one stream (name) or all (NULL). */
static void route_events_list(stream_set *set, server_call *call, const char *name) {
    static const char *const all[] = {"stream", "after", "limit", NULL};
    static const char *const one[] = {"after", "limit", NULL};
    if (!query_known(call, name ? one : all, "events (stream, after, limit)")) return;
    int64_t after = 0, limit = 100;
    if (!query_uint(call, "after", INT64_MAX, &after) || !query_uint(call, "limit", EVENTS_LIMIT_MAX, &limit)) return;
    if (limit == 0) limit = 1;
    if (!name) name = server_call_query(call, "stream");
    size_t len = 0;
    char *text = stream_events_text(set, name, (uint64_t)after, (size_t)limit, &len);
    respond_text(call, text, len);
}

/* rest is "/{id}/snapshot.jpg"; 0 when it is not that shape. */
static int route_snapshot(stream_set *set, server_call *call, const char *rest) {
    if (rest[0] != '/') return 0;
    const char *slash = strchr(rest + 1, '/');
    if (!slash || strcmp(slash, "/snapshot.jpg") != 0 || slash == rest + 1 || slash - rest > 64) return 0;
    char id[64];
    snprintf(id, sizeof id, "%.*s", (int)(slash - rest - 1), rest + 1);
    respond_jpeg(call, stream_event_snapshot(set, id), "no such event, or it has no snapshot (kept: the newest events)");
    return 1;
}

static void route_events(void *ctx, server_call *call) {
    stream_set *set = ctx;
    const char *rest = server_call_path(call);
    if (!rest[0] || strcmp(rest, "/") == 0) {
        route_events_list(set, call, NULL);
        return;
    }
    server_call_set_route(call, "/api/v1/events/{id}/snapshot.jpg");
    if (!route_snapshot(set, call, rest)) server_call_error_code(call, 404, "no such route under /api/v1/events");
}

/* Splits "/{name}[/{tail}]"; 0 when there is no name. */
static int split_name(const char *rest, char *name, size_t size, const char **tail) {
    if (rest[0] != '/' || !rest[1]) return 0;
    const char *start = rest + 1, *slash = strchr(start, '/');
    size_t len = slash ? (size_t)(slash - start) : strlen(start);
    if (len == 0 || len >= size) return 0;
    memcpy(name, start, len);
    name[len] = '\0';
    *tail = slash ? slash : "";
    return 1;
}

static void route_get(void *ctx, server_call *call) {
    stream_set *set = ctx;
    const char *rest = server_call_path(call);
    if (!rest[0] || strcmp(rest, "/") == 0) {
        respond_json_obj(call, 200, stream_set_json(set));
        return;
    }
    char name[STREAM_NAME_MAX];
    const char *tail;
    if (!split_name(rest, name, sizeof name, &tail)) {
        server_call_error_code(call, 404, "no such stream");
        return;
    }
    stream *s = stream_set_find(set, name);
    if (!s) {
        server_call_error_code(call, 404, "no such stream");
        return;
    }
    if (!tail[0]) {
        server_call_set_route(call, "/api/v1/streams/{name}");
        respond_json_obj(call, 200, stream_json(s));
    } else if (strcmp(tail, "/detections") == 0) {
        server_call_set_route(call, "/api/v1/streams/{name}/detections");
        static const char *const known[] = {"after", NULL};
        int64_t after = -1;
        if (query_known(call, known, "detections (after)") && query_uint(call, "after", INT64_MAX, &after)) {
            size_t len = 0;
            char *text = stream_detections_text(s, after, &len);
            respond_text(call, text, len);
        }
    } else if (strcmp(tail, "/frame.jpg") == 0) {
        server_call_set_route(call, "/api/v1/streams/{name}/frame.jpg");
        uint64_t frame = 0;
        respond_jpeg(call, stream_live_jpeg(s, &frame), "no frame processed yet");
    } else if (strcmp(tail, "/live") == 0) {
        server_call_set_route(call, "/api/v1/streams/{name}/live");
        stream_live_serve(s, call);
    } else if (strcmp(tail, "/events") == 0) {
        server_call_set_route(call, "/api/v1/streams/{name}/events");
        route_events_list(set, call, name);
    } else if (strncmp(tail, "/events/", 8) == 0) {
        server_call_set_route(call, "/api/v1/streams/{name}/events/{id}/snapshot.jpg");
        if (!route_snapshot(set, call, tail + 7)) server_call_error_code(call, 404, "no such route under the stream");
    } else {
        server_call_error_code(call, 404, "no such route under the stream");
    }
    stream_unref(s);
}

/* The request's spec; 0 with the answer 400 set. */
static int body_spec(server_call *call, const char *path_name, stream_spec *spec) {
    size_t len = 0;
    const char *body = server_call_body(call, &len);
    json_error_t jerr;
    json_t *doc = body ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!doc) {
        char message[300];
        snprintf(message, sizeof message, "the body must be a stream's JSON spec%s%.200s", body ? ": " : "",
                 body ? jerr.text : "");
        server_call_error_code(call, 400, message);
        return 0;
    }
    if (path_name && json_is_object(doc) && !json_object_get(doc, "name"))
        json_object_set_new(doc, "name", json_string(path_name));
    vigil_error err = {0};
    vigil_status st = stream_spec_from_json(doc, spec, &err);
    json_decref(doc);
    if (!st && path_name && strcmp(spec->name, path_name) != 0)
        st = vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "the name in the body differs from the URL's");
    if (st) {
        server_call_error_code(call, 400, err.message);
        return 0;
    }
    return 1;
}

/* Answers with the stream's JSON after a change. */
static void respond_stream(stream_set *set, server_call *call, int status, const char *name) {
    stream *s = stream_set_find(set, name);
    if (!s) {
        server_call_error_code(call, 404, "the stream was removed meanwhile");
        return;
    }
    respond_json_obj(call, status, stream_json(s));
    stream_unref(s);
}

static void route_post(void *ctx, server_call *call) {
    stream_set *set = ctx;
    if (server_call_path(call)[0] && strcmp(server_call_path(call), "/") != 0) {
        server_call_error_code(call, 404, "POST /api/v1/streams takes no path below it (PUT changes a stream)");
        return;
    }
    stream_spec spec;
    if (!body_spec(call, NULL, &spec)) return;
    vigil_error err = {0};
    if (stream_set_add(set, &spec, &err)) {
        server_call_error(call, err.status, err.message);
        return;
    }
    respond_stream(set, call, 201, spec.name);
}

/* PUT and DELETE name one stream: /api/v1/streams/{name}, nothing below.
 * 0 with the answer 404 set when the path is not that. */
static int stream_path(server_call *call, char name[STREAM_NAME_MAX]) {
    const char *tail;
    server_call_set_route(call, "/api/v1/streams/{name}");
    if (split_name(server_call_path(call), name, STREAM_NAME_MAX, &tail) && !tail[0]) return 1;
    char message[80];
    snprintf(message, sizeof message, "%s takes /api/v1/streams/{name}", server_call_method(call));
    server_call_error_code(call, 404, message);
    return 0;
}

/* A PUT or DELETE, finished on a thread of its own: stopping a stream joins
 * its threads after the frame in detection, which may take as long as a
 * run of its model, and an HTTP I/O thread serves other connections
 * meanwhile.  The call is deferred (server_stop waits for it). */
typedef struct stream_change {
    stream_set *set;
    server_call *call;
    int replace; /* 1: PUT spec; 0: DELETE spec.name */
    stream_spec spec;
} stream_change;

static void *change_main(void *arg) {
    stream_change *c = arg;
    vigil_error err = {0};
    vigil_status st = c->replace ? stream_set_replace(c->set, &c->spec, &err)
                                 : stream_set_remove(c->set, c->spec.name, &err);
    if (st) server_call_error(c->call, err.status, err.message);
    else if (c->replace) respond_stream(c->set, c->call, 200, c->spec.name);
    else server_call_respond(c->call, 204, "application/json", NULL, 0);
    server_call *call = c->call;
    vigil_free(c);
    server_call_resume(call); /* the last touch: the set may go once the server stopped */
    return NULL;
}

static void change_start(stream_change *c) {
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    server_call_defer(c->call);
    if (pthread_create(&thread, &attr, change_main, c) != 0) {
        server_call_error(c->call, VIGIL_ERR_UNAVAILABLE, "cannot start a thread for the change");
        server_call *call = c->call;
        vigil_free(c);
        server_call_resume(call);
    }
    pthread_attr_destroy(&attr);
}

static void route_change(stream_set *set, server_call *call, int replace) {
    stream_change *c = vigil_calloc(1, sizeof *c);
    if (!c) {
        server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    *c = (stream_change){.set = set, .call = call, .replace = replace};
    char name[STREAM_NAME_MAX];
    if (!stream_path(call, name) || (replace && !body_spec(call, name, &c->spec))) {
        vigil_free(c);
        return;
    }
    snprintf(c->spec.name, sizeof c->spec.name, "%s", name);
    change_start(c);
}

static void route_put(void *ctx, server_call *call) { route_change(ctx, call, 1); }
static void route_delete(void *ctx, server_call *call) { route_change(ctx, call, 0); }

vigil_status stream_routes_add(stream_set *set, vigil_server *server, int edge_events, vigil_error *err) {
    vigil_status st = server_route_add(server, "GET", "/api/v1/streams", route_get, set, err);
    if (!st) st = server_route_add(server, "POST", "/api/v1/streams", route_post, set, err);
    if (!st) st = server_route_add(server, "PUT", "/api/v1/streams", route_put, set, err);
    if (!st) st = server_route_add(server, "DELETE", "/api/v1/streams", route_delete, set, err);
    if (!st && !edge_events) st = server_route_add(server, "GET", "/api/v1/events", route_events, set, err);
    return st;
}
