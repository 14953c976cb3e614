/*
 * test_engine_quant.c - low-precision numbers beyond ONNX's node tests.
 * Casts to float16 round once (double sources included), with subnormals,
 * overflow, signed zero and NaN as IEEE says.  The quantization operators:
 * the reference kernels' rounding (half to even), saturation and NaN rule,
 * per-channel parameters, the vectorised per-tensor path against the
 * reference, DynamicQuantizeLinear's degenerate range, an
 * integer convolution whose sum a float32 accumulator could not hold
 * exactly, DequantizeLinear -> SiLU -> QuantizeLinear run as one table
 * lookup equal bit for bit to the unfused graph, and malformed quantized graphs refused at load with an error
 * naming the node and the fault.
 */
#include "core/half.h"
#include "testing.h"

#include "engine/exec.h"
#include "engine/kernels/kernels.h"
#include "engine/ops/vmath.h"
#include "vigil/engine.h"

#include "onnx_builder.h"

enum { ONNX_F32 = 1, ONNX_U8 = 2, ONNX_I8 = 3, ONNX_I32 = 6 };

static void test_cast_to_f16_rounds_once(void) {
    /* 1 + 2^-11 + 2^-40: just above the half-way point between 1 and the next
     * half, so it rounds up; through float it would become the tie and round
     * to even (down) */
    const double d[] = {1.0 + 0x1p-11 + 0x1p-40, 0x1p-24, 0x1p-25, 3 * 0x1p-26, 65519.0, 65520.0, -0.0, 1e300, NAN};
    const uint16_t want[] = {0x3c01, 0x0001, 0x0000, 0x0001, 0x7bff, 0x7c00, 0x8000, 0x7c00};
    enum { N = sizeof d / sizeof d[0] };
    uint16_t h[N];
    float f[N];
    CHECK(kernels_cast(VIGIL_DTYPE_F64, d, VIGIL_DTYPE_F16, h, N, NULL) == VIGIL_OK);
    kernels_cast_to_f16_as_f32(VIGIL_DTYPE_F64, d, f, N);
    for (int i = 0; i < N - 1; i++) {
        CHECK_EQ_INT(h[i], want[i]);
        CHECK(half_from_float(f[i]) == want[i] && f[i] == half_to_float(want[i]));
    }
    CHECK((h[N - 1] & 0x7c00) == 0x7c00 && (h[N - 1] & 0x3ff) != 0); /* NaN stays NaN */
    CHECK(isnan(f[N - 1]));
}

static void test_quantize_rounds_half_to_even_and_saturates(void) {
    const float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300.0f, -300.0f, NAN, INFINITY, 253.5f};
    enum { N = sizeof x / sizeof x[0] };
    kernels_qaxis ax = {1, 1, N};
    float scale = 1.0f;
    uint8_t u[N], uzp = 0;
    int8_t s[N], szp = 0;
    kernels_quantize_linear(x, &ax, &scale, VIGIL_DTYPE_U8, &uzp, u);
    const uint8_t want_u[N] = {0, 2, 2, 0, 0, 255, 0, 0, 255, 254};
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(u[i], want_u[i]);
    kernels_quantize_linear(x, &ax, &scale, VIGIL_DTYPE_I8, &szp, s);
    const int8_t want_s[N] = {0, 2, 2, 0, -2, 127, -128, 0, 127, 127};
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(s[i], want_s[i]);
    /* a zero point shifts after rounding: round(2.5) + 3 = 5, and NaN is the zero point */
    uzp = 3;
    kernels_quantize_linear(x, &ax, &scale, VIGIL_DTYPE_U8, &uzp, u);
    CHECK_EQ_INT(u[2], 5);
    CHECK_EQ_INT(u[7], 3);
}

