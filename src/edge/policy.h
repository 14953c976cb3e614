/*
 * policy.h - the escalation policy: which finished detections an edge vigil
 * sends to the cloud (docs/EDGE.md, "Escalation").
 *
 * A model's config.yaml `escalation:` section (model_escalation, parsed by
 * serve/model_config.c) names three reasons, each with its priority class:
 *   class   a detection of a class of interest (by id or by name);
 *   band    a detection whose score lies in the closed band [lo, hi]: both
 *           edges are uncertain (a score exactly lo or exactly hi escalates);
 *   sample  otherwise, a share sample_rate of the frames, picked by a draw
 *           in [0, 1) that the caller supplies (draw < sample_rate).
 * When several apply, the one with the highest priority (the lowest class
 * number) names the event; ties go class, band, sample in that order.
 * policy_decide is a pure function; the randomness and the time are inputs.
 *
 * The rate limiter is a token bucket per (model, source) on the edge clock:
 * rate tokens per second, a burst of max(1, rate); a frame escalated over the
 * limit is dropped and counted by the caller.  It remembers at most
 * max_sources buckets (the longest idle one is forgotten first), so a client
 * that invents a source per request cannot grow it.
 */
#ifndef VIGIL_EDGE_POLICY_H
#define VIGIL_EDGE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "serve/model_config.h"

typedef enum policy_reason {
    POLICY_NONE = 0,
    POLICY_CLASS = 1,
    POLICY_BAND = 2,
    POLICY_SAMPLE = 3,
} policy_reason;
#define POLICY_REASONS 4

/* One detection as the policy sees it. */
typedef struct policy_detection {
    int64_t class_id;
    const char *class_name; /* NULL when the model names none */
    double score;
} policy_detection;

typedef struct policy_decision {
    policy_reason reason; /* POLICY_NONE: do not escalate */
    int priority;         /* the reason's class, 0 .. 3 */
} policy_decision;

/* The decision for one frame's detections d[0..n); draw in [0, 1). */
policy_decision policy_decide(const model_escalation *e, const policy_detection *d, size_t n, double draw);

/* "class", "band", "sample" ("none" for POLICY_NONE). */
const char *policy_reason_name(policy_reason reason);

typedef struct rate_limiter rate_limiter;

/* NULL when out of memory.  max_sources 0: 1024. */
rate_limiter *rate_limiter_create(size_t max_sources);
void rate_limiter_destroy(rate_limiter *rl);

/* 1 when (model, source) may send one more event at now_ms (a token is
 * taken), 0 when over its rate.  per_second <= 0: always 1.  Thread-safe. */
int rate_limiter_allow(rate_limiter *rl, const char *model, const char *source, double per_second, int64_t now_ms);

#endif
