/*
 * job_detect.h - detection through a backend: the one detection path, used
 * by the server's workers (as the scheduler's detection job kind,
 * job_detect_kind) and by `vigil detect` (the detect worker alone).
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
#ifndef VIGIL_SERVE_JOB_DETECT_H
#define VIGIL_SERVE_JOB_DETECT_H

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

/* Decoded pixels in place of an encoded image (a camera's frame, a client
 * that decoded its own): image's bytes are a width x height frame of format
 * with rows stride bytes apart, checked as vigil_image_raw_check does.  An
 * RGB24 frame is letterboxed where it lies (no copy); BGR24 and NV12 are
 * converted first. */
typedef struct detect_raw {
    vigil_pixel_format format;
    int width, height, stride;
} detect_raw;

/* One image of a batch.  Set by the caller: image, size, raw (NULL = image
 * is encoded: JPEG or PNG), options (NULL = defaults), or ready and
 * ready_item for an image pre-processed already.  Set by
 * detect_worker_detect: status, error and result (its detections live in
 * the worker until its next batch). */
typedef struct detect_request {
    const void *image; /* NULL: an RGB24 raw frame in pieces[0..n_pieces) */
    size_t size;
    const vigil_piece *pieces;
    size_t n_pieces;
    const detect_raw *raw;
    /* Not NULL: one batch item of the model input, letterboxed already (where
     * the frame arrived: request_detect_ready), and where the image went in
     * it; it runs as a batch of its own, from where it lies. */
    const void *ready;
    const vigil_detect_item *ready_item;
    const vigil_detect_options *options;
    vigil_status status;
    vigil_error error;
    vigil_detect_result result;
    int64_t post_start_ns, post_end_ns; /* CLOCK_MONOTONIC around its post-processing (0: none ran) */
} detect_request;

/* Runs reqs[0..n) (n <= VIGIL_DETECT_BATCH_MAX) as one batch of the model;
 * an image that cannot be decoded fails alone. */
void detect_worker_detect(detect_worker *w, detect_request *reqs, size_t n);

/* ------------------------------------------------------------ the job kind */

/* What a detection job asks for and gets (lives in the job's arena). */
typedef struct job_detect {
    /* Set by the submitter. */
    const void *image;   /* encoded JPEG/PNG, or raw pixels (below), in the arena */
    size_t image_size;   /* the size even when the bytes lie in pieces */
    const vigil_piece *pieces; /* image NULL: an RGB24 raw frame's bytes where the front end received them
                                  (request_detect_bytes decides; only the letterbox reads them) */
    size_t n_pieces;
    detect_raw raw;      /* width 0: image is encoded */
    size_t image_room;   /* bytes before and after image the submitter lets the request layer write (0: none;
                            a REST body read with room around it: http_exchange.body_room) */
    const void *ready;   /* not NULL: the model input letterboxed already (request_detect_ready), ... */
    vigil_detect_item ready_item; /* ... and where the frame went in it */
    vigil_detect_options options; /* thresholds, max detections (request_detect_resolve); the class
                                     filter is set by the run from classes */
    const char *const *classes;   /* ids ("0") or names ("bus"), in the arena, resolved against the
                                     model's labels by the worker; NULL/0 = every class */
    size_t n_classes;
    const char *image_name; /* for the JSON's "image" (multipart file name); NULL = "upload" */
    int render;             /* 1 = body is the annotated JPEG instead of JSON */
    /* Set by the run (or a cache hit): JSON or JPEG bytes in the arena. */
    char *body;
    size_t body_len;
} job_detect;

/* Jobs that do not render batch with each other, at most
 * VIGIL_DETECT_BATCH_MAX to a batch; a bad image or class list fails only
 * its job.  The kind's worker state is a detect_worker, created on the
 * worker's first detection job. */
extern const sched_job_kind job_detect_kind;

/* Makes job a detection job (batch 1) with an empty job_detect allocated in
 * a; a job that already is one keeps its data.  NULL when a is out of
 * memory. */
job_detect *job_detect_prepare(sched_job *job, arena *a);

/* job's job_detect (job must be a detection job: a programmer error aborts,
 * naming file and line). */
job_detect *job_detect_of(const sched_job *job);

#endif
