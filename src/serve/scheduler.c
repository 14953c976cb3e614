/*
 * scheduler.c - bounded per-model queue, worker threads and dynamic batcher.
 *
 * The scheduler knows no job kind: it holds queues, priorities, deadlines,
 * batching windows and workers, and reaches what a job asks for only
 * through its sched_job_kind (job_raw.c, job_detect.c), which says whether
 * a job batches, which jobs can share its batch, how a formed batch runs on
 * the worker's instance, and what keys its answer in the cache.
 *
 * One mutex guards the queue; workers sleep on `wake` and the drainer on
 * `idle`.  A worker whose head job batches (its kind says so) and dynamic
 * batching enabled gathers the jobs of the same kind compatible with the
 * head without removing them; it dispatches when the
 * batch is full, when it reached a preferred size with nothing more waiting,
 * when the oldest job has waited max_queue_delay_us, or when draining.
 * Otherwise it sleeps until that moment or the next arrival and looks again,
 * so several workers can share one queue without handing jobs to each other.
 * Jobs stay "queued" (count against max_queue) until a batch takes them.
 */
#include "serve/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"

#define SCHED_MAX_BATCH_JOBS 1024
#define SCHED_MAX_KINDS 8 /* distinct kinds one worker keeps state for */

typedef struct sched_worker {
    sched *owner;
    pthread_t thread;
    int started;
    sched_instance instance; /* its model and what kinds read it with */
    struct {
        const sched_job_kind *kind;
        void *state; /* the kind's, created by its run on this thread */
    } kinds[SCHED_MAX_KINDS];
    sched_job *batch[SCHED_MAX_BATCH_JOBS];
} sched_worker;

struct sched {
    char model[128];
    model_config config;
    int64_t max_queue;
    const backend_ops *ops;
    backend_io io; /* of instance 0: what kinds read the model as */
    metrics *metrics;
    char labels_path[3100];
    int64_t max_image_pixels;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* workers: a job arrived or stopping */
    pthread_cond_t idle; /* drainers: queue empty and no batch running */
    sched_job *head, *tail;
    size_t queued;
    int running;  /* batches in progress */
    int closed;   /* no more submissions */
    int retiring; /* being drained, still taking jobs from holders of its model */
    int stopping; /* workers exit when the queue is empty */
    size_t n_workers;
    sched_worker *workers;
};

int64_t sched_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t when_ns) {
    struct timespec ts = {.tv_sec = when_ns / 1000000000, .tv_nsec = when_ns % 1000000000};
    pthread_cond_timedwait(cond, lock, &ts);
}

/* ------------------------------------------------------------ completion */

static void job_finish(sched *s, sched_job *job, metrics_outcome outcome) {
    if (s->metrics) {
        metrics_inference(s->metrics, s->model, outcome);
        if (outcome == METRICS_SUCCESS)
            metrics_observe_traced(s->metrics, s->model, METRICS_TOTAL_SECONDS,
                                   (double)(sched_now_ns() - job->enqueue_ns) * 1e-9,
                                   job->trace_id[0] ? job->trace_id : NULL);
    }
    job->done(job);
}

static void job_fail(sched *s, sched_job *job, vigil_status status, const char *message) {
    vigil_error_set(&job->error, status, "%s", message);
    job->status = status;
    job_finish(s, job, status == VIGIL_ERR_TIMEOUT ? METRICS_TIMEOUT
                       : status == VIGIL_ERR_UNAVAILABLE ? METRICS_REJECTED : METRICS_ERROR);
}

/* ------------------------------------------------------------ batching */

/* Jobs a and b can share a batch: same kind, both batch, and the kind
 * says they fit together. */
static int jobs_compatible(const sched_job *a, const sched_job *b) {
    return a->kind == b->kind && a->kind->batches(a) && b->kind->batches(b) && a->kind->compatible(a, b);
}

/* The queue's head waits for others to batch with (dynamic batching). */
static int head_batches(const sched *s) {
    return s->head->kind->batches(s->head) && s->config.dynamic_batching && s->config.max_batch_size > 1;
}

