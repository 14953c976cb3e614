/*
 * onnx.c - decodes an ONNX ModelProto into the read-only view of onnx.h.
 *
 * The file is mmap'ed read-only and walked with the bounds-checked wire reader
 * of onnx_wire.c.  Each message is read in two passes: the first counts its
 * repeated fields, the second fills arrays of exactly that size in the model's
 * arena, so a load makes a handful of large allocations and onnx_free releases
 * everything at once.  Tensor data is used in place (in the file mapping or
 * an external data file's mapping) when it is aligned to its element size,
 * and copied once into the arena otherwise; typed fields (float_data,
 * int32_data, ...) are decoded into the arena.
 *
 * Only the subset of onnx.proto that inference needs is read; unknown fields
 * are skipped as protobuf requires.  Subgraph attributes (If/Loop bodies) keep
 * their type but no content; sparse initializers and segmented tensors are
 * refused as unsupported.  The decoder assumes a little-endian host, like the
 * rest of the engine.
 *
 * Field numbers below are those of onnx.proto (IR version 8).
 */
#include "engine/onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "engine/onnx_wire.h"

/* An external data file, mapped once however many tensors point into it. */
typedef struct onnx_external_file {
    struct onnx_external_file *next;
    const char *location; /* as written in the model (relative path) */
    void *map;            /* NULL for an empty file */
    size_t size;
} onnx_external_file;

struct onnx_model_private {
    arena *arena;                     /* every decoded structure and copied tensor */
    void *map;                        /* the model file's mapping (onnx_load_file) */
    size_t map_size;
    onnx_external_file *external;     /* mappings of external data files */
    const onnx_tensor **init_sorted;  /* initializers sorted by name, for bsearch */
};

typedef struct decoder {
    arena *arena;
    const char *base_dir;              /* resolves external data; NULL refuses it */
    int own_data;                      /* copy raw_data even when aligned (standalone tensors) */
    struct onnx_model_private *priv;   /* NULL for standalone tensors */
    vigil_error *err;
} decoder;

/* TensorProto field numbers; BIT() turns them into wire_count masks. */
#define BIT(n) (1u << (n))
enum {
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_SEGMENT = 3, TENSOR_FLOAT_DATA = 4,
    TENSOR_INT32_DATA = 5, TENSOR_INT64_DATA = 7, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9,
    TENSOR_DOUBLE_DATA = 10, TENSOR_UINT64_DATA = 11, TENSOR_EXTERNAL_DATA = 13, TENSOR_DATA_LOCATION = 14,
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static void *dec_alloc(decoder *d, size_t count, size_t size, size_t align) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) return NULL;
    void *p = arena_alloc(d->arena, bytes ? bytes : 1, align);
    if (p) memset(p, 0, bytes);
    return p;
}

static vigil_status dec_oom(decoder *d, const wire_reader *r) {
    return vigil_error_set(d->err, VIGIL_ERR_NO_MEMORY, "%s at byte %zu: out of memory (or model too large)",
                           r->message, r->pos);
}

#define DEC_ALLOC(d, r, ptr, count)                                                     \
    do {                                                                                \
        (ptr) = dec_alloc((d), (count), sizeof *(ptr), _Alignof(__typeof__(*(ptr))));   \
        if (!(ptr)) return dec_oom((d), (r));                                           \
    } while (0)

/* Copies a LEN field as a NUL-terminated string into the arena. */
static vigil_status dec_string(decoder *d, const wire_reader *r, const wire_field *f, const char *field,
                               const char **out, size_t *out_len) {
    vigil_status st = wire_expect(r, f, WIRE_LEN, field, d->err);
    if (st != VIGIL_OK) return st;
    char *s = arena_alloc(d->arena, f->len + 1, 1);
    if (!s) return dec_oom(d, r);
    memcpy(s, r->base + f->start, f->len);
    s[f->len] = '\0';
    *out = s;
    if (out_len) *out_len = f->len;
    return VIGIL_OK;
}

static vigil_status dec_varint(decoder *d, const wire_reader *r, const wire_field *f, const char *field,
                               uint64_t *out) {
    vigil_status st = wire_expect(r, f, WIRE_VARINT, field, d->err);
    if (st == VIGIL_OK) *out = f->value;
    return st;
}

size_t onnx_dtype_size(int32_t dtype) {
    switch (dtype) {
    case ONNX_FLOAT: case ONNX_INT32: case ONNX_UINT32: return 4;
    case ONNX_UINT8: case ONNX_INT8: case ONNX_BOOL: return 1;
    case 17: case 18: case 19: case 20: return 1; /* float8 variants */
    case ONNX_UINT16: case ONNX_INT16: case ONNX_FLOAT16: case ONNX_BFLOAT16: return 2;
    case ONNX_INT64: case ONNX_DOUBLE: case ONNX_UINT64: return 8;
    case 14: return 8;  /* complex64 */
    case 15: return 16; /* complex128 */
    default: return 0;
    }
}

