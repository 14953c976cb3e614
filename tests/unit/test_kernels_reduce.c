/*
 * test_kernels_reduce.c - Softmax/LogSoftmax/Hardmax, Reduce*, ArgMax/ArgMin,
 * CumSum, TopK, Range and NonZero of the reference kernels.
 */
#include <math.h>
#include <stdint.h>

#include "core/alloc.h"
#include "engine/kernels/kernels.h"
#include "testing.h"

static kshape S(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t d[4] = {d0, d1, d2, d3};
    return kshape_make(ndim, d);
}

static void test_softmax(void) {
    /* axis in the middle of [2,3,2]: columns are strided */
    float x[12], y[12], ly[12], hy[12];
    for (int i = 0; i < 12; i++) x[i] = (float)(i % 5) - 1.0f + (i == 7 ? 1000.0f : 0.0f);
    kernels_softmax_f32(x, y, 2, 3, 2);
    kernels_log_softmax_f32(x, ly, 2, 3, 2);
    kernels_hardmax_f32(x, hy, 2, 3, 2);
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < 2; j++) {
            double m = -INFINITY, s = 0;
            int arg = 0;
            for (int a = 0; a < 3; a++) {
                double v = x[o * 6 + a * 2 + j];
                if (v > m) {
                    m = v;
                    arg = a;
                }
            }
            for (int a = 0; a < 3; a++) s += exp(x[o * 6 + a * 2 + j] - m);
            for (int a = 0; a < 3; a++) {
                int i = o * 6 + a * 2 + j;
                CHECK_NEAR(y[i], exp(x[i] - m) / s, 1e-6);
                CHECK_NEAR(ly[i], x[i] - m - log(s), 1e-5);
                CHECK_NEAR(hy[i], a == arg ? 1 : 0, 0);
            }
        }
    CHECK(!isnan(y[7]) && fabs(y[7] - 1) < 1e-6); /* stable with a huge value */
    /* wide inner dim crosses the column block size */
    enum { INNER = 300 };
    static float wx[2 * INNER], wy[2 * INNER];
    for (int i = 0; i < 2 * INNER; i++) wx[i] = (float)(i % 7);
    kernels_softmax_f32(wx, wy, 1, 2, INNER);
    for (int j = 0; j < INNER; j++) CHECK_NEAR(wy[j] + wy[INNER + j], 1, 1e-6);
    /* hardmax ties pick the first */
    float t[3] = {2, 2, 1}, th[3];
    kernels_hardmax_f32(t, th, 1, 3, 1);
    CHECK(th[0] == 1 && th[1] == 0 && th[2] == 0);
}

