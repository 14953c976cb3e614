/*
 * policy.c - the escalation policy and the per-source rate limiter (see
 * policy.h).
 *
 * The decision reads the detections once and keeps no state, so the serve
 * hook can call it on an I/O thread for every frame.  The limiter is a
 * small open table scanned linearly: a camera fleet has tens to hundreds of
 * sources per edge box, and a scan of 1024 short keys costs less than the
 * JSON parse that precedes it.
 */
#include "edge/policy.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static int class_of_interest(const model_escalation *e, const policy_detection *d) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)d->class_id);
    for (size_t i = 0; i < e->n_classes; i++) {
        if (strcmp(e->classes[i], id) == 0) return 1;
        if (d->class_name && strcmp(e->classes[i], d->class_name) == 0) return 1;
    }
    return 0;
}

policy_decision policy_decide(const model_escalation *e, const policy_detection *d, size_t n, double draw) {
    policy_decision out = {POLICY_NONE, 0};
    if (!e || !e->enabled) return out;
    int any_class = 0, any_band = 0;
    for (size_t i = 0; i < n; i++) {
        if (!any_class && class_of_interest(e, &d[i])) any_class = 1;
        /* Closed band: both edges count as uncertain. */
        if (!any_band && d[i].score >= e->score_band[0] && d[i].score <= e->score_band[1]) any_band = 1;
    }
    int sample = e->sample_rate > 0 && draw < e->sample_rate;
    /* Ties go class, band, sample: the earlier reason says more. */
    const struct {
        int applies;
        policy_reason reason;
        int64_t priority;
    } reasons[] = {{any_class, POLICY_CLASS, e->priority_class},
                   {any_band, POLICY_BAND, e->priority_band},
                   {sample, POLICY_SAMPLE, e->priority_sample}};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        if (!reasons[i].applies) continue;
        if (out.reason == POLICY_NONE || reasons[i].priority < out.priority) {
            out.reason = reasons[i].reason;
            out.priority = (int)reasons[i].priority;
        }
    }
    return out;
}

const char *policy_reason_name(policy_reason reason) {
    switch (reason) {
    case POLICY_CLASS: return "class";
    case POLICY_BAND: return "band";
    case POLICY_SAMPLE: return "sample";
    default: return "none";
    }
}

/* ------------------------------------------------------------ rate limiter */

#define LIMITER_KEY_MAX 192

typedef struct bucket {
    char key[LIMITER_KEY_MAX]; /* model "\n" source; "" = free slot */
    double tokens;
    int64_t last_ms;
} bucket;

struct rate_limiter {
    pthread_mutex_t lock;
    bucket *slots;
    size_t n;
};

rate_limiter *rate_limiter_create(size_t max_sources) {
    rate_limiter *rl = vigil_calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->n = max_sources ? max_sources : 1024;
    rl->slots = vigil_calloc(rl->n, sizeof *rl->slots);
    if (!rl->slots) {
        vigil_free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void rate_limiter_destroy(rate_limiter *rl) {
    if (!rl) return;
    pthread_mutex_destroy(&rl->lock);
    vigil_free(rl->slots);
    vigil_free(rl);
}

int rate_limiter_allow(rate_limiter *rl, const char *model, const char *source, double per_second, int64_t now_ms) {
    if (per_second <= 0) return 1;
    char key[LIMITER_KEY_MAX];
    snprintf(key, sizeof key, "%s\n%s", model ? model : "", source ? source : "");
    double burst = per_second > 1 ? per_second : 1;
    pthread_mutex_lock(&rl->lock);
    bucket *b = NULL, *free_slot = NULL, *idlest = &rl->slots[0];
    for (size_t i = 0; i < rl->n && !b; i++) {
        bucket *s = &rl->slots[i];
        if (!s->key[0]) {
            if (!free_slot) free_slot = s;
        } else if (strcmp(s->key, key) == 0) {
            b = s;
        } else if (s->last_ms < idlest->last_ms) {
            idlest = s;
        }
    }
    if (!b) { /* a new source starts with a full bucket */
        b = free_slot ? free_slot : idlest;
        snprintf(b->key, sizeof b->key, "%s", key);
        b->tokens = burst;
        b->last_ms = now_ms;
    }
    int64_t elapsed = now_ms - b->last_ms; /* a clock that went back refills nothing */
    if (elapsed > 0) {
        b->tokens += (double)elapsed / 1000.0 * per_second;
        if (b->tokens > burst) b->tokens = burst;
        b->last_ms = now_ms;
    }
    int ok = b->tokens >= 1.0;
    if (ok) b->tokens -= 1.0;
    pthread_mutex_unlock(&rl->lock);
    return ok;
}