const char *onnx_dtype_name(int32_t dtype) {
    switch (dtype) {
    case ONNX_FLOAT: return "float32";
    case ONNX_UINT8: return "uint8";
    case ONNX_INT8: return "int8";
    case ONNX_UINT16: return "uint16";
    case ONNX_INT16: return "int16";
    case ONNX_INT32: return "int32";
    case ONNX_INT64: return "int64";
    case ONNX_STRING: return "string";
    case ONNX_BOOL: return "bool";
    case ONNX_FLOAT16: return "float16";
    case ONNX_DOUBLE: return "float64";
    case ONNX_UINT32: return "uint32";
    case ONNX_UINT64: return "uint64";
    case 14: return "complex64";
    case 15: return "complex128";
    case ONNX_BFLOAT16: return "bfloat16";
    case 17: return "float8e4m3fn";
    case 18: return "float8e4m3fnuz";
    case 19: return "float8e5m2";
    case 20: return "float8e5m2fnuz";
    case ONNX_UNDEFINED: return "undefined";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------ */
/* tensors                                                                  */

/* What one TensorProto's fields said, before the data is resolved. */
typedef struct tensor_fields {
    uint64_t dims[ONNX_MAX_DIMS];
    size_t ndim;
    uint64_t dtype;
    int has_dtype;
    const uint8_t *raw;        /* raw_data payload, or NULL */
    size_t raw_len;
    int has_raw;
    void *typed;               /* decoded typed field values (arena) */
    size_t typed_count;
    int typed_field;           /* field number of the typed data, 0 if none */
    const char *location;      /* external_data keys */
    const char *offset_text, *length_text;
    int external;              /* data_location == EXTERNAL or external_data present */
} tensor_fields;

/* Reads one StringStringEntryProto. */
static vigil_status decode_kv(decoder *d, const wire_reader *r, const wire_field *f, const char *field,
                              onnx_kv *kv) {
    vigil_status st = wire_expect(r, f, WIRE_LEN, field, d->err);
    if (st != VIGIL_OK) return st;
    wire_reader sub = wire_sub(r, f, "StringStringEntryProto");
    kv->key = "";
    kv->value = "";
    wire_field g;
    int got;
    while ((got = wire_next(&sub, &g, d->err)) == 1) {
        if (g.number == 1) st = dec_string(d, &sub, &g, "key", &kv->key, NULL);
        else if (g.number == 2) st = dec_string(d, &sub, &g, "value", &kv->value, NULL);
        if (st != VIGIL_OK) return st;
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

/* Name of a TensorProto typed data field, for messages. */
static const char *typed_field_name(int field) {
    switch (field) {
    case TENSOR_FLOAT_DATA: return "float_data";
    case TENSOR_INT32_DATA: return "int32_data";
    case TENSOR_INT64_DATA: return "int64_data";
    case TENSOR_DOUBLE_DATA: return "double_data";
    case TENSOR_UINT64_DATA: return "uint64_data";
    default: return "?";
    }
}

static vigil_status tensor_read_typed(decoder *d, const wire_reader *r, const wire_field *f,
                                      const wire_counts *c, tensor_fields *tf) {
    const char *name = typed_field_name((int)f->number);
    if (tf->typed_field && tf->typed_field != (int)f->number)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s.%s at byte %zu: a tensor may use only one of the "
                               "typed data fields", r->message, name, f->offset);
    size_t cap = c->elems[f->number];
    int fixed4 = f->number == TENSOR_FLOAT_DATA, fixed8 = f->number == TENSOR_DOUBLE_DATA;
    size_t elem = fixed4 ? 4 : 8;
    if (!tf->typed) {
        tf->typed = dec_alloc(d, cap, elem, 64);
        if (!tf->typed) return dec_oom(d, r);
        tf->typed_field = (int)f->number;
    }
    if (fixed4 || fixed8)
        return wire_read_fixed(r, f, name, elem, tf->typed, &tf->typed_count, cap, d->err);
    return wire_read_varints(r, f, name, tf->typed, &tf->typed_count, cap, d->err);
}

static vigil_status tensor_read_fields(decoder *d, const wire_reader *r, onnx_tensor *t, tensor_fields *tf) {
    wire_counts c;
    vigil_status st = wire_count(r, BIT(TENSOR_DIMS) | BIT(TENSOR_INT32_DATA) | BIT(TENSOR_INT64_DATA) |
                                        BIT(TENSOR_UINT64_DATA),
                                 BIT(TENSOR_FLOAT_DATA), BIT(TENSOR_DOUBLE_DATA), &c, d->err);
    if (st != VIGIL_OK) return st;
    if (c.elems[TENSOR_DIMS] > ONNX_MAX_DIMS)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s.dims at byte %zu: %zu dims (vigil supports at most %d)",
                               r->message, r->pos, c.elems[TENSOR_DIMS], ONNX_MAX_DIMS);
    wire_reader walk = *r;
    wire_field f;
    int got;
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        switch (f.number) {
        case TENSOR_DIMS:
            st = wire_read_varints(r, &f, "dims", tf->dims, &tf->ndim, ONNX_MAX_DIMS, d->err);
            break;
        case TENSOR_DATA_TYPE:
            st = dec_varint(d, r, &f, "data_type", &tf->dtype);
            tf->has_dtype = 1;
            break;
        case TENSOR_SEGMENT:
            return vigil_error_set(d->err, VIGIL_ERR_UNSUPPORTED,
                                   "%s.segment at byte %zu: segmented tensors are not supported", r->message,
                                   f.offset);
        case TENSOR_FLOAT_DATA: case TENSOR_INT32_DATA: case TENSOR_INT64_DATA:
        case TENSOR_DOUBLE_DATA: case TENSOR_UINT64_DATA:
            st = tensor_read_typed(d, r, &f, &c, tf);
            break;
        case TENSOR_NAME:
            st = dec_string(d, r, &f, "name", &t->name, NULL);
            break;
        case TENSOR_RAW_DATA:
            st = wire_expect(r, &f, WIRE_LEN, "raw_data", d->err);
            tf->raw = r->base + f.start;
            tf->raw_len = f.len;
            tf->has_raw = 1;
            break;
        case TENSOR_EXTERNAL_DATA: {
            onnx_kv kv;
            st = decode_kv(d, r, &f, "external_data", &kv);
            if (st != VIGIL_OK) break;
            tf->external = 1;
            if (strcmp(kv.key, "location") == 0) tf->location = kv.value;
            else if (strcmp(kv.key, "offset") == 0) tf->offset_text = kv.value;
            else if (strcmp(kv.key, "length") == 0) tf->length_text = kv.value;
            break;
        }
        case TENSOR_DATA_LOCATION: {
            uint64_t loc = 0;
            st = dec_varint(d, r, &f, "data_location", &loc);
            if (loc == 1) tf->external = 1;
            break;
        }
        default: break;
        }
        if (st != VIGIL_OK) return st;
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

/* Parses a non-negative decimal external_data value ("offset", "length"). */
static int parse_size(const char *text, size_t *out) {
    if (!text || !*text) return 0;
    size_t value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, (size_t)(*p - '0'), &value))
            return 0;
    }
    *out = value;
    return 1;
}

