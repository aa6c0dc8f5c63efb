/* The classifier's training step on a backend: forward in training mode,
 * cross-entropy, backward through the trainable Linears only, SGD.
 *
 * The trainable parameters are a suffix of the arch's layout (the last Linear,
 * or every Linear of the classifier), so gradients and momentum share that
 * layout and an SGD step is one call over one contiguous range. Where the
 * backend fuses a Linear's backward with its SGD step (linear_backward_sgd),
 * each layer steps as its backward runs, last first, and no gradient buffer
 * exists: the math is the same, since a layer's dx comes from its weights
 * before its step and the layers before it step from activations of the
 * forward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/net_internal.h"

struct graft_net_train {
  graft_trainable which;
  float dropout_p;
  int first_layer;    /* first trainable classifier layer */
  size_t offset;      /* first trainable float (arch layout) */
  size_t count;       /* trainable floats */
  float *grad;        /* NULL with linear_backward_sgd */
  float *momentum;
  bool momentum_set;  /* a step has run: buffers hold momentum */
  float *dout[GRAFT_MAX_CLASSIFIER];        /* gradient of each Linear's output */
  uint8_t *keep[GRAFT_MAX_CLASSIFIER];      /* dropout masks */
  const float *input[GRAFT_MAX_CLASSIFIER]; /* each layer's input in the last forward */
  int32_t *labels;    /* [eval_rows] backend memory */
  float *loss;        /* [eval_rows] backend memory */
  float *logits_host; /* [eval_rows, K] */
};

#define F(net) ((net)->be->iface)

/* A classifier parameter in the net's classifier_params. */
static float *param_at(const graft_net *net, const graft_param *p) {
  return net->classifier_params + (p->offset - net->a->classifier_offset);
}

/* Width of the activation a classifier layer reads (its input). */
static int layer_input_width(const graft_arch *a, int i) {
  for (int j = i; j < a->n_classifier; j++)
    if (a->classifier[j].kind == GRAFT_LAYER_LINEAR) return a->classifier[j].u.linear.in;
  return a->num_classes;
}

void graft__net_train_free(graft_net *net) {
  struct graft_net_train *t = net->train;
  if (!t) return;
  void *bufs[] = {t->grad, t->momentum, t->labels, t->loss};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (bufs[i]) F(net)->free(net->be, bufs[i]);
  for (int i = 0; i < GRAFT_MAX_CLASSIFIER; i++) {
    if (t->dout[i]) F(net)->free(net->be, t->dout[i]);
    if (t->keep[i]) F(net)->free(net->be, t->keep[i]);
  }
  free(t->logits_host);
  free(t);
  net->train = NULL;
}

static graft_status alloc(graft_net *net, size_t bytes, void **p) {
  return graft__net_alloc(net, bytes, p, "training buffers");
}

graft_status graft_net_train_init(graft_net *net, graft_trainable which, float dropout_p) {
  const graft_arch *a = net->a;
  if (!(dropout_p >= 0 && dropout_p < 1))
    return graft__fail(GRAFT_ERANGE, "dropout %g is outside [0, 1)", dropout_p);
  if (net->classifier_f16)
    return graft__fail(GRAFT_EUNSUPPORTED, "precision fp16-weights is for inference; "
                                           "training runs in fp32");
  graft__net_train_free(net);
  graft__net_cols_free(net); /* a training net's weights change every step */
  struct graft_net_train *t = calloc(1, sizeof *t);
  if (!t) return graft__fail(GRAFT_ENOMEM, "out of memory");
  net->train = t;
  t->which = which;
  t->dropout_p = dropout_p;
  int first = a->head;
  for (int i = a->head; i >= 0; i--)
    if (a->classifier[i].kind == GRAFT_LAYER_LINEAR) first = i;
  t->first_layer = which == GRAFT_TRAIN_HEAD ? a->head : first;
  t->offset = graft_arch_weight(a, &a->classifier[t->first_layer])->offset;
  t->count = a->n_floats - t->offset;
  size_t mb = (size_t)net->max_batch, rows = (size_t)net->eval_rows;
  graft_status s = GRAFT_OK;
  if (!F(net)->linear_backward_sgd) s = alloc(net, t->count * sizeof(float), (void **)&t->grad);
  if (s == GRAFT_OK) s = alloc(net, t->count * sizeof(float), (void **)&t->momentum);
  if (s == GRAFT_OK) s = F(net)->memset0(net->be, t->momentum, t->count * sizeof(float));
  if (s == GRAFT_OK) s = alloc(net, rows * sizeof(int32_t), (void **)&t->labels);
  if (s == GRAFT_OK) s = alloc(net, rows * sizeof(float), (void **)&t->loss);
  for (int i = 0; s == GRAFT_OK && i < a->n_classifier; i++) {
    const graft_layer *l = &a->classifier[i];
    if (l->kind == GRAFT_LAYER_LINEAR && i >= t->first_layer)
      s = alloc(net, mb * l->u.linear.out * sizeof(float), (void **)&t->dout[i]);
    else if (l->kind == GRAFT_LAYER_DROPOUT)
      s = alloc(net, mb * layer_input_width(a, i), (void **)&t->keep[i]);
  }
  if (s == GRAFT_OK && !(t->logits_host = malloc(rows * a->num_classes * sizeof(float))))
    s = graft__fail(GRAFT_ENOMEM, "out of memory");
  if (s != GRAFT_OK) graft__net_train_free(net);
  return s;
}

