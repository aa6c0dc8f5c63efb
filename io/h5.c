/* Defensive HDF5 reading (io/h5.h). HDF5 is not hardened against hostile
 * files, so nothing is read before its type, shape, layout and place in the
 * file have been checked; details name the attribute or dataset, never the
 * path (the apps prefix it). Attributes are in io/h5_attr.c, the writer in
 * io/h5_write.c. */
#include "io/h5.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/h5_impl.h"

#define MAX_NAMES 100000 /* root attributes or datasets listed */

/* ---- the lock, one-time set-up, and the error macro ---- */

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;
static bool h5_ready;
/* Debian's HDF5 is built thread-safe: its error stacks, and whether they
 * are printed, belong to each thread. */
static _Thread_local bool h5_quiet;

graft_status graft__h5_enter(void) {
  pthread_mutex_lock(&h5_mutex);
  if (!h5_ready) {
    /* No clean-up at exit: after a failed close HDF5 1.10.8 keeps a
     * half-freed file object, and its exit handler would crash on it
     * (graft's writer never lets a close fail, io/h5_write.c; this is the
     * second line). Then refuse every dynamically loaded filter: a file
     * must not choose code for us to run. */
    if (H5dont_atexit() < 0 || H5open() < 0 || H5PLset_loading_state(0) < 0) {
      pthread_mutex_unlock(&h5_mutex);
      return graft__fail(GRAFT_EBACKEND, "HDF5 library initialisation failed");
    }
    h5_ready = true;
  }
  /* Silence this thread's error stack before anything can fail on it. */
  if (!h5_quiet) {
    if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0) {
      pthread_mutex_unlock(&h5_mutex);
      return graft__fail(GRAFT_EBACKEND, "HDF5 library initialisation failed");
    }
    h5_quiet = true;
  }
  return GRAFT_OK;
}

void graft__h5_leave(void) {
  H5Eclear2(H5E_DEFAULT);
  pthread_mutex_unlock(&h5_mutex);
}

#define WHY_MAX 256

static herr_t first_error(unsigned n, const H5E_error2_t *err, void *data) {
  if (n == 0 && err->desc) snprintf((char *)data, WHY_MAX, "%s", err->desc);
  return 0;
}

/* The errno of a failed system call, as HDF5's file drivers quote it
 * ("..., errno = 28, error message = ..."), anywhere on the stack; 0: none. */
static herr_t find_errno(unsigned n, const H5E_error2_t *err, void *data) {
  (void)n;
  const char *at = err->desc ? strstr(err->desc, "errno = ") : NULL;
  int e = at ? atoi(at + 8) : 0;
  if (e > 0 && *(int *)data == 0) *(int *)data = e;
  return 0;
}

graft_status graft__h5_failed(graft_status s, const char *expr, const char *file, int line) {
  /* The HDF5 function's name out of the checked expression ("d = H5Dopen2(...)"). */
  char fn[48] = "HDF5 call";
  const char *p = strstr(expr, "H5");
  if (p) {
    size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
    if (n >= sizeof fn) n = sizeof fn - 1;
    memcpy(fn, p, n);
    fn[n] = '\0';
  }
  /* The innermost entry of HDF5's stack says what went wrong; paths that
   * HDF5 quotes in it are cut (details never carry the file's path), and
   * object names from the file can't break the detail's single line. */
  char why[WHY_MAX] = "";
  int sys_errno = 0;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error, why);
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_errno, &sys_errno);
  H5Eclear2(H5E_DEFAULT);
  /* A system call failed (disk full, I/O error): that is the whole story. */
  if (sys_errno) return graft__fail(s, "%s failed: %s", fn, strerror(sys_errno));
  char *name = strstr(why, "name = '");
  if (name) *name = '\0';
  for (char *c = why; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
  size_t len = strlen(why);
  while (len && (why[len - 1] == ' ' || why[len - 1] == ',' || why[len - 1] == ':'))
    why[--len] = '\0';
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  return graft__fail(s, "%s failed%s%s (%s:%d)", fn, why[0] ? ": " : "", why, base, line);
}

