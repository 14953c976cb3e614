/*
 * cmd_bench.c - `vigil bench`: latency of one model on this machine through
 * vigil's CPU engine.  Inputs are deterministic pseudo-random values in
 * [0, 1) (float) or zeros (other types); the plan is compiled once, warmed
 * up, then timed run by run with a monotonic clock.
 *
 * With several batch sizes (--batch 1-8) the plans are created one after
 * another on one vigil_arena, as the server's CPU backend holds them for a
 * model instance, and each report prints the instance's packed-weight
 * bytes: a batch size that adds no copy of the weights prints the same
 * number as the one before.
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
    fprintf(out, "usage: vigil bench --model M.onnx [--threads N] [--batch B] [--batch-cap C] [--iterations K]\n"
                 "                   [--warmup W] [--float16 MODE] [--json]\n"
                 "\n"
                 "Compiles the model for batch B and times K runs after W warm-up runs.\n"
                 "Prints min, median and p90 latency in milliseconds, the achieved GFLOP/s and\n"
                 "the packed-weight bytes the model instance holds.\n"
                 "\n"
                 "options:\n"
                 "  --model PATH      ONNX model file (required)\n"
                 "  --threads N       worker threads (default: all CPUs)\n"
                 "  --batch B         batch size (default 1); a list (1,2,4) or a range (1-8) runs\n"
                 "                    each size in turn, on one instance's shared weights\n"
                 "  --batch-cap C     largest batch one compiled graph runs; larger ones run as\n"
                 "                    runs of it (default 0: the thread count, at least 2)\n"
                 "  --iterations K    timed runs (default 20)\n"
                 "  --warmup W        untimed runs first (default 3)\n"
                 "  --float16 MODE    a float16 model's arithmetic: auto (default), fp32, xnnpack\n"
                 "  --json            one JSON object instead of text\n"
                 "  -h, --help        show this help\n");
}

#define BENCH_MAX_BATCHES 64

typedef struct bench_args {
    const char *model;
    long threads, iterations, warmup, batch_cap;
    long batches[BENCH_MAX_BATCHES];
    size_t n_batches;
    int json;
    int float16; /* vigil_float16_mode */
} bench_args;

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* "4", "1,2,4" or "1-8" (and mixes: "1-4,8") into a->batches. */
static int parse_batches(const char *s, bench_args *a) {
    a->n_batches = 0;
    char buf[256];
    if (strlen(s) >= sizeof buf) return 0;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = buf, *next; tok; tok = next) { /* not strtok: "1,,2" has an empty entry */
        next = strchr(tok, ',');
        if (next) *next++ = '\0';
        char *dash = strchr(tok, '-');
        long lo, hi;
        if (dash) *dash = '\0';
        if (!parse_long(tok, 1, 4096, &lo) || !parse_long(dash ? dash + 1 : tok, lo, 4096, &hi)) return 0;
        for (long b = lo; b <= hi; b++) {
            if (a->n_batches == BENCH_MAX_BATCHES) return 0;
            a->batches[a->n_batches++] = b;
        }
    }
    return a->n_batches > 0;
}

