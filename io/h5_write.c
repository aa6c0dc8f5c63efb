/* Writing HDF5 files atomically (io/h5.h): everything goes to a temporary
 * file beside the target, which is renamed over it only once HDF5 has closed
 * it and it has been fsync'ed. Attributes are scalars or 1-D arrays; strings
 * are variable-length UTF-8 as h5py writes them; datasets are contiguous,
 * little-endian and unfiltered, which is what the reader accepts.
 *
 * A close must never fail: when HDF5 1.10.8 cannot write what it holds at
 * H5Fclose (disk full), it keeps a half-freed file object that crashes it
 * later. So a file is flushed first, where a failure is harmless, and a file
 * that is given up (a failed write or flush) has its descriptor pointed at
 * an anonymous memory file before the close: whatever HDF5 still writes goes
 * there, and the temporary is removed. */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/fsutil.h"
#include "io/h5.h"
#include "io/h5_impl.h"

struct graft_h5w {
  hid_t file;
  int fd; /* HDF5's descriptor of the temporary (sec2 driver) */
  char *path, *tmp;
  bool failed; /* a write failed: the file must not be committed */
};

static void writer_free(graft_h5w *w) {
  free(w->path);
  free(w->tmp);
  free(w);
}

/* Give the file up: HDF5's last writes go to memory, the close succeeds. */
static void discard(graft_h5w *w) {
  if (w->file < 0) return;
  int mem = memfd_create("graft-discarded", MFD_CLOEXEC);
  if (mem >= 0 && w->fd >= 0) dup2(mem, w->fd);
  if (mem >= 0) close(mem);
  H5Fclose(w->file);
  w->file = H5I_INVALID_HID;
}

graft_status graft_h5w_create(const char *path, graft_h5w **out) {
  *out = NULL;
  graft_h5w *w = calloc(1, sizeof *w);
  if (!w) return graft__fail(GRAFT_ENOMEM, "out of memory");
  w->file = H5I_INVALID_HID;
  w->fd = -1;
  w->path = strdup(path);
  w->tmp = graft_temp_path_for(path);
  if (!w->path || !w->tmp) {
    writer_free(w);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  /* Create the name ourselves first: a plain errno for the message, and
   * O_EXCL so that nothing else's file is ever truncated. */
  int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    writer_free(w);
    return graft__fail(e == ENOENT ? GRAFT_ENOENT : GRAFT_EIO,
                       "cannot create a temporary file in the target's directory: %s",
                       strerror(e));
  }
  close(fd);

  graft_status st = graft__h5_enter();
  if (st != GRAFT_OK) {
    unlink(w->tmp);
    writer_free(w);
    return st;
  }
  hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID;
  H5WCK(fapl = H5Pcreate(H5P_FILE_ACCESS));
  H5WCK(fcpl = H5Pcreate(H5P_FILE_CREATE));
  /* No modification times in the root group either (see put_dataset). */
  H5WCK(H5Pset_obj_track_times(fcpl, 0));
  H5WCK(H5Pset_fapl_sec2(fapl));
  H5WCK(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG));
  H5WCK(H5Pset_file_locking(fapl, false, true));
  /* The 1.8 format: readable by any HDF5 since 2008, and large attributes
   * (tens of thousands of class names) go to dense storage instead of failing. */
  H5WCK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18));
  H5WCK(w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl));
  void *handle = NULL;
  H5WCK(H5Fget_vfd_handle(w->file, fapl, &handle));
  w->fd = handle ? *(int *)handle : -1;
  graft__h5_close_id(fapl);
  graft__h5_close_id(fcpl);
  graft__h5_leave();
  *out = w;
  return GRAFT_OK;
fail:
  graft__h5_close_id(fapl);
  graft__h5_close_id(fcpl);
  discard(w);
  graft__h5_leave();
  unlink(w->tmp);
  writer_free(w);
  return st;
}

static graft_status begin(graft_h5w *w, const char *name) {
  if (!w || w->file < 0) return graft__fail(GRAFT_EINVAL, "the file is already closed");
  if (w->failed) return graft__fail(GRAFT_EIO, "an earlier write to this file failed");
  if (!graft__h5_name_ok(name)) return graft__fail(GRAFT_EINVAL, "invalid name");
  return graft__h5_enter();
}

static graft_status end(graft_h5w *w, graft_status st, const char *what, const char *name) {
  graft__h5_leave();
  if (st != GRAFT_OK) {
    w->failed = true;
    graft__context(st, "%s \"%s\"", what, name);
  }
  return st;
}

/* A root attribute: scalar (n == 0) or a 1-D array of n values; with
 * ftype < 0, variable-length UTF-8 strings. */