void graft__h5_close_id(hid_t id) {
  if (id < 0) return;
  switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
  }
}

bool graft__h5_name_ok(const char *name) {
  return name && name[0] && !strchr(name, '/') && strcmp(name, ".") != 0;
}

/* ---- files ---- */

graft_status graft_h5_open(const char *path, graft_h5 **out) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) != 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return graft__fail(GRAFT_ENOENT, "no such file");
    return graft__fail(GRAFT_EIO, "cannot open: %s", strerror(e));
  }
  if (S_ISDIR(sb.st_mode)) return graft__fail(GRAFT_EINVAL, "is a directory, not a file");
  if (!S_ISREG(sb.st_mode)) return graft__fail(GRAFT_EINVAL, "not a regular file");
  if (sb.st_size == 0) return graft__fail(GRAFT_EFORMAT, "not an HDF5 file (empty)");
  /* HDF5 would call an unreadable file "not HDF5": say what errno says. */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return graft__fail(GRAFT_EIO, "cannot open: %s", strerror(errno));
  close(fd);

  GRAFT_TRY(graft__h5_enter());
  graft_status st = GRAFT_OK;
  hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID, file = H5I_INVALID_HID;
  graft_h5 *f = NULL;
  if (H5Fis_hdf5(path) <= 0) {
    st = graft__fail(GRAFT_EFORMAT, "not an HDF5 file");
    goto fail;
  }
  H5CK(fapl = H5Pcreate(H5P_FILE_ACCESS));
  H5CK(H5Pset_fapl_sec2(fapl));
  H5CK(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG));
  /* Locks fail on some network file systems; writers never share a name. */
  H5CK(H5Pset_file_locking(fapl, false, true));
  H5CK(file = H5Fopen(path, H5F_ACC_RDONLY, fapl));
  void *handle = NULL;
  H5CK(H5Fget_vfd_handle(file, fapl, &handle));
  struct stat fsb;
  if (!handle || fstat(*(int *)handle, &fsb) != 0) {
    st = graft__fail(GRAFT_EIO, "cannot stat the open file");
    goto fail;
  }
  size_t sizeof_addr = 0, sizeof_size = 0;
  H5CK(fcpl = H5Fget_create_plist(file));
  H5CK(H5Pget_sizes(fcpl, &sizeof_addr, &sizeof_size));
  if (!(f = calloc(1, sizeof *f))) {
    st = graft__fail(GRAFT_ENOMEM, "out of memory");
    goto fail;
  }
  f->file = file;
  f->fd = *(int *)handle;
  f->size = (uint64_t)fsb.st_size;
  f->sizeof_size = (unsigned)sizeof_size;
  graft__h5_close_id(fcpl);
  graft__h5_close_id(fapl);
  graft__h5_leave();
  *out = f;
  return GRAFT_OK;
fail:
  graft__h5_close_id(fcpl);
  graft__h5_close_id(file);
  graft__h5_close_id(fapl);
  graft__h5_leave();
  if (st == GRAFT_EFORMAT && strncmp(graft_detail(), "not an", 6) != 0)
    graft__context(st, "not a readable HDF5 file");
  return st;
}

void graft_h5_close(graft_h5 *f) {
  if (!f) return;
  if (graft__h5_enter() == GRAFT_OK) {
    graft__h5_close_id(f->file);
    graft__h5_leave();
  }
  free(f);
}

void graft_strv_free(char **v, int count) {
  if (!v) return;
  for (int i = 0; i < count; i++) free(v[i]);
  free(v);
}

/* ---- type descriptions for messages ---- */

