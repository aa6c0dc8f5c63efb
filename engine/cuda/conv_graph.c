/* The cuDNN operation graphs graft builds, for a real GPU or a device
 * description alike (graft__cudnn_target):
 *
 *   conv fused   x, w -> CONV_FWD -> (virtual) -> ADD b -> (virtual) -> RELU -> y
 *                One graph per (shape, batch, precision): cuDNN's pre-compiled
 *                ConvBiasAct engines take it on NCHW fp32 (docs/CUDNN.md), so the
 *                bias and ReLU cost no extra pass over y.
 *   conv split   x, w -> CONV_FWD -> y; bias + ReLU by our kernel afterwards.
 *                The ladder's third rung, for when no fused engine plans.
 *   max pooling  x -> RESAMPLE_FWD (MAXPOOL, -inf padding, no index output) -> y.
 *                Runtime-fused resample engines need NHWC; NCHW has one
 *                pre-compiled engine, which heuristics list in FALLBACK mode
 *                (docs/CUDNN.md), so mode A is tried first and FALLBACK second.
 *
 * Tensor uids: x=1, w=2, b=3, y=4 (pooling: x=1, y=2); the virtual
 * intermediates 5 and 6 never reach memory. x, w, b and y are in the trunk's
 * layout (NCHW, or NHWC strides with KRSC filters) and data type (float, or
 * bfloat16 in bf16); compute and the intermediates are float always. */
#include <string.h>

#include "engine/cuda/cuda.h"

#define SET(d, name, type, count, ptr) \
  CU_STEP(cudnn, cudnnBackendSetAttribute((d), (name), (type), (count), (ptr)))

enum { UID_X = 1, UID_W = 2, UID_B = 3, UID_Y = 4, UID_CONV_OUT = 5, UID_ADD_OUT = 6 };

/* Create a descriptor that the plan keeps. */
static graft_status create(graft__cudnn_plan *p, cudnnBackendDescriptorType_t type,
                           cudnnBackendDescriptor_t *d) {
  *d = NULL;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(type, d));
  return graft__cudnn_keep(p, *d);
}

/* dims [a,b,c,d] as NCHW (KCRS); nhwc gives channels-last strides. */
static graft_status tensor(graft__cudnn_plan *p, int64_t uid, int64_t a, int64_t b, int64_t c,
                           int64_t d, cudnnDataType_t type, bool nhwc, bool is_virtual,
                           cudnnBackendDescriptor_t *out) {
  const int64_t dims[4] = {a, b, c, d};
  GRAFT_TRY(graft__cudnn_tensor(uid, dims, type, nhwc, is_virtual, out));
  return graft__cudnn_keep(p, *out);
}

/* A pointwise op y = mode(x [, b]) in fp32. */
static graft_status pointwise(graft__cudnn_plan *p, cudnnPointwiseMode_t mode,
                              cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                              cudnnBackendDescriptor_t y, cudnnBackendDescriptor_t *op) {
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  cudnnBackendDescriptor_t pw;
  GRAFT_TRY(create(p, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw));
  GRAFT_TRY(SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
  GRAFT_TRY(SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec));
  CU_TRY(cudnn, cudnnBackendFinalize(pw));
  GRAFT_TRY(create(p, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op));
  GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                1, &pw));
  GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
  if (b)
    GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &b));
  GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
  CU_TRY(cudnn, cudnnBackendFinalize(*op));
  return GRAFT_OK;
}

