/*
 * fuzz_infer_request.c - libFuzzer target for the KServe v2 REST request
 * parser (infer_codec.c), JSON and binary-tensor forms, against the served
 * model of fuzz_served_model.h.  The first two bytes choose how much of the
 * input is the JSON header, as the Inference-Header-Content-Length header
 * would; the rest is the body.  A request it takes must give the tensors
 * the jansson reader of old gives (infer_reference.h): any difference aborts.
 */
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "fuzz_served_model.h"
#include "infer_reference.h"
#include "serve/infer_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t body_len = size - 2;
    size_t json_len = ((size_t)data[0] << 8 | data[1]);
    if (json_len == 0 || json_len > body_len) json_len = body_len;

    served_model model;
    fuzz_served_model(&model);

    arena *a = arena_create(0, 64u << 20);
    if (!a) return 0;
    infer_request req;
    sched_job job;
    memset(&req, 0, sizeof req);
    memset(&job, 0, sizeof job);
    vigil_error err = {0};
    vigil_status st = infer_parse(&model, (const char *)data + 2, body_len, json_len, INT64_C(1) << 26, a, &req, &job, &err);
    if (st != VIGIL_OK && err.message[0] == '\0') __builtin_trap(); /* every refusal says why */
    if (st == VIGIL_OK && infer_reference_check(&model, (const char *)data + 2, json_len, &job) != 0) __builtin_trap();
    arena_destroy(a);
    return 0;
}
