/* The finetune configuration: an HDF5 file whose root attributes are the
 * settings (README, "finetune"). Defaults are the PyTorch tutorial's recipe. */
#ifndef GRAFT_CONFIG_H
#define GRAFT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/base/status.h"

#define GRAFT_PATH_MAX 4096

typedef struct graft_config {
  char path[GRAFT_PATH_MAX];    /* the config file itself */
  char arch[16];
  char weights[GRAFT_PATH_MAX]; /* resolved against the config's folder */
  char data[GRAFT_PATH_MAX];    /* likewise */
  char output[GRAFT_PATH_MAX];  /* likewise; default runs/<config name> */
  int64_t epochs, batch_size, step_size, new_head, shuffle, seed, threads;
  double lr, momentum, weight_decay, gamma, dropout;
  double save_every;       /* seconds between checkpoints (0: every epoch) */
  char trainable[16];      /* classifier | head */
  char augment[16];        /* tutorial | none */
  char cache_features[8];  /* auto | on | off */
  char device[32];         /* auto | cpu | cuda[:N] */
  char precision[16];      /* fp32 | fp32-strict */
  bool given[32];          /* which settings the file set (indexed as the table) */
} graft_config;

/* Defaults for every setting; arch/weights/data empty. */
void graft_config_defaults(graft_config *c);

/* Read and validate. Unknown attributes, wrong types and out-of-range values
 * are errors naming the attribute. */
graft_status graft_config_load(const char *path, graft_config *c);

/* Set one setting from text (as given on the command line, name with '_' or
 * '-'); validates like graft_config_load. */
graft_status graft_config_set(graft_config *c, const char *name, const char *value);

/* Check the required settings are present and the combination is valid. */
graft_status graft_config_validate(const graft_config *c);

/* Write every setting that was given (and the required ones) atomically. */
graft_status graft_config_save(const char *path, const graft_config *c);

/* Print "name = value" lines, marking defaults. */
void graft_config_print(const graft_config *c, FILE *f);

/* A hash of the settings that determine the results (not epochs, output,
 * cache_features, device or threads), to refuse resuming a changed config. */
uint64_t graft_config_hash(const graft_config *c);

/* Turn a path relative to the config file's folder into a usable path. */
void graft_config_resolve(const graft_config *c, const char *rel, char *out, size_t cap);

/* Names of the settings, for --help and error messages. */
int graft_config_count(void);
const char *graft_config_name(int i);

#endif