static void test_per_channel_round_trip(void) {
    /* [2, 3, 2] along axis 1: three scales and zero points */
    float x[12], back[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)(i - 6) * 0.75f;
    const float scale[3] = {0.5f, 0.25f, 2.0f};
    const int8_t zp[3] = {0, 10, -5};
    int64_t dims[3] = {2, 3, 2};
    kshape s = kshape_make(3, dims);
    kernels_qaxis ax = kernels_qaxis_make(&s, 1);
    CHECK_EQ_INT(ax.outer, 2);
    CHECK_EQ_INT(ax.channels, 3);
    CHECK_EQ_INT(ax.inner, 2);
    int8_t q[12];
    kernels_quantize_linear(x, &ax, scale, VIGIL_DTYPE_I8, zp, q);
    kernels_dequantize_linear(VIGIL_DTYPE_I8, q, &ax, scale, zp, back);
    for (int i = 0; i < 12; i++) {
        int c = (i / 2) % 3;
        CHECK_EQ_INT(q[i], (int)nearbyintf(x[i] / scale[c]) + zp[c]);
        CHECK(fabsf(back[i] - x[i]) <= scale[c] / 2);
    }
}

static void test_dynamic_quantize(void) {
    /* ONNX's own example: scale (2 - -3) / 255, zero point round(3 / scale) = 153 */
    const float x[6] = {0.0f, 2.0f, -3.0f, -2.5f, 1.34f, 0.5f};
    uint8_t y[6], zp;
    float scale;
    kernels_dynamic_quantize_linear(x, 6, y, &scale, &zp);
    CHECK(scale == 5.0f / 255.0f);
    CHECK_EQ_INT(zp, 153);
    const uint8_t want[6] = {153, 255, 0, 26, 221, 179};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(y[i], want[i]);
    /* all zeros: the range is 0, the reference's scale 1 / 255 avoids dividing by it */
    const float zeros[3] = {0};
    kernels_dynamic_quantize_linear(zeros, 3, y, &scale, &zp);
    CHECK(scale == 1.0f / 255.0f);
    CHECK_EQ_INT(zp, 0);
    CHECK_EQ_INT(y[0] | y[1] | y[2], 0);
}

/* The vectorised per-tensor QuantizeLinear/DequantizeLinear (ops/vmath.c)
 * equal the reference bit for bit, ties, NaN, infinities and tails included. */
static void test_vectorised_qdq_matches_reference(void) {
    enum { N = 1003 }; /* not a multiple of the vector width */
    static float x[N], back_ref[N], back_vec[N];
    static uint8_t ref[N], vec[N];
    uint32_t r = 7;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 600.0f;
        if (i % 7 == 0) x[i] = (float)(i % 41) * 0.5f - 10.0f; /* exact halves: ties */
    }
    x[3] = NAN, x[5] = INFINITY, x[11] = -INFINITY;
    const float scales[3] = {0.5f, 1.0f, 0.0371f};
    const int32_t zps[2][2] = {{0, 131}, {0, -17}}; /* uint8, int8 */
    for (int sc = 0; sc < 3; sc++)
        for (int is_signed = 0; is_signed < 2; is_signed++)
            for (int z = 0; z < 2; z++) {
                vigil_dtype qt = is_signed ? VIGIL_DTYPE_I8 : VIGIL_DTYPE_U8;
                int32_t zp = zps[is_signed][z];
                uint8_t zbyte = (uint8_t)(zp & 0xff);
                kernels_qaxis ax = {1, 1, N};
                kernels_quantize_linear(x, &ax, &scales[sc], qt, &zbyte, ref);
                quantize_f32(x, N, scales[sc], zp, is_signed, vec);
                CHECK(memcmp(ref, vec, N) == 0);
                kernels_dequantize_linear(qt, ref, &ax, &scales[sc], &zbyte, back_ref);
                dequantize_f32(ref, N, scales[sc], zp, is_signed, back_vec);
                CHECK(memcmp(back_ref, back_vec, sizeof back_ref) == 0);
            }
}

/* ---- models ---- */

static vigil_engine *engine_one_thread(void) {
    vigil_engine_options o = {.threads = 1};
    vigil_engine *e = NULL;
    vigil_error err;
    CHECK(vigil_engine_create(&o, &e, &err) == VIGIL_OK);
    return e;
}

/* ConvInteger over 64 channels x 3 x 3 of 255 * -127 (one x of 254): the
 * sum, -18653633, is odd and above 2^24, so a float32 accumulator would
 * round it; the int64 path must not. */
