/*
 * infer_codec.c - v2 infer request parsing (a scanner of our own for the
 * tensors, jansson for the rest) and response writing.
 *
 * Responses are written by hand into a textbuf rather than built as a
 * jansson tree: an output of a detector is ~700k numbers, and a tree of that
 * many json_t values costs more than the inference.
 */
#include "serve/infer_codec.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/half.h"

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

/* ------------------------------------------------------------ the request scanner
 *
 * A v2 request is mostly tensor data: a 60 MB body can hold 20 M JSON
 * values, and a jansson tree of them costs fifty times the text (a body of
 * 21 M empty lists took a 3 GB tree before its shape was ever looked at).
 * So the JSON is read in two steps:
 *
 * 1. The scanner walks the whole text once, checking that it is JSON
 *    (iteratively: deep nesting costs no stack, and it allocates nothing),
 *    and copies it into a skeleton in which the "data" value of every object
 *    in "inputs" is replaced by 0, its place in the body remembered.  The
 *    skeleton holds the small parts of the request (id, parameters, outputs,
 *    names, shapes, datatypes) and is capped at INFER_MAX_SKELETON bytes; it
 *    is what jansson parses, so duplicate keys and the ranges of numbers are
 *    judged as before.
 * 2. Once an input's name, datatype and shape are known, its data is read
 *    straight into the tensor, refusing at the first value the shape has no
 *    room for: a list where a number must be, more items than a dimension
 *    holds, nesting deeper than the shape.
 *
 * The tree jansson builds is thus bounded by the cap, and the only large
 * buffer a JSON request costs is its tensor, itself bounded by the text
 * (every element takes at least two bytes of it).
 */

#define INFER_MAX_SKELETON (64 * 1024) /* the request's JSON apart from the inputs' data */
#define JSON_MAX_DEPTH 2048            /* jansson's JSON_PARSER_MAX_DEPTH */
#define NUMBER_MAX_CHARS 400           /* longest number token read into a tensor */

typedef struct json_span {
    size_t at, len; /* bytes of the body */
} json_span;

typedef struct request_scan {
    const char *text;
    size_t len, pos;
    char *skeleton; /* vigil_malloc'd, NUL-terminated; owned by the caller of scan_request */
    size_t skeleton_len, skeleton_max;
    json_span data[BACKEND_MAX_IO]; /* inputs[i].data, by i */
    int has_data[BACKEND_MAX_IO];
    const char *problem; /* why the text is refused (static or problem_text) */
    char problem_text[64];
    size_t problem_at;
    int over_cap; /* the problem is the skeleton's size, not the syntax */
} request_scan;

static int scan_fail(request_scan *sc, const char *problem) {
    if (!sc->problem) {
        sc->problem = problem;
        sc->problem_at = sc->pos;
    }
    return -1;
}

static int scan_add(request_scan *sc, const char *bytes, size_t n) {
    if (n > sc->skeleton_max - sc->skeleton_len) {
        sc->over_cap = 1;
        return scan_fail(sc, "too large");
    }
    memcpy(sc->skeleton + sc->skeleton_len, bytes, n);
    sc->skeleton_len += n;
    sc->skeleton[sc->skeleton_len] = '\0';
    return 0;
}

static void scan_ws(request_scan *sc) {
    while (sc->pos < sc->len) {
        char c = sc->text[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        sc->pos++;
    }
}

static int scan_peek(const request_scan *sc) { return sc->pos < sc->len ? (unsigned char)sc->text[sc->pos] : -1; }

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long scan_hex4(request_scan *sc) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = sc->pos < sc->len ? hex_value((unsigned char)sc->text[sc->pos]) : -1;
        if (h < 0) return scan_fail(sc, "invalid escape");
        v = v * 16 + h;
        sc->pos++;
    }
    return v;
}

/* Length of the UTF-8 sequence at p (at most left bytes), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are refused, as
 * jansson refuses them. */
