/* The Linear forward whose rows do not depend on their company
 * (linear_forward_rows, engine/backend_impl.h):
 *   y[r,o] = act(((b[o] + s_0) + s_1) + ...)
 * where s_k is the dot product of x[r,:] and w[o,:] over the k-th block of
 * ROWS_KB inputs: 8 lanes (lane l takes the block's inputs l, l+8, ... in
 * order), the lanes added as ((0+4)+(2+6))+((1+5)+(3+7)), then the block's
 * last len%8 inputs one at a time. None of that depends on n, on where the
 * row sits or on how rows and outputs are tiled, so the loop order and the
 * tile shapes below are free to follow speed alone.
 *
 * Why not OpenBLAS: its sgemm gives a row different bits at different n
 * (measured with 9216->4096: a row alone, in a call of 4 and in a call of 64
 * differ), and evaluation from the feature cache in groups of 64 must give
 * what the trunk's batches give without the cache. Speed, measured against
 * the split sgemm of linear.c on 9216->4096 with 2 threads: equal at n = 1
 * and 4 (bound by reading w), 0.86x at n = 64 (170 vs 197 GFLOP/s).
 *
 * Two kernels: AVX2 + FMA (the lanes fused-multiply-add) and generic C (the
 * same lanes, multiply then add: GCC's vector extension, lowered to what the
 * target has). They differ in the last bits; cpu_backend.avx2 picks one per
 * backend, so a run never mixes them. */
#include <immintrin.h>
#include <omp.h>

#include "engine/cpu/cpu.h"

/* Inputs per block: 4 KiB of a row of w, so the ROWS_OT rows of a tile stay
 * in L1 while every row tile of x passes over them. */
#define ROWS_KB 1024
/* A tile: ROWS_RT rows of x by ROWS_OT rows of w, 12 accumulators (with the
 * 3 w vectors and one x vector, AVX2's 16 registers). */
#define ROWS_RT 4
#define ROWS_OT 3

/* y[r*out + o] += s(r, o) over one block of len inputs, for an R x O tile;
 * x at [row, block start] with row stride in, w likewise, y at [row, o]. */
typedef void tile_fn(int R, int O, int len, int in, int out, const float *x, const float *w,
                     float *y);

static inline float lanes_sum(const float v[8]) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

/* ---- generic C: 8 lanes, multiply then add ---- */

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias)); /* unaligned loads */

static inline __attribute__((always_inline)) void tile_generic_body(int R, int O, int len,
                                                                    int in, int out,
                                                                    const float *x,
                                                                    const float *w, float *y) {
  v8 acc[ROWS_RT][ROWS_OT];
  for (int r = 0; r < R; r++)
    for (int o = 0; o < O; o++) acc[r][o] = (v8){0};
  int i = 0;
  for (; i + 8 <= len; i += 8) {
    v8 wv[ROWS_OT];
    for (int o = 0; o < O; o++) wv[o] = *(const v8u *)(w + (size_t)o * in + i);
    for (int r = 0; r < R; r++) {
      v8 xv = *(const v8u *)(x + (size_t)r * in + i);
      for (int o = 0; o < O; o++) acc[r][o] = acc[r][o] + xv * wv[o];
    }
  }
  for (int r = 0; r < R; r++)
    for (int o = 0; o < O; o++) {
      float lane[8];
      for (int l = 0; l < 8; l++) lane[l] = acc[r][o][l];
      float s = lanes_sum(lane);
      for (int j = i; j < len; j++) s = s + x[(size_t)r * in + j] * w[(size_t)o * in + j];
      y[(size_t)r * out + o] += s;
    }
}

/* ---- AVX2 + FMA ---- */

