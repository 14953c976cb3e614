/*
 * test_infer_codec.c - the v2 REST request parser (serve/infer_codec.c)
 * against a reference kept only here: the jansson tree and flattening walk
 * the parser used before it read tensors itself (tests/fuzz/infer_reference.h).  Random valid requests
 * (every datatype, flat and nested data, keys in any order, numbers in
 * every JSON form, white space) must give the same tensors both ways; the
 * hostile shapes that used to cost a tree fifty times their text must be
 * refused, at the first value the shape has no room for.
 */
#include <jansson.h>
#include <stdarg.h>

#include "core/arena.h"
#include "serve/infer_codec.h"
#include "serve/textbuf.h"
#include "../fuzz/infer_reference.h"
#include "testing.h"

/* ------------------------------------------------------------ the model */

static const vigil_tensor_info input_x = {"x", VIGIL_DTYPE_F32, 2, {-1, 4}, {"batch"}};
static const vigil_tensor_info input_ids = {"ids", VIGIL_DTYPE_I64, 2, {-1, 2}, {"batch"}};
static const vigil_tensor_info input_mask = {"mask", VIGIL_DTYPE_BOOL, 3, {-1, 1, 3}, {"batch"}};
static const vigil_tensor_info input_pixels = {"pixels", VIGIL_DTYPE_U8, 4, {-1, 2, 2, 2}, {"batch"}};
static const vigil_tensor_info input_scale = {"scale", VIGIL_DTYPE_F64, 1, {-1}, {"batch"}};
static const vigil_tensor_info input_small = {"small", VIGIL_DTYPE_I8, 2, {-1, 3}, {"batch"}};
static const vigil_tensor_info input_wide = {"wide", VIGIL_DTYPE_I32, 2, {-1, 2}, {"batch"}};
static const vigil_tensor_info input_half = {"half", VIGIL_DTYPE_F16, 2, {-1, 3}, {"batch"}};
static const vigil_tensor_info output_y = {"y", VIGIL_DTYPE_F32, 2, {-1, 4}, {"batch"}};
static const vigil_tensor_info *const inputs[] = {&input_x,     &input_ids,   &input_mask, &input_pixels,
                                                  &input_scale, &input_small, &input_wide, &input_half};
#define N_INPUTS (sizeof inputs / sizeof inputs[0])

static void test_model(served_model *m) {
    memset(m, 0, sizeof *m);
    strcpy(m->name, "t");
    m->version = 1;
    m->config.max_batch_size = 8;
    m->io.n_inputs = N_INPUTS;
    for (size_t i = 0; i < N_INPUTS; i++) m->io.inputs[i] = inputs[i];
    m->io.n_outputs = 1;
    m->io.outputs[0] = &output_y;
}

/* One input model: x FP32 [-1, 4]. */
static void affine_model(served_model *m) {
    test_model(m);
    m->io.n_inputs = 1;
}

/* ------------------------------------------------------------ random requests */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int rnd_below(int n) { return (int)(rnd() % (uint64_t)n); }

