/*
 * hailo.c - the Hailo-8 backend: HEF models on a Hailo card through
 * HailoRT's C API, opened at run time (hailort_lib.c).
 *
 * The device is one HailoRT virtual device with the model scheduler (round
 * robin), shared by every Hailo model and instance of the server: HailoRT,
 * not vigil, decides which network group has the card, switching between
 * them as frames arrive, with each model's priority, timeout and frame
 * threshold from its config.yaml (schedule).  A model is a HEF configured on
 * that vdevice as one network group, with one input and one output vstream
 * per layer; its instance (a scheduler worker thread) writes frames and reads
 * results through them, so several instances of a model keep several frames
 * in flight, which is what keeps the card busy while the host prepares the
 * next ones.
 *
 * What the server sees: each input as the HEF's own frame, uint8 NHWC
 * [batch, H, W, C], which the detector's letterbox writes directly (and a
 * KServe client sends as UINT8), so a frame goes to HailoRT without a host
 * copy or conversion; each output as
 * float32, dequantised by HailoRT (HAILO_FORMAT_TYPE_FLOAT32 user format),
 * NHWC; an NMS output (HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS: per class a
 * float32 count and that many boxes, packed) spread into fixed rows [batch,
 * classes, 1 + 5 * max_bboxes_per_class] whose last dimension is named
 * "hailo_nms", which the vision library's hailo_nms head decodes.
 *
 * Faults: a vstream call that fails (device lost, timeout, stream aborted)
 * fails the run with VIGIL_ERR_UNAVAILABLE (HTTP 503, gRPC UNAVAILABLE) and
 * marks the model's vstreams stale; the next run releases and creates them
 * again, so the model recovers as soon as the device answers again, without
 * a reload.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/hailo/hailort_lib.h"
#include "core/alloc.h"
#include "core/log.h"

/* Frames written before they are read: the vstream queues hold this many,
 * so a batch never waits on itself; a larger batch goes through in such
 * slices. */
#define HAILO_RUN_BATCH 8
#define HAILO_MAX_PHYSICAL 4

struct backend_device {
    hailort_lib *lib;
    hailo_vdevice vdevice;
    int multi_process;   /* created in the HailoRT service */
    pthread_mutex_t lock; /* configure and release of network groups, from load and unload threads */
};

typedef struct hailo_output {
    hailo_vstream_info_t info;
    size_t frame_size;    /* bytes HailoRT writes per frame */
    int nms;              /* by-class NMS rows */
    size_t item_floats;   /* floats per batch item in the tensor vigil sees */
    char name[HAILO_MAX_STREAM_NAME_SIZE];
} hailo_output;

struct backend_model {
    backend_device *dev;
    hailort_lib *lib; /* the device's */
    char *path;
    hailo_hef hef;
    hailo_configured_network_group group;
    size_t n_inputs, n_outputs;
    hailo_input_vstream_params_by_name_t in_params[BACKEND_MAX_IO];
    hailo_output_vstream_params_by_name_t out_params[BACKEND_MAX_IO];
    hailo_input_vstream inputs[BACKEND_MAX_IO];
    hailo_output_vstream outputs[BACKEND_MAX_IO];
    int streams_open; /* 0 after a fault: the next run creates them again */
    size_t in_frame[BACKEND_MAX_IO];
    char in_names[BACKEND_MAX_IO][HAILO_MAX_STREAM_NAME_SIZE];
    hailo_output out[BACKEND_MAX_IO];
    vigil_tensor_info in_info[BACKEND_MAX_IO], out_info[BACKEND_MAX_IO];
    uint8_t *nms_frame; /* one NMS frame as HailoRT packs it */
    size_t nms_bytes;
    float *results[BACKEND_MAX_IO]; /* outputs of the last run, room for `room` items */
    int64_t room;
    vigil_tensor result_tensors[BACKEND_MAX_IO];
};

static const char *hailo_text(hailo_status s, char *buf, size_t size) { return hailort_status_text(s, buf, size); }

