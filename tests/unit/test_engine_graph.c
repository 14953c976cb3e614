/*
 * test_engine_graph.c - the engine on small graphs built in code: fused paths
 * (BatchNorm folded into Conv, Conv+SiLU, Conv+Relu, NHWC Split/Concat) give
 * the same results as the plain-C reference kernels run op by op; the memory
 * planner reuses buffers; constant shape subgraphs fold; symbolic and fixed
 * batches; and load-time validation reports bad graphs as errors naming the
 * node.
 */
#include "testing.h"

#include <unistd.h>

#include "engine/exec.h"
#include "engine/kernels/kernels.h"
#include "vigil/engine.h"

#include "onnx_builder.h"

static uint32_t rng_state = 1;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 16777216.0f * 2.0f - 1.0f;
}
static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
}

/* batch_cap 0: the engine's default (threads, at least 2) */
static vigil_engine *make_engine_capped(int threads, int batch_cap) {
    vigil_engine_options o = {.threads = threads, .batch_cap = batch_cap};
    vigil_engine *e = NULL;
    vigil_error err;
    CHECK(vigil_engine_create(&o, &e, &err) == VIGIL_OK);
    return e;
}

static vigil_engine *make_engine(int threads) {
    return make_engine_capped(threads, 0);
}

/* Loads, plans at batch and runs with one float input; returns the plan (NULL on failure). */
static vigil_plan *run_model(vigil_engine *e, onnx_builder *ob, int64_t batch, const float *x, int ndim,
                             const int64_t *dims, vigil_model **model) {
    vigil_error err;
    vigil_plan *p = NULL;
    *model = NULL;
    vigil_status st = load_bytes(e, ob, model, &err);
    if (st != VIGIL_OK) fprintf(stderr, "load: %s\n", err.message);
    CHECK(st == VIGIL_OK);
    if (st != VIGIL_OK) return NULL;
    st = vigil_plan_create(*model, batch, &p, &err);
    if (st != VIGIL_OK) fprintf(stderr, "plan: %s\n", err.message);
    CHECK(st == VIGIL_OK);
    if (st != VIGIL_OK) return NULL;
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = ndim, .data = (void *)x};
    memcpy(t.dims, dims, (size_t)ndim * sizeof(int64_t));
    st = vigil_plan_run(p, &t, 1, &err);
    if (st != VIGIL_OK) fprintf(stderr, "run: %s\n", err.message);
    CHECK(st == VIGIL_OK);
    return p;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* ---- Conv -> BatchNormalization -> x*Sigmoid(x) ---- */

static void conv_bn_silu(int threads) {
    enum { C = 3, M = 4, H = 9, W = 7 };
    float x[C * H * W], w[M * C * 9], b[M], scale[M], bias[M], mean[M], var[M];
    fill(x, C * H * W);
    fill(w, M * C * 9);
    fill(b, M);
    fill(scale, M);
    fill(bias, M);
    fill(mean, M);
    for (int i = 0; i < M; i++)
        var[i] = 0.5f + (float)i;
    onnx_builder ob = {.opset = 17};
    int64_t xd[4] = {1, C, H, W}, wd[4] = {M, C, 3, 3}, md[1] = {M}, yd[4] = {1, M, H, W};
    ob_input(&ob, "x", 4, xd);
    ob_output(&ob, "y", 4, yd);
    ob_initializer(&ob, "w", 1, 4, wd, w, sizeof w);
    ob_initializer(&ob, "b", 1, 1, md, b, sizeof b);
    ob_initializer(&ob, "s", 1, 1, md, scale, sizeof scale);
    ob_initializer(&ob, "o", 1, 1, md, bias, sizeof bias);
    ob_initializer(&ob, "m", 1, 1, md, mean, sizeof mean);
    ob_initializer(&ob, "v", 1, 1, md, var, sizeof var);
    pbuf n = ob_node("Conv", "conv", 3, (const char *[]){"x", "w", "b"}, 1, (const char *[]){"c"});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_attr_ints(&n, "kernel_shape", 2, (int64_t[]){3, 3});
    ob_node_end(&ob, &n);
    n = ob_node("BatchNormalization", "bn", 5, (const char *[]){"c", "s", "o", "m", "v"}, 1, (const char *[]){"n"});
    ob_attr_float(&n, "epsilon", 1e-3f);
    ob_node_end(&ob, &n);
    n = ob_node("Sigmoid", "sig", 1, (const char *[]){"n"}, 1, (const char *[]){"g"});
    ob_node_end(&ob, &n);
    n = ob_node("Mul", "mul", 2, (const char *[]){"n", "g"}, 1, (const char *[]){"y"});
    ob_node_end(&ob, &n);

    /* reference: the plain-C kernels, op by op */
    float ref[M * H * W];
    kshape xs = kshape_make(4, xd), ys = kshape_make(4, yd);
    kernels_window win;
    kernels_window_defaults(&win, 2, (int64_t[]){3, 3});
    win.pad_begin[0] = win.pad_begin[1] = win.pad_end[0] = win.pad_end[1] = 1;
    kernels_conv_f32(x, &xs, w, b, &win, ref, &ys);
    kernels_batchnorm_f32(ref, 1, M, H * W, scale, bias, mean, var, 1e-3f, ref);
    for (int i = 0; i < M * H * W; i++)
        ref[i] = ref[i] / (1.0f + expf(-ref[i]));

    vigil_engine *e = make_engine(threads);
    vigil_model *m;
    vigil_plan *p = run_model(e, &ob, 1, x, 4, xd, &m);
    if (p) {
        const vigil_tensor *y = vigil_plan_output(p, 0);
        CHECK_EQ_INT(y->ndim, 4);
        CHECK_EQ_INT(y->dims[1], M);
        double d = max_diff(y->data, ref, M * H * W);
        fprintf(stderr, "  threads %d: max |engine - reference| = %.3g\n", threads, d);
        CHECK(d < 1e-4);
        CHECK_NEAR(vigil_plan_flops(p), 2.0 * M * H * W * C * 9, 1.0);
        /* BatchNorm, Sigmoid and Mul are gone: layout in, fused Conv, layout out */
        CHECK_EQ_INT(p->n_steps, 3);
        if (p->n_steps == 3) CHECK_STR(p->steps[1].op, "Conv");
        /* adaptive parallelism: the first runs alternate pool / calling thread,
         * and both modes give the same result */
        vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, C, H, W}, .data = x};
        vigil_error err;
        for (int r = 0; r < 7; r++) {
            CHECK(vigil_plan_run(p, &t, 1, &err) == VIGIL_OK);
            CHECK(max_diff(vigil_plan_output(p, 0)->data, ref, M * H * W) < 1e-4);
        }
        CHECK_EQ_INT(p->runs, 8);
        CHECK(p->run_ms[1] > 0);
        if (threads > 1) CHECK(p->run_ms[0] > 0);
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

