/* Every op of the CPU backend against a plain double-precision reference
 * written here, on a table of shapes per op; backward entries also against
 * central finite differences of a scalar loss computed in double.
 *
 * Trunk ops run as engine/net.c runs them: nchw_to_act -> op -> act_to_rows,
 * and again on a channel-blocked input (the output of an identity 1x1
 * convolution, which is exact), so the oneDNN layouts are covered too. The
 * program runs on the default convolution path and again on the direct,
 * gemm, auto and tuned paths and on graft's Winograd with each 3x3 tile (GRAFT_CPU_CONV,
 * read by the harness; test/CMakeLists.txt; those skip where graft's
 * Winograd cannot run).
 *
 * Each case prints max|a-b|, the relative error ||a-b||/||b|| and "elem", the
 * largest |a-b| over the size its rounding error scales with (sum |x*w| + |b|
 * for a dot product, max|b| when no better scale is known); a case fails
 * when either relative measure is over its tolerance. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/base/rng.h"
#include "harness.h"

static graft_backend *be;
static const graft_backend_iface *F;
static graft_rng rng = {0x5eed0c0ffeeULL, 0};

/* fp32 dot products of up to a few hundred terms accumulate ~sqrt(K) * 2^-24
 * relative to sum |terms|. Observed on the direct, GEMM and oneDNN Winograd
 * kernels (jit_wino_4x3, jit_fp32_wino_2x3): rel <= 1.2e-6, elem <= 5.1e-7.
 * graft's Winograd (engine/cpu/winograd.c) costs more bits in its
 * transforms (B^T's 4s and 5s, A^T's 8s): F(2x2,3x3) rel <= 7.6e-7, elem <=
 * 1.8e-7; F(2x2,5x5) rel <= 1.9e-6, elem <= 7.6e-7; F(4x4,3x3) rel <= 3.5e-6
 * (512 input channels, whose sums cancel most), elem <= 1.9e-6 (~2^-19 of
 * sum |x*w|); F(4x4,5x5) rel <= 3.1e-6, elem <= 1.5e-6. 1e-5 is the STYLE's
 * fp32 budget, 3x above the worst of those, and still far below what one
 * wrong tap, bias, tile edge or layout slip gives (1e-3 and up). */
#define CONV_TOL 1e-5
#define DOT_TOL 1e-5   /* linear forward/backward vs double */
#define FD_TOL 1e-4    /* float gradients vs finite differences of the double loss */
#define POOL_TOL 1e-6  /* a float mean of at most 49 values */
#define EXACT_TOL 1e-6 /* results computed in double and rounded once to float */

/* ---------------------------------------------------------------- helpers */

static float *falloc(size_t n) { return graft_test_alloc(n * sizeof(float)); }
static double *dalloc(size_t n) { return graft_test_alloc(n * sizeof(double)); }

static double uni(double lo, double hi) { return lo + (hi - lo) * graft_rng_double(&rng); }

static float *frand(size_t n, double lo, double hi) {
  float *x = falloc(n);
  for (size_t i = 0; i < n; i++) x[i] = (float)uni(lo, hi);
  return x;
}

static void fill_nan(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = NAN;
}

/* a (float, from the backend) against the double reference b; see the header
 * for the measures. scale: per-element error scale, NULL for max|b|. */
static bool check_close(const char *op, const char *what, const float *a, const double *b,
                        const double *scale, size_t n, double tol) {
  graft_test_diff d = graft_test_compare(graft_test_f(a), graft_test_d(b), scale, n);
  bool ok = d.non_finite == 0 && d.rel <= tol && d.elem <= tol;
  printf("%-9s %-46s max|d| %8.2e  rel %8.2e  elem %8.2e  tol %.0e %s\n", op, what, d.max_abs,
         d.rel, d.elem, tol, ok ? "ok" : "FAIL");
  if (!ok) {
    size_t at = d.where;
    fprintf(stderr, "FAIL %s %s: %zu non-finite; worst at [%zu]: got %.9g, want %.9g\n", op,
            what, d.non_finite, at, n ? a[at] : 0.0, n ? b[at] : 0.0);
    graft_test_failures++;
  }
  return ok;
}

/* Bitwise equality (for copies, reorders, max, masks and the SGD float formula). */
static bool check_exact(const char *op, const char *what, const float *a, const float *b,
                        size_t n) {
  graft_test_diff d = graft_test_compare(graft_test_f(a), graft_test_f(b), NULL, n);
  size_t bad = d.bits_differ, first = d.first_differ;
  printf("%-9s %-46s exact: %zu of %zu differ %s\n", op, what, bad, n, bad ? "FAIL" : "ok");
  if (bad) {
    fprintf(stderr, "FAIL %s %s: first at [%zu]: got %.9g, want %.9g\n", op, what, first,
            a[first], b[first]);
    graft_test_failures++;
  }
  return bad == 0;
}

/* ------------------------------------------------ trunk activations and plans */

static void *be_alloc(size_t bytes) {
  void *p;
  CHECK_OK(F->alloc(be, bytes, &p));
  return p;
}

/* An activation on the backend with its values as plain NCHW host floats. */
typedef struct tact {
  graft_act a;
  void *buf;
  float *rows;
} tact;

static void tact_free(tact *t) {
  F->free(be, t->buf);
  free(t->rows);
  memset(t, 0, sizeof *t);
}

static size_t count_of(const graft_act *a) { return (size_t)a->n * a->c * a->h * a->w; }

static const char *layout_name(int layout) {
  static char buf[4][16];
  static int next;
  char *s = buf[next++ % 4];
  if (layout)
    snprintf(s, 16, "%dc", layout);
  else
    snprintf(s, 16, "nchw");
  return s;
}

/* Run a planned op on x into a fresh buffer of out's size; destroys the plan. */
static void *run_and_destroy(graft_plan *plan, const void *x, const graft_act *out) {
  void *y = be_alloc(out->bytes);
  CHECK_OK(F->plan_run(plan, x, y));
  F->plan_destroy(plan);
  return y;
}

/* act_to_rows: the activation as host rows [n, c*h*w] in NCHW order. */
static float *act_to_host(const graft_act *a, const void *buf) {
  graft_act out;
  graft_plan *plan;
  CHECK_OK(F->act_to_rows_plan(be, a, &out, &plan));
  size_t count = count_of(a);
  CHECK_MSG(out.n == a->n && out.c == a->c * a->h * a->w && out.h == 1 && out.w == 1 &&
                out.layout == GRAFT_LAYOUT_NCHW && out.bytes >= count * sizeof(float),
            "act_to_rows of [%d,%d,%d,%d] gave [%d,%d,%d,%d] layout %d", a->n, a->c, a->h, a->w,
            out.n, out.c, out.h, out.w, out.layout);
  void *y = run_and_destroy(plan, buf, &out);
  float *host = falloc(count);
  CHECK_OK(F->download(be, host, y, count * sizeof(float)));
  F->free(be, y);
  return host;
}

