/* The finetune run (apps/finetune/run.h; its parts in run_impl.h): set-up,
 * the epochs, tear-down. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/finetune/predict.h"
#include "apps/finetune/run_impl.h"
#include "engine/devices.h"
#include "io/report.h"

void graft__ft_say(const run *r, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (r->hooks && r->hooks->message) r->hooks->message(r->hooks->user, line);
}

/* The backend, the net on it for the model and batch, ready to train (on
 * rank 0: the others run its trunk only). */
static graft_status open_net(run *r) {
  const graft_config *c = r->cfg;
  graft_backend_note note;
  GRAFT_TRY(graft_backend_create(&r->opt->backend, &r->be, &note));
  if (note.kind == GRAFT_FALLBACK_NO_GPU) graft__ft_say(r, "%s", note.line); /* not: no driver */
  r->batch = (int)c->batch_size;
  r->dim = r->m->arch.feature_dim;
  const int crop = r->m->pre.crop;
  graft_status s = graft_net_create(r->be, &r->m->arch, r->m->params, r->batch, crop, crop, &r->net);
  if (s == GRAFT_ELIMIT || s == GRAFT_ENOMEM) { /* the setting to change, on the same line */
    char why[900];
    snprintf(why, sizeof why, "%s", graft_detail());
    return graft__fail(s, "batch_size %d does not fit: %s; lower batch_size", r->batch, why);
  }
  GRAFT_TRY(s);
  if (r->rank != 0) return GRAFT_OK;
  GRAFT_TRY(graft_net_train_init(r->net, c->trainable, (float)c->dropout));
  r->train_count = graft_net_train_count(r->net);
  r->train_offset = graft_net_train_offset(r->net);
  r->eval_rows = graft_net_eval_rows(r->net);
  return GRAFT_OK;
}

/* Each split's feature cache (rank 0's) and image loader. The trunk is
 * frozen: with no random augmentation its output for an image never
 * changes, so it is computed once (graft_config_validate refuses a cache
 * with augmentation). Validation always uses the eval transform, so its
 * features are cached unless the cache is off. */
static graft_status open_splits(run *r) {
  const graft_config *c = r->cfg;
  bool augment = c->augment == GRAFT_AUGMENT_TUTORIAL;
  bool cache_train =
      c->cache_features == GRAFT_CACHE_ON || (c->cache_features == GRAFT_CACHE_AUTO && !augment);
  bool cache_val = c->cache_features != GRAFT_CACHE_OFF;
  if (r->rank != 0) cache_train = cache_val = false;
  /* Decoding threads: as many as the backend's (in a job, this process's share of the cores). */
  int threads = r->opt->backend.threads > 0 ? r->opt->backend.threads
                : c->threads > 0              ? (int)c->threads
                                              : (int)sysconf(_SC_NPROCESSORS_ONLN);
  const int64_t mb = r->opt->cache_memory_mb;
  const char *dir = r->files.dir;
  graft_status s = GRAFT_OK;
  if (cache_train)
    s = graft_feature_cache_create(r->data.train.n, r->dim, mb, dir, &r->train.cache);
  if (s == GRAFT_OK && cache_val)
    s = graft_feature_cache_create(r->data.val.n, r->dim, mb, dir, &r->val.cache);
  if (s == GRAFT_ELIMIT || s == GRAFT_ENOMEM) { /* the setting to change, on the same line */
    char why[900];
    snprintf(why, sizeof why, "%s", graft_detail());
    return graft__fail(s, "%s; set cache_features = off (or free space there)", why);
  }
  GRAFT_TRY(s);
  r->train.split = &r->data.train;
  r->val.split = &r->data.val;
  /* With augmentation, the training images' decodings are kept in the
   * memory the training features would have had, shared by the ranks on
   * this machine (each decodes its own jobs' images). */
  size_t keep =
      augment ? graft_cache_budget_bytes(mb) / (size_t)graft_comm_local_size(r->opt->comm) : 0;
  GRAFT_TRY(
      graft_loader_create(&r->data.train, &r->m->pre, augment, threads, keep, &r->train.loader));
  return graft_loader_create(&r->data.val, &r->m->pre, false, threads, 0, &r->val.loader);
}

/* Rank 0 reads and writes every file of the run: the output folder, the
 * checkpoint; the other ranks need the images and the weights only. */
