/*
 * runtime.c - the server's video streams: each stream's frames through the
 * request layer, the tracker, snapshots and events (runtime.h).
 *
 * Threads and ownership.  A stream has the two threads of its
 * stream_source: the decode thread (source.c's own) and the delivery
 * thread, which runs stream_on_frame for each picked frame.  Everything
 * the processing of a frame needs alone - the tracker, the table of best
 * snapshots per track - belongs to the delivery thread and has no lock.
 * What readers see (the results ring, the counters, the latest annotated
 * frame, the last event) sits behind the stream's lock, held only to copy
 * in or out.  A stream is reference-counted: the set holds one, and each
 * REST call that found it one more, so that a DELETE never frees a stream
 * a reader still holds; the source is stopped (both threads joined) by
 * whoever removes it, before the last reference goes.
 *
 * The events of all streams share one bounded ring in the set (oldest
 * dropped first); each event holds a reference on its track's best
 * snapshot, a JPEG encoded once, when the track's best changed, from the
 * frame with the box drawn.  `updated` events are throttled to those
 * frames: an `updated` says "the best snapshot changed", so one object
 * gives a handful of events, not one per frame.
 *
 * Detection equals `vigil detect` on the same pixels: the frame goes in at
 * the source's size as raw RGB24 and is letterboxed by the model's worker
 * (job_detect.raw), exactly as a decoded PNG of the frame would be; the
 * results are the detection job's own JSON answer, so the numbers are the
 * same to the digit.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "serve/job_detect.h"
#include "serve/request.h"
#include "serve/textbuf.h"
#include "stream/source.h"
#include "stream/stream_internal.h"
#include "vision/track.h"
#include "vigil/vision.h"

#define RESULTS_KEPT 64        /* frames GET .../detections can return */
#define LATENCY_KEPT 256       /* latencies behind p50 / p99 */
#define DETECT_TIMES_KEPT 32   /* detection times behind detect_fps */
#define JOB_ARENA_CAP (INT64_C(64) << 20)
#define JPEG_QUALITY 80
#define STREAM_PRIORITY (-10)  /* below an interactive request (0) */

static const double latency_bounds_s[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define LATENCY_BUCKETS (sizeof latency_bounds_s / sizeof latency_bounds_s[0])

typedef struct frame_record {
    uint64_t frame;
    char *json; /* {"frame":..,"pts_ms":..,"detections":[...]} */
} frame_record;

/* A track's path: the boxes of its matched frames, at most PATH_MAX of
 * them.  When full, every other point goes and only every second match is
 * kept from then on (the stride doubles), so the path spans the track's
 * whole life at a coarser step rather than only its end. */
#define PATH_MAX_POINTS 32
typedef struct path_point {
    uint64_t frame;
    track_box box;
} path_point;

/* What the delivery thread keeps per entered track. */
typedef struct track_snapshot {
    uint64_t track_id;
    path_point path[PATH_MAX_POINTS];
    size_t n_path;
    uint64_t path_stride, path_seen; /* a point is kept for every path_stride-th match */
    stream_blob *jpeg;                     /* its best snapshot, NULL before one was encoded */
    char class_name[STREAM_CLASS_NAME_MAX]; /* for its LEFT event, which has no detection */
} track_snapshot;

struct stream {
    stream_set *set;
    atomic_int refs;
    atomic_int stopping;
    stream_spec spec;
    stream_source *src; /* NULL while disabled and once stopped; guarded by src_lock for readers */
    pthread_rwlock_t src_lock; /* readers (stats, metrics) hold it shared; stream_stop takes it to clear src */

    /* The delivery thread's own. */
    tracker *trk;
    track_snapshot *snaps;
    size_t n_snaps;
    vigil_image scratch; /* a frame copy a snapshot is drawn on */

    stream_viewers viewers; /* live.c's */
    pthread_mutex_t lock; /* guards everything below */
    frame_record results[RESULTS_KEPT];
    size_t results_head, results_count;
    uint64_t frames_detected, detect_failures;
    double inference_ms_total;
    double latency_ms[LATENCY_KEPT];
    size_t latency_n, latency_head;
    uint64_t latency_buckets[LATENCY_BUCKETS];
    double latency_sum_s;
    int64_t detect_times[DETECT_TIMES_KEPT];
    size_t detect_times_n, detect_times_head;
    char error[256];
    int width, height;
    size_t tracks;
    char *last_event;
    vigil_image latest; /* the newest processed frame, boxes drawn */
    int has_latest;
    uint64_t latest_frame;
    stream_blob *latest_jpeg; /* encoded from latest, or NULL when stale */
};

typedef struct event_record {
    uint64_t seq;
    char id[48];
    char stream[STREAM_NAME_MAX];
    char *json;
    stream_blob *snapshot;
} event_record;

struct stream_set {
    vigil_server *server;
    int edge_events;
    stream_event_fn sink;
    void *sink_ctx;
    char boot[20]; /* start time in hex ms: event ids stay unique across restarts */

    pthread_mutex_t lock; /* the list */
    int stopping;         /* stream_set_stop ran: nothing is added any more */
    stream *streams[STREAM_SET_MAX];
    size_t n;

    pthread_mutex_t events_lock;
    event_record *events;
    size_t events_cap, events_head, events_count;
    uint64_t next_seq;
};

/* ------------------------------------------------------------ blobs */

static stream_blob *blob_new(const void *data, size_t len) {
    stream_blob *b = vigil_malloc(sizeof *b + len);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, data, len);
    return b;
}

static stream_blob *blob_ref(stream_blob *b) {
    if (b) atomic_fetch_add(&b->refs, 1);
    return b;
}

void stream_blob_unref(stream_blob *b) {
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) vigil_free(b);
}

static stream_blob *jpeg_blob(const vigil_image *image) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    vigil_error err = {0};
    if (vigil_image_encode(image, VIGIL_IMAGE_JPEG, JPEG_QUALITY, &bytes, &size, &err)) return NULL;
    stream_blob *b = blob_new(bytes, size);
    vigil_free(bytes);
    return b;
}

