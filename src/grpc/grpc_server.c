/*
 * grpc_server.c - the gRPC listener on gRPC's core C API: one completion
 * queue, a few poller threads, and the call state machines.
 *
 * Every registered method keeps a couple of grpc_server_request_registered_call
 * requests armed; each arrival re-arms one and becomes a gcall.  Unknown
 * methods arrive through grpc_server_request_call and get UNIMPLEMENTED.
 * A gcall is reference-counted: every grpc batch in flight and every
 * scheduler job holds a reference, and the last one frees it.
 *
 * Inference never runs here and the scheduler's worker threads never touch
 * gRPC: a job's done callback only appends the work to a list, and one of
 * the completion threads builds the reply and starts the send batch (the
 * same split as the HTTP side, where the worker resumes the connection).
 *
 * Streams (see grpc_internal.h): answers are kept in a ring of
 * GSTREAM_WINDOW slots indexed by sequence number; only the oldest is
 * written, one write at a time, and the next read is posted only while fewer
 * than GSTREAM_WINDOW messages are read but unwritten.  So a stream holds at
 * most GSTREAM_WINDOW frames in memory whatever the peers do.
 *
 * Shutdown: no new calls; streams stop reading, answer what they have read
 * and end with UNAVAILABLE; after shutdown_timeout_ms what is left is
 * cancelled.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/log.h"
#include "grpc/grpc_frontend.h"
#include "grpc/grpc_internal.h"
#include "serve/spares.h"
#include "serve/trace.h"

#define GRPC_MAX_METHODS 40
#define GRPC_ARMED_PER_METHOD 2
#define GRPC_MAX_THREADS 8
#define GRPC_ARENA_MIN_CAP (INT64_C(256) << 20)
#define GRPC_LOOKAHEAD_BYTES (256 * 1024) /* per-stream receive window beyond the message being read */

typedef enum gtag_kind { TAG_NEW = 0, TAG_CLOSE, TAG_SEND, TAG_RECV, TAG_SHUTDOWN } gtag_kind;

typedef struct gtag {
    gcall *call;
    gtag_kind kind;
} gtag;

typedef struct gslot {
    int ready;                /* answered, waiting to be written */
    grpc_byte_buffer *buffer; /* NULL = nothing to write */
} gslot;

typedef struct registration {
    const gmethod *method;
    void *handle; /* from grpc_server_register_method */
} registration;

struct gcall {
    grpc_frontend *fe;
    const registration *reg; /* NULL = an unknown method */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_call_details details; /* unknown methods */
    grpc_metadata_array metadata;
    grpc_byte_buffer *payload; /* unary request / last stream message */
    gtag t_new, t_close, t_send, t_recv;

    pthread_mutex_t lock;
    int refs;
    int cancelled;           /* from RECV_CLOSE_ON_SERVER */
    int status_sent;
    int sent_initial;
    grpc_byte_buffer *sending;
    grpc_slice status_details;
    int have_details;

    /* for the finish step (request_finish): one access line per call */
    int64_t start_ns;
    char request_id[REQUEST_ID_SIZE];
    char model[MODEL_NAME_MAX]; /* the last model a handler acquired */
    size_t bytes_in, bytes_out; /* message bytes received and sent */
    trace_request trace;        /* the call's spans (trace.h); a stream is one server span */
    char traceparent[TRACEPARENT_LEN + 1]; /* sent back in the initial metadata (lives with the call) */
    grpc_metadata initial_md;

    /* the message a handle call runs on (gwork_hold_message); one at a
     * time: a stream posts its next read after the handler returned */
    grpc_slice handling;
    grpc_byte_buffer *handling_pieces; /* a handle_pieces call's message; NULL once a work item took it */

    /* streams */
    uint64_t next_seq, send_seq;
    int recv_pending, send_pending, half_closed;
    gslot slots[GSTREAM_WINDOW];
    gcall *prev, *next; /* live calls, for shutdown */
};

/* Work for completion threads, in order (under grpc_frontend.lock). */
typedef struct gqueue {
    gwork *head, *tail;
    pthread_cond_t cond;
    struct grpc_frontend *fe;
} gqueue;

struct grpc_frontend {
    vigil_server *server;
    grpc_server *gs;
    grpc_completion_queue *cq;
    uint16_t port;
    auth_verifier *auth; /* the HTTP server's verifier (borrowed): one key set, one SIGHUP reload */
    atomic_uint_least64_t tls_generation; /* of the certificates last handed to gRPC */
    atomic_int stopping;
    registration regs[GRPC_MAX_METHODS];
    size_t n_regs;
    pthread_t pollers[GRPC_MAX_THREADS];
    size_t n_pollers;
    pthread_t finishers[GRPC_MAX_THREADS];
    size_t n_finishers;
    gtag t_shutdown;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t cond;
    gqueue done;  /* finished jobs whose answers are large (finisher threads) */
    gqueue admin; /* deferred blocking work: loads, unloads (its own thread, so that an unload
                     waiting for a model's requests never waits for the finishers it holds) */
    pthread_t admin_thread;
    int admin_started;
    int finishers_quit;
    int shutdown_seen;
    gcall *live; /* list of live calls */
    spares frames; /* buffers of the last large messages (frames), for the next ones */
};

static void stream_pump(gcall *c);

/* ------------------------------------------------------------ status */

/* request.h numbers the gRPC codes itself (the table lives in the request
 * layer, which knows no gRPC header); they are the specification's. */
