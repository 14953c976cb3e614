/*
 * spec.c - a stream's configuration from JSON and back, and the config
 * file's `streams:` list.
 *
 * The table-driven settings of core/config.c hold scalars only, and a
 * stream is a record in a list, so the list has this loader of its own:
 * config.c skips the `streams` key, and this reads the same file again,
 * turns each entry into the JSON object the REST API takes (YAML's plain
 * scalars become numbers, booleans and null where they read as such) and
 * checks it with the one parser below.  A field means the same thing, with
 * the same message when it is wrong, in the file and over HTTP.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/alloc.h"
#include "stream/spec.h"

int stream_url_is_file(const char *url) {
    return strncmp(url, "file:", 5) == 0 || !strstr(url, "://");
}

static int name_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= STREAM_NAME_MAX) return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* A boolean field: absent keeps *out. */
static vigil_status read_bool(const json_t *obj, const char *key, int *out, vigil_error *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v) return VIGIL_OK;
    if (!json_is_boolean(v)) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be true or false", key);
    *out = json_is_true(v);
    return VIGIL_OK;
}

/* A required or optional string into out[size]. */
static vigil_status read_string(const json_t *obj, const char *key, int required, char *out, size_t size,
                                vigil_error *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s is required", key);
        return VIGIL_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be a non-empty string", key);
    if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s must be shorter than %zu bytes, without NUL", key,
                               size);
    snprintf(out, size, "%s", json_string_value(v));
    return VIGIL_OK;
}

static vigil_status read_classes(const json_t *v, stream_spec *s, vigil_error *err) {
    if (!v || json_is_null(v)) return VIGIL_OK;
    if (!json_is_array(v) || json_array_size(v) > STREAM_CLASSES_MAX)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "classes must be a list of at most %d class names or ids", STREAM_CLASSES_MAX);
    size_t i;
    const json_t *c;
    json_array_foreach(v, i, c) {
        char *slot = s->classes[s->n_classes];
        if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) < 100000) {
            snprintf(slot, STREAM_CLASS_NAME_MAX, "%lld", (long long)json_integer_value(c));
        } else if (json_is_string(c) && json_string_length(c) > 0 && json_string_length(c) < STREAM_CLASS_NAME_MAX &&
                   strlen(json_string_value(c)) == json_string_length(c)) {
            snprintf(slot, STREAM_CLASS_NAME_MAX, "%s", json_string_value(c));
        } else {
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "classes[%zu] must be a class id (integer >= 0) or a class name", i);
        }
        s->n_classes++;
    }
    return VIGIL_OK;
}

static vigil_status read_zone(const json_t *v, stream_spec *s, vigil_error *err) {
    if (!v || json_is_null(v)) return VIGIL_OK;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_array(v) || n == 1 || n == 2 || n > STREAM_ZONE_POINTS_MAX)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "zone must be a list of 3 to %d [x, y] points in source pixels (or empty: the whole "
                               "picture)",
                               STREAM_ZONE_POINTS_MAX);
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(v, i);
        const json_t *x = json_array_get(p, 0), *y = json_array_get(p, 1);
        /* source pixels: a bound well past any picture keeps every value a finite float */
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(x) || !json_is_number(y) ||
            !(fabs(json_number_value(x)) <= STREAM_ZONE_COORD_MAX) || !(fabs(json_number_value(y)) <= STREAM_ZONE_COORD_MAX))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "zone[%zu] must be a point [x, y] in pixels, each within +-%d", i,
                                   STREAM_ZONE_COORD_MAX);
        s->zone[2 * i] = (float)json_number_value(x);
        s->zone[2 * i + 1] = (float)json_number_value(y);
    }
    s->n_zone = n;
    return VIGIL_OK;
}

static const char *const spec_fields[] = {"name",    "url",            "rtsp_transport", "model",    "detect_fps",
                                          "classes", "zone",           "conf_threshold", "enabled",  "realtime",
                                          "loop",    NULL};
/* A stream's JSON beyond its spec: ignored on input. */
static const char *const status_fields[] = {"state", "error", "source", "stats", "tracks", "last_event", NULL};

static int listed(const char *const *list, const char *key) {
    for (; *list; list++)
        if (strcmp(*list, key) == 0) return 1;
    return 0;
}

