/*
 * trace.h - OpenTelemetry spans for the requests the server answers, and
 * the exporter that sends them to a collector over OTLP/HTTP (protobuf).
 *
 * A request keeps a trace_request in its own record (the HTTP exchange, the
 * gRPC call).  It begins with the client's traceparent/tracestate (REST
 * header, gRPC metadata; W3C rules in core/tracecontext.h) or a new trace
 * when there is none or it is invalid, and the sampling decision: a valid
 * parent's sampled flag, else tracing.sampling_ratio on the trace id.  On
 * the hot path only timestamps are taken (the scheduler's per job, a few
 * more here, all plain clock reads into the records); when the request is
 * answered, trace_request_finish copies the record into the exporter's
 * bounded queue, and the exporter thread turns it into spans (otlp.c) and
 * POSTs them in batches.  An unsampled request costs its ids and nothing
 * more; with tracing off (tracer NULL) nothing at all.
 *
 * The spans of one request: the server span (receive to respond, named
 * "<METHOD> <route>" for REST, the gRPC method for gRPC), and as its
 * children, for a request that ran a job: "receive" (arrival to the job's
 * queueing), "queue", "inference" (the batch run, with its batch size),
 * "postprocess" (detection decode and NMS, detection only) and "respond"
 * (the job's completion to the answer handed to the transport).
 *
 * The exporter never blocks a request: a full queue drops the record and
 * counts its spans (vigil_trace_spans_dropped_total{reason="queue_full"});
 * an export that fails is retried only for 429/502/503/504 (Retry-After
 * honoured, capped, with backoff), any other failure drops the batch
 * (reason="export_failed").
 */
#ifndef VIGIL_SERVE_TRACE_H
#define VIGIL_SERVE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/tracecontext.h"
#include "vigil/status.h"

typedef struct tracer tracer;
struct textbuf;
struct sched_job;
struct request_record;

/* What one request keeps for its spans.  Zeroed (calloc) means tracing off
 * for it; filled by trace_request_begin, then the times as they happen. */
typedef struct trace_request {
    int on;                                       /* tracing is on: the ids below are set */
    int sampled;                                  /* the spans are exported */
    int has_parent;                               /* the client sent a valid traceparent */
    tracecontext self;                            /* trace id, this request's server span id, flags */
    uint8_t parent_span_id[TRACE_SPAN_ID_SIZE];   /* the client's span (has_parent) */
    char tracestate[TRACESTATE_MAX + 1];          /* passed on verbatim, "" when none or invalid */
    int64_t start_ns;                             /* CLOCK_MONOTONIC (sched_now_ns) at arrival */
    /* the job's, when the request ran one (trace_request_job); 0 = none */
    int64_t enqueue_ns, run_start_ns, run_end_ns, post_start_ns, post_end_ns;
    int64_t batch_items;                          /* items in the batch the job ran in */
    int64_t model_version;
    int job_failed;
    int64_t respond_ns;                           /* the answer started to be built */
} trace_request;

/* Creates the tracer for cfg's tracing.* settings and starts its exporter
 * thread; *out = NULL (and OK) when tracing.enabled is 0.  Resource
 * attributes: service.name, service.version, host.name, vigil.node_type
 * ("edge" for role edge, else "cloud"). */
vigil_status tracer_create(const vigil_config *cfg, tracer **out, vigil_error *err);
/* Exports what is queued within timeout_ms, then stops the thread (what is
 * left is counted as dropped, reason "shutdown").  Safe to call twice. */
void tracer_stop(tracer *t, int64_t timeout_ms);
/* Stops (no wait) and frees.  NULL is fine. */
void tracer_destroy(tracer *t);
/* The exporter's counters in Prometheus text (a server_metrics_fn). */
void tracer_metrics(void *ctx, struct textbuf *out);

/* Begins r for a request that arrived at start_ns (sched_now_ns) with the
 * given traceparent and tracestate values (NULL or "" when absent).  With
 * t NULL, r->on stays 0 and nothing else happens. */
void trace_request_begin(tracer *t, trace_request *r, int64_t start_ns, const char *traceparent,
                         const char *tracestate);
/* Copies the job's trace id into it (job->trace_id, for exemplars) when r
 * is sampled; call before submitting. */
void trace_request_tag_job(const trace_request *r, struct sched_job *job);
/* Takes the finished job's times (and the model version) into r; call
 * when the job is done, before the answer is built.  Marks the start of
 * the "respond" span. */
void trace_request_job(trace_request *r, const struct sched_job *job, int64_t model_version);
/* This request as a parent for what it calls or answers: a traceparent
 * with its own server span id.  Returns 0 (out untouched) when r is off.
 * OUT: out, TRACEPARENT_LEN + 1 bytes. */
int trace_request_traceparent(const trace_request *r, char *out);
/* The trace id in hex, "" when r is off.  OUT: out, 33 bytes. */
void trace_request_trace_id(const trace_request *r, char *out);
/* The request was answered as rec says: a sampled request's spans go to
 * the exporter's queue (or are counted as dropped when it is full). */
void trace_request_finish(tracer *t, const trace_request *r, const struct request_record *rec);

#endif
