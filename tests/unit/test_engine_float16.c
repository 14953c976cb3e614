/*
 * test_engine_float16.c - the engine's float16 modes (vigil_float16_mode).
 *
 * The XNNPACK mode runs a float16 model's NHWC convolutions and their
 * neighbours on XNNPACK's f16 operators (passes_float16.c); each is checked
 * here against the float32 path of the same model: one convolution against
 * the error bound of half-precision accumulation, and a small graph with
 * every operator the pass converts against a looser bound.  AUTO is checked
 * against what the kernel tells /proc/cpuinfo about the CPU, and on CPUs
 * without float16 arithmetic (this project's CI) it must give the float32
 * path's results bit for bit.
 */
#include "testing.h"

#include <unistd.h>

#include "core/half.h"
#include "engine/exec.h"
#include "engine/kernels/kernels.h"
#include "vigil/engine.h"

#include "onnx_builder.h"

#define ONNX_FLOAT16 10

static uint32_t rng_state = 7;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* n random values that float16 holds exactly, as floats and as halves */
static void fill_half(float *f, uint16_t *h, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h[i] = half_from_float(frand());
        f[i] = half_to_float(h[i]);
    }
}

/* Runs the model (built afresh by build) in mode on one float input; the
 * output is copied to y (n floats).  Returns the plan's step count of
 * float16 conversions (-1 on failure). */
static int run_mode(int mode, void (*build)(onnx_builder *), const float *x, const int64_t *xd, float *y, size_t n) {
    vigil_engine_options o = {.threads = 2, .float16 = mode};
    vigil_engine *e = NULL;
    vigil_model *m = NULL;
    vigil_plan *p = NULL;
    vigil_error err;
    onnx_builder ob = {.opset = 17};
    build(&ob);
    int conversions = -1;
    vigil_status st = vigil_engine_create(&o, &e, &err);
    if (st == VIGIL_OK) st = load_bytes(e, &ob, &m, &err);
    if (st == VIGIL_OK) st = vigil_plan_create(m, 1, &p, &err);
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .data = (void *)x};
    memcpy(t.dims, xd, 4 * sizeof(int64_t));
    if (st == VIGIL_OK) st = vigil_plan_run(p, &t, 1, &err);
    if (st != VIGIL_OK) fprintf(stderr, "mode %d: %s\n", mode, err.message);
    CHECK(st == VIGIL_OK);
    if (st == VIGIL_OK) {
        const vigil_tensor *out = vigil_plan_output(p, 0);
        CHECK(out->dtype == VIGIL_DTYPE_F32);
        memcpy(y, out->data, n * sizeof(float));
        conversions = 0;
        for (int i = 0; i < (int)p->n_steps; i++)
            conversions += strcmp(p->steps[i].op, "vigil.F32ToF16") == 0;
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    return conversions;
}

/* ---- one convolution: the bound of half-precision accumulation ---- */

enum { C = 16, H = 9, W = 7, M = 24, K = C * 9 };
static float cx[C * H * W], cw[M * K], cb[M];
static uint16_t cw16[M * K], cb16[M], cx16[C * H * W];
static int conv_f32_weights; /* 1: the same values as float32 initializers */

static void conv_model(onnx_builder *ob) {
    int64_t xd[4] = {1, C, H, W}, yd[4] = {1, M, H, W}, wd[4] = {M, C, 3, 3}, bd[1] = {M};
    ob_input(ob, "x", 4, xd);
    ob_output(ob, "y", 4, yd);
    if (conv_f32_weights) {
        ob_initializer(ob, "w", 1, 4, wd, cw, sizeof cw);
        ob_initializer(ob, "b", 1, 1, bd, cb, sizeof cb);
    } else {
        ob_initializer(ob, "w", ONNX_FLOAT16, 4, wd, cw16, sizeof cw16);
        ob_initializer(ob, "b", ONNX_FLOAT16, 1, bd, cb16, sizeof cb16);
    }
    pbuf n = ob_node("Conv", "conv", 3, (const char *[]){"x", "w", "b"}, 1, (const char *[]){"y"});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_node_end(ob, &n);
}

