/* Pooling and the trunk's edges on the GPU.
 *
 *   max pooling    a cuDNN resample graph (conv_graph.c): on NCHW fp32 it has
 *                  one pre-compiled engine, listed by FALLBACK heuristics. If
 *                  no engine plans the shape, or the cudnn_path option is
 *                  legacy, the pooling API (cudnnPoolingForward,
 *                  CUDNN_POOLING_MAX) runs it. Max is exact either way: the result equals the CPU's.
 *   adaptive avg   not a cuDNN op (no such mode in any header). At 224x224
 *                  the trunk already gives 6x6 (AlexNet) or 7x7 (VGG16), every
 *                  bin is one element and the plan is a copy; other sizes run
 *                  our kernel with PyTorch's bins, summed in the CPU's order.
 *   edges          in plain NCHW fp32 (the fp32 default) nchw_to_act and
 *                  act_to_rows are device-to-device copies (flatten is free).
 *                  In NHWC and/or bf16 (GRAFT__CUDA_*, the backend's layout
 *                  option) nchw_to_act converts the input with a kernel, and
 *                  act_to_rows transposes (and widens) the last activation
 *                  back to NCHW float rows: the classifier's first Linear
 *                  then sees PyTorch's flatten order with its weights as
 *                  loaded (they are not permuted).
 *   NHWC max pool  cuDNN lists no pre-compiled resample engine for NHWC and
 *                  its runtime-compiled ones are only known on a GPU: the
 *                  graph is tried, then cudnnPoolingForward in NHWC. */
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"

typedef struct pool_plan {
  graft_plan head;
  graft__cudnn_plan *graph; /* resample graph, cached in the backend */
  graft__cudnn_packs packs;
  cudnnPoolingDescriptor_t pd; /* legacy */
  cudnnTensorDescriptor_t xd, yd;
} pool_plan;

typedef struct pool_key {
  int op; /* 2 = max pooling */
  int precision, layout, n, c, h, w, kernel, stride;
} pool_key;

static void destroy(graft_plan *plan) {
  pool_plan *p = (pool_plan *)plan;
  graft__cudnn_packs_release(&p->packs);
  if (p->pd) cudnnDestroyPoolingDescriptor(p->pd);
  if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
  if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
  graft__cuda_plan_free(plan);
}

static graft_status run_copy(graft_plan *plan, const void *x, void *y) {
  if (x != y)
    CU_TRY(cuda, cudaMemcpyAsync(y, x, plan->in.bytes, cudaMemcpyDeviceToDevice,
                                 plan->be->stream));
  return GRAFT_OK;
}

static graft_status copy_plan(cuda_backend *be, const graft_act *in, const graft_act *out,
                              graft_plan **plan) {
  GRAFT_TRY(graft__cuda_plan_new(be, sizeof(pool_plan), run_copy, destroy, in, out, plan));
  (*plan)->path = "device copy";
  return GRAFT_OK;
}

static graft_status run_to_act(graft_plan *plan, const void *x, void *y) {
  const graft_act *o = &plan->out;
  CU_TRY(cuda, graft__k_nchw_to_act(plan->be->stream, x, y, o->n, o->c, (size_t)o->h * o->w,
                                    o->layout));
  return GRAFT_OK;
}

static graft_status run_to_rows(graft_plan *plan, const void *x, void *y) {
  const graft_act *in = &plan->in;
  CU_TRY(cuda, graft__k_act_to_nchw(plan->be->stream, x, y, in->n, in->c,
                                    (size_t)in->h * in->w, in->layout));
  return GRAFT_OK;
}

graft_status graft__cuda_nchw_to_act(graft_backend *b, const graft_act *in, graft_act *out,
                                     graft_plan **plan) {
  cuda_backend *be = cuda_of(b);
  if (in->layout != GRAFT_LAYOUT_NCHW)
    return graft__fail(GRAFT_EUNSUPPORTED, "the trunk's input is plain NCHW");
  *out = *in;
  if (be->act_layout == GRAFT_LAYOUT_NCHW) return copy_plan(be, in, out, plan);
  out->layout = be->act_layout;
  out->bytes = (size_t)in->n * in->c * in->h * in->w * graft__cuda_elem_bytes(out->layout);
  GRAFT_TRY(graft__cuda_plan_new(be, sizeof(pool_plan), run_to_act, destroy, in, out, plan));
  (*plan)->path = "layout kernel (NCHW float in)";
  return GRAFT_OK;
}

