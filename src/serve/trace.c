/*
 * trace.c - request spans and their exporter (see trace.h).
 *
 * Request threads touch the tracer in two places only: the sampling
 * decision when a request begins (a parse of at most one header and a
 * random id, no lock) and, for a sampled request, one copy into the queue
 * under the queue lock when it is answered.  Everything else, the spans'
 * ids, names, attributes and their protobuf, happens on the exporter
 * thread, which wakes when a batch is full or the flush interval passed.
 *
 * The queue is bounded in spans (tracing.queue_size): a record that would
 * cross it is dropped at once and counted, so a collector that is down or
 * slow costs requests nothing; the thread is the only one that waits on
 * the network.  Retries follow the OTLP/HTTP specification: only 429, 502,
 * 503 and 504 are retryable, with the server's Retry-After when it gives
 * one (capped at TRACE_RETRY_AFTER_MAX_MS) and exponential backoff with
 * jitter otherwise, at most TRACE_ATTEMPTS attempts; anything else (a 400,
 * a refused connection, a timeout) drops the batch.  While retrying, new
 * records keep queueing up to the bound.
 *
 * The exporter thread runs in the SCHED_IDLE class: on an edge box the
 * cores belong to inference, and encoding and posting a batch must not
 * take a core from a request that is running (on two cores it did: the
 * mean latency of a trivial request rose by 3-4 % at sampling 1.0 with the
 * exporter at normal priority).  It still gets every idle moment; when
 * the machine is saturated for long the queue fills and spans are dropped
 * and counted, which is the bound's purpose.
 *
 * Times: spans carry Unix nanoseconds, requests take CLOCK_MONOTONIC (the
 * scheduler's clock, already read on the path); the exporter adds the
 * offset between the two clocks, measured per batch.
 */
#include "serve/trace.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "serve/otlp.h"
#include "serve/request.h"
#include "serve/scheduler.h"

#define TRACE_ATTEMPTS 5
#define TRACE_BACKOFF_BASE_MS 100
#define TRACE_BACKOFF_MAX_MS 5000
#define TRACE_RETRY_AFTER_MAX_MS 30000
#define TRACE_BODY_MAX (INT64_C(64) << 20) /* one export request's protobuf */

struct tracer {
    /* settings (copied) */
    char url[CONFIG_STR_MAX + 16];
    double ratio;
    size_t queue_max, batch_max;
    int64_t flush_ms, timeout_ms;
    char service_name[128], host_name[256];
    const char *node_type;
    otlp_resource resource;

    pthread_t thread;
    int started;
    pthread_mutex_t lock; /* the queue and the flags below */
    pthread_cond_t wake;
    trace_item *head, *tail;
    size_t queued_spans;
    int stopping;
    int64_t stop_deadline_ns; /* CLOCK_MONOTONIC; stop flushing then */

    /* counters for /metrics */
    atomic_ullong exported, dropped_full, dropped_failed, dropped_shutdown;
    atomic_ullong requests_ok, requests_retried, requests_failed;
};

/* ------------------------------------------------------------ requests */

void trace_request_begin(tracer *t, trace_request *r, int64_t start_ns, const char *traceparent,
                         const char *tracestate) {
    if (!t) return;
    r->on = 1;
    r->start_ns = start_ns;
    tracecontext parent;
    if (traceparent && tracecontext_parse(traceparent, strlen(traceparent), &parent) == VIGIL_OK) {
        /* parent-based: the caller's decision stands */
        r->has_parent = 1;
        memcpy(r->self.trace_id, parent.trace_id, TRACE_ID_SIZE);
        memcpy(r->parent_span_id, parent.span_id, TRACE_SPAN_ID_SIZE);
        r->sampled = (parent.flags & TRACECONTEXT_SAMPLED) != 0;
        size_t n = tracestate ? strlen(tracestate) : 0;
        if (n && tracecontext_state_valid(tracestate, n)) memcpy(r->tracestate, tracestate, n + 1);
    } else { /* absent or invalid: a new trace, never an error */
        tracecontext_random_id(r->self.trace_id, TRACE_ID_SIZE);
        r->sampled = tracecontext_ratio_sampled(r->self.trace_id, t->ratio);
    }
    tracecontext_random_id(r->self.span_id, TRACE_SPAN_ID_SIZE);
    r->self.flags = r->sampled ? TRACECONTEXT_SAMPLED : 0;
}

void trace_request_tag_job(const trace_request *r, sched_job *job) {
    if (r->sampled) tracecontext_hex(r->self.trace_id, TRACE_ID_SIZE, job->trace_id);
}