/* ------------------------------------------------------------ detection */

/* The frame through the stream's model.  OUT: *detections (the job's
 * "detections" array, the caller's reference), *inference_ms. */
static vigil_status stream_detect(stream *s, served_model *m, const stream_frame *f, json_t **detections,
                                  double *inference_ms, vigil_error *err) {
    vigil_server *server = s->set->server;
    if (m->task != MODEL_TASK_DETECT)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model %s is not a detection model", s->spec.model);
    arena *a = arena_create(0, (size_t)JOB_ARENA_CAP);
    sched_job *job = a ? arena_calloc(a, 1, sizeof *job) : NULL;
    if (!job) {
        arena_destroy(a);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    vigil_status st;
    const char *classes[STREAM_CLASSES_MAX];
    for (size_t i = 0; i < s->spec.n_classes; i++)
        classes[i] = s->spec.classes[i];
    request_detect_options o = {.has_priority = 1, .priority = STREAM_PRIORITY};
    if (s->spec.conf_threshold >= 0) {
        o.has_conf = 1;
        o.conf = s->spec.conf_threshold;
    }
    o.classes = s->spec.n_classes ? classes : NULL;
    o.n_classes = s->spec.n_classes;
    static const request_detect_names names = {"conf_threshold", "iou", "max_det", "classes", "priority"};
    st = request_detect_resolve(m, &o, &names, a, job, err);
    if (!st) {
        job_detect *d = job_detect_of(job);
        d->image = f->rgb; /* no copy: the source keeps the buffer until this callback returns */
        d->image_size = (size_t)f->stride * (size_t)f->height;
        d->raw = (detect_raw){.format = VIGIL_PIXEL_RGB24, .width = f->width, .height = f->height, .stride = f->stride};
        d->image_name = s->spec.name;
        job->arena = a;
        job->deadline_ns = request_job_deadline(server, -1);
        st = request_submit_wait(server, m, job, err);
    }
    if (!st) {
        st = request_job_status(job);
        if (st) vigil_error_set(err, st, "detection: %s", job->error.message);
    }
    if (!st) {
        *inference_ms = job->run_end_ns > job->run_start_ns ? (double)(job->run_end_ns - job->run_start_ns) / 1e6 : 0;
        job_detect *d = job_detect_of(job);
        json_t *answer = json_loadb(d->body, d->body_len, 0, NULL);
        *detections = json_incref(json_object_get(answer, "detections"));
        json_decref(answer);
        if (!json_is_array(*detections)) {
            json_decref(*detections);
            *detections = NULL;
            st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "the detection's answer could not be read");
        }
    }
    arena_destroy(a);
    return st;
}

/* ------------------------------------------------------------ drawing */

/* A detection as vigil_render_detections draws it, labelled with its class
 * and track id ("person #3"); label is the caller's buffer. */
static vigil_detection drawn(const json_t *det, json_int_t track_id, char *label, size_t size) {
    const json_t *box = json_object_get(det, "box");
    const char *name = json_string_value(json_object_get(det, "class_name"));
    int class_id = (int)json_integer_value(json_object_get(det, "class_id"));
    if (track_id > 0) {
        if (name) snprintf(label, size, "%s #%lld", name, (long long)track_id);
        else snprintf(label, size, "%d #%lld", class_id, (long long)track_id);
    } else {
        snprintf(label, size, "%s", name ? name : "");
    }
    return (vigil_detection){.x1 = (float)json_number_value(json_array_get(box, 0)),
                             .y1 = (float)json_number_value(json_array_get(box, 1)),
                             .x2 = (float)json_number_value(json_array_get(box, 2)),
                             .y2 = (float)json_number_value(json_array_get(box, 3)),
                             .score = (float)json_number_value(json_object_get(det, "score")),
                             .class_id = class_id,
                             .class_name = label[0] ? label : NULL};
}

/* Copies the frame into *image (allocated to its size on first use or when
 * the size changes).  0 when out of memory. */
static int frame_copy(const stream_frame *f, vigil_image *image) {
    if (image->data && (image->width != f->width || image->height != f->height)) vigil_image_free(image);
    vigil_error err = {0};
    if (!image->data && vigil_image_alloc(f->width, f->height, image, &err)) return 0;
    for (int y = 0; y < f->height; y++)
        memcpy(image->data + (size_t)y * (size_t)image->stride, f->rgb + (size_t)y * (size_t)f->stride,
               (size_t)f->width * 3);
    return 1;
}

/* ------------------------------------------------------------ events */

static json_t *box_json(const track_box *b) {
    return json_pack("[f,f,f,f]", round((double)b->x1 * 100) / 100, round((double)b->y1 * 100) / 100,
                     round((double)b->x2 * 100) / 100, round((double)b->y2 * 100) / 100);
}

static const char *const event_types[] = {"entered", "updated", "left"};

/* Puts an event into the set's ring (dropping the oldest when full) and
 * hands it to the sink. */
