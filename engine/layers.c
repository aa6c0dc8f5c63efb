#include "engine/layers.h"

#include <string.h>

const graft_param *graft_arch_find_param(const graft_arch *a, const char *name) {
  for (int i = 0; i < a->n_params; i++)
    if (strcmp(a->params[i].name, name) == 0) return &a->params[i];
  return NULL;
}

double graft_arch_flops(const graft_arch *a, int h, int w) {
  double flops = 0;
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    if (l->kind == GRAFT_LAYER_CONV2D) {
      const graft_conv2d_params *p = &l->u.conv;
      h = graft_out_dim(h, p->kernel, p->stride, p->pad);
      w = graft_out_dim(w, p->kernel, p->stride, p->pad);
      flops += 2.0 * h * w * p->out_c * (double)p->in_c * p->kernel * p->kernel;
    } else if (l->kind == GRAFT_LAYER_MAXPOOL2D) {
      h = graft_out_dim(h, l->u.pool.kernel, l->u.pool.stride, 0);
      w = graft_out_dim(w, l->u.pool.kernel, l->u.pool.stride, 0);
    }
  }
  for (int i = 0; i < a->n_classifier; i++)
    if (a->classifier[i].kind == GRAFT_LAYER_LINEAR)
      flops += 2.0 * a->classifier[i].u.linear.in * a->classifier[i].u.linear.out;
  return flops;
}
