/*
 * upload.c - PUT /api/v1/models/{m}/versions/{v}: a new model version.
 *
 * The body streams to a hidden temp file inside the repository directory
 * (so the final rename stays on one file system) and is capped at
 * http.max_upload_bytes.  When it is complete the file is checked by loading
 * it with the model's backend; only then is it renamed to
 * models/<m>/<v>/model.onnx, so the repository never holds a partial or
 * unloadable file under a version directory.  The model is then (re)loaded
 * unless the repository is in explicit mode and the model is not loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "serve/server_internal.h"

static void upload_fail(http_exchange *ex, vigil_status status, const char *message) {
    if (ex->upload_status) return;
    ex->upload_status = status;
    snprintf(ex->upload_error, sizeof ex->upload_error, "%.255s", message);
}

/* /api/v1/models/{m}/versions/{v} */
static int upload_route(const char *url, char *model, size_t size, char *version, size_t vsize) {
    const char *prefix = "/api/v1/models/";
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0) return 0;
    const char *m = url + n, *slash = strchr(m, '/');
    if (!slash || strncmp(slash, "/versions/", 10) != 0) return 0;
    const char *v = slash + 10;
    if ((size_t)(slash - m) >= size || strlen(v) >= vsize || strchr(v, '/')) return 0;
    snprintf(model, size, "%.*s", (int)(slash - m), m);
    snprintf(version, vsize, "%s", v);
    return 1;
}

void upload_begin(http_exchange *ex) {
    char model[MODEL_NAME_MAX], version[32];
    if (strcmp(ex->method, "PUT") != 0 || !upload_route(ex->url, model, sizeof model, version, sizeof version)) return;
    vigil_error err = {0};
    if (repository_check_name(model, &err)) {
        upload_fail(ex, err.status, err.message);
        return;
    }
    snprintf(ex->upload_path, sizeof ex->upload_path, "%s/.upload-%s-XXXXXX", ex->server->cfg.models_dir, model);
    ex->upload_fd = mkstemp(ex->upload_path);
    if (ex->upload_fd < 0) {
        ex->upload_path[0] = '\0';
        char message[200];
        snprintf(message, sizeof message, "cannot create a temporary file in the repository: %s", strerror(errno));
        upload_fail(ex, VIGIL_ERR_IO, message);
    }
}

void upload_write(http_exchange *ex, const char *data, size_t size) {
    if (ex->upload_status) return; /* keep reading, answer at the end */
    ex->upload_bytes += size;
    if (ex->upload_bytes > (size_t)ex->server->cfg.max_upload_bytes) {
        upload_fail(ex, VIGIL_ERR_LIMIT, "the model is larger than http.max_upload_bytes");
        return;
    }
    while (size) {
        ssize_t n = write(ex->upload_fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            upload_fail(ex, VIGIL_ERR_IO, "writing the upload failed (disk full?)");
            return;
        }
        data += n;
        size -= (size_t)n;
    }
}

void upload_abort(http_exchange *ex) {
    if (ex->upload_fd >= 0) close(ex->upload_fd);
    ex->upload_fd = -1;
    if (ex->upload_path[0]) unlink(ex->upload_path);
    ex->upload_path[0] = '\0';
}

/* Moves the checked temp file to models/<m>/<v>/<file>. */
static vigil_status upload_place(http_exchange *ex, const char *model, long long version, const char *file,
                                 vigil_error *err) {
    char dir[2200], final[2400];
    snprintf(dir, sizeof dir, "%s/%s", ex->server->cfg.models_dir, model);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(dir, sizeof dir, "%s/%s/%lld", ex->server->cfg.models_dir, model, version);
    if (mkdir(dir, 0755) != 0)
        return vigil_error_set(err, errno == EEXIST ? VIGIL_ERR_EXISTS : VIGIL_ERR_IO, "%s: %s", dir,
                               errno == EEXIST ? "this version already exists" : strerror(errno));
    snprintf(final, sizeof final, "%s/%s", dir, file);
    if (rename(ex->upload_path, final) != 0) {
        rmdir(dir);
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot move the upload to %s: %s", final, strerror(errno));
    }
    ex->upload_path[0] = '\0';
    return VIGIL_OK;
}

void upload_finish(http_exchange *ex, const char *model, const char *version) {
    snprintf(ex->model, sizeof ex->model, "%.127s", model);
    char *end;
    long long v = strtoll(version, &end, 10);
    if (ex->upload_fd < 0 && !ex->upload_status) upload_fail(ex, VIGIL_ERR_INVALID_ARGUMENT, "no upload");
    if (!ex->upload_status && (end == version || *end || v < 1))
        upload_fail(ex, VIGIL_ERR_INVALID_ARGUMENT, "a version is a positive integer");
    if (!ex->upload_status && ex->upload_bytes == 0) upload_fail(ex, VIGIL_ERR_INVALID_ARGUMENT, "empty body");
    if (ex->upload_status) {
        respond_error(ex, ex->upload_status, ex->upload_error);
        return;
    }
    close(ex->upload_fd);
    ex->upload_fd = -1;
    vigil_error err = {0};
    const char *file = NULL;
    vigil_status st = repository_check_file(ex->server->repo, model, ex->upload_path, &file, &err);
    if (!st) st = upload_place(ex, model, v, file, &err);
    if (st) {
        respond_error(ex, st, err.message);
        return;
    }
    LOG_I("model %s version %lld uploaded (%zu bytes)", model, v, ex->upload_bytes);
    const char *state = "UNAVAILABLE";
    int load = strcmp(ex->server->cfg.repository_mode, "explicit") != 0 ||
               repository_is_ready(ex->server->repo, model);
    if (load && repository_load(ex->server->repo, model, &err)) {
        respond_error(ex, err.status, err.message);
        return;
    }
    if (load) state = "READY";
    respond_jansson(ex, MHD_HTTP_CREATED,
                    json_pack("{s:s,s:I,s:s,s:I}", "model", model, "version", (json_int_t)v, "state", state, "bytes",
                              (json_int_t)ex->upload_bytes));
}