static graft_status setup(run *r) {
  const graft_config *c = r->cfg;
  const bool first = r->rank == 0;
  char path[GRAFT_PATH_MAX];
  /* The output folder's lock first: a second run on it stops at once. It
   * is rank 0's, which alone writes there. */
  if (first) GRAFT_TRY(graft__ft_output(r));
  graft_config_resolve(c, c->data, path, sizeof path);
  GRAFT_TRY(graft_dataset_open(path, &r->data));
  graft_config_resolve(c, c->weights, path, sizeof path);
  GRAFT_TRY(graft__ft_model(r, path));
  GRAFT_TRY(open_net(r));
  GRAFT_TRY(graft__ft_buffers(r));
  GRAFT_TRY(graft__ft_share_init(r));
  if (first) GRAFT_TRY(graft__ft_saver(r));
  if (first) GRAFT_TRY(graft__ft_checkpoint(r));
  return open_splits(r);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

/* What every rank must see alike: the images (paths and labels) and the
 * trunk with its preprocessing. */
static uint64_t fingerprint(const run *r) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < r->data.n_classes; i++)
    h = fnv(h, r->data.classes[i], strlen(r->data.classes[i]) + 1);
  const graft_split *splits[] = {&r->data.train, &r->data.val};
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < splits[k]->n; i++) {
      h = fnv(h, splits[k]->samples[i].path, strlen(splits[k]->samples[i].path) + 1);
      h = fnv(h, &splits[k]->samples[i].label, sizeof splits[k]->samples[i].label);
    }
  const graft_preproc *p = &r->m->pre;
  int sizes[2] = {p->resize, p->crop};
  h = fnv(h, sizes, sizeof sizes);
  h = fnv(h, p->mean, sizeof p->mean);
  h = fnv(h, p->std, sizeof p->std);
  return fnv(h, r->m->params, r->m->arch.classifier_offset * sizeof(float));
}

/* Every rank set up, and alike; a failure anywhere is every rank's (rank 0
 * reports it). */
static graft_status setup_job(run *r) {
  graft_comm *comm = r->opt->comm;
  graft_status s = graft_comm_agree(comm, setup(r));
  if (s != GRAFT_OK || r->ranks <= 1) return s;
  uint64_t mine = fingerprint(r), first = mine;
  GRAFT_TRY(graft_comm_bcast(comm, &first, sizeof first));
  char data[GRAFT_PATH_MAX], weights[GRAFT_PATH_MAX];
  graft_config_resolve(r->cfg, r->cfg->data, data, sizeof data);
  graft_config_resolve(r->cfg, r->cfg->weights, weights, sizeof weights);
  if (mine != first)
    s = graft__fail(GRAFT_EINVAL,
                    "%s or %s differs from rank 0's (every rank needs the same images and "
                    "weights at the same paths)",
                    data, weights);
  return graft_comm_agree(comm, s);
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
  graft__ft_buffers_free(&r->buf);
  graft__ft_saver_free(&r->saver);
  graft__ft_share_free(r->share);
  free(r->train.bad);
  free(r->val.bad);
  free(r->ck.history);
  graft_dir_unlock(r->files.lock);
}

static graft_status epoch_end(run *r, int epoch, double seconds, double val_loss, double val_acc) {
  graft_checkpoint *ck = &r->ck;
  GRAFT_TRY(graft__ft_writer_poll(r)); /* a save that failed meanwhile stops the run now */
  graft_epoch_metrics m = {epoch + 1,
                           ck->seen ? ck->loss_sum / (double)ck->seen : 0,
                           ck->seen ? (double)ck->correct / (double)ck->seen : 0,
                           val_loss,
                           val_acc,
                           graft__ft_lr(r->cfg, epoch),
                           seconds};
  graft_epoch_metrics *h = realloc(ck->history, (size_t)(ck->n_history + 1) * sizeof *h);
  if (!h) return graft__fail(GRAFT_ENOMEM, "out of memory");
  ck->history = h;
  h[ck->n_history++] = m;
  if (r->hooks && r->hooks->epoch_done) r->hooks->epoch_done(r->hooks->user, &m);
  if (val_acc > ck->best_acc) {
    ck->best_acc = val_acc;
    ck->best_epoch = epoch + 1;
    GRAFT_TRY(graft__ft_keep_best(r));
  }
  graft_status s = graft_write_metrics_csv(r->files.metrics, ck->history, ck->n_history);
  if (s != GRAFT_OK) return graft__ft_not_saved(s, r->files.metrics);
  char title[256];
  snprintf(title, sizeof title, "%s, %d classes, trainable %s, lr %g, batch %lld",
           graft_config_arch(r->cfg), r->data.n_classes, graft_config_trainable(r->cfg), r->cfg->lr,
           (long long)r->cfg->batch_size);
  s = graft_plot_curves(r->files.curves, ck->history, ck->n_history, title);
  if (s != GRAFT_OK) return graft__ft_not_saved(s, r->files.curves);
  ck->epoch = epoch + 1;
  ck->step = 0;
  ck->loss_sum = 0;
  ck->correct = ck->seen = 0;
  r->saver.unsaved = true;
  if (r->cfg->save_every > 0 && graft_now() - r->saver.last_save < r->cfg->save_every &&
      epoch + 1 < r->cfg->epochs)
    return GRAFT_OK;
  return graft__ft_save(r, false);
}

