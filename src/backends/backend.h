/*
 * backend.h - the device interface: one small vtable per kind of accelerator.
 *
 * The server never calls the engine (or HailoRT, or CUDA) directly; it picks
 * a backend by the name in a model's config.yaml ("cpu" by default) and goes
 * through these functions:
 *
 *   open(options)  -> device          once per server and backend
 *   describe(device)                  one line for /api/v1/device/info
 *   load(device, file, options) -> compiled model + its input/output tensors
 *   run(model, batch, inputs)   -> outputs (valid until the next run)
 *   unload(model), close(device)
 *
 * Raw inference and detection both reach a model only through run:
 * detection pre-processes images into the batch input and post-processes
 * the outputs around it (serve/job_detect.c, the vision library), so a
 * backend that runs tensors answers detection too.
 *
 * A compiled model belongs to one worker thread (one instance of the model in
 * the scheduler): run is not thread-safe, and several instances load the same
 * file several times.  Compute threads belong to the device, not the model:
 * every model and instance on a device shares the device's threads, so that
 * loading more models or instances never oversubscribes the cores.
 * Ownership: open/load return objects the caller owns and releases with
 * close/unload (every model before its device).
 */
#ifndef VIGIL_BACKENDS_BACKEND_H
#define VIGIL_BACKENDS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/parallel.h"
#include "vigil/status.h"
#include "vigil/tensor.h"

#define BACKEND_MAX_IO 64 /* inputs or outputs per model */

typedef struct backend_device backend_device;
typedef struct backend_model backend_model;

/* What a loaded model consumes and produces.  The pointers stay valid until
 * the model is unloaded. */
typedef struct backend_io {
    size_t n_inputs, n_outputs;
    const vigil_tensor_info *inputs[BACKEND_MAX_IO];
    const vigil_tensor_info *outputs[BACKEND_MAX_IO];
    int64_t native_batch; /* 0 = symbolic batch dimension, else the fixed leading dim */
    /* The largest batch the backend runs in one go (0 = no such limit).  A
     * larger batch costs it no less time than runs of this many, so a
     * caller that fills its own batch buffers (detection) runs larger
     * batches as such runs and holds buffers for this many items only. */
    int64_t run_batch;
} backend_io;

/* How a device is opened (zeros = defaults). */
typedef struct backend_options {
    int threads;   /* compute threads the device's models share (0 = all cores) */
    int batch_cap; /* the largest batch one run computes at once; larger ones run as
                    * runs of it (0 = the backend's default; engine.batch_cap) */
    int float16;   /* a float16 model's arithmetic, vigil_float16_mode (0 = auto; engine.float16) */
} backend_options;

/* How a device's own scheduler treats one model (config.yaml's scheduler:
 * section); -1 = the backend's default. */
typedef struct backend_schedule {
    int64_t priority;   /* higher runs first */
    int64_t timeout_ms; /* longest wait for `threshold` frames */
    int64_t threshold;  /* frames gathered before the model asks for the device */
} backend_schedule;

/* What an open device reports about itself, for /api/v1/device/info,
 * `vigil device info` and the metrics; "" or NAN where it reports nothing. */
typedef struct backend_facts {
    char serial[64], firmware[64], architecture[64], product[64];
    char library[600];       /* the runtime library and its version */
    double temperature_c;    /* NAN when not reported */
    double power_w;          /* NAN when not reported */
} backend_facts;

typedef struct backend_ops {
    const char *name;       /* "cpu" */
    const char *model_file; /* the file a version directory holds: "model.onnx" */
    /* options may be NULL (defaults). */
    vigil_status (*open)(const backend_options *options, backend_device **out, vigil_error *err);
    void (*close)(backend_device *device);
    /* A short human description ("cpu: vigil ONNX engine, 16 threads"). */
    void (*describe)(const backend_device *device, char *out, size_t size);
    vigil_status (*load)(backend_device *device, const char *path, backend_model **out, backend_io *io,
                         vigil_error *err);
    void (*unload)(backend_model *model);
    /* Runs batch items.  inputs follow io->inputs' order with dims[0] == batch
     * (for models with a batch dimension).  OUT: outputs[i] points at output i,
     * valid until the next run or unload. */
    vigil_status (*run)(backend_model *model, int64_t batch, const vigil_tensor *inputs, size_t n_inputs,
                        const vigil_tensor **outputs, vigil_error *err);
    /* Optional (may be NULL): gets model ready to run batch items, so that
     * the first run's time is the run's alone (`vigil detect --timing`). */
    vigil_status (*prepare)(backend_model *model, int64_t batch, vigil_error *err);
    /* A metadata_props value ("names", "task", ...) or NULL. */
    const char *(*metadata)(const backend_model *model, const char *key);
    /* OUT: *pool, the device's compute threads lent for work around a run
     * of model (decoding the next batch's JPEGs in bands), valid until the
     * model is unloaded; called on the model's worker thread, between runs.
     * NULL (or threads < 2) for a backend whose device has no CPU threads
     * to lend: the caller then works on its own thread. */
    void (*pool)(backend_model *model, vigil_parallel *pool);
    /* Optional (may be NULL): gives back memory that only runs need (buffers
     * the next run allocates again), for a worker that goes idle after a
     * burst.  Outputs of the last run become invalid. */
    void (*trim)(backend_model *model);
    /* Optional (may be NULL): applies config.yaml's scheduler: section to a
     * loaded model (a backend without a scheduler of its own leaves it out). */
    vigil_status (*schedule)(backend_model *model, const backend_schedule *schedule, vigil_error *err);
    /* Optional (may be NULL): what the device reports about itself (serial,
     * firmware, temperature, ...), read when asked. */
    void (*facts)(backend_device *device, backend_facts *out);
} backend_ops;

/* The backend called name, or NULL. */
const backend_ops *backend_find(const char *name);
/* Backends compiled in, in order; NULL after the last. */
const backend_ops *backend_at(size_t index);

/* engine.float16's word ("auto", "fp32", "xnnpack") as backend_options.float16;
 * VIGIL_ERR_INVALID_ARGUMENT for another. */
vigil_status backend_float16_parse(const char *text, int *out);

extern const backend_ops backend_cpu;
extern const backend_ops backend_hailo;

#endif
