/*
 * test_kernels_eltwise.c - shape helpers, broadcasting binary ops, Where,
 * unary ops and Cast of the reference kernels, on small hand-computed cases.
 */
#include <math.h>
#include <stdint.h>

#include "core/half.h"
#include "engine/kernels/kernels.h"
#include "testing.h"

static kshape S(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t d[4] = {d0, d1, d2, d3};
    return kshape_make(ndim, d);
}

static void test_broadcast_shapes(void) {
    kshape a = S(3, 2, 1, 4, 0), b = S(2, 3, 1, 0, 0), out;
    CHECK_EQ_INT(kshape_broadcast(&a, &b, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.ndim, 3);
    CHECK_EQ_INT(out.dims[0], 2);
    CHECK_EQ_INT(out.dims[1], 3);
    CHECK_EQ_INT(out.dims[2], 4);
    kshape c = S(1, 5, 0, 0, 0);
    vigil_error err;
    CHECK_EQ_INT(kshape_broadcast(&a, &c, &out, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "broadcast") != NULL);
    kshape scalar = S(0, 0, 0, 0, 0);
    CHECK_EQ_INT(kshape_broadcast(&scalar, &a, &out, NULL), VIGIL_OK);
    CHECK(kshape_equal(&out, &a));
    kshape empty = S(2, 0, 4, 0, 0), one = S(1, 1, 0, 0, 0);
    CHECK_EQ_INT(kshape_broadcast(&empty, &one, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.dims[0], 0);
    CHECK_EQ_INT(kshape_count(&out), 0);
    int ax = 0;
    CHECK_EQ_INT(kernels_axis(-1, 3, &ax, NULL), VIGIL_OK);
    CHECK_EQ_INT(ax, 2);
    CHECK_EQ_INT(kernels_axis(3, 3, &ax, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kernels_axis(-4, 3, &ax, NULL), VIGIL_ERR_INVALID_ARGUMENT);
}

static void test_reshape_shapes(void) {
    kshape in = S(3, 2, 3, 4, 0), out;
    int64_t s1[] = {0, -1};
    CHECK_EQ_INT(kernels_reshape_shape(&in, s1, 2, 0, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.dims[0], 2);
    CHECK_EQ_INT(out.dims[1], 12);
    int64_t s2[] = {-1, -1};
    CHECK_EQ_INT(kernels_reshape_shape(&in, s2, 2, 0, &out, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    int64_t s3[] = {5, -1};
    CHECK_EQ_INT(kernels_reshape_shape(&in, s3, 2, 0, &out, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* allowzero: 0 is a real zero dim */
    kshape empty = S(2, 0, 3, 0, 0);
    int64_t s4[] = {3, 0};
    CHECK_EQ_INT(kernels_reshape_shape(&empty, s4, 2, 1, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.dims[0], 3);
    CHECK_EQ_INT(out.dims[1], 0);
    CHECK_EQ_INT(kernels_reshape_shape(&in, s4, 2, 1, &out, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* flatten / squeeze / unsqueeze */
    CHECK_EQ_INT(kernels_flatten_shape(&in, -1, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.dims[0], 6);
    CHECK_EQ_INT(out.dims[1], 4);
    CHECK_EQ_INT(kernels_flatten_shape(&in, 0, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.dims[0], 1);
    CHECK_EQ_INT(out.dims[1], 24);
    kshape ones = S(4, 1, 3, 1, 2);
    CHECK_EQ_INT(kernels_squeeze_shape(&ones, NULL, 0, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.ndim, 2);
    int64_t sq[] = {-2};
    CHECK_EQ_INT(kernels_squeeze_shape(&ones, sq, 1, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.ndim, 3);
    CHECK_EQ_INT(out.dims[2], 2);
    int64_t bad[] = {1};
    CHECK_EQ_INT(kernels_squeeze_shape(&ones, bad, 1, &out, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    int64_t un[] = {0, -1};
    CHECK_EQ_INT(kernels_unsqueeze_shape(&in, un, 2, &out, NULL), VIGIL_OK);
    CHECK_EQ_INT(out.ndim, 5);
    CHECK_EQ_INT(out.dims[0], 1);
    CHECK_EQ_INT(out.dims[1], 2);
    CHECK_EQ_INT(out.dims[4], 1);
    int64_t dup[] = {0, -5};
    CHECK_EQ_INT(kernels_unsqueeze_shape(&in, dup, 2, &out, NULL), VIGIL_ERR_INVALID_ARGUMENT);
}

static void test_binary_broadcast_f32(void) {
    /* [2,3] + [3] and [2,1] * [1,3] and scalar - tensor */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30}, y[6];
    kshape as = S(2, 2, 3, 0, 0), bs = S(1, 3, 0, 0, 0), ys;
    CHECK_EQ_INT(kshape_broadcast(&as, &bs, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_binary(KERNELS_ADD, VIGIL_DTYPE_F32, a, &as, b, &bs, y, &ys, NULL), VIGIL_OK);
    float e1[6] = {11, 22, 33, 14, 25, 36};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], e1[i], 0);
    float c[2] = {2, 3}, d[3] = {1, 10, 100};
    kshape cs = S(2, 2, 1, 0, 0), ds = S(2, 1, 3, 0, 0);
    CHECK_EQ_INT(kshape_broadcast(&cs, &ds, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kernels_binary(KERNELS_MUL, VIGIL_DTYPE_F32, c, &cs, d, &ds, y, &ys, NULL), VIGIL_OK);
    float e2[6] = {2, 20, 200, 3, 30, 300};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], e2[i], 0);
    float s = 1;
    kshape ss = S(0, 0, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_SUB, VIGIL_DTYPE_F32, &s, &ss, a, &as, y, &as, NULL), VIGIL_OK);
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], 1 - a[i], 0);
    /* in place, same shape */
    float z[6] = {1, 2, 3, 4, 5, 6};
    CHECK_EQ_INT(kernels_binary(KERNELS_DIV, VIGIL_DTYPE_F32, z, &as, a, &as, z, &as, NULL), VIGIL_OK);
    for (int i = 0; i < 6; i++) CHECK_NEAR(z[i], 1, 0);
    /* Pow, Max with NaN, Min */
    float p[3] = {2, 4, 9}, q[1] = {0.5f};
    kshape q1 = S(1, 1, 0, 0, 0), p3 = S(1, 3, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_POW, VIGIL_DTYPE_F32, p, &p3, q, &q1, y, &p3, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], sqrtf(2), 1e-6);
    CHECK_NEAR(y[2], 3, 1e-6);
    float m1[3] = {1, NAN, 5}, m2[3] = {2, 1, NAN};
    CHECK_EQ_INT(kernels_binary(KERNELS_MAX, VIGIL_DTYPE_F32, m1, &p3, m2, &p3, y, &p3, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], 2, 0);
    CHECK(isnan(y[1]) && isnan(y[2]));
    CHECK_EQ_INT(kernels_binary(KERNELS_MIN, VIGIL_DTYPE_F32, m1, &p3, m2, &p3, y, &p3, NULL), VIGIL_OK);
    CHECK_NEAR(y[0], 1, 0);
}

static void test_binary_middle_broadcast(void) {
    /* [2,3,2] + [1,3,1]: broadcast in the outer and inner dim at once */
    float a[12], b[3] = {100, 200, 300}, y[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    kshape as = S(3, 2, 3, 2, 0), bs = S(3, 1, 3, 1, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_ADD, VIGIL_DTYPE_F32, a, &as, b, &bs, y, &as, NULL), VIGIL_OK);
    for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], a[i] + b[(i / 2) % 3], 0);
    /* both operands broadcast: [3,1] vs [1,4] -> [3,4] */
    int64_t u[3] = {1, 2, 3}, v[4] = {10, 20, 30, 40}, w[12];
    kshape us = S(2, 3, 1, 0, 0), vs = S(2, 1, 4, 0, 0), ws = S(2, 3, 4, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_SUB, VIGIL_DTYPE_I64, u, &us, v, &vs, w, &ws, NULL), VIGIL_OK);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) CHECK_EQ_INT(w[i * 4 + j], u[i] - v[j]);
    /* empty output: nothing written, OK */
    kshape es = S(2, 0, 4, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_ADD, VIGIL_DTYPE_I64, NULL, &es, v, &vs, NULL, &es, NULL), VIGIL_OK);
}

static void test_int_div_mod(void) {
    int64_t a[6] = {7, -7, 7, -7, INT64_MIN, 5}, b[6] = {2, 2, -2, -2, -1, 3}, y[6];
    kshape s = S(1, 6, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_DIV, VIGIL_DTYPE_I64, a, &s, b, &s, y, &s, NULL), VIGIL_OK);
    int64_t ediv[6] = {3, -3, -3, 3, INT64_MIN, 1}; /* truncation toward zero; MIN / -1 wraps */
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(y[i], ediv[i]);
    CHECK_EQ_INT(kernels_binary(KERNELS_MOD, VIGIL_DTYPE_I64, a, &s, b, &s, y, &s, NULL), VIGIL_OK);
    int64_t emod[6] = {1, 1, -1, -1, 0, 2}; /* sign of the divisor */
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(y[i], emod[i]);
    CHECK_EQ_INT(kernels_binary(KERNELS_FMOD, VIGIL_DTYPE_I64, a, &s, b, &s, y, &s, NULL), VIGIL_OK);
    int64_t efmod[6] = {1, -1, 1, -1, 0, 2}; /* sign of the dividend */
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(y[i], efmod[i]);
    int32_t c[2] = {-9, 9}, d[1] = {4}, z[2];
    kshape cs = S(1, 2, 0, 0, 0), ds = S(1, 1, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_DIV, VIGIL_DTYPE_I32, c, &cs, d, &ds, z, &cs, NULL), VIGIL_OK);
    CHECK_EQ_INT(z[0], -2);
    CHECK_EQ_INT(z[1], 2);
    /* division by zero is a status, not a trap */
    int64_t zero[1] = {0};
    vigil_error err;
    kshape one = S(1, 1, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_DIV, VIGIL_DTYPE_I64, a, &s, zero, &one, y, &s, &err),
                 VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "division by zero") != NULL);
    CHECK_EQ_INT(kernels_binary(KERNELS_MOD, VIGIL_DTYPE_I64, a, &s, zero, &one, y, &s, NULL),
                 VIGIL_ERR_INVALID_ARGUMENT);
    /* float Mod: fmod=0 follows the divisor, fmod=1 the dividend */
    float fa[2] = {-4.5f, 4.5f}, fb[2] = {2, -2}, fy[2];
    kshape f2 = S(1, 2, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_MOD, VIGIL_DTYPE_F32, fa, &f2, fb, &f2, fy, &f2, NULL), VIGIL_OK);
    CHECK_NEAR(fy[0], 1.5, 1e-6);
    CHECK_NEAR(fy[1], -1.5, 1e-6);
    CHECK_EQ_INT(kernels_binary(KERNELS_FMOD, VIGIL_DTYPE_F32, fa, &f2, fb, &f2, fy, &f2, NULL), VIGIL_OK);
    CHECK_NEAR(fy[0], -0.5, 1e-6);
    CHECK_NEAR(fy[1], 0.5, 1e-6);
    /* integer Pow */
    int64_t base[4] = {2, -3, 2, -1}, ex[4] = {10, 3, -1, -3}, py[4];
    kshape p4 = S(1, 4, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_POW, VIGIL_DTYPE_I64, base, &p4, ex, &p4, py, &p4, NULL), VIGIL_OK);
    CHECK_EQ_INT(py[0], 1024);
    CHECK_EQ_INT(py[1], -27);
    CHECK_EQ_INT(py[2], 0);
    CHECK_EQ_INT(py[3], -1);
}

