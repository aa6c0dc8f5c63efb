/* graft's own CUDA kernels: the small elementwise and per-row ops that cuDNN
 * and cuBLAS do not cover. Each follows the CPU backend's loop (engine/cpu/)
 * in the same order of float operations, and the build compiles this file
 * with --fmad=false, so that wherever the CPU result is a plain sequence of
 * float operations (bias, ReLU, dropout, SGD, column sums, average pooling)
 * the GPU's is bit-for-bit the same. Softmax and cross-entropy share the
 * CPU's log-sum-exp (engine/base/logsumexp.h) but reduce a row in float
 * across a block, in a tree: within about 1e-7 of the CPU's double. */
#include <cuda_runtime.h>

#include "engine/cuda/kernels.h"
#include "engine/base/logsumexp.h"
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

/* Threads for a block per row of k: whole warps, at most kThreads. */
unsigned row_threads(int k) { return k >= kThreads ? kThreads : (unsigned)(k + 31) / 32 * 32; }

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

/* Softmax and cross-entropy: one block per row, each thread taking every
 * blockDim-th column (engine/base/logsumexp.h), the partial maxima and sums
 * combined by warp shuffles and then across the block's warps. In float:
 * x - m rounds by at most |x - m| * 2^-24 relative to exp's result, which
 * matters only where exp(x - m) is small; expf is within 2 ulp; a sum of k
 * terms in this tree is within (k / threads + log2(threads)) ulp (4 + 8 for
 * k = 1000), far less on average. So the results are within about 1e-7
 * relative of the CPU's double reductions (a few 1e-7 at worst; the test
 * allows 1e-6). Emulated on the CPU in this order with glibc's expf, over
 * test_cuda_ops' shapes and 256x1000, 50 seeds of logits in [-20, 20]: at
 * most 1.1e-7 (softmax, loss), 7.7e-8 (dlogits). Every lane of a butterfly ends with the same value: a + b
 * and b + a are the same float. */
__device__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    float u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  return v;
}

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* The block's max (or sum) of v, in every thread; blockDim.x a multiple of
 * 32 and at most 1024. */
__device__ float block_reduce(float v, bool max) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = max ? warp_max(v) : warp_sum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : max ? -INFINITY : 0.0f;
  v = max ? warp_max(v) : warp_sum(v);
  __syncthreads(); /* part is free for the next reduction */
  return v;
}

/* The row's max m and s = sum of exp(x - m), in every thread of its block. */
__device__ void row_max_sum(const float *row, int k, float *m, float *s) {
  *m = block_reduce(graft_lse_max(row, k, (int)threadIdx.x, (int)blockDim.x), true);
  *s = block_reduce(graft_lse_sum_float(row, k, (int)threadIdx.x, (int)blockDim.x, *m), false);
}

__global__ void softmax(int k, const float *x, float *y) {
  const float *row = x + (size_t)blockIdx.x * k;
  float *out = y + (size_t)blockIdx.x * k;
  float m, s;
  row_max_sum(row, k, &m, &s);
  for (int c = threadIdx.x; c < k; c += blockDim.x) out[c] = expf(row[c] - m) / s;
}

/* loss = log(s) + m - x[label], added as (m - x[label]) + log(s): a
 * confident row's small loss keeps its digits. */
__global__ void cross_entropy(int n, int k, const float *logits, const int32_t *labels,
                              float *loss, float *dlogits, int *bad) {
  const int i = blockIdx.x, label = labels[i];
  if (label < 0 || label >= k) { /* the whole block leaves: no barrier is skipped */
    if (threadIdx.x == 0) atomicMin(bad, i);
    return;
  }
  const float *row = logits + (size_t)i * k;
  float m, s;
  row_max_sum(row, k, &m, &s);
  if (threadIdx.x == 0) loss[i] = (m - row[label]) + logf(s);
  if (dlogits)
    for (int c = threadIdx.x; c < k; c += blockDim.x)
      dlogits[(size_t)i * k + c] = (expf(row[c] - m) / s - (c == label ? 1.0f : 0.0f)) / (float)n;
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
  softmax<<<n, row_threads(k), 0, stream>>>(k, x, y);
  return cudaGetLastError();
}

cudaError_t graft__k_cross_entropy(cudaStream_t stream, int n, int k, const float *logits,
                                   const int32_t *labels, float *loss, float *dlogits, int *bad) {
  if (n < 1 || k < 1) return cudaSuccess;
  cross_entropy<<<n, row_threads(k), 0, stream>>>(n, k, logits, labels, loss, dlogits, bad);
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
