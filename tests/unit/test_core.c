/* test_core.c - status strings, the allocation cap and fault injection, the
 * arena, and .npy round trips. */
#include <stdint.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/npy.h"
#include "testing.h"
#include "vigil/status.h"

static void test_status_strings(void) {
    CHECK_STR(vigil_status_str(VIGIL_OK), "ok");
    CHECK_STR(vigil_status_str(VIGIL_ERR_NOT_FOUND), "not found");
    CHECK_STR(vigil_status_str(VIGIL_ERR_INTERNAL), "internal error");
    CHECK_STR(vigil_status_str((vigil_status)-999), "unknown status");
    CHECK_STR(vigil_status_str((vigil_status)5), "unknown status");
    /* Every status has its own name. */
    for (int a = 0; a < VIGIL_STATUS_COUNT; a++)
        for (int b = a + 1; b < VIGIL_STATUS_COUNT; b++)
            CHECK(strcmp(vigil_status_str((vigil_status)-a), vigil_status_str((vigil_status)-b)) != 0);
}

static void test_error_set_and_prefix(void) {
    vigil_error err = {0};
    CHECK_EQ_INT(vigil_error_set(&err, VIGIL_ERR_PARSE, "byte %d", 42), VIGIL_ERR_PARSE);
    CHECK_EQ_INT(err.status, VIGIL_ERR_PARSE);
    CHECK_STR(err.message, "byte 42");
    vigil_error_prefix(&err, "model.onnx");
    CHECK_STR(err.message, "model.onnx: byte 42");
    CHECK_EQ_INT(vigil_error_set(NULL, VIGIL_ERR_IO, "ignored"), VIGIL_ERR_IO);
    /* A prefix never overflows the fixed message. */
    char long_text[600];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    vigil_error_set(&err, VIGIL_ERR_IO, "%s", long_text);
    vigil_error_prefix(&err, "%s", long_text);
    CHECK_EQ_INT(strlen(err.message), sizeof err.message - 1);
    vigil_error_clear(&err);
    CHECK_EQ_INT(err.status, VIGIL_OK);
    CHECK_STR(err.message, "");
}

static void test_alloc_accounting_and_cap(void) {
    size_t base = alloc_bytes_in_use();
    void *a = vigil_malloc(1000);
    CHECK(a != NULL);
    CHECK_EQ_INT(alloc_bytes_in_use(), base + 1000);
    void *b = vigil_aligned_alloc(256, 100);
    CHECK(b != NULL);
    CHECK_EQ_INT((uintptr_t)b % 256, 0);
    CHECK_EQ_INT(alloc_bytes_in_use(), base + 1100);
    alloc_set_cap(base + 1500);
    CHECK(vigil_malloc(600) == NULL); /* would cross the cap */
    void *c = vigil_malloc(300);
    CHECK(c != NULL);
    alloc_set_cap(0);
    c = vigil_realloc(c, 5000);
    CHECK(c != NULL);
    CHECK_EQ_INT(alloc_bytes_in_use(), base + 6100);
    vigil_free(a);
    vigil_free(b);
    vigil_free(c);
    vigil_free(NULL);
    CHECK_EQ_INT(alloc_bytes_in_use(), base);
    CHECK(vigil_calloc(SIZE_MAX / 2, 4) == NULL); /* overflow refused */
    CHECK(vigil_aligned_alloc(3, 10) == NULL);    /* not a power of two */
}

static void test_alloc_fail_nth(void) {
    alloc_fail_nth(3);
    void *a = vigil_malloc(8), *b = vigil_malloc(8), *c = vigil_malloc(8), *d = vigil_malloc(8);
    CHECK(a && b && !c && d);
    vigil_free(a);
    vigil_free(b);
    vigil_free(d);
    alloc_fail_nth(0);
    char *s = vigil_strdup("vigil");
    CHECK_STR(s, "vigil");
    vigil_free(s);
}

static void test_arena(void) {
    arena *a = arena_create(128, 0);
    CHECK(a != NULL);
    char *p = arena_alloc(a, 10, 1);
    double *d = arena_alloc(a, sizeof(double) * 4, 32);
    CHECK(p && d);
    CHECK_EQ_INT((uintptr_t)d % 32, 0);
    char *big = arena_alloc(a, 1000, 16); /* larger than a block: its own block */
    CHECK(big != NULL);
    memset(big, 7, 1000);
    CHECK_STR(arena_strdup(a, "abc"), "abc");
    CHECK_STR(arena_strndup(a, "abcdef", 2), "ab");
    int *zero = arena_calloc(a, 8, sizeof(int));
    CHECK(zero && zero[7] == 0);
    CHECK(arena_bytes_used(a) >= 10 + 32 + 1000 + 4 + 3 + 32);
    arena_reset(a);
    CHECK_EQ_INT(arena_bytes_used(a), 0);
    CHECK(arena_alloc(a, 16, 16) != NULL);
    arena_destroy(a);

    arena *capped = arena_create(256, 1024);
    int got = 0;
    while (arena_alloc(capped, 100, 16)) got++;
    CHECK(got >= 4 && got <= 10); /* stops at the cap instead of growing */
    arena_destroy(capped);

    /* Allocation failure inside the arena is reported, not fatal. */
    arena *faulty = arena_create(64, 0);
    alloc_fail_nth(1);
    CHECK(arena_alloc(faulty, 8, 8) == NULL);
    CHECK(arena_alloc(faulty, 8, 8) != NULL);
    arena_destroy(faulty);
}