/* Collects the jobs that would run with the head.  Lock held. */
static size_t batch_gather(sched *s, sched_worker *w, int64_t *items) {
    size_t n = 0;
    *items = 0;
    sched_job *head = s->head;
    int batching = head_batches(s);
    size_t max_jobs = head->kind->max_jobs < SCHED_MAX_BATCH_JOBS ? head->kind->max_jobs : SCHED_MAX_BATCH_JOBS;
    for (sched_job *j = head; j && n < max_jobs; j = j->next) {
        if (j != head && (!batching || !jobs_compatible(head, j))) continue;
        if (j != head && *items + j->batch > s->config.max_batch_size) continue;
        w->batch[n++] = j;
        *items += j->batch;
        if (!batching) break;
    }
    return n;
}

static int batch_ready(const sched *s, size_t n, int64_t items, int64_t now) {
    const sched_job *head = s->head;
    if (!head_batches(s) || s->stopping || s->closed || s->retiring) return 1;
    if (items >= s->config.max_batch_size) return 1;
    if (now >= head->enqueue_ns + s->config.max_queue_delay_us * 1000) return 1;
    for (size_t i = 0; i < s->config.n_preferred; i++)
        if (items == s->config.preferred_batch_sizes[i] && n == s->queued) return 1;
    return 0;
}

/* Inserts job after the last job of its priority or higher.  Lock held. */
static void queue_insert(sched *s, sched_job *job) {
    sched_job **link = &s->head;
    while (*link && (*link)->priority >= job->priority) link = &(*link)->next;
    job->next = *link;
    *link = job;
    if (!job->next) s->tail = job;
}

static void queue_remove(sched *s, sched_job *job) {
    sched_job **link = &s->head, *prev = NULL;
    while (*link != job) {
        prev = *link;
        link = &(*link)->next;
    }
    *link = job->next;
    if (s->tail == job) s->tail = prev;
    job->next = NULL;
    s->queued--;
}

/* ------------------------------------------------------------ running */

/* This worker's state slot for kind (NULL when every slot is taken). */
static void **worker_state(sched_worker *w, const sched_job_kind *kind) {
    for (size_t i = 0; i < SCHED_MAX_KINDS; i++) {
        if (!w->kinds[i].kind) w->kinds[i].kind = kind;
        if (w->kinds[i].kind == kind) return &w->kinds[i].state;
    }
    return NULL;
}

/* Runs jobs[0..n), all of one kind, as one batch through the kind. */
static void run_kind(sched *s, sched_worker *w, sched_job **jobs, size_t n, int64_t items) {
    const sched_job_kind *kind = jobs[0]->kind;
    void **state = worker_state(w, kind);
    double compute = 0;
    if (state) {
        int64_t start = sched_now_ns();
        compute = kind->run(&w->instance, state, jobs, n, items);
        int64_t end = sched_now_ns();
        for (size_t j = 0; j < n; j++) {
            jobs[j]->run_start_ns = start;
            jobs[j]->run_end_ns = end;
            jobs[j]->batch_items = items;
        }
    } else {
        for (size_t j = 0; j < n; j++)
            jobs[j]->status = vigil_error_set(&jobs[j]->error, VIGIL_ERR_INTERNAL,
                                              "scheduler: more than %d job kinds", SCHED_MAX_KINDS);
    }
    if (s->metrics) metrics_observe(s->metrics, s->model, METRICS_BATCH_SIZE, (double)items);
    for (size_t j = 0; j < n; j++) {
        if (s->metrics) metrics_observe(s->metrics, s->model, METRICS_COMPUTE_SECONDS, compute);
        job_finish(s, jobs[j], jobs[j]->status ? METRICS_ERROR : METRICS_SUCCESS);
    }
}

