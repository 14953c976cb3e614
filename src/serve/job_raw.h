/*
 * job_raw.h - the raw-tensor job kind: the KServe v2 / Open Inference
 * Protocol path (REST /v2/.../infer, gRPC ModelInfer), behind the
 * scheduler's job interface (sched_job_kind).
 *
 * The front end parses the request's tensors into a job_raw (infer_parse,
 * grpc_infer_parse), in the request's arena; the scheduler batches jobs
 * whose inputs agree apart from dimension 0, the worker stacks them along
 * it, runs the batch on its instance and splits each output back into each
 * job's arena.
 */
#ifndef VIGIL_SERVE_JOB_RAW_H
#define VIGIL_SERVE_JOB_RAW_H

#include "serve/scheduler.h"

/* What a raw job asks for and gets (lives in the job's arena). */
typedef struct job_raw {
    /* Set by the submitter: inputs in the model's input order, dims[0] =
     * the job's batch items (sched_job.batch); data in the arena. */
    size_t n_inputs;
    vigil_tensor inputs[BACKEND_MAX_IO];
    /* Set by the run (or a cache hit, infer_outputs_unpack): data in the arena. */
    size_t n_outputs;
    vigil_tensor outputs[BACKEND_MAX_IO];
} job_raw;

extern const sched_job_kind job_raw_kind;

/* Makes job a raw job with an empty job_raw allocated in a (job->arena need
 * not be set yet); a job that already is one keeps its data.  NULL when a
 * is out of memory. */
job_raw *job_raw_prepare(sched_job *job, arena *a);

/* job's job_raw (job must be a raw job: a programmer error aborts, naming
 * file and line). */
job_raw *job_raw_of(const sched_job *job);

#endif