static void event_emit(stream *s, const track_event *ev, const char *class_name, stream_blob *snapshot,
                       const track_snapshot *slot) {
    stream_set *set = s->set;
    char when[CLOCK_RFC3339_SIZE];
    clock_utc_rfc3339(when, sizeof when);
    pthread_mutex_lock(&set->events_lock);
    uint64_t seq = ++set->next_seq;
    pthread_mutex_unlock(&set->events_lock);
    char id[48], path[160];
    snprintf(id, sizeof id, "%s-%llu", set->boot, (unsigned long long)seq);
    if (set->edge_events)
        snprintf(path, sizeof path, "/api/v1/streams/%s/events/%s/snapshot.jpg", s->spec.name, id);
    else
        snprintf(path, sizeof path, "/api/v1/events/%s/snapshot.jpg", id);
    json_t *e = json_pack("{s:s,s:I,s:s,s:s,s:s,s:I,s:I,s:i,s:s?,s:f,s:o,s:{s:I,s:f,s:o},s:o,s:o}", "id", id, "seq",
                          (json_int_t)seq, "stream", s->spec.name, "type", event_types[ev->kind], "time", when,
                          "frame", (json_int_t)ev->last_frame, "track_id", (json_int_t)ev->track_id, "class_id",
                          ev->class_id, "class_name", class_name, "score", round((double)ev->score * 1e5) / 1e5, "box",
                          box_json(&ev->box), "best", "frame", (json_int_t)ev->best_frame, "score",
                          round((double)ev->best_score * 1e5) / 1e5, "box", box_json(&ev->best_box), "snapshot",
                          snapshot ? json_string(path) : json_null(), "reason",
                          ev->kind != TRACK_LEFT ? json_null()
                                                 : json_string(ev->reason == TRACK_LEFT_ZONE ? "zone" : "lost"));
    json_t *points = e ? json_array() : NULL; /* the track's path: [frame, x1, y1, x2, y2] each */
    for (size_t i = 0; points && slot && i < slot->n_path; i++) {
        json_t *point = box_json(&slot->path[i].box);
        if (point) json_array_insert_new(point, 0, json_integer((json_int_t)slot->path[i].frame));
        json_array_append_new(points, point);
    }
    if (e && points) json_object_set_new(e, "path", points);
    char *text = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(e);
    char *copy = text ? vigil_strdup(text) : NULL;
    free(text); /* jansson's */
    char *last = copy ? vigil_strdup(copy) : NULL;
    if (!copy || !last) {
        vigil_free(copy);
        vigil_free(last);
        return;
    }
    pthread_mutex_lock(&set->events_lock);
    if (set->events_count == set->events_cap) { /* full: the oldest goes */
        event_record *old = &set->events[set->events_head];
        vigil_free(old->json);
        stream_blob_unref(old->snapshot);
        set->events_head = (set->events_head + 1) % set->events_cap;
        set->events_count--;
    }
    event_record *r = &set->events[(set->events_head + set->events_count) % set->events_cap];
    *r = (event_record){.seq = seq, .json = copy, .snapshot = blob_ref(snapshot)};
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->stream, sizeof r->stream, "%s", s->spec.name);
    set->events_count++;
    pthread_mutex_unlock(&set->events_lock);
    pthread_mutex_lock(&s->lock);
    vigil_free(s->last_event);
    s->last_event = last;
    pthread_mutex_unlock(&s->lock);
    if (set->sink) {
        stream_event_out out = {.stream = s->spec.name,
                                .type = event_types[ev->kind],
                                .json = last,
                                .json_len = strlen(last),
                                .jpeg = snapshot ? snapshot->data : NULL,
                                .jpeg_len = snapshot ? snapshot->len : 0};
        set->sink(set->sink_ctx, &out);
    }
}

static track_snapshot *snapshot_slot(stream *s, uint64_t track_id, int create) {
    for (size_t i = 0; i < s->n_snaps; i++)
        if (s->snaps[i].track_id == track_id) return &s->snaps[i];
    if (!create || s->n_snaps == TRACK_MAX_TRACKS) return NULL;
    s->snaps[s->n_snaps] = (track_snapshot){.track_id = track_id};
    return &s->snaps[s->n_snaps++];
}

static void path_add(track_snapshot *slot, uint64_t frame, const track_box *box) {
    if (!slot->path_stride) slot->path_stride = 1;
    if (slot->path_seen++ % slot->path_stride) return;
    if (slot->n_path == PATH_MAX_POINTS) {
        for (size_t i = 0; i < PATH_MAX_POINTS / 2; i++) slot->path[i] = slot->path[2 * i];
        slot->n_path = PATH_MAX_POINTS / 2;
        slot->path_stride *= 2;
    }
    slot->path[slot->n_path++] = (path_point){frame, *box};
}

static void snapshot_forget(stream *s, uint64_t track_id) {
    for (size_t i = 0; i < s->n_snaps; i++) {
        if (s->snaps[i].track_id != track_id) continue;
        stream_blob_unref(s->snaps[i].jpeg);
        s->snaps[i] = s->snaps[--s->n_snaps];
        return;
    }
}

/* A new best snapshot of ev's track: the frame with its box drawn. */
static void snapshot_take(stream *s, const stream_frame *f, const track_event *ev, const json_t *det,
                          track_snapshot *slot) {
    if (!slot || !frame_copy(f, &s->scratch)) return;
    char label[96];
    vigil_detection d = drawn(det, (json_int_t)ev->track_id, label, sizeof label);
    vigil_render_detections(&s->scratch, &d, 1);
    stream_blob *jpeg = jpeg_blob(&s->scratch);
    if (!jpeg) return;
    stream_blob_unref(slot->jpeg);
    slot->jpeg = jpeg;
}

/* ------------------------------------------------------------ escalation */

/* An object that entered goes to the detection observer (the edge's
 * escalation policy under edge.role edge, docs/EDGE.md) as one detection
 * of its model on its snapshot, with the stream's name as the source: the
 * model's config.yaml decides (classes, score band, sampling) and its rate
 * limit applies per stream, as for any client's detection. */
static void stream_escalate(stream *s, const served_model *m, const stream_frame *f, const json_t *det,
                            const stream_blob *jpeg) {
    vigil_server *server = s->set->server;
    if (!request_detect_observed(server, m)) return;
    json_t *doc = json_pack("{s:s,s:i,s:i,s:[O]}", "image", s->spec.name, "width", f->source_width, "height",
                            f->source_height, "detections", det);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(doc);
    if (text) request_detect_observe_image(server, m, jpeg->data, jpeg->len, text, strlen(text), s->spec.name);
    free(text); /* jansson's */
}

/* ------------------------------------------------------------ a frame */