static void hailo_close(backend_device *dev) {
    if (!dev) return;
    if (dev->vdevice) dev->lib->hailo_release_vdevice(dev->vdevice);
    hailort_lib_close(dev->lib);
    pthread_mutex_destroy(&dev->lock);
    vigil_free(dev);
}

static vigil_status hailo_open(const backend_options *options, backend_device **out, vigil_error *err) {
    (void)options;
    *out = NULL;
    backend_device *dev = vigil_calloc(1, sizeof *dev);
    if (!dev) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory");
    pthread_mutex_init(&dev->lock, NULL);
    vigil_status st = hailort_lib_open(&dev->lib, err);
    if (st) {
        hailo_close(dev);
        return st;
    }
    hailo_vdevice_params_t params;
    hailo_status hs = dev->lib->hailo_init_vdevice_params(&params);
    /* The service lets other processes share the card; vigil alone on it
     * (every container reaching the card through vigil) needs none. */
    const char *service = getenv("VIGIL_HAILO_MULTI_PROCESS");
    dev->multi_process = service && strcmp(service, "1") == 0;
    if (hs == HAILO_SUCCESS) {
        params.scheduling_algorithm = HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN;
        params.multi_process_service = dev->multi_process;
        hs = dev->lib->hailo_create_vdevice(&params, &dev->vdevice);
    }
    if (hs != HAILO_SUCCESS) {
        char buf[32];
        const char *why = hailo_text(hs, buf, sizeof buf);
        vigil_error_set(err, VIGIL_ERR_UNAVAILABLE,
                        "no Hailo device: hailo_create_vdevice failed with %s (%s)", why,
                        hs == HAILO_DEVICE_IN_USE || hs == HAILO_OUT_OF_PHYSICAL_DEVICES
                            ? "another process holds the card: share it through the HailoRT service "
                              "(VIGIL_HAILO_MULTI_PROCESS=1) or through this vigil"
                            : "is the hailo_pci driver loaded and /dev/hailo0 present?");
        dev->vdevice = NULL;
        hailo_close(dev);
        return VIGIL_ERR_UNAVAILABLE;
    }
    *out = dev;
    return VIGIL_OK;
}

static void hailo_describe(const backend_device *dev, char *out, size_t size) {
    const hailo_version_t *v = &dev->lib->version;
    snprintf(out, size, "HailoRT %u.%u.%u (%s), one virtual device, model scheduler round robin%s", v->major,
             v->minor, v->revision, dev->lib->path, dev->multi_process ? ", HailoRT multi-process service" : "");
}

static const char *hailo_arch_name(hailo_device_architecture_t a) {
    switch (a) {
    case HAILO_ARCH_HAILO8_A0: return "HAILO8_A0";
    case HAILO_ARCH_HAILO8: return "HAILO8";
    case HAILO_ARCH_HAILO8L: return "HAILO8L";
    case HAILO_ARCH_HAILO15H: return "HAILO15H";
    case HAILO_ARCH_HAILO15L: return "HAILO15L";
    case HAILO_ARCH_HAILO15M: return "HAILO15M";
    case HAILO_ARCH_HAILO10H: return "HAILO10H";
    default: return "unknown";
    }
}