_Static_assert((int)REQUEST_GRPC_OK == GRPC_STATUS_OK && (int)REQUEST_GRPC_INVALID_ARGUMENT == GRPC_STATUS_INVALID_ARGUMENT &&
                   (int)REQUEST_GRPC_DEADLINE_EXCEEDED == GRPC_STATUS_DEADLINE_EXCEEDED &&
                   (int)REQUEST_GRPC_NOT_FOUND == GRPC_STATUS_NOT_FOUND &&
                   (int)REQUEST_GRPC_ALREADY_EXISTS == GRPC_STATUS_ALREADY_EXISTS &&
                   (int)REQUEST_GRPC_PERMISSION_DENIED == GRPC_STATUS_PERMISSION_DENIED &&
                   (int)REQUEST_GRPC_RESOURCE_EXHAUSTED == GRPC_STATUS_RESOURCE_EXHAUSTED &&
                   (int)REQUEST_GRPC_FAILED_PRECONDITION == GRPC_STATUS_FAILED_PRECONDITION &&
                   (int)REQUEST_GRPC_UNIMPLEMENTED == GRPC_STATUS_UNIMPLEMENTED &&
                   (int)REQUEST_GRPC_INTERNAL == GRPC_STATUS_INTERNAL &&
                   (int)REQUEST_GRPC_UNAVAILABLE == GRPC_STATUS_UNAVAILABLE &&
                   (int)REQUEST_GRPC_UNAUTHENTICATED == GRPC_STATUS_UNAUTHENTICATED,
               "request.h's gRPC codes are gRPC's");

grpc_status_code grpc_status_for(vigil_status status) { return (grpc_status_code)request_grpc_code(status); }

/* ------------------------------------------------------------ calls */

static gcall *gcall_create(grpc_frontend *fe, const registration *reg) {
    gcall *c = vigil_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fe = fe;
    c->reg = reg;
    c->t_new = (gtag){c, TAG_NEW};
    c->t_close = (gtag){c, TAG_CLOSE};
    c->t_send = (gtag){c, TAG_SEND};
    c->t_recv = (gtag){c, TAG_RECV};
    grpc_metadata_array_init(&c->metadata);
    grpc_call_details_init(&c->details);
    pthread_mutex_init(&c->lock, NULL);
    c->refs = 1; /* the armed request */
    return c;
}

static void gcall_free(gcall *c) {
    if (c->call) {
        pthread_mutex_lock(&c->fe->lock);
        if (c->prev) c->prev->next = c->next;
        else if (c->fe->live == c) c->fe->live = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&c->fe->lock);
        grpc_call_unref(c->call);
    }
    for (size_t i = 0; i < GSTREAM_WINDOW; i++)
        if (c->slots[i].buffer) grpc_byte_buffer_destroy(c->slots[i].buffer);
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    if (c->sending) grpc_byte_buffer_destroy(c->sending);
    if (c->have_details) grpc_slice_unref(c->status_details);
    grpc_metadata_array_destroy(&c->metadata);
    grpc_call_details_destroy(&c->details);
    pthread_mutex_destroy(&c->lock);
    vigil_free(c);
}

static void gcall_unref(gcall *c) {
    pthread_mutex_lock(&c->lock);
    int left = --c->refs;
    pthread_mutex_unlock(&c->lock);
    if (left == 0) gcall_free(c);
}

vigil_server *gcall_server(const gcall *c) { return c->fe->server; }
int gcall_traceparent(const gcall *c, char *out) { return trace_request_traceparent(&c->trace, out); }
const gmethod *gcall_method(const gcall *c) { return c->reg ? c->reg->method : NULL; }

void gcall_metadata(const gcall *c, const char *key, char *out, size_t size) {
    out[0] = '\0';
    for (size_t i = 0; i < c->metadata.count; i++) {
        const grpc_metadata *md = &c->metadata.metadata[i];
        if (grpc_slice_str_cmp(md->key, key) != 0) continue;
        size_t n = GRPC_SLICE_LENGTH(md->value);
        if (n >= size) n = size - 1;
        memcpy(out, GRPC_SLICE_START_PTR(md->value), n);
        out[n] = '\0';
        return;
    }
}
int gcall_serving(const gcall *c) { return request_serving(c->fe->server) && !atomic_load(&c->fe->stopping); }

int64_t gcall_job_deadline(const gcall *c) {
    int64_t left = -1; /* the client set no deadline */
    gpr_timespec d = gpr_convert_clock_type(c->deadline, GPR_CLOCK_REALTIME);
    if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_REALTIME)) < 0) {
        gpr_timespec span = gpr_time_sub(d, gpr_now(GPR_CLOCK_REALTIME));
        int64_t ns = (int64_t)span.tv_sec * 1000000000 + span.tv_nsec;
        left = ns > 0 ? ns : 0;
    }
    return request_job_deadline(c->fe->server, left);
}

/* Packs message into a byte buffer (NULL when out of memory). */
static grpc_byte_buffer *pack_message(const ProtobufCMessage *message) {
    size_t size = protobuf_c_message_get_packed_size(message);
    uint8_t *data = vigil_malloc(size ? size : 1);
    if (!data) return NULL;
    protobuf_c_message_pack(message, data);
    grpc_slice slice = grpc_slice_new(data, size, vigil_free);
    grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return buffer;
}

/* Starts a batch with a reference for its completion; lock held. */
static void start_batch(gcall *c, grpc_op *ops, size_t n, gtag *tag) {
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e == GRPC_CALL_OK) c->refs++;
    else LOG_E("grpc: start_batch failed (%d) on %s", (int)e, c->reg ? c->reg->method->path : "unknown method");
}