static void stream_fail_frame(stream *s, const char *message) {
    pthread_mutex_lock(&s->lock);
    s->detect_failures++;
    snprintf(s->error, sizeof s->error, "%.255s", message);
    pthread_mutex_unlock(&s->lock);
}

/* The frame's record: {"frame","pts_ms","detections"} with track ids. */
static char *record_text(const stream_frame *f, json_t *dets) {
    json_t *rec = json_pack("{s:I,s:o,s:O}", "frame", (json_int_t)f->index, "pts_ms",
                            f->pts_us >= 0 ? json_integer(f->pts_us / 1000) : json_null(), "detections", dets);
    char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(rec);
    char *copy = text ? vigil_strdup(text) : NULL;
    free(text);
    return copy;
}

/* What readers see of a processed frame: its record, the counters, the
 * annotated frame. */
static void stream_publish(stream *s, const stream_frame *f, json_t *dets, double inference_ms, size_t tracks) {
    char *rec = record_text(f, dets);
    int64_t now = sched_now_ns();
    double latency_s = f->decoded_ns > 0 ? (double)(now - f->decoded_ns) / 1e9 : 0;
    pthread_mutex_lock(&s->lock);
    if (rec) {
        if (s->results_count == RESULTS_KEPT) {
            vigil_free(s->results[s->results_head].json);
            s->results_head = (s->results_head + 1) % RESULTS_KEPT;
            s->results_count--;
        }
        s->results[(s->results_head + s->results_count++) % RESULTS_KEPT] =
            (frame_record){.frame = f->index, .json = rec};
    }
    s->frames_detected++;
    s->inference_ms_total += inference_ms;
    s->latency_ms[s->latency_head] = latency_s * 1000;
    s->latency_head = (s->latency_head + 1) % LATENCY_KEPT;
    if (s->latency_n < LATENCY_KEPT) s->latency_n++;
    for (size_t b = 0; b < LATENCY_BUCKETS; b++)
        if (latency_s <= latency_bounds_s[b]) s->latency_buckets[b]++;
    s->latency_sum_s += latency_s;
    s->detect_times[s->detect_times_head] = now;
    s->detect_times_head = (s->detect_times_head + 1) % DETECT_TIMES_KEPT;
    if (s->detect_times_n < DETECT_TIMES_KEPT) s->detect_times_n++;
    s->error[0] = '\0';
    s->width = f->source_width;
    s->height = f->source_height;
    s->tracks = tracks;
    if (frame_copy(f, &s->latest)) {
        size_t n = json_array_size(dets);
        for (size_t i = 0; i < n; i++) {
            const json_t *det = json_array_get(dets, i);
            char label[96];
            vigil_detection d = drawn(det, json_integer_value(json_object_get(det, "track_id")), label, sizeof label);
            vigil_render_detections(&s->latest, &d, 1);
        }
        s->has_latest = 1;
        s->latest_frame = f->index;
        stream_blob_unref(s->latest_jpeg);
        s->latest_jpeg = NULL; /* encoded when someone asks */
    }
    pthread_mutex_unlock(&s->lock);
    stream_live_wake(s);
}

static void stream_track_frame(stream *s, served_model *m, const stream_frame *f);

static void stream_on_frame(void *user, const stream_frame *f) {
    stream *s = user;
    if (atomic_load(&s->stopping)) return;
    vigil_server *server = s->set->server;
    served_model *m = NULL;
    vigil_error why = {0};
    /* A model that is loading (the config file's streams start with the
     * server), reloading or unloaded is waited for: the frame is held, so a
     * camera's newer frames replace it and a file waits. */
    while (request_acquire(server, s->spec.model, 0, &m, &why)) {
        char message[400];
        snprintf(message, sizeof message, "waiting for model %.127s: %.200s", s->spec.model, why.message);
        pthread_mutex_lock(&s->lock);
        snprintf(s->error, sizeof s->error, "%.255s", message);
        pthread_mutex_unlock(&s->lock);
        for (int i = 0; i < 5; i++) {
            if (atomic_load(&s->stopping)) return;
            nanosleep(&(struct timespec){0, 40 * 1000000}, NULL);
        }
    }
    stream_track_frame(s, m, f);
    repository_release(request_repository(server), m);
}

/* One picked frame with the stream's model m (held): detect, track,
 * snapshots, events, publish. */