void trace_request_job(trace_request *r, const sched_job *job, int64_t model_version) {
    if (!r->sampled) return;
    r->enqueue_ns = job->enqueue_ns;
    r->run_start_ns = job->run_start_ns;
    r->run_end_ns = job->run_end_ns;
    r->post_start_ns = job->post_start_ns;
    r->post_end_ns = job->post_end_ns;
    r->batch_items = job->batch_items;
    r->job_failed = job->status != VIGIL_OK;
    r->model_version = model_version;
    r->respond_ns = sched_now_ns();
}

int trace_request_traceparent(const trace_request *r, char *out) {
    if (!r->on) return 0;
    tracecontext_format(&r->self, out);
    return 1;
}

void trace_request_trace_id(const trace_request *r, char *out) {
    if (r->on) tracecontext_hex(r->self.trace_id, TRACE_ID_SIZE, out);
    else out[0] = '\0';
}

/* Health checks and scrapes come every few seconds from machines, not
 * users: their spans would bury the requests' in a collector. */
static int route_untraced(const char *route) {
    static const char *const quiet[] = {"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready",
                                        "/grpc.health.v1.Health/Check"};
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++)
        if (route && strcmp(route, quiet[i]) == 0) return 1;
    return 0;
}

void trace_request_finish(tracer *t, const trace_request *r, const request_record *rec) {
    if (!t || !r->sampled || route_untraced(rec->route)) return;
    size_t spans = otlp_spans(r);
    trace_item *it = vigil_malloc(sizeof *it);
    if (!it) {
        atomic_fetch_add(&t->dropped_full, spans);
        return;
    }
    it->next = NULL;
    it->req = *r;
    it->end_ns = sched_now_ns();
    it->grpc = rec->grpc;
    it->status = rec->status;
    it->grpc_code = rec->grpc_code;
    it->spans = spans;
    snprintf(it->method, sizeof it->method, "%s", rec->method ? rec->method : "");
    snprintf(it->route, sizeof it->route, "%s", rec->route ? rec->route : "");
    snprintf(it->model, sizeof it->model, "%s", rec->model ? rec->model : "");
    snprintf(it->request_id, sizeof it->request_id, "%s", rec->request_id ? rec->request_id : "");
    pthread_mutex_lock(&t->lock);
    int stopping = t->stopping;
    int take = !stopping && t->queued_spans + spans <= t->queue_max;
    if (take) {
        if (t->tail) t->tail->next = it;
        else t->head = it;
        t->tail = it;
        t->queued_spans += spans;
        if (t->queued_spans >= t->batch_max) pthread_cond_signal(&t->wake);
    }
    pthread_mutex_unlock(&t->lock);
    if (!take) {
        atomic_fetch_add(stopping ? &t->dropped_shutdown : &t->dropped_full, spans);
        vigil_free(it);
    }
}

/* ------------------------------------------------------------ export */

static int64_t unix_offset_ns(void) {
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    return (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec - sched_now_ns();
}

static size_t discard_body(char *data, size_t size, size_t n, void *user) {
    (void)data, (void)user;
    return size * n;
}

/* One POST; returns the HTTP status (0: no answer) and the Retry-After the
 * collector gave, in ms (-1: none). */
static long export_post(tracer *t, CURL *curl, const textbuf *body, int64_t *retry_after_ms) {
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, t->url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "vigil/" VIGIL_VERSION);
    CURLcode rc = curl_easy_perform(curl);
    long code = 0;
    *retry_after_ms = -1;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        /* seconds, from either form of the header; curl says 0 when there is none, so a
         * "Retry-After: 0" is taken as none too (the backoff's short wait) */
        curl_off_t after = 0;
        if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
            *retry_after_ms = after < TRACE_RETRY_AFTER_MAX_MS / 1000 ? (int64_t)after * 1000 : TRACE_RETRY_AFTER_MAX_MS;
    } else {
        LOG_D("tracing: export to %s: %s", t->url, curl_easy_strerror(rc));
    }
    curl_slist_free_all(headers);
    return code;
}

static int retryable(long code) { return code == 429 || code == 502 || code == 503 || code == 504; }

/* Waits ms unless stop's deadline comes first; lock held.  Returns 0 when
 * the wait would pass the deadline (give up), 1 after waiting. */
static int wait_retry(tracer *t, int64_t ms) {
    int64_t until = sched_now_ns() + ms * INT64_C(1000000);
    if (t->stopping && until > t->stop_deadline_ns) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ms * INT64_C(1000000);
    ts.tv_sec = abs / 1000000000, ts.tv_nsec = abs % 1000000000;
    while (sched_now_ns() < until) {
        if (pthread_cond_timedwait(&t->wake, &t->lock, &ts)) break;
        if (t->stopping && until > t->stop_deadline_ns) return 0; /* stop came while waiting */
    }
    return 1;
}

