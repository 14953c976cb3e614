/*
 * stream_internal.h - what runtime.c (the streams, their frames and
 * events) shares with routes.c (their REST API).  Not for other modules.
 */
#ifndef VIGIL_STREAM_INTERNAL_H
#define VIGIL_STREAM_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/runtime.h"

/* Bytes shared by whoever holds a reference: a snapshot held by its track
 * and by the events that name it, the encoded live frame. */
typedef struct stream_blob {
    atomic_int refs;
    size_t len;
    uint8_t data[];
} stream_blob;

void stream_blob_unref(stream_blob *b);

typedef struct stream stream;

/* A stream by name with a reference taken (stream_unref), or NULL. */
stream *stream_set_find(stream_set *set, const char *name);
void stream_unref(stream *s);

/* Replaces a stream's spec (restarting it) or removes it.
 * VIGIL_ERR_NOT_FOUND when there is no such stream. */
vigil_status stream_set_replace(stream_set *set, const stream_spec *spec, vigil_error *err);
vigil_status stream_set_remove(stream_set *set, const char *name, vigil_error *err);

/* {"streams":[S...]} and S (docs/STREAMS.md); NULL when out of memory. */
json_t *stream_set_json(stream_set *set);
json_t *stream_json(stream *s);

/* {"frames":[...]}: the kept results of frames with index > after
 * (vigil_malloc'd text). */
char *stream_detections_text(stream *s, int64_t after, size_t *len);

/* The newest processed frame with its boxes drawn, as JPEG (a reference;
 * encoded by the first caller after the frame came), or NULL before the
 * first.  OUT: *frame its index. */
stream_blob *stream_live_jpeg(stream *s, uint64_t *frame);
/* 1 while the stream runs (not removed, the set not stopping). */
int stream_alive(stream *s);

/* {"events":[E...],"next":seq}: up to limit events with seq > after, of
 * the stream named (NULL: all); vigil_malloc'd text. */
char *stream_events_text(stream_set *set, const char *name, uint64_t after, size_t limit, size_t *len);
/* The snapshot of event id (a reference), or NULL. */
stream_blob *stream_event_snapshot(stream_set *set, const char *id);

/* The live views watching a stream (live.c): the list lives in the
 * stream, guarded by its own lock, which is also the lock under which a
 * viewer's handle is woken (server.h: server_stream_wake). */
typedef struct live_viewer live_viewer;
typedef struct stream_viewers {
    pthread_mutex_t lock;
    live_viewer *head;
} stream_viewers;
stream_viewers *stream_viewers_of(stream *s);
/* Takes a reference on s (released when the view ends). */
void stream_ref(stream *s);

/* live.c: GET /api/v1/streams/{name}/live on call; wakes every viewer of a
 * stream (a new frame, or the stream stopping). */
void stream_live_serve(stream *s, server_call *call);
void stream_live_wake(stream *s);

/* routes.c: adds the REST routes. */
vigil_status stream_routes_add(stream_set *set, vigil_server *server, int edge_events, vigil_error *err);
/* The route prefix that serves event snapshots ("/api/v1/events" or, with
 * the edge's events route, "/api/v1/streams/<name>/events"). */
int stream_set_edge_events(const stream_set *set);

#endif
