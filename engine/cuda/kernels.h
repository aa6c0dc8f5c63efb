/* Launchers of graft's own CUDA kernels (engine/cuda/kernels.cu). Each
 * enqueues on `stream` and returns cudaGetLastError() after the launch, so
 * the caller checks every launch through CU_TRY(cuda, ...). Shapes in the
 * comments; all pointers are device memory. */
#ifndef GRAFT_CUDA_KERNELS_H
#define GRAFT_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A do-nothing kernel: cudaErrorNoKernelImageForDevice when this build has no
 * code for the GPU. */
cudaError_t graft__k_probe(cudaStream_t stream);

/* y[n,k,hw] = act(y + b[k]) (NCHW, per channel) — the split and legacy rungs. */
cudaError_t graft__k_bias_act_nchw(cudaStream_t stream, float *y, const float *b, int n, int k,
                                   size_t hw, int relu);

/* y[n,out] = act(y + b[out]) (rows) — after the classifier's SGEMM. */
cudaError_t graft__k_bias_act_rows(cudaStream_t stream, float *y, const float *b, int n, int out,
                                   int relu);

/* PyTorch's adaptive average pooling, x [nc,h,w] -> y [nc,oh,ow]. */
cudaError_t graft__k_adaptive_avgpool(cudaStream_t stream, const float *x, float *y, int nc,
                                      int h, int w, int oh, int ow);

/* dy[i] = y[i] > 0 ? dy[i] : 0 */
cudaError_t graft__k_relu_backward(cudaStream_t stream, size_t count, const float *y, float *dy);

/* keep[i] = graft_rng_uniform(seed, offset + i) >= p; x[i] = keep ? x[i] * scale : 0 */
cudaError_t graft__k_dropout_forward(cudaStream_t stream, size_t count, float p, float scale,
                                     uint64_t seed, uint64_t offset, float *x, uint8_t *keep);
/* dy[i] = keep[i] ? dy[i] * scale : 0 */
cudaError_t graft__k_dropout_backward(cudaStream_t stream, size_t count, float scale,
                                      const uint8_t *keep, float *dy);

/* y[n,k] = softmax of each row of x: a block per row, float, max subtracted. */
cudaError_t graft__k_softmax(cudaStream_t stream, int n, int k, const float *x, float *y);

/* loss[i] = lse(row) - row[label]; dlogits (optional) = (softmax - onehot) / n;
 * a block per row, as softmax.
 * A label outside [0,k): *bad = min(*bad, row) and the row is skipped. */
cudaError_t graft__k_cross_entropy(cudaStream_t stream, int n, int k, const float *logits,
                                   const int32_t *labels, float *loss, float *dlogits, int *bad);

/* db[o] = sum over i of dy[i,o], summed in row order (as the CPU). */
cudaError_t graft__k_column_sums(cudaStream_t stream, int n, int out, const float *dy, float *db);

/* SGD with momentum in PyTorch's order of float operations (engine/cpu/sgd.c). */
cudaError_t graft__k_sgd(cudaStream_t stream, size_t count, float lr, float momentum, float wd,
                         int first, float *param, const float *grad, float *buf);

/* ---- the trunk's other layouts (layout.cu): `layout` is graft_act.layout,
 * GRAFT__CUDA_NHWC and GRAFT__CUDA_BF16 bits (engine/cuda/cuda.h) ---- */

/* y [n,c,hw] in layout = x [n,c,hw] plain NCHW float (the trunk's entry). */
cudaError_t graft__k_nchw_to_act(cudaStream_t stream, const float *x, void *y, int n, int c,
                                 size_t hw, int layout);
/* y [n,c,hw] plain NCHW float = x in layout (the trunk's exit: PyTorch's flatten order). */
cudaError_t graft__k_act_to_nchw(cudaStream_t stream, const void *x, float *y, int n, int c,
                                 size_t hw, int layout);
/* y = act(y + b[k]) in layout; b [k] in the layout's element type. */
cudaError_t graft__k_bias_act(cudaStream_t stream, void *y, const void *b, int n, int k,
                              size_t hw, int relu, int layout);
/* PyTorch's adaptive average pooling in layout, x [n,c,h,w] -> y [n,c,oh,ow]. */
cudaError_t graft__k_adaptive_avgpool_act(cudaStream_t stream, const void *x, void *y, int n,
                                          int c, int h, int w, int oh, int ow, int layout);
/* y[n,out] = bf16(act(y + bf16(b[out]))) as float: a Linear's output under
 * PyTorch's bf16 autocast. */
cudaError_t graft__k_bias_act_rows_bf16(cudaStream_t stream, float *y, const float *b, int n,
                                        int out, int relu);

#ifdef __cplusplus
}
#endif

#endif
