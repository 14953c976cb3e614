/*
 * repository.c - model entries, loading, unloading and the poll thread.
 *
 * Locks: `lock` guards the entry table and every served_model's refs; it is
 * never held while a model loads or drains.  `load_lock` serialises loads and
 * unloads (API calls, start-up and the poll thread), so two loads of one
 * model cannot interleave.  A load builds the new served_model off-lock, then
 * swaps it in; the previous one is drained and released off-lock.
 */
#include "serve/repository.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define REPO_MAX_MODELS 256
#define REPO_MAX_BACKENDS 4

typedef struct repo_entry {
    char name[MODEL_NAME_MAX];
    model_state state;
    char reason[512];
    int64_t version;       /* served, or the one that failed */
    served_model *served;  /* READY only */
} repo_entry;

struct repository {
    const vigil_config *cfg;
    metrics *metrics;
    pthread_mutex_t lock;
    pthread_mutex_t load_lock;
    repo_entry *entries[REPO_MAX_MODELS];
    size_t n_entries;
    backend_device *devices[REPO_MAX_BACKENDS];
    /* Why devices[i] is NULL: the backend's open failed (HailoRT absent,
     * refused, no card).  Fixed after repository_create. */
    char device_reasons[REPO_MAX_BACKENDS][512];
    /* poll mode */
    pthread_t poller;
    int polling;
    int stop_polling;
    pthread_cond_t poll_wake;
};

static const char *const state_names[] = {"LOADING", "READY", "UNLOADING", "UNAVAILABLE", "FAILED"};

const char *model_state_name(model_state state) {
    return state >= 0 && state < MODEL_STATE_COUNT ? state_names[state] : "UNKNOWN";
}

void repository_quote(const char *text, size_t len, char *out, size_t size) {
    size_t at = 0, i = 0;
    for (; i < len && i < 64 && at + 5 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') out[at++] = (char)c;
        else at += (size_t)snprintf(out + at, size - at, "\\x%02x", c);
    }
    if (i < len && at + 4 < size) at += (size_t)snprintf(out + at, size - at, "...");
    out[at] = '\0';
}

vigil_status repository_check_name_bytes(const char *name, size_t len, vigil_error *err) {
    char quoted[4 * 64 + 8];
    repository_quote(name, len, quoted, sizeof quoted);
    if (len == 0 || len >= MODEL_NAME_MAX || name[0] == '.')
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "invalid model name '%s' (%zu bytes): a name is 1 to 127 characters, not starting "
                               "with '.'",
                               quoted, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (isalnum(c) && c < 0x80) continue;
        if (c == '_' || c == '.' || c == '-') continue;
        char what[32];
        if (c == 0) snprintf(what, sizeof what, "a NUL byte");
        else if (c < 0x20 || c == 0x7f) snprintf(what, sizeof what, "the control character 0x%02x", c);
        else if (c >= 0x80) snprintf(what, sizeof what, "the non-ASCII byte 0x%02x", c);
        else if (c == '%' && name[i + 1] == '0' && name[i + 2] == '0') snprintf(what, sizeof what, "a NUL byte (%%00)");
        else snprintf(what, sizeof what, "'%c'", c);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "invalid model name '%s': it holds %s at byte %zu; only letters, digits, '_', '.' "
                               "and '-' are allowed",
                               quoted, what, i);
    }
    return VIGIL_OK;
}

vigil_status repository_check_name(const char *name, vigil_error *err) {
    return repository_check_name_bytes(name, strlen(name), err);
}

int repository_parse_version(const char *text, size_t len, int64_t *out) {
    if (len == 0 || len > 19 || text[0] == '0') return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') return 0;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX) return 0;
    *out = (int64_t)v;
    return 1;
}

vigil_status repository_version_error(const char *text, size_t len, vigil_error *err) {
    char quoted[4 * 64 + 8];
    repository_quote(text, len, quoted, sizeof quoted);
    return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "invalid version '%s': %s", quoted,
                           REPOSITORY_VERSION_RULE);
}

