/*
 * live.c - GET /api/v1/streams/{name}/live: the processed frames of a
 * stream, boxes and track ids drawn, as MJPEG
 * (multipart/x-mixed-replace; boundary=frame), one part per processed
 * frame, through serve's streamed answers (server_call_respond_stream).
 *
 * The body is pulled on the connection's I/O thread: produce hands out the
 * current part, and when it has sent it and no newer frame is there it
 * answers "nothing yet" and the connection sleeps (no thread, no polling)
 * until the stream's delivery thread publishes a frame and wakes every
 * viewer.  A slow viewer skips frames (it always gets the newest), so
 * nothing queues.  The JPEG of a frame is encoded once, for the first
 * viewer that asks, and shared by reference with the others.
 *
 * Each viewer holds a reference on its stream; the stream's viewer list
 * (stream_viewers, its own lock) is what the waking thread walks, and a
 * viewer leaves it in free_ctx under that lock, so no handle is woken after
 * its answer ended (server.h's rule).
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "stream/stream_internal.h"

struct live_viewer {
    stream *s;
    server_stream *handle; /* valid until free_ctx */
    int has_frame;
    uint64_t frame; /* the last frame sent (or being sent) */
    stream_blob *part_jpeg;
    char head[128];
    size_t head_len, sent; /* bytes of head + jpeg + "\r\n" already written */
    live_viewer *next;
};

static long live_produce(void *ctx, server_stream *handle, char *buf, size_t max) {
    (void)handle;
    live_viewer *v = ctx;
    if (!v->part_jpeg) {
        if (!stream_alive(v->s)) return SERVER_STREAM_END;
        uint64_t frame = 0;
        stream_blob *jpeg = stream_live_jpeg(v->s, &frame);
        if (!jpeg || (v->has_frame && frame <= v->frame)) {
            stream_blob_unref(jpeg);
            return 0; /* nothing new: sleep until stream_live_wake */
        }
        v->part_jpeg = jpeg;
        v->has_frame = 1;
        v->frame = frame;
        v->head_len = (size_t)snprintf(v->head, sizeof v->head,
                                       "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n", jpeg->len);
        v->sent = 0;
    }
    size_t total = v->head_len + v->part_jpeg->len + 2, n = 0;
    while (n < max && v->sent < total) {
        size_t at = v->sent, take;
        const uint8_t *from;
        if (at < v->head_len) {
            from = (const uint8_t *)v->head + at;
            take = v->head_len - at;
        } else if (at < v->head_len + v->part_jpeg->len) {
            from = v->part_jpeg->data + (at - v->head_len);
            take = v->part_jpeg->len - (at - v->head_len);
        } else {
            from = (const uint8_t *)"\r\n" + (at - v->head_len - v->part_jpeg->len);
            take = total - at;
        }
        if (take > max - n) take = max - n;
        memcpy(buf + n, from, take);
        n += take;
        v->sent += take;
    }
    if (v->sent == total) {
        stream_blob_unref(v->part_jpeg);
        v->part_jpeg = NULL;
    }
    return (long)n;
}

static void live_free(void *ctx) {
    live_viewer *v = ctx;
    stream_viewers *list = stream_viewers_of(v->s);
    pthread_mutex_lock(&list->lock);
    for (live_viewer **p = &list->head; *p; p = &(*p)->next)
        if (*p == v) {
            *p = v->next;
            break;
        }
    pthread_mutex_unlock(&list->lock);
    stream_blob_unref(v->part_jpeg);
    stream_unref(v->s);
    vigil_free(v);
}

void stream_live_serve(stream *s, server_call *call) {
    live_viewer *v = vigil_calloc(1, sizeof *v);
    if (!v) {
        server_call_error(call, VIGIL_ERR_NO_MEMORY, "out of memory");
        return;
    }
    stream_ref(s);
    v->s = s;
    stream_viewers *list = stream_viewers_of(s);
    /* In the list before the answer exists, so no frame published in
     * between is missed; handle stays NULL (not woken) until it is set. */
    pthread_mutex_lock(&list->lock);
    v->next = list->head;
    list->head = v;
    pthread_mutex_unlock(&list->lock);
    server_stream *handle = server_call_respond_stream(call, 200, "multipart/x-mixed-replace; boundary=frame",
                                                       live_produce, v, live_free);
    if (!handle) return; /* live_free ran; the answer is a 503 */
    pthread_mutex_lock(&list->lock);
    v->handle = handle;
    pthread_mutex_unlock(&list->lock);
    server_call_header_add(call, "Cache-Control", "no-store");
}

void stream_live_wake(stream *s) {
    stream_viewers *list = stream_viewers_of(s);
    pthread_mutex_lock(&list->lock);
    for (live_viewer *v = list->head; v; v = v->next)
        if (v->handle) server_stream_wake(v->handle);
    pthread_mutex_unlock(&list->lock);
}
