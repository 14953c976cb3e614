/*
 * grpc_codec.h - turning decoded gRPC request messages into scheduler jobs:
 * the checks shared by ModelInfer / ModelStreamInfer (grpc_kserve.c) and
 * the DetectOptions of vigil.v1.Detection (grpc_detect.c).  Kept apart
 * from the call machinery so that the fuzz target (tests/fuzz/fuzz_grpc.c)
 * drives exactly the code that hostile requests reach.
 */
#ifndef VIGIL_GRPC_CODEC_H
#define VIGIL_GRPC_CODEC_H

#include <stddef.h>

#include "core/arena.h"
#include "detection.pb-c.h"
#include "inference.pb-c.h"
#include "serve/infer_codec.h"
#include "serve/repository.h"
#include "serve/request.h"
#include "serve/scheduler.h"

/* What a parsed ModelInferRequest asks of the reply. */
typedef struct grpc_infer_ctx {
    int cache_use;    /* the model caches answers: store this one under cache_key */
    cache_key cache_key;
    int raw;          /* answer in raw_output_contents */
    int streaming;
    char *id;         /* in the arena; "" when none */
    size_t n_selected; /* 0 = every output */
    size_t selected[BACKEND_MAX_IO];
} grpc_infer_ctx;

/* Checks req against m's inputs (names, datatypes, ranks, fixed dimensions,
 * batch range, at most max_elements per input: infer_check_shape) and fills job's
 * inputs (copied into a), kind, batch and priority, and ctx's output
 * selection and id.  On failure err says why; job may be half filled. */
vigil_status grpc_infer_parse(const served_model *m, const Inference__ModelInferRequest *req, int64_t max_elements,
                              arena *a, sched_job *job, grpc_infer_ctx *ctx, vigil_error *err);

/* Makes job a detection job and fills its options (class list, priority
 * and render included) from req through the request layer
 * (request_detect_resolve): defaults < m's config.yaml < the fields
 * req->options sets (presence, not value: an explicit 0 is a threshold of
 * 0); NULL options = defaults. */
vigil_status grpc_detect_options(const served_model *m, const Vigil__V1__DetectRequest *req, arena *a,
                                 sched_job *job, vigil_error *err);

/* Parses a version string ("" = 0: the served one) by the repository's one
 * rule (repository_parse_version); 0 when bad. */
int grpc_parse_version(const char *text, int64_t *out);
#define GRPC_VERSION_RULE "empty (the served version) or " REPOSITORY_VERSION_RULE

/* protobuf-c hands strings over NUL-terminated and drops their wire length,
 * so "yolov8n\0x" would read as "yolov8n": this refuses (400, INVALID_ARGUMENT)
 * a message of type desc whose string fields, nested ones included, hold a
 * NUL byte on the wire. */
vigil_status grpc_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                                vigil_error *err);

/* Unpacks a message of type desc, whose bytes are pieces[0..n) (as gRPC
 * received them; n 1 for bytes whole), as protobuf_c_message_unpack does,
 * except that its top-level bytes field number `field` is not copied: it
 * is value[0..*n_value) (pieces of the input: value has room for n; the
 * last occurrence, which is what the unpacker keeps; none when absent) and
 * the message's own copy of the field is empty.  A frame of a megabyte is
 * then read where it arrived.  The other fields are gathered into a buffer
 * of their own first, and their strings checked (grpc_check_strings).
 * NULL with err set when the message is malformed or memory runs out. */
ProtobufCMessage *grpc_unpack_aliased(const ProtobufCMessageDescriptor *desc, const vigil_piece *pieces, size_t n,
                                      unsigned field, vigil_piece *value, size_t *n_value, vigil_error *err);

#endif
