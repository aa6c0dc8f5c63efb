/* Settings files: an HDF5 file whose root attributes are named settings,
 * read into (and written from) a struct through a table that says, for each
 * setting, its field, type, default and bounds or choices. What the
 * settings mean belongs to the table's owner (apps/finetune/config.c). */
#ifndef GRAFT_SETTINGS_H
#define GRAFT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef enum graft_setting_type {
  GRAFT_SETTING_TEXT,   /* char[size] field; a string attribute */
  GRAFT_SETTING_INT,    /* int64_t field; an integer attribute */
  GRAFT_SETTING_REAL,   /* double field; an integer or float attribute */
  GRAFT_SETTING_CHOICE, /* int (or enum) field holding an index into choices; a string attribute */
} graft_setting_type;

typedef struct graft_setting {
  const char *name;
  graft_setting_type type;
  size_t offset;               /* of the field in the struct */
  size_t size;                 /* TEXT: the field's size */
  const char *text_default;    /* TEXT: default ("" = none) */
  double def, lo, hi;          /* INT, REAL: default and inclusive bounds; CHOICE: default index */
  const char *const *choices;  /* CHOICE: the names, NULL-terminated */
  /* TEXT: a check of the value beyond its length (NULL: none); GRAFT_ERANGE
   * with the detail saying what is allowed. */
  graft_status (*check)(const char *value);
  bool required;               /* must be given (TEXT: and not empty) */
  bool hashed;                 /* part of graft_settings_hash */
} graft_setting;

typedef struct graft_settings {
  const graft_setting *table;
  int count;
} graft_settings;

/* Every setting of obj to its default; none given. given has s->count flags. */
void graft_settings_defaults(const graft_settings *s, void *obj, bool *given);

/* Read the file's attributes into obj (defaults first), marking them given.
 * Unknown attributes, wrong types, out-of-range values and any dataset are
 * errors naming the attribute. Required settings are not checked here. The
 * file is parsed in a child process (io/isolate.h). */
graft_status graft_settings_load(const graft_settings *s, const char *path, void *obj,
                                 bool *given);

/* Set one setting from text (as given on a command line; '-' may stand for
 * '_'), checked as graft_settings_load checks it. */
graft_status graft_settings_set(const graft_settings *s, void *obj, bool *given, const char *name,
                                const char *value);

/* The first required setting that is missing, or -1. */
int graft_settings_missing(const graft_settings *s, const void *obj, const bool *given);

/* Write the given settings and the required ones, atomically. */
graft_status graft_settings_save(const graft_settings *s, const char *path, const void *obj,
                                 const bool *given);

/* Setting i's value as text ("0.001", "classifier"). */
void graft_settings_format(const graft_settings *s, int i, const void *obj, char *buf,
                           size_t cap);

/* FNV-1a over "name=value;" of the hashed settings, in table order. */
uint64_t graft_settings_hash(const graft_settings *s, const void *obj);

#endif