/* The first physical device's identity, temperature and power. */
static void hailo_facts(backend_device *dev, backend_facts *out) {
    memset(out, 0, sizeof *out);
    out->temperature_c = out->power_w = NAN;
    const hailo_version_t *v = &dev->lib->version;
    snprintf(out->library, sizeof out->library, "HailoRT %u.%u.%u (%s)", v->major, v->minor, v->revision,
             dev->lib->path);
    hailo_device devices[HAILO_MAX_PHYSICAL];
    size_t n = HAILO_MAX_PHYSICAL;
    if (dev->lib->hailo_get_physical_devices(dev->vdevice, devices, &n) != HAILO_SUCCESS || n == 0) return;
    hailo_device_identity_t id;
    if (dev->lib->hailo_identify(devices[0], &id) == HAILO_SUCCESS) {
        int sn = id.serial_number_length <= HAILO_MAX_SERIAL_NUMBER_LENGTH ? id.serial_number_length : 0;
        int pn = id.product_name_length <= HAILO_MAX_PRODUCT_NAME_LENGTH ? id.product_name_length : 0;
        snprintf(out->serial, sizeof out->serial, "%.*s", sn, id.serial_number);
        snprintf(out->product, sizeof out->product, "%.*s", pn, id.product_name);
        snprintf(out->firmware, sizeof out->firmware, "%u.%u.%u", id.fw_version.major, id.fw_version.minor,
                 id.fw_version.revision);
        snprintf(out->architecture, sizeof out->architecture, "%s", hailo_arch_name(id.device_architecture));
    }
    hailo_chip_temperature_info_t t;
    if (dev->lib->hailo_get_chip_temperature(devices[0], &t) == HAILO_SUCCESS)
        out->temperature_c = (t.ts0_temperature + t.ts1_temperature) / 2;
    float32_t watts = 0;
    if (dev->lib->hailo_power_measurement(devices[0], HAILO_DVM_OPTIONS_AUTO, HAILO_POWER_MEASUREMENT_TYPES__POWER,
                                          &watts) == HAILO_SUCCESS)
        out->power_w = watts;
}

/* ------------------------------------------------------------ vstreams */

static void hailo_release_streams(backend_model *m) {
    if (!m->streams_open) return;
    m->lib->hailo_release_input_vstreams(m->inputs, m->n_inputs);
    m->lib->hailo_release_output_vstreams(m->outputs, m->n_outputs);
    m->streams_open = 0;
}

static vigil_status hailo_fail(vigil_error *err, vigil_status st, const char *what, const char *path,
                               hailo_status hs) {
    char buf[32];
    return vigil_error_set(err, st, "hailo: %s failed for %s: %s", what, path, hailo_text(hs, buf, sizeof buf));
}

static vigil_status hailo_open_streams(backend_model *m, vigil_error *err) {
    hailo_status hs = m->lib->hailo_create_input_vstreams(m->group, m->in_params, m->n_inputs, m->inputs);
    if (hs != HAILO_SUCCESS) return hailo_fail(err, VIGIL_ERR_UNAVAILABLE, "hailo_create_input_vstreams", m->path, hs);
    hs = m->lib->hailo_create_output_vstreams(m->group, m->out_params, m->n_outputs, m->outputs);
    if (hs != HAILO_SUCCESS) {
        m->lib->hailo_release_input_vstreams(m->inputs, m->n_inputs);
        return hailo_fail(err, VIGIL_ERR_UNAVAILABLE, "hailo_create_output_vstreams", m->path, hs);
    }
    m->streams_open = 1;
    return VIGIL_OK;
}

static int hailo_is_nms(hailo_format_order_t order) {
    return order == HAILO_FORMAT_ORDER_HAILO_NMS || order == HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS ||
           order == HAILO_FORMAT_ORDER_HAILO_NMS_BY_SCORE;
}

