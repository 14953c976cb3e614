/*
 * infer_codec.c - v2 infer request parsing (jansson) and response writing.
 *
 * Responses are written by hand into a textbuf rather than built as a
 * jansson tree: an output of a detector is ~700k numbers, and a tree of that
 * many json_t values costs more than the inference.
 */
#include "serve/infer_codec.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#define INFER_MAX_NESTING 32

static const struct {
    vigil_dtype dtype;
    const char *name;
} datatypes[] = {
    {VIGIL_DTYPE_F32, "FP32"}, {VIGIL_DTYPE_I64, "INT64"}, {VIGIL_DTYPE_I32, "INT32"}, {VIGIL_DTYPE_U8, "UINT8"},
    {VIGIL_DTYPE_I8, "INT8"},  {VIGIL_DTYPE_BOOL, "BOOL"}, {VIGIL_DTYPE_F64, "FP64"}, {VIGIL_DTYPE_F16, "FP16"},
};
#define DATATYPE_COUNT (sizeof datatypes / sizeof datatypes[0])

const char *infer_datatype_name(vigil_dtype dtype) {
    for (size_t i = 0; i < DATATYPE_COUNT; i++)
        if (datatypes[i].dtype == dtype) return datatypes[i].name;
    return "UNKNOWN";
}

int infer_datatype_parse(const char *name) {
    for (size_t i = 0; i < DATATYPE_COUNT; i++)
        if (strcmp(datatypes[i].name, name) == 0) return (int)datatypes[i].dtype;
    return -1;
}

/* ------------------------------------------------------------ parsing */

/* Stores one JSON scalar as element `at` of dst. */
static vigil_status store_scalar(const json_t *v, vigil_dtype dt, void *dst, size_t at, const char *name,
                                 vigil_error *err) {
    if (dt == VIGIL_DTYPE_F32 || dt == VIGIL_DTYPE_F64) {
        if (!json_is_number(v))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is not a number", name, at);
        double x = json_number_value(v);
        if (dt == VIGIL_DTYPE_F32) ((float *)dst)[at] = (float)x;
        else ((double *)dst)[at] = x;
        return VIGIL_OK;
    }
    if (dt == VIGIL_DTYPE_BOOL) {
        if (!json_is_boolean(v) && !json_is_integer(v))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is not a boolean", name, at);
        ((uint8_t *)dst)[at] = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
        return VIGIL_OK;
    }
    if (dt == VIGIL_DTYPE_F16)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "input '%s': FP16 data must be sent as binary (parameters.binary_data_size)", name);
    if (!json_is_integer(v))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is not an integer", name, at);
    json_int_t x = json_integer_value(v);
    int fits = dt == VIGIL_DTYPE_I64 || (dt == VIGIL_DTYPE_I32 && x >= INT32_MIN && x <= INT32_MAX) ||
               (dt == VIGIL_DTYPE_U8 && x >= 0 && x <= 255) || (dt == VIGIL_DTYPE_I8 && x >= -128 && x <= 127);
    if (!fits)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu (%lld) is out of range for %s",
                               name, at, (long long)x, infer_datatype_name(dt));
    switch (dt) {
    case VIGIL_DTYPE_I64: ((int64_t *)dst)[at] = x; break;
    case VIGIL_DTYPE_I32: ((int32_t *)dst)[at] = (int32_t)x; break;
    case VIGIL_DTYPE_U8: ((uint8_t *)dst)[at] = (uint8_t)x; break;
    default: ((int8_t *)dst)[at] = (int8_t)x; break;
    }
    return VIGIL_OK;
}

/* Flattens nested arrays of scalars into dst (count elements). */
static vigil_status fill_data(const json_t *v, vigil_dtype dt, void *dst, size_t count, size_t *at, int depth,
                              const char *name, vigil_error *err) {
    if (depth > INFER_MAX_NESTING)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': data nested too deeply", name);
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            vigil_status st = fill_data(item, dt, dst, count, at, depth + 1, name, err);
            if (st) return st;
        }
        return VIGIL_OK;
    }
    if (*at >= count)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': more data than the shape holds (%zu)",
                               name, count);
    vigil_status st = store_scalar(v, dt, dst, *at, name, err);
    (*at)++;
    return st;
}