/* nchw_to_act from host data; checks that act_to_rows gives it back exactly. */
static tact act_from_host(int n, int c, int h, int w, const float *host, const char *what) {
  graft_act in = {n, c, h, w, GRAFT_LAYOUT_NCHW, (size_t)n * c * h * w * sizeof(float)};
  tact t = {0};
  void *x = be_alloc(in.bytes);
  CHECK_OK(F->upload(be, x, host, in.bytes));
  graft_plan *plan;
  CHECK_OK(F->nchw_to_act_plan(be, &in, &t.a, &plan));
  CHECK(t.a.n == n && t.a.c == c && t.a.h == h && t.a.w == w);
  t.buf = run_and_destroy(plan, x, &t.a);
  F->free(be, x);
  t.rows = act_to_host(&t.a, t.buf);
  char label[96];
  snprintf(label, sizeof label, "%s -> %s -> rows", what, layout_name(t.a.layout));
  check_exact("roundtrip", label, t.rows, host, count_of(&t.a));
  return t;
}

/* A convolution plan run on `in`; out->rows from act_to_rows. */
static tact conv_run(const tact *in, const graft_conv2d_params *p, const float *w,
                     const float *b) {
  tact t = {0};
  graft_plan *plan;
  CHECK_OK(F->conv2d_plan(be, p, &in->a, w, b, &t.a, &plan));
  int oh = graft_out_dim(in->a.h, p->kernel, p->stride, p->pad);
  int ow = graft_out_dim(in->a.w, p->kernel, p->stride, p->pad);
  CHECK_MSG(t.a.n == in->a.n && t.a.c == p->out_c && t.a.h == oh && t.a.w == ow,
            "conv output [%d,%d,%d,%d], want [%d,%d,%d,%d]", t.a.n, t.a.c, t.a.h, t.a.w,
            in->a.n, p->out_c, oh, ow);
  t.buf = run_and_destroy(plan, in->buf, &t.a);
  t.rows = act_to_host(&t.a, t.buf);
  return t;
}

/* The same values in a convolution's output layout (channel-blocked on the
 * oneDNN paths): a 1x1 convolution with identity weights and zero bias, exact
 * because every other tap multiplies by zero. Also checks the blocked reorder. */
static tact to_conv_layout(const tact *in, const char *what) {
  int c = in->a.c;
  float *w = calloc((size_t)c * c, sizeof(float)), *b = calloc((size_t)c, sizeof(float));
  if (!w || !b) exit(1);
  for (int i = 0; i < c; i++) w[(size_t)i * c + i] = 1.0f;
  graft_conv2d_params p = {c, c, 1, 1, 0, false};
  tact t = conv_run(in, &p, w, b);
  char label[96];
  snprintf(label, sizeof label, "%s -> 1x1 identity -> %s -> rows", what,
           layout_name(t.a.layout));
  check_exact("roundtrip", label, t.rows, in->rows, count_of(&t.a));
  free(w);
  free(b);
  return t;
}

/* ------------------------------------------------------------------ conv2d */

/* y = conv(x, w) + b in double, and mag = sum |x*w| + |b| per output. */
static void conv_ref(const float *x, int n, int c, int h, int w, const float *wt,
                     const float *b, int k, int r, int stride, int pad, double *y,
                     double *mag) {
  int oh = graft_out_dim(h, r, stride, pad), ow = graft_out_dim(w, r, stride, pad);
  for (int in = 0; in < n; in++)
    for (int ik = 0; ik < k; ik++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double s = b[ik], m = fabs((double)b[ik]);
          for (int ic = 0; ic < c; ic++)
            for (int ky = 0; ky < r; ky++) {
              int iy = oy * stride - pad + ky;
              if (iy < 0 || iy >= h) continue;
              const float *xr = x + (((size_t)in * c + ic) * h + iy) * w;
              const float *wr = wt + (((size_t)ik * c + ic) * r + ky) * r;
              for (int kx = 0; kx < r; kx++) {
                int ix = ox * stride - pad + kx;
                if (ix < 0 || ix >= w) continue;
                double t = (double)xr[ix] * (double)wr[kx];
                s += t;
                m += fabs(t);
              }
            }
          size_t o = (((size_t)in * k + ik) * oh + oy) * ow + ox;
          y[o] = s;
          mag[o] = m;
        }
}

typedef struct conv_case {
  const char *name;
  int n, c, h, w, k, r, stride, pad;
} conv_case;

static const conv_case conv_cases[] = {
    {"alexnet conv1 11x11/4 p2", 1, 3, 67, 67, 64, 11, 4, 2},
    {"alexnet conv1 11x11/4 p2 224", 1, 3, 224, 224, 64, 11, 4, 2},
    {"11x11/4 p2 batch 3", 3, 3, 35, 37, 16, 11, 4, 2},
    /* space to depth (engine/cpu/s2d.c): channels that pad a group, uneven sides */
    {"11x11/4 p2 20 out, uneven", 1, 3, 41, 46, 20, 11, 4, 2},
    {"9x9/3 p1 27 channels", 2, 3, 20, 23, 24, 9, 3, 1},
    {"5x5/2 p2 12 channels", 2, 3, 17, 19, 24, 5, 2, 2},
    {"5x5 p2", 3, 16, 15, 15, 48, 5, 1, 2},
    {"5x5 p2 odd", 1, 64, 13, 11, 32, 5, 1, 2},
    {"3x3 p1 64->128", 1, 64, 14, 14, 128, 3, 1, 1},
    {"3x3 p1 odd", 3, 16, 13, 11, 32, 3, 1, 1},
    {"3x3 p1 vgg conv1", 1, 3, 32, 32, 64, 3, 1, 1},
    {"3x3 p1 20->24", 2, 20, 9, 9, 24, 3, 1, 1},
    /* For graft's Winograd (engine/cpu/winograd.c): partial tiles of 2 and 4
     * on both sides, channels that do not fill a block of 8 or 16, several
     * tile blocks with a partial last one, pads 0 and 2, a 1x1 image, and
     * enough input channels for the GEMM to run in several passes. */
    {"3x3 p1 tiles 24->40", 2, 24, 30, 29, 40, 3, 1, 1},
    {"3x3 p1 12->20", 1, 12, 6, 5, 20, 3, 1, 1},
    {"3x3 p0", 1, 16, 9, 12, 16, 3, 1, 0},
    {"3x3 p2", 1, 8, 5, 6, 8, 3, 1, 2},
    {"3x3 p1 1x1 image", 3, 8, 1, 1, 8, 3, 1, 1},
    {"3x3 p1 512->32", 1, 512, 7, 6, 32, 3, 1, 1},
    /* and its F(4x4,5x5): AlexNet's second layer, partial tiles, pad 0 */
    {"5x5 p2 alexnet conv2", 2, 64, 27, 27, 192, 5, 1, 2},
    {"5x5 p2 tiles 24->40", 2, 24, 30, 29, 40, 5, 1, 2},
    {"5x5 p0", 1, 16, 9, 12, 16, 5, 1, 0},
    {"5x5 p2 1x1 image", 3, 8, 1, 1, 8, 5, 1, 2},
    {"1x1", 3, 20, 7, 9, 24, 1, 1, 0},
    {"1x1 64->16", 1, 64, 5, 5, 16, 1, 1, 0},
    {"3x3/2 p1", 3, 16, 15, 15, 32, 3, 2, 1},
    {"3x3/2 p0", 1, 8, 10, 10, 8, 3, 2, 0},
    {"5x5/2 p2", 1, 16, 11, 12, 16, 5, 2, 2},
};

