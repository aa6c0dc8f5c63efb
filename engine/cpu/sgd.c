/* SGD with momentum in PyTorch's form and order of float operations:
 *   g = grad + wd * p (only with weight decay)
 *   buf = first ? g : momentum * buf + g
 *   p = p - lr * buf */
#include "engine/cpu/cpu.h"

graft_status graft__cpu_sgd_step(graft_backend *be, size_t count, const graft_sgd_params *s,
                                 float *param, const float *grad, float *buf) {
  (void)be;
  const float lr = s->lr, mu = s->momentum, wd = s->weight_decay;
  const int first = s->first;
#pragma omp parallel for schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; i++) {
    float g = grad[i];
    if (wd != 0.0f) g = g + wd * param[i];
    float b = first ? g : mu * buf[i] + g;
    buf[i] = b;
    param[i] = param[i] - lr * b;
  }
  return GRAFT_OK;
}
