/* The finetune loop: the PyTorch transfer-learning recipe (frozen trunk,
 * new head, SGD with momentum, StepLR, best-on-validation) driven by a
 * graft_config, with a feature cache and bit-exact resume. */
#ifndef GRAFT_FINETUNE_H
#define GRAFT_FINETUNE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "comm/comm.h"
#include "engine/backend.h"
#include "engine/base/status.h"
#include "apps/finetune/config.h"
#include "io/report.h"

typedef struct graft_finetune_hooks {
  /* Set-up is done (data scanned, weights loaded, output ready): what fails
   * from here on is a training failure. */
  void (*started)(void *user);
  /* phase "train" | "val" | "cache"; done of total images so far. */
  void (*progress)(void *user, const char *phase, int epoch, int epochs, int done, int total,
                   double mean_loss);
  void (*epoch_done)(void *user, const graft_epoch_metrics *m);
  /* One line for the user ("resuming from ...", a summary). */
  void (*message)(void *user, const char *line);
  /* Set (by a signal handler) to stop after the current batch, saving last.h5. */
  volatile sig_atomic_t *stop;
  /* For benchmarks: stop after this many epochs of this invocation (0 = all). */
  int max_epochs_now;
  void *user;
} graft_finetune_hooks;

/* How the run goes about it, beside the config's recipe. */
typedef struct graft_finetune_options {
  graft_backend_options backend; /* the config's device, threads and precision, and the rest */
  int64_t cache_memory_mb;       /* the feature cache's budget; < 0: a quarter of physical memory */
  bool restart;                  /* ignore (and replace) an earlier run's last.h5 */
  /* The job's ranks (NULL: this process alone). Every rank calls
   * graft_finetune_run with the same config; rank 0 runs the recipe, reads
   * and writes every file and reports, the others run their share of the
   * trunk (apps/finetune/share.c). The results are a single process's. */
  graft_comm *comm;
} graft_finetune_options;

/* Run the training the config describes. GRAFT_EINTR when stopped by
 * *hooks->stop (after last.h5 was saved). */
graft_status graft_finetune_run(const graft_config *cfg, const graft_finetune_options *o,
                                const graft_finetune_hooks *hooks);

#endif
