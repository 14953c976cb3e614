/*
 * npy.c - NumPy .npy reader and writer.
 *
 * Format: magic "\x93NUMPY", version (1.0: 2-byte header length; 2.0/3.0:
 * 4-byte), then a Python dict literal {'descr': '<f4', 'fortran_order': False,
 * 'shape': (1, 3, 640, 640), } padded so data starts 64-byte aligned, then the
 * raw little-endian elements.  The header parser accepts exactly the keys
 * numpy writes and rejects anything it does not understand.
 */
#include "core/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static const struct {
    const char *descr;
    npy_dtype dtype;
    size_t size;
} npy_types[] = {
    {"<f4", NPY_F32, 4}, {"<f8", NPY_F64, 8}, {"<i8", NPY_I64, 8},
    {"<i4", NPY_I32, 4}, {"|u1", NPY_U8, 1},  {"|b1", NPY_BOOL, 1},
    {"<f2", NPY_F16, 2}, {"|i1", NPY_I8, 1},
};
#define NPY_TYPE_COUNT (sizeof npy_types / sizeof npy_types[0])

size_t npy_dtype_size(npy_dtype dtype) {
    for (size_t i = 0; i < NPY_TYPE_COUNT; i++)
        if (npy_types[i].dtype == dtype) return npy_types[i].size;
    return 0;
}

static const char *npy_descr(npy_dtype dtype) {
    for (size_t i = 0; i < NPY_TYPE_COUNT; i++)
        if (npy_types[i].dtype == dtype) return npy_types[i].descr;
    return NULL;
}

/* Finds the value text after 'key': in the header dict, or NULL. */
static const char *npy_find_key(const char *header, const char *key) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *at = strstr(header, quoted);
    if (!at) return NULL;
    at += strlen(quoted);
    while (*at == ' ') at++;
    if (*at != ':') return NULL;
    at++;
    while (*at == ' ') at++;
    return at;
}

static vigil_status npy_parse_shape(const char *at, npy_array *out, vigil_error *err) {
    if (*at != '(') return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: shape is not a tuple");
    at++;
    out->ndim = 0;
    out->count = 1;
    for (;;) {
        while (*at == ' ' || *at == ',') at++;
        if (*at == ')') break;
        if (!isdigit((unsigned char)*at)) return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: bad shape entry");
        if (out->ndim == NPY_MAX_DIMS)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "npy: more than %d dimensions", NPY_MAX_DIMS);
        errno = 0;
        char *end;
        long long dim = strtoll(at, &end, 10);
        if (errno || dim < 0 || dim > (1LL << 40)) return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: bad dimension");
        if (dim && out->count > ((size_t)1 << 40) / (size_t)dim)
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "npy: array too large");
        out->dims[out->ndim++] = dim;
        out->count *= (size_t)dim;
        at = end;
    }
    return VIGIL_OK;
}

static vigil_status npy_parse_header(const char *header, npy_array *out, vigil_error *err) {
    const char *descr = npy_find_key(header, "descr");
    const char *fortran = npy_find_key(header, "fortran_order");
    const char *shape = npy_find_key(header, "shape");
    if (!descr || !fortran || !shape)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: header lacks descr, fortran_order or shape");
    if (strncmp(fortran, "False", 5) != 0)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "npy: Fortran-order arrays are not supported");
    size_t i = 0;
    for (; i < NPY_TYPE_COUNT; i++) {
        char quoted[8];
        snprintf(quoted, sizeof quoted, "'%s'", npy_types[i].descr);
        if (strncmp(descr, quoted, strlen(quoted)) == 0) break;
    }
    if (i == NPY_TYPE_COUNT) {
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                               "npy: dtype %.8s not supported (f4, f8, f2, i8, i4, i1, u1, b1 little-endian)", descr);
    }
    out->dtype = npy_types[i].dtype;
    return npy_parse_shape(shape, out, err);
}

vigil_status npy_parse(const void *buf, size_t size, npy_array *out, vigil_error *err) {
    const unsigned char *bytes = buf;
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(bytes, "\x93NUMPY", 6) != 0)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: not a .npy file (bad magic)");
    size_t header_len, offset;
    if (bytes[6] == 1) {
        header_len = (size_t)bytes[8] | (size_t)bytes[9] << 8;
        offset = 10;
    } else if ((bytes[6] == 2 || bytes[6] == 3) && size >= 12) {
        header_len = (size_t)bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24;
        offset = 12;
    } else {
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "npy: format version %d not supported", bytes[6]);
    }
    if (header_len > 65536 || offset + header_len > size)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: truncated header");
    char header[65537];
    memcpy(header, bytes + offset, header_len);
    header[header_len] = '\0';
    vigil_status st = npy_parse_header(header, out, err);
    if (st) return st;
    size_t data_bytes = out->count * npy_dtype_size(out->dtype);
    size_t data_at = offset + header_len;
    if (size - data_at < data_bytes)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "npy: truncated data (%zu of %zu bytes)", size - data_at,
                               data_bytes);
    out->data = vigil_aligned_alloc(64, data_bytes ? data_bytes : 1);
    if (!out->data) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "npy: cannot allocate %zu bytes", data_bytes);
    memcpy(out->data, bytes + data_at, data_bytes);
    return VIGIL_OK;
}

vigil_status npy_read(const char *path, npy_array *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    vigil_status st = VIGIL_OK;
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = vigil_error_set(err, VIGIL_ERR_IO, "%s: cannot determine size", path);
    } else if (!(buf = vigil_malloc((size_t)size + 1))) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "%s: file too large to read", path);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = vigil_error_set(err, VIGIL_ERR_IO, "%s: read failed", path);
    } else {
        st = npy_parse(buf, (size_t)size, out, err);
        if (st) vigil_error_prefix(err, "%s", path);
    }
    vigil_free(buf);
    fclose(f);
    return st;
}

vigil_status npy_write(const char *path, npy_dtype dtype, int ndim, const int64_t *dims, const void *data,
                       vigil_error *err) {
    const char *descr = npy_descr(dtype);
    if (!descr || ndim < 0 || ndim > NPY_MAX_DIMS)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "npy: cannot write dtype/rank");
    char shape[256] = "";
    size_t count = 1, len = 0;
    for (int i = 0; i < ndim; i++) {
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%lld,%s", (long long)dims[i],
                                (ndim > 1 && i < ndim - 1) ? " " : "");
        count *= (size_t)dims[i];
    }
    if (ndim > 1) shape[len - 1] = '\0'; /* numpy writes (1, 2) but (3,) */
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) & ~(size_t)63;
    memset(header + n, ' ', padded - total);
    header[n + (int)(padded - total)] = '\n';
    size_t header_len = padded - 10;

    FILE *f = fopen(path, "wb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header_len & 0xff),
                                  (unsigned char)(header_len >> 8)};
    size_t data_bytes = count * npy_dtype_size(dtype);
    int ok = fwrite(preamble, 1, 10, f) == 10 && fwrite(header, 1, header_len, f) == header_len &&
             (data_bytes == 0 || fwrite(data, 1, data_bytes, f) == data_bytes);
    if (fclose(f) != 0) ok = 0;
    if (!ok) return vigil_error_set(err, VIGIL_ERR_IO, "%s: write failed", path);
    return VIGIL_OK;
}

void npy_free(npy_array *arr) {
    if (!arr) return;
    vigil_free(arr->data);
    arr->data = NULL;
}
