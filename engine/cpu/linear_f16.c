/* The Linear forward with fp16 weights (linear_forward_f16w,
 * engine/backend_impl.h), the classifier of --precision fp16-weights:
 *   y[r,o] = act(((b[o] + s_0) + s_1) + ...)
 * s_k the dot product of x[r,:] (fp32) and w[o,:] (IEEE binary16, widened
 * exactly to fp32) over the k-th block of F16_KB inputs, in 8 fp32 lanes,
 * summed like linear_rows.c's. Only the weights are rounded: x, the products
 * and every sum stay fp32.
 *
 * Why: at batch 1 a Linear layer reads each weight once for 2 FLOPs, so it
 * runs at the speed memory delivers the weights (AlexNet's classifier is
 * 235 MB of fp32 weights per image, VGG16's 495 MB); fp16 halves the bytes.
 *
 * The error, per output: each weight becomes w(1 + d) + e with |d| <= 2^-11
 * (round to nearest, 11 significant bits) and |e| <= 2^-25 (below 2^-14 the
 * fp16 grid is subnormal, spacing 2^-24), so
 *   |y16 - y32| <= 2^-11 sum_i |w_i x_i| + 2^-25 sum_i |x_i|
 * plus fp32's own rounding of the sums, which is that of linear_rows.c.
 * test/test_cpu_f16_weights.c holds the kernels to it.
 *
 * Two kernels, like linear_rows.c: AVX2 + FMA + F16C (vcvtph2ps widens 8
 * weights per instruction), and generic C (the same lanes, the widening in
 * C, multiply then add), chosen once per backend by cpu_backend.avx2. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "engine/cpu/cpu.h"

/* Inputs per block (2 KiB of a row of w); a tile of F16_RT rows of x by
 * F16_OT rows of w: 12 accumulators, 3 weight vectors and one x vector. */
#define F16_KB 1024
#define F16_RT 4
#define F16_OT 3

typedef void tile16_fn(int R, int O, int len, int in, int out, const float *x,
                       const uint16_t *w, float *y);

static inline float lanes_sum(const float v[8]) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

/* binary16 to binary32, exact (every fp16 value is an fp32 value). */
static inline float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  if (e == 0) {
    float f = (float)m * 0x1p-24f; /* zero and subnormals */
    return sign ? -f : f;
  }
  u = e == 31 ? sign | 0x7f800000u | (m << 13) : sign | ((e + 112u) << 23) | (m << 13);
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ---- generic C ---- */

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

static inline __attribute__((always_inline)) void tile_generic_body(int R, int O, int len,
                                                                    int in, int out,
                                                                    const float *x,
                                                                    const uint16_t *w,
                                                                    float *y) {
  v8 acc[F16_RT][F16_OT];
  for (int r = 0; r < R; r++)
    for (int o = 0; o < O; o++) acc[r][o] = (v8){0};
  int i = 0;
  for (; i + 8 <= len; i += 8) {
    v8 wv[F16_OT];
    for (int o = 0; o < O; o++)
      for (int l = 0; l < 8; l++) wv[o][l] = half_to_float(w[(size_t)o * in + i + l]);
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
      for (int j = i; j < len; j++)
        s = s + x[(size_t)r * in + j] * half_to_float(w[(size_t)o * in + j]);
      y[(size_t)r * out + o] += s;
    }
}

/* ---- AVX2 + FMA + F16C ---- */

__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
tile_avx2_body(int R, int O, int len, int in, int out, const float *x, const uint16_t *w,
               float *y) {
  __m256 acc[F16_RT][F16_OT];
  for (int r = 0; r < R; r++)
    for (int o = 0; o < O; o++) acc[r][o] = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= len; i += 8) {
    __m256 wv[F16_OT];
    for (int o = 0; o < O; o++)
      wv[o] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + (size_t)o * in + i)));
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
      for (int j = i; j < len; j++)
        s = s + x[(size_t)r * in + j] * _cvtsh_ss(w[(size_t)o * in + j]);
      y[(size_t)r * out + o] += s;
    }
}

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

static void tile_generic(int R, int O, int len, int in, int out, const float *x,
                         const uint16_t *w, float *y) {
  TILE_CASES(tile_generic_body)
}

__attribute__((target("avx2,fma,f16c"))) static void tile_avx2(int R, int O, int len, int in,
                                                               int out, const float *x,
                                                               const uint16_t *w, float *y) {
  TILE_CASES(tile_avx2_body)
}

/* Outputs [lo, hi) of every row; the loop orders of linear_rows.c. */
static void f16_part(tile16_fn *tile, int n, int in, int out, int lo, int hi, const float *x,
                     const uint16_t *w, const float *b, bool relu, float *y) {
  for (int r = 0; r < n; r++)
    for (int o = lo; o < hi; o++) y[(size_t)r * out + o] = b[o];
  if (n <= F16_RT) {
    for (int o = lo; o < hi; o += F16_OT) {
      int O = hi - o < F16_OT ? hi - o : F16_OT;
      for (int i0 = 0; i0 < in; i0 += F16_KB)
        tile(n, O, in - i0 < F16_KB ? in - i0 : F16_KB, in, out, x + i0,
             w + (size_t)o * in + i0, y + o);
    }
  } else {
    for (int i0 = 0; i0 < in; i0 += F16_KB) {
      int len = in - i0 < F16_KB ? in - i0 : F16_KB;
      for (int o = lo; o < hi; o += F16_OT) {
        int O = hi - o < F16_OT ? hi - o : F16_OT;
        for (int r = 0; r < n; r += F16_RT)
          tile(n - r < F16_RT ? n - r : F16_RT, O, len, in, out, x + (size_t)r * in + i0,
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

graft_status graft__cpu_linear_forward_f16w(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *x, const uint16_t *w,
                                            const float *b, float *y) {
  tile16_fn *tile = cpu_of(be)->avx2 && cpu_of(be)->f16c ? tile_avx2 : tile_generic;
  const int in = p->in, out = p->out;
  const bool relu = p->relu;
  /* Threads take blocks of outputs, so at batch 1 every thread streams its
   * own share of w: the layer is as fast as the cores together read memory. */
#pragma omp parallel num_threads(graft__cpu_team((double)n * in * out))
  {
    int lo, hi;
    graft__cpu_split(out, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
    if (hi > lo) f16_part(tile, n, in, out, lo, hi, x, w, b, relu, y);
  }
  return GRAFT_OK;
}