/* Appends SEND_INITIAL_METADATA to ops when not yet sent; lock held. */
static size_t add_initial(gcall *c, grpc_op *ops) {
    if (c->sent_initial) return 0;
    c->sent_initial = 1;
    memset(ops, 0, sizeof *ops);
    ops->op = GRPC_OP_SEND_INITIAL_METADATA;
    if (trace_request_traceparent(&c->trace, c->traceparent)) { /* as REST's response header */
        c->initial_md.key = grpc_slice_from_static_string("traceparent");
        c->initial_md.value = grpc_slice_from_static_buffer(c->traceparent, TRACEPARENT_LEN);
        ops->data.send_initial_metadata.count = 1;
        ops->data.send_initial_metadata.metadata = &c->initial_md;
    }
    return 1;
}

/* The request layer's finish step for the call: counted under the HTTP code
 * the REST side would have answered (http), one access line.  Lock held. */
static void call_finish(gcall *c, grpc_status_code code, int http) {
    char path[256];
    if (c->reg) snprintf(path, sizeof path, "%s", c->reg->method->path);
    else snprintf(path, sizeof path, "%.*s", (int)GRPC_SLICE_LENGTH(c->details.method),
                  (const char *)GRPC_SLICE_START_PTR(c->details.method));
    request_record r = {.grpc = 1,
                        .request_id = c->request_id,
                        .method = "POST",
                        .path = path,
                        .route = c->reg ? c->reg->method->path : "grpc unknown method",
                        .status = http,
                        .grpc_code = (int)code,
                        .bytes_in = c->bytes_in,
                        .bytes_out = c->bytes_out,
                        .start_ns = c->start_ns,
                        .model = c->model,
                        .trace = &c->trace};
    request_finish(c->fe->server, &r);
}

/* Sends status (and message, unary) and finishes the request; lock held. */
static void send_final(gcall *c, grpc_byte_buffer *message, grpc_status_code code, int http, const char *details) {
    grpc_op ops[3];
    size_t n = add_initial(c, ops);
    if (message) {
        memset(&ops[n], 0, sizeof ops[n]);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = message;
        c->sending = message;
        c->bytes_out += grpc_byte_buffer_length(message);
        n++;
    }
    c->status_details = grpc_slice_from_copied_string(details ? details : "");
    c->have_details = 1;
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    c->status_sent = 1;
    start_batch(c, ops, n, &c->t_send);
    call_finish(c, code, http);
}

/* send_final for a vigil status, by the request layer's table; lock held. */
static void send_status(gcall *c, grpc_byte_buffer *message, vigil_status status, const char *details) {
    send_final(c, message, grpc_status_for(status), request_http_status(status), details);
}

void gcall_reply(gcall *c, const ProtobufCMessage *message) {
    grpc_byte_buffer *buffer = pack_message(message);
    pthread_mutex_lock(&c->lock);
    if (c->status_sent) {
        if (buffer) grpc_byte_buffer_destroy(buffer);
    } else if (!buffer) {
        send_status(c, NULL, VIGIL_ERR_NO_MEMORY, "out of memory packing the response");
    } else {
        send_status(c, buffer, VIGIL_OK, NULL);
    }
    pthread_mutex_unlock(&c->lock);
}

void gcall_fail(gcall *c, vigil_status status, const char *message) {
    pthread_mutex_lock(&c->lock);
    if (!c->status_sent) send_status(c, NULL, status, message);
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------ streams */

void gstream_answer(gcall *c, uint64_t seq, const ProtobufCMessage *message) {
    grpc_byte_buffer *buffer = message ? pack_message(message) : NULL;
    pthread_mutex_lock(&c->lock);
    gslot *slot = &c->slots[seq % GSTREAM_WINDOW];
    slot->ready = 1;
    slot->buffer = buffer;
    stream_pump(c);
    pthread_mutex_unlock(&c->lock);
}

/* Moves a stream on: writes the next answer, posts the next read, or ends
 * the call.  Lock held. */
static void stream_pump(gcall *c) {
    if (c->status_sent) return;
    int stopping = atomic_load(&c->fe->stopping);
    while (!c->send_pending && c->send_seq < c->next_seq && c->slots[c->send_seq % GSTREAM_WINDOW].ready) {
        gslot *slot = &c->slots[c->send_seq % GSTREAM_WINDOW];
        grpc_byte_buffer *buffer = slot->buffer;
        slot->ready = 0;
        slot->buffer = NULL;
        c->send_seq++;
        if (!buffer || c->cancelled) {
            if (buffer) grpc_byte_buffer_destroy(buffer);
            continue;
        }
        grpc_op ops[2];
        size_t n = add_initial(c, ops);
        memset(&ops[n], 0, sizeof ops[n]);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = buffer;
        c->sending = buffer;
        c->bytes_out += grpc_byte_buffer_length(buffer);
        c->send_pending = 1;
        start_batch(c, ops, n + 1, &c->t_send);
    }
    if (!c->recv_pending && !c->half_closed && !c->cancelled && !stopping &&
        c->next_seq - c->send_seq < GSTREAM_WINDOW) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->payload;
        c->recv_pending = 1;
        start_batch(c, &op, 1, &c->t_recv);
    }
    if ((c->half_closed || c->cancelled || stopping) && c->send_seq == c->next_seq && !c->send_pending) {
        if (c->half_closed) send_status(c, NULL, VIGIL_OK, NULL);
        else send_status(c, NULL, VIGIL_ERR_UNAVAILABLE, "the server is shutting down");
    }
}

