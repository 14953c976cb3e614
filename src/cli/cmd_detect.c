/*
 * cmd_detect.c - `vigil detect`: object detection on image files, in-process.
 *
 * Loads one model on the CPU backend and runs every image given through the
 * server's detection path (serve/job_detect.c: pre-process into the batch
 * input, the backend's run, post-process), one image a batch (files,
 * or directories whose .jpg/.jpeg/.png files are taken in name order).  The
 * output is a readable table, or with --json one JSON object per image per
 * line (JSON Lines: a single image gives a single object), failed images
 * included as {"image": ..., "error": ...}.  --out draws the boxes onto the
 * full-resolution image and writes it (to a file for one image, else into a
 * directory under the image's own name).  A progress bar goes to stderr when
 * it is a terminal and there are many images.  Exit status: 0 all images
 * done, 1 any failed, 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/log.h"
#include "backends/backend.h"
#include "serve/job_detect.h"
#include "vigil/engine.h"
#include "vigil/vision.h"

#define DETECT_MAX_FILE_BYTES (512u << 20)
#define DETECT_MAX_CLASSES 1024
#define DETECT_PROGRESS_MIN_IMAGES 8

typedef struct detect_args {
    const char *model_path;
    const char *labels_path;
    const char *out_path;
    const char *classes_spec[64]; /* each "1,2" or "person,car" */
    int n_classes_spec;
    vigil_detect_options options;
    vigil_head_family family;
    int json, timing, threads;
    int jpeg_reduced_scale; /* --jpeg-reduced-scale */
    int float16;            /* --float16: vigil_float16_mode */
    char **inputs;
    int n_inputs;
} detect_args;

/* A growable list of image paths. */
typedef struct path_list {
    char **items;
    size_t count, cap;
} path_list;

typedef struct timing_sum {
    vigil_detect_timing t;
    int n;
} timing_sum;

static void detect_usage(FILE *out) {
    fprintf(out,
            "usage: vigil detect [options] IMAGE|DIR...\n"
            "\n"
            "Detects objects in JPEG/PNG images with a YOLO-family ONNX model, in-process.\n"
            "\n"
            "options:\n"
            "  --model M        ONNX model (default: $VIGIL_MODEL)\n"
            "  --conf C         score threshold (default 0.25)\n"
            "  --iou I          NMS IoU threshold (default 0.45)\n"
            "  --max-det K      most detections per image (default 300)\n"
            "  --classes LIST   keep only these classes: ids or names, comma-separated, repeatable\n"
            "  --agnostic       NMS across classes\n"
            "  --family F       head family: auto, yolov5, yolov8, yolo11, yolox, nanodet, yolov10, yolov8-seg\n"
            "  --labels FILE    class names, one per line (default: the model's metadata)\n"
            "  --masks          segmentation models: add \"mask_rle\" (row-major runs over the image,\n"
            "                   background first) to each JSON detection\n"
            "  --json           one JSON object per image per line (JSON Lines):\n"
            "                   {\"image\", \"width\", \"height\", \"detections\": [{\"class_id\", \"class_name\",\n"
            "                   \"score\", \"box\": [x1, y1, x2, y2]}], \"timing_ms\": {...}}\n"
            "  --out FILE|DIR   write annotated images (.jpg or .png); a directory for several images\n"
            "  --timing         print the time split: decode, letterbox, inference, postprocess\n"
            "  --threads N      compute threads, for inference and for decoding JPEGs in bands\n"
            "                   (default: all CPUs)\n"
            "  --jpeg-reduced-scale\n"
            "                   decode JPEGs at least 3x the model's input at 1/2, 1/4 or 1/8 scale\n"
            "                   (libjpeg DCT scaling): faster on big photos, but scores and boxes\n"
            "                   drift from the reference's (full decode, then resize; the default);\n"
            "                   docs/BENCHMARKS.md gives the measured cost\n"
            "  --float16 MODE   a float16 model's arithmetic: auto (default), fp32, xnnpack\n"
            "                   (XNNPACK's f16 operators; docs/OPERATORS.md)\n"
            "  -h, --help       this help\n");
}

/* ------------------------------------------------------------ arguments */

static int detect_parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = (float)v;
    return 0;
}

