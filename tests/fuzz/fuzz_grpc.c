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
#include <stdlib.h>
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
 * the same refusal, strings with a NUL byte included), with the image where
 * protobuf-c copied it from, whichever way the bytes are cut into pieces
 * (here: runs of 1 to 13 bytes, an empty piece now and then). */
static void check_aliased(const Vigil__V1__DetectRequest *req, const uint8_t *data, size_t size) {
    size_t cap = 2 * size + 2, n = 0, longest = 1 + size % 13;
    vigil_piece *pieces = malloc(cap * sizeof *pieces), *image = malloc(cap * sizeof *image);
    if (!pieces || !image) __builtin_trap();
    for (size_t at = 0, k = 0; at < size; k++) {
        size_t len = 1 + k % longest;
        if (len > size - at) len = size - at;
        if (k % 5 == 4) pieces[n++] = (vigil_piece){data + at, 0};
        pieces[n++] = (vigil_piece){data + at, len};
        at += len;
    }
    size_t n_image = 0;
    vigil_error err = {0};
    Vigil__V1__DetectRequest *alias = (Vigil__V1__DetectRequest *)grpc_unpack_aliased(
        &vigil__v1__detect_request__descriptor, pieces, n, 1, image, &n_image, &err);
    int want = req && grpc_check_strings(&vigil__v1__detect_request__descriptor, data, size, &(vigil_error){0}) == 0;
    if (want != !!alias || (!alias && !err.status)) __builtin_trap();
    if (alias) {
        size_t got = 0;
        for (size_t i = 0; i < n_image; i++) {
            const vigil_piece *p = &image[i];
            if (!p->size || p->data < data || p->data + p->size > data + size || got + p->size > req->image.len ||
                memcmp(p->data, req->image.data + got, p->size))
                __builtin_trap();
            got += p->size;
        }
        if (alias->image.len || got != req->image.len) __builtin_trap();
        if (strcmp(alias->model, req->model) || alias->frame_id != req->frame_id || !alias->raw != !req->raw ||
            (req->raw && (alias->raw->width != req->raw->width || alias->raw->format != req->raw->format)) ||
            !alias->options != !req->options)
            __builtin_trap();
        vigil__v1__detect_request__free_unpacked(alias, NULL);
    }
    free(pieces);
    free(image);
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
