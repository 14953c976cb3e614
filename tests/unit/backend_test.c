/*
 * backend_test.c - a backend for tests only: it computes something simple
 * from its input and logs every call, so that a test can show detection
 * reaching a model through the backend interface and nothing else.
 *
 * Linked only into the test build of the daemon (vigil-test, see
 * tests/CMakeLists.txt), where it fills backend.c's weak `backend_test`
 * slot; the real `vigil` binary does not contain it, so `backend: test` in
 * a config.yaml cannot select it there by accident.
 *
 * A version directory holds model.test: optional text "size S classes C"
 * (defaults 64 and 2).  The model takes one float32 image [N, 3, S, S] and
 * answers a YOLOv8-shaped [N, 4 + C, A] (A the anchors of S's stride
 * 8/16/32 grid), all zero but two anchors: anchor 0, a box centred at
 * (S/4, S/4) of S/4 x S/4, class 0 with score = the item's mean input value;
 * anchor 1, a box centred at (5S/8, 5S/8) of S/4 x S/4... class 1 with score
 * 1 - mean.  So a bright image finds class 0 and a dark one class 1, each
 * item of a batch by its own pixels.  Every run is logged
 * ("test backend: run batch N").
 */
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "core/alloc.h"
#include "core/log.h"

struct backend_device {
    int runs;
};

struct backend_model {
    backend_device *device;
    int size, classes, anchors;
    vigil_tensor_info input, output;
    vigil_tensor out;
    float *data;
    size_t data_items; /* batch items data holds */
    char names[256];
};

static vigil_status tb_open(const backend_options *options, backend_device **out, vigil_error *err) {
    (void)options;
    *out = vigil_calloc(1, sizeof **out);
    return *out ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "test backend: out of memory");
}

static void tb_close(backend_device *dev) { vigil_free(dev); }

static void tb_describe(const backend_device *dev, char *out, size_t size) {
    snprintf(out, size, "test backend (tests only), %d runs", dev->runs);
}

static void tb_unload(backend_model *m) {
    if (!m) return;
    vigil_free(m->data);
    vigil_free(m);
}

static vigil_status tb_load(backend_device *dev, const char *path, backend_model **out, backend_io *io,
                            vigil_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "test backend: cannot open %s", path);
    int size = 64, classes = 2;
    if (fscanf(f, " size %d classes %d", &size, &classes) < 0) size = 64, classes = 2;
    fclose(f);
    if (size < 32 || size > 1024 || size % 32 || classes < 2 || classes > 80)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "test backend: size %d, classes %d", size, classes);
    backend_model *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "test backend: out of memory");
    m->device = dev;
    m->size = size, m->classes = classes;
    m->anchors = (size / 8) * (size / 8) + (size / 16) * (size / 16) + (size / 32) * (size / 32);
    m->input = (vigil_tensor_info){.name = "images", .dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {-1, 3, size, size}};
    m->output = (vigil_tensor_info){
        .name = "output0", .dtype = VIGIL_DTYPE_F32, .ndim = 3, .dims = {-1, 4 + classes, m->anchors}};
    int at = snprintf(m->names, sizeof m->names, "{");
    for (int c = 0; c < classes && at < (int)sizeof m->names; c++)
        at += snprintf(m->names + at, sizeof m->names - (size_t)at, "%s%d: 'thing%d'", c ? ", " : "", c, c);
    if (at < (int)sizeof m->names) snprintf(m->names + at, sizeof m->names - (size_t)at, "}");
    *io = (backend_io){.n_inputs = 1, .n_outputs = 1, .inputs = {&m->input}, .outputs = {&m->output}};
    LOG_I("test backend: loaded %s (size %d, %d classes)", path, size, classes);
    *out = m;
    return VIGIL_OK;
}

static vigil_status tb_run(backend_model *m, int64_t batch, const vigil_tensor *inputs, size_t n_inputs,
                           const vigil_tensor **outputs, vigil_error *err) {
    const vigil_tensor *in = inputs;
    if (n_inputs != 1 || batch < 1 || in->dtype != VIGIL_DTYPE_F32 || in->ndim != 4 || in->dims[0] != batch ||
        in->dims[1] != 3 || in->dims[2] != m->size || in->dims[3] != m->size)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "test backend: input is not [%lld, 3, %d, %d]",
                               (long long)batch, m->size, m->size);
    size_t per_item = (size_t)(4 + m->classes) * (size_t)m->anchors;
    if ((size_t)batch > m->data_items) {
        float *grown = vigil_realloc(m->data, (size_t)batch * per_item * sizeof *grown);
        if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "test backend: out of memory");
        m->data = grown;
        m->data_items = (size_t)batch;
    }
    size_t pixels = (size_t)3 * m->size * m->size;
    const float *x = in->data;
    float s = (float)m->size, A = (float)m->anchors;
    (void)A;
    for (int64_t b = 0; b < batch; b++) {
        double sum = 0;
        for (size_t i = 0; i < pixels; i++) sum += x[(size_t)b * pixels + i];
        float mean = (float)(sum / (double)pixels);
        float *o = m->data + (size_t)b * per_item;
        memset(o, 0, per_item * sizeof *o);
        size_t a = (size_t)m->anchors;
        /* rows: cx, cy, w, h, class scores; columns: anchors */
        o[0 * a + 0] = s / 4, o[1 * a + 0] = s / 4, o[2 * a + 0] = s / 4, o[3 * a + 0] = s / 4;
        o[4 * a + 0] = mean;
        o[0 * a + 1] = 5 * s / 8, o[1 * a + 1] = 5 * s / 8, o[2 * a + 1] = s / 4, o[3 * a + 1] = s / 4;
        o[5 * a + 1] = 1 - mean;
    }
    m->out = (vigil_tensor){.dtype = VIGIL_DTYPE_F32, .ndim = 3, .dims = {batch, 4 + m->classes, m->anchors}, .data = m->data};
    outputs[0] = &m->out;
    m->device->runs++;
    LOG_I("test backend: run batch %lld", (long long)batch);
    return VIGIL_OK;
}

static const char *tb_metadata(const backend_model *m, const char *key) {
    if (strcmp(key, "names") == 0) return m->names;
    if (strcmp(key, "task") == 0) return "detect";
    return NULL;
}

const backend_ops backend_test = {
    .name = "test",
    .model_file = "model.test",
    .open = tb_open,
    .close = tb_close,
    .describe = tb_describe,
    .load = tb_load,
    .unload = tb_unload,
    .run = tb_run,
    .metadata = tb_metadata,
};