void graft__h5_describe_type(hid_t type, char *buf, size_t cap) {
  H5T_class_t c = H5Tget_class(type);
  size_t bits = H5Tget_size(type) * 8;
  switch (c) {
    case H5T_INTEGER:
      snprintf(buf, cap, "%s%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
      break;
    case H5T_FLOAT: snprintf(buf, cap, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, cap, "a string"); break;
    case H5T_COMPOUND: snprintf(buf, cap, "a compound type"); break;
    case H5T_ENUM: snprintf(buf, cap, "an enum"); break;
    case H5T_ARRAY: snprintf(buf, cap, "an array type"); break;
    case H5T_VLEN: snprintf(buf, cap, "a variable-length sequence"); break;
    default: snprintf(buf, cap, "an unsupported type"); break;
  }
}

static void format_shape(char *buf, size_t cap, int rank, const hsize_t *h, const int64_t *d) {
  size_t used = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < rank && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "",
                             h ? (long long)h[i] : (long long)d[i]);
  if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* ---- listing names ---- */

typedef struct name_list {
  char **v;
  int n, cap;
  graft_status st;
} name_list;

static herr_t list_add(name_list *l, const char *name) {
  if (l->n >= MAX_NAMES) {
    l->st = graft__fail(GRAFT_ELIMIT, "more than %d names in the root group", MAX_NAMES);
    return -1;
  }
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 64;
    char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) goto oom;
    l->v = v;
    l->cap = cap;
  }
  if (!(l->v[l->n] = strdup(name))) goto oom;
  l->n++;
  return 0;
oom:
  l->st = graft__fail(GRAFT_ENOMEM, "out of memory");
  return -1;
}

static herr_t on_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
  (void)loc;
  (void)info;
  return list_add(data, name);
}

