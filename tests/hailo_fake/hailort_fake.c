/*
 * hailort_fake.c - a test double of libhailort (tests only, never
 * installed): the subset of HailoRT's C API that vigil calls
 * (src/backends/hailo/hailort_abi.h), behaving like a Hailo-8 behind the
 * model scheduler closely enough to test vigil's backend without a card.
 * vigil selects it with VIGIL_HAILORT=/path/libhailort_fake.so, the same way
 * it would be pointed at a real libhailort.
 *
 * HEF files: real HEF parsing is HailoRT's.  The double reads a text format
 * of its own, which tests write:
 *     hailo_fake_hef 1
 *     network yolov8n
 *     input images 640 640 3                 name, height, width, features (uint8 NHWC)
 *     output raw0 20 20 4                    a float32 NHWC output
 *     nms yolov8n/nms 80 100                 a by-class NMS output: classes, max boxes per class
 *     box 0 0.1 0.2 0.5 0.6 0.9              class, y_min, x_min, y_max, x_max, score (every frame)
 * Outputs are deterministic: raw output k, element j = in[j % in_bytes] / 255
 * + k (in = the frame's uint8 bytes); an NMS output packs the box lines by
 * class (HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS: per class a float32 count,
 * then that many {y_min, x_min, y_max, x_max, score}).
 *
 * The device: one process-wide card; a frame written at t finishes at
 * max(t, the earliest free lane) + HAILO_FAKE_FRAME_US (default 980 us, a
 * Hailo-8's yolov8n) on HAILO_FAKE_PARALLEL lanes (default 1), shared by
 * every network group as the model scheduler shares the card; a read sleeps
 * until its frame is done.  Environment:
 *     HAILO_FAKE_VERSION=4.23.0   what hailo_get_library_version reports
 *     HAILO_FAKE_FAULT=busy       hailo_create_vdevice fails, HAILO_DEVICE_IN_USE
 *     HAILO_FAKE_FAULT=lost@N     the card is lost at the Nth frame written:
 *                                 every vstream then open fails with
 *                                 HAILO_STREAM_ABORT; vstreams created after
 *                                 work again (the device came back)
 *     HAILO_FAKE_FAULT=timeout@N  the Nth frame never comes back: its read
 *                                 fails with HAILO_TIMEOUT (at once, so tests
 *                                 stay short)
 *     HAILO_FAKE_LOG_INPUT=1      every frame written is logged on stderr as
 *                                 "hailort_fake: input <network> <FNV-1a 64
 *                                 of its bytes, 16 hex digits>", so tests see
 *                                 the exact bytes the card was given
 * Built twice: libhailort_fake.so, and libhailort_fake_nosym.so without
 * hailo_identify (HAILO_FAKE_WITHOUT_IDENTIFY) to test a library that lacks
 * a symbol.  Scheduler settings are echoed on stderr
 * ("hailort_fake: <network> priority 20") so tests can see them arrive.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/hailo/hailort_abi.h"

/* The definitions below must match hailort_abi.h's prototypes: declared
 * here from the same list, a mismatch is a compile error. */
#define FAKE_DECLARE(name, params) __attribute__((visibility("default"))) hailo_status name params;
HAILORT_FUNCTIONS(FAKE_DECLARE)
#undef FAKE_DECLARE

#define FAKE_MAX_OUTPUTS 8
#define FAKE_MAX_BOXES 256
#define FAKE_RING 64
#define FAKE_MAX_LANES 64

typedef struct fake_box {
    int cls;
    float y_min, x_min, y_max, x_max, score;
} fake_box;

typedef struct fake_output {
    char name[HAILO_MAX_STREAM_NAME_SIZE];
    int nms;
    uint32_t h, w, c;              /* raw */
    uint32_t classes, max_per_class; /* nms */
} fake_output;

struct _hailo_hef {
    char network[HAILO_MAX_NAME_SIZE];
    char input[HAILO_MAX_STREAM_NAME_SIZE];
    uint32_t ih, iw, ic;
    fake_output outputs[FAKE_MAX_OUTPUTS];
    size_t n_outputs;
    fake_box boxes[FAKE_MAX_BOXES];
    size_t n_boxes;
};

typedef struct fake_frame {
    int64_t done_ns;
    int timeout; /* never comes back */
    uint8_t *bytes;
} fake_frame;

