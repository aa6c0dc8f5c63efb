/* A trainable Linear's backward fused with its SGD step
 * (linear_backward_sgd, engine/backend_impl.h):
 *   dx[n,in] = dy[n,out] w[out,in]            with the weights before the step
 *   g[o,i]   = sum_k dy[k,o] x[k,i]            k = 0..n-1 in order, never stored
 *   g = g + wd * w (only with weight decay); buf = first ? g : mu * buf + g;
 *   w = w - lr * buf                           PyTorch's form, as sgd.c
 * and the same for b with g = sum_k dy[k,o].
 *
 * Why: at the batches finetune uses (4) a step of AlexNet's classifier is
 * bound by memory traffic. Unfused, the backward writes dw (and reads the
 * lines it writes), then the SGD step reads dw, buf and w and writes buf and
 * w: ~7 passes over the weights' size. Here g lives in a chunk that stays in
 * L1, and the step reads w and buf and writes them back: 4 passes.
 *
 * Threads: dx first (columns of dx split across the team, OpenBLAS
 * single-threaded as in linear.c), a barrier, then the update (blocks of 16
 * output rows per thread). Each element's arithmetic is fixed by the
 * formulas above whatever the split, so the update's bits depend on nothing
 * but the inputs; dx's are those of linear.c's backward for the same team.
 *
 * Two builds of the update loop, generic and AVX2 (cpu_backend.avx2). No
 * FMA in either (floats are never contracted, see cmake/GraftWarnings.cmake),
 * so both give the same bits: the choice is speed only. */
#include <cblas.h>
#include <omp.h>

#include "engine/cpu/cpu.h"

/* Batches of up to FUSED_MAX_K rows run one loop over FUSED_ROWS rows of w
 * at a time: the g of each element in a register, w and buf read in
 * unbroken streams, and each vector of x (from L2: 4 x 36 KiB at AlexNet's
 * first layer) loaded once for FUSED_ROWS rows. Measured on 9216->4096,
 * n = 4: one row at a time 9.7 ms (x's loads from L2 the bound: 6.4 ms at
 * n = 1), this 5.9 ms against the unfused backward + sgd_step's 13 ms.
 * Larger batches have OpenBLAS compute g a few rows at a time (it reuses x
 * well), then step those rows. */
#define FUSED_MAX_K 8
#define FUSED_ROWS 4
#define FUSED_TILE 8

typedef struct step_args {
  int n, in, out, lo, hi;
  const float *dy, *x;
  float *w, *b, *buf_w, *buf_b;
  float *tile; /* this thread's FUSED_TILE x in floats (n > FUSED_MAX_K) */
  float lr, mu, wd;
  bool first;
} step_args;

/* The SGD step of one parameter p with momentum *buf and gradient g, in
 * sgd.c's order. first and decay are the same for every element, so the
 * selects cost a blend each, not a branch. */
static inline __attribute__((always_inline)) void sgd_one(float g, float *p, float *buf,
                                                          float lr, float mu, float wd,
                                                          bool first, bool decay) {
  float gd = g + wd * *p;
  g = decay ? gd : g;
  float v = mu * *buf + g;
  v = first ? g : v;
  *buf = v;
  *p = *p - lr * v;
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias)); /* unaligned */

/* R rows of w from w (row stride in) and their momentum: for each j < in,
 * g = sum over k < K of d[r*K + k] * x[k*in + j], in k's order, then the SGD
 * step. K and R are constants where this is inlined. 8 lanes of GCC's
 * vector extension (lowered to what the target has), the same formula one
 * element at a time for the last in % 8. */
static inline __attribute__((always_inline)) void step_block(
    const int K, const int R, int in, const float *d, const float *restrict x,
    float *restrict w, float *restrict buf, float lr, float mu, float wd, bool first,
    bool decay) {
  v8 dv[FUSED_ROWS][FUSED_MAX_K];
  for (int r = 0; r < R; r++)
    for (int k = 0; k < K; k++) dv[r][k] = (v8){0} + d[r * K + k];
  const v8 lrv = (v8){0} + lr, muv = (v8){0} + mu, wdv = (v8){0} + wd;
  int j = 0;
  for (; j + 8 <= in; j += 8) {
    v8 xv[FUSED_MAX_K];
    for (int k = 0; k < K; k++) xv[k] = *(const v8u *)(x + (size_t)k * in + j);
    for (int r = 0; r < R; r++) {
      v8 g = dv[r][0] * xv[0];
      for (int k = 1; k < K; k++) g = g + dv[r][k] * xv[k];
      v8u *pw = (v8u *)(w + (size_t)r * in + j), *pb = (v8u *)(buf + (size_t)r * in + j);
      v8 p = *pw;
      if (decay) g = g + wdv * p;
      v8 v = first ? g : muv * *pb + g;
      *pb = v;
      *pw = p - lrv * v;
    }
  }
  for (; j < in; j++)
    for (int r = 0; r < R; r++) {
      float g = d[r * K] * x[j];
      for (int k = 1; k < K; k++) g = g + d[r * K + k] * x[(size_t)k * in + j];
      sgd_one(g, &w[(size_t)r * in + j], &buf[(size_t)r * in + j], lr, mu, wd, first, decay);
    }
}

