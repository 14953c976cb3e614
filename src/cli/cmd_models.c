/*
 * cmd_models.c - `vigil models`: look at model files and (later) the model
 * repository.
 *
 * `vigil models inspect M.onnx|DIR [--json]` loads the file with the ONNX loader
 * (nothing is compiled or run) and prints what a user needs before serving
 * it: inputs and outputs with dtypes and shapes (symbolic dims by name),
 * opsets, IR version, producer, node and operator counts, initializer count
 * and bytes, and the metadata_props (Ultralytics' names/stride/imgsz/task).
 * A malformed file is a one-line error and exit status 1, never a crash.
 * DIR is a repository model folder (models/yolov8n/, its highest version
 * folder is taken, as `vigil serve` does) or a version folder
 * (models/yolov8n/1/); either way its model.onnx is inspected and named.
 *
 * `vigil models list [--models DIR]` shows a repository as `vigil serve`
 * would load it: served version, backend, task and head family (the
 * repository's own rules: repository_highest_version, repository_model_task).
 *
 * `vigil models pull SOURCE DEST` fetches a model from an http(s) URL or
 * s3://BUCKET/KEY into a repository, all or nothing (pull.c): what an init
 * container runs before `vigil serve` on Kubernetes.
 *
 * `vigil models quantize IN OUT --calibrate IMAGE...` writes a QDQ int8
 * model (vigil_model_quantize, src/engine/quantize.c), activation ranges
 * measured on the letterboxed images.
 *
 * Subcommands are a table.
 */
#include <dirent.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keys.h"
#include "cli/commands.h"
#include "cli/pull.h"
#include "core/alloc.h"
#include "engine/onnx.h"
#include "serve/repository.h"
#include "vigil/engine.h"
#include "vigil/vision.h"

typedef struct models_subcommand {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *usage;                 /* arguments, for --help */
    const char *summary;
} models_subcommand;


/* One operator type and how often it occurs. */
typedef struct op_count {
    const char *domain;
    const char *op_type;
    size_t count;
} op_count;

static int op_count_cmp(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    int c = strcmp(x->domain, y->domain);
    return c ? c : strcmp(x->op_type, y->op_type);
}

/* Histogram of op types, sorted by count (descending) then name.  Returns
 * NULL on allocation failure; *n_out receives the number of distinct ops. */
static op_count *models_op_histogram(const onnx_model *m, size_t *n_out) {
    op_count *ops = vigil_calloc(m->n_nodes ? m->n_nodes : 1, sizeof *ops);
    if (!ops) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const onnx_node *node = &m->nodes[i];
        size_t k = 0;
        while (k < n && (strcmp(ops[k].op_type, node->op_type) || strcmp(ops[k].domain, node->domain))) k++;
        if (k == n) ops[n++] = (op_count){node->domain, node->op_type, 0};
        ops[k].count++;
    }
    qsort(ops, n, sizeof *ops, op_count_cmp);
    *n_out = n;
    return ops;
}

static size_t models_initializer_bytes(const onnx_model *m) {
    size_t total = 0;
    for (size_t i = 0; i < m->n_initializers; i++) total += m->initializers[i].nbytes;
    return total;
}