struct _hailo_configured_network_group {
    struct _hailo_hef hef; /* a copy: the HEF may be released first */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    fake_frame ring[FAKE_RING];
    uint64_t written;                  /* frames written */
    uint64_t cursor[FAKE_MAX_OUTPUTS]; /* next frame each output reads */
    size_t keep_bytes;                 /* input bytes a frame keeps (raw outputs derive from them) */
};

struct _hailo_input_vstream {
    struct _hailo_configured_network_group *group;
    uint64_t generation;
    hailo_vstream_params_t params;
};

struct _hailo_output_vstream {
    struct _hailo_configured_network_group *group;
    size_t index;
    uint64_t generation;
    hailo_vstream_params_t params;
};

struct _hailo_vdevice {
    int unused;
};
struct _hailo_device {
    int unused;
};

/* The card: lanes, the frame count, faults. */
static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    int64_t frame_ns;
    int lanes;
    int64_t lane_free[FAKE_MAX_LANES];
    uint64_t frames;
    uint64_t generation; /* bumped when the card is lost */
    char fault[16];
    uint64_t fault_at;
    int log_input;
    hailo_version_t version;
    struct _hailo_device device;
} fake = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t fake_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fake_init(void) {
    const char *us = getenv("HAILO_FAKE_FRAME_US"), *lanes = getenv("HAILO_FAKE_PARALLEL");
    const char *version = getenv("HAILO_FAKE_VERSION"), *fault = getenv("HAILO_FAKE_FAULT");
    fake.frame_ns = (int64_t)((us ? atof(us) : 980.0) * 1000.0);
    fake.lanes = lanes ? atoi(lanes) : 1;
    if (fake.lanes < 1) fake.lanes = 1;
    if (fake.lanes > FAKE_MAX_LANES) fake.lanes = FAKE_MAX_LANES;
    fake.log_input = getenv("HAILO_FAKE_LOG_INPUT") != NULL;
    fake.version = (hailo_version_t){4, 23, 0};
    if (version) sscanf(version, "%u.%u.%u", &fake.version.major, &fake.version.minor, &fake.version.revision);
    if (fault) {
        char kind[16] = "";
        unsigned long long at = 0;
        if (sscanf(fault, "%15[a-z]@%llu", kind, &at) >= 1) {
            snprintf(fake.fault, sizeof fake.fault, "%s", kind);
            fake.fault_at = at;
        }
    }
}

static void fake_ready(void) { pthread_once(&fake.once, fake_init); }

hailo_status hailo_get_library_version(hailo_version_t *version) {
    fake_ready();
    *version = fake.version;
    return HAILO_SUCCESS;
}

hailo_status hailo_init_vdevice_params(hailo_vdevice_params_t *params) {
    memset(params, 0, sizeof *params);
    params->device_count = 1;
    params->scheduling_algorithm = HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN;
    params->group_id = HAILO_DEFAULT_VDEVICE_GROUP_ID;
    return HAILO_SUCCESS;
}

hailo_status hailo_create_vdevice(hailo_vdevice_params_t *params, hailo_vdevice *vdevice) {
    fake_ready();
    if (strcmp(fake.fault, "busy") == 0) return HAILO_DEVICE_IN_USE;
    if (params && params->scheduling_algorithm != HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN) return HAILO_INVALID_ARGUMENT;
    *vdevice = calloc(1, sizeof **vdevice);
    return *vdevice ? HAILO_SUCCESS : HAILO_OUT_OF_HOST_MEMORY;
}

hailo_status hailo_release_vdevice(hailo_vdevice vdevice) {
    free(vdevice);
    return HAILO_SUCCESS;
}

hailo_status hailo_get_physical_devices(hailo_vdevice vdevice, hailo_device *devices, size_t *number_of_devices) {
    if (!vdevice || *number_of_devices < 1) return HAILO_INSUFFICIENT_BUFFER;
    devices[0] = &fake.device;
    *number_of_devices = 1;
    return HAILO_SUCCESS;
}

