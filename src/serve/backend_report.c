/*
 * backend_report.c - backends' state and device facts as JSON and as
 * Prometheus series (backend_report.h).  Facts are read when asked (a scrape
 * or a device/info request reads the card's temperature then), so nothing
 * here polls the device.
 */
#include "serve/backend_report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "serve/textbuf.h"

/* Adds key: text when text is not empty. */
static void report_text(json_t *obj, const char *key, const char *text) {
    if (text[0]) json_object_set_new(obj, key, json_string(text));
}

static void report_number(json_t *obj, const char *key, double v) {
    if (!isnan(v)) json_object_set_new(obj, key, json_real(v));
}

json_t *backend_report_entry(const backend_ops *ops, backend_device *dev, const char *reason) {
    json_t *obj = json_pack("{s:s,s:b}", "name", ops->name, "available", dev != NULL);
    if (!dev) {
        json_object_set_new(obj, "reason", json_string(reason));
        return obj;
    }
    char description[256];
    ops->describe(dev, description, sizeof description);
    json_object_set_new(obj, "description", json_string(description));
    if (!ops->facts) return obj;
    backend_facts f;
    ops->facts(dev, &f);
    json_t *device = json_object();
    report_text(device, "library", f.library);
    report_text(device, "serial", f.serial);
    report_text(device, "firmware", f.firmware);
    report_text(device, "architecture", f.architecture);
    report_text(device, "product", f.product);
    report_number(device, "temperature_c", f.temperature_c);
    report_number(device, "power_w", f.power_w);
    json_object_set_new(obj, "device", device);
    return obj;
}

json_t *backend_report_list(const repository *repo) {
    json_t *list = json_array();
    for (size_t i = 0; backend_at(i); i++) {
        const char *reason = "";
        backend_device *dev = repository_backend_device(repo, i, &reason);
        json_array_append_new(list, backend_report_entry(backend_at(i), dev, reason));
    }
    return list;
}

/* A label value with \, " and newlines escaped (Prometheus text format). */
static void report_label(textbuf *out, const char *text) {
    for (const char *p = text; *p; p++) {
        if (*p == '\\' || *p == '"') textbuf_printf(out, "\\%c", *p);
        else if (*p == '\n') textbuf_printf(out, "\\n");
        else textbuf_append(out, p, 1);
    }
}

void backend_report_metrics(void *ctx, textbuf *out) {
    const repository *repo = ctx;
    textbuf_printf(out, "# HELP vigil_backend_available Whether the backend's device opened (1) or not (0).\n"
                        "# TYPE vigil_backend_available gauge\n");
    for (size_t i = 0; backend_at(i); i++) {
        const char *reason = "";
        backend_device *dev = repository_backend_device(repo, i, &reason);
        textbuf_printf(out, "vigil_backend_available{backend=\"%s\"} %d\n", backend_at(i)->name, dev != NULL);
    }
    textbuf_printf(out, "# HELP vigil_backend_unavailable_info Why a backend is unavailable, in the reason label.\n"
                        "# TYPE vigil_backend_unavailable_info gauge\n");
    for (size_t i = 0; backend_at(i); i++) {
        const char *reason = "";
        if (repository_backend_device(repo, i, &reason)) continue;
        textbuf_printf(out, "vigil_backend_unavailable_info{backend=\"%s\",reason=\"", backend_at(i)->name);
        report_label(out, reason);
        textbuf_printf(out, "\"} 1\n");
    }
    textbuf_printf(out, "# HELP vigil_backend_device_temperature_celsius The accelerator's chip temperature.\n"
                        "# TYPE vigil_backend_device_temperature_celsius gauge\n"
                        "# HELP vigil_backend_device_power_watts The accelerator's power draw.\n"
                        "# TYPE vigil_backend_device_power_watts gauge\n");
    for (size_t i = 0; backend_at(i); i++) {
        const char *reason = "";
        backend_device *dev = repository_backend_device(repo, i, &reason);
        if (!dev || !backend_at(i)->facts) continue;
        backend_facts f;
        backend_at(i)->facts(dev, &f);
        if (!isnan(f.temperature_c))
            textbuf_printf(out, "vigil_backend_device_temperature_celsius{backend=\"%s\"} %.2f\n", backend_at(i)->name,
                           f.temperature_c);
        if (!isnan(f.power_w))
            textbuf_printf(out, "vigil_backend_device_power_watts{backend=\"%s\"} %.3f\n", backend_at(i)->name,
                           f.power_w);
    }
}