static size_t utf8_sequence(const unsigned char *p, size_t left) {
    unsigned c = p[0];
    size_t n;
    unsigned long cp;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Appends code point cp as UTF-8 to out (size bytes, *n used), as far as it fits. */
static void key_put(char *out, size_t size, size_t *n, unsigned long cp) {
    char b[4];
    size_t k;
    if (cp < 0x80) b[0] = (char)cp, k = 1;
    else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
    else
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
    for (size_t i = 0; i < k; i++, (*n)++)
        if (out && *n < size) out[*n] = b[i];
}

/* Checks the string at sc->pos (its opening quote).  With key set, its
 * decoded bytes go there (as many as fit in key_size) and *key_len is the
 * decoded length: enough to tell "inputs" or "data" however it is escaped. */
static int scan_string(request_scan *sc, char *key, size_t key_size, size_t *key_len) {
    size_t n = 0;
    sc->pos++; /* the quote */
    for (;;) {
        if (sc->pos >= sc->len) return scan_fail(sc, "premature end of input");
        unsigned char c = (unsigned char)sc->text[sc->pos];
        if (c == '"') {
            sc->pos++;
            break;
        }
        if (c < 0x20) return scan_fail(sc, c == '\n' ? "unexpected newline" : "control character in a string");
        if (c >= 0x80) {
            size_t k = utf8_sequence((const unsigned char *)sc->text + sc->pos, sc->len - sc->pos);
            if (!k) return scan_fail(sc, "invalid UTF-8");
            for (size_t i = 0; i < k; i++, n++)
                if (key && n < key_size) key[n] = sc->text[sc->pos + i];
            sc->pos += k;
            continue;
        }
        sc->pos++;
        if (c != '\\') {
            key_put(key, key_size, &n, c);
            continue;
        }
        int e = scan_peek(sc);
        static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
        const char *hit = e > 0 ? strchr(escapes, e) : NULL;
        if (hit) {
            sc->pos++;
            key_put(key, key_size, &n, (unsigned char)decoded[hit - escapes]);
            continue;
        }
        if (e != 'u') return scan_fail(sc, "invalid escape");
        sc->pos++;
        long cp = scan_hex4(sc);
        if (cp < 0) return -1;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (sc->pos + 1 >= sc->len || sc->text[sc->pos] != '\\' || sc->text[sc->pos + 1] != 'u')
                return scan_fail(sc, "invalid Unicode escape (a lone surrogate)");
            sc->pos += 2;
            long low = scan_hex4(sc);
            if (low < 0) return -1;
            if (low < 0xdc00 || low > 0xdfff) return scan_fail(sc, "invalid Unicode escape (a lone surrogate)");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return scan_fail(sc, "invalid Unicode escape (a lone surrogate)");
        } else if (cp == 0) {
            return scan_fail(sc, "\\u0000 is not allowed");
        }
        key_put(key, key_size, &n, (unsigned long)cp);
    }
    if (key_len) *key_len = n;
    return 0;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* A number by JSON's grammar (its range is judged where it is used). */
static int scan_number(request_scan *sc) {
    if (scan_peek(sc) == '-') sc->pos++;
    if (scan_peek(sc) == '0') sc->pos++;
    else if (is_digit(scan_peek(sc)))
        while (is_digit(scan_peek(sc))) sc->pos++;
    else return scan_fail(sc, "invalid token");
    if (scan_peek(sc) == '.') {
        sc->pos++;
        if (!is_digit(scan_peek(sc))) return scan_fail(sc, "invalid token");
        while (is_digit(scan_peek(sc))) sc->pos++;
    }
    if (scan_peek(sc) == 'e' || scan_peek(sc) == 'E') {
        sc->pos++;
        if (scan_peek(sc) == '+' || scan_peek(sc) == '-') sc->pos++;
        if (!is_digit(scan_peek(sc))) return scan_fail(sc, "invalid token");
        while (is_digit(scan_peek(sc))) sc->pos++;
    }
    return 0;
}

static int scan_scalar(request_scan *sc) {
    int c = scan_peek(sc);
    if (c == '"') return scan_string(sc, NULL, 0, NULL);
    if (c == '-' || is_digit(c)) return scan_number(sc);
    static const char *const literals[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if (sc->len - sc->pos >= n && memcmp(sc->text + sc->pos, literals[i], n) == 0) {
            sc->pos += n;
            return 0;
        }
    }
    return scan_fail(sc, c < 0 ? "premature end of input" : "invalid token");
}

/* An object key and its colon, at sc->pos after any white space. */
static int scan_key(request_scan *sc, char *key, size_t key_size, size_t *key_len) {
    if (scan_peek(sc) != '"') return scan_fail(sc, scan_peek(sc) < 0 ? "premature end of input" : "string expected");
    if (scan_string(sc, key, key_size, key_len)) return -1;
    scan_ws(sc);
    if (scan_peek(sc) != ':') return scan_fail(sc, "':' expected");
    sc->pos++;
    return 0;
}

/* Checks the value at sc->pos (after white space), inside depth open
 * containers; with copy set it goes into the skeleton as it is. */
static int scan_value(request_scan *sc, size_t depth, int copy) {
    unsigned char is_object[JSON_MAX_DEPTH / 8 + 1] = {0}; /* one bit per open container */
    size_t open = 0, start = sc->pos;
    for (;;) {
        /* a value */
        int c = scan_peek(sc);
        int have_value = 1;
        if (c == '{' || c == '[') {
            if (depth + open + 1 > JSON_MAX_DEPTH) return scan_fail(sc, "maximum parsing depth reached");
            if (c == '{') is_object[open / 8] |= (unsigned char)(1u << open % 8);
            else is_object[open / 8] &= (unsigned char)~(1u << open % 8);
            open++;
            sc->pos++;
            scan_ws(sc);
            if (scan_peek(sc) == (c == '{' ? '}' : ']')) {
                sc->pos++;
                open--;
            } else {
                if (c == '{' && scan_key(sc, NULL, 0, NULL)) return -1;
                have_value = 0;
            }
        } else if (scan_scalar(sc)) {
            return -1;
        }
        /* what follows a value: a comma, the closing of containers, or the end */
        while (have_value) {
            if (copy && sc->pos - start > sc->skeleton_max - sc->skeleton_len) {
                sc->over_cap = 1;
                return scan_fail(sc, "too large");
            }
            if (open == 0) return copy ? scan_add(sc, sc->text + start, sc->pos - start) : 0;
            int object = is_object[(open - 1) / 8] >> (open - 1) % 8 & 1;
            scan_ws(sc);
            c = scan_peek(sc);
            if (c == ',') {
                sc->pos++;
                scan_ws(sc);
                if (object && scan_key(sc, NULL, 0, NULL)) return -1;
                have_value = 0;
            } else if (c == (object ? '}' : ']')) {
                sc->pos++;
                open--;
            } else {
                return scan_fail(sc, c < 0 ? "premature end of input" : object ? "',' or '}' expected" : "',' or ']' expected");
            }
        }
        scan_ws(sc);
    }
}

/* One object of "inputs" (index i): its data is remembered, the rest copied. */
static int scan_input(request_scan *sc, size_t i) {
    sc->pos++;
    if (scan_add(sc, "{", 1)) return -1;
    scan_ws(sc);
    if (scan_peek(sc) == '}') {
        sc->pos++;
        return scan_add(sc, "}", 1);
    }
    for (;;) {
        char key[8];
        size_t key_len, key_at = sc->pos;
        if (scan_key(sc, key, sizeof key, &key_len)) return -1;
        if (scan_add(sc, sc->text + key_at, sc->pos - key_at)) return -1; /* the key and its colon, as written */
        scan_ws(sc);
        if (key_len == 4 && memcmp(key, "data", 4) == 0) {
            size_t at = sc->pos;
            if (scan_value(sc, 3, 0) || scan_add(sc, "0", 1)) return -1;
            if (i < BACKEND_MAX_IO) {
                sc->data[i] = (json_span){at, sc->pos - at};
                sc->has_data[i] = 1;
            }
        } else if (scan_value(sc, 3, 1)) {
            return -1;
        }
        scan_ws(sc);
        int c = scan_peek(sc);
        sc->pos++;
        if (c == '}') return scan_add(sc, "}", 1);
        if (c != ',' || scan_add(sc, ",", 1)) {
            sc->pos--;
            return scan_fail(sc, c < 0 ? "premature end of input" : "',' or '}' expected");
        }
        scan_ws(sc);
    }
}

static int scan_inputs(request_scan *sc) {
    sc->pos++;
    if (scan_add(sc, "[", 1)) return -1;
    scan_ws(sc);
    if (scan_peek(sc) == ']') {
        sc->pos++;
        return scan_add(sc, "]", 1);
    }
    for (size_t i = 0;; i++) {
        if (scan_peek(sc) == '{' ? scan_input(sc, i) : scan_value(sc, 2, 1)) return -1;
        scan_ws(sc);
        int c = scan_peek(sc);
        sc->pos++;
        if (c == ']') return scan_add(sc, "]", 1);
        if (c != ',' || scan_add(sc, ",", 1)) {
            sc->pos--;
            return scan_fail(sc, c < 0 ? "premature end of input" : "',' or ']' expected");
        }
        scan_ws(sc);
    }
}

/* The whole request; trailing set: bytes after the JSON value are allowed. */
static int scan_request(request_scan *sc, int trailing) {
    scan_ws(sc);
    int c = scan_peek(sc);
    if (c != '{') {
        if (c != '[') return scan_fail(sc, "'[' or '{' expected");
        if (scan_value(sc, 0, 1)) return -1; /* not a request; jansson says why */
    } else {
        sc->pos++;
        if (scan_add(sc, "{", 1)) return -1;
        scan_ws(sc);
        if (scan_peek(sc) == '}') {
            sc->pos++;
            if (scan_add(sc, "}", 1)) return -1;
        } else {
            for (;;) {
                char key[8];
                size_t key_len, key_at = sc->pos;
                if (scan_key(sc, key, sizeof key, &key_len)) return -1;
                if (scan_add(sc, sc->text + key_at, sc->pos - key_at)) return -1;
                scan_ws(sc);
                if (key_len == 6 && memcmp(key, "inputs", 6) == 0 && scan_peek(sc) == '[') {
                    if (scan_inputs(sc)) return -1;
                } else if (scan_value(sc, 1, 1)) {
                    return -1;
                }
                scan_ws(sc);
                c = scan_peek(sc);
                if (c == '}') {
                    sc->pos++;
                    if (scan_add(sc, "}", 1)) return -1;
                    break;
                }
                if (c != ',') return scan_fail(sc, c < 0 ? "premature end of input" : "',' or '}' expected");
                sc->pos++;
                if (scan_add(sc, ",", 1)) return -1;
                scan_ws(sc);
            }
        }
    }
    scan_ws(sc);
    if (!trailing && sc->pos != sc->len) return scan_fail(sc, "end of file expected");
    return 0;
}

/* Line and column (1-based, in characters) of byte at of text, for messages. */
static void text_position(const char *text, size_t at, int *line, int *column) {
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') ++*line, *column = 1;
        else if (((unsigned char)text[i] & 0xc0) != 0x80) ++*column;
    }
}

