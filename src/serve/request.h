/*
 * request.h - the request layer that every front end (REST in server.c and
 * routes_*.c, gRPC in src/grpc/) calls between its wire format and the
 * scheduler, so that the two cannot drift apart:
 *
 *   begin    auth and limits (request_serving, request_job_deadline)
 *   options  defaults < the model's config.yaml < the request, with "unset"
 *            explicit (request_detect_options, request_detect_resolve)
 *   cache    one key prefix and one lookup (request_cache_begin/_lookup/_store)
 *   submit   the model's scheduler (request_acquire, sched_submit)
 *   finish   what a job's status means to the client (request_job_status),
 *            the one table from vigil_status to the HTTP status and the
 *            gRPC code (request_http_status, request_grpc_code; docs/API.md
 *            and docs/GRPC.md print it), and for every answered request its
 *            count in the metrics and its access log line (request_finish).
 *
 * A front end keeps only what is its own: reading the wire (query text,
 * protobuf), suspending a connection or a call, and writing the answer.
 * struct vigil_server stays private to src/serve/: src/grpc/ reaches the
 * repository, the metrics and the settings through the functions here.
 */
#ifndef VIGIL_SERVE_REQUEST_H
#define VIGIL_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/tls.h"
#include "core/arena.h"
#include "core/config.h"
#include "serve/cache.h"
#include "serve/metrics.h"
#include "serve/repository.h"
#include "serve/scheduler.h"
#include "serve/server.h"
#include "vigil/status.h"
#include "vigil/vision.h"

/* ---------------------------------------------------------------- the table */

/* The gRPC status codes, by their numbers in gRPC's specification
 * (doc/statuscodes.md; the same in every implementation), so that this
 * layer needs no gRPC header.  src/grpc/ checks them against grpc_status_code
 * at compile time. */
typedef enum request_grpc {
    REQUEST_GRPC_OK = 0,
    REQUEST_GRPC_INVALID_ARGUMENT = 3,
    REQUEST_GRPC_DEADLINE_EXCEEDED = 4,
    REQUEST_GRPC_NOT_FOUND = 5,
    REQUEST_GRPC_ALREADY_EXISTS = 6,
    REQUEST_GRPC_PERMISSION_DENIED = 7,
    REQUEST_GRPC_RESOURCE_EXHAUSTED = 8,
    REQUEST_GRPC_FAILED_PRECONDITION = 9,
    REQUEST_GRPC_UNIMPLEMENTED = 12,
    REQUEST_GRPC_INTERNAL = 13,
    REQUEST_GRPC_UNAVAILABLE = 14,
    REQUEST_GRPC_UNAUTHENTICATED = 16,
} request_grpc;

/* The HTTP status for a status: the one table both front ends use. */
int request_http_status(vigil_status status);
/* The gRPC code for a status, from the same table. */
request_grpc request_grpc_code(vigil_status status);

/* What a finished job's status means to the client: a detection job whose
 * image is no JPEG/PNG or is corrupt (UNSUPPORTED, PARSE from the decoder)
 * is the client's bad input, INVALID_ARGUMENT; anything else as it is. */
vigil_status request_job_status(const sched_job *job);

/* ---------------------------------------------------------------- finish */

#define REQUEST_ID_SIZE 65

/* An id for a request: the client's (an X-Request-Id header, x-request-id
 * metadata) when it is 1-64 printable bytes without quotes or backslashes,
 * else a fresh one.  OUT: out, REQUEST_ID_SIZE bytes. */
void request_id_make(const char *given, size_t given_len, char *out);

/* One answered request, as the metrics and the access log see it.  Strings
 * are borrowed for the call; model may be NULL or "". */
