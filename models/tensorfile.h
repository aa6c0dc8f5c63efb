/* Weights files read in this process, without HDF5 (models/tensorfile.c):
 * torch.save's .pth files, both formats (models/pth.c), and safetensors
 * (io/safetensors.h). Internal to models/: graft_model_load recognises them
 * by their first bytes and hands them here. Every reader works on the
 * file's bytes in memory and is safe on hostile bytes by construction
 * (bounded, checked, nothing executed), and fuzzed (test/fuzz). */
#ifndef GRAFT_TENSORFILE_H
#define GRAFT_TENSORFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/json.h"
#include "io/tensors.h"
#include "models/model.h"

typedef enum graft_tensorfile_kind {
  GRAFT_TF_NONE,   /* not one of these: HDF5 or unknown */
  GRAFT_TF_ZIP,    /* torch.save, zip format (PyTorch >= 1.6) */
  GRAFT_TF_LEGACY, /* torch.save, legacy format: a sequence of pickles */
  GRAFT_TF_SAFETENSORS
} graft_tensorfile_kind;

/* The kind of a file by its first bytes (head: at least 16 unless the file
 * is shorter). */
graft_tensorfile_kind graft__tensorfile_kind(const uint8_t *head, size_t n);

/* A whole file's bytes to a new model. */
graft_status graft__tensorfile_load(const uint8_t *buf, size_t n, graft_model **out);

/* A .pth file's tensors (models/pth.c): *t (malloc'd) points into buf. */
graft_status graft__pth_tensors(const uint8_t *buf, size_t n, bool zip, graft_tensor_ref **t,
                                int *count);

/* What graft-weights files must hold too (models/weights.c): preprocessing
 * in range for the architecture, class names without control characters. */
graft_status graft__check_preproc(const graft_preproc *p, const graft_arch *a);
graft_status graft__check_class_names(char *const *names, int count);

#endif
