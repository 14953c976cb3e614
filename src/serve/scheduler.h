/*
 * scheduler.h - one model version's request queue, its worker threads and
 * the dynamic batcher: the only hand-off between I/O threads and inference.
 *
 * An I/O thread fills a sched_job (inputs in the request's arena), submits
 * it and returns to its socket; a worker thread (one per instance, each with
 * its own compiled model) takes jobs from the bounded queue, stacks
 * compatible raw jobs along dimension 0 into one batch of at most
 * max_batch_size items (waiting at most max_queue_delay_us after the oldest
 * job arrived, or less when a preferred size is reached), runs it, splits
 * the outputs back into each job's arena and calls the job's done callback
 * on the worker thread.  The callback must not block: it hands the job back
 * to the I/O side (server.c resumes the suspended connection).
 */
#ifndef VIGIL_SERVE_SCHEDULER_H
#define VIGIL_SERVE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/arena.h"
#include "serve/cache.h"
#include "serve/metrics.h"
#include "serve/model_config.h"
#include "vigil/vision.h"

typedef struct sched sched;
typedef struct sched_job sched_job;

typedef enum sched_job_kind { SCHED_JOB_RAW = 0, SCHED_JOB_DETECT } sched_job_kind;

struct sched_job {
    /* Set by the submitter. */
    sched_job_kind kind;
    arena *arena;          /* the request's arena: outputs and bodies are allocated here */
    int64_t deadline_ns;   /* CLOCK_MONOTONIC; 0 = none */
    int priority;          /* higher runs first; FIFO within a level (default 0) */
    void (*done)(sched_job *job);
    void *user;
    /* raw: inputs in the model's input order, dims[0] = batch items */
    int64_t batch;
    size_t n_inputs;
    vigil_tensor inputs[BACKEND_MAX_IO];
    /* detect: encoded image and options (classes in the arena) */
    const void *image;
    size_t image_size;
    vigil_detect_options detect;
    const char *classes_spec; /* "0,bus": ids or names, resolved against the model's labels; NULL = all */
    const char *image_name;   /* for the JSON's "image" (multipart file name); NULL = "upload" */
    int render;            /* 1 = body is the annotated JPEG instead of JSON */

    /* Set by the scheduler before done. */
    vigil_status status;
    vigil_error error;
    size_t n_outputs;                     /* raw */
    vigil_tensor outputs[BACKEND_MAX_IO]; /* raw: data in the arena */
    char *body;                           /* detect: JSON or JPEG bytes in the arena */
    size_t body_len;
    int64_t enqueue_ns;
    sched_job *next; /* queue link, private */
};

typedef struct sched_options {
    const char *model;            /* label for metrics and logs (copied) */
    const model_config *config;   /* batching settings (copied) */
    int64_t max_queue;            /* jobs waiting, all kinds */
    const backend_ops *ops;
    const backend_io *io;         /* instance 0's tensors (copied; the pointers in it live as long as the
                                     instances): detect jobs read the model through them */
    metrics *metrics;             /* not owned; may be NULL */
    const char *labels_path;      /* detect: labels file or NULL (copied) */
    int64_t max_image_pixels;     /* detect */
} sched_options;

/* Starts one worker per instance.  Takes ownership of instances[0..n) (they
 * are unloaded by sched_destroy, or here on failure). */
vigil_status sched_create(const sched_options *options, backend_model **instances, size_t n, sched **out,
                          vigil_error *err);

/* Adds what identifies job's answer to a response-cache key: for raw jobs
 * each input's dtype, dims and bytes; for detect jobs the image bytes,
 * thresholds, max detections, render flag and class filter.  REST and gRPC
 * both use it, so either front end hits what the other stored. */
void sched_job_cache_key(const sched_job *job, cache_hasher *h);

/* Queues job behind every job of its priority or higher.  VIGIL_ERR_UNAVAILABLE when the queue is full or the scheduler
 * was drained (the job is then not taken: the caller still owns it); a retired one still takes jobs. */
vigil_status sched_submit(sched *s, sched_job *job, vigil_error *err);

/* Stops accepting jobs and waits up to timeout_ms for the queue and the
 * running batches to finish; jobs still queued then complete with
 * VIGIL_ERR_UNAVAILABLE.  Returns after every job's done has been called. */
void sched_drain(sched *s, int64_t timeout_ms);

/* sched_drain for a model version the repository has already taken out
 * (replaced by a new version, or unloaded): nobody new can reach it, but a
 * request that acquired it before the swap may still submit, and is served
 * by the version it was parsed for instead of failing.  Its workers live
 * until the last reference goes (sched_destroy). */
void sched_retire(sched *s, int64_t timeout_ms);

/* Drains with no wait if not drained, joins the workers, unloads the models. */
void sched_destroy(sched *s);

size_t sched_queue_length(sched *s);

/* CLOCK_MONOTONIC now, in nanoseconds. */
int64_t sched_now_ns(void);

#endif