typedef struct request_record {
    int grpc;               /* 0: REST; 1: gRPC (the line adds "proto":"grpc" and the gRPC code) */
    const char *request_id;
    const char *method;     /* the HTTP method; gRPC: "POST", as on the wire */
    const char *path;       /* the URL as sent; gRPC: the method path */
    const char *route;      /* the metrics label: the route pattern, the gRPC method path */
    int status;             /* the HTTP status answered (gRPC: the table's for its status) */
    int grpc_code;          /* gRPC: the status code sent */
    size_t bytes_in, bytes_out;
    int64_t start_ns;       /* sched_now_ns() when the request arrived */
    const char *model;
    const struct trace_request *trace; /* the request's spans (trace.h); NULL or off: none */
} request_record;

/* The finish step both front ends take once per answered request (a gRPC
 * stream is one request): counts it under its route and status in the
 * metrics and writes its access log line (at info level; JSON or text, as
 * log.format says).  REST's line is what it always was; a gRPC line has the
 * same fields plus "proto":"grpc" and "grpc_status".  With tracing on, the
 * line carries the trace id ("trace_id", trace_id=) and a sampled
 * request's spans go to the exporter. */
void request_finish(vigil_server *server, const request_record *r);

/* ---------------------------------------------------------------- begin */

/* 1 while the server is ready and not stopping. */
int request_serving(const vigil_server *server);
/* The settings the server was created with (read-only, live as long as it). */
const vigil_config *request_config(const vigil_server *server);
repository *request_repository(vigil_server *server);
metrics *request_metrics(vigil_server *server);
/* The auth verifier and TLS material shared with the HTTP side (one key
 * set, one SIGHUP reload); tls is NULL for plain text. */
auth_verifier *request_auth(vigil_server *server);
tls_material *request_tls(vigil_server *server);
/* The span exporter (trace.h); NULL while tracing is off. */
struct tracer *request_tracer(vigil_server *server);

/* The CLOCK_MONOTONIC deadline of a job arriving now: limits.request_timeout_ms,
 * or the client's own deadline (client_left_ns >= 0: nanoseconds it has
 * left) when that is earlier. */
int64_t request_job_deadline(const vigil_server *server, int64_t client_left_ns);

/* Takes a reference on model (version 0 = the served one) into *out, counting
 * a refusal of an unavailable model in the metrics.  Release with
 * repository_release(request_repository(server), *out). */
vigil_status request_acquire(vigil_server *server, const char *model, int64_t version, served_model **out,
                             vigil_error *err);

/* Queues job on m's scheduler (job->arena, done, user and deadline_ns set
 * by the caller).  VIGIL_ERR_UNAVAILABLE, with err set and job not taken,
 * while the server is stopping or when the queue is full. */
vigil_status request_submit(vigil_server *server, served_model *m, sched_job *job, vigil_error *err);

/* request_submit, then waits on this thread until the job is done (its
 * done and user are this function's): for a front end that has a thread of
 * its own per request, the edge receiver's workers, a video stream's
 * delivery thread.  A status here means the job was not taken; once it
 * ran, request_job_status says how it ended. */
vigil_status request_submit_wait(vigil_server *server, served_model *m, sched_job *job, vigil_error *err);

/* ---------------------------------------------------------------- options */

/* The detection options a request asks for, as read from its wire format
 * and before any default applies.  has_* = 0 means the request did not set
 * the field (REST: the query parameter is absent; gRPC: the proto3 optional
 * field is not present); an explicit value, 0 included, is used as sent.
 * An empty class list is the same as none: every class. */
typedef struct request_detect_options {
    int has_conf;
    double conf;       /* [0, 1]: keep scores above it */
    int has_iou;
    double iou;        /* [0, 1]: suppress overlaps above it (1 = none) */
    int has_max_det;
    int64_t max_det;   /* [1, 100000] */
    const char *const *classes; /* borrowed; ids ("0") or names ("bus"), none empty */
    size_t n_classes;
    int has_priority;
    int64_t priority;  /* [-1000, 1000]: higher runs first (unset: 0) */
    int has_render;
    int render;        /* 1: answer with the image, boxes drawn (unset: 0, JSON) */
} request_detect_options;