/* Scans text and parses its skeleton with jansson (flags as json_loadb's).
 * On success *root is the skeleton's tree (the caller decrefs it). */
static vigil_status scan_and_load(request_scan *sc, const char *text, size_t len, size_t flags, json_t **root,
                                  vigil_error *err) {
    memset(sc, 0, sizeof *sc);
    sc->text = text;
    sc->len = len;
    sc->skeleton_max = len < INFER_MAX_SKELETON ? len : INFER_MAX_SKELETON;
    sc->skeleton = vigil_malloc(sc->skeleton_max + 1);
    if (!sc->skeleton) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory reading the request");
    sc->skeleton[0] = '\0';
    vigil_status st = VIGIL_OK;
    if (scan_request(sc, (flags & JSON_DISABLE_EOF_CHECK) != 0)) {
        int line, column;
        text_position(text, sc->problem_at, &line, &column);
        if (sc->over_cap)
            st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                 "the request's JSON apart from the inputs' \"data\" is larger than %d KiB (line %d "
                                 "column %d)",
                                 INFER_MAX_SKELETON / 1024, line, column);
        else
            st = vigil_error_set(err, VIGIL_ERR_PARSE, "malformed JSON at line %d column %d: %s", line, column,
                                 sc->problem);
    } else {
        json_error_t jerr;
        *root = json_loadb(sc->skeleton, sc->skeleton_len, flags, &jerr);
        if (!*root)
            st = vigil_error_set(err, VIGIL_ERR_PARSE, "malformed JSON: %s", jerr.text); /* its position is the skeleton's */
    }
    vigil_free(sc->skeleton);
    sc->skeleton = NULL;
    return st;
}