static int bench_parse(int argc, char **argv, bench_args *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"threads", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'},  {"iterations", required_argument, 0, 'k'},
        {"warmup", required_argument, 0, 'w'}, {"json", no_argument, 0, 'j'},
        {"batch-cap", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'},
        {"float16", required_argument, 0, 'f'},
        {0, 0, 0, 0}};
    *a = (bench_args){.batches = {1}, .n_batches = 1, .iterations = 20, .warmup = 3};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case 'm': a->model = optarg; break;
        case 't': ok = parse_long(optarg, 0, 1024, &a->threads); break;
        case 'b': ok = parse_batches(optarg, a); break;
        case 'c': ok = parse_long(optarg, 0, 1024, &a->batch_cap); break;
        case 'k': ok = parse_long(optarg, 1, 1000000, &a->iterations); break;
        case 'w': ok = parse_long(optarg, 0, 1000000, &a->warmup); break;
        case 'j': a->json = 1; break;
        case 'f': ok = vigil_float16_mode_parse(optarg, &a->float16) == VIGIL_OK; break;
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

/* weight_bytes: the packed weights of the instance the plan runs on. */
static void report(const bench_args *a, long batch, const vigil_engine *e, const vigil_plan *p, size_t weight_bytes,
                   double *ms) {
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
        printf("\", \"threads\": %d, \"batch\": %ld, \"batch_cap\": %d, \"iterations\": %ld, \"min_ms\": %.3f, "
               "\"median_ms\": %.3f, \"p90_ms\": %.3f, \"gflops\": %.2f, \"peak_activation_bytes\": %zu, "
               "\"packed_weight_bytes\": %zu, \"float16_xnnpack\": %d}\n",
               vigil_engine_threads(e), batch, vigil_engine_batch_cap(e), a->iterations, min, median, p90, gflops,
               vigil_plan_peak_activation_bytes(p), weight_bytes, vigil_engine_float16_xnnpack(e));
    } else {
        printf("model       %s\nthreads     %d\nbatch       %ld (cap %d)\niterations  %ld\n", a->model,
               vigil_engine_threads(e), batch, vigil_engine_batch_cap(e), a->iterations);
        printf("min         %.3f ms\nmedian      %.3f ms\np90         %.3f ms\n", min, median, p90);
        printf("throughput  %.2f GFLOP/s (%.3f GFLOP per run)\n", gflops, vigil_plan_flops(p) / 1e9);
        printf("activations %zu bytes peak\n", vigil_plan_peak_activation_bytes(p));
        printf("weights     %zu bytes packed, for the instance\n", weight_bytes);
    }
}

/* Compiles, warms up and times one batch size.  arena NULL: a plan of its
 * own (one batch size, as engine_bench.py measures it). */
static vigil_status bench_batch(const bench_args *a, long batch, vigil_engine *e, vigil_model *m, vigil_arena *arena,
                                double *ms, vigil_error *err) {
    vigil_plan *p = NULL;
    vigil_tensor *in = NULL;
    vigil_status st = vigil_plan_create_in(m, batch, arena, &p, err);
    if (st == VIGIL_OK && !(in = make_inputs(m, batch, err)))
        st = err->status ? err->status : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    size_t n_in = vigil_model_input_count(m);
    for (long i = 0; st == VIGIL_OK && i < a->warmup; i++)
        st = vigil_plan_run(p, in, n_in, err);
    for (long i = 0; st == VIGIL_OK && i < a->iterations; i++) {
        double t0 = clock_now_ms();
        st = vigil_plan_run(p, in, n_in, err);
        ms[i] = clock_now_ms() - t0;
    }
    if (st == VIGIL_OK) report(a, batch, e, p, arena ? vigil_arena_weight_bytes(arena) : vigil_plan_weight_bytes(p), ms);
    for (size_t i = 0; in && i < n_in; i++)
        vigil_free(in[i].data);
    vigil_free(in);
    vigil_plan_destroy(p); /* the arena keeps its operators for the next batch size */
    return st;
}

static int bench_run(const bench_args *a) {
    vigil_error err = {0};
    vigil_engine *e = NULL;
    vigil_model *m = NULL;
    vigil_arena *arena = NULL;
    double *ms = vigil_calloc((size_t)a->iterations, sizeof *ms);
    vigil_engine_options opts = {.threads = (int)a->threads, .batch_cap = (int)a->batch_cap, .float16 = a->float16};
    vigil_status st = ms ? VIGIL_OK : vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (st == VIGIL_OK) st = vigil_engine_create(&opts, &e, &err);
    if (st == VIGIL_OK) st = vigil_model_load(e, a->model, &m, &err);
    if (st == VIGIL_OK && a->n_batches > 1) st = vigil_arena_create(&arena, &err);
    for (size_t i = 0; st == VIGIL_OK && i < a->n_batches; i++) {
        if (i > 0 && !a->json) printf("\n");
        st = bench_batch(a, a->batches[i], e, m, arena, ms, &err);
    }
    if (st != VIGIL_OK) fprintf(stderr, "vigil bench: %s\n", err.message);
    vigil_free(ms);
    vigil_arena_destroy(arena);
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