static herr_t on_link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
  if (info->type != H5L_TYPE_HARD) return 0; /* soft and external links are not datasets */
  H5O_info_t oi;
  if (H5Oget_info_by_name2(group, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
  return oi.type == H5O_TYPE_DATASET ? list_add(data, name) : 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static graft_status list_names(graft_h5 *f, bool datasets, char ***names, int *count) {
  *names = NULL;
  *count = 0;
  GRAFT_TRY(graft__h5_enter());
  name_list l = {NULL, 0, 0, GRAFT_OK};
  /* HDF5 1.10.8 builds a table of all attributes to iterate them, and when
   * one fails to decode it closes the table's unset entries (a crash found
   * by test_h5_fuzz). Looking up a name that cannot exist decodes every
   * attribute message the same way, without the table: a failure there
   * means the iteration must not run. */
  if (!datasets && H5Aexists(f->file, "\001graft: no such attribute") < 0) {
    graft__h5_failed(GRAFT_EFORMAT, "H5Aexists", __FILE__, __LINE__);
    graft__h5_leave();
    return graft__context(GRAFT_EFORMAT, "listing attributes: corrupt attribute messages");
  }
  herr_t r = datasets
                 ? H5Literate(f->file, H5_INDEX_NAME, H5_ITER_INC, NULL, on_link, &l)
                 : H5Aiterate2(f->file, H5_INDEX_NAME, H5_ITER_INC, NULL, on_attr, &l);
  graft_status st = l.st;
  if (r < 0 && st == GRAFT_OK)
    st = graft__h5_failed(GRAFT_EFORMAT, datasets ? "H5Literate" : "H5Aiterate2", __FILE__,
                          __LINE__);
  graft__h5_leave();
  if (st != GRAFT_OK) {
    graft_strv_free(l.v, l.n);
    return graft__context(st, "listing %s", datasets ? "datasets" : "attributes");
  }
  if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
  *names = l.v;
  *count = l.n;
  return GRAFT_OK;
}

graft_status graft_h5_attr_names(graft_h5 *f, char ***names, int *count) {
  return list_names(f, false, names, count);
}

graft_status graft_h5_dataset_names(graft_h5 *f, char ***names, int *count) {
  return list_names(f, true, names, count);
}

/* ---- datasets ---- */

typedef enum ds_kind { DS_F32, DS_F64, DS_I64, DS_U8 } ds_kind;

static graft_status find_dataset(graft_h5 *f, const char *name) {
  return graft__h5_find(f, name, H5O_TYPE_DATASET);
}

bool graft_h5_has_dataset(graft_h5 *f, const char *name) {
  if (graft__h5_enter() != GRAFT_OK) return false;
  bool yes = find_dataset(f, name) == GRAFT_OK;
  graft__h5_leave();
  return yes;
}

static graft_status check_type(hid_t type, ds_kind kind) {
  char found[48];
  graft__h5_describe_type(type, found, sizeof found);
  if (kind == DS_F32) {
    if (H5Tequal(type, H5T_IEEE_F32LE) > 0 || H5Tequal(type, H5T_IEEE_F32BE) > 0)
      return GRAFT_OK;
    return graft__fail(GRAFT_EFORMAT, "expected float32, found %s", found);
  }
  if (kind == DS_F64) {
    if (H5Tequal(type, H5T_IEEE_F64LE) > 0 || H5Tequal(type, H5T_IEEE_F64BE) > 0)
      return GRAFT_OK;
    return graft__fail(GRAFT_EFORMAT, "expected float64, found %s", found);
  }
  size_t want = kind == DS_I64 ? 8 : 1;
  if (H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == want &&
      H5Tget_precision(type) == want * 8 && H5Tget_offset(type) == 0)
    return GRAFT_OK;
  return graft__fail(GRAFT_EFORMAT, "expected %s integer, found %s",
                     kind == DS_I64 ? "a 64-bit" : "an 8-bit", found);
}

static graft_status check_shape(hid_t space, int rank, const int64_t *dims, size_t *count) {
  graft_status st = GRAFT_OK;
  H5S_class_t sc;
  H5CK(sc = H5Sget_simple_extent_type(space));
  if (sc == H5S_NULL) return graft__fail(GRAFT_ESHAPE, "has no data (null dataspace)");
  int have = 0;
  hsize_t hd[H5S_MAX_RANK];
  if (sc == H5S_SIMPLE) {
    H5CK(have = H5Sget_simple_extent_ndims(space));
    if (have > H5S_MAX_RANK) return graft__fail(GRAFT_EFORMAT, "rank %d", have);
    H5CK(H5Sget_simple_extent_dims(space, hd, NULL));
  }
  bool same = have == rank;
  for (int i = 0; same && i < rank; i++) same = dims[i] >= 0 && hd[i] == (hsize_t)dims[i];
  if (!same) {
    char want[160], found[160];
    format_shape(want, sizeof want, rank, NULL, dims);
    format_shape(found, sizeof found, have, hd, NULL);
    return graft__fail(GRAFT_ESHAPE, "expected shape %s, found %s", want, found);
  }
  size_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (hd[i] && n > SIZE_MAX / 8 / hd[i]) return graft__fail(GRAFT_ELIMIT, "too large");
    n *= (size_t)hd[i];
  }
  *count = n;
  return GRAFT_OK;
fail:
  return st;
}

static graft_status check_storage(graft_h5 *f, hid_t dset, size_t bytes) {
  graft_status st = GRAFT_OK;
  hid_t dcpl = H5I_INVALID_HID;
  H5CK(dcpl = H5Dget_create_plist(dset));
  int n_ext, n_filters;
  H5D_layout_t layout;
  H5CK(n_ext = H5Pget_external_count(dcpl));
  H5CK(n_filters = H5Pget_nfilters(dcpl));
  H5CK(layout = H5Pget_layout(dcpl));
  graft__h5_close_id(dcpl);
  dcpl = H5I_INVALID_HID;
  if (n_ext > 0)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "external storage (data in other files) is not accepted");
  if (layout != H5D_CONTIGUOUS)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "%s layout is not accepted (datasets must be contiguous, without filters)",
                       layout == H5D_CHUNKED   ? "chunked"
                       : layout == H5D_COMPACT ? "compact"
                       : layout == H5D_VIRTUAL ? "virtual"
                                               : "unknown");
  if (n_filters > 0)
    return graft__fail(GRAFT_EUNSUPPORTED, "%d filter(s): compression is not accepted", n_filters);
  if (bytes == 0) return GRAFT_OK;
  /* The data must be stored, be exactly the dataset's size and lie inside the
   * file: a truncated or forged file fails here, before any read. */
  haddr_t off = H5Dget_offset(dset);
  hsize_t stored = H5Dget_storage_size(dset);
  H5Eclear2(H5E_DEFAULT);
  if (off == HADDR_UNDEF || stored == 0)
    return graft__fail(GRAFT_EFORMAT, "no data stored (never written)");
  if (stored != bytes)
    return graft__fail(GRAFT_EFORMAT, "stores %llu bytes, expected %zu",
                       (unsigned long long)stored, bytes);
  /* H5Dget_offset already counts the user block: a byte position in the file. */
  if (off > f->size || stored > f->size - off)
    return graft__fail(GRAFT_EFORMAT,
                       "data at bytes %llu..%llu lies past the end of the file (%llu bytes; "
                       "truncated?)",
                       (unsigned long long)off, (unsigned long long)(off + stored),
                       (unsigned long long)f->size);
  return GRAFT_OK;
