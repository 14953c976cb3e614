/*
 * hailort_lib.c - dlopen of libhailort and the checks before anything is
 * called: every symbol vigil needs is resolved up front (a library without
 * one is refused with its name, rather than failing on first use), and the
 * version must be one whose structure layouts hailort_abi.h declares
 * (HAILORT_SUPPORTED_*).  A refusal is a sentence in err, never a crash: the
 * server goes on with its other backends and reports it.
 */
#include "backends/hailo/hailort_lib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"

static const char *const hailort_default_names[] = {"libhailort.so.4", "libhailort.so"};

void hailort_lib_close(hailort_lib *lib) {
    if (!lib) return;
    if (lib->handle) dlclose(lib->handle);
    vigil_free(lib);
}

const char *hailort_status_text(hailo_status status, char *buf, size_t size) {
    switch (status) {
    case HAILO_SUCCESS: return "HAILO_SUCCESS";
    case HAILO_INVALID_ARGUMENT: return "HAILO_INVALID_ARGUMENT";
    case HAILO_OUT_OF_HOST_MEMORY: return "HAILO_OUT_OF_HOST_MEMORY";
    case HAILO_TIMEOUT: return "HAILO_TIMEOUT";
    case HAILO_INSUFFICIENT_BUFFER: return "HAILO_INSUFFICIENT_BUFFER";
    case HAILO_INVALID_OPERATION: return "HAILO_INVALID_OPERATION";
    case HAILO_INTERNAL_FAILURE: return "HAILO_INTERNAL_FAILURE";
    case HAILO_OPEN_FILE_FAILURE: return "HAILO_OPEN_FILE_FAILURE";
    case HAILO_INVALID_HEF: return "HAILO_INVALID_HEF";
    case HAILO_NOT_FOUND: return "HAILO_NOT_FOUND";
    case HAILO_COMMUNICATION_CLOSED: return "HAILO_COMMUNICATION_CLOSED";
    case HAILO_STREAM_ABORT: return "HAILO_STREAM_ABORT";
    case HAILO_DRIVER_NOT_INSTALLED: return "HAILO_DRIVER_NOT_INSTALLED";
    case HAILO_NOT_AVAILABLE: return "HAILO_NOT_AVAILABLE";
    case HAILO_DEVICE_IN_USE: return "HAILO_DEVICE_IN_USE";
    case HAILO_OUT_OF_PHYSICAL_DEVICES: return "HAILO_OUT_OF_PHYSICAL_DEVICES";
    case HAILO_RPC_FAILED: return "HAILO_RPC_FAILED";
    case HAILO_DRIVER_TIMEOUT: return "HAILO_DRIVER_TIMEOUT";
    case HAILO_HEF_FILE_CORRUPTED: return "HAILO_HEF_FILE_CORRUPTED";
    case HAILO_HEF_NOT_SUPPORTED: return "HAILO_HEF_NOT_SUPPORTED";
    case HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE: return "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE";
    default: snprintf(buf, size, "hailo status %d", (int)status); return buf;
    }
}

/* dlopen of the configured or default names; the last dlerror on failure. */
static void *hailort_dlopen(char *path, size_t size, vigil_error *err) {
    const char *chosen = getenv("VIGIL_HAILORT");
    if (chosen && *chosen) {
        snprintf(path, size, "%s", chosen);
        void *h = dlopen(chosen, RTLD_NOW | RTLD_LOCAL);
        if (!h) vigil_error_set(err, VIGIL_ERR_NOT_FOUND, "HailoRT not loaded (VIGIL_HAILORT=%s): %s", chosen, dlerror());
        return h;
    }
    for (size_t i = 0; i < sizeof hailort_default_names / sizeof hailort_default_names[0]; i++) {
        void *h = dlopen(hailort_default_names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            snprintf(path, size, "%s", hailort_default_names[i]);
            return h;
        }
    }
    vigil_error_set(err, VIGIL_ERR_NOT_FOUND,
                    "HailoRT not found: neither libhailort.so.4 nor libhailort.so is installed (set VIGIL_HAILORT "
                    "to its path)");
    return NULL;
}

vigil_status hailort_lib_open(hailort_lib **out, vigil_error *err) {
    *out = NULL;
    hailort_lib *lib = vigil_calloc(1, sizeof *lib);
    if (!lib) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "hailo: out of memory");
    lib->handle = hailort_dlopen(lib->path, sizeof lib->path, err);
    if (!lib->handle) {
        hailort_lib_close(lib);
        return err->status;
    }
    /* Every symbol before any call: a partial library is refused whole.
     * (POSIX lets a void * from dlsym become a function pointer.) */
#define HAILORT_RESOLVE(name, params)                                                                                  \
    *(void **)&lib->name = dlsym(lib->handle, #name);                                                                  \
    if (!lib->name) {                                                                                                  \
        vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "HailoRT %s lacks the symbol %s", lib->path, #name);               \
        hailort_lib_close(lib);                                                                                        \
        return VIGIL_ERR_UNSUPPORTED;                                                                                  \
    }
    HAILORT_FUNCTIONS(HAILORT_RESOLVE)
#undef HAILORT_RESOLVE
    hailo_status hs = lib->hailo_get_library_version(&lib->version);
    const hailo_version_t *v = &lib->version;
    if (hs != HAILO_SUCCESS) {
        vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "HailoRT %s: hailo_get_library_version failed (%d)", lib->path,
                        (int)hs);
    } else if (v->major != HAILORT_SUPPORTED_MAJOR || v->minor < HAILORT_SUPPORTED_MINOR_MIN ||
               v->minor > HAILORT_SUPPORTED_MINOR_MAX) {
        vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                        "HailoRT %s is version %u.%u.%u; vigil supports %d.%d to %d.%d (the structure layouts it "
                        "was written against)",
                        lib->path, v->major, v->minor, v->revision, HAILORT_SUPPORTED_MAJOR,
                        HAILORT_SUPPORTED_MINOR_MIN, HAILORT_SUPPORTED_MAJOR, HAILORT_SUPPORTED_MINOR_MAX);
    } else {
        *out = lib;
        return VIGIL_OK;
    }
    hailort_lib_close(lib);
    return VIGIL_ERR_UNSUPPORTED;
}