/* Refuses locations that could leave the model's directory. */
static int location_is_safe(const char *loc) {
    if (!*loc || loc[0] == '/') return 0;
    for (const char *p = loc; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return strchr(loc, '\\') == NULL;
}

/* Resolves location inside the model directory into path (PATH_MAX bytes),
 * following symbolic links, and refuses anything that ends up outside it. */
static vigil_status external_resolve(decoder *d, const char *location, char *path) {
    char dir[PATH_MAX], joined[PATH_MAX];
    if (!realpath(d->base_dir, dir))
        return vigil_error_set(d->err, VIGIL_ERR_IO, "model directory %s: %s", d->base_dir, strerror(errno));
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", dir, location) >= sizeof joined)
        return vigil_error_set(d->err, VIGIL_ERR_INVALID_ARGUMENT, "external data path too long: %s", location);
    if (!realpath(joined, path))
        return vigil_error_set(d->err, errno == ENOENT ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_IO,
                               "external data file %s: %s", joined, strerror(errno));
    size_t n = strlen(dir);
    int inside = strncmp(path, dir, n) == 0 && (path[n] == '/' || (n == 1 && dir[0] == '/'));
    if (!inside)
        return vigil_error_set(d->err, VIGIL_ERR_PERMISSION,
                               "external data location '%s' resolves to %s, outside the model directory", location,
                               path);
    return VIGIL_OK;
}

static vigil_status external_map(decoder *d, const char *location, onnx_external_file **out) {
    for (onnx_external_file *e = d->priv->external; e; e = e->next)
        if (strcmp(e->location, location) == 0) {
            *out = e;
            return VIGIL_OK;
        }
    char path[PATH_MAX];
    vigil_status st = external_resolve(d, location, path);
    if (st != VIGIL_OK) return st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vigil_error_set(d->err, errno == ENOENT ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_IO,
                               "external data file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return vigil_error_set(d->err, VIGIL_ERR_IO, "external data file %s is not a regular file", path);
    }
    onnx_external_file *e = arena_calloc(d->arena, 1, sizeof *e);
    if (!e) {
        close(fd);
        return vigil_error_set(d->err, VIGIL_ERR_NO_MEMORY, "out of memory mapping %s", path);
    }
    e->location = location;
    e->size = (size_t)sb.st_size;
    if (e->size > 0) {
        e->map = mmap(NULL, e->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (e->map == MAP_FAILED) {
            close(fd);
            return vigil_error_set(d->err, VIGIL_ERR_IO, "cannot map external data file %s: %s", path,
                                   strerror(errno));
        }
    }
    close(fd);
    e->next = d->priv->external;
    d->priv->external = e;
    *out = e;
    return VIGIL_OK;
}

/* Resolves external data into *bytes (nbytes long, inside a mapping). */
static vigil_status tensor_external(decoder *d, const wire_reader *r, const tensor_fields *tf, size_t nbytes,
                                    const uint8_t **bytes) {
    const char *msg = r->message;
    if (!d->priv || !d->base_dir)
        return vigil_error_set(d->err, VIGIL_ERR_UNSUPPORTED,
                               "%s at byte %zu: external data needs the model's directory (load from a file)",
                               msg, r->pos);
    if (!tf->location)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s at byte %zu: external data without a location", msg,
                               r->pos);
    if (!location_is_safe(tf->location))
        return vigil_error_set(d->err, VIGIL_ERR_PERMISSION,
                               "%s at byte %zu: external data location '%s' leaves the model directory", msg,
                               r->pos, tf->location);
    size_t offset = 0, length = nbytes;
    if ((tf->offset_text && !parse_size(tf->offset_text, &offset)) ||
        (tf->length_text && !parse_size(tf->length_text, &length)))
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s at byte %zu: bad external data offset/length", msg,
                               r->pos);
    if (length != nbytes)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE,
                               "%s at byte %zu: external data length %zu, dims and data_type say %zu bytes", msg,
                               r->pos, length, nbytes);
    onnx_external_file *e;
    vigil_status st = external_map(d, tf->location, &e);
    if (st != VIGIL_OK) return st;
    if (offset > e->size || nbytes > e->size - offset)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE,
                               "%s at byte %zu: external data [%zu, +%zu) runs past the end of %s (%zu bytes)",
                               msg, r->pos, offset, nbytes, tf->location, e->size);
    *bytes = nbytes ? (const uint8_t *)e->map + offset : NULL;
    return VIGIL_OK;
}

