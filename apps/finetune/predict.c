/* predictions.png (predict.h), as the PyTorch transfer-learning tutorial's
 * visualize_model shows: validation images with the best classifier's
 * guess and the true class.
 *
 * The images: GRAFT_FT_PREDICTIONS of the validation split, taken a class at
 * a time in turn (the first image of each class in the dataset's order, then
 * the second of each, ...), so that every class appears when there are
 * enough places, and the same images every run. Images marked bad by the
 * run, or that fail to decode now, are passed over.
 *
 * Each is shown as the model saw it: the eval transform (resize, centre
 * crop) un-normalised, so that what the picture shows is what was
 * classified. The predictions are the trunk's and the classifier's on those
 * pixels: 8 images through the trunk once, after the run, never in an
 * epoch. */
#include "apps/finetune/predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/finetune/run_impl.h"
#include "engine/base/log.h"
#include "io/preprocess.h"
#include "io/report.h"

/* The next sample of class c at or after *at that is usable, decoded and
 * through the eval transform into pixels[3 * crop * crop]; -1 when the class
 * has none left. */
static int next_of_class(const run *r, int c, int *at, float *pixels) {
  const graft_split *v = &r->data.val;
  graft_decode_opts opts = {0, 0, 0}; /* the loader's */
  for (; *at < v->n; ++*at) {
    if (v->samples[*at].label != c || (r->val.bad && r->val.bad[*at])) continue;
    graft_image img;
    if (graft_image_load(v->samples[*at].path, &opts, &img) != GRAFT_OK) continue;
    graft_status s = graft_preprocess_eval(&img, &r->m->pre, pixels);
    graft_image_free(&img);
    if (s == GRAFT_OK) return (*at)++;
  }
  return -1;
}

/* pixels (CHW, normalised) back to 8-bit RGB: the eval transform's crop. */
static graft_status unnormalise(const float *pixels, const graft_preproc *p, graft_image *out) {
  const int n = p->crop * p->crop;
  out->w = out->h = p->crop;
  out->px = malloc((size_t)n * 3);
  if (!out->px) return graft__fail(GRAFT_ENOMEM, "out of memory");
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < n; i++) {
      double v = round(((double)pixels[(size_t)c * n + i] * p->std[c] + p->mean[c]) * 255);
      out->px[(size_t)i * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  return GRAFT_OK;
}

/* The last `filled` of p[0, got) classified from their pixels in input. */
static graft_status judge(run *r, const float *input, float *probs, char *const *names,
                          const int *label, graft_prediction *p, int got, int filled) {
  const int k = r->data.n_classes;
  GRAFT_TRY(graft_net_predict(r->net, filled, input, probs, NULL));
  for (int j = 0; j < filled; j++) {
    const float *q = probs + (size_t)j * k;
    int best = 0;
    for (int c = 1; c < k; c++)
      if (q[c] > q[best]) best = c;
    int i = got - filled + j;
    p[i].predicted = names[best];
    p[i].truth = names[label[i]];
    p[i].right = best == label[i];
  }
  return GRAFT_OK;
}

/* Up to n images chosen and classified into p[] (their pixels and labels),
 * through the net a batch at a time; *count: how many. */
static graft_status classify_some(run *r, char *const *names, graft_prediction *p, int n,
                                  int *count) {
  const int k = r->data.n_classes, crop = r->m->pre.crop, group = n < r->batch ? n : r->batch;
  const size_t image = (size_t)3 * crop * crop;
  float *input = malloc((size_t)group * image * sizeof(float));
  float *probs = malloc((size_t)group * k * sizeof(float));
  int *at = calloc((size_t)k, sizeof(int)), *label = malloc((size_t)n * sizeof(int));
  graft_status s = input && probs && at && label ? GRAFT_OK
                                                 : graft__fail(GRAFT_ENOMEM, "out of memory");
  int got = 0, filled = 0;
  for (bool more = true; s == GRAFT_OK && more && got < n;) { /* a round over the classes */
    more = false;
    for (int c = 0; s == GRAFT_OK && c < k && got < n; c++) {
      float *slot = input + (size_t)filled * image;
      if (at[c] < 0 || next_of_class(r, c, &at[c], slot) < 0) {
        at[c] = -1;
        continue;
      }
      more = true;
      label[got] = c;
      s = unnormalise(slot, &r->m->pre, &p[got].img);
      got++;
      if (s == GRAFT_OK && ++filled == group) {
        s = judge(r, input, probs, names, label, p, got, filled);
        filled = 0;
      }
    }
  }
  if (s == GRAFT_OK && filled > 0) s = judge(r, input, probs, names, label, p, got, filled);
  *count = got;
  free(input);
  free(probs);
  free(at);
  free(label);
  return s;
}

graft_status graft__ft_predictions(run *r) {
  char path[GRAFT_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/predictions.png", r->files.dir);
  if (r->best_unread[0]) {
    graft__warn("%s: not written: %s", path, r->best_unread);
    return GRAFT_OK;
  }
  const graft_model *best = r->m;
  char *const *names = best->class_names ? best->class_names : r->data.classes;
  graft_prediction p[GRAFT_FT_PREDICTIONS];
  memset(p, 0, sizeof p);
  int n = 0, right = 0;
  graft_status s = graft_net_set_classifier(
      r->net, best->params + best->arch.classifier_offset, NULL);
  if (s == GRAFT_OK) s = classify_some(r, names, p, GRAFT_FT_PREDICTIONS, &n);
  for (int i = 0; i < n; i++) right += p[i].right;
  if (s == GRAFT_OK && n > 0) {
    char title[512];
    snprintf(title, sizeof title,
             "best.h5 (epoch %d, val accuracy %.4f) on %d validation images: %d right",
             r->ck.best_epoch, r->ck.best_acc, n, right);
    s = graft_plot_predictions(path, p, n, title);
    if (s != GRAFT_OK) s = graft__ft_not_saved(s, path);
  }
  for (int i = 0; i < n; i++) graft_image_free(&p[i].img);
  return s;
}
