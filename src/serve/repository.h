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
    /* A detection model whose input is a device's uint8 NHWC bytes: what its
     * tensors say, for front ends that letterbox a raw frame where it arrived
     * (request_detect_ready); NULL for the others.  Read only, shared. */
    vigil_detect_spec *frame_spec;
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

/* The version a model folder serves: its highest subfolder named by a
 * version (repository_parse_version: "01" is not one) that holds a readable `file` (the backend's model file, "model.onnx"); 0 if
 * none. */
int64_t repository_highest_version(const char *model_dir, const char *file);

/* What a model is: config.yaml's task when it names one (configured), else
 * DETECT when its tensors and Ultralytics metadata (names, task, imgsz; NULL
 * when absent) describe a head vigil decodes (vigil_head_family_of), else
 * RAW.  OUT: *family, that head (VIGIL_HEAD_AUTO: none). */
model_task repository_model_task(model_task configured, const vigil_tensor_info *input,
                                 const vigil_tensor_info *outputs, size_t n_outputs, const char *names,
                                 const char *task, const char *imgsz, vigil_head_family *family);

/* Writes at most 64 bytes of text into out (size >= 4 * 64 + 8 for all of
 * them; "..." when cut) with every byte outside printable ASCII and '\\' as
 * \xNN, so that text a client sent can be quoted in a message (JSON, gRPC
 * status, log line) whatever bytes it holds. */
void repository_quote(const char *text, size_t len, char *out, size_t size);

/* Checks a model name: [A-Za-z0-9_.-], 1..127 chars, not starting with '.'.
 * VIGIL_ERR_INVALID_ARGUMENT (400) otherwise, the message quoting the name
 * with every byte outside printable ASCII written as \xNN.  The _bytes form
 * takes the length the client sent (a URL path or a protobuf string), so a
 * NUL inside the name is refused instead of cutting the name short. */
vigil_status repository_check_name(const char *name, vigil_error *err);
vigil_status repository_check_name_bytes(const char *name, size_t len, vigil_error *err);

/* The one parser for a version a client or the repository's folders name:
 * decimal digits only, no sign, no leading zero, in [1, 2^63 - 1].  1 with
 * *out set, else 0.  repository_version_error sets the 400 that says so. */
#define REPOSITORY_VERSION_RULE \
    "a version is a decimal integer from 1 to 9223372036854775807, digits only (no sign, no leading zeros)"
int repository_parse_version(const char *text, size_t len, int64_t *out);
vigil_status repository_version_error(const char *text, size_t len, vigil_error *err);

/* Rewrites err's message so that paths inside the repository are relative
 * to its root ("yolov8n/1/model.onnx"), and an upload's staging folder is
 * named by the path the file will have: answers and model reasons never
 * show where the repository lives. */
#define REPOSITORY_STAGING_PREFIX ".staging-"
void repository_relative_message(const vigil_config *cfg, vigil_error *err);

/* The served model for name (version 0 = whichever is served), with a
 * reference the caller releases.  VIGIL_ERR_INVALID_ARGUMENT for a malformed
 * name (repository_check_name), VIGIL_ERR_NOT_FOUND for unknown models or
 * versions, VIGIL_ERR_UNAVAILABLE when the model is not READY. */
vigil_status repository_acquire(repository *repo, const char *name, int64_t version, served_model **out,
                                vigil_error *err);
void repository_release(repository *repo, served_model *model);
/* Drops a reference unless it is the last: 1 when dropped; 0 when it is the
 * last, which the caller must then release off the model's workers
 * (repository_release).  For a worker finishing a request's answer itself. */
int repository_release_shared(repository *repo, served_model *model);

/* Loads (or reloads: the new version serves once ready, the old one drains)
 * name from disk.  Synchronous. */
vigil_status repository_load(repository *repo, const char *name, vigil_error *err);
/* Drains and unloads name; its state becomes UNAVAILABLE. */
vigil_status repository_unload(repository *repo, const char *name, vigil_error *err);

/* Checks that path loads with the backend name's config.yaml asks for (the
 * CPU engine by default); OUT: *file, the file name a version directory
 * holds for that backend ("model.onnx").  Paths in the message are relative
 * to the repository (repository_relative_message); a file it refers to that
 * is absent or outside its folder is VIGIL_ERR_INVALID_ARGUMENT. */
vigil_status repository_check_file(repository *repo, const char *name, const char *path, const char **file,
                                   vigil_error *err);
/* The file name a version folder of name holds for its backend ("model.onnx"; the default backend's
 * when config.yaml cannot be read: repository_check_file then says why). */
const char *repository_model_file(repository *repo, const char *name);
/* Drops name's entry when it serves nothing and its folder is gone (an
 * upload that failed after creating the folder removed it again). */
void repository_forget(repository *repo, const char *name);
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

/* The open device of backend index (backend_at order), or NULL with
 * *reason saying why (HailoRT absent, refused, no card; "not opened"). */
backend_device *repository_backend_device(const repository *repo, size_t index, const char **reason);

#endif