/* Sends one batch (lock held; released around the network). */
static void export_batch(tracer *t, CURL *curl, trace_item *items, size_t spans) {
    pthread_mutex_unlock(&t->lock);
    textbuf body;
    textbuf_init(&body, (size_t)TRACE_BODY_MAX);
    otlp_encode(&t->resource, items, unix_offset_ns(), &body);
    for (trace_item *it = items; it;) {
        trace_item *next = it->next;
        vigil_free(it);
        it = next;
    }
    int delivered = 0;
    if (!body.status && curl) {
        for (int attempt = 0; attempt < TRACE_ATTEMPTS; attempt++) {
            int64_t after;
            long code = export_post(t, curl, &body, &after);
            if (code >= 200 && code < 300) {
                delivered = 1;
                break;
            }
            if (!retryable(code)) {
                if (code) LOG_D("tracing: the collector refused a batch with HTTP %ld; not retried", code);
                break;
            }
            atomic_fetch_add(&t->requests_retried, 1);
            int64_t backoff = TRACE_BACKOFF_BASE_MS << attempt;
            if (backoff > TRACE_BACKOFF_MAX_MS) backoff = TRACE_BACKOFF_MAX_MS;
            uint8_t jitter[2];
            tracecontext_random_id(jitter, sizeof jitter);
            backoff = backoff / 2 + (int64_t)((jitter[0] << 8 | jitter[1]) % (uint32_t)(backoff / 2 + 1));
            pthread_mutex_lock(&t->lock);
            int wait = wait_retry(t, after >= 0 ? after : backoff);
            pthread_mutex_unlock(&t->lock);
            if (!wait) break;
        }
    }
    textbuf_free(&body);
    atomic_fetch_add(delivered ? &t->requests_ok : &t->requests_failed, 1);
    atomic_fetch_add(delivered ? &t->exported : &t->dropped_failed, spans);
    pthread_mutex_lock(&t->lock);
}

/* Takes whole records from the queue, up to batch_max spans (at least one
 * record); lock held. */
static trace_item *queue_take(tracer *t, size_t *spans) {
    trace_item *first = t->head, *last = NULL;
    *spans = 0;
    for (trace_item *it = t->head; it && (*spans == 0 || *spans + it->spans <= t->batch_max); it = it->next) {
        *spans += it->spans;
        last = it;
    }
    if (!last) return NULL;
    t->head = last->next;
    if (!t->head) t->tail = NULL;
    last->next = NULL;
    t->queued_spans -= *spans;
    return first;
}