graft_status graft__cuda_act_to_rows(graft_backend *b, const graft_act *in, graft_act *out,
                                     graft_plan **plan) {
  cuda_backend *be = cuda_of(b);
  if (in->layout != be->act_layout)
    return graft__fail(GRAFT_EUNSUPPORTED, "activations in layout %d, the trunk's is %d",
                       in->layout, be->act_layout);
  const size_t count = (size_t)in->n * in->c * in->h * in->w;
  *out = (graft_act){in->n, in->c * in->h * in->w, 1, 1, GRAFT_LAYOUT_NCHW,
                     count * sizeof(float)};
  /* NCHW rows are PyTorch's flatten order already. */
  if (in->layout == GRAFT_LAYOUT_NCHW) return copy_plan(be, in, out, plan);
  GRAFT_TRY(graft__cuda_plan_new(be, sizeof(pool_plan), run_to_rows, destroy, in, out, plan));
  (*plan)->path = "layout kernel (NCHW float rows out)";
  return GRAFT_OK;
}

/* ---- max pooling ---- */
static graft_status run_max(graft_plan *plan, const void *x, void *y) {
  pool_plan *p = (pool_plan *)plan;
  cuda_backend *be = plan->be;
  if (p->graph) {
    void *ptrs[2] = {(void *)x, y};
    return graft__cudnn_execute(be->cudnn, p->graph, &p->packs, ptrs, be->workspace);
  }
  const float one = 1.0f, zero = 0.0f;
  CU_TRY(cudnn, cudnnPoolingForward(be->cudnn, p->pd, &one, p->xd, x, &zero, p->yd, y));
  return GRAFT_OK;
}

static graft_status max_graph(cuda_backend *be, pool_plan *p, const graft_pool2d_params *pp,
                              const graft_act *in) {
  pool_key key = {2,     (int)be->base.precision, in->layout, in->n, in->c, in->h, in->w,
                  pp->kernel, pp->stride};
  graft__cudnn_plan *cached = graft__cuda_graph_find(be, &key, sizeof key);
  if (!cached) {
    graft__cudnn_target t = {.handle = be->cudnn, .workspace_limit = (int64_t)(be->total_mem / 16)};
    graft__cudnn_plan g;
    GRAFT_TRY(graft__maxpool_graph(&t, in->n, in->c, in->h, in->w, pp->kernel, pp->stride,
                                   (in->layout & GRAFT__CUDA_NHWC) != 0, be->base.precision, &g));
    /* New: run it once before it is adopted (see engine/cuda/conv.c). */
    graft_status s = graft__cuda_workspace_reserve(be, (size_t)g.workspace);
    p->graph = &g;
    if (s == GRAFT_OK) s = graft__cuda_trial(&p->head, in->bytes, p->head.out.bytes);
    p->graph = NULL;
    graft__cudnn_packs_release(&p->packs); /* they name the scratch buffers */
    if (s != GRAFT_OK) {
      graft__context(s, "resample engine %ld planned but failed when run", (long)g.engine);
      graft__cudnn_plan_release(&g);
      return s;
    }
    GRAFT_TRY(graft__cuda_graph_add(be, &key, sizeof key, &g, &cached));
  }
  GRAFT_TRY(graft__cuda_workspace_reserve(be, (size_t)cached->workspace));
  p->graph = cached;
  p->head.engine = cached->engine;
  return GRAFT_OK;
}