static void test_f16_conv_within_half_accumulation(void) {
    fill_half(cx, cx16, C * H * W);
    fill_half(cw, cw16, M * K);
    fill_half(cb, cb16, M);
    int64_t xd[4] = {1, C, H, W};
    static float y32[M * H * W], y16[M * H * W], mag[M * H * W], ax[C * H * W], aw[M * K], ab[M];
    CHECK_EQ_INT(run_mode(VIGIL_FLOAT16_FP32, conv_model, cx, xd, y32, M * H * W), 0);
    int conversions = run_mode(VIGIL_FLOAT16_XNNPACK, conv_model, cx, xd, y16, M * H * W);
    CHECK_EQ_INT(conversions, 1); /* the input, once: the path was taken */
    /* sum of |terms| per output: the convolution of |x| with |w|, plus |b| */
    for (int i = 0; i < C * H * W; i++)
        ax[i] = fabsf(cx[i]);
    for (int i = 0; i < M * K; i++)
        aw[i] = fabsf(cw[i]);
    for (int i = 0; i < M; i++)
        ab[i] = fabsf(cb[i]);
    kernels_window win;
    kernels_window_defaults(&win, 2, (int64_t[]){3, 3});
    win.pad_begin[0] = win.pad_begin[1] = win.pad_end[0] = win.pad_end[1] = 1;
    kshape xs = kshape_make(4, xd), ys = kshape_make(4, (int64_t[]){1, M, H, W});
    kernels_conv_f32(ax, &xs, aw, ab, &win, mag, &ys);
    /* recursive summation of K + 1 terms, each product and sum rounded to
     * half (u = 2^-11): |error| <= gamma(K + 2) * sum|terms|, plus the final
     * rounding; the float32 path's own error is far below it */
    const double u = 1.0 / 2048, gamma = (K + 2) * u / (1 - (K + 2) * u);
    double worst = 0, max_err = 0;
    int out_of_bound = 0;
    for (int i = 0; i < M * H * W; i++) {
        double err = fabs((double)y16[i] - (double)y32[i]);
        double bound = gamma * mag[i] + u * fabs((double)y32[i]) + 1e-6;
        out_of_bound += err > bound;
        if (err / bound > worst) worst = err / bound;
        if (err > max_err) max_err = err;
    }
    fprintf(stderr, "  f16 conv: max |f16 - f32| %.3g, worst %.2f of the bound\n", max_err, worst);
    CHECK_EQ_INT(out_of_bound, 0);
    CHECK(max_err > 0); /* computed in half precision, not the float32 path again */
}

/* ---- every converted operator: Conv+SiLU, Split, Conv+Relu, Add, MaxPool,
 * Resize (nearest), Concat, Mul, then a float32 Sigmoid ---- */

enum { GC = 8, GH = 8, GW = 6 };
static float gx[GC * GH * GW], gw1[GC * GC * 9], gw2[4 * 4];
static uint16_t gx16[GC * GH * GW], gw1_16[GC * GC * 9], gw2_16[4 * 4];