static void test_compare_logical(void) {
    float a[4] = {1, 2, 3, NAN}, b[1] = {2};
    uint8_t y[4];
    kshape as = S(1, 4, 0, 0, 0), bs = S(0, 0, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary_out_dtype(KERNELS_LESS, VIGIL_DTYPE_F32), VIGIL_DTYPE_BOOL);
    CHECK_EQ_INT(kernels_binary(KERNELS_LESS, VIGIL_DTYPE_F32, a, &as, b, &bs, y, &as, NULL), VIGIL_OK);
    CHECK(y[0] == 1 && y[1] == 0 && y[2] == 0 && y[3] == 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_GREATER_OR_EQUAL, VIGIL_DTYPE_F32, a, &as, b, &bs, y, &as, NULL), VIGIL_OK);
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 1 && y[3] == 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_EQUAL, VIGIL_DTYPE_F32, a, &as, b, &bs, y, &as, NULL), VIGIL_OK);
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 0 && y[3] == 0);
    int64_t ia[3] = {-1, 0, 1}, ib[3] = {0, 0, 0};
    kshape i3 = S(1, 3, 0, 0, 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_LESS_OR_EQUAL, VIGIL_DTYPE_I64, ia, &i3, ib, &i3, y, &i3, NULL), VIGIL_OK);
    CHECK(y[0] == 1 && y[1] == 1 && y[2] == 0);
    uint8_t p[4] = {0, 0, 1, 1}, q[4] = {0, 1, 0, 1};
    CHECK_EQ_INT(kernels_binary(KERNELS_AND, VIGIL_DTYPE_BOOL, p, &as, q, &as, y, &as, NULL), VIGIL_OK);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 1);
    CHECK_EQ_INT(kernels_binary(KERNELS_OR, VIGIL_DTYPE_BOOL, p, &as, q, &as, y, &as, NULL), VIGIL_OK);
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 1 && y[3] == 1);
    CHECK_EQ_INT(kernels_binary(KERNELS_XOR, VIGIL_DTYPE_BOOL, p, &as, q, &as, y, &as, NULL), VIGIL_OK);
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 1 && y[3] == 0);
    kernels_not(p, y, 4);
    CHECK(y[0] == 1 && y[3] == 0);
    /* unsupported pairs are refused */
    CHECK_EQ_INT(kernels_binary(KERNELS_AND, VIGIL_DTYPE_F32, a, &as, a, &as, y, &as, NULL), VIGIL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(kernels_binary(KERNELS_BITSHIFT_LEFT, VIGIL_DTYPE_F32, a, &as, a, &as, y, &as, NULL),
                 VIGIL_ERR_UNSUPPORTED);
    uint8_t sh[3] = {1, 255, 16}, by[3] = {3, 1, 9}, out[3];
    CHECK_EQ_INT(kernels_binary(KERNELS_BITSHIFT_LEFT, VIGIL_DTYPE_U8, sh, &i3, by, &i3, out, &i3, NULL), VIGIL_OK);
    CHECK(out[0] == 8 && out[1] == 254 && out[2] == 0);
    CHECK_EQ_INT(kernels_binary(KERNELS_BITSHIFT_RIGHT, VIGIL_DTYPE_U8, sh, &i3, by, &i3, out, &i3, NULL), VIGIL_OK);
    CHECK(out[0] == 0 && out[1] == 127 && out[2] == 0);
}