#ifndef HAILO_FAKE_WITHOUT_IDENTIFY
hailo_status hailo_identify(hailo_device device, hailo_device_identity_t *id) {
    if (device != &fake.device) return HAILO_INVALID_ARGUMENT;
    memset(id, 0, sizeof *id);
    id->protocol_version = 2;
    id->fw_version = (hailo_firmware_version_t){fake.version.major, fake.version.minor, fake.version.revision};
    id->board_name_length = (uint8_t)snprintf(id->board_name, sizeof id->board_name, "hailo8-fake");
    id->is_release = true;
    id->device_architecture = HAILO_ARCH_HAILO8;
    memcpy(id->serial_number, "HLFAKE0000000001", 16); /* not NUL-terminated, as the card's */
    id->serial_number_length = 16;
    id->part_number_length = (uint8_t)snprintf(id->part_number, sizeof id->part_number, "HM218B1C2FA");
    id->product_name_length =
        (uint8_t)snprintf(id->product_name, sizeof id->product_name, "HAILO-8 AI ACC M.2 (test double)");
    return HAILO_SUCCESS;
}
#endif

hailo_status hailo_get_chip_temperature(hailo_device device, hailo_chip_temperature_info_t *temp_info) {
    if (device != &fake.device) return HAILO_INVALID_ARGUMENT;
    *temp_info = (hailo_chip_temperature_info_t){.ts0_temperature = 45.0f, .ts1_temperature = 46.0f, .sample_count = 1};
    return HAILO_SUCCESS;
}

hailo_status hailo_power_measurement(hailo_device device, hailo_dvm_options_t dvm,
                                     hailo_power_measurement_types_t type, float32_t *measurement) {
    (void)dvm;
    if (device != &fake.device || type != HAILO_POWER_MEASUREMENT_TYPES__POWER) return HAILO_INVALID_ARGUMENT;
    *measurement = 1.25f;
    return HAILO_SUCCESS;
}

/* ------------------------------------------------------------ HEF */

static hailo_status fake_parse_line(struct _hailo_hef *h, const char *line) {
    char word[32] = "";
    if (sscanf(line, "%31s", word) != 1 || word[0] == '#') return HAILO_SUCCESS;
    if (strcmp(word, "network") == 0) return sscanf(line, "network %127s", h->network) == 1 ? 0 : HAILO_INVALID_HEF;
    if (strcmp(word, "input") == 0)
        return sscanf(line, "input %127s %u %u %u", h->input, &h->ih, &h->iw, &h->ic) == 4 ? 0 : HAILO_INVALID_HEF;
    if (strcmp(word, "output") == 0 || strcmp(word, "nms") == 0) {
        if (h->n_outputs == FAKE_MAX_OUTPUTS) return HAILO_INVALID_HEF;
        fake_output *o = &h->outputs[h->n_outputs++];
        o->nms = word[0] == 'n';
        if (o->nms) return sscanf(line, "nms %127s %u %u", o->name, &o->classes, &o->max_per_class) == 3 ? 0 : HAILO_INVALID_HEF;
        return sscanf(line, "output %127s %u %u %u", o->name, &o->h, &o->w, &o->c) == 4 ? 0 : HAILO_INVALID_HEF;
    }
    if (strcmp(word, "box") == 0) {
        if (h->n_boxes == FAKE_MAX_BOXES) return HAILO_INVALID_HEF;
        fake_box *b = &h->boxes[h->n_boxes++];
        return sscanf(line, "box %d %f %f %f %f %f", &b->cls, &b->y_min, &b->x_min, &b->y_max, &b->x_max, &b->score) == 6
                   ? 0
                   : HAILO_INVALID_HEF;
    }
    return HAILO_INVALID_HEF;
}

hailo_status hailo_create_hef_file(hailo_hef *hef, const char *file_name) {
    FILE *f = fopen(file_name, "r");
    if (!f) return HAILO_OPEN_FILE_FAILURE;
    struct _hailo_hef *h = calloc(1, sizeof *h);
    char line[512];
    hailo_status st = h ? HAILO_SUCCESS : HAILO_OUT_OF_HOST_MEMORY;
    if (!st && (!fgets(line, sizeof line, f) || strncmp(line, "hailo_fake_hef 1", 16) != 0)) st = HAILO_INVALID_HEF;
    while (!st && fgets(line, sizeof line, f)) st = fake_parse_line(h, line);
    fclose(f);
    if (!st && (!h->input[0] || !h->ih || !h->iw || !h->ic || h->n_outputs == 0)) st = HAILO_INVALID_HEF;
    if (st) {
        free(h);
        return st;
    }
    if (!h->network[0]) snprintf(h->network, sizeof h->network, "network");
    *hef = h;
    return HAILO_SUCCESS;
}

