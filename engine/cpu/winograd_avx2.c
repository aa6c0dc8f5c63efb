/* The AVX2 + FMA stages of graft's Winograd convolution (layouts and
 * algorithm: engine/cpu/winograd.h; the plan, the schedule and the numbers:
 * winograd.c). Every function here carries the avx2,fma target attribute
 * and runs only where the CPU has both (cpu_backend.avx2); the rest of the
 * build stays generic x86-64. One __m256 holds the 8 channels of one pixel
 * of nChw8c, so the transforms are lane-wise and need no shuffles. */
#include <immintrin.h>

#include "engine/cpu/winograd.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* ---- 1-D transforms of a column of `a` (or `m` out) vectors ----
 * F(2,3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1].
 * F(4,3) (points 0, 1, -1, 2, -2, inf; Lavin and Gray):
 *   B^T = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0  4 -4 -1 1 0;
 *          0 -2 -1  2 1 0;  0  2 -1 -2 1 0;  0  4  0 -5 0 1]
 *   A^T = [1 1  1 1  1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1] */

AVX2 INLINE void bt4(const __m256 d[4], __m256 t[4]) {
  t[0] = _mm256_sub_ps(d[0], d[2]);
  t[1] = _mm256_add_ps(d[1], d[2]);
  t[2] = _mm256_sub_ps(d[2], d[1]);
  t[3] = _mm256_sub_ps(d[1], d[3]);
}

AVX2 INLINE void bt6(const __m256 d[6], __m256 t[6]) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f),
               two = _mm256_set1_ps(2.0f);
  __m256 p = _mm256_fnmadd_ps(four, d[2], d[4]);        /* d4 - 4 d2 */
  __m256 q = _mm256_fnmadd_ps(four, d[1], d[3]);        /* d3 - 4 d1 */
  __m256 r = _mm256_sub_ps(d[4], d[2]);                 /* d4 - d2 */
  __m256 s = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1])); /* 2 (d3 - d1) */
  t[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
  t[1] = _mm256_add_ps(p, q);
  t[2] = _mm256_sub_ps(p, q);
  t[3] = _mm256_add_ps(r, s);
  t[4] = _mm256_sub_ps(r, s);
  t[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

/* F(6,3) (points 0, 1, -1, 2, -2, 1/2, -1/2, inf; the rows of B^T as
 * sums and differences of pairs, as NNPACK writes them):
 *   B^T = [1    0 -21/4     0  21/4     0 -1 0;  0  1    1 -17/4 -17/4  1   1 0;
 *          0   -1     1  17/4 -17/4    -1  1 0;  0  1/2  1/4 -5/2 -5/4  2   1 0;
 *          0 -1/2   1/4   5/2  -5/4    -2  1 0;  0  2    4  -5/2   -5  1/2 1 0;
 *          0   -2     4   5/2    -5  -1/2  1 0;  0 -1    0  21/4    0 -21/4 0 1]
 *   A^T row i = (i == 0, 1, (-1)^i, 2^i, (-2)^i, 2^-i, (-2)^-i, i == 5) */
AVX2 INLINE void bt8(const __m256 d[8], __m256 t[8]) {
  const __m256 c525 = _mm256_set1_ps(5.25f), c425 = _mm256_set1_ps(4.25f),
               c125 = _mm256_set1_ps(1.25f), c025 = _mm256_set1_ps(0.25f),
               c25 = _mm256_set1_ps(2.5f), half = _mm256_set1_ps(0.5f),
               two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f);
  t[0] = _mm256_fmadd_ps(c525, _mm256_sub_ps(d[4], d[2]), _mm256_sub_ps(d[0], d[6]));
  t[7] = _mm256_fmadd_ps(c525, _mm256_sub_ps(d[3], d[5]), _mm256_sub_ps(d[7], d[1]));
  __m256 a = _mm256_fnmadd_ps(c425, d[4], _mm256_add_ps(d[2], d[6]));
  __m256 b = _mm256_fnmadd_ps(c425, d[3], _mm256_add_ps(d[1], d[5]));
  t[1] = _mm256_add_ps(a, b);
  t[2] = _mm256_sub_ps(a, b);
  a = _mm256_fnmadd_ps(c125, d[4], _mm256_fmadd_ps(c025, d[2], d[6]));
  b = _mm256_fmadd_ps(two, d[5], _mm256_fnmadd_ps(c25, d[3], _mm256_mul_ps(half, d[1])));
  t[3] = _mm256_add_ps(a, b);
  t[4] = _mm256_sub_ps(a, b);
  a = _mm256_fmadd_ps(four, _mm256_fnmadd_ps(c125, d[4], d[2]), d[6]);
  b = _mm256_fmadd_ps(half, d[5], _mm256_fnmadd_ps(c25, d[3], _mm256_mul_ps(two, d[1])));
  t[5] = _mm256_add_ps(a, b);
  t[6] = _mm256_sub_ps(a, b);
}

/* The first M rows of A^T over the eight points, with inf's 1 in the last:
 * F(6,3) takes M = 6 and F(4,5) M = 4 (the same points, so the same B^T).
 * Row i (i >= 1) is (s1 -+ s2) + 2^i (s3 -+ s4) + 2^-i (s5 -+ s6), with the
 * differences where i is odd. */
AVX2 INLINE void at8(const int M, const __m256 s[8], __m256 y[6]) {
  __m256 p12 = _mm256_add_ps(s[1], s[2]), m12 = _mm256_sub_ps(s[1], s[2]);
  __m256 p34 = _mm256_add_ps(s[3], s[4]), m34 = _mm256_sub_ps(s[3], s[4]);
  __m256 p56 = _mm256_add_ps(s[5], s[6]), m56 = _mm256_sub_ps(s[5], s[6]);
  y[0] = _mm256_add_ps(_mm256_add_ps(s[0], p12), _mm256_add_ps(p34, p56));
  float big = 1.0f;
#pragma GCC unroll 6
  for (int i = 1; i < M; i++) {
    big *= 2.0f;
    bool odd = i & 1;
    y[i] = _mm256_fmadd_ps(_mm256_set1_ps(big), odd ? m34 : p34,
                           _mm256_fmadd_ps(_mm256_set1_ps(1.0f / big), odd ? m56 : p56,
                                           odd ? m12 : p12));
  }
  y[M - 1] = _mm256_add_ps(y[M - 1], s[7]);
}

AVX2 INLINE void at4(const __m256 s[4], __m256 y[2]) {
  __m256 t = _mm256_sub_ps(s[1], s[2]);
  y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), s[2]);
  y[1] = _mm256_sub_ps(t, s[3]);
}

