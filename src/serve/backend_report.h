/*
 * backend_report.h - what each backend says about itself, one way for every
 * reader: the "backends" list of GET /api/v1/device/info, `vigil device
 * info`, and the vigil_backend_* series of GET /metrics.
 *
 * A backend is available (its device opened: description, and for an
 * accelerator the facts it reports: serial, firmware, architecture,
 * temperature, power) or unavailable with the reason its open gave.
 */
#ifndef VIGIL_SERVE_BACKEND_REPORT_H
#define VIGIL_SERVE_BACKEND_REPORT_H

#include <jansson.h>

#include "backends/backend.h"
#include "serve/repository.h"

struct textbuf;

/* One backend's object: {"name", "available", "description" | "reason",
 * "device": {...facts...}}.  dev NULL = unavailable because of reason. */
json_t *backend_report_entry(const backend_ops *ops, backend_device *dev, const char *reason);

/* Every backend of the repository, in backend_at order. */
json_t *backend_report_list(const repository *repo);

/* The server_metrics_fn (ctx = the repository): vigil_backend_available,
 * vigil_backend_unavailable_info{reason}, and the device's temperature and
 * power where reported. */
void backend_report_metrics(void *repo, struct textbuf *out);

#endif
