/*
 * edge_fs.c - see edge_fs.h.
 */
#include "edge/edge_fs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static vigil_status make_one(const char *dir, vigil_error *err) {
    if (mkdir(dir, 0750) == 0 || errno == EEXIST) return VIGIL_OK;
    return vigil_error_set(err, VIGIL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
}

vigil_status edge_mkdirs(const char *path, vigil_error *err) {
    char dir[4096];
    if (!path || !*path || strlen(path) >= sizeof dir)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "directory path empty or too long");
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        vigil_status st = make_one(dir, err);
        if (st) return st;
        *p = '/';
    }
    return make_one(dir, err);
}
