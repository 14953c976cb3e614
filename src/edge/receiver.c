/*
 * receiver.c - the cloud's idempotent event receiver: POST /api/v1/events
 * (receiver.h, the wire format in event.h, docs/EDGE.md "Cloud receiver").
 *
 * The route is added to the server through serve's extension interface
 * (server_route_add): auth (scope "events"), body limits, request ids, the
 * access log and the metrics are the server's.  On the HTTP I/O thread the
 * handler only checks what needs no I/O - the Idempotency-Key, the
 * multipart parts, the event document and its id - and hashes the two
 * parts; the call is then deferred to one of a fixed set of worker threads,
 * because what follows blocks: the store (an fsync'd SQLite commit or a
 * PostgreSQL round trip), the cloud model's detection and the frame's
 * fsync.  A full queue answers 503 at once.
 *
 * A worker asks the store (idem_begin) and acts on its outcome:
 *   REPLAY    the stored first answer, its status, Idempotent-Replayed: true
 *   BUSY      409 (another worker holds the claim now), Retry-After: 1
 *   MISMATCH  422 (the key came with other content)
 *   NEW       detection on the frame with the cloud model, through the
 *             request layer like REST /api/v1/detect (the model's scheduler,
 *             batching and metrics; never the engine); the frame written to
 *             frames_dir/<id>.jpg (temp file, fsync, rename, fsync of the
 *             directory); the answer stored (idem_finish), then sent, 201.
 * A frame the model cannot decode is a final answer (400), stored like a
 * success so that every replay gets the same.  What may heal by itself -
 * the store unreachable, the model not loaded, the queue full, a timeout,
 * the frame not writable - abandons the claim and answers 503, so that the
 * edge retries.
 *
 * The body hash covers the two parts (the event document and the frame),
 * not the raw body: an edge that re-sends an event builds a new multipart
 * body each time, whose boundary (and part headers) may differ, and that is
 * still the same request.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "edge/clock.h"
#include "edge/edge_fs.h"
#include "edge/event.h"
#include "edge/receiver.h"
#include "serve/job_detect.h"
#include "serve/multipart.h"
#include "serve/request.h"
#include "serve/server.h"
#include "serve/textbuf.h"

#define RECEIVER_ROUTE "/api/v1/events"
#define RECEIVER_EXPIRE_EVERY_MS (60 * 1000)
#define ARENA_MIN_CAP (INT64_C(256) << 20)

/* How each request ended, for /metrics (vigil_edge_receiver_requests_total). */
typedef enum receiver_outcome {
    OUTCOME_CREATED = 0, /* 201: processed for the first time */
    OUTCOME_REPLAYED,    /* the stored answer again */
    OUTCOME_BUSY,        /* 409 */
    OUTCOME_MISMATCH,    /* 422 */
    OUTCOME_BAD_FRAME,   /* 400 stored: the model could not read the frame */
    OUTCOME_REFUSED,     /* 400/404 before any claim: no key, bad key, bad body */
    OUTCOME_UNAVAILABLE, /* 503: nothing recorded, the edge retries */
    RECEIVER_OUTCOMES
} receiver_outcome;

static const char *const outcome_names[RECEIVER_OUTCOMES] = {"created",   "replayed", "busy",       "mismatch",
                                                             "bad_frame", "refused",  "unavailable"};

/* One request waiting for or held by a worker.  The pointers are into the
 * call's body, which lives while the call is deferred. */
typedef struct receiver_job {
    server_call *call;
    char key[EDGE_EVENT_ID_LEN + 1];
    char hash[65];
    const char *event;
    size_t event_size;
    const char *frame;
    size_t frame_size;
} receiver_job;

struct receiver {
    vigil_server *server;
    idem_store *store;
    char frames_dir[1024];
    char tmp_tag[96]; /* <host>.<pid>: whose temp frames these are (frame_store, partial_sweep) */
    char model[128];

