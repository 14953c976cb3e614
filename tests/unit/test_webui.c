/*
 * test_webui.c - the embedded browser UI (src/webui): every file under web/
 * is in the binary byte for byte, with the right content type and an ETag,
 * and webui_find maps only "/", "/ui", "/ui/" and "/ui/<file>" onto it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"
#include "webui/webui.h"

static const char *source_dir(void) {
    const char *dir = getenv("VIGIL_SOURCE_DIR");
    return dir && *dir ? dir : VIGIL_SOURCE_DIR;
}

/* Reads web/<rel> from the source tree; NULL when absent. */
static unsigned char *read_web_file(const char *rel, size_t *size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/web/%s", source_dir(), rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static void test_embedded_bytes_equal_sources(void) {
    CHECK(webui_file_count >= 3);
    for (size_t i = 0; i < webui_file_count; i++) {
        const webui_file *f = &webui_files[i];
        size_t size = 0;
        unsigned char *disk = read_web_file(f->path, &size);
        CHECK(disk != NULL);
        if (!disk) continue;
        CHECK_EQ_INT(f->size, size);
        CHECK(f->size == size && memcmp(f->data, disk, size) == 0);
        CHECK_EQ_INT(f->data[f->size], 0);
        free(disk);
    }
}

static void test_content_types_and_etags(void) {
    const webui_file *html = webui_find("/"), *js = webui_find("/ui/js/app.js"), *css = webui_find("/ui/style.css");
    CHECK(html && js && css);
    if (!html || !js || !css) return;
    CHECK_STR(html->path, "index.html");
    CHECK_STR(html->content_type, "text/html; charset=utf-8");
    CHECK_STR(js->content_type, "text/javascript; charset=utf-8");
    CHECK_STR(css->content_type, "text/css; charset=utf-8");
    for (size_t i = 0; i < webui_file_count; i++) {
        const char *etag = webui_files[i].etag;
        CHECK_EQ_INT(strlen(etag), 18);
        CHECK(etag[0] == '"' && etag[17] == '"');
        for (size_t j = 0; j < i; j++) { /* different bytes, different validator */
            const webui_file *a = &webui_files[i], *b = &webui_files[j];
            if (a->size != b->size || memcmp(a->data, b->data, a->size) != 0) CHECK(strcmp(a->etag, b->etag) != 0);
        }
    }
}

static void test_find_maps_only_ui_paths(void) {
    const webui_file *index = webui_find("/");
    CHECK(index != NULL);
    CHECK(webui_find("/ui") == index);
    CHECK(webui_find("/ui/") == index);
    CHECK(webui_find("/ui/index.html") == index);
    CHECK(webui_find(NULL) == NULL);
    CHECK(webui_find("") == NULL);
    CHECK(webui_find("/index.html") == NULL);     /* only under /ui/ */
    CHECK(webui_find("/ui/js") == NULL);          /* a folder is not a file */
    CHECK(webui_find("/ui/js/") == NULL);
    CHECK(webui_find("/ui/../index.html") == NULL);
    CHECK(webui_find("/ui//index.html") == NULL);
    CHECK(webui_find("/ui/nope.js") == NULL);
    CHECK(webui_find("/api/v1/models") == NULL);
    CHECK(webui_find("/metrics") == NULL);
    CHECK(webui_find("/uix/index.html") == NULL);
}

int main(void) {
    RUN(test_embedded_bytes_equal_sources);
    RUN(test_content_types_and_etags);
    RUN(test_find_maps_only_ui_paths);
    return testing_report();
}
