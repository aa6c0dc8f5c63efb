#include "models/arch.h"

#include <stdio.h>
#include <string.h>

/* AlexNet as torchvision builds it (the 64-filter "one weird trick" variant). */
static const struct {
  char kind; /* 'C' conv+ReLU, 'M' maxpool */
  int out_c, kernel, stride, pad;
} alexnet_features[] = {
    {'C', 64, 11, 4, 2}, {'M', 0, 3, 2, 0}, {'C', 192, 5, 1, 2}, {'M', 0, 3, 2, 0},
    {'C', 384, 3, 1, 1}, {'C', 256, 3, 1, 1}, {'C', 256, 3, 1, 1}, {'M', 0, 3, 2, 0},
};

/* VGG configuration "D": channel counts, 0 = 2x2/2 max pooling. */
static const int vgg16_features[] = {64,  64,  0,   128, 128, 0,   256, 256, 256,
                                     0,   512, 512, 512, 0,   512, 512, 512, 0};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void init_layer(graft_layer *l, graft_layer_kind kind, const char *module, int index) {
  memset(l, 0, sizeof *l);
  l->kind = kind;
  l->module = module;
  l->index = index;
  l->weight = l->bias = -1;
}

static graft_layer *add_trunk(graft_arch *a, graft_layer_kind kind, const char *module,
                              int index) {
  graft_layer *l = &a->trunk[a->n_trunk++];
  init_layer(l, kind, module, index);
  return l;
}

static graft_layer *add_classifier(graft_arch *a, graft_layer_kind kind, int index) {
  graft_layer *l = &a->classifier[a->n_classifier++];
  init_layer(l, kind, "classifier", index);
  return l;
}

static void add_conv(graft_arch *a, int *index, int *in_c, int out_c, int kernel, int stride,
                     int pad) {
  graft_layer *l = add_trunk(a, GRAFT_LAYER_CONV2D, "features", *index);
  l->u.conv = (graft_conv2d_params){*in_c, out_c, kernel, stride, pad, true};
  *in_c = out_c;
  *index += 2; /* Conv2d, ReLU */
}

static void add_maxpool(graft_arch *a, int *index, int kernel, int stride) {
  graft_layer *l = add_trunk(a, GRAFT_LAYER_MAXPOOL2D, "features", *index);
  l->u.pool = (graft_pool2d_params){kernel, stride};
  *index += 1;
}

static void add_linear(graft_arch *a, int index, int in, int out, bool relu) {
  graft_layer *l = add_classifier(a, GRAFT_LAYER_LINEAR, index);
  l->u.linear = (graft_linear_params){in, out, relu};
}

static void add_dropout(graft_arch *a, int index) { add_classifier(a, GRAFT_LAYER_DROPOUT, index); }

/* Layer l's parameter of this role, named as its state_dict names it. */
static void add_param(graft_arch *a, graft_layer *l, int layer, bool in_classifier,
                      graft_param_role role, int rank, const int64_t *dims) {
  int at = a->n_params++;
  graft_param *p = &a->params[at];
  if (role == GRAFT_PARAM_WEIGHT)
    l->weight = at;
  else
    l->bias = at;
  p->role = role;
  snprintf(p->name, sizeof p->name, "%s.%d.%s", l->module, l->index,
           role == GRAFT_PARAM_WEIGHT ? "weight" : "bias");
  p->rank = rank;
  p->count = 1;
  for (int i = 0; i < rank; i++) {
    p->dims[i] = dims[i];
    p->count *= (size_t)dims[i];
  }
  p->offset = a->n_floats;
  p->layer = layer;
  p->in_classifier = in_classifier;
  a->n_floats += p->count;
}

/* Weight and bias entries for every conv and linear, in state_dict order;
 * the head is the last Linear. */
