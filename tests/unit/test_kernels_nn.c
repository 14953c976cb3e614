/*
 * test_kernels_nn.c - Resize, MatMul, Gemm, Conv, ConvTranspose, pooling and
 * normalisation kernels: hand-computed cases (the 2x2 -> 4x4 Resize under
 * half_pixel and align_corners) and comparisons of the loop-optimised
 * kernels against straightforward formula-by-formula versions on
 * pseudo-random data.
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

static uint32_t rng_state = 12345;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static float *rand_buf(int64_t n) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* ---- Resize ---- */

static void resize_2x2(kernels_resize_mode mode, kernels_resize_coord coord, float *y) {
    float x[4] = {1, 2, 3, 4};
    kshape xs = S(4, 1, 1, 2, 2), ys;
    kernels_resize_params p;
    kernels_resize_defaults(&p);
    p.mode = mode;
    p.coord = coord;
    float scales[4] = {1, 1, 2, 2};
    CHECK_EQ_INT(kernels_resize_shape(&xs, scales, NULL, NULL, 4, 0, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 4);
    CHECK_EQ_INT(ys.dims[3], 4);
    CHECK_EQ_INT(kernels_resize_f32(x, &xs, y, &ys, &p, NULL), VIGIL_OK);
}

static void test_resize_linear(void) {
    float y[16];
    resize_2x2(KERNELS_RESIZE_LINEAR, KERNELS_COORD_HALF_PIXEL, y);
    float hp[16] = {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4};
    for (int i = 0; i < 16; i++) CHECK_NEAR(y[i], hp[i], 1e-6);
    resize_2x2(KERNELS_RESIZE_LINEAR, KERNELS_COORD_ALIGN_CORNERS, y);
    float ac[16] = {1, 4 / 3.f, 5 / 3.f, 2, 5 / 3.f, 2, 7 / 3.f, 8 / 3.f, 7 / 3.f, 8 / 3.f, 3, 10 / 3.f,
                    3, 10 / 3.f, 11 / 3.f, 4};
    for (int i = 0; i < 16; i++) CHECK_NEAR(y[i], ac[i], 1e-6);
    resize_2x2(KERNELS_RESIZE_LINEAR, KERNELS_COORD_ASYMMETRIC, y);
    float as[16] = {1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 3, 3.5f, 4, 4, 3, 3.5f, 4, 4};
    for (int i = 0; i < 16; i++) CHECK_NEAR(y[i], as[i], 1e-6);
}

static void test_resize_nearest(void) {
    float y[16];
    /* asymmetric + floor: the YOLO upsample */
    float x[4] = {1, 2, 3, 4};
    kshape xs = S(4, 1, 1, 2, 2), ys;
    kernels_resize_params p;
    kernels_resize_defaults(&p);
    p.coord = KERNELS_COORD_ASYMMETRIC;
    p.nearest = KERNELS_NEAREST_FLOOR;
    float scales[4] = {1, 1, 2, 2};
    CHECK_EQ_INT(kernels_resize_shape(&xs, scales, NULL, NULL, 4, 0, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_resize_f32(x, &xs, y, &ys, &p, NULL), VIGIL_OK);
    float e[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    for (int i = 0; i < 16; i++) CHECK_NEAR(y[i], e[i], 0);
    /* half_pixel round_prefer_floor on 1-D 4 -> 3 (scale 0.75): coords 0.1667, 1.5, 2.833 -> 0, 1, 3 */
    float r[4] = {10, 20, 30, 40}, ry[3];
    kshape rs = S(1, 4, 0, 0, 0);
    int64_t sizes[1] = {3};
    kernels_resize_defaults(&p);
    CHECK_EQ_INT(kernels_resize_shape(&rs, NULL, sizes, NULL, 1, 0, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[0], 3);
    CHECK_NEAR(p.scales[0], 0.75, 1e-7);
    CHECK_EQ_INT(kernels_resize_f32(r, &rs, ry, &ys, &p, NULL), VIGIL_OK);
    CHECK(ry[0] == 10 && ry[1] == 20 && ry[2] == 40);
    p.nearest = KERNELS_NEAREST_ROUND_PREFER_CEIL;
    CHECK_EQ_INT(kernels_resize_f32(r, &rs, ry, &ys, &p, NULL), VIGIL_OK);
    CHECK(ry[0] == 10 && ry[1] == 30 && ry[2] == 40);
    /* sizes with axes (opset 18) and keep_aspect_ratio_policy not_larger */
    kshape big = S(4, 1, 1, 4, 8);
    int64_t sz2[2] = {2, 2}, axes[2] = {2, 3};
    CHECK_EQ_INT(kernels_resize_shape(&big, NULL, sz2, axes, 2, 1, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 1);
    CHECK_EQ_INT(ys.dims[3], 2);
    CHECK_NEAR(p.scales[3], 0.25, 0);
    CHECK_EQ_INT(kernels_resize_shape(&big, NULL, sz2, axes, 2, 2, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 2);
    CHECK_EQ_INT(ys.dims[3], 4);
    CHECK_EQ_INT(kernels_resize_shape(&big, NULL, NULL, NULL, 4, 0, &p, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
}

static void test_resize_cubic_and_crop(void) {
    /* cubic on a linear ramp reproduces the ramp away from the borders */
    float x[8], y[16];
    for (int i = 0; i < 8; i++) x[i] = (float)i;
    kshape xs = S(1, 8, 0, 0, 0), ys;
    kernels_resize_params p;
    kernels_resize_defaults(&p);
    p.mode = KERNELS_RESIZE_CUBIC;
    p.coord = KERNELS_COORD_ALIGN_CORNERS;
    int64_t sizes[1] = {15};
    CHECK_EQ_INT(kernels_resize_shape(&xs, NULL, sizes, NULL, 1, 0, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_resize_f32(x, &xs, y, &ys, &p, NULL), VIGIL_OK);
    for (int i = 2; i < 13; i++) CHECK_NEAR(y[i], i * 0.5, 1e-5);
    /* exclude_outside renormalises: a constant signal stays constant at the border */
    float c[4] = {2, 2, 2, 2}, cy[8];
    kshape cs = S(1, 4, 0, 0, 0);
    p.coord = KERNELS_COORD_HALF_PIXEL;
    p.exclude_outside = 1;
    p.cubic_coeff_a = -0.5f;
    int64_t sz8[1] = {8};
    CHECK_EQ_INT(kernels_resize_shape(&cs, NULL, sz8, NULL, 1, 0, &p, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_resize_f32(c, &cs, cy, &ys, &p, NULL), VIGIL_OK);
    for (int i = 0; i < 8; i++) CHECK_NEAR(cy[i], 2, 1e-6);
    /* tf_crop_and_resize outside the roi gives the extrapolation value */
    float roi[2] = {0.5f, 1.5f};
    kernels_resize_defaults(&p);
    p.mode = KERNELS_RESIZE_LINEAR;
    p.coord = KERNELS_COORD_TF_CROP_AND_RESIZE;
    p.roi = roi;
    p.extrapolation_value = -7;
    int64_t sz3[1] = {3};
    CHECK_EQ_INT(kernels_resize_shape(&cs, NULL, sz3, NULL, 1, 0, &p, &ys, NULL), VIGIL_OK);
    float rx[4] = {0, 10, 20, 30}, ry[3];
    CHECK_EQ_INT(kernels_resize_f32(rx, &cs, ry, &ys, &p, NULL), VIGIL_OK);
    /* coords: 1.5, 3.0, 4.5 -> 15, 30, outside */
    CHECK_NEAR(ry[0], 15, 1e-5);
    CHECK_NEAR(ry[1], 30, 1e-5);
    CHECK_NEAR(ry[2], -7, 0);
}

/* Resizing NHWC (channels last: an identity innermost dim) must agree with
 * resizing NCHW, for every mode. */
static void test_resize_nhwc_matches_nchw(void) {
    int64_t dn[4] = {2, 3, 5, 4}, dh[4] = {2, 5, 4, 3};
    kshape ns = kshape_make(4, dn), hs = kshape_make(4, dh), nys, hys;
    float *x = rand_buf(120), xh[120], yn[2 * 3 * 9 * 11], yh[2 * 3 * 9 * 11], back[2 * 3 * 9 * 11];
    int to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
    kernels_transpose(sizeof(float), x, &ns, to_nhwc, xh);
    for (int mode = 0; mode < 3; mode++) {
        kernels_resize_params pn, ph;
        kernels_resize_defaults(&pn);
        pn.mode = (kernels_resize_mode)mode;
        ph = pn;
        int64_t sn[4] = {2, 3, 9, 11}, sh[4] = {2, 9, 11, 3};
        CHECK_EQ_INT(kernels_resize_shape(&ns, NULL, sn, NULL, 4, 0, &pn, &nys, NULL), VIGIL_OK);
        CHECK_EQ_INT(kernels_resize_shape(&hs, NULL, sh, NULL, 4, 0, &ph, &hys, NULL), VIGIL_OK);
        CHECK_EQ_INT(kernels_resize_f32(x, &ns, yn, &nys, &pn, NULL), VIGIL_OK);
        CHECK_EQ_INT(kernels_resize_f32(xh, &hs, yh, &hys, &ph, NULL), VIGIL_OK);
        kernels_transpose(sizeof(float), yh, &hys, to_nchw, back);
        int64_t bad = 0;
        for (int i = 0; i < 2 * 3 * 9 * 11; i++) bad += fabsf(back[i] - yn[i]) > 1e-5f;
        CHECK_EQ_INT(bad, 0);
    }
    free(x);
}

/* The table allocation failing is a status, and the output is untouched. */
static void test_resize_no_memory(void) {
    float x[4] = {1, 2, 3, 4}, y[16];
    for (int i = 0; i < 16; i++) y[i] = -1;
    kshape xs = S(4, 1, 1, 2, 2), ys;
    kernels_resize_params p;
    kernels_resize_defaults(&p);
    float scales[4] = {1, 1, 2, 2};
    CHECK_EQ_INT(kernels_resize_shape(&xs, scales, NULL, NULL, 4, 0, &p, &ys, NULL), VIGIL_OK);
    vigil_error err;
    alloc_fail_nth(1);
    CHECK_EQ_INT(kernels_resize_f32(x, &xs, y, &ys, &p, &err), VIGIL_ERR_NO_MEMORY);
    alloc_fail_nth(0);
    CHECK(y[0] == -1 && y[15] == -1);
    CHECK_EQ_INT(kernels_resize_f32(x, &xs, y, &ys, &p, &err), VIGIL_OK);
    CHECK(y[0] == 1 && y[15] == 4);
}

/* ---- MatMul / Gemm ---- */

static void naive_mm(int64_t M, int64_t N, int64_t K, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
            y[i * N + j] = (float)s;
        }
}

static void test_matmul(void) {
    /* batch broadcasting: [2,1,5,7] x [3,7,6] -> [2,3,5,6] */
    int64_t ad[4] = {2, 1, 5, 7}, bd[3] = {3, 7, 6};
    kshape as = kshape_make(4, ad), bs = kshape_make(3, bd), ys;
    CHECK_EQ_INT(kernels_matmul_shape(&as, &bs, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 4);
    CHECK_EQ_INT(ys.dims[1], 3);
    CHECK_EQ_INT(ys.dims[3], 6);
    float *a = rand_buf(70), *b = rand_buf(126), y[180], e[30];
    CHECK_EQ_INT(kernels_matmul(VIGIL_DTYPE_F32, a, &as, b, &bs, y, &ys, NULL), VIGIL_OK);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            naive_mm(5, 6, 7, a + i * 35, b + j * 42, e);
            for (int k = 0; k < 30; k++) CHECK_NEAR(y[(i * 3 + j) * 30 + k], e[k], 1e-5);
        }
    /* 1-D operands: [7] x [7,6] -> [6]; [5,7] x [7] -> [5] */
    kshape v = S(1, 7, 0, 0, 0), m76 = S(2, 7, 6, 0, 0), m57 = S(2, 5, 7, 0, 0);
    CHECK_EQ_INT(kernels_matmul_shape(&v, &m76, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 1);
    CHECK_EQ_INT(ys.dims[0], 6);
    CHECK_EQ_INT(kernels_matmul(VIGIL_DTYPE_F32, a, &v, b, &m76, y, &ys, NULL), VIGIL_OK);
    naive_mm(1, 6, 7, a, b, e);
    for (int k = 0; k < 6; k++) CHECK_NEAR(y[k], e[k], 1e-5);
    CHECK_EQ_INT(kernels_matmul_shape(&m57, &v, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 1);
    CHECK_EQ_INT(ys.dims[0], 5);
    CHECK_EQ_INT(kernels_matmul(VIGIL_DTYPE_F32, a, &m57, b, &v, y, &ys, NULL), VIGIL_OK);
    naive_mm(5, 1, 7, a, b, e);
    for (int k = 0; k < 5; k++) CHECK_NEAR(y[k], e[k], 1e-5);
    CHECK_EQ_INT(kernels_matmul_shape(&m57, &m57, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* larger than a block, odd sizes */
    int64_t M = 37, N = 600, K = 300;
    float *A = rand_buf(M * K), *B = rand_buf(K * N), *Y = malloc((size_t)(M * N) * sizeof(float)),
          *E = malloc((size_t)(M * N) * sizeof(float));
    kernels_sgemm(M, N, K, A, K, B, N, Y, N, 0);
    naive_mm(M, N, K, A, B, E);
    double maxerr = 0;
    for (int64_t i = 0; i < M * N; i++) maxerr = fmax(maxerr, fabs(Y[i] - E[i]));
    CHECK(maxerr < 1e-4);
    /* int64 */
    int64_t ia[4] = {1, 2, 3, 4}, ib[4] = {5, 6, 7, 8}, iy[4];
    kshape s22 = S(2, 2, 2, 0, 0);
    CHECK_EQ_INT(kernels_matmul(VIGIL_DTYPE_I64, ia, &s22, ib, &s22, iy, &s22, NULL), VIGIL_OK);
    CHECK(iy[0] == 19 && iy[1] == 22 && iy[2] == 43 && iy[3] == 50);
    free(a);
    free(b);
    free(A);
    free(B);
    free(Y);
    free(E);
}

static void test_gemm(void) {
    int64_t M = 3, N = 5, K = 4;
    float *A = rand_buf(M * K), *B = rand_buf(K * N), *C = rand_buf(N), y[15], e[15];
    float At[12], Bt[20];
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) At[k * M + i] = A[i * K + k];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++) Bt[j * K + k] = B[k * N + j];
    naive_mm(M, N, K, A, B, e);
    kshape as = S(2, M, K, 0, 0), ats = S(2, K, M, 0, 0), bs = S(2, K, N, 0, 0), bts = S(2, N, K, 0, 0),
           cs = S(1, N, 0, 0, 0), ys;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            CHECK_EQ_INT(kernels_gemm_shape(ta ? &ats : &as, tb ? &bts : &bs, &cs, ta, tb, &ys, NULL), VIGIL_OK);
            CHECK_EQ_INT(ys.dims[0], M);
            CHECK_EQ_INT(ys.dims[1], N);
            kernels_gemm_f32(ta ? At : A, ta ? &ats : &as, tb ? Bt : B, tb ? &bts : &bs, C, &cs, ta, tb, 0.5f, 2.0f,
                             y);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) CHECK_NEAR(y[i * N + j], 0.5 * e[i * N + j] + 2 * C[j], 1e-5);
        }
    /* C as a column [M,1] and as a scalar; no C */
    float col[3] = {1, 2, 3}, sc = 10;
    kshape cols = S(2, M, 1, 0, 0), scs = S(0, 0, 0, 0, 0);
    kernels_gemm_f32(A, &as, B, &bs, col, &cols, 0, 0, 1, 1, y);
    for (int i = 0; i < M; i++) CHECK_NEAR(y[i * N + 2], e[i * N + 2] + col[i], 1e-5);
    kernels_gemm_f32(A, &as, B, &bs, &sc, &scs, 0, 0, 1, 1, y);
    CHECK_NEAR(y[7], e[7] + 10, 1e-5);
    kernels_gemm_f32(A, &as, B, &bs, NULL, NULL, 0, 0, 3, 0, y);
    CHECK_NEAR(y[7], 3 * e[7], 1e-5);
    kshape badc = S(1, 4, 0, 0, 0);
    CHECK_EQ_INT(kernels_gemm_shape(&as, &bs, &badc, 0, 0, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    free(A);
    free(B);
    free(C);
}

/* ---- Conv / ConvTranspose / pools ---- */

static float naive_conv_at(const float *x, const kshape *xs, const float *w, const float *b, const kernels_window *win,
                           int64_t n, int64_t m, int64_t oh, int64_t ow, int64_t M) {
    int64_t C = xs->dims[1], H = xs->dims[2], W = xs->dims[3], g = win->group, cg = C / g, mg = M / g;
    double s = b ? b[m] : 0;
    for (int64_t ci = 0; ci < cg; ci++)
        for (int64_t kh = 0; kh < win->kernel[0]; kh++)
            for (int64_t kw = 0; kw < win->kernel[1]; kw++) {
                int64_t ih = oh * win->stride[0] - win->pad_begin[0] + kh * win->dilation[0];
                int64_t iw = ow * win->stride[1] - win->pad_begin[1] + kw * win->dilation[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                int64_t c = (m / mg) * cg + ci;
                s += (double)x[((n * C + c) * H + ih) * W + iw] *
                     w[((m * cg + ci) * win->kernel[0] + kh) * win->kernel[1] + kw];
            }
    return (float)s;
}

static void check_conv(int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int64_t k0, int64_t k1, int64_t s,
                       int64_t d, int64_t pb, int64_t pe, int64_t g) {
    kernels_window win;
    int64_t kernel[2] = {k0, k1};
    kernels_window_defaults(&win, 2, kernel);
    win.stride[0] = s;
    win.stride[1] = s + (s > 1 ? 0 : 1); /* asymmetric strides when s == 1 */
    win.dilation[0] = d;
    win.dilation[1] = 1;
    win.pad_begin[0] = pb;
    win.pad_begin[1] = pe;
    win.pad_end[0] = pe;
    win.pad_end[1] = pb;
    win.group = g;
    kshape xs = S(4, N, C, H, W), ws = S(4, M, C / g, k0, k1), ys;
    CHECK_EQ_INT(kernels_conv_shape(&xs, &ws, &win, &ys, NULL), VIGIL_OK);
    float *x = rand_buf(kshape_count(&xs)), *w = rand_buf(kshape_count(&ws)), *b = rand_buf(M);
    float *y = malloc((size_t)kshape_count(&ys) * sizeof(float));
    kernels_conv_f32(x, &xs, w, b, &win, y, &ys);
    int64_t bad = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t oh = 0; oh < ys.dims[2]; oh++)
                for (int64_t ow = 0; ow < ys.dims[3]; ow++) {
                    float e = naive_conv_at(x, &xs, w, b, &win, n, m, oh, ow, M);
                    float got = y[((n * M + m) * ys.dims[2] + oh) * ys.dims[3] + ow];
                    bad += fabsf(got - e) > 1e-4f;
                }
    CHECK_EQ_INT(bad, 0);
    free(x);
    free(w);
    free(b);
    free(y);
}

static void test_conv(void) {
    check_conv(1, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1);
    check_conv(2, 4, 8, 8, 6, 3, 2, 2, 1, 0, 1, 2);
    check_conv(1, 6, 9, 10, 6, 3, 3, 1, 2, 2, 0, 6); /* depthwise, dilated */
    check_conv(1, 2, 5, 5, 2, 1, 1, 3, 1, 0, 0, 1);
    /* 1-D conv through H = 1: [1,1,5] * [1,1,3], pads 1 */
    float x[5] = {1, 2, 3, 4, 5}, w[3] = {1, 0, -1}, y[5];
    kshape xs = S(3, 1, 1, 5, 0), ws = S(3, 1, 1, 3, 0), ys;
    kernels_window win;
    int64_t k[1] = {3};
    kernels_window_defaults(&win, 1, k);
    win.pad_begin[0] = win.pad_end[0] = 1;
    CHECK_EQ_INT(kernels_conv_shape(&xs, &ws, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 3);
    CHECK_EQ_INT(ys.dims[2], 5);
    kernels_conv_f32(x, &xs, w, NULL, &win, y, &ys);
    float e[5] = {-2, -2, -2, -2, 4};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], e[i], 1e-6);
    /* auto_pad SAME_UPPER vs SAME_LOWER with stride 2 on 6: total pad 1 */
    int64_t in[2] = {6, 6}, k2[2] = {2, 2};
    kernels_window_defaults(&win, 2, k2);
    win.stride[0] = win.stride[1] = 2;
    kernels_resolve_auto_pad(KERNELS_PAD_SAME_UPPER, in, &win);
    CHECK(win.pad_begin[0] == 0 && win.pad_end[0] == 0);
    int64_t k3[2] = {3, 3};
    kernels_window_defaults(&win, 2, k3);
    win.stride[0] = win.stride[1] = 2;
    kernels_resolve_auto_pad(KERNELS_PAD_SAME_UPPER, in, &win);
    CHECK(win.pad_begin[0] == 0 && win.pad_end[0] == 1);
    kernels_resolve_auto_pad(KERNELS_PAD_SAME_LOWER, in, &win);
    CHECK(win.pad_begin[0] == 1 && win.pad_end[0] == 0);
    kernels_resolve_auto_pad(KERNELS_PAD_VALID, in, &win);
    CHECK(win.pad_begin[0] == 0 && win.pad_end[0] == 0);
    /* bad shapes */
    kshape x4 = S(4, 1, 3, 5, 5), wbad = S(4, 2, 2, 3, 3);
    kernels_window_defaults(&win, 2, k3);
    CHECK_EQ_INT(kernels_conv_shape(&x4, &wbad, &win, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
}

static void test_conv_transpose(void) {
    /* ONNX doc example: x [1,1,3,3] = 0..8, w ones [1,2,3,3] -> y [1,2,5,5] */
    float x[9], w[18], y[50];
    for (int i = 0; i < 9; i++) x[i] = (float)i;
    for (int i = 0; i < 18; i++) w[i] = 1;
    kshape xs = S(4, 1, 1, 3, 3), ws = S(4, 1, 2, 3, 3), ys;
    kernels_window win;
    int64_t k[2] = {3, 3};
    kernels_window_defaults(&win, 2, k);
    CHECK_EQ_INT(kernels_convtranspose_shape(&xs, &ws, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[1], 2);
    CHECK_EQ_INT(ys.dims[2], 5);
    kernels_convtranspose_f32(x, &xs, w, NULL, &win, y, &ys);
    float e[25] = {0, 1, 3, 3, 2, 3, 8, 15, 12, 7, 9, 21, 36, 27, 15, 9, 20, 33, 24, 13, 6, 13, 21, 15, 8};
    for (int i = 0; i < 25; i++) {
        CHECK_NEAR(y[i], e[i], 1e-6);
        CHECK_NEAR(y[25 + i], e[i], 1e-6);
    }
    /* strides 3,2 with output_padding 1,1 (ONNX "convtranspose_pad" shape 10x8) */
    win.stride[0] = 3;
    win.stride[1] = 2;
    win.output_padding[0] = win.output_padding[1] = 1;
    CHECK_EQ_INT(kernels_convtranspose_shape(&xs, &ws, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 10);
    CHECK_EQ_INT(ys.dims[3], 8);
    /* output_shape [10, 8] resolved into pads gives the same total */
    int64_t in[2] = {3, 3}, out[2] = {10, 8};
    CHECK_EQ_INT(kernels_convtranspose_pads_for_output(in, out, 0, &win, NULL), VIGIL_OK);
    CHECK(win.pad_begin[0] == 0 && win.pad_end[0] == 0);
    int64_t out2[2] = {9, 7}, out3[2] = {11, 9};
    CHECK_EQ_INT(kernels_convtranspose_pads_for_output(in, out2, 0, &win, NULL), VIGIL_OK);
    CHECK(win.pad_begin[0] == 1 && win.pad_end[0] == 0); /* NOTSET: the odd unit goes first */
    CHECK_EQ_INT(kernels_convtranspose_pads_for_output(in, out2, 1, &win, NULL), VIGIL_OK);
    CHECK(win.pad_begin[0] == 0 && win.pad_end[0] == 1); /* SAME_UPPER: the odd unit goes last */
    CHECK_EQ_INT(kernels_convtranspose_pads_for_output(in, out3, 0, &win, NULL), VIGIL_OK);
    CHECK(win.pad_begin[0] == 0 && win.pad_end[0] == -1); /* larger output: floor(-1 / 2) = -1 at the end */
    CHECK_EQ_INT(kernels_convtranspose_shape(&xs, &ws, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 11);
    /* transpose of a stride-2 conv is its adjoint: <conv(x), y> == <x, convT(y)> */
    kernels_window cw;
    kernels_window_defaults(&cw, 2, k);
    cw.stride[0] = cw.stride[1] = 2;
    cw.pad_begin[0] = cw.pad_begin[1] = cw.pad_end[0] = cw.pad_end[1] = 1;
    cw.group = 2;
    kshape cxs = S(4, 1, 4, 7, 7), cws = S(4, 4, 2, 3, 3), cys;
    CHECK_EQ_INT(kernels_conv_shape(&cxs, &cws, &cw, &cys, NULL), VIGIL_OK);
    float *cx = rand_buf(196), *cwt = rand_buf(72), *cy = malloc((size_t)kshape_count(&cys) * sizeof(float));
    float *r = rand_buf(kshape_count(&cys)), back[196];
    kernels_conv_f32(cx, &cxs, cwt, NULL, &cw, cy, &cys);
    /* the ConvTranspose weight for the adjoint: [C_out_of_conv=4, C_in/group=2, k, k], same memory */
    kshape tws = S(4, 4, 2, 3, 3), tys;
    CHECK_EQ_INT(kernels_convtranspose_shape(&cys, &tws, &cw, &tys, NULL), VIGIL_OK);
    CHECK_EQ_INT(tys.dims[2], 7);
    CHECK_EQ_INT(tys.dims[1], 4);
    kernels_convtranspose_f32(r, &cys, cwt, NULL, &cw, back, &tys);
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < kshape_count(&cys); i++) lhs += (double)cy[i] * r[i];
    for (int i = 0; i < 196; i++) rhs += (double)cx[i] * back[i];
    CHECK_NEAR(lhs, rhs, 1e-3);
    free(cx);
    free(cwt);
    free(cy);
    free(r);
}

static void test_pool(void) {
    /* 4x4 ramp, MaxPool 2x2 stride 2 -> [[5,7],[13,15]] with indices */
    float x[16], y[16];
    int64_t idx[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    kshape xs = S(4, 1, 1, 4, 4), ys;
    kernels_window win;
    int64_t k[2] = {2, 2};
    kernels_window_defaults(&win, 2, k);
    win.stride[0] = win.stride[1] = 2;
    CHECK_EQ_INT(kernels_pool_shape(&xs, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 2);
    kernels_maxpool_f32(x, &xs, &win, y, &ys, idx);
    CHECK(y[0] == 5 && y[1] == 7 && y[2] == 13 && y[3] == 15);
    CHECK(idx[0] == 5 && idx[3] == 15);
    kernels_avgpool_f32(x, &xs, &win, 0, y, &ys);
    CHECK_NEAR(y[0], 2.5, 1e-6);
    CHECK_NEAR(y[3], 12.5, 1e-6);
    /* 3x3 stride 2 pad 1 (YOLO-style), count_include_pad on and off */
    int64_t k3[2] = {3, 3};
    kernels_window_defaults(&win, 2, k3);
    win.stride[0] = win.stride[1] = 2;
    win.pad_begin[0] = win.pad_begin[1] = win.pad_end[0] = win.pad_end[1] = 1;
    CHECK_EQ_INT(kernels_pool_shape(&xs, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[2], 2);
    kernels_avgpool_f32(x, &xs, &win, 0, y, &ys);
    CHECK_NEAR(y[0], (0 + 1 + 4 + 5) / 4.0, 1e-6);
    kernels_avgpool_f32(x, &xs, &win, 1, y, &ys);
    CHECK_NEAR(y[0], (0 + 1 + 4 + 5) / 9.0, 1e-6);
    kernels_maxpool_f32(x, &xs, &win, y, &ys, NULL);
    CHECK(y[0] == 5 && y[3] == 15);
    /* ceil_mode: 5 wide, kernel 2 stride 2 -> 3 with ceil, 2 without */
    kshape x5 = S(4, 1, 1, 5, 5);
    kernels_window_defaults(&win, 2, k);
    win.stride[0] = win.stride[1] = 2;
    CHECK_EQ_INT(kernels_pool_shape(&x5, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[3], 2);
    win.ceil_mode = 1;
    CHECK_EQ_INT(kernels_pool_shape(&x5, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[3], 3);
    float x25[25], y9[9];
    for (int i = 0; i < 25; i++) x25[i] = (float)i;
    kernels_avgpool_f32(x25, &x5, &win, 1, y9, &ys);
    CHECK_NEAR(y9[2], (4 + 9) / 2.0, 1e-6); /* window clipped at the edge even with count_include_pad */
    kernels_maxpool_f32(x25, &x5, &win, y9, &ys, NULL);
    CHECK(y9[8] == 24);
    /* ceil_mode never starts a window in the end padding: 4 wide, k 2, s 2, pad_end 1 -> 2 (not 3) */
    kernels_window_defaults(&win, 2, k);
    win.stride[0] = win.stride[1] = 2;
    win.pad_end[0] = win.pad_end[1] = 1;
    win.ceil_mode = 1;
    CHECK_EQ_INT(kernels_pool_shape(&xs, &win, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[3], 2); /* ceil((4+1-2)/2)+1 = 3, but the 3rd window would start at 4 (padding) */
    /* dilated max pool (ONNX maxpool_2d_dilations): 4x4, k 2, d 2 -> [[10,11],[14,15]] */
    kernels_window_defaults(&win, 2, k);
    win.dilation[0] = win.dilation[1] = 2;
    float d16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    CHECK_EQ_INT(kernels_pool_shape(&xs, &win, &ys, NULL), VIGIL_OK);
    kernels_maxpool_f32(d16, &xs, &win, y, &ys, NULL);
    CHECK(y[0] == 11 && y[1] == 12 && y[2] == 15 && y[3] == 16);
    /* global pools */
    float g[8] = {1, 2, 3, 4, -1, -2, -3, -4}, gy[2];
    kernels_global_pool_f32(0, g, 2, 4, gy);
    CHECK_NEAR(gy[0], 2.5, 1e-6);
    CHECK_NEAR(gy[1], -2.5, 1e-6);
    kernels_global_pool_f32(1, g, 2, 4, gy);
    CHECK(gy[0] == 4 && gy[1] == -1);
}

static void test_norms(void) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8]; /* [1,2,4] */
    float scale[2] = {2, 1}, bias[2] = {0, 1}, mean[2] = {2.5f, 0}, var[2] = {1.25f, 4};
    kernels_batchnorm_f32(x, 1, 2, 4, scale, bias, mean, var, 0, y);
    CHECK_NEAR(y[0], (1 - 2.5) / sqrt(1.25) * 2, 1e-5);
    CHECK_NEAR(y[4], 5 / 2.0 + 1, 1e-5);
    kernels_instancenorm_f32(x, 1, 2, 4, scale, bias, 0, y);
    CHECK_NEAR(y[0], (1 - 2.5) / sqrt(1.25) * 2, 1e-5);
    CHECK_NEAR(y[4], (5 - 6.5) / sqrt(1.25) + 1, 1e-5);
    float ls[4] = {1, 1, 1, 1}, lb[4] = {0, 0, 0, 1}, lm[2], li[2];
    kernels_layernorm_f32(x, 2, 4, ls, lb, 0, y, lm, li);
    CHECK_NEAR(lm[1], 6.5, 1e-6);
    CHECK_NEAR(li[0], 1 / sqrt(1.25), 1e-6);
    CHECK_NEAR(y[7], 1.5 / sqrt(1.25) + 1, 1e-5);
    kernels_layernorm_f32(x, 2, 4, ls, NULL, 0, y, NULL, NULL);
    CHECK_NEAR(y[7], 1.5 / sqrt(1.25), 1e-5);
    /* LRN size 3 on 3 channels of 1 pixel */
    float lx[3] = {1, 2, 3}, ly[3];
    kernels_lrn_f32(lx, 1, 3, 1, 3, 0.3f, 0.75f, 1, ly);
    CHECK_NEAR(ly[0], 1 / pow(1 + 0.1 * (1 + 4), 0.75), 1e-6);
    CHECK_NEAR(ly[1], 2 / pow(1 + 0.1 * (1 + 4 + 9), 0.75), 1e-6);
    CHECK_NEAR(ly[2], 3 / pow(1 + 0.1 * (4 + 9), 0.75), 1e-6);
}

int main(void) {
    RUN(test_resize_linear);
    RUN(test_resize_nearest);
    RUN(test_resize_cubic_and_crop);
    RUN(test_resize_nhwc_matches_nchw);
    RUN(test_resize_no_memory);
    RUN(test_matmul);
    RUN(test_gemm);
    RUN(test_conv);
    RUN(test_conv_transpose);
    RUN(test_pool);
    RUN(test_norms);
    return testing_report();
}
