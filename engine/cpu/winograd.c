/* graft's own Winograd convolution for 3x3 and 5x5 stride-1 layers on AVX2 +
 * FMA: F(4x4,3x3), F(2x2,3x3) and F(4x4,5x5) (and F(6x6,3x3) when asked
 * for, GRAFT_CPU_CONV=graft-winograd-f6; F(2x2,5x5) with
 * graft-winograd-f2), on the trunk's nChw8c layout
 * in and out (no reorders between it and oneDNN's layers), bias and ReLU
 * fused into the output transform, the weights transformed once when the
 * layer is planned (algorithm and layouts: winograd.h; the AVX2 stages:
 * winograd_avx2.c; who runs it: choose_winograd in backend.c).
 *
 * Why: oneDNN 2.6 has a Winograd kernel only for AVX-512. On AVX2 its
 * direct kernel already runs VGG16's 3x3 layers at ~85% of the FMA peak, so
 * the only way to be faster there is fewer multiplies: F(4x4,3x3) does 36
 * per 16 outputs and input channel where direct does 144 (F(2x2,3x3): 16
 * per 4, against 36; F(4x4,5x5): 64 per 16, against 400). F(6x6,3x3) does
 * 1.27x fewer again on whole tiles, for 1.5-2x F(4x4,3x3)'s rounding error
 * (test_cpu_trunk) and 64/36 of its transformed weights, which already make
 * the small-batch layers wait on memory. Measured on VGG16 at batch 1 (an
 * AVX-512 EPYC capped at AVX2, 2 threads, each layer's best of 4 runs of
 * bench/cpu_backend_probe.c), its time against F(4x4,3x3)'s: 0.88-1.03x
 * at 224x224 to 56x56 (partial tiles: 56 = 9.3 tiles of 6), 1.04-1.11x at
 * 28x28, 1.35x at 14x14 against F(2x2,3x3). At best under 1 ms of the
 * net's ~66, so no layer chooses it. F(4x4,5x5) takes F(6x6,3x3)'s eight
 * points and B^T; on AlexNet's 5x5 layer (64->192 at 27x27, 2 threads, best
 * of 4 runs) it takes 0.43, 1.75 and 3.80 ms at batch 1, 4 and 8 against
 * F(2x2,5x5)'s 0.95, 3.59 and 7.58, for up to 1.6x its rounding error
 * (test_cpu_ops: rel 3.1e-6 against 1.9e-6).
 *
 * Measured (AMD EPYC, Zen 3, AVX2, 2 threads; bench/cpu_backend_probe.c):
 * VGG16's 3x3 layers at batch 1 run 2.2x (64 channels at 224x224) to 3.3x
 * (256-512 channels) faster than oneDNN's direct kernel, 2.0x at 14x14;
 * the GEMM stage runs at 85-95% of direct's rate of multiply-adds, and the
 * transforms take a quarter of the time at 64 channels, less above. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/winograd.h"

/* The schedule's constants, measured on VGG16's and AlexNet's layers (AMD
 * EPYC Zen 3, AVX2, 2 cores, 512 KiB L2 each; see choose_shape). */
#define WINO_FEW_TILES 32             /* fewer F(4x4,3x3) tiles than this ... */
#define WINO_BIG_WEIGHTS (8u << 20)   /* ... on weights larger: F(2x2,3x3) */
#define WINO_ALONE_WEIGHTS (3u << 20) /* weights re-read per block up to this */
#define WINO_BLOCK_ALONE 18           /* tiles a thread's block: V and M in L2 */
#define WINO_BLOCK_TEAM 192           /* tiles a team's block */
#define WINO_ALONE_L2 (400u << 10)    /* a thread's V and M at most (F(6x6,3x3)) */

bool graft__wino_fits(const cpu_backend *be, const graft_conv2d_params *p, const graft_act *in) {
  return be->avx2 && be->block == 8 && in->layout == 8 && p->stride == 1 &&
         (p->kernel == 3 || p->kernel == 5);
}

