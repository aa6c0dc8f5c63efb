/* Kernels of the trunk's other layouts (engine/cuda/cuda.h, GRAFT__CUDA_*):
 * channels-last [n,h,w,c] and bfloat16 elements. The trunk's edges convert
 * plain NCHW float to the trunk's layout and back (PyTorch's flatten order,
 * float, for the classifier); bias + ReLU of the split and legacy rungs and
 * adaptive average pooling work in any layout. Arithmetic is in float;
 * bfloat16 results are rounded to nearest even (__float2bfloat16_rn). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "engine/cuda/kernels.h"

namespace {

constexpr int kThreads = 256;
constexpr int kNhwc = 1, kBf16 = 2; /* GRAFT__CUDA_NHWC, GRAFT__CUDA_BF16 */

unsigned blocks_for(size_t count) {
  size_t b = (count + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > (1u << 20)) b = 1u << 20;
  return (unsigned)b;
}

__device__ float load(const void *p, size_t i, int layout) {
  return layout & kBf16 ? __bfloat162float(((const __nv_bfloat16 *)p)[i]) : ((const float *)p)[i];
}
__device__ void store(void *p, size_t i, float v, int layout) {
  if (layout & kBf16)
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
  else
    ((float *)p)[i] = v;
}

/* Index of element (image, ch, pixel) of an [n, c, hw] tensor in layout. */
__device__ size_t at(size_t image, size_t ch, size_t pixel, size_t c, size_t hw, int layout) {
  return layout & kNhwc ? (image * hw + pixel) * c + ch : (image * c + ch) * hw + pixel;
}

/* i counts the elements of the NCHW tensor. */
__global__ void nchw_to_act(const float *x, void *y, size_t total, size_t c, size_t hw,
                            int layout) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t pixel = i % hw, ch = (i / hw) % c, image = i / (hw * c);
    store(y, at(image, ch, pixel, c, hw, layout), x[i], layout);
  }
}

__global__ void act_to_nchw(const void *x, float *y, size_t total, size_t c, size_t hw,
                            int layout) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t pixel = i % hw, ch = (i / hw) % c, image = i / (hw * c);
    y[i] = load(x, at(image, ch, pixel, c, hw, layout), layout);
  }
}

/* The bias is in the layout's element type. */
__global__ void bias_act(void *y, const void *b, size_t total, size_t k, size_t hw, int relu,
                         int layout) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t ch = layout & kNhwc ? i % k : (i / hw) % k;
    float v = load(y, i, layout) + load(b, ch, layout & kBf16);
    store(y, i, relu && v < 0 ? 0.0f : v, layout);
  }
}

__device__ int bin_start(int i, int in, int out) { return (int)(((long long)i * in) / out); }
__device__ int bin_end(int i, int in, int out) {
  return (int)((((long long)i + 1) * in + out - 1) / out);
}

/* i counts the output's elements in NCHW order; summed as the CPU sums. */
__global__ void adaptive_avgpool_act(const void *x, void *y, size_t total, int c, int h, int w,
                                     int oh, int ow, int layout) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    int ox = (int)(i % (size_t)ow), oy = (int)((i / (size_t)ow) % (size_t)oh);
    size_t ch = (i / ((size_t)oh * ow)) % (size_t)c, image = i / ((size_t)oh * ow * c);
    int y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
    int x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
    float sum = 0;
    for (int iy = y0; iy < y1; iy++)
      for (int ix = x0; ix < x1; ix++)
        sum += load(x, at(image, ch, (size_t)iy * w + ix, c, (size_t)h * w, layout), layout);
    store(y, at(image, ch, (size_t)oy * ow + ox, c, (size_t)oh * ow, layout),
          sum / (float)((y1 - y0) * (x1 - x0)), layout);
  }
}

/* Autocast's Linear output: bf16(act(y + bf16(b))). */
__global__ void bias_act_rows_bf16(float *y, const float *b, size_t total, int out, int relu) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    float v = y[i] + __bfloat162float(__float2bfloat16_rn(b[i % (size_t)out]));
    y[i] = __bfloat162float(__float2bfloat16_rn(relu && v < 0 ? 0.0f : v));
  }
}

}  // namespace

extern "C" {

cudaError_t graft__k_nchw_to_act(cudaStream_t stream, const float *x, void *y, int n, int c,
                                 size_t hw, int layout) {
  size_t total = (size_t)n * c * hw;
  nchw_to_act<<<blocks_for(total), kThreads, 0, stream>>>(x, y, total, (size_t)c, hw, layout);
  return cudaGetLastError();
}

cudaError_t graft__k_act_to_nchw(cudaStream_t stream, const void *x, float *y, int n, int c,
                                 size_t hw, int layout) {
  size_t total = (size_t)n * c * hw;
  act_to_nchw<<<blocks_for(total), kThreads, 0, stream>>>(x, y, total, (size_t)c, hw, layout);
  return cudaGetLastError();
}

cudaError_t graft__k_bias_act(cudaStream_t stream, void *y, const void *b, int n, int k,
                              size_t hw, int relu, int layout) {
  size_t total = (size_t)n * k * hw;
  bias_act<<<blocks_for(total), kThreads, 0, stream>>>(y, b, total, (size_t)k, hw, relu, layout);
  return cudaGetLastError();
}

cudaError_t graft__k_adaptive_avgpool_act(cudaStream_t stream, const void *x, void *y, int n,
                                          int c, int h, int w, int oh, int ow, int layout) {
  size_t total = (size_t)n * c * oh * ow;
  adaptive_avgpool_act<<<blocks_for(total), kThreads, 0, stream>>>(x, y, total, c, h, w, oh, ow,
                                                                   layout);
  return cudaGetLastError();
}

cudaError_t graft__k_bias_act_rows_bf16(cudaStream_t stream, float *y, const float *b, int n,
                                        int out, int relu) {
  size_t total = (size_t)n * out;
  bias_act_rows_bf16<<<blocks_for(total), kThreads, 0, stream>>>(y, b, total, out, relu);
  return cudaGetLastError();
}

}  // extern "C"
