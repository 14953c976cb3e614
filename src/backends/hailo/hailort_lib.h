/*
 * hailort_lib.h - libhailort opened at run time: the library handle, its
 * version, and one function pointer per HailoRT call vigil makes
 * (hailort_abi.h lists them).
 *
 * vigil links nothing of HailoRT, so it builds and runs where HailoRT is
 * absent; hailort_lib_open says why the library cannot be used (not found,
 * a symbol missing, a version outside the supported range) in err, and the
 * Hailo backend keeps that sentence as its reason for being unavailable.
 */
#ifndef VIGIL_BACKENDS_HAILO_HAILORT_LIB_H
#define VIGIL_BACKENDS_HAILO_HAILORT_LIB_H

#include "backends/hailo/hailort_abi.h"
#include "vigil/status.h"

/* The range whose structure layouts hailort_abi.h declares. */
#define HAILORT_SUPPORTED_MAJOR 4
#define HAILORT_SUPPORTED_MINOR_MIN 21
#define HAILORT_SUPPORTED_MINOR_MAX 23

typedef struct hailort_lib {
    void *handle; /* dlopen's */
    char path[512];
    hailo_version_t version;
#define HAILORT_POINTER(name, params) hailo_status(*name) params;
    HAILORT_FUNCTIONS(HAILORT_POINTER)
#undef HAILORT_POINTER
} hailort_lib;

/* Opens the library named by $VIGIL_HAILORT, else "libhailort.so.4", else
 * "libhailort.so", resolves every function and checks the version.  OUT:
 * *out, released with hailort_lib_close. */
vigil_status hailort_lib_open(hailort_lib **out, vigil_error *err);
void hailort_lib_close(hailort_lib *lib);

/* A short name for a HailoRT status ("HAILO_TIMEOUT", or "hailo status 42"). */
const char *hailort_status_text(hailo_status status, char *buf, size_t size);

#endif
