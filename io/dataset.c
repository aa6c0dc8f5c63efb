#include "io/dataset.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/log.h"
#include "io/listing.h"
#include "io/strlist.h"

/* ---- scanning ---- */

/* Sorted entry names of dir; dirs_only selects subfolders, else files. */
static graft_status list_dir(const char *dir, bool dirs_only, graft_strlist *out) {
  graft_status s = graft_list_dir(dir, dirs_only ? GRAFT_LIST_DIRS : GRAFT_LIST_FILES, out);
  return s == GRAFT_OK ? s : graft__context(s, "%s", dir);
}

static graft_status scan_split(const char *root, const char *name, const graft_strlist *classes,
                               graft_split *out) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  int cap = 0;
  for (int c = 0; c < (int)classes->n; c++) {
    char cdir[4096 + 256];
    snprintf(cdir, sizeof cdir, "%s/%s", dir, classes->v[c]);
    graft_strlist files = {0};
    graft_status s = list_dir(cdir, false, &files);
    if (s != GRAFT_OK) {
      graft_strlist_clear(&files);
      return s;
    }
    int used = 0;
    for (size_t i = 0; i < files.n; i++) {
      char path[8192];
      snprintf(path, sizeof path, "%s/%s", cdir, files.v[i]);
      const char *why = graft_image_file_unusable(path);
      if (why) {
        graft__warn("%s: %s; skipped", path, why);
        out->skipped++;
        continue;
      }
      if (out->n == cap) {
        cap = cap ? cap * 2 : 256;
        graft_sample *v = realloc(out->samples, (size_t)cap * sizeof *v);
        if (!v) {
          graft_strlist_clear(&files);
          return graft__fail(GRAFT_ENOMEM, "out of memory");
        }
        out->samples = v;
      }
      if (!(out->samples[out->n].path = strdup(path))) {
        graft_strlist_clear(&files);
        return graft__fail(GRAFT_ENOMEM, "out of memory");
      }
      out->samples[out->n++].label = c;
      used++;
    }
    graft_strlist_clear(&files);
    if (used == 0)
      return graft__fail(GRAFT_EINVAL, "%s: class \"%s\" has no images", dir, classes->v[c]);
  }
  return GRAFT_OK;
}

graft_status graft_dataset_open(const char *root, graft_dataset *d) {
  memset(d, 0, sizeof *d);
  char train[4096], val[4096];
  snprintf(train, sizeof train, "%s/train", root);
  snprintf(val, sizeof val, "%s/val", root);
  graft_strlist classes = {0}, vclasses = {0};
  graft_status s = list_dir(train, true, &classes);
  if (s == GRAFT_ENOENT) s = graft__fail(s, "%s: no train/ folder", root);
  if (s == GRAFT_OK && classes.n < 2)
    s = graft__fail(GRAFT_EINVAL, "%s: %s", train,
                    classes.n ? "only one class folder (need at least two)"
                              : "no class folders");
  if (s == GRAFT_OK) {
    s = list_dir(val, true, &vclasses);
    if (s == GRAFT_ENOENT) s = graft__fail(s, "%s: no val/ folder", root);
  }
  if (s == GRAFT_OK) {
    bool same = vclasses.n == classes.n;
    for (size_t i = 0; same && i < classes.n; i++) same = strcmp(classes.v[i], vclasses.v[i]) == 0;
    if (!same) s = graft__fail(GRAFT_EINVAL, "%s: val/ has other class folders than train/", root);
  }
  if (s == GRAFT_OK) s = scan_split(root, "train", &classes, &d->train);
  if (s == GRAFT_OK) s = scan_split(root, "val", &classes, &d->val);
  graft_strlist_clear(&vclasses);
  d->classes = classes.v;
  d->n_classes = (int)classes.n;
  if (s != GRAFT_OK) graft_dataset_free(d);
  return s;
}

static void split_free(graft_split *s) {
  for (int i = 0; i < s->n; i++) free(s->samples[i].path);
  free(s->samples);
  memset(s, 0, sizeof *s);
}

void graft_dataset_free(graft_dataset *d) {
  for (int i = 0; i < d->n_classes; i++) free(d->classes[i]);
  free(d->classes);
  split_free(&d->train);
  split_free(&d->val);
  memset(d, 0, sizeof *d);
}
