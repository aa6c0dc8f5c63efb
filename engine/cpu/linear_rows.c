/* The Linear forward whose rows do not depend on their company
 * (linear_forward_rows, engine/backend_impl.h):
 *   y[r,o] = act(((b[o] + s_0) + s_1) + ...)
 * where s_k is the dot product of x[r,:] and w[o,:] over the k-th block of
 * 1024 inputs: 8 lanes (lane l takes the block's inputs l, l+8, ... in
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
 * (bound by reading w), 0.86x at n = 64 (170 vs 197 GFLOP/s); with its
 * prefetch (linear_tile.inc) faster from 2 to 8 rows, where inference takes
 * it (engine/net.c).
 *
 * Two kernels: AVX2 + FMA (the lanes fused-multiply-add) and generic C (the
 * same lanes, multiply then add: GCC's vector extension, lowered to what the
 * target has). They differ in the last bits; cpu_backend.avx2 picks one per
 * backend, so a run never mixes them. */
#include <immintrin.h>
#include <omp.h>

#include "engine/cpu/cpu.h"

/* fp32 weights, loaded as they are. */
#define LT_W float
#define LT_TARGET "avx2,fma"
#define LT_LOAD8_GENERIC(v, p) ((v) = *(const v8u *)(p))
#define LT_LOAD8_AVX2(p) _mm256_loadu_ps(p)
#define LT_WEIGHT_GENERIC(p) (*(p))
#define LT_WEIGHT_AVX2(p) (*(p))
#include "engine/cpu/linear_tile.inc"

graft_status graft__cpu_linear_forward_rows(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *x, const float *w,
                                            const float *b, float *y) {
  lt_forward(cpu_of(be)->avx2 ? tile_avx2 : tile_generic, p, n, x, w, b, y);
  return GRAFT_OK;
}
