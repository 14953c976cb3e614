/*
 * infer_reference.h - the v2 JSON tensor reader of old, kept only for the
 * tests: the whole request as a jansson tree, each input's data flattened in
 * document order whatever its nesting.  infer_codec.c now reads data
 * straight into the tensor and takes only data nested as the shape says, a
 * subset of what this took; on everything it takes, the tensors must be the
 * same bit for bit (test_infer_codec.c on random requests,
 * fuzz_infer_request.c on whatever the fuzzer finds).
 */
#ifndef VIGIL_TESTS_INFER_REFERENCE_H
#define VIGIL_TESTS_INFER_REFERENCE_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "serve/infer_codec.h"

static int infer_reference_store(const json_t *v, vigil_dtype dt, void *dst, size_t at) {
    if (dt == VIGIL_DTYPE_F32 || dt == VIGIL_DTYPE_F64 || dt == VIGIL_DTYPE_F16) {
        if (!json_is_number(v)) return -1;
        double x = json_number_value(v);
        switch (dt) {
        case VIGIL_DTYPE_F32: ((float *)dst)[at] = (float)x; break;
        case VIGIL_DTYPE_F64: ((double *)dst)[at] = x; break;
        default: ((uint16_t *)dst)[at] = half_from_double(x); break; /* JSON numbers for FP16: docs/API.md */
        }
        return 0;
    }
    if (dt == VIGIL_DTYPE_BOOL) {
        if (!json_is_boolean(v) && !json_is_integer(v)) return -1;
        ((uint8_t *)dst)[at] = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
        return 0;
    }
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    switch (dt) {
    case VIGIL_DTYPE_I64: ((int64_t *)dst)[at] = x; break;
    case VIGIL_DTYPE_I32: ((int32_t *)dst)[at] = (int32_t)x; break;
    case VIGIL_DTYPE_U8: ((uint8_t *)dst)[at] = (uint8_t)x; break;
    case VIGIL_DTYPE_I8: ((int8_t *)dst)[at] = (int8_t)x; break;
    default: return -1;
    }
    return 0;
}

static int infer_reference_flatten(const json_t *v, vigil_dtype dt, void *dst, size_t count, size_t *at, int depth) {
    if (depth > 32) return -1;
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) if (infer_reference_flatten(item, dt, dst, count, at, depth + 1)) return -1;
        return 0;
    }
    if (*at >= count) return -1;
    return infer_reference_store(v, dt, dst, (*at)++);
}

/* 0 when every input of job that json (the request's JSON part) gave as
 * "data" holds what the reference reads from it; -1 otherwise. */
static int infer_reference_check(const served_model *m, const char *json, size_t len, const sched_job *job) {
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    if (!root) return -1;
    int bad = 0;
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(root, "inputs"), i, in) {
        const char *name = json_string_value(json_object_get(in, "name"));
        if (!name || json_object_get(json_object_get(in, "parameters"), "binary_data_size")) continue;
        size_t k = 0;
        while (k < m->io.n_inputs && strcmp(m->io.inputs[k]->name, name) != 0) k++;
        if (k == m->io.n_inputs) {
            bad = 1;
            break;
        }
        const vigil_tensor *t = &job_raw_of(job)->inputs[k];
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) count *= (size_t)t->dims[d];
        size_t bytes = count * vigil_dtype_size(t->dtype);
        void *want = calloc(1, bytes + 1);
        size_t at = 0;
        bad = !want || infer_reference_flatten(json_object_get(in, "data"), t->dtype, want, count, &at, 0) ||
              at != count || (bytes && memcmp(want, t->data, bytes) != 0);
        free(want);
        if (bad) break;
    }
    json_decref(root);
    return bad ? -1 : 0;
}

#endif
