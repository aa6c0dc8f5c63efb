/* What the writers of other formats share (models/safetensors_write.c,
 * models/onnx_write.c): a growable byte buffer, JSON strings, the model's
 * metadata as text, and an output file written through a temporary. */
#ifndef GRAFT_EXPORT_UTIL_H
#define GRAFT_EXPORT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/base/status.h"
#include "models/model.h"

/* Bytes that grow; a failed allocation sets oom and later appends do nothing,
 * so a writer checks once at the end (graft__buf_status). */
typedef struct graft__buf {
  uint8_t *data;
  size_t len, cap;
  bool oom;
} graft__buf;

void graft__buf_put(graft__buf *b, const void *p, size_t n);
void graft__buf_str(graft__buf *b, const char *s);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void graft__buf_printf(graft__buf *b, const char *fmt, ...);
/* s as a JSON string literal, quoted and escaped. */
void graft__buf_json_string(graft__buf *b, const char *s);
/* n floats as a JSON array, each in the fewest digits that read back to it. */
void graft__buf_json_floats(graft__buf *b, const float *v, int n);
void graft__buf_free(graft__buf *b);
/* GRAFT_ENOMEM when an append failed, else GRAFT_OK. */
graft_status graft__buf_status(const graft__buf *b);

/* What a model must be to be written in another format: a classifier of
 * its own (not a Keras trunk awaiting fine-tuning) and class names in UTF-8. */
graft_status graft__export_check(const graft_model *m);

/* The metadata both formats carry, as key/value strings in this order:
 * arch, num_classes, class_names (a JSON array; only when the model has
 * names), mean, std (JSON arrays), resize, crop. */
enum { GRAFT__META_MAX = 7 };
typedef struct graft__meta {
  int n;
  const char *key[GRAFT__META_MAX];
  char *value[GRAFT__META_MAX];
} graft__meta;
graft_status graft__meta_init(graft__meta *meta, const graft_model *m);
void graft__meta_free(graft__meta *meta);

/* An output file written to a temporary beside it and renamed into place
 * on commit; a failure, or an abort, removes the temporary. Write errors are
 * remembered and reported by commit. */
typedef struct graft__out {
  FILE *f;
  char *tmp;
  const char *path;
  int err; /* the first errno of a failed write */
} graft__out;

graft_status graft__out_open(graft__out *o, const char *path);
void graft__out_write(graft__out *o, const void *p, size_t n);
/* n floats as little-endian IEEE 754 binary32, whatever the host's order. */
void graft__out_floats_le(graft__out *o, const float *v, size_t n);
graft_status graft__out_commit(graft__out *o);
void graft__out_abort(graft__out *o);

#endif
