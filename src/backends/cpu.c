/*
 * cpu.c - the CPU backend: vigil's own ONNX engine behind the backend vtable.
 *
 * The device owns one engine, and with it the one kernel thread pool that
 * every model and instance shares (pthreadpool runs one parallel operator at
 * a time, so concurrent instances interleave operators instead of
 * oversubscribing the cores).  Each compiled model owns the loaded ONNX
 * model and one plan per batch size it has been asked to run, compiled on
 * first use and kept (at most CPU_PLAN_SLOTS; the least recently used is
 * dropped beyond that).  Its plans run one at a time, so they share one
 * vigil_arena: activations sized for the largest compiled graph (at most
 * the batch cap below), one buffer for the outputs of the largest batch, and
 * one packed copy of the weights (XNNPACK operators created once and set up
 * again for each batch size), so memory does not grow with the number of
 * batch sizes.  This cache is the only one: detection runs its
 * batches through cpu_run like raw inference.  Each compile is logged with the instance's
 * activation and packed-weight bytes (bench/memory_bench.py reads them).
 *
 * Plans are compiled for at most the engine's batch cap (the thread count,
 * at least 2): a larger batch runs as runs of the cap's plan on slices, so
 * activations follow the cap, not max_batch_size (engine.h, batch_cap).
 */
#include <stdio.h>
#include <unistd.h>

#include "backends/backend.h"
#include "core/alloc.h"
#include "core/log.h"
#include "vigil/engine.h"

#define CPU_PLAN_SLOTS 8

struct backend_device {
    int cores;
    vigil_engine *engine; /* shared by every model on the device */
};

typedef struct cpu_plan_slot {
    vigil_plan *plan;
    int64_t batch;
    uint64_t last_used;
} cpu_plan_slot;

struct backend_model {
    vigil_model *model;
    char *path;         /* the model file, for the log */
    vigil_arena *arena; /* shared by the plans below */
    cpu_plan_slot slots[CPU_PLAN_SLOTS];
    uint64_t runs;
};

static void cpu_close(backend_device *dev) {
    if (!dev) return;
    vigil_engine_destroy(dev->engine);
    vigil_free(dev);
}

static vigil_status cpu_open(const backend_options *options, backend_device **out, vigil_error *err) {
    backend_device *dev = vigil_calloc(1, sizeof *dev);
    if (!dev) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cpu backend: out of memory");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    dev->cores = n > 0 ? (int)n : 1;
    int threads = options ? options->threads : 0;
    vigil_engine_options eo = {.threads = threads > 0 ? threads : dev->cores,
                               .batch_cap = options ? options->batch_cap : 0,
                               .float16 = options ? options->float16 : 0};
    vigil_status st = vigil_engine_create(&eo, &dev->engine, err);
    if (st) {
        cpu_close(dev);
        return st;
    }
    *out = dev;
    return VIGIL_OK;
}

static void cpu_describe(const backend_device *dev, char *out, size_t size) {
    snprintf(out, size, "vigil ONNX engine (XNNPACK kernels), %d cores, %d compute threads shared by all models",
             dev->cores, vigil_engine_threads(dev->engine));
}

static void cpu_unload(backend_model *m) {
    if (!m) return;
    for (int i = 0; i < CPU_PLAN_SLOTS; i++) vigil_plan_destroy(m->slots[i].plan);
    vigil_arena_destroy(m->arena);
    vigil_model_free(m->model);
    vigil_free(m->path);
    vigil_free(m);
}

static vigil_status cpu_load(backend_device *dev, const char *path, backend_model **out, backend_io *io,
                             vigil_error *err) {
    backend_model *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cpu backend: out of memory");
    m->path = vigil_strdup(path);
    vigil_status st = m->path ? vigil_arena_create(&m->arena, err)
                              : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cpu backend: out of memory");
    if (!st) st = vigil_model_load(dev->engine, path, &m->model, err);
    if (st) {
        cpu_unload(m);
        return st;
    }
    io->n_inputs = vigil_model_input_count(m->model);
    io->n_outputs = vigil_model_output_count(m->model);
    if (io->n_inputs > BACKEND_MAX_IO || io->n_outputs > BACKEND_MAX_IO) {
        cpu_unload(m);
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s: more than %d inputs or outputs", path, BACKEND_MAX_IO);
    }
    for (size_t i = 0; i < io->n_inputs; i++) io->inputs[i] = vigil_model_input(m->model, i);
    for (size_t i = 0; i < io->n_outputs; i++) io->outputs[i] = vigil_model_output(m->model, i);
    io->native_batch = vigil_model_native_batch(m->model);
    /* a fixed batch runs item group by item group, a symbolic one as runs of the cap's plan */
    io->run_batch = io->native_batch ? io->native_batch : vigil_engine_batch_cap(dev->engine);
    *out = m;
    return VIGIL_OK;
}