/* The tensors the server sees, from the vstream infos. */
static vigil_status hailo_describe_io(backend_model *m, vigil_error *err) {
    static const char *const nms_dims[3] = {"batch", "classes", "hailo_nms"};
    for (size_t i = 0; i < m->n_inputs; i++) {
        hailo_vstream_info_t info;
        hailo_status hs = m->lib->hailo_get_input_vstream_info(m->inputs[i], &info);
        if (hs == HAILO_SUCCESS) hs = m->lib->hailo_get_input_vstream_frame_size(m->inputs[i], &m->in_frame[i]);
        if (hs != HAILO_SUCCESS) return hailo_fail(err, VIGIL_ERR_UNSUPPORTED, "reading the input vstream", m->path, hs);
        size_t elems = (size_t)info.shape.height * info.shape.width * info.shape.features;
        if (m->in_frame[i] != elems)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                                   "hailo: %s: input %s is %zu bytes a frame, not %ux%ux%u uint8 NHWC", m->path,
                                   info.name, m->in_frame[i], info.shape.height, info.shape.width,
                                   info.shape.features);
        snprintf(m->in_names[i], sizeof m->in_names[i], "%s", info.name);
        m->in_info[i] = (vigil_tensor_info){.name = m->in_names[i],
                                            .dtype = VIGIL_DTYPE_U8,
                                            .ndim = 4,
                                            .dims = {-1, info.shape.height, info.shape.width, info.shape.features}};
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        hailo_output *o = &m->out[i];
        hailo_status hs = m->lib->hailo_get_output_vstream_info(m->outputs[i], &o->info);
        if (hs == HAILO_SUCCESS) hs = m->lib->hailo_get_output_vstream_frame_size(m->outputs[i], &o->frame_size);
        if (hs != HAILO_SUCCESS) return hailo_fail(err, VIGIL_ERR_UNSUPPORTED, "reading an output vstream", m->path, hs);
        snprintf(o->name, sizeof o->name, "%s", o->info.name);
        vigil_tensor_info *t = &m->out_info[i];
        *t = (vigil_tensor_info){.name = o->name, .dtype = VIGIL_DTYPE_F32};
        o->nms = hailo_is_nms(o->info.format.order);
        if (o->nms) {
            const hailo_nms_shape_t *s = &o->info.nms_shape;
            if (o->info.format.order != HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS &&
                o->info.format.order != HAILO_FORMAT_ORDER_HAILO_NMS)
                return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "hailo: %s: NMS output %s is not by class",
                                       m->path, o->name);
            *t = (vigil_tensor_info){.name = o->name,
                                     .dtype = VIGIL_DTYPE_F32,
                                     .ndim = 3,
                                     .dims = {-1, s->number_of_classes, 1 + 5 * (int64_t)s->max_bboxes_per_class}};
            for (int d = 0; d < 3; d++) t->dim_names[d] = nms_dims[d];
            o->item_floats = (size_t)s->number_of_classes * (1 + 5 * (size_t)s->max_bboxes_per_class);
            if (o->frame_size > m->nms_bytes) m->nms_bytes = o->frame_size;
        } else {
            const hailo_3d_image_shape_t *s = &o->info.shape;
            *t = (vigil_tensor_info){
                .name = o->name, .dtype = VIGIL_DTYPE_F32, .ndim = 4, .dims = {-1, s->height, s->width, s->features}};
            o->item_floats = (size_t)s->height * s->width * s->features;
            if (o->frame_size != o->item_floats * sizeof(float))
                return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "hailo: %s: output %s is %zu bytes a frame, not %zu floats",
                                       m->path, o->name, o->frame_size, o->item_floats);
        }
    }
    m->nms_frame = m->nms_bytes ? vigil_aligned_alloc(64, m->nms_bytes) : NULL;
    if (m->nms_bytes && !m->nms_frame)
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory for %s", m->path);
    return VIGIL_OK;
}

/* ------------------------------------------------------------ load */

static void hailo_unload(backend_model *m) {
    if (!m) return;
    hailo_release_streams(m);
    pthread_mutex_lock(&m->dev->lock);
    if (m->group) m->lib->hailo_shutdown_network_group(m->group);
    if (m->hef) m->lib->hailo_release_hef(m->hef);
    pthread_mutex_unlock(&m->dev->lock);
    for (size_t i = 0; i < BACKEND_MAX_IO; i++) vigil_free(m->results[i]);
    vigil_free(m->nms_frame);
    vigil_free(m->path);
    vigil_free(m);
}