json_t *infer_json_skeleton(const char *text, size_t len, size_t flags, vigil_error *err) {
    request_scan sc;
    json_t *root = NULL;
    if (scan_and_load(&sc, text, len, flags, &root, err)) return NULL;
    return root;
}

/* ------------------------------------------------------------ tensor data
 *
 * Reads one input's data (a span the scanner has checked) into its tensor.
 * The data is either one number (a tensor of one element) or lists nested
 * as the shape says: a list at depth j holds either dims[j] lists or, flat,
 * all dims[j] * ... * dims[rank-1] numbers below it; so [[1,2],[3,4]] and
 * [1,2,3,4] both fill a [2,2] tensor, and a list of any other length, a list
 * deeper than the shape or one mixing numbers and lists is refused at once.
 */

typedef struct tensor_fill {
    const char *text; /* the whole body (positions in messages) */
    size_t pos, end;
    const char *name;
    vigil_dtype dtype;
    void *dst;
    size_t count, at; /* elements of the tensor; the next one to store */
    size_t rank;
    const int64_t *dims;
    size_t below[VIGIL_MAX_DIMS + 1]; /* elements under one item at depth j; saturates */
    size_t items[VIGIL_MAX_DIMS + 1]; /* items seen in the open list at depth j */
    int lists[VIGIL_MAX_DIMS + 1];    /* the open list at depth j holds lists (1), numbers (0), unknown yet (-1) */
} tensor_fill;

