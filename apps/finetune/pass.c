/* One pass over a split (run_impl.h): the samples in order, each batch's
 * feature rows from the cache or through the trunk, and the training or
 * evaluation steps on them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/finetune/run_impl.h"
#include "engine/base/log.h"

graft_status graft__ft_buffers(run *r) {
  pass_buffers *b = &r->buf;
  size_t per = (size_t)3 * r->m->pre.crop * r->m->pre.crop, batch = (size_t)r->batch;
  size_t rows = (size_t)r->eval_rows > batch ? (size_t)r->eval_rows : batch;
  int most = r->data.train.n > r->data.val.n ? r->data.train.n : r->data.val.n;
  b->input = malloc(batch * per * sizeof(float));
  b->trunk_rows = malloc(batch * r->dim * sizeof(float));
  b->rows = malloc(rows * r->dim * sizeof(float));
  b->loss = malloc(rows * sizeof(float));
  b->labels = malloc(rows * sizeof(int32_t));
  b->pred = malloc(rows * sizeof(int32_t));
  b->order = malloc((size_t)most * sizeof(int));
  r->train.bad = calloc((size_t)r->data.train.n, 1);
  r->val.bad = calloc((size_t)r->data.val.n, 1);
  if (!b->input || !b->trunk_rows || !b->rows || !b->loss || !b->labels || !b->pred ||
      !b->order || !r->train.bad || !r->val.bad)
    return graft__fail(GRAFT_ENOMEM, "out of memory for the training buffers");
  return GRAFT_OK;
}

void graft__ft_buffers_free(pass_buffers *b) {
  void *all[] = {b->input,  b->trunk_rows, b->rows,    b->loss,
                 b->labels, b->pred,       b->order};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
  memset(b, 0, sizeof *b);
}

/* The samples of a pass in order: all that are not known bad, shuffled for training. */
static int pass_order(run *r, const split_state *ss, bool shuffle, int epoch) {
  pass_buffers *b = &r->buf;
  int n = 0;
  for (int i = 0; i < ss->split->n; i++)
    if (!ss->bad[i]) b->order[n++] = i;
  if (shuffle) {
    graft_rng rng = {graft__ft_stream(r->cfg->seed, TAG_SHUFFLE, (uint64_t)epoch, 0), 0};
    for (int i = n - 1; i > 0; i--) {
      int j = (int)graft_rng_below(&rng, (uint64_t)i + 1);
      int t = b->order[i];
      b->order[i] = b->order[j];
      b->order[j] = t;
    }
  }
  return n;
}

/* Feature rows of one batch into the net: from the cache when the split has
 * one (filled for this pass), else from the step's trunk job (share.c:
 * decoded and run here or on another rank). Images that fail to decode are
 * dropped (said where the job is taken). Returns the batch's size after drops in *kept and the
 * samples in b->order's batch slice, compacted. */
static graft_status batch_features(run *r, split_state *ss, int step, int *batch, int n,
                                   int *kept) {
  pass_buffers *b = &r->buf;
  const size_t dim = (size_t)r->dim;
  trunk_result job;
  int out = 0, at = 0, good = 0; /* at: this batch's place in its job */
  bool have = false;
  for (int j = 0; j < n; j++) {
    int sample = batch[j];
    if (ss->cache) { /* filled for this pass: a row, or an image that failed */
      if (!graft_feature_cache_has(ss->cache, sample)) continue;
      GRAFT_TRY(graft_feature_cache_get(ss->cache, sample, b->rows + (size_t)out * dim));
      batch[out++] = sample;
      continue;
    }
    if (!have) {
      GRAFT_TRY(graft__ft_share_next(r, ss, step, &job, &have));
      if (!have) return graft__fail(GRAFT_EIO, "trunk jobs out of step (step %d)", step);
    }
    if (at >= job.count || job.samples[at] != sample)
      return graft__fail(GRAFT_EIO, "trunk job out of step (sample %d)", sample);
    if (job.status[at++] != GRAFT_OK) continue;
    memcpy(b->rows + (size_t)out * dim, job.rows + (size_t)good++ * dim, dim * sizeof(float));
    batch[out++] = sample;
  }
  *kept = out;
  if (out > 0) GRAFT_TRY(graft_net_put_features(r->net, out, b->rows));
  return GRAFT_OK;
}

/* Every job of the pass into the cache before its first step: the trunk's
 * work of all the ranks at once, with nothing of the classifier between. A
 * stop (training only) leaves the rest. */
static graft_status fill_cache(run *r, split_state *ss, bool train, int epoch) {
  const size_t dim = (size_t)r->dim;
  const int total = graft__ft_share_images(r);
  trunk_result job;
  bool have;
  int done = 0;
  for (;;) {
    GRAFT_TRY(graft__ft_share_next(r, ss, -1, &job, &have));
    if (!have) return GRAFT_OK;
    for (int i = 0, good = 0; i < job.count; i++)
      if (job.status[i] == GRAFT_OK)
        GRAFT_TRY(graft_feature_cache_put(ss->cache, job.samples[i],
                                          job.rows + (size_t)good++ * dim));
    done += job.count;
    if (r->hooks && r->hooks->progress)
      r->hooks->progress(r->hooks->user, "cache", epoch + 1, (int)r->cfg->epochs, done, total, 0);
    if (train && graft__ft_stop_requested(r)) return GRAFT_EINTR;
  }
}