/* A large message's bytes, in a buffer of fe->frames: the header at its
 * start says where it goes back when the slice's last reference goes. */
typedef struct frame_buffer {
    spares *home;
    size_t size;
} frame_buffer;
#define FRAME_HEADER 64

static void frame_buffer_release(void *user) {
    frame_buffer *b = user;
    spares_give(b->home, b, b->size);
}

/* The message's bytes whole, as one slice.  A large uncompressed one (a
 * frame: gRPC hands it over in some 70 slices) is gathered into a kept
 * buffer (spares.h) instead of a fresh one per message. */
static grpc_slice message_bytes(grpc_frontend *fe, grpc_byte_buffer *payload, grpc_byte_buffer_reader *reader) {
    size_t len = grpc_byte_buffer_length(payload), size = 0;
    frame_buffer *b = NULL;
    if (payload->type == GRPC_BB_RAW && payload->data.raw.compression == GRPC_COMPRESS_NONE &&
        len >= SPARES_MIN_BYTES && len <= SPARES_MAX_BYTES - FRAME_HEADER) {
        b = spares_take(&fe->frames, len + FRAME_HEADER, &size);
        if (!b && (b = vigil_malloc(len + FRAME_HEADER))) size = len + FRAME_HEADER;
    }
    if (!b) return grpc_byte_buffer_reader_readall(reader);
    *b = (frame_buffer){&fe->frames, size};
    uint8_t *at = (uint8_t *)b + FRAME_HEADER, *end = at + len;
    grpc_slice piece;
    while (grpc_byte_buffer_reader_next(reader, &piece)) {
        size_t n = GRPC_SLICE_LENGTH(piece);
        if (n > (size_t)(end - at)) n = (size_t)(end - at); /* the length said otherwise: never past the end */
        memcpy(at, GRPC_SLICE_START_PTR(piece), n);
        at += n;
        grpc_slice_unref(piece);
    }
    return grpc_slice_new_with_user_data((uint8_t *)b + FRAME_HEADER, (size_t)(at - ((uint8_t *)b + FRAME_HEADER)),
                                         frame_buffer_release, b);
}

#define PIECES_ON_STACK 128

/* Runs handle_pieces on *payload's slices where they lie, when gRPC kept
 * them as they arrived (uncompressed); 0 when it did not run.  A work item
 * that took the message (gwork_hold_message) leaves *payload NULL. */
static int call_handle_pieces(gcall *c, uint64_t seq, grpc_byte_buffer **payload) {
    grpc_byte_buffer *b = *payload;
    if (b->type != GRPC_BB_RAW || b->data.raw.compression != GRPC_COMPRESS_NONE) return 0;
    const grpc_slice_buffer *sb = &b->data.raw.slice_buffer;
    vigil_piece on_stack[PIECES_ON_STACK];
    vigil_piece *pieces = sb->count <= PIECES_ON_STACK ? on_stack : vigil_malloc(sb->count * sizeof *pieces);
    if (!pieces) return 0;
    for (size_t i = 0; i < sb->count; i++)
        pieces[i] = (vigil_piece){GRPC_SLICE_START_PTR(sb->slices[i]), GRPC_SLICE_LENGTH(sb->slices[i])};
    c->handling_pieces = b;
    c->reg->method->handle_pieces(c, seq, pieces, sb->count);
    if (!c->handling_pieces) *payload = NULL; /* a work item holds it */
    c->handling_pieces = NULL;
    if (pieces != on_stack) vigil_free(pieces);
    return 1;
}

/* Runs the method's handler on the message in *payload (handle: one
 * slice, its bytes whole); 0 when the payload cannot be read. */
static int call_handle(gcall *c, uint64_t seq, grpc_byte_buffer **payload) {
    if (!*payload) return 0;
    if (c->reg->method->handle_pieces && call_handle_pieces(c, seq, payload)) return 1;
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, *payload)) return 0;
    c->handling = message_bytes(c->fe, *payload, &reader);
    grpc_byte_buffer_reader_destroy(&reader);
    const uint8_t *data = GRPC_SLICE_START_PTR(c->handling);
    size_t len = GRPC_SLICE_LENGTH(c->handling);
    if (c->reg->method->handle_pieces) c->reg->method->handle_pieces(c, seq, &(vigil_piece){data, len}, 1);
    else c->reg->method->handle(c, seq, data, len);
    grpc_slice_unref(c->handling);
    c->handling = grpc_empty_slice();
    return 1;
}

/* A stream message arrived (or the client half-closed). */
static void on_recv(gcall *c, int ok) {
    pthread_mutex_lock(&c->lock);
    /* recv_pending stays set until the handler has returned, so that no
     * other thread's stream_pump (an answer sent meanwhile) posts the next
     * read and runs the next message's handler over c->handling */
    grpc_byte_buffer *payload = c->payload;
    c->payload = NULL;
    uint64_t seq = 0;
    int take = ok && payload && !c->status_sent;
    if (payload) c->bytes_in += grpc_byte_buffer_length(payload);
    if (take) seq = c->next_seq++;
    else c->half_closed = 1;
    pthread_mutex_unlock(&c->lock);
    if (take && !call_handle(c, seq, &payload)) gstream_answer(c, seq, NULL);
    if (payload) grpc_byte_buffer_destroy(payload);
    pthread_mutex_lock(&c->lock);
    c->recv_pending = 0;
    stream_pump(c);
    pthread_mutex_unlock(&c->lock);
}