#define STEP_BLOCK_K(K)                                                            \
  case K:                                                                          \
    if (R == FUSED_ROWS)                                                           \
      step_block(K, FUSED_ROWS, in, d, x, w, buf, lr, mu, wd, first, decay);       \
    else                                                                           \
      step_block(K, 1, in, d, x, w, buf, lr, mu, wd, first, decay);                \
    break;

static inline __attribute__((always_inline)) void step_block_any(
    int K, int R, int in, const float *d, const float *x, float *w, float *buf, float lr,
    float mu, float wd, bool first, bool decay) {
  switch (K) {
    STEP_BLOCK_K(1)
    STEP_BLOCK_K(2)
    STEP_BLOCK_K(3)
    STEP_BLOCK_K(4)
    STEP_BLOCK_K(5)
    STEP_BLOCK_K(6)
    STEP_BLOCK_K(7)
    default: STEP_BLOCK_K(8)
  }
}

/* n > FUSED_MAX_K: g for FUSED_TILE rows at a time by OpenBLAS into tile
 * (FUSED_TILE x in floats, L2), then the step streams w and buf past it. */
static inline __attribute__((always_inline)) void step_tiled(
    int R, int n, int in, int out, const float *dy, const float *x, float *restrict tile,
    float *restrict w, float *restrict buf, float lr, float mu, float wd, bool first,
    bool decay) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, in, n, 1.0f, dy, out, x, in, 0.0f,
              tile, in);
  for (size_t j = 0; j < (size_t)R * in; j++)
    sgd_one(tile[j], &w[j], &buf[j], lr, mu, wd, first, decay);
}

/* Rows [lo, hi) of w and b, and their momentum. */
static inline __attribute__((always_inline)) void step_rows(const step_args *a) {
  const int n = a->n, in = a->in, out = a->out;
  const bool first = a->first, decay = a->wd != 0.0f;
  const float lr = a->lr, mu = a->mu, wd = a->wd;
  for (int o = a->lo; o < a->hi;) {
    float *w = a->w + (size_t)o * in, *buf = a->buf_w + (size_t)o * in;
    int R;
    if (n <= FUSED_MAX_K) {
      R = a->hi - o >= FUSED_ROWS ? FUSED_ROWS : 1;
      float d[FUSED_ROWS * FUSED_MAX_K] = {0};
      for (int r = 0; r < R; r++)
        for (int k = 0; k < n; k++) d[r * n + k] = a->dy[(size_t)k * out + o + r];
      step_block_any(n, R, in, d, a->x, w, buf, lr, mu, wd, first, decay);
    } else {
      R = a->hi - o < FUSED_TILE ? a->hi - o : FUSED_TILE;
      step_tiled(R, n, in, out, a->dy + o, a->x, a->tile, w, buf, lr, mu, wd, first, decay);
    }
    /* The biases: g = sum_k dy[k,o] from 0, as linear.c's db. */
    for (int r = 0; r < R; r++) {
      float gb = 0.0f;
      for (int k = 0; k < n; k++) gb = gb + a->dy[(size_t)k * out + o + r];
      sgd_one(gb, &a->b[o + r], &a->buf_b[o + r], lr, mu, wd, first, decay);
    }
    o += R;
  }
}

static void step_rows_generic(const step_args *a) { step_rows(a); }

__attribute__((target("avx2"))) static void step_rows_avx2(const step_args *a) {
  step_rows(a);
}

graft_status graft__cpu_linear_backward_sgd(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *dy, const float *x, float *w,
                                            float *b, float *dx, float *buf_w, float *buf_b,
                                            const graft_sgd_params *sgd) {
  cpu_backend *cb = cpu_of(be);
  void (*rows)(const step_args *) = cb->avx2 ? step_rows_avx2 : step_rows_generic;
  const int in = p->in, out = p->out;
  const int team = graft__cpu_team((double)n * in * out);
  float *tiles = NULL;
  if (n > FUSED_MAX_K)
    GRAFT_TRY(graft__cpu_scratch(cb, (size_t)team * FUSED_TILE * in, &tiles));
#pragma omp parallel num_threads(team)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int lo, hi;
    /* dx columns [lo, hi) = dy w[:, lo:hi], before any thread steps w. */
    graft__cpu_split(in, t, nt, &lo, &hi);
    if (dx && hi > lo)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hi - lo, out, 1.0f, dy, out,
                  w + lo, in, 0.0f, dx + lo, in);
    if (dx) {
#pragma omp barrier
    }
    graft__cpu_split(out, t, nt, &lo, &hi);
    step_args a = {.n = n, .in = in, .out = out, .lo = lo, .hi = hi, .dy = dy, .x = x,
                   .w = w, .b = b, .buf_w = buf_w, .buf_b = buf_b,
                   .tile = tiles ? tiles + (size_t)t * FUSED_TILE * in : NULL,
                   .lr = sgd->lr, .mu = sgd->momentum, .wd = sgd->weight_decay,
                   .first = sgd->first};
    if (hi > lo) rows(&a);
  }
  return GRAFT_OK;
}
