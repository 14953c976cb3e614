/*
 * cmd_device.c - `vigil device info`: what a server started here would see
 * of the machine: the CPU, and each backend opened the way the server opens
 * it (the same environment, VIGIL_HAILORT included), available with what its
 * device reports (serial, firmware, architecture, temperature, power) or
 * unavailable with the reason.  The same objects as GET /api/v1/device/info
 * (serve/backend_report.c), so the two never disagree; --json prints them.
 *
 * Opening a backend claims its device for the command's short life: run it
 * beside a serving vigil on a card without the HailoRT service and the
 * Hailo backend says the card is in use, which is the truth.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "cli/commands.h"
#include "serve/backend_report.h"
#include "serve/device_info.h"

static void device_usage(FILE *out) {
    fprintf(out, "usage: vigil device info [--json]\n\n"
                 "Prints the CPU and every backend as `vigil serve` would open it here: available, with the\n"
                 "device's serial, firmware, architecture, temperature and power where it reports them, or\n"
                 "unavailable with the reason (HailoRT absent, refused, no card).  VIGIL_HAILORT names the\n"
                 "HailoRT library to use, as for the server.\n");
}

static void device_print_text(const device_info *cpu, json_t *backends) {
    printf("cpu: %s, %d cores%s%s%s\n", cpu->cpu_model, cpu->cores, cpu->avx2 ? ", avx2" : "",
           cpu->avx512f ? ", avx512f" : "", cpu->neon ? ", neon" : "");
    size_t i;
    json_t *b;
    json_array_foreach(backends, i, b) {
        const char *name = json_string_value(json_object_get(b, "name"));
        if (!json_is_true(json_object_get(b, "available"))) {
            printf("%s: unavailable: %s\n", name, json_string_value(json_object_get(b, "reason")));
            continue;
        }
        printf("%s: available: %s\n", name, json_string_value(json_object_get(b, "description")));
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(b, "device"), key, v) {
            if (json_is_string(v)) printf("  %-14s %s\n", key, json_string_value(v));
            else printf("  %-14s %.2f\n", key, json_number_value(v));
        }
    }
}

int cmd_device(int argc, char **argv) {
    int json = 0;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        device_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "info") != 0) {
        fprintf(stderr, "vigil device: unknown subcommand '%s' (try: vigil device info)\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            device_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vigil device info: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    device_info cpu;
    device_info_collect(&cpu);
    json_t *backends = json_array();
    for (size_t i = 0; backend_at(i); i++) {
        const backend_ops *ops = backend_at(i);
        backend_device *dev = NULL;
        vigil_error err = {0};
        vigil_status st = ops->open(NULL, &dev, &err);
        json_array_append_new(backends, backend_report_entry(ops, st ? NULL : dev, err.message));
        if (!st) ops->close(dev);
    }
    if (json) {
        json_t *obj = json_pack("{s:{s:s,s:i},s:o}", "cpu", "model", cpu.cpu_model, "cores", cpu.cores, "backends",
                                backends);
        char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(obj);
        return 0;
    }
    device_print_text(&cpu, backends);
    json_decref(backends);
    return 0;
}