static int detect_parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Returns 0 to go on, else the exit status (0 for --help printed). */
static int detect_parse_args(int argc, char **argv, detect_args *a, int *done) {
    enum {
        OPT_MODEL = 256,
        OPT_CONF,
        OPT_IOU,
        OPT_MAXDET,
        OPT_CLASSES,
        OPT_JSON,
        OPT_OUT,
        OPT_TIMING,
        OPT_THREADS,
        OPT_LABELS,
        OPT_FAMILY,
        OPT_AGNOSTIC,
        OPT_MASKS,
        OPT_JPEG_REDUCED_SCALE,
        OPT_FLOAT16
    };
    static const struct option longopts[] = {
        {"model", required_argument, 0, OPT_MODEL},
        {"conf", required_argument, 0, OPT_CONF},
        {"iou", required_argument, 0, OPT_IOU},
        {"max-det", required_argument, 0, OPT_MAXDET},
        {"classes", required_argument, 0, OPT_CLASSES},
        {"json", no_argument, 0, OPT_JSON},
        {"out", required_argument, 0, OPT_OUT},
        {"timing", no_argument, 0, OPT_TIMING},
        {"threads", required_argument, 0, OPT_THREADS},
        {"labels", required_argument, 0, OPT_LABELS},
        {"family", required_argument, 0, OPT_FAMILY},
        {"agnostic", no_argument, 0, OPT_AGNOSTIC},
        {"masks", no_argument, 0, OPT_MASKS},
        {"jpeg-reduced-scale", no_argument, 0, OPT_JPEG_REDUCED_SCALE},
        {"float16", required_argument, 0, OPT_FLOAT16},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->options = vigil_detect_options_default();
    a->model_path = getenv("VIGIL_MODEL");
    *done = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_MODEL: a->model_path = optarg; break;
        case OPT_CONF: bad = detect_parse_float(optarg, 0, 1, &a->options.conf_threshold); break;
        case OPT_IOU: bad = detect_parse_float(optarg, 0, 1, &a->options.iou_threshold); break;
        case OPT_MAXDET: bad = detect_parse_int(optarg, 1, 100000, &a->options.max_detections); break;
        case OPT_CLASSES:
            bad = a->n_classes_spec >= 64;
            if (!bad) a->classes_spec[a->n_classes_spec++] = optarg;
            break;
        case OPT_JSON: a->json = 1; break;
        case OPT_OUT: a->out_path = optarg; break;
        case OPT_TIMING: a->timing = 1; break;
        case OPT_THREADS: bad = detect_parse_int(optarg, 0, 1024, &a->threads); break;
        case OPT_LABELS: a->labels_path = optarg; break;
        case OPT_AGNOSTIC: a->options.agnostic = 1; break;
        case OPT_MASKS: a->options.with_masks = 1; break;
        case OPT_JPEG_REDUCED_SCALE: a->jpeg_reduced_scale = 1; break;
        case OPT_FLOAT16: bad = vigil_float16_mode_parse(optarg, &a->float16) != VIGIL_OK; break;
        case OPT_FAMILY: {
            int f = vigil_head_family_parse(optarg);
            bad = f < 0;
            a->family = f < 0 ? VIGIL_HEAD_AUTO : (vigil_head_family)f;
            break;
        }
        case 'h':
            detect_usage(stdout);
            *done = 1;
            return 0;
        default:
            fprintf(stderr, "vigil detect: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "vigil detect: bad value '%s' for --%s\n", optarg, longopts[c - OPT_MODEL].name);
            return 2;
        }
    }
    a->inputs = argv + optind;
    a->n_inputs = argc - optind;
    if (a->n_inputs == 0) {
        fprintf(stderr, "vigil detect: no images given (see --help)\n");
        return 2;
    }
    if (!a->model_path || !*a->model_path) {
        fprintf(stderr, "vigil detect: no model: pass --model (or set VIGIL_MODEL)\n");
        return 2;
    }
    return 0;
}

/* Resolves the --classes specs into ids using the detector's labels. */
static int detect_resolve_classes(const detect_args *a, const vigil_labels *labels, int *ids, size_t *n_ids) {
    *n_ids = 0;
    for (int i = 0; i < a->n_classes_spec; i++) {
        char *spec = vigil_strdup(a->classes_spec[i]);
        if (!spec) return -1;
        char *save = NULL;
        for (char *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++; /* names may hold spaces ("traffic light"): trim only */
            for (char *end = tok + strlen(tok); end > tok && end[-1] == ' ';)
                *--end = 0;
            if (!*tok) continue;
            int id;
            if (detect_parse_int(tok, 0, 1 << 20, &id) != 0) id = vigil_labels_find(labels, tok);
            if (id < 0 || *n_ids >= DETECT_MAX_CLASSES) {
                fprintf(stderr, "vigil detect: unknown class '%s' in --classes\n", tok);
                vigil_free(spec);
                return -1;
            }
            ids[(*n_ids)++] = id;
        }
        vigil_free(spec);
    }
    return 0;
}

