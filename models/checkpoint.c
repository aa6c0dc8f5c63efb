#include "models/checkpoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5.h"
#include "io/isolate.h"

enum { HIST_COLS = 7 }; /* epoch, train loss, train acc, val loss, val acc, lr, seconds */

graft_status graft_checkpoint_save(const char *path, const graft_checkpoint *c) {
  graft_h5w *w;
  GRAFT_TRY(graft_h5w_create(path, &w));
  int64_t count = (int64_t)c->count;
  double *hist = malloc((size_t)(c->n_history ? c->n_history : 1) * HIST_COLS * sizeof *hist);
  if (!hist) {
    graft_h5w_abort(w);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  for (int i = 0; i < c->n_history; i++) {
    const graft_epoch_metrics *m = &c->history[i];
    double row[HIST_COLS] = {m->epoch,  m->train_loss, m->train_acc, m->val_loss,
                             m->val_acc, m->lr,        m->seconds};
    memcpy(hist + (size_t)i * HIST_COLS, row, sizeof row);
  }
  /* Integers that may exceed 2^53 (hash, seed) are stored as their int64 bits. */
  int64_t hash_bits, seed_bits;
  memcpy(&hash_bits, &c->config_hash, sizeof hash_bits);
  memcpy(&seed_bits, &c->seed, sizeof seed_bits);
  graft_status s = graft_h5w_attr_string(w, "format", GRAFT_CHECKPOINT_FORMAT);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "version", GRAFT_CHECKPOINT_VERSION);
  if (s == GRAFT_OK) s = graft_h5w_attr_string(w, "arch", c->arch);
  if (s == GRAFT_OK) s = graft_h5w_attr_string(w, "trainable", c->trainable);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "num_classes", c->num_classes);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "config_hash", hash_bits);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "seed", seed_bits);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "epoch", c->epoch);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "step", c->step);
  if (s == GRAFT_OK) s = graft_h5w_attr_double(w, "loss_sum", c->loss_sum);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "correct", c->correct);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "seen", c->seen);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "momentum_set", c->momentum_set);
  if (s == GRAFT_OK) s = graft_h5w_attr_double(w, "best_acc", c->best_acc);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "best_epoch", c->best_epoch);
  if (s == GRAFT_OK) s = graft_h5w_f32(w, "params", 1, &count, c->params);
  if (s == GRAFT_OK) s = graft_h5w_f32(w, "momentum", 1, &count, c->momentum);
  if (s == GRAFT_OK) s = graft_h5w_u8(w, "train_bad", 1, (int64_t[]){c->n_train}, c->train_bad);
  if (s == GRAFT_OK) s = graft_h5w_u8(w, "val_bad", 1, (int64_t[]){c->n_val}, c->val_bad);
  if (s == GRAFT_OK)
    s = graft_h5w_f64(w, "history", 2, (int64_t[]){c->n_history, HIST_COLS}, hist);
  free(hist);
  if (s != GRAFT_OK) {
    graft_h5w_abort(w);
    return s;
  }
  return graft_h5w_commit(w);
}

static graft_status read_int(graft_h5 *f, const char *name, int64_t lo, int64_t hi, int64_t *v) {
  GRAFT_TRY(graft_h5_attr_int(f, name, v));
  if (*v < lo || *v > hi)
    return graft__fail(GRAFT_ERANGE, "attribute \"%s\" = %lld is outside [%lld, %lld]", name,
                       (long long)*v, (long long)lo, (long long)hi);
  return GRAFT_OK;
}