static void test_reduce(void) {
    /* ONNX doc data: [3,2,2] */
    float x[12] = {5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2};
    kshape xs = S(3, 3, 2, 2, 0), ys;
    uint8_t mask[3];
    float y[12];
    int64_t ax1[1] = {1};
    CHECK_EQ_INT(kernels_reduce_shape(&xs, ax1, 1, 1, 0, mask, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 3);
    CHECK_EQ_INT(ys.dims[1], 1);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_MEAN, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    float em[6] = {12.5f, 1.5f, 35, 1.5f, 57.5f, 1.5f};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], em[i], 1e-5);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_MAX, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK(y[0] == 20 && y[1] == 2 && y[4] == 60);
    /* negative axis, no keepdims: reduce last */
    int64_t axm[1] = {-1};
    CHECK_EQ_INT(kernels_reduce_shape(&xs, axm, 1, 0, 0, mask, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 2);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_SUM, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    float es[6] = {6, 22, 31, 42, 56, 62};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], es[i], 1e-5);
    /* two non-adjacent axes {0, 2} */
    int64_t ax02[2] = {0, 2};
    CHECK_EQ_INT(kernels_reduce_shape(&xs, ax02, 2, 0, 0, mask, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 1);
    CHECK_EQ_INT(ys.dims[0], 2);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_MIN, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK(y[0] == 1 && y[1] == 2);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_SUM_SQUARE, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], 25 + 1 + 900 + 1 + 3025 + 1, 1e-3);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_L2, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], sqrt(25 + 1 + 900 + 1 + 3025 + 1), 1e-3);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_LOG_SUM_EXP, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], 55 + log1p(exp(-25.0) + exp(-50.0) + 3 * exp(-54.0)), 1e-4);
    /* all axes (empty list) and noop_with_empty_axes */
    CHECK_EQ_INT(kernels_reduce_shape(&xs, NULL, 0, 1, 0, mask, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kshape_count(&ys), 1);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_PROD, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], 5.0 * 20 * 2 * 30 * 40 * 2 * 55 * 60 * 2, 1e4);
    CHECK_EQ_INT(kernels_reduce_shape(&xs, NULL, 0, 1, 1, mask, &ys, NULL), VIGIL_OK);
    CHECK(kshape_equal(&ys, &xs));
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_L1, VIGIL_DTYPE_F32, x, &xs, mask, y, NULL), VIGIL_OK);
    CHECK_NEAR(y[5], 1, 0);
    /* empty reduction gives the identity */
    kshape es0 = S(2, 2, 0, 0, 0);
    int64_t ax1b[1] = {1};
    CHECK_EQ_INT(kernels_reduce_shape(&es0, ax1b, 1, 0, 0, mask, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_SUM, VIGIL_DTYPE_F32, x, &es0, mask, y, NULL), VIGIL_OK);
    CHECK(y[0] == 0 && y[1] == 0);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_MAX, VIGIL_DTYPE_F32, x, &es0, mask, y, NULL), VIGIL_OK);
    CHECK(isinf(y[0]) && y[0] < 0);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_PROD, VIGIL_DTYPE_F32, x, &es0, mask, y, NULL), VIGIL_OK);
    CHECK(y[0] == 1);
    /* integers */
    int64_t ix[6] = {1, -2, 3, 4, 5, -6}, iy[3];
    kshape is = S(2, 2, 3, 0, 0);
    int64_t ax0[1] = {0};
    CHECK_EQ_INT(kernels_reduce_shape(&is, ax0, 1, 0, 0, mask, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_SUM, VIGIL_DTYPE_I64, ix, &is, mask, iy, NULL), VIGIL_OK);
    CHECK(iy[0] == 5 && iy[1] == 3 && iy[2] == -3);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_MAX, VIGIL_DTYPE_I64, ix, &is, mask, iy, NULL), VIGIL_OK);
    CHECK(iy[0] == 4 && iy[1] == 5 && iy[2] == 3);
    CHECK_EQ_INT(kernels_reduce(KERNELS_REDUCE_L2, VIGIL_DTYPE_I64, ix, &is, mask, iy, NULL), VIGIL_ERR_UNSUPPORTED);
    int64_t badax[1] = {3};
    CHECK_EQ_INT(kernels_reduce_shape(&xs, badax, 1, 0, 0, mask, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
}

static void test_argreduce(void) {
    float x[6] = {2, 1, 3, 3, 1, 2}; /* [2,3] */
    int64_t y[3];
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_F32, x, 2, 3, 1, 0, y, NULL), VIGIL_OK);
    CHECK(y[0] == 2 && y[1] == 0);
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_F32, x, 2, 3, 1, 1, y, NULL), VIGIL_OK);
    CHECK(y[0] == 2 && y[1] == 0);
    CHECK_EQ_INT(kernels_argreduce(1, VIGIL_DTYPE_F32, x, 2, 3, 1, 0, y, NULL), VIGIL_OK);
    CHECK(y[0] == 1 && y[1] == 1);
    /* axis 0 of [2,3]: columns */
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_F32, x, 1, 2, 3, 0, y, NULL), VIGIL_OK);
    CHECK(y[0] == 1 && y[1] == 0 && y[2] == 0);
    float t[4] = {1, 5, 5, 0};
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_F32, t, 1, 4, 1, 1, y, NULL), VIGIL_OK);
    CHECK_EQ_INT(y[0], 2); /* select_last_index */
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_F32, t, 1, 4, 1, 0, y, NULL), VIGIL_OK);
    CHECK_EQ_INT(y[0], 1);
    int64_t li[3] = {-5, 7, 7};
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_I64, li, 1, 3, 1, 0, y, NULL), VIGIL_OK);
    CHECK_EQ_INT(y[0], 1);
    CHECK_EQ_INT(kernels_argreduce(0, VIGIL_DTYPE_F32, t, 1, 0, 1, 0, y, NULL), VIGIL_ERR_INVALID_ARGUMENT);
}

static void test_cumsum(void) {
    float x[5] = {1, 2, 3, 4, 5}, y[5];
    CHECK_EQ_INT(kernels_cumsum(VIGIL_DTYPE_F32, x, y, 1, 5, 1, 0, 0, NULL), VIGIL_OK);
    float e0[5] = {1, 3, 6, 10, 15};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], e0[i], 0);
    CHECK_EQ_INT(kernels_cumsum(VIGIL_DTYPE_F32, x, y, 1, 5, 1, 1, 0, NULL), VIGIL_OK);
    float e1[5] = {0, 1, 3, 6, 10};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], e1[i], 0);
    CHECK_EQ_INT(kernels_cumsum(VIGIL_DTYPE_F32, x, y, 1, 5, 1, 0, 1, NULL), VIGIL_OK);
    float e2[5] = {15, 14, 12, 9, 5};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], e2[i], 0);
    CHECK_EQ_INT(kernels_cumsum(VIGIL_DTYPE_F32, x, y, 1, 5, 1, 1, 1, NULL), VIGIL_OK);
    float e3[5] = {14, 12, 9, 5, 0};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], e3[i], 0);
    /* along axis 0 of [2,3] */
    int64_t m[6] = {1, 2, 3, 4, 5, 6}, my[6];
    CHECK_EQ_INT(kernels_cumsum(VIGIL_DTYPE_I64, m, my, 1, 2, 3, 0, 0, NULL), VIGIL_OK);
    CHECK(my[0] == 1 && my[3] == 5 && my[5] == 9);
    CHECK_EQ_INT(kernels_cumsum(VIGIL_DTYPE_BOOL, m, my, 1, 2, 3, 0, 0, NULL), VIGIL_ERR_UNSUPPORTED);
}

