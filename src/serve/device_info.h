/*
 * device_info.h - what /api/v1/device/info reports about the machine: CPU
 * model, cores, the ISA features the kernels care about, and memory.
 * Read from /proc (Linux); fields that cannot be read stay empty or zero.
 */
#ifndef VIGIL_SERVE_DEVICE_INFO_H
#define VIGIL_SERVE_DEVICE_INFO_H

#include <stdint.h>

typedef struct device_info {
    char cpu_model[256];
    int cores;
    int avx2, avx512f, fma, neon;
    int64_t mem_total_bytes;
    int64_t mem_available_bytes;
} device_info;

void device_info_collect(device_info *out);
/* Resident set size of this process in bytes (0 if unknown). */
int64_t device_info_rss_bytes(void);

#endif
