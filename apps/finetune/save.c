/* The output folder and the files of an epoch (run_impl.h).
 *
 * best.h5 and last.h5 are written by a thread while the next epoch trains: it
 * works from a snapshot (the classifier and momentum copied to host buffers
 * the loop leaves alone until the next save, and its own copy of the
 * checkpoint's bookkeeping). A failed write stops the run at the end of
 * the epoch in which it is found, and the previous files stay as they were.
 *
 * A file that cannot be written (disk full, quota, I/O error) stops the run
 * with exit 1 rather than training on: every file is written beside the
 * previous one and renamed over it, so the previous ones stay whole and the
 * temporaries are removed; graft itself is what fills the disk (700 MB a
 * save for AlexNet), so the next save would most likely fail too, and
 * training that cannot be saved is lost. Stopped, the run resumes from its
 * last saved files once there is room, at most save_every seconds back.
 *
 * Saves are spaced by the config's save_every seconds (0: every epoch): a
 * cached AlexNet epoch takes about two seconds and its files are 700 MB, so
 * writing them every epoch would double the epoch's time on a small machine.
 * A better epoch's classifier is copied into the model at once
 * (best_pending) and goes to best.h5 with the next save. The last epoch, an
 * interruption and a stop always save; a crash loses at most save_every seconds of training,
 * and the files on disk are always a consistent pair from one moment. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/finetune/run_impl.h"
#include "engine/base/log.h"

#define PROBE ".graft-write-test" /* written and removed to see the folder is writable */

/* A run killed while writing (power loss, SIGKILL) leaves its temporary
 * files (NAME.tmp.PID.N, io/fsutil.c) behind; the finished files are the
 * previous ones, whole. Called with the folder's run lock held: every writer
 * of these files holds that lock for as long as it writes (the saver thread
 * is joined before the run lets go of it), so a temporary found now belongs
 * to no live run, whatever its PID says. The PID cannot say it: a killed
 * run's process stays a zombie, still answering kill(pid, 0), until its new
 * parent reaps it (an mpirun that exits before its ranks are reaped leaves
 * them to init), and a PID may be reused or belong to another machine. */
static void remove_stale_temps(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  static const char *const names[] = {"best.h5",    "last.h5",         "metrics.csv",
                                      "curves.png", "predictions.png", PROBE};
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
      char path[GRAFT_PATH_MAX + 300];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) == 0)
        graft__warn("%s: removed, a partial file from a run that was killed", path);
    }
  }
  closedir(d);
}

graft_status graft__ft_output(run *r) {
  const graft_config *c = r->cfg;
  run_files *f = &r->files;
  graft_config_resolve(c, c->output, f->dir, sizeof f->dir);
  graft_status s = graft_mkdirs(f->dir);
  if (s != GRAFT_OK) return graft__context(s, "output folder %s", f->dir);
  /* Before anything in the folder is touched: another run's temporaries are
   * not stale, and its last.h5 is not ours to resume or remove. */
  s = graft_dir_lock(f->dir, RUN_LOCK, &f->lock);
  if (s != GRAFT_OK) return graft__context(s, "output folder %s", f->dir);
  snprintf(f->best, sizeof f->best, "%s/best.h5", f->dir);
  snprintf(f->last, sizeof f->last, "%s/last.h5", f->dir);
  snprintf(f->metrics, sizeof f->metrics, "%s/metrics.csv", f->dir);
  snprintf(f->curves, sizeof f->curves, "%s/curves.png", f->dir);
  remove_stale_temps(f->dir);
  /* Fail now, not after the first epoch, when the folder is not writable. */
  char probe[GRAFT_PATH_MAX + 32];
  snprintf(probe, sizeof probe, "%s/%s", f->dir, PROBE);
  s = graft_write_file_atomic(probe, "ok", 2);
  if (s != GRAFT_OK) return graft__context(s, "output folder %s is not writable", f->dir);
  unlink(probe);
  return GRAFT_OK;
}

graft_status graft__ft_saver(run *r) {
  saver *w = &r->saver;
  const graft_arch *a = &r->m->arch;
  size_t count = a->n_floats - a->classifier_offset;
  w->classifier = malloc(count * sizeof(float));
  w->momentum = malloc((r->train_count ? r->train_count : 1) * sizeof(float));
  if (!w->classifier || !w->momentum)
    return graft__fail(GRAFT_ENOMEM, "out of memory for the training buffers");
  memcpy(w->classifier, r->m->params + a->classifier_offset, count * sizeof(float));
  return GRAFT_OK;
}

