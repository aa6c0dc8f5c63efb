/* Dropout, softmax and cross-entropy on the GPU: thin checked wrappers over
 * the kernels of kernels.cu, which follow the CPU backend's loops
 * (engine/cpu/loss.c) operation for operation. */
#include <string.h>

#include "engine/cuda/cuda.h"

graft_status graft__cuda_dropout_forward(graft_backend *b, size_t count, float p, uint64_t seed,
                                         uint64_t offset, float *x, uint8_t *keep) {
  const float scale = 1.0f / (1.0f - p); /* computed once, on the host, as the CPU does */
  CU_TRY(cuda, graft__k_dropout_forward(cuda_of(b)->stream, count, p, scale, seed, offset, x,
                                        keep));
  return GRAFT_OK;
}

graft_status graft__cuda_dropout_backward(graft_backend *b, size_t count, float p,
                                          const uint8_t *keep, float *dy) {
  const float scale = 1.0f / (1.0f - p);
  CU_TRY(cuda, graft__k_dropout_backward(cuda_of(b)->stream, count, scale, keep, dy));
  return GRAFT_OK;
}

graft_status graft__cuda_softmax_forward(graft_backend *b, int n, int k, const float *x,
                                         float *y) {
  CU_TRY(cuda, graft__k_softmax(cuda_of(b)->stream, n, k, x, y));
  return GRAFT_OK;
}

/* Labels are checked on the device (the table's contract: GRAFT_ERANGE); the
 * flag's read-back is the one synchronisation, and the caller downloads the
 * losses right after anyway. */
graft_status graft__cuda_cross_entropy(graft_backend *b, int n, int k, const float *logits,
                                       const int32_t *labels, float *loss, float *dlogits) {
  cuda_backend *be = cuda_of(b);
  const int none = 0x7f7f7f7f; /* the byte pattern cudaMemsetAsync(0x7f) leaves */
  CU_TRY(cuda, cudaMemsetAsync(be->flag, 0x7f, sizeof(int), be->stream));
  CU_TRY(cuda, graft__k_cross_entropy(be->stream, n, k, logits, labels, loss, dlogits, be->flag));
  CU_TRY(cuda, cudaMemcpyAsync(be->flag_host, be->flag, sizeof(int), cudaMemcpyDeviceToHost,
                               be->stream));
  CU_TRY(cuda, cudaStreamSynchronize(be->stream));
  int row = *be->flag_host;
  if (row != none && row >= 0 && row < n) {
    int32_t label = 0;
    CU_TRY(cuda, cudaMemcpyAsync(be->flag_host, labels + row, sizeof label,
                                 cudaMemcpyDeviceToHost, be->stream));
    CU_TRY(cuda, cudaStreamSynchronize(be->stream));
    label = *be->flag_host;
    return graft__fail(GRAFT_ERANGE, "label %d of row %d is outside [0, %d)", label, row, k);
  }
  return GRAFT_OK;
}
