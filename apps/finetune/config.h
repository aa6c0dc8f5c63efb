/* The finetune config: an HDF5 settings file (io/settings.h) whose root
 * attributes are the recipe (README, "finetune"). Defaults are the PyTorch
 * tutorial's. Every setting is parsed once, into its type, and checked in
 * one place: a loaded or validated config is one the run can use as is. */
#ifndef GRAFT_CONFIG_H
#define GRAFT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/backend.h"
#include "engine/base/status.h"
#include "engine/net.h"
#include "io/fsutil.h"

typedef enum graft_augment {
  GRAFT_AUGMENT_TUTORIAL = 0, /* RandomResizedCrop(224) + horizontal flip */
  GRAFT_AUGMENT_NONE,         /* the eval transform */
} graft_augment;

typedef enum graft_cache_mode {
  GRAFT_CACHE_AUTO = 0, /* on when augment is none */
  GRAFT_CACHE_ON,
  GRAFT_CACHE_OFF,
} graft_cache_mode;

typedef struct graft_config {
  char path[GRAFT_PATH_MAX];    /* the config file itself */
  int arch;                     /* index into graft_arch_list (models/arch.h) */
  char weights[GRAFT_PATH_MAX]; /* relative to the config's folder (graft_config_resolve) */
  char data[GRAFT_PATH_MAX];    /* likewise */
  char output[GRAFT_PATH_MAX];  /* likewise; "" = runs/<config name> */
  int64_t epochs, batch_size, step_size, new_head, shuffle, seed, threads;
  double lr, momentum, weight_decay, gamma, dropout;
  double save_every;            /* seconds between checkpoints (0: every epoch) */
  graft_trainable trainable;
  graft_augment augment;
  graft_cache_mode cache_features;
  char device[32];              /* auto | cpu | cuda[:N] */
  graft_precision precision;
  bool given[32];               /* which settings were given (indexed as the table) */
} graft_config;

/* Defaults for every setting; arch, weights and data not given. */
void graft_config_defaults(graft_config *c);

/* Read and validate. Unknown attributes, wrong types and out-of-range values
 * are errors naming the attribute. */
graft_status graft_config_load(const char *path, graft_config *c);

/* Set one setting from text (as given on the command line, name with '_' or
 * '-'); checked as graft_config_load checks it. */
graft_status graft_config_set(graft_config *c, const char *name, const char *value);

/* The first required setting not given ("arch", "weights", "data"), or NULL. */
const char *graft_config_missing(const graft_config *c);

/* The required settings present and the combination valid. */
graft_status graft_config_validate(const graft_config *c);

/* Write every setting that was given (and the required ones) atomically. */
graft_status graft_config_save(const char *path, const graft_config *c);

/* Print "name = value" lines, marking defaults. */
void graft_config_print(const graft_config *c, FILE *f);

/* A hash of the settings that determine the results (not epochs, output,
 * cache_features, device, precision, threads or save_every), to refuse
 * resuming a changed config. */
uint64_t graft_config_hash(const graft_config *c);

/* Turn a path relative to the config file's folder into a usable path ("":
 * the default output, runs/<config name>). */
void graft_config_resolve(const graft_config *c, const char *rel, char *out, size_t cap);

/* Names, as the config file writes them. */
const char *graft_config_arch(const graft_config *c);
const char *graft_config_trainable(const graft_config *c);

#endif
