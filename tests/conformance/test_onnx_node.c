/*
 * test_onnx_node.c - ONNX's backend node tests against vigil's engine.
 *
 * Walks /usr/share/libonnx-testdata/data/node/<test>/ (or $VIGIL_ONNX_NODE_DIR):
 * a test is "claimed" when every operator in its model is in the engine's op
 * table.  A claimed test whose model the engine refuses at load or compile
 * with VIGIL_ERR_UNSUPPORTED (an attribute, type or opset it does not do)
 * counts as unsupported - an honest refusal.  Every other claimed test must
 * reproduce output_N.pb from input_N.pb for each test_data_set_* (floats
 * within rtol 1e-3 / atol 1e-5 like ONNX's runner, NaN matching NaN; integers
 * and booleans exactly).  Prints `claimed N / passed N / unsupported N`, lists
 * failures, and fails when any claimed test fails.
 */
#include "testing.h"

#include <dirent.h>
#include <stdarg.h>

#include "core/alloc.h"
#include "engine/engine_internal.h"
#include "engine/onnx.h"
#include "vigil/engine.h"

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"
#define MAX_IO 16

/* snprintf that reports truncation (paths here are short; a long one is a test failure). */
static int fmt(char *buf, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t size, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, size, format, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

static int read_file(const char *path, void **buf, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = vigil_malloc(n > 0 ? (size_t)n : 1);
    int ok = *buf && n >= 0 && fread(*buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    *size = (size_t)n;
    if (!ok) vigil_free(*buf);
    return ok;
}

static onnx_tensor *load_pb(const char *path, vigil_error *err) {
    void *buf;
    size_t size;
    if (!read_file(path, &buf, &size)) return NULL;
    onnx_tensor *t = NULL;
    if (onnx_tensor_decode(buf, size, &t, err) != VIGIL_OK) t = NULL;
    vigil_free(buf);
    return t;
}

/* Every node's operator is in the op table. */
static int claimed(const char *model_path) {
    onnx_model *m = NULL;
    vigil_error err;
    if (onnx_load_file(model_path, &m, &err) != VIGIL_OK) return 0;
    int ok = 1;
    for (size_t i = 0; i < m->n_nodes && ok; i++)
        ok = ops_find(m->nodes[i].domain, m->nodes[i].op_type) != NULL;
    onnx_free(m);
    return ok;
}

static int same_value(vigil_dtype dt, const void *a, const void *b, size_t i) {
    switch (dt) {
    case VIGIL_DTYPE_F32: {
        double x = ((const float *)a)[i], y = ((const float *)b)[i];
        if (isnan(x) || isnan(y)) return isnan(x) && isnan(y);
        if (isinf(x) || isinf(y)) return x == y;
        return fabs(x - y) <= 1e-5 + 1e-3 * fabs(y);
    }
    case VIGIL_DTYPE_F64: {
        double x = ((const double *)a)[i], y = ((const double *)b)[i];
        if (isnan(x) || isnan(y)) return isnan(x) && isnan(y);
        if (isinf(x) || isinf(y)) return x == y;
        return fabs(x - y) <= 1e-5 + 1e-3 * fabs(y);
    }
    default: {
        size_t e = vigil_dtype_size(dt);
        return memcmp((const char *)a + i * e, (const char *)b + i * e, e) == 0;
    }
    }
}

/* Runs one data set; returns 1 when every output matches (reason in why otherwise). */
static int run_data_set(vigil_plan *plan, const vigil_model *model, const char *dir, char *why, size_t why_size) {
    onnx_tensor *ins[MAX_IO] = {0}, *outs[MAX_IO] = {0};
    vigil_tensor tensors[MAX_IO];
    vigil_error err;
    char path[4096];
    size_t n_in = vigil_model_input_count(model), n_out = vigil_model_output_count(model);
    int ok = n_in <= MAX_IO && n_out <= MAX_IO;
    if (!ok) fmt(why, why_size, "too many inputs/outputs");
    for (size_t i = 0; ok && i < n_in; i++) {
        fmt(path, sizeof path, "%s/input_%zu.pb", dir, i);
        ins[i] = load_pb(path, &err);
        vigil_tensor *t = &tensors[i];
        if (!ins[i] || dtype_from_onnx(ins[i]->dtype, &t->dtype) != VIGIL_OK) {
            fmt(why, why_size, "cannot read %s", path);
            ok = 0;
            break;
        }
        t->ndim = ins[i]->ndim;
        memcpy(t->dims, ins[i]->dims, sizeof t->dims);
        t->data = (void *)ins[i]->data;
    }
    if (ok && vigil_plan_run(plan, tensors, n_in, &err) != VIGIL_OK) {
        fmt(why, why_size, "run: %s", err.message);
        ok = 0;
    }
    for (size_t i = 0; ok && i < n_out; i++) {
        fmt(path, sizeof path, "%s/output_%zu.pb", dir, i);
        outs[i] = load_pb(path, &err);
        const vigil_tensor *got = vigil_plan_output(plan, i);
        vigil_dtype want_dt;
        if (!outs[i] || dtype_from_onnx(outs[i]->dtype, &want_dt) != VIGIL_OK) {
            fmt(why, why_size, "cannot read %s", path);
            ok = 0;
            break;
        }
        int shape_ok = got->dtype == want_dt && got->ndim == outs[i]->ndim;
        for (int d = 0; shape_ok && d < got->ndim; d++)
            shape_ok = got->dims[d] == outs[i]->dims[d];
        if (!shape_ok) {
            fmt(why, why_size, "output %zu: type or shape differs (%s rank %d vs %s rank %d)", i,
                vigil_dtype_name(got->dtype), got->ndim, vigil_dtype_name(want_dt), outs[i]->ndim);
            ok = 0;
            break;
        }
        for (size_t k = 0; k < outs[i]->count; k++)
            if (!same_value(want_dt, got->data, outs[i]->data, k)) {
                fmt(why, why_size, "output %zu: element %zu differs", i, k);
                ok = 0;
                break;
            }
    }
    for (size_t i = 0; i < MAX_IO; i++) {
        if (ins[i]) onnx_tensor_free(ins[i]);
        if (outs[i]) onnx_tensor_free(outs[i]);
    }
    return ok;
}

typedef enum outcome { OUT_PASS, OUT_FAIL, OUT_UNSUPPORTED } outcome;

static outcome run_test(vigil_engine *e, const char *test_dir, char *why, size_t why_size) {
    char path[4096];
    fmt(path, sizeof path, "%s/model.onnx", test_dir);
    vigil_error err;
    vigil_model *m = NULL;
    vigil_plan *p = NULL;
    vigil_status st = vigil_model_load(e, path, &m, &err);
    if (st == VIGIL_OK) {
        int64_t batch = vigil_model_native_batch(m);
        st = vigil_plan_create(m, batch > 0 ? batch : 1, &p, &err);
    }
    if (st != VIGIL_OK) {
        vigil_model_free(m);
        fmt(why, why_size, "%s", err.message);
        return st == VIGIL_ERR_UNSUPPORTED ? OUT_UNSUPPORTED : OUT_FAIL;
    }
    outcome result = OUT_PASS;
    DIR *d = opendir(test_dir);
    struct dirent *ent;
    int sets = 0;
    while (d && (ent = readdir(d)) && result == OUT_PASS) {
        if (strncmp(ent->d_name, "test_data_set_", 14) != 0) continue;
        fmt(path, sizeof path, "%s/%s", test_dir, ent->d_name);
        sets++;
        if (!run_data_set(p, m, path, why, why_size)) result = OUT_FAIL;
    }
    if (d) closedir(d);
    if (sets == 0 && result == OUT_PASS) {
        fmt(why, why_size, "no data sets");
        result = OUT_FAIL;
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    return result;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_node_suite(void) {
    const char *root = getenv("VIGIL_ONNX_NODE_DIR");
    if (!root) root = NODE_DIR;
    DIR *d = opendir(root);
    if (!d) SKIP("ONNX node test data absent (Debian package libonnx-testdata)");
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (strncmp(ent->d_name, "test_", 5) != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = vigil_realloc(names, cap * sizeof *names);
        }
        names[n++] = vigil_strdup(ent->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    vigil_engine_options o = {.threads = 1};
    vigil_engine *e = NULL;
    vigil_error err;
    CHECK(vigil_engine_create(&o, &e, &err) == VIGIL_OK);
    int n_claimed = 0, n_passed = 0, n_unsupported = 0, n_failed = 0;
    const char *verbose = getenv("VIGIL_CONFORMANCE_VERBOSE");
    for (size_t i = 0; i < n && e; i++) {
        char dir[4096], model[4200], why[600] = "";
        fmt(dir, sizeof dir, "%s/%s", root, names[i]);
        fmt(model, sizeof model, "%s/model.onnx", dir);
        if (!claimed(model)) continue;
        n_claimed++;
        outcome r = run_test(e, dir, why, sizeof why);
        if (r == OUT_PASS)
            n_passed++;
        else if (r == OUT_UNSUPPORTED)
            n_unsupported++;
        else
            n_failed++;
        if (r == OUT_FAIL)
            fprintf(stderr, "  FAIL %s: %s\n", names[i], why);
        else if (r == OUT_UNSUPPORTED && verbose)
            fprintf(stderr, "  unsupported %s: %s\n", names[i], why);
    }
    fprintf(stderr, "claimed %d / passed %d / unsupported %d (failed %d, tests in suite %zu)\n", n_claimed, n_passed,
            n_unsupported, n_failed, n);
    CHECK_EQ_INT(n_failed, 0);
    CHECK(n_passed > 0);
    vigil_engine_destroy(e);
    for (size_t i = 0; i < n; i++)
        vigil_free(names[i]);
    vigil_free(names);
}

int main(void) {
    RUN(test_node_suite);
    return testing_report();
}