/* "[batch, 3, 640, 640]", "?" for unknown dims, "(unknown rank)". */
static void models_format_shape(const onnx_value_info *vi, char *buf, size_t size) {
    if (vi->ndim < 0) {
        snprintf(buf, size, "(unknown rank)");
        return;
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < vi->ndim && used < size; i++) {
        const char *sep = i ? ", " : "";
        if (vi->dim_params[i]) used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, vi->dim_params[i]);
        else if (vi->dims[i] >= 0) used += (size_t)snprintf(buf + used, size - used, "%s%lld", sep, (long long)vi->dims[i]);
        else used += (size_t)snprintf(buf + used, size - used, "%s?", sep);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

static void models_format_bytes(size_t bytes, char *buf, size_t size) {
    if (bytes >= (1u << 20)) snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
    else if (bytes >= 1024) snprintf(buf, size, "%.1f KiB", (double)bytes / 1024);
    else snprintf(buf, size, "%zu B", bytes);
}

static void models_print_values(const char *title, const onnx_value_info *vis, size_t n) {
    printf("%s:\n", title);
    for (size_t i = 0; i < n; i++) {
        char shape[256];
        models_format_shape(&vis[i], shape, sizeof shape);
        printf("  %-24s %-8s %s\n", vis[i].name, onnx_dtype_name(vis[i].dtype), shape);
    }
}

static void models_print_text(const char *path, int64_t version, const onnx_model *m, const op_count *ops,
                              size_t n_ops) {
    char size_text[32], weights_text[32];
    models_format_bytes(m->file_bytes, size_text, sizeof size_text);
    models_format_bytes(models_initializer_bytes(m), weights_text, sizeof weights_text);
    printf("model:        %s (%s)\n", path, size_text);
    if (version > 0) printf("version:      %lld (the highest in the folder, as vigil serve picks)\n", (long long)version);
    printf("ir_version:   %lld\n", (long long)m->ir_version);
    printf("opset:        %lld", (long long)m->opset);
    for (size_t i = 0; i < m->n_opsets; i++)
        if (m->opsets[i].domain[0] && strcmp(m->opsets[i].domain, "ai.onnx") != 0)
            printf(", %s %lld", m->opsets[i].domain, (long long)m->opsets[i].version);
    printf("\nproducer:     %s%s%s\n", m->producer_name[0] ? m->producer_name : "(none)",
           m->producer_version[0] ? " " : "", m->producer_version);
    printf("graph:        %s\n", m->graph_name[0] ? m->graph_name : "(unnamed)");
    models_print_values("inputs", m->inputs, m->n_inputs);
    models_print_values("outputs", m->outputs, m->n_outputs);
    printf("nodes:        %zu\n", m->n_nodes);
    printf("operators:\n");
    for (size_t i = 0; i < n_ops; i++) {
        char op[256];
        snprintf(op, sizeof op, "%s%s%s", ops[i].domain, ops[i].domain[0] ? ":" : "", ops[i].op_type);
        printf("  %-24s %zu\n", op, ops[i].count);
    }
    printf("initializers: %zu (%s)\n", m->n_initializers, weights_text);
    printf("metadata:%s\n", m->n_metadata ? "" : "     (none)");
    for (size_t i = 0; i < m->n_metadata; i++) printf("  %s: %s\n", m->metadata[i].key, m->metadata[i].value);
}

static json_t *models_json_values(const onnx_value_info *vis, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *shape = vis[i].ndim < 0 ? json_null() : json_array();
        for (int k = 0; k < vis[i].ndim; k++) {
            if (vis[i].dim_params[k]) json_array_append_new(shape, json_string(vis[i].dim_params[k]));
            else if (vis[i].dims[k] >= 0) json_array_append_new(shape, json_integer(vis[i].dims[k]));
            else json_array_append_new(shape, json_null());
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", vis[i].name, "dtype",
                                             onnx_dtype_name(vis[i].dtype), "shape", shape));
    }
    return arr;
}

static int models_print_json(const char *path, int64_t version, const onnx_model *m, const op_count *ops,
                             size_t n_ops) {
    json_t *opsets = json_object(), *operators = json_array(), *metadata = json_object();
    for (size_t i = 0; i < m->n_opsets; i++)
        json_object_set_new(opsets, m->opsets[i].domain[0] ? m->opsets[i].domain : "ai.onnx",
                            json_integer(m->opsets[i].version));
    for (size_t i = 0; i < n_ops; i++)
        json_array_append_new(operators, json_pack("{s:s, s:s, s:I}", "op_type", ops[i].op_type, "domain",
                                                   ops[i].domain, "count", (json_int_t)ops[i].count));
    for (size_t i = 0; i < m->n_metadata; i++)
        json_object_set_new(metadata, m->metadata[i].key, json_string(m->metadata[i].value));
    json_t *root = json_pack(
        "{s:s, s:I, s:I, s:I, s:o, s:s, s:s, s:s, s:o, s:o, s:I, s:o, s:I, s:I, s:o}", "path", path,
        "file_bytes", (json_int_t)m->file_bytes, "ir_version", (json_int_t)m->ir_version, "opset",
        (json_int_t)m->opset, "opsets", opsets, "producer_name", m->producer_name, "producer_version",
        m->producer_version, "graph_name", m->graph_name, "inputs", models_json_values(m->inputs, m->n_inputs),
        "outputs", models_json_values(m->outputs, m->n_outputs), "node_count", (json_int_t)m->n_nodes,
        "operators", operators, "initializer_count", (json_int_t)m->n_initializers, "initializer_bytes",
        (json_int_t)models_initializer_bytes(m), "metadata", metadata);
    if (root && version > 0) json_object_set_new(root, "version", json_integer(version));
    /* json_string returns NULL for invalid UTF-8: json_pack then fails as a whole */
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text) {
        fprintf(stderr, "vigil models inspect: %s: cannot render JSON (names or metadata not valid UTF-8?)\n",
                path);
        return 1;
    }
    printf("%s\n", text);
    free(text); /* allocated by jansson */
    return 0;
}

