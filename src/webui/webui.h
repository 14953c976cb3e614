/*
 * webui.h - the browser UI (web/) compiled into the binary.
 *
 * Every file under web/ is embedded at build time (embed.cmake) so that the
 * daemon serves its UI with no files on disk.  The HTTP router asks
 * webui_find for a request path: "/" (and "/ui", "/ui/") is index.html,
 * "/ui/<file>" is web/<file>; any other path is not the UI's.  The bytes are
 * static and live as long as the program.
 */
#ifndef VIGIL_WEBUI_H
#define VIGIL_WEBUI_H

#include <stddef.h>

typedef struct webui_file {
    const char *path;                /* relative to web/, e.g. "js/app.js" */
    const unsigned char *data;       /* size bytes, followed by a 0 byte */
    size_t size;
    const char *content_type;        /* e.g. "text/javascript; charset=utf-8" */
    const char *etag;                /* quoted strong validator, e.g. "\"3f2a...\"" */
} webui_file;

/* The embedded table (generated). */
extern const webui_file webui_files[];
extern const size_t webui_file_count;

/* The file for a URL path (without query), or NULL when the path is not the
 * UI's or names no embedded file. */
const webui_file *webui_find(const char *url_path);

#endif