size_t graft_net_train_count(const graft_net *net) { return net->train ? net->train->count : 0; }
size_t graft_net_train_offset(const graft_net *net) { return net->train ? net->train->offset : 0; }

static graft_status check_rows(const graft_net *net, int n) {
  return graft__net_check_count(n, 0, net->eval_rows, "feature rows");
}

graft_status graft_net_put_features(graft_net *net, int n, const float *rows_host) {
  GRAFT_TRY(check_rows(net, n));
  size_t bytes = (size_t)n * net->a->feature_dim * sizeof(float);
  return F(net)->upload(net->be, net->features, rows_host, bytes);
}

graft_status graft_net_get_features(graft_net *net, int n, float *rows_host) {
  GRAFT_TRY(check_rows(net, n));
  size_t bytes = (size_t)n * net->a->feature_dim * sizeof(float);
  return F(net)->download(net->be, rows_host, net->features, bytes);
}

/* Forward in training mode; remembers each layer's input for backward. */
static graft_status train_forward(graft_net *net, int n, uint64_t seed, const float **logits) {
  const graft_arch *a = net->a;
  struct graft_net_train *t = net->train;
  float *x = net->features;
  uint64_t offset = 0;
  for (int i = 0; i < a->n_classifier; i++) {
    const graft_layer *l = &a->classifier[i];
    t->input[i] = x;
    if (l->kind == GRAFT_LAYER_DROPOUT) {
      size_t count = (size_t)n * layer_input_width(a, i);
      /* p = 0 keeps everything and scales by 1: the identity, as in PyTorch. */
      if (t->dropout_p == 0) continue;
      /* In place: the dropped-out values are what the next Linear reads and
       * what its backward needs (a dropped unit has zero gradient, so the
       * ReLU's backward may test the dropped-out values). */
      GRAFT_TRY(F(net)->dropout_forward(net->be, count, t->dropout_p, seed, offset, x,
                                        t->keep[i]));
      offset += count;
    } else if (l->kind == GRAFT_LAYER_LINEAR) {
      GRAFT_TRY(F(net)->linear_forward(net->be, &l->u.linear, n, x,
                                       param_at(net, graft_arch_weight(a, l)),
                                       param_at(net, graft_arch_bias(a, l)),
                                       net->classifier_out[i]));
      x = net->classifier_out[i];
    }
  }
  *logits = x;
  return GRAFT_OK;
}

/* Loss per image and argmax predictions; logits already on the backend. */
static graft_status loss_and_pred(graft_net *net, int n, const float *logits,
                                  const int32_t *labels_host, float *dlogits, float *loss_host,
                                  int32_t *pred_host) {
  struct graft_net_train *t = net->train;
  const int k = net->a->num_classes;
  for (int i = 0; i < n; i++)
    if (labels_host[i] < 0 || labels_host[i] >= k)
      return graft__fail(GRAFT_ERANGE, "label %d outside [0, %d)", labels_host[i], k);
  GRAFT_TRY(F(net)->upload(net->be, t->labels, labels_host, (size_t)n * sizeof(int32_t)));
  GRAFT_TRY(F(net)->cross_entropy(net->be, n, k, logits, t->labels, t->loss, dlogits));
  GRAFT_TRY(F(net)->download(net->be, loss_host, t->loss, (size_t)n * sizeof(float)));
  GRAFT_TRY(F(net)->download(net->be, t->logits_host, logits, (size_t)n * k * sizeof(float)));
  for (int i = 0; i < n; i++) {
    const float *row = t->logits_host + (size_t)i * k;
    int best = 0;
    for (int c = 1; c < k; c++)
      if (row[c] > row[best]) best = c; /* first maximum, as torch.max */
    pred_host[i] = best;
  }
  return GRAFT_OK;
}

