/*
 * upload.c - PUT /api/v1/models/{m}/versions/{v}: a new model version.
 *
 * The name and version are checked with the repository's own rules before
 * a byte is stored.  The body then streams into a staging folder laid out
 * like the final one, models/.staging-XXXXXX/<m>/<v>/model.onnx (hidden from
 * the repository scan: a name starting with '.' is not a model), capped at
 * http.max_upload_bytes.  When it is complete the file is checked by
 * loading it with the model's backend from there, so whatever it refers to
 * (external data) resolves exactly as it will from models/<m>/<v>/; only
 * then is it renamed into models/<m>/<v>/model.onnx (one file system, so the
 * rename is atomic) and the model (re)loaded, unless the repository is in
 * explicit mode and the model is not loaded.  Any failure - the check, the
 * rename, the load after it - leaves nothing behind: the staging folder, the
 * version folder it created, and the model folder if it created that too.
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

/* /api/v1/models/{m}/versions/{v}: the name and version as sent (not
 * NUL-terminated), whatever their length. */
static int upload_route(const char *url, const char **model, size_t *model_len, const char **version,
                        size_t *version_len) {
    const char *prefix = "/api/v1/models/";
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0) return 0;
    const char *m = url + n, *slash = strchr(m, '/');
    if (!slash || strncmp(slash, "/versions/", 10) != 0) return 0;
    const char *v = slash + 10;
    if (strchr(v, '/')) return 0;
    *model = m;
    *model_len = (size_t)(slash - m);
    *version = v;
    *version_len = strlen(v);
    return 1;
}

/* Checks the route's name and version; 0 with the upload failed if either is malformed. */
static int upload_check_route(http_exchange *ex, const char *model, size_t model_len, const char *version,
                              size_t version_len, int64_t *v) {
    vigil_error err = {0};
    if (repository_check_name_bytes(model, model_len, &err) ||
        (!repository_parse_version(version, version_len, v) && repository_version_error(version, version_len, &err))) {
        upload_fail(ex, err.status, err.message);
        return 0;
    }
    return 1;
}

/* Removes the staging file and the folders above it up to .staging-XXXXXX
 * (path is <repo>/.staging-XXXXXX/<m>/<v>/<file>). */
static void staging_remove(char *path) {
    unlink(path);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(path, '/');
        if (!slash) break;
        *slash = '\0';
        rmdir(path);
    }
    path[0] = '\0';
}

