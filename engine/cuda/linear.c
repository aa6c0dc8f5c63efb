/* The classifier's Linear layers through cuBLAS, and the ReLU's backward.
 *   forward:  y[n,out] = act(x[n,in] w[out,in]^T + b)   SGEMM, then our bias/ReLU kernel
 *   backward: dw = dy^T x, dx = dy w                     SGEMMs; db = column sums (kernel)
 *
 * cuBLAS is column-major: a row-major [r,c] matrix is a column-major [c,r]
 * one with leading dimension c, so each product below is the transposed
 * product of the row-major formula. The handle's math mode is DEFAULT_MATH:
 * true fp32, never TF32 (PyTorch's default for matmuls), in both precisions.
 * The bias add is a separate pass in float so that it rounds as the CPU does;
 * the classifier's GEMMs are far from the trunk's cost.
 *
 * bf16 runs the Linear layers as PyTorch's bf16 autocast does: the GEMMs
 * (forward and backward) on bf16 tensor cores with fp32 accumulation
 * (CUBLAS_COMPUTE_32F_FAST_16BF: cuBLAS rounds the fp32 operands to bf16
 * itself, where autocast casts them first), the forward's output rounded to
 * bf16 after the bias and ReLU; weights, gradients and the SGD step stay
 * fp32, as autocast's master weights. */
#include "engine/cuda/cuda.h"

/* C = op(A) op(B), column-major, alpha 1, beta 0: SGEMM, or in bf16 the
 * same product on bf16 tensor cores with fp32 accumulation. */
static graft_status gemm(cuda_backend *be, cublasOperation_t ta, cublasOperation_t tb, int m,
                         int n, int k, const float *a, int lda, const float *b, int ldb,
                         float *c, int ldc) {
  const float one = 1.0f, zero = 0.0f;
  if (be->base.precision == GRAFT_PRECISION_BF16)
    CU_TRY(cublas, cublasGemmEx(be->cublas, ta, tb, m, n, k, &one, a, CUDA_R_32F, lda, b,
                                CUDA_R_32F, ldb, &zero, c, CUDA_R_32F, ldc,
                                CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
  else
    CU_TRY(cublas, cublasSgemm(be->cublas, ta, tb, m, n, k, &one, a, lda, b, ldb, &zero, c, ldc));
  return GRAFT_OK;
}

graft_status graft__cuda_linear_forward(graft_backend *b, const graft_linear_params *p, int n,
                                        const float *x, const float *w, const float *bias,
                                        float *y) {
  cuda_backend *be = cuda_of(b);
  if (n < 1) return GRAFT_OK;
  /* y^T [out,n] = w [out,in] . x^T [in,n] */
  GRAFT_TRY(gemm(be, CUBLAS_OP_T, CUBLAS_OP_N, p->out, n, p->in, w, p->in, x, p->in, y, p->out));
  if (be->base.precision == GRAFT_PRECISION_BF16)
    CU_TRY(cuda, graft__k_bias_act_rows_bf16(be->stream, y, bias, n, p->out, p->relu));
  else
    CU_TRY(cuda, graft__k_bias_act_rows(be->stream, y, bias, n, p->out, p->relu));
  return GRAFT_OK;
}

graft_status graft__cuda_linear_backward(graft_backend *b, const graft_linear_params *p, int n,
                                         const float *dy, const float *x, const float *w,
                                         float *dx, float *dw, float *db) {
  cuda_backend *be = cuda_of(b);
  /* dw^T [in,out] = x^T [in,n] . dy [n,out] */
  GRAFT_TRY(gemm(be, CUBLAS_OP_N, CUBLAS_OP_T, p->in, p->out, n, x, p->in, dy, p->out, dw, p->in));
  CU_TRY(cuda, graft__k_column_sums(be->stream, n, p->out, dy, db));
  /* dx^T [in,n] = w^T [in,out] . dy^T [out,n] */
  if (dx && n > 0)
    GRAFT_TRY(gemm(be, CUBLAS_OP_N, CUBLAS_OP_N, p->in, n, p->out, w, p->in, dy, p->out, dx, p->in));
  return GRAFT_OK;
}

graft_status graft__cuda_relu_backward(graft_backend *b, size_t count, const float *y,
                                       float *dy) {
  CU_TRY(cuda, graft__k_relu_backward(cuda_of(b)->stream, count, y, dy));
  return GRAFT_OK;
}
