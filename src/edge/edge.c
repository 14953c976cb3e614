/*
 * edge.c - the edge runtime (see edge.h): the escalation path from a
 * finished detection to the outbox, and the wiring of the outbox, uplink,
 * link monitor and clock.
 *
 * The hot path is the detection observer, called on a front end's thread
 * after the client's answer is set: it parses the answer (a few hundred
 * bytes of JSON), asks the policy, takes a token from the source's bucket
 * and, only when the frame escalates, copies the frame into a queue bounded
 * by edge.queue_max (a full queue drops the frame and counts it: the client
 * was answered already, and memory on an edge box is not elastic).  Nothing
 * on that path touches the disk or the network.
 *
 * The runtime's thread turns a queued frame into an event: a UUIDv7 made
 * when it is committed, the event document (event.h's wire format), a PNG
 * re-encoded to JPEG, then outbox_put, whose commit is what makes the event
 * exist; then uplink_kick.  An event the thread could not commit (priority 0
 * refused by a full outbox, a disk error) is counted and logged, never
 * retried silently from memory: the outbox is the only durable state.
 *
 * The link monitor's state goes to the uplink (uplink_set_online); the
 * uplink acknowledges rows and records verdicts in the outbox and calls
 * on_verdict here, which publishes the verdict on MQTT (best effort: the
 * verdict stays in the outbox's history for GET /api/v1/events/{id}).
 */
#include "edge/edge.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keys.h"
#include "core/alloc.h"
#include "core/log.h"
#include "edge/clock.h"
#include "edge/event.h"
#include "edge/link.h"
#include "edge/outbox.h"
#include "edge/policy.h"
#include "edge/uplink.h"
#include "serve/request.h"
#include "serve/textbuf.h"
#include "vigil/vision.h"

#define EDGE_AUTO_EVENT_BYTES (INT64_C(256) << 10) /* a 1080p JPEG and its detections */
#define EDGE_OUTAGE_S 7200                        /* the outbox is sized for a 2-hour outage */

typedef enum edge_role { ROLE_NONE = 0, ROLE_EDGE, ROLE_CLOUD } edge_role;

/* One escalated frame between the observer and the runtime's thread. */
typedef struct edge_item {
    struct edge_item *next;
    json_t *answer;          /* the detection answer, parsed (owned) */
    unsigned char *image;    /* owned copy of the bytes as received */
    size_t image_size;
    vigil_pixel_format raw_format; /* a decoded frame's geometry; raw_width 0: image is encoded */
    int raw_width, raw_height, raw_stride;
    char model[MODEL_NAME_MAX];
    int64_t version;
    char source[REQUEST_SOURCE_MAX];
    char traceparent[REQUEST_TRACEPARENT_MAX];
    policy_reason reason;
    int priority;
    int64_t created_ms;
} edge_item;

struct edge_runtime {
    vigil_config cfg;
    edge_role role;
    char node_id[128];
    char verdict_topic[256];
    char *token; /* bearer token read from edge.token_file */
    char *mqtt_password; /* read from edge.mqtt.password_file */
    edge_clock *clock;
    outbox *box;
    uplink *up;
    link_monitor *link;
    rate_limiter *limiter;

    /* the queue between the observer and the thread */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    edge_item *head, *tail;
    size_t depth;
    int stopping;
    pthread_t thread;
    int thread_started;

    /* Guards up and link as seen from each other's callbacks (the link's
     * on_change sets the uplink online, the uplink's on_verdict publishes on
     * the link), so that either can be destroyed first. */
    pthread_mutex_t wiring;

    /* upload log (edge.upload_log_file) */
    pthread_mutex_t log_lock;
    FILE *upload_log;

    /* counters for /metrics and the status */
    atomic_llong escalations[POLICY_REASONS]; /* committed, by reason */
    atomic_llong dropped_queue;               /* the queue was full */
    atomic_llong dropped_rate;                /* over the source's rate */
    atomic_llong commit_failed;               /* outbox_put failed (refused or i/o) */
    atomic_llong refused_full;                /* priority 0 refused by a full outbox */
    atomic_llong verdicts;
    atomic_llong verdicts_published;
    atomic_llong verdicts_unpublished;        /* no broker at the time */
    atomic_ullong rng;                        /* xorshift state for the sampling draw */
};

static const char *const role_names[] = {"none", "edge", "cloud"};

/* ------------------------------------------------------------ the observer */

/* A uniform draw in [0, 1) from a shared xorshift64*; a lost update between
 * two threads only repeats a draw, which sampling tolerates. */