/* Removes every "prefix/" from message, in place. */
static void strip_prefix(char *message, const char *prefix) {
    size_t n = strlen(prefix);
    if (n == 0) return;
    for (char *at = strstr(message, prefix); at; at = strstr(at, prefix)) {
        unsigned char before = at == message ? ' ' : (unsigned char)at[-1];
        if (at[n] != '/' || isalnum(before) || strchr("_.-/", before)) { /* part of a longer path */
            at += n;
            continue;
        }
        memmove(at, at + n + 1, strlen(at + n + 1) + 1);
    }
}

void repository_relative_message(const vigil_config *cfg, vigil_error *err) {
    if (!err) return;
    char real[PATH_MAX];
    if (realpath(cfg->models_dir, real)) strip_prefix(err->message, real);
    strip_prefix(err->message, cfg->models_dir);
    /* an upload's staging folder: name the path the file will have */
    for (char *at = strstr(err->message, REPOSITORY_STAGING_PREFIX); at;
         at = strstr(at, REPOSITORY_STAGING_PREFIX)) {
        char *slash = strchr(at, '/');
        if (!slash) break;
        memmove(at, slash + 1, strlen(slash + 1) + 1);
    }
}

/* ------------------------------------------------------------ entries */

/* The entry for name, or NULL.  Lock held. */
static repo_entry *entry_find(repository *repo, const char *name) {
    for (size_t i = 0; i < repo->n_entries; i++)
        if (strcmp(repo->entries[i]->name, name) == 0) return repo->entries[i];
    return NULL;
}

/* The entry for name, created in name order.  Lock held. */
static repo_entry *entry_get(repository *repo, const char *name) {
    repo_entry *e = entry_find(repo, name);
    if (e || repo->n_entries == REPO_MAX_MODELS) return e;
    e = vigil_calloc(1, sizeof *e);
    if (!e) return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->state = MODEL_UNAVAILABLE;
    size_t at = repo->n_entries;
    while (at > 0 && strcmp(repo->entries[at - 1]->name, name) > 0) {
        repo->entries[at] = repo->entries[at - 1];
        at--;
    }
    repo->entries[at] = e;
    repo->n_entries++;
    return e;
}

/* Forgets e (not READY, so it holds no model).  Lock held. */
static void entry_remove(repository *repo, repo_entry *e) {
    size_t i = 0;
    while (i < repo->n_entries && repo->entries[i] != e) i++;
    if (i == repo->n_entries) return;
    memmove(&repo->entries[i], &repo->entries[i + 1], (repo->n_entries - i - 1) * sizeof repo->entries[0]);
    repo->n_entries--;
    vigil_free(e);
}

static void entry_set(repository *repo, const char *name, model_state state, int64_t version, const char *reason) {
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_get(repo, name);
    if (e) {
        e->state = state;
        e->version = version;
        snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&repo->lock);
}

/* ------------------------------------------------------------ served models */

static void served_free(served_model *m) {
    if (!m) return;
    vigil_detect_spec_destroy(m->frame_spec);
    sched_destroy(m->sched);
    vigil_free(m);
}

void repository_release(repository *repo, served_model *m) {
    if (!m) return;
    pthread_mutex_lock(&repo->lock);
    int last = --m->refs == 0;
    pthread_mutex_unlock(&repo->lock);
    if (last) served_free(m);
}

