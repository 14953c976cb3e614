/*
 * onnx_wire.h - a bounds-checked reader for the protobuf wire format, just
 * enough of it for onnx.c: varints, fixed 32/64-bit values and
 * length-delimited fields (strings, bytes, sub-messages, packed arrays).
 *
 * A reader walks one message, [pos, end) inside a shared base buffer, so that
 * every offset it reports is an absolute byte offset into the file.  Nothing
 * here allocates; every failure is VIGIL_ERR_PARSE with the message name,
 * field number and byte offset in err.
 *
 * Messages are decoded in two passes (wire_count, then a walk that fills
 * arrays sized from the counts), which lets onnx.c put every repeated field in
 * one exact arena allocation instead of growing buffers.
 */
#ifndef VIGIL_ENGINE_ONNX_WIRE_H
#define VIGIL_ENGINE_ONNX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

typedef enum wire_type { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 } wire_type;

/* Field numbers >= this are skipped by wire_count (none of the ONNX fields
 * vigil reads is that high). */
#define WIRE_MAX_COUNTED_FIELD 32

typedef struct wire_reader {
    const uint8_t *base;  /* the whole buffer: offsets are relative to it */
    size_t pos, end;      /* the unread part of this message */
    const char *message;  /* message type name, for errors ("TensorProto") */
} wire_reader;

typedef struct wire_field {
    uint32_t number;
    wire_type type;
    uint64_t value;       /* VARINT, I64 and I32 payloads */
    size_t start, len;    /* LEN payload: base[start .. start+len) */
    size_t offset;        /* offset of the field's key, for errors */
} wire_field;

/* Occurrences of each field number of one message.  For the fields named in
 * the packed masks, elems also counts the scalars inside packed LEN payloads. */
typedef struct wire_counts {
    size_t n[WIRE_MAX_COUNTED_FIELD];     /* occurrences (any wire type) */
    size_t elems[WIRE_MAX_COUNTED_FIELD]; /* scalar elements, packed or not */
} wire_counts;

void wire_init(wire_reader *r, const uint8_t *base, size_t start, size_t end, const char *message);
/* Reads the next field.  Returns 1 with *f set, 0 at the end of the message,
 * or a negative vigil_status (err set). */
int wire_next(wire_reader *r, wire_field *f, vigil_error *err);
/* A reader over a LEN field's payload. */
wire_reader wire_sub(const wire_reader *r, const wire_field *f, const char *message);
/* Fails unless f has wire type t; field names the field ("dims"). */
vigil_status wire_expect(const wire_reader *r, const wire_field *f, wire_type t, const char *field,
                         vigil_error *err);

/* Counts the fields of r's message.  Bit k of varint_mask / fixed32_mask /
 * fixed64_mask says field k is a repeated varint / 4-byte / 8-byte scalar that
 * may be packed; their elements are counted into c->elems. */
vigil_status wire_count(const wire_reader *r, uint32_t varint_mask, uint32_t fixed32_mask,
                        uint32_t fixed64_mask, wire_counts *c, vigil_error *err);

/* Appends the varint(s) of f (one VARINT or a packed LEN) to out[*n], never
 * past cap.  field names the field for errors. */
vigil_status wire_read_varints(const wire_reader *r, const wire_field *f, const char *field,
                               uint64_t *out, size_t *n, size_t cap, vigil_error *err);
/* Same for 4-byte (I32 or packed) and 8-byte (I64 or packed) scalars, copied
 * as raw little-endian bits into out (elem_size 4 or 8). */
vigil_status wire_read_fixed(const wire_reader *r, const wire_field *f, const char *field,
                             size_t elem_size, void *out, size_t *n, size_t cap, vigil_error *err);

#endif
