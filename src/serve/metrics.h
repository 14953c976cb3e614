/*
 * metrics.h - the server's Prometheus metrics (text exposition format 0.0.4).
 *
 * Counters and histograms live here, keyed by their label values and guarded
 * by one mutex (updates are a few adds per request).  Gauges that belong to
 * other modules (queue length, model state, memory) are appended by the
 * server when it renders /metrics, so they are always current.
 */
#ifndef VIGIL_SERVE_METRICS_H
#define VIGIL_SERVE_METRICS_H

#include "serve/textbuf.h"
#include "vigil/status.h"

typedef struct metrics metrics;

typedef enum metrics_outcome {
    METRICS_SUCCESS = 0,
    METRICS_ERROR,    /* bad input or a failed run */
    METRICS_TIMEOUT,  /* deadline passed before it ran */
    METRICS_REJECTED, /* queue full or model not ready */
    METRICS_OUTCOME_COUNT
} metrics_outcome;

typedef enum metrics_histogram {
    METRICS_QUEUE_SECONDS = 0,
    METRICS_COMPUTE_SECONDS,
    METRICS_TOTAL_SECONDS,
    METRICS_BATCH_SIZE,
    METRICS_HISTOGRAM_COUNT
} metrics_histogram;

vigil_status metrics_create(metrics **out, vigil_error *err);
void metrics_destroy(metrics *m);

/* route is the route pattern ("/v2/models/{m}/infer"), not the raw URL. */
void metrics_http_request(metrics *m, const char *route, int code);
void metrics_inference(metrics *m, const char *model, metrics_outcome outcome);
void metrics_observe(metrics *m, const char *model, metrics_histogram which, double value);
/* A response-cache lookup for model: hit or miss. */
void metrics_cache(metrics *m, const char *model, int hit);

/* Appends every counter and histogram in exposition format. */
void metrics_render(metrics *m, textbuf *out);

#endif
