/* Dropout, softmax and cross-entropy on the CPU. Reductions run in double:
 * the results then sit well inside PyTorch's float rounding. */
#include <math.h>

#include "engine/cpu/cpu.h"
#include "engine/base/logsumexp.h"
#include "engine/base/rng.h"

graft_status graft__cpu_dropout_forward(graft_backend *be, size_t count, float p, uint64_t seed,
                                        uint64_t offset, float *x, uint8_t *keep) {
  (void)be;
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; i++) {
    uint8_t k = graft_rng_uniform(seed, offset + i) >= p;
    keep[i] = k;
    x[i] = k ? x[i] * scale : 0.0f;
  }
  return GRAFT_OK;
}

graft_status graft__cpu_dropout_backward(graft_backend *be, size_t count, float p,
                                         const uint8_t *keep, float *dy) {
  (void)be;
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; i++) dy[i] = keep[i] ? dy[i] * scale : 0.0f;
  return GRAFT_OK;
}

graft_status graft__cpu_softmax_forward(graft_backend *be, int n, int k, const float *x,
                                        float *y) {
  (void)be;
  for (int i = 0; i < n; i++) {
    const float *row = x + (size_t)i * k;
    double lse = graft_log_sum_exp(row, k);
    for (int c = 0; c < k; c++) y[(size_t)i * k + c] = (float)exp((double)row[c] - lse);
  }
  return GRAFT_OK;
}

graft_status graft__cpu_cross_entropy(graft_backend *be, int n, int k, const float *logits,
                                      const int32_t *labels, float *loss, float *dlogits) {
  (void)be;
  for (int i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= k)
      return graft__fail(GRAFT_ERANGE, "label %d of row %d is outside [0, %d)", labels[i], i, k);
  for (int i = 0; i < n; i++) {
    const float *row = logits + (size_t)i * k;
    double lse = graft_log_sum_exp(row, k);
    loss[i] = (float)(lse - row[labels[i]]);
    if (dlogits)
      for (int c = 0; c < k; c++)
        dlogits[(size_t)i * k + c] =
            (float)((exp((double)row[c] - lse) - (c == labels[i])) / (double)n);
  }
  return GRAFT_OK;
}