static void test_conv(const conv_case *cc) {
  int oh = graft_out_dim(cc->h, cc->r, cc->stride, cc->pad);
  int ow = graft_out_dim(cc->w, cc->r, cc->stride, cc->pad);
  size_t nx = (size_t)cc->n * cc->c * cc->h * cc->w, ny = (size_t)cc->n * cc->k * oh * ow;
  double ws = 1.0 / sqrt((double)cc->c * cc->r * cc->r);
  float *x = frand(nx, -1, 1), *w = frand((size_t)cc->k * cc->c * cc->r * cc->r, -ws, ws);
  float *b = frand((size_t)cc->k, -0.1, 0.1);
  double *ref = dalloc(ny), *mag = dalloc(ny), *relu = dalloc(ny);
  conv_ref(x, cc->n, cc->c, cc->h, cc->w, w, b, cc->k, cc->r, cc->stride, cc->pad, ref, mag);
  for (size_t i = 0; i < ny; i++) relu[i] = ref[i] > 0 ? ref[i] : 0;

  /* A net feeds plain NCHW to its first convolution only (3 channels) and
   * blocked activations to the others; both inputs for every case except a
   * blocked 3-channel one, which no net makes (oneDNN's slow reference kernel). */
  tact in[2];
  memset(in, 0, sizeof in);
  in[0] = act_from_host(cc->n, cc->c, cc->h, cc->w, x, cc->name);
  int inputs = 1;
  if (cc->c >= 8) {
    in[1] = to_conv_layout(&in[0], cc->name);
    if (in[1].a.layout != in[0].a.layout) inputs = 2; /* the GEMM path stays plain */
  }
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < inputs; i++) {
      graft_conv2d_params p = {cc->c, cc->k, cc->r, cc->stride, cc->pad, r == 1};
      tact y = conv_run(&in[i], &p, w, b);
      char what[96];
      snprintf(what, sizeof what, "%s n%d%s %s->%s", cc->name, cc->n, r ? " relu" : "",
               layout_name(in[i].a.layout), layout_name(y.a.layout));
      check_close("conv2d", what, y.rows, r ? relu : ref, mag, ny, CONV_TOL);
      tact_free(&y);
    }
  tact_free(&in[0]);
  if (in[1].buf) tact_free(&in[1]);
  free(x);
  free(w);
  free(b);
  free(ref);
  free(mag);
  free(relu);
}

static void test_conv_errors(void) {
  float x[3 * 8 * 8] = {0}, w[4 * 2 * 9] = {0}, b[4] = {0};
  tact in = act_from_host(1, 3, 8, 8, x, "error case");
  graft_conv2d_params p = {2, 4, 3, 1, 1, false}; /* expects 2 channels, input has 3 */
  graft_act out;
  graft_plan *plan = NULL;
  graft_status s = F->conv2d_plan(be, &p, &in.a, w, b, &out, &plan);
  CHECK_MSG(s == GRAFT_ESHAPE, "conv2d_plan with the wrong channel count gave %s",
            graft_strerror(s));
  if (s == GRAFT_OK) F->plan_destroy(plan);
  tact_free(&in);
}

/* GRAFT_CPU_CONV=tuned: a layer's plan says it was timed (and, planned
 * again, that it was chosen earlier), and gives exactly the bits of the
 * path it names, planned on a backend forced onto that path: the tuning
 * only chooses, it computes nothing of its own. */
static void tuned_case(const char *name, int n, int c, int h, int w, int k, int r, int stride,
                       int pad, const char *timed_where) {
  float *x = frand((size_t)n * c * h * w, -1, 1), *wt = frand((size_t)k * c * r * r, -0.1, 0.1);
  float *b = frand((size_t)k, -0.1, 0.1);
  tact in = act_from_host(n, c, h, w, x, name), blocked = {0};
  if (c >= 8) blocked = to_conv_layout(&in, name);
  const tact *src = blocked.buf ? &blocked : &in;
  graft_conv2d_params p = {c, k, r, stride, pad, true};
  char how[2][256];
  tact y[2];
  for (int i = 0; i < 2; i++) {
    graft_plan *plan;
    CHECK_OK(F->conv2d_plan(be, &p, &src->a, wt, b, &y[i].a, &plan));
    F->plan_describe(plan, how[i], sizeof how[i]);
    y[i].buf = run_and_destroy(plan, src->buf, &y[i].a);
    y[i].rows = act_to_host(&y[i].a, y[i].buf);
  }
  printf("tuned %s: %s; again: %s\n", name, how[0], how[1]);
  /* timed where the backend line names a second path for this layer */
  const bool one = !timed_where || !strstr(graft_backend_describe(be), timed_where);
  CHECK_MSG(strstr(how[0], one ? "(tuned: the only candidate)" : "(tuned: fastest of"), "%s: %s",
            name, how[0]);
  CHECK_MSG(strstr(how[1], one ? "(tuned: the only candidate)" : "(tuned earlier: fastest of"),
            "%s: %s", name, how[1]);
  size_t count = count_of(&y[0].a);
  check_exact("tuned", "planned again", y[1].rows, y[0].rows, count);
  const char *path = strstr(how[0], "F(2x2")   ? "graft-winograd-f2"
                     : strstr(how[0], "F(4x4") ? "graft-winograd-f4"
                     : strstr(how[0], "F(6x6") ? "graft-winograd-f6"
                     : strstr(how[0], "wino")  ? "dnnl-winograd"
                                               : "direct";
  graft_backend_options o = {.threads = be->threads};
  CHECK_OK(graft_cpu_conv_parse(path, &o.cpu_conv));
  graft_backend *forced = NULL;
  CHECK_OK(graft_cpu_backend_create(&o, &forced));
  graft_plan *plan;
  graft_act out;
  CHECK_OK(forced->iface->conv2d_plan(forced, &p, &src->a, wt, b, &out, &plan));
  void *yb = be_alloc(out.bytes);
  CHECK_OK(forced->iface->plan_run(plan, src->buf, yb));
  forced->iface->plan_destroy(plan);
  float *rows = act_to_host(&out, yb);
  char label[64];
  snprintf(label, sizeof label, "%s vs %s", name, path);
  check_exact("tuned", label, rows, y[0].rows, count);
  F->free(be, yb);
  free(rows);
  graft_backend_destroy(forced);
  for (int i = 0; i < 2; i++) tact_free(&y[i]);
  if (blocked.buf) tact_free(&blocked);
  tact_free(&in);
  free(x), free(wt), free(b);
}