void upload_begin(http_exchange *ex) {
    const char *model, *version;
    size_t model_len, version_len;
    int64_t v;
    if (strcmp(ex->method, "PUT") != 0 || !upload_route(ex->url, &model, &model_len, &version, &version_len)) return;
    if (!upload_check_route(ex, model, model_len, version, version_len, &v)) return;
    char model_name[MODEL_NAME_MAX];
    snprintf(model_name, sizeof model_name, "%.*s", (int)model_len, model);
    char *path = ex->upload_path;
    size_t size = sizeof ex->upload_path;
    snprintf(path, size, "%s/" REPOSITORY_STAGING_PREFIX "XXXXXX", ex->server->cfg.models_dir);
    const char *failed = "create a staging folder in the repository";
    if (mkdtemp(path)) {
        size_t at = strlen(path);
        snprintf(path + at, size - at, "/%.*s", (int)model_len, model);
        if (mkdir(path, 0755) == 0) {
            at = strlen(path);
            snprintf(path + at, size - at, "/%lld", (long long)v);
            if (mkdir(path, 0755) == 0) {
                at = strlen(path);
                snprintf(path + at, size - at, "/%s", repository_model_file(ex->server->repo, model_name));
                ex->upload_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                failed = "create the upload's file in the staging folder";
            }
        }
    }
    if (ex->upload_fd < 0) {
        char message[200];
        snprintf(message, sizeof message, "cannot %s: %s", failed, strerror(errno));
        if (path[0]) staging_remove(path);
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
    if (ex->upload_path[0]) staging_remove(ex->upload_path);
}

/* What upload_place created, to take back if the load after it fails. */
typedef struct upload_placed {
    char model_dir[2200]; /* "" when it existed before */
    char version_dir[2200];
    char file[2400];
} upload_placed;

static void upload_unplace(const upload_placed *placed) {
    unlink(placed->file);
    rmdir(placed->version_dir);
    if (placed->model_dir[0]) rmdir(placed->model_dir);
}

/* Moves the checked staging file to models/<m>/<v>/<file>. */
static vigil_status upload_place(http_exchange *ex, const char *model, long long version, const char *file,
                                 upload_placed *placed, vigil_error *err) {
    const char *root = ex->server->cfg.models_dir;
    memset(placed, 0, sizeof *placed);
    char *dir = placed->version_dir;
    snprintf(dir, sizeof placed->version_dir, "%s/%s", root, model);
    if (mkdir(dir, 0755) == 0) snprintf(placed->model_dir, sizeof placed->model_dir, "%s", dir);
    else if (errno != EEXIST)
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot create the model folder %s: %s", model, strerror(errno));
    snprintf(dir, sizeof placed->version_dir, "%s/%s/%lld", root, model, version);
    if (mkdir(dir, 0755) != 0) {
        int e = errno;
        if (placed->model_dir[0]) rmdir(placed->model_dir);
        if (e == EEXIST)
            return vigil_error_set(err, VIGIL_ERR_EXISTS,
                                   "%s/%lld: this version already exists; upload the next version number", model,
                                   version);
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot create %s/%lld: %s", model, version, strerror(e));
    }
    snprintf(placed->file, sizeof placed->file, "%s/%s", dir, file);
    if (rename(ex->upload_path, placed->file) != 0) {
        int e = errno;
        rmdir(dir);
        if (placed->model_dir[0]) rmdir(placed->model_dir);
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot move the upload to %s/%lld/%s: %s", model, version, file,
                               strerror(e));
    }
    staging_remove(ex->upload_path); /* the file has gone: the empty folders */
    return VIGIL_OK;
}

void upload_finish(http_exchange *ex, const char *model, const char *version) {
    snprintf(ex->model, sizeof ex->model, "%.127s", model);
    int64_t v = 0;
    if (!ex->upload_status) upload_check_route(ex, model, strlen(model), version, strlen(version), &v);
    if (ex->upload_fd < 0 && !ex->upload_status)
        upload_fail(ex, VIGIL_ERR_INVALID_ARGUMENT, "no upload: PUT the model file as the request body");
    if (!ex->upload_status && ex->upload_bytes == 0)
        upload_fail(ex, VIGIL_ERR_INVALID_ARGUMENT, "empty body: PUT the model file as the request body");
    if (ex->upload_status) {
        upload_abort(ex); /* before the answer: a client that reads it finds nothing left */
        respond_error(ex, ex->upload_status, ex->upload_error);
        return;
    }
    close(ex->upload_fd);
    ex->upload_fd = -1;
    vigil_error err = {0};
    const char *file = NULL;
    upload_placed placed;
    vigil_status st = repository_check_file(ex->server->repo, model, ex->upload_path, &file, &err);
    if (!st) st = upload_place(ex, model, (long long)v, file, &placed, &err);
    if (st) {
        upload_abort(ex);
        respond_error(ex, st, err.message);
        return;
    }
    LOG_I("model %s version %lld uploaded (%zu bytes)", model, (long long)v, ex->upload_bytes);
    const char *state = "UNAVAILABLE";
    int load = strcmp(ex->server->cfg.repository_mode, "explicit") != 0 ||
               repository_is_ready(ex->server->repo, model);
    if (load && repository_load(ex->server->repo, model, &err)) {
        /* it checked but does not serve: take back what the upload created */
        upload_unplace(&placed);
        repository_forget(ex->server->repo, model);
        LOG_W("model %s version %lld removed again: it does not load", model, (long long)v);
        vigil_error_prefix(&err, "version %lld was removed again: it does not load", (long long)v);
        respond_error(ex, err.status, err.message);
        return;
    }
    if (load) state = "READY";
    respond_jansson(ex, MHD_HTTP_CREATED,
                    json_pack("{s:s,s:I,s:s,s:I}", "model", model, "version", (json_int_t)v, "state", state, "bytes",
                              (json_int_t)ex->upload_bytes));
}