/* Runs what the worker took: expired jobs fail, the rest run as one batch. */
static void run_batch(sched *s, sched_worker *w, size_t n) {
    int64_t now = sched_now_ns();
    size_t live = 0;
    int64_t items = 0;
    for (size_t j = 0; j < n; j++) {
        sched_job *job = w->batch[j];
        if (s->metrics)
            metrics_observe(s->metrics, s->model, METRICS_QUEUE_SECONDS, (double)(now - job->enqueue_ns) * 1e-9);
        if (job->deadline_ns && now > job->deadline_ns) {
            job_fail(s, job, VIGIL_ERR_TIMEOUT, "the request's deadline passed while it was queued");
            continue;
        }
        w->batch[live++] = job;
        items += job->batch;
    }
    if (live == 0) return;
    run_kind(s, w, w->batch, live, items);
}

/* A worker idle for SCHED_IDLE_TRIM_MS after a burst gives back what only
 * runs need: the backend's run buffers (backend_ops.trim: the CPU backend's
 * output staging, 22.6 MB after a batch of 8 of yolov8n) and the heap pages
 * that glibc keeps after the burst's frees (malloc_trim: about 5 MB here).
 * Not after every batch: under steady traffic the next batch would fault
 * the same pages in again. */
#define SCHED_IDLE_TRIM_MS 1000

static void worker_trim(sched *s, sched_worker *w) {
    if (s->ops && s->ops->trim && w->instance.model) s->ops->trim(w->instance.model);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void *worker_main(void *arg) {
    sched_worker *w = arg;
    sched *s = w->owner;
    int ran = 0; /* a batch ran since the worker last gave memory back */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (!s->head) {
            if (s->stopping) break;
            if (!ran) {
                pthread_cond_wait(&s->wake, &s->lock);
                continue;
            }
            int64_t until = sched_now_ns() + SCHED_IDLE_TRIM_MS * INT64_C(1000000);
            while (!s->head && !s->stopping && sched_now_ns() < until) wait_until(&s->wake, &s->lock, until);
            if (s->head || s->stopping) continue;
            ran = 0;
            pthread_mutex_unlock(&s->lock);
            worker_trim(s, w);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        int64_t items;
        size_t n = batch_gather(s, w, &items);
        if (!batch_ready(s, n, items, sched_now_ns())) {
            wait_until(&s->wake, &s->lock, s->head->enqueue_ns + s->config.max_queue_delay_us * 1000);
            continue;
        }
        for (size_t j = 0; j < n; j++) queue_remove(s, w->batch[j]);
        s->running++;
        pthread_mutex_unlock(&s->lock);
        run_batch(s, w, n);
        ran = 1;
        pthread_mutex_lock(&s->lock);
        s->running--;
        if (!s->head && !s->running) pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < SCHED_MAX_KINDS && w->kinds[i].kind; i++) {
        if (w->kinds[i].state) w->kinds[i].kind->state_free(w->kinds[i].state);
        w->kinds[i].state = NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

vigil_status sched_create(const sched_options *o, backend_model **instances, size_t n, sched **out,
                          vigil_error *err) {
    sched *s = vigil_calloc(1, sizeof *s);
    sched_worker *workers = s ? vigil_calloc(n, sizeof *workers) : NULL;
    if (!s || !workers) {
        vigil_free(s);
        for (size_t i = 0; i < n; i++) o->ops->unload(instances[i]);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "scheduler: out of memory");
    }
    snprintf(s->model, sizeof s->model, "%s", o->model);
    s->config = *o->config;
    s->max_queue = o->max_queue;
    s->ops = o->ops;
    if (o->io) s->io = *o->io;
    s->metrics = o->metrics;
    snprintf(s->labels_path, sizeof s->labels_path, "%s", o->labels_path ? o->labels_path : "");
    s->max_image_pixels = o->max_image_pixels;
    s->workers = workers;
    s->n_workers = n;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &attr);
    pthread_cond_init(&s->idle, &attr);
    pthread_condattr_destroy(&attr);
    for (size_t i = 0; i < n; i++) {
        workers[i].owner = s;
        workers[i].instance = (sched_instance){
            .model_name = s->model,
            .config = &s->config,
            .ops = s->ops,
            .model = instances[i],
            .io = &s->io,
            .labels_path = s->labels_path[0] ? s->labels_path : NULL,
            .max_image_pixels = s->max_image_pixels,
        };
    }
    for (size_t i = 0; i < n; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            sched_destroy(s);
            return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "scheduler: cannot start a worker thread");
        }
        workers[i].started = 1;
        char name[16]; /* the model's worker in top -H and perf (15 characters at most) */
        snprintf(name, sizeof name, "w-%.13s", s->model);
        pthread_setname_np(workers[i].thread, name);
    }
    *out = s;
    return VIGIL_OK;
}

