/*
 * webui.c - maps request paths onto the embedded web/ files (see webui.h).
 *
 * The table is small (a handful of files), so a linear scan is simplest.
 * Only exact names in the table are served: "..", "//" or an encoded slash
 * can never reach the file system because there is none behind it.
 */
#include "webui/webui.h"

#include <string.h>

#define WEBUI_PREFIX "/ui/"
#define WEBUI_INDEX "index.html"

static const webui_file *webui_lookup(const char *rel) {
    for (size_t i = 0; i < webui_file_count; i++)
        if (strcmp(webui_files[i].path, rel) == 0) return &webui_files[i];
    return NULL;
}

const webui_file *webui_find(const char *url_path) {
    if (!url_path) return NULL;
    if (strcmp(url_path, "/") == 0 || strcmp(url_path, "/ui") == 0 || strcmp(url_path, WEBUI_PREFIX) == 0)
        return webui_lookup(WEBUI_INDEX);
    size_t n = strlen(WEBUI_PREFIX);
    if (strncmp(url_path, WEBUI_PREFIX, n) != 0) return NULL;
    return webui_lookup(url_path + n);
}