    pthread_mutex_t lock;
    pthread_cond_t wake;
    receiver_job *queue; /* ring of queue_max */
    size_t queue_max, head, count;
    int stopping;
    pthread_t *threads;
    size_t n_threads;
    int64_t next_expire_ms; /* guarded by lock */
    atomic_llong outcomes[RECEIVER_OUTCOMES];
    atomic_llong expired;
};

/* ------------------------------------------------------------ answers */

/* {"error": message} as a string the store can keep (vigil_malloc'd), or NULL. */
static char *error_body(const char *message) {
    json_t *obj = json_pack("{s:s}", "error", message);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    char *copy = text ? vigil_strdup(text) : NULL;
    free(text); /* jansson's */
    return copy;
}

/* Sends a stored or fresh answer (copying body). */
static void answer_text(server_call *call, int status, const char *body, int replayed) {
    char *copy = vigil_strdup(body);
    if (!copy) {
        server_call_error(call, VIGIL_ERR_UNAVAILABLE, "out of memory");
        return;
    }
    server_call_respond(call, status, "application/json", copy, strlen(copy));
    if (replayed) server_call_header_add(call, "Idempotent-Replayed", "true");
}

/* ------------------------------------------------------------ the cloud model */

/* A detection job's failure that the same frame would meet again: not an
 * image or a corrupt one (INVALID_ARGUMENT, as request_job_status reports
 * it), more pixels than limits.max_image_pixels (LIMIT), more memory than a
 * request may use (NO_MEMORY: the request's arena cap).  Only the job's own
 * status is judged so: everything before the job ran (the model, the
 * queue) is transient. */
static int frame_refused(vigil_status st) {
    return st == VIGIL_ERR_INVALID_ARGUMENT || st == VIGIL_ERR_LIMIT || st == VIGIL_ERR_NO_MEMORY;
}

/* Runs the cloud model on the frame through the request layer.  OUT:
 * *verdict, a JSON object {"model","version","detections"} owned by the
 * caller.  The status says what a failure means: frame_refused() for a
 * frame the model cannot take (final), anything else transient. */
static vigil_status receiver_detect(receiver *r, server_call *call, const char *frame, size_t size, json_t **verdict,
                                    vigil_error *err) {
    vigil_server *server = r->server;
    char name[128];
    const char *model = r->model;
    vigil_status st;
    vigil_error why = {0};
    if (!model[0]) {
        st = repository_default_detector(request_repository(server), name, sizeof name, &why);
        if (st) return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "no cloud model: %s", why.message);
        model = name;
    }
    server_call_set_model(call, model);
    served_model *m = NULL;
    st = request_acquire(server, model, 0, &m, &why);
    if (st) return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "cloud model %s: %s", model, why.message);
    if (m->task != MODEL_TASK_DETECT) {
        repository_release(request_repository(server), m);
        return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "cloud model %s is not a detection model", model);
    }
    const vigil_config *cfg = request_config(server);
    int64_t cap = cfg->max_body_bytes * 4;
    arena *a = arena_create(0, (size_t)(cap > ARENA_MIN_CAP ? cap : ARENA_MIN_CAP));
    sched_job *job = a ? arena_calloc(a, 1, sizeof *job) : NULL;
    job_detect *d = job ? job_detect_prepare(job, a) : NULL;
    if (!d) {
        arena_destroy(a);
        repository_release(request_repository(server), m);
        return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "out of memory");
    }
    static const request_detect_names names = {"conf", "iou", "max_det", "classes", "priority"};
    d->image = frame;
    d->image_size = size;
    d->image_name = "frame";
    st = request_detect_resolve(m, NULL, &names, a, job, err);
    if (st) st = vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "cannot prepare the detection");
    if (!st) {
        job->arena = a;
        job->deadline_ns = request_job_deadline(server, -1);
        server_call_trace_submit(call, job); /* the edge's span is the call's parent (its traceparent header) */
        st = request_submit_wait(server, m, job, err);
        if (!st) {
            server_call_trace_done(call, job, m->version);
            st = request_job_status(job);
            if (st && !frame_refused(st)) st = VIGIL_ERR_UNAVAILABLE; /* a timeout, a model unloaded meanwhile */
            if (st) vigil_error_set(err, st, "frame: %s", job->error.message);
        }
    }
    if (!st) {
        json_t *result = json_loadb(d->body, d->body_len, 0, NULL);
        json_t *detections = json_object_get(result, "detections");
        *verdict = detections ? json_pack("{s:s,s:I,s:O}", "model", m->name, "version", (json_int_t)m->version,
                                          "detections", detections)
                              : NULL;
        json_decref(result);
        if (!*verdict) st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "the detection's answer could not be read");
    }
    arena_destroy(a);
    repository_release(request_repository(server), m);
    return st;
}