/* The plan for batch, compiled on first use. */
static vigil_status cpu_plan_for(backend_model *m, int64_t batch, vigil_plan **out, vigil_error *err) {
    cpu_plan_slot *victim = &m->slots[0];
    for (int i = 0; i < CPU_PLAN_SLOTS; i++) {
        cpu_plan_slot *s = &m->slots[i];
        if (s->plan && s->batch == batch) {
            s->last_used = ++m->runs;
            *out = s->plan;
            return VIGIL_OK;
        }
        if (!s->plan || (victim->plan && s->last_used < victim->last_used)) victim = s;
    }
    vigil_plan *plan = NULL;
    vigil_status st = vigil_plan_create_in(m->model, batch, m->arena, &plan, err);
    if (st == VIGIL_ERR_LIMIT) { /* a larger batch than the arena holds: recompile the others later */
        for (int i = 0; i < CPU_PLAN_SLOTS; i++) {
            vigil_plan_destroy(m->slots[i].plan);
            m->slots[i].plan = NULL;
        }
        st = vigil_plan_create_in(m->model, batch, m->arena, &plan, err);
    }
    if (st) return st;
    LOG_I("cpu: %s compiled for batch %lld; instance holds %zu bytes of packed weights, %zu of activations", m->path,
          (long long)batch, vigil_arena_weight_bytes(m->arena), vigil_arena_bytes(m->arena));
    vigil_plan_destroy(victim->plan);
    victim->plan = plan;
    victim->batch = batch;
    victim->last_used = ++m->runs;
    *out = plan;
    return VIGIL_OK;
}

static vigil_status cpu_run(backend_model *m, int64_t batch, const vigil_tensor *inputs, size_t n_inputs,
                            const vigil_tensor **outputs, vigil_error *err) {
    vigil_plan *plan = NULL;
    vigil_status st = cpu_plan_for(m, batch, &plan, err);
    if (!st) st = vigil_plan_run(plan, inputs, n_inputs, err);
    if (st) return st;
    size_t n_out = vigil_model_output_count(m->model);
    for (size_t i = 0; i < n_out; i++) outputs[i] = vigil_plan_output(plan, i);
    return VIGIL_OK;
}

static vigil_status cpu_prepare(backend_model *m, int64_t batch, vigil_error *err) {
    vigil_plan *plan = NULL;
    return cpu_plan_for(m, batch, &plan, err);
}

static const char *cpu_metadata(const backend_model *m, const char *key) {
    return vigil_model_metadata(m->model, key);
}

static void cpu_pool_run(void *ctx, size_t n, void (*task)(void *arg, size_t index), void *arg) {
    vigil_engine_parallelize(ctx, task, arg, n);
}

/* The engine's pool, which a worker's runs leave idle while it decodes the
 * next images: the same threads, so no oversubscription. */
static void cpu_pool(backend_model *m, vigil_parallel *pool) {
    vigil_engine *engine = vigil_model_engine(m->model);
    *pool = (vigil_parallel){.run = cpu_pool_run, .ctx = engine, .threads = vigil_engine_threads(engine)};
}

/* The staging buffer of the last split or capped batch (22.6 MB after a
 * batch of 8 of yolov8n); activations and operators stay, since every run
 * needs them and faulting them in again would cost each first run. */
static void cpu_trim(backend_model *m) { vigil_arena_trim(m->arena); }

const backend_ops backend_cpu = {
    .name = "cpu",
    .model_file = "model.onnx",
    .open = cpu_open,
    .close = cpu_close,
    .describe = cpu_describe,
    .load = cpu_load,
    .unload = cpu_unload,
    .run = cpu_run,
    .metadata = cpu_metadata,
    .prepare = cpu_prepare,
    .pool = cpu_pool,
    .trim = cpu_trim,
};