static void graph_model(onnx_builder *ob) {
    int64_t xd[4] = {1, GC, GH, GW}, yd[4] = {1, 16, 2 * GH, 2 * GW}, w1d[4] = {GC, GC, 3, 3}, w2d[4] = {4, 4, 1, 1};
    int64_t sd[1] = {2}, split[2] = {4, 4}, scd[1] = {4};
    float scales[4] = {1, 1, 2, 2};
    ob_input(ob, "x", 4, xd);
    ob_output(ob, "y", 4, yd);
    ob_initializer(ob, "w1", ONNX_FLOAT16, 4, w1d, gw1_16, sizeof gw1_16);
    ob_initializer(ob, "w2", ONNX_FLOAT16, 4, w2d, gw2_16, sizeof gw2_16);
    ob_initializer(ob, "split", 7, 1, sd, split, sizeof split);
    ob_initializer(ob, "scales", 1, 1, scd, scales, sizeof scales);
    pbuf n = ob_node("Conv", "c1", 2, (const char *[]){"x", "w1"}, 1, (const char *[]){"a"});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_node_end(ob, &n);
    n = ob_node("Sigmoid", "sg", 1, (const char *[]){"a"}, 1, (const char *[]){"as"});
    ob_node_end(ob, &n);
    n = ob_node("Mul", "silu", 2, (const char *[]){"a", "as"}, 1, (const char *[]){"s"});
    ob_node_end(ob, &n);
    n = ob_node("Split", "sp", 2, (const char *[]){"s", "split"}, 2, (const char *[]){"s0", "s1"});
    ob_attr_int(&n, "axis", 1);
    ob_node_end(ob, &n);
    n = ob_node("Conv", "c2", 2, (const char *[]){"s1", "w2"}, 1, (const char *[]){"b"});
    ob_node_end(ob, &n);
    n = ob_node("Relu", "r", 1, (const char *[]){"b"}, 1, (const char *[]){"br"});
    ob_node_end(ob, &n);
    n = ob_node("Add", "add", 2, (const char *[]){"s1", "br"}, 1, (const char *[]){"d"});
    ob_node_end(ob, &n);
    n = ob_node("MaxPool", "mp", 1, (const char *[]){"d"}, 1, (const char *[]){"p"});
    ob_attr_ints(&n, "kernel_shape", 2, (int64_t[]){3, 3});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_node_end(ob, &n);
    n = ob_node("Mul", "mul", 2, (const char *[]){"p", "s0"}, 1, (const char *[]){"q"});
    ob_node_end(ob, &n);
    n = ob_node("Concat", "cat", 3, (const char *[]){"s0", "p", "q"}, 1, (const char *[]){"cc"});
    ob_attr_int(&n, "axis", 1);
    ob_node_end(ob, &n);
    /* 12 channels so far; 4 more from the Add's output */
    n = ob_node("Concat", "cat2", 2, (const char *[]){"cc", "d"}, 1, (const char *[]){"c16"});
    ob_attr_int(&n, "axis", 1);
    ob_node_end(ob, &n);
    n = ob_node("Resize", "up", 3, (const char *[]){"c16", "", "scales"}, 1, (const char *[]){"u"});
    ob_node_end(ob, &n);
    n = ob_node("Sigmoid", "out", 1, (const char *[]){"u"}, 1, (const char *[]){"y"});
    ob_node_end(ob, &n);
}

static void test_f16_graph_close_to_fp32(void) {
    fill_half(gx, gx16, GC * GH * GW);
    fill_half(gw1, gw1_16, GC * GC * 9);
    fill_half(gw2, gw2_16, 4 * 4);
    int64_t xd[4] = {1, GC, GH, GW};
    enum { NY = 16 * 2 * GH * 2 * GW };
    static float y32[NY], y16[NY], yauto[NY];
    CHECK_EQ_INT(run_mode(VIGIL_FLOAT16_FP32, graph_model, gx, xd, y32, NY), 0);
    CHECK_EQ_INT(run_mode(VIGIL_FLOAT16_XNNPACK, graph_model, gx, xd, y16, NY), 1);
    double max_err = 0;
    for (int i = 0; i < NY; i++) {
        double err = fabs((double)y16[i] - (double)y32[i]);
        if (!(err <= max_err)) max_err = err; /* NaN sticks */
    }
    fprintf(stderr, "  f16 graph: max |f16 - f32| %.3g after the float32 Sigmoid\n", max_err);
    /* the Sigmoid's slope is at most 1/4: a few half steps of the values
     * before it (72-term sums of order 1, then the Add and the Mul) */
    CHECK(max_err > 0 && max_err < 0.02);
    /* AUTO on a CPU without float16 arithmetic is the float32 path exactly */
    if (!vigil_cpu_has_float16_arithmetic()) {
        CHECK_EQ_INT(run_mode(VIGIL_FLOAT16_AUTO, graph_model, gx, xd, yauto, NY), 0);
        CHECK(memcmp(yauto, y32, sizeof y32) == 0);
    }
}