static void stream_track_frame(stream *s, served_model *m, const stream_frame *f) {
    json_t *dets = NULL;
    double inference_ms = 0;
    vigil_error err = {0};
    if (stream_detect(s, m, f, &dets, &inference_ms, &err)) {
        stream_fail_frame(s, err.message);
        return;
    }
    size_t n = json_array_size(dets);
    track_detection *td = n ? vigil_calloc(n, sizeof *td) : NULL;
    if (n && !td) {
        json_decref(dets);
        stream_fail_frame(s, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *det = json_array_get(dets, i), *box = json_object_get(det, "box");
        td[i] = (track_detection){.box = {(float)json_number_value(json_array_get(box, 0)),
                                          (float)json_number_value(json_array_get(box, 1)),
                                          (float)json_number_value(json_array_get(box, 2)),
                                          (float)json_number_value(json_array_get(box, 3))},
                                  .score = (float)json_number_value(json_object_get(det, "score")),
                                  .class_id = (int)json_integer_value(json_object_get(det, "class_id"))};
        json_object_set_new(json_array_get(dets, i), "track_id", json_null());
    }
    const track_event *events = NULL;
    size_t n_events = 0;
    vigil_status st = track_update(s->trk, f->index, td, n, &events, &n_events, &err);
    vigil_free(td);
    if (st) {
        json_decref(dets);
        stream_fail_frame(s, err.message);
        return;
    }
    for (size_t i = 0; i < n_events; i++)
        if (events[i].detection >= 0 && (size_t)events[i].detection < n)
            json_object_set_new(json_array_get(dets, (size_t)events[i].detection), "track_id",
                                json_integer((json_int_t)events[i].track_id));
    for (size_t i = 0; i < n_events; i++) {
        const track_event *ev = &events[i];
        const json_t *det = ev->detection >= 0 ? json_array_get(dets, (size_t)ev->detection) : NULL;
        track_snapshot *slot = snapshot_slot(s, ev->track_id, det != NULL);
        if (slot && det && json_string_value(json_object_get(det, "class_name")))
            snprintf(slot->class_name, sizeof slot->class_name, "%s",
                     json_string_value(json_object_get(det, "class_name")));
        if (ev->best_changed && det) snapshot_take(s, f, ev, det, slot);
        if (slot && det) path_add(slot, ev->last_frame, &ev->box);
        if (ev->kind == TRACK_UPDATED && !ev->best_changed) continue; /* the throttle: see the top */
        event_emit(s, ev, slot && slot->class_name[0] ? slot->class_name : NULL, slot ? slot->jpeg : NULL, slot);
        if (ev->kind == TRACK_ENTERED && det && slot && slot->jpeg) stream_escalate(s, m, f, det, slot->jpeg);
        if (ev->kind == TRACK_LEFT) snapshot_forget(s, ev->track_id);
    }
    const track_view *views = NULL;
    size_t tracks = track_views(s->trk, &views);
    stream_publish(s, f, dets, inference_ms, tracks);
    json_decref(dets);
}

/* The source ended (a file's end, or max_failures): its objects are gone,
 * so the tracker is run on empty frames until every track has left, and
 * each object's `left` (lost) goes out as it would have on the camera. */
static void stream_on_end(void *user) {
    stream *s = user;
    track_options defaults;
    track_options_default(&defaults);
    uint64_t frame = track_get_stats(s->trk).frames ? s->latest_frame + 1 : 0;
    for (int i = 0; i <= defaults.max_misses + 1 && !atomic_load(&s->stopping); i++) {
        const track_event *events = NULL;
        size_t n_events = 0;
        vigil_error err = {0};
        if (track_update(s->trk, frame + (uint64_t)i, NULL, 0, &events, &n_events, &err)) break;
        for (size_t k = 0; k < n_events; k++) {
            if (events[k].kind != TRACK_LEFT) continue;
            track_snapshot *slot = snapshot_slot(s, events[k].track_id, 0);
            event_emit(s, &events[k], slot && slot->class_name[0] ? slot->class_name : NULL, slot ? slot->jpeg : NULL,
                       slot);
            snapshot_forget(s, events[k].track_id);
        }
    }
    const track_view *views = NULL;
    size_t tracks = track_views(s->trk, &views);
    pthread_mutex_lock(&s->lock);
    s->tracks = tracks;
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------ lifecycle */

static void stream_free(stream *s) {
    track_destroy(s->trk);
    for (size_t i = 0; i < s->n_snaps; i++)
        stream_blob_unref(s->snaps[i].jpeg);
    vigil_free(s->snaps);
    vigil_image_free(&s->scratch);
    vigil_image_free(&s->latest);
    stream_blob_unref(s->latest_jpeg);
    for (size_t i = 0; i < s->results_count; i++)
        vigil_free(s->results[(s->results_head + i) % RESULTS_KEPT].json);
    vigil_free(s->last_event);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->viewers.lock);
    pthread_rwlock_destroy(&s->src_lock);
    vigil_free(s);
}

stream_viewers *stream_viewers_of(stream *s) { return &s->viewers; }

void stream_ref(stream *s) { atomic_fetch_add(&s->refs, 1); }

void stream_unref(stream *s) {
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) stream_free(s);
}

/* Stops the source (both threads joined); the stream stays readable. */
static void stream_stop(stream *s) {
    if (atomic_exchange(&s->stopping, 1)) return; /* the first caller stops it (a DELETE and shutdown may meet) */
    pthread_rwlock_wrlock(&s->src_lock);
    stream_source *src = s->src;
    s->src = NULL;
    pthread_rwlock_unlock(&s->src_lock);
    stream_source_destroy(src);
    stream_live_wake(s); /* the views end */
}

static vigil_status stream_start(stream_set *set, const stream_spec *spec, stream **out, vigil_error *err) {
    stream *s = vigil_calloc(1, sizeof *s);
    if (!s) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    s->set = set;
    s->spec = *spec;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->viewers.lock, NULL);
    pthread_rwlock_init(&s->src_lock, NULL);
    s->snaps = vigil_calloc(TRACK_MAX_TRACKS, sizeof *s->snaps);
    track_options to;
    track_options_default(&to);
    to.zone_xy = spec->n_zone ? spec->zone : NULL;
    to.n_zone_points = spec->n_zone;
    vigil_status st = s->snaps ? track_create(&s->trk, &to, err)
                               : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (!st && spec->enabled) {
        stream_source_options so;
        stream_source_options_default(&so);
        so.url = spec->url;
        so.rtsp_transport = spec->rtsp_transport[0] ? spec->rtsp_transport : NULL;
        so.target_fps = spec->detect_fps;
        so.realtime = spec->realtime;
        /* a file not played as a camera: every picked frame, at detection's pace */
        so.wait_for_consumer = !spec->realtime && stream_url_is_file(spec->url);
        so.reconnect_on_end = spec->loop;
        so.on_frame = stream_on_frame;
        so.on_end = stream_on_end;
        so.user = s;
        so.jitter_seed = (uint64_t)sched_now_ns() | 1;
        st = stream_source_create(&s->src, &so, err);
    }
    if (st) {
        stream_free(s);
        return st;
    }
    *out = s;
    return VIGIL_OK;
}

typedef struct model_lookup {
    const char *name;
    int found, raw;
} model_lookup;

static void model_seen(const repository_item *item, void *user) {
    model_lookup *l = user;
    if (strcmp(item->name, l->name) != 0) return;
    l->found = 1;
    l->raw = item->task == MODEL_TASK_RAW;
}

