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
  union {
    graft_conv2d_params conv;
    graft_pool2d_params pool;
    graft_adaptive_avgpool_params avgpool;
    graft_dropout_params dropout;
    graft_linear_params linear;
  } u;
} graft_layer;

#define GRAFT_MAX_TRUNK 32
#define GRAFT_MAX_HEAD 8
#define GRAFT_MAX_PARAMS 40

/* One parameter tensor: its torchvision state_dict name, shape and place in the
 * model's contiguous parameter buffer. */
typedef struct graft_param {
  char name[32];
  int rank;
  int64_t dims[4];
  size_t offset; /* in floats, into the parameter buffer */
  size_t count;
  int layer;     /* index into trunk[] or head[] */
  bool in_head;
} graft_param;

typedef struct graft_arch {
  char name[16];   /* "alexnet" | "vgg16" */
  int num_classes;
  int n_trunk;     /* features + avgpool (frozen) */
  graft_layer trunk[GRAFT_MAX_TRUNK];
  int n_head;      /* classifier */
  graft_layer head[GRAFT_MAX_HEAD];
  int n_params;
  graft_param params[GRAFT_MAX_PARAMS];
  size_t n_floats;     /* total parameter floats */
  size_t head_offset;  /* first classifier float: [0, head_offset) trunk, rest head */
  int feature_dim;     /* classifier input: channels * avgpool out_h * out_w */
} graft_arch;

/* The parameter named `name`, or NULL. */
const graft_param *graft_arch_find_param(const graft_arch *a, const char *name);

/* Forward FLOPs of one image of size h x w (multiply-add = 2). */
double graft_arch_flops(const graft_arch *a, int h, int w);

#endif
