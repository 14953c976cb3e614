/*
 * job_raw.c - raw-tensor jobs: stack, run, split (see job_raw.h).
 *
 * Two raw jobs share a batch when their inputs have the same dtypes and
 * dimensions apart from dimension 0.  A batch of one runs on the job's own
 * tensors; a larger one is copied into the worker's staging buffers (one
 * per input, grown to the largest batch seen and kept, so a steady stream
 * allocates nothing), and every output is split back by rows into each
 * job's arena.  An output without the batch dimension cannot be split: the
 * jobs of that batch fail with UNSUPPORTED.
 */
#include "serve/job_raw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

/* A worker's staging buffers (its sched_job_kind state). */
typedef struct raw_staging {
    void *data[BACKEND_MAX_IO];
    size_t size[BACKEND_MAX_IO];
} raw_staging;

job_raw *job_raw_prepare(sched_job *job, arena *a) {
    if (job->kind == &job_raw_kind && job->data) return job->data;
    job_raw *r = arena_calloc(a, 1, sizeof *r);
    if (!r) return NULL;
    job->kind = &job_raw_kind;
    job->data = r;
    return r;
}

job_raw *job_raw_of(const sched_job *job) {
    if (job->kind != &job_raw_kind || !job->data) {
        fprintf(stderr, "%s:%d: job_raw_of: not a raw job\n", __FILE__, __LINE__);
        abort();
    }
    return job->data;
}

static int raw_batches(const sched_job *job) {
    (void)job;
    return 1;
}

static int raw_compatible(const sched_job *a, const sched_job *b) {
    const job_raw *x = a->data, *y = b->data;
    if (x->n_inputs != y->n_inputs) return 0;
    for (size_t i = 0; i < x->n_inputs; i++) {
        const vigil_tensor *p = &x->inputs[i], *q = &y->inputs[i];
        if (p->dtype != q->dtype || p->ndim != q->ndim || p->ndim < 1) return 0;
        for (int d = 1; d < p->ndim; d++)
            if (p->dims[d] != q->dims[d]) return 0;
    }
    return 1;
}

/* Copies output rows [offset, offset + job->batch) of each output into job's arena. */
static vigil_status take_outputs(sched_job *job, const vigil_tensor **outs, size_t n_out, int64_t offset,
                                 int64_t total, int whole) {
    job_raw *r = job->data;
    r->n_outputs = n_out;
    for (size_t i = 0; i < n_out; i++) {
        const vigil_tensor *o = outs[i];
        vigil_tensor *t = &r->outputs[i];
        *t = *o;
        size_t bytes = vigil_tensor_bytes(o), start = 0;
        if (!whole) {
            if (o->ndim < 1 || o->dims[0] != total)
                return vigil_error_set(&job->error, VIGIL_ERR_UNSUPPORTED,
                                       "output %zu has no batch dimension to split a batch of %lld", i,
                                       (long long)total);
            size_t row = bytes / (size_t)total;
            start = row * (size_t)offset;
            bytes = row * (size_t)job->batch;
            t->dims[0] = job->batch;
        }
        t->data = arena_alloc(job->arena, bytes ? bytes : 1, 64);
        if (!t->data) return vigil_error_set(&job->error, VIGIL_ERR_NO_MEMORY, "request memory limit reached");
        if (bytes) memcpy(t->data, (const char *)o->data + start, bytes);
    }
    return VIGIL_OK;
}

/* Stacks the jobs' inputs along dimension 0 into the staging buffers. */
static vigil_status stack(raw_staging *st, sched_job **jobs, size_t n, int64_t items, vigil_tensor *inputs,
                          vigil_error *err) {
    const job_raw *first = jobs[0]->data;
    for (size_t i = 0; i < first->n_inputs; i++) {
        inputs[i] = first->inputs[i];
        inputs[i].dims[0] = items;
        size_t bytes = vigil_tensor_bytes(&inputs[i]);
        if (bytes > st->size[i]) {
            void *p = vigil_aligned_alloc(64, bytes);
            if (!p) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "batch staging: out of memory");
            vigil_free(st->data[i]);
            st->data[i] = p;
            st->size[i] = bytes;
        }
        size_t at = 0;
        for (size_t j = 0; j < n; j++) {
            const job_raw *r = jobs[j]->data;
            size_t part = vigil_tensor_bytes(&r->inputs[i]);
            memcpy((char *)st->data[i] + at, r->inputs[i].data, part);
            at += part;
        }
        inputs[i].data = st->data[i];
    }
    return VIGIL_OK;
}

static double raw_run(const sched_instance *in, void **state, sched_job **jobs, size_t n, int64_t items) {
    const job_raw *first = jobs[0]->data;
    vigil_tensor stacked[BACKEND_MAX_IO];
    const vigil_tensor *inputs = first->inputs;
    const vigil_tensor *outs[BACKEND_MAX_IO] = {0};
    vigil_error err = {0};
    vigil_status st = VIGIL_OK;
    if (n > 1) {
        if (!*state && !(*state = vigil_calloc(1, sizeof(raw_staging))))
            st = vigil_error_set(&err, VIGIL_ERR_NO_MEMORY, "batch staging: out of memory");
        if (!st) st = stack(*state, jobs, n, items, stacked, &err);
        inputs = stacked;
    }
    int64_t t0 = sched_now_ns();
    if (!st) st = in->ops->run(in->model, items, inputs, first->n_inputs, outs, &err);
    double compute = (double)(sched_now_ns() - t0) * 1e-9;
    size_t n_out = 0;
    while (!st && n_out < BACKEND_MAX_IO && outs[n_out]) n_out++;
    int64_t offset = 0;
    for (size_t j = 0; j < n; j++) {
        sched_job *job = jobs[j];
        job->status = st;
        if (st) job->error = err;
        else job->status = take_outputs(job, outs, n_out, offset, items, n == 1);
        offset += job->batch;
    }
    return compute;
}

static void raw_state_free(void *state) {
    raw_staging *st = state;
    if (!st) return;
    for (int k = 0; k < BACKEND_MAX_IO; k++) vigil_free(st->data[k]);
    vigil_free(st);
}

/* Each input's dtype, dims and bytes. */
static void raw_cache_key(const sched_job *job, cache_hasher *h) {
    const job_raw *r = job->data;
    for (size_t i = 0; i < r->n_inputs; i++) {
        const vigil_tensor *t = &r->inputs[i];
        size_t bytes = vigil_tensor_bytes(t);
        cache_hasher_add(h, &t->dtype, sizeof t->dtype);
        cache_hasher_add(h, t->dims, (size_t)t->ndim * sizeof t->dims[0]);
        cache_hasher_add(h, t->data, bytes);
    }
}

const sched_job_kind job_raw_kind = {
    .name = "raw",
    .max_jobs = (size_t)-1, /* the scheduler's own bound and max_batch_size limit it */
    .batches = raw_batches,
    .compatible = raw_compatible,
    .run = raw_run,
    .state_free = raw_state_free,
    .cache_key = raw_cache_key,
};
