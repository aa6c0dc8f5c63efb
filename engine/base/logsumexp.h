/* Log-sum-exp of a row of logits, log(sum_c exp(x_c)) = m + log(sum_c exp(x_c - m))
 * with m the row's largest value, so that no exp overflows and the largest
 * term is exactly 1. One definition for both backends, host and device: the
 * CPU (engine/cpu/loss.c) takes a whole row in one pass (first 0, step 1);
 * a GPU block (engine/cuda/kernels.cu) gives thread t the columns t, t +
 * threads, ... and combines the threads' partial maxima and sums in a tree.
 * The sum is in double on the CPU (its results then sit well inside
 * PyTorch's float rounding) and in float on the GPU. */
#ifndef GRAFT_LOGSUMEXP_H
#define GRAFT_LOGSUMEXP_H

#include <math.h>

#include "engine/base/hostdevice.h"

/* The largest of row[first], row[first + step], ... below k; -INFINITY when
 * first >= k. (The comparison keeps a NaN in row[first]: it then spreads to
 * the sum, as it should.) */
static inline GRAFT_HD float graft_lse_max(const float *row, int k, int first, int step) {
  float m = first < k ? row[first] : -INFINITY;
  for (int c = first + step; c < k; c += step) m = row[c] > m ? row[c] : m;
  return m;
}

/* The sum of exp(row[c] - m) over the same columns, in double or in float. */
#define GRAFT__LSE_SUM(T, EXP)                                                              \
  static inline GRAFT_HD T graft_lse_sum_##T(const float *row, int k, int first, int step,  \
                                             T m) {                                         \
    T s = 0;                                                                                \
    for (int c = first; c < k; c += step) s += EXP((T)row[c] - m);                          \
    return s;                                                                               \
  }
GRAFT__LSE_SUM(double, exp)
GRAFT__LSE_SUM(float, expf)
#undef GRAFT__LSE_SUM

/* The log-sum-exp of a whole row, in double: m + log(s). */
static inline GRAFT_HD double graft_log_sum_exp(const float *row, int k) {
  double m = graft_lse_max(row, k, 0, 1);
  return m + log(graft_lse_sum_double(row, k, 0, 1, m));
}

#endif
