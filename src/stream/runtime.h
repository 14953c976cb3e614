/*
 * runtime.h - the server's video streams (docs/STREAMS.md): a stream_set
 * holds every stream of one vigil serve, adds their REST routes and their
 * lines of /metrics to the server, and hands each event to a sink that cli
 * sets (MQTT, the edge's escalation).
 *
 * Per stream: a stream_source (source.h: its decode and delivery threads,
 * newest frame wins) whose delivery callback submits the frame, as raw RGB24
 * at the source's size with no copy, as a detection job to the stream's
 * model through the request layer (the model's scheduler and dynamic
 * batching serve every stream and every client together; the job's
 * priority is below an interactive request's), waits for it, runs the
 * tracker (vision/track.h), keeps each track's best snapshot and emits
 * events.  While it waits, the source's mailbox replaces frames (counted as
 * dropped, busy): nothing queues.  A stream's failures (the camera, the
 * model, a bad frame) stay in its state and error; they never stop the
 * daemon or another stream.
 */
#ifndef VIGIL_STREAM_RUNTIME_H
#define VIGIL_STREAM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "serve/server.h"
#include "stream/spec.h"
#include "vigil/status.h"

typedef struct stream_set stream_set;

/* Most streams one server runs. */
#define STREAM_SET_MAX 64

/* One event as it leaves the runtime: json is the event document (the
 * format of GET /api/v1/events, docs/STREAMS.md), type "entered",
 * "updated" or "left", jpeg the track's best snapshot (NULL when none).
 * All borrowed for the call. */
typedef struct stream_event_out {
    const char *stream;
    const char *type;
    const char *json;
    size_t json_len;
    const uint8_t *jpeg;
    size_t jpeg_len;
} stream_event_out;

/* Called on the stream's delivery thread after the event is in the ring:
 * it must be quick (queue, publish without waiting). */
typedef void (*stream_event_fn)(void *ctx, const stream_event_out *event);

/* Creates the set and adds its routes and metrics to server (before
 * server_start).  cfg is read now (stream.events_max); server is borrowed
 * and must outlive the set.  edge_events: 1 when another module serves GET
 * /api/v1/events (edge.role edge, whose outbox history it is): the streams'
 * events are then read at GET /api/v1/streams/{name}/events only.
 * OUT: *out. */
vigil_status stream_set_create(vigil_server *server, const vigil_config *cfg, int edge_events, stream_set **out,
                               vigil_error *err);
/* Sets the one event sink (before any stream is added). */
void stream_set_sink(stream_set *set, stream_event_fn fn, void *ctx);
/* Adds and starts a stream (the config file's, after server_start).
 * VIGIL_ERR_EXISTS for a name taken, VIGIL_ERR_NOT_FOUND for a model the
 * repository does not know, VIGIL_ERR_LIMIT beyond STREAM_SET_MAX. */
vigil_status stream_set_add(stream_set *set, const stream_spec *spec, vigil_error *err);
/* Stops every stream's source (its threads joined) and refuses new ones;
 * the routes still answer.  Before server_stop, so that no frame is in
 * detection while the schedulers drain. */
void stream_set_stop(stream_set *set);
/* Stops every stream and frees the set: after server_stop (no route runs
 * any more), before server_destroy. */
void stream_set_destroy(stream_set *set);

#endif
