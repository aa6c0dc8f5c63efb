/* Typed parameters of each op. A model layer is a tagged union of these. */
#ifndef GRAFT_OPS_H
#define GRAFT_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* y = act(conv(x, w) + b); x [N,C,H,W], w [K,C,R,S], b [K], y [N,K,P,Q],
 * P = (H + 2*pad - R) / stride + 1 (floor), likewise Q. */
typedef struct graft_conv2d_params {
  int in_c, out_c;
  int kernel; /* R = S */
  int stride;
  int pad; /* symmetric */
  bool relu;
} graft_conv2d_params;

/* Max pooling, no padding, floor mode (PyTorch's ceil_mode=False). */
typedef struct graft_pool2d_params {
  int kernel;
  int stride;
} graft_pool2d_params;

/* PyTorch AdaptiveAvgPool2d: bin i of Out covers [floor(i*In/Out), ceil((i+1)*In/Out)). */
typedef struct graft_adaptive_avgpool_params {
  int out_h, out_w;
} graft_adaptive_avgpool_params;

/* y = act(x w^T + b); x [N,in], w [out,in], b [out], y [N,out]. */
typedef struct graft_linear_params {
  int in, out;
  bool relu;
} graft_linear_params;

/* SGD in PyTorch's form:
 *   g' = g + weight_decay * p
 *   buf = first ? g' : momentum * buf + g'
 *   p  -= lr * buf                                            */
typedef struct graft_sgd_params {
  float lr, momentum, weight_decay;
  bool first; /* first step: buf = g' */
} graft_sgd_params;

/* Output spatial size of a conv or pool window, floor mode. */
static inline int graft_out_dim(int in, int kernel, int stride, int pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

#endif
