/*
 * backend.c - the backend registry: the table of compiled-in backends (the
 * CPU engine today; Hailo through dlopen and CUDA later join the table).
 */
#include "backends/backend.h"

#include <string.h>

static const backend_ops *const backends[] = {&backend_cpu};
#define BACKEND_COUNT (sizeof backends / sizeof backends[0])

const backend_ops *backend_at(size_t index) { return index < BACKEND_COUNT ? backends[index] : NULL; }

const backend_ops *backend_find(const char *name) {
    for (size_t i = 0; i < BACKEND_COUNT; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}
