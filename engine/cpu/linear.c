/* The classifier's Linear layers through OpenBLAS, and the ReLU's backward.
 *   forward:  y[n,out] = act(x[n,in] w[out,in]^T + b)
 *   backward: dw = dy^T x, db = sum_n dy, dx = dy w */
#include <cblas.h>

#include "engine/cpu/cpu.h"

graft_status graft__cpu_linear_forward(graft_backend *be, const graft_linear_params *p, int n,
                                       const float *x, const float *w, const float *b, float *y) {
  (void)be;
  if (n == 1) /* one image: a GEMV, bound by reading the weights */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, p->out, p->in, 1.0f, w, p->in, x, 1, 0.0f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, p->out, p->in, 1.0f, x, p->in, w,
                p->in, 0.0f, y, p->out);
  const size_t total = (size_t)n * p->out;
#pragma omp parallel for schedule(static) if (total > 65536)
  for (size_t i = 0; i < total; i++) {
    float v = y[i] + b[i % (size_t)p->out];
    y[i] = p->relu && v < 0 ? 0.0f : v;
  }
  return GRAFT_OK;
}

graft_status graft__cpu_linear_backward(graft_backend *be, const graft_linear_params *p, int n,
                                        const float *dy, const float *x, const float *w,
                                        float *dx, float *dw, float *db) {
  (void)be;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->out, p->in, n, 1.0f, dy, p->out, x,
              p->in, 0.0f, dw, p->in);
#pragma omp parallel for schedule(static) if (p->out > 4096)
  for (int o = 0; o < p->out; o++) {
    float s = 0;
    for (int i = 0; i < n; i++) s += dy[(size_t)i * p->out + o];
    db[o] = s;
  }
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, p->in, p->out, 1.0f, dy, p->out, w,
                p->in, 0.0f, dx, p->in);
  return GRAFT_OK;
}

graft_status graft__cpu_relu_backward(graft_backend *be, size_t count, const float *y,
                                      float *dy) {
  (void)be;
#pragma omp parallel for schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; i++)
    if (!(y[i] > 0)) dy[i] = 0.0f;
  return GRAFT_OK;
}