hailo_status hailo_release_hef(hailo_hef hef) {
    free(hef);
    return HAILO_SUCCESS;
}

hailo_status hailo_init_configure_params_by_vdevice(hailo_hef hef, hailo_vdevice vdevice,
                                                    hailo_configure_params_t *params) {
    if (!hef || !vdevice) return HAILO_INVALID_ARGUMENT;
    memset(params, 0, sizeof *params);
    params->network_group_params_count = 1;
    snprintf(params->network_group_params[0].name, sizeof params->network_group_params[0].name, "%s", hef->network);
    return HAILO_SUCCESS;
}

hailo_status hailo_configure_vdevice(hailo_vdevice vdevice, hailo_hef hef, hailo_configure_params_t *params,
                                     hailo_configured_network_group *network_groups, size_t *number_of_network_groups) {
    if (!vdevice || !hef || !params || params->network_group_params_count != 1) return HAILO_INVALID_ARGUMENT;
    if (*number_of_network_groups < 1) return HAILO_INSUFFICIENT_BUFFER;
    struct _hailo_configured_network_group *g = calloc(1, sizeof *g);
    if (!g) return HAILO_OUT_OF_HOST_MEMORY;
    g->hef = *hef;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->changed, NULL);
    size_t in_bytes = (size_t)hef->ih * hef->iw * hef->ic;
    for (size_t i = 0; i < hef->n_outputs; i++)
        if (!hef->outputs[i].nms) {
            size_t n = (size_t)hef->outputs[i].h * hef->outputs[i].w * hef->outputs[i].c;
            size_t keep = n < in_bytes ? n : in_bytes;
            if (keep > g->keep_bytes) g->keep_bytes = keep;
        }
    for (size_t k = 0; k < FAKE_RING && g->keep_bytes; k++) {
        g->ring[k].bytes = malloc(g->keep_bytes);
        if (!g->ring[k].bytes) return HAILO_OUT_OF_HOST_MEMORY;
    }
    network_groups[0] = g;
    *number_of_network_groups = 1;
    return HAILO_SUCCESS;
}

/* The release of a configured network group (HailoRT frees it with its
 * vdevice; vigil calls shutdown on unload, after which the double frees). */
hailo_status hailo_shutdown_network_group(hailo_configured_network_group g) {
    if (!g) return HAILO_INVALID_ARGUMENT;
    for (size_t k = 0; k < FAKE_RING; k++) free(g->ring[k].bytes);
    pthread_cond_destroy(&g->changed);
    pthread_mutex_destroy(&g->lock);
    free(g);
    return HAILO_SUCCESS;
}

static hailo_status fake_echo(hailo_configured_network_group g, const char *what, unsigned value) {
    if (!g) return HAILO_INVALID_ARGUMENT;
    fprintf(stderr, "hailort_fake: %s %s %u\n", g->hef.network, what, value);
    return HAILO_SUCCESS;
}

hailo_status hailo_set_scheduler_timeout(hailo_configured_network_group g, uint32_t timeout_ms, const char *network) {
    (void)network;
    return fake_echo(g, "timeout_ms", timeout_ms);
}

hailo_status hailo_set_scheduler_threshold(hailo_configured_network_group g, uint32_t threshold, const char *network) {
    (void)network;
    return fake_echo(g, "threshold", threshold);
}

hailo_status hailo_set_scheduler_priority(hailo_configured_network_group g, uint8_t priority, const char *network) {
    (void)network;
    if (priority > HAILO_SCHEDULER_PRIORITY_MAX) return HAILO_INVALID_ARGUMENT;
    return fake_echo(g, "priority", priority);
}

/* ------------------------------------------------------------ vstreams */

static hailo_vstream_params_t fake_params(hailo_format_type_t type, hailo_format_order_t order) {
    return (hailo_vstream_params_t){.user_buffer_format = {.type = type, .order = order},
                                    .timeout_ms = HAILO_DEFAULT_VSTREAM_TIMEOUT_MS,
                                    .queue_size = 2};
}