static void test_where(void) {
    uint8_t cond[2] = {1, 0};
    float x[3] = {1, 2, 3}, z[1] = {-1}, y[6];
    kshape cs = S(2, 2, 1, 0, 0), xs = S(1, 3, 0, 0, 0), zs = S(0, 0, 0, 0, 0), ys;
    CHECK_EQ_INT(kshape_broadcast3(&cs, &xs, &zs, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kshape_count(&ys), 6);
    kernels_where(sizeof(float), cond, &cs, x, &xs, z, &zs, y, &ys);
    float e[6] = {1, 2, 3, -1, -1, -1};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], e[i], 0);
    int64_t xi[2] = {5, 6}, zi[2] = {7, 8}, yi[2];
    uint8_t c2[2] = {0, 1};
    kshape s2 = S(1, 2, 0, 0, 0);
    kernels_where(sizeof(int64_t), c2, &s2, xi, &s2, zi, &s2, yi, &s2);
    CHECK_EQ_INT(yi[0], 7);
    CHECK_EQ_INT(yi[1], 6);
}

static void test_unary(void) {
    float x[8] = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 3.7f, -3.7f}, y[8];
    kernels_unary_f32(KERNELS_ROUND, NULL, x, y, 8);
    float er[8] = {-2, -2, -0, 0, 2, 2, 4, -4}; /* half to even */
    for (int i = 0; i < 8; i++) CHECK_NEAR(y[i], er[i], 0);
    kernels_unary_f32(KERNELS_RELU, NULL, x, y, 8);
    CHECK_NEAR(y[0], 0, 0);
    CHECK_NEAR(y[6], 3.7, 1e-6);
    kernels_unary_params p;
    kernels_unary_defaults(KERNELS_CLIP, &p);
    p.min = -1;
    p.max = 2;
    kernels_unary_f32(KERNELS_CLIP, &p, x, y, 8);
    CHECK_NEAR(y[0], -1, 0);
    CHECK_NEAR(y[3], 0.5, 0);
    CHECK_NEAR(y[5], 2, 0);
    float big[4] = {-100, 0, 100, 1}, s[4];
    kernels_unary_f32(KERNELS_SIGMOID, NULL, big, s, 4);
    CHECK_NEAR(s[0], 0, 1e-30);
    CHECK_NEAR(s[1], 0.5, 1e-7);
    CHECK_NEAR(s[2], 1, 1e-7);
    CHECK_NEAR(s[3], 1 / (1 + exp(-1.0)), 1e-7);
    kernels_unary_f32(KERNELS_SOFTPLUS, NULL, big, s, 4);
    CHECK_NEAR(s[0], 0, 1e-30);
    CHECK_NEAR(s[1], log(2.0), 1e-6);
    CHECK_NEAR(s[2], 100, 1e-4); /* no overflow */
    kernels_unary_f32(KERNELS_LEAKY_RELU, NULL, x, y, 1);
    CHECK_NEAR(y[0], -0.025, 1e-7);
    kernels_unary_f32(KERNELS_HARD_SIGMOID, NULL, x, y, 8);
    CHECK_NEAR(y[0], 0, 0);
    CHECK_NEAR(y[3], 0.6, 1e-6);
    kernels_unary_f32(KERNELS_HARD_SWISH, NULL, x, y, 8);
    CHECK_NEAR(y[4], 1.5 * (1.5 / 6 + 0.5), 1e-6);
    CHECK_NEAR(y[7], 0, 0);
    kernels_unary_f32(KERNELS_ELU, NULL, x, y, 1);
    CHECK_NEAR(y[0], exp(-2.5) - 1, 1e-6);
    kernels_unary_f32(KERNELS_SELU, NULL, x, y, 8);
    CHECK_NEAR(y[4], 1.0507009873554805 * 1.5, 1e-6);
    CHECK_NEAR(y[0], 1.0507009873554805 * 1.6732632423543772 * (exp(-2.5) - 1), 1e-6);
    kernels_unary_f32(KERNELS_ERF, NULL, x, y, 8);
    CHECK_NEAR(y[3], erf(0.5), 1e-6);
    kernels_unary_f32(KERNELS_SILU, NULL, x, y, 8);
    CHECK_NEAR(y[4], 1.5 / (1 + exp(-1.5)), 1e-6);
    kernels_unary_f32(KERNELS_GELU, NULL, x, y, 8);
    CHECK_NEAR(y[4], 0.5 * 1.5 * (1 + erf(1.5 / sqrt(2.0))), 1e-6);
    kernels_unary_f32(KERNELS_SOFTSIGN, NULL, x, y, 8);
    CHECK_NEAR(y[0], -2.5 / 3.5, 1e-6);
    kernels_unary_f32(KERNELS_SIGN, NULL, x, y, 8);
    CHECK_NEAR(y[0], -1, 0);
    CHECK_NEAR(y[3], 1, 0);
    /* in place */
    float z[3] = {1, 4, 9};
    kernels_unary_f32(KERNELS_SQRT, NULL, z, z, 3);
    CHECK_NEAR(z[2], 3, 0);
    int64_t iv[4] = {-3, 0, 5, INT64_MIN}, io[4];
    CHECK_EQ_INT(kernels_unary_int(KERNELS_ABS, VIGIL_DTYPE_I64, iv, io, 3, 0, 0, NULL), VIGIL_OK);
    CHECK_EQ_INT(io[0], 3);
    CHECK_EQ_INT(io[2], 5);
    CHECK_EQ_INT(kernels_unary_int(KERNELS_NEG, VIGIL_DTYPE_I64, iv, io, 4, 0, 0, NULL), VIGIL_OK);
    CHECK_EQ_INT(io[0], 3);
    CHECK_EQ_INT(io[3], INT64_MIN);
    CHECK_EQ_INT(kernels_unary_int(KERNELS_CLIP, VIGIL_DTYPE_I64, iv, io, 3, -1, 2, NULL), VIGIL_OK);
    CHECK(io[0] == -1 && io[1] == 0 && io[2] == 2);
    CHECK_EQ_INT(kernels_unary_int(KERNELS_EXP, VIGIL_DTYPE_I64, iv, io, 3, 0, 0, NULL), VIGIL_ERR_UNSUPPORTED);
    uint8_t nanv[3];
    float nv[3] = {NAN, INFINITY, -INFINITY};
    kernels_isnan_f32(nv, nanv, 3);
    CHECK(nanv[0] == 1 && nanv[1] == 0);
    kernels_isinf_f32(nv, nanv, 3, 0, 1);
    CHECK(nanv[0] == 0 && nanv[1] == 1 && nanv[2] == 0);
}