#define MODEL_FILE "model.onnx" /* the file a version folder holds (the CPU backend's) */

/* Turns the argument into the ONNX file to read: a file as given; a version
 * folder's MODEL_FILE; a model folder's highest version (*version set).
 * Returns 0, or 1 with one line printed. */
static int models_resolve(const char *arg, char *file, size_t size, int64_t *version) {
    struct stat st;
    *version = 0;
    if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) { /* a file, or an error the loader words */
        snprintf(file, size, "%s", arg);
        return 0;
    }
    size_t len = strlen(arg);
    const char *sep = len && arg[len - 1] == '/' ? "" : "/";
    snprintf(file, size, "%s%s" MODEL_FILE, arg, sep);
    if (access(file, F_OK) == 0) return 0; /* a version folder */
    *version = repository_highest_version(arg, MODEL_FILE);
    if (*version == 0) {
        fprintf(stderr,
                "vigil models inspect: %s holds no " MODEL_FILE " and no version folder with one (like %s%s1/" MODEL_FILE
                ")\n",
                arg, arg, sep);
        return 1;
    }
    snprintf(file, size, "%s%s%lld/" MODEL_FILE, arg, sep, (long long)*version);
    return 0;
}

static int models_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: vigil models inspect MODEL.onnx|DIR [--json]\n"
                   "\n"
                   "DIR is a model folder of a repository (models/yolov8n/: its highest version, as\n"
                   "vigil serve picks) or a version folder (models/yolov8n/1/); its " MODEL_FILE " is read.\n");
            return 0;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "vigil models inspect: unexpected argument '%s' (see vigil models --help)\n", argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "vigil models inspect: missing MODEL.onnx or model folder (see vigil models --help)\n");
        return 2;
    }
    char file[4200];
    int64_t version;
    if (models_resolve(path, file, sizeof file, &version)) return 1;
    onnx_model *m = NULL;
    vigil_error err = {0};
    if (onnx_load_file(file, &m, &err) != VIGIL_OK) {
        fprintf(stderr, "vigil models inspect: %s (%s)\n", err.message, vigil_status_str(err.status));
        return 1;
    }
    size_t n_ops = 0;
    op_count *ops = models_op_histogram(m, &n_ops);
    int rc = 1;
    if (!ops) fprintf(stderr, "vigil models inspect: out of memory\n");
    else if (json) rc = models_print_json(file, version, m, ops, n_ops);
    else {
        models_print_text(file, version, m, ops, n_ops);
        rc = 0;
    }
    vigil_free(ops);
    onnx_free(m);
    return rc;
}

/* ---------------------------------------------------------------- list */

/* One model folder as `vigil serve` would see it. */
typedef struct models_row {
    char name[MODEL_NAME_MAX];
    char file[4200];
    int64_t version;
    const char *backend;
    model_task task;
    vigil_head_family family;
    char problem[4800]; /* "" when the model would load */
} models_row;

/* An accelerator's file (a HEF) is read by its runtime: the backend's device
 * is opened for the moment (as the server would open it) and the model loaded
 * through it; a device that does not open is the row's problem. */
static void models_describe_by_backend(const backend_ops *ops, const model_config *cfg, models_row *row) {
    backend_device *dev = NULL;
    backend_model *model = NULL;
    backend_io io;
    vigil_error err = {0};
    if (ops->open(NULL, &dev, &err) || ops->load(dev, row->file, &model, &io, &err)) {
        snprintf(row->problem, sizeof row->problem, "%s", err.message);
        if (dev) ops->close(dev);
        return;
    }
    vigil_tensor_info outputs[BACKEND_MAX_IO];
    for (size_t i = 0; i < io.n_outputs; i++)
        outputs[i] = *io.outputs[i];
    row->task = repository_model_task(cfg->task, io.n_inputs ? io.inputs[0] : NULL, outputs, io.n_outputs,
                                      ops->metadata(model, "names"), ops->metadata(model, "task"),
                                      ops->metadata(model, "imgsz"), &row->family);
    ops->unload(model);
    ops->close(dev);
}