/* Converts the decoded typed field to the tensor's element layout. */
static vigil_status tensor_typed(decoder *d, const wire_reader *r, const tensor_fields *tf, onnx_tensor *t,
                                 size_t esize) {
    int32_t dt = t->dtype;
    int ok;
    switch (tf->typed_field) {
    case TENSOR_FLOAT_DATA: ok = dt == ONNX_FLOAT || dt == 14; break;
    case TENSOR_DOUBLE_DATA: ok = dt == ONNX_DOUBLE || dt == 15; break;
    case TENSOR_INT64_DATA: ok = dt == ONNX_INT64; break;
    case TENSOR_UINT64_DATA: ok = dt == ONNX_UINT64 || dt == ONNX_UINT32; break;
    default: ok = dt != ONNX_FLOAT && dt != ONNX_DOUBLE && dt != ONNX_INT64 && dt != ONNX_UINT64 &&
                  dt != ONNX_UINT32 && dt != 14 && dt != 15; break;
    }
    const char *name = typed_field_name(tf->typed_field);
    if (!ok)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: %s given for a %s tensor", r->message,
                               t->name, r->pos, name, onnx_dtype_name(dt));
    int wide = tf->typed_field != TENSOR_INT32_DATA; /* values stored at their own width */
    size_t want = wide ? t->nbytes / (tf->typed_field == TENSOR_FLOAT_DATA ? 4 : 8) : t->count;
    if (tf->typed_count != want)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: %s has %zu values, dims say %zu",
                               r->message, t->name, r->pos, name, tf->typed_count, want);
    if (wide && !(tf->typed_field == TENSOR_UINT64_DATA && dt == ONNX_UINT32)) {
        t->data = tf->typed;
        return VIGIL_OK;
    }
    /* narrow each varint to the element width (int32_data, or uint64_data for uint32) */
    uint8_t *out = dec_alloc(d, t->count, esize, 64);
    if (!out) return dec_oom(d, r);
    const uint64_t *in = tf->typed;
    for (size_t i = 0; i < t->count; i++) {
        uint64_t v = in[i];
        for (size_t b = 0; b < esize; b++) out[i * esize + b] = (uint8_t)(v >> (8 * b));
    }
    t->data = out;
    return VIGIL_OK;
}

/* Checks dtype and dims, sets count/nbytes and resolves the data. */
static vigil_status tensor_finish(decoder *d, const wire_reader *r, const tensor_fields *tf, onnx_tensor *t) {
    const char *msg = r->message;
    if (!tf->has_dtype || tf->dtype == 0 || tf->dtype > 0x7fffffff)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: missing or invalid data_type", msg,
                               t->name, r->pos);
    t->dtype = (int32_t)tf->dtype;
    size_t esize = onnx_dtype_size(t->dtype);
    if (esize == 0 && t->dtype != ONNX_STRING)
        return vigil_error_set(d->err, VIGIL_ERR_UNSUPPORTED, "%s '%s' at byte %zu: data_type %d is not supported",
                               msg, t->name, r->pos, (int)t->dtype);
    t->ndim = (int)tf->ndim;
    size_t count = 1;
    for (size_t i = 0; i < tf->ndim; i++) {
        if (tf->dims[i] > (uint64_t)INT64_MAX)
            return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: dims[%zu] is a negative dimension "
                                   "(%lld)", msg, t->name, r->pos, i, (long long)tf->dims[i]);
        t->dims[i] = (int64_t)tf->dims[i];
        if (tf->dims[i] > SIZE_MAX || __builtin_mul_overflow(count, (size_t)tf->dims[i], &count))
            return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: dims: element count overflows",
                                   msg, t->name, r->pos);
    }
    t->count = count;
    if (__builtin_mul_overflow(count, esize, &t->nbytes))
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: dims: byte size overflows", msg,
                               t->name, r->pos);
    if (t->dtype == ONNX_STRING) return VIGIL_OK; /* string payloads are not kept */
    int sources = tf->has_raw + (tf->typed_field != 0) + tf->external;
    if (sources > 1)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: data given in more than one form",
                               msg, t->name, r->pos);
    if (tf->typed_field) return tensor_typed(d, r, tf, t, esize);
    const uint8_t *bytes = NULL;
    if (tf->external) {
        vigil_status st = tensor_external(d, r, tf, t->nbytes, &bytes);
        if (st != VIGIL_OK) return st;
    } else if (tf->has_raw) {
        if (tf->raw_len != t->nbytes)
            return vigil_error_set(d->err, VIGIL_ERR_PARSE,
                                   "%s '%s' at byte %zu: raw_data has %zu bytes, dims and data_type say %zu", msg,
                                   t->name, r->pos, tf->raw_len, t->nbytes);
        bytes = tf->raw;
    } else if (count > 0) {
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "%s '%s' at byte %zu: %zu elements but no data", msg,
                               t->name, r->pos, count);
    }
    if (t->nbytes == 0) return VIGIL_OK;
    if (!d->own_data && (uintptr_t)bytes % esize == 0) {
        t->data = bytes;
        return VIGIL_OK;
    }
    void *copy = arena_alloc(d->arena, t->nbytes, 64);
    if (!copy) return dec_oom(d, r);
    memcpy(copy, bytes, t->nbytes);
    t->data = copy;
    return VIGIL_OK;
}

static vigil_status decode_tensor(decoder *d, const wire_reader *r, onnx_tensor *t) {
    memset(t, 0, sizeof *t);
    t->name = "";
    tensor_fields tf;
    memset(&tf, 0, sizeof tf);
    vigil_status st = tensor_read_fields(d, r, t, &tf);
    if (st != VIGIL_OK) return st;
    return tensor_finish(d, r, &tf, t);
}

/* Decodes a TensorProto field (f) into a new arena tensor. */
static vigil_status decode_tensor_field(decoder *d, const wire_reader *r, const wire_field *f, const char *field,
                                        onnx_tensor *t) {
    vigil_status st = wire_expect(r, f, WIRE_LEN, field, d->err);
    if (st != VIGIL_OK) return st;
    wire_reader sub = wire_sub(r, f, "TensorProto");
    return decode_tensor(d, &sub, t);
}

/* ------------------------------------------------------------------------ */
/* attributes and nodes                                                     */

enum {
    ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_G = 6, ATTR_FLOATS = 7, ATTR_INTS = 8,
    ATTR_STRINGS = 9, ATTR_TENSORS = 10, ATTR_GRAPHS = 11, ATTR_TYPE = 20,
};