static void test_cast(void) {
    float f[6] = {-2.7f, -0.5f, 0.0f, 2.9f, 1e20f, NAN};
    int64_t i[6];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_F32, f, VIGIL_DTYPE_I64, i, 6, NULL), VIGIL_OK);
    CHECK_EQ_INT(i[0], -2); /* toward zero */
    CHECK_EQ_INT(i[1], 0);
    CHECK_EQ_INT(i[3], 2);
    CHECK_EQ_INT(i[4], INT64_MAX); /* saturates */
    CHECK_EQ_INT(i[5], 0);
    int32_t i32[6];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_F32, f, VIGIL_DTYPE_I32, i32, 6, NULL), VIGIL_OK);
    CHECK_EQ_INT(i32[0], -2);
    CHECK_EQ_INT(i32[4], INT32_MAX);
    uint8_t b[6];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_F32, f, VIGIL_DTYPE_BOOL, b, 6, NULL), VIGIL_OK);
    CHECK(b[0] == 1 && b[1] == 1 && b[2] == 0 && b[5] == 1);
    float back[6];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_BOOL, b, VIGIL_DTYPE_F32, back, 6, NULL), VIGIL_OK);
    CHECK_NEAR(back[0], 1, 0);
    CHECK_NEAR(back[2], 0, 0);
    int64_t big[2] = {300, -1};
    uint8_t u[2];
    int8_t s8[2];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_I64, big, VIGIL_DTYPE_U8, u, 2, NULL), VIGIL_OK);
    CHECK_EQ_INT(u[0], 44); /* wraps like C */
    CHECK_EQ_INT(u[1], 255);
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_I64, big, VIGIL_DTYPE_I8, s8, 2, NULL), VIGIL_OK);
    CHECK_EQ_INT(s8[0], 44);
    CHECK_EQ_INT(s8[1], -1);
    uint8_t px[3] = {0, 128, 255};
    float pf[3];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_U8, px, VIGIL_DTYPE_F32, pf, 3, NULL), VIGIL_OK);
    CHECK_NEAR(pf[2], 255, 0);
    double d[2];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_I64, big, VIGIL_DTYPE_F64, d, 2, NULL), VIGIL_OK);
    CHECK_NEAR(d[0], 300, 0);
    /* half precision round trips */
    float hv[6] = {1.0f, -2.5f, 65504.0f, 1e-7f, 0.333251953125f, 70000.0f};
    uint16_t h[6];
    CHECK_EQ_INT(kernels_cast(VIGIL_DTYPE_F32, hv, VIGIL_DTYPE_F16, h, 6, NULL), VIGIL_OK);
    CHECK_EQ_INT(h[0], 0x3c00);
    CHECK_EQ_INT(h[1], 0xc100);
    CHECK_EQ_INT(h[2], 0x7bff);
    CHECK_EQ_INT(h[3], 0x0002); /* subnormal: 1e-7 / 2^-24 = 1.68 -> 2 */
    CHECK_EQ_INT(h[5], 0x7c00); /* overflow to inf */
    CHECK_NEAR(half_to_float(h[4]), 0.333251953125, 0);
    CHECK_NEAR(half_to_float(0x0001), 5.960464477539063e-08, 1e-15);
    CHECK(isinf(half_to_float(0xfc00)) && half_to_float(0xfc00) < 0);
    CHECK(isnan(half_to_float(0x7e00)));
    CHECK_EQ_INT(half_from_float(1.0009765625f + 0.00048828125f), 0x3c02); /* tie to even: up */
    CHECK_EQ_INT(half_from_float(1.0f + 0.00048828125f), 0x3c00);          /* tie to even: down */
    CHECK_EQ_INT(kernels_cast((vigil_dtype)99, f, VIGIL_DTYPE_F32, back, 1, NULL), VIGIL_ERR_UNSUPPORTED);
    int64_t fill[5];
    int64_t seven = 7;
    kernels_fill(sizeof seven, &seven, fill, 5);
    CHECK_EQ_INT(fill[4], 7);
}

int main(void) {
    RUN(test_broadcast_shapes);
    RUN(test_reshape_shapes);
    RUN(test_binary_broadcast_f32);
    RUN(test_binary_middle_broadcast);
    RUN(test_int_div_mod);
    RUN(test_compare_logical);
    RUN(test_where);
    RUN(test_unary);
    RUN(test_cast);
    return testing_report();
}
