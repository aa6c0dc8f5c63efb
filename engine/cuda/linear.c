/* The classifier's Linear layers through cuBLAS, and the ReLU's backward.
 *   forward:  y[n,out] = act(x[n,in] w[out,in]^T + b)   SGEMM, then our bias/ReLU kernel
 *   backward: dw = dy^T x, dx = dy w                     SGEMMs; db = column sums (kernel)
 *
 * cuBLAS is column-major: a row-major [r,c] matrix is a column-major [c,r]
 * one with leading dimension c, so each product below is the transposed
 * product of the row-major formula. The handle's math mode is DEFAULT_MATH:
 * true fp32, never TF32 (PyTorch's default for matmuls), in both precisions.
 * The bias add is a separate pass in float so that it rounds as the CPU does;
 * the classifier's GEMMs are far from the trunk's cost. */
#include "engine/cuda/cuda.h"

graft_status graft__cuda_linear_forward(graft_backend *b, const graft_linear_params *p, int n,
                                        const float *x, const float *w, const float *bias,
                                        float *y) {
  cuda_backend *be = cuda_of(b);
  if (n < 1) return GRAFT_OK;
  const float one = 1.0f, zero = 0.0f;
  /* y^T [out,n] = w [out,in] . x^T [in,n] */
  CU_TRY(cublas, cublasSgemm(be->cublas, CUBLAS_OP_T, CUBLAS_OP_N, p->out, n, p->in, &one, w,
                             p->in, x, p->in, &zero, y, p->out));
  CU_TRY(cuda, graft__k_bias_act_rows(be->stream, y, bias, n, p->out, p->relu));
  return GRAFT_OK;
}

graft_status graft__cuda_linear_backward(graft_backend *b, const graft_linear_params *p, int n,
                                         const float *dy, const float *x, const float *w,
                                         float *dx, float *dw, float *db) {
  cuda_backend *be = cuda_of(b);
  const float one = 1.0f, zero = 0.0f;
  /* dw^T [in,out] = x^T [in,n] . dy [n,out] */
  CU_TRY(cublas, cublasSgemm(be->cublas, CUBLAS_OP_N, CUBLAS_OP_T, p->in, p->out, n, &one, x,
                             p->in, dy, p->out, &zero, dw, p->in));
  CU_TRY(cuda, graft__k_column_sums(be->stream, n, p->out, dy, db));
  /* dx^T [in,n] = w^T [in,out] . dy^T [out,n] */
  if (dx && n > 0)
    CU_TRY(cublas, cublasSgemm(be->cublas, CUBLAS_OP_N, CUBLAS_OP_N, p->in, n, p->out, &one, w,
                               p->in, dy, p->out, &zero, dx, p->in));
  return GRAFT_OK;
}

graft_status graft__cuda_relu_backward(graft_backend *b, size_t count, const float *y,
                                       float *dy) {
  CU_TRY(cuda, graft__k_relu_backward(cuda_of(b)->stream, count, y, dy));
  return GRAFT_OK;
}