/* A NaN or infinite loss: say where, and what most likely caused it. The
 * batch's feature rows are still in r->buf.rows. Features that are not
 * finite come from the trunk; before the first step the loaded classifier
 * is at fault; after it, the classifier's steps diverged, which with a
 * frozen trunk is a learning rate too large for the size of its features (a
 * Keras trunk without graft's rescaling gives features ~58 times a
 * torchvision trunk's, models/keras.c). */
static graft_status diverged(const run *r, const split_state *ss, const int *batch, int kept,
                             int j, int epoch, int step, const graft_sgd_params *sgd,
                             bool stepped) {
  const float *rows = r->buf.rows;
  double sum = 0, most = 0;
  size_t n = (size_t)kept * (size_t)r->dim;
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    double v = rows[i];
    finite = finite && isfinite(v);
    sum += v * v;
    most = fabs(v) > most ? fabs(v) : most;
  }
  char cause[256];
  if (!finite)
    snprintf(cause, sizeof cause, "the trunk's features are not finite (check the weights)");
  else if (!stepped)
    snprintf(cause, sizeof cause,
             "before any training step, so the classifier's weights are to blame (check the "
             "weights file)");
  else
    snprintf(cause, sizeof cause,
             "training diverged: lr %g is likely too large for features of this size (RMS "
             "%.3g, largest %.3g in this batch); lower lr",
             (double)sgd->lr, sqrt(sum / (double)(n ? n : 1)), most);
  return graft__fail(GRAFT_ENONFINITE,
                     "the loss is %s at epoch %d, batch %d (%s): %s; the last good files are "
                     "kept",
                     isnan(r->buf.loss[j]) ? "NaN" : "infinite", epoch + 1, step + 1,
                     ss->split->samples[batch[j]].path, cause);
}

/* The pass's steps from `step` on: each batch's feature rows, then a
 * training or evaluation step on them. */
static graft_status steps(run *r, split_state *ss, bool train, int epoch, int step, int group,
                          int n, double *loss_sum, int64_t *correct, int64_t *seen) {
  const graft_config *c = r->cfg;
  pass_buffers *b = &r->buf;
  const int steps = (n + group - 1) / group;
  graft_sgd_params sgd = {(float)graft__ft_lr(c, epoch), (float)c->momentum, (float)c->weight_decay,
                          false};
  for (; step < steps; step++) {
    int from = step * group, count = n - from < group ? n - from : group, kept = 0;
    int *batch = b->order + from;
    GRAFT_TRY(batch_features(r, ss, step, batch, count, &kept));
    if (kept > 0) {
      for (int j = 0; j < kept; j++) b->labels[j] = ss->split->samples[batch[j]].label;
      const bool stepped = r->ck.momentum_set; /* these losses come after a step */
      if (train)
        GRAFT_TRY(graft_net_train_step(
            r->net, kept, b->labels, &sgd,
            graft__ft_stream(c->seed, TAG_DROPOUT, (uint64_t)epoch, (uint64_t)step), b->loss,
            b->pred));
      else
        GRAFT_TRY(graft_net_eval_step(r->net, kept, b->labels, b->loss, b->pred));
      if (train) r->ck.momentum_set = 1;
      for (int j = 0; j < kept; j++) {
        if (!isfinite(b->loss[j]))
          return diverged(r, ss, batch, kept, j, epoch, step, &sgd, stepped);
        *loss_sum += b->loss[j];
        *correct += b->pred[j] == b->labels[j];
      }
      *seen += kept;
    }
    if (r->hooks && r->hooks->progress)
      r->hooks->progress(r->hooks->user, train ? "train" : "val", epoch + 1, (int)c->epochs,
                         from + count, n, *seen ? *loss_sum / (double)*seen : 0);
    if (train) {
      r->ck.step = step + 1;
      if (graft__ft_stop_requested(r)) return GRAFT_EINTR;
    }
  }
  return GRAFT_OK;
}

graft_status graft__ft_pass(run *r, bool train, int epoch, double *loss_sum, int64_t *correct,
                            int64_t *seen) {
  const graft_config *c = r->cfg;
  split_state *ss = train ? &r->train : &r->val;
  int n = pass_order(r, ss, train && c->shuffle, epoch);
  /* Evaluation from a complete cache takes the net's largest groups of rows:
   * each row's results are the same in any group (graft_net_eval_step). */
  int group = r->batch;
  if (!train && ss->cache) {
    bool all = true;
    for (int i = 0; all && i < n; i++) all = graft_feature_cache_has(ss->cache, r->buf.order[i]);
    if (all) group = r->eval_rows;
  }
  int step = train ? r->ck.step : 0;
  uint64_t aug_seed = graft__ft_stream(c->seed, TAG_AUGMENT, (uint64_t)epoch, 0);
  graft_status s = graft__ft_share_plan(r, ss, train, epoch, step, group, n, aug_seed);
  /* With a cache, its rows first (they are all needed, and the trunk's work
   * then runs on every rank at once); the steps then read them. */
  if (s == GRAFT_OK && ss->cache) s = fill_cache(r, ss, train, epoch);
  if (s == GRAFT_OK) s = steps(r, ss, train, epoch, step, group, n, loss_sum, correct, seen);
  if (s != GRAFT_OK) {
    graft_status w = graft__ft_share_cancel(r);
    if (w != GRAFT_OK) return w;
  }
  return s;
}