/* ------------------------------------------------------------ the frame */

/* frames_dir/<id>.jpg, whole or not at all: written to a temp name,
 * fsync'd, renamed, and the directory fsync'd so the rename survives.  The
 * temp name, <id>.jpg.tmp.<host>.<pid>.<thread>, says whose it is, so that
 * a receiver killed mid-write has its leftovers removed at the next start
 * (partial_sweep) while a live replica's, on a shared volume, are left. */
static vigil_status frame_store(const receiver *r, const char *id, const char *frame, size_t size, vigil_error *err) {
    char path[1200], tmp[1400];
    snprintf(path, sizeof path, "%s/%s.jpg", r->frames_dir, id);
    snprintf(tmp, sizeof tmp, "%s.tmp.%s.%lx", path, r->tmp_tag, (unsigned long)pthread_self());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return vigil_error_set(err, VIGIL_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, frame + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    int saved = errno;
    int ok = done == size && fsync(fd) == 0;
    if (done == size && !ok) saved = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot write %s: %s", path, strerror(saved));
    }
    int dir = open(r->frames_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0 || fsync(dir) != 0) {
        saved = errno;
        if (dir >= 0) close(dir);
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot sync %s: %s", r->frames_dir, strerror(saved));
    }
    close(dir);
    return VIGIL_OK;
}

/* Whether the temp frame `name` was left by a writer that is gone: one on
 * this host whose process has ended, or that had our pid (a restarted
 * container is pid 1 again; we have written nothing yet). */
static int partial_is_orphan(const char *name, const char *host, long pid) {
    const char *mark = strstr(name, ".jpg.tmp.");
    if (!mark) return 0;
    const char *owner = mark + strlen(".jpg.tmp.");
    const char *thread_dot = strrchr(owner, '.');
    if (!thread_dot || thread_dot == owner) return 0;
    const char *pid_dot = thread_dot - 1;
    while (pid_dot > owner && *pid_dot != '.')
        pid_dot--;
    if (pid_dot == owner || (size_t)(pid_dot - owner) != strlen(host) || strncmp(owner, host, strlen(host)) != 0)
        return 0; /* another host's, or not one of ours */
    char *end = NULL;
    long writer = strtol(pid_dot + 1, &end, 10);
    if (end != thread_dot || writer <= 0) return 0;
    return writer == pid || (kill((pid_t)writer, 0) != 0 && errno == ESRCH);
}

/* Removes the temp frames that a receiver killed mid-write left behind;
 * their events were never answered, so the edge sends them again. */
static void partial_sweep(const receiver *r, const char *host) {
    DIR *dir = opendir(r->frames_dir);
    if (!dir) return;
    long pid = (long)getpid();
    int removed = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (!partial_is_orphan(e->d_name, host, pid)) continue;
        if (unlinkat(dirfd(dir), e->d_name, 0) == 0) removed++;
    }
    closedir(dir);
    if (removed) LOG_W("receiver: removed %d partly written frame(s) left in %s by a stopped receiver", removed, r->frames_dir);
}

/* ------------------------------------------------------------ the work */