/* F(2,5): the first and last rows of F(4,3)'s A^T with a 1 for inf: the
 * same points, so the same B^T. */
AVX2 INLINE void at6_2(const __m256 s[6], __m256 y[2]) {
  __m256 s12 = _mm256_add_ps(s[1], s[2]), d12 = _mm256_sub_ps(s[1], s[2]);
  __m256 s34 = _mm256_add_ps(s[3], s[4]), d34 = _mm256_sub_ps(s[3], s[4]);
  y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s12), s34);
  y[1] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(2.0f), d34, d12), s[5]);
}

AVX2 INLINE void at6(const __m256 s[6], __m256 y[4]) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f),
               eight = _mm256_set1_ps(8.0f);
  __m256 s12 = _mm256_add_ps(s[1], s[2]), d12 = _mm256_sub_ps(s[1], s[2]);
  __m256 s34 = _mm256_add_ps(s[3], s[4]), d34 = _mm256_sub_ps(s[3], s[4]);
  y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s12), s34);
  y[1] = _mm256_fmadd_ps(two, d34, d12);
  y[2] = _mm256_fmadd_ps(four, s34, s12);
  y[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), s[5]);
}

/* ---- input ---- */

/* One tile, one 8-channel group: out[xi] = (B^T d B)[xi] at stride `step`
 * floats, d the a x a window at src (pixels 8 floats apart, rows `row`). */
AVX2 INLINE void input_tile(const int A, const float *src, size_t row, float *out,
                            size_t step) {
  __m256 t[8][8];
#pragma GCC unroll 8
  for (int j = 0; j < A; j++) {
    __m256 d[8], c[8];
    const float *col = src + j * 8;
#pragma GCC unroll 8
    for (int i = 0; i < A; i++, col += row) d[i] = _mm256_loadu_ps(col);
    if (A == 4)
      bt4(d, c);
    else if (A == 6)
      bt6(d, c);
    else
      bt8(d, c);
#pragma GCC unroll 8
    for (int i = 0; i < A; i++) t[i][j] = c[i];
  }
#pragma GCC unroll 8
  for (int i = 0; i < A; i++) {
    __m256 c[8];
    if (A == 4)
      bt4(t[i], c);
    else if (A == 6)
      bt6(t[i], c);
    else
      bt8(t[i], c);
#pragma GCC unroll 8
    for (int j = 0; j < A; j++, out += step) _mm256_storeu_ps(out, c[j]);
  }
}

/* The same for a window at (iy, ix) of a plane (h x w) that it overhangs:
 * copied with zeros for the padding first. */
