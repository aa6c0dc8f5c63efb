#define _XOPEN_SOURCE 700 /* realpath */
/* bench's finetune workloads (apps/bench.h): one training step, evaluation
 * of cached rows, whole epochs of the finetune run. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/bench.h"
#include "apps/finetune/run.h"
#include "engine/base/rng.h"
#include "engine/net.h"
#include "io/listing.h"

/* ---- finetune-step ---- */
/* Random feature rows standing in for a cached trunk output (ReLU'd: >= 0). */
static void random_rows(const opts *o, float *rows, size_t count) {
  graft_rng rng = {(uint64_t)o->seed + 2, 0};
  for (size_t i = 0; i < count; i++) rows[i] = (float)graft_rng_double(&rng);
}

graft_status bench_step(const opts *o, graft_backend *be, result *r) {
  graft_model *m;
  GRAFT_TRY(bench_random_model(o, 2, &m));
  int b = (int)o->batch;
  size_t in = (size_t)b * 3 * 224 * 224, dim = (size_t)m->arch.feature_dim;
  float *x = malloc(in * sizeof *x), loss[4096];
  float *rows = o->cached ? malloc((size_t)b * dim * sizeof *rows) : NULL;
  int32_t labels[4096], pred[4096];
  graft_net *net = NULL;
  graft_status s = x && b <= 4096 && (rows || !o->cached)
                       ? GRAFT_OK
                       : graft__fail(GRAFT_ENOMEM, "out of memory");
  graft_rng rng = {(uint64_t)o->seed + 1, 0};
  for (size_t i = 0; s == GRAFT_OK && i < in; i++) x[i] = (float)(graft_rng_double(&rng) * 2 - 1);
  if (rows) random_rows(o, rows, (size_t)b * dim);
  for (int i = 0; i < b && i < 4096; i++) labels[i] = i % 2;
  if (s == GRAFT_OK) s = graft_net_create(be, &m->arch, m->params, b, 224, 224, &net);
  if (s == GRAFT_OK)
    s = graft_net_train_init(net, strcmp(o->trainable, "head") ? GRAFT_TRAIN_CLASSIFIER
                                                                 : GRAFT_TRAIN_HEAD, 0.5f);
  graft_sgd_params sgd = {0.001f, 0.9f, 0, false};
  bool finite = true;
  for (int it = -(int)o->warmup; s == GRAFT_OK && it < r->n; it++) {
    double t = graft_now();
    /* Cached: the rows are copied in every step, as finetune does (dropout
     * works in place on them). */
    s = rows ? graft_net_put_features(net, b, rows) : graft_net_trunk(net, b, x);
    if (s == GRAFT_OK) s = graft_net_train_step(net, b, labels, &sgd, (uint64_t)(it + 100), loss, pred);
    if (it >= 0) r->times[it] = graft_now() - t;
    for (int i = 0; i < b; i++) finite = finite && isfinite(loss[i]);
  }
  if (s == GRAFT_OK) {
    r->images = b;
    r->validated = finite;
    snprintf(r->extra, sizeof r->extra, ", \"trainable\": \"%s\", \"cached\": %s",
             o->trainable, o->cached ? "true" : "false");
  }
  graft_net_destroy(net);
  free(x);
  free(rows);
  graft_model_free(m);
  return s;
}

/* ---- finetune-eval ---- */
/* Validation from the feature cache: --rows rows per graft_net_eval_step on a
 * net made for --batch (the training batch). Validated: the per-row losses of
 * the first call equal those of the rows evaluated one at a time, to the bit
 * where the backend promises it (graft_net_eval_rows > batch), else to 1e-5. */