/* G of F(2x2,3x3), and of F(4x4,3x3) and F(2x2,5x5) (the same points 0,
 * 1, -1, 2, -2, inf: row i is n_i (1, p_i, p_i^2, ...), n_i = 1/4, -1/6,
 * -1/6, 1/24, 1/24, 1), and of F(6x6,3x3) and F(4x4,5x5) (a = 8: 1/2 and
 * -1/2 too): U = G w G^T. */
static void g_row(int a, int r, int i, double *row) {
  static const double pt[5] = {0, 1, -1, 2, -2}, nrm[5] = {0.25, -1.0 / 6, -1.0 / 6,
                                                          1.0 / 24, 1.0 / 24};
  static const double pt8[7] = {0, 1, -1, 2, -2, 0.5, -0.5},
                      nrm8[7] = {1, -2.0 / 9, -2.0 / 9, 1.0 / 90, 1.0 / 90, 32.0 / 45, 32.0 / 45};
  static const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  for (int s = 0; s < r; s++) {
    if (a == 4)
      row[s] = g2[i][s];
    else if (i == a - 1)
      row[s] = s == r - 1;
    else if (a == 8)
      row[s] = nrm8[i] * (s == 0 ? 1.0 : pow(pt8[i], s));
    else
      row[s] = nrm[i] * (s == 0 ? 1.0 : pow(pt[i], s));
  }
}

/* Block b of 16 output channels of U [a*a][kb][cg*8][16] from w
 * [K][C][r][r], in double, rounded once; zero for the channels that only
 * pad the blocks. A and R are constants where this is inlined, so that the
 * small products unroll and the 16 channels vectorize. */
static inline __attribute__((always_inline)) void transform_block(wino_plan *p, const int A,
                                                                  const int R, int b, int c_in,
                                                                  int k_out, const float *w) {
  const int cp = p->cg * 8;
  const size_t xi_stride = (size_t)p->kb * cp * 16;
  double g[8][5];
  for (int i = 0; i < A; i++) g_row(A, R, i, g[i]);
  for (int c = 0; c < cp; c++) {
    double f[25][16], gf[8][5][16];
    for (int kk = 0; kk < 16; kk++) {
      int k = b * 16 + kk;
      for (int t = 0; t < R * R; t++)
        f[t][kk] = k < k_out && c < c_in ? w[((size_t)k * c_in + c) * R * R + t] : 0.0;
    }
    for (int i = 0; i < A; i++)
      for (int s = 0; s < R; s++)
        for (int kk = 0; kk < 16; kk++) {
          double sum = 0;
          for (int t = 0; t < R; t++) sum += g[i][t] * f[t * R + s][kk];
          gf[i][s][kk] = sum;
        }
    float *out = p->u + ((size_t)b * cp + c) * 16;
    for (int i = 0; i < A; i++)
      for (int j = 0; j < A; j++)
        for (int kk = 0; kk < 16; kk++) {
          double u = 0;
          for (int s = 0; s < R; s++) u += gf[i][s][kk] * g[j][s];
          out[(i * A + j) * xi_stride + kk] = (float)u;
        }
  }
}

static void transform_weights(wino_plan *p, int c_in, int k_out, const float *w) {
#pragma omp parallel for schedule(static) num_threads(p->head.be->base.threads)
  for (int b = 0; b < p->kb; b++) {
    if (p->a == 4)
      transform_block(p, 4, 3, b, c_in, k_out, w);
    else if (p->a == 8 && p->r == 3)
      transform_block(p, 8, 3, b, c_in, k_out, w);
    else if (p->a == 8)
      transform_block(p, 8, 5, b, c_in, k_out, w);
    else if (p->r == 3)
      transform_block(p, 6, 3, b, c_in, k_out, w);
    else
      transform_block(p, 6, 5, b, c_in, k_out, w);
  }
}

static void share(int total, int t, int nt, int *lo, int *hi) {
  *lo = (int)((long long)total * t / nt);
  *hi = (int)((long long)total * (t + 1) / nt);
}