/* What a deferred call records: the order calls came in. */
typedef struct defer_log {
    int order[4];
    int n;
} defer_log;

static defer_log *defer_seen;
static void defer_note(void *ctx) { defer_seen->order[defer_seen->n++] = *(int *)ctx; }

/* Deferred calls run once, newest first, at reset and at destroy; a full
 * arena refuses one (and never calls it). */
static void test_arena_defer(void) {
    defer_log log = {{0}, 0};
    defer_seen = &log;
    int one = 1, two = 2, three = 3;
    arena *a = arena_create(128, 0);
    CHECK_EQ_INT(arena_defer(a, defer_note, &one), 0);
    CHECK_EQ_INT(arena_defer(a, defer_note, &two), 0);
    CHECK_EQ_INT(log.n, 0);
    arena_reset(a);
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(log.order[0], 2);
    CHECK_EQ_INT(log.order[1], 1);
    arena_reset(a); /* nothing left to call */
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(arena_defer(a, defer_note, &three), 0);
    arena_destroy(a);
    CHECK_EQ_INT(log.n, 3);
    CHECK_EQ_INT(log.order[2], 3);

    arena *capped = arena_create(64, 64 + 64); /* one block's header and a little */
    while (arena_alloc(capped, 8, 8)) {
    }
    CHECK_EQ_INT(arena_defer(capped, defer_note, &one), -1);
    arena_destroy(capped);
    CHECK_EQ_INT(log.n, 3);
}

/* Builds a .npy v1 image with header text and data_bytes zero bytes. */
static size_t npy_image(char *buf, const char *header, size_t data_bytes) {
    size_t hlen = strlen(header);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)hlen;
    buf[9] = 0;
    memcpy(buf + 10, header, hlen);
    memset(buf + 10 + hlen, 0, data_bytes);
    return 10 + hlen + data_bytes;
}

static void test_npy_round_trip(void) {
    char path[] = "/tmp/vigil-npy-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    float values[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-7f, 42.0f};
    int64_t dims[2] = {2, 3};
    vigil_error err = {0};
    CHECK_EQ_INT(npy_write(path, NPY_F32, 2, dims, values, &err), VIGIL_OK);
    npy_array arr;
    CHECK_EQ_INT(npy_read(path, &arr, &err), VIGIL_OK);
    CHECK_EQ_INT(arr.dtype, NPY_F32);
    CHECK_EQ_INT(arr.ndim, 2);
    CHECK_EQ_INT(arr.dims[1], 3);
    CHECK_EQ_INT(arr.count, 6);
    CHECK(memcmp(arr.data, values, sizeof values) == 0);
    npy_free(&arr);

    int64_t one = 3;
    int64_t ints[3] = {-1, 0, INT64_MAX};
    CHECK_EQ_INT(npy_write(path, NPY_I64, 1, &one, ints, &err), VIGIL_OK);
    CHECK_EQ_INT(npy_read(path, &arr, &err), VIGIL_OK);
    CHECK_EQ_INT(((int64_t *)arr.data)[2], INT64_MAX);
    npy_free(&arr);
    unlink(path);

    CHECK_EQ_INT(npy_read("/nonexistent/x.npy", &arr, &err), VIGIL_ERR_NOT_FOUND);
    char buf[256];
    size_t len = npy_image(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8);
    CHECK_EQ_INT(npy_parse(buf, len, &arr, &err), VIGIL_ERR_UNSUPPORTED);
    len = npy_image(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 8);
    CHECK_EQ_INT(npy_parse(buf, len, &arr, &err), VIGIL_ERR_PARSE); /* 8 of 16 data bytes */
    CHECK(strstr(err.message, "truncated") != NULL);
    len = npy_image(buf, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8);
    CHECK_EQ_INT(npy_parse(buf, len, &arr, &err), VIGIL_ERR_UNSUPPORTED);
    len = npy_image(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    CHECK_EQ_INT(npy_parse(buf, len, &arr, &err), VIGIL_OK);
    npy_free(&arr);
    CHECK_EQ_INT(npy_parse("garbage", 7, &arr, &err), VIGIL_ERR_PARSE);
}

int main(void) {
    RUN(test_status_strings);
    RUN(test_error_set_and_prefix);
    RUN(test_alloc_accounting_and_cap);
    RUN(test_alloc_fail_nth);
    RUN(test_arena);
    RUN(test_arena_defer);
    RUN(test_npy_round_trip);
    return testing_report();
}
