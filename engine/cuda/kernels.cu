/* graft's own CUDA kernels: the small elementwise and per-row ops that cuDNN
 * and cuBLAS do not cover. Each follows the CPU backend's loop (engine/cpu/)
 * in the same order of float operations, and the build compiles this file
 * with --fmad=false, so that wherever the CPU result is a plain sequence of
 * float operations (bias, ReLU, dropout, SGD, column sums, average pooling)
 * the GPU's is bit-for-bit the same. Softmax and cross-entropy reduce in
 * double like the CPU; only exp/log differ in their last bits. */
#include <cuda_runtime.h>

#include "engine/cuda/kernels.h"
#include "engine/base/rng.h"

namespace {

constexpr int kThreads = 256;

/* Blocks for a grid-stride loop over count elements. */
unsigned blocks_for(size_t count) {
  size_t b = (count + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > (1u << 20)) b = 1u << 20;
  return (unsigned)b;
}

__global__ void probe_kernel() {}

__global__ void bias_act_nchw(float *y, const float *b, size_t total, int k, size_t hw,
                              int relu) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    float v = y[i] + b[(i / hw) % (size_t)k];
    y[i] = relu && v < 0 ? 0.0f : v;
  }
}

__global__ void bias_act_rows(float *y, const float *b, size_t total, int out, int relu) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    float v = y[i] + b[i % (size_t)out];
    y[i] = relu && v < 0 ? 0.0f : v;
  }
}

/* Bin i of `out` over `in`: [floor(i*in/out), ceil((i+1)*in/out)). */
__device__ int bin_start(int i, int in, int out) { return (int)(((long long)i * in) / out); }
__device__ int bin_end(int i, int in, int out) {
  return (int)((((long long)i + 1) * in + out - 1) / out);
}

__global__ void adaptive_avgpool(const float *x, float *y, size_t total, int h, int w, int oh,
                                 int ow) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    int ox = (int)(i % (size_t)ow), oy = (int)((i / (size_t)ow) % (size_t)oh);
    size_t plane = i / ((size_t)oh * ow);
    const float *src = x + plane * (size_t)h * w;
    int y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
    int x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
    float sum = 0;
    for (int iy = y0; iy < y1; iy++)
      for (int ix = x0; ix < x1; ix++) sum += src[iy * w + ix];
    y[i] = sum / (float)((y1 - y0) * (x1 - x0));
  }
}

__global__ void relu_backward(size_t count, const float *y, float *dy) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x)
    if (!(y[i] > 0)) dy[i] = 0.0f;
}

__global__ void dropout_forward(size_t count, float p, float scale, uint64_t seed,
                                uint64_t offset, float *x, uint8_t *keep) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x) {
    uint8_t k = graft_rng_uniform(seed, offset + i) >= p;
    keep[i] = k;
    x[i] = k ? x[i] * scale : 0.0f;
  }
}

__global__ void dropout_backward(size_t count, float scale, const uint8_t *keep, float *dy) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x)
    dy[i] = keep[i] ? dy[i] * scale : 0.0f;
}

/* log(sum(exp(row - max))) + max in double, the CPU's loop. One thread per
 * row: k is the class count (tens to a thousand), tiny next to the trunk. */
__device__ double log_sum_exp(const float *row, int k) {
  double m = row[0];
  for (int c = 1; c < k; c++) m = row[c] > m ? row[c] : m;
  double s = 0;
  for (int c = 0; c < k; c++) s += exp((double)row[c] - m);
  return m + log(s);
}

__global__ void softmax(int n, int k, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float *row = x + (size_t)i * k;
  double lse = log_sum_exp(row, k);
  for (int c = 0; c < k; c++) y[(size_t)i * k + c] = (float)exp((double)row[c] - lse);
}

__global__ void cross_entropy(int n, int k, const float *logits, const int32_t *labels,
                              float *loss, float *dlogits, int *bad) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int label = labels[i];
  if (label < 0 || label >= k) {
    atomicMin(bad, i);
    return;
  }
  const float *row = logits + (size_t)i * k;
  double lse = log_sum_exp(row, k);
  loss[i] = (float)(lse - row[label]);
  if (dlogits)
    for (int c = 0; c < k; c++)
      dlogits[(size_t)i * k + c] =
          (float)((exp((double)row[c] - lse) - (c == label)) / (double)n);
}