static void test_conv_integer_is_exact(void) {
    enum { C = 64, TAPS = C * 9 };
    static uint8_t x[TAPS];
    static int8_t w[TAPS];
    memset(x, 255, sizeof x);
    x[17] = 254;
    memset(w, -127, sizeof w);
    onnx_builder ob = {.opset = 13};
    int64_t xd[4] = {1, C, 3, 3}, yd[4] = {1, 1, 1, 1};
    ob_value(&ob, 11, "x", ONNX_U8, 4, xd);
    ob_value(&ob, 12, "y", ONNX_I32, 4, yd);
    ob_initializer(&ob, "w", ONNX_I8, 4, (int64_t[]){1, C, 3, 3}, w, sizeof w);
    pbuf n = ob_node("ConvInteger", "conv", 2, (const char *[]){"x", "w"}, 1, (const char *[]){"y"});
    ob_node_end(&ob, &n);
    vigil_engine *e = engine_one_thread();
    vigil_model *m = NULL;
    vigil_plan *p = NULL;
    vigil_error err;
    vigil_status st = load_bytes(e, &ob, &m, &err);
    if (st == VIGIL_OK) st = vigil_plan_create(m, 1, &p, &err);
    vigil_tensor t = {.dtype = VIGIL_DTYPE_U8, .ndim = 4, .dims = {1, C, 3, 3}, .data = x};
    if (st == VIGIL_OK) st = vigil_plan_run(p, &t, 1, &err);
    if (st != VIGIL_OK) fprintf(stderr, "ConvInteger: %s\n", err.message);
    CHECK(st == VIGIL_OK);
    if (st == VIGIL_OK) {
        const vigil_tensor *y = vigil_plan_output(p, 0);
        CHECK(y->dtype == VIGIL_DTYPE_I32);
        CHECK_EQ_INT(((const int32_t *)y->data)[0], 255 * -127 * (TAPS - 1) + 254 * -127);
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

/* Loads ob, runs it once on inputs and copies its float32 output (n_y
 * values) to y; *count: how many plan steps run `op`. */
static vigil_status run_counting(onnx_builder *ob, const vigil_tensor *inputs, size_t n_inputs, float *y, size_t n_y,
                                 const char *op, int *count, vigil_error *err) {
    vigil_engine *e = engine_one_thread();
    vigil_model *m = NULL;
    vigil_plan *p = NULL;
    vigil_status st = load_bytes(e, ob, &m, err);
    if (st == VIGIL_OK) st = vigil_plan_create(m, 1, &p, err);
    if (st == VIGIL_OK) st = vigil_plan_run(p, inputs, n_inputs, err);
    if (st == VIGIL_OK) {
        memcpy(y, vigil_plan_output(p, 0)->data, n_y * sizeof(float));
        *count = 0;
        for (int i = 0; i < p->n_steps; i++)
            *count += strcmp(p->steps[i].op, op) == 0;
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    return st;
}

/* Q -> DQ -> Sigmoid, Mul (-> Q -> DQ when quantized_out) over every 8-bit
 * input code (17 x 17 values: code i % 256, a length no vector width
 * divides); with `plain`, an Identity after the DequantizeLinear keeps the
 * pass from fusing.  Returns the output (SILU_N floats) in y, and in
 * *lookups how many plan steps are the fused table lookup. */
enum { SILU_N = 17 * 17 };
static vigil_status run_qdq_silu(int is_signed, int plain, int quantized_out, float *y, int *lookups,
                                 vigil_error *err) {
    onnx_builder ob = {.opset = 13};
    int64_t xd[4] = {1, 1, 17, 17};
    ob_value(&ob, 11, "x", ONNX_F32, 4, xd);
    ob_value(&ob, 12, "y", ONNX_F32, 4, xd);
    int qt = is_signed ? ONNX_I8 : ONNX_U8;
    const float xs = 0.0473f, ys = 0.0291f; /* inputs -6..6, SiLU's negative dip quantized too */
    const uint8_t xz = is_signed ? (uint8_t)3 : 131, yz = is_signed ? (uint8_t)(int8_t)-119 : 9;
    ob_initializer(&ob, "xs", ONNX_F32, 0, NULL, &xs, sizeof xs);
    ob_initializer(&ob, "xz", qt, 0, NULL, &xz, 1);
    ob_initializer(&ob, "ys", ONNX_F32, 0, NULL, &ys, sizeof ys);
    ob_initializer(&ob, "yz", qt, 0, NULL, &yz, 1);
    const char *a = plain ? "xi" : "xd", *mo = quantized_out ? "m" : "y";
    const char *const steps[][5] = {
        {"QuantizeLinear", "xq", "x", "xs", "xz"}, {"DequantizeLinear", "xd", "xq", "xs", "xz"},
        {"Identity", "xi", "xd"},                  {"Sigmoid", "sg", a},
        {"Mul", mo, a, "sg"},                      {"QuantizeLinear", "yq", "m", "ys", "yz"},
        {"DequantizeLinear", "y", "yq", "ys", "yz"}};
    for (int i = 0; i < 7; i++) {
        if ((i == 2 && !plain) || (i >= 5 && !quantized_out)) continue;
        int n_in = steps[i][4] ? 3 : steps[i][3] ? 2 : 1;
        pbuf n = ob_node(steps[i][0], steps[i][1], n_in, &steps[i][2], 1, &steps[i][1]);
        ob_node_end(&ob, &n);
    }
    float x[SILU_N];
    for (int i = 0; i < SILU_N; i++) { /* code i % 256 (as the quantized type), exactly */
        int c = i % 256;
        x[i] = (float)((is_signed ? (int)(int8_t)c : c) - (is_signed ? (int)(int8_t)xz : (int)xz)) * xs;
    }
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 1, 17, 17}, .data = x};
    return run_counting(&ob, &t, 1, y, SILU_N, "vigil.QLookup", lookups, err);
}

static void test_qdq_silu_lookup_equals_float_path(void) {
    for (int mode = 0; mode < 4; mode++) {
        int is_signed = mode & 1, quantized_out = !(mode & 2);
        float fused[SILU_N], plain[SILU_N];
        int n_fused = -1, n_plain = -1;
        vigil_error err;
        vigil_status a = run_qdq_silu(is_signed, 0, quantized_out, fused, &n_fused, &err);
        if (a != VIGIL_OK) fprintf(stderr, "  fused: %s\n", err.message);
        vigil_status b = run_qdq_silu(is_signed, 1, quantized_out, plain, &n_plain, &err);
        if (b != VIGIL_OK) fprintf(stderr, "  plain: %s\n", err.message);
        CHECK(a == VIGIL_OK && b == VIGIL_OK);
        if (a != VIGIL_OK || b != VIGIL_OK) continue;
        CHECK_EQ_INT(n_fused, 1);
        CHECK_EQ_INT(n_plain, 0);
        CHECK(memcmp(fused, plain, sizeof fused) == 0);
        /* and within one output step (or float32 rounding) of SiLU in double precision */
        double worst = 0;
        for (int i = 0; i < SILU_N; i++) {
            int c = i % 256;
            double v = (double)((is_signed ? (int)(int8_t)c : c) - (is_signed ? 3 : 131)) * 0.0473f;
            double d = fabs(fused[i] - v / (1.0 + exp(-v)));
            worst = d > worst ? d : worst;
        }
        CHECK(worst <= (quantized_out ? 0.0291 * 1.0001 : 1e-5));
    }
}

/* Q -> DQ (A), Q -> DQ (B) -> Add -> Q -> DQ over all 65536 pairs of 8-bit
 * codes (A's code the row, B's the column of a 256 x 256 input); with
 * `plain`, an Identity after the Add keeps the pass from fusing.  Returns
 * the output in y and in *adds how many plan steps are the fused vigil.QAdd. */
enum { ADD_N = 256 * 256 };
static vigil_status run_qdq_add(int is_signed, int plain, float *y, int *adds, vigil_error *err) {
    onnx_builder ob = {.opset = 13};
    int64_t xd[4] = {1, 1, 256, 256};
    ob_value(&ob, 11, "a", ONNX_F32, 4, xd);
    ob_value(&ob, 11, "b", ONNX_F32, 4, xd);
    ob_value(&ob, 12, "y", ONNX_F32, 4, xd);
    int qt = is_signed ? ONNX_I8 : ONNX_U8;
    const float as = 0.0473f, bs = 0.0217f, cs = 0.0611f; /* sums past the output's range: saturation too */
    const uint8_t az = is_signed ? (uint8_t)3 : 131, bz = is_signed ? (uint8_t)(int8_t)-100 : 20, cz = 77;
    ob_initializer(&ob, "as", ONNX_F32, 0, NULL, &as, sizeof as);
    ob_initializer(&ob, "az", qt, 0, NULL, &az, 1);
    ob_initializer(&ob, "bs", ONNX_F32, 0, NULL, &bs, sizeof bs);
    ob_initializer(&ob, "bz", qt, 0, NULL, &bz, 1);
    ob_initializer(&ob, "cs", ONNX_F32, 0, NULL, &cs, sizeof cs);
    ob_initializer(&ob, "cz", qt, 0, NULL, &cz, 1);
    const char *const steps[][5] = {
        {"QuantizeLinear", "aq", "a", "as", "az"}, {"DequantizeLinear", "ad", "aq", "as", "az"},
        {"QuantizeLinear", "bq", "b", "bs", "bz"}, {"DequantizeLinear", "bd", "bq", "bs", "bz"},
        {"Add", plain ? "s0" : "s", "ad", "bd"},   {"Identity", "s", "s0"},
        {"QuantizeLinear", "cq", "s", "cs", "cz"}, {"DequantizeLinear", "y", "cq", "cs", "cz"}};
    for (int i = 0; i < 8; i++) {
        if (i == 5 && !plain) continue;
        int n_in = steps[i][4] ? 3 : steps[i][3] ? 2 : 1;
        pbuf n = ob_node(steps[i][0], steps[i][1], n_in, &steps[i][2], 1, &steps[i][1]);
        ob_node_end(&ob, &n);
    }
    float *x = malloc(2 * ADD_N * sizeof(float));
    if (!x) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < ADD_N; i++) { /* a: code i / 256, b: code i % 256, exactly */
        int ca = i / 256, cb = i % 256;
        x[i] = (float)((is_signed ? (int)(int8_t)ca : ca) - (is_signed ? (int)(int8_t)az : (int)az)) * as;
        x[ADD_N + i] = (float)((is_signed ? (int)(int8_t)cb : cb) - (is_signed ? (int)(int8_t)bz : (int)bz)) * bs;
    }
    vigil_tensor t[2] = {{.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 1, 256, 256}, .data = x},
                         {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 1, 256, 256}, .data = x + ADD_N}};
    vigil_status st = run_counting(&ob, t, 2, y, ADD_N, "vigil.QAdd", adds, err);
    free(x);
    return st;
}

