/* A model: an architecture, its parameters (one contiguous float buffer laid
 * out by graft_arch.params) and what a classifier needs to use it. */
#ifndef GRAFT_MODEL_H
#define GRAFT_MODEL_H

#include "engine/base/status.h"
#include "io/preprocess.h"
#include "models/arch.h"

#define GRAFT_WEIGHTS_FORMAT "graft-weights"
#define GRAFT_WEIGHTS_VERSION 1

typedef struct graft_model {
  graft_arch arch;
  float *params;       /* arch.n_floats floats, a block of an arena (io/isolate.h) */
  char **class_names;  /* NULL or arch.num_classes strings */
  graft_preproc pre;   /* resize, crop, mean, std */
  /* The file held the trunk only (a Keras file without its top): the
   * classifier is zeros, to be initialised by fine-tuning before any use. */
  bool no_classifier;
} graft_model;

/* Zero-initialised parameters, default preprocessing, no class names. */
graft_status graft_model_create(const char *arch, int num_classes, graft_model **out);
/* The same with the parameters from mem (a loader's arena, io/isolate.h);
 * graft_model_create takes them from graft_arena_private(). */
typedef struct graft_arena graft_arena;
graft_status graft__model_create_in(graft_arena *mem, const char *arch, int num_classes,
                                    graft_model **out);
/* A loader's failure: the model made by graft__model_create_in freed but
 * for its parameters, which are still the arena's (its job gives back every
 * block the caller did not keep; freeing them here too would unmap them
 * twice when the loader runs in process). */
void graft__model_drop(graft_model *m);
void graft_model_free(graft_model *m);

/* Replace the class names (count must equal num_classes; copied). */
graft_status graft_model_set_class_names(graft_model *m, char *const *names, int count);

/* Load a weights file: the graft-weights contract (README), a Keras VGG16
 * weights file (models/keras.c), or a PyTorch .pth or safetensors file
 * (models/tensorfile.h, read in this process without HDF5), told apart by
 * their content. Every dataset
 * is checked before it is read; a missing dataset is an error, an unexpected
 * one (graft-weights) a warning through graft__warn. Details name the
 * dataset, and for Keras files the layer. The file is parsed in a child
 * process (io/isolate.h): a crash or hang of HDF5 on it is an error, and the
 * parameters come back without a copy. */
graft_status graft_model_load(const char *path, graft_model **out);

/* Write the model in the same contract, atomically. */
graft_status graft_model_save(const char *path, const graft_model *m);

/* Pointer to a parameter's data. */
static inline float *graft_model_param(const graft_model *m, const graft_param *p) {
  return m->params + p->offset;
}

#endif
