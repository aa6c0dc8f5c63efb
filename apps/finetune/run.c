/* The finetune loop (see apps/finetune/run.h).
 *
 * Every random choice is a pure function of the seed and a position: the
 * shuffle of epoch e, the crop and flip of sample i in epoch e, the dropout of
 * batch s in epoch e, the new head's initial weights. A checkpoint therefore
 * needs only the position (epoch, batch) and the running sums to resume the
 * run bit for bit. */
#include "apps/finetune/run.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/backend.h"
#include "io/feature_cache.h"
#include "engine/base/log.h"
#include "engine/net.h"
#include "engine/base/rng.h"
#include "io/dataset.h"
#include "io/fsutil.h"
#include "models/checkpoint.h"
#include "models/model.h"

/* Stream tags: each kind of random choice draws from its own stream. */
enum {
  TAG_INIT = 1,
  TAG_SHUFFLE = 2,
  TAG_AUGMENT = 3,
  TAG_DROPOUT = 4,
};

static uint64_t stream(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
  return graft_rng_u64(graft_rng_u64(seed, tag), (a << 32) ^ b);
}

typedef struct split_state {
  graft_split *split;
  graft_loader *loader;
  graft_feature_cache *cache; /* NULL: no cache for this split */
  uint8_t *bad;               /* [n] undecodable, left out */
} split_state;

/* The files of an epoch (best.h5, last.h5) are written by a thread while the
 * next epoch trains: it works from a snapshot (the head and momentum copied
 * to host buffers the loop leaves alone until the next save, and its own copy
 * of the checkpoint's bookkeeping). A failed write stops the run at the next
 * save or at the end, and the previous files stay as they were.
 *
 * Saves are spaced by the config's save_every seconds (0: every epoch): a
 * cached AlexNet epoch takes about two seconds and its files are 700 MB, so
 * writing them every epoch would double the epoch's time on a small machine.
 * A better epoch's head is copied into the model at once (best_pending) and
 * goes to best.h5 with the next save. The last epoch, an interruption and a
 * stop always save; a crash loses at most save_every seconds of training,
 * and the files on disk are always a consistent pair from one moment. */
typedef struct writer {
  pthread_t thread;
  bool running;
  bool best;            /* best.h5 too */
  graft_checkpoint ck;  /* snapshot: history and bad-sample flags owned */
  graft_status status;
  char detail[1024];
} writer;

typedef struct run {
  const graft_config *cfg;
  const graft_finetune_options *opt;
  const graft_finetune_hooks *hooks;
  char dir[GRAFT_PATH_MAX], best[GRAFT_PATH_MAX + 16], last[GRAFT_PATH_MAX + 16];
  char metrics[GRAFT_PATH_MAX + 16], curves[GRAFT_PATH_MAX + 16];
  graft_model *m;
  graft_dataset data;
  graft_backend *be;
  graft_net *net;
  split_state train, val;
  int batch, dim;
  float *input, *rows, *trunk_rows, *loss;
  int32_t *labels, *pred;
  int *order, *slot_of;
  float *head_host, *momentum_host;
  size_t head_count, train_count, train_offset;
  graft_checkpoint ck; /* the run's position, sums, best and history */
  writer writer;
  int eval_rows;       /* rows per evaluation call from a complete cache */
  bool best_pending;   /* the model holds a better head than best.h5 */
  bool unsaved;        /* epochs have finished since the last save */
  double last_save;    /* when the last save started (now()) */
} run;

static void say(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const run *r, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (r->hooks && r->hooks->message) r->hooks->message(r->hooks->user, line);
}

