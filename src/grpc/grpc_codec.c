/*
 * grpc_codec.c - gRPC request messages to scheduler jobs (see grpc_codec.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "grpc/grpc_codec.h"

/* ------------------------------------------------------------ ModelInferRequest */

static int find_input(const served_model *m, const char *name) {
    for (size_t i = 0; i < m->io.n_inputs; i++)
        if (strcmp(m->io.inputs[i]->name, name) == 0) return (int)i;
    return -1;
}

/* Copies typed contents into dst (count elements of dt). */
static vigil_status fill_typed(const Inference__InferTensorContents *tc, vigil_dtype dt, void *dst, size_t count,
                               const char *name, vigil_error *err) {
    size_t have = 0;
    if (tc) switch (dt) {
        case VIGIL_DTYPE_F32: have = tc->n_fp32_contents; break;
        case VIGIL_DTYPE_F64: have = tc->n_fp64_contents; break;
        case VIGIL_DTYPE_I64: have = tc->n_int64_contents; break;
        case VIGIL_DTYPE_I32:
        case VIGIL_DTYPE_I8: have = tc->n_int_contents; break;
        case VIGIL_DTYPE_U8: have = tc->n_uint_contents; break;
        case VIGIL_DTYPE_BOOL: have = tc->n_bool_contents; break;
        case VIGIL_DTYPE_F16:
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': FP16 has no typed field: use raw_input_contents",
                                   name);
        }
    if (have != count)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "input '%s': %zu elements in contents for a shape of %zu (or the wrong contents field for %s)",
                               name, have, count, infer_datatype_name(dt));
    for (size_t i = 0; i < count; i++) {
        switch (dt) {
        case VIGIL_DTYPE_F32: ((float *)dst)[i] = tc->fp32_contents[i]; break;
        case VIGIL_DTYPE_F64: ((double *)dst)[i] = tc->fp64_contents[i]; break;
        case VIGIL_DTYPE_I64: ((int64_t *)dst)[i] = tc->int64_contents[i]; break;
        case VIGIL_DTYPE_I32: ((int32_t *)dst)[i] = tc->int_contents[i]; break;
        case VIGIL_DTYPE_BOOL: ((uint8_t *)dst)[i] = tc->bool_contents[i] != 0; break;
        case VIGIL_DTYPE_I8:
            if (tc->int_contents[i] < -128 || tc->int_contents[i] > 127) goto range;
            ((int8_t *)dst)[i] = (int8_t)tc->int_contents[i];
            break;
        case VIGIL_DTYPE_U8:
            if (tc->uint_contents[i] > 255) goto range;
            ((uint8_t *)dst)[i] = (uint8_t)tc->uint_contents[i];
            break;
        default: break;
        }
    }
    return VIGIL_OK;
range:
    return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': an element is out of range for %s", name,
                           infer_datatype_name(dt));
}

static vigil_status parse_input(const served_model *m, const Inference__ModelInferRequest *req, size_t i,
                                int64_t max_elements, arena *a, sched_job *job, int *seen, vigil_error *err) {
    const Inference__ModelInferRequest__InferInputTensor *in = req->inputs[i];
    int index = find_input(m, in->name);
    if (index < 0) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model '%s' has no input '%.100s'", m->name, in->name);
    if (seen[index]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s' given twice", in->name);
    const vigil_tensor_info *info = m->io.inputs[index];
    if (infer_datatype_parse(in->datatype) != (int)info->dtype)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': datatype %.20s, the model expects %s", in->name,
                               in->datatype, infer_datatype_name(info->dtype));
    job_raw *raw = job_raw_of(job);
    vigil_tensor *t = &raw->inputs[index];
    t->dtype = info->dtype;
    size_t count = 0;
    vigil_status st = in->n_shape > VIGIL_MAX_DIMS
        ? vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': shape has %zu dimensions, the model expects %d",
                          in->name, in->n_shape, info->ndim)
        : infer_check_shape(m, info, in->shape, in->n_shape, max_elements, job, raw->n_inputs == 0, t, &count, err);
    if (st) return st;
    size_t bytes = count * vigil_dtype_size(info->dtype);
    t->data = arena_alloc(a, bytes ? bytes : 1, 64);
    if (!t->data) return vigil_error_set(err, VIGIL_ERR_LIMIT, "input '%s': request memory limit reached", in->name);
    if (req->n_raw_input_contents) {
        if (in->contents)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "input '%s': contents and raw_input_contents cannot be mixed", in->name);
        if (req->raw_input_contents[i].len != bytes)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': raw_input_contents[%zu] has %zu bytes, the shape needs %zu",
                                   in->name, i, req->raw_input_contents[i].len, bytes);
        memcpy(t->data, req->raw_input_contents[i].data, bytes);
    } else {
        st = fill_typed(in->contents, info->dtype, t->data, count, in->name, err);
        if (st) return st;
    }
    seen[index] = 1;
    raw->n_inputs++;
    return VIGIL_OK;
}

