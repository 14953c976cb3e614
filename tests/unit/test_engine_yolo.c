/*
 * test_engine_yolo.c - the engine on the real shared YOLO models: parity with
 * ONNX Runtime's reference outputs on bus.jpg at batch 1, batch 4 through the
 * fixed-batch model (every item equal to the batch-1 run) and through the
 * symbolic-batch model, and resident memory after loading.  Skips when
 * ../shared is absent.
 */
#include "testing.h"

#include "core/alloc.h"
#include "core/npy.h"
#include "vigil/engine.h"

/* Max |a-b| relative check as the brief states: within 1e-4 relative, or
 * 1e-3 absolute where the reference is below 0.1. */
static int compare(const float *got, const float *want, size_t n, double *worst_rel, double *worst_abs) {
    int bad = 0;
    *worst_rel = *worst_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double mag = fabs((double)want[i]);
        if (mag < 0.1) {
            if (d > *worst_abs) *worst_abs = d;
            if (d > 1e-3) bad++;
        } else {
            if (d / mag > *worst_rel) *worst_rel = d / mag;
            if (d / mag > 1e-4) bad++;
        }
    }
    return bad;
}

static vigil_engine *engine(int threads) {
    vigil_engine_options o = {.threads = threads};
    vigil_engine *e = NULL;
    vigil_error err;
    vigil_status st = vigil_engine_create(&o, &e, &err);
    if (st != VIGIL_OK) fprintf(stderr, "engine: %s\n", err.message);
    return e;
}

static vigil_tensor as_tensor(const npy_array *a) {
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = a->ndim, .data = a->data};
    for (int i = 0; i < a->ndim; i++)
        t.dims[i] = a->dims[i];
    return t;
}

static void parity(const char *model_name) {
    char mpath[4096], ipath[4096], opath[4096], rel[256];
    snprintf(rel, sizeof rel, "models/%s.onnx", model_name);
    if (!testing_shared_path(mpath, sizeof mpath, rel)) SKIP("shared models absent");
    snprintf(rel, sizeof rel, "reference/%s__bus__input.npy", model_name);
    if (!testing_shared_path(ipath, sizeof ipath, rel)) SKIP("shared reference absent");
    snprintf(rel, sizeof rel, "reference/%s__bus__output0.npy", model_name);
    if (!testing_shared_path(opath, sizeof opath, rel)) SKIP("shared reference absent");
    vigil_error err;
    npy_array in = {0}, want = {0};
    CHECK(npy_read(ipath, &in, &err) == VIGIL_OK);
    CHECK(npy_read(opath, &want, &err) == VIGIL_OK);
    vigil_engine *e = engine(2);
    vigil_model *m = NULL;
    vigil_status st = vigil_model_load(e, mpath, &m, &err);
    if (st != VIGIL_OK) fprintf(stderr, "load: %s\n", err.message);
    CHECK(st == VIGIL_OK);
    vigil_plan *p = NULL;
    if (m) {
        st = vigil_plan_create(m, 1, &p, &err);
        if (st != VIGIL_OK) fprintf(stderr, "plan: %s\n", err.message);
        CHECK(st == VIGIL_OK);
    }
    if (p && in.data && want.data) {
        vigil_tensor t = as_tensor(&in);
        st = vigil_plan_run(p, &t, 1, &err);
        if (st != VIGIL_OK) fprintf(stderr, "run: %s\n", err.message);
        CHECK(st == VIGIL_OK);
        const vigil_tensor *o = vigil_plan_output(p, 0);
        CHECK(o != NULL);
        CHECK_EQ_INT(o->ndim, want.ndim);
        for (int d = 0; d < want.ndim && d < o->ndim; d++)
            CHECK_EQ_INT(o->dims[d], want.dims[d]);
        double rel_err, abs_err;
        int bad = compare(o->data, want.data, want.count, &rel_err, &abs_err);
        fprintf(stderr, "  %s batch 1: %d of %zu outside tolerance, worst rel %.3g (|ref|>=0.1), worst abs %.3g\n",
                model_name, bad, want.count, rel_err, abs_err);
        CHECK_EQ_INT(bad, 0);
        fprintf(stderr, "  peak activation bytes %zu, %.2f GFLOP per run\n", vigil_plan_peak_activation_bytes(p),
                vigil_plan_flops(p) / 1e9);
    }
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    npy_free(&in);
    npy_free(&want);
}

static void test_yolov8n_parity(void) {
    parity("yolov8n");
}
static void test_yolov5n_parity(void) {
    parity("yolov5n");
}