static double edge_draw(edge_runtime *rt) {
    uint64_t x = atomic_load_explicit(&rt->rng, memory_order_relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    atomic_store_explicit(&rt->rng, x, memory_order_relaxed);
    return (double)((x * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}

static void item_free(edge_item *item) {
    if (!item) return;
    json_decref(item->answer);
    vigil_free(item->image);
    vigil_free(item);
}

#define EDGE_POLICY_STACK 64

static void edge_observe(void *ctx, const request_detection_seen *seen) {
    edge_runtime *rt = ctx;
    json_t *answer = json_loadb(seen->json, seen->json_len, 0, NULL);
    json_t *list = answer ? json_object_get(answer, "detections") : NULL;
    if (!json_is_array(list)) {
        json_decref(answer);
        return;
    }
    size_t n = json_array_size(list);
    policy_detection stack[EDGE_POLICY_STACK];
    policy_detection *d = n <= EDGE_POLICY_STACK ? stack : vigil_calloc(n, sizeof *d);
    if (!d) {
        json_decref(answer);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        d[i].class_id = json_integer_value(json_object_get(o, "class_id"));
        d[i].class_name = json_string_value(json_object_get(o, "class_name"));
        d[i].score = json_number_value(json_object_get(o, "score"));
    }
    /* Only a sampling model draws: the draw writes a line every front-end
     * thread shares; 1.0 never samples. */
    double draw = seen->escalation->sample_rate > 0 ? edge_draw(rt) : 1.0;
    policy_decision decision = policy_decide(seen->escalation, d, n, draw);
    if (d != stack) vigil_free(d);
    if (decision.reason == POLICY_NONE) {
        json_decref(answer);
        return;
    }
    /* The clock only once the frame escalates: with an offset file it is a
     * stat() and a lock. */
    int64_t now = edge_clock_now_ms(rt->clock);
    if (!rate_limiter_allow(rt->limiter, seen->model, seen->source, seen->escalation->rate_limit_per_source, now)) {
        atomic_fetch_add(&rt->dropped_rate, 1);
        json_decref(answer);
        return;
    }
    edge_item *item = vigil_calloc(1, sizeof *item);
    unsigned char *image = item ? vigil_malloc(seen->image_size ? seen->image_size : 1) : NULL;
    if (!image) {
        vigil_free(item);
        json_decref(answer);
        atomic_fetch_add(&rt->dropped_queue, 1);
        return;
    }
    memcpy(image, seen->image, seen->image_size);
    item->answer = answer;
    item->image = image;
    item->image_size = seen->image_size;
    item->raw_format = seen->raw_format;
    item->raw_width = seen->raw_width;
    item->raw_height = seen->raw_height;
    item->raw_stride = seen->raw_stride;
    snprintf(item->model, sizeof item->model, "%s", seen->model);
    item->version = seen->version;
    snprintf(item->source, sizeof item->source, "%s", seen->source);
    snprintf(item->traceparent, sizeof item->traceparent, "%s", seen->traceparent);
    item->reason = decision.reason;
    item->priority = decision.priority;
    item->created_ms = now;
    pthread_mutex_lock(&rt->lock);
    int full = rt->depth >= (size_t)rt->cfg.edge_queue_max || rt->stopping;
    if (!full) {
        if (rt->tail) rt->tail->next = item;
        else rt->head = item;
        rt->tail = item;
        rt->depth++;
        pthread_cond_signal(&rt->wake);
    }
    pthread_mutex_unlock(&rt->lock);
    if (full) {
        atomic_fetch_add(&rt->dropped_queue, 1);
        item_free(item);
    }
}

/* ------------------------------------------------------------ the thread */

static int is_jpeg(const unsigned char *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

/* The frame as a JPEG: the bytes as received when they are one, else the
 * decoded image (or the decoded frame, converted) re-encoded (quality 90).
 * OUT: *out, malloc'd as edge_event's frame is (edge_event_clear frees it
 * with free). */
static vigil_status frame_jpeg(const edge_item *item, unsigned char **out, size_t *size, vigil_error *err) {
    const unsigned char *bytes = item->image;
    size_t n = item->image_size;
    uint8_t *encoded = NULL;
    if (item->raw_width || !is_jpeg(bytes, n)) {
        vigil_image image = {0};
        vigil_status st = item->raw_width ? vigil_image_from_raw(bytes, n, item->raw_format, item->raw_width,
                                                                 item->raw_height, item->raw_stride, 0, &image, err)
                                          : vigil_image_decode(bytes, n, NULL, &image, NULL, err);
        if (!st) st = vigil_image_encode(&image, VIGIL_IMAGE_JPEG, 90, &encoded, &n, err);
        vigil_image_free(&image);
        if (st) return st;
        bytes = encoded;
    }
    *out = malloc(n ? n : 1);
    if (*out) memcpy(*out, bytes, n);
    vigil_free(encoded);
    if (!*out) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    *size = n;
    return VIGIL_OK;
}

/* Makes the event of item (id, document, frame) and commits it. */
static void edge_commit(edge_runtime *rt, edge_item *item) {
    edge_event ev = {0};
    vigil_error err = {0};
    vigil_status st = edge_uuid7(item->created_ms, ev.id, &err);
    if (!st) st = frame_jpeg(item, &ev.frame, &ev.frame_bytes, &err);
    if (st) {
        LOG_E("edge: escalation of a %s frame dropped: %s", item->model, err.message);
        atomic_fetch_add(&rt->commit_failed, 1);
        edge_event_clear(&ev);
        return;
    }
    ev.priority = item->priority;
    ev.created_ms = item->created_ms;
    snprintf(ev.traceparent, sizeof ev.traceparent, "%s", item->traceparent);
    json_t *doc = json_pack("{s:s,s:s,s:s,s:I,s:i,s:s,s:I,s:O,s:O,s:O}", "id", ev.id, "source", item->source, "model",
                            item->model, "version", (json_int_t)item->version, "priority", item->priority, "reason",
                            policy_reason_name(item->reason), "created_ms", (json_int_t)item->created_ms, "width",
                            json_object_get(item->answer, "width"), "height",
                            json_object_get(item->answer, "height"), "detections",
                            json_object_get(item->answer, "detections"));
    if (doc && item->traceparent[0]) json_object_set_new(doc, "traceparent", json_string(item->traceparent));
    ev.json = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(doc);
    if (!ev.json) {
        LOG_E("edge: escalation of a %s frame dropped: out of memory", item->model);
        atomic_fetch_add(&rt->commit_failed, 1);
        edge_event_clear(&ev);
        return;
    }
    ev.json_bytes = strlen(ev.json);
    st = outbox_put(rt->box, &ev, edge_clock_now_ms(rt->clock), &err);
    if (st == VIGIL_ERR_LIMIT) {
        atomic_fetch_add(&rt->refused_full, 1);
        atomic_fetch_add(&rt->commit_failed, 1);
        if (ev.priority == 0)
            LOG_E("edge: ALARM: the outbox is full for priority 0: event of model %s from source '%s' refused (%s)",
                  item->model, item->source, err.message);
        else
            LOG_E("edge: event of model %s from source '%s' refused: %s", item->model, item->source, err.message);
    } else if (st) {
        atomic_fetch_add(&rt->commit_failed, 1);
        LOG_E("edge: event %s not committed: %s", ev.id, err.message);
    } else {
        atomic_fetch_add(&rt->escalations[item->reason], 1);
        LOG_D("edge: event %s committed (priority %d, %s)", ev.id, ev.priority, policy_reason_name(item->reason));
        uplink_kick(rt->up);
    }
    edge_event_clear(&ev);
}

static void *edge_thread(void *arg) {
    edge_runtime *rt = arg;
    for (;;) {
        pthread_mutex_lock(&rt->lock);
        while (!rt->head && !rt->stopping) pthread_cond_wait(&rt->wake, &rt->lock);
        edge_item *item = rt->head;
        if (item) {
            rt->head = item->next;
            if (!rt->head) rt->tail = NULL;
            rt->depth--;
        }
        pthread_mutex_unlock(&rt->lock);
        if (!item) break; /* stopping and drained */
        edge_commit(rt, item);
        item_free(item);
    }
    return NULL;
}

/* ------------------------------------------------------------ callbacks */

static void on_verdict(void *ctx, const char *id, const char *answer_json) {
    edge_runtime *rt = ctx;
    atomic_fetch_add(&rt->verdicts, 1);
    vigil_error err = {0};
    pthread_mutex_lock(&rt->wiring);
    vigil_status st = rt->link ? link_publish(rt->link, rt->verdict_topic, answer_json, strlen(answer_json), 1, false,
                                              &err)
                               : vigil_error_set(&err, VIGIL_ERR_UNAVAILABLE, "stopping");
    pthread_mutex_unlock(&rt->wiring);
    if (st) {
        atomic_fetch_add(&rt->verdicts_unpublished, 1);
        LOG_D("edge: verdict of %s not published: %s", id, err.message);
    } else {
        atomic_fetch_add(&rt->verdicts_published, 1);
    }
}

static void on_attempt(void *ctx, const char *id, int priority, int http_status, const char *result) {
    edge_runtime *rt = ctx;
    if (!rt->upload_log) return;
    pthread_mutex_lock(&rt->log_lock);
    fprintf(rt->upload_log, "%" PRId64 " %s %d %d %s\n", edge_clock_now_ms(rt->clock), id, priority, http_status,
            result ? result : "");
    fflush(rt->upload_log);
    pthread_mutex_unlock(&rt->log_lock);
}

static void on_link_change(void *ctx, link_state state, const char *why) {
    edge_runtime *rt = ctx;
    LOG_I("edge: link %s (%s)", link_state_name(state), why ? why : "");
    pthread_mutex_lock(&rt->wiring);
    if (rt->up) uplink_set_online(rt->up, state == LINK_ONLINE);
    pthread_mutex_unlock(&rt->wiring);
}

/* Unlocked: the link is destroyed first only after the uplink's callbacks
 * can no longer reach it, and the probe runs on the link's own thread, which
 * link_destroy joins before the uplink goes. */
static bool probe_cloud(void *ctx) {
    edge_runtime *rt = ctx;
    return rt->up && uplink_probe(rt->up);
}

/* ------------------------------------------------------------ status and metrics */

static json_t *status_object(edge_runtime *rt) {
    json_t *root = json_pack("{s:s,s:s}", "role", role_names[rt->role], "node_id", rt->node_id);
    if (!root) return NULL;
    int64_t now = edge_clock_now_ms(rt->clock);
    json_object_set_new(root, "now_ms", json_integer(now));
    if (rt->link) {
        link_stats ls;
        link_stats_get(rt->link, &ls);
        json_object_set_new(root, "link",
                            json_pack("{s:s,s:I,s:I,s:I,s:b}", "state", link_state_name(ls.state), "since_ms",
                                      (json_int_t)ls.since_ms, "last_heartbeat_ms", (json_int_t)ls.last_heartbeat_ms,
                                      "transitions", (json_int_t)ls.transitions, "broker_connected",
                                      ls.broker_connected));
    }
    if (rt->box) {
        outbox_stats os;
        vigil_error err = {0};
        if (!outbox_stats_get(rt->box, now, &os, &err)) {
            json_t *rows = json_array(), *bytes = json_array();
            int64_t total = 0;
            for (int c = 0; c < EDGE_PRIORITY_CLASSES; c++) {
                json_array_append_new(rows, json_integer(os.rows[c]));
                json_array_append_new(bytes, json_integer(os.bytes[c]));
                total += os.rows[c];
            }
            json_t *o = json_pack("{s:I,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "depth", (json_int_t)total,
                                  "rows_by_priority", rows, "bytes_by_priority", bytes, "parked",
                                  (json_int_t)os.parked, "oldest_pending_ms", (json_int_t)os.oldest_pending_ms,
                                  "oldest_pending_age_ms",
                                  (json_int_t)(os.oldest_pending_ms ? now - os.oldest_pending_ms : 0), "evicted_full",
                                  (json_int_t)os.evicted_full, "expired_ttl", (json_int_t)os.expired_ttl,
                                  "refused_full", (json_int_t)os.refused_full, "acked", (json_int_t)os.acked,
                                  "quarantined", os.quarantined);
            if (o && os.quarantined) json_object_set_new(o, "quarantine_path", json_string(os.quarantine_path));
            json_object_set_new(root, "outbox", o);
        } else {
            json_object_set_new(root, "outbox", json_pack("{s:s}", "error", err.message));
        }
    }
    if (rt->up) {
        uplink_stats us;
        uplink_stats_get(rt->up, &us);
        json_object_set_new(root, "uploads",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:f}", "sent_ok", (json_int_t)us.sent_ok, "replayed",
                                      (json_int_t)us.replayed, "retried", (json_int_t)us.retried, "parked",
                                      (json_int_t)us.parked, "failed_transport", (json_int_t)us.failed_transport,
                                      "drain_rate_per_s", us.drain_rate_per_s));
    }
    if (rt->role == ROLE_EDGE) {
        pthread_mutex_lock(&rt->lock);
        size_t depth = rt->depth;
        pthread_mutex_unlock(&rt->lock);
        json_object_set_new(root, "escalations",
                            json_pack("{s:I,s:I,s:I}", "class", (json_int_t)atomic_load(&rt->escalations[POLICY_CLASS]),
                                      "band", (json_int_t)atomic_load(&rt->escalations[POLICY_BAND]), "sample",
                                      (json_int_t)atomic_load(&rt->escalations[POLICY_SAMPLE])));
        json_object_set_new(root, "queue",
                            json_pack("{s:I,s:I,s:I,s:I,s:I}", "depth", (json_int_t)depth, "max",
                                      (json_int_t)rt->cfg.edge_queue_max, "dropped_full",
                                      (json_int_t)atomic_load(&rt->dropped_queue), "dropped_rate_limit",
                                      (json_int_t)atomic_load(&rt->dropped_rate), "commit_failed",
                                      (json_int_t)atomic_load(&rt->commit_failed)));
        json_object_set_new(root, "verdicts",
                            json_pack("{s:I,s:I,s:I}", "received", (json_int_t)atomic_load(&rt->verdicts),
                                      "published", (json_int_t)atomic_load(&rt->verdicts_published), "unpublished",
                                      (json_int_t)atomic_load(&rt->verdicts_unpublished)));
    }
    return root;
}

char *edge_status_json(edge_runtime *rt) {
    json_t *root = status_object(rt);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return text;
}

static void metric_head(textbuf *out, const char *name, const char *type, const char *help) {
    textbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void edge_metrics(void *ctx, struct textbuf *out) {
    edge_runtime *rt = ctx;
    int64_t now = edge_clock_now_ms(rt->clock);
    if (rt->link) {
        link_stats ls;
        link_stats_get(rt->link, &ls);
        metric_head(out, "vigil_edge_link_state", "gauge", "1 for the state the link to the cloud is in.");
        for (int s = LINK_UNKNOWN; s <= LINK_OFFLINE; s++)
            textbuf_printf(out, "vigil_edge_link_state{state=\"%s\"} %d\n", link_state_name((link_state)s),
                           ls.state == (link_state)s);
        metric_head(out, "vigil_edge_link_transitions_total", "counter", "Link state changes since start.");
        textbuf_printf(out, "vigil_edge_link_transitions_total %lld\n", (long long)ls.transitions);
        metric_head(out, "vigil_edge_broker_connected", "gauge", "1 while the MQTT broker connection is up.");
        textbuf_printf(out, "vigil_edge_broker_connected %d\n", ls.broker_connected ? 1 : 0);
    }
    if (rt->box) {
        outbox_stats os;
        vigil_error err = {0};
        if (!outbox_stats_get(rt->box, now, &os, &err)) {
            metric_head(out, "vigil_edge_outbox_rows", "gauge", "Events waiting in the outbox, by priority class.");
            for (int c = 0; c < EDGE_PRIORITY_CLASSES; c++)
                textbuf_printf(out, "vigil_edge_outbox_rows{priority=\"%d\"} %lld\n", c, (long long)os.rows[c]);
            metric_head(out, "vigil_edge_outbox_bytes", "gauge", "Bytes waiting in the outbox, by priority class.");
            for (int c = 0; c < EDGE_PRIORITY_CLASSES; c++)
                textbuf_printf(out, "vigil_edge_outbox_bytes{priority=\"%d\"} %lld\n", c, (long long)os.bytes[c]);
            metric_head(out, "vigil_edge_outbox_parked", "gauge", "Events the cloud refused for good (kept, unsent).");
            textbuf_printf(out, "vigil_edge_outbox_parked %lld\n", (long long)os.parked);
            metric_head(out, "vigil_edge_outbox_oldest_pending_age_seconds", "gauge",
                        "Age of the oldest event waiting (edge clock), 0 when none.");
            textbuf_printf(out, "vigil_edge_outbox_oldest_pending_age_seconds %.3f\n",
                           os.oldest_pending_ms ? (double)(now - os.oldest_pending_ms) / 1000.0 : 0.0);
            metric_head(out, "vigil_edge_outbox_dropped_total", "counter",
                        "Events removed unsent: evicted by a full class, expired by TTL, refused (priority 0).");
            textbuf_printf(out,
                           "vigil_edge_outbox_dropped_total{reason=\"full\"} %lld\n"
                           "vigil_edge_outbox_dropped_total{reason=\"ttl\"} %lld\n"
                           "vigil_edge_outbox_dropped_total{reason=\"refused\"} %lld\n",
                           (long long)os.evicted_full, (long long)os.expired_ttl, (long long)os.refused_full);
            metric_head(out, "vigil_edge_outbox_full_alarm", "gauge",
                        "1 once a priority-0 event was refused by a full outbox since start.");
            textbuf_printf(out, "vigil_edge_outbox_full_alarm %d\n", os.refused_full > 0);
            metric_head(out, "vigil_edge_outbox_quarantined", "gauge",
                        "1 when a corrupt outbox database was moved aside at start.");
            textbuf_printf(out, "vigil_edge_outbox_quarantined %d\n", os.quarantined ? 1 : 0);
        }
    }
    if (rt->up) {
        uplink_stats us;
        uplink_stats_get(rt->up, &us);
        metric_head(out, "vigil_edge_uploads_total", "counter", "Upload attempts to the cloud, by result.");
        textbuf_printf(out,
                       "vigil_edge_uploads_total{result=\"ok\"} %lld\n"
                       "vigil_edge_uploads_total{result=\"replayed\"} %lld\n"
                       "vigil_edge_uploads_total{result=\"retried\"} %lld\n"
                       "vigil_edge_uploads_total{result=\"parked\"} %lld\n"
                       "vigil_edge_uploads_total{result=\"transport\"} %lld\n",
                       (long long)us.sent_ok, (long long)us.replayed, (long long)us.retried, (long long)us.parked,
                       (long long)us.failed_transport);
        metric_head(out, "vigil_edge_drain_rate", "gauge", "Events acknowledged per second over the last 10 s.");
        textbuf_printf(out, "vigil_edge_drain_rate %.3f\n", us.drain_rate_per_s);
        metric_head(out, "vigil_edge_cloud_round_trip_seconds", "histogram",
                    "Upload to the cloud until its answer, for uploads answered 2xx.");
        int64_t cumulative = 0;
        for (int b = 0; b < UPLINK_ROUND_TRIP_BUCKETS; b++) {
            cumulative += us.round_trip_buckets[b];
            textbuf_printf(out, "vigil_edge_cloud_round_trip_seconds_bucket{le=\"%g\"} %lld\n",
                           uplink_round_trip_bounds[b], (long long)cumulative);
        }
        textbuf_printf(out,
                       "vigil_edge_cloud_round_trip_seconds_bucket{le=\"+Inf\"} %lld\n"
                       "vigil_edge_cloud_round_trip_seconds_sum %.6f\n"
                       "vigil_edge_cloud_round_trip_seconds_count %lld\n",
                       (long long)us.round_trip_count, us.round_trip_sum_s, (long long)us.round_trip_count);
    }
    if (rt->role == ROLE_EDGE) {
        metric_head(out, "vigil_edge_escalations_total", "counter", "Events committed to the outbox, by reason.");
        for (int r = POLICY_CLASS; r <= POLICY_SAMPLE; r++)
            textbuf_printf(out, "vigil_edge_escalations_total{reason=\"%s\"} %lld\n",
                           policy_reason_name((policy_reason)r), (long long)atomic_load(&rt->escalations[r]));
        metric_head(out, "vigil_edge_escalations_dropped_total", "counter",
                    "Escalated frames never committed: queue full, over the source's rate, commit failed.");
        textbuf_printf(out,
                       "vigil_edge_escalations_dropped_total{reason=\"queue_full\"} %lld\n"
                       "vigil_edge_escalations_dropped_total{reason=\"rate_limit\"} %lld\n"
                       "vigil_edge_escalations_dropped_total{reason=\"commit_failed\"} %lld\n",
                       (long long)atomic_load(&rt->dropped_queue), (long long)atomic_load(&rt->dropped_rate),
                       (long long)atomic_load(&rt->commit_failed));
        pthread_mutex_lock(&rt->lock);
        size_t depth = rt->depth;
        pthread_mutex_unlock(&rt->lock);
        metric_head(out, "vigil_edge_queue_depth", "gauge", "Escalated frames waiting to be committed.");
        textbuf_printf(out, "vigil_edge_queue_depth %zu\n", depth);
        metric_head(out, "vigil_edge_verdicts_total", "counter", "Verdicts received from the cloud.");
        textbuf_printf(out, "vigil_edge_verdicts_total %lld\n", (long long)atomic_load(&rt->verdicts));
    }
}

/* ------------------------------------------------------------ routes */

static void route_status(void *ctx, server_call *call) {
    edge_runtime *rt = ctx;
    server_call_set_route(call, "/api/v1/edge/status");
    char *text = edge_status_json(rt);
    if (!text) {
        server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    server_call_respond_json(call, 200, text);
    free(text);
}

static int parse_int64(const char *text, int64_t *out) {
    if (!text || !*text) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

static void route_events(void *ctx, server_call *call) {
    edge_runtime *rt = ctx;
    const char *rest = server_call_path(call);
    vigil_error err = {0};
    char *json = NULL;
    if (rest[0] == '/' && rest[1]) {
        server_call_set_route(call, "/api/v1/events/{id}");
        const char *id = rest + 1;
        if (!edge_uuid_valid(id)) {
            server_call_error_code(call, 400, "an event id is a lower-case UUID");
            return;
        }
        if (outbox_event_json(rt->box, id, &json, &err)) {
            server_call_error(call, err.status, err.message);
            return;
        }
    } else {
        static const char *const known[] = {"since", "limit", NULL};
        const char *unknown = server_call_query_unknown(call, known);
        if (unknown) {
            char message[160];
            snprintf(message, sizeof message, "unknown query parameter '%.64s': /api/v1/events takes since and limit",
                     unknown);
            server_call_error_code(call, 400, message);
            return;
        }
        int64_t since = 0, limit = 100;
        const char *s = server_call_query(call, "since"), *l = server_call_query(call, "limit");
        if ((s && (!parse_int64(s, &since) || since < 0)) || (l && (!parse_int64(l, &limit) || limit < 1 || limit > 10000))) {
            server_call_error_code(call, 400, "since must be unix milliseconds >= 0 and limit an integer in [1, 10000]");
            return;
        }
        if (outbox_events_since_json(rt->box, since, (int)limit, &json, &err)) {
            server_call_error(call, err.status, err.message);
            return;
        }
    }
    server_call_respond_json(call, 200, json);
    free(json);
}

/* ------------------------------------------------------------ create */

/* A secret kept in a file (edge.token_file, edge.mqtt.password_file),
 * trailing whitespace dropped; setting names the setting in messages. */
static char *read_token(const char *setting, const char *path, vigil_error *err) {
    char *token = NULL;
    return keys_read_text_secret(path, 8192, setting, &token, NULL, err) == VIGIL_OK ? token : NULL;
}

static vigil_status start_link(edge_runtime *rt, link_role role, vigil_error *err) {
    const vigil_config *c = &rt->cfg;
    if (c->edge_mqtt_password_file[0] &&
        !(rt->mqtt_password = read_token("edge.mqtt.password_file", c->edge_mqtt_password_file, err)))
        return err->status;
    link_config lc = {
        .username = c->edge_mqtt_username[0] ? c->edge_mqtt_username : NULL,
        .password = rt->mqtt_password,
        .ca_file = c->edge_mqtt_ca_file[0] ? c->edge_mqtt_ca_file : NULL,
        .cert_file = c->edge_mqtt_cert_file[0] ? c->edge_mqtt_cert_file : NULL,
        .key_file = c->edge_mqtt_key_file[0] ? c->edge_mqtt_key_file : NULL,
        .role = role,
        .host = rt->cfg.edge_mqtt_host,
        .port = (int)rt->cfg.edge_mqtt_port,
        .node_id = rt->node_id,
        .prefix = rt->cfg.edge_mqtt_prefix,
        .keepalive_s = (int)rt->cfg.edge_mqtt_keepalive_s,
        .reconnect_max_s = (double)rt->cfg.edge_mqtt_reconnect_max_ms / 1000.0,
        .heartbeat_s = (double)rt->cfg.edge_heartbeat_ms / 1000.0,
        .missed = (int)rt->cfg.edge_heartbeat_missed,
        .rise = (int)rt->cfg.edge_heartbeat_rise,
        .probe = role == LINK_ROLE_EDGE ? probe_cloud : NULL,
        .on_change = on_link_change,
        .ctx = rt,
    };
    return link_create(&lc, rt->clock, &rt->link, err);
}

static vigil_status start_edge(edge_runtime *rt, vigil_server *server, vigil_error *err) {
    const vigil_config *c = &rt->cfg;
    if (mkdir(c->edge_data_dir, 0700) != 0 && errno != EEXIST)
        return vigil_error_set(err, VIGIL_ERR_IO, "edge.data_dir %s: %s", c->edge_data_dir, strerror(errno));
    outbox_limits limits = {0};
    int64_t rows = c->edge_outbox_max_rows ? c->edge_outbox_max_rows : c->edge_peak_events_per_s * EDGE_OUTAGE_S;
    int64_t bytes = c->edge_outbox_max_bytes ? c->edge_outbox_max_bytes : rows * EDGE_AUTO_EVENT_BYTES;
    for (int p = 0; p < EDGE_PRIORITY_CLASSES; p++) {
        limits.max_rows[p] = rows;
        limits.max_bytes[p] = bytes;
    }
    limits.ttl_ms = c->edge_outbox_ttl_s * 1000;
    char path[CONFIG_STR_MAX + 16];
    snprintf(path, sizeof path, "%s/outbox.db", c->edge_data_dir);
    vigil_status st = outbox_open(path, &limits, &rt->box, err);
    if (st) return st;
    outbox_stats os;
    vigil_error serr = {0};
    if (!outbox_stats_get(rt->box, edge_clock_now_ms(rt->clock), &os, &serr) && os.quarantined)
        LOG_W("edge: the outbox database was corrupt and was moved aside to %s; a fresh one serves", os.quarantine_path);
    if (c->edge_token_file[0] && !(rt->token = read_token("edge.token_file", c->edge_token_file, err)))
        return err->status;
    if (c->edge_upload_log_file[0] && !(rt->upload_log = fopen(c->edge_upload_log_file, "a")))
        return vigil_error_set(err, VIGIL_ERR_IO, "edge.upload_log_file %s: %s", c->edge_upload_log_file,
                               strerror(errno));
    uplink_config uc = {
        .cloud_url = c->edge_cloud_url,
        .ca_file = c->edge_ca_file[0] ? c->edge_ca_file : NULL,
        .cert_file = c->edge_cert_file[0] ? c->edge_cert_file : NULL,
        .key_file = c->edge_key_file[0] ? c->edge_key_file : NULL,
        .bearer_token = rt->token,
        .timeout_s = (double)c->edge_uplink_timeout_ms / 1000.0,
        .concurrency = (int)c->edge_uplink_concurrency,
        .backoff_base_s = (double)c->edge_uplink_backoff_base_ms / 1000.0,
        .backoff_max_s = (double)c->edge_uplink_backoff_max_ms / 1000.0,
        .on_verdict = on_verdict,
        .on_attempt = on_attempt,
        .ctx = rt,
    };
    if ((st = uplink_create(&uc, rt->box, rt->clock, &rt->up, err))) return st;
    if (!(rt->limiter = rate_limiter_create(0))) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (pthread_create(&rt->thread, NULL, edge_thread, rt) != 0)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "edge: cannot start the runtime thread");
    rt->thread_started = 1;
    if ((st = start_link(rt, LINK_ROLE_EDGE, err))) return st;
    if ((st = server_route_add(server, "GET", "/api/v1/events", route_events, rt, err))) return st;
    server_set_detect_observer(server, edge_observe, rt);
    return VIGIL_OK;
}

vigil_status edge_create(const vigil_config *cfg, vigil_server *server, edge_runtime **out, vigil_error *err) {
    *out = NULL;
    edge_role role = ROLE_NONE;
    if (strcmp(cfg->edge_role, "edge") == 0) role = ROLE_EDGE;
    else if (strcmp(cfg->edge_role, "cloud") == 0) role = ROLE_CLOUD;
    if (role == ROLE_NONE) return VIGIL_OK;
    edge_runtime *rt = vigil_calloc(1, sizeof *rt);
    if (!rt) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    rt->cfg = *cfg;
    rt->role = role;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->wake, NULL);
    pthread_mutex_init(&rt->log_lock, NULL);
    pthread_mutex_init(&rt->wiring, NULL);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed || seed == 0) seed = UINT64_C(0x9E3779B97F4A7C15);
    atomic_store(&rt->rng, seed);
    if (cfg->edge_node_id[0]) snprintf(rt->node_id, sizeof rt->node_id, "%s", cfg->edge_node_id);
    else if (gethostname(rt->node_id, sizeof rt->node_id - 1) != 0) snprintf(rt->node_id, sizeof rt->node_id, "edge");
    snprintf(rt->verdict_topic, sizeof rt->verdict_topic, "%s/edge/%s/verdicts", cfg->edge_mqtt_prefix, rt->node_id);
    vigil_status st = VIGIL_OK;
    if (!(rt->clock = edge_clock_create(cfg->edge_test_clock_file[0] ? cfg->edge_test_clock_file : NULL)))
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (!st && role == ROLE_EDGE) st = start_edge(rt, server, err);
    if (!st && role == ROLE_CLOUD) st = start_link(rt, LINK_ROLE_CLOUD, err);
    if (!st) st = server_route_add(server, "GET", "/api/v1/edge/status", route_status, rt, err);
    if (!st) st = server_metrics_add(server, edge_metrics, rt, err);
    if (st) {
        server_set_detect_observer(server, NULL, NULL);
        edge_destroy(rt);
        return st;
    }
    LOG_I("edge: role %s, node %s%s%s", role_names[role], rt->node_id, role == ROLE_EDGE ? ", cloud " : "",
          role == ROLE_EDGE ? cfg->edge_cloud_url : "");
    *out = rt;
    return VIGIL_OK;
}

void edge_destroy(edge_runtime *rt) {
    if (!rt) return;
    if (rt->thread_started) {
        pthread_mutex_lock(&rt->lock);
        rt->stopping = 1;
        pthread_cond_broadcast(&rt->wake);
        pthread_mutex_unlock(&rt->lock);
        pthread_join(rt->thread, NULL); /* commits what was queued */
    }
    /* The link first (its thread probes the uplink), unhooked from on_verdict;
     * then the uplink, whose rows in flight go back to pending. */
    pthread_mutex_lock(&rt->wiring);
    link_monitor *link = rt->link;
    rt->link = NULL;
    pthread_mutex_unlock(&rt->wiring);
    if (link) link_destroy(link);
    pthread_mutex_lock(&rt->wiring);
    uplink *up = rt->up;
    rt->up = NULL;
    pthread_mutex_unlock(&rt->wiring);
    if (up) uplink_destroy(up);
    if (rt->box) outbox_close(rt->box);
    rate_limiter_destroy(rt->limiter);
    edge_clock_destroy(rt->clock);
    if (rt->upload_log) fclose(rt->upload_log);
    char *secrets[] = {rt->token, rt->mqtt_password};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (!secrets[i]) continue;
        memset(secrets[i], 0, strlen(secrets[i]));
        vigil_free(secrets[i]);
    }
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->wake);
    pthread_mutex_destroy(&rt->log_lock);
    pthread_mutex_destroy(&rt->wiring);
    vigil_free(rt);
}
