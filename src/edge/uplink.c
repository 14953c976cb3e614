/*
 * uplink.c - drains the outbox to the cloud with libcurl (see uplink.h).
 *
 * One thread owns a curl multi handle and a fixed array of transfer slots
 * (`concurrency` of them).  Its loop: while online and a slot is free, claim
 * the next row the strict-priority rule allows and start its POST; run the
 * multi handle; settle finished transfers (ack, retry or park); then sleep
 * in curl_multi_poll (transfers running) or on a condition variable (none),
 * until a socket is ready, the next row falls due, or uplink_set_online /
 * uplink_kick / uplink_destroy wakes it (both the condition variable and
 * curl_multi_wakeup are signalled, so either sleep ends at once).
 *
 * The outbox is the only state that matters: a row is inflight there while
 * its transfer runs, and every way a transfer can end puts it somewhere
 * (acked, pending again with a due time, or parked).  A crash leaves it
 * inflight, and the next outbox_open makes it pending again.
 *
 * Connections are reused through the multi handle's connection cache (a new
 * easy handle per transfer picks up an idle connection to the same host).
 * The probe uses its own easy handle on the caller's thread.
 *
 * Memory: the uplink's own structures go through vigil_calloc; curl and the
 * event's buffers (owned by the outbox claim) manage their own.
 */
#include "edge/uplink.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"

#define UPLINK_ANSWER_MAX (4u << 20)      /* bytes of an answer kept; the rest is dropped */
#define UPLINK_WAIT_MAX_MS 1000           /* longest sleep while rows wait out a backoff */
#define UPLINK_IDLE_MS 5000               /* longest sleep with nothing to send (a missed kick) */
#define UPLINK_RETRY_AFTER_MAX_MS 3600000 /* a Retry-After beyond an hour is taken as an hour */
#define UPLINK_RATE_WINDOW 10             /* seconds over which drain_rate_per_s is measured */

typedef struct transfer {
    bool busy;
    CURL *easy;
    curl_mime *mime;
    struct curl_slist *headers;
    edge_event event; /* owned while busy */
    int attempts;     /* sends before this one */
    char *answer;     /* vigil_malloc'd, NUL-terminated */
    size_t answer_len, answer_cap;
    int64_t retry_after_ms; /* -1: none */
    bool replayed;
    char error[CURL_ERROR_SIZE];
} transfer;

struct uplink {
    /* configuration, strings owned */
    uplink_config cfg;
    char *events_url, *probe_url, *auth_header;
    outbox *box;             /* borrowed */
    const edge_clock *clock; /* borrowed */
    CURLM *multi;            /* drain thread only, after create */
    transfer *slots;         /* cfg.concurrency of them, drain thread only */
    uint64_t rng;            /* drain thread only */
    int64_t hold_until_ms;   /* no new transfer before this (edge clock); drain thread only */
    int transport_failures;  /* in a row; drain thread only */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake;
    bool online, stopping, kicked;
    uplink_stats stats;
    int64_t rate_second[UPLINK_RATE_WINDOW]; /* monotonic second each bucket counts */
    int64_t rate_count[UPLINK_RATE_WINDOW];
};

/* ---- pure helpers --------------------------------------------------------------- */

int64_t uplink_backoff_ms(int attempts, double base_s, double max_s, uint64_t random) {
    if (base_s <= 0) base_s = 1;
    if (max_s <= 0) max_s = 300;
    if (attempts < 0) attempts = 0;
    double cap_ms = base_s * 1000.0 * ldexp(1.0, attempts > 60 ? 60 : attempts);
    if (cap_ms > max_s * 1000.0) cap_ms = max_s * 1000.0;
    /* 53 random bits give a uniform double in [0, 1] */
    double unit = (double)(random >> 11) / (double)((1ull << 53) - 1);
    return (int64_t)floor(unit * cap_ms);
}