/* Fills row for the folder dir/name: config.yaml, the served version, and
 * the task and head family from the file's tensors (loaded, not compiled). */
static void models_describe(vigil_engine *engine, const char *dir, const char *name, models_row *row) {
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", name);
    char folder[2300], config_path[2400];
    snprintf(folder, sizeof folder, "%s/%s", dir, name);
    snprintf(config_path, sizeof config_path, "%s/config.yaml", folder);
    model_config cfg;
    model_config_defaults(&cfg);
    vigil_error err = {0};
    const backend_ops *ops = NULL;
    if (model_config_load(config_path, &cfg, &err)) {
        snprintf(row->problem, sizeof row->problem, "%s", err.message);
        return;
    }
    row->backend = (ops = backend_find(cfg.backend)) ? ops->name : cfg.backend;
    if (!ops) {
        snprintf(row->problem, sizeof row->problem, "unknown backend '%s'", cfg.backend);
        return;
    }
    if (!(row->version = repository_highest_version(folder, ops->model_file))) {
        snprintf(row->problem, sizeof row->problem, "no version folder (%s/1/%s)", folder, ops->model_file);
        return;
    }
    snprintf(row->file, sizeof row->file, "%s/%lld/%s", folder, (long long)row->version, ops->model_file);
    if (ops != &backend_cpu) {
        models_describe_by_backend(ops, &cfg, row);
        return;
    }
    vigil_model *m = NULL;
    if (vigil_model_load(engine, row->file, &m, &err)) {
        snprintf(row->problem, sizeof row->problem, "%s", err.message);
        return;
    }
    vigil_tensor_info outputs[BACKEND_MAX_IO];
    size_t n = vigil_model_output_count(m) < BACKEND_MAX_IO ? vigil_model_output_count(m) : BACKEND_MAX_IO;
    for (size_t i = 0; i < n; i++)
        outputs[i] = *vigil_model_output(m, i);
    row->task = repository_model_task(cfg.task, vigil_model_input(m, 0), outputs, n, vigil_model_metadata(m, "names"),
                                      vigil_model_metadata(m, "task"), vigil_model_metadata(m, "imgsz"),
                                      &row->family);
    vigil_model_free(m);
}