static int find_model_input(const served_model *m, const char *name) {
    for (size_t i = 0; i < m->io.n_inputs; i++)
        if (strcmp(m->io.inputs[i]->name, name) == 0) return (int)i;
    return -1;
}

vigil_status infer_check_shape(const served_model *m, const vigil_tensor_info *info, const int64_t *dims, size_t rank,
                               int64_t max_elements, sched_job *job, int first, vigil_tensor *t, size_t *count,
                               vigil_error *err) {
    if ((int)rank != info->ndim)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': shape has %zu dimensions, the model expects %d",
                               info->name, rank, info->ndim);
    int64_t total = 1;
    t->ndim = info->ndim;
    for (size_t d = 0; d < rank; d++) {
        int64_t dim = dims[d];
        if (dim < 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': shape[%zu] is not a valid size",
                                   info->name, d);
        int batch_dim = d == 0 && m->config.max_batch_size >= 1;
        if (!batch_dim && info->dims[d] >= 0 && dim != info->dims[d])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': shape[%zu] is %lld, the model expects %lld",
                                   info->name, d, (long long)dim, (long long)info->dims[d]);
        t->dims[d] = dim;
        if (dim && total > max_elements / dim)
            return vigil_error_set(err, VIGIL_ERR_LIMIT,
                                   "input '%s': more than limits.max_tensor_elements (%lld) elements", info->name,
                                   (long long)max_elements);
        total *= dim;
    }
    int64_t items = t->ndim > 0 ? t->dims[0] : 1;
    if (m->config.max_batch_size >= 1) {
        if (t->ndim == 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': needs a batch dimension", info->name);
        if (items < 1 || items > m->config.max_batch_size)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "input '%s': batch of %lld is outside 1..%lld (max_batch_size)", info->name,
                                   (long long)items, (long long)m->config.max_batch_size);
    }
    if (!first && items != job->batch)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': batch %lld differs from the other inputs' %lld",
                               info->name, (long long)items, (long long)job->batch);
    job->batch = items;
    *count = (size_t)total;
    return VIGIL_OK;
}

/* Reads "shape" (a list of integers) into dims. */
static vigil_status json_shape(const vigil_tensor_info *info, const json_t *shape, int64_t *dims, size_t *rank,
                               vigil_error *err) {
    if (!json_is_array(shape))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': shape must be a list of integers",
                               info->name);
    *rank = json_array_size(shape);
    if (*rank > VIGIL_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': shape has %zu dimensions, the model expects %d",
                               info->name, *rank, info->ndim);
    for (size_t d = 0; d < *rank; d++) {
        const json_t *v = json_array_get(shape, d);
        dims[d] = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
    }
    return VIGIL_OK;
}

typedef struct binary_cursor {
    const char *at;
    size_t left;
} binary_cursor;