static void test_topk(void) {
    float x[6] = {1, 3, 3, 2, 3, 0};
    float v[4];
    int64_t idx[4];
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_F32, x, 1, 6, 1, 4, 1, 1, v, idx, NULL), VIGIL_OK);
    /* ties keep the lower index first */
    CHECK(v[0] == 3 && v[1] == 3 && v[2] == 3 && v[3] == 2);
    CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 4 && idx[3] == 3);
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_F32, x, 1, 6, 1, 2, 0, 1, v, idx, NULL), VIGIL_OK);
    CHECK(v[0] == 0 && v[1] == 1 && idx[0] == 5 && idx[1] == 0);
    /* along axis 0 of [3,2] */
    int64_t m[6] = {1, 9, 5, 2, 3, 7}, mv[4], mi[4];
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_I64, m, 1, 3, 2, 2, 1, 1, mv, mi, NULL), VIGIL_OK);
    CHECK(mv[0] == 5 && mv[1] == 9 && mv[2] == 3 && mv[3] == 7);
    CHECK(mi[0] == 1 && mi[1] == 0 && mi[2] == 2 && mi[3] == 2);
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_F32, x, 1, 6, 1, 7, 1, 1, v, idx, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_F32, x, 1, 6, 1, 0, 1, 1, v, idx, NULL), VIGIL_OK);
    alloc_fail_nth(1);
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_F32, x, 1, 6, 1, 2, 1, 1, v, idx, NULL), VIGIL_ERR_NO_MEMORY);
    alloc_fail_nth(0);
    CHECK_EQ_INT(kernels_topk(VIGIL_DTYPE_BOOL, x, 1, 6, 1, 2, 1, 1, v, idx, NULL), VIGIL_ERR_UNSUPPORTED);
}

static void test_range_nonzero(void) {
    int64_t n;
    float fs = 1, fl = 2, fd = 0.3f;
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_F32, &fs, &fl, &fd, &n, NULL), VIGIL_OK);
    CHECK_EQ_INT(n, 4);
    float fy[4];
    kernels_range(VIGIL_DTYPE_F32, &fs, &fd, n, fy);
    CHECK_NEAR(fy[3], 1.9, 1e-6);
    int64_t s = 10, l = 4, d = -3, y[2];
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_I64, &s, &l, &d, &n, NULL), VIGIL_OK);
    CHECK_EQ_INT(n, 2);
    kernels_range(VIGIL_DTYPE_I64, &s, &d, n, y);
    CHECK(y[0] == 10 && y[1] == 7);
    int64_t up = 3;
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_I64, &s, &l, &up, &n, NULL), VIGIL_OK);
    CHECK_EQ_INT(n, 0);
    int64_t z = 0;
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_I64, &s, &l, &z, &n, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    int32_t a = 0, b = 5, c = 2, iy[3];
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_I32, &a, &b, &c, &n, NULL), VIGIL_OK);
    CHECK_EQ_INT(n, 3);
    kernels_range(VIGIL_DTYPE_I32, &a, &c, n, iy);
    CHECK(iy[2] == 4);
    /* NonZero of [[1,0],[1,1]] -> [[0,1,1],[0,0,1]] */
    float x[4] = {1, 0, 1, 1};
    kshape xs = S(2, 2, 2, 0, 0);
    int64_t cnt = kernels_nonzero_count(VIGIL_DTYPE_F32, x, 4);
    CHECK_EQ_INT(cnt, 3);
    int64_t nz[6];
    kernels_nonzero(VIGIL_DTYPE_F32, x, &xs, cnt, nz);
    int64_t e[6] = {0, 1, 1, 0, 0, 1};
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(nz[i], e[i]);
}

int main(void) {
    RUN(test_softmax);
    RUN(test_reduce);
    RUN(test_argreduce);
    RUN(test_cumsum);
    RUN(test_topk);
    RUN(test_range_nonzero);
    return testing_report();
}
