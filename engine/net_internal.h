/* The inside of graft_net, shared by engine/net.c (trunk plans, inference)
 * and engine/train.c (the classifier's training step). */
#ifndef GRAFT_NET_INTERNAL_H
#define GRAFT_NET_INTERNAL_H

#include "engine/backend_impl.h"
#include "engine/net.h"

/* The trunk planned for one batch size: an edge plan into the backend's
 * layout, one plan per trunk layer, an edge plan out to feature rows. */
typedef struct trunk_plan {
  int n; /* 0 = unused slot */
  int count;
  graft_plan *plans[GRAFT_MAX_TRUNK + 2];
  graft_act acts[GRAFT_MAX_TRUNK + 3]; /* acts[i] is plans[i]'s input */
  graft_replay *forward; /* the whole inference forward at this n (iface replay) */
} trunk_plan;

/* Two slots: the full batch and the last, smaller one of a run. */
#define TRUNK_SLOTS 2

struct graft_net {
  graft_backend *be;
  const graft_arch *a;
  const float *params;  /* the caller's, laid out by a->params */
  int max_batch, in_h, in_w;
  int eval_rows;        /* rows of features, classifier_out and probs (graft_net_eval_rows) */
  trunk_plan trunks[TRUNK_SLOTS];
  size_t act_bytes;     /* largest trunk activation at max_batch */
  void *input;          /* [max_batch,3,in_h,in_w] NCHW */
  void *ping, *pong;    /* trunk activations */
  float *features;      /* [eval_rows, feature_dim] */
  float *classifier_params;   /* classifier parameters, arch layout from classifier_offset */
  uint16_t *classifier_f16;   /* GRAFT_PRECISION_FP16_WEIGHTS: the same as fp16 bits (the
                                 Linear weights are read from it, the biases from the fp32) */
  float *classifier_out[GRAFT_MAX_CLASSIFIER]; /* each linear's output [eval_rows, out] */
  /* Each Linear's weights transposed, for one-row forwards that skip zero
   * inputs (iface linear_forward_cols): made at the second such forward of a
   * net that does not train, dropped when the weights change. */
  float *classifier_cols[GRAFT_MAX_CLASSIFIER];
  int cols_calls;       /* one-row forwards so far */
  bool cols_off;        /* the backend has no such kernel, or no memory for it */
  float *probs;         /* [eval_rows, K] */
  const float *logits;  /* the last graft_net_forward's logits (backend memory) */
  struct graft_net_train *train; /* NULL until graft_net_train_init */
};


/* Inference forward of the classifier from the feature rows; *logits points
 * into the net's buffers. rows: through linear_forward_rows where the backend
 * has it (each row's bits independent of n), else linear_forward. */
graft_status graft__classifier_forward(graft_net *net, int n, bool rows, const float **logits);

void graft__net_train_free(graft_net *net);
/* Drop the transposed classifier weights (their weights changed, or the net ends). */
void graft__net_cols_free(graft_net *net);

/* Backend memory for one of the net's buffers; a failure says what it was for. */
graft_status graft__net_alloc(graft_net *net, size_t bytes, void **out, const char *what);

/* lo <= n <= hi, or EINVAL saying "n WHAT (this net holds lo to hi)". */
graft_status graft__net_check_count(int n, int lo, int hi, const char *what);

/* binary32 to binary16 bits, round to nearest even (engine/net.c; the tests
 * hold it to F16C's conversion). */
uint16_t graft__float_to_half(float f);

#endif