/* A fresh claim: the model, the frame, the answer stored, then sent. */
static receiver_outcome receiver_new(receiver *r, const receiver_job *job) {
    server_call *call = job->call;
    vigil_error err = {0};
    json_t *verdict = NULL;
    vigil_status st = receiver_detect(r, call, job->frame, job->frame_size, &verdict, &err);
    int status;
    char *body = NULL;
    if (frame_refused(st)) { /* the frame itself is bad: final */
        status = request_http_status(st);
        body = error_body(err.message);
    } else if (st) {
        vigil_error ignored = {0};
        if (idem_abandon(r->store, job->key, &ignored)) LOG_W("receiver: %s: %s", job->key, ignored.message);
        LOG_W("receiver: %s: %s (the edge will retry)", job->key, err.message);
        server_call_error(call, VIGIL_ERR_UNAVAILABLE, err.message);
        return OUTCOME_UNAVAILABLE;
    } else {
        st = frame_store(r, job->key, job->frame, job->frame_size, &err);
        if (st) {
            json_decref(verdict);
            vigil_error ignored = {0};
            idem_abandon(r->store, job->key, &ignored);
            LOG_E("receiver: %s: %s", job->key, err.message);
            server_call_error(call, VIGIL_ERR_UNAVAILABLE, err.message);
            return OUTCOME_UNAVAILABLE;
        }
        status = 201;
        json_t *answer =
            json_pack("{s:s,s:o,s:I}", "id", job->key, "verdict", verdict, "received_ms", (json_int_t)edge_clock_now_ms(NULL));
        /* the flags /api/v1/detect answers with (job_detect.c): same numbers, same order */
        char *text = answer ? json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(answer);
        body = text ? vigil_strdup(text) : NULL;
        free(text);
    }
    if (!body) {
        vigil_error ignored = {0};
        idem_abandon(r->store, job->key, &ignored);
        server_call_error(call, VIGIL_ERR_UNAVAILABLE, "out of memory");
        return OUTCOME_UNAVAILABLE;
    }
    receiver_outcome outcome = status == 201 ? OUTCOME_CREATED : OUTCOME_BAD_FRAME;
    st = idem_finish(r->store, job->key, status, body, &err);
    if (st == VIGIL_ERR_EXISTS) {
        /* Another worker took this claim over and answered first: that
         * answer is the one every client gets. */
        idem_outcome again;
        int stored_status = 0;
        char *stored = NULL;
        st = idem_begin(r->store, job->key, job->hash, &again, &stored_status, &stored, &err);
        outcome = !st && again == IDEM_REPLAY ? OUTCOME_REPLAYED : OUTCOME_UNAVAILABLE;
        if (outcome == OUTCOME_REPLAYED)
            answer_text(call, stored_status, stored, 1);
        else
            server_call_error(call, VIGIL_ERR_UNAVAILABLE, st ? err.message : "the event is being answered");
        vigil_free(stored);
    } else if (st) {
        vigil_error ignored = {0};
        idem_abandon(r->store, job->key, &ignored);
        LOG_W("receiver: %s: %s (the edge will retry)", job->key, err.message);
        server_call_error(call, VIGIL_ERR_UNAVAILABLE, err.message);
        outcome = OUTCOME_UNAVAILABLE;
    } else {
        answer_text(call, status, body, 0);
    }
    vigil_free(body);
    return outcome;
}

