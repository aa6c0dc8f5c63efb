/* predictions.png (apps/finetune/predict.c): the best classifier's guesses
 * on a few validation images, drawn at the end of a run. */
#ifndef GRAFT_FINETUNE_PREDICT_H
#define GRAFT_FINETUNE_PREDICT_H

#include "engine/base/status.h"

struct run;

/* How many images predictions.png shows: two rows of four. */
#define GRAFT_FT_PREDICTIONS 8

/* The output folder's predictions.png from what best.h5 holds: the run's
 * model, which holds the classifier best.h5 was written from (a better epoch
 * of this invocation's, or best.h5 read back when the run resumed). Called on
 * rank 0 after the last save; the net's classifier is left holding the best
 * one. A file that cannot be written is graft__ft_not_saved's failure; a
 * best.h5 that could not be read back at resume only a warning (the run's
 * files are all saved by then). */
graft_status graft__ft_predictions(struct run *r);

#endif
