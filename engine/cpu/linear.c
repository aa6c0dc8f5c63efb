/* The classifier's Linear layers through OpenBLAS, and the ReLU's backward.
 *   forward:  y[n,out] = act(x[n,in] w[out,in]^T + b)
 *   backward: dw = dy^T x, db = sum_n dy, dx = dy w
 *
 * Threads: OpenBLAS runs single-threaded (see graft_cpu_backend_create) and
 * each GEMM is split into column or row blocks across one OpenMP team. Two
 * thread pools on two cores fight: libgomp's workers spin for a while after
 * every parallel region (oneDNN's, our loops') while OpenBLAS's own pthreads
 * want the same cores; measured, that cost the im2col path 3-5x and the
 * classifier ~2x. One pool, and the spinning then helps instead. */
#include <cblas.h>
#include <omp.h>

#include "engine/cpu/cpu.h"

/* Below this many multiply-adds one thread does it all: a parallel region
 * costs a few microseconds. */
#define LINEAR_PARALLEL_MACS (1 << 17)
/* Forward with 2..LINEAR_CHUNK_MAX_N rows walks w in chunks of this many rows. */
#define LINEAR_CHUNK 128
#define LINEAR_CHUNK_MAX_N 16

/* Thread t's share [lo, hi) of `total`, in multiples of 16 floats (one
 * cache line) so that no two threads write the same line of an output. */
void graft__cpu_split(int total, int t, int nt, int *lo, int *hi) {
  int blocks = (total + 15) / 16;
  *lo = (int)((long long)blocks * t / nt) * 16;
  *hi = (int)((long long)blocks * (t + 1) / nt) * 16;
  if (*lo > total) *lo = total;
  if (*hi > total) *hi = total;
}

int graft__cpu_team(double macs) {
  return macs >= LINEAR_PARALLEL_MACS ? omp_get_max_threads() : 1;
}

graft_status graft__cpu_linear_forward(graft_backend *be, const graft_linear_params *p, int n,
                                       const float *x, const float *w, const float *b, float *y) {
  (void)be;
  const int in = p->in, out = p->out;
  const bool relu = p->relu;
  /* Each thread takes a block of output features: at n = 1 that is a GEMV
   * over its rows of w, bound by reading the weights, so both cores stream. */
#pragma omp parallel num_threads(graft__cpu_team((double)n * in * out))
  {
    int lo, hi;
    graft__cpu_split(out, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
    if (hi > lo) {
      if (n == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, hi - lo, in, 1.0f, w + (size_t)lo * in, in, x,
                    1, 0.0f, y + lo, 1);
      } else {
        /* A few rows of x against many of w: OpenBLAS packs its panel of w
         * and reads it again from memory; in chunks of LINEAR_CHUNK rows the
         * packed panel stays in L2. Measured on 9216->4096 (4096->4096) at
         * n = 8: 8 (7.5) ms whole, 6 (2.6) ms chunked; no gain from n = 32. */
        int step = n <= LINEAR_CHUNK_MAX_N ? LINEAR_CHUNK : hi - lo;
        for (int c = lo; c < hi; c += step) {
          int e = c + step < hi ? c + step : hi;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, e - c, in, 1.0f, x, in,
                      w + (size_t)c * in, in, 0.0f, y + c, out);
        }
      }
      for (int i = 0; i < n; i++) {
        float *row = y + (size_t)i * out;
        for (int o = lo; o < hi; o++) {
          float v = row[o] + b[o];
          row[o] = relu && v < 0 ? 0.0f : v;
        }
      }
    }
  }
  return GRAFT_OK;
}

graft_status graft__cpu_linear_backward(graft_backend *be, const graft_linear_params *p, int n,
                                        const float *dy, const float *x, const float *w,
                                        float *dx, float *dw, float *db) {
  (void)be;
  const int in = p->in, out = p->out;
#pragma omp parallel num_threads(graft__cpu_team((double)n * in * out))
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int lo, hi;
    /* dw rows [lo, hi) = dy[:, lo:hi]^T x; db over the same features. */
    graft__cpu_split(out, t, nt, &lo, &hi);
    if (hi > lo) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, in, n, 1.0f, dy + lo, out, x,
                  in, 0.0f, dw + (size_t)lo * in, in);
      for (int o = lo; o < hi; o++) {
        float s = 0;
        for (int i = 0; i < n; i++) s += dy[(size_t)i * out + o];
        db[o] = s;
      }
    }
    /* dx columns [lo, hi) = dy w[:, lo:hi]. */
    graft__cpu_split(in, t, nt, &lo, &hi);
    if (dx && hi > lo)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hi - lo, out, 1.0f, dy, out,
                  w + lo, in, 0.0f, dx + lo, in);
  }
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
