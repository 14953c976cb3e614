/*
 * spec.h - what a stream is configured with (docs/STREAMS.md,
 * "Configuration"): one struct, read from the JSON of POST/PUT
 * /api/v1/streams and from the config file's `streams:` list (converted to
 * the same JSON first, so both take exactly the same fields and give the
 * same messages), and written back as the spec part of a stream's JSON.
 */
#ifndef VIGIL_STREAM_SPEC_H
#define VIGIL_STREAM_SPEC_H

#include <jansson.h>
#include <stddef.h>

#include "vigil/status.h"

#define STREAM_NAME_MAX 64
#define STREAM_URL_MAX 1024
#define STREAM_MODEL_MAX 128
#define STREAM_CLASSES_MAX 32
#define STREAM_CLASS_NAME_MAX 64
#define STREAM_ZONE_POINTS_MAX 64
#define STREAM_ZONE_COORD_MAX 1000000

typedef struct stream_spec {
    char name[STREAM_NAME_MAX];      /* [A-Za-z0-9._-], 1..63: the topic and URL part */
    char url[STREAM_URL_MAX];        /* file path, rtsp://, http(s):// */
    char rtsp_transport[8];          /* "", "tcp" or "udp" */
    char model[STREAM_MODEL_MAX];
    double detect_fps;               /* frames per second of the stream's time; 0 = every frame (default 5) */
    char classes[STREAM_CLASSES_MAX][STREAM_CLASS_NAME_MAX]; /* ids ("0") or names ("bus"); none = all */
    size_t n_classes;
    float zone[2 * STREAM_ZONE_POINTS_MAX]; /* (x, y) pairs in source pixels; none = the whole picture */
    size_t n_zone;
    double conf_threshold;           /* < 0: the model's own (config.yaml, else 0.25) */
    int enabled;                     /* default 1 */
    int realtime;                    /* pts pace; default 1 for files, 0 for network URLs */
    int loop;                        /* reopen at the end: default 0 for files, 1 for network URLs */
} stream_spec;

/* Fills *out from a JSON object.  Unknown fields are refused; the
 * read-only fields of a stream's JSON (state, stats, ...) are ignored, so a
 * client may PUT back what it GOT.  VIGIL_ERR_INVALID_ARGUMENT with a
 * message naming the field. */
vigil_status stream_spec_from_json(const json_t *obj, stream_spec *out, vigil_error *err);

/* Adds the spec's fields to obj. */
void stream_spec_to_json(const stream_spec *spec, json_t *obj);

/* Whether url names a file (no "scheme://", or file://). */
int stream_url_is_file(const char *url);

/* The `streams:` list of a YAML config file (path), each entry checked as
 * stream_spec_from_json does.  OUT: *specs (vigil_malloc'd, caller frees)
 * and *n; *specs NULL and *n 0 when the file has no list.  Messages name
 * the file and the entry. */
vigil_status stream_specs_load_file(const char *path, stream_spec **specs, size_t *n, vigil_error *err);
/* The same from YAML text held in memory; path names it in messages. */
vigil_status stream_specs_load_string(const char *text, size_t len, const char *path, stream_spec **specs, size_t *n,
                                      vigil_error *err);

#endif
