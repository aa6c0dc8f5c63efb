/* Convolution as im2col + OpenBLAS sgemm on plain NCHW, bias and ReLU fused
 * into one pass over the output: the gemm path (engine/cpu/conv.c), and an
 * independent check of the oneDNN ones.
 *
 * y[n] [K, P*Q] = W [K, C*R*S] x col(x[n]) [C*R*S, P*Q] */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"

typedef struct gemm_conv {
  graft_plan head;
  graft_conv2d_params p;
  int n, h, w, oh, ow;
  float *weights, *bias, *col;
} gemm_conv;

/* Rows of col [C*R*S, P*Q]: row (c, r, s) holds x[c] shifted by (r, s), zero
 * outside. An orphaned `omp for`: called inside run()'s parallel region the
 * rows are shared out across the team. */
static void im2col(const float *x, int c, int h, int w, int k, int stride, int pad, int oh,
                   int ow, float *col) {
#pragma omp for collapse(2) schedule(static)
  for (int ci = 0; ci < c; ci++)
    for (int kk = 0; kk < k * k; kk++) {
      int ky = kk / k, kx = kk % k;
      float *dst = col + ((size_t)ci * k * k + kk) * oh * ow;
      const float *src = x + (size_t)ci * h * w;
      for (int oy = 0; oy < oh; oy++) {
        int iy = oy * stride - pad + ky;
        for (int ox = 0; ox < ow; ox++) {
          int ix = ox * stride - pad + kx;
          dst[oy * ow + ox] = iy >= 0 && iy < h && ix >= 0 && ix < w ? src[iy * w + ix] : 0.0f;
        }
      }
    }
}

static graft_status run(graft_plan *plan, const void *xv, void *yv) {
  gemm_conv *g = (gemm_conv *)plan;
  const graft_conv2d_params *p = &g->p;
  const int kdim = p->in_c * p->kernel * p->kernel, pq = g->oh * g->ow, k = p->out_c;
  const bool relu = p->relu;
  /* A 1x1/1 convolution without padding is a plain GEMM on x itself. */
  const bool direct = p->kernel == 1 && p->stride == 1 && p->pad == 0;
  /* The team splits the GEMM along its longer output side: pixels for the
   * early layers (AlexNet's first: 64 x 3025), channels for the late ones
   * (256 x 169). OpenBLAS runs one thread per call (see linear.c). */
  const bool by_pixels = pq >= k;
  for (int i = 0; i < g->n; i++) {
    const float *x = (const float *)xv + (size_t)i * p->in_c * g->h * g->w;
    const float *col = direct ? x : g->col;
    float *y = (float *)yv + (size_t)i * k * pq;
#pragma omp parallel
    {
      if (!direct)
        im2col(x, p->in_c, g->h, g->w, p->kernel, p->stride, p->pad, g->oh, g->ow, g->col);
      int lo, hi;
      graft__cpu_split(by_pixels ? pq : k, omp_get_thread_num(), omp_get_num_threads(), &lo,
                       &hi);
      if (hi > lo) {
        int k0 = by_pixels ? 0 : lo, k1 = by_pixels ? k : hi;
        int j0 = by_pixels ? lo : 0, j1 = by_pixels ? hi : pq;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k1 - k0, j1 - j0, kdim, 1.0f,
                    g->weights + (size_t)k0 * kdim, kdim, col + j0, pq, 0.0f,
                    y + (size_t)k0 * pq + j0, pq);
        for (int kk = k0; kk < k1; kk++) {
          float *row = y + (size_t)kk * pq, b = g->bias[kk];
          for (int j = j0; j < j1; j++) {
            float v = row[j] + b;
            row[j] = relu && v < 0 ? 0.0f : v;
          }
        }
      }
    }
  }
  return GRAFT_OK;
}

static void destroy(graft_plan *plan) {
  gemm_conv *g = (gemm_conv *)plan;
  free(g->weights);
  free(g->bias);
  free(g->col);
  free(g);
}

graft_status graft__gemm_conv_plan(cpu_backend *be, const graft_conv2d_params *p,
                                   const graft_act *in, const float *w, const float *b,
                                   graft_act *out, graft_plan **plan) {
  if (in->layout != 0)
    return graft__fail(GRAFT_EUNSUPPORTED, "the GEMM convolution needs plain NCHW input");
  graft_plan *head;
  GRAFT_TRY(graft__cpu_plan_new(be, sizeof(gemm_conv), run, destroy, &head));
  gemm_conv *g = (gemm_conv *)head;
  g->p = *p;
  g->n = in->n;
  g->h = in->h;
  g->w = in->w;
  g->oh = graft_out_dim(in->h, p->kernel, p->stride, p->pad);
  g->ow = graft_out_dim(in->w, p->kernel, p->stride, p->pad);
  size_t kdim = (size_t)p->in_c * p->kernel * p->kernel;
  size_t col_bytes = kdim * g->oh * g->ow * sizeof(float);
  g->weights = malloc(kdim * p->out_c * sizeof(float));
  g->bias = malloc((size_t)p->out_c * sizeof(float));
  bool direct = p->kernel == 1 && p->stride == 1 && p->pad == 0;
  g->col = direct ? NULL : malloc(col_bytes);
  if (!g->weights || !g->bias || (!direct && !g->col)) {
    destroy(head);
    return graft__fail(GRAFT_ENOMEM, "im2col buffers (%zu bytes)", col_bytes);
  }
  memcpy(g->weights, w, kdim * p->out_c * sizeof(float));
  memcpy(g->bias, b, (size_t)p->out_c * sizeof(float));
  *out = (graft_act){in->n, p->out_c, g->oh, g->ow, 0,
                     cpu_act_bytes(in->n, p->out_c, g->oh, g->ow, 0)};
  snprintf(head->what, sizeof head->what, "im2col + OpenBLAS sgemm");
  *plan = head;
  return GRAFT_OK;
}