static receiver_outcome receiver_process(receiver *r, const receiver_job *job) {
    server_call *call = job->call;
    vigil_error err = {0};
    idem_outcome outcome;
    int status = 0;
    char *body = NULL;
    vigil_status st = idem_begin(r->store, job->key, job->hash, &outcome, &status, &body, &err);
    if (st) {
        LOG_W("receiver: %s: %s", job->key, err.message);
        server_call_error(call, VIGIL_ERR_UNAVAILABLE, err.message);
        return OUTCOME_UNAVAILABLE;
    }
    receiver_outcome result = OUTCOME_UNAVAILABLE;
    switch (outcome) {
    case IDEM_REPLAY:
        answer_text(call, status, body, 1);
        result = OUTCOME_REPLAYED;
        break;
    case IDEM_BUSY:
        server_call_error_code(call, 409, "this Idempotency-Key is being processed now; retry later");
        server_call_header_add(call, "Retry-After", "1");
        result = OUTCOME_BUSY;
        break;
    case IDEM_MISMATCH:
        server_call_error_code(call, 422, "this Idempotency-Key was used with a different event or frame");
        result = OUTCOME_MISMATCH;
        break;
    case IDEM_NEW: result = receiver_new(r, job); break;
    }
    vigil_free(body);
    return result;
}

/* GET /metrics: requests by outcome, the queue, expiries (server_metrics_add). */
static void receiver_metrics(void *ctx, textbuf *out) {
    receiver *r = ctx;
    textbuf_printf(out, "# HELP vigil_edge_receiver_requests_total POST /api/v1/events by outcome (docs/EDGE.md).\n"
                        "# TYPE vigil_edge_receiver_requests_total counter\n");
    for (int i = 0; i < RECEIVER_OUTCOMES; i++)
        textbuf_printf(out, "vigil_edge_receiver_requests_total{outcome=\"%s\"} %lld\n", outcome_names[i],
                       (long long)atomic_load(&r->outcomes[i]));
    pthread_mutex_lock(&r->lock);
    size_t waiting = r->count;
    pthread_mutex_unlock(&r->lock);
    textbuf_printf(out,
                   "# HELP vigil_edge_receiver_queue_length Events waiting for a receiver worker.\n"
                   "# TYPE vigil_edge_receiver_queue_length gauge\n"
                   "vigil_edge_receiver_queue_length %zu\n"
                   "# HELP vigil_edge_receiver_expired_keys_total Idempotency keys removed after the retention.\n"
                   "# TYPE vigil_edge_receiver_expired_keys_total counter\n"
                   "vigil_edge_receiver_expired_keys_total %lld\n",
                   waiting, (long long)atomic_load(&r->expired));
}

static void receiver_expire_due(receiver *r) {
    int64_t now = edge_clock_now_ms(NULL);
    pthread_mutex_lock(&r->lock);
    int due = now >= r->next_expire_ms;
    if (due) r->next_expire_ms = now + RECEIVER_EXPIRE_EVERY_MS;
    pthread_mutex_unlock(&r->lock);
    if (!due) return;
    vigil_error err = {0};
    int64_t n = idem_expire(r->store, &err);
    if (n < 0)
        LOG_W("receiver: expiry: %s", err.message);
    else if (n > 0) {
        atomic_fetch_add(&r->expired, n);
        LOG_I("receiver: %lld keys past their retention removed", (long long)n);
    }
}

static void *receiver_worker(void *arg) {
    receiver *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (!r->count && !r->stopping)
            pthread_cond_wait(&r->wake, &r->lock);
        if (!r->count) { /* stopping and nothing left */
            pthread_mutex_unlock(&r->lock);
            return NULL;
        }
        receiver_job job = r->queue[r->head];
        r->head = (r->head + 1) % r->queue_max;
        r->count--;
        int stopping = r->stopping;
        pthread_mutex_unlock(&r->lock);
        receiver_outcome outcome = OUTCOME_UNAVAILABLE;
        if (stopping)
            server_call_error(job.call, VIGIL_ERR_UNAVAILABLE, "the receiver is shutting down");
        else
            outcome = receiver_process(r, &job);
        atomic_fetch_add(&r->outcomes[outcome], 1);
        server_call_resume(job.call);
        if (!stopping) receiver_expire_due(r);
    }
}

/* ------------------------------------------------------------ the route */

/* SHA-256 over the two parts, each preceded by its name (NUL-terminated)
 * and its length (8 bytes, little-endian), so that no two different
 * (event, frame) pairs feed the same bytes: docs/EDGE.md spells it out for
 * anyone checking a stored hash. */
