/*
 * detect_job.h - runs a detection job on a worker thread: the vision
 * detector over the worker's engine model, then the response body (the
 * `vigil detect --json` object, or the annotated JPEG).
 */
#ifndef VIGIL_SERVE_DETECT_JOB_H
#define VIGIL_SERVE_DETECT_JOB_H

#include "serve/scheduler.h"

typedef struct detect_worker detect_worker;

/* model must outlive the worker; labels_path may be NULL.  jpeg_reduced_scale
 * is the model config's opt-in to DCT-scaled JPEG decoding (0 = full size,
 * the reference's pixels). */
vigil_status detect_worker_create(vigil_model *model, const char *labels_path, int64_t max_image_pixels,
                                  int jpeg_reduced_scale, detect_worker **out, vigil_error *err);
void detect_worker_destroy(detect_worker *w);

/* Fills job->body / body_len (in job->arena) or returns an error. */
vigil_status detect_worker_run(detect_worker *w, const char *model_name, sched_job *job, vigil_error *err);

/* Runs jobs[0..n) (none rendered, n <= VIGIL_DETECT_BATCH_MAX) as one batch
 * of the model: each job's image decoded on its own, one model run, each
 * answered on its own.  Sets every job's status (and body or error); a bad
 * image or class list fails only its job. */
void detect_worker_run_batch(detect_worker *w, const char *model_name, sched_job **jobs, size_t n);

#endif