/* ---------------------------------------------------------------- pooling */

static void maxpool_check(const char *name, const tact *in, int kernel, int stride) {
  const graft_act *a = &in->a;
  int oh = graft_out_dim(a->h, kernel, stride, 0), ow = graft_out_dim(a->w, kernel, stride, 0);
  graft_pool2d_params p = {kernel, stride};
  graft_act out;
  graft_plan *plan;
  CHECK_OK(F->maxpool2d_plan(be, &p, a, &out, &plan));
  CHECK_MSG(out.n == a->n && out.c == a->c && out.h == oh && out.w == ow,
            "maxpool output [%d,%d,%d,%d], want [%d,%d,%d,%d]", out.n, out.c, out.h, out.w,
            a->n, a->c, oh, ow);
  void *y = run_and_destroy(plan, in->buf, &out);
  float *got = act_to_host(&out, y);
  size_t ny = (size_t)a->n * a->c * oh * ow;
  float *want = falloc(ny);
  for (int nc = 0; nc < a->n * a->c; nc++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const float *src = in->rows + (size_t)nc * a->h * a->w;
        float m = src[oy * stride * a->w + ox * stride];
        for (int ky = 0; ky < kernel; ky++)
          for (int kx = 0; kx < kernel; kx++)
            m = fmaxf(m, src[(oy * stride + ky) * a->w + ox * stride + kx]);
        want[((size_t)nc * oh + oy) * ow + ox] = m;
      }
  char what[96];
  snprintf(what, sizeof what, "%s %d/%d [%d,%d,%d,%d] %s->%s", name, kernel, stride, a->n,
           a->c, a->h, a->w, layout_name(a->layout), layout_name(out.layout));
  check_exact("maxpool", what, got, want, ny);
  F->free(be, y);
  free(got);
  free(want);
}

/* PyTorch's bins, computed here in floating point rather than the library's
 * integer form: [floor(i*in/out), ceil((i+1)*in/out)). */
static void avg_bin(int i, int in, int out, int *lo, int *hi) {
  *lo = (int)floor((double)i * in / out);
  *hi = (int)ceil((double)(i + 1) * in / out);
}

static void avgpool_check(const char *name, const tact *in, int oh, int ow) {
  const graft_act *a = &in->a;
  graft_adaptive_avgpool_params p = {oh, ow};
  graft_act out;
  graft_plan *plan;
  CHECK_OK(F->adaptive_avgpool2d_plan(be, &p, a, &out, &plan));
  CHECK_MSG(out.n == a->n && out.c == a->c && out.h == oh && out.w == ow,
            "avgpool output [%d,%d,%d,%d], want [%d,%d,%d,%d]", out.n, out.c, out.h, out.w,
            a->n, a->c, oh, ow);
  void *y = run_and_destroy(plan, in->buf, &out);
  float *got = act_to_host(&out, y);
  size_t ny = (size_t)a->n * a->c * oh * ow;
  double *want = dalloc(ny), *mag = dalloc(ny);
  for (int nc = 0; nc < a->n * a->c; nc++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        int y0, y1, x0, x1;
        avg_bin(oy, a->h, oh, &y0, &y1);
        avg_bin(ox, a->w, ow, &x0, &x1);
        double s = 0, m = 0;
        for (int iy = y0; iy < y1; iy++)
          for (int ix = x0; ix < x1; ix++) {
            double v = in->rows[((size_t)nc * a->h + iy) * a->w + ix];
            s += v;
            m += fabs(v);
          }
        size_t o = ((size_t)nc * oh + oy) * ow + ox;
        want[o] = s / ((y1 - y0) * (x1 - x0));
        mag[o] = m / ((y1 - y0) * (x1 - x0)) + 1e-30;
      }
  char what[96];
  snprintf(what, sizeof what, "%s [%d,%d,%d,%d]->%dx%d %s->%s", name, a->n, a->c, a->h, a->w,
           oh, ow, layout_name(a->layout), layout_name(out.layout));
  check_close("avgpool", what, got, want, mag, ny, POOL_TOL);
  F->free(be, y);
  free(got);
  free(want);
  free(mag);
}

typedef struct pool_case {
  int n, c, h, w;
  int a, b; /* maxpool: kernel, stride; avgpool: out_h, out_w */
} pool_case;

static const pool_case maxpool_cases[] = {
    {2, 20, 13, 13, 3, 2}, {1, 64, 55, 55, 3, 2}, {3, 20, 7, 9, 3, 2}, {2, 20, 7, 9, 2, 2},
    {1, 16, 14, 14, 2, 2}, {1, 8, 13, 13, 2, 2},  {2, 3, 9, 8, 3, 2},
};

static const pool_case avgpool_cases[] = {
    {2, 20, 13, 13, 6, 6}, {1, 16, 14, 14, 7, 7}, {2, 20, 6, 6, 6, 6}, {1, 20, 3, 3, 7, 7},
    {3, 8, 5, 4, 7, 7},    {1, 20, 8, 10, 6, 6},  {2, 16, 7, 7, 1, 1}, {1, 20, 1, 1, 7, 7},
};

static void test_pools(void) {
  for (size_t i = 0; i < sizeof maxpool_cases / sizeof maxpool_cases[0]; i++) {
    const pool_case *pc = &maxpool_cases[i];
    float *x = frand((size_t)pc->n * pc->c * pc->h * pc->w, -1, 1);
    tact plain = act_from_host(pc->n, pc->c, pc->h, pc->w, x, "maxpool input");
    tact blocked = to_conv_layout(&plain, "maxpool input");
    maxpool_check("", &plain, pc->a, pc->b);
    maxpool_check("after conv", &blocked, pc->a, pc->b);
    tact_free(&plain);
    tact_free(&blocked);
    free(x);
  }
  for (size_t i = 0; i < sizeof avgpool_cases / sizeof avgpool_cases[0]; i++) {
    const pool_case *pc = &avgpool_cases[i];
    float *x = frand((size_t)pc->n * pc->c * pc->h * pc->w, -1, 1);
    tact plain = act_from_host(pc->n, pc->c, pc->h, pc->w, x, "avgpool input");
    tact blocked = to_conv_layout(&plain, "avgpool input");
    avgpool_check("", &plain, pc->a, pc->b);
    avgpool_check("after conv", &blocked, pc->a, pc->b);
    tact_free(&plain);
    tact_free(&blocked);
    free(x);
  }
  /* AlexNet's shape of trunk on a small image: conv+ReLU -> maxpool -> avgpool,
   * each checked against the previous op's actual output. */
  const int n = 2, c = 3, h = 67, w = 67, k = 20;
  float *x = frand((size_t)n * c * h * w, -1, 1), *wt = frand((size_t)k * c * 121, -0.1, 0.1);
  float *b = frand((size_t)k, -0.1, 0.1);
  tact in = act_from_host(n, c, h, w, x, "alexnet-like input");
  graft_conv2d_params p = {c, k, 11, 4, 2, true};
  tact y = conv_run(&in, &p, wt, b);
  maxpool_check("conv+relu", &y, 3, 2);
  graft_pool2d_params mp = {3, 2};
  graft_act pooled;
  graft_plan *plan;
  CHECK_OK(F->maxpool2d_plan(be, &mp, &y.a, &pooled, &plan));
  tact z = {pooled, run_and_destroy(plan, y.buf, &pooled), NULL};
  z.rows = act_to_host(&z.a, z.buf);
  avgpool_check("conv+relu+maxpool", &z, 6, 6);
  avgpool_check("conv+relu+maxpool", &z, 7, 7);
  tact_free(&z);
  tact_free(&y);
  tact_free(&in);
  free(x);
  free(wt);
  free(b);
}