graft_status graft_net_train_step(graft_net *net, int n, const int32_t *labels_host,
                                  const graft_sgd_params *sgd, uint64_t dropout_seed,
                                  float *loss_host, int32_t *pred_host) {
  struct graft_net_train *t = net->train;
  const graft_arch *a = net->a;
  if (!t) return graft__fail(GRAFT_EINVAL, "training step before graft_net_train_init");
  if (n < 1 || n > net->max_batch)
    return graft__fail(GRAFT_EINVAL, "batch of %d (1 to %d)", n, net->max_batch);
  const float *logits;
  int last = a->head; /* the loss's gradient is the head's output's */
  GRAFT_TRY(train_forward(net, n, dropout_seed, &logits));
  GRAFT_TRY(loss_and_pred(net, n, logits, labels_host, t->dout[last], loss_host, pred_host));

  /* Backward, last layer first. g is the gradient of the current layer's output. */
  const bool fused = F(net)->linear_backward_sgd != NULL;
  graft_sgd_params p = *sgd;
  p.first = !t->momentum_set;
  float *g = t->dout[last];
  for (int i = last; i >= t->first_layer; i--) {
    const graft_layer *l = &a->classifier[i];
    size_t width = (size_t)layer_input_width(a, i);
    if (l->kind == GRAFT_LAYER_DROPOUT) {
      if (t->dropout_p == 0) continue;
      GRAFT_TRY(F(net)->dropout_backward(net->be, (size_t)n * width, t->dropout_p, t->keep[i], g));
      continue;
    }
    const graft_param *w = graft_arch_weight(a, l), *b = graft_arch_bias(a, l);
    if (l->u.linear.relu)
      GRAFT_TRY(F(net)->relu_backward(net->be, (size_t)n * l->u.linear.out,
                                      net->classifier_out[i], g));
    /* The gradient of this layer's input is needed only when a trainable
     * Linear lies before it; it lands in that layer's output gradient. */
    float *dx = NULL;
    for (int j = i - 1; j >= t->first_layer; j--)
      if (a->classifier[j].kind == GRAFT_LAYER_LINEAR) {
        dx = t->dout[j];
        break;
      }
    if (fused)
      GRAFT_TRY(F(net)->linear_backward_sgd(
          net->be, &l->u.linear, n, g, t->input[i], param_at(net, w), param_at(net, b), dx,
          t->momentum + (w->offset - t->offset),
          t->momentum + (b->offset - t->offset), &p));
    else
      GRAFT_TRY(F(net)->linear_backward(net->be, &l->u.linear, n, g, t->input[i],
                                        param_at(net, w), dx,
                                        t->grad + (w->offset - t->offset),
                                        t->grad + (b->offset - t->offset)));
    if (!dx) break;
    g = dx;
  }
  if (!fused)
    GRAFT_TRY(F(net)->sgd_step(net->be, t->count, &p,
                               net->classifier_params + (t->offset - a->classifier_offset), t->grad,
                               t->momentum));
  t->momentum_set = true;
  return GRAFT_OK;
}

graft_status graft_net_eval_step(graft_net *net, int n, const int32_t *labels_host,
                                 float *loss_host, int32_t *pred_host) {
  if (!net->train) return graft__fail(GRAFT_EINVAL, "evaluation before graft_net_train_init");
  if (n < 1 || n > net->eval_rows)
    return graft__fail(GRAFT_EINVAL, "batch of %d (1 to %d)", n, net->eval_rows);
  const float *logits;
  /* Rows independent of their company: cached rows evaluated 64 at a time
   * give the bits of the trunk's batches (graft_net_eval_rows). */
  GRAFT_TRY(graft__classifier_forward(net, n, true, &logits));
  return loss_and_pred(net, n, logits, labels_host, NULL, loss_host, pred_host);
}

graft_status graft_net_get_classifier(graft_net *net, float *classifier_host,
                                      float *momentum_host) {
  const graft_arch *a = net->a;
  size_t classifier_bytes = (a->n_floats - a->classifier_offset) * sizeof(float);
  GRAFT_TRY(F(net)->download(net->be, classifier_host, net->classifier_params, classifier_bytes));
  if (momentum_host && net->train)
    GRAFT_TRY(F(net)->download(net->be, momentum_host, net->train->momentum,
                               net->train->count * sizeof(float)));
  return GRAFT_OK;
}

graft_status graft_net_set_classifier(graft_net *net, const float *classifier_host,
                                      const float *momentum_host) {
  const graft_arch *a = net->a;
  size_t classifier_bytes = (a->n_floats - a->classifier_offset) * sizeof(float);
  graft__net_cols_free(net);
  GRAFT_TRY(F(net)->upload(net->be, net->classifier_params, classifier_host, classifier_bytes));
  if (momentum_host && net->train) {
    GRAFT_TRY(F(net)->upload(net->be, net->train->momentum, momentum_host,
                             net->train->count * sizeof(float)));
    net->train->momentum_set = true;
  }
  return GRAFT_OK;
}
