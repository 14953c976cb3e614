/*
 * test_stream_spec.c - a stream's spec (src/stream/spec.c): the JSON the
 * REST API takes, its defaults by URL, its refusals, and the config file's
 * `streams:` list, which core/config.c skips and spec.c reads, so that the
 * same file carries both.
 */
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "stream/spec.h"
#include "testing.h"

static vigil_status parse(const char *text, stream_spec *spec, vigil_error *err) {
    json_t *doc = json_loads(text, 0, NULL);
    vigil_status st = stream_spec_from_json(doc, spec, err);
    json_decref(doc);
    return st;
}

static void test_defaults_follow_the_url(void) {
    stream_spec s;
    vigil_error err = {0};
    CHECK_EQ_INT(parse("{\"name\":\"a\",\"url\":\"/v/a.mp4\",\"model\":\"m\"}", &s, &err), VIGIL_OK);
    CHECK(s.realtime == 1 && s.loop == 0 && s.enabled == 1 && s.detect_fps == 5 && s.conf_threshold < 0);
    CHECK_EQ_INT(parse("{\"name\":\"b\",\"url\":\"rtsp://h/s\",\"model\":\"m\",\"rtsp_transport\":\"udp\"}", &s, &err),
                 VIGIL_OK);
    CHECK(s.realtime == 0 && s.loop == 1);
    CHECK_STR(s.rtsp_transport, "udp");
    CHECK_EQ_INT(parse("{\"name\":\"c\",\"url\":\"rtsp://h/s\",\"model\":\"m\",\"loop\":false,\"realtime\":true,"
                       "\"classes\":[\"car\",2],\"zone\":[[0,0],[10,0],[10,10]],\"conf_threshold\":0.5,"
                       "\"state\":\"running\",\"stats\":{}}",
                       &s, &err),
                 VIGIL_OK);
    CHECK(s.realtime == 1 && s.loop == 0 && s.n_classes == 2 && s.n_zone == 3 && s.conf_threshold == 0.5);
    CHECK_STR(s.classes[1], "2");
    /* written back, then read again: the same spec */
    json_t *obj = json_object();
    stream_spec_to_json(&s, obj);
    stream_spec again;
    CHECK_EQ_INT(stream_spec_from_json(obj, &again, &err), VIGIL_OK);
    json_decref(obj);
    CHECK(memcmp(&s, &again, sizeof s) == 0);
}

static void test_refusals_name_the_field(void) {
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"[]", "object"},
        {"{\"url\":\"x\",\"model\":\"m\"}", "name"},
        {"{\"name\":\"a/b\",\"url\":\"x\",\"model\":\"m\"}", "name"},
        {"{\"name\":\"a\",\"model\":\"m\"}", "url"},
        {"{\"name\":\"a\",\"url\":\"x\"}", "model"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"detect_fps\":\"5\"}", "detect_fps"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"zone\":[[0,0],[1,1]]}", "zone"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"zone\":[[0,0],[1,1],[2]]}", "zone[2]"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"classes\":[-1]}", "classes[0]"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"conf_threshold\":2}", "conf_threshold"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"enabled\":1}", "enabled"},
        {"{\"name\":\"a\",\"url\":\"x\",\"model\":\"m\",\"fps\":5}", "fps"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stream_spec s;
        vigil_error err = {0};
        CHECK_EQ_INT(parse(bad[i].json, &s, &err), VIGIL_ERR_INVALID_ARGUMENT);
        if (!strstr(err.message, bad[i].field)) {
            fprintf(stderr, "  %s: '%s' does not name %s\n", bad[i].json, err.message, bad[i].field);
            CHECK(0);
        }
    }
}

static const char config_text[] = "http:\n"
                                  "  port: 8123\n"
                                  "streams:\n"
                                  "  - name: gate\n"
                                  "    url: rtsp://127.0.0.1:8554/s\n"
                                  "    model: yolov8n\n"
                                  "    detect_fps: 2.5\n"
                                  "    classes: [person, 2]\n"
                                  "    zone: [[0, 0], [100, 0], [100, 50]]\n"
                                  "    enabled: false\n"
                                  "  - {name: door, url: \"/v/door.mp4\", model: yolov8n, conf_threshold: null}\n"
                                  "stream:\n"
                                  "  events_max: 77\n"
                                  "log:\n"
                                  "  level: debug\n";

static void test_config_file_carries_both(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    vigil_error err = {0};
    CHECK_EQ_INT(config_load_string(&cfg, config_text, strlen(config_text), "vigil.yaml", &err), VIGIL_OK);
    CHECK_EQ_INT((int)cfg.http_port, 8123);
    CHECK_EQ_INT((int)cfg.stream_events_max, 77);
    CHECK_STR(cfg.log_level, "debug");
    config_defaults(&cfg);
    CHECK_EQ_INT(config_load_string(&cfg, "streams:\n", 9, "empty.yaml", &err), VIGIL_OK);

    char path[] = "/tmp/vigil-spec-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, config_text, strlen(config_text)) == (ssize_t)strlen(config_text));
    close(fd);
    stream_spec *specs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(stream_specs_load_file(path, &specs, &n, &err), VIGIL_OK);
    CHECK_EQ_INT((int)n, 2);
    if (n == 2) {
        CHECK_STR(specs[0].name, "gate");
        CHECK(specs[0].detect_fps == 2.5 && specs[0].n_classes == 2 && specs[0].n_zone == 3 && !specs[0].enabled);
        CHECK_STR(specs[0].classes[1], "2");
        CHECK_STR(specs[1].url, "/v/door.mp4");
        CHECK(specs[1].realtime == 1 && specs[1].conf_threshold < 0);
    }
    vigil_free(specs);

    /* a bad entry names the file, the entry and the field; a taken name too */
    static const char *const bad[] = {"streams:\n  - {name: a, url: x, model: m, zone: [[0, 0]]}\n",
                                      "streams:\n  - {name: a, url: x, model: m}\n  - {name: a, url: y, model: m}\n",
                                      "streams: 3\n"};
    static const char *const want[] = {"streams[0]: zone", "streams[1]: the name a is taken", "must be a list"};
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (!f) break;
        fputs(bad[i], f);
        fclose(f);
        vigil_error why = {0};
        CHECK_EQ_INT(stream_specs_load_file(path, &specs, &n, &why), VIGIL_ERR_INVALID_ARGUMENT);
        CHECK(specs == NULL && n == 0);
        if (!strstr(why.message, want[i])) {
            fprintf(stderr, "  '%s' lacks '%s'\n", why.message, want[i]);
            CHECK(0);
        }
    }
    /* no list: nothing, no error */
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("http:\n  port: 1\n", f);
        fclose(f);
    }
    CHECK_EQ_INT(stream_specs_load_file(path, &specs, &n, &err), VIGIL_OK);
    CHECK(specs == NULL && n == 0);
    unlink(path);
}

int main(void) {
    RUN(test_defaults_follow_the_url);
    RUN(test_refusals_name_the_field);
    RUN(test_config_file_carries_both);
    return testing_report();
}