static void derive_params(graft_arch *a) {
  for (int i = 0; i < a->n_trunk; i++) {
    graft_layer *l = &a->trunk[i];
    if (l->kind != GRAFT_LAYER_CONV2D) continue;
    const graft_conv2d_params *c = &l->u.conv;
    int64_t wd[4] = {c->out_c, c->in_c, c->kernel, c->kernel}, bd[1] = {c->out_c};
    add_param(a, l, i, false, GRAFT_PARAM_WEIGHT, 4, wd);
    add_param(a, l, i, false, GRAFT_PARAM_BIAS, 1, bd);
  }
  a->classifier_offset = a->n_floats;
  for (int i = 0; i < a->n_classifier; i++) {
    graft_layer *l = &a->classifier[i];
    if (l->kind != GRAFT_LAYER_LINEAR) continue;
    int64_t wd[2] = {l->u.linear.out, l->u.linear.in}, bd[1] = {l->u.linear.out};
    add_param(a, l, i, true, GRAFT_PARAM_WEIGHT, 2, wd);
    add_param(a, l, i, true, GRAFT_PARAM_BIAS, 1, bd);
    a->head = i;
  }
}

/* AlexNet: the features, an adaptive average pooling to 6x6, and the
 * classifier Dropout, Linear+ReLU, Dropout, Linear+ReLU, Linear. */
static void alexnet(graft_arch *a, int num_classes) {
  int index = 0, in_c = 3;
  for (int i = 0; i < COUNT(alexnet_features); i++) {
    if (alexnet_features[i].kind == 'C')
      add_conv(a, &index, &in_c, alexnet_features[i].out_c, alexnet_features[i].kernel,
               alexnet_features[i].stride, alexnet_features[i].pad);
    else
      add_maxpool(a, &index, alexnet_features[i].kernel, alexnet_features[i].stride);
  }
  graft_layer *pool = add_trunk(a, GRAFT_LAYER_ADAPTIVE_AVGPOOL2D, "avgpool", -1);
  pool->u.avgpool = (graft_adaptive_avgpool_params){6, 6};
  a->feature_dim = in_c * 6 * 6;
  add_dropout(a, 0);
  add_linear(a, 1, a->feature_dim, 4096, true);
  add_dropout(a, 3);
  add_linear(a, 4, 4096, 4096, true);
  add_linear(a, 6, 4096, num_classes, false);
}

/* VGG16: the features, an adaptive average pooling to 7x7, and the
 * classifier Linear+ReLU, Dropout, Linear+ReLU, Dropout, Linear. */
static void vgg16(graft_arch *a, int num_classes) {
  int index = 0, in_c = 3;
  for (int i = 0; i < COUNT(vgg16_features); i++) {
    if (vgg16_features[i])
      add_conv(a, &index, &in_c, vgg16_features[i], 3, 1, 1);
    else
      add_maxpool(a, &index, 2, 2);
  }
  graft_layer *pool = add_trunk(a, GRAFT_LAYER_ADAPTIVE_AVGPOOL2D, "avgpool", -1);
  pool->u.avgpool = (graft_adaptive_avgpool_params){7, 7};
  a->feature_dim = in_c * 7 * 7;
  add_linear(a, 0, a->feature_dim, 4096, true);
  add_dropout(a, 2);
  add_linear(a, 3, 4096, 4096, true);
  add_dropout(a, 5);
  add_linear(a, 6, 4096, num_classes, false);
}

/* The registry: each name with the function that fills its table. */
const char *const graft_arch_list[] = {"alexnet", "vgg16", NULL};
static void (*const builders[])(graft_arch *a, int num_classes) = {alexnet, vgg16};
_Static_assert(COUNT(builders) == COUNT(graft_arch_list) - 1, "one builder per name");

int graft_arch_find(const char *name) {
  for (int i = 0; graft_arch_list[i]; i++)
    if (strcmp(graft_arch_list[i], name) == 0) return i;
  return -1;
}

graft_status graft_arch_init(graft_arch *a, const char *name, int num_classes) {
  memset(a, 0, sizeof *a);
  if (num_classes < 1)
    return graft__fail(GRAFT_ERANGE, "num_classes must be at least 1, got %d", num_classes);
  int which = graft_arch_find(name);
  if (which < 0)
    return graft__fail(GRAFT_EINVAL, "unknown arch \"%s\" (expected one of: %s)", name,
                       graft_arch_names());
  a->num_classes = num_classes;
  builders[which](a, num_classes);
  snprintf(a->name, sizeof a->name, "%s", name);
  derive_params(a);
  return GRAFT_OK;
}

const char *graft_arch_names(void) {
  static _Thread_local char names[128];
  size_t used = 0;
  names[0] = '\0';
  for (int i = 0; graft_arch_list[i] && used < sizeof names; i++)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                             graft_arch_list[i]);
  return names;
}
