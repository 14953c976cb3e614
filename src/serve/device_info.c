/* device_info.c - /proc/cpuinfo, /proc/meminfo and /proc/self/statm readers. */
#include "serve/device_info.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* 1 when the space-separated list holds word. */
static int has_word(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = strstr(list, word); p; p = strstr(p + 1, word))
        if ((p == list || p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0')) return 1;
    return 0;
}

/* The value after "key<spaces>:" on line, or NULL. */
static const char *field_value(const char *line, const char *key) {
    size_t n = strlen(key);
    if (strncmp(line, key, n) != 0) return NULL;
    const char *p = line + n;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static void read_cpuinfo(device_info *out) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192];
    int flags_done = 0;
    while (fgets(line, sizeof line, f)) {
        const char *v;
        if (!out->cpu_model[0] && ((v = field_value(line, "model name")) || (v = field_value(line, "Hardware")))) {
            snprintf(out->cpu_model, sizeof out->cpu_model, "%s", v);
            out->cpu_model[strcspn(out->cpu_model, "\n")] = '\0';
        }
        if (!flags_done && ((v = field_value(line, "flags")) || (v = field_value(line, "Features")))) {
            out->avx2 = has_word(v, "avx2");
            out->avx512f = has_word(v, "avx512f");
            out->fma = has_word(v, "fma");
            out->neon = has_word(v, "neon") || has_word(v, "asimd");
            flags_done = 1;
        }
    }
    fclose(f);
}

static void read_meminfo(device_info *out) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return;
    char line[256];
    long long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %lld kB", &kb) == 1) out->mem_total_bytes = kb * 1024;
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) out->mem_available_bytes = kb * 1024;
    }
    fclose(f);
}

void device_info_collect(device_info *out) {
    memset(out, 0, sizeof *out);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->cores = n > 0 ? (int)n : 1;
    read_cpuinfo(out);
    read_meminfo(out);
}

int64_t device_info_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long long size = 0, resident = 0;
    int ok = fscanf(f, "%lld %lld", &size, &resident) == 2;
    fclose(f);
    return ok ? resident * (int64_t)sysconf(_SC_PAGESIZE) : 0;
}
