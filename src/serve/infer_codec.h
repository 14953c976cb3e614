/*
 * infer_codec.h - KServe v2 (Open Inference Protocol) infer requests and
 * responses over REST: JSON tensors (flat or nested data) and the binary
 * tensor extension (Inference-Header-Content-Length, binary_data_size,
 * binary_data / binary_data_output).
 *
 * JSON tensors are read straight into their buffers, never into a JSON
 * tree: a request costs its tensors plus a tree of at most 64 KiB of text
 * (see infer_codec.c).  Data is flat or nested as the shape says.
 *
 * Parsing validates the request against the served model (names, datatypes,
 * ranks, fixed dimensions, batch size) and leaves the input tensors in the
 * request's arena, ready for the scheduler; every problem is a
 * VIGIL_ERR_INVALID_ARGUMENT (or PARSE for malformed JSON) with a message
 * that names the input.
 */
#ifndef VIGIL_SERVE_INFER_CODEC_H
#define VIGIL_SERVE_INFER_CODEC_H

#include <stddef.h>

#include "core/arena.h"
#include "serve/repository.h"
#include "serve/job_raw.h"
#include "serve/textbuf.h"

typedef struct infer_request {
    char id[256];               /* echoed back when has_id */
    int has_id;
    size_t n_selected;          /* 0 = every output */
    size_t selected[BACKEND_MAX_IO];
    int binary[BACKEND_MAX_IO]; /* per model output: answer in binary */
    int any_binary;
} infer_request;

/* v2 datatype name of dtype ("FP32") and back (-1 when unknown). */
const char *infer_datatype_name(vigil_dtype dtype);
int infer_datatype_parse(const char *name);

/* Parses body (of which the first json_len bytes are JSON; json_len ==
 * body_len when there is no binary part) into job, made a raw job
 * (job_raw_prepare, in a).  On success its inputs and job->batch are set:
 * JSON data is converted into a;
 * binary tensors aligned for their type are used where they lie in body
 * (no copy), so body must outlive the job.  Top-level keys other
 * than the v2 ones are ignored (the seed's /api/v1/inference adds "model"). */
vigil_status infer_parse(const served_model *m, const char *body, size_t body_len, size_t json_len,
                         int64_t max_elements, arena *a, infer_request *req, sched_job *job, vigil_error *err);

/* The request's JSON as jansson would parse it (flags as json_loadb's;
 * JSON_DISABLE_EOF_CHECK allows bytes after the value), except that each
 * inputs[].data is replaced by 0: the tree stays small whatever the tensors
 * hold, and the JSON apart from them is refused past 64 KiB.  For a caller
 * that needs the request's small fields before infer_parse (the seed route's
 * "model"); NULL with err set on malformed JSON.  The caller decrefs. */
struct json_t *infer_json_skeleton(const char *text, size_t len, size_t flags, vigil_error *err);

/* Checks one input's shape (rank dims) against m's input info: rank, fixed
 * dimensions, at most max_elements elements (VIGIL_ERR_LIMIT), the batch
 * range and (unless first) the same batch as the inputs before it.  Sets
 * t->ndim, t->dims, job->batch and *count (elements).  Shared by the REST
 * and gRPC front ends. */
vigil_status infer_check_shape(const served_model *m, const vigil_tensor_info *info, const int64_t *dims, size_t rank,
                               int64_t max_elements, sched_job *job, int first, vigil_tensor *t, size_t *count,
                               vigil_error *err);

/* Writes the response for a completed job; *json_len is the length of the
 * JSON part (== out->len unless some output is binary). */
vigil_status infer_respond(const served_model *m, const infer_request *req, const sched_job *job, textbuf *out,
                           size_t *json_len);

/* Packs a completed job's outputs into one blob (for the response cache),
 * and unpacks such a blob (held in the job's arena, 8-byte aligned) into
 * job->outputs.  unpack returns 0 for a blob it does not recognise. */
vigil_status infer_outputs_pack(const sched_job *job, textbuf *out);
int infer_outputs_unpack(void *blob, size_t size, sched_job *job);

/* Appends s as a JSON string literal (quoted, escaped; a byte that is not
 * part of valid UTF-8 becomes U+FFFD, so a client's raw bytes in a URL never
 * make the access log or an error body invalid JSON). */
void json_append_string(textbuf *out, const char *s);

#endif