static vigil_status parse_input(const served_model *m, const json_t *in, int64_t max_elements, arena *a,
                                binary_cursor *bin, sched_job *job, int *seen, vigil_error *err) {
    const char *name = json_string_value(json_object_get(in, "name"));
    const char *datatype = json_string_value(json_object_get(in, "datatype"));
    if (!name || !datatype)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "every input needs a \"name\" and a \"datatype\"");
    int index = find_model_input(m, name);
    if (index < 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model '%s' has no input '%.100s'", m->name, name);
    if (seen[index]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s' given twice", name);
    const vigil_tensor_info *info = m->io.inputs[index];
    int dt = infer_datatype_parse(datatype);
    if (dt != (int)info->dtype)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': datatype %.20s, the model expects %s", name,
                               datatype, infer_datatype_name(info->dtype));
    vigil_tensor *t = &job->inputs[index];
    t->dtype = info->dtype;
    size_t count = 0;
    int64_t dims[VIGIL_MAX_DIMS];
    size_t rank = 0;
    vigil_status st = json_shape(info, json_object_get(in, "shape"), dims, &rank, err);
    if (!st) st = infer_check_shape(m, info, dims, rank, max_elements, job, job->n_inputs == 0, t, &count, err);
    if (st) return st;
    size_t bytes = count * vigil_dtype_size(info->dtype);
    const json_t *binary_size = json_object_get(json_object_get(in, "parameters"), "binary_data_size");
    int in_place = binary_size && bin->left >= bytes && bytes && (uintptr_t)bin->at % vigil_dtype_size(info->dtype) == 0;
    t->data = in_place ? (void *)(uintptr_t)bin->at : arena_alloc(a, bytes ? bytes : 1, 64);
    if (!t->data) return vigil_error_set(err, VIGIL_ERR_LIMIT, "input '%s': request memory limit reached", name);
    if (binary_size) {
        json_int_t size = json_is_integer(binary_size) ? json_integer_value(binary_size) : -1;
        if (size < 0 || (size_t)size != bytes)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': binary_data_size must be %zu bytes",
                                   name, bytes);
        if (bin->left < bytes)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': the binary part is too short", name);
        if (!in_place) memcpy(t->data, bin->at, bytes);
        bin->at += bytes;
        bin->left -= bytes;
    } else {
        const json_t *data = json_object_get(in, "data");
        size_t filled = 0;
        if (!data) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': no \"data\"", name);
        st = fill_data(data, info->dtype, t->data, count, &filled, 0, name, err);
        if (st) return st;
        if (filled != count)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': %zu elements for a shape of %zu", name,
                                   filled, count);
    }
    seen[index] = 1;
    job->n_inputs++;
    return VIGIL_OK;
}

static vigil_status parse_outputs(const served_model *m, const json_t *root, infer_request *req, vigil_error *err) {
    const json_t *params = json_object_get(root, "parameters");
    if (params && !json_is_object(params))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "\"parameters\" must be an object");
    if (json_is_true(json_object_get(params, "binary_data_output"))) {
        req->any_binary = 1;
        for (size_t i = 0; i < m->io.n_outputs; i++) req->binary[i] = 1;
    }
    const json_t *outputs = json_object_get(root, "outputs");
    if (!outputs) return VIGIL_OK;
    if (!json_is_array(outputs))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "\"outputs\" must be a list");
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        size_t k = 0;
        while (name && k < m->io.n_outputs && strcmp(m->io.outputs[k]->name, name) != 0) k++;
        if (!name || k == m->io.n_outputs)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model '%s' has no output '%.100s'", m->name,
                                   name ? name : "(no name)");
        if (req->n_selected == BACKEND_MAX_IO)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "too many outputs requested");
        req->selected[req->n_selected++] = k;
        const json_t *bd = json_object_get(json_object_get(o, "parameters"), "binary_data");
        if (bd) req->binary[k] = json_is_true(bd);
        if (req->binary[k]) req->any_binary = 1;
    }
    return VIGIL_OK;
}

/* parameters.priority: an integer in [-1000, 1000], higher runs first. */
static vigil_status parse_priority(const json_t *v, sched_job *job, vigil_error *err) {
    if (!v) return VIGIL_OK;
    json_int_t p = json_is_integer(v) ? json_integer_value(v) : INT64_MAX;
    if (p < -1000 || p > 1000)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "parameters.priority must be an integer in [-1000, 1000]");
    job->priority = (int)p;
    return VIGIL_OK;
}