/* ---------------------------------------------------------------- inputs */

static int path_list_add(path_list *l, const char *path) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **grown = vigil_realloc(l->items, cap * sizeof *grown);
        if (!grown) return -1;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->count] = vigil_strdup(path);
    return l->items[l->count++] ? 0 : -1;
}

static void path_list_free(path_list *l) {
    for (size_t i = 0; i < l->count; i++)
        vigil_free(l->items[i]);
    vigil_free(l->items);
}

static int detect_is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int detect_cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a file, or a directory's images in name order. */
static int detect_collect(const char *path, path_list *out) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return path_list_add(out, path);
    DIR *dir = opendir(path);
    if (!dir) return path_list_add(out, path); /* reported as an error when read */
    size_t first = out->count;
    struct dirent *ent;
    int rc = 0;
    while (!rc && (ent = readdir(dir))) {
        if (ent->d_name[0] == '.' || !detect_is_image_name(ent->d_name)) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, ent->d_name);
        rc = path_list_add(out, full);
    }
    closedir(dir);
    qsort(out->items + first, out->count - first, sizeof(char *), detect_cmp_str);
    return rc;
}

/* "vigil detect: PATH: problem", the path once: messages from the loaders
 * (the ONNX reader's) may already start with it. */
static void detect_print_error(const char *path, const char *message) {
    size_t n = strlen(path);
    if (strncmp(message, path, n) == 0 && message[n] == ':') fprintf(stderr, "vigil detect: %s\n", message);
    else fprintf(stderr, "vigil detect: %s: %s\n", path, message);
}