/* "data[0][3]": where the list open at depth level is (for messages). */
static const char *fill_where(const tensor_fill *f, size_t level, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "data");
    for (size_t j = 0; j < level && n < size; j++) n += (size_t)snprintf(buf + n, size - n, "[%zu]", f->items[j] - 1);
    return buf;
}

static vigil_status fill_number_error(const tensor_fill *f, const char *problem, vigil_error *err) {
    int line, column;
    text_position(f->text, f->pos, &line, &column);
    return vigil_error_set(err, VIGIL_ERR_PARSE, "malformed JSON at line %d column %d: %s", line, column, problem);
}

/* Stores the scalar at f->pos as element f->at, with store_scalar's rules of old: any number for
 * FP32/FP64, true/false or an integer for BOOL, integers in range for the
 * integer types. */
static vigil_status fill_scalar(tensor_fill *f, vigil_error *err) {
    const char *p = f->text + f->pos;
    size_t left = f->end - f->pos, n = 0;
    int is_number = p[0] == '-' || is_digit((unsigned char)p[0]), is_integer = is_number;
    int is_true = left >= 4 && memcmp(p, "true", 4) == 0, is_false = left >= 5 && memcmp(p, "false", 5) == 0;
    double real = 0;
    long long integer = 0;
    if (is_number) {
        char token[NUMBER_MAX_CHARS + 1];
        while (n < left && (is_digit((unsigned char)p[n]) || p[n] == '-' || p[n] == '+' || p[n] == '.' || p[n] == 'e' ||
                            p[n] == 'E')) {
            if (p[n] == '.' || p[n] == 'e' || p[n] == 'E') is_integer = 0;
            n++;
        }
        if (n > NUMBER_MAX_CHARS)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is a number of over %d characters",
                                   f->name, f->at, NUMBER_MAX_CHARS);
        memcpy(token, p, n);
        token[n] = '\0';
        errno = 0;
        if (is_integer) {
            integer = strtoll(token, NULL, 10);
            if (errno == ERANGE) return fill_number_error(f, integer < 0 ? "too big negative integer" : "too big integer", err);
            real = (double)integer;
        } else {
            real = strtod(token, NULL);
            if (errno == ERANGE && (real == HUGE_VAL || real == -HUGE_VAL)) return fill_number_error(f, "real number overflow", err);
        }
    }
    vigil_dtype dt = f->dtype;
    size_t at = f->at;
    if (dt == VIGIL_DTYPE_F32 || dt == VIGIL_DTYPE_F64 || dt == VIGIL_DTYPE_F16) {
        if (!is_number)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is not a number", f->name, at);
        /* JSON has no half: FP16 takes the nearest double rounded once to
         * half (ties to even), the value numpy's float16() gives; beyond
         * half's range, infinity, as there. */
        switch (dt) {
        case VIGIL_DTYPE_F32: ((float *)f->dst)[at] = (float)real; break;
        case VIGIL_DTYPE_F64: ((double *)f->dst)[at] = real; break;
        default: ((uint16_t *)f->dst)[at] = half_from_double(real); break;
        }
    } else if (dt == VIGIL_DTYPE_BOOL) {
        if (!is_true && !is_false && !is_integer)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is not a boolean", f->name, at);
        ((uint8_t *)f->dst)[at] = is_true || (is_integer && integer != 0);
    } else {
        if (!is_integer)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu is not an integer", f->name, at);
        int fits = dt == VIGIL_DTYPE_I64 || (dt == VIGIL_DTYPE_I32 && integer >= INT32_MIN && integer <= INT32_MAX) ||
                   (dt == VIGIL_DTYPE_U8 && integer >= 0 && integer <= 255) ||
                   (dt == VIGIL_DTYPE_I8 && integer >= -128 && integer <= 127);
        if (!fits)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': element %zu (%lld) is out of range for %s",
                                   f->name, at, integer, infer_datatype_name(dt));
        switch (dt) {
        case VIGIL_DTYPE_I64: ((int64_t *)f->dst)[at] = integer; break;
        case VIGIL_DTYPE_I32: ((int32_t *)f->dst)[at] = (int32_t)integer; break;
        case VIGIL_DTYPE_U8: ((uint8_t *)f->dst)[at] = (uint8_t)integer; break;
        default: ((int8_t *)f->dst)[at] = (int8_t)integer; break;
        }
    }
    f->pos += is_number ? n : is_true ? 4 : 5;
    f->at++;
    return VIGIL_OK;
}