/* The type an old (IR < 3) attribute without a type field implies. */
static int32_t attr_implied_type(const wire_counts *c) {
    static const struct { int field; int32_t type; } map[] = {
        {ATTR_F, ONNX_ATTR_FLOAT},   {ATTR_I, ONNX_ATTR_INT},       {ATTR_S, ONNX_ATTR_STRING},
        {ATTR_T, ONNX_ATTR_TENSOR},  {ATTR_G, ONNX_ATTR_GRAPH},     {ATTR_FLOATS, ONNX_ATTR_FLOATS},
        {ATTR_INTS, ONNX_ATTR_INTS}, {ATTR_STRINGS, ONNX_ATTR_STRINGS}, {ATTR_TENSORS, 9}, {ATTR_GRAPHS, 10},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (c->n[map[i].field]) return map[i].type;
    return ONNX_ATTR_UNDEFINED;
}

static vigil_status decode_attr(decoder *d, const wire_reader *r, onnx_attr *a) {
    wire_counts c;
    vigil_status st = wire_count(r, BIT(ATTR_INTS), BIT(ATTR_FLOATS), 0, &c, d->err);
    if (st != VIGIL_OK) return st;
    memset(a, 0, sizeof *a);
    a->name = "";
    float *floats = NULL;
    uint64_t *ints = NULL;
    const char **strings = NULL;
    if (c.elems[ATTR_FLOATS]) DEC_ALLOC(d, r, floats, c.elems[ATTR_FLOATS]);
    if (c.elems[ATTR_INTS]) DEC_ALLOC(d, r, ints, c.elems[ATTR_INTS]);
    if (c.n[ATTR_STRINGS]) DEC_ALLOC(d, r, strings, c.n[ATTR_STRINGS]);
    wire_reader walk = *r;
    wire_field f;
    int got;
    uint64_t v;
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        switch (f.number) {
        case ATTR_NAME: st = dec_string(d, r, &f, "name", &a->name, NULL); break;
        case ATTR_TYPE:
            if ((st = dec_varint(d, r, &f, "type", &v)) == VIGIL_OK) a->type = (int32_t)(v & 0x7fffffff);
            break;
        case ATTR_F:
            if ((st = wire_expect(r, &f, WIRE_I32, "f", d->err)) == VIGIL_OK) {
                uint32_t bits = (uint32_t)f.value;
                memcpy(&a->f, &bits, sizeof a->f);
            }
            break;
        case ATTR_I:
            if ((st = dec_varint(d, r, &f, "i", &v)) == VIGIL_OK) a->i = (int64_t)v;
            break;
        case ATTR_S: st = dec_string(d, r, &f, "s", &a->s, &a->s_len); break;
        case ATTR_T: {
            onnx_tensor *t;
            DEC_ALLOC(d, r, t, 1);
            st = decode_tensor_field(d, r, &f, "t", t);
            a->t = t;
            break;
        }
        case ATTR_FLOATS: st = wire_read_fixed(r, &f, "floats", 4, floats, &a->n_floats, c.elems[ATTR_FLOATS], d->err); break;
        case ATTR_INTS: st = wire_read_varints(r, &f, "ints", ints, &a->n_ints, c.elems[ATTR_INTS], d->err); break;
        case ATTR_STRINGS: st = dec_string(d, r, &f, "strings", &strings[a->n_strings++], NULL); break;
        default: break; /* g, graphs, tensors, sparse tensors, type protos: type only */
        }
        if (st != VIGIL_OK) return st;
    }
    if (got < 0) return (vigil_status)got;
    a->floats = floats;
    a->ints = (const int64_t *)ints;
    a->strings = strings;
    if (a->type == ONNX_ATTR_UNDEFINED) a->type = attr_implied_type(&c);
    if (a->type == ONNX_ATTR_TENSOR && !a->t)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "AttributeProto '%s' at byte %zu: TENSOR without t", a->name,
                               r->pos);
    return VIGIL_OK;
}

enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5, NODE_DOMAIN = 7 };

static vigil_status decode_node(decoder *d, const wire_reader *r, onnx_node *node) {
    wire_counts c;
    vigil_status st = wire_count(r, 0, 0, 0, &c, d->err);
    if (st != VIGIL_OK) return st;
    memset(node, 0, sizeof *node);
    node->name = node->op_type = node->domain = "";
    const char **inputs = NULL, **outputs = NULL;
    onnx_attr *attrs = NULL;
    DEC_ALLOC(d, r, inputs, c.n[NODE_INPUT]);
    DEC_ALLOC(d, r, outputs, c.n[NODE_OUTPUT]);
    DEC_ALLOC(d, r, attrs, c.n[NODE_ATTRIBUTE]);
    wire_reader walk = *r;
    wire_field f;
    int got;
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        switch (f.number) {
        case NODE_INPUT: st = dec_string(d, r, &f, "input", &inputs[node->n_inputs++], NULL); break;
        case NODE_OUTPUT: st = dec_string(d, r, &f, "output", &outputs[node->n_outputs++], NULL); break;
        case NODE_NAME: st = dec_string(d, r, &f, "name", &node->name, NULL); break;
        case NODE_OP_TYPE: st = dec_string(d, r, &f, "op_type", &node->op_type, NULL); break;
        case NODE_DOMAIN: st = dec_string(d, r, &f, "domain", &node->domain, NULL); break;
        case NODE_ATTRIBUTE:
            if ((st = wire_expect(r, &f, WIRE_LEN, "attribute", d->err)) == VIGIL_OK) {
                wire_reader sub = wire_sub(r, &f, "AttributeProto");
                st = decode_attr(d, &sub, &attrs[node->n_attrs++]);
            }
            break;
        default: break;
        }
        if (st != VIGIL_OK) return st;
    }
    if (got < 0) return (vigil_status)got;
    node->inputs = inputs;
    node->outputs = outputs;
    node->attrs = attrs;
    if (!node->op_type[0])
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "NodeProto '%s' at byte %zu: missing op_type", node->name,
                               r->pos);
    return VIGIL_OK;
}