vigil_status infer_parse(const served_model *m, const char *body, size_t body_len, size_t json_len,
                         int64_t max_elements, arena *a, infer_request *req, sched_job *job, vigil_error *err) {
    memset(req, 0, sizeof *req);
    if (json_len > body_len)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "Inference-Header-Content-Length %zu exceeds the body (%zu bytes)", json_len, body_len);
    json_error_t jerr;
    json_t *root = json_loadb(body, json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                               jerr.text);
    vigil_status st = VIGIL_OK;
    const json_t *inputs = json_object_get(root, "inputs");
    const json_t *id = json_object_get(root, "id");
    if (!json_is_object(root) || !json_is_array(inputs)) {
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "the request must be an object with an \"inputs\" list");
    } else if (id && !json_is_string(id)) {
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "\"id\" must be a string");
    } else {
        if (id) {
            snprintf(req->id, sizeof req->id, "%s", json_string_value(id));
            req->has_id = 1;
        }
        job->kind = SCHED_JOB_RAW;
        job->n_inputs = 0;
        int seen[BACKEND_MAX_IO] = {0};
        binary_cursor bin = {body + json_len, body_len - json_len};
        size_t i;
        json_t *in;
        json_array_foreach(inputs, i, in) {
            if (!json_is_object(in)) {
                st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "inputs[%zu] is not an object", i);
                break;
            }
            if ((st = parse_input(m, in, max_elements, a, &bin, job, seen, err))) break;
        }
        for (size_t k = 0; !st && k < m->io.n_inputs; k++)
            if (!seen[k])
                st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "missing input '%s'", m->io.inputs[k]->name);
        if (!st && bin.left)
            st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%zu bytes of binary data were not claimed by any input",
                                 bin.left);
        if (!st) st = parse_outputs(m, root, req, err);
        if (!st) st = parse_priority(json_object_get(json_object_get(root, "parameters"), "priority"), job, err);
    }
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------ responses */

void json_append_string(textbuf *out, const char *s) {
    textbuf_append(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') textbuf_printf(out, "\\%c", *p);
        else if (*p < 0x20) textbuf_printf(out, "\\u%04x", *p);
        else textbuf_append(out, p, 1);
    }
    textbuf_append(out, "\"", 1);
}

static float half_to_float(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    float v = exp == 0 ? ldexpf((float)mant, -24) : exp == 31 ? (mant ? NAN : INFINITY) : ldexpf((float)(mant | 1024), exp - 25);
    return sign ? -v : v;
}

static void append_number(textbuf *out, double v, int digits) {
    if (isfinite(v)) textbuf_printf(out, "%.*g", digits, v);
    else textbuf_append(out, "null", 4); /* JSON has no NaN or infinity */
}

static void append_data(textbuf *out, const vigil_tensor *t, size_t count) {
    textbuf_append(out, "[", 1);
    for (size_t i = 0; i < count && !out->status; i++) {
        if (i) textbuf_append(out, ",", 1);
        switch (t->dtype) {
        case VIGIL_DTYPE_F32: append_number(out, ((const float *)t->data)[i], 9); break;
        case VIGIL_DTYPE_F64: append_number(out, ((const double *)t->data)[i], 17); break;
        case VIGIL_DTYPE_F16: append_number(out, half_to_float(((const uint16_t *)t->data)[i]), 6); break;
        case VIGIL_DTYPE_I64: textbuf_printf(out, "%lld", (long long)((const int64_t *)t->data)[i]); break;
        case VIGIL_DTYPE_I32: textbuf_printf(out, "%d", ((const int32_t *)t->data)[i]); break;
        case VIGIL_DTYPE_U8: textbuf_printf(out, "%u", ((const uint8_t *)t->data)[i]); break;
        case VIGIL_DTYPE_I8: textbuf_printf(out, "%d", ((const int8_t *)t->data)[i]); break;
        case VIGIL_DTYPE_BOOL: textbuf_printf(out, "%s", ((const uint8_t *)t->data)[i] ? "true" : "false"); break;
        }
    }
    textbuf_append(out, "]", 1);
}