static graft_status put_attr(graft_h5w *w, const char *name, hid_t ftype, hid_t mtype,
                             hsize_t n, const void *data) {
  GRAFT_TRY(begin(w, name));
  graft_status st = GRAFT_OK;
  hid_t str = H5I_INVALID_HID, space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
  if (ftype < 0) {
    H5WCK(str = H5Tcopy(H5T_C_S1));
    H5WCK(H5Tset_size(str, H5T_VARIABLE));
    H5WCK(H5Tset_cset(str, H5T_CSET_UTF8));
    ftype = mtype = str;
  }
  H5WCK(space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR));
  H5WCK(attr = H5Acreate2(w->file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
  H5WCK(H5Awrite(attr, mtype, data));
fail:
  graft__h5_close_id(attr);
  graft__h5_close_id(space);
  graft__h5_close_id(str);
  return end(w, st, "attribute", name);
}

static graft_status put_strings(graft_h5w *w, const char *name, hsize_t n, const void *data) {
  return put_attr(w, name, H5I_INVALID_HID, H5I_INVALID_HID, n, data);
}

graft_status graft_h5w_attr_string(graft_h5w *w, const char *name, const char *value) {
  if (!value) return graft__fail(GRAFT_EINVAL, "attribute \"%s\": no value", name);
  return put_strings(w, name, 0, &value);
}

graft_status graft_h5w_attr_strings(graft_h5w *w, const char *name, char *const *values,
                                    int count) {
  if (count < 1) return graft__fail(GRAFT_EINVAL, "attribute \"%s\": no strings", name);
  for (int i = 0; i < count; i++)
    if (!values[i])
      return graft__fail(GRAFT_EINVAL, "attribute \"%s\": string %d is NULL", name, i);
  return put_strings(w, name, (hsize_t)count, values);
}

graft_status graft_h5w_attr_int(graft_h5w *w, const char *name, int64_t value) {
  return put_attr(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &value);
}

graft_status graft_h5w_attr_double(graft_h5w *w, const char *name, double value) {
  return put_attr(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &value);
}

graft_status graft_h5w_attr_floats(graft_h5w *w, const char *name, const float *v, int count) {
  if (count < 1) return graft__fail(GRAFT_EINVAL, "attribute \"%s\": no values", name);
  return put_attr(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (hsize_t)count, v);
}

static graft_status put_dataset(graft_h5w *w, const char *name, hid_t ftype, hid_t mtype,
                                int rank, const int64_t *dims, const void *data) {
  hsize_t hd[H5S_MAX_RANK];
  if (rank < 0 || rank > H5S_MAX_RANK || (rank && !dims))
    return graft__fail(GRAFT_EINVAL, "dataset \"%s\": invalid rank %d", name, rank);
  size_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0)
      return graft__fail(GRAFT_EINVAL, "dataset \"%s\": negative dimension", name);
    hd[i] = (hsize_t)dims[i];
    n *= (size_t)dims[i];
  }
  if (n && !data) return graft__fail(GRAFT_EINVAL, "dataset \"%s\": no data", name);
  GRAFT_TRY(begin(w, name));
  graft_status st = GRAFT_OK;
  hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
  H5WCK(space = rank ? H5Screate_simple(rank, hd, NULL) : H5Screate(H5S_SCALAR));
  H5WCK(dcpl = H5Pcreate(H5P_DATASET_CREATE));
  H5WCK(H5Pset_layout(dcpl, H5D_CONTIGUOUS));
  H5WCK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)); /* written once, in full */
  /* No modification times: the same content gives the same bytes, so a
   * resumed run's files can be compared with an uninterrupted run's. */
  H5WCK(H5Pset_obj_track_times(dcpl, 0));
  H5WCK(dset = H5Dcreate2(w->file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (n) H5WCK(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
fail:
  graft__h5_close_id(dset);
  graft__h5_close_id(dcpl);
  graft__h5_close_id(space);
  return end(w, st, "dataset", name);
}

graft_status graft_h5w_f32(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                           const float *data) {
  return put_dataset(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank, dims, data);
}

graft_status graft_h5w_f64(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                           const double *data) {
  return put_dataset(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, data);
}

graft_status graft_h5w_i64(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                           const int64_t *data) {
  return put_dataset(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, rank, dims, data);
}

graft_status graft_h5w_u8(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                          const uint8_t *data) {
  return put_dataset(w, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, rank, dims, data);
}

/* Flush, then close; a file that cannot be flushed is discarded. */
static graft_status close_file(graft_h5w *w, bool keep) {
  graft_status st = graft__h5_enter();
  if (st != GRAFT_OK) return st;
  if (keep && w->file >= 0) {
    H5WCK(H5Fflush(w->file, H5F_SCOPE_LOCAL));
    hid_t file = w->file;
    w->file = H5I_INVALID_HID; /* closed once, whatever happens */
    H5WCK(H5Fclose(file));
  }
fail:
  discard(w);
  graft__h5_leave();
  return st;
}

graft_status graft_h5w_commit(graft_h5w *w) {
  if (!w) return graft__fail(GRAFT_EINVAL, "no file to commit");
  graft_status st = w->failed ? graft__fail(GRAFT_EIO, "not saved: an earlier write to the file failed")
                              : close_file(w, true);
  if (st != GRAFT_OK) {
    close_file(w, false);
    unlink(w->tmp);
    writer_free(w);
    return st;
  }
  st = graft_commit_file(w->tmp, w->path); /* removes the temporary on failure */
  writer_free(w);
  return st;
}

void graft_h5w_abort(graft_h5w *w) {
  if (!w) return;
  close_file(w, false);
  unlink(w->tmp);
  writer_free(w);
}