static void on_send(gcall *c) {
    pthread_mutex_lock(&c->lock);
    c->send_pending = 0;
    if (c->sending) grpc_byte_buffer_destroy(c->sending);
    c->sending = NULL;
    stream_pump(c);
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------ arrival */

static void arm(grpc_frontend *fe, const registration *reg) {
    if (atomic_load(&fe->stopping)) return;
    gcall *c = gcall_create(fe, reg);
    if (!c) {
        LOG_E("grpc: out of memory arming a call");
        return;
    }
    grpc_call_error e;
    if (reg)
        e = grpc_server_request_registered_call(fe->gs, reg->handle, &c->call, &c->deadline, &c->metadata,
                                                reg->method->streaming ? NULL : &c->payload, fe->cq, fe->cq, &c->t_new);
    else
        e = grpc_server_request_call(fe->gs, &c->call, &c->details, &c->metadata, fe->cq, fe->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        gcall_free(c);
        if (!atomic_load(&fe->stopping)) LOG_E("grpc: cannot request calls (%d)", (int)e);
    }
}

/* Checks the call's "authorization" metadata against the scope its method
 * needs (auth.mode off accepts everything); on refusal the status is sent.
 * Returns 1 when the call may go on.  Lock held. */
static int call_authorized(gcall *c) {
    if (!auth_enabled(c->fe->auth)) return 1;
    char path[256] = "", *token = NULL;
    if (c->reg) snprintf(path, sizeof path, "%s", c->reg->method->path);
    else snprintf(path, sizeof path, "%.*s", (int)GRPC_SLICE_LENGTH(c->details.method),
                  (const char *)GRPC_SLICE_START_PTR(c->details.method));
    for (size_t i = 0; i < c->metadata.count && !token; i++) {
        const grpc_metadata *md = &c->metadata.metadata[i];
        if (grpc_slice_str_cmp(md->key, "authorization") != 0) continue;
        token = vigil_malloc(GRPC_SLICE_LENGTH(md->value) + 1);
        if (!token) break;
        memcpy(token, GRPC_SLICE_START_PTR(md->value), GRPC_SLICE_LENGTH(md->value));
        token[GRPC_SLICE_LENGTH(md->value)] = '\0';
    }
    auth_result result;
    vigil_status st = auth_check(c->fe->auth, token, auth_grpc_scope(path), &result);
    vigil_free(token);
    if (st) send_status(c, NULL, st, result.message);
    return st == VIGIL_OK;
}

/* Unary: runs the handler on the request message; stream: starts reading. */
static void call_dispatch(gcall *c) {
    if (c->reg->method->streaming) {
        pthread_mutex_lock(&c->lock);
        stream_pump(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (!call_handle(c, 0, &c->payload)) gcall_fail(c, VIGIL_ERR_INVALID_ARGUMENT, "no request message");
}

static void on_new(gcall *c, int ok) {
    grpc_frontend *fe = c->fe;
    if (!ok) { /* shutting down: the request was never matched */
        c->call = NULL;
        gcall_free(c);
        return;
    }
    arm(fe, c->reg);
    c->start_ns = sched_now_ns();
    const grpc_slice *given = NULL;
    for (size_t i = 0; i < c->metadata.count && !given; i++)
        if (grpc_slice_str_cmp(c->metadata.metadata[i].key, "x-request-id") == 0) given = &c->metadata.metadata[i].value;
    request_id_make(given ? (const char *)GRPC_SLICE_START_PTR(*given) : NULL, given ? GRPC_SLICE_LENGTH(*given) : 0,
                    c->request_id);
    tracer *spans = request_tracer(fe->server);
    if (spans) {
        /* one byte over each limit: a longer value reads as invalid, not as a cut-down valid one */
        char traceparent[REQUEST_TRACEPARENT_MAX + 2], tracestate[TRACESTATE_MAX + 2];
        gcall_metadata(c, "traceparent", traceparent, sizeof traceparent);
        gcall_metadata(c, "tracestate", tracestate, sizeof tracestate);
        trace_request_begin(spans, &c->trace, c->start_ns, traceparent, tracestate);
    }
    if (c->payload) c->bytes_in = grpc_byte_buffer_length(c->payload); /* unary: the request message */
    pthread_mutex_lock(&fe->lock);
    c->next = fe->live;
    if (fe->live) fe->live->prev = c;
    fe->live = c;
    pthread_mutex_unlock(&fe->lock);

    pthread_mutex_lock(&c->lock);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    start_batch(c, &op, 1, &c->t_close);
    int go = call_authorized(c);
    /* No vigil_status: an unknown method is gRPC's own UNIMPLEMENTED (501). */
    if (go && !c->reg) send_final(c, NULL, GRPC_STATUS_UNIMPLEMENTED, 501, "vigil does not serve this method");
    pthread_mutex_unlock(&c->lock);
    if (go && c->reg) call_dispatch(c);
    gcall_unref(c); /* the armed request's reference */
}

static void on_close(gcall *c) {
    pthread_mutex_lock(&c->lock);
    if (c->cancelled && !c->status_sent && c->reg && c->reg->method->streaming) stream_pump(c);
    pthread_mutex_unlock(&c->lock);
}

static void *poller_main(void *arg) {
    grpc_frontend *fe = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        gtag *tag = ev.tag;
        if (tag->kind == TAG_SHUTDOWN) {
            pthread_mutex_lock(&fe->lock);
            fe->shutdown_seen = 1;
            pthread_cond_broadcast(&fe->cond);
            pthread_mutex_unlock(&fe->lock);
            continue;
        }
        gcall *c = tag->call;
        switch (tag->kind) {
        case TAG_NEW: on_new(c, ev.success); continue; /* manages its own reference */
        case TAG_CLOSE: on_close(c); break;
        case TAG_SEND: on_send(c); break;
        case TAG_RECV: on_recv(c, ev.success); break;
        default: break;
        }
        gcall_unref(c); /* the batch's reference */
    }
    return NULL;
}

/* ------------------------------------------------------------ work */

gwork *gwork_create(gcall *c, uint64_t seq) {
    gwork *w = vigil_calloc(1, sizeof *w);
    int64_t cap = request_config(c->fe->server)->max_body_bytes * 4;
    if (w) w->arena = arena_create(0, (size_t)(cap > GRPC_ARENA_MIN_CAP ? cap : GRPC_ARENA_MIN_CAP));
    if (w && w->arena) w->job = arena_calloc(w->arena, 1, sizeof *w->job);
    if (!w || !w->job) {
        if (w) arena_destroy(w->arena);
        vigil_free(w);
        return NULL;
    }
    w->call = c;
    w->seq = seq;
    pthread_mutex_lock(&c->lock);
    c->refs++;
    pthread_mutex_unlock(&c->lock);
    return w;
}

void gwork_hold_message(gwork *w) {
    if (w->holds_message) return;
    if (w->call->handling_pieces) { /* taken over: its slices stay where they are */
        w->message_pieces = w->call->handling_pieces;
        w->call->handling_pieces = NULL;
    } else {
        w->message = grpc_slice_ref(w->call->handling);
    }
    w->holds_message = 1;
}

void gwork_drop_message(gwork *w) {
    if (!w->holds_message) return;
    if (w->message_pieces) grpc_byte_buffer_destroy(w->message_pieces);
    else grpc_slice_unref(w->message);
    w->message_pieces = NULL;
    w->holds_message = 0;
}

vigil_status gwork_acquire(gwork *w, const char *model, int64_t version, vigil_error *err) {
    pthread_mutex_lock(&w->call->lock); /* for the access line */
    snprintf(w->call->model, sizeof w->call->model, "%s", model ? model : "");
    pthread_mutex_unlock(&w->call->lock);
    return request_acquire(w->call->fe->server, model, version, &w->served, err);
}

void gwork_destroy(gwork *w) {
    if (!w) return;
    repository_release(request_repository(w->call->fe->server), w->served);
    gwork_drop_message(w);
    arena_destroy(w->arena);
    gcall_unref(w->call);
    vigil_free(w);
}

/* A finished job's answer, on whichever thread runs it. */
static void work_answer(gwork *w) {
    if (!w->deferred && !w->call->reg->method->streaming) /* a unary call's one job: its spans */
        trace_request_job(&w->call->trace, w->job, w->served ? w->served->version : 0);
    w->finish(w);
    w->finish = NULL;
}

/* On a completion thread: the answer unless it was sent, then the rest. */
static void work_finish(gwork *w) {
    if (w->finish) work_answer(w);
    gwork_destroy(w);
}

/* Worker thread: finish here when the answer is small (finish_inline),
 * else hand the work to a completion thread. */
static void work_queue(gqueue *q, gwork *w) {
    pthread_mutex_lock(&q->fe->lock);
    w->next = NULL;
    if (q->tail) q->tail->next = w;
    else q->head = w;
    q->tail = w;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->fe->lock);
}

static void work_done(sched_job *job) {
    gwork *w = job->user;
    grpc_frontend *fe = w->call->fe;
    if (!w->finish_inline) {
        work_queue(&fe->done, w);
        return;
    }
    work_answer(w);
    /* The model's last reference (a version retired meanwhile) is never let
     * go on its own worker: freeing the version joins its workers.  Then a
     * completion thread does the rest. */
    if (!repository_release_shared(request_repository(fe->server), w->served)) {
        work_queue(&fe->done, w);
        return;
    }
    w->served = NULL;
    gwork_destroy(w);
}

void gwork_defer(gwork *w, void (*run)(gwork *w)) {
    w->finish = run;
    w->deferred = 1;
    work_queue(&w->call->fe->admin, w);
}

void gwork_submit(gwork *w, void (*finish)(gwork *w)) {
    sched_job *job = w->job;
    job->arena = w->arena;
    job->done = work_done;
    job->user = w;
    job->deadline_ns = gcall_job_deadline(w->call);
    trace_request_tag_job(&w->call->trace, job);
    w->finish = finish;
    vigil_error err = {0};
    if (request_submit(w->call->fe->server, w->served, job, &err)) {
        job->status = err.status;
        job->error = err;
        finish(w);
        gwork_destroy(w);
    }
}

/* A completion thread of queue arg: until finishers_quit and the queue is empty. */
static void *finisher_main(void *arg) {
    gqueue *q = arg;
    grpc_frontend *fe = q->fe;
    pthread_mutex_lock(&fe->lock);
    for (;;) {
        while (!q->head && !fe->finishers_quit) pthread_cond_wait(&q->cond, &fe->lock);
        gwork *w = q->head;
        if (!w) break;
        q->head = w->next;
        if (!q->head) q->tail = NULL;
        pthread_mutex_unlock(&fe->lock);
        work_finish(w);
        pthread_mutex_lock(&fe->lock);
    }
    pthread_mutex_unlock(&fe->lock);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static vigil_status register_methods(grpc_frontend *fe, const gmethod *methods, vigil_error *err) {
    for (const gmethod *m = methods; m->path; m++) {
        if (fe->n_regs == GRPC_MAX_METHODS)
            return vigil_error_set(err, VIGIL_ERR_INTERNAL, "grpc: too many methods (raise GRPC_MAX_METHODS)");
        void *handle = grpc_server_register_method(
            fe->gs, m->path, NULL, m->streaming ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!handle) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "grpc: cannot register %s", m->path);
        fe->regs[fe->n_regs++] = (registration){m, handle};
    }
    return VIGIL_OK;
}

/* gRPC asks for its certificate configuration at start and before each
 * handshake; a new one is handed over whenever the server's TLS material
 * has been reloaded (SIGHUP) since the last.  Called from gRPC's threads. */
static grpc_ssl_certificate_config_reload_status fetch_certificates(void *user,
                                                                   grpc_ssl_server_certificate_config **config) {
    grpc_frontend *fe = user;
    tls_material *tls = request_tls(fe->server);
    if (tls_material_generation(tls) == atomic_load(&fe->tls_generation))
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    char *cert, *key, *ca;
    uint64_t generation;
    if (tls_material_copy(tls, &cert, &key, &ca, &generation)) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    /* gRPC insists on root certificates in a reloaded configuration even
     * when it requests no client certificate; they are unused then. */
    *config = grpc_ssl_server_certificate_config_create(ca ? ca : cert, &pair, 1); /* copies the texts */
    memset(key, 0, strlen(key));
    vigil_free(cert);
    vigil_free(key);
    vigil_free(ca);
    atomic_store(&fe->tls_generation, generation);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

/* TLS with the server's tls.* material (mTLS with a client CA), reloaded on
 * SIGHUP; plaintext when tls.cert_file is unset.  NULL (err set) on failure. */
static grpc_server_credentials *frontend_credentials(grpc_frontend *fe, vigil_error *err) {
    if (!request_tls(fe->server)) return grpc_insecure_server_credentials_create();
    grpc_ssl_server_credentials_options *options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
        tls_client_ca_pem(request_tls(fe->server)) ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        fetch_certificates, fe);
    grpc_server_credentials *creds = options ? grpc_ssl_server_credentials_create_with_options(options) : NULL;
    if (!creds) vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "grpc: the tls.* files are not a usable certificate and key");
    return creds;
}