/* The HEF configured on the shared vdevice as one network group. */
static vigil_status hailo_configure(backend_model *m, vigil_error *err) {
    const hailort_lib *lib = m->lib;
    hailo_status hs = lib->hailo_create_hef_file(&m->hef, m->path);
    if (hs != HAILO_SUCCESS) {
        m->hef = NULL;
        return hailo_fail(err, hs == HAILO_OPEN_FILE_FAILURE ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_PARSE,
                          "hailo_create_hef_file", m->path, hs);
    }
    hailo_configure_params_t *params = vigil_calloc(1, sizeof *params); /* 84 kB: not on the stack */
    if (!params) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory");
    hailo_configured_network_group groups[HAILO_MAX_NETWORK_GROUPS];
    size_t n_groups = HAILO_MAX_NETWORK_GROUPS;
    pthread_mutex_lock(&m->dev->lock);
    hs = lib->hailo_init_configure_params_by_vdevice(m->hef, m->dev->vdevice, params);
    const char *what = "hailo_init_configure_params_by_vdevice";
    if (hs == HAILO_SUCCESS) {
        what = "hailo_configure_vdevice";
        hs = lib->hailo_configure_vdevice(m->dev->vdevice, m->hef, params, groups, &n_groups);
    }
    pthread_mutex_unlock(&m->dev->lock);
    vigil_free(params);
    if (hs != HAILO_SUCCESS)
        return hailo_fail(err, hs == HAILO_OUT_OF_HOST_MEMORY ? VIGIL_ERR_NO_MEMORY : VIGIL_ERR_UNAVAILABLE, what,
                          m->path, hs);
    if (n_groups != 1)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "hailo: %s holds %zu network groups; vigil serves one",
                               m->path, n_groups);
    m->group = groups[0];
    return VIGIL_OK;
}

/* vstream parameters: uint8 frames in, float32 (dequantised) out, by-class
 * NMS, queues deep enough for one run's batch. */
static vigil_status hailo_stream_params(backend_model *m, vigil_error *err) {
    const hailort_lib *lib = m->lib;
    m->n_inputs = BACKEND_MAX_IO;
    m->n_outputs = BACKEND_MAX_IO;
    hailo_status hs =
        lib->hailo_make_input_vstream_params(m->group, false, HAILO_FORMAT_TYPE_UINT8, m->in_params, &m->n_inputs);
    if (hs == HAILO_SUCCESS)
        hs = lib->hailo_make_output_vstream_params(m->group, false, HAILO_FORMAT_TYPE_FLOAT32, m->out_params,
                                                   &m->n_outputs);
    if (hs != HAILO_SUCCESS) return hailo_fail(err, VIGIL_ERR_UNSUPPORTED, "making vstream parameters", m->path, hs);
    if (m->n_inputs == 0 || m->n_outputs == 0)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "hailo: %s has no inputs or outputs", m->path);
    for (size_t i = 0; i < m->n_inputs; i++) {
        m->in_params[i].params.user_buffer_format.order = HAILO_FORMAT_ORDER_NHWC;
        m->in_params[i].params.queue_size = HAILO_RUN_BATCH;
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        hailo_format_t *f = &m->out_params[i].params.user_buffer_format;
        if (hailo_is_nms(f->order)) f->order = HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS;
        else f->order = HAILO_FORMAT_ORDER_NHWC;
        m->out_params[i].params.queue_size = HAILO_RUN_BATCH;
    }
    return VIGIL_OK;
}

static vigil_status hailo_load(backend_device *dev, const char *path, backend_model **out, backend_io *io,
                               vigil_error *err) {
    *out = NULL;
    backend_model *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory");
    m->dev = dev;
    m->lib = dev->lib;
    m->path = vigil_strdup(path);
    vigil_status st = m->path ? hailo_configure(m, err) : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory");
    if (!st) st = hailo_stream_params(m, err);
    if (!st) st = hailo_open_streams(m, err);
    if (!st) st = hailo_describe_io(m, err);
    if (st) {
        hailo_unload(m);
        return st;
    }
    memset(io, 0, sizeof *io);
    io->n_inputs = m->n_inputs;
    io->n_outputs = m->n_outputs;
    for (size_t i = 0; i < m->n_inputs; i++) io->inputs[i] = &m->in_info[i];
    for (size_t i = 0; i < m->n_outputs; i++) io->outputs[i] = &m->out_info[i];
    io->native_batch = 0;
    io->run_batch = HAILO_RUN_BATCH;
    *out = m;
    return VIGIL_OK;
}

