/*
 * scheduler.h - one model version's request queue, its worker threads and
 * the dynamic batcher: the only hand-off between I/O threads and inference.
 *
 * An I/O thread fills a sched_job (its kind's data in the request's arena),
 * submits it and returns to its socket; a worker thread (one per instance,
 * each with its own compiled model) takes jobs from the bounded queue,
 * gathers the jobs its kind says can share a batch of at most
 * max_batch_size items (waiting at most max_queue_delay_us after the oldest
 * job arrived, or less when a preferred size is reached), has the kind run
 * them (job_raw.c stacks tensors, job_detect.c images), and calls each
 * job's done callback on the worker thread.  The callback must not block: it hands the job back
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

typedef struct sched sched;
typedef struct sched_job sched_job;
typedef struct sched_job_kind sched_job_kind;
typedef struct sched_instance sched_instance;

/* What the scheduler knows of a job: when and in what order it runs, how
 * many batch items it adds, and how it ended.  What the job asks for (the
 * tensors, the image) lives in its kind's own struct, `data`, allocated in
 * the request's arena by the kind (job_raw.h, job_detect.h), so the queue's
 * element stays small and the scheduler never learns what a kind holds. */
struct sched_job {
    /* Set by the submitter. */
    const sched_job_kind *kind; /* static; set with data by the kind's _prepare */
    void *data;                 /* the kind's struct, in arena */
    arena *arena;               /* the request's arena: the kind's data and its results are allocated here */
    int64_t deadline_ns;        /* CLOCK_MONOTONIC; 0 = none */
    int priority;               /* higher runs first; FIFO within a level (default 0) */
    int64_t batch;              /* items the job adds to a batch (a raw job's dims[0]; 1 for an image) */
    void (*done)(sched_job *job);
    void *user;

    char trace_id[33];          /* hex trace id of a sampled request ("" = none): the exemplar of its
                                   latency (trace_request_tag_job) */

    /* Set by the scheduler (or the kind's run) before done. */
    vigil_status status;
    vigil_error error;
    int64_t enqueue_ns;
    /* CLOCK_MONOTONIC times for the request's spans (trace.h): the batch
     * that ran the job began and ended; the kind's post-processing of this
     * job (detection: decode and NMS), 0 when the kind has none. */
    int64_t run_start_ns, run_end_ns, post_start_ns, post_end_ns;
    int64_t batch_items; /* items in that batch */
    sched_job *next; /* queue link, private */
};

/* One worker's model instance and what the kinds read it with (all borrowed
 * from the scheduler, which outlives every call). */
struct sched_instance {
    const char *model_name; /* for responses and logs */
    const model_config *config;
    const backend_ops *ops;
    backend_model *model;    /* this worker's instance: one thread at a time */
    const backend_io *io;    /* instance 0's tensors */
    const char *labels_path; /* NULL = the model's own names */
    int64_t max_image_pixels;
};

/* A job kind: the small interface the scheduler batches and runs through.
 * Instances are static (job_raw_kind, job_detect_kind); two jobs share a
 * batch only when they have the same kind. */
struct sched_job_kind {
    const char *name;
    /* Most jobs one batch of this kind takes. */
    size_t max_jobs;
    /* 1 when job may wait for others to share its batch (dynamic batching). */
    int (*batches)(const sched_job *job);
    /* 1 when b can run in the same batch as a (both batch). */
    int (*compatible)(const sched_job *a, const sched_job *b);
    /* Runs jobs[0..n) (items batch items in all) as one batch on instance,
     * setting each job's status and error (and its results in its arena);
     * *state is this worker's state for the kind (NULL at first; the kind
     * creates it and state_free releases it when the worker ends).  Returns
     * the seconds spent computing, for the metrics. */
    double (*run)(const sched_instance *instance, void **state, sched_job **jobs, size_t n, int64_t items);
    void (*state_free)(void *state);
    /* Adds what identifies the job's answer to a response-cache key. */
    void (*cache_key)(const sched_job *job, cache_hasher *h);
};

typedef struct sched_options {
    const char *model;            /* label for metrics and logs (copied) */
    const model_config *config;   /* batching settings (copied) */
    int64_t max_queue;            /* jobs waiting, all kinds */
    const backend_ops *ops;
    const backend_io *io;         /* instance 0's tensors (copied; the pointers in it live as long as the
                                     instances): kinds read the model through them */
    metrics *metrics;             /* not owned; may be NULL */
    const char *labels_path;      /* for kinds that name classes: labels file or NULL (copied) */
    int64_t max_image_pixels;     /* for kinds that decode images */
} sched_options;

/* Starts one worker per instance.  Takes ownership of instances[0..n) (they
 * are unloaded by sched_destroy, or here on failure). */
vigil_status sched_create(const sched_options *options, backend_model **instances, size_t n, sched **out,
                          vigil_error *err);

/* Adds what identifies job's answer to a response-cache key (its kind's
 * cache_key).  REST and gRPC both use it, so either front end hits what the
 * other stored. */
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
