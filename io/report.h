/* What a finetune run leaves for people: metrics.csv and curves.png. */
#ifndef GRAFT_REPORT_H
#define GRAFT_REPORT_H

#include "engine/base/status.h"

typedef struct graft_epoch_metrics {
  int epoch; /* 1-based */
  double train_loss, train_acc, val_loss, val_acc, lr, seconds;
} graft_epoch_metrics;

/* epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds — written atomically. */
graft_status graft_write_metrics_csv(const char *path, const graft_epoch_metrics *h, int n);

/* Loss and accuracy per epoch, train and val, as a PNG (cairo), atomically. */
graft_status graft_plot_curves(const char *path, const graft_epoch_metrics *h, int n,
                               const char *title);

#endif