/* The 8-bit add's table (passes.c, ops/quant.c) gives the unfused float
 * path's codes for every pair of input codes, uint8 and int8. */
static void test_qdq_add_lookup_equals_float_path(void) {
    for (int is_signed = 0; is_signed < 2; is_signed++) {
        float *fused = malloc(2 * ADD_N * sizeof(float)), *plain = fused ? fused + ADD_N : NULL;
        CHECK(fused != NULL);
        if (!fused) return;
        int n_fused = -1, n_plain = -1;
        vigil_error err;
        vigil_status a = run_qdq_add(is_signed, 0, fused, &n_fused, &err);
        if (a != VIGIL_OK) fprintf(stderr, "  fused: %s\n", err.message);
        vigil_status b = run_qdq_add(is_signed, 1, plain, &n_plain, &err);
        if (b != VIGIL_OK) fprintf(stderr, "  plain: %s\n", err.message);
        CHECK(a == VIGIL_OK && b == VIGIL_OK);
        if (a == VIGIL_OK && b == VIGIL_OK) {
            CHECK_EQ_INT(n_fused, 1);
            CHECK_EQ_INT(n_plain, 0);
            CHECK(memcmp(fused, plain, ADD_N * sizeof(float)) == 0);
        }
        free(fused);
    }
}