/* The model must be in the repository, and not a loaded model that serves
 * tensors only (one not loaded yet is taken: it may turn out a detector). */
static vigil_status model_check(stream_set *set, const char *model, vigil_error *err) {
    model_lookup l = {.name = model};
    repository_each(request_repository(set->server), model_seen, &l);
    if (!l.found) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "model %s is not in the repository", model);
    if (l.raw) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model %s is not a detection model", model);
    return VIGIL_OK;
}

static ssize_t set_index(const stream_set *set, const char *name) {
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->streams[i]->spec.name, name) == 0) return (ssize_t)i;
    return -1;
}

vigil_status stream_set_add(stream_set *set, const stream_spec *spec, vigil_error *err) {
    vigil_status st = model_check(set, spec->model, err);
    if (st) return st;
    pthread_mutex_lock(&set->lock);
    if (set->stopping) st = vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "the server is shutting down");
    else if (set_index(set, spec->name) >= 0) st = vigil_error_set(err, VIGIL_ERR_EXISTS, "a stream named %s exists", spec->name);
    else if (set->n == STREAM_SET_MAX) st = vigil_error_set(err, VIGIL_ERR_LIMIT, "at most %d streams", STREAM_SET_MAX);
    stream *s = NULL;
    if (!st) st = stream_start(set, spec, &s, err);
    if (!st) set->streams[set->n++] = s;
    pthread_mutex_unlock(&set->lock);
    if (!st) LOG_I("stream %s: %s, model %s, %.3g detections/s", spec->name, spec->url, spec->model, spec->detect_fps);
    return st;
}

/* Takes the stream out of the list: the caller stops and unrefs it. */
static stream *set_take(stream_set *set, const char *name) {
    pthread_mutex_lock(&set->lock);
    ssize_t i = set_index(set, name);
    stream *s = NULL;
    if (i >= 0) {
        s = set->streams[i];
        set->streams[i] = set->streams[--set->n];
    }
    pthread_mutex_unlock(&set->lock);
    return s;
}

vigil_status stream_set_remove(stream_set *set, const char *name, vigil_error *err) {
    stream *s = set_take(set, name);
    if (!s) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "no stream named %s", name);
    stream_stop(s);
    stream_unref(s);
    LOG_I("stream %s: removed", name);
    return VIGIL_OK;
}

vigil_status stream_set_replace(stream_set *set, const stream_spec *spec, vigil_error *err) {
    vigil_status st = model_check(set, spec->model, err);
    if (st) return st;
    stream *old = set_take(set, spec->name);
    if (!old) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "no stream named %s", spec->name);
    stream_stop(old);
    stream_unref(old);
    return stream_set_add(set, spec, err);
}

stream *stream_set_find(stream_set *set, const char *name) {
    pthread_mutex_lock(&set->lock);
    ssize_t i = set_index(set, name);
    stream *s = i >= 0 ? set->streams[i] : NULL;
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&set->lock);
    return s;
}

int stream_alive(stream *s) { return !atomic_load(&s->stopping); }

int stream_set_edge_events(const stream_set *set) { return set->edge_events; }

/* ------------------------------------------------------------ reading */

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* What the source says now.  OUT: *ss (zero when there is none);
 * returns 1 when a source runs, 2 when its decoder is done but its last
 * frame (or the ending) is still being processed, 0 when there is none. */
static int source_view(stream *s, stream_stats *ss) {
    memset(ss, 0, sizeof *ss);
    pthread_rwlock_rdlock(&s->src_lock);
    int view = 0;
    if (s->src) {
        *ss = stream_source_get_stats(s->src);
        view = (ss->state == STREAM_ENDED || ss->state == STREAM_FAILED) &&
                       stream_source_wait(s->src, 0) == VIGIL_ERR_TIMEOUT
                   ? 2
                   : 1;
    }
    pthread_rwlock_unlock(&s->src_lock);
    return view;
}

static const char *state_of(stream *s, const stream_stats *ss, int view) {
    if (!s->spec.enabled) return "disabled";
    if (!view) return "ended"; /* stopped */
    switch (ss->state) {
    case STREAM_CONNECTING: return ss->connects ? "reconnecting" : "connecting";
    case STREAM_RUNNING: return "running";
    case STREAM_BACKOFF: return "reconnecting";
    case STREAM_ENDED: /* the decoder is done; the state follows once the last frame and the ending are through */
    case STREAM_FAILED:
        if (view == 2) return "running";
        return ss->state == STREAM_ENDED ? "ended" : "failed";
    }
    return "failed";
}

