/* Pooling on the CPU outside oneDNN: max pooling on plain NCHW (the GEMM
 * path), PyTorch's adaptive average pooling in any of our layouts, and the
 * plain copy plan. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"

typedef struct pool_plan {
  graft_plan head;
  graft_act in, out;
  int kernel, stride;
} pool_plan;

static void destroy(graft_plan *plan) { free(plan); }

static graft_status run_copy(graft_plan *plan, const void *x, void *y);
static graft_status run_max(graft_plan *plan, const void *xv, void *yv);

static graft_status new_pool(cpu_backend *be, const graft_act *in, const graft_act *out,
                             graft_status (*run)(graft_plan *, const void *, void *),
                             graft_plan **plan) {
  GRAFT_TRY(graft__cpu_plan_new(be, sizeof(pool_plan), run, destroy, plan));
  pool_plan *p = (pool_plan *)*plan;
  p->in = *in;
  p->out = *out;
  snprintf((*plan)->what, sizeof (*plan)->what, "%s",
           run == run_copy ? "copy" : run == run_max ? "max pooling" : "adaptive average pooling");
  return GRAFT_OK;
}

static graft_status run_copy(graft_plan *plan, const void *x, void *y) {
  pool_plan *p = (pool_plan *)plan;
  memcpy(y, x, p->in.bytes);
  return GRAFT_OK;
}

graft_status graft__cpu_copy_plan(cpu_backend *be, const graft_act *in, graft_act *out,
                                  graft_plan **plan) {
  *out = *in;
  return new_pool(be, in, out, run_copy, plan);
}

/* ---- max pooling, plain NCHW, floor mode, no padding ---- */
static graft_status run_max(graft_plan *plan, const void *xv, void *yv) {
  pool_plan *p = (pool_plan *)plan;
  const graft_act *in = &p->in, *out = &p->out;
  const float *x = xv;
  float *y = yv;
#pragma omp parallel for schedule(static)
  for (int nc = 0; nc < in->n * in->c; nc++) {
    const float *src = x + (size_t)nc * in->h * in->w;
    float *dst = y + (size_t)nc * out->h * out->w;
    for (int oy = 0; oy < out->h; oy++)
      for (int ox = 0; ox < out->w; ox++) {
        float m = -FLT_MAX;
        for (int ky = 0; ky < p->kernel; ky++)
          for (int kx = 0; kx < p->kernel; kx++) {
            float v = src[(oy * p->stride + ky) * in->w + ox * p->stride + kx];
            if (v > m || v != v) m = v; /* NaN propagates, as in PyTorch */
          }
        dst[oy * out->w + ox] = m;
      }
  }
  return GRAFT_OK;
}

graft_status graft__cpu_maxpool_plan(cpu_backend *be, const graft_pool2d_params *pp,
                                     const graft_act *in, graft_act *out, graft_plan **plan) {
  if (in->layout != 0)
    return graft__fail(GRAFT_EUNSUPPORTED, "max pooling here needs plain NCHW input");
  int oh = graft_out_dim(in->h, pp->kernel, pp->stride, 0);
  int ow = graft_out_dim(in->w, pp->kernel, pp->stride, 0);
  *out = (graft_act){in->n, in->c, oh, ow, 0, cpu_act_bytes(in->n, in->c, oh, ow, 0)};
  GRAFT_TRY(new_pool(be, in, out, run_max, plan));
  pool_plan *p = (pool_plan *)*plan;
  p->kernel = pp->kernel;
  p->stride = pp->stride;
  return GRAFT_OK;
}

/* ---- adaptive average pooling ---- */
/* Bin i of `out` over `in`: [floor(i*in/out), ceil((i+1)*in/out)). */
static inline int bin_start(int i, int in, int out) { return (int)(((long long)i * in) / out); }
static inline int bin_end(int i, int in, int out) {
  return (int)((((long long)i + 1) * in + out - 1) / out);
}

static graft_status run_avg(graft_plan *plan, const void *xv, void *yv) {
  pool_plan *p = (pool_plan *)plan;
  const graft_act *in = &p->in, *out = &p->out;
  const float *x = xv;
  float *y = yv;
  /* Padding channels of a blocked layout stay zero. */
  if (out->layout) memset(y, 0, out->bytes);
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < in->n; n++)
    for (int c = 0; c < in->c; c++)
      for (int oy = 0; oy < out->h; oy++) {
        int y0 = bin_start(oy, in->h, out->h), y1 = bin_end(oy, in->h, out->h);
        for (int ox = 0; ox < out->w; ox++) {
          int x0 = bin_start(ox, in->w, out->w), x1 = bin_end(ox, in->w, out->w);
          float sum = 0;
          for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++)
              sum += x[cpu_act_index(n, c, iy, ix, in->c, in->h, in->w, in->layout)];
          y[cpu_act_index(n, c, oy, ox, out->c, out->h, out->w, out->layout)] =
              sum / (float)((y1 - y0) * (x1 - x0));
        }
      }
  return GRAFT_OK;
}

graft_status graft__cpu_adaptive_avgpool_plan(cpu_backend *be,
                                              const graft_adaptive_avgpool_params *pp,
                                              const graft_act *in, graft_act *out,
                                              graft_plan **plan) {
  /* At 224x224 the trunk already gives 6x6 (AlexNet) or 7x7 (VGG16): every
   * bin is one element and the pooling is a copy. */
  if (in->h == pp->out_h && in->w == pp->out_w) return graft__cpu_copy_plan(be, in, out, plan);
  *out = (graft_act){in->n, in->c, pp->out_h, pp->out_w, in->layout,
                     cpu_act_bytes(in->n, in->c, pp->out_h, pp->out_w, in->layout)};
  return new_pool(be, in, out, run_avg, plan);
}