/* A QuantizeLinear (or DequantizeLinear when dequantize) of a [1, 3, 2, 2]
 * input with a constant scale of n_scale elements and a zero point of
 * zp_type with n_zp elements (0: none); axis < 99 sets the attribute. */
static vigil_status load_q(int dequantize, const float *scale, int n_scale, int zp_type, int n_zp, int64_t axis,
                           vigil_error *err) {
    onnx_builder ob = {.opset = 13};
    int64_t xd[4] = {1, 3, 2, 2};
    ob_value(&ob, 11, "x", dequantize ? ONNX_U8 : ONNX_F32, 4, xd);
    ob_value(&ob, 12, "y", dequantize ? ONNX_F32 : ONNX_U8, 4, xd);
    int64_t sd[1] = {n_scale}, zd[1] = {n_zp};
    ob_initializer(&ob, "s", ONNX_F32, n_scale > 1, sd, scale, (size_t)n_scale * sizeof(float));
    int32_t zeros[4] = {0};
    size_t zbytes = (size_t)n_zp * (zp_type == ONNX_I32 ? 4 : 1);
    if (n_zp) ob_initializer(&ob, "z", zp_type, n_zp > 1, zd, zeros, zbytes);
    pbuf n = ob_node(dequantize ? "DequantizeLinear" : "QuantizeLinear", "q", n_zp ? 3 : 2,
                     (const char *[]){"x", "s", "z"}, 1, (const char *[]){"y"});
    if (axis < 99) ob_attr_int(&n, "axis", axis);
    ob_node_end(&ob, &n);
    vigil_engine *e = engine_one_thread();
    vigil_model *m = NULL;
    vigil_status st = load_bytes(e, &ob, &m, err);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    return st;
}