static bool stop_requested(const run *r) {
  return r->hooks && r->hooks->stop && *r->hooks->stop;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* StepLR as PyTorch computes it: multiply by gamma at every step_size-th epoch. */
static double lr_at(const graft_config *c, int epoch) {
  double lr = c->lr;
  for (int e = 1; e <= epoch; e++)
    if (e % c->step_size == 0) lr *= c->gamma;
  return lr;
}

/* ---- model with the new head ---- */

/* nn.Linear's initialisation: weight and bias uniform in (-1/sqrt(in), 1/sqrt(in)). */
static void init_linear(float *w, float *b, int in, int out, graft_rng *rng) {
  double bound = 1.0 / sqrt((double)in);
  for (size_t i = 0; i < (size_t)in * out; i++)
    w[i] = (float)((graft_rng_double(rng) * 2 - 1) * bound);
  for (int i = 0; i < out; i++) b[i] = (float)((graft_rng_double(rng) * 2 - 1) * bound);
}

static graft_status build_model(run *r, const char *weights) {
  const graft_config *c = r->cfg;
  graft_model *src;
  graft_status s = graft_model_load(weights, &src);
  if (s != GRAFT_OK) return graft__context(s, "%s", weights);
  int k = r->data.n_classes;
  if (strcmp(src->arch.name, graft_config_arch(c)) != 0) {
    s = graft__fail(GRAFT_EINVAL, "%s: the weights are %s, the config says arch = %s", weights,
                    src->arch.name, graft_config_arch(c));
    graft_model_free(src);
    return s;
  }
  if (!c->new_head) {
    if (src->arch.num_classes != k)
      s = graft__fail(GRAFT_ESHAPE,
                      "%s: new_head = 0 keeps the last layer, but it has %d outputs and the "
                      "data has %d classes",
                      weights, src->arch.num_classes, k);
    if (s == GRAFT_OK) s = graft_model_set_class_names(src, r->data.classes, k);
    if (s != GRAFT_OK) {
      graft_model_free(src);
      return s;
    }
    r->m = src;
    return GRAFT_OK;
  }
  graft_model *m;
  s = graft_model_create(graft_config_arch(c), k, &m);
  if (s != GRAFT_OK) {
    graft_model_free(src);
    return s;
  }
  /* Everything but the last Linear carries over; the last one is new. */
  const graft_param *last_w = &m->arch.params[m->arch.n_params - 2];
  memcpy(m->params, src->params, last_w->offset * sizeof(float));
  graft_rng rng = {stream(c->seed, TAG_INIT, 0, 0), 0};
  init_linear(m->params + last_w->offset, m->params + last_w->offset + last_w->count,
              (int)last_w->dims[1], (int)last_w->dims[0], &rng);
  m->pre = src->pre;
  graft_model_free(src);
  s = graft_model_set_class_names(m, r->data.classes, k);
  if (s != GRAFT_OK) {
    graft_model_free(m);
    return s;
  }
  r->m = m;
  return GRAFT_OK;
}

/* ---- output folder ---- */

/* A run killed while writing (power loss, SIGKILL) leaves its temporary
 * files (NAME.tmp.PID.N, io/fsutil.c) behind; the finished files are the
 * previous ones, whole. Remove the temporaries of processes that are gone. */
static void remove_stale_temps(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  static const char *const names[] = {"best.h5", "last.h5", "metrics.csv", "curves.png"};
  struct dirent *e;
  while ((e = readdir(d))) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      size_t len = strlen(names[i]);
      long pid;
      unsigned long n;
      char end;
      if (strncmp(e->d_name, names[i], len) != 0 ||
          sscanf(e->d_name + len, ".tmp.%ld.%lu%c", &pid, &n, &end) != 2 || pid <= 0)
        continue;
      if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours */
      char path[GRAFT_PATH_MAX + 300];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) == 0)
        graft__warn("%s: removed, a partial file from a run that was killed", path);
    }
  }
  closedir(d);
}