static vigil_status hailo_schedule(backend_model *m, const backend_schedule *s, vigil_error *err) {
    const hailort_lib *lib = m->lib;
    hailo_status hs = HAILO_SUCCESS;
    const char *what = "";
    if (s->priority >= 0) {
        what = "hailo_set_scheduler_priority";
        hs = lib->hailo_set_scheduler_priority(m->group, (uint8_t)s->priority, NULL);
    }
    if (hs == HAILO_SUCCESS && s->timeout_ms >= 0) {
        what = "hailo_set_scheduler_timeout";
        hs = lib->hailo_set_scheduler_timeout(m->group, (uint32_t)s->timeout_ms, NULL);
    }
    if (hs == HAILO_SUCCESS && s->threshold >= 0) {
        what = "hailo_set_scheduler_threshold";
        hs = lib->hailo_set_scheduler_threshold(m->group, (uint32_t)s->threshold, NULL);
    }
    return hs == HAILO_SUCCESS ? VIGIL_OK : hailo_fail(err, VIGIL_ERR_INVALID_ARGUMENT, what, m->path, hs);
}

/* ------------------------------------------------------------ run */

/* HailoRT's packed by-class NMS frame into fixed rows of 1 + 5 K floats. */
static void hailo_unpack_nms(const hailo_output *o, const uint8_t *packed, float *rows) {
    uint32_t classes = o->info.nms_shape.number_of_classes, room = o->info.nms_shape.max_bboxes_per_class;
    size_t row = 1 + 5 * (size_t)room, at = 0;
    memset(rows, 0, o->item_floats * sizeof(float));
    for (uint32_t c = 0; c < classes; c++) {
        float count;
        if (at + sizeof count > o->frame_size) return;
        memcpy(&count, packed + at, sizeof count);
        at += sizeof count;
        size_t n = count > 0 ? (size_t)count : 0;
        if (n > room) n = room;
        size_t bytes = n * sizeof(hailo_bbox_float32_t);
        if (at + bytes > o->frame_size) return;
        rows[c * row] = (float)n;
        memcpy(rows + c * row + 1, packed + at, bytes);
        at += bytes;
    }
}

static vigil_status hailo_fault(backend_model *m, const char *what, hailo_status hs, vigil_error *err) {
    char buf[32];
    hailo_release_streams(m); /* out of step with the device: created again by the next run */
    return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "hailo: %s failed for %s: %s (the device is busy or lost; "
                           "retry)", what, m->path, hailo_text(hs, buf, sizeof buf));
}

/* Writes the batch's frames, then reads their results (the queues hold a
 * run's batch, so the device works on frame k while frame k+1 is written). */
static vigil_status hailo_write_read(backend_model *m, int64_t first, int64_t count, const vigil_tensor *inputs,
                                     vigil_error *err) {
    for (int64_t b = 0; b < count; b++)
        for (size_t i = 0; i < m->n_inputs; i++) {
            const uint8_t *frame = (const uint8_t *)inputs[i].data + (size_t)(first + b) * m->in_frame[i];
            hailo_status hs = m->lib->hailo_vstream_write_raw_buffer(m->inputs[i], frame, m->in_frame[i]);
            if (hs != HAILO_SUCCESS) return hailo_fault(m, "hailo_vstream_write_raw_buffer", hs, err);
        }
    for (int64_t b = 0; b < count; b++)
        for (size_t i = 0; i < m->n_outputs; i++) {
            hailo_output *o = &m->out[i];
            float *dst = m->results[i] + (size_t)(first + b) * o->item_floats;
            void *into = o->nms ? (void *)m->nms_frame : (void *)dst;
            hailo_status hs = m->lib->hailo_vstream_read_raw_buffer(m->outputs[i], into, o->frame_size);
            if (hs != HAILO_SUCCESS) return hailo_fault(m, "hailo_vstream_read_raw_buffer", hs, err);
            if (o->nms) hailo_unpack_nms(o, m->nms_frame, dst);
        }
    return VIGIL_OK;
}

