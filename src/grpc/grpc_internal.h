/*
 * grpc_internal.h - what the gRPC call machinery (grpc_server.c) shares with
 * the service handlers (grpc_kserve.c, grpc_detect.c).
 *
 * A gcall is one RPC.  A unary method's handler gets the request bytes and
 * either answers at once (gcall_reply / gcall_fail), hands a gwork to the
 * model's scheduler (gwork_submit; the scheduler's done callback runs
 * work->finish, building the reply, on the worker for a small answer, else
 * queues the work for a completion thread), or defers blocking work to a
 * completion thread (gwork_defer): a handler never waits, since the few
 * poller threads (grpc.threads) read every call.  A streaming method's handler is called once
 * per received message with a sequence number and answers each with
 * gstream_answer, in any order from any thread: the machinery writes the
 * answers in sequence order, one write at a time, and stops reading while
 * GSTREAM_WINDOW messages are read but not yet written (flow control: a fast
 * sender is held back by HTTP/2, a slow reader holds back the reads).
 */
#ifndef VIGIL_GRPC_INTERNAL_H
#define VIGIL_GRPC_INTERNAL_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "serve/request.h"

#define GSTREAM_WINDOW 8

typedef struct grpc_frontend grpc_frontend;
typedef struct gcall gcall;
typedef struct gwork gwork;

typedef struct gmethod {
    const char *path; /* "/inference.GRPCInferenceService/ModelInfer" */
    int streaming;
    /* unary: the request message; stream: one message, seq counts from 0 */
    void (*handle)(gcall *c, uint64_t seq, const uint8_t *data, size_t len);
    /* instead of handle: the message's bytes as they arrived, pieces[0..n)
     * (gRPC's slices: dozens for a frame), never gathered into one buffer */
    void (*handle_pieces)(gcall *c, uint64_t seq, const vigil_piece *pieces, size_t n);
} gmethod;

/* The method tables of the services (NULL-path terminated). */
extern const gmethod grpc_kserve_methods[];
extern const gmethod grpc_detect_methods[];
extern const gmethod grpc_health_methods[];

/* ---- what handlers reach ---- */
vigil_server *gcall_server(const gcall *c);
const gmethod *gcall_method(const gcall *c);
/* Copies the first value of the call's metadata key (lower-case) into out
 * (cut to size - 1 bytes); "" when absent. */
void gcall_metadata(const gcall *c, const char *key, char *out, size_t size);
/* The call as a parent (its server span), as trace_request_traceparent;
 * 0 when tracing is off.  OUT: out, TRACEPARENT_LEN + 1 bytes. */
int gcall_traceparent(const gcall *c, char *out);
/* 1 when the server is ready and the gRPC side is not shutting down. */
int gcall_serving(const gcall *c);
/* Remaining time of the call's deadline capped by request_timeout_ms, as a
 * CLOCK_MONOTONIC deadline for sched_job. */
int64_t gcall_job_deadline(const gcall *c);

/* Unary: sends message (packed with protobuf-c) and OK. */
void gcall_reply(gcall *c, const ProtobufCMessage *message);
/* Unary: sends the gRPC status for a vigil status (never OK) and message. */
void gcall_fail(gcall *c, vigil_status status, const char *message);

/* Stream: the answer to message seq (packed here; NULL message = no answer,
 * the sequence number is just consumed). */
void gstream_answer(gcall *c, uint64_t seq, const ProtobufCMessage *message);

/* gRPC status code for a vigil status: request_grpc_code's table. */
grpc_status_code grpc_status_for(vigil_status status);

/* ---- scheduler hand-off ---- */
struct gwork {
    gcall *call;
    uint64_t seq;
    arena *arena;         /* the request's: job, inputs, outputs */
    served_model *served; /* reference released after finish */
    sched_job *job;
    void *ctx;            /* the handler's, in the arena */
    void (*finish)(gwork *w);
    gwork *next;
    grpc_slice message;   /* gwork_hold_message: the request's bytes, kept, as one slice */
    grpc_byte_buffer *message_pieces; /* or as the message gRPC handed over (handle_pieces) */
    int holds_message;
    /* 1: finish runs on the worker thread that ran the job, as soon as it
     * is done (an answer of a few hundred bytes: cheaper than waking a
     * completion thread); 0: on a completion thread (a large answer to
     * encode would hold the model's worker) */
    int finish_inline;
    int deferred; /* gwork_defer: no job ran */
};

/* A work item with its own arena and a zeroed job, referencing c. */
gwork *gwork_create(gcall *c, uint64_t seq);
/* Keeps the message the handler is running on (the bytes its handle call
 * got) alive until w is destroyed, so that w's job may point into it
 * instead of copying it: a decoded frame is a megabyte.  Call only from
 * the handler, during its handle call, for the message it was given. */
void gwork_hold_message(gwork *w);
/* Lets go of the message held, once nothing w's job reads lies in it any
 * more (a frame letterboxed into an input of its own: request_detect_ready):
 * its slices go back to gRPC now rather than when the answer is sent. */
void gwork_drop_message(gwork *w);
/* Acquires model (version 0 = served) into w->served; on failure err is set. */
vigil_status gwork_acquire(gwork *w, const char *model, int64_t version, vigil_error *err);
/* Queues w->job on w->served's scheduler; finish runs on a completion thread
 * when the job is done (also when the queue refuses it: job->status is then
 * set).  Ownership of w passes to the machinery. */
void gwork_submit(gwork *w, void (*finish)(gwork *w));
/* Runs run(w) on a completion thread instead of the handler's: for work
 * that blocks (loading a model takes seconds), so that the poller threads,
 * which read every call, never wait.  Ownership of w passes to the
 * machinery, which destroys it after run. */
void gwork_defer(gwork *w, void (*run)(gwork *w));
/* Releases everything w holds (called by the machinery after finish, and by
 * handlers for work they never submit). */
void gwork_destroy(gwork *w);

#endif