static void test_conv_bn_silu_fusion(void) {
    conv_bn_silu(1);
    conv_bn_silu(2);
}

/* ---- Conv1x1 -> Split -> Conv3x3+Relu -> Concat (NHWC data movement) ---- */

static void test_split_concat_nhwc(void) {
    enum { C = 8, H = 6, W = 5 };
    float x[C * H * W], w1[C * C], w2[4 * 4 * 9];
    fill(x, sizeof x / 4);
    fill(w1, sizeof w1 / 4);
    fill(w2, sizeof w2 / 4);
    onnx_builder ob = {.opset = 13};
    int64_t xd[4] = {1, C, H, W}, w1d[4] = {C, C, 1, 1}, w2d[4] = {4, 4, 3, 3}, sd[1] = {2};
    int64_t split[2] = {4, 4};
    ob_input(&ob, "x", 4, xd);
    ob_output(&ob, "y", 4, xd);
    ob_initializer(&ob, "w1", 1, 4, w1d, w1, sizeof w1);
    ob_initializer(&ob, "w2", 1, 4, w2d, w2, sizeof w2);
    ob_initializer(&ob, "split", 7, 1, sd, split, sizeof split);
    pbuf n = ob_node("Conv", "c1", 2, (const char *[]){"x", "w1"}, 1, (const char *[]){"a"});
    ob_node_end(&ob, &n);
    n = ob_node("Split", "sp", 2, (const char *[]){"a", "split"}, 2, (const char *[]){"a0", "a1"});
    ob_attr_int(&n, "axis", 1);
    ob_node_end(&ob, &n);
    n = ob_node("Conv", "c2", 2, (const char *[]){"a1", "w2"}, 1, (const char *[]){"b"});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_node_end(&ob, &n);
    n = ob_node("Relu", "r", 1, (const char *[]){"b"}, 1, (const char *[]){"br"});
    ob_node_end(&ob, &n);
    n = ob_node("Concat", "cat", 3, (const char *[]){"a0", "br", "a1"}, 1, (const char *[]){"y3"});
    ob_attr_int(&n, "axis", -3);
    ob_node_end(&ob, &n);
    /* y = y3[:, 0:8] via Slice on the channel axis keeps the output 8 channels */
    int64_t st[1] = {0}, en[1] = {C}, ax[1] = {1}, one[1] = {1};
    ob_initializer(&ob, "st", 7, 1, one, st, sizeof st);
    ob_initializer(&ob, "en", 7, 1, one, en, sizeof en);
    ob_initializer(&ob, "ax", 7, 1, one, ax, sizeof ax);
    n = ob_node("Slice", "sl", 4, (const char *[]){"y3", "st", "en", "ax"}, 1, (const char *[]){"y"});
    ob_node_end(&ob, &n);

    float a[C * H * W], b[4 * H * W], ref[12 * H * W];
    kernels_window win;
    kshape xs = kshape_make(4, xd);
    kshape half = kshape_make(4, (int64_t[]){1, 4, H, W});
    kernels_window_defaults(&win, 2, (int64_t[]){1, 1});
    kernels_conv_f32(x, &xs, w1, NULL, &win, a, &xs);
    kernels_window_defaults(&win, 2, (int64_t[]){3, 3});
    win.pad_begin[0] = win.pad_begin[1] = win.pad_end[0] = win.pad_end[1] = 1;
    kernels_conv_f32(a + 4 * H * W, &half, w2, NULL, &win, b, &half);
    for (int i = 0; i < 4 * H * W; i++)
        b[i] = b[i] > 0 ? b[i] : 0;
    memcpy(ref, a, 4 * H * W * sizeof(float));
    memcpy(ref + 4 * H * W, b, 4 * H * W * sizeof(float));

    vigil_engine *e = make_engine(2);
    vigil_model *m;
    vigil_plan *p = run_model(e, &ob, 1, x, 4, xd, &m);
    if (p) {
        const vigil_tensor *y = vigil_plan_output(p, 0);
        CHECK_EQ_INT(y->dims[1], C);
        double d = max_diff(y->data, ref, C * H * W);
        fprintf(stderr, "  max |engine - reference| = %.3g\n", d);
        CHECK(d < 1e-4);
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

/* ---- memory planning: a chain of 12 ops needs a few buffers, not 12 ---- */

static void test_planner_reuses_buffers(void) {
    enum { N = 16 * 32 * 32, STEPS = 12 };
    static float x[N], want[N];
    fill(x, N);
    float k[1] = {0.5f};
    onnx_builder ob = {.opset = 17};
    int64_t xd[4] = {1, 16, 32, 32}, kd[1] = {1};
    ob_input(&ob, "x", 4, xd);
    ob_output(&ob, "v12", 4, xd);
    ob_initializer(&ob, "k", 1, 1, kd, k, sizeof k);
    for (int i = 0; i < N; i++)
        want[i] = x[i];
    for (int s = 1; s <= STEPS; s++) {
        char in[16], out[16], name[16];
        snprintf(in, sizeof in, s == 1 ? "x" : "v%d", s - 1);
        snprintf(out, sizeof out, "v%d", s);
        snprintf(name, sizeof name, "n%d", s);
        const char *op = s % 3 == 0 ? "Sigmoid" : s % 3 == 1 ? "Add" : "Mul";
        int n_in = s % 3 == 0 ? 1 : 2;
        pbuf n = ob_node(op, name, n_in, (const char *[]){in, "k"}, 1, (const char *[]){out});
        ob_node_end(&ob, &n);
        for (int i = 0; i < N; i++)
            want[i] = s % 3 == 0 ? 1.0f / (1.0f + expf(-want[i])) : s % 3 == 1 ? want[i] + 0.5f : want[i] * 0.5f;
    }
    vigil_engine *e = make_engine(1);
    vigil_model *m;
    vigil_plan *p = run_model(e, &ob, 1, x, 4, xd, &m);
    if (p) {
        size_t peak = vigil_plan_peak_activation_bytes(p), one = N * sizeof(float);
        fprintf(stderr, "  peak %zu bytes for %d values of %zu bytes\n", peak, STEPS + 1, one);
        CHECK(peak >= 2 * one);        /* input and output of a step cannot share */
        CHECK(peak <= 4 * one + 1024); /* but the chain needs no more than input, two live, output */
        CHECK(max_diff(vigil_plan_output(p, 0)->data, want, N) < 1e-5);
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

/* ---- Shape -> Gather -> Unsqueeze -> Concat -> Reshape folds to a constant ---- */

static void test_shape_subgraph_folds(void) {
    enum { N = 2 * 3 * 4 * 4 };
    float x[N];
    fill(x, N);
    onnx_builder ob = {.opset = 17};
    int64_t xd[4] = {-1, 3, 4, 4}, yd[2] = {-1, 48}, one[1] = {1}, zero_d[1] = {1};
    int64_t idx[1] = {0}, minus1[1] = {-1}, axes[1] = {0};
    ob_input(&ob, "x", 4, xd);
    ob_output(&ob, "y", 2, yd);
    ob_initializer(&ob, "i0", 7, 0, NULL, idx, sizeof idx);
    ob_initializer(&ob, "m1", 7, 1, one, minus1, sizeof minus1);
    ob_initializer(&ob, "ax", 7, 1, zero_d, axes, sizeof axes);
    pbuf n = ob_node("Shape", "shape", 1, (const char *[]){"x"}, 1, (const char *[]){"s"});
    ob_node_end(&ob, &n);
    n = ob_node("Gather", "g", 2, (const char *[]){"s", "i0"}, 1, (const char *[]){"b"});
    ob_node_end(&ob, &n);
    n = ob_node("Unsqueeze", "u", 2, (const char *[]){"b", "ax"}, 1, (const char *[]){"bu"});
    ob_node_end(&ob, &n);
    n = ob_node("Concat", "cat", 2, (const char *[]){"bu", "m1"}, 1, (const char *[]){"shape2"});
    ob_attr_int(&n, "axis", 0);
    ob_node_end(&ob, &n);
    n = ob_node("Reshape", "r", 2, (const char *[]){"x", "shape2"}, 1, (const char *[]){"y"});
    ob_node_end(&ob, &n);
    vigil_engine *e = make_engine(1);
    vigil_model *m;
    int64_t in_dims[4] = {2, 3, 4, 4};
    vigil_plan *p = run_model(e, &ob, 2, x, 4, in_dims, &m);
    if (p) {
        CHECK_EQ_INT(vigil_model_native_batch(m), 0);
        const vigil_tensor *y = vigil_plan_output(p, 0);
        CHECK_EQ_INT(y->ndim, 2);
        CHECK_EQ_INT(y->dims[0], 2);
        CHECK_EQ_INT(y->dims[1], 48);
        CHECK(max_diff(y->data, x, N) == 0);
        /* Reshape aliases its input: only the input buffer is planned */
        CHECK(vigil_plan_peak_activation_bytes(p) < 2 * N * sizeof(float));
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

/* ---- Gemm on a fixed batch-1 model run at batch 3 (item by item) ---- */

/* y = x w + c, x [model_batch, 4] (-1: symbolic), w [4, 5], c [5]. */
static void gemm_model(onnx_builder *ob, int64_t model_batch, const float w[4 * 5], const float c[5]) {
    int64_t xd[2] = {model_batch, 4}, wd[2] = {4, 5}, cd[1] = {5}, yd[2] = {model_batch, 5};
    ob_input(ob, "x", 2, xd);
    ob_output(ob, "y", 2, yd);
    ob_initializer(ob, "w", 1, 2, wd, w, sizeof(float) * 20);
    ob_initializer(ob, "c", 1, 1, cd, c, sizeof(float) * 5);
    pbuf n = ob_node("Gemm", "fc", 3, (const char *[]){"x", "w", "c"}, 1, (const char *[]){"y"});
    ob_node_end(ob, &n);
}

static void gemm_batch(int64_t model_batch) {
    float x[3 * 4], w[4 * 5], c[5], want[3 * 5];
    fill(x, 12);
    fill(w, 20);
    fill(c, 5);
    onnx_builder ob = {.opset = 13};
    gemm_model(&ob, model_batch, w, c);
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 5; j++) {
            double s = c[j];
            for (int k = 0; k < 4; k++)
                s += (double)x[r * 4 + k] * w[k * 5 + j];
            want[r * 5 + j] = (float)s;
        }
    vigil_engine *e = make_engine_capped(2, 8); /* batch 3 as one graph (above the cap: test_batch_cap) */
    vigil_model *m;
    int64_t in_dims[2] = {3, 4};
    vigil_plan *p = run_model(e, &ob, 3, x, 2, in_dims, &m);
    if (p) {
        const vigil_tensor *y = vigil_plan_output(p, 0);
        CHECK_EQ_INT(y->dims[0], 3);
        CHECK(max_diff(y->data, want, 15) < 1e-5);
        /* wrong batch is refused with a clear status */
        vigil_error err;
        vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 2, .dims = {2, 4}, .data = x};
        CHECK(vigil_plan_run(p, &t, 1, &err) == VIGIL_ERR_INVALID_ARGUMENT);
        CHECK(strstr(err.message, "expected shape [3,4]") != NULL);
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

static void test_gemm_symbolic_batch(void) {
    gemm_batch(-1);
}
static void test_gemm_fixed_batch_repeats(void) {
    gemm_batch(1);
}

/* ---- plans sharing one activation arena ---- */

static void test_plans_share_an_arena(void) {
    float x[4 * 4], w[4 * 5], c[5];
    fill(x, 16);
    fill(w, 20);
    fill(c, 5);
    onnx_builder ob = {.opset = 13};
    gemm_model(&ob, -1, w, c);
    vigil_engine *e = make_engine_capped(1, 8); /* batch 4 as one graph */
    vigil_model *m = NULL;
    vigil_error err;
    vigil_arena *arena = NULL;
    CHECK_EQ_INT(load_bytes(e, &ob, &m, &err), VIGIL_OK);
    CHECK_EQ_INT(vigil_arena_create(&arena, &err), VIGIL_OK);
    vigil_plan *one = NULL, *four = NULL, *alone = NULL;
    CHECK_EQ_INT(vigil_plan_create_in(m, 1, arena, &one, &err), VIGIL_OK);
    size_t small = vigil_arena_bytes(arena);
    CHECK(small >= vigil_plan_peak_activation_bytes(one));
    /* batch 4 needs more while the batch-1 plan uses the arena: refused */
    CHECK_EQ_INT(vigil_plan_create_in(m, 4, arena, &four, &err), VIGIL_ERR_LIMIT);
    CHECK(four == NULL);
    vigil_plan_destroy(one);
    CHECK_EQ_INT(vigil_plan_create_in(m, 4, arena, &four, &err), VIGIL_OK);
    CHECK(vigil_arena_bytes(arena) > small);
    CHECK_EQ_INT(vigil_plan_create_in(m, 1, arena, &one, &err), VIGIL_OK); /* fits now */
    CHECK_EQ_INT(vigil_plan_create(m, 4, &alone, &err), VIGIL_OK);
    /* alternating runs on the shared memory give what a plan of its own gives */
    vigil_tensor t4 = {.dtype = VIGIL_DTYPE_F32, .ndim = 2, .dims = {4, 4}, .data = x};
    vigil_tensor t1 = {.dtype = VIGIL_DTYPE_F32, .ndim = 2, .dims = {1, 4}, .data = x + 12};
    CHECK_EQ_INT(vigil_plan_run(alone, &t4, 1, &err), VIGIL_OK);
    for (int round = 0; round < 2; round++) {
        CHECK_EQ_INT(vigil_plan_run(one, &t1, 1, &err), VIGIL_OK);
        CHECK(max_diff(vigil_plan_output(one, 0)->data, (const float *)vigil_plan_output(alone, 0)->data + 15, 5) == 0);
        CHECK_EQ_INT(vigil_plan_run(four, &t4, 1, &err), VIGIL_OK);
        CHECK(max_diff(vigil_plan_output(four, 0)->data, vigil_plan_output(alone, 0)->data, 20) == 0);
    }
    vigil_plan_destroy(alone);
    vigil_plan_destroy(one);
    vigil_plan_destroy(four);
    vigil_arena_destroy(arena);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

/* ---- a batch split across the pool's threads ---- */

static void split_case(int64_t model_batch) {
    float x[6 * 4], w[4 * 5], c[5];
    fill(x, 24);
    fill(w, 20);
    fill(c, 5);
    onnx_builder ob1 = {.opset = 13}, ob2 = {.opset = 13}; /* loading consumes a builder */
    gemm_model(&ob1, model_batch, w, c);
    gemm_model(&ob2, model_batch, w, c);
    vigil_engine *one = make_engine(1), *two = make_engine(2);
    vigil_model *m1 = NULL, *m2 = NULL;
    vigil_error err;
    CHECK_EQ_INT(load_bytes(one, &ob1, &m1, &err), VIGIL_OK);
    CHECK_EQ_INT(load_bytes(two, &ob2, &m2, &err), VIGIL_OK);
    for (int64_t batch = 2; batch <= 6; batch += 2) { /* 2, 4 and 6 split in two on two threads */
        vigil_plan *ref = NULL, *split = NULL;
        CHECK_EQ_INT(vigil_plan_create(m1, batch, &ref, &err), VIGIL_OK);
        CHECK_EQ_INT(vigil_plan_create(m2, batch, &split, &err), VIGIL_OK);
        vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 2, .dims = {batch, 4}, .data = x};
        for (int round = 0; round < 8 && ref && split; round++) { /* both modes of the probing */
            CHECK_EQ_INT(vigil_plan_run(ref, &t, 1, &err), VIGIL_OK);
            vigil_status sst = vigil_plan_run(split, &t, 1, &err);
            if (sst) fprintf(stderr, "split run: %s\n", err.message);
            CHECK_EQ_INT(sst, VIGIL_OK);
            const vigil_tensor *a = vigil_plan_output(ref, 0), *b = vigil_plan_output(split, 0);
            CHECK(a && b && b->dims[0] == batch && b->dims[1] == 5);
            if (a && b) CHECK(max_diff(a->data, b->data, (size_t)batch * 5) == 0);
        }
        /* a wrong batch is refused with a clear status */
        vigil_tensor bad = {.dtype = VIGIL_DTYPE_F32, .ndim = 2, .dims = {batch + 1, 4}, .data = x};
        if (split) CHECK_EQ_INT(vigil_plan_run(split, &bad, 1, &err), VIGIL_ERR_INVALID_ARGUMENT);
        vigil_plan_destroy(ref);
        vigil_plan_destroy(split);
    }
    vigil_model_free(m1);
    vigil_model_free(m2);
    vigil_engine_destroy(one);
    vigil_engine_destroy(two);
}

static void test_batch_split_symbolic(void) {
    split_case(-1);
}
static void test_batch_split_fixed(void) {
    split_case(1);
}

/* ---- one packed copy of the weights per instance ---- */

/* x [batch, 3, 8, 8] -> Conv 3x3 (8) -> Relu -> Conv 1x1 (4) -> Flatten ->
 * Gemm (256 -> 5): two convolutions and a fully connected layer, the three
 * operators that pack weights. */
enum { WX_ITEM = 3 * 8 * 8, WY_ITEM = 5 };
static void weighted_model(onnx_builder *ob, const float *w1, const float *w2, const float *w3, const float *c3) {
    int64_t xd[4] = {-1, 3, 8, 8}, yd[2] = {-1, 5}, w1d[4] = {8, 3, 3, 3}, w2d[4] = {4, 8, 1, 1}, w3d[2] = {256, 5},
            c3d[1] = {5};
    ob_input(ob, "x", 4, xd);
    ob_output(ob, "y", 2, yd);
    ob_initializer(ob, "w1", 1, 4, w1d, w1, sizeof(float) * 8 * 27);
    ob_initializer(ob, "w2", 1, 4, w2d, w2, sizeof(float) * 32);
    ob_initializer(ob, "w3", 1, 2, w3d, w3, sizeof(float) * 256 * 5);
    ob_initializer(ob, "c3", 1, 1, c3d, c3, sizeof(float) * 5);
    pbuf n = ob_node("Conv", "conv1", 2, (const char *[]){"x", "w1"}, 1, (const char *[]){"a"});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_attr_ints(&n, "kernel_shape", 2, (int64_t[]){3, 3});
    ob_node_end(ob, &n);
    n = ob_node("Relu", "relu", 1, (const char *[]){"a"}, 1, (const char *[]){"r"});
    ob_node_end(ob, &n);
    n = ob_node("Conv", "conv2", 2, (const char *[]){"r", "w2"}, 1, (const char *[]){"b"});
    ob_attr_ints(&n, "kernel_shape", 2, (int64_t[]){1, 1});
    ob_node_end(ob, &n);
    n = ob_node("Flatten", "flat", 1, (const char *[]){"b"}, 1, (const char *[]){"f"});
    ob_node_end(ob, &n);
    n = ob_node("Gemm", "fc", 3, (const char *[]){"f", "w3", "c3"}, 1, (const char *[]){"y"});
    ob_node_end(ob, &n);
}

/* The plan for batch b on arena; plans[] are the arena's plans by batch, all
 * destroyed and the call repeated when the arena must grow (as cpu.c does). */
static vigil_plan *plan_on(vigil_model *m, vigil_arena *arena, vigil_plan **plans, int64_t b) {
    vigil_error err;
    if (plans[b]) return plans[b];
    vigil_status st = vigil_plan_create_in(m, b, arena, &plans[b], &err);
    if (st == VIGIL_ERR_LIMIT) {
        for (int k = 0; k <= 8; k++) {
            vigil_plan_destroy(plans[k]);
            plans[k] = NULL;
        }
        st = vigil_plan_create_in(m, b, arena, &plans[b], &err);
    }
    if (st) fprintf(stderr, "plan %lld: %s\n", (long long)b, err.message);
    CHECK_EQ_INT(st, VIGIL_OK);
    return plans[b];
}

/* Setups so far of the arena operators plan uses. */
static uint64_t plan_setups(const vigil_plan *p) {
    uint64_t n = 0;
    for (int k = 0; k < p->n_parts; k++) n += plan_setups(p->parts[k]);
    if (p->chunk) n += plan_setups(p->chunk) + (p->rest ? plan_setups(p->rest) : 0);
    for (int i = 0; i < p->n_steps; i++)
        if (p->steps[i].shared) n += p->steps[i].shared->setups;
    return n;
}

/* batch_cap: 0 for the engine's default; batches above it run as runs of
 * a plan of the cap (and one of the remainder) and must give exactly the
 * per-item outputs, on the one copy of the weights and activations of the
 * cap's plan. */
static void weights_per_instance(int threads, int batch_cap) {
    static float x[8 * WX_ITEM], w1[8 * 27], w2[32], w3[256 * 5], c3[5], ref[8 * WY_ITEM];
    fill(x, 8 * WX_ITEM);
    fill(w1, 8 * 27);
    fill(w2, 32);
    fill(w3, 256 * 5);
    fill(c3, 5);
    onnx_builder ob = {.opset = 13};
    weighted_model(&ob, w1, w2, w3, c3);
    vigil_engine *e = make_engine_capped(threads, batch_cap);
    int64_t cap = batch_cap ? batch_cap : (threads > 2 ? threads : 2);
    vigil_model *m = NULL;
    vigil_error err;
    CHECK_EQ_INT(load_bytes(e, &ob, &m, &err), VIGIL_OK);
    if (!m) return;
    /* reference: each item alone, on a plan of its own */
    vigil_plan *alone = NULL;
    CHECK_EQ_INT(vigil_plan_create(m, 1, &alone, &err), VIGIL_OK);
    for (int i = 0; i < 8 && alone; i++) {
        vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 3, 8, 8}, .data = x + i * WX_ITEM};
        CHECK_EQ_INT(vigil_plan_run(alone, &t, 1, &err), VIGIL_OK);
        memcpy(ref + i * WY_ITEM, vigil_plan_output(alone, 0)->data, sizeof(float) * WY_ITEM);
    }
    size_t own = vigil_plan_weight_bytes(alone);
    CHECK(own >= sizeof(float) * (8 * 27 + 32 + 256 * 5)); /* at least the weights themselves */
    vigil_plan_destroy(alone);

    vigil_arena *arena = NULL;
    CHECK_EQ_INT(vigil_arena_create(&arena, &err), VIGIL_OK);
    vigil_plan *plans[9] = {0};
    plan_on(m, arena, plans, 1);
    size_t one = vigil_arena_weight_bytes(arena);
    CHECK_EQ_INT(one, own);
    size_t most = one;
    for (int64_t b = 2; b <= 8; b++) {
        vigil_plan *p = plan_on(m, arena, plans, b);
        size_t pw = p ? vigil_plan_weight_bytes(p) : 0;
        /* a whole batch uses the one copy; a split one a copy per part */
        CHECK(pw == one || (threads > 1 && pw == one * (size_t)threads));
        if (pw > most) most = pw;
    }
    fprintf(stderr, "  threads %d: packed weights %zu bytes for one plan, %zu for the instance at batch 1-8\n",
            threads, one, vigil_arena_weight_bytes(arena));
    CHECK_EQ_INT(vigil_arena_weight_bytes(arena), most);
    if (threads == 1) CHECK_EQ_INT(vigil_arena_weight_bytes(arena), one);
    /* capped batches share one plan of the cap (and of each remainder) */
    for (int64_t b = cap + 1; b <= 8; b++)
        if (plans[b] && plans[8]) CHECK(plans[b]->chunk && plans[b]->chunk == plans[8]->chunk);
    /* activations follow the cap: the arena holds what the cap's plan needs */
    CHECK(vigil_plan_peak_activation_bytes(plans[8]) == vigil_plan_peak_activation_bytes(plans[cap]));
    CHECK(vigil_arena_bytes(arena) <= vigil_plan_peak_activation_bytes(plans[cap]) + 4096);

    /* every batch, in an order that makes each plan set the operators up again */
    static const int64_t order[] = {1, 2, 3, 4, 5, 6, 7, 8, 3, 1, 8, 2, 2, 5, 1, 1, 6, 4, 7, 3};
    for (size_t r = 0; r < sizeof order / sizeof order[0]; r++) {
        int64_t b = order[r];
        vigil_plan *p = plan_on(m, arena, plans, b);
        if (!p) continue;
        vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {b, 3, 8, 8}, .data = x};
        CHECK_EQ_INT(vigil_plan_run(p, &t, 1, &err), VIGIL_OK);
        const vigil_tensor *y = vigil_plan_output(p, 0);
        CHECK_EQ_INT(y->dims[0], b);
        CHECK(memcmp(y->data, ref, sizeof(float) * (size_t)b * WY_ITEM) == 0);
        /* a plan that runs again at once sets nothing up (a capped batch
         * with a remainder alternates two plans on the operators: it does) */
        uint64_t before = plan_setups(p);
        CHECK_EQ_INT(vigil_plan_run(p, &t, 1, &err), VIGIL_OK);
        if (b <= cap || b % cap == 0) CHECK_EQ_INT(plan_setups(p), before);
        CHECK(memcmp(vigil_plan_output(p, 0)->data, ref, sizeof(float) * (size_t)b * WY_ITEM) == 0);
    }
    CHECK_EQ_INT(vigil_arena_weight_bytes(arena), most); /* recompiled plans found the operators */
    for (int k = 0; k <= 8; k++) vigil_plan_destroy(plans[k]);
    vigil_arena_destroy(arena);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

static void test_weights_once_per_instance(void) {
    weights_per_instance(1, 0);
}
static void test_weights_once_per_instance_split(void) {
    weights_per_instance(2, 0);
}
/* caps that leave remainders (8 = 3 + 3 + 2) and that split (4 on 2 threads) */
static void test_batch_cap(void) {
    weights_per_instance(1, 3);
    weights_per_instance(2, 4);
    weights_per_instance(2, 8); /* no cap in 1..8: whole and split graphs */
}

/* ---- validation ---- */

static vigil_status load_single(const char *op, const char *attr, const char *input, vigil_error *err) {
    onnx_builder ob = {.opset = 17};
    int64_t d[2] = {1, 4};
    ob_input(&ob, "x", 2, d);
    ob_output(&ob, "y", 2, d);
    pbuf n = ob_node(op, "the_node", 1, (const char *[]){input}, 1, (const char *[]){"y"});
    if (attr) ob_attr_int(&n, attr, 1);
    ob_node_end(&ob, &n);
    vigil_engine *e = make_engine(1);
    vigil_model *m = NULL;
    vigil_status st = load_bytes(e, &ob, &m, err);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    return st;
}

static void test_validation_errors(void) {
    vigil_error err;
    CHECK(load_single("NoSuchOp", NULL, "x", &err) == VIGIL_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "node 'the_node' (NoSuchOp)") != NULL);
    CHECK(load_single("Relu", "bogus", "x", &err) == VIGIL_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "'the_node' (Relu)") && strstr(err.message, "bogus"));
    CHECK(load_single("Relu", NULL, "nowhere", &err) == VIGIL_ERR_PARSE);
    CHECK(strstr(err.message, "nowhere") != NULL);
    CHECK(load_single("Relu", NULL, "y", &err) == VIGIL_ERR_PARSE); /* reads its own output: a cycle */
    CHECK(strstr(err.message, "cycle") != NULL);
    CHECK(load_single("Sigmoid", NULL, "x", &err) == VIGIL_OK);
    /* a non-existent file */
    vigil_engine *e = make_engine(1);
    vigil_model *m = NULL;
    CHECK(vigil_model_load(e, "/nonexistent/model.onnx", &m, &err) != VIGIL_OK);
    CHECK(m == NULL);
    vigil_engine_destroy(e);
}

/* ---- robustness: corrupted models are errors, never crashes ---- */

static void test_corrupted_models_fail_cleanly(void) {
    /* a small valid model: Conv + Relu + Reshape + Softmax */
    float w[2 * 3 * 9];
    fill(w, sizeof w / 4);
    int64_t xd[4] = {1, 3, 5, 5}, wd[4] = {2, 3, 3, 3}, sd[1] = {2}, shape[2] = {1, -1}, yd[2] = {1, 50};
    onnx_builder ob = {.opset = 13};
    ob_input(&ob, "x", 4, xd);
    ob_output(&ob, "y", 2, yd);
    ob_initializer(&ob, "w", 1, 4, wd, w, sizeof w);
    ob_initializer(&ob, "s", 7, 1, sd, shape, sizeof shape);
    pbuf n = ob_node("Conv", "c", 2, (const char *[]){"x", "w"}, 1, (const char *[]){"a"});
    ob_attr_ints(&n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_node_end(&ob, &n);
    n = ob_node("Relu", "r", 1, (const char *[]){"a"}, 1, (const char *[]){"b"});
    ob_node_end(&ob, &n);
    n = ob_node("Reshape", "rs", 2, (const char *[]){"b", "s"}, 1, (const char *[]){"c2"});
    ob_node_end(&ob, &n);
    n = ob_node("Softmax", "sm", 1, (const char *[]){"c2"}, 1, (const char *[]){"y"});
    ob_node_end(&ob, &n);
    uint8_t *good;
    size_t size = ob_finish(&ob, &good);
    vigil_engine *e = make_engine(1);
    float x[75];
    fill(x, 75);
    int loaded = 0, ran = 0;
    uint8_t *bad = malloc(size);
    for (int iter = 0; iter < 400 && bad && e; iter++) {
        memcpy(bad, good, size);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            rng_state = rng_state * 1664525u + 1013904223u;
            size_t at = (rng_state >> 8) % size;
            rng_state = rng_state * 1664525u + 1013904223u;
            bad[at] = (uint8_t)(rng_state >> 24);
        }
        char path[] = "/tmp/vigil-fuzz-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) break;
        ssize_t w_ = write(fd, bad, size);
        close(fd);
        vigil_error err;
        vigil_model *m = NULL;
        vigil_plan *p = NULL;
        if (w_ == (ssize_t)size && vigil_model_load(e, path, &m, &err) == VIGIL_OK) {
            loaded++;
            if (vigil_plan_create(m, 1, &p, &err) == VIGIL_OK) {
                vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 3, 5, 5}, .data = x};
                if (vigil_plan_run(p, &t, 1, &err) == VIGIL_OK) ran++;
            } else {
                CHECK(err.message[0] != 0);
            }
        } else {
            CHECK(err.message[0] != 0);
        }
        vigil_plan_destroy(p);
        vigil_model_free(m);
        unlink(path);
    }
    fprintf(stderr, "  400 corrupted models: %d loaded, %d ran, the rest refused with a message\n", loaded, ran);
    free(bad);
    free(good);
    vigil_engine_destroy(e);
}

int main(void) {
    RUN(test_conv_bn_silu_fusion);
    RUN(test_split_concat_nhwc);
    RUN(test_planner_reuses_buffers);
    RUN(test_shape_subgraph_folds);
    RUN(test_gemm_symbolic_batch);
    RUN(test_gemm_fixed_batch_repeats);
    RUN(test_plans_share_an_arena);
    RUN(test_batch_split_symbolic);
    RUN(test_batch_split_fixed);
    RUN(test_weights_once_per_instance);
    RUN(test_weights_once_per_instance_split);
    RUN(test_batch_cap);
    RUN(test_validation_errors);
    RUN(test_corrupted_models_fail_cleanly);
    return testing_report();
}
