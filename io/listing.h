/* Folder listings, and the one lister of image files: what classify's
 * directory arguments, the ImageFolder scan and bench's image folders use.
 * Names come sorted by their bytes (strcmp), as ImageFolder sorts them.
 * Whether a file is an image is read from its first bytes, never from its
 * name. */
#ifndef GRAFT_LISTING_H
#define GRAFT_LISTING_H

#include <stdbool.h>

#include "engine/base/status.h"
#include "io/strlist.h"

typedef enum graft_list_kind {
  GRAFT_LIST_FILES = 1, /* everything that is not a folder (followed links included) */
  GRAFT_LIST_DIRS = 2,  /* folders */
} graft_list_kind;

/* The names (not paths) of dir's entries of these kinds (a mask), sorted;
 * hidden ones (a leading '.') too. GRAFT_ENOENT or GRAFT_EIO when dir cannot
 * be read, the detail saying why ("Permission denied"). */
graft_status graft_list_dir(const char *dir, int kinds, graft_strlist *names);

/* dir/name, without doubling a slash dir ends with, into out; false when it
 * does not fit. */
bool graft_path_join(const char *dir, const char *name, char *out, size_t cap);

/* NULL when path holds a JPEG or PNG (by its first bytes), else why not:
 * "not an image", "empty file", "GIF images are not supported", "cannot
 * open: ...". The text is valid until the next call on this thread. */
const char *graft_image_file_unusable(const char *path);

typedef enum graft_image_filter {
  GRAFT_IMAGES_ANY,       /* every image format graft recognises, decoded or not */
  GRAFT_IMAGES_DECODABLE, /* JPEG and PNG */
} graft_image_filter;

/* Append to paths the image files in dir (dir/name), sorted by name, hidden
 * and irregular files (devices, pipes) left out; recursive: subfolders too,
 * each where its name sorts.
 * *found (may be NULL) counts what was appended. Errors as graft_list_dir
 * (for dir itself; unreadable subfolders are left out). */
graft_status graft_list_images(const char *dir, graft_image_filter filter, bool recursive,
                               graft_strlist *paths, int *found);

#endif