static void ws(textbuf *b) {
    static const char *const spaces[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    textbuf_printf(b, "%s", spaces[rnd_below(7)]);
}

/* One scalar of dtype in some JSON form a client might write. */
static void put_scalar(textbuf *b, vigil_dtype dt) {
    switch (dt) {
    case VIGIL_DTYPE_F32:
    case VIGIL_DTYPE_F64:
    case VIGIL_DTYPE_F16: {
        static const char *const fixed[] = {"0", "-0", "1", "-1", "0.5", "1e3", "1E-3", "-2.5e+2", "3.4028235e38",
                                            "1e-320", "123456789012345678", "1.0000001", "-0.0"};
        int k = rnd_below(20);
        if (k < 13) textbuf_printf(b, "%s", fixed[k]);
        else if (k < 16) textbuf_printf(b, "%.17g", ((double)(int64_t)rnd() / 9.2e18) * 1e6);
        else if (k < 18) textbuf_printf(b, "%.9g", ((double)(int64_t)rnd() / 9.2e18));
        else textbuf_printf(b, "%lld", (long long)(int64_t)rnd() >> rnd_below(63));
        break;
    }
    case VIGIL_DTYPE_I64: {
        static const char *const fixed[] = {"0", "-0", "9223372036854775807", "-9223372036854775808", "1", "-1"};
        int k = rnd_below(10);
        if (k < 6) textbuf_printf(b, "%s", fixed[k]);
        else textbuf_printf(b, "%lld", (long long)(int64_t)rnd() >> rnd_below(63));
        break;
    }
    case VIGIL_DTYPE_I32: textbuf_printf(b, "%d", (int32_t)(uint32_t)rnd()); break;
    case VIGIL_DTYPE_U8: textbuf_printf(b, "%d", rnd_below(256)); break;
    case VIGIL_DTYPE_I8: textbuf_printf(b, "%d", rnd_below(256) - 128); break;
    case VIGIL_DTYPE_BOOL: {
        static const char *const fixed[] = {"true", "false", "0", "1", "-7"};
        textbuf_printf(b, "%s", fixed[rnd_below(5)]);
        break;
    }
    default: textbuf_printf(b, "0"); break;
    }
}

/* Data for dims[level..rank): nested down to some depth, flat below it. */
static void put_data(textbuf *b, vigil_dtype dt, const int64_t *dims, int rank, int level) {
    size_t below = 1;
    for (int j = level; j < rank; j++) below *= (size_t)dims[j];
    int nest = level < rank - 1 && rnd_below(3) != 0;
    textbuf_printf(b, "[");
    ws(b);
    size_t n = nest ? (size_t)dims[level] : below;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            textbuf_printf(b, ",");
            ws(b);
        }
        if (nest) put_data(b, dt, dims, rank, level + 1);
        else put_scalar(b, dt);
    }
    ws(b);
    textbuf_printf(b, "]");
}