static graft_status wino_run(graft_plan *plan, const void *xv, void *yv) {
  wino_plan *p = (wino_plan *)plan;
  const float *x = xv;
  float *y = yv;
  const int threads = plan->be->base.threads;
  const size_t per = p->v_floats + p->m_floats;
  float *ws;
  GRAFT_TRY(graft__cpu_scratch(plan->be, per * (p->team ? 1 : threads), &ws));
  const int blocks = (p->tiles + p->block - 1) / p->block, units = p->a * p->a * p->kb;
  if (p->team) {
    /* Each block by the whole team, stage by stage. The output stage of one
     * block and the input stage of the next touch different buffers, so two
     * barriers a block suffice. */
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      float *v = ws, *m = ws + p->v_floats;
      int lo, hi;
      for (int b = 0; b < blocks; b++) {
        int t0 = b * p->block, cnt = p->tiles - t0 < p->block ? p->tiles - t0 : p->block;
        share(cnt, t, nt, &lo, &hi);
        graft__wino_input_avx2(p, x, v, t0, lo, hi);
#pragma omp barrier
        share(units, t, nt, &lo, &hi);
        graft__wino_gemm_avx2(p, v, m, cnt, lo, hi);
#pragma omp barrier
        share(cnt, t, nt, &lo, &hi);
        graft__wino_output_avx2(p, m, y, t0, lo, hi);
      }
    }
  } else {
    /* Each block by one thread, in its own V and M (they stay in its L2). */
#pragma omp parallel num_threads(threads)
    {
      float *v = ws + per * omp_get_thread_num(), *m = v + p->v_floats;
#pragma omp for schedule(dynamic)
      for (int b = 0; b < blocks; b++) {
        int t0 = b * p->block, cnt = p->tiles - t0 < p->block ? p->tiles - t0 : p->block;
        graft__wino_input_avx2(p, x, v, t0, 0, cnt);
        graft__wino_gemm_avx2(p, v, m, cnt, 0, units);
        graft__wino_output_avx2(p, m, y, t0, 0, cnt);
      }
    }
  }
  return GRAFT_OK;
}

static void wino_destroy(graft_plan *plan) {
  wino_plan *p = (wino_plan *)plan;
  free(p->u);
  free(p->bias);
  free(p);
}

static void set_tiles(wino_plan *p, int m) {
  p->m = m;
  p->a = m + p->r - 1;
  p->tiles_w = (p->ow + m - 1) / m;
  p->tiles_img = (p->oh + m - 1) / m * p->tiles_w;
  p->tiles = p->n * p->tiles_img;
}

static size_t u_bytes(const wino_plan *p) {
  return (size_t)p->a * p->a * p->kb * 16 * p->cg * 8 * sizeof(float);
}

