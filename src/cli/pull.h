/*
 * pull.h - `vigil models pull`: fetch a model file from an http(s) URL or
 * from S3 (or an S3-compatible store such as MinIO) and install it in a
 * model repository, all or nothing.
 *
 * The file arrives in a temporary file beside its final name, is checked
 * (size cap, optional SHA-256, loads with the ONNX loader that `vigil
 * models inspect` uses) and only then renamed into place, so a reader (a
 * `vigil serve` polling the repository, an init container's main container)
 * never sees a partial or invalid model.  Any failure removes the temporary
 * file and leaves whatever was at the destination before untouched.
 */
#ifndef VIGIL_CLI_PULL_H
#define VIGIL_CLI_PULL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "vigil/status.h"

/* Credentials and placement for s3:// sources, as the AWS tools read them
 * from the environment.  Every field may be NULL: no access key means an
 * anonymous request (a public bucket); no region means us-east-1; no
 * endpoint means AWS itself (virtual-hosted https://BUCKET.s3.REGION.
 * amazonaws.com/KEY), an endpoint means path-style ENDPOINT/BUCKET/KEY. */
typedef struct pull_s3_config {
    const char *access_key_id;     /* AWS_ACCESS_KEY_ID */
    const char *secret_access_key; /* AWS_SECRET_ACCESS_KEY */
    const char *session_token;     /* AWS_SESSION_TOKEN (temporary credentials) */
    const char *region;            /* AWS_REGION, else AWS_DEFAULT_REGION */
    const char *endpoint;          /* AWS_ENDPOINT_URL: MinIO, tests */
} pull_s3_config;

typedef struct pull_options {
    const char *source;          /* http://, https:// or s3://BUCKET/KEY */
    const char *dest;            /* a file, a version folder (.../NAME/N/) or a repository folder */
    const char *sha256_hex;      /* 64 hex digits the file must hash to; NULL: not checked */
    long timeout_s;              /* bound on the whole transfer, > 0 */
    int64_t max_bytes;           /* larger bodies are refused, > 0 */
    pull_s3_config s3;           /* borrowed strings */
    volatile sig_atomic_t *stop; /* non-NULL and set (by a signal handler): abort and clean up */
} pull_options;

/* The file a destination names.  A folder whose last component is a number
 * is a version folder: DEST/model.onnx.  Another existing folder, or a path
 * ending in '/', is a repository: DEST/NAME/1/model.onnx, NAME being the
 * source's file name without ".onnx".  Anything else is the file itself.
 * Writes the path into out (size bytes). */
vigil_status pull_resolve_dest(const char *source, const char *dest, char *out, size_t size, vigil_error *err);

/* The URL an s3://BUCKET/KEY source is fetched from (see pull_s3_config). */
vigil_status pull_s3_url(const char *source, const pull_s3_config *s3, char *out, size_t size, vigil_error *err);

/* Downloads, checks and installs opt->source.  On success installed (size
 * bytes) holds the path written and *bytes_out the file's size; on failure
 * err holds one line (HTTP status and the store's error code, timeout,
 * truncation, checksum, ONNX problem) and nothing was left behind. */
vigil_status pull_model(const pull_options *opt, char *installed, size_t size, int64_t *bytes_out, vigil_error *err);

#endif