AVX2 INLINE void input_tile_edge(const int A, const float *plane, int h, int w, int iy, int ix,
                                 float *out, size_t step) {
  float d[8 * 8 * 8] __attribute__((aligned(32)));
  for (int i = 0; i < A; i++)
    for (int j = 0; j < A; j++) {
      int y = iy + i, x = ix + j;
      __m256 v = y >= 0 && y < h && x >= 0 && x < w
                     ? _mm256_loadu_ps(plane + ((size_t)y * w + x) * 8)
                     : _mm256_setzero_ps();
      _mm256_store_ps(d + (i * A + j) * 8, v);
    }
  input_tile(A, d, (size_t)A * 8, out, step);
}

AVX2 INLINE void input_range(const int A, const wino_plan *p, const float *x, float *v, int t0,
                             int lo, int hi) {
  const size_t plane = (size_t)p->h * p->w * 8;
  const size_t step = p->v_xi;
  /* Channel group outermost: the tiles of a group read a few rows of one
   * plane in order, which the hardware prefetcher follows (group innermost,
   * measured, left the transform waiting on memory). */
  for (int g = 0; g < p->cg; g++)
    for (int i = lo; i < hi; i++) {
      int t = t0 + i, img = t / p->tiles_img, r = t % p->tiles_img;
      int iy = (r / p->tiles_w) * p->m - p->pad, ix = (r % p->tiles_w) * p->m - p->pad;
      const float *xi = x + ((size_t)img * p->cg + g) * plane;
      float *vi = v + ((size_t)(i / WINO_ROWS) * p->cg + g) * WINO_ROWS * 8 + (i % WINO_ROWS) * 8;
      if (iy >= 0 && ix >= 0 && iy + A <= p->h && ix + A <= p->w)
        input_tile(A, xi + ((size_t)iy * p->w + ix) * 8, (size_t)p->w * 8, vi, step);
      else
        input_tile_edge(A, xi, p->h, p->w, iy, ix, vi, step);
    }
}

AVX2 void graft__wino_input_avx2(const wino_plan *p, const float *x, float *v, int t0, int lo,
                                 int hi) {
  if (p->a == 4)
    input_range(4, p, x, v, t0, lo, hi);
  else if (p->a == 6)
    input_range(6, p, x, v, t0, lo, hi);
  else
    input_range(8, p, x, v, t0, lo, hi);
}

/* ---- gemm ---- */

/* R (<= 6) tiles x 16 output channels: m[r][0..16] = sum_c v[c][r] u[c][0..16]
 * over cg groups of 8 input channels. v: [cg][6][8], u: [cg*8][16], m: row
 * stride ldm. 12 accumulators, 2 vectors of u, 1 broadcast of v: the FMAs,
 * 2 a cycle, are the bound. */
AVX2 INLINE void kernel(const int R, const float *v, const float *u, int cg, float *m, int ldm) {
  __m256 c0[WINO_ROWS], c1[WINO_ROWS];
  for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int g = 0; g < cg; g++, v += WINO_ROWS * 8, u += 8 * 16) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      __m256 b0 = _mm256_load_ps(u + j * 16), b1 = _mm256_load_ps(u + j * 16 + 8);
      for (int r = 0; r < R; r++) {
        __m256 a = _mm256_broadcast_ss(v + r * 8 + j);
        c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
        c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    _mm256_store_ps(m + (size_t)r * ldm, c0[r]);
    _mm256_store_ps(m + (size_t)r * ldm + 8, c1[r]);
  }
}

AVX2 void graft__wino_gemm_avx2(const wino_plan *p, const float *v, float *m, int nt, int lo,
                                int hi) {
  const int ldm = p->kb * 16, cg = p->cg;
  const size_t vgroup = (size_t)cg * WINO_ROWS * 8;
  for (int unit = lo; unit < hi; unit++) {
    int xi = unit / p->kb, k = unit % p->kb;
    const float *vx = v + (size_t)xi * p->v_xi;
    const float *u = p->u + ((size_t)xi * p->kb + k) * cg * 8 * 16;
    float *mx = m + (size_t)xi * p->m_xi + k * 16;
    /* The unit's 16 columns of U (cg * 512 bytes) are read once from memory
     * and then from L1 or L2 while every six tiles of the block pass over
     * them (splitting the input channels into passes that fit L1 measured no
     * faster at 512 channels). */
    for (int t = 0; t < nt; t += WINO_ROWS) {
      const float *vt = vx + (size_t)(t / WINO_ROWS) * vgroup;
      float *mt = mx + (size_t)t * ldm;
      switch (nt - t < WINO_ROWS ? nt - t : WINO_ROWS) {
        case 6: kernel(6, vt, u, cg, mt, ldm); break;
        case 5: kernel(5, vt, u, cg, mt, ldm); break;
        case 4: kernel(4, vt, u, cg, mt, ldm); break;
        case 3: kernel(3, vt, u, cg, mt, ldm); break;
        case 2: kernel(2, vt, u, cg, mt, ldm); break;
        default: kernel(1, vt, u, cg, mt, ldm); break;
      }
    }
  }
}