static int parts_sha256(const char *event, size_t event_size, const char *frame, size_t frame_size, char hex[65]) {
    unsigned char sizes[2][8];
    for (int i = 0; i < 8; i++) {
        sizes[0][i] = (unsigned char)((uint64_t)event_size >> (8 * i));
        sizes[1][i] = (unsigned char)((uint64_t)frame_size >> (8 * i));
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, "event", 6) == 1 &&
             EVP_DigestUpdate(ctx, sizes[0], 8) == 1 && EVP_DigestUpdate(ctx, event, event_size) == 1 &&
             EVP_DigestUpdate(ctx, "frame", 6) == 1 && EVP_DigestUpdate(ctx, sizes[1], 8) == 1 &&
             EVP_DigestUpdate(ctx, frame, frame_size) == 1 && EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) return 0;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
    return 1;
}

/* Checks the event document: an object whose "id" is the key. */
static int event_valid(server_call *call, const char *key, const char *event, size_t size) {
    json_error_t jerr;
    json_t *doc = json_loadb(event, size, 0, &jerr);
    char message[300];
    int ok = 0;
    if (!json_is_object(doc)) {
        snprintf(message, sizeof message, "the \"event\" part is not a JSON object%s%.200s", doc ? "" : ": ",
                 doc ? "" : jerr.text);
    } else if (!json_is_string(json_object_get(doc, "id")) ||
               strcmp(json_string_value(json_object_get(doc, "id")), key) != 0) {
        snprintf(message, sizeof message, "the event's \"id\" must equal the Idempotency-Key");
    } else {
        ok = 1;
    }
    json_decref(doc);
    if (!ok) server_call_error_code(call, 400, message);
    return ok;
}

/* The checks that need no I/O; 0 with the refusal set, or 1 with job filled. */
static int receiver_check(server_call *call, receiver_job *job) {
    if (server_call_path(call)[0] && strcmp(server_call_path(call), "/") != 0) {
        server_call_error_code(call, 404, "POST /api/v1/events takes no path below it");
        return 0;
    }
    static const char *const no_parameters[] = {NULL};
    const char *unknown = server_call_query_unknown(call, no_parameters);
    if (unknown) {
        char message[128];
        snprintf(message, sizeof message, "unknown query parameter '%.64s': POST /api/v1/events takes none", unknown);
        server_call_error_code(call, 400, message);
        return 0;
    }
    const char *key = server_call_header(call, "Idempotency-Key");
    if (!key) {
        server_call_error_code(call, 400, "Idempotency-Key header required: the event id");
        return 0;
    }
    if (!edge_uuid_valid(key)) {
        server_call_error_code(call, 400, "Idempotency-Key must be the event id, a lower-case canonical UUID");
        return 0;
    }
    const char *ctype = server_call_header(call, "Content-Type");
    size_t len;
    const char *body = server_call_body(call, &len);
    if (!ctype || strncasecmp(ctype, "multipart/form-data", 19) != 0 || !body) {
        server_call_error_code(call, 400, "the body must be multipart/form-data with parts \"event\" and \"frame\"");
        return 0;
    }
    const char *event, *frame;
    size_t event_size, frame_size;
    vigil_error err = {0};
    if (multipart_find(ctype, body, len, "event", &event, &event_size, &err) ||
        multipart_find(ctype, body, len, "frame", &frame, &frame_size, &err)) {
        char message[300];
        snprintf(message, sizeof message, "%.200s (parts \"event\" and \"frame\" are required)", err.message);
        server_call_error_code(call, 400, message);
        return 0;
    }
    if (frame_size == 0) {
        server_call_error_code(call, 400, "the \"frame\" part is empty");
        return 0;
    }
    if (!event_valid(call, key, event, event_size)) return 0;
    *job = (receiver_job){
        .call = call, .event = event, .event_size = event_size, .frame = frame, .frame_size = frame_size};
    snprintf(job->key, sizeof job->key, "%s", key);
    return 1;
}

