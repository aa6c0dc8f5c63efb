/* Shared by io/h5.c, io/h5_attr.c and io/h5_write.c: the one lock
 * around HDF5 (Debian's serial build is not thread-safe) and the macro that
 * checks every HDF5 call. Not a public header. */
#ifndef GRAFT_H5_IMPL_H
#define GRAFT_H5_IMPL_H

#include <hdf5.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "io/h5.h"

/* Take the process-wide HDF5 lock; the first call silences HDF5's error
 * stack and disables filter plugins. On failure the lock is not held. */
graft_status graft__h5_enter(void);
/* Clear HDF5's error stack and release the lock. */
void graft__h5_leave(void);

/* Record a failed HDF5 call: its name (taken from expr), HDF5's innermost
 * error description and file:line, as the detail. Returns s. */
graft_status graft__h5_failed(graft_status s, const char *expr, const char *file, int line);

/* An open file: HDF5's identifier, and what its data must lie inside. */
struct graft_h5 {
  hid_t file;
  int fd;               /* HDF5's own descriptor (sec2 driver), for pread */
  uint64_t size;        /* bytes, from fstat of that descriptor */
  unsigned sizeof_size; /* bytes of a length field in this file */
  bool heaps_checked;   /* graft__h5_check_heaps ran: its verdict */
  graft_status heaps_status;
  char heaps_detail[256];
};

/* Check every global heap collection of the file (io/h5_heap.c) before
 * HDF5 reads variable-length data from it; the verdict is kept. */
graft_status graft__h5_check_heaps(graft_h5 *f);

/* In an arena that allows it (a child's shared region, io/isolate.c):
 * record a read of `bytes` at file offset `offset` of the file open on fd
 * into dest, for the parent to do; false when it cannot be deferred (an
 * arena of private memory, dest not in a block of it, too many reads,
 * another file): the caller reads now. */
bool graft__arena_defer(graft_arena *mem, int fd, void *dest, uint64_t offset, size_t bytes,
                        bool big_endian, bool check_finite, const char *name);

/* "float32", "int64", "a string"... for messages. */
void graft__h5_describe_type(hid_t type, char *buf, size_t cap);

/* Close any HDF5 identifier (ignores invalid ones). */
void graft__h5_close_id(hid_t id);

/* A root-level object name: not empty, no '/', not ".". */
bool graft__h5_name_ok(const char *name);
/* A path below the root: '/'-separated names, none empty, "." or "..". */
bool graft__h5_path_ok(const char *path);
/* The object at path is reached through hard links only, every step a group,
 * and is of type `want` (lock held). ENOENT "missing", EUNSUPPORTED for a
 * soft or external link, EFORMAT for another type; the detail names the step. */
graft_status graft__h5_find(graft_h5 *f, const char *path, H5O_type_t want);

/* Check an HDF5 call (negative = failure): set `st` and jump to `fail`. */
#define H5CK_AS(status, expr)                                              \
  do {                                                                     \
    if ((expr) < 0) {                                                      \
      st = graft__h5_failed((status), #expr, __FILE__, __LINE__);          \
      goto fail;                                                           \
    }                                                                      \
  } while (0)

/* Reading: a failing call means the file is corrupt or not what we expect. */
#define H5CK(expr) H5CK_AS(GRAFT_EFORMAT, expr)
/* Writing: a failing call is an I/O problem. */
#define H5WCK(expr) H5CK_AS(GRAFT_EIO, expr)

#endif
