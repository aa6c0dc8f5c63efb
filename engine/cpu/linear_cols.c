/* The Linear forward of one row that skips its input's zeros: the same
 * arithmetic as linear_forward_rows (engine/cpu/linear_tile.inc), bit for
 * bit, reading the weights transposed ([in][out], made once by
 * graft__cpu_linear_cols_make) so that an input that is zero skips a whole
 * contiguous row of them.
 *
 * Why: at batch 1 a Linear layer is bound by reading its weights (VGG16's
 * classifier reads 494 MB per image, at the memory's speed), and its input
 * comes out of a ReLU: pool5's features and the hidden layers' outputs are
 * 30-50% zeros on a randomly initialised torchvision model, more on trained
 * weights and real images. In w's own layout ([out][in]) a zero input is one
 * float in every row, and the cache lines around it are read anyway; in the
 * transposed layout it is a whole row of `out` floats never read.
 *
 * The same bits as linear_forward_rows: per output, y = b + s_0 + s_1 + ...
 * where s_k covers the k-th block of GRAFT__LINEAR_KB inputs (cpu.h), 8 lanes
 * (lane l takes the block's inputs l, l+8, ... in order, fused multiply-add),
 * the lanes added as graft__lanes_sum does, then the block's last len%8
 * inputs one at a time (multiply, then add). Here the lanes are 8 arrays over
 * the thread's outputs, and an input that is zero leaves its lane as it was,
 * as its fused multiply-add would (a lane starts at +0 and adding +-0 to +0
 * or to a nonzero value changes nothing; only a lane that is -0, which takes
 * a product underflowing to -0 first, could tell the difference, in the sign
 * of a zero; and a zero input against an infinite weight, which the loaders
 * refuse). AVX2 + FMA only: the generic kernels keep the row kernel. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "engine/cpu/cpu.h"

#define KB GRAFT__LINEAR_KB /* the blocks of the sums (cpu.h) */
#define COLS_AHEAD 2     /* the nonzero input whose weights are asked for ahead */
#define COLS_DENSE 0.9   /* above this share of nonzero inputs, the row kernel */

graft_status graft__cpu_linear_cols_make(graft_backend *b, const graft_linear_params *p,
                                         const float *w, float *wt) {
  if (!cpu_of(b)->avx2)
    return graft__fail(GRAFT_EUNSUPPORTED, "the sparse-input Linear kernel needs AVX2 + FMA");
  const int in = p->in, out = p->out;
  /* 32 x 32 tiles: a tile's reads and writes each stay in a few pages */
#pragma omp parallel for schedule(static) num_threads(cpu_of(b)->base.threads)
  for (int i0 = 0; i0 < in; i0 += 32)
    for (int o0 = 0; o0 < out; o0 += 32)
      for (int i = i0; i < i0 + 32 && i < in; i++)
        for (int o = o0; o < o0 + 32 && o < out; o++)
          wt[(size_t)i * out + o] = w[(size_t)o * in + i];
  return GRAFT_OK;
}

/* One lane of outputs [0, len) (the thread's): lane += x * wt over its
 * nonzero inputs js, in order. The lane (len floats) stays in L1 while the
 * weights stream past it; the rows of the inputs COLS_AHEAD further on are
 * asked for into L2 as this one is read. */
__attribute__((target("avx2,fma"))) static void lane_avx2(float *lane, int len, const int *js,
                                                          int count, const float *x,
                                                          const float *wt, size_t ldw) {
  const int vec = len / 16 * 16;
  for (int k = 0; k < count; k++) {
    const int j = js[k];
    const float *row = wt + (size_t)j * ldw;
    const char *next =
        (const char *)(wt + (size_t)js[k + COLS_AHEAD < count ? k + COLS_AHEAD : count - 1] * ldw);
    const __m256 xv = _mm256_set1_ps(x[j]);
    int o = 0;
    for (; o < vec; o += 16) {
      _mm_prefetch(next + (size_t)o * sizeof(float), _MM_HINT_T1);
      _mm256_store_ps(lane + o, _mm256_fmadd_ps(xv, _mm256_loadu_ps(row + o),
                                                _mm256_load_ps(lane + o)));
      _mm256_store_ps(lane + o + 8, _mm256_fmadd_ps(xv, _mm256_loadu_ps(row + o + 8),
                                                    _mm256_load_ps(lane + o + 8)));
    }
    for (; o < len; o++) lane[o] = __builtin_fmaf(x[j], row[o], lane[o]);
  }
}

