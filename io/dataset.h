/* ImageFolder datasets and the loader that decodes and augments them on
 * worker threads ahead of the compute. */
#ifndef GRAFT_DATASET_H
#define GRAFT_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "io/preprocess.h"

typedef struct graft_sample {
  char *path;
  int32_t label;
} graft_sample;

typedef struct graft_split {
  graft_sample *samples;
  int n;
  int skipped; /* files that are not decodable images, warned about and left out */
} graft_split;

typedef struct graft_dataset {
  char **classes; /* sorted (byte order) subfolder names of train/ */
  int n_classes;
  graft_split train, val;
} graft_dataset;

/* Scan root/train and root/val. Classes come from train/; val/ must have the
 * same. Files are judged by their first bytes: anything that is not a JPEG or
 * PNG is skipped with one warning (graft__warn) and counted. An empty class,
 * a single class or a missing val/ is an error. */
graft_status graft_dataset_open(const char *root, graft_dataset *d);
void graft_dataset_free(graft_dataset *d);

/* ---- the loader ---- */
typedef struct graft_loader graft_loader;

typedef struct graft_loaded {
  int sample;      /* index into the split */
  graft_status status;
  char error[256]; /* when status != OK */
  float *pixels;   /* 3 x crop x crop, normalised CHW; owned by the loader */
} graft_loaded;

/* threads decoding workers; augment: the train transform (else eval).
 * keep_bytes: with augment, decoded images up to this many bytes in all are
 * kept for the later passes, which then crop and flip them without decoding
 * the file again (the first images decoded, until the budget is spent; 0
 * keeps none). The results are the same bits either way. */
graft_status graft_loader_create(const graft_split *split, const graft_preproc *pre,
                                 bool augment, int threads, size_t keep_bytes,
                                 graft_loader **out);
void graft_loader_destroy(graft_loader *l);

/* Queue samples in this order (copied) for one pass; the random crop and
 * flip of sample i in this pass come from (seed, i) alone, so results do not
 * depend on thread timing. Cancels what was queued before. */
graft_status graft_loader_start(graft_loader *l, const int *order, int n, uint64_t seed);

/* The next image of the pass, in queue order; blocks until it is ready.
 * Returns NULL when the pass is over. Valid until graft_loader_release. */
graft_loaded *graft_loader_next(graft_loader *l);
void graft_loader_release(graft_loader *l, graft_loaded *item);

#endif
