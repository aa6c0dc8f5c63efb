/* Plain double-precision references of the trunk ops, and helpers to run CPU
 * backend plans, shared by test_cpu_ops.c and test_cpu_trunk.c. The
 * references are the textbook loops, written from the op definitions in
 * engine/ops.h, so they share nothing with either convolution path. */
#ifndef GRAFT_TEST_CPU_REF_H
#define GRAFT_TEST_CPU_REF_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/base/rng.h"
#include "harness.h"

/* A CPU backend on one convolution path by its name (graft_cpu_conv_names). */
static inline graft_backend *ref_cpu_backend(const char *path) {
  graft_backend_options o = {.threads = 2};
  CHECK_OK(graft_cpu_conv_parse(path, &o.cpu_conv));
  graft_backend *be = NULL;
  CHECK_OK(graft_cpu_backend_create(&o, &be));
  return be;
}

static inline float *ref_alloc_floats(size_t n) { return graft_test_alloc(n * sizeof(float)); }
static inline double *ref_alloc_doubles(size_t n) { return graft_test_alloc(n * sizeof(double)); }

/* Uniform in [lo, hi). */
static inline void ref_fill(graft_rng *r, float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)graft_rng_double(r);
}

/* y[n,k,p,q] = act(sum_{c,r,s} x[n,c,p*st-pad+r,q*st-pad+s] w[k,c,r,s] + b[k]) */
static inline void ref_conv(const graft_conv2d_params *p, int n, int h, int w, const double *x,
                            const float *wt, const float *b, double *y) {
  const int oh = graft_out_dim(h, p->kernel, p->stride, p->pad);
  const int ow = graft_out_dim(w, p->kernel, p->stride, p->pad), kk = p->kernel;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < p->out_c; k++) {
      double *out = y + ((size_t)i * p->out_c + k) * oh * ow;
      for (int j = 0; j < oh * ow; j++) out[j] = b[k];
      for (int c = 0; c < p->in_c; c++) {
        const double *in = x + ((size_t)i * p->in_c + c) * h * w;
        for (int r = 0; r < kk; r++)
          for (int s = 0; s < kk; s++) {
            double wv = wt[(((size_t)k * p->in_c + c) * kk + r) * kk + s];
            for (int oy = 0; oy < oh; oy++) {
              int iy = oy * p->stride - p->pad + r;
              if (iy < 0 || iy >= h) continue;
              for (int ox = 0; ox < ow; ox++) {
                int ix = ox * p->stride - p->pad + s;
                if (ix >= 0 && ix < w) out[oy * ow + ox] += wv * in[iy * w + ix];
              }
            }
          }
      }
      if (p->relu)
        for (int j = 0; j < oh * ow; j++) out[j] = out[j] > 0 ? out[j] : 0;
    }
}

/* Max over each kernel x kernel window, floor mode, no padding; planes = n*c. */
static inline void ref_maxpool(const graft_pool2d_params *p, int planes, int h, int w,
                               const double *x, double *y) {
  const int oh = graft_out_dim(h, p->kernel, p->stride, 0);
  const int ow = graft_out_dim(w, p->kernel, p->stride, 0);
  for (int i = 0; i < planes; i++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        double m = -INFINITY;
        for (int r = 0; r < p->kernel; r++)
          for (int s = 0; s < p->kernel; s++) {
            double v = x[((size_t)i * h + oy * p->stride + r) * w + ox * p->stride + s];
            m = v > m ? v : m;
          }
        y[((size_t)i * oh + oy) * ow + ox] = m;
      }
}

/* PyTorch's AdaptiveAvgPool2d: bin i covers [floor(i*In/Out), ceil((i+1)*In/Out)). */
static inline void ref_adaptive_avg(int planes, int h, int w, int oh, int ow, const double *x,
                                    double *y) {
  for (int i = 0; i < planes; i++)
    for (int oy = 0; oy < oh; oy++) {
      int y0 = (int)floor((double)oy * h / oh), y1 = (int)ceil((double)(oy + 1) * h / oh);
      for (int ox = 0; ox < ow; ox++) {
        int x0 = (int)floor((double)ox * w / ow), x1 = (int)ceil((double)(ox + 1) * w / ow);
        double s = 0;
        for (int a = y0; a < y1; a++)
          for (int c = x0; c < x1; c++) s += x[((size_t)i * h + a) * w + c];
        y[((size_t)i * oh + oy) * ow + ox] = s / ((y1 - y0) * (x1 - x0));
      }
    }
}

/* ---- running plans ---- */

/* An activation in backend memory. */
typedef struct ref_act {
  graft_act a;
  void *buf;
} ref_act;

static inline void ref_act_free(graft_backend *be, ref_act *t) {
  if (t->buf) be->iface->free(be, t->buf);
  t->buf = NULL;
}

/* Plan, run once and destroy: out = op(in). */
static inline void ref_run(graft_backend *be, graft_plan *plan, const ref_act *in, ref_act *out) {
  CHECK_OK(be->iface->alloc(be, out->a.bytes, &out->buf));
  CHECK_OK(be->iface->plan_run(plan, in->buf, out->buf));
  be->iface->plan_destroy(plan);
}

/* Plain NCHW host floats into the backend's trunk layout. blocked: then pass
 * them through an identity 1x1 convolution (exact in float: x*1 + 0*...), so
 * the result sits in the layout the backend's convolutions produce. */
static inline ref_act ref_to_act(graft_backend *be, int n, int c, int h, int w, const float *x,
                                 bool blocked) {
  ref_act host = {{n, c, h, w, GRAFT_LAYOUT_NCHW, (size_t)n * c * h * w * sizeof(float)}, NULL};
  CHECK_OK(be->iface->alloc(be, host.a.bytes, &host.buf));
  CHECK_OK(be->iface->upload(be, host.buf, x, host.a.bytes));
  ref_act t = {{0}, NULL};
  graft_plan *plan;
  CHECK_OK(be->iface->nchw_to_act_plan(be, &host.a, &t.a, &plan));
  ref_run(be, plan, &host, &t);
  ref_act_free(be, &host);
  if (!blocked) return t;
  float *eye = calloc((size_t)c * c, sizeof(float)), *zero = calloc((size_t)c, sizeof(float));
  if (!eye || !zero) exit(1);
  for (int i = 0; i < c; i++) eye[(size_t)i * c + i] = 1.0f;
  graft_conv2d_params id = {c, c, 1, 1, 0, false};
  ref_act b = {{0}, NULL};
  CHECK_OK(be->iface->conv2d_plan(be, &id, &t.a, eye, zero, &b.a, &plan));
  ref_run(be, plan, &t, &b);
  ref_act_free(be, &t);
  free(eye);
  free(zero);
  return b;
}

/* An activation out to plain NCHW host floats (through act_to_rows, whose
 * rows are the NCHW flatten); the activation is freed. */
static inline void ref_from_act(graft_backend *be, ref_act *t, float *y) {
  ref_act rows = {{0}, NULL};
  graft_plan *plan;
  CHECK_OK(be->iface->act_to_rows_plan(be, &t->a, &rows.a, &plan));
  CHECK(rows.a.layout == GRAFT_LAYOUT_NCHW && rows.a.n == t->a.n &&
        rows.a.c == t->a.c * t->a.h * t->a.w && rows.a.h == 1 && rows.a.w == 1);
  ref_run(be, plan, t, &rows);
  CHECK_OK(be->iface->download(be, y, rows.buf, (size_t)rows.a.n * rows.a.c * sizeof(float)));
  ref_act_free(be, &rows);
  ref_act_free(be, t);
}

#endif