json_t *stream_json(stream *s) {
    stream_stats ss;
    int view = source_view(s, &ss);
    json_t *obj = json_object();
    if (!obj) return NULL;
    stream_spec_to_json(&s->spec, obj);
    pthread_mutex_lock(&s->lock);
    double sorted[LATENCY_KEPT];
    memcpy(sorted, s->latency_ms, s->latency_n * sizeof *sorted);
    size_t nl = s->latency_n;
    double p50 = 0, p99 = 0;
    if (nl) {
        qsort(sorted, nl, sizeof *sorted, compare_double);
        p50 = sorted[(nl - 1) / 2];
        p99 = sorted[(size_t)ceil(0.99 * (double)nl) - 1];
    }
    double detect_fps = 0;
    if (s->detect_times_n >= 2) {
        int64_t newest = s->detect_times[(s->detect_times_head + DETECT_TIMES_KEPT - 1) % DETECT_TIMES_KEPT];
        int64_t oldest = s->detect_times[(s->detect_times_head + DETECT_TIMES_KEPT - s->detect_times_n) % DETECT_TIMES_KEPT];
        if (newest > oldest && sched_now_ns() - newest < INT64_C(3000000000))
            detect_fps = (double)(s->detect_times_n - 1) * 1e9 / (double)(newest - oldest);
    }
    const char *error = s->error[0] ? s->error : ss.last_error[0] && strcmp(state_of(s, &ss, view), "running") != 0 ? ss.last_error : NULL;
    json_t *last_event = s->last_event ? json_loads(s->last_event, 0, NULL) : json_null();
    json_object_set_new(obj, "state", json_string(state_of(s, &ss, view)));
    json_object_set_new(obj, "error", error ? json_string(error) : json_null());
    json_object_set_new(obj, "source", json_pack("{s:i,s:i}", "width", s->width, "height", s->height));
    json_object_set_new(
        obj, "stats",
        json_pack("{s:f,s:f,s:I,s:I,s:{s:I,s:I,s:I},s:f,s:f,s:{s:f,s:f},s:I,s:I}", "input_fps", ss.input_fps,
                  "detect_fps", detect_fps, "frames_in", (json_int_t)ss.frames_decoded, "frames_detected",
                  (json_int_t)s->frames_detected, "dropped", "rate", (json_int_t)ss.dropped_rate, "busy",
                  (json_int_t)ss.dropped_busy, "corrupt", (json_int_t)ss.decode_errors, "decode_ms",
                  ss.frames_decoded ? ss.decode_ms_total / (double)ss.frames_decoded : 0.0, "inference_ms",
                  s->frames_detected ? s->inference_ms_total / (double)s->frames_detected : 0.0, "latency_ms", "p50",
                  p50, "p99", p99, "reconnects", (json_int_t)ss.reconnects, "detect_failures",
                  (json_int_t)s->detect_failures));
    json_object_set_new(obj, "tracks", json_integer((json_int_t)s->tracks));
    json_object_set_new(obj, "last_event", last_event ? last_event : json_null());
    pthread_mutex_unlock(&s->lock);
    return obj;
}

/* The set's streams now, each with a reference taken (the caller unrefs
 * them), so that they are read without the set's lock.  Returns their
 * count; sets stopping first when stop is set. */
static size_t set_list(stream_set *set, stream *list[STREAM_SET_MAX], int stop) {
    pthread_mutex_lock(&set->lock);
    if (stop) set->stopping = 1;
    size_t n = set->n;
    for (size_t i = 0; i < n; i++) {
        list[i] = set->streams[i];
        atomic_fetch_add(&list[i]->refs, 1);
    }
    pthread_mutex_unlock(&set->lock);
    return n;
}

json_t *stream_set_json(stream_set *set) {
    stream *list[STREAM_SET_MAX];
    size_t n = set_list(set, list, 0);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, stream_json(list[i]));
        stream_unref(list[i]);
    }
    return json_pack("{s:o}", "streams", arr);
}

char *stream_detections_text(stream *s, int64_t after, size_t *len) {
    textbuf b;
    textbuf_init(&b, 64 << 20);
    textbuf_printf(&b, "{\"frames\":[");
    int first = 1;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->results_count; i++) {
        const frame_record *r = &s->results[(s->results_head + i) % RESULTS_KEPT];
        if (after >= 0 && r->frame <= (uint64_t)after) continue;
        if (!first) textbuf_append(&b, ",", 1);
        textbuf_append(&b, r->json, strlen(r->json));
        first = 0;
    }
    pthread_mutex_unlock(&s->lock);
    textbuf_printf(&b, "]}");
    return textbuf_take(&b, len);
}

stream_blob *stream_live_jpeg(stream *s, uint64_t *frame) {
    pthread_mutex_lock(&s->lock);
    stream_blob *b = NULL;
    if (s->has_latest) {
        if (!s->latest_jpeg) s->latest_jpeg = jpeg_blob(&s->latest);
        b = blob_ref(s->latest_jpeg);
        *frame = s->latest_frame;
    }
    pthread_mutex_unlock(&s->lock);
    return b;
}

char *stream_events_text(stream_set *set, const char *name, uint64_t after, size_t limit, size_t *len) {
    textbuf b;
    textbuf_init(&b, 256 << 20);
    textbuf_printf(&b, "{\"events\":[");
    uint64_t next = after;
    size_t taken = 0;
    pthread_mutex_lock(&set->events_lock);
    for (size_t i = 0; i < set->events_count && taken < limit; i++) {
        const event_record *r = &set->events[(set->events_head + i) % set->events_cap];
        if (r->seq <= after || (name && strcmp(name, r->stream) != 0)) continue;
        if (taken++) textbuf_append(&b, ",", 1);
        textbuf_append(&b, r->json, strlen(r->json));
        next = r->seq;
    }
    pthread_mutex_unlock(&set->events_lock);
    textbuf_printf(&b, "],\"next\":%llu}", (unsigned long long)next);
    return textbuf_take(&b, len);
}

stream_blob *stream_event_snapshot(stream_set *set, const char *id) {
    stream_blob *b = NULL;
    pthread_mutex_lock(&set->events_lock);
    for (size_t i = 0; i < set->events_count; i++) {
        const event_record *r = &set->events[(set->events_head + i) % set->events_cap];
        if (strcmp(r->id, id) == 0) {
            b = blob_ref(r->snapshot);
            break;
        }
    }
    pthread_mutex_unlock(&set->events_lock);
    return b;
}

/* ------------------------------------------------------------ metrics */