int64_t uplink_retry_after_ms(const char *value, int64_t now_unix_s) {
    if (!value) return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long seconds = strtoull(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (errno || *end) return -1;
        if (seconds > 365ull * 24 * 3600) seconds = 365ull * 24 * 3600;
        return (int64_t)seconds * 1000;
    }
    char date[128];
    size_t n = strcspn(value, "\r\n");
    if (n == 0 || n >= sizeof date) return -1;
    memcpy(date, value, n);
    date[n] = '\0';
    time_t when = curl_getdate(date, NULL);
    if (when == (time_t)-1) return -1;
    int64_t delta = (int64_t)when - now_unix_s;
    return delta > 0 ? delta * 1000 : 0;
}

static uint64_t rng_next(uint64_t *state) { /* xorshift64* */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int64_t monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* ---- curl setup shared by transfers and the probe ------------------------------------ */

/* Applies what every request needs: TLS, timeouts, no signals (threads). */
static CURLcode easy_common(const uplink *up, CURL *easy, const char *url, char *error, double total_s) {
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_URL, url);
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (rc == CURLE_OK && up->cfg.ca_file) rc = curl_easy_setopt(easy, CURLOPT_CAINFO, up->cfg.ca_file);
    if (rc == CURLE_OK && up->cfg.cert_file) rc = curl_easy_setopt(easy, CURLOPT_SSLCERT, up->cfg.cert_file);
    if (rc == CURLE_OK && up->cfg.key_file) rc = curl_easy_setopt(easy, CURLOPT_SSLKEY, up->cfg.key_file);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(up->cfg.connect_timeout_s * 1000.0));
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(total_s * 1000.0));
    if (rc == CURLE_OK && error) rc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    return rc;
}

static size_t answer_write(char *data, size_t size, size_t count, void *ctx) {
    transfer *t = ctx;
    size_t n = size * count;
    size_t room = UPLINK_ANSWER_MAX - t->answer_len;
    size_t take = n < room ? n : room; /* beyond the cap the answer is cut, the transfer goes on */
    if (take && t->answer_len + take + 1 > t->answer_cap) {
        size_t cap = t->answer_cap ? t->answer_cap : 1024;
        while (cap < t->answer_len + take + 1)
            cap *= 2;
        char *grown = vigil_realloc(t->answer, cap);
        if (!grown) return 0; /* out of memory: the transfer fails and is retried */
        t->answer = grown;
        t->answer_cap = cap;
    }
    if (take) {
        memcpy(t->answer + t->answer_len, data, take);
        t->answer_len += take;
        t->answer[t->answer_len] = '\0';
    }
    return n;
}

static size_t header_seen(char *data, size_t size, size_t count, void *ctx) {
    transfer *t = ctx;
    size_t n = size * count;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (after a 1xx): forget the last */
        t->retry_after_ms = -1;
        t->replayed = false;
        return n;
    }
    char line[256];
    size_t m = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, data, m);
    line[m] = '\0';
    char *colon = strchr(line, ':');
    if (!colon) return n;
    *colon = '\0';
    const char *value = colon + 1;
    if (strcasecmp(line, "Retry-After") == 0) {
        t->retry_after_ms = uplink_retry_after_ms(value, (int64_t)time(NULL));
    } else if (strcasecmp(line, "Idempotent-Replayed") == 0) {
        while (*value == ' ')
            value++;
        t->replayed = strncasecmp(value, "true", 4) == 0;
    }
    return n;
}

/* ---- transfers ------------------------------------------------------------------------ */

static void transfer_clear(uplink *up, transfer *t) {
    if (t->easy) {
        (void)curl_multi_remove_handle(up->multi, t->easy); /* fails only if never added: nothing to undo */
        curl_easy_cleanup(t->easy);
    }
    curl_mime_free(t->mime);
    curl_slist_free_all(t->headers);
    edge_event_clear(&t->event);
    vigil_free(t->answer);
    memset(t, 0, sizeof *t);
}