vigil_status stream_spec_from_json(const json_t *obj, stream_spec *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    out->detect_fps = 5;
    out->conf_threshold = -1;
    out->enabled = 1;
    out->realtime = -1;
    out->loop = -1;
    if (!json_is_object(obj))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "a stream is a JSON object (name, url, model, ...)");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (!listed(spec_fields, key) && !listed(status_fields, key))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "unknown field '%.64s' (docs/STREAMS.md)", key);
    }
    vigil_status st = read_string(obj, "name", 1, out->name, sizeof out->name, err);
    if (!st && !name_valid(out->name))
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "name must be 1-63 of [A-Za-z0-9._-]");
    if (!st) st = read_string(obj, "url", 1, out->url, sizeof out->url, err);
    if (!st) st = read_string(obj, "model", 1, out->model, sizeof out->model, err);
    if (!st) st = read_string(obj, "rtsp_transport", 0, out->rtsp_transport, sizeof out->rtsp_transport, err);
    if (!st && out->rtsp_transport[0] && strcmp(out->rtsp_transport, "tcp") != 0 &&
        strcmp(out->rtsp_transport, "udp") != 0)
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "rtsp_transport must be \"tcp\", \"udp\" or null");
    if (st) return st;
    v = json_object_get(obj, "detect_fps");
    if (v) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 240))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "detect_fps must be a number in [0, 240] (0: every frame)");
        out->detect_fps = json_number_value(v);
    }
    v = json_object_get(obj, "conf_threshold");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 1))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "conf_threshold must be in [0, 1] or null");
        out->conf_threshold = json_number_value(v);
    }
    if ((st = read_classes(json_object_get(obj, "classes"), out, err))) return st;
    if ((st = read_zone(json_object_get(obj, "zone"), out, err))) return st;
    if ((st = read_bool(obj, "enabled", &out->enabled, err))) return st;
    if ((st = read_bool(obj, "realtime", &out->realtime, err))) return st;
    if ((st = read_bool(obj, "loop", &out->loop, err))) return st;
    if (out->realtime < 0) out->realtime = stream_url_is_file(out->url);
    if (out->loop < 0) out->loop = !stream_url_is_file(out->url); /* a camera that hangs up is called again */
    return VIGIL_OK;
}

void stream_spec_to_json(const stream_spec *s, json_t *obj) {
    json_t *classes = json_array(), *zone = json_array();
    for (size_t i = 0; i < s->n_classes; i++)
        json_array_append_new(classes, json_string(s->classes[i]));
    for (size_t i = 0; i < s->n_zone; i++)
        json_array_append_new(zone, json_pack("[f,f]", (double)s->zone[2 * i], (double)s->zone[2 * i + 1]));
    json_object_set_new(obj, "name", json_string(s->name));
    json_object_set_new(obj, "url", json_string(s->url));
    json_object_set_new(obj, "rtsp_transport", s->rtsp_transport[0] ? json_string(s->rtsp_transport) : json_null());
    json_object_set_new(obj, "model", json_string(s->model));
    json_object_set_new(obj, "detect_fps", json_real(s->detect_fps));
    json_object_set_new(obj, "classes", classes);
    json_object_set_new(obj, "zone", zone);
    json_object_set_new(obj, "conf_threshold", s->conf_threshold < 0 ? json_null() : json_real(s->conf_threshold));
    json_object_set_new(obj, "enabled", json_boolean(s->enabled));
    json_object_set_new(obj, "realtime", json_boolean(s->realtime));
    json_object_set_new(obj, "loop", json_boolean(s->loop));
}

/* ------------------------------------------------------------ the file */

/* A plain YAML scalar as JSON: null, booleans and numbers as YAML 1.2's
 * core schema reads them; anything quoted, and everything else, a string. */
static json_t *yaml_scalar_json(const yaml_event_t *ev) {
    const char *text = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return json_string(text);
    if (!*text || strcmp(text, "~") == 0 || strcmp(text, "null") == 0) return json_null();
    if (strcmp(text, "true") == 0) return json_true();
    if (strcmp(text, "false") == 0) return json_false();
    char *end;
    errno = 0;
    long long i = strtoll(text, &end, 10);
    if (!errno && !*end) return json_integer(i);
    double d = strtod(text, &end);
    if (!*end && isfinite(d)) return json_real(d);
    return json_string(text);
}

#define YAML_NEST_MAX 16

/* Reads the node whose first event is *ev (taken over) into JSON; NULL
 * with err set on a parse error or an alias. */