static graft_status prepare_output(run *r) {
  const graft_config *c = r->cfg;
  graft_config_resolve(c, c->output, r->dir, sizeof r->dir);
  graft_status s = graft_mkdirs(r->dir);
  if (s != GRAFT_OK) return graft__context(s, "output folder %s", r->dir);
  snprintf(r->best, sizeof r->best, "%s/best.h5", r->dir);
  snprintf(r->last, sizeof r->last, "%s/last.h5", r->dir);
  snprintf(r->metrics, sizeof r->metrics, "%s/metrics.csv", r->dir);
  snprintf(r->curves, sizeof r->curves, "%s/curves.png", r->dir);
  remove_stale_temps(r->dir);
  /* Fail now, not after the first epoch, when the folder is not writable. */
  char probe[GRAFT_PATH_MAX + 32];
  snprintf(probe, sizeof probe, "%s/.graft-write-test", r->dir);
  s = graft_write_file_atomic(probe, "ok", 2);
  if (s != GRAFT_OK) return graft__context(s, "output folder %s is not writable", r->dir);
  unlink(probe);
  return GRAFT_OK;
}

/* ---- checkpoints ---- */

static void *write_files(void *arg) {
  run *r = arg;
  writer *w = &r->writer;
  graft_status s = GRAFT_OK;
  if (w->best && (s = graft_model_save(r->best, r->m)) != GRAFT_OK)
    graft__context(s, "%s", r->best);
  if (s == GRAFT_OK && (s = graft_checkpoint_save(r->last, &w->ck)) != GRAFT_OK)
    graft__context(s, "%s", r->last);
  w->status = s;
  if (s != GRAFT_OK) snprintf(w->detail, sizeof w->detail, "%s", graft_detail());
  return NULL;
}

/* Wait for the files being written; their failure is the run's. */
static graft_status writer_join(run *r) {
  writer *w = &r->writer;
  if (w->running) pthread_join(w->thread, NULL);
  w->running = false;
  free(w->ck.history);
  free(w->ck.train_bad);
  free(w->ck.val_bad);
  w->ck.history = NULL;
  w->ck.train_bad = w->ck.val_bad = NULL;
  graft_status s = w->status;
  w->status = GRAFT_OK;
  return s == GRAFT_OK ? s : graft__fail(s, "%s", w->detail);
}

/* The net's head becomes the model's: best.h5 gets it at the next save. */
static graft_status keep_best(run *r) {
  GRAFT_TRY(writer_join(r)); /* it may be reading the model */
  GRAFT_TRY(graft_net_get_head(r->net, r->m->params + r->m->arch.head_offset, NULL));
  r->best_pending = true;
  return GRAFT_OK;
}

/* Save last.h5 from the net's present state, and best.h5 when the model holds
 * a better head than it: in the background, or before returning when `wait`. */
