/* The run's checkpoint (run_impl.h): its bookkeeping set for a run starting
 * now, then, when the output folder has a last.h5 of the same config and
 * data, everything in it: the trainable parameters and their momentum into
 * the net, the position and sums, the history, the samples found bad. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/finetune/run_impl.h"

/* The model becomes best.h5 again: a resumed run's best classifier, from an
 * earlier invocation, is read back now, while the run has no other thread
 * (reading an HDF5 file forks, and a fork beside running threads can
 * deadlock), so that predictions.png at the end has it in memory. A best.h5
 * that cannot be read only costs predictions.png (best_unread says why). */
static void read_best(run *r) {
  graft_model *best = NULL;
  graft_status s = graft_model_load(r->files.best, &best);
  const graft_arch *a = &r->m->arch;
  if (s == GRAFT_OK && (best->arch.n_floats != a->n_floats ||
                        best->arch.classifier_offset != a->classifier_offset ||
                        best->arch.num_classes != r->data.n_classes))
    s = graft__fail(GRAFT_ESHAPE, "%s is not this run's model", r->files.best);
  if (s == GRAFT_OK)
    memcpy(r->m->params + a->classifier_offset, best->params + a->classifier_offset,
           (a->n_floats - a->classifier_offset) * sizeof(float));
  else if (strstr(graft_detail(), r->files.best))
    snprintf(r->best_unread, sizeof r->best_unread, "%s", graft_detail());
  else
    snprintf(r->best_unread, sizeof r->best_unread, "%s: %s", r->files.best, graft_detail());
  graft_model_free(best);
}

static graft_status resume(run *r) {
  const graft_config *c = r->cfg;
  const char *last = r->files.last;
  float *classifier = r->saver.classifier;
  struct stat st;
  if (r->opt->restart || stat(last, &st) != 0) {
    if (r->opt->restart) unlink(last);
    return GRAFT_OK;
  }
  graft_checkpoint got;
  graft_status s =
      graft_checkpoint_load(last, r->train_count, r->data.train.n, r->data.val.n, &got);
  if (s != GRAFT_OK) return graft__context(s, "%s (use --restart to start over)", last);
  if (got.config_hash != graft_config_hash(c) || strcmp(got.arch, graft_config_arch(c)) != 0 ||
      got.num_classes != r->data.n_classes) {
    graft_checkpoint_free(&got);
    return graft__fail(GRAFT_EINVAL,
                       "%s was written for a different config or data (use --restart to "
                       "start over)",
                       last);
  }
  memcpy(classifier + (r->train_offset - r->m->arch.classifier_offset), got.params,
         r->train_count * sizeof(float));
  s = graft_net_set_classifier(r->net, classifier, got.momentum_set ? got.momentum : NULL);
  memcpy(r->train.bad, got.train_bad, (size_t)r->data.train.n);
  memcpy(r->val.bad, got.val_bad, (size_t)r->data.val.n);
  r->ck = got; /* the position, the sums, the best and the history */
  r->ck.params = r->ck.momentum = NULL;
  r->ck.train_bad = r->train.bad;
  r->ck.val_bad = r->val.bad;
  got.history = NULL; /* the run's now */
  graft_checkpoint_free(&got);
  if (s != GRAFT_OK) return s;
  if (r->ck.best_epoch > 0) read_best(r);
  if (r->ck.step > 0)
    graft__ft_say(r, "resuming from %s: epoch %d, batch %d", last, r->ck.epoch + 1, r->ck.step);
  else
    graft__ft_say(r, "resuming from %s after epoch %d", last, r->ck.epoch);
  return GRAFT_OK;
}

graft_status graft__ft_checkpoint(run *r) {
  const graft_config *c = r->cfg;
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
  return resume(r);
}