/* ------------------------------------------------------------------ linear */

/* L = sum r * act(x w^T + b), in double. */
static double linear_loss(int n, int in, int out, bool relu, const double *x, const double *w,
                          const double *b, const double *r) {
  double L = 0;
  for (int i = 0; i < n; i++)
    for (int o = 0; o < out; o++) {
      double s = b[o];
      for (int j = 0; j < in; j++) s += x[(size_t)i * in + j] * w[(size_t)o * in + j];
      if (relu && s < 0) s = 0;
      L += r[(size_t)i * out + o] * s;
    }
  return L;
}

static double *to_double(const float *x, size_t n) {
  double *d = dalloc(n);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* Central difference of linear_loss in coordinate i of v (one of x, w, b). */
static double linear_fd(int n, int in, int out, bool relu, double *x, double *w, double *b,
                        const double *r, double *v, size_t i) {
  const double h = 1e-7; /* L is piecewise linear: small h keeps away from ReLU kinks */
  double keep = v[i];
  v[i] = keep + h;
  double lp = linear_loss(n, in, out, relu, x, w, b, r);
  v[i] = keep - h;
  double lm = linear_loss(n, in, out, relu, x, w, b, r);
  v[i] = keep;
  return (lp - lm) / (2 * h);
}

static void test_linear(int n, int in, int out, bool relu) {
  graft_linear_params p = {in, out, relu};
  size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
  double ws = 1.0 / sqrt(in);
  float *x = frand(nx, -1, 1), *w = frand(nw, -ws, ws), *b = frand(out, -0.2, 0.2);
  float *y = falloc(ny), *dy = frand(ny, -1, 1);
  char what[96];

  /* forward */
  fill_nan(y, ny);
  CHECK_OK(F->linear_forward(be, &p, n, x, w, b, y));
  double *ref = dalloc(ny), *mag = dalloc(ny);
  for (int i = 0; i < n; i++)
    for (int o = 0; o < out; o++) {
      double s = b[o], m = fabs((double)b[o]);
      for (int j = 0; j < in; j++) {
        double t = (double)x[(size_t)i * in + j] * w[(size_t)o * in + j];
        s += t;
        m += fabs(t);
      }
      ref[(size_t)i * out + o] = relu && s < 0 ? 0 : s;
      mag[(size_t)i * out + o] = m;
    }
  snprintf(what, sizeof what, "forward n%d %dx%d%s%s", n, in, out, relu ? " relu" : "",
           n == 1 ? " (gemv)" : "");
  check_close("linear", what, y, ref, mag, ny, DOT_TOL);

  /* backward vs double: dy is r through the ReLU, as the engine feeds it */
  double *r = to_double(dy, ny);
  if (relu) CHECK_OK(F->relu_backward(be, ny, y, dy));
  float *dx = falloc(nx), *dw = falloc(nw), *db = falloc(out);
  fill_nan(dx, nx);
  fill_nan(dw, nw); /* "overwritten", never accumulated */
  fill_nan(db, out);
  CHECK_OK(F->linear_backward(be, &p, n, dy, x, w, dx, dw, db));
  double *rdx = dalloc(nx), *mdx = dalloc(nx), *rdw = dalloc(nw), *mdw = dalloc(nw);
  double *rdb = dalloc(out), *mdb = dalloc(out);
  for (int o = 0; o < out; o++) {
    double s = 0, m = 0;
    for (int i = 0; i < n; i++) {
      s += dy[(size_t)i * out + o];
      m += fabs((double)dy[(size_t)i * out + o]);
    }
    rdb[o] = s;
    mdb[o] = m + 1e-30;
    for (int j = 0; j < in; j++) {
      double sw = 0, mw = 0;
      for (int i = 0; i < n; i++) {
        double t = (double)dy[(size_t)i * out + o] * x[(size_t)i * in + j];
        sw += t;
        mw += fabs(t);
      }
      rdw[(size_t)o * in + j] = sw;
      mdw[(size_t)o * in + j] = mw + 1e-30;
    }
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < in; j++) {
      double s = 0, m = 0;
      for (int o = 0; o < out; o++) {
        double t = (double)dy[(size_t)i * out + o] * w[(size_t)o * in + j];
        s += t;
        m += fabs(t);
      }
      rdx[(size_t)i * in + j] = s;
      mdx[(size_t)i * in + j] = m + 1e-30;
    }
  snprintf(what, sizeof what, "backward n%d %dx%d%s dw", n, in, out, relu ? " relu" : "");
  check_close("linear", what, dw, rdw, mdw, nw, DOT_TOL);
  snprintf(what, sizeof what, "backward n%d %dx%d%s db", n, in, out, relu ? " relu" : "");
  check_close("linear", what, db, rdb, mdb, out, DOT_TOL);
  snprintf(what, sizeof what, "backward n%d %dx%d%s dx", n, in, out, relu ? " relu" : "");
  check_close("linear", what, dx, rdx, mdx, nx, DOT_TOL);

  /* dx NULL: dw and db alone, the same values */
  float *dw2 = falloc(nw), *db2 = falloc(out);
  fill_nan(dw2, nw);
  fill_nan(db2, out);
  CHECK_OK(F->linear_backward(be, &p, n, dy, x, w, NULL, dw2, db2));
  snprintf(what, sizeof what, "backward n%d %dx%d%s dx=NULL dw", n, in, out, relu ? " relu" : "");
  check_close("linear", what, dw2, rdw, mdw, nw, DOT_TOL);
  snprintf(what, sizeof what, "backward n%d %dx%d%s dx=NULL db", n, in, out, relu ? " relu" : "");
  check_close("linear", what, db2, rdb, mdb, out, DOT_TOL);

  /* finite differences of L = sum r * y in double: all of b, a sample of w and x */
  double *xd = to_double(x, nx), *wd = to_double(w, nw), *bd = to_double(b, out);
  enum { SAMPLES = 24 };
  size_t cap = (size_t)out + 2 * SAMPLES, m = 0;
  float *got = falloc(cap);
  double *fd = dalloc(cap);
  for (int o = 0; o < out; o++, m++) {
    got[m] = db[o];
    fd[m] = linear_fd(n, in, out, relu, xd, wd, bd, r, bd, o);
  }
  for (int s = 0; s < SAMPLES; s++, m++) {
    size_t i = graft_rng_below(&rng, nw);
    got[m] = dw[i];
    fd[m] = linear_fd(n, in, out, relu, xd, wd, bd, r, wd, i);
  }
  for (int s = 0; s < SAMPLES; s++, m++) {
    size_t i = graft_rng_below(&rng, nx);
    got[m] = dx[i];
    fd[m] = linear_fd(n, in, out, relu, xd, wd, bd, r, xd, i);
  }
  snprintf(what, sizeof what, "backward n%d %dx%d%s vs finite diff", n, in, out,
           relu ? " relu" : "");
  check_close("linear", what, got, fd, NULL, m, FD_TOL);

  free(x), free(w), free(b), free(y), free(dy), free(ref), free(mag), free(r);
  free(dx), free(dw), free(db), free(rdx), free(mdx), free(rdw), free(mdw), free(rdb), free(mdb);
  free(dw2), free(db2), free(xd), free(wd), free(bd), free(got), free(fd);
}

static void test_relu_backward(size_t count) {
  float *y = frand(count, -1, 1), *dy = frand(count, -1, 1), *want = falloc(count);
  /* the edges: zeros of both signs, the smallest positive, NaN */
  const float edge[] = {0.0f, -0.0f, 1e-45f, -1e-45f, NAN, 1.0f};
  for (size_t i = 0; i < sizeof edge / sizeof edge[0] && i < count; i++) y[i * 3 % count] = edge[i];
  for (size_t i = 0; i < count; i++) want[i] = y[i] > 0 ? dy[i] : 0.0f;
  CHECK_OK(F->relu_backward(be, count, y, dy));
  char what[64];
  snprintf(what, sizeof what, "count %zu", count);
  check_exact("relu_bwd", what, dy, want, count);
  free(y), free(dy), free(want);
}

/* ----------------------------------------------------------------- dropout */

static void test_dropout(size_t count, float p, uint64_t seed, uint64_t offset) {
  float *x = frand(count, -1, 1), *want = falloc(count), *dy = frand(count, -1, 1);
  float *dwant = falloc(count);
  uint8_t *keep = graft_test_alloc(count);
  memset(keep, 0xAB, count);
  const float scale = 1.0f / (1.0f - p);
  size_t kept = 0, bad_mask = 0;
  double sum_x = 0, sum_x2 = 0, sum_y = 0;
  for (size_t i = 0; i < count; i++) {
    bool k = graft_rng_uniform(seed, offset + i) >= p;
    want[i] = k ? x[i] * scale : 0.0f;
    dwant[i] = k ? dy[i] * scale : 0.0f;
    sum_x += fabs((double)x[i]);
    sum_x2 += (double)x[i] * x[i];
  }
  CHECK_OK(F->dropout_forward(be, count, p, seed, offset, x, keep));
  for (size_t i = 0; i < count; i++) {
    bool k = graft_rng_uniform(seed, offset + i) >= p;
    if (keep[i] != (uint8_t)k) bad_mask++;
    kept += keep[i] != 0;
    sum_y += fabs((double)x[i]);
  }
  char what[96];
  snprintf(what, sizeof what, "p=%g count %zu seed %llu offset %llu", p, count,
           (unsigned long long)seed, (unsigned long long)offset);
  CHECK_MSG(bad_mask == 0, "dropout %s: %zu keep flags differ from the rule", what, bad_mask);
  check_exact("dropout", what, x, want, count);
  CHECK_OK(F->dropout_backward(be, count, p, keep, dy));
  check_exact("drop_bwd", what, dy, dwant, count);
  double frac = (double)kept / count, sigma = sqrt((double)p * (1 - p) / count);
  double dev = sigma > 0 ? fabs(frac - (1 - p)) / sigma : fabs(frac - 1) * 1e30;
  /* E|y| = E|x|: the scale makes dropout an identity in expectation; the
   * ratio's sigma from Var(keep * scale * |x|) = scale E[x^2] - E|x|^2. */
  double ratio = sum_y / sum_x, ex = sum_x / count, ex2 = sum_x2 / count;
  double rsigma = sqrt(fmax((double)scale * ex2 - ex * ex, 0) / count) / ex;
  printf("%-9s %-46s kept %.5f (want %.3f, %.2f sigma)  E|y|/E|x| %.4f (%.2f sigma)\n",
         "dropout", what, frac, 1 - p, dev, ratio,
         rsigma > 0 ? fabs(ratio - 1) / rsigma : 0.0);
  if (count >= 100000) {
    CHECK_MSG(dev <= 5, "dropout %s: kept fraction %.5f is %.1f sigma from %.3f", what, frac, dev,
              1 - p);
    CHECK_MSG(fabs(ratio - 1) <= 5 * rsigma + 1e-12, "dropout %s: E|y|/E|x| = %.5f", what,
              ratio);
  }
  if (p == 0) CHECK_MSG(kept == count, "dropout p=0 dropped %zu elements", count - kept);
  free(x), free(want), free(dy), free(dwant), free(keep);
}

/* ------------------------------------------------------ softmax and the loss */

static double row_lse(const double *row, int k) {
  double m = row[0], s = 0;
  for (int c = 1; c < k; c++) m = fmax(m, row[c]);
  for (int c = 0; c < k; c++) s += exp(row[c] - m);
  return m + log(s);
}

static float *logits_rand(int n, int k, double spread, double shift) {
  float *x = falloc((size_t)n * k);
  for (size_t i = 0; i < (size_t)n * k; i++) x[i] = (float)(shift + uni(-spread, spread));
  return x;
}

static void test_softmax(int n, int k, double spread, double shift) {
  float *x = logits_rand(n, k, spread, shift), *y = falloc((size_t)n * k);
  double *ref = dalloc((size_t)n * k), *xd = to_double(x, (size_t)n * k), *scale = dalloc((size_t)n * k);
  for (int i = 0; i < n; i++) {
    double lse = row_lse(xd + (size_t)i * k, k);
    for (int c = 0; c < k; c++) {
      ref[(size_t)i * k + c] = exp(xd[(size_t)i * k + c] - lse);
      scale[(size_t)i * k + c] = ref[(size_t)i * k + c] + 1e-38; /* element-relative */
    }
  }
  fill_nan(y, (size_t)n * k);
  CHECK_OK(F->softmax_forward(be, n, k, x, y));
  char what[96];
  snprintf(what, sizeof what, "n%d k%d logits %g+-%g", n, k, shift, spread);
  check_close("softmax", what, y, ref, scale, (size_t)n * k, EXACT_TOL);
  double worst = 0;
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int c = 0; c < k; c++) s += y[(size_t)i * k + c];
    worst = fmax(worst, fabs(s - 1));
  }
  printf("%-9s %-46s max |sum(row) - 1| %.2e\n", "softmax", what, worst);
  CHECK_MSG(worst <= 1e-5, "softmax %s: a row sums to 1 %+g", what, worst);
  free(x), free(y), free(ref), free(xd), free(scale);
}