static graft_status train_loop(run *r) {
  const graft_config *c = r->cfg;
  graft_checkpoint *ck = &r->ck;
  int first = ck->epoch, limit = (int)c->epochs;
  if (r->hooks && r->hooks->max_epochs_now > 0 && first + r->hooks->max_epochs_now < limit)
    limit = first + r->hooks->max_epochs_now;
  if (first >= c->epochs)
    graft__ft_say(r, "%s: all %lld epochs are done (raise epochs to train further, or --restart)",
                  r->files.dir, (long long)c->epochs);
  r->saver.last_save = graft_now();
  for (int epoch = first; epoch < limit; epoch++) {
    double t0 = graft_now();
    graft_status s = graft__ft_pass(r, true, epoch, &ck->loss_sum, &ck->correct, &ck->seen);
    if (s == GRAFT_EINTR) {
      graft_status w = graft__ft_save(r, true);
      if (w != GRAFT_OK) return w;
      graft__ft_say(r, "stopped at epoch %d, batch %d; %s saved (run again to resume)", epoch + 1,
                    ck->step, r->files.last);
      return GRAFT_EINTR;
    }
    double vloss = 0;
    int64_t vcorrect = 0, vseen = 0;
    if (s == GRAFT_OK) s = graft__ft_pass(r, false, epoch, &vloss, &vcorrect, &vseen);
    if (s != GRAFT_OK) return graft__ft_keep_best_file(r, s);
    double seconds = graft_now() - t0;
    GRAFT_TRY(epoch_end(r, epoch, seconds, vseen ? vloss / (double)vseen : 0,
                        vseen ? (double)vcorrect / (double)vseen : 0));
    if (graft__ft_stop_requested(r)) {
      GRAFT_TRY(graft__ft_flush(r));
      graft__ft_say(r, "stopped after epoch %d; %s saved (run again to resume)", epoch + 1,
                    r->files.last);
      return GRAFT_EINTR;
    }
  }
  GRAFT_TRY(graft__ft_flush(r));
  if (ck->best_epoch > 0) GRAFT_TRY(graft__ft_predictions(r));
  if (ck->best_epoch > 0)
    graft__ft_say(
        r, "best validation accuracy %.6f at epoch %d (%s); skipped files: %d train, %d val",
        ck->best_acc, ck->best_epoch, r->files.best, r->data.train.skipped, r->data.val.skipped);
  return GRAFT_OK;
}

graft_status graft_finetune_run(const graft_config *cfg, const graft_finetune_options *o,
                                const graft_finetune_hooks *hooks) {
  run r;
  memset(&r, 0, sizeof r);
  r.files.lock = -1;
  r.cfg = cfg;
  r.opt = o;
  r.hooks = hooks;
  r.rank = graft_comm_rank(o->comm);
  r.ranks = graft_comm_size(o->comm);
  /* The same config on every rank: the same verdict. */
  graft_status s = graft_config_validate(cfg);
  if (s == GRAFT_OK) s = setup_job(&r);
  if (s == GRAFT_OK && hooks && hooks->started) hooks->started(hooks->user);
  if (s == GRAFT_OK && r.rank != 0) {
    s = graft__ft_serve(&r);
  } else if (s == GRAFT_OK) {
    s = train_loop(&r);
    graft_status q = graft__ft_share_quit(&r, s);
    if (s == GRAFT_OK) s = q;
  }
  /* Whatever happened, the files of the last finished epoch are complete. */
  graft_status w = graft__ft_writer_join(&r);
  if (s == GRAFT_OK) s = w;
  teardown(&r);
  return s;
}