/* ------------------------------------------------------------------------ */
/* value infos                                                              */

static vigil_status decode_shape(decoder *d, const wire_reader *r, onnx_value_info *vi) {
    vi->ndim = 0;
    wire_reader walk = *r;
    wire_field f;
    int got;
    vigil_status st = VIGIL_OK;
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        if (f.number != 1) continue;
        if ((st = wire_expect(r, &f, WIRE_LEN, "dim", d->err)) != VIGIL_OK) return st;
        if (vi->ndim >= ONNX_MAX_DIMS)
            return vigil_error_set(d->err, VIGIL_ERR_PARSE,
                                   "TensorShapeProto.dim of '%s' at byte %zu: more than %d dims", vi->name, f.offset,
                                   ONNX_MAX_DIMS);
        int k = vi->ndim++;
        vi->dims[k] = -1;
        vi->dim_params[k] = NULL;
        wire_reader dim = wire_sub(r, &f, "TensorShapeProto.Dimension");
        wire_field g;
        int got_dim;
        while ((got_dim = wire_next(&dim, &g, d->err)) == 1) {
            uint64_t v;
            if (g.number == 1) {
                if ((st = dec_varint(d, &dim, &g, "dim_value", &v)) != VIGIL_OK) return st;
                vi->dims[k] = v > (uint64_t)INT64_MAX ? -1 : (int64_t)v; /* negative: treated as unknown */
                vi->dim_params[k] = NULL;
            } else if (g.number == 2) {
                if ((st = dec_string(d, &dim, &g, "dim_param", &vi->dim_params[k], NULL)) != VIGIL_OK) return st;
                vi->dims[k] = -1;
            }
        }
        if (got_dim < 0) return (vigil_status)got_dim;
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

static vigil_status decode_type(decoder *d, const wire_reader *r, onnx_value_info *vi) {
    wire_reader walk = *r;
    wire_field f;
    int got;
    vigil_status st;
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        if (f.number != 1) continue; /* sequence, map, optional, sparse: no tensor type */
        if ((st = wire_expect(r, &f, WIRE_LEN, "tensor_type", d->err)) != VIGIL_OK) return st;
        wire_reader tensor = wire_sub(r, &f, "TypeProto.Tensor");
        wire_field g;
        int got_t;
        while ((got_t = wire_next(&tensor, &g, d->err)) == 1) {
            uint64_t v;
            if (g.number == 1) {
                if ((st = dec_varint(d, &tensor, &g, "elem_type", &v)) != VIGIL_OK) return st;
                vi->dtype = (int32_t)(v & 0x7fffffff);
            } else if (g.number == 2) {
                if ((st = wire_expect(&tensor, &g, WIRE_LEN, "shape", d->err)) != VIGIL_OK) return st;
                wire_reader shape = wire_sub(&tensor, &g, "TensorShapeProto");
                if ((st = decode_shape(d, &shape, vi)) != VIGIL_OK) return st;
            }
        }
        if (got_t < 0) return (vigil_status)got_t;
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

static vigil_status decode_value_info(decoder *d, const wire_reader *r, const wire_field *f, const char *field,
                                      onnx_value_info *vi) {
    vigil_status st = wire_expect(r, f, WIRE_LEN, field, d->err);
    if (st != VIGIL_OK) return st;
    memset(vi, 0, sizeof *vi);
    vi->name = "";
    vi->ndim = -1;
    wire_reader sub = wire_sub(r, f, "ValueInfoProto");
    wire_field g;
    int got;
    while ((got = wire_next(&sub, &g, d->err)) == 1) {
        if (g.number == 1) {
            st = dec_string(d, &sub, &g, "name", &vi->name, NULL);
        } else if (g.number == 2) {
            if ((st = wire_expect(&sub, &g, WIRE_LEN, "type", d->err)) == VIGIL_OK) {
                wire_reader type = wire_sub(&sub, &g, "TypeProto");
                st = decode_type(d, &type, vi);
            }
        }
        if (st != VIGIL_OK) return st;
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

/* ------------------------------------------------------------------------ */
/* graph and model                                                          */

enum {
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
    GRAPH_VALUE_INFO = 13, GRAPH_SPARSE_INITIALIZER = 15,
};

static int tensor_ptr_cmp(const void *a, const void *b) {
    const onnx_tensor *x = *(const onnx_tensor *const *)a, *y = *(const onnx_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int name_key_cmp(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const onnx_tensor *const *)elem)->name);
}

/* Sorts initializers by name (rejecting duplicates) and keeps only the graph
 * inputs that are not initializers. */
static vigil_status graph_index(decoder *d, const wire_reader *r, onnx_model *m, onnx_value_info *inputs,
                                size_t n_inputs) {
    const onnx_tensor **sorted;
    DEC_ALLOC(d, r, sorted, m->n_initializers);
    for (size_t i = 0; i < m->n_initializers; i++) sorted[i] = &m->initializers[i];
    qsort(sorted, m->n_initializers, sizeof *sorted, tensor_ptr_cmp);
    for (size_t i = 1; i < m->n_initializers; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            return vigil_error_set(d->err, VIGIL_ERR_PARSE, "GraphProto: duplicate initializer '%s'",
                                   sorted[i]->name);
    d->priv->init_sorted = sorted;
    size_t kept = 0;
    for (size_t i = 0; i < n_inputs; i++)
        if (!bsearch(inputs[i].name, sorted, m->n_initializers, sizeof *sorted, name_key_cmp))
            inputs[kept++] = inputs[i];
    m->inputs = inputs;
    m->n_inputs = kept;
    return VIGIL_OK;
}

static vigil_status decode_graph(decoder *d, const wire_reader *r, onnx_model *m) {
    wire_counts c;
    vigil_status st = wire_count(r, 0, 0, 0, &c, d->err);
    if (st != VIGIL_OK) return st;
    if (c.n[GRAPH_SPARSE_INITIALIZER])
        return vigil_error_set(d->err, VIGIL_ERR_UNSUPPORTED, "GraphProto.sparse_initializer: sparse initializers "
                               "are not supported");
    onnx_node *nodes;
    onnx_tensor *inits;
    onnx_value_info *inputs, *outputs, *infos;
    DEC_ALLOC(d, r, nodes, c.n[GRAPH_NODE]);
    DEC_ALLOC(d, r, inits, c.n[GRAPH_INITIALIZER]);
    DEC_ALLOC(d, r, inputs, c.n[GRAPH_INPUT]);
    DEC_ALLOC(d, r, outputs, c.n[GRAPH_OUTPUT]);
    DEC_ALLOC(d, r, infos, c.n[GRAPH_VALUE_INFO]);
    size_t n_inputs = 0;
    wire_reader walk = *r;
    wire_field f;
    int got;
    m->graph_name = "";
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        switch (f.number) {
        case GRAPH_NODE:
            if ((st = wire_expect(r, &f, WIRE_LEN, "node", d->err)) == VIGIL_OK) {
                wire_reader sub = wire_sub(r, &f, "NodeProto");
                st = decode_node(d, &sub, &nodes[m->n_nodes]);
                if (st != VIGIL_OK) vigil_error_prefix(d->err, "GraphProto.node[%zu]", m->n_nodes);
                m->n_nodes++;
            }
            break;
        case GRAPH_NAME: st = dec_string(d, r, &f, "name", &m->graph_name, NULL); break;
        case GRAPH_INITIALIZER:
            st = decode_tensor_field(d, r, &f, "initializer", &inits[m->n_initializers]);
            if (st != VIGIL_OK) vigil_error_prefix(d->err, "GraphProto.initializer[%zu]", m->n_initializers);
            m->n_initializers++;
            break;
        case GRAPH_INPUT: st = decode_value_info(d, r, &f, "input", &inputs[n_inputs++]); break;
        case GRAPH_OUTPUT: st = decode_value_info(d, r, &f, "output", &outputs[m->n_outputs++]); break;
        case GRAPH_VALUE_INFO: st = decode_value_info(d, r, &f, "value_info", &infos[m->n_value_infos++]); break;
        default: break;
        }
        if (st != VIGIL_OK) return st;
    }
    if (got < 0) return (vigil_status)got;
    m->nodes = nodes;
    m->initializers = inits;
    m->outputs = outputs;
    m->value_infos = infos;
    return graph_index(d, r, m, inputs, n_inputs);
}

enum {
    MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7,
    MODEL_OPSET_IMPORT = 8, MODEL_METADATA = 14,
};

static vigil_status decode_opset(decoder *d, const wire_reader *r, const wire_field *f, onnx_opset *op) {
    vigil_status st = wire_expect(r, f, WIRE_LEN, "opset_import", d->err);
    if (st != VIGIL_OK) return st;
    wire_reader sub = wire_sub(r, f, "OperatorSetIdProto");
    op->domain = "";
    op->version = 0;
    wire_field g;
    int got;
    uint64_t v;
    while ((got = wire_next(&sub, &g, d->err)) == 1) {
        if (g.number == 1) st = dec_string(d, &sub, &g, "domain", &op->domain, NULL);
        else if (g.number == 2 && (st = dec_varint(d, &sub, &g, "version", &v)) == VIGIL_OK) op->version = (int64_t)v;
        if (st != VIGIL_OK) return st;
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

static vigil_status decode_model(decoder *d, const wire_reader *r, onnx_model *m) {
    wire_counts c;
    vigil_status st = wire_count(r, 0, 0, 0, &c, d->err);
    if (st != VIGIL_OK) return st;
    if (c.n[MODEL_GRAPH] != 1)
        return vigil_error_set(d->err, VIGIL_ERR_PARSE, "ModelProto: %s graph (not an ONNX model?)",
                               c.n[MODEL_GRAPH] ? "more than one" : "no");
    onnx_opset *opsets;
    onnx_kv *meta;
    DEC_ALLOC(d, r, opsets, c.n[MODEL_OPSET_IMPORT]);
    DEC_ALLOC(d, r, meta, c.n[MODEL_METADATA]);
    m->producer_name = m->producer_version = "";
    wire_reader walk = *r;
    wire_field f;
    int got;
    uint64_t v;
    while ((got = wire_next(&walk, &f, d->err)) == 1) {
        switch (f.number) {
        case MODEL_IR_VERSION:
            if ((st = dec_varint(d, r, &f, "ir_version", &v)) == VIGIL_OK) m->ir_version = (int64_t)v;
            break;
        case MODEL_PRODUCER_NAME: st = dec_string(d, r, &f, "producer_name", &m->producer_name, NULL); break;
        case MODEL_PRODUCER_VERSION:
            st = dec_string(d, r, &f, "producer_version", &m->producer_version, NULL);
            break;
        case MODEL_OPSET_IMPORT: st = decode_opset(d, r, &f, &opsets[m->n_opsets++]); break;
        case MODEL_METADATA: st = decode_kv(d, r, &f, "metadata_props", &meta[m->n_metadata++]); break;
        case MODEL_GRAPH:
            if ((st = wire_expect(r, &f, WIRE_LEN, "graph", d->err)) == VIGIL_OK) {
                wire_reader sub = wire_sub(r, &f, "GraphProto");
                st = decode_graph(d, &sub, m);
            }
            break;
        default: break;
        }
        if (st != VIGIL_OK) return st;
    }
    if (got < 0) return (vigil_status)got;
    m->opsets = opsets;
    m->metadata = meta;
    for (size_t i = 0; i < m->n_opsets; i++)
        if (!opsets[i].domain[0] || strcmp(opsets[i].domain, "ai.onnx") == 0) m->opset = opsets[i].version;
    return VIGIL_OK;
}

/* ------------------------------------------------------------------------ */
/* public entry points                                                      */

void onnx_free(onnx_model *model) {
    if (!model) return;
    struct onnx_model_private *priv = model->priv;
    for (onnx_external_file *e = priv->external; e; e = e->next)
        if (e->map) munmap(e->map, e->size);
    if (priv->map) munmap(priv->map, priv->map_size);
    arena_destroy(priv->arena); /* model and priv live in the arena */
}

/* Decodes buf into a model whose arena also holds the model itself; map (if
 * any) is handed to the model on success and unmapped by the caller on
 * failure. */
static vigil_status model_decode(const void *buf, size_t size, const char *base_dir, onnx_model **out,
                                 vigil_error *err) {
    /* decoded structures are bounded by a multiple of the input: the cap stops
     * a hostile file from turning a few MB into many GB of empty records */
    size_t cap = size > (SIZE_MAX - (64u << 20)) / 96 ? 0 : size * 96 + (64u << 20);
    arena *a = arena_create(0, cap);
    if (!a) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory loading ONNX model");
    onnx_model *m = arena_calloc(a, 1, sizeof *m);
    struct onnx_model_private *priv = arena_calloc(a, 1, sizeof *priv);
    char *dir = base_dir ? arena_strdup(a, base_dir) : NULL;
    if (!m || !priv || (base_dir && !dir)) {
        arena_destroy(a);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory loading ONNX model");
    }
    priv->arena = a;
    m->priv = priv;
    decoder d = {.arena = a, .base_dir = dir, .own_data = 0, .priv = priv, .err = err};
    wire_reader r;
    wire_init(&r, buf, 0, size, "ModelProto");
    vigil_status st = size == 0 ? vigil_error_set(err, VIGIL_ERR_PARSE, "ModelProto: empty file")
                                : decode_model(&d, &r, m);
    if (st != VIGIL_OK) {
        onnx_free(m);
        return st;
    }
    *out = m;
    return VIGIL_OK;
}

vigil_status onnx_load_buffer(const void *buf, size_t size, const char *base_dir, onnx_model **out,
                              vigil_error *err) {
    if (!out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "onnx_load_buffer: out is NULL");
    *out = NULL;
    if (!buf && size) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "onnx_load_buffer: buffer is NULL");
    return model_decode(buf, size, base_dir, out, err);
}

vigil_status onnx_load_file(const char *path, onnx_model **out, vigil_error *err) {
    if (!out || !path) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "onnx_load_file: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vigil_error_set(err, errno == ENOENT ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_IO, "%s: %s", path,
                               strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vigil_error_set(err, VIGIL_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return vigil_error_set(err, VIGIL_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    vigil_status status = model_decode(map, size, dir, out, err);
    if (status != VIGIL_OK) {
        if (map) munmap(map, size);
        vigil_error_prefix(err, "%s", path);
        return status;
    }
    (*out)->priv->map = map;
    (*out)->priv->map_size = size;
    (*out)->file_bytes = size;
    return VIGIL_OK;
}

/* A standalone tensor and the arena that owns it (tensor first, so that
 * onnx_tensor_free can find the arena from the tensor pointer). */
typedef struct owned_tensor {
    onnx_tensor tensor;
    arena *arena;
} owned_tensor;

vigil_status onnx_tensor_decode(const void *buf, size_t size, onnx_tensor **out, vigil_error *err) {
    if (!out || (!buf && size))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "onnx_tensor_decode: NULL argument");
    *out = NULL;
    size_t cap = size > (SIZE_MAX - (64u << 20)) / 16 ? 0 : size * 16 + (64u << 20);
    arena *a = arena_create(0, cap);
    owned_tensor *ot = a ? arena_calloc(a, 1, sizeof *ot) : NULL;
    if (!ot) {
        arena_destroy(a);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory decoding a tensor");
    }
    ot->arena = a;
    decoder d = {.arena = a, .base_dir = NULL, .own_data = 1, .priv = NULL, .err = err};
    wire_reader r;
    wire_init(&r, buf, 0, size, "TensorProto");
    vigil_status st = decode_tensor(&d, &r, &ot->tensor);
    if (st != VIGIL_OK) {
        arena_destroy(a);
        return st;
    }
    *out = &ot->tensor;
    return VIGIL_OK;
}

void onnx_tensor_free(onnx_tensor *tensor) {
    if (tensor) arena_destroy(((owned_tensor *)tensor)->arena);
}

const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name) {
    for (size_t i = 0; node && i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0) return &node->attrs[i];
    return NULL;
}

const onnx_tensor *onnx_find_initializer(const onnx_model *model, const char *name) {
    if (!model || !name) return NULL;
    const onnx_tensor *const *hit =
        bsearch(name, model->priv->init_sorted, model->n_initializers, sizeof *model->priv->init_sorted, name_key_cmp);
    return hit ? *hit : NULL;
}

const char *onnx_metadata(const onnx_model *model, const char *key) {
    for (size_t i = 0; model && i < model->n_metadata; i++)
        if (strcmp(model->metadata[i].key, key) == 0) return model->metadata[i].value;
    return NULL;
}