static struct curl_slist *header_add(struct curl_slist *list, const char *line, bool *failed) {
    if (*failed) return list;
    struct curl_slist *grown = curl_slist_append(list, line);
    if (!grown) {
        *failed = true;
        return list;
    }
    return grown;
}

/* Builds the POST for the claimed event in t and adds it to the multi handle. */
static vigil_status transfer_start(uplink *up, transfer *t, vigil_error *err) {
    t->retry_after_ms = -1;
    t->easy = curl_easy_init();
    if (!t->easy) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "uplink: curl_easy_init failed");
    bool failed = false;
    char line[160];
    snprintf(line, sizeof line, "Idempotency-Key: %s", t->event.id);
    t->headers = header_add(t->headers, line, &failed);
    if (t->event.traceparent[0]) {
        snprintf(line, sizeof line, "traceparent: %s", t->event.traceparent);
        t->headers = header_add(t->headers, line, &failed);
    }
    if (up->auth_header) t->headers = header_add(t->headers, up->auth_header, &failed);
    t->headers = header_add(t->headers, "Accept: application/json", &failed);
    t->headers = header_add(t->headers, "Expect:", &failed); /* no 100-continue round trip */
    if (failed) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "uplink: out of memory for headers");

    t->mime = curl_mime_init(t->easy);
    curl_mimepart *part = t->mime ? curl_mime_addpart(t->mime) : NULL;
    CURLcode rc = part ? CURLE_OK : CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK) rc = curl_mime_name(part, "event");
    if (rc == CURLE_OK) rc = curl_mime_data(part, t->event.json, t->event.json_bytes);
    if (rc == CURLE_OK) rc = curl_mime_type(part, "application/json");
    if (rc == CURLE_OK && t->event.frame) {
        part = curl_mime_addpart(t->mime);
        if (!part) rc = CURLE_OUT_OF_MEMORY;
        snprintf(line, sizeof line, "%s.jpg", t->event.id);
        if (rc == CURLE_OK) rc = curl_mime_name(part, "frame");
        if (rc == CURLE_OK) rc = curl_mime_data(part, (const char *)t->event.frame, t->event.frame_bytes);
        if (rc == CURLE_OK) rc = curl_mime_type(part, "image/jpeg");
        if (rc == CURLE_OK) rc = curl_mime_filename(part, line);
    }
    if (rc == CURLE_OK) rc = easy_common(up, t->easy, up->events_url, t->error, up->cfg.timeout_s);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_MIMEPOST, t->mime);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, answer_write);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, header_seen);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    if (rc != CURLE_OK)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "uplink: preparing the request: %s", curl_easy_strerror(rc));
    CURLMcode mrc = curl_multi_add_handle(up->multi, t->easy);
    if (mrc != CURLM_OK)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "uplink: curl_multi_add_handle: %s", curl_multi_strerror(mrc));
    return VIGIL_OK;
}

static void attempt_report(uplink *up, const transfer *t, int http_status, const char *result) {
    if (up->cfg.on_attempt) up->cfg.on_attempt(up->cfg.ctx, t->event.id, t->event.priority, http_status, result);
}

static void rate_count_ack(uplink *up) {
    int64_t now = monotonic_s();
    int i = (int)(now % UPLINK_RATE_WINDOW);
    if (up->rate_second[i] != now) {
        up->rate_second[i] = now;
        up->rate_count[i] = 0;
    }
    up->rate_count[i]++;
}

/* Puts the row back with a due time; a failure here (the disk) leaves it
 * inflight in the database, which the next start turns back into pending. */
static void row_retry(uplink *up, transfer *t, int64_t next_ms, const char *reason) {
    vigil_error err = {0};
    if (outbox_retry(up->box, t->event.id, next_ms, reason, &err) != VIGIL_OK)
        LOG_E("uplink: event %s could not be rescheduled: %s", t->event.id, err.message);
}