vigil_status grpc_infer_parse(const served_model *m, const Inference__ModelInferRequest *req, int64_t max_elements,
                              arena *a, sched_job *job, grpc_infer_ctx *ctx, vigil_error *err) {
    if (req->n_raw_input_contents && req->n_raw_input_contents != req->n_inputs)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%zu raw_input_contents for %zu inputs: one per input, in order",
                               req->n_raw_input_contents, req->n_inputs);
    ctx->raw = req->n_raw_input_contents > 0;
    if (!job_raw_prepare(job, a)) return vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    int seen[BACKEND_MAX_IO] = {0};
    for (size_t i = 0; i < req->n_inputs; i++) {
        vigil_status st = parse_input(m, req, i, max_elements, a, job, seen, err);
        if (st) return st;
    }
    for (size_t k = 0; k < m->io.n_inputs; k++)
        if (!seen[k]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "missing input '%s'", m->io.inputs[k]->name);
    for (size_t i = 0; i < req->n_outputs; i++) {
        const char *name = req->outputs[i]->name;
        size_t k = 0;
        while (k < m->io.n_outputs && strcmp(m->io.outputs[k]->name, name) != 0) k++;
        if (k == m->io.n_outputs)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model '%s' has no output '%.100s'", m->name, name);
        if (ctx->n_selected == BACKEND_MAX_IO)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "too many outputs requested");
        ctx->selected[ctx->n_selected++] = k;
    }
    for (size_t i = 0; i < req->n_parameters; i++) { /* Triton's request parameter "priority" */
        const Inference__InferParameter *v = req->parameters[i]->value;
        if (strcmp(req->parameters[i]->key, "priority") != 0) continue;
        if (!v || v->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM ||
            v->int64_param < -1000 || v->int64_param > 1000)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "parameters[\"priority\"] must be an int64_param in [-1000, 1000]");
        job->priority = (int)v->int64_param;
    }
    ctx->id = arena_strdup(a, req->id);
    if (!ctx->id) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    return VIGIL_OK;
}

/* ------------------------------------------------------------ DetectOptions */

vigil_status grpc_detect_options(const served_model *m, const Vigil__V1__DetectRequest *req, arena *a,
                                 sched_job *job, vigil_error *err) {
    static const request_detect_names names = {"options.conf_threshold", "options.iou_threshold",
                                               "options.max_detections", "options.classes", "priority"};
    /* priority and render are plain proto3 fields: 0 is their default either way */
    request_detect_options r = {.has_priority = 1, .priority = req->priority, .has_render = 1, .render = req->render};
    const Vigil__V1__DetectOptions *o = req->options;
    if (!o) return request_detect_resolve(m, &r, &names, a, job, err);
    /* Presence, not value, says whether a field is set (each is a one-field
     * oneof: proto/detection.proto says why). */
    r = (request_detect_options){
        .has_priority = 1,
        .priority = req->priority,
        .has_render = 1,
        .render = req->render,
        .has_conf = o->conf_threshold_set_case == VIGIL__V1__DETECT_OPTIONS__CONF_THRESHOLD_SET_CONF_THRESHOLD,
        .conf = o->conf_threshold,
        .has_iou = o->iou_threshold_set_case == VIGIL__V1__DETECT_OPTIONS__IOU_THRESHOLD_SET_IOU_THRESHOLD,
        .iou = o->iou_threshold,
        .has_max_det = o->max_detections_set_case == VIGIL__V1__DETECT_OPTIONS__MAX_DETECTIONS_SET_MAX_DETECTIONS,
        .max_det = o->max_detections,
        .classes = (const char *const *)o->classes,
        .n_classes = o->n_classes,
    };
    return request_detect_resolve(m, &r, &names, a, job, err);
}