graft_status bench_eval(const opts *o, graft_backend *be, result *r) {
  graft_model *m;
  GRAFT_TRY(bench_random_model(o, 2, &m));
  graft_net *net = NULL;
  float *rows = NULL, *loss = NULL, *loss1 = NULL;
  int32_t *labels = NULL, *pred = NULL;
  graft_status s = graft_net_create(be, &m->arch, m->params, (int)o->batch, 224, 224, &net);
  if (s == GRAFT_OK) s = graft_net_train_init(net, GRAFT_TRAIN_CLASSIFIER, 0.5f);
  int cap = s == GRAFT_OK ? graft_net_eval_rows(net) : 0;
  int n = o->rows > 0 ? (int)o->rows : cap;
  size_t dim = (size_t)m->arch.feature_dim;
  if (s == GRAFT_OK && n > cap)
    s = graft__fail(GRAFT_EINVAL, "--rows %d: this net evaluates at most %d rows a call", n, cap);
  if (s == GRAFT_OK) {
    rows = malloc((size_t)n * dim * sizeof *rows);
    loss = malloc((size_t)n * sizeof *loss);
    loss1 = malloc((size_t)n * sizeof *loss1);
    labels = malloc((size_t)n * sizeof *labels);
    pred = malloc((size_t)n * sizeof *pred);
    if (!rows || !loss || !loss1 || !labels || !pred) s = graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  if (s == GRAFT_OK) {
    random_rows(o, rows, (size_t)n * dim);
    for (int i = 0; i < n; i++) labels[i] = i % 2;
  }
  for (int i = 0; s == GRAFT_OK && i < n; i++) {
    s = graft_net_put_features(net, 1, rows + (size_t)i * dim);
    if (s == GRAFT_OK) s = graft_net_eval_step(net, 1, labels + i, loss1 + i, pred + i);
  }
  for (int it = -(int)o->warmup; s == GRAFT_OK && it < r->n; it++) {
    double t = graft_now();
    s = graft_net_put_features(net, n, rows);
    if (s == GRAFT_OK) s = graft_net_eval_step(net, n, labels, loss, pred);
    if (it >= 0) r->times[it] = graft_now() - t;
  }
  if (s == GRAFT_OK) {
    bool exact = cap > (int)o->batch, same = true;
    double worst = 0;
    for (int i = 0; i < n; i++) {
      same = same && memcmp(&loss[i], &loss1[i], sizeof loss[i]) == 0;
      worst = fmax(worst, fabs((double)loss[i] - loss1[i]));
    }
    r->images = n;
    r->validated = exact ? same : worst <= 1e-5;
    snprintf(r->extra, sizeof r->extra,
             ", \"rows\": %d, \"eval_batch\": %d, \"same_bits\": %s, \"max_loss_diff\": %.3g",
             n, cap, same ? "true" : "false", worst);
  }
  graft_net_destroy(net);
  free(rows);
  free(loss);
  free(loss1);
  free(labels);
  free(pred);
  graft_model_free(m);
  return s;
}

/* ---- finetune-epoch ---- */
/* An epoch's time: the first epoch's own (training and validation), each
 * later one's the wall clock from the previous epoch's end to its own, so
 * the bookkeeping between epochs (metrics.csv, curves.png, keeping the best
 * classifier, the checkpoint writer's share of the machine) is in it. */
typedef struct epoch_log {
  double seconds[1024];
  double val_acc[1024];
  double done_at; /* when the previous epoch ended */
  int n;
  int images;
} epoch_log;

static void on_epoch(void *user, const graft_epoch_metrics *m) {
  epoch_log *l = user;
  double t = graft_now();
  if (l->n < 1024) {
    l->seconds[l->n] = l->n == 0 ? m->seconds : t - l->done_at;
    l->val_acc[l->n++] = m->val_acc;
  }
  l->done_at = t;
}

graft_status bench_epoch(const opts *o, result *r) {
  if (!o->data) return graft__fail(GRAFT_EINVAL, "finetune-epoch needs --data DIR");
  /* The config lives in a scratch folder and its relative paths would be
   * taken from there: give it the data folder's absolute path. */
  char data[PATH_MAX];
  if (!realpath(o->data, data))
    return graft__fail(GRAFT_EIO, "%s: %s", o->data, strerror(errno));
  char dir[] = "/tmp/graft-bench-XXXXXX";
  if (!mkdtemp(dir)) return graft__fail(GRAFT_EIO, "cannot create a scratch folder");
  char weights[PATH_MAX], cmd[128];
  snprintf(weights, sizeof weights, "%s/weights.h5", dir);
  graft_status s = GRAFT_OK;
  graft_model *m = NULL;
  if (o->weights) { /* the file itself (graft-weights or Keras), by its absolute path */
    if (!realpath(o->weights, weights))
      s = graft__fail(GRAFT_EIO, "%s: %s", o->weights, strerror(errno));
  } else {
    s = bench_random_model(o, 1000, &m);
    if (s == GRAFT_OK) s = graft_model_save(weights, m);
    graft_model_free(m);
  }
  graft_config c;
  graft_config_defaults(&c);
  snprintf(c.path, sizeof c.path, "%s/bench.h5", dir);
  char seed[32], epochs[32], batch[32], threads[32];
  snprintf(seed, sizeof seed, "%lld", o->seed);
  snprintf(epochs, sizeof epochs, "%lld", o->iterations);
  snprintf(batch, sizeof batch, "%lld", o->batch);
  snprintf(threads, sizeof threads, "%lld", o->threads);
  const char *set[][2] = {{"arch", o->arch},       {"weights", weights},
                          {"data", data},          {"augment", o->augment},
                          {"trainable", o->trainable}, {"epochs", epochs},
                          {"batch_size", batch},   {"seed", seed},
                          {"device", o->device},   {"precision", o->precision},
                          {"threads", threads}};
  for (size_t i = 0; s == GRAFT_OK && i < sizeof set / sizeof set[0]; i++)
    s = graft_config_set(&c, set[i][0], set[i][1]);
  epoch_log log = {0};
  graft_finetune_hooks hooks = {NULL, NULL, on_epoch, NULL, NULL, 0, &log};
  graft_finetune_options fo = {o->backend, o->cache_memory_mb, true, NULL};
  if (s == GRAFT_OK) s = graft_finetune_run(&c, &fo, &hooks);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", dir);
  if (s != GRAFT_OK) return s;
  bool cached = strcmp(o->augment, "none") == 0;
  /* With the cache the first epoch computes the features: report it apart. */
  int first = cached ? 1 : 0;
  r->n = 0;
  for (int i = first; i < log.n; i++) r->times[r->n++] = log.seconds[i];
  bool ok = log.n == o->iterations && r->n > 0;
  for (int i = 0; i < log.n; i++) ok = ok && log.val_acc[i] >= 0 && log.val_acc[i] <= 1;
  r->validated = ok;
  r->images = 0; /* per epoch: train + val images, filled below from the data */
  snprintf(r->extra, sizeof r->extra,
           ", \"augment\": \"%s\", \"cache\": %s, \"first_epoch_s\": %.6f, \"val_acc\": %.6f",
           o->augment, cached ? "true" : "false", log.n ? log.seconds[0] : 0,
           log.n ? log.val_acc[log.n - 1] : 0);
  return GRAFT_OK;
}

int bench_count_images(const char *data) {
  int n = 0;
  for (int i = 0; i < 2; i++) {
    char sub[4096];
    graft_strlist files = {0};
    int found = 0;
    snprintf(sub, sizeof sub, "%s/%s", data, i ? "val" : "train");
    if (graft_list_images(sub, GRAFT_IMAGES_DECODABLE, true, &files, &found) == GRAFT_OK)
      n += found;
    graft_strlist_clear(&files);
  }
  return n;
}