/* The jittered backoff after `attempts` failures, with this uplink's base and cap. */
static int64_t backoff_ms(uplink *up, int attempts) {
    return uplink_backoff_ms(attempts, up->cfg.backoff_base_s, up->cfg.backoff_max_s, rng_next(&up->rng));
}

const double uplink_round_trip_bounds[UPLINK_ROUND_TRIP_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                    0.5,   1,    2.5,   5,    10,  30};

/* Counts one answered upload's round trip (the edge -> cloud panel). Lock held. */
static void round_trip_note(uplink *up, CURL *easy) {
    curl_off_t us = 0;
    if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK) return;
    double seconds = (double)us * 1e-6;
    int b = 0;
    while (b < UPLINK_ROUND_TRIP_BUCKETS && seconds > uplink_round_trip_bounds[b]) b++;
    up->stats.round_trip_buckets[b]++;
    up->stats.round_trip_count++;
    up->stats.round_trip_sum_s += seconds;
}

/* Settles a finished transfer: ack, retry or park, as uplink.h says. */
static void transfer_finish(uplink *up, transfer *t, CURLcode result) {
    int64_t now = edge_clock_now_ms(up->clock);
    long code = 0;
    if (result == CURLE_OK && curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) code = 0;
    vigil_error err = {0};
    char reason[300];
    if (result != CURLE_OK || code == 0) {
        /* no answer: the cloud (or the path to it) is down; hold everything */
        snprintf(reason, sizeof reason, "%s%s%s", curl_easy_strerror(result), t->error[0] ? ": " : "", t->error);
        int64_t delay = backoff_ms(up, t->attempts);
        int64_t hold = backoff_ms(up, up->transport_failures);
        up->transport_failures++;
        if (now + hold > up->hold_until_ms) up->hold_until_ms = now + hold;
        row_retry(up, t, now + delay, reason);
        pthread_mutex_lock(&up->lock);
        up->stats.failed_transport++;
        pthread_mutex_unlock(&up->lock);
        LOG_D("uplink: event %s: no answer (%s); retry in %lld ms", t->event.id, reason, (long long)delay);
        attempt_report(up, t, 0, "error");
        return;
    }
    up->transport_failures = 0;
    if (code >= 200 && code < 300) {
        const char *answer = t->answer ? t->answer : "";
        if (outbox_ack(up->box, t->event.id, answer, now, &err) != VIGIL_OK) {
            /* the cloud has it; the row is sent again later and the receiver replays its answer */
            LOG_E("uplink: event %s answered %ld but not recorded: %s", t->event.id, code, err.message);
            row_retry(up, t, now + backoff_ms(up, t->attempts), "ack not recorded");
            attempt_report(up, t, (int)code, "error");
            return;
        }
        pthread_mutex_lock(&up->lock);
        if (t->replayed)
            up->stats.replayed++;
        else
            up->stats.sent_ok++;
        rate_count_ack(up);
        round_trip_note(up, t->easy);
        pthread_mutex_unlock(&up->lock);
        if (up->cfg.on_verdict) up->cfg.on_verdict(up->cfg.ctx, t->event.id, answer);
        attempt_report(up, t, (int)code, t->replayed ? "replayed" : "ok");
        return;
    }
    /* 409 is retried: the receiver answers it while the first copy of this
     * event is still being processed (an edge that restarted mid-send sends
     * it again), and the next try gets the stored answer */
    if (code >= 400 && code < 500 && code != 408 && code != 409 && code != 429) {
        snprintf(reason, sizeof reason, "http %ld: %.200s", code, t->answer ? t->answer : "");
        if (outbox_park(up->box, t->event.id, (int)code, reason, &err) != VIGIL_OK) {
            LOG_E("uplink: event %s could not be parked: %s", t->event.id, err.message);
            row_retry(up, t, now + (int64_t)(up->cfg.backoff_max_s * 1000.0), "park not recorded");
        }
        pthread_mutex_lock(&up->lock);
        up->stats.parked++;
        pthread_mutex_unlock(&up->lock);
        LOG_W("uplink: event %s refused by the cloud (%s): parked", t->event.id, reason);
        attempt_report(up, t, (int)code, "parked");
        return;
    }
    /* 408, 409, 429, 5xx, and anything else unexpected (1xx, 3xx): retry later */
    int64_t delay;
    if (t->retry_after_ms >= 0) {
        delay = t->retry_after_ms; /* the cloud's word, over backoff_max_s if it says so */
        if (delay > UPLINK_RETRY_AFTER_MAX_MS) delay = UPLINK_RETRY_AFTER_MAX_MS;
        /* 429 and 503 speak for the whole cloud; a Retry-After on anything
         * else (the receiver's 409) for this event only */
        if ((code == 429 || code == 503) && now + delay > up->hold_until_ms) up->hold_until_ms = now + delay;
    } else {
        delay = backoff_ms(up, t->attempts);
    }
    snprintf(reason, sizeof reason, "http %ld", code);
    row_retry(up, t, now + delay, reason);
    pthread_mutex_lock(&up->lock);
    up->stats.retried++;
    pthread_mutex_unlock(&up->lock);
    LOG_D("uplink: event %s: http %ld; retry in %lld ms", t->event.id, code, (long long)delay);
    attempt_report(up, t, (int)code, "retry");
}