static void test_cross_entropy(int n, int k, double spread) {
  size_t nk = (size_t)n * k;
  float *x = logits_rand(n, k, spread, 0), *loss = falloc(n), *dl = falloc(nk);
  int32_t *labels = graft_test_alloc((size_t)n * sizeof(int32_t));
  for (int i = 0; i < n; i++) labels[i] = (int32_t)graft_rng_below(&rng, (uint64_t)k);
  labels[0] = k - 1; /* the edges of [0, k) */
  if (n > 1) labels[1] = 0;
  double *xd = to_double(x, nk), *rl = dalloc(n), *rg = dalloc(nk), *fd = dalloc(nk);
  double *lscale = dalloc(n), *gscale = dalloc(nk);
  for (int i = 0; i < n; i++) {
    double *row = xd + (size_t)i * k;
    double lse = row_lse(row, k);
    rl[i] = lse - row[labels[i]];
    lscale[i] = fmax(fabs(rl[i]), 1.0);
    for (int c = 0; c < k; c++) {
      rg[(size_t)i * k + c] = (exp(row[c] - lse) - (c == labels[i])) / n;
      gscale[(size_t)i * k + c] = fabs(rg[(size_t)i * k + c]) + 1e-30;
      /* d mean(loss) / d x[i][c]: only row i's loss moves */
      const double h = 1e-5;
      double keep = row[c];
      row[c] = keep + h;
      double lp = row_lse(row, k) - row[labels[i]];
      row[c] = keep - h;
      double lm = row_lse(row, k) - row[labels[i]];
      row[c] = keep;
      fd[(size_t)i * k + c] = (lp - lm) / (2 * h) / n;
    }
  }
  fill_nan(loss, n);
  fill_nan(dl, nk);
  CHECK_OK(F->cross_entropy(be, n, k, x, labels, loss, dl));
  char what[96];
  snprintf(what, sizeof what, "n%d k%d loss", n, k);
  check_close("xent", what, loss, rl, lscale, n, EXACT_TOL);
  snprintf(what, sizeof what, "n%d k%d dlogits", n, k);
  check_close("xent", what, dl, rg, gscale, nk, EXACT_TOL);
  snprintf(what, sizeof what, "n%d k%d dlogits vs finite diff", n, k);
  check_close("xent", what, dl, fd, NULL, nk, FD_TOL);
  /* dlogits NULL: the loss alone */
  fill_nan(loss, n);
  CHECK_OK(F->cross_entropy(be, n, k, x, labels, loss, NULL));
  snprintf(what, sizeof what, "n%d k%d loss, dlogits=NULL", n, k);
  check_close("xent", what, loss, rl, lscale, n, EXACT_TOL);
  /* labels outside [0, k) */
  const int32_t bad[] = {-1, k, k + 1000, INT32_MIN};
  for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
    int32_t saved = labels[n - 1];
    labels[n - 1] = bad[j];
    graft_clear_detail();
    graft_status s = F->cross_entropy(be, n, k, x, labels, loss, dl);
    CHECK_MSG(s == GRAFT_ERANGE && graft_detail()[0], "label %d with k=%d gave %s (\"%s\")",
              bad[j], k, graft_strerror(s), graft_detail());
    labels[n - 1] = saved;
  }
  free(x), free(loss), free(dl), free(labels), free(xd), free(rl), free(rg), free(fd);
  free(lscale), free(gscale);
}