int repository_release_shared(repository *repo, served_model *m) {
    if (!m) return 1;
    pthread_mutex_lock(&repo->lock);
    int shared = m->refs > 1;
    if (shared) m->refs--;
    pthread_mutex_unlock(&repo->lock);
    return shared;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

vigil_status repository_acquire(repository *repo, const char *name, int64_t version, served_model **out,
                                vigil_error *err) {
    vigil_status st = repository_check_name(name, err); /* malformed: 400, well-formed and unknown: 404 */
    if (st) return st;
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_find(repo, name);
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", repo->cfg->models_dir, name);
    if (!e && is_dir(dir)) {
        st = vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "model '%s' is not loaded (UNAVAILABLE)", name);
    } else if (!e) {
        st = vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "unknown model '%s'", name);
    } else if (e->state != MODEL_READY) {
        st = vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "model '%s' is not ready (%s%s%s)", name,
                             model_state_name(e->state), e->reason[0] ? ": " : "", e->reason);
    } else if (version && version != e->served->version) {
        st = vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "model '%s' has no version %lld loaded (serving %lld)", name,
                             (long long)version, (long long)e->served->version);
    } else {
        e->served->refs++;
        *out = e->served;
    }
    pthread_mutex_unlock(&repo->lock);
    return st;
}

/* ------------------------------------------------------------ loading */


int64_t repository_highest_version(const char *dir, const char *file) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int64_t best = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        const char *n = ent->d_name;
        int64_t v;
        if (!repository_parse_version(n, strlen(n), &v)) continue; /* "01", "1x": not a version folder */
        char path[2300];
        snprintf(path, sizeof path, "%s/%s/%s", dir, n, file);
        if (v > best && access(path, R_OK) == 0) best = v;
    }
    closedir(d);
    return best;
}

static int total_threads(const repository *repo) {
    if (repo->cfg->threads > 0) return (int)repo->cfg->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

model_task repository_model_task(model_task configured, const vigil_tensor_info *input,
                                 const vigil_tensor_info *outputs, size_t n_outputs, const char *names,
                                 const char *task, const char *imgsz, vigil_head_family *family) {
    *family = vigil_head_family_of(input, outputs, n_outputs, names, task, imgsz);
    if (configured != MODEL_TASK_AUTO) return configured;
    return *family != VIGIL_HEAD_AUTO ? MODEL_TASK_DETECT : MODEL_TASK_RAW;
}

/* The served version's task and family, from its first instance. */
static void served_infer_task(served_model *m, const backend_model *first) {
    vigil_tensor_info outputs[BACKEND_MAX_IO];
    for (size_t i = 0; i < m->io.n_outputs; i++)
        outputs[i] = *m->io.outputs[i];
    m->task = repository_model_task(m->config.task, m->io.n_inputs ? m->io.inputs[0] : NULL, outputs,
                                    m->io.n_outputs, m->ops->metadata(first, "names"),
                                    m->ops->metadata(first, "task"), m->ops->metadata(first, "imgsz"), &m->family);
}

/* The frame spec of a detection model with a device's uint8 input (see
 * served_model): the workers' spec, made once more for the front ends.  A
 * model it fails for has none (its workers report why). */
static void served_frame_spec(served_model *m, const backend_model *first, const char *labels,
                              int64_t max_image_pixels) {
    if (m->task != MODEL_TASK_DETECT || m->io.n_inputs != 1 || m->io.inputs[0]->dtype != VIGIL_DTYPE_U8) return;
    vigil_detector_options opts = vigil_detector_options_default();
    opts.labels_path = labels;
    opts.decode.max_pixels = max_image_pixels;
    opts.jpeg_reduced_scale = m->config.jpeg_reduced_scale;
    vigil_error err = {0};
    const char *(*meta)(const backend_model *, const char *) = m->ops->metadata;
    if (vigil_detect_spec_create(m->io.inputs[0], m->io.outputs, m->io.n_outputs, meta ? meta(first, "names") : NULL,
                                 meta ? meta(first, "task") : NULL, meta ? meta(first, "imgsz") : NULL, &opts,
                                 &m->frame_spec, &err))
        m->frame_spec = NULL;
}

/* VIGIL_ERR_UNAVAILABLE, with the reason, when backend index has no device. */
static vigil_status repository_device_check(const repository *repo, size_t index, vigil_error *err) {
    if (repo->devices[index]) return VIGIL_OK;
    return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "the %s backend is unavailable: %s", backend_at(index)->name,
                           repo->device_reasons[index]);
}