static void receiver_route(void *ctx, server_call *call) {
    receiver *r = ctx;
    receiver_job job;
    if (!receiver_check(call, &job)) {
        atomic_fetch_add(&r->outcomes[OUTCOME_REFUSED], 1);
        return;
    }
    if (!parts_sha256(job.event, job.event_size, job.frame, job.frame_size, job.hash)) {
        atomic_fetch_add(&r->outcomes[OUTCOME_UNAVAILABLE], 1);
        server_call_error(call, VIGIL_ERR_UNAVAILABLE, "cannot hash the request");
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (r->stopping || r->count == r->queue_max) {
        pthread_mutex_unlock(&r->lock);
        atomic_fetch_add(&r->outcomes[OUTCOME_UNAVAILABLE], 1);
        server_call_error(call, VIGIL_ERR_UNAVAILABLE,
                          r->stopping ? "the receiver is shutting down" : "the receiver's queue is full");
        return;
    }
    server_call_defer(call); /* before a worker can see it */
    r->queue[(r->head + r->count) % r->queue_max] = job;
    r->count++;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------ lifecycle */

vigil_status receiver_create(vigil_server *server, const receiver_config *cfg, receiver **out, vigil_error *err) {
    *out = NULL;
    if (!cfg->frames_dir || !cfg->frames_dir[0])
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "receiver: no frames directory");
    if (strlen(cfg->frames_dir) >= sizeof((receiver *)0)->frames_dir)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "receiver: frames directory path too long");
    vigil_status st = edge_mkdirs(cfg->frames_dir, err);
    if (st) return st;
    receiver *r = vigil_calloc(1, sizeof *r);
    if (!r) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "receiver: out of memory");
    r->server = server;
    snprintf(r->frames_dir, sizeof r->frames_dir, "%s", cfg->frames_dir);
    char host[64] = "localhost";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(r->tmp_tag, sizeof r->tmp_tag, "%s.%ld", host, (long)getpid());
    partial_sweep(r, host);
    snprintf(r->model, sizeof r->model, "%s", cfg->model ? cfg->model : "");
    r->queue_max = cfg->queue_max > 0 ? (size_t)cfg->queue_max : 64;
    size_t workers = cfg->workers > 0 ? (size_t)cfg->workers : 4;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    r->queue = vigil_calloc(r->queue_max, sizeof *r->queue);
    r->threads = vigil_calloc(workers, sizeof *r->threads);
    if (!r->queue || !r->threads) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "receiver: out of memory");
    double claim_timeout = cfg->claim_timeout_s > 0 ? cfg->claim_timeout_s : 120;
    if (!st) st = idem_open(cfg->store_url, cfg->retention_s, claim_timeout, &r->store, err);
    if (!st) st = server_route_add(server, "POST", RECEIVER_ROUTE, receiver_route, r, err);
    if (!st) st = server_metrics_add(server, receiver_metrics, r, err);
    for (size_t i = 0; !st && i < workers; i++) {
        if (pthread_create(&r->threads[i], NULL, receiver_worker, r) != 0)
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "receiver: cannot start a worker thread");
        else
            r->n_threads++;
    }
    if (st) {
        receiver_destroy(r);
        return st;
    }
    LOG_I("receiver: POST %s, store %s, frames in %s, model %s, %zu workers", RECEIVER_ROUTE,
          strncmp(cfg->store_url, "sqlite:", 7) == 0 ? cfg->store_url : "postgresql", r->frames_dir,
          r->model[0] ? r->model : "(the default detection model)", workers);
    *out = r;
    return VIGIL_OK;
}

void receiver_destroy(receiver *r) {
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < r->n_threads; i++)
        pthread_join(r->threads[i], NULL);
    idem_close(r->store);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    vigil_free(r->queue);
    vigil_free(r->threads);
    vigil_free(r);
}