void graft__ft_saver_free(saver *w) {
  free(w->classifier);
  free(w->momentum);
  w->classifier = w->momentum = NULL;
}

graft_status graft__ft_not_saved(graft_status s, const char *path) {
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", graft_detail());
  return graft__fail(s, "%s: not saved: %s; the run stops, what was saved before is intact",
                     path, detail);
}

static void *write_files(void *arg) {
  run *r = arg;
  saver *w = &r->saver;
  graft_status s = GRAFT_OK;
  if (w->best && (s = graft_model_save(r->files.best, r->m)) != GRAFT_OK)
    graft__ft_not_saved(s, r->files.best);
  if (s == GRAFT_OK && (s = graft_checkpoint_save(r->files.last, &w->ck)) != GRAFT_OK)
    graft__ft_not_saved(s, r->files.last);
  w->status = s;
  if (s != GRAFT_OK) snprintf(w->detail, sizeof w->detail, "%s", graft_detail());
  w->finished = true;
  return NULL;
}

graft_status graft__ft_writer_poll(run *r) {
  return r->saver.running && r->saver.finished ? graft__ft_writer_join(r) : GRAFT_OK;
}

graft_status graft__ft_writer_join(run *r) {
  saver *w = &r->saver;
  if (w->running) pthread_join(w->thread, NULL);
  w->running = false;
  w->finished = false;
  free(w->ck.history);
  free(w->ck.train_bad);
  free(w->ck.val_bad);
  w->ck.history = NULL;
  w->ck.train_bad = w->ck.val_bad = NULL;
  graft_status s = w->status;
  w->status = GRAFT_OK;
  return s == GRAFT_OK ? s : graft__fail(s, "%s", w->detail);
}

graft_status graft__ft_keep_best(run *r) {
  GRAFT_TRY(graft__ft_writer_join(r)); /* it may be reading the model */
  GRAFT_TRY(graft_net_get_classifier(r->net, r->m->params + r->m->arch.classifier_offset, NULL));
  r->saver.best_pending = true;
  r->best_unread[0] = '\0'; /* the model is best.h5's again */
  return GRAFT_OK;
}

graft_status graft__ft_save(run *r, bool wait) {
  saver *w = &r->saver;
  GRAFT_TRY(graft__ft_writer_join(r));
  w->last_save = graft_now();
  GRAFT_TRY(graft_net_get_classifier(r->net, w->classifier, w->momentum));
  const bool best = w->best_pending;
  w->best_pending = w->unsaved = false;
  const graft_checkpoint *ck = &r->ck;
  w->ck = *ck;
  w->ck.params = w->classifier + (r->train_offset - r->m->arch.classifier_offset);
  w->ck.momentum = w->momentum;
  w->ck.history = malloc((size_t)(ck->n_history ? ck->n_history : 1) * sizeof *ck->history);
  w->ck.train_bad = malloc((size_t)(ck->n_train ? ck->n_train : 1));
  w->ck.val_bad = malloc((size_t)(ck->n_val ? ck->n_val : 1));
  if (!w->ck.history || !w->ck.train_bad || !w->ck.val_bad) {
    graft__ft_writer_join(r); /* frees the partial snapshot */
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
  return wait ? graft__ft_writer_join(r) : GRAFT_OK;
}

/* A failed epoch (a NaN loss, a read error): best.h5 still gets the best
 * classifier found, which the failure did not touch; last.h5 stays as it was. */
graft_status graft__ft_keep_best_file(run *r, graft_status failure) {
  if (!r->saver.best_pending || graft__ft_writer_join(r) != GRAFT_OK) return failure;
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", graft_detail());
  graft_status s = graft_model_save(r->files.best, r->m);
  if (s != GRAFT_OK) graft__warn("%s: not saved: %s", r->files.best, graft_detail());
  return graft__fail(failure, "%s", detail);
}

graft_status graft__ft_flush(run *r) {
  if (r->saver.unsaved || r->saver.best_pending) return graft__ft_save(r, true);
  return graft__ft_writer_join(r);
}