/* Room in the result buffers for batch items (the run batch at first; a raw
 * request may bring more). */
static vigil_status hailo_reserve(backend_model *m, int64_t batch, vigil_error *err) {
    if (batch <= m->room) return VIGIL_OK;
    int64_t room = batch > HAILO_RUN_BATCH ? batch : HAILO_RUN_BATCH;
    for (size_t i = 0; i < m->n_outputs; i++) {
        float *grown = vigil_aligned_alloc(64, m->out[i].item_floats * sizeof(float) * (size_t)room);
        if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory for a batch of %lld",
                                           (long long)batch);
        vigil_free(m->results[i]);
        m->results[i] = grown;
    }
    m->room = room;
    return VIGIL_OK;
}

static vigil_status hailo_run(backend_model *m, int64_t batch, const vigil_tensor *inputs, size_t n_inputs,
                              const vigil_tensor **outputs, vigil_error *err) {
    if (n_inputs != m->n_inputs)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "hailo: %s takes %zu inputs, got %zu", m->path,
                               m->n_inputs, n_inputs);
    if (batch < 1) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "hailo: a run of %lld frames", (long long)batch);
    vigil_status st = hailo_reserve(m, batch, err);
    if (st) return st;
    for (size_t i = 0; i < n_inputs; i++) {
        vigil_tensor t = inputs[i];
        t.dims[0] = 1;
        if (inputs[i].dtype != VIGIL_DTYPE_U8 || vigil_tensor_bytes(&t) != m->in_frame[i])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "hailo: input %s must be uint8 [N, %lld, %lld, %lld]", m->in_names[i],
                                   (long long)m->in_info[i].dims[1], (long long)m->in_info[i].dims[2],
                                   (long long)m->in_info[i].dims[3]);
    }
    if (!m->streams_open) {
        st = hailo_open_streams(m, err);
        if (st) return st;
        LOG_I("hailo: %s: vstreams created again after a fault", m->path);
    }
    for (int64_t first = 0; first < batch && !st; first += HAILO_RUN_BATCH)
        st = hailo_write_read(m, first, batch - first < HAILO_RUN_BATCH ? batch - first : HAILO_RUN_BATCH, inputs, err);
    if (st) return st;
    for (size_t i = 0; i < m->n_outputs; i++) {
        vigil_tensor *t = &m->result_tensors[i];
        *t = (vigil_tensor){.dtype = VIGIL_DTYPE_F32, .ndim = m->out_info[i].ndim, .data = m->results[i]};
        memcpy(t->dims, m->out_info[i].dims, sizeof t->dims);
        t->dims[0] = batch;
        outputs[i] = t;
    }
    return VIGIL_OK;
}

static const char *hailo_metadata(const backend_model *m, const char *key) {
    /* an on-chip NMS output is a detector's: say so, as an exporter's task would */
    if (strcmp(key, "task") == 0)
        for (size_t i = 0; i < m->n_outputs; i++)
            if (m->out[i].nms) return "detect";
    return NULL;
}

const backend_ops backend_hailo = {
    .name = "hailo",
    .model_file = "model.hef",
    .open = hailo_open,
    .close = hailo_close,
    .describe = hailo_describe,
    .load = hailo_load,
    .unload = hailo_unload,
    .run = hailo_run,
    .metadata = hailo_metadata,
    .pool = NULL, /* no host compute threads to lend: the card computes */
    .schedule = hailo_schedule,
    .facts = hailo_facts,
};
