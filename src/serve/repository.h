/*
 * repository.h - the model repository: models/<name>/<version>/model.onnx
 * with an optional models/<name>/config.yaml.
 *
 * Each model name has an entry with a state (LOADING, READY, UNLOADING,
 * UNAVAILABLE, FAILED plus the reason).  The highest version directory is
 * the one served.  A READY entry holds a served_model: the compiled
 * instances inside a scheduler, reference-counted so that an unload or a
 * reload never frees a model that a request is still using.  Mode "none"
 * loads every model at start, "explicit" only through repository_load, and
 * "poll" loads at start and then rescans the directory every interval (new
 * models and versions are loaded, vanished ones unloaded).
 *
 * Thread-safety: every function may be called from any I/O thread, except
 * that repository_release must not be called on a scheduler worker thread
 * (the last release joins the workers).
 */
#ifndef VIGIL_SERVE_REPOSITORY_H
#define VIGIL_SERVE_REPOSITORY_H

#include <stdint.h>

#include "backends/backend.h"
#include "core/config.h"
#include "serve/metrics.h"
#include "serve/model_config.h"
#include "serve/scheduler.h"
#include "vigil/vision.h"

typedef enum model_state {
    MODEL_LOADING = 0,
    MODEL_READY,
    MODEL_UNLOADING,
    MODEL_UNAVAILABLE,
    MODEL_FAILED,
    MODEL_STATE_COUNT
} model_state;

const char *model_state_name(model_state state); /* "READY", ... */

#define MODEL_NAME_MAX 128

/* A model version that can take requests.  Fields are immutable while
 * referenced. */
typedef struct served_model {
    char name[MODEL_NAME_MAX];
    int64_t version;
    model_config config;
    model_task task;      /* resolved: RAW or DETECT */
    vigil_head_family family; /* the detection head the tensors describe (AUTO: none) */
    const backend_ops *ops;
    backend_io io;        /* of the first instance */
    sched *sched;
    int refs;             /* guarded by the repository lock */
} served_model;

typedef struct repository repository;

/* cfg and m must outlive the repository (m may be NULL). */
vigil_status repository_create(const vigil_config *cfg, metrics *m, repository **out, vigil_error *err);
/* Loads per the mode (none, poll: everything; explicit: nothing). Models that
 * fail are recorded as FAILED and logged; this only fails if the repository
 * directory cannot be read. */
vigil_status repository_start(repository *repo, vigil_error *err);
/* Drains every model (see sched_drain) within timeout_ms in total. */
void repository_drain(repository *repo, int64_t timeout_ms);
void repository_destroy(repository *repo);

/* The version a model folder serves: its highest all-digit subfolder that
 * holds a readable `file` (the backend's model file, "model.onnx"); 0 if
 * none. */
int64_t repository_highest_version(const char *model_dir, const char *file);

/* What a model is: config.yaml's task when it names one (configured), else
 * DETECT when its tensors and Ultralytics metadata (names, task, imgsz; NULL
 * when absent) describe a head vigil decodes (vigil_head_family_of), else
 * RAW.  OUT: *family, that head (VIGIL_HEAD_AUTO: none). */
model_task repository_model_task(model_task configured, const vigil_tensor_info *input,
                                 const vigil_tensor_info *outputs, size_t n_outputs, const char *names,
                                 const char *task, const char *imgsz, vigil_head_family *family);

/* Checks a model name: [A-Za-z0-9_.-], 1..127 chars, not starting with '.'. */
vigil_status repository_check_name(const char *name, vigil_error *err);

/* The served model for name (version 0 = whichever is served), with a
 * reference the caller releases.  VIGIL_ERR_NOT_FOUND for unknown models or
 * versions, VIGIL_ERR_UNAVAILABLE when the model is not READY. */
vigil_status repository_acquire(repository *repo, const char *name, int64_t version, served_model **out,
                                vigil_error *err);
void repository_release(repository *repo, served_model *model);

/* Loads (or reloads: the new version serves once ready, the old one drains)
 * name from disk.  Synchronous. */
vigil_status repository_load(repository *repo, const char *name, vigil_error *err);
/* Drains and unloads name; its state becomes UNAVAILABLE. */
vigil_status repository_unload(repository *repo, const char *name, vigil_error *err);

/* Checks that path loads with the backend name's config.yaml asks for (the
 * CPU engine by default); OUT: *file, the file name a version directory
 * holds for that backend ("model.onnx"). */
vigil_status repository_check_file(repository *repo, const char *name, const char *path, const char **file,
                                   vigil_error *err);
/* 1 when name is READY. */
int repository_is_ready(repository *repo, const char *name);

/* One line of the index: models on disk and models with an entry. */
typedef struct repository_item {
    const char *name;
    int64_t version;    /* served or last tried version; 0 = none */
    model_state state;
    const char *reason; /* "" when none */
    size_t queue_length;
    model_task task;
    vigil_head_family family; /* AUTO when the tensors describe no detection head */
} repository_item;

/* Calls fn for every model, in name order, under the repository lock: fn
 * must not call back into the repository. */
void repository_each(repository *repo, void (*fn)(const repository_item *item, void *user), void *user);

/* The detection model for requests that name none: detect.default_model
 * when it is set (whatever its state: acquiring it says why it cannot
 * serve), else the only READY detection model.  VIGIL_ERR_NOT_FOUND when
 * there is none, VIGIL_ERR_INVALID_ARGUMENT, naming the candidates, when
 * there are several. */
vigil_status repository_default_detector(repository *repo, char *name, size_t size, vigil_error *err);
/* The same as a name for listings: name, or NULL when there is no default. */
const char *repository_default_detector_name(repository *repo, char *name, size_t size);

/* The device description of backend index (backend_at order) into out;
 * 0 when that backend has no open device. */
int repository_describe_backend(const repository *repo, size_t index, char *out, size_t size);

#endif
