/*
 * cmd_infer.c - `vigil infer`: run an ONNX model on .npy inputs with vigil's
 * CPU engine and write every output as <out>/<output name>.npy.
 *
 * Inputs are matched to the model's inputs in order; the batch is the leading
 * dimension of the first input, so a fixed batch-1 model runs any batch.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/npy.h"
#include "vigil/engine.h"

static void infer_usage(FILE *out) {
    fprintf(out, "usage: vigil infer --model M.onnx [--threads N] [--portable-kernels] INPUT.npy... --out DIR\n"
                 "\n"
                 "Runs the model on the inputs (in the model's input order) and writes each\n"
                 "output to DIR/<output name>.npy (characters other than [A-Za-z0-9_.-] become '_').\n"
                 "The batch is taken from the first input's leading dimension.\n"
                 "\n"
                 "options:\n"
                 "  --model PATH    ONNX model file (required)\n"
                 "  --threads N     worker threads (default: all CPUs)\n"
                 "  --portable-kernels  XNNPACK and reference kernels only, never the engine's\n"
                 "                  AVX-512 ones (what a CPU without them runs)\n"
                 "  --float16 MODE  a float16 model's arithmetic: auto (default), fp32, xnnpack\n"
                 "                  (XNNPACK's f16 operators; auto: where the CPU has fp16 arithmetic)\n"
                 "  --out DIR       output directory, created if missing (required)\n"
                 "  -h, --help      show this help\n");
}

static int npy_to_vigil(npy_dtype d, vigil_dtype *out) {
    switch (d) {
    case NPY_F32: *out = VIGIL_DTYPE_F32; return 1;
    case NPY_F64: *out = VIGIL_DTYPE_F64; return 1;
    case NPY_I64: *out = VIGIL_DTYPE_I64; return 1;
    case NPY_I32: *out = VIGIL_DTYPE_I32; return 1;
    case NPY_U8: *out = VIGIL_DTYPE_U8; return 1;
    case NPY_BOOL: *out = VIGIL_DTYPE_BOOL; return 1;
    case NPY_F16: *out = VIGIL_DTYPE_F16; return 1;
    case NPY_I8: *out = VIGIL_DTYPE_I8; return 1;
    }
    return 0;
}

static int vigil_to_npy(vigil_dtype d, npy_dtype *out) {
    switch (d) {
    case VIGIL_DTYPE_F32: *out = NPY_F32; return 1;
    case VIGIL_DTYPE_F64: *out = NPY_F64; return 1;
    case VIGIL_DTYPE_I64: *out = NPY_I64; return 1;
    case VIGIL_DTYPE_I32: *out = NPY_I32; return 1;
    case VIGIL_DTYPE_U8: *out = NPY_U8; return 1;
    case VIGIL_DTYPE_BOOL: *out = NPY_BOOL; return 1;
    case VIGIL_DTYPE_F16: *out = NPY_F16; return 1;
    case VIGIL_DTYPE_I8: *out = NPY_I8; return 1;
    default: return 0;
    }
}

/* DIR/<sanitised name>.npy */
static void output_path(char *buf, size_t size, const char *dir, const char *name) {
    int n = snprintf(buf, size, "%s/", dir);
    size_t k = n > 0 ? (size_t)n : 0;
    for (const char *c = name; *c && k + 5 < size; c++) {
        int ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                 *c == '.' || *c == '-';
        buf[k++] = ok ? *c : '_';
    }
    snprintf(buf + k, size - k, ".npy");
}

typedef struct infer_args {
    const char *model, *out;
    int threads;
    int portable_kernels;
    int float16; /* vigil_float16_mode */
    char **inputs;
    int n_inputs;
} infer_args;

/* 0 ok, 1 help printed, 2 usage error */
static int infer_parse(int argc, char **argv, infer_args *a) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 't'},
                                         {"out", required_argument, 0, 'o'},
                                         {"portable-kernels", no_argument, 0, 'p'},
                                         {"float16", required_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1 || optind < argc) {
        if (c == -1) { /* a positional input: collect it and continue parsing */
            argv[a->n_inputs++] = argv[optind++];
            continue;
        }
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'o': a->out = optarg; break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 1024) {
                fprintf(stderr, "vigil infer: --threads must be 0..1024\n");
                return 2;
            }
            a->threads = (int)v;
            break;
        }
        case 'p': a->portable_kernels = 1; break;
        case 'f':
            if (vigil_float16_mode_parse(optarg, &a->float16) != VIGIL_OK) {
                fprintf(stderr, "vigil infer: --float16 must be auto, fp32 or xnnpack\n");
                return 2;
            }
            break;
        case 'h': infer_usage(stdout); return 1;
        default: fprintf(stderr, "vigil infer: unknown or incomplete option '%s'\n", argv[optind - 1]); return 2;
        }
    }
    a->inputs = argv;
    if (!a->model || !a->out || a->n_inputs == 0) {
        fprintf(stderr, "vigil infer: --model, --out and at least one input are required (see --help)\n");
        return 2;
    }
    return 0;
}