/* What a request still queued on a retired scheduler is told (%s: the model). */
#define SCHED_RETIRED_MESSAGE                                                                                 \
    "model %s is being unloaded (or replaced by a newer version): the request was still queued when "      \
    "limits.shutdown_timeout_ms ran out; retry once the model is READY again"

vigil_status sched_submit(sched *s, sched_job *job, vigil_error *err) {
    pthread_mutex_lock(&s->lock);
    vigil_status st = VIGIL_OK;
    if (s->closed) {
        st = s->retiring ? vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, SCHED_RETIRED_MESSAGE, s->model)
                         : vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "model %s is shutting down", s->model);
    } else if ((int64_t)s->queued >= s->max_queue) {
        st = vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "model %s: queue full (%lld requests waiting)", s->model,
                             (long long)s->max_queue);
    } else {
        job->enqueue_ns = sched_now_ns();
        queue_insert(s, job);
        s->queued++;
        pthread_cond_broadcast(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    if (st && s->metrics) metrics_inference(s->metrics, s->model, METRICS_REJECTED);
    return st;
}

/* Waits up to timeout_ms for the queue to empty and the running batches to
 * finish, then fails what is still queued; close = take no more jobs. */
static void sched_wait_empty(sched *s, int64_t timeout_ms, int close) {
    pthread_mutex_lock(&s->lock);
    if (close) s->closed = 1;
    else s->retiring = 1;
    pthread_cond_broadcast(&s->wake); /* batchers stop waiting for more */
    int64_t deadline = sched_now_ns() + timeout_ms * 1000000;
    while ((s->head || s->running) && sched_now_ns() < deadline) wait_until(&s->idle, &s->lock, deadline);
    sched_job *left = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    int retiring = s->retiring; /* this model version goes (unload, reload), not the server */
    pthread_mutex_unlock(&s->lock);
    char message[sizeof s->model + 200];
    if (retiring) snprintf(message, sizeof message, SCHED_RETIRED_MESSAGE, s->model);
    else snprintf(message, sizeof message, "the server is shutting down: the request was still queued when "
                                           "limits.shutdown_timeout_ms ran out");
    int dropped = 0;
    while (left) {
        sched_job *next = left->next;
        job_fail(s, left, VIGIL_ERR_UNAVAILABLE, message);
        left = next;
        dropped++;
    }
    if (dropped) LOG_W("model %s: %d queued requests dropped at the drain timeout", s->model, dropped);
    pthread_mutex_lock(&s->lock);
    while (s->running) pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void sched_drain(sched *s, int64_t timeout_ms) { sched_wait_empty(s, timeout_ms, 1); }

void sched_retire(sched *s, int64_t timeout_ms) { sched_wait_empty(s, timeout_ms, 0); }

void sched_destroy(sched *s) {
    if (!s) return;
    sched_drain(s, 0);
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < s->n_workers; i++) {
        sched_worker *w = &s->workers[i];
        if (w->started) pthread_join(w->thread, NULL);
        s->ops->unload(w->instance.model);
    }
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    vigil_free(s->workers);
    vigil_free(s);
}

size_t sched_queue_length(sched *s) {
    pthread_mutex_lock(&s->lock);
    size_t n = s->queued;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void sched_job_cache_key(const sched_job *job, cache_hasher *h) {
    job->kind->cache_key(job, h);
}
