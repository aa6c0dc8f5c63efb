/* The model a run trains (run_impl.h): the pretrained weights with, by
 * default, a new last Linear of one output per class, initialised as
 * nn.Linear is from the run's seed (new_head = 0 keeps the file's). */
#include <math.h>
#include <string.h>

#include "apps/finetune/run_impl.h"

/* nn.Linear's initialisation: weight and bias uniform in (-1/sqrt(in), 1/sqrt(in)). */
static void init_linear(float *w, float *b, int in, int out, graft_rng *rng) {
  double bound = 1.0 / sqrt((double)in);
  for (size_t i = 0; i < (size_t)in * out; i++)
    w[i] = (float)((graft_rng_double(rng) * 2 - 1) * bound);
  for (int i = 0; i < out; i++) b[i] = (float)((graft_rng_double(rng) * 2 - 1) * bound);
}

graft_status graft__ft_model(run *r, const char *weights) {
  const graft_config *c = r->cfg;
  graft_model *src;
  graft_status s = graft_model_load(weights, &src);
  if (s != GRAFT_OK) return graft__context(s, "%s", weights);
  int k = r->data.n_classes;
  if (strcmp(src->arch.name, graft_config_arch(c)) != 0) {
    s = graft__fail(GRAFT_EINVAL, "%s: the weights are %s, the config says arch = %s", weights,
                    src->arch.name, graft_config_arch(c));
    graft_model_free(src);
    return s;
  }
  if (!c->new_head) {
    if (src->arch.num_classes != k)
      s = graft__fail(GRAFT_ESHAPE,
                      "%s: new_head = 0 keeps the last layer, but it has %d outputs and the "
                      "data has %d classes",
                      weights, src->arch.num_classes, k);
    if (s == GRAFT_OK) s = graft_model_set_class_names(src, r->data.classes, k);
    if (s != GRAFT_OK) {
      graft_model_free(src);
      return s;
    }
    r->m = src;
    return GRAFT_OK;
  }
  graft_model *m;
  s = graft_model_create(graft_config_arch(c), k, &m);
  if (s != GRAFT_OK) {
    graft_model_free(src);
    return s;
  }
  /* Everything before the head carries over; the head is new. */
  const graft_layer *head = &m->arch.classifier[m->arch.head];
  const graft_param *w = graft_arch_weight(&m->arch, head), *b = graft_arch_bias(&m->arch, head);
  memcpy(m->params, src->params, w->offset * sizeof(float));
  graft_rng rng = {graft__ft_stream(c->seed, TAG_INIT, 0, 0), 0};
  init_linear(m->params + w->offset, m->params + b->offset, head->u.linear.in,
              head->u.linear.out, &rng);
  m->pre = src->pre;
  graft_model_free(src);
  s = graft_model_set_class_names(m, r->data.classes, k);
  if (s != GRAFT_OK) {
    graft_model_free(m);
    return s;
  }
  r->m = m;
  return GRAFT_OK;
}