/* Loads the instances of one version into a new scheduler. */
static vigil_status served_build(repository *repo, served_model *m, const char *dir, const char *path,
                                 vigil_error *err) {
    size_t backend_index = 0;
    while (backend_at(backend_index) != m->ops) backend_index++;
    backend_model *instances[64] = {0};
    size_t n = (size_t)m->config.instances;
    vigil_status st = repository_device_check(repo, backend_index, err);
    const backend_schedule schedule = {.priority = m->config.sched_priority,
                                       .timeout_ms = m->config.sched_timeout_ms,
                                       .threshold = m->config.sched_threshold};
    for (size_t i = 0; i < n && !st; i++) {
        backend_io io;
        st = m->ops->load(repo->devices[backend_index], path, &instances[i], &io, err);
        if (!st && i == 0) m->io = io;
        if (!st && m->ops->schedule) st = m->ops->schedule(instances[i], &schedule, err);
    }
    if (st) {
        for (size_t i = 0; i < n; i++)
            if (instances[i]) m->ops->unload(instances[i]);
        return st;
    }
    if (m->config.max_batch_size < 0) m->config.max_batch_size = m->io.native_batch == 0 ? 8 : 1;
    served_infer_task(m, instances[0]);
    char labels[3100] = "";
    if (m->config.labels[0]) snprintf(labels, sizeof labels, "%s/%s", dir, m->config.labels);
    served_frame_spec(m, instances[0], labels[0] ? labels : NULL, repo->cfg->max_image_pixels);
    sched_options so = {.model = m->name,
                        .config = &m->config,
                        .max_queue = repo->cfg->max_queue,
                        .ops = m->ops,
                        .io = &m->io,
                        .metrics = repo->metrics,
                        .labels_path = labels[0] ? labels : NULL,
                        .max_image_pixels = repo->cfg->max_image_pixels};
    return sched_create(&so, instances, n, &m->sched, err);
}

/* Reads config.yaml, finds the highest version and builds it. */
static vigil_status served_load(repository *repo, const char *name, served_model **out, int64_t *version,
                                vigil_error *err) {
    char dir[2048], path[2400];
    snprintf(dir, sizeof dir, "%s/%s", repo->cfg->models_dir, name);
    *version = 0;
    if (!is_dir(dir)) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "no model folder %s in the repository", name);
    served_model *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    snprintf(m->name, sizeof m->name, "%s", name);
    model_config_defaults(&m->config);
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    vigil_status st = model_config_load(path, &m->config, err);
    if (!st && !(m->ops = backend_find(m->config.backend)))
        st = vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s: unknown backend '%s'", path, m->config.backend);
    if (!st && !(m->version = repository_highest_version(dir, m->ops->model_file)))
        st = vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "%s: no version folder holds %s (%s/1/%s)", name,
                             m->ops->model_file, name, m->ops->model_file);
    *version = m->version;
    if (!st) {
        snprintf(path, sizeof path, "%s/%lld/%s", dir, (long long)m->version, m->ops->model_file);
        st = served_build(repo, m, dir, path, err);
    }
    if (st) {
        vigil_detect_spec_destroy(m->frame_spec);
        vigil_free(m);
        return st;
    }
    m->refs = 1; /* the repository's */
    *out = m;
    return VIGIL_OK;
}