static vigil_status frontend_bind(grpc_frontend *fe, const vigil_config *cfg, vigil_error *err) {
    char addr[CONFIG_STR_MAX + 16];
    if (strchr(cfg->host, ':')) snprintf(addr, sizeof addr, "[%s]:%lld", cfg->host, (long long)cfg->grpc_port);
    else snprintf(addr, sizeof addr, "%s:%lld", cfg->host, (long long)cfg->grpc_port);
    grpc_server_credentials *creds = frontend_credentials(fe, err);
    if (!creds) return err->status;
    int port = grpc_server_add_http2_port(fe->gs, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        /* Say why in the words server_port_check uses (setting and flag). */
        vigil_status st = server_port_check(cfg->host, cfg->grpc_port, "gRPC", "grpc.port", err);
        if (st) return st;
        return vigil_error_set(err, VIGIL_ERR_IO, "grpc: cannot listen on %s", addr);
    }
    fe->port = (uint16_t)port;
    return VIGIL_OK;
}

/* gRPC core's own messages (errors only, at its default verbosity) go
 * through vigil's log, so that log.format governs them like every line. */
static void grpc_log_bridge(gpr_log_func_args *args) {
    log_level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LOG_ERROR
                      : args->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO
                                                                : LOG_DEBUG;
    if (level >= log_min_level()) log_write(level, args->file, args->line, "grpc core: %s", args->message);
}

