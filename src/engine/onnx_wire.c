/*
 * onnx_wire.c - the protobuf wire reader behind onnx.c (see onnx_wire.h).
 *
 * Hostile input is the normal case here: every varint is limited to ten bytes
 * (and the tenth to one bit), every length is checked against the end of the
 * enclosing message before anything is read, group wire types (3, 4) and field
 * number 0 are refused.  The readers never read a byte outside [pos, end).
 */
#include "engine/onnx_wire.h"

#include <stdio.h>
#include <string.h>

/* Names of the onnx.proto fields onnx.c reads, so that errors say
 * "ModelProto.graph" rather than "field 7". */
typedef struct wire_field_name {
    const char *message;
    uint32_t number;
    const char *name;
} wire_field_name;

static const wire_field_name wire_names[] = {
    {"ModelProto", 1, "ir_version"}, {"ModelProto", 2, "producer_name"}, {"ModelProto", 3, "producer_version"},
    {"ModelProto", 7, "graph"}, {"ModelProto", 8, "opset_import"}, {"ModelProto", 14, "metadata_props"},
    {"GraphProto", 1, "node"}, {"GraphProto", 2, "name"}, {"GraphProto", 5, "initializer"},
    {"GraphProto", 11, "input"}, {"GraphProto", 12, "output"}, {"GraphProto", 13, "value_info"},
    {"GraphProto", 15, "sparse_initializer"},
    {"NodeProto", 1, "input"}, {"NodeProto", 2, "output"}, {"NodeProto", 3, "name"}, {"NodeProto", 4, "op_type"},
    {"NodeProto", 5, "attribute"}, {"NodeProto", 7, "domain"},
    {"AttributeProto", 1, "name"}, {"AttributeProto", 2, "f"}, {"AttributeProto", 3, "i"},
    {"AttributeProto", 4, "s"}, {"AttributeProto", 5, "t"}, {"AttributeProto", 6, "g"},
    {"AttributeProto", 7, "floats"}, {"AttributeProto", 8, "ints"}, {"AttributeProto", 9, "strings"},
    {"AttributeProto", 10, "tensors"}, {"AttributeProto", 11, "graphs"}, {"AttributeProto", 20, "type"},
    {"TensorProto", 1, "dims"}, {"TensorProto", 2, "data_type"}, {"TensorProto", 3, "segment"},
    {"TensorProto", 4, "float_data"}, {"TensorProto", 5, "int32_data"}, {"TensorProto", 6, "string_data"},
    {"TensorProto", 7, "int64_data"}, {"TensorProto", 8, "name"}, {"TensorProto", 9, "raw_data"},
    {"TensorProto", 10, "double_data"}, {"TensorProto", 11, "uint64_data"}, {"TensorProto", 13, "external_data"},
    {"TensorProto", 14, "data_location"},
    {"ValueInfoProto", 1, "name"}, {"ValueInfoProto", 2, "type"}, {"TypeProto", 1, "tensor_type"},
    {"TypeProto.Tensor", 1, "elem_type"}, {"TypeProto.Tensor", 2, "shape"}, {"TensorShapeProto", 1, "dim"},
    {"TensorShapeProto.Dimension", 1, "dim_value"}, {"TensorShapeProto.Dimension", 2, "dim_param"},
    {"OperatorSetIdProto", 1, "domain"}, {"OperatorSetIdProto", 2, "version"},
    {"StringStringEntryProto", 1, "key"}, {"StringStringEntryProto", 2, "value"},
};

/* "ModelProto.graph", or "ModelProto field 99" for fields vigil does not read. */
static const char *wire_where(const wire_reader *r, uint32_t number, char *buf, size_t size) {
    for (size_t i = 0; i < sizeof wire_names / sizeof wire_names[0]; i++)
        if (wire_names[i].number == number && strcmp(wire_names[i].message, r->message) == 0) {
            snprintf(buf, size, "%s.%s", r->message, wire_names[i].name);
            return buf;
        }
    snprintf(buf, size, "%s field %u", r->message, number);
    return buf;
}