/* Tile size and schedule for this layer. */
static void choose_shape(const cpu_backend *be, wino_plan *p) {
  const int threads = be->base.threads;
  /* F(4x4,3x3) does 1/4 of direct's multiplies, F(2x2,3x3) 4/9, and
   * measured on VGG16's layers down to 28x28 it is 1.5x faster. But its
   * transformed weights are 36/16 as large, and a run reads them from
   * memory once (VGG16's add up to 170 MB): per byte of them the GEMM does
   * tiles/4 multiply-adds. With few tiles and large weights the cores wait
   * on memory: VGG16's 14x14 layers at batch 1 (16 tiles, 38 MB; F(2x2,3x3):
   * 49 tiles, 17 MB) made VGG16 12.9 images/s with F(2x2,3x3), 11.5 with
   * F(4x4,3x3); AlexNet at batch 1 (13x13: 16 tiles, 9-14 MB) 74.5 and
   * 72.5. (Timing such a layer alone, again and again, misleads: its
   * weights then stay in L3, where a whole net's do not.) */
  if (p->r == 5)
    set_tiles(p, be->wino_m == 2 ? 2 : 4);
  else
    set_tiles(p, be->wino_m ? be->wino_m : 4);
  if (p->r == 3 && !be->wino_m && p->tiles < WINO_FEW_TILES && u_bytes(p) > WINO_BIG_WEIGHTS)
    set_tiles(p, 2);
  /* One thread per block (no barriers; its V and M in its own L2) where the
   * weights are small enough to be read again for every block of
   * WINO_BLOCK_ALONE tiles and there are blocks enough to share; else
   * blocks of WINO_BLOCK_TEAM tiles shared by the team stage by stage, the
   * GEMM's units split across it, so that a block reads the weights once. */
  p->team = !(u_bytes(p) <= WINO_ALONE_WEIGHTS &&
              p->tiles >= 4 * threads * WINO_BLOCK_ALONE);
  p->block = p->team ? WINO_BLOCK_TEAM : WINO_BLOCK_ALONE;
  /* F(6x6,3x3)'s 64 slices of a block of 18 tiles would pass L2 at 64
   * channels: fewer tiles. */
  while (p->a == 8 && !p->team && p->block > WINO_ROWS &&
         (size_t)p->a * p->a * p->block * (p->cg * 8 + p->kb * 16) * sizeof(float) > WINO_ALONE_L2)
    p->block -= WINO_ROWS;
  int need = (p->tiles + WINO_ROWS - 1) / WINO_ROWS * WINO_ROWS;
  if (p->block > need) p->block = need;
  p->v_xi = (size_t)p->block * p->cg * 8 + 16;
  p->m_xi = (size_t)p->block * p->kb * 16 + 16;
  p->v_floats = (size_t)p->a * p->a * p->v_xi;
  p->m_floats = (size_t)p->a * p->a * p->m_xi;
}

graft_status graft__wino_conv_plan(cpu_backend *be, const graft_conv2d_params *cp,
                                   const graft_act *in, const float *w, const float *b,
                                   graft_act *out, graft_plan **plan) {
  graft_plan *head;
  GRAFT_TRY(graft__cpu_plan_new(be, sizeof(wino_plan), wino_run, wino_destroy, &head));
  wino_plan *p = (wino_plan *)head;
  p->n = in->n, p->h = in->h, p->w = in->w, p->pad = cp->pad, p->relu = cp->relu;
  p->r = cp->kernel;
  p->oh = graft_out_dim(in->h, p->r, 1, cp->pad);
  p->ow = graft_out_dim(in->w, p->r, 1, cp->pad);
  p->cg = (cp->in_c + 7) / 8;
  p->kg = (cp->out_c + 7) / 8;
  p->kb = (cp->out_c + 15) / 16;
  choose_shape(be, p);
  void *u = NULL, *bias = NULL;
  if (posix_memalign(&u, 64, u_bytes(p)) != 0 ||
      posix_memalign(&bias, 64, (size_t)p->kb * 16 * sizeof(float)) != 0) {
    free(u);
    wino_destroy(head);
    return graft__fail(GRAFT_ENOMEM, "Winograd weights of %zu bytes", u_bytes(p));
  }
  p->u = u;
  p->bias = bias;
  memset(p->bias, 0, (size_t)p->kb * 16 * sizeof(float));
  memcpy(p->bias, b, (size_t)cp->out_c * sizeof(float));
  transform_weights(p, cp->in_c, cp->out_c, w);
  /* The workspace now, so that running never fails for memory. */
  float *ws;
  graft_status st = graft__cpu_scratch(
      be, (p->v_floats + p->m_floats) * (p->team ? 1 : (size_t)be->base.threads), &ws);
  if (st != GRAFT_OK) {
    wino_destroy(head);
    return st;
  }
  snprintf(head->what, sizeof head->what, "graft Winograd F(%dx%d,%dx%d), %s of %d tiles",
           p->m, p->m, p->r, p->r, p->team ? "team blocks" : "thread blocks", p->block);
  *out = (graft_act){in->n, cp->out_c, p->oh, p->ow, 8, 0};
  out->bytes = cpu_act_bytes(out->n, out->c, p->oh, p->ow, 8);
  *plan = head;
  return GRAFT_OK;
}
