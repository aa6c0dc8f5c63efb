/* The Linear forward with fp16 weights (linear_forward_f16w,
 * engine/backend_impl.h), the classifier of --precision fp16-weights:
 *   y[r,o] = act(((b[o] + s_0) + s_1) + ...)
 * s_k the dot product of x[r,:] (fp32) and w[o,:] (IEEE binary16, widened
 * exactly to fp32) over the k-th block of 1024 inputs, in 8 fp32 lanes,
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

/* fp16 weights, widened to fp32 as they are read (exactly). */
#define LT_W uint16_t
#define LT_TARGET "avx2,fma,f16c"
#define LT_LOAD8_GENERIC(v, p)                                 \
  do {                                                         \
    const uint16_t *p_ = (p);                                  \
    for (int l = 0; l < 8; l++) (v)[l] = half_to_float(p_[l]); \
  } while (0)
#define LT_LOAD8_AVX2(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LT_WEIGHT_GENERIC(p) half_to_float(*(p))
#define LT_WEIGHT_AVX2(p) _cvtsh_ss(*(p))
#include "engine/cpu/linear_tile.inc"

graft_status graft__cpu_linear_forward_f16w(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *x, const uint16_t *w,
                                            const float *b, float *y) {
  lt_forward(cpu_of(be)->avx2 && cpu_of(be)->f16c ? tile_avx2 : tile_generic, p, n, x, w, b, y);
  return GRAFT_OK;
}