/* Ends every running transfer without an answer: rows pending again, due now. */
static void abort_all(uplink *up, const char *why) {
    int64_t now = edge_clock_now_ms(up->clock);
    for (int i = 0; i < up->cfg.concurrency; i++) {
        transfer *t = &up->slots[i];
        if (!t->busy) continue;
        (void)curl_multi_remove_handle(up->multi, t->easy); /* stops the transfer */
        row_retry(up, t, now, why);
        pthread_mutex_lock(&up->lock);
        up->stats.aborted++;
        pthread_mutex_unlock(&up->lock);
        attempt_report(up, t, 0, "aborted");
        transfer_clear(up, t);
    }
}

static int running_count(const uplink *up, int *highest) {
    int n = 0;
    *highest = EDGE_PRIORITY_CLASSES; /* below every class: no limit */
    for (int i = 0; i < up->cfg.concurrency; i++) {
        if (!up->slots[i].busy) continue;
        n++;
        if (up->slots[i].event.priority < *highest) *highest = up->slots[i].event.priority;
    }
    return n;
}

/* Claims and starts rows while slots are free (the strict-priority rule in
 * uplink.h: a claim is limited to the classes at or above every running one). */
static void start_transfers(uplink *up) {
    for (;;) {
        int highest;
        int running = running_count(up, &highest);
        if (running >= up->cfg.concurrency) return;
        int64_t now = edge_clock_now_ms(up->clock);
        if (now < up->hold_until_ms) return;
        transfer *t = NULL;
        for (int i = 0; i < up->cfg.concurrency && !t; i++)
            if (!up->slots[i].busy) t = &up->slots[i];
        int max_priority = highest < EDGE_PRIORITY_CLASSES ? highest : EDGE_PRIORITY_CLASSES - 1;
        bool found = false;
        vigil_error err = {0};
        if (outbox_claim_next(up->box, now, max_priority, &t->event, &found, &t->attempts, &err) != VIGIL_OK) {
            LOG_E("uplink: %s", err.message);
            if (now + 1000 > up->hold_until_ms) up->hold_until_ms = now + 1000; /* the disk: try again soon */
            return;
        }
        if (!found) return;
        t->busy = true;
        if (transfer_start(up, t, &err) != VIGIL_OK) {
            LOG_E("uplink: event %s: %s", t->event.id, err.message);
            row_retry(up, t, now + 1000, err.message);
            transfer_clear(up, t);
            return;
        }
    }
}

