/* fuzz_stream_spec.c - libFuzzer target for video stream specs
 * (src/stream/spec.c): the config file's `streams:` list (YAML turned into
 * JSON) and the REST API's JSON spec.  Any bytes must give VIGIL_OK or an
 * error with a message, never a crash; a spec that parses must survive
 * being written back and read again unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "stream/spec.h"

static void check_round_trip(const stream_spec *spec) {
    json_t *obj = json_object();
    if (!obj) return;
    stream_spec_to_json(spec, obj);
    stream_spec again;
    vigil_error err = {0};
    if (stream_spec_from_json(obj, &again, &err) != VIGIL_OK) __builtin_trap();
    json_decref(obj);
    if (strcmp(again.name, spec->name) != 0 || strcmp(again.url, spec->url) != 0 || again.n_zone != spec->n_zone ||
        again.n_classes != spec->n_classes)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    stream_spec *specs = NULL;
    size_t n = 0;
    vigil_error err = {0};
    if (stream_specs_load_string((const char *)data, size, "fuzz.yaml", &specs, &n, &err) == VIGIL_OK) {
        for (size_t i = 0; i < n; i++)
            check_round_trip(&specs[i]);
    } else if (err.message[0] == '\0') {
        __builtin_trap(); /* every failure must say why */
    }
    vigil_free(specs);

    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    if (doc) {
        stream_spec spec;
        vigil_error jerr = {0};
        if (stream_spec_from_json(doc, &spec, &jerr) == VIGIL_OK) check_round_trip(&spec);
        else if (jerr.message[0] == '\0') __builtin_trap();
        json_decref(doc);
    }
    return 0;
}