static vigil_status load_locked(repository *repo, const char *name, vigil_error *err) {
    vigil_status st = repository_check_name(name, err);
    if (st) return st;
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_get(repo, name);
    if (e && e->state != MODEL_READY) e->state = MODEL_LOADING;
    pthread_mutex_unlock(&repo->lock);
    if (!e) return vigil_error_set(err, VIGIL_ERR_LIMIT, "the repository holds %d models at most", REPO_MAX_MODELS);

    served_model *fresh = NULL;
    int64_t version = 0;
    int64_t t0 = sched_now_ns();
    st = served_load(repo, name, &fresh, &version, err);
    if (st) repository_relative_message(repo->cfg, err); /* reasons and answers never show where the repository is */
    pthread_mutex_lock(&repo->lock);
    served_model *old = NULL;
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", repo->cfg->models_dir, name);
    if (st && e->state != MODEL_READY && !is_dir(dir)) { /* nothing on disk: no entry */
        entry_remove(repo, e);
    } else if (st) {
        if (e->state != MODEL_READY) { /* a failed reload keeps the old version serving */
            e->state = MODEL_FAILED;
            e->version = version;
        }
        snprintf(e->reason, sizeof e->reason, "%s", err->message);
    } else {
        old = e->served;
        e->served = fresh;
        e->state = MODEL_READY;
        e->version = version;
        e->reason[0] = '\0';
    }
    pthread_mutex_unlock(&repo->lock);
    if (st) {
        LOG_W("model %s failed to load: %s", name, err->message);
        return st;
    }
    LOG_I("model %s version %lld ready (%s, task %s, %lld instance%s, max batch %lld) in %.0f ms", name,
          (long long)version, fresh->ops->name, fresh->task == MODEL_TASK_DETECT ? "detect" : "raw",
          (long long)fresh->config.instances, fresh->config.instances == 1 ? "" : "s",
          (long long)fresh->config.max_batch_size, (double)(sched_now_ns() - t0) / 1e6);
    if (old) {
        sched_retire(old->sched, repo->cfg->shutdown_timeout_ms);
        repository_release(repo, old);
    }
    return VIGIL_OK;
}

vigil_status repository_load(repository *repo, const char *name, vigil_error *err) {
    pthread_mutex_lock(&repo->load_lock);
    vigil_status st = load_locked(repo, name, err);
    pthread_mutex_unlock(&repo->load_lock);
    return st;
}

static vigil_status unload_locked(repository *repo, const char *name, vigil_error *err) {
    vigil_status st = repository_check_name(name, err);
    if (st) return st;
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_find(repo, name);
    served_model *old = NULL;
    if (!e) {
        st = vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "unknown model '%s'", name);
    } else {
        old = e->served;
        e->served = NULL;
        e->state = old ? MODEL_UNLOADING : MODEL_UNAVAILABLE;
        e->reason[0] = '\0';
    }
    pthread_mutex_unlock(&repo->lock);
    if (st || !old) return st;
    sched_retire(old->sched, repo->cfg->shutdown_timeout_ms);
    repository_release(repo, old);
    entry_set(repo, name, MODEL_UNAVAILABLE, 0, "unloaded");
    LOG_I("model %s unloaded", name);
    return VIGIL_OK;
}

vigil_status repository_unload(repository *repo, const char *name, vigil_error *err) {
    pthread_mutex_lock(&repo->load_lock);
    vigil_status st = unload_locked(repo, name, err);
    pthread_mutex_unlock(&repo->load_lock);
    return st;
}

/* The backend name's config.yaml asks for (the CPU engine by default); OUT: *index, its backend_at index. */
static vigil_status config_backend(repository *repo, const char *name, size_t *index, vigil_error *err) {
    model_config cfg;
    model_config_defaults(&cfg);
    char config_path[2300];
    snprintf(config_path, sizeof config_path, "%s/%s/config.yaml", repo->cfg->models_dir, name);
    vigil_status st = model_config_load(config_path, &cfg, err);
    if (st) {
        repository_relative_message(repo->cfg, err);
        return st;
    }
    size_t i = 0;
    while (backend_at(i) && strcmp(backend_at(i)->name, cfg.backend) != 0) i++;
    if (!backend_at(i) || i >= REPO_MAX_BACKENDS)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s/config.yaml: unknown backend '%s'", name, cfg.backend);
    *index = i;
    return VIGIL_OK;
}

const char *repository_model_file(repository *repo, const char *name) {
    size_t index = 0;
    vigil_error ignored = {0};
    return config_backend(repo, name, &index, &ignored) ? backend_at(0)->model_file : backend_at(index)->model_file;
}