static void *exporter_main(void *arg) {
    tracer *t = arg;
    struct sched_param idle = {0};
    int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    if (rc != 0) LOG_W("tracing: exporter stays at normal priority (SCHED_IDLE refused: %s)", strerror(rc));
    CURL *curl = curl_easy_init();
    if (!curl) LOG_W("tracing: curl_easy_init failed: spans will be counted as failed");
    pthread_mutex_lock(&t->lock);
    int64_t next_flush = sched_now_ns() + t->flush_ms * INT64_C(1000000);
    for (;;) {
        int64_t now = sched_now_ns();
        if (t->stopping && (!t->head || now >= t->stop_deadline_ns)) break;
        if (t->head && (t->stopping || t->queued_spans >= t->batch_max || now >= next_flush)) {
            size_t spans;
            trace_item *items = queue_take(t, &spans);
            export_batch(t, curl, items, spans);
            if (!t->head || t->queued_spans < t->batch_max)
                next_flush = sched_now_ns() + t->flush_ms * INT64_C(1000000);
            continue;
        }
        if (now >= next_flush) next_flush = now + t->flush_ms * INT64_C(1000000);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (next_flush - now);
        ts.tv_sec = abs / 1000000000, ts.tv_nsec = abs % 1000000000;
        pthread_cond_timedwait(&t->wake, &t->lock, &ts);
    }
    /* what the deadline left */
    size_t left = t->queued_spans;
    for (trace_item *it = t->head; it;) {
        trace_item *next = it->next;
        vigil_free(it);
        it = next;
    }
    t->head = t->tail = NULL;
    t->queued_spans = 0;
    pthread_mutex_unlock(&t->lock);
    atomic_fetch_add(&t->dropped_shutdown, left);
    if (curl) curl_easy_cleanup(curl);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

vigil_status tracer_create(const vigil_config *cfg, tracer **out, vigil_error *err) {
    *out = NULL;
    if (!cfg->tracing_enabled) return VIGIL_OK;
    const char *ep = cfg->tracing_endpoint;
    if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
        char sources[160];
        config_setting_sources("tracing.endpoint", sources, sizeof sources);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tracing endpoint '%s' is not an http:// or https:// URL (%s)",
                               ep, sources);
    }
    /* reference counted and thread-safe in the curl vigil builds against (7.84+) */
    CURLcode grc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (grc != CURLE_OK)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "tracing: curl_global_init: %s", curl_easy_strerror(grc));
    tracer *t = vigil_calloc(1, sizeof *t);
    if (!t) {
        curl_global_cleanup();
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tracing: out of memory");
    }
    size_t len = strlen(ep);
    while (len && ep[len - 1] == '/') len--; /* "http://c:4318/" and "http://c:4318" are one endpoint */
    snprintf(t->url, sizeof t->url, "%.*s/v1/traces", (int)len, ep);
    t->ratio = cfg->tracing_sampling_ratio;
    t->queue_max = (size_t)cfg->tracing_queue_size;
    t->batch_max = (size_t)cfg->tracing_batch_size;
    t->flush_ms = cfg->tracing_flush_interval_ms;
    t->timeout_ms = cfg->tracing_timeout_ms;
    snprintf(t->service_name, sizeof t->service_name, "%s", cfg->tracing_service_name);
    if (gethostname(t->host_name, sizeof t->host_name) != 0) snprintf(t->host_name, sizeof t->host_name, "unknown");
    t->host_name[sizeof t->host_name - 1] = '\0';
    t->node_type = strcmp(cfg->edge_role, "edge") == 0 ? "edge" : "cloud";
    t->resource = (otlp_resource){.service_name = t->service_name,
                                  .service_version = VIGIL_VERSION,
                                  .host_name = t->host_name,
                                  .node_type = t->node_type};
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&t->thread, NULL, exporter_main, t) != 0) {
        tracer_destroy(t);
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "tracing: cannot start the exporter thread");
    }
    t->started = 1;
    LOG_I("tracing on: spans to %s (sampling ratio %g)", t->url, t->ratio);
    *out = t;
    return VIGIL_OK;
}

void tracer_stop(tracer *t, int64_t timeout_ms) {
    if (!t || !t->started) return;
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    t->stop_deadline_ns = sched_now_ns() + timeout_ms * INT64_C(1000000);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    t->started = 0;
}

void tracer_destroy(tracer *t) {
    if (!t) return;
    tracer_stop(t, 0);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    vigil_free(t);
    curl_global_cleanup();
}

void tracer_metrics(void *ctx, textbuf *out) {
    tracer *t = ctx;
    pthread_mutex_lock(&t->lock);
    size_t queued = t->queued_spans;
    pthread_mutex_unlock(&t->lock);
    textbuf_printf(out,
                   "# HELP vigil_trace_spans_exported_total Spans the OTLP collector accepted.\n"
                   "# TYPE vigil_trace_spans_exported_total counter\n"
                   "vigil_trace_spans_exported_total %llu\n"
                   "# HELP vigil_trace_spans_dropped_total Spans lost before a collector accepted them: the "
                   "queue was full, the export failed (after the allowed retries), or shutdown came first.\n"
                   "# TYPE vigil_trace_spans_dropped_total counter\n"
                   "vigil_trace_spans_dropped_total{reason=\"queue_full\"} %llu\n"
                   "vigil_trace_spans_dropped_total{reason=\"export_failed\"} %llu\n"
                   "vigil_trace_spans_dropped_total{reason=\"shutdown\"} %llu\n"
                   "# HELP vigil_trace_export_requests_total OTLP export requests by result (retry: one more "
                   "attempt after a 429/502/503/504).\n"
                   "# TYPE vigil_trace_export_requests_total counter\n"
                   "vigil_trace_export_requests_total{result=\"ok\"} %llu\n"
                   "vigil_trace_export_requests_total{result=\"retry\"} %llu\n"
                   "vigil_trace_export_requests_total{result=\"failed\"} %llu\n"
                   "# HELP vigil_trace_queue_spans Spans waiting for the exporter.\n"
                   "# TYPE vigil_trace_queue_spans gauge\n"
                   "vigil_trace_queue_spans %zu\n",
                   (unsigned long long)atomic_load(&t->exported), (unsigned long long)atomic_load(&t->dropped_full),
                   (unsigned long long)atomic_load(&t->dropped_failed),
                   (unsigned long long)atomic_load(&t->dropped_shutdown),
                   (unsigned long long)atomic_load(&t->requests_ok),
                   (unsigned long long)atomic_load(&t->requests_retried),
                   (unsigned long long)atomic_load(&t->requests_failed), queued);
}