static int infer_run(const infer_args *a) {
    vigil_error err = {0};
    vigil_engine *engine = NULL;
    vigil_model *model = NULL;
    vigil_plan *plan = NULL;
    npy_array *arrays = vigil_calloc((size_t)a->n_inputs, sizeof *arrays);
    vigil_tensor *tensors = vigil_calloc((size_t)a->n_inputs, sizeof *tensors);
    int rc = 1;
    vigil_engine_options opts = {.threads = a->threads, .portable_kernels = a->portable_kernels, .float16 = a->float16};
    vigil_status st = arrays && tensors ? VIGIL_OK : vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "out of memory");
    if (st == VIGIL_OK) st = vigil_engine_create(&opts, &engine, &err);
    if (st == VIGIL_OK) st = vigil_model_load(engine, a->model, &model, &err);
    if (st == VIGIL_OK && (size_t)a->n_inputs != vigil_model_input_count(model))
        st = vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "the model has %zu inputs, %d given",
                             vigil_model_input_count(model), a->n_inputs);
    for (int i = 0; i < a->n_inputs && st == VIGIL_OK; i++) {
        st = npy_read(a->inputs[i], &arrays[i], &err);
        if (st != VIGIL_OK) {
            vigil_error_prefix(&err, "%s", a->inputs[i]);
            break;
        }
        vigil_tensor *t = &tensors[i];
        if (!npy_to_vigil(arrays[i].dtype, &t->dtype))
            st = vigil_error_set(&err, VIGIL_ERR_UNSUPPORTED, "%s: unsupported dtype", a->inputs[i]);
        t->ndim = arrays[i].ndim;
        for (int d = 0; d < t->ndim; d++)
            t->dims[d] = arrays[i].dims[d];
        t->data = arrays[i].data;
    }
    int64_t batch = a->n_inputs && tensors[0].ndim > 0 ? tensors[0].dims[0] : 1;
    if (st == VIGIL_OK && batch < 1) st = vigil_error_set(&err, VIGIL_ERR_INVALID_ARGUMENT, "empty batch");
    if (st == VIGIL_OK) st = vigil_plan_create(model, batch, &plan, &err);
    if (st == VIGIL_OK) st = vigil_plan_run(plan, tensors, (size_t)a->n_inputs, &err);
    if (st == VIGIL_OK && mkdir(a->out, 0777) != 0 && errno != EEXIST)
        st = vigil_error_set(&err, VIGIL_ERR_IO, "cannot create %s: %s", a->out, strerror(errno));
    for (size_t i = 0; st == VIGIL_OK && i < vigil_model_output_count(model); i++) {
        const vigil_tensor *o = vigil_plan_output(plan, i);
        char path[4096];
        npy_dtype nd;
        output_path(path, sizeof path, a->out, vigil_model_output(model, i)->name);
        if (!vigil_to_npy(o->dtype, &nd))
            st = vigil_error_set(&err, VIGIL_ERR_UNSUPPORTED, "output %zu: %s cannot be written as .npy", i,
                                 vigil_dtype_name(o->dtype));
        else
            st = npy_write(path, nd, o->ndim, o->dims, o->data, &err);
    }
    if (st == VIGIL_OK)
        rc = 0;
    else
        fprintf(stderr, "vigil infer: %s\n", err.message);
    vigil_plan_destroy(plan);
    vigil_model_free(model);
    vigil_engine_destroy(engine);
    for (int i = 0; arrays && i < a->n_inputs; i++)
        npy_free(&arrays[i]);
    vigil_free(arrays);
    vigil_free(tensors);
    return rc;
}

int cmd_infer(int argc, char **argv) {
    infer_args a;
    int r = infer_parse(argc, argv, &a);
    if (r == 1) return 0;
    if (r == 2) return 2;
    return infer_run(&a);
}