fail:
  graft__h5_close_id(dcpl);
  return st;
}

/* Every check, in order; on success *out is the open dataset. */
static graft_status open_checked(graft_h5 *f, const char *name, ds_kind kind, int rank,
                                 const int64_t *dims, hid_t *out, size_t *count) {
  graft_status st = GRAFT_OK;
  hid_t dset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  *out = H5I_INVALID_HID;
  if (rank < 0 || rank > H5S_MAX_RANK || (rank && !dims))
    return graft__fail(GRAFT_EINVAL, "invalid rank %d", rank);
  if ((st = find_dataset(f, name)) != GRAFT_OK) return st;
  H5CK(dset = H5Dopen2(f->file, name, H5P_DEFAULT));
  H5CK(type = H5Dget_type(dset));
  if ((st = check_type(type, kind)) != GRAFT_OK) goto fail;
  H5CK(space = H5Dget_space(dset));
  if ((st = check_shape(space, rank, dims, count)) != GRAFT_OK) goto fail;
  size_t esize = kind == DS_F32 ? 4 : kind == DS_I64 || kind == DS_F64 ? 8 : 1;
  if ((st = check_storage(f, dset, *count * esize)) != GRAFT_OK) goto fail;
  graft__h5_close_id(space);
  graft__h5_close_id(type);
  *out = dset;
  return GRAFT_OK;
fail:
  graft__h5_close_id(space);
  graft__h5_close_id(type);
  graft__h5_close_id(dset);
  return st;
}

/* A checked float32 dataset's read handed to the parent (io/isolate.c). */
static bool defer_read(graft_h5 *f, graft_arena *mem, hid_t dset, const char *name, size_t n,
                       void *out, bool check_finite) {
  hid_t type = H5Dget_type(dset);
  htri_t big = type < 0 ? -1 : H5Tequal(type, H5T_IEEE_F32BE);
  graft__h5_close_id(type);
  haddr_t off = H5Dget_offset(dset); /* checked by check_storage */
  H5Eclear2(H5E_DEFAULT);
  if (big < 0 || off == HADDR_UNDEF) return false;
  return graft__arena_defer(mem, f->fd, out, (uint64_t)off, n * 4, big > 0, check_finite, name);
}

/* The checks, then (when out) a read of rows [first, first + rows) along the
 * first dimension (all of it when rows < 0), left to the parent when `defer`
 * is an arena that allows it (a whole float32 dataset in a child's shared
 * region). */
