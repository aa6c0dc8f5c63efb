/* The inside of a finetune run (apps/finetune/run.h), one job a file:
 *   run.c     set-up, the epochs, tear-down: graft_finetune_run
 *   pass.c    one pass over a split: the order, the features (from the
 *             cache, or decoded and through the trunk), the steps
 *   share.c   the trunk's work of a pass shared over the job's ranks
 *   save.c    the output folder, its stale temporaries, best.h5 and last.h5
 *             written by a thread
 *   head.c    the model with its new head
 *   resume.c  the checkpoint's bookkeeping, and resuming it from last.h5
 *
 * Every random choice is a pure function of the seed and a position: the
 * shuffle of epoch e, the crop and flip of sample i in epoch e, the dropout of
 * batch s in epoch e, the new head's initial weights. A checkpoint therefore
 * needs only the position (epoch, batch) and the running sums to resume the
 * run bit for bit. */
#ifndef GRAFT_FINETUNE_RUN_IMPL_H
#define GRAFT_FINETUNE_RUN_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "apps/finetune/run.h"
#include "comm/comm.h"
#include "engine/backend.h"
#include "engine/base/clock.h"
#include "engine/base/rng.h"
#include "engine/net.h"
#include "io/dataset.h"
#include "io/feature_cache.h"
#include "io/fsutil.h"
#include "models/checkpoint.h"
#include "models/model.h"

/* Stream tags: each kind of random choice draws from its own stream. */
enum { TAG_INIT = 1, TAG_SHUFFLE = 2, TAG_AUGMENT = 3, TAG_DROPOUT = 4 };

static inline uint64_t graft__ft_stream(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
  return graft_rng_u64(graft_rng_u64(seed, tag), (a << 32) ^ b);
}

/* A split as a pass sees it. */
typedef struct split_state {
  graft_split *split;
  graft_loader *loader;
  graft_feature_cache *cache; /* NULL: no cache for this split */
  uint8_t *bad;               /* [n] undecodable, left out */
} split_state;

/* The host buffers of a pass, sized once at set-up for the net's batch and
 * evaluation rows (rows = the larger). */
typedef struct pass_buffers {
  float *input;      /* [batch, 3, crop, crop] decoded images for the trunk */
  float *trunk_rows; /* [batch, dim] the trunk's feature rows */
  float *rows;       /* [rows, dim] the batch's feature rows, cached or not */
  float *loss;       /* [rows] per image */
  int32_t *labels;   /* [rows] */
  int32_t *pred;     /* [rows] */
  int *order;        /* [the larger split] the samples of the pass */
} pass_buffers;

/* The trunk's work of a pass over the job's ranks: share.c's own. */
typedef struct share share;

/* A trunk job's results, as rank 0 takes them in order (share.c): the
 * images of one step that are not in the cache, those that decoded through
 * the trunk. Valid until the next job is taken. */
typedef struct trunk_result {
  int step;              /* the step it feeds */
  int count;             /* its images */
  const int *samples;    /* [count] in the step's order */
  const int32_t *status; /* [count] each one's: GRAFT_OK, or it failed (said, marked bad) */
  const float *rows;     /* [the good ones, dim] their feature rows, in order */
} trunk_result;

/* The run's folder and its files. */
typedef struct run_files {
  char dir[GRAFT_PATH_MAX];
  int lock; /* the folder's lock (RUN_LOCK), held for the whole run; -1: none */
  char best[GRAFT_PATH_MAX + 16], last[GRAFT_PATH_MAX + 16];
  char metrics[GRAFT_PATH_MAX + 16], curves[GRAFT_PATH_MAX + 16];
} run_files;

/* best.h5 and last.h5 are written by a thread while the next epoch trains,
 * from a snapshot (save.c says why and when). */
typedef struct saver {
  float *classifier; /* [classifier floats] the net's classifier, for the snapshot */
  float *momentum;   /* [trainable floats] its momentum */
  pthread_t thread;
  bool running;
  _Atomic bool finished; /* the thread is done: joining it will not wait */
  bool best;           /* this write includes best.h5 */
  graft_checkpoint ck; /* the snapshot: history and bad-sample flags owned */
  graft_status status;
  char detail[1024];
  bool best_pending; /* the model holds a better classifier than best.h5 */
  bool unsaved;      /* epochs have finished since the last save */
  double last_save;  /* when the last save started (graft_now) */
} saver;

/* A run's state in three parts: what the caller fixed before it started,
 * what set-up opened (run.c's setup, closed by its teardown), and the
 * progress, which a checkpoint holds (resume.c, save.c). */