static int models_name_order(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *models_task_name(const models_row *row) {
    return row->problem[0] ? "-" : row->task == MODEL_TASK_DETECT ? "detect" : "raw";
}

static int models_list(int argc, char **argv) {
    const char *dir = getenv("VIGIL_MODELS") ? getenv("VIGIL_MODELS") : "./models";
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: vigil models list [--models DIR] [--json]\n"
                   "\n"
                   "Lists the model repository DIR (default: VIGIL_MODELS, else ./models) as vigil serve\n"
                   "would load it: each model folder's served version, backend, file, and its task and\n"
                   "detection head family (config.yaml's task, else what the model's outputs say),\n"
                   "or why it would not load. Nothing is compiled or run.\n");
            return 0;
        } else {
            fprintf(stderr, "vigil models list: unexpected argument '%s' (see vigil models list --help)\n", argv[i]);
            return 2;
        }
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "vigil models list: cannot open the model repository %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *names[1024];
    size_t n_names = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n_names < sizeof names / sizeof names[0]) {
        char folder[2300];
        struct stat st;
        vigil_error err;
        snprintf(folder, sizeof folder, "%s/%s", dir, ent->d_name);
        if (repository_check_name(ent->d_name, &err) || stat(folder, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if (!(names[n_names] = strdup(ent->d_name))) break;
        n_names++;
    }
    closedir(d);
    qsort(names, n_names, sizeof names[0], models_name_order);
    vigil_engine *engine = NULL;
    vigil_engine_options eo = {.threads = 1};
    vigil_error err = {0};
    if (vigil_engine_create(&eo, &engine, &err)) {
        fprintf(stderr, "vigil models list: %s\n", err.message);
        n_names = 0;
    }
    json_t *list = json ? json_array() : NULL;
    if (!json) printf("%-24s %-7s %-7s %-10s %-7s %s\n", "MODEL", "VERSION", "TASK", "FAMILY", "BACKEND", "FILE / PROBLEM");
    for (size_t i = 0; i < n_names; i++) {
        models_row row;
        models_describe(engine, dir, names[i], &row);
        const char *family = row.family != VIGIL_HEAD_AUTO ? vigil_head_family_name(row.family) : NULL;
        if (json) {
            json_t *obj = json_pack("{s:s,s:I,s:s}", "name", row.name, "version", (json_int_t)row.version, "task",
                                    models_task_name(&row));
            json_object_set_new(obj, "family", family ? json_string(family) : json_null());
            json_object_set_new(obj, "backend", row.backend ? json_string(row.backend) : json_null());
            json_object_set_new(obj, "file", row.file[0] ? json_string(row.file) : json_null());
            json_object_set_new(obj, "problem", row.problem[0] ? json_string(row.problem) : json_null());
            json_array_append_new(list, obj);
        } else {
            char version[24] = "-";
            if (row.version) snprintf(version, sizeof version, "%lld", (long long)row.version);
            printf("%-24s %-7s %-7s %-10s %-7s %s\n", row.name, version, models_task_name(&row), family ? family : "-",
                   row.backend ? row.backend : "-", row.problem[0] ? row.problem : row.file);
        }
        free(names[i]);
    }
    vigil_engine_destroy(engine);
    if (json) {
        char *text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(list);
        if (!text) return 1;
        printf("%s\n", text);
        free(text); /* allocated by jansson */
    }
    return 0;
}

/* ---------------------------------------------------------------- pull */

#define PULL_DEFAULT_TIMEOUT_S 600L
#define PULL_DEFAULT_MAX_BYTES (INT64_C(2) << 30) /* protobuf's own limit on one ONNX file */

/* Set by SIGINT/SIGTERM during a pull (a pod being deleted mid-download):
 * the transfer aborts and the temporary file is removed.  The one mutable
 * global here, because a signal handler can reach nothing else. */
static volatile sig_atomic_t models_pull_stop;

static void models_pull_on_signal(int sig) {
    (void)sig;
    models_pull_stop = 1;
}

static const char *models_env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int models_pull_usage(FILE *out) {
    fprintf(out,
            "usage: vigil models pull SOURCE DEST [--sha256 HEX] [--timeout S] [--max-bytes N]\n"
            "\n"
            "SOURCE  http://..., https://... or s3://BUCKET/KEY\n"
            "DEST    a version folder (models/yolov8n/1/: its " MODEL_FILE "), a repository folder\n"
            "        (models/: models/NAME/1/" MODEL_FILE ", NAME from SOURCE's file name), or a file\n"
            "\n"
            "The model is downloaded beside DEST, checked (size, --sha256, loads as ONNX) and then\n"
            "renamed into place: DEST never holds a partial or invalid file.\n"
            "--timeout S     bound on the whole download (default %ld)\n"
            "--max-bytes N   refuse larger files (default %lld)\n"
            "\n"
            "s3:// reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (SigV4; anonymous\n"
            "without keys), AWS_REGION (else AWS_DEFAULT_REGION, else us-east-1) and AWS_ENDPOINT_URL\n"
            "(an S3-compatible store such as MinIO, path-style; else BUCKET.s3.REGION.amazonaws.com).\n",
            PULL_DEFAULT_TIMEOUT_S, (long long)PULL_DEFAULT_MAX_BYTES);
    return out == stdout ? 0 : 2;
}

/* A positive integer option value, or -1. */
static long long models_positive(const char *text) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    return errno || end == text || *end || v <= 0 ? -1 : v;
}