static graft_status load(graft_h5 *f, graft_arena *mem, size_t expected, int n_train,
                         int n_val, graft_checkpoint *c) {
  char fmt[64];
  int64_t v;
  GRAFT_TRY(graft_h5_attr_string(f, "format", fmt, sizeof fmt));
  if (strcmp(fmt, GRAFT_CHECKPOINT_FORMAT) != 0)
    return graft__fail(GRAFT_EFORMAT, "not a graft checkpoint (format \"%s\")", fmt);
  GRAFT_TRY(read_int(f, "version", GRAFT_CHECKPOINT_VERSION, GRAFT_CHECKPOINT_VERSION, &v));
  GRAFT_TRY(graft_h5_attr_string(f, "arch", c->arch, sizeof c->arch));
  GRAFT_TRY(graft_h5_attr_string(f, "trainable", c->trainable, sizeof c->trainable));
  GRAFT_TRY(read_int(f, "num_classes", 1, 1 << 20, &v));
  c->num_classes = (int)v;
  GRAFT_TRY(graft_h5_attr_int(f, "config_hash", &v));
  memcpy(&c->config_hash, &v, sizeof v);
  GRAFT_TRY(graft_h5_attr_int(f, "seed", &v));
  memcpy(&c->seed, &v, sizeof v);
  GRAFT_TRY(read_int(f, "epoch", 0, GRAFT_MAX_EPOCHS_HISTORY, &v));
  c->epoch = (int)v;
  GRAFT_TRY(read_int(f, "step", 0, INT32_MAX, &v));
  c->step = (int)v;
  GRAFT_TRY(graft_h5_attr_double(f, "loss_sum", &c->loss_sum));
  GRAFT_TRY(read_int(f, "correct", 0, INT64_MAX, &c->correct));
  GRAFT_TRY(read_int(f, "seen", 0, INT64_MAX, &c->seen));
  GRAFT_TRY(read_int(f, "momentum_set", 0, 1, &v));
  c->momentum_set = (int)v;
  GRAFT_TRY(graft_h5_attr_double(f, "best_acc", &c->best_acc));
  GRAFT_TRY(read_int(f, "best_epoch", 0, GRAFT_MAX_EPOCHS_HISTORY, &v));
  c->best_epoch = (int)v;
  if (!isfinite(c->loss_sum) || !isfinite(c->best_acc))
    return graft__fail(GRAFT_ENONFINITE, "non-finite running sums");
  c->count = expected;
  int64_t count = (int64_t)expected;
  /* Result memory (io/isolate.h): in a child's arena, the parent reads these
   * straight from the file. */
  c->params = graft_arena_alloc(mem, expected * sizeof(float));
  c->momentum = graft_arena_alloc(mem, expected * sizeof(float));
  c->n_history = c->epoch;
  c->history = calloc((size_t)(c->epoch ? c->epoch : 1), sizeof *c->history);
  double *hist = malloc((size_t)(c->epoch ? c->epoch : 1) * HIST_COLS * sizeof *hist);
  c->n_train = n_train;
  c->n_val = n_val;
  c->train_bad = calloc((size_t)(n_train ? n_train : 1), 1);
  c->val_bad = calloc((size_t)(n_val ? n_val : 1), 1);
  if (!c->params || !c->momentum || !c->history || !hist || !c->train_bad || !c->val_bad) {
    free(hist);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  graft_status s = graft_h5_read_f32_deferred(f, mem, "params", 1, &count, c->params, true);
  if (s == GRAFT_OK)
    s = graft_h5_read_f32_deferred(f, mem, "momentum", 1, &count, c->momentum, true);
  if (s == GRAFT_OK) s = graft_h5_read_u8(f, "train_bad", 1, (int64_t[]){n_train}, c->train_bad);
  if (s == GRAFT_OK) s = graft_h5_read_u8(f, "val_bad", 1, (int64_t[]){n_val}, c->val_bad);
  if (s == GRAFT_OK)
    s = graft_h5_read_f64(f, "history", 2, (int64_t[]){c->n_history, HIST_COLS}, hist);
  for (int i = 0; s == GRAFT_OK && i < c->n_history; i++) {
    const double *r = hist + (size_t)i * HIST_COLS;
    /* Row i is epoch i + 1's (the values are finite: graft_h5_read_f64 saw
     * to it; a cast of a double out of int's range would be undefined). */
    if (r[0] != i + 1) {
      s = graft__fail(GRAFT_EFORMAT, "history row %d is for epoch %g, not %d", i, r[0], i + 1);
      break;
    }
    c->history[i] = (graft_epoch_metrics){i + 1, r[1], r[2], r[3], r[4], r[5], r[6]};
  }
  free(hist);
  return s;
}

/* What the child is given and hands back (graft_checkpoint_load). */
typedef struct load_job {
  const char *path;
  size_t expected;
  int n_train, n_val;
} load_job;

/* The loader (io/isolate.h): the checkpoint in mem, its small arrays copied
 * there; params and momentum are in mem already. */
static graft_status load_checkpoint(void *arg, graft_arena *mem, void **result) {
  const load_job *j = arg;
  graft_checkpoint c;
  memset(&c, 0, sizeof c);
  graft_h5 *f;
  GRAFT_TRY(graft_h5_open(j->path, &f));
  graft_status s = load(f, mem, j->expected, j->n_train, j->n_val, &c);
  graft_h5_close(f);
  graft_checkpoint *pub = NULL;
  if (s == GRAFT_OK) {
    pub = graft_arena_copy(mem, &c, sizeof c);
    if (pub)
      pub->history = graft_arena_copy(mem, c.history, (size_t)c.n_history * sizeof *c.history);
    if (pub) pub->train_bad = graft_arena_copy(mem, c.train_bad, (size_t)c.n_train);
    if (pub) pub->val_bad = graft_arena_copy(mem, c.val_bad, (size_t)c.n_val);
    if (!pub || !pub->history || !pub->train_bad || !pub->val_bad)
      s = graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  if (s != GRAFT_OK) {
    c.params = c.momentum = NULL; /* the arena's: they go back with the job */
    graft_checkpoint_free(&c);
    return s;
  }
  free(c.history); /* the rest is the result's */
  free(c.train_bad);
  free(c.val_bad);
  *result = pub;
  return GRAFT_OK;
}

static void *dup_bytes(const void *src, size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (p && bytes) memcpy(p, src, bytes);
  return p;
}

graft_status graft_checkpoint_load(const char *path, size_t expected_count, int n_train,
                                   int n_val, graft_checkpoint *c) {
  memset(c, 0, sizeof *c);
  load_job j = {path, expected_count, n_train, n_val};
  graft_isolated *job;
  GRAFT_TRY(graft_isolate(path, load_checkpoint, &j, &job));
  const graft_checkpoint *pub = graft_isolated_result(job);
  *c = *pub;
  c->history = dup_bytes(pub->history, (size_t)pub->n_history * sizeof *pub->history);
  c->train_bad = dup_bytes(pub->train_bad, (size_t)pub->n_train);
  c->val_bad = dup_bytes(pub->val_bad, (size_t)pub->n_val);
  graft_status s = graft_isolated_keep(job, pub->params);
  if (s != GRAFT_OK) c->params = NULL;
  graft_status m = graft_isolated_keep(job, pub->momentum);
  if (m != GRAFT_OK) c->momentum = NULL;
  if (s == GRAFT_OK) s = m;
  if (s == GRAFT_OK && (!c->history || !c->train_bad || !c->val_bad))
    s = graft__fail(GRAFT_ENOMEM, "out of memory");
  graft_isolated_end(job);
  if (s != GRAFT_OK) graft_checkpoint_free(c);
  return s;
}

void graft_checkpoint_free(graft_checkpoint *c) {
  graft_arena_free(c->params, c->count * sizeof(float));
  graft_arena_free(c->momentum, c->count * sizeof(float));
  free(c->history);
  free(c->train_bad);
  free(c->val_bad);
  memset(c, 0, sizeof *c);
}
