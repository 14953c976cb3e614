/*
 * edge_fs.h - the little file-system help the edge parts share: creating a
 * directory with its parents (the receiver's store and frames directories
 * under edge.data_dir, which a fresh install does not have yet).
 */
#ifndef VIGIL_EDGE_FS_H
#define VIGIL_EDGE_FS_H

#include "vigil/status.h"

/* mkdir -p with mode 0750; an existing directory is fine.  VIGIL_ERR_IO
 * naming the first component that could not be made. */
vigil_status edge_mkdirs(const char *path, vigil_error *err);

#endif