__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
tile_avx2_body(int R, int O, int len, int in, int out, const float *x, const float *w,
               float *y) {
  __m256 acc[ROWS_RT][ROWS_OT];
  for (int r = 0; r < R; r++)
    for (int o = 0; o < O; o++) acc[r][o] = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= len; i += 8) {
    __m256 wv[ROWS_OT];
    for (int o = 0; o < O; o++) wv[o] = _mm256_loadu_ps(w + (size_t)o * in + i);
    for (int r = 0; r < R; r++) {
      __m256 xv = _mm256_loadu_ps(x + (size_t)r * in + i);
      for (int o = 0; o < O; o++) acc[r][o] = _mm256_fmadd_ps(xv, wv[o], acc[r][o]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int o = 0; o < O; o++) {
      float lane[8];
      _mm256_storeu_ps(lane, acc[r][o]);
      float s = lanes_sum(lane);
      for (int j = i; j < len; j++) s = s + x[(size_t)r * in + j] * w[(size_t)o * in + j];
      y[(size_t)r * out + o] += s;
    }
}

/* One function per kernel; the switch gives the body constant R and O, so
 * the compiler unrolls the tile and keeps the accumulators in registers. */
#define TILE_CASES(body)                                           \
  switch (R * 8 + O) {                                             \
    case 4 * 8 + 3: body(4, 3, len, in, out, x, w, y); break;      \
    case 4 * 8 + 2: body(4, 2, len, in, out, x, w, y); break;      \
    case 4 * 8 + 1: body(4, 1, len, in, out, x, w, y); break;      \
    case 3 * 8 + 3: body(3, 3, len, in, out, x, w, y); break;      \
    case 3 * 8 + 2: body(3, 2, len, in, out, x, w, y); break;      \
    case 3 * 8 + 1: body(3, 1, len, in, out, x, w, y); break;      \
    case 2 * 8 + 3: body(2, 3, len, in, out, x, w, y); break;      \
    case 2 * 8 + 2: body(2, 2, len, in, out, x, w, y); break;      \
    case 2 * 8 + 1: body(2, 1, len, in, out, x, w, y); break;      \
    case 1 * 8 + 3: body(1, 3, len, in, out, x, w, y); break;      \
    case 1 * 8 + 2: body(1, 2, len, in, out, x, w, y); break;      \
    default: body(1, 1, len, in, out, x, w, y); break;             \
  }

static void tile_generic(int R, int O, int len, int in, int out, const float *x, const float *w,
                         float *y) {
  TILE_CASES(tile_generic_body)
}

__attribute__((target("avx2,fma"))) static void tile_avx2(int R, int O, int len, int in,
                                                          int out, const float *x,
                                                          const float *w, float *y) {
  TILE_CASES(tile_avx2_body)
}

/* Outputs [lo, hi) of every row. */
static void rows_part(tile_fn *tile, int n, int in, int out, int lo, int hi, const float *x,
                      const float *w, const float *b, bool relu, float *y) {
  for (int r = 0; r < n; r++)
    for (int o = lo; o < hi; o++) y[(size_t)r * out + o] = b[o];
  if (n <= ROWS_RT) {
    /* One row tile: each w element is used once, so stream w's rows whole
     * (blocks outer would walk w in 4 KiB pieces ~in*4 bytes apart). */
    for (int o = lo; o < hi; o += ROWS_OT) {
      int O = hi - o < ROWS_OT ? hi - o : ROWS_OT;
      for (int i0 = 0; i0 < in; i0 += ROWS_KB)
        tile(n, O, in - i0 < ROWS_KB ? in - i0 : ROWS_KB, in, out, x + i0,
             w + (size_t)o * in + i0, y + o);
    }
  } else {
    /* Blocks outer: a tile's block of w stays in L1 for every row tile. */
    for (int i0 = 0; i0 < in; i0 += ROWS_KB) {
      int len = in - i0 < ROWS_KB ? in - i0 : ROWS_KB;
      for (int o = lo; o < hi; o += ROWS_OT) {
        int O = hi - o < ROWS_OT ? hi - o : ROWS_OT;
        for (int r = 0; r < n; r += ROWS_RT)
          tile(n - r < ROWS_RT ? n - r : ROWS_RT, O, len, in, out, x + (size_t)r * in + i0,
               w + (size_t)o * in + i0, y + (size_t)r * out + o);
      }
    }
  }
  if (relu)
    for (int r = 0; r < n; r++)
      for (int o = lo; o < hi; o++) {
        float *v = &y[(size_t)r * out + o];
        if (*v < 0) *v = 0.0f;
      }
}

graft_status graft__cpu_linear_forward_rows(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *x, const float *w,
                                            const float *b, float *y) {
  tile_fn *tile = cpu_of(be)->avx2 ? tile_avx2 : tile_generic;
  const int in = p->in, out = p->out;
  const bool relu = p->relu;
  /* Threads take blocks of outputs (whole cache lines of y's rows). */
#pragma omp parallel num_threads(graft__cpu_team((double)n * in * out))
  {
    int lo, hi;
    graft__cpu_split(out, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
    if (hi > lo) rows_part(tile, n, in, out, lo, hi, x, w, b, relu, y);
  }
  return GRAFT_OK;
}