static void metrics_family(textbuf *out, const char *name, const char *type, const char *help) {
    textbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* GET /metrics: per stream, label stream (docs/STREAMS.md, "Metrics"). */
static void stream_metrics(void *ctx, textbuf *out) {
    stream_set *set = ctx;
    stream *list[STREAM_SET_MAX];
    size_t n = set_list(set, list, 0);
    stream_stats ss[STREAM_SET_MAX];
    int views[STREAM_SET_MAX];
    for (size_t i = 0; i < n; i++)
        views[i] = source_view(list[i], &ss[i]);
    metrics_family(out, "vigil_stream_up", "gauge", "1 while the stream's source is connected and running.");
    for (size_t i = 0; i < n; i++)
        textbuf_printf(out, "vigil_stream_up{stream=\"%s\"} %d\n", list[i]->spec.name,
                       views[i] && ss[i].state == STREAM_RUNNING);
    metrics_family(out, "vigil_stream_input_frames_total", "counter", "Frames decoded from the stream's source.");
    for (size_t i = 0; i < n; i++)
        textbuf_printf(out, "vigil_stream_input_frames_total{stream=\"%s\"} %llu\n", list[i]->spec.name,
                       (unsigned long long)ss[i].frames_decoded);
    metrics_family(out, "vigil_stream_detected_frames_total", "counter", "Frames that went through detection.");
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&list[i]->lock);
        uint64_t detected = list[i]->frames_detected;
        pthread_mutex_unlock(&list[i]->lock);
        textbuf_printf(out, "vigil_stream_detected_frames_total{stream=\"%s\"} %llu\n", list[i]->spec.name,
                       (unsigned long long)detected);
    }
    metrics_family(out, "vigil_stream_dropped_frames_total", "counter",
                   "Frames not detected: rate (not picked by detect_fps), busy (replaced while detection ran), "
                   "corrupt (packets or frames the decoder rejected).");
    for (size_t i = 0; i < n; i++)
        textbuf_printf(out,
                       "vigil_stream_dropped_frames_total{stream=\"%s\",reason=\"rate\"} %llu\n"
                       "vigil_stream_dropped_frames_total{stream=\"%s\",reason=\"busy\"} %llu\n"
                       "vigil_stream_dropped_frames_total{stream=\"%s\",reason=\"corrupt\"} %llu\n",
                       list[i]->spec.name, (unsigned long long)ss[i].dropped_rate, list[i]->spec.name,
                       (unsigned long long)ss[i].dropped_busy, list[i]->spec.name,
                       (unsigned long long)ss[i].decode_errors);
    metrics_family(out, "vigil_stream_decode_seconds", "summary",
                   "Decoding time of the stream's frames (conversion of the picked ones included).");
    for (size_t i = 0; i < n; i++)
        textbuf_printf(out,
                       "vigil_stream_decode_seconds_sum{stream=\"%s\"} %.6f\n"
                       "vigil_stream_decode_seconds_count{stream=\"%s\"} %llu\n",
                       list[i]->spec.name, ss[i].decode_ms_total / 1000, list[i]->spec.name,
                       (unsigned long long)ss[i].frames_decoded);
    metrics_family(out, "vigil_stream_latency_seconds", "histogram",
                   "From a frame decoded to its detections, tracks and events done.");
    for (size_t i = 0; i < n; i++) {
        stream *s = list[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < LATENCY_BUCKETS; b++)
            textbuf_printf(out, "vigil_stream_latency_seconds_bucket{stream=\"%s\",le=\"%g\"} %llu\n", s->spec.name,
                           latency_bounds_s[b], (unsigned long long)s->latency_buckets[b]);
        textbuf_printf(out,
                       "vigil_stream_latency_seconds_bucket{stream=\"%s\",le=\"+Inf\"} %llu\n"
                       "vigil_stream_latency_seconds_sum{stream=\"%s\"} %.6f\n"
                       "vigil_stream_latency_seconds_count{stream=\"%s\"} %llu\n",
                       s->spec.name, (unsigned long long)s->frames_detected, s->spec.name, s->latency_sum_s,
                       s->spec.name, (unsigned long long)s->frames_detected);
        pthread_mutex_unlock(&s->lock);
    }
    metrics_family(out, "vigil_stream_reconnects_total", "counter", "Reconnect attempts of the stream's source.");
    for (size_t i = 0; i < n; i++)
        textbuf_printf(out, "vigil_stream_reconnects_total{stream=\"%s\"} %llu\n", list[i]->spec.name,
                       (unsigned long long)ss[i].reconnects);
    for (size_t i = 0; i < n; i++)
        stream_unref(list[i]);
}

/* ------------------------------------------------------------ the set */

vigil_status stream_set_create(vigil_server *server, const vigil_config *cfg, int edge_events, stream_set **out,
                               vigil_error *err) {
    *out = NULL;
    stream_set *set = vigil_calloc(1, sizeof *set);
    if (!set) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    set->server = server;
    set->edge_events = edge_events;
    set->events_cap = cfg->stream_events_max > 0 ? (size_t)cfg->stream_events_max : 1024;
    set->events = vigil_calloc(set->events_cap, sizeof *set->events);
    pthread_mutex_init(&set->lock, NULL);
    pthread_mutex_init(&set->events_lock, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(set->boot, sizeof set->boot, "%llx",
             (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)(ts.tv_nsec / 1000000));
    vigil_status st = set->events ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (!st) st = stream_routes_add(set, server, edge_events, err);
    if (!st) st = server_metrics_add(server, stream_metrics, set, err);
    if (st) {
        stream_set_destroy(set);
        return st;
    }
    *out = set;
    return VIGIL_OK;
}

void stream_set_sink(stream_set *set, stream_event_fn fn, void *ctx) {
    set->sink = fn;
    set->sink_ctx = ctx;
}

void stream_set_stop(stream_set *set) {
    if (!set) return;
    stream *list[STREAM_SET_MAX];
    size_t n = set_list(set, list, 1);
    for (size_t i = 0; i < n; i++) {
        stream_stop(list[i]);
        stream_unref(list[i]);
    }
}

void stream_set_destroy(stream_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n; i++)
        stream_stop(set->streams[i]);
    for (size_t i = 0; i < set->n; i++)
        stream_unref(set->streams[i]);
    for (size_t i = 0; i < set->events_count; i++) {
        event_record *r = &set->events[(set->events_head + i) % set->events_cap];
        vigil_free(r->json);
        stream_blob_unref(r->snapshot);
    }
    vigil_free(set->events);
    pthread_mutex_destroy(&set->events_lock);
    pthread_mutex_destroy(&set->lock);
    vigil_free(set);
}