static int says(const vigil_error *err, const char *what) {
    int ok = strstr(err->message, "node 'q'") && strstr(err->message, what);
    if (!ok) fprintf(stderr, "  message: %s\n", err->message);
    return ok;
}

static void test_malformed_quantized_graphs_refused(void) {
    vigil_error err;
    const float one[3] = {1.0f, 0.5f, 0.25f}, zero[1] = {0.0f}, with_zero[3] = {1.0f, 0.0f, 1.0f};
    /* well-formed: per tensor and per channel along C, both directions */
    CHECK(load_q(0, one, 1, ONNX_U8, 1, 99, &err) == VIGIL_OK);
    CHECK(load_q(0, one, 3, ONNX_I8, 3, 1, &err) == VIGIL_OK);
    CHECK(load_q(1, one, 3, ONNX_U8, 3, 1, &err) == VIGIL_OK);
    /* zero scale, per tensor and one channel of three */
    CHECK(load_q(0, zero, 1, ONNX_U8, 1, 99, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(says(&err, "non-zero"));
    CHECK(load_q(1, with_zero, 3, ONNX_U8, 3, 1, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(says(&err, "element 1"));
    /* a zero point whose element count differs from its scale's */
    CHECK(load_q(0, one, 3, ONNX_U8, 2, 1, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(says(&err, "zero point"));
    /* a zero point type that is not a quantized type, or not the data's */
    CHECK(load_q(0, one, 1, ONNX_I32, 1, 99, &err) == VIGIL_ERR_UNSUPPORTED);
    CHECK(says(&err, "int32"));
    CHECK(load_q(1, one, 1, ONNX_I8, 1, 99, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(says(&err, "int8"));
    /* a per-channel scale whose length is not the axis's, or an axis out of range */
    CHECK(load_q(0, one, 3, ONNX_U8, 3, 2, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(says(&err, "scale"));
    CHECK(load_q(0, one, 3, ONNX_U8, 3, 4, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(says(&err, "axis 4"));
}

int main(void) {
    RUN(test_cast_to_f16_rounds_once);
    RUN(test_quantize_rounds_half_to_even_and_saturates);
    RUN(test_per_channel_round_trip);
    RUN(test_dynamic_quantize);
    RUN(test_vectorised_qdq_matches_reference);
    RUN(test_conv_integer_is_exact);
    RUN(test_qdq_silu_lookup_equals_float_path);
    RUN(test_qdq_add_lookup_equals_float_path);
    RUN(test_malformed_quantized_graphs_refused);
    return testing_report();
}
