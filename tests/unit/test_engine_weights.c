/*
 * test_engine_weights.c - one packed copy of the weights per model instance,
 * on the shared yolov8n_dynbatch.onnx (SKIP when ../shared is absent; the
 * same properties on a small model built in code are in test_engine_graph.c).
 *
 * The plans of one vigil_arena for batch 1..8 share the XNNPACK operators:
 * the arena reports the packed-weight bytes of one plan (one more copy per
 * extra part where a batch splits across threads), every batch gives, item
 * for item, exactly what batch 1 gives, and batch sizes alternating run after
 * run (each plan setting the shared operators up again) keep doing so, also
 * when the output staging is reallocated or given back between runs.
 */
#include "testing.h"

#include <string.h>

#include "core/alloc.h"
#include "vigil/engine.h"

enum { ITEM = 3 * 640 * 640, MAX_BATCH = 8 };

static vigil_plan *plan_on(vigil_model *m, vigil_arena *arena, vigil_plan **plans, int64_t b) {
    vigil_error err;
    if (plans[b]) return plans[b];
    vigil_status st = vigil_plan_create_in(m, b, arena, &plans[b], &err);
    if (st == VIGIL_ERR_LIMIT) { /* the arena must grow: drop the others, as cpu.c does */
        for (int k = 0; k <= MAX_BATCH; k++) {
            vigil_plan_destroy(plans[k]);
            plans[k] = NULL;
        }
        st = vigil_plan_create_in(m, b, arena, &plans[b], &err);
    }
    if (st) fprintf(stderr, "plan %lld: %s\n", (long long)b, err.message);
    CHECK_EQ_INT(st, VIGIL_OK);
    return plans[b];
}

/* Runs p on the first b items of x; 1 when every item equals ref's exactly. */
static int run_matches(vigil_plan *p, int64_t b, const float *x, const float *ref, size_t out_item) {
    vigil_error err;
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {b, 3, 640, 640}, .data = (void *)x};
    vigil_status st = vigil_plan_run(p, &t, 1, &err);
    if (st) fprintf(stderr, "run %lld: %s\n", (long long)b, err.message);
    CHECK_EQ_INT(st, VIGIL_OK);
    if (st) return 0;
    const vigil_tensor *y = vigil_plan_output(p, 0);
    CHECK_EQ_INT(y->dims[0], b);
    for (int64_t i = 0; i < b; i++)
        if (memcmp((const float *)y->data + i * out_item, ref + i * out_item, out_item * sizeof(float)) != 0) {
            fprintf(stderr, "  batch %lld: item %lld differs from its batch-1 output\n", (long long)b, (long long)i);
            return 0;
        }
    return 1;
}

static void dynbatch(int threads) {
    char path[4096];
    if (!testing_shared_path(path, sizeof path, "models/yolov8n_dynbatch.onnx")) SKIP("shared models absent");
    vigil_error err;
    vigil_engine_options o = {.threads = threads};
    vigil_engine *e = NULL;
    vigil_model *m = NULL;
    CHECK_EQ_INT(vigil_engine_create(&o, &e, &err), VIGIL_OK);
    if (e) CHECK_EQ_INT(vigil_model_load(e, path, &m, &err), VIGIL_OK);
    float *x = vigil_malloc(sizeof(float) * ITEM * MAX_BATCH);
    CHECK(x != NULL);
    if (!m || !x) {
        vigil_free(x);
        vigil_model_free(m);
        vigil_engine_destroy(e);
        return;
    }
    uint32_t r = 12345; /* distinct items in [0, 1) */
    for (size_t i = 0; i < (size_t)ITEM * MAX_BATCH; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(r >> 8) / 16777216.0f;
    }
    /* reference: each item alone on a plan of its own */
    vigil_plan *alone = NULL;
    CHECK_EQ_INT(vigil_plan_create(m, 1, &alone, &err), VIGIL_OK);
    size_t out_item = 0;
    float *ref = NULL;
    for (int i = 0; i < MAX_BATCH && alone; i++) {
        vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 3, 640, 640}, .data = x + (size_t)i * ITEM};
        CHECK_EQ_INT(vigil_plan_run(alone, &t, 1, &err), VIGIL_OK);
        const vigil_tensor *y = vigil_plan_output(alone, 0);
        if (!ref) {
            out_item = 1;
            for (int d = 1; d < y->ndim; d++) out_item *= (size_t)y->dims[d];
            ref = vigil_malloc(sizeof(float) * out_item * MAX_BATCH);
            CHECK(ref != NULL);
            if (!ref) break;
        }
        memcpy(ref + (size_t)i * out_item, y->data, sizeof(float) * out_item);
    }
    size_t own = vigil_plan_weight_bytes(alone);
    vigil_plan_destroy(alone);

    vigil_arena *arena = NULL;
    vigil_plan *plans[MAX_BATCH + 1] = {0};
    CHECK_EQ_INT(vigil_arena_create(&arena, &err), VIGIL_OK);
    if (ref && arena) {
        plan_on(m, arena, plans, 1);
        size_t one = vigil_arena_weight_bytes(arena), most = one;
        CHECK_EQ_INT(one, own);
        CHECK(one > 3000000 * sizeof(float)); /* yolov8n: 3.2 M parameters */
        for (int64_t b = 1; b <= MAX_BATCH; b++) {
            vigil_plan *p = plan_on(m, arena, plans, b);
            if (!p) continue;
            size_t pw = vigil_plan_weight_bytes(p);
            CHECK(pw == one || (threads > 1 && pw == one * (size_t)threads));
            if (pw > most) most = pw;
            CHECK(run_matches(p, b, x, ref, out_item));
        }
        fprintf(stderr, "  threads %d: packed weights %zu bytes for one plan, %zu for the instance at batch 1-8\n",
                threads, one, vigil_arena_weight_bytes(arena));
        CHECK_EQ_INT(vigil_arena_weight_bytes(arena), most);
        if (threads == 1) CHECK_EQ_INT(vigil_arena_weight_bytes(arena), one);
        /* alternating batch sizes: each plan sets the shared operators up
         * again; after 8 the smaller batches reallocate the output staging
         * (more than twice what they need), and after 5 the arena gives it
         * back (vigil_arena_trim) before the next run */
        static const int64_t order[] = {3, 1, 8, 2, 5, 1, 8, 4};
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
            vigil_plan *p = plan_on(m, arena, plans, order[k]);
            if (p) CHECK(run_matches(p, order[k], x, ref, out_item));
            if (order[k] == 5) vigil_arena_trim(arena);
        }
        CHECK_EQ_INT(vigil_arena_weight_bytes(arena), most);
    }
    for (int k = 0; k <= MAX_BATCH; k++) vigil_plan_destroy(plans[k]);
    vigil_arena_destroy(arena);
    vigil_free(ref);
    vigil_free(x);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

static void test_dynbatch_one_thread(void) {
    dynbatch(1);
}
/* on two threads the even batches split in two parts that run at once */
static void test_dynbatch_split(void) {
    dynbatch(2);
}

int main(void) {
    RUN(test_dynbatch_one_thread);
    RUN(test_dynbatch_split);
    return testing_report();
}