static graft_status max_legacy(pool_plan *p, const graft_pool2d_params *pp, const graft_act *in,
                               const graft_act *out) {
  CU_TRY(cudnn, cudnnCreatePoolingDescriptor(&p->pd));
  CU_TRY(cudnn, cudnnCreateTensorDescriptor(&p->xd));
  CU_TRY(cudnn, cudnnCreateTensorDescriptor(&p->yd));
  CU_TRY(cudnn, cudnnSetPooling2dDescriptor(p->pd, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN,
                                            pp->kernel, pp->kernel, 0, 0, pp->stride,
                                            pp->stride));
  const cudnnTensorFormat_t fmt = in->layout & GRAFT__CUDA_NHWC ? CUDNN_TENSOR_NHWC
                                                                : CUDNN_TENSOR_NCHW;
  const cudnnDataType_t io = in->layout & GRAFT__CUDA_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  CU_TRY(cudnn, cudnnSetTensor4dDescriptor(p->xd, fmt, io, in->n, in->c, in->h, in->w));
  int n, c, h, w;
  CU_TRY(cudnn, cudnnGetPooling2dForwardOutputDim(p->pd, p->xd, &n, &c, &h, &w));
  if (n != out->n || c != out->c || h != out->h || w != out->w)
    return graft__fail(GRAFT_ESHAPE, "cuDNN pools to %dx%dx%dx%d, expected %dx%dx%dx%d", n, c, h,
                       w, out->n, out->c, out->h, out->w);
  CU_TRY(cudnn, cudnnSetTensor4dDescriptor(p->yd, fmt, io, n, c, h, w));
  graft_status s = graft__cuda_trial(&p->head, in->bytes, out->bytes);
  if (s != GRAFT_OK) return graft__context(s, "cudnnPoolingForward failed when run");
  return GRAFT_OK;
}

graft_status graft__cuda_maxpool_plan(graft_backend *b, const graft_pool2d_params *pp,
                                      const graft_act *in, graft_act *out, graft_plan **plan) {
  cuda_backend *be = cuda_of(b);
  *plan = NULL;
  if (in->layout != be->act_layout)
    return graft__fail(GRAFT_EUNSUPPORTED, "CUDA pooling takes the trunk's layout %d, not %d",
                       be->act_layout, in->layout);
  int oh = graft_out_dim(in->h, pp->kernel, pp->stride, 0);
  int ow = graft_out_dim(in->w, pp->kernel, pp->stride, 0);
  graft_act o = {in->n, in->c, oh, ow, in->layout,
                 (size_t)in->n * in->c * oh * ow * graft__cuda_elem_bytes(in->layout)};
  graft_plan *head;
  GRAFT_TRY(graft__cuda_plan_new(be, sizeof(pool_plan), run_max, destroy, in, &o, &head));
  pool_plan *p = (pool_plan *)head;
  graft_status s = GRAFT_EUNSUPPORTED;
  if (be->path != GRAFT_CUDNN_PATH_LEGACY) {
    s = max_graph(be, p, pp, in);
    head->path = "resample graph";
  }
  if (s != GRAFT_OK && s != GRAFT_ENOMEM) {
    s = max_legacy(p, pp, in, &o);
    head->path = "cudnnPoolingForward";
  }
  if (s != GRAFT_OK) {
    destroy(head);
    return graft__context(s, "max pooling %d/%d on %dx%d", pp->kernel, pp->stride, in->h, in->w);
  }
  graft_clear_detail();
  *out = o;
  *plan = head;
  return GRAFT_OK;
}

/* ---- adaptive average pooling ---- */
static graft_status run_avg(graft_plan *plan, const void *x, void *y) {
  const graft_act *in = &plan->in, *out = &plan->out;
  if (in->layout == GRAFT_LAYOUT_NCHW)
    CU_TRY(cuda, graft__k_adaptive_avgpool(plan->be->stream, x, y, in->n * in->c, in->h, in->w,
                                           out->h, out->w));
  else
    CU_TRY(cuda, graft__k_adaptive_avgpool_act(plan->be->stream, x, y, in->n, in->c, in->h,
                                               in->w, out->h, out->w, in->layout));
  return GRAFT_OK;
}

graft_status graft__cuda_avgpool_plan(graft_backend *b, const graft_adaptive_avgpool_params *pp,
                                      const graft_act *in, graft_act *out, graft_plan **plan) {
  cuda_backend *be = cuda_of(b);
  *plan = NULL;
  if (in->layout != be->act_layout)
    return graft__fail(GRAFT_EUNSUPPORTED, "CUDA pooling takes the trunk's layout %d, not %d",
                       be->act_layout, in->layout);
  if (in->h == pp->out_h && in->w == pp->out_w) {
    *out = *in;
    return copy_plan(be, in, out, plan);
  }
  graft_act o = {in->n, in->c, pp->out_h, pp->out_w, in->layout,
                 (size_t)in->n * in->c * pp->out_h * pp->out_w *
                     graft__cuda_elem_bytes(in->layout)};
  GRAFT_TRY(graft__cuda_plan_new(be, sizeof(pool_plan), run_avg, destroy, in, &o, plan));
  (*plan)->path = "adaptive average pooling kernel";
  *out = o;
  return GRAFT_OK;
}