/* Decodes one varint at base[*pos], limited to end. */
static vigil_status wire_varint(const wire_reader *r, size_t *pos, size_t end, uint64_t *out,
                                vigil_error *err) {
    uint64_t value = 0;
    size_t start = *pos;
    *out = 0; /* on every path: gcc -O3 (Release) cannot see that an error status is never VIGIL_OK and warned maybe-uninitialized */
    for (unsigned i = 0; i < 10; i++) {
        if (*pos >= end)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "%s at byte %zu: truncated varint", r->message,
                                   start);
        uint8_t byte = r->base[(*pos)++];
        if (i == 9 && byte > 1)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "%s at byte %zu: varint overflows 64 bits",
                                   r->message, start);
        value |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = value;
            return VIGIL_OK;
        }
    }
    return vigil_error_set(err, VIGIL_ERR_PARSE, "%s at byte %zu: varint longer than 10 bytes", r->message,
                           start);
}

void wire_init(wire_reader *r, const uint8_t *base, size_t start, size_t end, const char *message) {
    r->base = base;
    r->pos = start;
    r->end = end;
    r->message = message;
}

int wire_next(wire_reader *r, wire_field *f, vigil_error *err) {
    if (r->pos >= r->end) return 0;
    memset(f, 0, sizeof *f);
    f->offset = r->pos;
    uint64_t key;
    vigil_status st = wire_varint(r, &r->pos, r->end, &key, err);
    if (st != VIGIL_OK) return st;
    uint64_t number = key >> 3;
    if (number == 0 || number > 0x1fffffff)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "%s at byte %zu: invalid field number %llu",
                               r->message, f->offset, (unsigned long long)number);
    f->number = (uint32_t)number;
    f->type = (wire_type)(key & 7);
    char where[96];
    switch ((int)(key & 7)) {
    case WIRE_VARINT:
        if (wire_varint(r, &r->pos, r->end, &f->value, err) == VIGIL_OK) return 1;
        vigil_error_prefix(err, "%s", wire_where(r, f->number, where, sizeof where));
        return VIGIL_ERR_PARSE;
    case WIRE_I64:
    case WIRE_I32: {
        size_t size = f->type == WIRE_I64 ? 8 : 4;
        if (r->end - r->pos < size)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "%s at byte %zu: truncated %zu-byte value",
                                   wire_where(r, f->number, where, sizeof where), f->offset, size);
        uint64_t value = 0;
        for (size_t i = 0; i < size; i++) value |= (uint64_t)r->base[r->pos + i] << (8 * i);
        f->value = value;
        r->pos += size;
        return 1;
    }
    case WIRE_LEN: {
        uint64_t len;
        if (wire_varint(r, &r->pos, r->end, &len, err) != VIGIL_OK) {
            vigil_error_prefix(err, "%s length", wire_where(r, f->number, where, sizeof where));
            return VIGIL_ERR_PARSE;
        }
        if (len > r->end - r->pos)
            return vigil_error_set(err, VIGIL_ERR_PARSE,
                                   "%s at byte %zu: length %llu runs past the end of the message "
                                   "(%zu bytes left)",
                                   wire_where(r, f->number, where, sizeof where), f->offset,
                                   (unsigned long long)len, r->end - r->pos);
        f->start = r->pos;
        f->len = (size_t)len;
        r->pos += (size_t)len;
        return 1;
    }
    default:
        return vigil_error_set(err, VIGIL_ERR_PARSE, "%s at byte %zu: unsupported wire type %d",
                               wire_where(r, f->number, where, sizeof where), f->offset, (int)(key & 7));
    }
}

wire_reader wire_sub(const wire_reader *r, const wire_field *f, const char *message) {
    wire_reader sub;
    wire_init(&sub, r->base, f->start, f->start + f->len, message);
    return sub;
}