/* A valid request for some of the model's inputs... all of them, in a random order of inputs and of keys. */
static void put_request(textbuf *b) {
    int64_t batch = 1 + rnd_below(8);
    size_t order[N_INPUTS];
    for (size_t i = 0; i < N_INPUTS; i++) order[i] = i;
    for (size_t i = N_INPUTS; i > 1; i--) {
        size_t j = (size_t)rnd_below((int)i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    textbuf_printf(b, "{");
    ws(b);
    if (rnd_below(2)) textbuf_printf(b, "\"id\": \"r\\u00e9q-%d\", ", rnd_below(1000));
    if (rnd_below(2)) textbuf_printf(b, "\"model\": \"t\",");
    textbuf_printf(b, "\"inp\\u0075ts\"");
    ws(b);
    textbuf_printf(b, ":");
    ws(b);
    textbuf_printf(b, "[");
    for (size_t k = 0; k < N_INPUTS; k++) {
        const vigil_tensor_info *info = inputs[order[k]];
        int64_t dims[VIGIL_MAX_DIMS];
        dims[0] = batch;
        for (int d = 1; d < info->ndim; d++) dims[d] = info->dims[d];
        if (k) textbuf_printf(b, ",");
        ws(b);
        textbuf_printf(b, "{");
        int keys[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) {
            int j = rnd_below(i + 1), t = keys[i];
            keys[i] = keys[j];
            keys[j] = t;
        }
        for (int i = 0; i < 4; i++) {
            if (i) textbuf_printf(b, ",");
            ws(b);
            switch (keys[i]) {
            case 0: textbuf_printf(b, "\"name\": \"%s\"", info->name); break;
            case 1: textbuf_printf(b, "\"datatype\":\"%s\"", infer_datatype_name(info->dtype)); break;
            case 2:
                textbuf_printf(b, "\"shape\": [");
                for (int d = 0; d < info->ndim; d++) textbuf_printf(b, "%s%lld", d ? ", " : "", (long long)dims[d]);
                textbuf_printf(b, "]");
                break;
            default:
                textbuf_printf(b, rnd_below(2) ? "\"data\":" : "\"d\\u0061ta\" :");
                ws(b);
                put_data(b, info->dtype, dims, info->ndim, 0);
                break;
            }
        }
        ws(b);
        textbuf_printf(b, "}");
    }
    textbuf_printf(b, "]");
    if (rnd_below(2)) textbuf_printf(b, ", \"parameters\": {\"priority\": %d}", rnd_below(2001) - 1000);
    if (rnd_below(2)) textbuf_printf(b, ", \"outputs\": [{\"name\": \"y\"}]");
    ws(b);
    textbuf_printf(b, "}");
    ws(b);
}

/* Parses text with infer_parse and the reference; every tensor must match bit for bit. */
static int same_tensors(const char *text, size_t len) {
    served_model m;
    test_model(&m);
    arena *a = arena_create(0, 64u << 20);
    infer_request req;
    sched_job job;
    memset(&job, 0, sizeof job);
    vigil_error err = {0};
    int ok = 1;
    if (infer_parse(&m, text, len, len, INT64_C(1) << 26, a, &req, &job, &err) != VIGIL_OK) {
        fprintf(stderr, "refused: %s\n%.*s\n", err.message, (int)(len < 2000 ? len : 2000), text);
        ok = 0;
    }
    if (ok && infer_reference_check(&m, text, len, &job) != 0) {
        fprintf(stderr, "a tensor differs from the reference\n%.*s\n", (int)(len < 2000 ? len : 2000), text);
        ok = 0;
    }
    arena_destroy(a);
    return ok;
}

static void test_random_requests_match_the_reference(void) {
    for (int n = 0; n < 3000; n++) {
        textbuf b;
        textbuf_init(&b, 1 << 20);
        put_request(&b);
        CHECK(b.status == VIGIL_OK);
        if (!same_tensors(b.data, b.len)) {
            CHECK(0);
            textbuf_free(&b);
            return;
        }
        CHECK(1);
        textbuf_free(&b);
    }
}

/* Parses text (which must be valid for m) into job, in a. */
static void parse_valid(const served_model *m, const char *text, arena *a, sched_job *job) {
    infer_request req;
    memset(job, 0, sizeof *job);
    vigil_error err = {0};
    CHECK_EQ_INT(infer_parse(m, text, strlen(text), strlen(text), 1 << 20, a, &req, job, &err), VIGIL_OK);
}

/* The comparison is not vacuous: a tensor one bit off is caught. */
static void test_the_reference_sees_a_difference(void) {
    const char *text = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}";
    served_model m;
    affine_model(&m);
    arena *a = arena_create(0, 1u << 20);
    sched_job job;
    parse_valid(&m, text, a, &job);
    CHECK_EQ_INT(infer_reference_check(&m, text, strlen(text), &job), 0);
    ((uint8_t *)job_raw_of(&job)->inputs[0].data)[5] ^= 1;
    CHECK_EQ_INT(infer_reference_check(&m, text, strlen(text), &job), -1);
    arena_destroy(a);
}

/* FP16 from JSON numbers: rounded once to half, ties to even (docs/API.md). */
static void test_fp16_numbers_round_once(void) {
    const char *text = "{\"inputs\":[{\"name\":\"half\",\"datatype\":\"FP16\",\"shape\":[2,3],"
                       "\"data\":[0.1,1.00048828125,1.000488281250001,-65520,6e-8,2.98023223876953125e-8]}]}";
    static const uint16_t want[6] = {0x2e66, 0x3c00, 0x3c01, 0xfc00, 0x0001, 0x0000};
    served_model m;
    test_model(&m);
    m.io.n_inputs = 1;
    m.io.inputs[0] = &input_half;
    arena *a = arena_create(0, 1u << 20);
    sched_job job;
    parse_valid(&m, text, a, &job);
    const vigil_tensor *t = &job_raw_of(&job)->inputs[0];
    CHECK(t->dtype == VIGIL_DTYPE_F16 && t->data && memcmp(t->data, want, sizeof want) == 0);
    CHECK_EQ_INT(infer_reference_check(&m, text, strlen(text), &job), 0);
    arena_destroy(a);
}

/* ------------------------------------------------------------ refusals */

/* Parses text against the one-input model; returns the status, message in msg. */
static vigil_status parse_affine(const char *text, size_t len, char *msg, size_t size) {
    served_model m;
    affine_model(&m);
    arena *a = arena_create(0, 64u << 20);
    infer_request req;
    sched_job job;
    memset(&job, 0, sizeof job);
    vigil_error err = {0};
    vigil_status st = infer_parse(&m, text, len, len, INT64_C(1) << 26, a, &req, &job, &err);
    snprintf(msg, size, "%s", err.message);
    arena_destroy(a);
    return st;
}

__attribute__((format(printf, 3, 4))) static void expect(vigil_status want, const char *fragment, const char *fmt, ...) {
    char text[4096], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    vigil_status st = parse_affine(text, strlen(text), msg, sizeof msg);
    CHECK_EQ_INT(st, want);
    if (fragment && !strstr(msg, fragment)) {
        fprintf(stderr, "  %s\n  gave: %s\n  want: %s\n", text, msg, fragment);
        CHECK(0);
    }
}

#define X(shape, data) "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":" shape ",\"data\":" data "}]}"

static void test_data_follows_the_shape(void) {
    expect(VIGIL_OK, NULL, X("[2,4]", "[1,2,3,4,5,6,7,8]"));
    expect(VIGIL_OK, NULL, X("[2,4]", "[[1,2,3,4],[5,6,7,8]]"));
    expect(VIGIL_OK, NULL, "{\"inputs\":[{\"data\":[[1,2,3,4]],\"shape\":[1,4],\"name\":\"x\",\"datatype\":\"FP32\"}]}");
    expect(VIGIL_ERR_INVALID_ARGUMENT, "data[0] holds 0 numbers where the shape needs 4",
           X("[1,4]", "[[],[],[],[],[],[],[],[],[],[],[],[],[]]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "data[1] holds 0 numbers where the shape needs 4",
           X("[2,4]", "[[1,2,3,4],[],[],[],[],[],[],[],[],[],[],[],[]]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "cannot hold the 4 elements", X("[1,4]", "[]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "0 elements for a shape of 4", X("[1,4]", "[        ]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "more than the 2 lists", X("[2,4]", "[[1,2,3,4],[5,6,7,8],[9,9,9,9]]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "more data than the shape holds (4)", X("[1,4]", "[1,2,3,4,5,0,0,0,0,0,0]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "3 elements for a shape of 4", X("[1,4]", "[1, 2, 3]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "nested deeper", X("[1,4]", "[[[1],[2],[3],[4]]]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "mixes numbers and lists", X("[2,4]", "[1,2,3,4,[5,6,7,8]]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "element 3 is not a number", X("[1,4]", "[1,2,3,\"a\"]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "element 0 is not a number", X("[1,4]", "[null,2,3,4]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "element 1 is not a number", X("[1,4]", "[1,{\"a\":1},3,4]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "cannot hold", X("[8,4]", "[1,2]"));
    expect(VIGIL_ERR_INVALID_ARGUMENT, "no \"data\"", "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4]}]}");
    expect(VIGIL_ERR_PARSE, "real number overflow", X("[1,4]", "[1,2,3,1e999]"));
    expect(VIGIL_ERR_PARSE, "malformed JSON", X("[1,4]", "[1,2,3,4,]"));
    expect(VIGIL_ERR_PARSE, "malformed JSON", X("[1,4]", "[1,2,3,04]"));
    expect(VIGIL_ERR_PARSE, "malformed JSON", X("[1,4]", "[1,2,3,4"));
}

static void test_json_rules_hold(void) {
    /* duplicate keys anywhere, as jansson's JSON_REJECT_DUPLICATES refused them */
    expect(VIGIL_ERR_PARSE, "duplicate", "{\"inputs\":[],\"inputs\":[]}");
    expect(VIGIL_ERR_PARSE, "duplicate",
           "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4],\"data\":[1,2,3,4]}]}");
    expect(VIGIL_ERR_PARSE, "duplicate",
           "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"d\\u0061ta\":[1,2,3,4],\"data\":[1,2,3,4]}]}");
    expect(VIGIL_ERR_PARSE, "duplicate", "{\"parameters\":{\"a\":1,\"a\":2},\"inputs\":[]}");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "{\"inputs\": [");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "%s", "");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "{\"inputs\":[]} x");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "{\"id\":\"a\\u0000b\",\"inputs\":[]}");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "{\"id\":\"\xc3\x28\",\"inputs\":[]}");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "{\"id\":\"\\ud800\",\"inputs\":[]}");
    expect(VIGIL_ERR_PARSE, "malformed JSON", "{\"i\":99999999999999999999,\"inputs\":[]}");
    expect(VIGIL_ERR_INVALID_ARGUMENT, "the request must be an object", "[1,2]");
    expect(VIGIL_ERR_INVALID_ARGUMENT, "\"id\" must be a string", "{\"id\":5,\"inputs\":[]}");
    expect(VIGIL_ERR_INVALID_ARGUMENT, "inputs[0] is not an object", "{\"inputs\":[5]}");
    /* deep nesting: refused by depth, never by the stack */
    size_t n = 100000;
    char *deep = malloc(2 * n + 64), msg[512];
    size_t k = (size_t)sprintf(deep, "{\"inputs\":[{\"name\":\"x\",\"data\":");
    memset(deep + k, '[', n);
    memset(deep + k + n, ']', n);
    strcpy(deep + k + 2 * n, "}]}");
    CHECK_EQ_INT(parse_affine(deep, strlen(deep), msg, sizeof msg), VIGIL_ERR_PARSE);
    CHECK(strstr(msg, "depth") != NULL);
    free(deep);
}

/* The JSON apart from the tensors is what jansson sees: it is capped. */
static void test_skeleton_is_capped(void) {
    size_t n = 200000;
    char *big = malloc(n + 64), msg[512];
    size_t k = (size_t)sprintf(big, "{\"junk\":[");
    for (size_t i = 0; i < n / 3; i++) memcpy(big + k + 3 * i, "[],", 3);
    k += n / 3 * 3;
    strcpy(big + k, "[]],\"inputs\":[]}");
    CHECK_EQ_INT(parse_affine(big, strlen(big), msg, sizeof msg), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(msg, "64 KiB") != NULL);
    free(big);
}

static void test_skeleton_for_the_seed_route(void) {
    const char *text = "{\"model\":\"t\",\"inputs\":[{\"data\":[[1,2],[3,4]],\"name\":\"x\"}]}trailing binary";
    vigil_error err = {0};
    json_t *root = infer_json_skeleton(text, strlen(text), JSON_DISABLE_EOF_CHECK, &err);
    CHECK(root != NULL);
    CHECK_STR(json_string_value(json_object_get(root, "model")), "t");
    const json_t *in = json_array_get(json_object_get(root, "inputs"), 0);
    CHECK(json_is_integer(json_object_get(in, "data")));
    CHECK_STR(json_string_value(json_object_get(in, "name")), "x");
    json_decref(root);
    CHECK(infer_json_skeleton(text, strlen(text), 0, &err) == NULL);
    CHECK_EQ_INT(err.status, VIGIL_ERR_PARSE);
}

int main(void) {
    RUN(test_random_requests_match_the_reference);
    RUN(test_the_reference_sees_a_difference);
    RUN(test_fp16_numbers_round_once);
    RUN(test_data_follows_the_shape);
    RUN(test_json_rules_hold);
    RUN(test_skeleton_is_capped);
    RUN(test_skeleton_for_the_seed_route);
    return testing_report();
}