hailo_status hailo_make_input_vstream_params(hailo_configured_network_group g, bool unused, hailo_format_type_t type,
                                             hailo_input_vstream_params_by_name_t *params, size_t *count) {
    (void)unused;
    if (!g || type != HAILO_FORMAT_TYPE_UINT8) return HAILO_INVALID_ARGUMENT; /* the double speaks uint8 in */
    if (*count < 1) return HAILO_INSUFFICIENT_BUFFER;
    snprintf(params[0].name, sizeof params[0].name, "%s", g->hef.input);
    params[0].params = fake_params(type, HAILO_FORMAT_ORDER_NHWC);
    *count = 1;
    return HAILO_SUCCESS;
}

hailo_status hailo_make_output_vstream_params(hailo_configured_network_group g, bool unused, hailo_format_type_t type,
                                              hailo_output_vstream_params_by_name_t *params, size_t *count) {
    (void)unused;
    if (!g || type != HAILO_FORMAT_TYPE_FLOAT32) return HAILO_INVALID_ARGUMENT; /* and float32 out */
    if (*count < g->hef.n_outputs) return HAILO_INSUFFICIENT_BUFFER;
    for (size_t i = 0; i < g->hef.n_outputs; i++) {
        const fake_output *o = &g->hef.outputs[i];
        snprintf(params[i].name, sizeof params[i].name, "%s", o->name);
        params[i].params = fake_params(type, o->nms ? HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS : HAILO_FORMAT_ORDER_NHWC);
    }
    *count = g->hef.n_outputs;
    return HAILO_SUCCESS;
}