static void fill_ws(tensor_fill *f) {
    while (f->pos < f->end && (f->text[f->pos] == ' ' || f->text[f->pos] == '\t' || f->text[f->pos] == '\n' ||
                               f->text[f->pos] == '\r'))
        f->pos++;
}

/* The list open at depth level has ended: it must have held what the shape gives it. */
static vigil_status fill_close(tensor_fill *f, size_t level, vigil_error *err) {
    size_t want = f->lists[level] == 1 ? (size_t)f->dims[level] : f->below[level];
    if (f->items[level] == want) return VIGIL_OK;
    if (level == 0 && f->lists[0] != 1)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': %zu elements for a shape of %zu", f->name,
                               f->items[0], f->count);
    char where[128];
    return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': %s holds %zu %s where the shape needs %zu",
                           f->name, fill_where(f, level, where, sizeof where), f->items[level],
                           f->lists[level] == 1 ? "lists" : "numbers", want);
}

static vigil_status fill_tensor(const char *text, json_span span, const vigil_tensor_info *info, const vigil_tensor *t,
                                size_t count, vigil_error *err) {
    tensor_fill f = {.text = text, .pos = span.at, .end = span.at + span.len, .name = info->name,
                     .dtype = info->dtype, .dst = t->data, .count = count, .rank = (size_t)t->ndim, .dims = t->dims};
    f.below[f.rank] = 1;
    for (size_t j = f.rank; j-- > 0;) {
        size_t d = (size_t)t->dims[j];
        f.below[j] = d && f.below[j + 1] > SIZE_MAX / d ? SIZE_MAX : f.below[j + 1] * d;
    }
    fill_ws(&f);
    if (f.pos >= f.end) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': no \"data\"", f.name);
    if (f.text[f.pos] != '[') { /* one bare value */
        if (count == 0)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': more data than the shape holds (0)", f.name);
        vigil_status st = fill_scalar(&f, err);
        if (st) return st;
        if (count != 1)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': 1 elements for a shape of %zu", f.name,
                                   count);
        return VIGIL_OK;
    }
    char where[128];
    size_t level = 0;
    f.items[0] = 0;
    f.lists[0] = -1;
    f.pos++;
    for (;;) {
        fill_ws(&f);
        char c = f.pos < f.end ? f.text[f.pos] : ']';
        if (c == ',') {
            f.pos++;
            continue;
        }
        if (c == ']') {
            vigil_status st = fill_close(&f, level, err);
            if (st) return st;
            f.pos++;
            if (level-- == 0) return VIGIL_OK;
            continue;
        }
        int is_list = c == '[';
        if (f.lists[level] == -1) f.lists[level] = is_list;
        if (f.lists[level] != is_list)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': %s mixes numbers and lists", f.name,
                                   fill_where(&f, level, where, sizeof where));
        /* lists at depth level + 1 exist only above the shape's last dimension */
        size_t room = is_list ? (level + 1 < f.rank ? (size_t)f.dims[level] : 0) : f.below[level];
        if (f.items[level] == room) {
            if (is_list && level + 1 >= f.rank)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                       "input '%s': %s holds lists nested deeper than the shape's %zu dimensions",
                                       f.name, fill_where(&f, level, where, sizeof where), f.rank);
            if (level == 0 && !is_list)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': more data than the shape holds (%zu)",
                                       f.name, count);
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': %s holds more than the %zu %s the shape gives it",
                                   f.name, fill_where(&f, level, where, sizeof where), room, is_list ? "lists" : "numbers");
        }
        f.items[level]++;
        if (is_list) {
            level++;
            f.items[level] = 0;
            f.lists[level] = -1;
            f.pos++;
        } else {
            if (f.at >= f.count) /* cannot happen when every list is as long as the shape says */
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': more data than the shape holds (%zu)",
                                       f.name, count);
            vigil_status st = fill_scalar(&f, err);
            if (st) return st;
        }
    }
}

