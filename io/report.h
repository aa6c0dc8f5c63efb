/* What a finetune run leaves for people: metrics.csv, curves.png and
 * predictions.png. */
#ifndef GRAFT_REPORT_H
#define GRAFT_REPORT_H

#include <stdbool.h>

#include "engine/base/status.h"
#include "io/image.h"

typedef struct graft_epoch_metrics {
  int epoch; /* 1-based */
  double train_loss, train_acc, val_loss, val_acc, lr, seconds;
} graft_epoch_metrics;

/* epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds — written atomically. */
graft_status graft_write_metrics_csv(const char *path, const graft_epoch_metrics *h, int n);

/* Loss and accuracy per epoch, train and val, as a PNG (cairo), atomically. */
graft_status graft_plot_curves(const char *path, const graft_epoch_metrics *h, int n,
                               const char *title);

/* One image of predictions.png: its pixels (8-bit RGB, as the model saw
 * them), the class the model gave it and its true class. */
typedef struct graft_prediction {
  graft_image img;
  const char *predicted, *truth;
  bool right;
} graft_prediction;

/* The images in a grid of up to four columns, each under its two labels
 * ("predicted: X" green when right, red when wrong; "true: Y"), as a PNG
 * (cairo), atomically: 248 per column + 24 pixels wide (at least 560), 44 + 282
 * per row high. */
graft_status graft_plot_predictions(const char *path, const graft_prediction *p, int n,
                                    const char *title);

#endif
