/* A model instantiated on a backend for a maximum batch size: the frozen
 * trunk planned per batch size (plans cached), the classifier's parameters in
 * backend memory, and every activation buffer allocated once. */
#ifndef GRAFT_NET_H
#define GRAFT_NET_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/layers.h"
#include "engine/ops.h"

typedef struct graft_net graft_net;

/* Plans the trunk of the layer table `a` with its parameters `params` (laid
 * out by a->params) for max_batch images of in_h x in_w (the model's crop
 * size for classify) and uploads the classifier. Both must outlive the net:
 * a later batch size plans the trunk again from them. */
graft_status graft_net_create(graft_backend *be, const graft_arch *a, const float *params,
                              int max_batch, int in_h, int in_w, graft_net **out);
void graft_net_destroy(graft_net *net);

/* Feature rows the net holds and evaluates in one call (graft_net_put_features,
 * graft_net_eval_step, graft_net_classify_features): max_batch, or
 * GRAFT_NET_EVAL_ROWS when that is more and the backend computes each row of
 * the classifier by the same float operations in any group of rows. Then
 * evaluating cached rows in groups of up to this many gives exactly what the
 * trunk's batches of max_batch give. Training steps stay at max_batch. */
#define GRAFT_NET_EVAL_ROWS 64
int graft_net_eval_rows(const graft_net *net);
graft_backend *graft_net_backend(const graft_net *net);

/* Trunk forward of n <= max_batch images (host NCHW float32) into the net's
 * feature rows [n, feature_dim] (backend memory; graft_net_get_features
 * copies them out). */
graft_status graft_net_trunk(graft_net *net, int n, const float *input_host);

/* Classifier forward at inference (dropout is the identity) from the feature
 * rows; writes softmax probabilities [n, num_classes] to probs_host, and the
 * logits to logits_host when not NULL. */
graft_status graft_net_classify_features(graft_net *net, int n, float *probs_host,
                                         float *logits_host);

/* Trunk then classifier. */
graft_status graft_net_predict(graft_net *net, int n, const float *input_host, float *probs_host,
                               float *logits_host);

/* graft_net_predict's steps apart, to time the model on a batch already in
 * backend memory (bench infer --resident), as GPU frameworks are timed:
 * upload n images into the net's input; run trunk, classifier and softmax on
 * them and wait for the backend; download the probabilities (and the logits
 * when logits_host is not NULL) of the last forward. */
graft_status graft_net_set_input(graft_net *net, int n, const float *input_host);
graft_status graft_net_forward(graft_net *net, int n);
graft_status graft_net_get_output(graft_net *net, int n, float *probs_host, float *logits_host);

/* How the trunk planned for max_batch runs, on one line, into buf: each plan's
 * path and engine, and whether the trunk was captured (a CUDA graph). "" when
 * the backend has nothing to say. */
const char *graft_net_describe(graft_net *net, char *buf, size_t cap);

/* ---- training the classifier (engine/train.c) ---- */

typedef enum graft_trainable {
  GRAFT_TRAIN_CLASSIFIER, /* every Linear of the classifier */
  GRAFT_TRAIN_HEAD,       /* only the head, the last Linear */
} graft_trainable;

/* Allocate gradients, momentum buffers and dropout masks for the trainable
 * layers; every dropout layer drops with probability dropout_p. */
graft_status graft_net_train_init(graft_net *net, graft_trainable which, float dropout_p);

/* Floats in the trainable part: the suffix [offset, n_floats) of the arch's
 * parameter layout (graft_net_train_offset gives offset). */
size_t graft_net_train_count(const graft_net *net);
size_t graft_net_train_offset(const graft_net *net);

/* Copy n <= graft_net_eval_rows feature rows from the host into the net's
 * feature rows (a cached trunk output), or out of them. */
graft_status graft_net_put_features(graft_net *net, int n, const float *rows_host);
graft_status graft_net_get_features(graft_net *net, int n, float *rows_host);

/* One SGD step on the n images whose feature rows the net holds: classifier
 * forward in training mode (dropout drawn from dropout_seed), cross-entropy
 * against labels_host, backward through the trainable layers, SGD update.
 * Per-image losses and argmax predictions go to loss_host / pred_host. */
graft_status graft_net_train_step(graft_net *net, int n, const int32_t *labels_host,
                                  const graft_sgd_params *sgd, uint64_t dropout_seed,
                                  float *loss_host, int32_t *pred_host);

/* Evaluation (no dropout) of the n <= graft_net_eval_rows feature rows:
 * per-image loss and argmax. A row's results do not depend on n or on the
 * other rows where graft_net_eval_rows exceeds max_batch. */
graft_status graft_net_eval_step(graft_net *net, int n, const int32_t *labels_host,
                                 float *loss_host, int32_t *pred_host);

/* The classifier's parameters (every Linear's, the arch's layout from
 * classifier_offset) and the trainable part's momentum buffers, to and from
 * the host. */
graft_status graft_net_get_classifier(graft_net *net, float *classifier_host,
                                      float *momentum_host);
graft_status graft_net_set_classifier(graft_net *net, const float *classifier_host,
                                      const float *momentum_host);

#endif