static const char *wire_type_name(wire_type t) {
    switch (t) {
    case WIRE_VARINT: return "varint";
    case WIRE_I64: return "fixed64";
    case WIRE_LEN: return "length-delimited";
    case WIRE_I32: return "fixed32";
    }
    return "?";
}

vigil_status wire_expect(const wire_reader *r, const wire_field *f, wire_type t, const char *field,
                         vigil_error *err) {
    if (f->type == t) return VIGIL_OK;
    return vigil_error_set(err, VIGIL_ERR_PARSE, "%s.%s at byte %zu: wrong wire type %s (expected %s)",
                           r->message, field, f->offset, wire_type_name(f->type), wire_type_name(t));
}

vigil_status wire_count(const wire_reader *r, uint32_t varint_mask, uint32_t fixed32_mask,
                        uint32_t fixed64_mask, wire_counts *c, vigil_error *err) {
    memset(c, 0, sizeof *c);
    wire_reader walk = *r;
    wire_field f;
    int got;
    while ((got = wire_next(&walk, &f, err)) == 1) {
        if (f.number >= WIRE_MAX_COUNTED_FIELD) continue;
        uint32_t bit = 1u << f.number;
        c->n[f.number]++;
        if (f.type != WIRE_LEN) {
            c->elems[f.number]++;
        } else if (varint_mask & bit) {
            /* every varint ends in exactly one byte without the continuation bit */
            for (size_t i = 0; i < f.len; i++) c->elems[f.number] += !(r->base[f.start + i] & 0x80);
        } else if (fixed32_mask & bit) {
            c->elems[f.number] += f.len / 4;
        } else if (fixed64_mask & bit) {
            c->elems[f.number] += f.len / 8;
        }
    }
    return got < 0 ? (vigil_status)got : VIGIL_OK;
}

vigil_status wire_read_varints(const wire_reader *r, const wire_field *f, const char *field,
                               uint64_t *out, size_t *n, size_t cap, vigil_error *err) {
    if (f->type == WIRE_VARINT) {
        if (*n >= cap) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "%s.%s: count mismatch",
                                              r->message, field);
        out[(*n)++] = f->value;
        return VIGIL_OK;
    }
    if (f->type != WIRE_LEN) return wire_expect(r, f, WIRE_VARINT, field, err);
    size_t pos = f->start, end = f->start + f->len;
    while (pos < end) {
        uint64_t value;
        if (wire_varint(r, &pos, end, &value, err) != VIGIL_OK) {
            vigil_error_prefix(err, "%s.%s (packed)", r->message, field);
            return VIGIL_ERR_PARSE;
        }
        if (*n >= cap) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "%s.%s: count mismatch",
                                              r->message, field);
        out[(*n)++] = value;
    }
    return VIGIL_OK;
}

vigil_status wire_read_fixed(const wire_reader *r, const wire_field *f, const char *field,
                             size_t elem_size, void *out, size_t *n, size_t cap, vigil_error *err) {
    wire_type single = elem_size == 4 ? WIRE_I32 : WIRE_I64;
    uint8_t *dst = out;
    if (f->type == single) {
        if (*n >= cap) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "%s.%s: count mismatch",
                                              r->message, field);
        for (size_t i = 0; i < elem_size; i++) dst[*n * elem_size + i] = (uint8_t)(f->value >> (8 * i));
        (*n)++;
        return VIGIL_OK;
    }
    if (f->type != WIRE_LEN) return wire_expect(r, f, single, field, err);
    if (f->len % elem_size != 0)
        return vigil_error_set(err, VIGIL_ERR_PARSE,
                               "%s.%s at byte %zu: packed length %zu is not a multiple of %zu", r->message,
                               field, f->offset, f->len, elem_size);
    size_t count = f->len / elem_size;
    if (count == 0) return VIGIL_OK; /* an empty packed array: out may be NULL */
    if (count > cap - *n)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "%s.%s: count mismatch", r->message, field);
    memcpy(dst + *n * elem_size, r->base + f->start, f->len); /* little-endian host (see onnx.c) */
    *n += count;
    return VIGIL_OK;
}
