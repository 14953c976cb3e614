/*
 * metrics.h - the server's Prometheus metrics (text exposition format 0.0.4,
 * or OpenMetrics 1.0 with exemplars when the scraper asks for it).
 *
 * Counters and histograms live here, keyed by their label values and guarded
 * by one mutex (updates are a few adds per request).  Gauges that belong to
 * other modules (queue length, model state, memory) are appended by the
 * server when it renders /metrics, so they are always current.  Every
 * per-model series carries model="..." then node_type="edge|cloud" (the
 * metrics.node_type setting) as its first two labels; docs/OBSERVABILITY.md
 * lists the series and which names are a stable interface.
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

/* node_type ("edge" or "cloud") is copied. */
vigil_status metrics_create(metrics **out, const char *node_type, vigil_error *err);
void metrics_destroy(metrics *m);
/* The node_type label value given at creation. */
const char *metrics_node_type(const metrics *m);

/* route is the route pattern ("/v2/models/{m}/infer"), not the raw URL. */
void metrics_http_request(metrics *m, const char *route, int code);
void metrics_inference(metrics *m, const char *model, metrics_outcome outcome);
void metrics_observe(metrics *m, const char *model, metrics_histogram which, double value);
/* metrics_observe that also keeps trace_id_hex (32 lower-case hex digits, not
 * all zero; anything else or NULL is ignored) as the exemplar of the bucket
 * the value falls in, shown in OpenMetrics output. */
void metrics_observe_traced(metrics *m, const char *model, metrics_histogram which, double value,
                            const char *trace_id_hex);
/* A response-cache lookup for model: hit or miss. */
void metrics_cache(metrics *m, const char *model, int hit);

/* Appends every counter and histogram in exposition format; with_exemplars
 * (OpenMetrics only) adds each bucket's exemplar after its value. */
void metrics_render(metrics *m, textbuf *out, int with_exemplars);

/* 1 when an Accept header prefers OpenMetrics (application/openmetrics-text
 * with a q at least that of text/plain); NULL or anything else is 0. */
int metrics_accepts_openmetrics(const char *accept);

/* Rewrites a whole /metrics body in the Prometheus text format into
 * OpenMetrics 1.0 in place: a counter family is named without its _total
 * suffix on its # HELP and # TYPE lines (the samples keep it), and "# EOF"
 * ends the body.  Every module's lines pass through here, so none has to
 * know the format. */
void metrics_to_openmetrics(textbuf *body);

#endif