static void settle_finished(uplink *up) {
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        transfer *t = NULL;
        if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t) != CURLE_OK || !t) continue;
        CURLcode result = msg->data.result;
        transfer_finish(up, t, result);
        transfer_clear(up, t);
    }
}

/* How long the loop may sleep before something it waits for is due (ms). */
static long wait_budget_ms(uplink *up, bool online) {
    if (!online) return -1; /* until woken */
    int64_t now = edge_clock_now_ms(up->clock);
    int64_t due = outbox_next_due_ms(up->box);
    if (due < up->hold_until_ms) due = up->hold_until_ms;
    if (due == INT64_MAX) return UPLINK_IDLE_MS;
    int64_t wait = due - now;
    if (wait < 0) wait = 0;
    return wait > UPLINK_WAIT_MAX_MS ? UPLINK_WAIT_MAX_MS : (long)wait;
}

static void *drain_main(void *arg) {
    uplink *up = arg;
    bool was_online = false;
    for (;;) {
        pthread_mutex_lock(&up->lock);
        bool stopping = up->stopping, online = up->online;
        up->kicked = false;
        pthread_mutex_unlock(&up->lock);
        if (stopping) break;
        if (!online && was_online) abort_all(up, "offline");
        if (online && !was_online) {
            up->hold_until_ms = 0; /* the link monitor just saw the cloud answer */
            up->transport_failures = 0;
        }
        was_online = online;
        if (online) start_transfers(up);
        int highest;
        if (running_count(up, &highest) == 0) {
            /* start_transfers found nothing it may start; a row due "now" that it
             * could not claim (the clock moved back, a failed claim) must not
             * make this loop spin */
            long budget = wait_budget_ms(up, online);
            if (budget == 0) budget = 10;
            pthread_mutex_lock(&up->lock);
            if (!up->stopping && !up->kicked && up->online == online) {
                if (budget < 0) {
                    pthread_cond_wait(&up->wake, &up->lock);
                } else {
                    struct timespec deadline;
                    clock_gettime(CLOCK_MONOTONIC, &deadline);
                    deadline.tv_sec += budget / 1000;
                    deadline.tv_nsec += (budget % 1000) * 1000000L;
                    if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                    }
                    (void)pthread_cond_timedwait(&up->wake, &up->lock, &deadline); /* timeout is the point */
                }
            }
            pthread_mutex_unlock(&up->lock);
            continue;
        }
        int still = 0;
        CURLMcode mrc = curl_multi_perform(up->multi, &still);
        if (mrc != CURLM_OK) LOG_E("uplink: curl_multi_perform: %s", curl_multi_strerror(mrc));
        settle_finished(up);
        int running = running_count(up, &highest);
        if (running == 0) continue;
        /* Transfers are running.  A row due now that start_transfers left
         * waits for a free slot or for a higher class to finish, and only
         * curl's activity (or a wake) changes either: a due time already past
         * must not turn the poll below into a spin (it did, at a full core
         * and an outbox query per turn, while a drain waited on a slow
         * cloud).  With every slot busy the outbox is not even asked. */
        long budget = running < up->cfg.concurrency ? wait_budget_ms(up, online) : UPLINK_WAIT_MAX_MS;
        if (budget <= 0 || budget > UPLINK_WAIT_MAX_MS) budget = UPLINK_WAIT_MAX_MS;
        mrc = curl_multi_poll(up->multi, NULL, 0, (int)budget, NULL);
        if (mrc != CURLM_OK) LOG_E("uplink: curl_multi_poll: %s", curl_multi_strerror(mrc));
    }
    abort_all(up, "shutdown");
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static char *dup_or_null(const char *s, bool *failed) {
    if (!s || !s[0]) return NULL;
    char *copy = vigil_strdup(s);
    if (!copy) *failed = true;
    return copy;
}

static char *join_url(const char *base, const char *path) {
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    size_t size = n + strlen(path) + 1;
    char *url = vigil_malloc(size);
    if (url) snprintf(url, size, "%.*s%s", (int)n, base, path);
    return url;
}