static graft_status read_checked(graft_h5 *f, const char *name, ds_kind kind, int rank,
                                 const int64_t *dims, void *out, bool check_finite,
                                 int64_t first, int64_t rows, graft_arena *defer) {
  GRAFT_TRY(graft__h5_enter());
  hid_t dset = H5I_INVALID_HID, file_space = H5I_INVALID_HID, mem_space = H5I_INVALID_HID;
  size_t n = 0;
  graft_status st = open_checked(f, name, kind, rank, dims, &dset, &n);
  if (st == GRAFT_OK && out && n && rows < 0 && defer &&
      defer_read(f, defer, dset, name, n, out, check_finite)) {
    graft__h5_close_id(dset);
    graft__h5_leave();
    return GRAFT_OK;
  }
  if (st == GRAFT_OK && rows >= 0) {
    if (rank < 1 || first < 0 || first > dims[0] || rows > dims[0] - first) {
      st = graft__fail(GRAFT_EINVAL, "rows %lld..%lld outside the dataset", (long long)first,
                       (long long)(first + rows));
    } else {
      n = dims[0] ? n / (size_t)dims[0] * (size_t)rows : 0;
      hsize_t start[H5S_MAX_RANK] = {0}, extent[H5S_MAX_RANK];
      for (int i = 0; i < rank; i++) extent[i] = (hsize_t)dims[i];
      start[0] = (hsize_t)first;
      extent[0] = (hsize_t)rows;
      if ((file_space = H5Dget_space(dset)) < 0 ||
          H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, extent, NULL) < 0 ||
          (mem_space = H5Screate_simple(rank, extent, NULL)) < 0)
        st = graft__h5_failed(GRAFT_EFORMAT, "H5Sselect_hyperslab", __FILE__, __LINE__);
    }
  }
  if (st == GRAFT_OK && out && n) {
    hid_t mem = kind == DS_F32   ? H5T_NATIVE_FLOAT
                : kind == DS_F64 ? H5T_NATIVE_DOUBLE
                : kind == DS_I64 ? H5T_NATIVE_INT64
                                 : H5T_NATIVE_UINT8;
    hid_t ms = rows >= 0 ? mem_space : H5S_ALL, fs = rows >= 0 ? file_space : H5S_ALL;
    if (H5Dread(dset, mem, ms, fs, H5P_DEFAULT, out) < 0)
      st = graft__h5_failed(GRAFT_EFORMAT, "H5Dread", __FILE__, __LINE__);
  }
  graft__h5_close_id(mem_space);
  graft__h5_close_id(file_space);
  graft__h5_close_id(dset);
  graft__h5_leave();
  if (st == GRAFT_OK && out && check_finite) {
    for (size_t i = 0; i < n; i++) {
      double v = kind == DS_F64 ? ((const double *)out)[i] : ((const float *)out)[i];
      if (!isfinite(v)) {
        /* The index in the whole dataset, also when reading some rows. */
        size_t row = rows > 0 ? n / (size_t)rows : 0, total = 1;
        for (int d = 0; d < rank; d++) total *= (size_t)dims[d];
        st = graft__fail(GRAFT_ENONFINITE, "%s at flat index %zu (of %zu values)",
                         isnan(v) ? "NaN" : "infinity", (rows >= 0 ? (size_t)first * row : 0) + i,
                         total);
        break;
      }
    }
  }
  if (st != GRAFT_OK) graft__context(st, "dataset \"%s\"", name);
  return st;
}

graft_status graft_h5_check_f32(graft_h5 *f, const char *name, int rank, const int64_t *dims) {
  return read_checked(f, name, DS_F32, rank, dims, NULL, false, 0, -1, NULL);
}

graft_status graft_h5_read_f32(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                               float *out, bool check_finite) {
  return read_checked(f, name, DS_F32, rank, dims, out, check_finite, 0, -1, NULL);
}

graft_status graft_h5_read_f32_rows(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                                    int64_t first, int64_t count, float *out, bool check_finite) {
  if (count < 0) return graft__fail(GRAFT_EINVAL, "dataset \"%s\": negative row count", name);
  return read_checked(f, name, DS_F32, rank, dims, out, check_finite, first, count, NULL);
}

graft_status graft_h5_read_f32_deferred(graft_h5 *f, graft_arena *mem, const char *name,
                                        int rank, const int64_t *dims, float *out,
                                        bool check_finite) {
  return read_checked(f, name, DS_F32, rank, dims, out, check_finite, 0, -1, mem);
}

graft_status graft_h5_read_f64(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                               double *out) {
  return read_checked(f, name, DS_F64, rank, dims, out, true, 0, -1, NULL);
}

graft_status graft_h5_read_i64(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                               int64_t *out) {
  return read_checked(f, name, DS_I64, rank, dims, out, false, 0, -1, NULL);
}

graft_status graft_h5_read_u8(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                              uint8_t *out) {
  return read_checked(f, name, DS_U8, rank, dims, out, false, 0, -1, NULL);
}
