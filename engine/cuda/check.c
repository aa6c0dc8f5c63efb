/* The one macro family's functions (GRAFT_CU_STATUS in cuda.h): every CUDA,
 * cuDNN and cuBLAS call's status becomes a graft status with a detail naming
 * the call, the file and line, and the library's own words. */
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"

/* "engine/cuda/conv.c" rather than the whole build path. */
static const char *short_file(const char *file) {
  const char *e = strstr(file, "engine/");
  return e ? e : file;
}

/* Calls are recorded as written; long ones are cut at the first '('. */
static int call_len(const char *call) {
  size_t n = strlen(call);
  if (n <= 96) return (int)n;
  const char *paren = strchr(call, '(');
  return paren ? (int)(paren - call) : 96;
}

graft_status graft__cuda_check(cudaError_t e, const char *call, const char *file, int line) {
  if (e == cudaSuccess) return GRAFT_OK;
  (void)cudaGetLastError(); /* clear a non-sticky error so later calls are not blamed */
  graft_status s = GRAFT_EBACKEND;
  if (e == cudaErrorMemoryAllocation) s = GRAFT_ENOMEM;
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
      e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDevice)
    s = GRAFT_ENODEV;
  return graft__fail(s, "%.*s (%s:%d): %s (%s)", call_len(call), call, short_file(file), line,
                     cudaGetErrorString(e), cudaGetErrorName(e));
}

graft_status graft__cudnn_check(cudnnStatus_t e, const char *call, const char *file, int line) {
  if (e == CUDNN_STATUS_SUCCESS) return GRAFT_OK;
  char last[512] = "";
  cudnnGetLastErrorString(last, sizeof last);
  graft_status s = GRAFT_EBACKEND;
  if (e == CUDNN_STATUS_ALLOC_FAILED) s = GRAFT_ENOMEM;
  if (CUDNN_STATUS_CATEGORY(e) == CUDNN_STATUS_NOT_SUPPORTED) s = GRAFT_EUNSUPPORTED;
  return graft__fail(s, "%.*s (%s:%d): %s (%d)%s%s", call_len(call), call, short_file(file),
                     line, cudnnGetErrorString(e), (int)e, last[0] ? ": " : "", last);
}

static const char *cublas_name(cublasStatus_t e) {
  switch (e) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
  }
}

graft_status graft__cublas_check(cublasStatus_t e, const char *call, const char *file,
                                 int line) {
  if (e == CUBLAS_STATUS_SUCCESS) return GRAFT_OK;
  graft_status s = e == CUBLAS_STATUS_ALLOC_FAILED ? GRAFT_ENOMEM : GRAFT_EBACKEND;
  if (e == CUBLAS_STATUS_NOT_INITIALIZED || e == CUBLAS_STATUS_ARCH_MISMATCH) s = GRAFT_ENODEV;
  return graft__fail(s, "%.*s (%s:%d): %s (%d)", call_len(call), call, short_file(file), line,
                     cublas_name(e), (int)e);
}
