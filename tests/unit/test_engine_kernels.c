/*
 * test_engine_kernels.c - the engine's own optimised kernels against the
 * plain-C references: the vectorised SiLU (ops/vmath.c) against
 * kernels_unary_f32(KERNELS_SILU), and the tiled NCHW <-> NHWC conversions
 * (ops/layout.c) against kernels_transpose, single- and multi-threaded.
 */
#include "testing.h"

#include "core/alloc.h"
#include "engine/engine_internal.h"
#include "engine/kernels/kernels.h"
#include "engine/ops/vmath.h"

static uint32_t rng = 7;
static float frand(float scale) {
    rng = rng * 1664525u + 1013904223u;
    return ((float)(rng >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
}

static void test_silu_matches_reference(void) {
    enum { N = 100003 }; /* not a multiple of the vector width */
    float *x = vigil_malloc(N * sizeof(float)), *ref = vigil_malloc(N * sizeof(float));
    float *par = vigil_malloc(N * sizeof(float));
    CHECK(x && ref && par);
    if (!x || !ref || !par) return;
    for (int i = 0; i < N; i++)
        x[i] = frand(i < 1000 ? 120.0f : 12.0f);
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = 1e-30f;
    x[3] = -1e30f;
    x[4] = 1e30f;
    x[5] = -87.5f;
    x[6] = 88.5f;
    kernels_unary_f32(KERNELS_SILU, NULL, x, ref, N);
    memcpy(par, x, N * sizeof(float));
    silu_f32_inplace(x, N);
    pthreadpool_t pool = pthreadpool_create(2);
    silu_f32_parallel(par, N, pool);
    pthreadpool_destroy(pool);
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double d = fabs((double)x[i] - (double)ref[i]);
        double tol = 1e-6 * fabs((double)ref[i]) + 1e-30;
        if (d / tol > worst) worst = d / tol;
        if (d > tol || par[i] != x[i]) bad++;
    }
    fprintf(stderr, "  worst error %.3g of a 1e-6 relative tolerance\n", worst);
    CHECK_EQ_INT(bad, 0);
    vigil_free(x);
    vigil_free(ref);
    vigil_free(par);
}

static void layout_roundtrip(pthreadpool_t pool) {
    static const int64_t shapes[][4] = {{1, 3, 17, 33}, {2, 64, 5, 7}, {1, 1, 8, 8}, {3, 5, 1, 1}, {1, 40, 33, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *d = shapes[s];
        size_t n = (size_t)(d[0] * d[1] * d[2] * d[3]);
        float *x = vigil_malloc(n * sizeof(float)), *y = vigil_malloc(n * sizeof(float));
        float *ref = vigil_malloc(n * sizeof(float)), *back = vigil_malloc(n * sizeof(float));
        CHECK(x && y && ref && back);
        if (!x || !y || !ref || !back) return;
        for (size_t i = 0; i < n; i++)
            x[i] = frand(1.0f);
        kshape xs = kshape_make(4, d);
        kernels_transpose(sizeof(float), x, &xs, (const int[]){0, 2, 3, 1}, ref);
        layout_nchw_to_nhwc(x, y, d, pool);
        CHECK(memcmp(y, ref, n * sizeof(float)) == 0);
        layout_nhwc_to_nchw(y, back, d, pool);
        CHECK(memcmp(back, x, n * sizeof(float)) == 0);
        vigil_free(x);
        vigil_free(y);
        vigil_free(ref);
        vigil_free(back);
    }
}

static void test_layout_conversions(void) {
    layout_roundtrip(NULL);
    pthreadpool_t pool = pthreadpool_create(2);
    layout_roundtrip(pool);
    pthreadpool_destroy(pool);
}

static void test_softmax_strided_matches_reference(void) {
    enum { OUTER = 3, LEN = 16, INNER = 1003 };
    size_t n = OUTER * LEN * INNER;
    float *x = vigil_malloc(n * sizeof(float)), *ref = vigil_malloc(n * sizeof(float));
    float *y = vigil_malloc(n * sizeof(float)), *scratch = vigil_malloc(2 * INNER * sizeof(float));
    CHECK(x && ref && y && scratch);
    if (!x || !ref || !y || !scratch) return;
    for (size_t i = 0; i < n; i++)
        x[i] = frand(i % 7 == 0 ? 80.0f : 8.0f);
    kernels_softmax_f32(x, ref, OUTER, LEN, INNER);
    softmax_f32_strided(x, y, OUTER, LEN, INNER, scratch);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - (double)ref[i]) / (1e-6 * fabs((double)ref[i]) + 1e-12);
        if (d > worst) worst = d;
    }
    fprintf(stderr, "  worst error %.3g of a 1e-6 relative (1e-12 absolute) tolerance\n", worst);
    CHECK(worst <= 1.0);
    vigil_free(x);
    vigil_free(ref);
    vigil_free(y);
    vigil_free(scratch);
}

int main(void) {
    RUN(test_silu_matches_reference);
    RUN(test_layout_conversions);
    RUN(test_softmax_strided_matches_reference);
    return testing_report();
}