vigil_status infer_respond(const served_model *m, const infer_request *req, const sched_job *job, textbuf *out,
                           size_t *json_len) {
    size_t order[BACKEND_MAX_IO], n = req->n_selected;
    if (n) memcpy(order, req->selected, n * sizeof order[0]);
    else
        for (n = 0; n < job->n_outputs; n++) order[n] = n;
    textbuf_printf(out, "{\"model_name\":");
    json_append_string(out, m->name);
    textbuf_printf(out, ",\"model_version\":\"%lld\"", (long long)m->version);
    if (req->has_id) {
        textbuf_printf(out, ",\"id\":");
        json_append_string(out, req->id);
    }
    textbuf_printf(out, ",\"outputs\":[");
    for (size_t k = 0; k < n; k++) {
        const vigil_tensor *t = &job->outputs[order[k]];
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) count *= (size_t)t->dims[d];
        textbuf_printf(out, "%s{\"name\":", k ? "," : "");
        json_append_string(out, m->io.outputs[order[k]]->name);
        textbuf_printf(out, ",\"datatype\":\"%s\",\"shape\":[", infer_datatype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) textbuf_printf(out, "%s%lld", d ? "," : "", (long long)t->dims[d]);
        textbuf_printf(out, "]");
        if (req->binary[order[k]]) {
            textbuf_printf(out, ",\"parameters\":{\"binary_data_size\":%zu}}", count * vigil_dtype_size(t->dtype));
        } else {
            textbuf_printf(out, ",\"data\":");
            append_data(out, t, count);
            textbuf_append(out, "}", 1);
        }
    }
    textbuf_printf(out, "]}");
    *json_len = out->len;
    for (size_t k = 0; k < n; k++) {
        const vigil_tensor *t = &job->outputs[order[k]];
        if (!req->binary[order[k]]) continue;
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) count *= (size_t)t->dims[d];
        textbuf_append(out, t->data, count * vigil_dtype_size(t->dtype));
    }
    return out->status;
}

/* ------------------------------------------------------------ cache blobs */

typedef struct packed_tensor {
    int32_t dtype, ndim;
    int64_t dims[VIGIL_MAX_DIMS];
    uint64_t bytes; /* data follows, padded to 8 */
} packed_tensor;

vigil_status infer_outputs_pack(const sched_job *job, textbuf *out) {
    uint64_t n = job->n_outputs;
    textbuf_append(out, &n, sizeof n);
    for (size_t i = 0; i < job->n_outputs; i++) {
        const vigil_tensor *t = &job->outputs[i];
        packed_tensor p = {.dtype = (int32_t)t->dtype, .ndim = t->ndim};
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            p.dims[d] = t->dims[d];
            count *= (size_t)t->dims[d];
        }
        p.bytes = count * vigil_dtype_size(t->dtype);
        static const char pad[8];
        textbuf_append(out, &p, sizeof p);
        textbuf_append(out, t->data, p.bytes);
        textbuf_append(out, pad, (8 - p.bytes % 8) % 8);
    }
    return out->status;
}

int infer_outputs_unpack(void *blob, size_t size, sched_job *job) {
    char *at = blob, *end = at + size;
    uint64_t n;
    if (size < sizeof n) return 0;
    memcpy(&n, at, sizeof n);
    at += sizeof n;
    if (n > BACKEND_MAX_IO) return 0;
    for (size_t i = 0; i < n; i++) {
        packed_tensor p;
        if ((size_t)(end - at) < sizeof p) return 0;
        memcpy(&p, at, sizeof p);
        at += sizeof p;
        if (p.ndim < 0 || p.ndim > VIGIL_MAX_DIMS || p.bytes > (uint64_t)(end - at)) return 0;
        vigil_tensor *t = &job->outputs[i];
        t->dtype = (vigil_dtype)p.dtype;
        t->ndim = p.ndim;
        memcpy(t->dims, p.dims, sizeof t->dims);
        t->data = at;
        at += p.bytes + (8 - p.bytes % 8) % 8;
    }
    job->n_outputs = n;
    job->status = VIGIL_OK;
    return 1;
}