/* grpc.threads pollers share one completion queue: each event goes to
 * whichever waits, so every thread beyond what the load needs adds context
 * switches (Hailo bench, 4 gRPC streams of 0.9 MB frames: 2.5 switches a
 * frame among the pollers with 1 thread, 5.5 with 2, 6.7 with 4).  One by
 * default: handlers never wait (a load or unload is deferred to the admin
 * thread, answers are sent by the workers), and one thread reads and
 * parses far more frames a second than a device runs.  One queue per
 * poller was tried: gRPC's event engine reads on whichever thread polls,
 * then wakes the call's queue's owner (8 switches a frame with 4). */
static size_t thread_count(const vigil_config *cfg) {
    int64_t n = cfg->grpc_threads > 0 ? cfg->grpc_threads : 1;
    return (size_t)(n > GRPC_MAX_THREADS ? GRPC_MAX_THREADS : n);
}

vigil_status grpc_frontend_start(const vigil_config *cfg, vigil_server *server, grpc_frontend **out,
                                 vigil_error *err) {
    grpc_frontend *fe = vigil_calloc(1, sizeof *fe);
    if (!fe) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "grpc: out of memory");
    fe->server = server;
    fe->t_shutdown = (gtag){NULL, TAG_SHUTDOWN};
    pthread_mutex_init(&fe->lock, NULL);
    pthread_cond_init(&fe->cond, NULL);
    fe->done = (gqueue){.fe = fe};
    fe->admin = (gqueue){.fe = fe};
    pthread_cond_init(&fe->done.cond, NULL);
    pthread_cond_init(&fe->admin.cond, NULL);
    spares_init(&fe->frames);
    fe->auth = request_auth(server);
    gpr_set_log_function(grpc_log_bridge);
    grpc_init();
    /* No BDP probing: it lets the transport announce receive windows of many
     * megabytes per stream, buffered whether or not vigil reads; without it a
     * stream's window is the lookahead plus the message being read. */
    grpc_arg args[5] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = cfg->max_body_bytes > INT32_MAX ? INT32_MAX : (int)cfg->max_body_bytes},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, .value.integer = GRPC_LOOKAHEAD_BYTES},
        /* gRPC core binds with SO_REUSEPORT by default: a second vigil on the
         * same port would start and the kernel would split the calls between
         * the two.  One listener per port, as for HTTP. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
    };
    grpc_channel_args channel_args = {5, args};
    fe->gs = grpc_server_create(&channel_args, NULL);
    fe->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(fe->gs, fe->cq, NULL);
    vigil_status st = register_methods(fe, grpc_kserve_methods, err);
    if (!st) st = register_methods(fe, grpc_detect_methods, err);
    if (!st) st = register_methods(fe, grpc_health_methods, err);
    if (!st) st = frontend_bind(fe, cfg, err);
    if (st) {
        grpc_server_destroy(fe->gs);
        grpc_completion_queue_shutdown(fe->cq);
        while (grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(fe->cq);
        grpc_shutdown();
        pthread_cond_destroy(&fe->cond);
        pthread_cond_destroy(&fe->done.cond);
        pthread_cond_destroy(&fe->admin.cond);
        pthread_mutex_destroy(&fe->lock);
        spares_destroy(&fe->frames);
        vigil_free(fe);
        return st;
    }
    grpc_server_start(fe->gs);
    for (size_t i = 0; i < fe->n_regs; i++)
        for (int k = 0; k < GRPC_ARMED_PER_METHOD; k++) arm(fe, &fe->regs[i]);
    arm(fe, NULL);
    size_t n = thread_count(cfg);
    for (size_t i = 0; i < n; i++) {
        if (pthread_create(&fe->pollers[fe->n_pollers], NULL, poller_main, fe) == 0)
            pthread_setname_np(fe->pollers[fe->n_pollers++], "grpc-poll"); /* top -H, perf: who does what */
        if (pthread_create(&fe->finishers[fe->n_finishers], NULL, finisher_main, &fe->done) == 0)
            pthread_setname_np(fe->finishers[fe->n_finishers++], "grpc-finish");
    }
    fe->admin_started = pthread_create(&fe->admin_thread, NULL, finisher_main, &fe->admin) == 0;
    if (fe->admin_started) pthread_setname_np(fe->admin_thread, "grpc-admin");
    LOG_I("listening on grpc%s://%s:%u (%zu methods%s)", cfg->tls_cert_file[0] ? "s" : "", cfg->host, fe->port,
          fe->n_regs, cfg->tls_client_ca_file[0] ? ", client certificates required" : "");
    *out = fe;
    if (!fe->n_pollers || !fe->n_finishers || !fe->admin_started) {
        grpc_frontend_stop(fe);
        *out = NULL;
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "grpc: cannot start threads");
    }
    return VIGIL_OK;
}

