/*
 * otlp.h - the OTLP encoding of finished requests: a batch of trace_items
 * becomes one ExportTraceServiceRequest (opentelemetry-proto
 * collector/trace/v1), the body of POST {endpoint}/v1/traces with
 * Content-Type application/x-protobuf.
 *
 * Only the exporter thread calls otlp_encode; the request threads only
 * fill trace_items (trace.c).  The protobuf is written by hand (a varint,
 * length-delimited and fixed64 writer is all OTLP's trace messages need);
 * the field numbers are those of the official trace.proto, common.proto
 * and resource.proto, and the integration test decodes what we send with
 * those files compiled by protoc.
 */
#ifndef VIGIL_SERVE_OTLP_H
#define VIGIL_SERVE_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "serve/textbuf.h"
#include "serve/trace.h"

/* One answered, sampled request, as queued for the exporter (a copy: the
 * request's own records are gone by the time it is encoded). */
typedef struct trace_item {
    struct trace_item *next;
    trace_request req;
    int64_t end_ns;      /* CLOCK_MONOTONIC: the answer was handed over */
    int grpc;            /* 1: a gRPC call (rpc.* attributes), 0: REST (http.*) */
    int status;          /* the HTTP status (gRPC: the table's) */
    int grpc_code;
    char method[16];
    char route[128];     /* REST: the route pattern; gRPC: the method path */
    char model[128];
    char request_id[65];
    size_t spans;        /* otlp_spans(&req) */
} trace_item;

/* What every span of this process shares (the OTLP Resource). */
typedef struct otlp_resource {
    const char *service_name;
    const char *service_version;
    const char *host_name;
    const char *node_type; /* "edge" | "cloud" */
} otlp_resource;

/* How many spans r makes: the server span and the children its times
 * allow. */
size_t otlp_spans(const trace_request *r);

/* Appends the ExportTraceServiceRequest for items (a list through next)
 * to out; unix_offset_ns turns CLOCK_MONOTONIC into Unix time.  Child
 * span ids are drawn here.  out's status says whether it fit. */
void otlp_encode(const otlp_resource *res, const trace_item *items, int64_t unix_offset_ns, textbuf *out);

#endif