static vigil_status detect_read_file(const char *path, uint8_t **out, size_t *size, vigil_error *err) {
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    /* The messages leave the path out: every caller prints it in front. */
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "%s", strerror(errno));
    struct stat st;
    vigil_status s = VIGIL_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        s = vigil_error_set(err, VIGIL_ERR_IO, "not a regular file");
    else if ((uint64_t)st.st_size > DETECT_MAX_FILE_BYTES)
        s = vigil_error_set(err, VIGIL_ERR_LIMIT, "larger than %u MiB", DETECT_MAX_FILE_BYTES >> 20);
    else if (!(*out = vigil_malloc(st.st_size > 0 ? (size_t)st.st_size : 1)))
        s = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory reading the file");
    else if (fread(*out, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        s = vigil_error_set(err, VIGIL_ERR_IO, "cannot read the whole file");
    else
        *size = (size_t)st.st_size;
    fclose(f);
    if (s) {
        vigil_free(*out);
        *out = NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- output */

static json_t *detect_json_timing(const vigil_detect_timing *t) {
    return json_pack("{s:f, s:f, s:f, s:f, s:f}", "decode", t->decode_ms, "letterbox", t->letterbox_ms, "inference",
                     t->inference_ms, "postprocess", t->postprocess_ms, "total", t->total_ms);
}

static double detect_round(double v, double unit) {
    return (double)(long long)(v / unit + (v >= 0 ? 0.5 : -0.5)) * unit;
}

static void detect_print_json(const char *image, const vigil_detect_result *r) {
    json_t *dets = json_array();
    for (size_t i = 0; i < r->count; i++) {
        const vigil_detection *d = &r->detections[i];
        json_t *box = json_pack("[f, f, f, f]", detect_round(d->x1, 0.01), detect_round(d->y1, 0.01),
                                detect_round(d->x2, 0.01), detect_round(d->y2, 0.01));
        json_t *o = json_pack("{s:i, s:s?, s:f, s:o}", "class_id", d->class_id, "class_name", d->class_name, "score",
                              detect_round(d->score, 0.00001), "box", box);
        if (d->mask.counts) {
            json_t *counts = json_array();
            for (size_t k = 0; k < d->mask.n_counts; k++)
                json_array_append_new(counts, json_integer(d->mask.counts[k]));
            json_object_set_new(o, "mask_rle", counts);
        }
        json_array_append_new(dets, o);
    }
    json_t *root = json_pack("{s:s, s:i, s:i, s:o, s:o}", "image", image, "width", r->image_width, "height",
                             r->image_height, "detections", dets, "timing_ms", detect_json_timing(&r->timing));
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    if (text) puts(text);
    free(text);
    json_decref(root);
}

static void detect_print_error_json(const char *image, const vigil_error *err) {
    json_t *root = json_pack("{s:s, s:s}", "image", image, "error", err->message);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text) puts(text);
    free(text);
    json_decref(root);
}

static void detect_print_timing(FILE *out, const vigil_detect_timing *t, const char *prefix) {
    double pre_post = t->decode_ms + t->letterbox_ms + t->postprocess_ms;
    fprintf(out,
            "%stiming: decode %.2f ms, letterbox %.2f ms, inference %.2f ms, postprocess %.2f ms, total %.2f ms"
            " (decode+letterbox+postprocess = %.1f%% of inference)\n",
            prefix, t->decode_ms, t->letterbox_ms, t->inference_ms, t->postprocess_ms, t->total_ms,
            t->inference_ms > 0 ? 100.0 * pre_post / t->inference_ms : 0.0);
}

static void detect_print_table(const char *image, const vigil_detect_result *r, int timing) {
    printf("%s (%dx%d): %zu detection%s\n", image, r->image_width, r->image_height, r->count, r->count == 1 ? "" : "s");
    if (r->count) printf("  %-16s %6s %8s %8s %8s %8s\n", "class", "score", "x1", "y1", "x2", "y2");
    for (size_t i = 0; i < r->count; i++) {
        const vigil_detection *d = &r->detections[i];
        char name[32];
        if (d->class_name)
            snprintf(name, sizeof name, "%s", d->class_name);
        else
            snprintf(name, sizeof name, "class %d", d->class_id);
        printf("  %-16s %6.3f %8.1f %8.1f %8.1f %8.1f\n", name, d->score, d->x1, d->y1, d->x2, d->y2);
    }
    if (timing) detect_print_timing(stdout, &r->timing, "  ");
}

static void detect_progress(size_t done, size_t total) {
    int width = 30, filled = (int)(width * done / (total ? total : 1));
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu", filled, "##############################", width - filled, "", done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

/* ---------------------------------------------------------------- render */

static int detect_out_is_dir(const char *out, size_t n_images) {
    struct stat st;
    if (stat(out, &st) == 0) return S_ISDIR(st.st_mode);
    return n_images > 1 || !detect_is_image_name(out);
}

/* Where the annotated copy of image goes. */
static void detect_out_file(const char *out, int is_dir, const char *image, char *buf, size_t size) {
    if (!is_dir) {
        snprintf(buf, size, "%s", out);
        return;
    }
    const char *base = strrchr(image, '/');
    base = base ? base + 1 : image;
    snprintf(buf, size, "%s/%s%s", out, base, detect_is_image_name(base) ? "" : ".jpg");
}

static vigil_status detect_write_file(const char *path, const uint8_t *data, size_t size, vigil_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    size_t wrote = fwrite(data, 1, size, f);
    int closed = fclose(f);
    if (wrote != size || closed != 0) return vigil_error_set(err, VIGIL_ERR_IO, "cannot write %s", path);
    return VIGIL_OK;
}

static vigil_status detect_render(const char *out_file, const uint8_t *bytes, size_t size, const vigil_detect_result *r,
                                  vigil_error *err) {
    vigil_image img;
    vigil_status st = vigil_image_decode(bytes, size, NULL, &img, NULL, err);
    if (st) return st;
    vigil_render_detections(&img, r->detections, r->count);
    const char *dot = strrchr(out_file, '.');
    vigil_image_format fmt = dot && !strcasecmp(dot, ".png") ? VIGIL_IMAGE_PNG : VIGIL_IMAGE_JPEG;
    uint8_t *enc = NULL;
    size_t enc_size = 0;
    st = vigil_image_encode(&img, fmt, 90, &enc, &enc_size, err);
    if (!st) st = detect_write_file(out_file, enc, enc_size, err);
    vigil_free(enc);
    vigil_image_free(&img);
    return st;
}

/* ------------------------------------------------------------------ run */

static void timing_add(timing_sum *s, const vigil_detect_timing *t) {
    s->t.decode_ms += t->decode_ms, s->t.letterbox_ms += t->letterbox_ms;
    s->t.inference_ms += t->inference_ms, s->t.postprocess_ms += t->postprocess_ms;
    s->t.total_ms += t->total_ms;
    s->n++;
}

/* Detects one image, prints it, renders it.  Returns 0 or 1. */
static int detect_one(detect_worker *det, const detect_args *a, const char *path, int out_is_dir, timing_sum *sum) {
    vigil_error err = {0};
    uint8_t *bytes = NULL;
    size_t size = 0;
    vigil_status st = detect_read_file(path, &bytes, &size, &err);
    detect_request req = {.image = bytes, .size = size, .options = &a->options};
    if (!st) {
        detect_worker_detect(det, &req, 1);
        st = req.status;
        if (st) err = req.error;
    }
    const vigil_detect_result r = req.result;
    if (!st) {
        timing_add(sum, &r.timing);
        if (a->json)
            detect_print_json(path, &r);
        else
            detect_print_table(path, &r, a->timing);
        if (a->json && a->timing) detect_print_timing(stderr, &r.timing, "");
        if (a->out_path) {
            char out_file[4096];
            detect_out_file(a->out_path, out_is_dir, path, out_file, sizeof out_file);
            st = detect_render(out_file, bytes, size, &r, &err);
        }
    } else if (a->json) {
        detect_print_error_json(path, &err);
    }
    vigil_free(bytes);
    if (st) detect_print_error(path, err.message);
    return st ? 1 : 0;
}

static int detect_run_all(detect_worker *det, const detect_args *a, const path_list *images) {
    int out_is_dir = a->out_path && detect_out_is_dir(a->out_path, images->count);
    if (out_is_dir && mkdir(a->out_path, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "vigil detect: cannot create %s: %s\n", a->out_path, strerror(errno));
        return 1;
    }
    int progress = isatty(STDERR_FILENO) && images->count >= DETECT_PROGRESS_MIN_IMAGES;
    int failed = 0;
    timing_sum sum = {0};
    for (size_t i = 0; i < images->count; i++) {
        failed |= detect_one(det, a, images->items[i], out_is_dir, &sum);
        if (progress) detect_progress(i + 1, images->count);
    }
    fflush(stdout);
    if (a->timing && sum.n > 1) {
        vigil_detect_timing mean = sum.t;
        double n = sum.n;
        mean.decode_ms /= n, mean.letterbox_ms /= n, mean.inference_ms /= n;
        mean.postprocess_ms /= n, mean.total_ms /= n;
        FILE *out = a->json ? stderr : stdout; /* keep stdout pure JSON Lines */
        fprintf(out, "mean over %d images: ", sum.n);
        detect_print_timing(out, &mean, "");
    }
    return failed;
}

int cmd_detect(int argc, char **argv) {
    detect_args a;
    int done;
    int rc = detect_parse_args(argc, argv, &a, &done);
    if (rc || done) return rc;
    vigil_error err = {0};
    const backend_ops *cpu = backend_find("cpu");
    backend_device *device = NULL;
    backend_model *model = NULL;
    backend_io io;
    detect_worker *det = NULL;
    path_list images = {0};
    int class_ids[DETECT_MAX_CLASSES];
    size_t n_class_ids = 0;
    vigil_detector_options dopt = vigil_detector_options_default();
    dopt.family = a.family;
    dopt.labels_path = a.labels_path;
    dopt.jpeg_reduced_scale = a.jpeg_reduced_scale;
    rc = 1;
    /* stderr carries only this command's own messages (one line per failed
     * image): the backend's compile notes are for the server's log */
    log_configure(LOG_WARN, 0, stderr);
    backend_options bo = {.threads = a.threads, .float16 = a.float16};
    if (cpu->open(&bo, &device, &err) || cpu->load(device, a.model_path, &model, &io, &err) ||
        detect_worker_create(cpu, model, &io, &dopt, &det, &err) ||
        cpu->prepare(model, 1, &err)) { /* compiled now: --timing's inference is the run's alone */
        detect_print_error(a.model_path, err.message);
        goto done;
    }
    if (detect_resolve_classes(&a, detect_worker_labels(det), class_ids, &n_class_ids) != 0) {
        rc = 2;
        goto done;
    }
    if (a.n_classes_spec) a.options.classes = class_ids, a.options.n_classes = n_class_ids;
    for (int i = 0; i < a.n_inputs; i++)
        if (detect_collect(a.inputs[i], &images) != 0) {
            fprintf(stderr, "vigil detect: out of memory listing images\n");
            goto done;
        }
    if (images.count == 0) {
        fprintf(stderr, "vigil detect: no .jpg/.jpeg/.png images found\n");
        goto done;
    }
    rc = detect_run_all(det, &a, &images);
done:
    path_list_free(&images);
    detect_worker_destroy(det);
    if (model) cpu->unload(model);
    if (device) cpu->close(device);
    return rc;
}