/* ---------------------------------------------------------------------- sgd */

static void test_sgd(size_t count, float lr, float mu, float wd) {
  float *param = frand(count, -1, 1), *buf = falloc(count);
  float *want_p = falloc(count), *want_b = falloc(count);
  double *dp = dalloc(count), *db = dalloc(count), *scale = dalloc(count);
  fill_nan(buf, count); /* the first step must not read buf */
  for (int step = 0; step < 4; step++) {
    graft_sgd_params s = {lr, mu, wd, step == 0};
    float *grad = frand(count, -1, 1);
    for (size_t i = 0; i < count; i++) {
      /* PyTorch's float formula, in its order */
      float g = grad[i];
      if (wd != 0.0f) g = g + wd * param[i];
      float b = s.first ? g : mu * buf[i] + g;
      want_b[i] = b;
      want_p[i] = param[i] - lr * b;
      /* the same in double from the same float state */
      double gd = (double)grad[i] + (double)wd * param[i];
      db[i] = s.first ? gd : (double)mu * buf[i] + gd;
      dp[i] = (double)param[i] - (double)lr * db[i];
      /* each float rounding is relative to the terms it adds */
      scale[i] = fabs((double)param[i]) +
                 (double)lr * (fabs((double)grad[i]) + fabs((double)wd * param[i]) +
                               (s.first ? 0 : fabs((double)mu * buf[i]))) +
                 1e-30;
    }
    CHECK_OK(F->sgd_step(be, count, &s, param, grad, buf));
    char what[96];
    snprintf(what, sizeof what, "count %zu lr %g mu %g wd %g step %d%s param", count, lr, mu, wd,
             step, s.first ? " (first)" : "");
    check_exact("sgd", what, param, want_p, count);
    check_close("sgd", what, param, dp, scale, count, EXACT_TOL);
    snprintf(what, sizeof what, "count %zu lr %g mu %g wd %g step %d%s buf", count, lr, mu, wd,
             step, s.first ? " (first)" : "");
    check_exact("sgd", what, buf, want_b, count);
    free(grad);
  }
  free(param), free(buf), free(want_p), free(want_b), free(dp), free(db), free(scale);
}

/* -------------------------------------- a two-layer classifier, end to end by FD */

/* Linear(37,19)+ReLU -> Dropout(p) -> Linear(19,5) -> mean cross-entropy, the
 * gradients from the backend's ops chained as engine/train.c chains them,
 * against central differences of the same loss in double (same mask). */
enum { HN = 4, HIN = 37, HMID = 19, HK = 5 };

static double classifier_loss(const double *x, const double *w1, const double *b1,
                              const double *w2, const double *b2, const uint8_t *keep,
                              double scale, const int32_t *labels) {
  double L = 0, h[HMID], z[HK];
  for (int i = 0; i < HN; i++) {
    for (int o = 0; o < HMID; o++) {
      double s = b1[o];
      for (int j = 0; j < HIN; j++) s += x[i * HIN + j] * w1[o * HIN + j];
      h[o] = s > 0 && keep[i * HMID + o] ? s * scale : 0;
    }
    for (int c = 0; c < HK; c++) {
      double s = b2[c];
      for (int o = 0; o < HMID; o++) s += h[o] * w2[c * HMID + o];
      z[c] = s;
    }
    L += row_lse(z, HK) - z[labels[i]];
  }
  return L / HN;
}

