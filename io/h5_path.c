/* Objects below the root of an HDF5 file (io/h5.h): paths, groups and
 * dataset shapes. Every step of a path must be a hard link to a group:
 * soft and external links could point anywhere, even into other files. */
#include <stdio.h>
#include <string.h>

#include "io/h5.h"
#include "io/h5_impl.h"

#define MAX_PATH_BYTES 1024
#define MAX_PATH_DEPTH 16

bool graft__h5_path_ok(const char *path) {
  if (!path || !path[0] || strlen(path) > MAX_PATH_BYTES) return false;
  int depth = 0;
  for (const char *c = path;;) {
    size_t n = strcspn(c, "/");
    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (++depth > MAX_PATH_DEPTH) return false;
    if (!c[n]) return true;
    c += n + 1;
  }
}

graft_status graft__h5_find(graft_h5 *f, const char *path, H5O_type_t want) {
  graft_status st = GRAFT_OK;
  if (!graft__h5_path_ok(path)) return graft__fail(GRAFT_EINVAL, "invalid name");
  char prefix[MAX_PATH_BYTES + 1], step[MAX_PATH_BYTES + 8] = "";
  size_t len = strlen(path);
  for (size_t end = 0; end <= len; end++) {
    if (path[end] != '/' && path[end] != '\0') continue;
    memcpy(prefix, path, end);
    prefix[end] = '\0';
    bool last = end == len;
    H5O_type_t need = last ? want : H5O_TYPE_GROUP;
    const char *what = need == H5O_TYPE_DATASET ? "dataset" : "group";
    /* The detail names the dataset or group asked for; a step on the way
     * is named in it. */
    if (last)
      step[0] = '\0';
    else
      snprintf(step, sizeof step, "\"%s\" ", prefix);
    htri_t exists;
    H5CK(exists = H5Lexists(f->file, prefix, H5P_DEFAULT));
    if (!exists) return graft__fail(GRAFT_ENOENT, "%smissing", step);
    H5L_info_t li;
    H5CK(H5Lget_info(f->file, prefix, &li, H5P_DEFAULT));
    if (li.type != H5L_TYPE_HARD)
      return graft__fail(GRAFT_EUNSUPPORTED, "%sis a %s link, not a %s", step,
                         li.type == H5L_TYPE_SOFT ? "soft" : "external", what);
    H5O_info_t oi;
    H5CK(H5Oget_info_by_name2(f->file, prefix, &oi, H5O_INFO_BASIC, H5P_DEFAULT));
    if (oi.type != need)
      return graft__fail(GRAFT_EFORMAT, "%sis a %s, not a %s", step,
                         oi.type == H5O_TYPE_GROUP     ? "group"
                         : oi.type == H5O_TYPE_DATASET ? "dataset"
                                                       : "named datatype",
                         what);
  }
  return GRAFT_OK;
fail:
  return st;
}

bool graft_h5_has_group(graft_h5 *f, const char *path) {
  if (graft__h5_enter() != GRAFT_OK) return false;
  bool yes = graft__h5_find(f, path, H5O_TYPE_GROUP) == GRAFT_OK;
  graft__h5_leave();
  return yes;
}


graft_status graft_h5_dataset_shape(graft_h5 *f, const char *name, int *rank, int64_t *dims,
                                    int max_rank) {
  *rank = -1;
  GRAFT_TRY(graft__h5_enter());
  graft_status st = graft__h5_find(f, name, H5O_TYPE_DATASET);
  hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID;
  if (st != GRAFT_OK) goto fail;
  H5CK(dset = H5Dopen2(f->file, name, H5P_DEFAULT));
  H5CK(space = H5Dget_space(dset));
  H5S_class_t sc;
  H5CK(sc = H5Sget_simple_extent_type(space));
  int have = 0;
  hsize_t hd[H5S_MAX_RANK];
  if (sc == H5S_SIMPLE) {
    H5CK(have = H5Sget_simple_extent_ndims(space));
    if (have > H5S_MAX_RANK || have > max_rank) {
      st = graft__fail(GRAFT_ESHAPE, "rank %d", have);
      goto fail;
    }
    H5CK(H5Sget_simple_extent_dims(space, hd, NULL));
  } else if (sc != H5S_SCALAR) {
    st = graft__fail(GRAFT_ESHAPE, "has no data (null dataspace)");
    goto fail;
  }
  for (int i = 0; i < have; i++) dims[i] = hd[i] > INT64_MAX ? -1 : (int64_t)hd[i];
  *rank = have;
fail:
  graft__h5_close_id(space);
  graft__h5_close_id(dset);
  graft__h5_leave();
  if (st != GRAFT_OK) graft__context(st, "dataset \"%s\"", name);
  return st;
}