vigil_status repository_check_file(repository *repo, const char *name, const char *path, const char **file,
                                   vigil_error *err) {
    size_t index = 0;
    vigil_status st = config_backend(repo, name, &index, err);
    if (st) return st;
    const backend_ops *ops = backend_at(index);
    backend_model *model = NULL;
    backend_io io;
    st = repository_device_check(repo, index, err);
    if (!st) st = ops->load(repo->devices[index], path, &model, &io, err);
    if (st) {
        repository_relative_message(repo->cfg, err);
        vigil_error_prefix(err, "the uploaded model does not load");
        /* what it points at is absent or outside its folder: the upload is at fault */
        if (st == VIGIL_ERR_NOT_FOUND || st == VIGIL_ERR_PERMISSION) st = err->status = VIGIL_ERR_INVALID_ARGUMENT;
        return st;
    }
    ops->unload(model);
    *file = ops->model_file;
    return VIGIL_OK;
}

void repository_forget(repository *repo, const char *name) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", repo->cfg->models_dir, name);
    pthread_mutex_lock(&repo->load_lock); /* not while a load of it runs */
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_find(repo, name);
    if (e && e->state != MODEL_READY && !e->served && !is_dir(dir)) entry_remove(repo, e);
    pthread_mutex_unlock(&repo->lock);
    pthread_mutex_unlock(&repo->load_lock);
}

int repository_is_ready(repository *repo, const char *name) {
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_find(repo, name);
    int ready = e && e->state == MODEL_READY;
    pthread_mutex_unlock(&repo->lock);
    return ready;
}

/* ------------------------------------------------------------ scanning */

/* Calls fn for each model directory with a valid name. */
static void scan_models(repository *repo, void (*fn)(repository *repo, const char *name)) {
    DIR *d = opendir(repo->cfg->models_dir);
    if (!d) return;
    char names[REPO_MAX_MODELS][MODEL_NAME_MAX];
    size_t n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < REPO_MAX_MODELS) {
        if (ent->d_name[0] == '.') continue; /* includes uploads in progress */
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", repo->cfg->models_dir, ent->d_name);
        if (!is_dir(path)) continue;
        vigil_error err = {0};
        if (repository_check_name(ent->d_name, &err)) {
            LOG_W("model repository: skipping directory '%s': %s", ent->d_name, err.message);
            continue;
        }
        snprintf(names[n++], MODEL_NAME_MAX, "%.127s", ent->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) fn(repo, names[i]);
}

static void load_at_start(repository *repo, const char *name) {
    vigil_error err = {0};
    repository_load(repo, name, &err); /* failures are recorded in the entry and logged */
}

/* Poll tick for one directory: load new models and newer versions. */
static void poll_model(repository *repo, const char *name) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", repo->cfg->models_dir, name);
    int64_t on_disk = repository_highest_version(dir, "model.onnx");
    pthread_mutex_lock(&repo->lock);
    repo_entry *e = entry_find(repo, name);
    int stale = !e || (e->state == MODEL_READY && on_disk > e->version) ||
                (e->state == MODEL_FAILED && on_disk != e->version);
    pthread_mutex_unlock(&repo->lock);
    if (stale) load_at_start(repo, name);
}

/* Unloads READY models whose directory vanished. */
static void poll_vanished(repository *repo) {
    char gone[REPO_MAX_MODELS][MODEL_NAME_MAX];
    size_t n = 0;
    pthread_mutex_lock(&repo->lock);
    for (size_t i = 0; i < repo->n_entries; i++) {
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", repo->cfg->models_dir, repo->entries[i]->name);
        if (repo->entries[i]->state == MODEL_READY && !is_dir(dir)) snprintf(gone[n++], MODEL_NAME_MAX, "%s", repo->entries[i]->name);
    }
    pthread_mutex_unlock(&repo->lock);
    for (size_t i = 0; i < n; i++) {
        vigil_error err = {0};
        repository_unload(repo, gone[i], &err);
    }
}

