/*
 * fuzz_grpc.c - libFuzzer target for the gRPC request handlers' input side:
 * protobuf-c's decoding of every request message the services accept, then
 * what the handlers do with a decoded ModelInferRequest (grpc_infer_parse,
 * against the served model of fuzz_served_model.h), with DetectOptions and
 * with version strings; a DetectRequest read in place (grpc_unpack_aliased)
 * must be the one protobuf-c reads.  The first byte picks the message type; the rest is
 * the wire message.
 */
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "fuzz_served_model.h"
#include "grpc/grpc_codec.h"
#include "health.pb-c.h"

static const ProtobufCMessageDescriptor *const other_requests[] = {
    &inference__server_live_request__descriptor,      &inference__server_ready_request__descriptor,
    &inference__model_ready_request__descriptor,      &inference__server_metadata_request__descriptor,
    &inference__model_metadata_request__descriptor,   &inference__model_statistics_request__descriptor,
    &inference__repository_index_request__descriptor, &inference__repository_model_load_request__descriptor,
    &inference__repository_model_unload_request__descriptor, &grpc__health__v1__health_check_request__descriptor,
};

/* Every refusal says why. */
static void check_refusal(vigil_status st, const vigil_error *err) {
    if (st != VIGIL_OK && err->message[0] == '\0') __builtin_trap();
}

static void fuzz_infer(const served_model *model, const uint8_t *data, size_t size) {
    Inference__ModelInferRequest *req = inference__model_infer_request__unpack(NULL, size, data);
    if (!req) return;
    int64_t version;
    (void)grpc_parse_version(req->model_version, &version);
    arena *a = arena_create(0, 64u << 20);
    if (a) {
        sched_job job;
        grpc_infer_ctx ctx;
        memset(&job, 0, sizeof job);
        memset(&ctx, 0, sizeof ctx);
        vigil_error err = {0};
        check_refusal(grpc_infer_parse(model, req, INT64_C(1) << 26, a, &job, &ctx, &err), &err);
        arena_destroy(a);
    }
    inference__model_infer_request__free_unpacked(req, NULL);
}

/* grpc_unpack_aliased reads what protobuf-c reads: the same message (or
 * the same refusal), with the image where protobuf-c copied it from. */
static void check_aliased(const Vigil__V1__DetectRequest *req, const uint8_t *data, size_t size) {
    ProtobufCBinaryData image;
    Vigil__V1__DetectRequest *alias = (Vigil__V1__DetectRequest *)grpc_unpack_aliased(
        &vigil__v1__detect_request__descriptor, data, size, 1, &image);
    if (!req != !alias) __builtin_trap();
    if (!req) return;
    if (alias->image.len || image.len != req->image.len || (image.len && memcmp(image.data, req->image.data, image.len)))
        __builtin_trap();
    if (image.len && (image.data < data || image.data + image.len > data + size)) __builtin_trap();
    if (strcmp(alias->model, req->model) || alias->frame_id != req->frame_id || !alias->raw != !req->raw ||
        (req->raw && (alias->raw->width != req->raw->width || alias->raw->format != req->raw->format)) ||
        !alias->options != !req->options)
        __builtin_trap();
    vigil__v1__detect_request__free_unpacked(alias, NULL);
}

static void fuzz_detect(const served_model *model, const uint8_t *data, size_t size) {
    Vigil__V1__DetectRequest *req = vigil__v1__detect_request__unpack(NULL, size, data);
    check_aliased(req, data, size);
    if (!req) return;
    arena *a = arena_create(0, 64u << 20);
    if (a) {
        sched_job job;
        memset(&job, 0, sizeof job);
        vigil_error err = {0};
        check_refusal(grpc_detect_options(model, req, a, &job, &err), &err);
        arena_destroy(a);
    }
    vigil__v1__detect_request__free_unpacked(req, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    served_model model;
    fuzz_served_model(&model);
    size_t n_other = sizeof other_requests / sizeof other_requests[0];
    size_t which = data[0] % (2 + n_other);
    data++, size--;
    if (which == 0) fuzz_infer(&model, data, size);
    else if (which == 1) fuzz_detect(&model, data, size);
    else {
        ProtobufCMessage *m = protobuf_c_message_unpack(other_requests[which - 2], NULL, size, data);
        if (m) protobuf_c_message_free_unpacked(m, NULL);
    }
    return 0;
}
