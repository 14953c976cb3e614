/*
 * stream_response.c - answers with a body of no known end
 * (server_call_respond_stream, server.h): MJPEG live views and the like.
 *
 * The library's I/O threads are a small pool (http.threads) that serves
 * every connection, so a streamed answer may not hold one while it waits
 * for its next frame: a blocking producer would stall every other request
 * on that thread, and four viewers could stall the server.  The body is a
 * libmicrohttpd callback response (MHD_SIZE_UNKNOWN, so HTTP/1.1 gets a
 * chunked body), pulled when the socket can take more; when the producer
 * has nothing, the reader suspends the connection (MHD_suspend_connection
 * is allowed from a content reader) and returns 0, and the producer's
 * server_stream_wake resumes it from its own thread.  A suspended
 * connection costs neither a thread nor a poll.
 *
 * The wake that races with "nothing yet" is kept in `woken`: the reader
 * clears it before asking the producer, and after suspending looks at it
 * again under the lock, resuming at once when a wake came in between.
 * `suspended` is only ever set by the reader on the connection's thread and
 * cleared by whoever resumes, under the same lock, so the connection is
 * resumed exactly once per suspension, and never after it closed: the
 * library does not close a suspended connection, and a connection that is
 * not suspended is never resumed.
 *
 * Ownership: the exchange holds the stream until exchange_send gives it to
 * the library's response (stream_response_create); from then on the
 * response's free callback ends it.  The free callback may run after the
 * exchange is gone (a client that went away: the library reports the
 * completion first), so it touches only the stream and the server's list;
 * the reader, which may touch the exchange (bytes sent), never runs after
 * the completion.
 *
 * Shutdown: libmicrohttpd refuses to stop with suspended connections, so
 * server_stop, after setting `stopping`, wakes every stream in the server's
 * list (stream_end_all); a reader that sees `stopping` ends the body, so
 * each viewer gets a clean end of its chunked body and nothing suspends
 * again.
 */
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "serve/server_internal.h"

/* The buffer the library hands the producer (its upper bound: chunked
 * bodies are framed in the connection's own pool, which may offer less). */
#define STREAM_BLOCK_SIZE (64 * 1024)

struct server_stream {
    vigil_server *server;
    http_exchange *ex; /* the reader's only: valid while the library may call it */
    struct MHD_Connection *conn;
    server_stream_fn produce;
    void *ctx;
    server_stream_free_fn free_ctx;
    pthread_mutex_t lock; /* guards suspended and woken */
    int suspended;        /* the reader suspended the connection; the next wake resumes it */
    int woken;            /* a wake since the reader last asked the producer */
    server_stream *prev, *next;
};

server_stream *stream_attach(http_exchange *ex, int http_status, const char *content_type, server_stream_fn produce,
                             void *ctx, server_stream_free_fn free_ctx) {
    const char *type = arena_strdup(ex->arena, content_type ? content_type : "application/octet-stream");
    server_stream *s = type && produce ? vigil_calloc(1, sizeof *s) : NULL;
    if (!s) {
        if (free_ctx) free_ctx(ctx);
        respond_error(ex, produce ? VIGIL_ERR_UNAVAILABLE : VIGIL_ERR_INTERNAL,
                      produce ? "out of memory" : "a streamed answer needs a producer");
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->server = ex->server;
    s->produce = produce;
    s->ctx = ctx;
    s->free_ctx = free_ctx;
    respond_take(ex, http_status, type, NULL, 0); /* ends a stream set before */
    ex->stream = s;
    return s;
}

void stream_discard(server_stream *s) {
    if (!s) return;
    if (s->free_ctx) s->free_ctx(s->ctx);
    pthread_mutex_destroy(&s->lock);
    vigil_free(s);
}

void server_stream_wake(server_stream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->woken = 1;
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
}

/* The library's content reader, on the connection's I/O thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    server_stream *s = cls;
    pthread_mutex_lock(&s->lock);
    s->woken = 0;
    pthread_mutex_unlock(&s->lock);
    if (atomic_load(&s->server->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
    long n = s->produce(s->ctx, s, buf, max);
    if (n > 0 && (size_t)n <= max) {
        s->ex->resp_len += (size_t)n;
        return (ssize_t)n;
    }
    if (n == SERVER_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n != 0) return MHD_CONTENT_READER_END_WITH_ERROR; /* ABORT, or more than max (a producer's bug) */
    pthread_mutex_lock(&s->lock);
    MHD_suspend_connection(s->conn);
    s->suspended = 1;
    if (s->woken) { /* the news came while the producer was saying there was none */
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* The library is done with the response: the stream ends here. */
static void stream_freed(void *cls) {
    server_stream *s = cls;
    vigil_server *server = s->server;
    pthread_mutex_lock(&server->streams_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        server->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&server->streams_lock);
    stream_discard(s);
}

struct MHD_Response *stream_response_create(http_exchange *ex) {
    server_stream *s = ex->stream;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_read, s, stream_freed);
    if (!resp) return NULL;
    s->ex = ex;
    s->conn = ex->conn;
    vigil_server *server = ex->server;
    pthread_mutex_lock(&server->streams_lock);
    s->next = server->streams;
    if (s->next) s->next->prev = s;
    server->streams = s;
    pthread_mutex_unlock(&server->streams_lock);
    ex->stream = NULL; /* the response's now */
    ex->finish_at_completion = 1;
    return resp;
}

void stream_end_all(vigil_server *server, int64_t timeout_ms) {
    pthread_mutex_lock(&server->streams_lock);
    for (server_stream *s = server->streams; s; s = s->next)
        server_stream_wake(s);
    pthread_mutex_unlock(&server->streams_lock);
    for (int64_t waited = 0; waited < timeout_ms; waited += 5) {
        pthread_mutex_lock(&server->streams_lock);
        int open = server->streams != NULL;
        pthread_mutex_unlock(&server->streams_lock);
        if (!open) return;
        usleep(5000);
    }
}
