/* A strided convolution on plain NCHW input as a stride-1 one, so that
 * graft's Winograd (winograd.c) runs it: AlexNet's first layer (11x11,
 * stride 4, 3 channels, 224x224 -> 55x55) on AVX2.
 *
 * Space to depth: with stride s, kernel k and r = ceil(k / s), every kernel
 * row is ky = s*a + dy (a < r, dy < s), likewise columns, so
 *   y[o][oy][ox] = sum_{c,ky,kx} w[o][c][ky][kx] x[c][s*oy + ky - pad][s*ox + kx - pad]
 *                = sum_{c',a,b}  w'[o][c'][a][b] S[c'][oy + a][ox + b]
 * with c' = c*s*s + dy*s + dx and
 *   S[c'][Y][X]     = x[c][s*Y + dy - pad][s*X + dx - pad]   (0 outside x)
 *   w'[o][c'][a][b] = w[o][c][s*a + dy][s*b + dx]            (0 where s*a+dy >= k)
 * An r x r stride-1 convolution without padding over c*s*s channels of
 * (oh + r - 1) x (ow + r - 1): the same sums of the same products, plus
 * products with zero weights (12x12 for 11x11: 19% more), which Winograd's
 * 4x fewer multiplies more than repay.
 *
 * Why: oneDNN's direct kernel ran AlexNet's first layer at ~90 GFLOP/s on
 * AVX2 (45% of the sgemm roof, 2 cores; im2col + OpenBLAS sgemm the same),
 * a quarter of AlexNet's forward time at batch 8. VGG16's first layer (3x3/1
 * on the image) would fit too, but measured slower: with 3 channels the
 * transforms cost more than the multiplies saved (0.8-0.9 ms direct, 1.8-2.0
 * Winograd), so stride 1 is left to oneDNN. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"

typedef struct s2d_plan {
  graft_plan head;
  graft_plan *inner; /* graft's Winograd on S */
  int n, c, h, w;    /* the layer's input (plain NCHW) */
  int s, pad;        /* its stride and padding */
  int sh, sw, cg;    /* S: rows, columns, 8-channel groups (nChw8c) */
  float *buf;        /* S: [n][cg][sh][sw][8] */
} s2d_plan;

/* The side r of the stride-1 kernel a strided one becomes. */
static int s2d_side(const graft_conv2d_params *p) {
  return (p->kernel + p->stride - 1) / p->stride;
}

bool graft__s2d_fits(const cpu_backend *be, const graft_conv2d_params *p, const graft_act *in) {
  return be->wino == CPU_WINO_GRAFT && be->avx2 && be->block == 8 && in->layout == 0 &&
         p->stride > 1 && p->kernel > p->stride && s2d_side(p) == 3 &&
         p->in_c * p->stride * p->stride <= 64 && p->pad < p->kernel;
}

/* S from x: rows [lo, hi) of all n * cg * sh. */
static void rearrange(const s2d_plan *p, const float *x, int lo, int hi) {
  const int ss = p->s * p->s, cs = p->c * ss;
  for (int row = lo; row < hi; row++) {
    const int Y = row % p->sh, g = row / p->sh % p->cg, n = row / p->sh / p->cg;
    float *dst = p->buf + (size_t)row * p->sw * 8;
    for (int l = 0; l < 8; l++) {
      const int cc = g * 8 + l, c = cc / ss, dy = cc % ss / p->s, dx = cc % p->s;
      const int iy = p->s * Y + dy - p->pad;
      if (cc >= cs || iy < 0 || iy >= p->h) {
        for (int X = 0; X < p->sw; X++) dst[X * 8 + l] = 0;
        continue;
      }
      const float *src = x + (((size_t)n * p->c + c) * p->h + iy) * p->w;
      for (int X = 0; X < p->sw; X++) {
        const int ix = p->s * X + dx - p->pad;
        dst[X * 8 + l] = ix >= 0 && ix < p->w ? src[ix] : 0;
      }
    }
  }
}

static graft_status s2d_run(graft_plan *plan, const void *x, void *y) {
  s2d_plan *p = (s2d_plan *)plan;
  const int rows = p->n * p->cg * p->sh;
#pragma omp parallel num_threads(plan->be->base.threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    rearrange(p, x, (int)((long long)rows * t / nt), (int)((long long)rows * (t + 1) / nt));
  }
  return p->inner->run(p->inner, p->buf, y);
}

static void s2d_destroy(graft_plan *plan) {
  s2d_plan *p = (s2d_plan *)plan;
  if (p->inner) p->inner->destroy(p->inner);
  free(p->buf);
  free(p);
}

/* w' [out_c][c*s*s][r][r] from w [out_c][c][k][k]. */
static float *fold_weights(const graft_conv2d_params *p, const float *w) {
  const int s = p->stride, k = p->kernel, r = s2d_side(p), cs = p->in_c * s * s;
  float *f = calloc((size_t)p->out_c * cs * r * r, sizeof(float));
  if (!f) return NULL;
  for (int o = 0; o < p->out_c; o++)
    for (int c = 0; c < p->in_c; c++)
      for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
          int cc = (c * s + ky % s) * s + kx % s;
          f[(((size_t)o * cs + cc) * r + ky / s) * r + kx / s] =
              w[(((size_t)o * p->in_c + c) * k + ky) * k + kx];
        }
  return f;
}

graft_status graft__s2d_conv_plan(cpu_backend *be, const graft_conv2d_params *cp,
                                  const graft_act *in, const float *w, const float *b,
                                  graft_act *out, graft_plan **plan) {
  graft_plan *head;
  GRAFT_TRY(graft__cpu_plan_new(be, sizeof(s2d_plan), s2d_run, s2d_destroy, &head));
  s2d_plan *p = (s2d_plan *)head;
  const int r = s2d_side(cp), cs = cp->in_c * cp->stride * cp->stride;
  p->n = in->n, p->c = in->c, p->h = in->h, p->w = in->w, p->s = cp->stride, p->pad = cp->pad;
  p->sh = graft_out_dim(in->h, cp->kernel, cp->stride, cp->pad) + r - 1;
  p->sw = graft_out_dim(in->w, cp->kernel, cp->stride, cp->pad) + r - 1;
  p->cg = (cs + 7) / 8;
  void *buf = NULL;
  float *folded = fold_weights(cp, w);
  if (!folded ||
      posix_memalign(&buf, 64, (size_t)p->n * p->cg * p->sh * p->sw * 8 * sizeof(float)) != 0) {
    free(folded);
    s2d_destroy(head);
    return graft__fail(GRAFT_ENOMEM, "out of memory planning a strided convolution");
  }
  p->buf = buf;
  const graft_conv2d_params ip = {cs, cp->out_c, r, 1, 0, cp->relu};
  graft_act s_act = {p->n, cs, p->sh, p->sw, 8, 0};
  s_act.bytes = cpu_act_bytes(p->n, cs, p->sh, p->sw, 8);
  graft_status st = graft__wino_conv_plan(be, &ip, &s_act, folded, b, out, &p->inner);
  free(folded);
  if (st != GRAFT_OK) {
    s2d_destroy(head);
    return st;
  }
  snprintf(head->what, sizeof head->what, "space to depth %dx%d, then %.90s", cp->stride,
           cp->stride, p->inner->what);
  *plan = head;
  return GRAFT_OK;
}
