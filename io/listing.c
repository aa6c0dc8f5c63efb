#include "io/listing.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/image.h"

/* Nesting beyond this is a loop of links, not a folder of images. */
#define MAX_DEPTH 32

bool graft_path_join(const char *dir, const char *name, char *out, size_t cap) {
  size_t dl = strlen(dir);
  int n = snprintf(out, cap, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
  return n >= 0 && (size_t)n < cap;
}

graft_status graft_list_dir(const char *dir, int kinds, graft_strlist *names) {
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    return graft__fail(e == ENOENT ? GRAFT_ENOENT : GRAFT_EIO, "%s", strerror(e));
  }
  struct dirent *e;
  char path[8192];
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (!graft_path_join(dir, e->d_name, path, sizeof path)) continue; /* no usable path */
    struct stat st;
    if (stat(path, &st) != 0) continue;
    int kind = S_ISDIR(st.st_mode) ? GRAFT_LIST_DIRS : GRAFT_LIST_FILES;
    if (!(kinds & kind)) continue;
    if (graft_strlist_push(names, e->d_name) != 0) {
      closedir(d);
      return graft__fail(GRAFT_ENOMEM, "out of memory");
    }
  }
  closedir(d);
  graft_strlist_sort(names);
  return GRAFT_OK;
}

/* The format of a file's first bytes; *why says why it could not be read. */
static graft_image_format sniff_file(const char *path, size_t *len, const char **why) {
  FILE *f = fopen(path, "rb");
  *len = 0;
  *why = NULL;
  if (!f) {
    *why = strerror(errno);
    return GRAFT_IMAGE_UNKNOWN;
  }
  uint8_t head[32];
  *len = fread(head, 1, sizeof head, f);
  fclose(f);
  return graft_image_sniff(head, *len);
}

const char *graft_image_file_unusable(const char *path) {
  static _Thread_local char why[96];
  size_t n;
  const char *err;
  graft_image_format fmt = sniff_file(path, &n, &err);
  if (err) {
    snprintf(why, sizeof why, "cannot open: %s", err);
    return why;
  }
  if (fmt == GRAFT_IMAGE_JPEG || fmt == GRAFT_IMAGE_PNG) return NULL;
  if (n == 0) return "empty file";
  if (fmt == GRAFT_IMAGE_UNKNOWN) return "not an image";
  snprintf(why, sizeof why, "%s images are not supported", graft_image_format_name(fmt));
  return why;
}

static graft_status list_images(const char *dir, graft_image_filter filter, bool recursive,
                                int depth, graft_strlist *paths, int *found) {
  graft_strlist names = {0};
  int kinds = GRAFT_LIST_FILES | (recursive ? GRAFT_LIST_DIRS : 0);
  graft_status s = graft_list_dir(dir, kinds, &names);
  char path[8192];
  for (size_t i = 0; s == GRAFT_OK && i < names.n; i++) {
    if (names.v[i][0] == '.' || !graft_path_join(dir, names.v[i], path, sizeof path)) continue;
    struct stat st;
    if (stat(path, &st) != 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth < MAX_DEPTH && list_images(path, filter, true, depth + 1, paths, found) != GRAFT_OK)
        graft_clear_detail(); /* an unreadable subfolder has no images to give */
      continue;
    }
    size_t n;
    const char *why;
    graft_image_format fmt = sniff_file(path, &n, &why);
    bool keep = filter == GRAFT_IMAGES_ANY ? fmt != GRAFT_IMAGE_UNKNOWN
                                           : fmt == GRAFT_IMAGE_JPEG || fmt == GRAFT_IMAGE_PNG;
    if (!keep) continue;
    if (graft_strlist_push(paths, path) != 0) s = graft__fail(GRAFT_ENOMEM, "out of memory");
    else if (found) (*found)++;
  }
  graft_strlist_clear(&names);
  return s;
}

graft_status graft_list_images(const char *dir, graft_image_filter filter, bool recursive,
                               graft_strlist *paths, int *found) {
  if (found) *found = 0;
  return list_images(dir, filter, recursive, 0, paths, found);
}
