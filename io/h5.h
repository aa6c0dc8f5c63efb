/* Defensive HDF5 access. HDF5 is not hardened against hostile files, so
 * every dataset is checked (class, size, rank, dims, contiguous layout, no
 * filters, no external storage, extent inside the file) before it is read.
 * HDF5's own error stack is silenced and its filter plugins are disabled;
 * failures come back as graft statuses whose detail names the object. */
#ifndef GRAFT_H5_H
#define GRAFT_H5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef struct graft_h5 graft_h5; /* a file open for reading */
typedef struct graft_arena graft_arena; /* memory for a loader's result (io/isolate.h) */

/* GRAFT_ENOENT (missing), GRAFT_EFORMAT (not HDF5 / unreadable), GRAFT_EINVAL
 * (a directory or other non-regular file). Details never contain the path.
 *
 * Readers below: a missing attribute or dataset is GRAFT_ENOENT with the
 * detail `attribute "x": missing` / `dataset "x": missing`; a wrong class is
 * GRAFT_EFORMAT, a wrong shape GRAFT_ESHAPE; chunked, compact, virtual,
 * filtered or external datasets are GRAFT_EUNSUPPORTED; data that does not
 * lie inside the file is GRAFT_EFORMAT. Every entry point takes one
 * process-wide lock (the serial HDF5 library is not thread-safe); a graft_h5
 * may be shared between threads. */
graft_status graft_h5_open(const char *path, graft_h5 **out);
void graft_h5_close(graft_h5 *f);

/* ---- root attributes ---- */
bool graft_h5_has_attr(graft_h5 *f, const char *name);
/* Names of all root attributes, sorted; free with graft_strv_free. */
graft_status graft_h5_attr_names(graft_h5 *f, char ***names, int *count);
/* A scalar (or 1-element) string attribute, fixed- or variable-length.
 * Before the first variable-length string of a file is read, the whole file
 * is scanned once and its global heaps checked (io/h5_heap.c: HDF5 1.10.8
 * overflows on forged ones); an object there over 4096 bytes is GRAFT_ELIMIT. */
graft_status graft_h5_attr_string(graft_h5 *f, const char *name, char *buf, size_t cap);
/* A 1-D array of strings (fixed or variable); free with graft_strv_free. */
graft_status graft_h5_attr_strings(graft_h5 *f, const char *name, char ***out, int *count);
/* Integer class attribute, scalar or 1 element. */
graft_status graft_h5_attr_int(graft_h5 *f, const char *name, int64_t *v);
/* Float or integer class attribute, scalar or 1 element. */
graft_status graft_h5_attr_double(graft_h5 *f, const char *name, double *v);
/* Exactly `count` float/int values, converted to float. */
graft_status graft_h5_attr_floats(graft_h5 *f, const char *name, float *v, int count);
/* The HDF5 class of an attribute for error messages: "string", "integer", "float", "other". */
const char *graft_h5_attr_kind(graft_h5 *f, const char *name);

/* ---- attributes of a group below the root ----
 * group is a path ("a/b"): '/'-separated names reached through hard links
 * only (soft and external links are refused). A missing group is ENOENT. */
bool graft_h5_has_group(graft_h5 *f, const char *group);
bool graft_h5_has_attr_at(graft_h5 *f, const char *group, const char *name);
graft_status graft_h5_attr_strings_at(graft_h5 *f, const char *group, const char *name,
                                      char ***out, int *count);
/* As graft_h5_attr_kind; "missing" when the group or the attribute is
 * absent or cannot be opened. */
const char *graft_h5_attr_kind_at(graft_h5 *f, const char *group, const char *name);

/* ---- datasets ----
 * A name is a root dataset's, or a path below the root ("a/b/kernel:0") with
 * the same rules as a group's. */
/* Names of all root datasets, sorted; free with graft_strv_free. */
graft_status graft_h5_dataset_names(graft_h5 *f, char ***names, int *count);
bool graft_h5_has_dataset(graft_h5 *f, const char *name);
/* Check, then read a float32 dataset of exactly this rank and these dims.
 * With check_finite, a NaN/Inf is GRAFT_ENONFINITE naming the index. */
graft_status graft_h5_read_f32(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                               float *out, bool check_finite);
/* graft_h5_read_f32 into a block of mem (graft_arena_alloc, io/isolate.h)
 * that nothing but such reads fills. When mem is a child's shared region
 * the checks run now and the bytes are read later, by the parent, straight
 * from the file (its finiteness checked then): the child can no longer
 * touch the block. In any other arena exactly graft_h5_read_f32. */
graft_status graft_h5_read_f32_deferred(graft_h5 *f, graft_arena *mem, const char *name,
                                        int rank, const int64_t *dims, float *out,
                                        bool check_finite);
/* The checks of graft_h5_read_f32 without the read (a whole file's layout
 * can be validated before any bulk data is touched). */
graft_status graft_h5_check_f32(graft_h5 *f, const char *name, int rank, const int64_t *dims);
/* Rows [first, first + count) along the first dimension of a float32
 * dataset of exactly this rank and these dims, after the same checks, into
 * out (count * the other dims' product floats): a large matrix can be
 * converted a slab at a time. */
graft_status graft_h5_read_f32_rows(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                                    int64_t first, int64_t count, float *out, bool check_finite);
/* The shape of a dataset, for messages and for dims a reader cannot know in
 * advance (rank up to max_rank; 0 for a scalar). No type or storage checks. */
graft_status graft_h5_dataset_shape(graft_h5 *f, const char *name, int *rank, int64_t *dims,
                                    int max_rank);
/* Same checks for a float64 dataset (values must be finite). */
graft_status graft_h5_read_f64(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                               double *out);
/* Same checks for integer datasets (any integer class of the given size in bytes,
 * signed or not, converted to the native type by HDF5). */
graft_status graft_h5_read_i64(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                               int64_t *out);
graft_status graft_h5_read_u8(graft_h5 *f, const char *name, int rank, const int64_t *dims,
                              uint8_t *out);

/* ---- writing: to a temporary name beside path, renamed on commit ----
 * HDF5 1.8 file format; strings variable-length UTF-8 (as h5py writes them);
 * attributes scalars or 1-D arrays; datasets contiguous, little-endian, no
 * filters. After any failed write the file can no longer be committed. */
typedef struct graft_h5w graft_h5w;
graft_status graft_h5w_create(const char *path, graft_h5w **out);
graft_status graft_h5w_attr_string(graft_h5w *w, const char *name, const char *value);
graft_status graft_h5w_attr_strings(graft_h5w *w, const char *name, char *const *values,
                                    int count);
graft_status graft_h5w_attr_int(graft_h5w *w, const char *name, int64_t value);
graft_status graft_h5w_attr_double(graft_h5w *w, const char *name, double value);
graft_status graft_h5w_attr_floats(graft_h5w *w, const char *name, const float *v, int count);
graft_status graft_h5w_f32(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                           const float *data);
graft_status graft_h5w_f64(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                           const double *data);
graft_status graft_h5w_i64(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                           const int64_t *data);
graft_status graft_h5w_u8(graft_h5w *w, const char *name, int rank, const int64_t *dims,
                          const uint8_t *data);
/* Close, fsync, rename over path, fsync the directory. Frees w either way;
 * on failure nothing is left at path that was not there before. */
graft_status graft_h5w_commit(graft_h5w *w);
/* Close and remove the temporary file. */
void graft_h5w_abort(graft_h5w *w);

void graft_strv_free(char **v, int count);

#endif