typedef struct run {
  struct { /* fixed: the recipe, how to go about it, this process's place in the job */
    const graft_config *cfg;
    const graft_finetune_options *opt;
    const graft_finetune_hooks *hooks;
    int rank, ranks; /* rank 0 runs the recipe; the others serve its trunk (share.c) */
  };
  struct { /* opened by set-up */
    graft_dataset data;
    graft_model *m; /* the pretrained model with its new head; best.h5 */
    graft_backend *be;
    graft_net *net;
    int batch, dim;                   /* the training batch; feature rows' width */
    int eval_rows;                    /* rows per evaluation call from a complete cache */
    size_t train_count, train_offset; /* the trainable floats (graft_net_train_count) */
    split_state train, val;
    pass_buffers buf;
    run_files files;
    saver saver;
    share *share; /* the trunk's work over the ranks */
  };
  struct { /* the progress */
    graft_checkpoint ck; /* the run's position, sums, best and history */
    /* Why the model does not hold best.h5's classifier, when a resumed run's
     * best.h5 could not be read back (resume.c); empty otherwise. */
    char best_unread[GRAFT_PATH_MAX + 1100];
  };
} run;

/* ---- run.c ---- */
/* One line for the user, through the hooks. */
void graft__ft_say(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* StepLR as PyTorch computes it: multiply by gamma at every step_size-th epoch. */
static inline double graft__ft_lr(const graft_config *c, int epoch) {
  double lr = c->lr;
  for (int e = 1; e <= epoch; e++)
    if (e % c->step_size == 0) lr *= c->gamma;
  return lr;
}

/* ---- head.c ---- */
/* r->m: the weights file's model, its last Linear new (new_head) or kept. */
graft_status graft__ft_model(run *r, const char *weights);

/* ---- save.c ---- */
/* The output folder's lock file: one run at a time in a folder. */
#define RUN_LOCK "run.lock"
/* The output folder made and locked (another run there is GRAFT_EBUSY),
 * checked writable, cleared of a killed run's temporaries; r->files filled. */
graft_status graft__ft_output(run *r);
/* The saver's snapshot buffers, the classifier's holding the model's. */
graft_status graft__ft_saver(run *r);
void graft__ft_saver_free(saver *w);
/* The net's classifier becomes the model's: best.h5 gets it at the next save. */
graft_status graft__ft_keep_best(run *r);
/* last.h5 (and best.h5 when pending) from the net's present state: in the
 * background, or before returning when wait. */
graft_status graft__ft_save(run *r, bool wait);
/* The writer finished; its failure is the run's. */
graft_status graft__ft_writer_join(run *r);
/* The writer's failure, if it has finished and failed (never waits). */
graft_status graft__ft_writer_poll(run *r);
/* A file of the run that could not be written (disk full, I/O error): the
 * run stops, what was saved before is left as it was. */
graft_status graft__ft_not_saved(graft_status s, const char *path);
/* Everything pending saved and written before returning. */
graft_status graft__ft_flush(run *r);
/* After a failed epoch: best.h5 still gets the best classifier found; returns failure. */
graft_status graft__ft_keep_best_file(run *r, graft_status failure);

/* ---- resume.c ---- */
/* The checkpoint of a run starting now, then resumed from last.h5 when there
 * is one (and not restart). */
graft_status graft__ft_checkpoint(run *r);

/* ---- pass.c ---- */
graft_status graft__ft_buffers(run *r);
void graft__ft_buffers_free(pass_buffers *b);
/* Train (or evaluate) over a split, training from the checkpoint's batch on.
 * The loss sum, correct count and image count accumulate into the pointers. */
graft_status graft__ft_pass(run *r, bool train, int epoch, double *loss_sum, int64_t *correct,
                            int64_t *seen);

/* ---- share.c ---- */
graft_status graft__ft_share_init(run *r);
void graft__ft_share_free(share *w);
/* Rank 0: the trunk's jobs of a pass over order[first_step * group, n) in
 * steps of group images (those not in the cache), each worker told its
 * own, rank 0's queued on its loader with the pass's augmentation seed. */
graft_status graft__ft_share_plan(run *r, split_state *ss, bool train, int epoch, int first_step,
                                  int group, int n, uint64_t seed);
/* Rank 0: the pass's images that go through the trunk (those of its jobs). */
int graft__ft_share_images(const run *r);
/* Rank 0: the pass's next job, in order, when there is one and it feeds
 * `step` (any step when step < 0): computed here or received, the images
 * that failed said and marked bad, its results in *out; *got false when
 * there is none. */
graft_status graft__ft_share_next(run *r, split_state *ss, int step, trunk_result *out, bool *got);
/* Rank 0: the workers' jobs of the pass left undone, and what they had sent
 * taken, the detail kept (a stop or a failure in the middle of a pass). */
graft_status graft__ft_share_cancel(run *r);
/* Rank 0: the workers told that the run is over, with its status. */
graft_status graft__ft_share_quit(run *r, graft_status status);
/* The other ranks: their jobs, pass after pass, until rank 0 says the run is
 * over; its status. */
graft_status graft__ft_serve(run *r);
/* Set (by a signal handler, here or on another rank) when the run must
 * stop after the current batch. */
bool graft__ft_stop_requested(run *r);

#endif