/* How each front end spells the fields, for messages that name the field
 * as the request wrote it ("conf" over REST, "options.conf_threshold" over
 * gRPC). */
typedef struct request_detect_names {
    const char *conf, *iou, *max_det, *classes, *priority;
} request_detect_names;

#define REQUEST_THRESHOLD_RULE "in [0, 1]"
#define REQUEST_MAX_DET_RULE "an integer in [1, 100000]"
#define REQUEST_MAX_DET_MAX 100000
#define REQUEST_PRIORITY_RULE "an integer in [-1000, 1000]"
#define REQUEST_PRIORITY_MAX 1000

/* Makes job a detection job (job_detect_prepare, in a) and fills its
 * options from the defaults, then m's config.yaml thresholds, then o (its
 * priority and render flag included: job->priority, the job's render); o's
 * class list is handed to the job as a list (copied into a), which the
 * worker resolves against the model's labels.  VIGIL_ERR_INVALID_ARGUMENT
 * naming the first field out of range ("<name> must be <rule>, got
 * <value>"). */
vigil_status request_detect_resolve(const served_model *m, const request_detect_options *o,
                                    const request_detect_names *names, arena *a, sched_job *job, vigil_error *err);

/* ---------------------------------------------------------------- raw frames */

/* A decoded frame as a request describes it, before it is checked (REST:
 * an application/octet-stream body with ?width=&height=&format=&stride=;
 * gRPC: DetectRequest.raw with the pixels in `image`). */
typedef struct request_raw_frame {
    vigil_pixel_format format;
    int64_t width, height; /* [1, INT32_MAX] */
    int64_t stride;        /* bytes from one row to the next (NV12: of both planes); 0 = packed */
} request_raw_frame;

/* How each front end spells the fields ("width" over REST, "raw.width"
 * over gRPC). */
typedef struct request_raw_names {
    const char *width, *height, *stride, *format;
} request_raw_names;

#define REQUEST_RAW_SIZE_RULE "an integer in [1, 2147483647]"
#define REQUEST_RAW_FORMAT_RULE "rgb24, bgr24 or nv12"

/* The format a name spells ("rgb24", "bgr24", "nv12"; REST's format=):
 * 1 with *out set, 0 when it names none. */
int request_raw_format_parse(const char *name, vigil_pixel_format *out);

/* Makes job's image (set before, image_size bytes) the frame f describes:
 * checks the geometry, limits.max_image_pixels and that the size is the
 * frame's exactly (its last row packed or padded to the stride), then sets
 * the job's raw geometry.  VIGIL_ERR_INVALID_ARGUMENT naming the field or
 * the size the geometry needs; VIGIL_ERR_LIMIT over the pixel limit (413 /
 * RESOURCE_EXHAUSTED, as an encoded image over it).  job must be a
 * detection job (job_detect_prepare). */
vigil_status request_detect_raw(const vigil_server *server, const request_raw_frame *f, const request_raw_names *names,
                                sched_job *job, vigil_error *err);

/* The image's bytes, pieces[0..n) (as the front end received them: n 1
 * for bytes whole), once the job's geometry (request_detect_raw) and
 * options (render) are set.  An RGB24 frame in several pieces stays where
 * it lies when only the letterbox will read it (no render, no response
 * cache, no escalation observer); otherwise the pieces are gathered into
 * the job's arena a (VIGIL_ERR_LIMIT when it is full).  The pieces'
 * memory must outlive the job. */
vigil_status request_detect_bytes(const vigil_server *server, const served_model *m, sched_job *job, arena *a,
                                  const vigil_piece *pieces, size_t n, vigil_error *err);