/* ------------------------------------------------------------ versions */

int grpc_parse_version(const char *text, int64_t *out) {
    *out = 0;
    if (!text || !*text) return 1;
    return repository_parse_version(text, strlen(text), out);
}

/* ------------------------------------------------------------ strings on the wire */

/* Reads a varint at *at (< end); 0 when truncated or longer than 10 bytes. */
static int wire_varint(const uint8_t **at, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && *at < end; shift += 7) {
        uint8_t b = *(*at)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* 1 when no string field of desc (nested messages included, depth <= 32)
 * in data holds a NUL byte. */
static int strings_whole(const ProtobufCMessageDescriptor *desc, const uint8_t *at, const uint8_t *end, int depth) {
    while (at < end) {
        uint64_t tag, n;
        if (!wire_varint(&at, end, &tag)) return 1; /* malformed: the unpacker says so */
        switch (tag & 7) {
        case 0:
            if (!wire_varint(&at, end, &n)) return 1;
            break;
        case 1: at += (size_t)(end - at) < 8 ? (size_t)(end - at) : 8; break;
        case 5: at += (size_t)(end - at) < 4 ? (size_t)(end - at) : 4; break;
        case 2: {
            if (!wire_varint(&at, end, &n) || n > (uint64_t)(end - at)) return 1;
            const ProtobufCFieldDescriptor *f =
                tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(at, 0, (size_t)n)) return 0;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 32 &&
                !strings_whole(f->descriptor, at, at + n, depth + 1))
                return 0;
            at += n;
            break;
        }
        default: return 1;
        }
    }
    return 1;
}

vigil_status grpc_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                                vigil_error *err) {
    if (strings_whole(desc, data, data + len, 0)) return VIGIL_OK;
    return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                           "%s: a string field (a model name, version, tensor or parameter name) holds a NUL byte; "
                           "names are letters, digits, '_', '.' and '-'",
                           desc->short_name);
}

/* ------------------------------------------------------------ a large bytes field in place */

/* A read position in a message whose bytes lie in pieces. */
typedef struct wire_cursor {
    const vigil_piece *p;
    size_t n, i, off; /* byte off of piece i */
    size_t pos;       /* from the message's start */
} wire_cursor;

/* Moves n bytes on, copying them to *to (advanced) when to is not NULL;
 * 0 when the message ends first. */
static int cursor_skip(wire_cursor *c, uint64_t n, uint8_t **to) {
    while (n > 0) {
        while (c->i < c->n && c->off == c->p[c->i].size) c->i++, c->off = 0;
        if (c->i == c->n) return 0;
        size_t take = c->p[c->i].size - c->off < n ? c->p[c->i].size - c->off : (size_t)n;
        if (to) {
            memcpy(*to, c->p[c->i].data + c->off, take);
            *to += take;
        }
        c->off += take, c->pos += take, n -= take;
    }
    return 1;
}