static graft_status conv_ops(graft__cudnn_plan *p, const graft__conv_shape *s, bool fused,
                             graft_precision prec, cudnnBackendDescriptor_t *ops, int *n_ops) {
  const int64_t oh = graft_out_dim(s->h, s->r, s->stride, s->pad);
  const int64_t ow = graft_out_dim(s->w, s->r, s->stride, s->pad);
  const cudnnDataType_t io = graft__cudnn_io_type(prec), f32 = CUDNN_DATA_FLOAT;
  const bool nhwc = s->nhwc;
  cudnnBackendDescriptor_t x, w, b = NULL, y, conv_out, add_out = NULL;
  GRAFT_TRY(tensor(p, UID_X, s->n, s->c, s->h, s->w, io, nhwc, false, &x));
  GRAFT_TRY(tensor(p, UID_W, s->k, s->c, s->r, s->r, io, nhwc, false, &w));
  GRAFT_TRY(tensor(p, UID_Y, s->n, s->k, oh, ow, io, nhwc, false, &y));
  conv_out = y;
  if (fused) {
    /* The bias in the data's type (PyTorch's bf16 conv has a bf16 bias). */
    GRAFT_TRY(tensor(p, UID_B, 1, s->k, 1, 1, io, nhwc, false, &b));
    GRAFT_TRY(tensor(p, UID_CONV_OUT, s->n, s->k, oh, ow, f32, nhwc, true, &conv_out));
    if (s->relu) GRAFT_TRY(tensor(p, UID_ADD_OUT, s->n, s->k, oh, ow, f32, nhwc, true, &add_out));
  }

  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION; /* what frameworks call conv */
  const int64_t dims = 2, dil[2] = {1, 1}, stride[2] = {s->stride, s->stride};
  const int64_t pad[2] = {s->pad, s->pad};
  cudnnBackendDescriptor_t cd, op;
  GRAFT_TRY(create(p, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &cd));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, stride));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad));
  GRAFT_TRY(SET(cd, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad));
  CU_TRY(cudnn, cudnnBackendFinalize(cd));

  /* Fusion needs beta = 0 (y is not read) and alpha = 1. */
  const float alpha = 1.0f, beta = 0.0f;
  GRAFT_TRY(create(p, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op));
  GRAFT_TRY(SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &x));
  GRAFT_TRY(SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &w));
  GRAFT_TRY(SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &conv_out));
  GRAFT_TRY(SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd));
  GRAFT_TRY(SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
  GRAFT_TRY(SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  CU_TRY(cudnn, cudnnBackendFinalize(op));
  ops[(*n_ops)++] = op;
  if (!fused) return GRAFT_OK;

  /* The bias is the ADD's second input: a broadcast tensor may not come first. */
  GRAFT_TRY(pointwise(p, CUDNN_POINTWISE_ADD, conv_out, b, s->relu ? add_out : y, &op));
  ops[(*n_ops)++] = op;
  if (s->relu) {
    GRAFT_TRY(pointwise(p, CUDNN_POINTWISE_RELU_FWD, add_out, NULL, y, &op));
    ops[(*n_ops)++] = op;
  }
  return GRAFT_OK;
}

graft_status graft__conv_graph(const graft__cudnn_target *t, const graft__conv_shape *s,
                               bool fused, cudnnBackendHeurMode_t mode, graft_precision prec,
                               graft__cudnn_plan *out) {
  memset(out, 0, sizeof *out);
  cudnnBackendDescriptor_t ops[3];
  int n_ops = 0;
  /* the uids first: a tuned planning runs the candidates */
  const int64_t fused_uids[] = {UID_X, UID_W, UID_B, UID_Y}, split_uids[] = {UID_X, UID_W, UID_Y};
  out->n_uids = fused ? 4 : 3;
  memcpy(out->uids, fused ? fused_uids : split_uids, (size_t)out->n_uids * sizeof(int64_t));
  graft_status st = conv_ops(out, s, fused, prec, ops, &n_ops);
  if (st == GRAFT_OK) st = graft__cudnn_plan_graph(t, out, ops, n_ops, mode, prec);
  if (st != GRAFT_OK) {
    graft__cudnn_plan_release(out);
    return st;
  }
  return GRAFT_OK;
}

static graft_status pool_ops(graft__cudnn_plan *p, int n, int c, int h, int w, int kernel,
                             int stride, bool nhwc, graft_precision prec,
                             cudnnBackendDescriptor_t *op) {
  const int64_t oh = graft_out_dim(h, kernel, stride, 0), ow = graft_out_dim(w, kernel, stride, 0);
  const cudnnDataType_t io = graft__cudnn_io_type(prec);
  cudnnBackendDescriptor_t x, y, rd;
  GRAFT_TRY(tensor(p, 1, n, c, h, w, io, nhwc, false, &x));
  GRAFT_TRY(tensor(p, 2, n, c, oh, ow, io, nhwc, false, &y));
  const cudnnResampleMode_t mode = CUDNN_RESAMPLE_MAXPOOL;
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnPaddingMode_t pad_mode = CUDNN_NEG_INF_PAD;
  const int64_t dims = 2;
  const cudnnFraction_t window[2] = {{kernel, 1}, {kernel, 1}};
  const cudnnFraction_t strides[2] = {{stride, 1}, {stride, 1}};
  const cudnnFraction_t zero[2] = {{0, 1}, {0, 1}};
  GRAFT_TRY(create(p, CUDNN_BACKEND_RESAMPLE_DESCRIPTOR, &rd));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_MODE, CUDNN_TYPE_RESAMPLE_MODE, 1, &mode));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_PADDING_MODE, CUDNN_TYPE_PADDING_MODE, 1, &pad_mode));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_WINDOW_DIMS, CUDNN_TYPE_FRACTION, 2, window));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_STRIDES, CUDNN_TYPE_FRACTION, 2, strides));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_PRE_PADDINGS, CUDNN_TYPE_FRACTION, 2, zero));
  GRAFT_TRY(SET(rd, CUDNN_ATTR_RESAMPLE_POST_PADDINGS, CUDNN_TYPE_FRACTION, 2, zero));
  CU_TRY(cudnn, cudnnBackendFinalize(rd));
  GRAFT_TRY(create(p, CUDNN_BACKEND_OPERATION_RESAMPLE_FWD_DESCRIPTOR, op));
  GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_RESAMPLE_FWD_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &x));
  GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_RESAMPLE_FWD_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &y));
  GRAFT_TRY(SET(*op, CUDNN_ATTR_OPERATION_RESAMPLE_FWD_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &rd));
  CU_TRY(cudnn, cudnnBackendFinalize(*op));
  return GRAFT_OK;
}

graft_status graft__maxpool_graph(const graft__cudnn_target *t, int n, int c, int h, int w,
                                  int kernel, int stride, bool nhwc, graft_precision prec,
                                  graft__cudnn_plan *out) {
  static const cudnnBackendHeurMode_t modes[] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
  graft_status st = GRAFT_OK;
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    memset(out, 0, sizeof *out);
    out->n_uids = 2;
    out->uids[0] = 1;
    out->uids[1] = 2;
    cudnnBackendDescriptor_t op;
    st = pool_ops(out, n, c, h, w, kernel, stride, nhwc, prec, &op);
    if (st == GRAFT_OK) st = graft__cudnn_plan_graph(t, out, &op, 1, modes[m], prec);
    if (st == GRAFT_OK) return GRAFT_OK;
    graft__cudnn_plan_release(out);
    if (st != GRAFT_EUNSUPPORTED) break;
  }
  return st;
}