__global__ void column_sums(int n, int out, const float *dy, float *db) {
  int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= out) return;
  float s = 0;
  for (int i = 0; i < n; i++) s += dy[(size_t)i * out + o];
  db[o] = s;
}

__global__ void sgd(size_t count, float lr, float mu, float wd, int first, float *param,
                    const float *grad, float *buf) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x) {
    float g = grad[i];
    if (wd != 0.0f) g = g + wd * param[i];
    float b = first ? g : mu * buf[i] + g;
    buf[i] = b;
    param[i] = param[i] - lr * b;
  }
}

}  // namespace

extern "C" {

cudaError_t graft__k_probe(cudaStream_t stream) {
  probe_kernel<<<1, 1, 0, stream>>>();
  return cudaGetLastError();
}

cudaError_t graft__k_bias_act_nchw(cudaStream_t stream, float *y, const float *b, int n, int k,
                                   size_t hw, int relu) {
  size_t total = (size_t)n * k * hw;
  if (!total) return cudaSuccess;
  bias_act_nchw<<<blocks_for(total), kThreads, 0, stream>>>(y, b, total, k, hw, relu);
  return cudaGetLastError();
}

cudaError_t graft__k_bias_act_rows(cudaStream_t stream, float *y, const float *b, int n, int out,
                                   int relu) {
  size_t total = (size_t)n * out;
  if (!total) return cudaSuccess;
  bias_act_rows<<<blocks_for(total), kThreads, 0, stream>>>(y, b, total, out, relu);
  return cudaGetLastError();
}

cudaError_t graft__k_adaptive_avgpool(cudaStream_t stream, const float *x, float *y, int nc,
                                      int h, int w, int oh, int ow) {
  size_t total = (size_t)nc * oh * ow;
  if (!total) return cudaSuccess;
  adaptive_avgpool<<<blocks_for(total), kThreads, 0, stream>>>(x, y, total, h, w, oh, ow);
  return cudaGetLastError();
}

cudaError_t graft__k_relu_backward(cudaStream_t stream, size_t count, const float *y, float *dy) {
  if (!count) return cudaSuccess;
  relu_backward<<<blocks_for(count), kThreads, 0, stream>>>(count, y, dy);
  return cudaGetLastError();
}

cudaError_t graft__k_dropout_forward(cudaStream_t stream, size_t count, float p, float scale,
                                     uint64_t seed, uint64_t offset, float *x, uint8_t *keep) {
  if (!count) return cudaSuccess;
  dropout_forward<<<blocks_for(count), kThreads, 0, stream>>>(count, p, scale, seed, offset, x,
                                                              keep);
  return cudaGetLastError();
}

cudaError_t graft__k_dropout_backward(cudaStream_t stream, size_t count, float scale,
                                      const uint8_t *keep, float *dy) {
  if (!count) return cudaSuccess;
  dropout_backward<<<blocks_for(count), kThreads, 0, stream>>>(count, scale, keep, dy);
  return cudaGetLastError();
}

cudaError_t graft__k_softmax(cudaStream_t stream, int n, int k, const float *x, float *y) {
  if (n < 1 || k < 1) return cudaSuccess;
  softmax<<<(n + 127) / 128, 128, 0, stream>>>(n, k, x, y);
  return cudaGetLastError();
}

cudaError_t graft__k_cross_entropy(cudaStream_t stream, int n, int k, const float *logits,
                                   const int32_t *labels, float *loss, float *dlogits, int *bad) {
  if (n < 1 || k < 1) return cudaSuccess;
  cross_entropy<<<(n + 127) / 128, 128, 0, stream>>>(n, k, logits, labels, loss, dlogits, bad);
  return cudaGetLastError();
}

cudaError_t graft__k_column_sums(cudaStream_t stream, int n, int out, const float *dy,
                                 float *db) {
  if (out < 1) return cudaSuccess;
  column_sums<<<(out + kThreads - 1) / kThreads, kThreads, 0, stream>>>(n, out, dy, db);
  return cudaGetLastError();
}

cudaError_t graft__k_sgd(cudaStream_t stream, size_t count, float lr, float momentum, float wd,
                         int first, float *param, const float *grad, float *buf) {
  if (!count) return cudaSuccess;
  sgd<<<blocks_for(count), kThreads, 0, stream>>>(count, lr, momentum, wd, first, param, grad,
                                                  buf);
  return cudaGetLastError();
}

}  // extern "C"