static json_t *yaml_node(yaml_parser_t *p, yaml_event_t *ev, int depth, const char *path, vigil_error *err) {
    json_t *out = NULL;
    unsigned long line = (unsigned long)ev->start_mark.line + 1;
    if (depth > YAML_NEST_MAX) {
        vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: nesting too deep", path, line);
    } else if (ev->type == YAML_SCALAR_EVENT) {
        out = yaml_scalar_json(ev);
    } else if (ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT) {
        int mapping = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_type_t end = mapping ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        out = mapping ? json_object() : json_array();
        char key[256] = "";
        int want_key = 1;
        for (;;) {
            yaml_event_t child;
            if (!yaml_parser_parse(p, &child)) {
                vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: %s", path, (unsigned long)p->problem_mark.line + 1,
                                p->problem ? p->problem : "invalid YAML");
                json_decref(out);
                out = NULL;
                break;
            }
            if (child.type == end) {
                yaml_event_delete(&child);
                break;
            }
            if (mapping && want_key) {
                if (child.type != YAML_SCALAR_EVENT) {
                    vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: a key must be a scalar", path,
                                    (unsigned long)child.start_mark.line + 1);
                    yaml_event_delete(&child);
                    json_decref(out);
                    out = NULL;
                    break;
                }
                snprintf(key, sizeof key, "%s", (const char *)child.data.scalar.value);
                yaml_event_delete(&child);
                want_key = 0;
                continue;
            }
            json_t *value = yaml_node(p, &child, depth + 1, path, err);
            if (!value) {
                json_decref(out);
                out = NULL;
                break;
            }
            if (mapping) json_object_set_new(out, key, value);
            else json_array_append_new(out, value);
            want_key = 1;
        }
    } else {
        vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s:%lu: YAML aliases are not supported", path, line);
    }
    yaml_event_delete(ev);
    return out;
}

/* The whole document as JSON (NULL for an empty one, with err clear). */
static json_t *yaml_document(const char *text, size_t len, const char *path, vigil_error *err) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "%s: yaml init", path);
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    json_t *doc = NULL;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: %s", path, (unsigned long)p.problem_mark.line + 1,
                            p.problem ? p.problem : "invalid YAML");
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_SCALAR_EVENT || type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT ||
            type == YAML_ALIAS_EVENT) {
            doc = yaml_node(&p, &ev, 0, path, err);
            break; /* the first document is the config (config.c reads the same) */
        }
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&p);
    return doc;
}

vigil_status stream_specs_load_file(const char *path, stream_spec **specs, size_t *n, vigil_error *err) {
    *specs = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "config %s: %s", path, strerror(errno));
    char *text = vigil_malloc((1 << 20) + 1);
    size_t len = text ? fread(text, 1, 1 << 20, f) : 0;
    fclose(f);
    if (!text) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "config %s: out of memory", path);
    vigil_status st = stream_specs_load_string(text, len, path, specs, n, err);
    vigil_free(text);
    return st;
}

vigil_status stream_specs_load_string(const char *text, size_t len, const char *path, stream_spec **specs, size_t *n,
                                      vigil_error *err) {
    *specs = NULL;
    *n = 0;
    vigil_error perr = {0};
    json_t *doc = yaml_document(text, len, path, &perr);
    if (perr.status) {
        *err = perr;
        return perr.status;
    }
    const json_t *list = json_object_get(doc, "streams");
    vigil_status st = VIGIL_OK;
    if (list && !json_is_null(list)) {
        size_t count = json_is_array(list) ? json_array_size(list) : 0;
        if (!json_is_array(list)) {
            st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "config %s: streams must be a list", path);
        } else if (count) {
            *specs = vigil_calloc(count, sizeof **specs);
            if (!*specs) st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "config %s: out of memory", path);
        }
        for (size_t i = 0; !st && i < count; i++) {
            vigil_error why = {0};
            if (stream_spec_from_json(json_array_get(list, i), &(*specs)[i], &why)) {
                st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "config %s: streams[%zu]: %s", path, i,
                                     why.message);
                break;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp((*specs)[j].name, (*specs)[i].name) == 0)
                    st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "config %s: streams[%zu]: the name %s is taken",
                                         path, i, (*specs)[i].name);
            *n = i + 1;
        }
        if (st) {
            vigil_free(*specs);
            *specs = NULL;
            *n = 0;
        }
    }
    json_decref(doc);
    return st;
}
