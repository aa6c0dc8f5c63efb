/* The model a run trains (run_impl.h): the pretrained weights with, by
 * default, a new last Linear of one output per class, initialised as
 * nn.Linear is from the run's seed (new_head = 0 keeps the file's); a whole
 * new classifier when the file has none (a Keras trunk without its top). */
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
    if (src->no_classifier)
      s = graft__fail(GRAFT_EINVAL,
                      "%s: new_head = 0 keeps the file's classifier, but it has none (the "
                      "trunk only): use new_head = 1",
                      weights);
    else if (src->arch.num_classes != k)
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
  /* Everything before the head carries over; the head is new. A file
   * without a classifier (a Keras trunk) brings none: every Linear is new.
   * The j-th Linear from the end draws from its own stream (j = 0: the head). */
  const graft_arch *a = &m->arch;
  const bool whole = src->no_classifier;
  const graft_param *hw = graft_arch_weight(a, &a->classifier[a->head]);
  memcpy(m->params, src->params, (whole ? a->classifier_offset : hw->offset) * sizeof(float));
  for (int i = a->head, j = 0; i >= 0 && (j == 0 || whole); i--) {
    const graft_layer *l = &a->classifier[i];
    if (l->kind != GRAFT_LAYER_LINEAR) continue;
    const graft_param *w = graft_arch_weight(a, l), *b = graft_arch_bias(a, l);
    graft_rng rng = {graft__ft_stream(c->seed, TAG_INIT, (uint64_t)j++, 0), 0};
    init_linear(m->params + w->offset, m->params + b->offset, l->u.linear.in, l->u.linear.out,
                &rng);
  }
  if (whole)
    graft__ft_say(r,
                  "%s has no classifier (the trunk only): the whole classifier is new, "
                  "initialised from seed %lld as nn.Linear does",
                  weights, (long long)c->seed);
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
