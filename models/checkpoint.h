/* last.h5: everything needed to resume a finetune run bit for bit — the
 * trainable parameters and their momentum, where the run stood (epoch, batch,
 * the epoch's running sums), the best accuracy so far, the metrics history
 * and a hash of the config that produced it. Randomness is a pure function of
 * (seed, epoch, batch), so the position is the RNG state. */
#ifndef GRAFT_CHECKPOINT_H
#define GRAFT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "io/report.h"

#define GRAFT_CHECKPOINT_FORMAT "graft-checkpoint"
#define GRAFT_CHECKPOINT_VERSION 1
#define GRAFT_MAX_EPOCHS_HISTORY 100000

typedef struct graft_checkpoint {
  char arch[16];
  char trainable[16];
  int num_classes;
  uint64_t config_hash;
  uint64_t seed;
  int epoch;          /* epochs completed */
  int step;           /* batches done in epoch `epoch` (0 at an epoch boundary) */
  double loss_sum;    /* the running epoch's sums */
  int64_t correct, seen;
  int momentum_set;   /* a step has run: momentum holds history */
  double best_acc;
  int best_epoch;
  size_t count;       /* trainable floats */
  float *params;      /* [count]; loaded ones a block of an arena (io/isolate.h) */
  float *momentum;    /* [count]; likewise */
  int n_history;
  graft_epoch_metrics *history; /* [n_history] */
  /* Samples found undecodable so far (1 = left out), so a resumed run leaves
   * out the same ones from the same point on. */
  int n_train, n_val;
  uint8_t *train_bad, *val_bad;
} graft_checkpoint;

graft_status graft_checkpoint_save(const char *path, const graft_checkpoint *c);
/* Loads and checks, in a child process (io/isolate.h); the sizes must equal
 * the expected ones. Free with graft_checkpoint_free. */
graft_status graft_checkpoint_load(const char *path, size_t expected_count, int n_train,
                                   int n_val, graft_checkpoint *c);
void graft_checkpoint_free(graft_checkpoint *c);

#endif