static graft_status save(run *r, bool wait) {
  writer *w = &r->writer;
  GRAFT_TRY(writer_join(r));
  r->last_save = now();
  GRAFT_TRY(graft_net_get_head(r->net, r->head_host, r->momentum_host));
  const bool best = r->best_pending;
  r->best_pending = r->unsaved = false;
  const graft_checkpoint *ck = &r->ck;
  w->ck = *ck;
  w->ck.params = r->head_host + (r->train_offset - r->m->arch.head_offset);
  w->ck.momentum = r->momentum_host;
  w->ck.history = malloc((size_t)(ck->n_history ? ck->n_history : 1) * sizeof *ck->history);
  w->ck.train_bad = malloc((size_t)(ck->n_train ? ck->n_train : 1));
  w->ck.val_bad = malloc((size_t)(ck->n_val ? ck->n_val : 1));
  if (!w->ck.history || !w->ck.train_bad || !w->ck.val_bad) {
    writer_join(r); /* frees the partial snapshot */
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  memcpy(w->ck.history, ck->history, (size_t)ck->n_history * sizeof *ck->history);
  memcpy(w->ck.train_bad, ck->train_bad, (size_t)ck->n_train);
  memcpy(w->ck.val_bad, ck->val_bad, (size_t)ck->n_val);
  w->best = best;
  if (wait || pthread_create(&w->thread, NULL, write_files, r) != 0)
    write_files(r);
  else
    w->running = true;
  return wait ? writer_join(r) : GRAFT_OK;
}

static graft_status resume(run *r, bool restart) {
  const graft_config *c = r->cfg;
  graft_checkpoint *ck = &r->ck;
  struct stat st;
  if (restart || stat(r->last, &st) != 0) {
    if (restart) unlink(r->last);
    return GRAFT_OK;
  }
  graft_checkpoint got;
  graft_status s = graft_checkpoint_load(r->last, r->train_count, r->data.train.n,
                                         r->data.val.n, &got);
  if (s != GRAFT_OK)
    return graft__context(s, "%s (use --restart to start over)", r->last);
  if (got.config_hash != graft_config_hash(c) || strcmp(got.arch, graft_config_arch(c)) != 0 ||
      got.num_classes != r->data.n_classes) {
    graft_checkpoint_free(&got);
    return graft__fail(GRAFT_EINVAL,
                       "%s was written for a different config or data (use --restart to "
                       "start over)",
                       r->last);
  }
  memcpy(r->head_host + (r->train_offset - r->m->arch.head_offset), got.params,
         r->train_count * sizeof(float));
  s = graft_net_set_head(r->net, r->head_host, got.momentum_set ? got.momentum : NULL);
  free(got.params);
  free(got.momentum);
  got.params = got.momentum = NULL;
  memcpy(r->train.bad, got.train_bad, (size_t)r->data.train.n);
  memcpy(r->val.bad, got.val_bad, (size_t)r->data.val.n);
  free(got.train_bad);
  free(got.val_bad);
  got.train_bad = r->train.bad;
  got.val_bad = r->val.bad;
  *ck = got;
  if (s != GRAFT_OK) return s;
  if (ck->step > 0)
    say(r, "resuming from %s: epoch %d, batch %d", r->last, ck->epoch + 1, ck->step);
  else
    say(r, "resuming from %s after epoch %d", r->last, ck->epoch);
  return GRAFT_OK;
}

/* ---- one pass over a split ---- */

/* The samples of a pass in order: all that are not known bad, shuffled for training. */
static int pass_order(run *r, const split_state *ss, bool shuffle, int epoch) {
  int n = 0;
  for (int i = 0; i < ss->split->n; i++)
    if (!ss->bad[i]) r->order[n++] = i;
  if (shuffle) {
    graft_rng rng = {stream(r->cfg->seed, TAG_SHUFFLE, (uint64_t)epoch, 0), 0};
    for (int i = n - 1; i > 0; i--) {
      int j = (int)graft_rng_below(&rng, (uint64_t)i + 1);
      int t = r->order[i];
      r->order[i] = r->order[j];
      r->order[j] = t;
    }
  }
  return n;
}

/* Feature rows of one batch into the net: cached rows are copied, the others
 * decoded (by the loader) and run through the trunk. Undecodable samples are
 * dropped with a warning. Returns the batch's size after drops in *kept and
 * the samples in r->order's batch slice, compacted. */
static graft_status batch_features(run *r, split_state *ss, int *batch, int n, int *kept) {
  int staged = 0, out = 0;
  const size_t per = (size_t)3 * r->m->pre.crop * r->m->pre.crop, dim = (size_t)r->dim;
  for (int j = 0; j < n; j++) {
    int sample = batch[j];
    if (ss->cache && graft_feature_cache_has(ss->cache, sample)) {
      GRAFT_TRY(graft_feature_cache_get(ss->cache, sample, r->rows + (size_t)out * dim));
      r->slot_of[out] = -1;
      batch[out++] = sample;
      continue;
    }
    graft_loaded *it = graft_loader_next(ss->loader);
    if (!it || it->sample != sample)
      return graft__fail(GRAFT_EIO, "image loader out of step (sample %d)", sample);
    if (it->status != GRAFT_OK) {
      graft__warn("%s: %s; skipped", ss->split->samples[sample].path, it->error);
      ss->bad[sample] = 1;
      ss->split->skipped++;
      graft_loader_release(ss->loader, it);
      continue;
    }
    memcpy(r->input + (size_t)staged * per, it->pixels, per * sizeof(float));
    graft_loader_release(ss->loader, it);
    r->slot_of[out] = staged++;
    batch[out++] = sample;
  }
  if (staged > 0) {
    GRAFT_TRY(graft_net_trunk(r->net, staged, r->input));
    GRAFT_TRY(graft_net_get_features(r->net, staged, r->trunk_rows));
    for (int j = 0; j < out; j++) {
      if (r->slot_of[j] < 0) continue;
      const float *row = r->trunk_rows + (size_t)r->slot_of[j] * dim;
      memcpy(r->rows + (size_t)j * dim, row, dim * sizeof(float));
      if (ss->cache) GRAFT_TRY(graft_feature_cache_put(ss->cache, batch[j], row));
    }
  }
  *kept = out;
  if (out > 0) GRAFT_TRY(graft_net_put_features(r->net, out, r->rows));
  return GRAFT_OK;
}

/* Queue for the loader the samples of order[from..n) that it must decode. */
static graft_status queue_loader(run *r, split_state *ss, int from, int n, uint64_t seed) {
  int *q = malloc((size_t)(n - from + 1) * sizeof *q);
  if (!q) return graft__fail(GRAFT_ENOMEM, "out of memory");
  int m = 0;
  for (int i = from; i < n; i++)
    if (!(ss->cache && graft_feature_cache_has(ss->cache, r->order[i]))) q[m++] = r->order[i];
  graft_status s = graft_loader_start(ss->loader, q, m, seed);
  free(q);
  return s;
}

/* Train (or evaluate) over a split, training from the checkpoint's batch on.
 * The loss sum, correct count and image count accumulate into the pointers. */
static graft_status run_pass(run *r, bool train, int epoch, double *loss_sum, int64_t *correct,
                             int64_t *seen) {
  const graft_config *c = r->cfg;
  split_state *ss = train ? &r->train : &r->val;
  int n = pass_order(r, ss, train && c->shuffle, epoch);
  /* Evaluation from a complete cache takes the net's largest groups of rows:
   * each row's results are the same in any group (graft_net_eval_step). */
  int group = r->batch;
  if (!train && ss->cache) {
    bool all = true;
    for (int i = 0; all && i < n; i++) all = graft_feature_cache_has(ss->cache, r->order[i]);
    if (all) group = r->eval_rows;
  }
  int steps = (n + group - 1) / group;
  int step = train ? r->ck.step : 0;
  uint64_t aug_seed = stream(c->seed, TAG_AUGMENT, (uint64_t)epoch, 0);
  GRAFT_TRY(queue_loader(r, ss, step * group, n, aug_seed));
  graft_sgd_params sgd = {(float)lr_at(c, epoch), (float)c->momentum, (float)c->weight_decay,
                          false};
  for (; step < steps; step++) {
    int from = step * group, count = n - from < group ? n - from : group, kept = 0;
    int *batch = r->order + from;
    GRAFT_TRY(batch_features(r, ss, batch, count, &kept));
    if (kept > 0) {
      for (int j = 0; j < kept; j++) r->labels[j] = ss->split->samples[batch[j]].label;
      if (train)
        GRAFT_TRY(graft_net_train_step(r->net, kept, r->labels, &sgd,
                                       stream(c->seed, TAG_DROPOUT, (uint64_t)epoch,
                                              (uint64_t)step),
                                       r->loss, r->pred));
      else
        GRAFT_TRY(graft_net_eval_step(r->net, kept, r->labels, r->loss, r->pred));
      if (train) r->ck.momentum_set = 1;
      for (int j = 0; j < kept; j++) {
        if (!isfinite(r->loss[j]))
          return graft__fail(GRAFT_ENONFINITE,
                             "the loss is %s at epoch %d, batch %d (%s); the last good files "
                             "are kept",
                             isnan(r->loss[j]) ? "NaN" : "infinite", epoch + 1, step + 1,
                             ss->split->samples[batch[j]].path);
        *loss_sum += r->loss[j];
        *correct += r->pred[j] == r->labels[j];
      }
      *seen += kept;
    }
    if (r->hooks && r->hooks->progress)
      r->hooks->progress(r->hooks->user, train ? "train" : "val", epoch + 1, (int)c->epochs,
                         from + count, n, *seen ? *loss_sum / (double)*seen : 0);
    if (train) {
      r->ck.step = step + 1;
      if (stop_requested(r)) return GRAFT_EINTR;
    }
  }
  return GRAFT_OK;
}

static graft_status epoch_end(run *r, int epoch, double seconds, double val_loss,
                              double val_acc) {
  graft_checkpoint *ck = &r->ck;
  graft_epoch_metrics m = {epoch + 1,
                           ck->seen ? ck->loss_sum / (double)ck->seen : 0,
                           ck->seen ? (double)ck->correct / (double)ck->seen : 0,
                           val_loss,
                           val_acc,
                           lr_at(r->cfg, epoch),
                           seconds};
  graft_epoch_metrics *h = realloc(ck->history, (size_t)(ck->n_history + 1) * sizeof *h);
  if (!h) return graft__fail(GRAFT_ENOMEM, "out of memory");
  ck->history = h;
  h[ck->n_history++] = m;
  if (r->hooks && r->hooks->epoch_done) r->hooks->epoch_done(r->hooks->user, &m);
  if (val_acc > ck->best_acc) {
    ck->best_acc = val_acc;
    ck->best_epoch = epoch + 1;
    GRAFT_TRY(keep_best(r));
  }
  graft_status s = graft_write_metrics_csv(r->metrics, ck->history, ck->n_history);
  if (s != GRAFT_OK) return graft__context(s, "%s", r->metrics);
  char title[256];
  snprintf(title, sizeof title, "%s, %d classes, trainable %s, lr %g, batch %lld",
           graft_config_arch(r->cfg), r->data.n_classes, graft_config_trainable(r->cfg),
           r->cfg->lr, (long long)r->cfg->batch_size);
  s = graft_plot_curves(r->curves, ck->history, ck->n_history, title);
  if (s != GRAFT_OK) return graft__context(s, "%s", r->curves);
  ck->epoch = epoch + 1;
  ck->step = 0;
  ck->loss_sum = 0;
  ck->correct = ck->seen = 0;
  r->unsaved = true;
  if (r->cfg->save_every > 0 && now() - r->last_save < r->cfg->save_every &&
      epoch + 1 < r->cfg->epochs)
    return GRAFT_OK;
  return save(r, false);
}

/* A failed epoch (a NaN loss, a read error): best.h5 still gets the best
 * head found, which the failure did not touch; last.h5 stays as it was. */
static graft_status keep_best_file(run *r, graft_status failure) {
  if (!r->best_pending || writer_join(r) != GRAFT_OK) return failure;
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", graft_detail());
  graft_status s = graft_model_save(r->best, r->m);
  if (s != GRAFT_OK) graft__warn("%s: %s", r->best, graft_detail());
  return graft__fail(failure, "%s", detail);
}

/* Everything saved before returning: the pending files, then the writer. */
static graft_status flush(run *r) {
  if (r->unsaved || r->best_pending) return save(r, true);
  return writer_join(r);
}

static graft_status train_loop(run *r) {
  const graft_config *c = r->cfg;
  graft_checkpoint *ck = &r->ck;
  int first = ck->epoch, limit = (int)c->epochs;
  if (r->hooks && r->hooks->max_epochs_now > 0 && first + r->hooks->max_epochs_now < limit)
    limit = first + r->hooks->max_epochs_now;
  if (first >= c->epochs)
    say(r, "%s: all %lld epochs are done (raise epochs to train further, or --restart)", r->dir,
        (long long)c->epochs);
  r->last_save = now();
  for (int epoch = first; epoch < limit; epoch++) {
    double t0 = now();
    graft_status s = run_pass(r, true, epoch, &ck->loss_sum, &ck->correct, &ck->seen);
    if (s == GRAFT_EINTR) {
      graft_status w = save(r, true);
      if (w != GRAFT_OK) return w;
      say(r, "stopped at epoch %d, batch %d; %s saved (run again to resume)", epoch + 1,
          ck->step, r->last);
      return GRAFT_EINTR;
    }
    double vloss = 0;
    int64_t vcorrect = 0, vseen = 0;
    if (s == GRAFT_OK) s = run_pass(r, false, epoch, &vloss, &vcorrect, &vseen);
    if (s != GRAFT_OK) return keep_best_file(r, s);
    double seconds = now() - t0;
    GRAFT_TRY(epoch_end(r, epoch, seconds, vseen ? vloss / (double)vseen : 0,
                        vseen ? (double)vcorrect / (double)vseen : 0));
    if (stop_requested(r)) {
      GRAFT_TRY(flush(r));
      say(r, "stopped after epoch %d; %s saved (run again to resume)", epoch + 1, r->last);
      return GRAFT_EINTR;
    }
  }
  GRAFT_TRY(flush(r));
  if (ck->best_epoch > 0)
    say(r, "best validation accuracy %.6f at epoch %d (%s); skipped files: %d train, %d val",
        ck->best_acc, ck->best_epoch, r->best, r->data.train.skipped, r->data.val.skipped);
  return GRAFT_OK;
}

/* ---- set-up and tear-down ---- */

static graft_status setup(run *r, bool restart) {
  const graft_config *c = r->cfg;
  char path[GRAFT_PATH_MAX];
  graft_config_resolve(c, c->data, path, sizeof path);
  graft_status s = graft_dataset_open(path, &r->data);
  if (s != GRAFT_OK) return s;
  graft_config_resolve(c, c->weights, path, sizeof path);
  GRAFT_TRY(build_model(r, path));
  GRAFT_TRY(prepare_output(r));

  const char *note = NULL;
  GRAFT_TRY(graft_backend_create(&r->opt->backend, &r->be, &note));
  if (note) say(r, "%s", note);
  r->batch = (int)c->batch_size;
  r->dim = r->m->arch.feature_dim;
  GRAFT_TRY(graft_net_create(r->be, &r->m->arch, r->m->params, r->batch, r->m->pre.crop, r->m->pre.crop, &r->net));
  GRAFT_TRY(graft_net_train_init(r->net, c->trainable, (float)c->dropout));

  const graft_arch *a = &r->m->arch;
  r->head_count = a->n_floats - a->head_offset;
  r->train_count = graft_net_train_count(r->net);
  r->train_offset = graft_net_train_offset(r->net);
  r->eval_rows = graft_net_eval_batch(r->net);
  size_t per = (size_t)3 * r->m->pre.crop * r->m->pre.crop, b = (size_t)r->batch;
  size_t rows = (size_t)r->eval_rows > b ? (size_t)r->eval_rows : b;
  int most = r->data.train.n > r->data.val.n ? r->data.train.n : r->data.val.n;
  r->input = malloc(b * per * sizeof(float));
  r->rows = malloc(rows * r->dim * sizeof(float));
  r->trunk_rows = malloc(b * r->dim * sizeof(float));
  r->loss = malloc(rows * sizeof(float));
  r->labels = malloc(rows * sizeof(int32_t));
  r->pred = malloc(rows * sizeof(int32_t));
  r->slot_of = malloc(rows * sizeof(int));
  r->order = malloc((size_t)most * sizeof(int));
  r->head_host = malloc(r->head_count * sizeof(float));
  r->momentum_host = malloc(r->train_count * sizeof(float));
  r->train.bad = calloc((size_t)r->data.train.n, 1);
  r->val.bad = calloc((size_t)r->data.val.n, 1);
  if (!r->input || !r->rows || !r->trunk_rows || !r->loss || !r->labels || !r->pred ||
      !r->slot_of || !r->order || !r->head_host || !r->momentum_host || !r->train.bad ||
      !r->val.bad)
    return graft__fail(GRAFT_ENOMEM, "out of memory for the training buffers");
  memcpy(r->head_host, r->m->params + a->head_offset, r->head_count * sizeof(float));

  graft_checkpoint *ck = &r->ck;
  snprintf(ck->arch, sizeof ck->arch, "%s", graft_config_arch(c));
  snprintf(ck->trainable, sizeof ck->trainable, "%s", graft_config_trainable(c));
  ck->num_classes = r->data.n_classes;
  ck->config_hash = graft_config_hash(c);
  ck->seed = (uint64_t)c->seed;
  ck->best_acc = -1; /* the first epoch always writes best.h5 */
  ck->count = r->train_count;
  ck->n_train = r->data.train.n;
  ck->n_val = r->data.val.n;
  ck->train_bad = r->train.bad;
  ck->val_bad = r->val.bad;
  GRAFT_TRY(resume(r, restart));

  /* The trunk is frozen: with no random augmentation its output for an image
   * never changes, so it is computed once (graft_config_validate refuses a
   * cache with augmentation). Validation always uses the eval transform, so
   * its features are cached unless the cache is off. */
  bool augment = c->augment == GRAFT_AUGMENT_TUTORIAL;
  bool cache_train = c->cache_features == GRAFT_CACHE_ON ||
                     (c->cache_features == GRAFT_CACHE_AUTO && !augment);
  bool cache_val = c->cache_features != GRAFT_CACHE_OFF;
  int threads = c->threads > 0 ? (int)c->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  const int64_t mb = r->opt->cache_memory_mb;
  if (cache_train)
    GRAFT_TRY(graft_feature_cache_create(r->data.train.n, r->dim, mb, r->dir, &r->train.cache));
  if (cache_val)
    GRAFT_TRY(graft_feature_cache_create(r->data.val.n, r->dim, mb, r->dir, &r->val.cache));
  r->train.split = &r->data.train;
  r->val.split = &r->data.val;
  GRAFT_TRY(graft_loader_create(&r->data.train, &r->m->pre, augment, threads, &r->train.loader));
  GRAFT_TRY(graft_loader_create(&r->data.val, &r->m->pre, false, threads, &r->val.loader));
  return GRAFT_OK;
}

static void teardown(run *r) {
  graft_loader_destroy(r->train.loader);
  graft_loader_destroy(r->val.loader);
  graft_feature_cache_destroy(r->train.cache);
  graft_feature_cache_destroy(r->val.cache);
  graft_net_destroy(r->net);
  if (r->be) graft_backend_destroy(r->be);
  graft_model_free(r->m);
  graft_dataset_free(&r->data);
  free(r->input);
  free(r->rows);
  free(r->trunk_rows);
  free(r->loss);
  free(r->labels);
  free(r->pred);
  free(r->slot_of);
  free(r->order);
  free(r->head_host);
  free(r->momentum_host);
  free(r->train.bad);
  free(r->val.bad);
  free(r->ck.history);
}

graft_status graft_finetune_run(const graft_config *cfg, const graft_finetune_options *o,
                                const graft_finetune_hooks *hooks) {
  run r;
  memset(&r, 0, sizeof r);
  r.cfg = cfg;
  r.opt = o;
  r.hooks = hooks;
  graft_status s = graft_config_validate(cfg);
  if (s == GRAFT_OK) s = setup(&r, o->restart);
  if (s == GRAFT_OK && hooks && hooks->started) hooks->started(hooks->user);
  if (s == GRAFT_OK) s = train_loop(&r);
  /* Whatever happened, the files of the last finished epoch are complete. */
  graft_status w = writer_join(&r);
  if (s == GRAFT_OK) s = w;
  teardown(&r);
  return s;
}