static int models_pull(int argc, char **argv) {
    pull_options opt = {.timeout_s = PULL_DEFAULT_TIMEOUT_S, .max_bytes = PULL_DEFAULT_MAX_BYTES};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return models_pull_usage(stdout);
        if (strcmp(arg, "--sha256") == 0 && has_value) {
            opt.sha256_hex = argv[++i];
        } else if ((strcmp(arg, "--timeout") == 0 || strcmp(arg, "--max-bytes") == 0) && has_value) {
            long long v = models_positive(argv[++i]);
            if (v < 0) {
                fprintf(stderr, "vigil models pull: %s wants a positive integer, not '%s'\n", arg, argv[i]);
                return 2;
            }
            if (arg[2] == 't') opt.timeout_s = v > 86400 ? 86400 : (long)v;
            else opt.max_bytes = v;
        } else if (arg[0] == '-' || (opt.source && opt.dest)) {
            fprintf(stderr, "vigil models pull: unexpected argument '%s' (see vigil models pull --help)\n", arg);
            return 2;
        } else if (!opt.source) {
            opt.source = arg;
        } else {
            opt.dest = arg;
        }
    }
    if (!opt.dest) {
        fprintf(stderr, "vigil models pull: missing %s (see vigil models pull --help)\n",
                opt.source ? "DEST" : "SOURCE and DEST");
        return 2;
    }
    opt.s3 = (pull_s3_config){
        .access_key_id = models_env("AWS_ACCESS_KEY_ID"),
        .secret_access_key = models_env("AWS_SECRET_ACCESS_KEY"),
        .session_token = models_env("AWS_SESSION_TOKEN"),
        .region = models_env("AWS_REGION") ? models_env("AWS_REGION") : models_env("AWS_DEFAULT_REGION"),
        .endpoint = models_env("AWS_ENDPOINT_URL"),
    };
    opt.stop = &models_pull_stop;
    struct sigaction sa = {.sa_handler = models_pull_on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    char installed[4200];
    int64_t bytes = 0;
    vigil_error err = {0};
    vigil_status s = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK
                         ? pull_model(&opt, installed, sizeof installed, &bytes, &err)
                         : vigil_error_set(&err, VIGIL_ERR_INTERNAL, "cannot initialise libcurl");
    curl_global_cleanup();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (s != VIGIL_OK) {
        fprintf(stderr, "vigil models pull: %s\n", err.message);
        return 1;
    }
    printf("%s (%lld bytes)\n", installed, (long long)bytes);
    return 0;
}

/* ---- quantize ---- */

#define QUANTIZE_MAX_IMAGE_BYTES ((size_t)64 << 20)

/* Letterboxes one calibration image into t (a [1, 3, H, W] float input). */
static vigil_status quantize_load_image(const char *path, vigil_tensor *t, vigil_error *err) {
    char *bytes = NULL;
    size_t size = 0;
    vigil_image image = {0};
    vigil_preprocess pre = vigil_preprocess_default();
    vigil_status st = keys_read_file(path, QUANTIZE_MAX_IMAGE_BYTES, "image", &bytes, &size, err);
    if (st == VIGIL_OK) st = vigil_image_decode(bytes, size, NULL, &image, NULL, err);
    if (st == VIGIL_OK) st = vigil_letterbox(&image, (int)t->dims[3], (int)t->dims[2], &pre, t->data, NULL, err);
    vigil_image_free(&image);
    vigil_free(bytes);
    return st;
}

/* `vigil models quantize IN OUT --calibrate IMAGE...`: vigil_model_quantize
 * on letterboxed images (Ultralytics' pre-processing, the model's input size). */