static void uplink_free(uplink *up) {
    if (up->slots) {
        for (int i = 0; i < up->cfg.concurrency; i++)
            transfer_clear(up, &up->slots[i]);
        vigil_free(up->slots);
    }
    if (up->multi) (void)curl_multi_cleanup(up->multi); /* every handle was removed above */
    vigil_free((char *)up->cfg.cloud_url);
    vigil_free((char *)up->cfg.ca_file);
    vigil_free((char *)up->cfg.cert_file);
    vigil_free((char *)up->cfg.key_file);
    vigil_free((char *)up->cfg.bearer_token);
    vigil_free(up->events_url);
    vigil_free(up->probe_url);
    vigil_free(up->auth_header);
    vigil_free(up);
    curl_global_cleanup();
}

vigil_status uplink_create(const uplink_config *cfg, outbox *box, const edge_clock *clock, uplink **out,
                           vigil_error *err) {
    if (out) *out = NULL;
    if (!cfg || !box || !out || !cfg->cloud_url || !cfg->cloud_url[0])
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "uplink: no cloud_url or outbox");
    if (strncasecmp(cfg->cloud_url, "https://", 8) != 0 && strncasecmp(cfg->cloud_url, "http://", 7) != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "uplink: cloud_url %s is not http:// or https://",
                               cfg->cloud_url);
    /* reference counted and thread-safe in the curl vigil builds against (7.84+) */
    CURLcode grc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (grc != CURLE_OK)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "uplink: curl_global_init: %s", curl_easy_strerror(grc));
    uplink *up = vigil_calloc(1, sizeof *up);
    if (!up) {
        curl_global_cleanup();
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "uplink: out of memory");
    }
    up->cfg = *cfg;
    bool failed = false;
    up->cfg.cloud_url = dup_or_null(cfg->cloud_url, &failed);
    up->cfg.ca_file = dup_or_null(cfg->ca_file, &failed);
    up->cfg.cert_file = dup_or_null(cfg->cert_file, &failed);
    up->cfg.key_file = dup_or_null(cfg->key_file, &failed);
    up->cfg.bearer_token = dup_or_null(cfg->bearer_token, &failed);
    if (up->cfg.connect_timeout_s <= 0) up->cfg.connect_timeout_s = 5;
    if (up->cfg.timeout_s <= 0) up->cfg.timeout_s = 30;
    if (up->cfg.concurrency <= 0) up->cfg.concurrency = 2;
    if (up->cfg.concurrency > 64) up->cfg.concurrency = 64;
    if (up->cfg.backoff_base_s <= 0) up->cfg.backoff_base_s = 1;
    if (up->cfg.backoff_max_s <= 0) up->cfg.backoff_max_s = 300;
    if (up->cfg.backoff_max_s < up->cfg.backoff_base_s) up->cfg.backoff_max_s = up->cfg.backoff_base_s;
    up->box = box;
    up->clock = clock;
    if (!failed && up->cfg.cloud_url) {
        up->events_url = join_url(up->cfg.cloud_url, "/api/v1/events");
        up->probe_url = join_url(up->cfg.cloud_url, "/v2/health/ready");
        failed = !up->events_url || !up->probe_url;
    }
    if (!failed && up->cfg.bearer_token) {
        size_t size = strlen(up->cfg.bearer_token) + 32;
        up->auth_header = vigil_malloc(size);
        if (up->auth_header)
            snprintf(up->auth_header, size, "Authorization: Bearer %s", up->cfg.bearer_token);
        else
            failed = true;
    }
    if (!failed) up->slots = vigil_calloc((size_t)up->cfg.concurrency, sizeof *up->slots);
    if (failed || !up->slots) {
        uplink_free(up);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "uplink: out of memory");
    }
    up->multi = curl_multi_init();
    CURLMcode mrc = up->multi ? CURLM_OK : CURLM_OUT_OF_MEMORY;
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)up->cfg.concurrency);
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(up->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)up->cfg.concurrency);
    if (mrc != CURLM_OK) {
        uplink_free(up);
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "uplink: curl multi handle: %s", curl_multi_strerror(mrc));
    }
    if (getrandom(&up->rng, sizeof up->rng, 0) != (ssize_t)sizeof up->rng || up->rng == 0)
        up->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
    pthread_condattr_t attr;
    int prc = pthread_condattr_init(&attr);
    if (prc == 0) prc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (prc == 0) prc = pthread_cond_init(&up->wake, &attr);
    (void)pthread_condattr_destroy(&attr);
    if (prc == 0 && (prc = pthread_mutex_init(&up->lock, NULL)) != 0) pthread_cond_destroy(&up->wake);
    if (prc != 0) {
        uplink_free(up);
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "uplink: pthread init: %s", strerror(prc));
    }
    prc = pthread_create(&up->thread, NULL, drain_main, up);
    if (prc != 0) {
        pthread_mutex_destroy(&up->lock);
        pthread_cond_destroy(&up->wake);
        uplink_free(up);
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "uplink: cannot start the drain thread: %s", strerror(prc));
    }
    up->thread_started = true;
    *out = up;
    return VIGIL_OK;
}

