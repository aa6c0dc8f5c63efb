/* What a net is made of: layer kinds, a net's layer table (the frozen trunk,
 * then the classifier) and the layout of its parameters in one contiguous
 * float buffer. The engine plans and trains whatever table it is given;
 * models/arch.c fills tables for torchvision's AlexNet and VGG16. */
#ifndef GRAFT_LAYERS_H
#define GRAFT_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "engine/ops.h"

typedef enum graft_layer_kind {
  GRAFT_LAYER_CONV2D,            /* with fused ReLU: torchvision's Conv2d + ReLU pair */
  GRAFT_LAYER_MAXPOOL2D,
  GRAFT_LAYER_ADAPTIVE_AVGPOOL2D,
  GRAFT_LAYER_DROPOUT,
  GRAFT_LAYER_LINEAR,            /* optionally with fused ReLU */
} graft_layer_kind;

typedef struct graft_layer {
  graft_layer_kind kind;
  const char *module; /* "features", "avgpool" or "classifier" */
  int index;          /* index inside that torchvision Sequential; -1 for avgpool */
  int weight, bias;   /* its parameters: indices into graft_arch.params, -1 when none */
  union {
    graft_conv2d_params conv;
    graft_pool2d_params pool;
    graft_adaptive_avgpool_params avgpool;
    graft_linear_params linear;
  } u; /* a dropout's probability is the training's (graft_net_train_init) */
} graft_layer;

#define GRAFT_MAX_TRUNK 32
#define GRAFT_MAX_CLASSIFIER 8
#define GRAFT_MAX_PARAMS 40

typedef enum graft_param_role { GRAFT_PARAM_WEIGHT, GRAFT_PARAM_BIAS } graft_param_role;

/* One parameter tensor: its torchvision state_dict name, shape and place in the
 * model's contiguous parameter buffer. */
typedef struct graft_param {
  char name[32];
  int rank;
  int64_t dims[4];
  size_t offset; /* in floats, into the parameter buffer */
  size_t count;
  graft_param_role role;
  int layer;     /* index into trunk[] or classifier[] */
  bool in_classifier;
} graft_param;

/* A net's layers: the frozen trunk (features and the average pooling), then
 * the classifier, whose last Linear (the "head") gives one output per class.
 * Parameters are laid out trunk first, in state_dict order, so the
 * classifier's are the suffix from classifier_offset. */
typedef struct graft_arch {
  char name[16];   /* "alexnet" | "vgg16" */
  int num_classes;
  int n_trunk;     /* features + avgpool (frozen) */
  graft_layer trunk[GRAFT_MAX_TRUNK];
  int n_classifier;
  graft_layer classifier[GRAFT_MAX_CLASSIFIER];
  int head;        /* the last Linear: its index in classifier[] */
  int n_params;
  graft_param params[GRAFT_MAX_PARAMS];
  size_t n_floats;          /* total parameter floats */
  size_t classifier_offset; /* the first classifier float: [0, classifier_offset) is the trunk's */
  int feature_dim;          /* classifier input: channels * avgpool out_h * out_w */
} graft_arch;

/* The layer a parameter belongs to. */
static inline const graft_layer *graft_arch_layer_of(const graft_arch *a, const graft_param *p) {
  return p->in_classifier ? &a->classifier[p->layer] : &a->trunk[p->layer];
}

/* A layer's weight or bias, NULL when it has none. */
static inline const graft_param *graft_arch_weight(const graft_arch *a, const graft_layer *l) {
  return l->weight >= 0 ? &a->params[l->weight] : NULL;
}
static inline const graft_param *graft_arch_bias(const graft_arch *a, const graft_layer *l) {
  return l->bias >= 0 ? &a->params[l->bias] : NULL;
}

/* The parameter named `name`, or NULL. */
const graft_param *graft_arch_find_param(const graft_arch *a, const char *name);

/* Forward FLOPs of one image of size h x w (multiply-add = 2). */
double graft_arch_flops(const graft_arch *a, int h, int w);

#endif