/* A float32 model never takes the float16 path, whatever the mode. */
static void test_f32_model_ignores_mode(void) {
    static float y32[M * H * W], yx[M * H * W];
    int64_t xd[4] = {1, C, H, W};
    conv_f32_weights = 1;
    CHECK_EQ_INT(run_mode(VIGIL_FLOAT16_FP32, conv_model, cx, xd, y32, M * H * W), 0);
    CHECK_EQ_INT(run_mode(VIGIL_FLOAT16_XNNPACK, conv_model, cx, xd, yx, M * H * W), 0);
    CHECK(memcmp(y32, yx, sizeof yx) == 0);
    conv_f32_weights = 0;
}

/* AUTO asks the CPU: the answer must agree with the kernel's flags
 * (avx512_fp16 on x86-64, asimdhp on aarch64), and an engine in AUTO
 * takes the XNNPACK path exactly when it says yes. */
static void test_auto_follows_the_cpu(void) {
    int flag = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0 || strncmp(line, "Features", 8) == 0) {
            for (char *t = strtok(strchr(line, ':') ? strchr(line, ':') + 1 : line, " \t\n"); t;
                 t = strtok(NULL, " \t\n"))
                if (strcmp(t, "avx512_fp16") == 0 || strcmp(t, "asimdhp") == 0) flag = 1;
            break;
        }
    if (f) fclose(f);
    if (!f) SKIP("no /proc/cpuinfo");
    int native = vigil_cpu_has_float16_arithmetic();
    fprintf(stderr, "  float16 arithmetic on this CPU: %s\n", native ? "yes (auto = xnnpack)" : "no (auto = fp32)");
    CHECK_EQ_INT(native, flag);
    int modes[3] = {VIGIL_FLOAT16_AUTO, VIGIL_FLOAT16_FP32, VIGIL_FLOAT16_XNNPACK};
    int want[3] = {native, 0, 1};
    for (int i = 0; i < 3; i++) {
        vigil_engine_options o = {.threads = 1, .float16 = modes[i]};
        vigil_engine *e = NULL;
        vigil_error err;
        CHECK(vigil_engine_create(&o, &e, &err) == VIGIL_OK);
        CHECK_EQ_INT(vigil_engine_float16_xnnpack(e), want[i]);
        vigil_engine_destroy(e);
    }
    vigil_engine_options bad = {.float16 = 3};
    vigil_engine *e = NULL;
    vigil_error err;
    CHECK(vigil_engine_create(&bad, &e, &err) == VIGIL_ERR_INVALID_ARGUMENT);
    int mode = -1;
    CHECK(vigil_float16_mode_parse("xnnpack", &mode) == VIGIL_OK && mode == VIGIL_FLOAT16_XNNPACK);
    CHECK(vigil_float16_mode_parse("fp32", &mode) == VIGIL_OK && mode == VIGIL_FLOAT16_FP32);
    CHECK(vigil_float16_mode_parse("auto", &mode) == VIGIL_OK && mode == VIGIL_FLOAT16_AUTO);
    CHECK(vigil_float16_mode_parse("fp16", &mode) == VIGIL_ERR_INVALID_ARGUMENT);
}

int main(void) {
    RUN(test_auto_follows_the_cpu);
    RUN(test_f16_conv_within_half_accumulation);
    RUN(test_f16_graph_close_to_fp32);
    RUN(test_f32_model_ignores_mode);
    return testing_report();
}