/* Stale frames of a lost card are dropped when streams are created again. */
static void fake_reset_ring(hailo_configured_network_group g) {
    pthread_mutex_lock(&g->lock);
    g->written = 0;
    memset(g->cursor, 0, sizeof g->cursor);
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

static uint64_t fake_generation(void) {
    pthread_mutex_lock(&fake.lock);
    uint64_t gen = fake.generation;
    pthread_mutex_unlock(&fake.lock);
    return gen;
}

hailo_status hailo_create_input_vstreams(hailo_configured_network_group g,
                                         const hailo_input_vstream_params_by_name_t *params, size_t count,
                                         hailo_input_vstream *out) {
    if (!g || count != 1 || strcmp(params[0].name, g->hef.input) != 0) return HAILO_NOT_FOUND;
    if (params[0].params.user_buffer_format.type != HAILO_FORMAT_TYPE_UINT8 ||
        params[0].params.user_buffer_format.order != HAILO_FORMAT_ORDER_NHWC)
        return HAILO_INVALID_ARGUMENT;
    struct _hailo_input_vstream *s = calloc(1, sizeof *s);
    if (!s) return HAILO_OUT_OF_HOST_MEMORY;
    fake_reset_ring(g);
    *s = (struct _hailo_input_vstream){.group = g, .generation = fake_generation(), .params = params[0].params};
    out[0] = s;
    return HAILO_SUCCESS;
}

hailo_status hailo_create_output_vstreams(hailo_configured_network_group g,
                                          const hailo_output_vstream_params_by_name_t *params, size_t count,
                                          hailo_output_vstream *out) {
    if (!g || count != g->hef.n_outputs) return HAILO_INVALID_ARGUMENT;
    for (size_t i = 0; i < count; i++) {
        size_t k = 0;
        while (k < g->hef.n_outputs && strcmp(g->hef.outputs[k].name, params[i].name) != 0) k++;
        const hailo_format_t *f = &params[i].params.user_buffer_format;
        int nms = k < g->hef.n_outputs && g->hef.outputs[k].nms;
        if (k == g->hef.n_outputs || f->type != HAILO_FORMAT_TYPE_FLOAT32 ||
            f->order != (nms ? HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS : HAILO_FORMAT_ORDER_NHWC)) {
            for (size_t j = 0; j < i; j++) free(out[j]);
            return HAILO_INVALID_ARGUMENT;
        }
        struct _hailo_output_vstream *s = calloc(1, sizeof *s);
        if (!s) return HAILO_OUT_OF_HOST_MEMORY;
        *s = (struct _hailo_output_vstream){.group = g, .index = k, .generation = fake_generation(), .params = params[i].params};
        out[i] = s;
    }
    return HAILO_SUCCESS;
}

static size_t fake_output_frame(const fake_output *o) {
    if (o->nms) return (size_t)o->classes * (sizeof(float32_t) + (size_t)o->max_per_class * sizeof(hailo_bbox_float32_t));
    return (size_t)o->h * o->w * o->c * sizeof(float32_t);
}

hailo_status hailo_get_input_vstream_frame_size(hailo_input_vstream s, size_t *frame_size) {
    const struct _hailo_hef *h = &s->group->hef;
    *frame_size = (size_t)h->ih * h->iw * h->ic;
    return HAILO_SUCCESS;
}

hailo_status hailo_get_output_vstream_frame_size(hailo_output_vstream s, size_t *frame_size) {
    *frame_size = fake_output_frame(&s->group->hef.outputs[s->index]);
    return HAILO_SUCCESS;
}

hailo_status hailo_get_input_vstream_info(hailo_input_vstream s, hailo_vstream_info_t *info) {
    const struct _hailo_hef *h = &s->group->hef;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", h->input);
    snprintf(info->network_name, sizeof info->network_name, "%s/%s", h->network, h->network);
    info->direction = HAILO_H2D_STREAM;
    info->format = s->params.user_buffer_format;
    info->shape = (hailo_3d_image_shape_t){h->ih, h->iw, h->ic};
    info->quant_info = (hailo_quant_info_t){.qp_zp = 0, .qp_scale = 1, .limvals_min = 0, .limvals_max = 255};
    return HAILO_SUCCESS;
}

hailo_status hailo_get_output_vstream_info(hailo_output_vstream s, hailo_vstream_info_t *info) {
    const struct _hailo_hef *h = &s->group->hef;
    const fake_output *o = &h->outputs[s->index];
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", o->name);
    snprintf(info->network_name, sizeof info->network_name, "%s/%s", h->network, h->network);
    info->direction = HAILO_D2H_STREAM;
    info->format = s->params.user_buffer_format;
    if (o->nms)
        info->nms_shape = (hailo_nms_shape_t){.number_of_classes = o->classes,
                                              .max_bboxes_per_class = o->max_per_class,
                                              .max_bboxes_total = o->classes * o->max_per_class};
    else info->shape = (hailo_3d_image_shape_t){o->h, o->w, o->c};
    info->quant_info = (hailo_quant_info_t){.qp_zp = 0, .qp_scale = 1.f / 255.f, .limvals_min = 0, .limvals_max = 1};
    return HAILO_SUCCESS;
}

/* The device's time for one frame: its lane, and when it is done. */
static hailo_status fake_schedule_frame(uint64_t generation, int64_t *done_ns, int *timeout) {
    pthread_mutex_lock(&fake.lock);
    if (generation != fake.generation) {
        pthread_mutex_unlock(&fake.lock);
        return HAILO_STREAM_ABORT;
    }
    uint64_t n = ++fake.frames;
    if (strcmp(fake.fault, "lost") == 0 && n == fake.fault_at) {
        fake.generation++;
        pthread_mutex_unlock(&fake.lock);
        fprintf(stderr, "hailort_fake: device lost at frame %llu\n", (unsigned long long)n);
        return HAILO_STREAM_ABORT;
    }
    *timeout = strcmp(fake.fault, "timeout") == 0 && n == fake.fault_at;
    int best = 0;
    for (int i = 1; i < fake.lanes; i++)
        if (fake.lane_free[i] < fake.lane_free[best]) best = i;
    int64_t now = fake_now(), start = fake.lane_free[best] > now ? fake.lane_free[best] : now;
    *done_ns = fake.lane_free[best] = start + fake.frame_ns;
    pthread_mutex_unlock(&fake.lock);
    return HAILO_SUCCESS;
}

static uint64_t fake_min_cursor(hailo_configured_network_group g) {
    uint64_t m = g->written;
    for (size_t i = 0; i < g->hef.n_outputs; i++)
        if (g->cursor[i] < m) m = g->cursor[i];
    return m;
}

/* Waits on g->changed for at most 50 ms (the caller rechecks everything). */
static void fake_wait(hailo_configured_network_group g) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&g->changed, &g->lock, &ts);
}