/* Wakes the drain thread from either sleep. */
static void wake_locked(uplink *up) {
    pthread_cond_signal(&up->wake);
    (void)curl_multi_wakeup(up->multi); /* fails only on a broken multi handle; the cond wakes it anyway */
}

void uplink_destroy(uplink *up) {
    if (!up) return;
    if (up->thread_started) {
        pthread_mutex_lock(&up->lock);
        up->stopping = true;
        wake_locked(up);
        pthread_mutex_unlock(&up->lock);
        pthread_join(up->thread, NULL);
    }
    pthread_mutex_destroy(&up->lock);
    pthread_cond_destroy(&up->wake);
    uplink_free(up);
}

void uplink_set_online(uplink *up, bool online) {
    if (!up) return;
    pthread_mutex_lock(&up->lock);
    if (up->online != online) {
        up->online = online;
        wake_locked(up);
    }
    pthread_mutex_unlock(&up->lock);
}

void uplink_kick(uplink *up) {
    if (!up) return;
    pthread_mutex_lock(&up->lock);
    up->kicked = true;
    if (up->online) wake_locked(up);
    pthread_mutex_unlock(&up->lock);
}

static size_t discard(char *data, size_t size, size_t count, void *ctx) {
    (void)data;
    (void)ctx;
    return size * count;
}

bool uplink_probe(uplink *up) {
    if (!up) return false;
    CURL *easy = curl_easy_init();
    if (!easy) return false;
    char error[CURL_ERROR_SIZE] = "";
    CURLcode rc = easy_common(up, easy, up->probe_url, error, up->cfg.connect_timeout_s);
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    if (rc == CURLE_OK) rc = curl_easy_perform(easy);
    long code = 0;
    if (rc == CURLE_OK && curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) code = 0;
    if (rc != CURLE_OK) LOG_D("uplink: probe %s: %s %s", up->probe_url, curl_easy_strerror(rc), error);
    curl_easy_cleanup(easy);
    return rc == CURLE_OK && code >= 200 && code < 300;
}

void uplink_stats_get(uplink *up, uplink_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!up) return;
    int64_t now = monotonic_s();
    pthread_mutex_lock(&up->lock);
    *out = up->stats;
    int64_t acks = 0;
    for (int i = 0; i < UPLINK_RATE_WINDOW; i++)
        if (now - up->rate_second[i] < UPLINK_RATE_WINDOW) acks += up->rate_count[i];
    pthread_mutex_unlock(&up->lock);
    out->drain_rate_per_s = (double)acks / UPLINK_RATE_WINDOW;
}