/* Letterboxes the job's raw frame into a model input of its own now, on the
 * front end's thread, when that is only a copy of rows (the frame fills a
 * device's uint8 input along one side: served_model.frame_spec,
 * vigil_detect_frame_copies), and nothing else reads the frame (no render,
 * no response cache).  The bytes were just received and are still in this
 * core's cache; the model's worker would read them from memory (about four
 * times the time of the copy itself).  The input comes from the server's
 * pool of them and goes back when arena a is destroyed; the worker runs it
 * where it lies (detect_request.ready).  Call once the image's bytes
 * (request_detect_bytes, or job_detect.image) and options are set.  Does
 * nothing (VIGIL_OK) where it does not apply or memory is short; an error
 * only for a frame whose rows are cut short. */
vigil_status request_detect_ready(vigil_server *server, const served_model *m, sched_job *job, arena *a,
                                  vigil_error *err);

/* ---------------------------------------------------------------- cache */

/* Looks a request's answer up in the response cache: the key is kind
 * ("infer" or "detect"), m's name and version, then what identifies the
 * answer (sched_job_cache_key), so REST and gRPC hit what either stored.
 * When m uses the cache, *use is set to 1 and *key to the key (store the
 * answer under it, request_cache_store*) and the lookup is counted; on a
 * hit the value is copied into a and 1 returned.  *use = 0 when m does not
 * use the cache. */
int request_cache_lookup(vigil_server *server, const served_model *m, const char *kind, const sched_job *job,
                         arena *a, int *use, cache_key *key, void **value, size_t *size);
/* Stores an answer (a detection body) under key. */
void request_cache_store(vigil_server *server, const cache_key *key, const void *value, size_t size);
/* Stores a raw job's outputs (infer_outputs_pack) under key. */
void request_cache_store_outputs(vigil_server *server, const cache_key *key, const sched_job *job);

/* ---------------------------------------------------------------- observe */

/* A finished detection request, as the detection observer sees it (the
 * edge's escalation: docs/EDGE.md).  Everything is borrowed for the call
 * only: an observer that keeps something copies it. */
typedef struct request_detection_seen {
    const char *model;
    int64_t version;
    const model_escalation *escalation; /* the model's config.yaml escalation section */
    const char *source;                 /* X-Source-Id / ?source= / x-source-id metadata, "" when none */
    const char *traceparent;            /* W3C traceparent, "" when none */
    const void *image;                  /* the image bytes as received (JPEG or PNG, or a decoded frame) */
    size_t image_size;
    vigil_pixel_format raw_format;      /* a decoded frame's geometry (request_detect_raw); */
    int raw_width, raw_height, raw_stride; /* raw_width 0: image is encoded */
    const char *json;                   /* the detection answer as the client got it */
    size_t json_len;
} request_detection_seen;

#define REQUEST_SOURCE_MAX 128
#define REQUEST_TRACEPARENT_MAX 64

/* Called on the front end's thread after the answer was handed over; it
 * must be cheap (decide, and copy only what it keeps into its own queue). */
typedef void (*request_detect_observer)(void *ctx, const request_detection_seen *seen);

/* Registers the one detection observer (NULL fn: none).  Call before
 * server_start; serve never includes the observer's headers (cli wires it). */
void server_set_detect_observer(vigil_server *server, request_detect_observer fn, void *ctx);

/* 1 when a finished detection on m would be observed: an observer is set and
 * m's config.yaml enables escalation.  Front ends test this first so that a
 * model without escalation pays one branch. */
int request_detect_observed(const vigil_server *server, const served_model *m);

/* Hands a successful detection job (JSON answers only: a rendered image is
 * not observed) to the observer.  source and traceparent may be NULL. */
void request_detect_observe(vigil_server *server, const served_model *m, const sched_job *job, const char *source,
                            const char *traceparent);

/* The same for a detection that is not one job's answer: a video stream's
 * event (src/stream/), whose image is the event's JPEG snapshot and whose
 * json names the detections of the event ({"detections":[...]}). */
void request_detect_observe_image(vigil_server *server, const served_model *m, const void *image, size_t image_size,
                                  const char *json, size_t json_len, const char *source);

#endif