/* Batch 4 of distinct images: each item must equal the batch-1 run. */
static void batch4(const char *file) {
    char mpath[4096], ipath[4096], rel[256];
    snprintf(rel, sizeof rel, "models/%s", file);
    if (!testing_shared_path(mpath, sizeof mpath, rel)) SKIP("shared models absent");
    if (!testing_shared_path(ipath, sizeof ipath, "reference/yolov8n__bus__input.npy")) SKIP("reference absent");
    vigil_error err;
    npy_array in = {0};
    CHECK(npy_read(ipath, &in, &err) == VIGIL_OK);
    if (!in.data) return;
    size_t item = in.count;
    float *batch = vigil_malloc(4 * item * sizeof(float));
    CHECK(batch != NULL);
    if (!batch) return;
    /* item b: the image scaled and shifted so that the items differ */
    for (int b = 0; b < 4; b++)
        for (size_t i = 0; i < item; i++)
            batch[b * item + i] = ((const float *)in.data)[(i + (size_t)b * 7919) % item];
    vigil_engine *e = engine(2);
    vigil_model *m = NULL;
    vigil_plan *p1 = NULL, *p4 = NULL;
    CHECK(vigil_model_load(e, mpath, &m, &err) == VIGIL_OK);
    if (m) CHECK(vigil_plan_create(m, 1, &p1, &err) == VIGIL_OK);
    if (m) {
        vigil_status st = vigil_plan_create(m, 4, &p4, &err);
        if (st != VIGIL_OK) fprintf(stderr, "plan 4: %s\n", err.message);
        CHECK(st == VIGIL_OK);
    }
    if (p1 && p4) {
        vigil_tensor t4 = as_tensor(&in);
        t4.dims[0] = 4;
        t4.data = batch;
        CHECK(vigil_plan_run(p4, &t4, 1, &err) == VIGIL_OK);
        const vigil_tensor *o4 = vigil_plan_output(p4, 0);
        CHECK_EQ_INT(o4->dims[0], 4);
        size_t per = 1;
        for (int d = 1; d < o4->ndim; d++)
            per *= (size_t)o4->dims[d];
        double worst = 0;
        for (int b = 0; b < 4; b++) {
            vigil_tensor t1 = as_tensor(&in);
            t1.data = batch + (size_t)b * item;
            CHECK(vigil_plan_run(p1, &t1, 1, &err) == VIGIL_OK);
            const float *o1 = vigil_plan_output(p1, 0)->data;
            const float *ob = (const float *)o4->data + (size_t)b * per;
            for (size_t i = 0; i < per; i++) {
                double d = fabs((double)o1[i] - (double)ob[i]);
                double tol = 1e-3 + 1e-4 * fabs((double)o1[i]);
                if (d / tol > worst) worst = d / tol;
            }
        }
        fprintf(stderr, "  %s batch 4 vs batch 1: worst error %.3g of tolerance\n", file, worst);
        CHECK(worst <= 1.0);
        CHECK(vigil_plan_batch(p4) == 4);
    }
    vigil_plan_destroy(p1);
    vigil_plan_destroy(p4);
    vigil_model_free(m);
    vigil_engine_destroy(e);
    vigil_free(batch);
    npy_free(&in);
}

static void test_yolov8n_fixed_batch4(void) {
    batch4("yolov8n.onnx");
}
static void test_yolov8n_dynbatch4(void) {
    batch4("yolov8n_dynbatch.onnx");
}

static long vm_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static void test_resident_memory(void) {
#ifdef __SANITIZE_ADDRESS__
    SKIP("resident memory is meaningless under AddressSanitizer");
#endif
    char mpath[4096];
    if (!testing_shared_path(mpath, sizeof mpath, "models/yolov8n.onnx")) SKIP("shared models absent");
    struct stat st;
    CHECK(stat(mpath, &st) == 0);
    vigil_error err;
    vigil_engine *e = engine(1);
    long before = vm_rss_kb();
    vigil_model *m = NULL;
    CHECK(vigil_model_load(e, mpath, &m, &err) == VIGIL_OK);
    long after_load = vm_rss_kb();
    vigil_plan *p = NULL;
    if (m) CHECK(vigil_plan_create(m, 1, &p, &err) == VIGIL_OK);
    size_t peak = p ? vigil_plan_peak_activation_bytes(p) : 0;
    long after_plan = vm_rss_kb();
    /* After loading (the brief's bound): the file once (mapped) plus slack. */
    double limit_kb = ((double)st.st_size * 1.5 + (double)peak + 30.0 * 1024 * 1024) / 1024.0;
    /* After compiling, XNNPACK's packed copy of the weights is resident too. */
    double plan_limit_kb = ((double)st.st_size * 2.5 + (double)peak + 30.0 * 1024 * 1024) / 1024.0;
    fprintf(stderr,
            "  VmRSS: %ld kB before load, %ld kB after load (limit %.0f), %ld kB after plan (limit %.0f); file %lld "
            "kB, peak activations %zu kB\n",
            before, after_load, limit_kb, after_plan, plan_limit_kb, (long long)st.st_size / 1024, peak / 1024);
    CHECK(after_load > 0 && (double)after_load <= limit_kb);
    CHECK(after_plan > 0 && (double)after_plan <= plan_limit_kb);
    vigil_plan_destroy(p);
    vigil_model_free(m);
    vigil_engine_destroy(e);
}

int main(void) {
    RUN(test_resident_memory);
    RUN(test_yolov8n_parity);
    RUN(test_yolov5n_parity);
    RUN(test_yolov8n_fixed_batch4);
    RUN(test_yolov8n_dynbatch4);
    return testing_report();
}
