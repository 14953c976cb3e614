/*
 * detect_job.h - detection through a backend: the one detection path, used
 * by the server's workers and by `vigil detect`.
 *
 * A detect worker reads a loaded model (any backend) as a detection model
 * once (vigil_detect_spec), then runs batches of images: each image is
 * pre-processed into its slot of the batch input, the backend's run takes
 * the batch (the same entry raw inference uses, so the backend's plan cache
 * is the only one), and each image is post-processed from its slice of the
 * outputs.  For the server it also writes the response body (the
 * `vigil detect --json` object, or the annotated JPEG).
 *
 * A worker belongs to the thread that runs its model (not thread-safe).
 */
#ifndef VIGIL_SERVE_DETECT_JOB_H
#define VIGIL_SERVE_DETECT_JOB_H

#include "backends/backend.h"
#include "serve/scheduler.h"
#include "vigil/vision.h"

typedef struct detect_worker detect_worker;

/* ops, model and io are borrowed: the model must outlive the worker.
 * options (NULL = defaults) says how to read it: family, labels file, pixel
 * limit, jpeg_reduced_scale.  VIGIL_ERR_UNSUPPORTED when the model is no
 * detector vigil can decode. */
vigil_status detect_worker_create(const backend_ops *ops, backend_model *model, const backend_io *io,
                                  const vigil_detector_options *options, detect_worker **out, vigil_error *err);
void detect_worker_destroy(detect_worker *w);

/* The class names (NULL when the model names none) and the head family. */
const vigil_labels *detect_worker_labels(const detect_worker *w);
vigil_head_family detect_worker_family(const detect_worker *w);

/* One image of a batch.  Set by the caller: image, size, options (NULL =
 * defaults).  Set by detect_worker_detect: status, error and result (its
 * detections live in the worker until its next batch). */
typedef struct detect_request {
    const void *image;
    size_t size;
    const vigil_detect_options *options;
    vigil_status status;
    vigil_error error;
    vigil_detect_result result;
} detect_request;

/* Runs reqs[0..n) (n <= VIGIL_DETECT_BATCH_MAX) as one batch of the model;
 * an image that cannot be decoded fails alone. */
void detect_worker_detect(detect_worker *w, detect_request *reqs, size_t n);

/* Fills job->body / body_len (in job->arena) or returns an error. */
vigil_status detect_worker_run(detect_worker *w, const char *model_name, sched_job *job, vigil_error *err);

/* Runs jobs[0..n) (none rendered, n <= VIGIL_DETECT_BATCH_MAX) as one batch
 * of the model.  Sets every job's status (and body or error); a bad image or
 * class list fails only its job. */
void detect_worker_run_batch(detect_worker *w, const char *model_name, sched_job **jobs, size_t n);

#endif
