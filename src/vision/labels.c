/*
 * labels.c - class names, from a model's metadata or a labels file.
 *
 * Ultralytics writes `names` as a Python dict literal with single-quoted
 * strings ("{0: 'person', 1: 'bicycle'}"); other exporters write a list
 * (['a', 'b'] or ["a", "b"]); labels files have one name per line.  The
 * parser accepts all three and refuses anything else with the position of
 * the problem.  Ids may be sparse: missing ones have no name.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "vigil/vision.h"

#define LABELS_MAX_CLASSES 100000

struct vigil_labels {
    char **names; /* [count], NULL for ids never named */
    size_t count;
};

void vigil_labels_free(vigil_labels *labels) {
    if (!labels) return;
    for (size_t i = 0; i < labels->count; i++)
        vigil_free(labels->names[i]);
    vigil_free(labels->names);
    vigil_free(labels);
}

size_t vigil_labels_count(const vigil_labels *labels) {
    return labels ? labels->count : 0;
}

const char *vigil_labels_name(const vigil_labels *labels, int id) {
    if (!labels || id < 0 || (size_t)id >= labels->count) return NULL;
    return labels->names[id];
}

int vigil_labels_find(const vigil_labels *labels, const char *name) {
    for (size_t i = 0; labels && i < labels->count; i++)
        if (labels->names[i] && strcmp(labels->names[i], name) == 0) return (int)i;
    return -1;
}

/* Sets name id, growing the table; takes ownership of name. */
static vigil_status labels_set(vigil_labels *l, long id, char *name, vigil_error *err) {
    if (id < 0 || id >= LABELS_MAX_CLASSES) {
        vigil_free(name);
        return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: class id %ld out of range", id);
    }
    if ((size_t)id >= l->count) {
        char **grown = vigil_realloc(l->names, sizeof(char *) * ((size_t)id + 1));
        if (!grown) {
            vigil_free(name);
            return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "labels: out of memory");
        }
        for (size_t i = l->count; i <= (size_t)id; i++)
            grown[i] = NULL;
        l->names = grown;
        l->count = (size_t)id + 1;
    }
    vigil_free(l->names[id]);
    l->names[id] = name;
    return VIGIL_OK;
}

static const char *labels_skip_space(const char *p) {
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* Parses a quoted string at *pp (quote ' or "), handling backslash escapes. */
static vigil_status labels_quoted(const char **pp, char **out, const char *text, vigil_error *err) {
    const char *p = *pp;
    char quote = *p++;
    size_t cap = strlen(p) + 1, n = 0;
    char *s = vigil_malloc(cap);
    if (!s) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "labels: out of memory");
    while (*p && *p != quote) {
        if (*p == '\\' && p[1]) p++;
        s[n++] = *p++;
    }
    if (*p != quote) {
        vigil_free(s);
        return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: unterminated string at offset %ld", (long)(*pp - text));
    }
    s[n] = 0;
    *pp = p + 1;
    *out = s;
    return VIGIL_OK;
}

/* "{0: 'a', 1: 'b'}" or "['a', 'b']". */
static vigil_status labels_parse_literal(const char *text, vigil_labels *l, vigil_error *err) {
    const char *p = labels_skip_space(text);
    char close = *p == '{' ? '}' : ']';
    int is_dict = *p == '{';
    p = labels_skip_space(p + 1);
    long next_id = 0;
    while (*p && *p != close) {
        long id = next_id;
        if (is_dict) {
            char *end;
            errno = 0;
            id = strtol(p, &end, 10);
            if (end == p || errno)
                return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: expected a class id at offset %ld",
                                       (long)(p - text));
            p = labels_skip_space(end);
            if (*p != ':')
                return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: expected ':' at offset %ld", (long)(p - text));
            p = labels_skip_space(p + 1);
        }
        if (*p != '\'' && *p != '"')
            return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: expected a quoted name at offset %ld",
                                   (long)(p - text));
        char *name = NULL;
        vigil_status st = labels_quoted(&p, &name, text, err);
        if (!st) st = labels_set(l, id, name, err);
        if (st) return st;
        next_id = id + 1;
        p = labels_skip_space(p);
        if (*p == ',')
            p = labels_skip_space(p + 1);
        else if (*p != close)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: expected ',' or '%c' at offset %ld", close,
                                   (long)(p - text));
    }
    if (*p != close) return vigil_error_set(err, VIGIL_ERR_PARSE, "labels: missing closing '%c'", close);
    return VIGIL_OK;
}

/* One name per line; blank lines are skipped, trailing spaces trimmed. */
static vigil_status labels_parse_lines(const char *text, vigil_labels *l, vigil_error *err) {
    long id = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = labels_skip_space(p);
        size_t trimmed = len - (size_t)(s - p);
        if (s > p + len) trimmed = 0;
        while (trimmed > 0 && isspace((unsigned char)s[trimmed - 1]))
            trimmed--;
        if (trimmed > 0) {
            char *name = vigil_strndup(s, trimmed);
            if (!name) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "labels: out of memory");
            vigil_status st = labels_set(l, id++, name, err);
            if (st) return st;
        }
        p += len + (end ? 1 : 0);
    }
    return VIGIL_OK;
}

vigil_status vigil_labels_parse(const char *text, vigil_labels **out, vigil_error *err) {
    *out = NULL;
    if (!text) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "labels: no text");
    vigil_labels *l = vigil_calloc(1, sizeof *l);
    if (!l) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "labels: out of memory");
    const char *p = labels_skip_space(text);
    vigil_status st = (*p == '{' || *p == '[') ? labels_parse_literal(p, l, err) : labels_parse_lines(p, l, err);
    if (!st && l->count == 0) st = vigil_error_set(err, VIGIL_ERR_PARSE, "labels: no class names found");
    if (st) {
        vigil_labels_free(l);
        return st;
    }
    *out = l;
    return VIGIL_OK;
}

vigil_status vigil_labels_load(const char *path, vigil_labels **out, vigil_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "cannot open labels file %s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    vigil_status st = VIGIL_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) {
                st = vigil_error_set(err, VIGIL_ERR_LIMIT, "labels file %s is too large", path);
                break;
            }
            char *grown = vigil_realloc(text, cap);
            if (!grown) {
                st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "labels: out of memory");
                break;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    if (!st && ferror(f)) st = vigil_error_set(err, VIGIL_ERR_IO, "cannot read labels file %s", path);
    fclose(f);
    if (!st) {
        text[len] = 0;
        st = vigil_labels_parse(text, out, err);
        if (st) vigil_error_prefix(err, "%s", path);
    }
    vigil_free(text);
    return st;
}
