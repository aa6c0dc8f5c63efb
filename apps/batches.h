/* classify's batch step, and classify's work over the job's ranks: the code
 * the classify program runs and bench's classify workload times.
 *
 * A step decodes and preprocesses a batch of images on all cores
 * (io/batch.c), runs the good ones through the net and keeps each one's top
 * classes. Under MPI each rank runs the steps of its block of whole batches
 * (comm/batches.h); rank 0 hands out its own results as it goes, then the
 * other ranks', which they send as records once done: the results of a
 * single process, in input order. */
#ifndef GRAFT_APPS_BATCHES_H
#define GRAFT_APPS_BATCHES_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "engine/backend.h"
#include "io/image.h"
#include "io/strlist.h"
#include "models/model.h"

typedef struct app_classifier_options {
  const graft_model *m;
  graft_backend *be;
  int batch;            /* images per step at most */
  int topk;             /* classes kept per image, best first (1 to 64) */
  graft_decode_opts dec;
  const char *weights;  /* the model's file, named in messages */
} app_classifier_options;

typedef struct app_classifier app_classifier;

/* One image's result, on rank 0, in input order: GRAFT_OK with its top
 * classes and their probabilities, or its failure and the error's text. */
typedef void (*app_result_fn)(void *user, size_t item, graft_status status, const char *error,
                              const int32_t *top, const float *p);

/* The inputs in order into paths: argv[first, argc) as paths, the images of
 * folders (sorted, not recursive), stdin's lines for "-". Rank 0 reads them
 * (only it has stdin) and says what it cannot read; every rank gets the
 * list. The inputs that failed so far, or -1 (said). */
int app_classify_inputs(graft_comm *comm, int argc, char **argv, int first, graft_strlist *paths);

/* Before the job agrees on its set-up: the net itself is made by the first
 * app_classify (for its batch) and kept for the later ones. */
graft_status app_classifier_create(const app_classifier_options *o, app_classifier **out);
void app_classifier_free(app_classifier *c);

/* paths[0, n) classified over the job's ranks (every rank calls it with the
 * same list), in batches of o->batch (fewer when n is smaller); on rank 0
 * each image's result goes to emit, in input order, stdout flushed after
 * each batch. logits: NULL, or [n, num_classes] where the logits of this
 * rank's classified images go. The images that failed, or -1 when a backend
 * failed (said on rank 0; a single process would have stopped there, so no
 * later result is emitted). */
int app_classify(graft_comm *comm, app_classifier *c, char *const *paths, size_t n,
                 float *logits, app_result_fn emit, void *user);

#endif