/* ------------------------------------------------------------ the request */

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

static vigil_status parse_input(const served_model *m, const json_t *in, size_t input, const request_scan *sc,
                                int64_t max_elements, arena *a, binary_cursor *bin, sched_job *job, int *seen,
                                vigil_error *err) {
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
    job_raw *raw = job_raw_of(job);
    vigil_tensor *t = &raw->inputs[index];
    t->dtype = info->dtype;
    size_t count = 0;
    int64_t dims[VIGIL_MAX_DIMS];
    size_t rank = 0;
    vigil_status st = json_shape(info, json_object_get(in, "shape"), dims, &rank, err);
    if (!st) st = infer_check_shape(m, info, dims, rank, max_elements, job, raw->n_inputs == 0, t, &count, err);
    if (st) return st;
    size_t bytes = count * vigil_dtype_size(info->dtype);
    const json_t *binary_size = json_object_get(json_object_get(in, "parameters"), "binary_data_size");
    if (binary_size) {
        int in_place = bin->left >= bytes && bytes && (uintptr_t)bin->at % vigil_dtype_size(info->dtype) == 0;
        t->data = in_place ? (void *)(uintptr_t)bin->at : arena_alloc(a, bytes ? bytes : 1, 64);
        if (!t->data) return vigil_error_set(err, VIGIL_ERR_LIMIT, "input '%s': request memory limit reached", name);
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
        /* The skeleton holds 0 where the scanner found this input's data. */
        if (!json_object_get(in, "data") || input >= BACKEND_MAX_IO || !sc->has_data[input])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "input '%s': no \"data\"", name);
        json_span span = sc->data[input];
        /* Every element takes two bytes of text at least ("0,"), so the text
         * bounds the tensor: a short body cannot make a large buffer. */
        if (count > span.len / 2 + 1)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "input '%s': %zu bytes of data cannot hold the %zu elements of its shape", name,
                                   span.len, count);
        t->data = arena_alloc(a, bytes ? bytes : 1, 64);
        if (!t->data) return vigil_error_set(err, VIGIL_ERR_LIMIT, "input '%s': request memory limit reached", name);
        st = fill_tensor(sc->text, span, info, t, count, err);
        if (st) return st;
    }
    seen[index] = 1;
    raw->n_inputs++;
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
    request_scan sc;
    json_t *root = NULL;
    vigil_status st = scan_and_load(&sc, body, json_len, JSON_REJECT_DUPLICATES, &root, err);
    if (st) return st;
    const json_t *inputs = json_object_get(root, "inputs");
    const json_t *id = json_object_get(root, "id");
    job_raw *raw = NULL;
    if (!json_is_object(root) || !json_is_array(inputs)) {
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "the request must be an object with an \"inputs\" list");
    } else if (id && !json_is_string(id)) {
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "\"id\" must be a string");
    } else if (!(raw = job_raw_prepare(job, a))) {
        st = vigil_error_set(err, VIGIL_ERR_LIMIT, "request memory limit reached");
    } else {
        if (id) {
            snprintf(req->id, sizeof req->id, "%s", json_string_value(id));
            req->has_id = 1;
        }
        raw->n_inputs = 0;
        int seen[BACKEND_MAX_IO] = {0};
        binary_cursor bin = {body + json_len, body_len - json_len};
        size_t i;
        json_t *in;
        json_array_foreach(inputs, i, in) {
            if (!json_is_object(in)) {
                st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "inputs[%zu] is not an object", i);
                break;
            }
            if ((st = parse_input(m, in, i, &sc, max_elements, a, &bin, job, seen, err))) break;
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
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        size_t n = *p < 0x80 ? 1 : utf8_sequence(p, (size_t)(end - p));
        if (*p == '"' || *p == '\\') textbuf_printf(out, "\\%c", *p);
        else if (*p < 0x20) textbuf_printf(out, "\\u%04x", *p);
        else if (n) textbuf_append(out, p, n);
        else textbuf_append(out, "\\ufffd", 6); /* a byte that is no UTF-8: the JSON stays valid */
        p += n ? n : 1;
    }
    textbuf_append(out, "\"", 1);
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
        /* the half widened exactly: 17 digits give back the very value in any double parser */
        case VIGIL_DTYPE_F16: append_number(out, half_to_float(((const uint16_t *)t->data)[i]), 17); break;
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
    const job_raw *raw = job_raw_of(job);
    size_t order[BACKEND_MAX_IO], n = req->n_selected;
    if (n) memcpy(order, req->selected, n * sizeof order[0]);
    else
        for (n = 0; n < raw->n_outputs; n++) order[n] = n;
    textbuf_printf(out, "{\"model_name\":");
    json_append_string(out, m->name);
    textbuf_printf(out, ",\"model_version\":\"%lld\"", (long long)m->version);
    if (req->has_id) {
        textbuf_printf(out, ",\"id\":");
        json_append_string(out, req->id);
    }
    textbuf_printf(out, ",\"outputs\":[");
    for (size_t k = 0; k < n; k++) {
        const vigil_tensor *t = &raw->outputs[order[k]];
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
        const vigil_tensor *t = &raw->outputs[order[k]];
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
    const job_raw *raw = job_raw_of(job);
    uint64_t n = raw->n_outputs;
    textbuf_append(out, &n, sizeof n);
    for (size_t i = 0; i < raw->n_outputs; i++) {
        const vigil_tensor *t = &raw->outputs[i];
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
    job_raw *raw = job_raw_of(job);
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
        vigil_tensor *t = &raw->outputs[i];
        t->dtype = (vigil_dtype)p.dtype;
        t->ndim = p.ndim;
        memcpy(t->dims, p.dims, sizeof t->dims);
        t->data = at;
        at += p.bytes + (8 - p.bytes % 8) % 8;
    }
    raw->n_outputs = n;
    job->status = VIGIL_OK;
    return 1;
}
