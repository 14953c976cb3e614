/*
 * mqtt_out.h - the streams' events on MQTT (docs/STREAMS.md, "MQTT"): one
 * JSON message per event on <prefix>/streams/<name>/events, QoS 1, not
 * retained, from a connection of its own to the broker that stream.mqtt.*
 * (else, under an edge.role, edge.mqtt.*) names.  cli sets stream_mqtt_sink as the stream_set's
 * event sink.
 *
 * Best effort: an event published while the broker is away is counted as
 * dropped (GET /api/v1/events keeps the ring); the connection is retried in
 * the background.
 */
#ifndef VIGIL_STREAM_MQTT_OUT_H
#define VIGIL_STREAM_MQTT_OUT_H

#include "stream/runtime.h"

typedef struct stream_mqtt stream_mqtt;

typedef struct stream_mqtt_config {
    const char *host;
    int port;                        /* <= 0: 1883 */
    const char *prefix;              /* NULL or "": "vigil" */
    const char *username, *password; /* NULL: none */
    const char *ca_file;             /* non-NULL: TLS, the broker verified */
} stream_mqtt_config;

/* Connects in the background (an absent broker is no error here).
 * OUT: *out, the caller's to stream_mqtt_destroy. */
vigil_status stream_mqtt_create(const stream_mqtt_config *cfg, stream_mqtt **out, vigil_error *err);
void stream_mqtt_destroy(stream_mqtt *m);

/* A stream_event_fn: ctx is the stream_mqtt. */
void stream_mqtt_sink(void *ctx, const stream_event_out *event);

/* A server_metrics_fn (ctx: the stream_mqtt): vigil_stream_mqtt_messages_total
 * by result, published (queued to the broker) or dropped (not connected). */
struct textbuf;
void stream_mqtt_metrics(void *ctx, struct textbuf *out);

#endif