uint16_t grpc_frontend_port(const grpc_frontend *fe) { return fe->port; }

/* Lets every live stream notice the shutdown (those waiting only for the
 * client's next message end now). */
static void poke_streams(grpc_frontend *fe) {
    pthread_mutex_lock(&fe->lock);
    for (gcall *c = fe->live; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (c->refs > 0 && c->reg && c->reg->method->streaming) stream_pump(c);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&fe->lock);
}

static int wait_shutdown(grpc_frontend *fe, int64_t timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (timeout_ms % 1000) * 1000000;
    ts.tv_sec += timeout_ms / 1000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&fe->lock);
    while (!fe->shutdown_seen)
        if (pthread_cond_timedwait(&fe->cond, &fe->lock, &ts)) break;
    int seen = fe->shutdown_seen;
    pthread_mutex_unlock(&fe->lock);
    return seen;
}

void grpc_frontend_stop(grpc_frontend *fe) {
    if (!fe) return;
    int64_t t0 = sched_now_ns();
    atomic_store(&fe->stopping, 1);
    grpc_server_shutdown_and_notify(fe->gs, fe->cq, &fe->t_shutdown);
    poke_streams(fe);
    int64_t timeout_ms = request_config(fe->server)->shutdown_timeout_ms;
    if (!wait_shutdown(fe, timeout_ms)) {
        LOG_W("grpc: calls still running after %lld ms; cancelling them", (long long)timeout_ms);
        grpc_server_cancel_all_calls(fe->gs);
        while (!wait_shutdown(fe, 1000)) {
        }
    }
    grpc_server_destroy(fe->gs);
    grpc_completion_queue_shutdown(fe->cq);
    for (size_t i = 0; i < fe->n_pollers; i++) pthread_join(fe->pollers[i], NULL);
    grpc_completion_queue_destroy(fe->cq);
    pthread_mutex_lock(&fe->lock);
    fe->finishers_quit = 1;
    pthread_cond_broadcast(&fe->done.cond);
    pthread_cond_broadcast(&fe->admin.cond);
    pthread_mutex_unlock(&fe->lock);
    for (size_t i = 0; i < fe->n_finishers; i++) pthread_join(fe->finishers[i], NULL);
    if (fe->admin_started) pthread_join(fe->admin_thread, NULL);
    grpc_shutdown();
    pthread_cond_destroy(&fe->cond);
    pthread_cond_destroy(&fe->done.cond);
    pthread_cond_destroy(&fe->admin.cond);
    pthread_mutex_destroy(&fe->lock);
    spares_destroy(&fe->frames); /* every work item, and the message it held, is gone */
    LOG_I("grpc stopped (drained in %.0f ms)", (double)(sched_now_ns() - t0) / 1e6);
    vigil_free(fe);
}
