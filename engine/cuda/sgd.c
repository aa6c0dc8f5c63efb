/* SGD with momentum on the GPU, in PyTorch's form: a checked wrapper over
 * the kernel of kernels.cu, which follows the CPU backend's loop
 * (engine/cpu/sgd.c) operation for operation. */
#include "engine/cuda/cuda.h"

graft_status graft__cuda_sgd_step(graft_backend *b, size_t count, const graft_sgd_params *p,
                                  float *param, const float *grad, float *buf) {
  CU_TRY(cuda, graft__k_sgd(cuda_of(b)->stream, count, p->lr, p->momentum, p->weight_decay,
                            p->first, param, grad, buf));
  return GRAFT_OK;
}