static void *poll_main(void *arg) {
    repository *repo = arg;
    pthread_mutex_lock(&repo->lock);
    while (!repo->stop_polling) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t when = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + repo->cfg->poll_interval_ms * 1000000;
        ts.tv_sec = when / 1000000000;
        ts.tv_nsec = when % 1000000000;
        pthread_cond_timedwait(&repo->poll_wake, &repo->lock, &ts);
        if (repo->stop_polling) break;
        pthread_mutex_unlock(&repo->lock);
        scan_models(repo, poll_model);
        poll_vanished(repo);
        pthread_mutex_lock(&repo->lock);
    }
    pthread_mutex_unlock(&repo->lock);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

vigil_status repository_create(const vigil_config *cfg, metrics *m, repository **out, vigil_error *err) {
    repository *repo = vigil_calloc(1, sizeof *repo);
    if (!repo) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "repository: out of memory");
    repo->cfg = cfg;
    repo->metrics = m;
    pthread_mutex_init(&repo->lock, NULL);
    pthread_mutex_init(&repo->load_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&repo->poll_wake, &attr);
    pthread_condattr_destroy(&attr);
    for (size_t i = 0; backend_at(i) && i < REPO_MAX_BACKENDS; i++) {
        backend_options bo = {.threads = total_threads(repo), .batch_cap = (int)cfg->engine_batch_cap};
        (void)backend_float16_parse(cfg->engine_float16, &bo.float16); /* the config table checked the word */
        vigil_error why = {0};
        vigil_status st = backend_at(i)->open(&bo, &repo->devices[i], &why);
        if (st && i == 0) { /* the CPU engine serves every server: without it, no server */
            *err = why;
            repository_destroy(repo);
            return st;
        }
        if (st) { /* an accelerator that is absent or refused: the others serve, and the reason is kept */
            repo->devices[i] = NULL;
            snprintf(repo->device_reasons[i], sizeof repo->device_reasons[i], "%s", why.message);
            LOG_I("backend %s unavailable: %s", backend_at(i)->name, why.message);
        }
    }
    *out = repo;
    return VIGIL_OK;
}

vigil_status repository_start(repository *repo, vigil_error *err) {
    if (!is_dir(repo->cfg->models_dir)) {
        if (strcmp(repo->cfg->repository_mode, "explicit") == 0) return VIGIL_OK;
        return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "model repository %s: %s", repo->cfg->models_dir,
                               strerror(errno));
    }
    if (strcmp(repo->cfg->repository_mode, "explicit") == 0) return VIGIL_OK;
    scan_models(repo, load_at_start);
    if (strcmp(repo->cfg->repository_mode, "poll") == 0) {
        if (pthread_create(&repo->poller, NULL, poll_main, repo) != 0)
            return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "repository: cannot start the poll thread");
        repo->polling = 1;
    }
    return VIGIL_OK;
}

static void stop_polling(repository *repo) {
    if (!repo->polling) return;
    pthread_mutex_lock(&repo->lock);
    repo->stop_polling = 1;
    pthread_cond_broadcast(&repo->poll_wake);
    pthread_mutex_unlock(&repo->lock);
    pthread_join(repo->poller, NULL);
    repo->polling = 0;
}

void repository_drain(repository *repo, int64_t timeout_ms) {
    stop_polling(repo);
    int64_t deadline = sched_now_ns() + timeout_ms * 1000000;
    pthread_mutex_lock(&repo->load_lock);
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&repo->lock);
        served_model *m = i < repo->n_entries ? repo->entries[i]->served : NULL;
        int more = i < repo->n_entries;
        if (m) m->refs++;
        pthread_mutex_unlock(&repo->lock);
        if (!more) break;
        if (!m) continue;
        int64_t left = (deadline - sched_now_ns()) / 1000000;
        sched_drain(m->sched, left > 0 ? left : 0);
        repository_release(repo, m);
    }
    pthread_mutex_unlock(&repo->load_lock);
}