/* FNV-1a, 64 bits. */
static uint64_t fake_hash(const uint8_t *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

hailo_status hailo_vstream_write_raw_buffer(hailo_input_vstream s, const void *buffer, size_t size) {
    hailo_configured_network_group g = s->group;
    const struct _hailo_hef *h = &g->hef;
    if (size != (size_t)h->ih * h->iw * h->ic) return HAILO_INVALID_ARGUMENT;
    if (fake.log_input)
        fprintf(stderr, "hailort_fake: input %s %016llx\n", h->network, (unsigned long long)fake_hash(buffer, size));
    int64_t deadline = fake_now() + (int64_t)s->params.timeout_ms * 1000000;
    pthread_mutex_lock(&g->lock);
    while (g->written - fake_min_cursor(g) >= FAKE_RING || g->written - fake_min_cursor(g) >= s->params.queue_size + 8) {
        if (fake_now() > deadline) {
            pthread_mutex_unlock(&g->lock);
            return HAILO_TIMEOUT;
        }
        fake_wait(g);
    }
    fake_frame *f = &g->ring[g->written % FAKE_RING];
    hailo_status st = fake_schedule_frame(s->generation, &f->done_ns, &f->timeout);
    if (st == HAILO_SUCCESS) {
        if (g->keep_bytes) memcpy(f->bytes, buffer, g->keep_bytes);
        g->written++;
        pthread_cond_broadcast(&g->changed);
    }
    pthread_mutex_unlock(&g->lock);
    return st;
}

/* The by-class NMS frame of the HEF's box lines. */
static void fake_nms_frame(const struct _hailo_hef *h, const fake_output *o, uint8_t *out, size_t size) {
    size_t at = 0;
    memset(out, 0, size);
    for (uint32_t c = 0; c < o->classes; c++) {
        float32_t count = 0;
        size_t count_at = at;
        at += sizeof count;
        for (size_t i = 0; i < h->n_boxes && count < (float)o->max_per_class; i++) {
            const fake_box *b = &h->boxes[i];
            if (b->cls != (int)c) continue;
            hailo_bbox_float32_t box = {b->y_min, b->x_min, b->y_max, b->x_max, b->score};
            memcpy(out + at, &box, sizeof box);
            at += sizeof box;
            count += 1;
        }
        memcpy(out + count_at, &count, sizeof count);
    }
}

hailo_status hailo_vstream_read_raw_buffer(hailo_output_vstream s, void *buffer, size_t size) {
    hailo_configured_network_group g = s->group;
    const fake_output *o = &g->hef.outputs[s->index];
    if (size != fake_output_frame(o)) return HAILO_INVALID_ARGUMENT;
    int64_t deadline = fake_now() + (int64_t)s->params.timeout_ms * 1000000;
    pthread_mutex_lock(&g->lock);
    while (g->cursor[s->index] >= g->written) {
        if (fake_generation() != s->generation) {
            pthread_mutex_unlock(&g->lock);
            return HAILO_STREAM_ABORT;
        }
        if (fake_now() > deadline) {
            pthread_mutex_unlock(&g->lock);
            return HAILO_TIMEOUT;
        }
        fake_wait(g);
    }
    fake_frame f = g->ring[g->cursor[s->index] % FAKE_RING];
    pthread_mutex_unlock(&g->lock);
    struct timespec until = {.tv_sec = f.done_ns / 1000000000, .tv_nsec = f.done_ns % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
    hailo_status st = fake_generation() != s->generation ? HAILO_STREAM_ABORT
                      : f.timeout                        ? HAILO_TIMEOUT
                                                         : HAILO_SUCCESS;
    if (st == HAILO_SUCCESS && o->nms) fake_nms_frame(&g->hef, o, buffer, size);
    if (st == HAILO_SUCCESS && !o->nms) {
        float *out = buffer;
        size_t n = size / sizeof(float);
        for (size_t j = 0; j < n; j++) out[j] = (float)f.bytes[j % g->keep_bytes] / 255.f + (float)s->index;
    }
    pthread_mutex_lock(&g->lock);
    g->cursor[s->index]++;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    return st;
}

hailo_status hailo_release_input_vstreams(const hailo_input_vstream *streams, size_t count) {
    for (size_t i = 0; i < count; i++) free(streams[i]);
    return HAILO_SUCCESS;
}

hailo_status hailo_release_output_vstreams(const hailo_output_vstream *streams, size_t count) {
    for (size_t i = 0; i < count; i++) free(streams[i]);
    return HAILO_SUCCESS;
}
