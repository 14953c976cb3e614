/*
 * cmd_bench.c - `vigil bench`: latency of one model on this machine through
 * vigil's CPU engine.  Inputs are deterministic pseudo-random values in
 * [0, 1) (float) or zeros (other types); the plan is compiled once, warmed
 * up, then timed run by run with a monotonic clock.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "vigil/engine.h"

static void bench_usage(FILE *out) {
    fprintf(out, "usage: vigil bench --model M.onnx [--threads N] [--batch B] [--iterations K] [--warmup W] [--json]\n"
                 "\n"
                 "Compiles the model for batch B and times K runs after W warm-up runs.\n"
                 "Prints min, median and p90 latency in milliseconds and the achieved GFLOP/s.\n"
                 "\n"
                 "options:\n"
                 "  --model PATH      ONNX model file (required)\n"
                 "  --threads N       worker threads (default: all CPUs)\n"
                 "  --batch B         batch size (default 1)\n"
                 "  --iterations K    timed runs (default 20)\n"
                 "  --warmup W        untimed runs first (default 3)\n"
                 "  --json            one JSON object instead of text\n"
                 "  -h, --help        show this help\n");
}

typedef struct bench_args {
    const char *model;
    long threads, batch, iterations, warmup;
    int json;
} bench_args;

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int bench_parse(int argc, char **argv, bench_args *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"threads", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'},  {"iterations", required_argument, 0, 'k'},
        {"warmup", required_argument, 0, 'w'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    *a = (bench_args){.batch = 1, .iterations = 20, .warmup = 3};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case 'm': a->model = optarg; break;
        case 't': ok = parse_long(optarg, 0, 1024, &a->threads); break;
        case 'b': ok = parse_long(optarg, 1, 4096, &a->batch); break;
        case 'k': ok = parse_long(optarg, 1, 1000000, &a->iterations); break;
        case 'w': ok = parse_long(optarg, 0, 1000000, &a->warmup); break;
        case 'j': a->json = 1; break;
        case 'h': bench_usage(stdout); return 1;
        default: fprintf(stderr, "vigil bench: unknown or incomplete option '%s'\n", argv[optind - 1]); return 2;
        }
        if (!ok) {
            fprintf(stderr, "vigil bench: bad value '%s' (see --help for the ranges)\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a->model) {
        fprintf(stderr, "vigil bench: --model is required (see --help)\n");
        return 2;
    }
    return 0;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Allocates the inputs of model at batch; returns NULL on failure. */
static vigil_tensor *make_inputs(const vigil_model *model, int64_t batch, vigil_error *err) {
    size_t n = vigil_model_input_count(model);
    vigil_tensor *t = vigil_calloc(n + 1, sizeof *t);
    if (!t) return NULL;
    uint32_t seed = 12345;
    for (size_t i = 0; i < n; i++) {
        const vigil_tensor_info *info = vigil_model_input(model, i);
        t[i].dtype = info->dtype;
        t[i].ndim = info->ndim;
        size_t count = 1;
        for (int d = 0; d < info->ndim; d++) {
            int64_t dim = info->dims[d];
            if (d == 0)
                dim = batch;
            else if (dim < 0)
                dim = 1;
            t[i].dims[d] = dim;
            count *= (size_t)dim;
        }
        t[i].data = vigil_calloc(count ? count : 1, vigil_dtype_size(info->dtype));
        if (!t[i].data) {
            vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for input %zu", i);
            for (size_t k = 0; k <= i; k++)
                vigil_free(t[k].data);
            vigil_free(t);
            return NULL;
        }
        if (info->dtype == VIGIL_DTYPE_F32)
            for (size_t k = 0; k < count; k++) {
                seed = seed * 1664525u + 1013904223u;
                ((float *)t[i].data)[k] = (float)(seed >> 8) / 16777216.0f;
            }
    }
    return t;
}

static void report(const bench_args *a, const vigil_engine *e, const vigil_plan *p, double *ms) {
    qsort(ms, (size_t)a->iterations, sizeof *ms, by_value);
    double min = ms[0], median = ms[a->iterations / 2];
    if (a->iterations % 2 == 0) median = (ms[a->iterations / 2 - 1] + ms[a->iterations / 2]) / 2;
    long i90 = (long)((double)(a->iterations - 1) * 0.9 + 0.5);
    double p90 = ms[i90];
    double gflops = median > 0 ? vigil_plan_flops(p) / (median * 1e6) : 0;
    if (a->json) {
        printf("{\"model\": \"");
        for (const char *c = a->model; *c; c++) {
            if (*c == '"' || *c == '\\') putchar('\\');
            if ((unsigned char)*c >= 0x20) putchar(*c);
        }
        printf("\", \"threads\": %d, \"batch\": %ld, \"iterations\": %ld, \"min_ms\": %.3f, \"median_ms\": %.3f, "
               "\"p90_ms\": %.3f, \"gflops\": %.2f, \"peak_activation_bytes\": %zu}\n",
               vigil_engine_threads(e), a->batch, a->iterations, min, median, p90, gflops,
               vigil_plan_peak_activation_bytes(p));
    } else {
        printf("model       %s\nthreads     %d\nbatch       %ld\niterations  %ld\n", a->model, vigil_engine_threads(e),
               a->batch, a->iterations);
        printf("min         %.3f ms\nmedian      %.3f ms\np90         %.3f ms\n", min, median, p90);
        printf("throughput  %.2f GFLOP/s (%.3f GFLOP per run)\n", gflops, vigil_plan_flops(p) / 1e9);
        printf("activations %zu bytes peak\n", vigil_plan_peak_activation_bytes(p));
    }
}

static int bench_run(const bench_args *a) {
    vigil_error err = {0};
    vigil_engine *e = NULL;
    vigil_model *m = NULL;
    vigil_plan *p = NULL;
    vigil_tensor *in = NULL;
    double *ms = vigil_calloc((size_t)a->iterations, sizeof *ms);
    vigil_engine_options opts = {.threads = (int)a->threads};
    vigil_status st = ms ? VIGIL_OK : vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (st == VIGIL_OK) st = vigil_engine_create(&opts, &e, &err);
    if (st == VIGIL_OK) st = vigil_model_load(e, a->model, &m, &err);
    if (st == VIGIL_OK) st = vigil_plan_create(m, a->batch, &p, &err);
    if (st == VIGIL_OK && !(in = make_inputs(m, a->batch, &err)))
        st = err.status ? err.status : vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    size_t n_in = m ? vigil_model_input_count(m) : 0;
    for (long i = 0; st == VIGIL_OK && i < a->warmup; i++)
        st = vigil_plan_run(p, in, n_in, &err);
    for (long i = 0; st == VIGIL_OK && i < a->iterations; i++) {
        double t0 = clock_now_ms();
        st = vigil_plan_run(p, in, n_in, &err);
        ms[i] = clock_now_ms() - t0;
    }
    if (st == VIGIL_OK)
        report(a, e, p, ms);
    else
        fprintf(stderr, "vigil bench: %s\n", err.message);
    for (size_t i = 0; in && i < n_in; i++)
        vigil_free(in[i].data);
    vigil_free(in);
    vigil_free(ms);
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    return st == VIGIL_OK ? 0 : 1;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    int r = bench_parse(argc, argv, &a);
    if (r == 1) return 0;
    if (r == 2) return 2;
    return bench_run(&a);
}