static int models_quantize(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0, int8 = 0, minmax = 0, chain = 0, calibrate = 0;
    size_t n_images = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: vigil models quantize IN.onnx OUT.onnx [--int8-activations] [--minmax] [--chain] --calibrate IMAGE...\n\n"
                   "Writes a QDQ int8 model: per-channel int8 weights and an int32 bias for every Conv, uint8\n"
                   "(or int8) activations around it with ranges measured on the images (letterboxed to the\n"
                   "model's input as vigil detect does).  vigil runs those convolutions in int8.\n"
                   "Each range is the one of least squared quantization error over the images' values and\n"
                   "each bias is corrected for its weights' rounding; --minmax takes each range whole and\n"
                   "the biases as rounded (the less accurate file of earlier versions).  --chain also\n"
                   "quantizes the tensors between convolutions (SiLU outputs, Concat, Split, MaxPool, Resize,\n"
                   "Add), so that they stay 8-bit: faster, at the cost of a few more roundings.\n");
            return 0;
        }
        if (strcmp(argv[i], "--int8-activations") == 0)
            int8 = 1;
        else if (strcmp(argv[i], "--minmax") == 0)
            minmax = 1;
        else if (strcmp(argv[i], "--chain") == 0)
            chain = 1;
        else if (strcmp(argv[i], "--calibrate") == 0)
            calibrate = i + 1;
        else if (!calibrate && n_paths < 2)
            paths[n_paths++] = argv[i];
        else if (!calibrate) {
            fprintf(stderr, "vigil models quantize: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (calibrate) n_images = (size_t)(argc - calibrate);
    if (n_paths != 2 || n_images == 0) {
        fprintf(stderr,
                "usage: vigil models quantize IN.onnx OUT.onnx [--int8-activations] [--minmax] [--chain] --calibrate IMAGE...\n");
        return 2;
    }
    vigil_error err = {0};
    vigil_engine *engine = NULL;
    vigil_model *model = NULL;
    vigil_tensor *inputs = vigil_calloc(n_images, sizeof *inputs);
    vigil_status st = inputs ? vigil_engine_create(NULL, &engine, &err) : VIGIL_ERR_NO_MEMORY;
    if (st == VIGIL_OK) st = vigil_model_load(engine, paths[0], &model, &err);
    const vigil_tensor_info *in = st == VIGIL_OK ? vigil_model_input(model, 0) : NULL;
    if (st == VIGIL_OK && (vigil_model_input_count(model) != 1 || in->dtype != VIGIL_DTYPE_F32 || in->ndim != 4 ||
                           in->dims[1] != 3 || in->dims[2] < 1 || in->dims[3] < 1))
        st = vigil_error_set(&err, VIGIL_ERR_UNSUPPORTED, "%s: needs one float32 image input [N, 3, H, W]", paths[0]);
    for (size_t k = 0; k < n_images && st == VIGIL_OK; k++) {
        vigil_tensor *t = &inputs[k];
        *t = (vigil_tensor){.dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {1, 3, in->dims[2], in->dims[3]}};
        t->data = vigil_malloc((size_t)(3 * in->dims[2] * in->dims[3]) * sizeof(float));
        st = t->data ? quantize_load_image(argv[calibrate + (int)k], t, &err) : VIGIL_ERR_NO_MEMORY;
        if (st != VIGIL_OK) vigil_error_prefix(&err, "%s", argv[calibrate + (int)k]);
    }
    vigil_model_free(model);
    unsigned flags = (int8 ? VIGIL_QUANTIZE_INT8_ACTIVATIONS : 0) | (minmax ? VIGIL_QUANTIZE_MINMAX : 0) |
                     (chain ? VIGIL_QUANTIZE_CHAIN : 0);
    if (st == VIGIL_OK) st = vigil_model_quantize(engine, paths[0], paths[1], inputs, n_images, flags, &err);
    for (size_t k = 0; inputs && k < n_images; k++)
        vigil_free(inputs[k].data);
    vigil_free(inputs);
    vigil_engine_destroy(engine);
    if (st != VIGIL_OK) {
        fprintf(stderr, "vigil models quantize: %s\n", err.message[0] ? err.message : "out of memory");
        return 1;
    }
    printf("wrote %s (int8 weights, %s activations, calibrated on %zu images)\n", paths[1], int8 ? "int8" : "uint8",
           n_images);
    return 0;
}

static const models_subcommand models_subcommands[] = {
    {"inspect", models_inspect, "inspect MODEL.onnx|DIR [--json]",
     "show inputs, outputs, opsets, operators, weights and metadata of an ONNX file or model folder (nothing is run)"},
    {"list", models_list, "list [--models DIR] [--json]",
     "the model repository as vigil serve would load it: versions, task, detection head family"},
    {"pull", models_pull, "pull SOURCE DEST [--sha256 HEX] ...",
     "fetch a model from an http(s) URL or s3://BUCKET/KEY into a repository, checked, all or nothing"},
    {"quantize", models_quantize, "quantize IN OUT --calibrate IMAGE...",
     "write a QDQ int8 version of a float32 model, activation ranges calibrated on the images"},
};
static const size_t models_n_subcommands = sizeof models_subcommands / sizeof models_subcommands[0];

static void models_usage(FILE *out) {
    fprintf(out,
            "usage: vigil models <subcommand> [options]\n"
            "\n"
            "subcommands:\n");
    for (size_t i = 0; i < models_n_subcommands; i++)
        fprintf(out, "  %-36s %s\n", models_subcommands[i].usage, models_subcommands[i].summary);
    fprintf(out, "\nexit status: 0 success, 1 the model could not be read (or fetched), 2 usage error\n");
}

int cmd_models(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        models_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < models_n_subcommands; i++)
        if (strcmp(argv[1], models_subcommands[i].name) == 0)
            return models_subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vigil models: unknown subcommand '%s' (try: vigil models --help)\n", argv[1]);
    return 2;
}
