/* Files that are never half-written: write to a temporary name in the same
 * directory, flush, fsync, rename, fsync the directory. */
#ifndef GRAFT_FSUTIL_H
#define GRAFT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

/* The longest path graft builds (output folders, files in them). */
#define GRAFT_PATH_MAX 4096

/* A unique temporary path beside `path` (same directory), malloc'd. */
char *graft_temp_path_for(const char *path);

/* fsync tmp_path, rename it to final_path, fsync the directory. On failure
 * tmp_path is removed. Details of these writers name no path: the caller
 * says which file it was writing. */
graft_status graft_commit_file(const char *tmp_path, const char *final_path);

/* Whole-file atomic write. */
graft_status graft_write_file_atomic(const char *path, const void *data, size_t len);

/* Read a regular file (a directory or device is GRAFT_EINVAL) of at most max
 * bytes (GRAFT_ELIMIT past it). *buf is malloc'd. */
graft_status graft_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);

/* mkdir -p */
graft_status graft_mkdirs(const char *path);

/* An exclusive lock on a folder (flock on the file `name` inside it), held
 * until graft_dir_unlock or the end of the process, however it ends: the
 * kernel drops a killed process's lock. The file is created if need be and
 * never removed (two processes could otherwise lock two different files of
 * that name); it holds the holder's pid. A folder locked by another process
 * is GRAFT_EBUSY, the detail naming that process. */
graft_status graft_dir_lock(const char *dir, const char *name, int *fd);
void graft_dir_unlock(int fd);

#endif