/* ---- output ---- */

/* One tile, one 8-channel group: s[xi] at stride `step` floats; the m x m
 * outputs A^T s A + bias (ReLU) to dst (pixels 8 floats apart, rows `row`). */
AVX2 INLINE void output_tile(const int A, const int M, const float *s, size_t step, __m256 bias,
                             bool relu, float *dst, size_t row) {
  __m256 t[6][8];
#pragma GCC unroll 8
  for (int j = 0; j < A; j++) {
    __m256 c[8], o[6];
#pragma GCC unroll 8
    for (int i = 0; i < A; i++) c[i] = _mm256_load_ps(s + (size_t)(i * A + j) * step);
    if (A == 4)
      at4(c, o);
    else if (A == 8)
      at8(M, c, o);
    else if (M == 2)
      at6_2(c, o);
    else
      at6(c, o);
#pragma GCC unroll 6
    for (int i = 0; i < M; i++) t[i][j] = o[i];
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < M; i++) {
    __m256 o[6];
    if (A == 4)
      at4(t[i], o);
    else if (A == 8)
      at8(M, t[i], o);
    else if (M == 2)
      at6_2(t[i], o);
    else
      at6(t[i], o);
#pragma GCC unroll 6
    for (int j = 0; j < M; j++) {
      __m256 r = _mm256_add_ps(o[j], bias);
      if (relu) r = _mm256_max_ps(r, zero);
      _mm256_storeu_ps(dst + i * row + j * 8, r);
    }
  }
}

/* The same for a tile at (oy, ox) that overhangs its plane (oh x ow): into
 * a local tile first, then the pixels inside. */
AVX2 INLINE void output_tile_edge(const int A, const int M, const float *s, size_t step,
                                  __m256 bias, bool relu, float *plane, int oh, int ow, int oy,
                                  int ox) {
  float d[6 * 6 * 8] __attribute__((aligned(32)));
  output_tile(A, M, s, step, bias, relu, d, (size_t)M * 8);
  for (int i = 0; i < M && oy + i < oh; i++)
    for (int j = 0; j < M && ox + j < ow; j++)
      _mm256_storeu_ps(plane + ((size_t)(oy + i) * ow + ox + j) * 8,
                       _mm256_load_ps(d + (i * M + j) * 8));
}

AVX2 INLINE void output_range(const int A, const int M, const wino_plan *p, const float *m,
                              float *y, int t0, int lo, int hi) {
  const size_t plane = (size_t)p->oh * p->ow * 8;
  const int ldm = p->kb * 16;
  const size_t step = p->m_xi;
  for (int g = 0; g < p->kg; g++) {
    const __m256 bias = _mm256_load_ps(p->bias + g * 8);
    for (int i = lo; i < hi; i++) {
      int t = t0 + i, img = t / p->tiles_img, r = t % p->tiles_img;
      int oy = (r / p->tiles_w) * p->m, ox = (r % p->tiles_w) * p->m;
      float *yi = y + ((size_t)img * p->kg + g) * plane;
      const float *mi = m + (size_t)i * ldm + g * 8;
      if (oy + M <= p->oh && ox + M <= p->ow)
        output_tile(A, M, mi, step, bias, p->relu, yi + ((size_t)oy * p->ow + ox) * 8,
                    (size_t)p->ow * 8);
      else
        output_tile_edge(A, M, mi, step, bias, p->relu, yi, p->oh, p->ow, oy, ox);
    }
  }
}

AVX2 void graft__wino_output_avx2(const wino_plan *p, const float *m, float *y, int t0, int lo,
                                  int hi) {
  if (p->a == 4)
    output_range(4, 2, p, m, y, t0, lo, hi);
  else if (p->a == 8 && p->m == 4)
    output_range(8, 4, p, m, y, t0, lo, hi);
  else if (p->a == 8)
    output_range(8, 6, p, m, y, t0, lo, hi);
  else if (p->m == 2)
    output_range(6, 2, p, m, y, t0, lo, hi);
  else
    output_range(6, 4, p, m, y, t0, lo, hi);
}