void repository_destroy(repository *repo) {
    if (!repo) return;
    stop_polling(repo);
    for (size_t i = 0; i < repo->n_entries; i++) {
        repository_release(repo, repo->entries[i]->served);
        vigil_free(repo->entries[i]);
    }
    for (size_t i = 0; i < REPO_MAX_BACKENDS; i++)
        if (repo->devices[i]) backend_at(i)->close(repo->devices[i]);
    pthread_cond_destroy(&repo->poll_wake);
    pthread_mutex_destroy(&repo->load_lock);
    pthread_mutex_destroy(&repo->lock);
    vigil_free(repo);
}

/* ------------------------------------------------------------ listing */

void repository_each(repository *repo, void (*fn)(const repository_item *item, void *user), void *user) {
    pthread_mutex_lock(&repo->lock);
    for (size_t i = 0; i < repo->n_entries; i++) {
        const repo_entry *e = repo->entries[i];
        repository_item item = {.name = e->name,
                                .version = e->version,
                                .state = e->state,
                                .reason = e->reason,
                                .queue_length = e->served ? sched_queue_length(e->served->sched) : 0,
                                .task = e->served ? e->served->task : MODEL_TASK_AUTO,
                                .family = e->served ? e->served->family : VIGIL_HEAD_AUTO};
        fn(&item, user);
    }
    /* Directories never loaded (explicit mode) are listed as UNAVAILABLE. */
    DIR *d = opendir(repo->cfg->models_dir);
    struct dirent *ent;
    while (d && (ent = readdir(d))) {
        vigil_error err = {0};
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", repo->cfg->models_dir, ent->d_name);
        if (repository_check_name(ent->d_name, &err) || entry_find(repo, ent->d_name) || !is_dir(path)) continue;
        repository_item item = {.name = ent->d_name, .state = MODEL_UNAVAILABLE, .reason = ""};
        fn(&item, user);
    }
    if (d) closedir(d);
    pthread_mutex_unlock(&repo->lock);
}

vigil_status repository_default_detector(repository *repo, char *name, size_t size, vigil_error *err) {
    const char *chosen = repo->cfg->default_detect_model;
    if (chosen[0]) { /* detect.default_model: that one, or a reason why not */
        snprintf(name, size, "%s", chosen);
        return VIGIL_OK;
    }
    int found = 0;
    char candidates[512] = "";
    size_t used = 0;
    pthread_mutex_lock(&repo->lock);
    for (size_t i = 0; i < repo->n_entries; i++) {
        const repo_entry *e = repo->entries[i];
        if (e->state != MODEL_READY || e->served->task != MODEL_TASK_DETECT) continue;
        if (!found) snprintf(name, size, "%s", e->name);
        if (used < sizeof candidates) {
            int n = snprintf(candidates + used, sizeof candidates - used, "%s%s", found ? ", " : "", e->name);
            used += n > 0 ? (size_t)n : 0;
        }
        found++;
    }
    pthread_mutex_unlock(&repo->lock);
    if (found == 0) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "no detection model is ready");
    if (found > 1)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "the request names no model and %d detection models are ready (%s): name one, or "
                               "set a default with detect.default_model (flag --detect-default-model)",
                               found, candidates);
    return VIGIL_OK;
}

const char *repository_default_detector_name(repository *repo, char *name, size_t size) {
    vigil_error ignored;
    if (repository_default_detector(repo, name, size, &ignored) != VIGIL_OK) return NULL;
    return name;
}

backend_device *repository_backend_device(const repository *repo, size_t index, const char **reason) {
    *reason = "not opened";
    if (index >= REPO_MAX_BACKENDS || !backend_at(index)) return NULL;
    if (!repo->devices[index] && repo->device_reasons[index][0]) *reason = repo->device_reasons[index];
    return repo->devices[index];
}