static void test_classifier_fd(float p) {
  float *x = frand(HN * HIN, 0, 2), *w1 = frand(HMID * HIN, -0.3, 0.3);
  float *b1 = frand(HMID, -0.2, 0.2), *w2 = frand(HK * HMID, -0.5, 0.5), *b2 = frand(HK, -0.2, 0.2);
  int32_t labels[HN] = {0, 4, 2, 2};
  float h[HN * HMID], z[HN * HK], loss[HN], dz[HN * HK], dh[HN * HMID];
  float dw1[HMID * HIN], db1[HMID], dw2[HK * HMID], db2[HK];
  uint8_t keep[HN * HMID];
  graft_linear_params l1 = {HIN, HMID, true}, l2 = {HMID, HK, false};
  const uint64_t seed = 77, offset = 1000;
  CHECK_OK(F->linear_forward(be, &l1, HN, x, w1, b1, h));
  CHECK_OK(F->dropout_forward(be, HN * HMID, p, seed, offset, h, keep));
  CHECK_OK(F->linear_forward(be, &l2, HN, h, w2, b2, z));
  CHECK_OK(F->cross_entropy(be, HN, HK, z, labels, loss, dz));
  CHECK_OK(F->linear_backward(be, &l2, HN, dz, h, w2, dh, dw2, db2));
  CHECK_OK(F->dropout_backward(be, HN * HMID, p, keep, dh));
  CHECK_OK(F->relu_backward(be, HN * HMID, h, dh));
  CHECK_OK(F->linear_backward(be, &l1, HN, dh, x, w1, NULL, dw1, db1));

  double *xd = to_double(x, HN * HIN), *w1d = to_double(w1, HMID * HIN), *b1d = to_double(b1, HMID);
  double *w2d = to_double(w2, HK * HMID), *b2d = to_double(b2, HK);
  const double scale = 1.0f / (1.0f - p); /* the op's float scale */
  double L = classifier_loss(xd, w1d, b1d, w2d, b2d, keep, scale, labels), Lf = 0;
  for (int i = 0; i < HN; i++) Lf += loss[i];
  Lf /= HN;
  struct {
    const char *name;
    double *v;
    const float *grad;
    int count;
  } params[] = {{"dw1", w1d, dw1, HMID * HIN}, {"db1", b1d, db1, HMID},
                {"dw2", w2d, dw2, HK * HMID},  {"db2", b2d, db2, HK}};
  char what[96];
  for (size_t t = 0; t < sizeof params / sizeof params[0]; t++) {
    double *fd = dalloc(params[t].count);
    for (int i = 0; i < params[t].count; i++) {
      const double eps = 1e-6;
      double keepv = params[t].v[i];
      params[t].v[i] = keepv + eps;
      double lp = classifier_loss(xd, w1d, b1d, w2d, b2d, keep, scale, labels);
      params[t].v[i] = keepv - eps;
      double lm = classifier_loss(xd, w1d, b1d, w2d, b2d, keep, scale, labels);
      params[t].v[i] = keepv;
      fd[i] = (lp - lm) / (2 * eps);
    }
    snprintf(what, sizeof what, "p=%g %s vs finite diff", p, params[t].name);
    check_close("classifier", what, params[t].grad, fd, NULL, params[t].count, FD_TOL);
    free(fd);
  }
  snprintf(what, sizeof what, "p=%g mean loss", p);
  float lf = (float)Lf;
  check_close("classifier", what, &lf, &L, NULL, 1, FD_TOL);
  free(x), free(w1), free(b1), free(w2), free(b2), free(xd), free(w1d), free(b1d), free(w2d), free(b2d);
}

/* -------------------------------------------------------------------- main */

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep FAIL lines beside their case */
  const graft_backend_options o = graft_test_backend_options();
  graft_status made = graft_cpu_backend_create(&o, &be);
  if (made == GRAFT_ENODEV) graft_test_skip("%s", graft_detail()); /* graft-winograd, no AVX2 */
  CHECK_OK(made);
  F = be->iface;
  printf("backend: %s (convolution path %s)\n", graft_backend_describe(be),
         graft_cpu_conv_name(o.cpu_conv));
  { /* bf16 is the GPU's: the CPU refuses it, saying so in one line */
    graft_backend_options b = o;
    graft_backend *none = NULL;
    b.precision = GRAFT_PRECISION_BF16;
    graft_status s = graft_cpu_backend_create(&b, &none);
    CHECK_MSG(s == GRAFT_EUNSUPPORTED && !none && strstr(graft_detail(), "bf16") &&
                  !strchr(graft_detail(), '\n'),
              "bf16 on the CPU: %s: %s", graft_strerror(s), graft_detail());
    printf("bf16 refused: %s\n", graft_detail());
    graft_clear_detail();
  }

  for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) test_conv(&conv_cases[i]);
  test_conv_errors();
  if (o.cpu_conv == GRAFT_CPU_CONV_TUNED) {
    tuned_case("3x3 64->64 @20x20", 1, 64, 20, 20, 64, 3, 1, 1, "tuned per layer");
    tuned_case("5x5 16->24 @13x12", 2, 16, 13, 12, 24, 5, 1, 2, "graft Winograd");
    tuned_case("11x11/4 3->40 @59x61", 1, 3, 59, 61, 40, 11, 4, 2, "graft Winograd");
    tuned_case("3x3/2 8->8 @9x9", 1, 8, 9, 9, 8, 3, 2, 1, NULL); /* oneDNN direct alone */
  }
  test_pools();

  const int lin[][3] = {{1, 37, 19}, {4, 37, 19}, {7, 37, 19},
                        {1, 256, 64}, {4, 256, 64}, {7, 256, 64}};
  for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
    for (int relu = 0; relu < 2; relu++) test_linear(lin[i][0], lin[i][1], lin[i][2], relu);
  test_relu_backward(17);
  test_relu_backward(100003);

  test_dropout(1u << 20, 0.5f, 1234, 0);
  test_dropout(1u << 20, 0.1f, 99, 777777);
  test_dropout(1000003, 0.0f, 5, 3);
  test_dropout(17, 0.5f, 1234, 5); /* the serial loop, and the offset: a slice of the first */
  test_dropout(4096, 0.9f, 3, 0);

  test_softmax(1, 2, 3, 0);
  test_softmax(4, 10, 5, 0);
  test_softmax(7, 1000, 8, 0);
  test_softmax(3, 10, 40, 1000); /* large logits: needs the max subtracted */
  test_softmax(2, 5, 400, 0);    /* some probabilities underflow to 0 */
  test_cross_entropy(1, 2, 3);
  test_cross_entropy(5, 10, 4);
  test_cross_entropy(8, 1000, 6);
  test_cross_entropy(3, 7, 60);

  test_sgd(1000, 0.01f, 0.9f, 0.0f);
  test_sgd(1000, 0.01f, 0.9f, 5e-4f);
  test_sgd(100003, 0.1f, 0.9f, 1e-2f);
  test_sgd(7, 0.5f, 0.0f, 0.0f);

  test_classifier_fd(0.5f);
  test_classifier_fd(0.1f);
  test_classifier_fd(0.0f);

  graft_backend_destroy(be);
  return graft_test_finish("cpu_ops");
}