/* A varint, as wire_varint reads one. */
static int cursor_varint(wire_cursor *c, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t b, *to = &b;
        if (!cursor_skip(c, 1, &to)) return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* Reads one top-level field: its tag, and for a length-delimited one the
 * value's length (*len; the cursor is then at the value), the cursor left
 * after the field; 0 when malformed or a group (left to protobuf-c). */
static int cursor_field(wire_cursor *c, uint64_t *tag, uint64_t *len) {
    *len = 0;
    if (!cursor_varint(c, tag)) return 0;
    uint64_t v;
    switch (*tag & 7) {
    case 0: return cursor_varint(c, &v);
    case 1: return cursor_skip(c, 8, NULL);
    case 5: return cursor_skip(c, 4, NULL);
    case 2: return cursor_varint(c, len) && cursor_skip(c, *len, NULL);
    default: return 0;
    }
}

/* pieces[0..n) whole in one buffer (malloc'ed); NULL when out of memory. */
static uint8_t *pieces_gather(const vigil_piece *pieces, size_t n, size_t total) {
    uint8_t *whole = vigil_malloc(total ? total : 1), *to = whole;
    wire_cursor c = {.p = pieces, .n = n};
    if (whole) (void)cursor_skip(&c, total, &to);
    return whole;
}

/* The message in pieces unpacked (its `field` left out when field is not
 * 0: those occurrences take field_bytes, and every field was read whole),
 * and its strings checked. */
static ProtobufCMessage *unpack_without(const ProtobufCMessageDescriptor *desc, const vigil_piece *pieces, size_t n,
                                        size_t total, unsigned field, size_t field_bytes, vigil_error *err) {
    uint8_t *rest = NULL;
    const uint8_t *bytes = n == 1 && !field ? pieces[0].data : NULL; /* whole already */
    size_t len = total - field_bytes;
    if (!bytes && field) {
        uint8_t *to = rest = vigil_malloc(len + 1);
        wire_cursor c = {.p = pieces, .n = n};
        while (rest && c.pos < total) {
            wire_cursor start = c;
            uint64_t tag, value_len;
            (void)cursor_field(&c, &tag, &value_len);
            if (!(tag >> 3 == field && (tag & 7) == 2)) (void)cursor_skip(&start, c.pos - start.pos, &to);
        }
    } else if (!bytes) {
        rest = pieces_gather(pieces, n, total);
    }
    if (!bytes && !(bytes = rest)) {
        vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, bytes);
    if (!m) vigil_error_set(err, VIGIL_ERR_PARSE, "malformed %s message", desc->short_name);
    else if (grpc_check_strings(desc, bytes, len, err)) {
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    vigil_free(rest);
    return m;
}

ProtobufCMessage *grpc_unpack_aliased(const ProtobufCMessageDescriptor *desc, const vigil_piece *pieces, size_t n,
                                      unsigned field, vigil_piece *value, size_t *n_value, vigil_error *err) {
    *n_value = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += pieces[i].size;
    /* One pass: where the field's last occurrence lies and how many bytes its occurrences take. */
    wire_cursor c = {.p = pieces, .n = n};
    size_t field_bytes = 0, value_at = 0, value_len = 0;
    int found = 0, whole = 1;
    while (whole && c.pos < total) {
        size_t field_start = c.pos;
        uint64_t tag, len;
        whole = cursor_field(&c, &tag, &len);
        if (whole && tag >> 3 == field && (tag & 7) == 2) {
            found = 1;
            field_bytes += c.pos - field_start;
            value_at = c.pos - (size_t)len, value_len = (size_t)len;
        }
    }
    if (!whole) field_bytes = 0, found = 0; /* unpacked whole below: protobuf-c says it is malformed */
    ProtobufCMessage *m = unpack_without(desc, pieces, n, total, found ? field : 0, field_bytes, err);
    if (!m || !found) return m;
    c = (wire_cursor){.p = pieces, .n = n};
    (void)cursor_skip(&c, value_at, NULL);
    while (value_len > 0) { /* the value, piece by piece (an empty one is no piece) */
        while (c.off == c.p[c.i].size) c.i++, c.off = 0;
        size_t take = c.p[c.i].size - c.off < value_len ? c.p[c.i].size - c.off : value_len;
        value[(*n_value)++] = (vigil_piece){c.p[c.i].data + c.off, take};
        c.off += take, value_len -= take;
    }
    return m;
}
