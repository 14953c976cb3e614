/*
 * backend.c - the backend registry: the table of compiled-in backends (the
 * CPU engine, and Hailo-8 through HailoRT opened with dlopen; CUDA later).
 *
 * backend_test is a weak reference: only the test build of the daemon
 * (vigil-test, tests/CMakeLists.txt) links a definition
 * (tests/unit/backend_test.c); in the real binary the slot is NULL and
 * skipped, so no config.yaml can select it there.
 */
#include "backends/backend.h"

#include <string.h>

#include "vigil/engine.h"

extern const backend_ops backend_test __attribute__((weak));

/* The table, with the test backend's slot last and NULL when not linked. */
static const backend_ops *backend_slot(size_t index) {
    switch (index) {
    case 0: return &backend_cpu;
    case 1: return &backend_hailo; /* HailoRT through dlopen: opens where the library and a device are */
    case 2: return &backend_test;  /* NULL unless linked in */
    default: return NULL;
    }
}

const backend_ops *backend_at(size_t index) { return backend_slot(index); }

vigil_status backend_float16_parse(const char *text, int *out) { return vigil_float16_mode_parse(text, out); }

const backend_ops *backend_find(const char *name) {
    for (size_t i = 0; backend_at(i); i++)
        if (strcmp(backend_at(i)->name, name) == 0) return backend_at(i);
    return NULL;
}