/* One block's end: y += the lanes' sum (graft__lanes_sum), then the tail
 * inputs (nonzero ones) one at a time into the block's sum first. */
static void block_end(float *y, const float *lane, size_t stride, int len, const int *tail,
                      int tails, const float *x, const float *wt, size_t ldw) {
  for (int o = 0; o < len; o++) {
    const float *l = lane + o;
    float s = graft__lanes_sum(l[0], l[stride], l[2 * stride], l[3 * stride], l[4 * stride],
                               l[5 * stride], l[6 * stride], l[7 * stride]);
    for (int k = 0; k < tails; k++) s = s + x[tail[k]] * wt[(size_t)tail[k] * ldw + o];
    y[o] += s;
  }
}

/* Outputs [lo, hi): the blocks in order, each lane by lane. nz holds the
 * nonzero inputs by block, then by lane (j % 8) and the block's tail (group
 * 8), each group in order; group g of block k is nz[at[k*9+g] .. at[k*9+g+1]). */
static void cols_part(const graft_linear_params *p, const float *x, const float *wt,
                      const float *b, const int *nz, const int *at, float *lane, size_t stride,
                      int lo, int hi, float *y) {
  const int in = p->in, len = hi - lo;
  for (int o = lo; o < hi; o++) y[o] = b[o];
  for (int k = 0; k * KB < in; k++) {
    for (int l = 0; l < 8; l++) {
      float *ln = lane + (size_t)l * stride;
      memset(ln, 0, (size_t)len * sizeof(float));
      lane_avx2(ln, len, nz + at[k * 9 + l], at[k * 9 + l + 1] - at[k * 9 + l], x, wt + lo,
                (size_t)p->out);
    }
    block_end(y + lo, lane, stride, len, nz + at[k * 9 + 8], at[k * 9 + 9] - at[k * 9 + 8], x,
              wt + lo, (size_t)p->out);
  }
  if (p->relu)
    for (int o = lo; o < hi; o++)
      if (y[o] < 0) y[o] = 0.0f;
}

graft_status graft__cpu_linear_forward_cols(graft_backend *bk, const graft_linear_params *p,
                                            const float *x, const float *w, const float *wt,
                                            const float *b, float *y) {
  cpu_backend *be = cpu_of(bk);
  const int in = p->in, out = p->out, blocks = (in + KB - 1) / KB;
  const int threads = graft__cpu_team((double)in * out);
  /* scratch: the nonzero inputs and their groups' starts, and per thread 8
   * lanes over its outputs (a multiple of 16 floats apart, 64-byte aligned;
   * room for all of them, should the team run smaller than asked) */
  const size_t stride = (size_t)((out + 15) / 16 + 1) * 16;
  const size_t head = ((size_t)in + (size_t)blocks * 9 + 1 + 15) / 16 * 16;
  float *ws;
  GRAFT_TRY(graft__cpu_scratch(be, head + (size_t)threads * 8 * stride, &ws));
  int *nz = (int *)ws, *at = nz + in;
  int count = 0;
  for (int k = 0; k < blocks; k++) {
    const int i0 = k * KB, end = in - i0 < KB ? in : i0 + KB;
    const int lanes_end = i0 + (end - i0) / 8 * 8;
    for (int g = 0; g < 8; g++) {
      at[k * 9 + g] = count;
      for (int j = i0 + g; j < lanes_end; j += 8)
        if (x[j] != 0.0f) nz[count++] = j;
    }
    at[k * 9 + 8] = count;
    for (int j = lanes_end; j < end; j++)
      if (x[j] != 0.0f) nz[count++] = j;
  }
  at[blocks * 9] = count;
  if (count > COLS_DENSE * in) return graft__cpu_linear_forward_rows(bk, p, 1, x, w, b, y);
#pragma omp parallel num_threads(threads)
  {
    int lo, hi;
    graft__cpu_split(out, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
    float *lane = ws + head + (size_t)omp_get_thread_num() * 8 * stride;
    if (hi > lo) cols_part(p, x, wt, b, nz, at, lane, stride, lo, hi, y);
  }
  return GRAFT_OK;
}
