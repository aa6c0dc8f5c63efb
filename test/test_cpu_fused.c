/* The CPU backend's own kernels and the net paths that use them:
 *  - linear_backward_sgd (engine/cpu/linear_sgd.c), over several steps, against
 *    a double-precision reference of linear_backward then sgd_step computed
 *    from the same float state, and against the unfused float ops; both of
 *    its paths (batches up to 8, and larger); the generic and AVX2 kernels
 *    give the same bits, and so do teams of 1 and 2 threads;
 *  - linear_forward_rows (engine/cpu/linear_rows.c) against double, and each
 *    row's bits the same in groups of any size (OpenBLAS's linear_forward is
 *    reported beside it, not held to that);
 *  - linear_forward_cols (engine/cpu/linear_cols.c) on rows of 0 to 100%
 *    zeros: the bits of linear_forward_rows; and a net that does not train
 *    giving one row alone (through it) the bits of that row among 4;
 *  - a net (AlexNet's classifier on random features): the fused training
 *    step against the unfused one (the same backend with the entry taken
 *    out), and evaluation of 64 cached rows against groups of 4, 5 and 1,
 *    bit for bit; the row limits of the API.
 * Every comparison can fail: before the real ones, a copy with one element
 * off by a small amount (or one bit) goes through the same check and must be
 * rejected. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/net.h"
#include "engine/base/rng.h"
#include "harness.h"
#include "models/model.h"

#define DOT_TOL 1e-5    /* float sums of <= ~10^4 products vs double, per sum |terms| */
#define UPDATE_TOL 1e-4 /* fused vs unfused training: ||dA - dB|| / ||dB|| of the updates */

static graft_rng rng = {0xf05edULL, 0};

static float *falloc(size_t n) { return graft_test_alloc(n * sizeof(float)); }
static double *dalloc(size_t n) { return graft_test_alloc(n * sizeof(double)); }
static float *fdup(const float *x, size_t n) { return memcpy(falloc(n), x, n * sizeof(float)); }

static float *frand(size_t n, double lo, double hi) {
  float *x = falloc(n);
  for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * graft_rng_double(&rng));
  return x;
}

/* A CPU backend with `threads` threads (the OpenMP team is process-wide:
 * the last one created sets it) and the kernels named `kernels`. */
static graft_backend *backend(int threads, const char *kernels) {
  graft_backend_options o = {.threads = threads};
  CHECK_OK(graft_cpu_kernels_parse(kernels, &o.cpu_kernels));
  graft_backend *be = NULL;
  CHECK_OK(graft_cpu_backend_create(&o, &be));
  return be;
}

/* ---- checks: each returns whether it passed; `control` runs it on a
 * corrupted copy, which must fail (and a pass is then the failure) ---- */

static bool close_to(const char *what, const float *a, const double *b, const double *scale,
                     size_t n, double tol, bool control) {
  graft_test_diff d = graft_test_compare(graft_test_f(a), graft_test_d(b), scale, n);
  size_t where = d.elem_where;
  bool ok = d.non_finite == 0 && d.elem <= tol && d.rel <= tol;
  printf("%-52s rel %8.2e  elem %8.2e  tol %.0e %s\n", what, d.rel, d.elem, tol,
         control ? (ok ? "CONTROL NOT REJECTED" : "control rejected") : (ok ? "ok" : "FAIL"));
  if (ok == control) {
    fprintf(stderr, "FAIL %s: worst at [%zu]: got %.9g, want %.9g\n", what, where, a[where],
            b[where]);
    graft_test_failures++;
  }
  return ok;
}

static bool same_bits(const char *what, const float *a, const float *b, size_t n,
                      bool control) {
  graft_test_diff d = graft_test_compare(graft_test_f(a), graft_test_f(b), NULL, n);
  size_t bad = d.bits_differ, first = d.first_differ;
  printf("%-52s %zu of %zu differ %s\n", what, bad, n,
         control ? (bad ? "control rejected" : "CONTROL NOT REJECTED") : (bad ? "FAIL" : "ok"));
  if ((bad == 0) == control) {
    fprintf(stderr, "FAIL %s: first at [%zu]: %.9g vs %.9g\n", what, first, a[first], b[first]);
    graft_test_failures++;
  }
  return bad == 0;
}

/* close_to on a copy of a with element i moved by 1e-3 of its scale. */
static void control_close(const char *what, const float *a, const double *b,
                          const double *scale, size_t n) {
  float *c = fdup(a, n);
  size_t i = graft_rng_below(&rng, n);
  c[i] = (float)(c[i] + 1e-3 * scale[i]);
  close_to(what, c, b, scale, n, DOT_TOL, true);
  free(c);
}

static void control_bits(const char *what, const float *a, size_t n) {
  float *c = fdup(a, n);
  uint32_t u;
  size_t i = graft_rng_below(&rng, n);
  memcpy(&u, &c[i], sizeof u);
  u ^= 1; /* the last bit of the mantissa */
  memcpy(&c[i], &u, sizeof u);
  same_bits(what, c, a, n, true);
  free(c);
}

/* ------------------------------------------------ linear_backward_sgd */

typedef struct layer_state {
  float *w, *b, *bw, *bb; /* weights, bias, their momentum */
} layer_state;

static layer_state state_copy(const layer_state *s, size_t nw, size_t out) {
  return (layer_state){fdup(s->w, nw), fdup(s->b, out), fdup(s->bw, nw), fdup(s->bb, out)};
}

static void state_free(layer_state *s) { free(s->w), free(s->b), free(s->bw), free(s->bb); }

/* The double reference of one step from float state s (momentum ignored on
 * the first step), with per-element error scales. */
static void step_ref(int n, int in, int out, const float *dy, const float *x,
                     const layer_state *s, const graft_sgd_params *p, double *rw, double *sw,
                     double *rbw, double *sbw, double *rb, double *sb, double *rbb,
                     double *sbb, double *rdx, double *sdx) {
  for (int o = 0; o < out; o++) {
    for (int j = 0; j <= in; j++) { /* j == in: the bias */
      double g = 0, m = 0;
      for (int k = 0; k < n; k++) {
        double t = (double)dy[(size_t)k * out + o] * (j < in ? x[(size_t)k * in + j] : 1.0);
        g += t;
        m += fabs(t);
      }
      size_t e = (size_t)o * in + j;
      double prm = j < in ? s->w[e] : s->b[o], buf = j < in ? s->bw[e] : s->bb[o];
      double gd = g + (double)p->weight_decay * prm;
      double v = p->first ? gd : (double)p->momentum * buf + gd;
      double vm = m + fabs((double)p->weight_decay * prm) +
                  (p->first ? 0 : fabs((double)p->momentum * buf)) + 1e-30;
      if (j < in) {
        rw[e] = prm - (double)p->lr * v, sw[e] = fabs(prm) + (double)p->lr * vm;
        rbw[e] = v, sbw[e] = vm;
      } else {
        rb[o] = prm - (double)p->lr * v, sb[o] = fabs(prm) + (double)p->lr * vm;
        rbb[o] = v, sbb[o] = vm;
      }
    }
  }
  for (int k = 0; k < n; k++)
    for (int j = 0; j < in; j++) {
      double s2 = 0, m = 0;
      for (int o = 0; o < out; o++) {
        double t = (double)dy[(size_t)k * out + o] * s->w[(size_t)o * in + j];
        s2 += t;
        m += fabs(t);
      }
      rdx[(size_t)k * in + j] = s2, sdx[(size_t)k * in + j] = m + 1e-30;
    }
}

/* ||(a - a0) - (b - a0)|| / ||b - a0||: how far apart two updates of a0 are. */
static double update_error(const float *a, const float *b, const float *a0, size_t n) {
  double *da = dalloc(n), *db = dalloc(n);
  for (size_t i = 0; i < n; i++) da[i] = (double)a[i] - a0[i], db[i] = (double)b[i] - a0[i];
  double rel = graft_test_compare(graft_test_d(da), graft_test_d(db), NULL, n).rel;
  free(da), free(db);
  return rel;
}

static void test_fused(graft_backend *be, graft_backend *generic, int n, int in, int out,
                       float lr, float mu, float wd) {
  const graft_backend_iface *F = be->iface;
  const size_t nw = (size_t)in * out, nx = (size_t)n * in, ny = (size_t)n * out;
  const double ws = 1.0 / sqrt(in);
  graft_linear_params lp = {in, out, true};
  layer_state a = {frand(nw, -ws, ws), frand(out, -0.2, 0.2), falloc(nw), falloc(out)};
  for (size_t i = 0; i < nw; i++) a.bw[i] = NAN; /* the first step must not read momentum */
  for (int o = 0; o < out; o++) a.bb[o] = NAN;
  layer_state u = state_copy(&a, nw, out), gen = state_copy(&a, nw, out);
  layer_state start = state_copy(&a, nw, out);
  float *x = frand(nx, 0, 2), *dx = falloc(nx), *dw = falloc(nw), *db = falloc(out);
  double *rw = dalloc(nw), *sw = dalloc(nw), *rbw = dalloc(nw), *sbw = dalloc(nw);
  double *rb = dalloc(out), *sb = dalloc(out), *rbb = dalloc(out), *sbb = dalloc(out);
  double *rdx = dalloc(nx), *sdx = dalloc(nx);
  char what[128];
  for (int step = 0; step < 3; step++) {
    graft_sgd_params p = {lr, mu, wd, step == 0};
    float *dy = frand(ny, -1, 1);
    for (size_t i = 0; i < ny; i++)
      if (graft_rng_double(&rng) < 0.3) dy[i] = 0; /* ReLU and dropout zeros */
    step_ref(n, in, out, dy, x, &a, &p, rw, sw, rbw, sbw, rb, sb, rbb, sbb, rdx, sdx);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    CHECK_OK(F->linear_backward_sgd(be, &lp, n, dy, x, a.w, a.b, dx, a.bw, a.bb, &p));
    CHECK_OK(generic->iface->linear_backward_sgd(generic, &lp, n, dy, x, gen.w, gen.b, NULL,
                                                 gen.bw, gen.bb, &p));
    /* unfused: backward into dw, db, then sgd_step on each */
    CHECK_OK(F->linear_backward(be, &lp, n, dy, x, u.w, NULL, dw, db));
    CHECK_OK(F->sgd_step(be, nw, &p, u.w, dw, u.bw));
    CHECK_OK(F->sgd_step(be, (size_t)out, &p, u.b, db, u.bb));
    const char *tag = p.first ? " (first)" : "";
    if (step == 0 && n == 4 && in == 37 && wd != 0) {
      control_close("control: fused w with one element off", a.w, rw, sw, nw);
      control_close("control: fused dx with one element off", dx, rdx, sdx, nx);
    }
    snprintf(what, sizeof what, "fused n%d %dx%d wd %g step %d%s w", n, in, out, wd, step, tag);
    close_to(what, a.w, rw, sw, nw, DOT_TOL, false);
    snprintf(what, sizeof what, "fused n%d %dx%d wd %g step %d%s b", n, in, out, wd, step, tag);
    close_to(what, a.b, rb, sb, (size_t)out, DOT_TOL, false);
    snprintf(what, sizeof what, "fused n%d %dx%d wd %g step %d%s buf_w", n, in, out, wd, step,
             tag);
    close_to(what, a.bw, rbw, sbw, nw, DOT_TOL, false);
    snprintf(what, sizeof what, "fused n%d %dx%d wd %g step %d%s buf_b", n, in, out, wd, step,
             tag);
    close_to(what, a.bb, rbb, sbb, (size_t)out, DOT_TOL, false);
    snprintf(what, sizeof what, "fused n%d %dx%d wd %g step %d%s dx (old w)", n, in, out, wd,
             step, tag);
    close_to(what, dx, rdx, sdx, nx, DOT_TOL, false);
    free(dy);
  }
  double e = update_error(a.w, u.w, start.w, nw);
  snprintf(what, sizeof what, "fused vs unfused n%d %dx%d wd %g: 3 steps' w", n, in, out, wd);
  printf("%-52s update error %8.2e  tol %.0e %s\n", what, e, UPDATE_TOL,
         e <= UPDATE_TOL ? "ok" : "FAIL");
  CHECK_MSG(e <= UPDATE_TOL, "%s: %g", what, e);
  snprintf(what, sizeof what, "fused generic vs avx2 n%d %dx%d: w", n, in, out);
  same_bits(what, gen.w, a.w, nw, false);
  snprintf(what, sizeof what, "fused generic vs avx2 n%d %dx%d: buf_w", n, in, out);
  same_bits(what, gen.bw, a.bw, nw, false);
  state_free(&a), state_free(&u), state_free(&gen), state_free(&start);
  free(x), free(dx), free(dw), free(db), free(rw), free(sw), free(rbw), free(sbw);
  free(rb), free(sb), free(rbb), free(sbb), free(rdx), free(sdx);
}

/* One step from the same state with a team of 1 and of 2: the same bits. */
static void test_fused_teams(int n, int in, int out) {
  const size_t nw = (size_t)in * out;
  graft_linear_params lp = {in, out, false};
  float *w = frand(nw, -0.1, 0.1), *b = frand(out, -0.1, 0.1), *bw = frand(nw, -0.01, 0.01);
  float *bb = frand(out, -0.01, 0.01), *x = frand((size_t)n * in, 0, 1);
  float *dy = frand((size_t)n * out, -1, 1);
  graft_sgd_params p = {0.01f, 0.9f, 5e-4f, false};
  float *res[2][2];
  for (int t = 0; t < 2; t++) {
    graft_backend *be = backend(t + 1, "auto");
    layer_state s = {fdup(w, nw), fdup(b, out), fdup(bw, nw), fdup(bb, out)};
    CHECK_OK(be->iface->linear_backward_sgd(be, &lp, n, dy, x, s.w, s.b, NULL, s.bw, s.bb, &p));
    res[t][0] = s.w, res[t][1] = s.bw;
    free(s.b), free(s.bb);
    graft_backend_destroy(be);
  }
  char what[128];
  snprintf(what, sizeof what, "fused n%d %dx%d: 1 vs 2 threads, w", n, in, out);
  same_bits(what, res[0][0], res[1][0], nw, false);
  snprintf(what, sizeof what, "fused n%d %dx%d: 1 vs 2 threads, buf_w", n, in, out);
  same_bits(what, res[0][1], res[1][1], nw, false);
  free(res[0][0]), free(res[0][1]), free(res[1][0]), free(res[1][1]);
  free(w), free(b), free(bw), free(bb), free(x), free(dy);
}

/* ------------------------------------------------ linear_forward_rows */

static void test_rows(graft_backend *be, int n, int in, int out, bool relu) {
  const graft_backend_iface *F = be->iface;
  graft_linear_params lp = {in, out, relu};
  const double ws = 1.0 / sqrt(in);
  float *x = frand((size_t)n * in, -1, 1), *w = frand((size_t)out * in, -ws, ws);
  float *b = frand(out, -0.2, 0.2), *y = falloc((size_t)n * out), *yg = falloc((size_t)n * out);
  double *ref = dalloc((size_t)n * out), *mag = dalloc((size_t)n * out);
  for (int r = 0; r < n; r++)
    for (int o = 0; o < out; o++) {
      double s = b[o], m = fabs((double)b[o]);
      for (int j = 0; j < in; j++) {
        double t = (double)x[(size_t)r * in + j] * w[(size_t)o * in + j];
        s += t;
        m += fabs(t);
      }
      ref[(size_t)r * out + o] = relu && s < 0 ? 0 : s;
      mag[(size_t)r * out + o] = m + 1e-30;
    }
  char what[128];
  CHECK_OK(F->linear_forward_rows(be, &lp, n, x, w, b, y));
  const char *kind = strstr(graft_backend_describe(be), "generic kernels") ? "generic" : "avx2";
  snprintf(what, sizeof what, "rows %s n%d %dx%d%s vs double", kind, n, in, out,
           relu ? " relu" : "");
  close_to(what, y, ref, mag, (size_t)n * out, DOT_TOL, false);
  /* the same rows in groups of g: every row the same bits */
  const int groups[] = {1, 2, 3, 4, 5, 8, 13};
  for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
    int g = groups[gi];
    size_t blas_diff = 0;
    for (int r0 = 0; r0 < n; r0 += g) {
      int m = n - r0 < g ? n - r0 : g;
      CHECK_OK(F->linear_forward_rows(be, &lp, m, x + (size_t)r0 * in, w, b,
                                      yg + (size_t)r0 * out));
    }
    snprintf(what, sizeof what, "rows %s n%d %dx%d in groups of %d vs one call", kind, n, in, out,
             g);
    same_bits(what, yg, y, (size_t)n * out, false);
    /* OpenBLAS's forward, for the record */
    float *yb = falloc((size_t)n * out), *ybg = falloc((size_t)n * out);
    CHECK_OK(F->linear_forward(be, &lp, n, x, w, b, yb));
    for (int r0 = 0; r0 < n; r0 += g) {
      int m = n - r0 < g ? n - r0 : g;
      CHECK_OK(F->linear_forward(be, &lp, m, x + (size_t)r0 * in, w, b, ybg + (size_t)r0 * out));
    }
    for (size_t i = 0; i < (size_t)n * out; i++) blas_diff += memcmp(&yb[i], &ybg[i], 4) != 0;
    printf("    (linear_forward, for comparison: %zu of %zu differ)\n", blas_diff,
           (size_t)n * out);
    free(yb), free(ybg);
  }
  if (n == 64 && !relu) control_bits("control: rows with one bit flipped", y, (size_t)n * out);
  free(x), free(w), free(b), free(y), free(yg), free(ref), free(mag);
}

/* ------------------------------------------------ linear_forward_cols */

/* One row with `zeros` of its inputs zero (some -0), through the
 * zero-skipping kernel on transposed weights: the bits of
 * linear_forward_rows. The generic kernels have none (GRAFT_EUNSUPPORTED). */
static void test_cols(graft_backend *be, int in, int out, bool relu, double zeros) {
  const graft_backend_iface *F = be->iface;
  graft_linear_params lp = {in, out, relu};
  const double ws = 1.0 / sqrt(in);
  float *x = frand(in, 0, 2), *w = frand((size_t)out * in, -ws, ws), *b = frand(out, -0.2, 0.2);
  float *wt = falloc((size_t)out * in), *y = falloc(out), *yc = falloc(out);
  int skipped = 0;
  for (int j = 0; j < in; j++)
    if (graft_rng_double(&rng) < zeros) {
      x[j] = j % 3 ? 0.0f : -0.0f;
      skipped++;
    }
  graft_status s = F->linear_cols_make(be, &lp, w, wt);
  const bool generic = strstr(graft_backend_describe(be), "generic kernels") != NULL;
  char what[128];
  snprintf(what, sizeof what, "cols %dx%d%s, %d of %d inputs zero, vs rows", in, out,
           relu ? " relu" : "", skipped, in);
  if (generic) {
    CHECK_MSG(s == GRAFT_EUNSUPPORTED, "generic kernels: %s", graft_strerror(s));
    printf("%-52s refused on the generic kernels: %s\n", what, graft_detail());
    graft_clear_detail();
  } else {
    CHECK_OK(s);
    CHECK_OK(F->linear_forward_rows(be, &lp, 1, x, w, b, y));
    CHECK_OK(F->linear_forward_cols(be, &lp, x, w, wt, b, yc));
    same_bits(what, yc, y, out, false);
    if (zeros == 0.5 && !relu) control_bits("control: cols with one bit flipped", yc, out);
  }
  free(x), free(w), free(b), free(wt), free(y), free(yc);
}

/* A net that does not train: one-row forwards (the second on, through the
 * transposed weights) give each row the bits it has among 4; new weights
 * (graft_net_set_classifier) drop the transposed ones, and the rows follow. */
static void test_net_cols(graft_model *m) {
  enum { B = 4 };
  graft_backend *be = backend(2, "auto");
  graft_net *net;
  CHECK_OK(graft_net_create(be, &m->arch, m->params, B, 64, 64, &net));
  const int dim = m->arch.feature_dim, k = m->arch.num_classes;
  const size_t head = m->arch.n_floats - m->arch.classifier_offset;
  float *rows = frand((size_t)B * dim, 0, 3), probs[B * 2], all[B * 2], one[2];
  for (size_t i = 0; i < (size_t)B * dim; i++)
    if (graft_rng_double(&rng) < 0.4) rows[i] = 0.0f; /* as after a ReLU */
  float *h = falloc(head);
  for (int round = 0; round < 2; round++) {
    CHECK_OK(graft_net_put_features(net, B, rows));
    CHECK_OK(graft_net_classify_features(net, B, probs, all));
    for (int rep = 0; rep < 3; rep++) /* the first one-row forward on w, then transposed */
      for (int r = 0; r < B; r++) {
        CHECK_OK(graft_net_put_features(net, 1, rows + (size_t)r * dim));
        CHECK_OK(graft_net_classify_features(net, 1, probs, one));
        char what[96];
        snprintf(what, sizeof what, "net%s: row %d alone (pass %d) vs among 4",
                 round ? ", new weights" : "", r, rep + 1);
        same_bits(what, one, all + (size_t)r * k, (size_t)k, false);
        char how[3000];
        bool cols = strstr(graft_net_describe(net, how, sizeof how), "zero inputs skipped");
        CHECK_MSG(cols == (rep > 0 || r > 0), "%s: %s", what, how);
      }
    /* new weights: the head's scaled */
    CHECK_OK(graft_net_get_classifier(net, h, NULL));
    for (size_t i = 0; i < head; i++) h[i] *= 1.5f;
    CHECK_OK(graft_net_set_classifier(net, h, NULL));
  }
  graft_net_destroy(net);
  graft_backend_destroy(be);
  free(rows), free(h);
}

/* ------------------------------------------------ a net */

/* A copy of be's table with entries taken out; be then uses it. */
static graft_backend_iface *strip(graft_backend *be, bool fused, bool rows) {
  graft_backend_iface *t = graft_test_alloc(sizeof *t);
  *t = *be->iface;
  if (!fused) t->linear_backward_sgd = NULL;
  if (!rows) t->linear_forward_rows = NULL;
  be->iface = t;
  return t;
}

static graft_model *random_alexnet(void) {
  graft_model *m;
  CHECK_OK(graft_model_create("alexnet", 2, &m));
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    const graft_param *w = graft_arch_weight(&m->arch, graft_arch_layer_of(&m->arch, p));
    double bound = 1.0 / sqrt((double)(w->count / (size_t)w->dims[0]));
    float *v = graft_model_param(m, p);
    for (size_t j = 0; j < p->count; j++)
      v[j] = (float)((graft_rng_double(&rng) * 2 - 1) * bound);
  }
  return m;
}

static void test_net(void) {
  enum { B = 4, STEPS = 3 };
  graft_model *m = random_alexnet();
  test_net_cols(m);
  graft_backend *bf = backend(2, "auto"), *bu = backend(2, "auto"), *bn = backend(2, "auto");
  const graft_backend_iface *orig_u = bu->iface, *orig_n = bn->iface;
  graft_backend_iface *tu = strip(bu, false, true), *tn = strip(bn, true, false);
  graft_net *nf, *nu, *nn;
  /* a small input: the trunk is planned, never run */
  CHECK_OK(graft_net_create(bf, &m->arch, m->params, B, 64, 64, &nf));
  CHECK_OK(graft_net_create(bu, &m->arch, m->params, B, 64, 64, &nu));
  CHECK_OK(graft_net_create(bn, &m->arch, m->params, B, 64, 64, &nn));
  CHECK_MSG(graft_net_eval_rows(nf) == GRAFT_NET_EVAL_ROWS, "eval batch %d",
            graft_net_eval_rows(nf));
  CHECK_MSG(graft_net_eval_rows(nn) == B, "without rows: eval batch %d",
            graft_net_eval_rows(nn));
  CHECK_OK(graft_net_train_init(nf, GRAFT_TRAIN_CLASSIFIER, 0.5f));
  CHECK_OK(graft_net_train_init(nu, GRAFT_TRAIN_CLASSIFIER, 0.5f));
  CHECK_OK(graft_net_train_init(nn, GRAFT_TRAIN_CLASSIFIER, 0.5f));
  const int dim = m->arch.feature_dim, E = GRAFT_NET_EVAL_ROWS;
  const size_t head = m->arch.n_floats - m->arch.classifier_offset, tc = graft_net_train_count(nf);
  float *rows = frand((size_t)E * dim, 0, 3);
  int32_t labels[GRAFT_NET_EVAL_ROWS], pf[GRAFT_NET_EVAL_ROWS], pu[GRAFT_NET_EVAL_ROWS];
  float lf[GRAFT_NET_EVAL_ROWS], lu[GRAFT_NET_EVAL_ROWS];
  for (int i = 0; i < E; i++) labels[i] = (int)graft_rng_below(&rng, 2);

  /* training: fused against unfused, same rows, labels and dropout */
  graft_sgd_params sgd = {0.01f, 0.9f, 5e-4f, false};
  for (int step = 0; step < STEPS; step++) {
    const float *r = rows + (size_t)step * B * dim;
    CHECK_OK(graft_net_put_features(nf, B, r));
    CHECK_OK(graft_net_put_features(nu, B, r));
    CHECK_OK(graft_net_train_step(nf, B, labels + step * B, &sgd, 100 + step, lf, pf));
    CHECK_OK(graft_net_train_step(nu, B, labels + step * B, &sgd, 100 + step, lu, pu));
    double worst = 0;
    for (int i = 0; i < B; i++) worst = fmax(worst, fabs((double)lf[i] - lu[i]) / fabs(lu[i]));
    printf("%-52s rel %8.2e  tol %.0e %s\n", "net: fused vs unfused step losses", worst,
           DOT_TOL, worst <= DOT_TOL ? "ok" : "FAIL");
    CHECK_MSG(worst <= DOT_TOL, "step %d losses differ by %g", step, worst);
  }
  float *hf = falloc(head), *hu = falloc(head), *mf = falloc(tc), *mu = falloc(tc);
  CHECK_OK(graft_net_get_classifier(nf, hf, mf));
  CHECK_OK(graft_net_get_classifier(nu, hu, mu));
  const float *h0 = m->params + m->arch.classifier_offset;
  double e = update_error(hf, hu, h0, head);
  printf("%-52s update error %8.2e  tol %.0e %s\n", "net: fused vs unfused head after 3 steps",
         e, UPDATE_TOL, e <= UPDATE_TOL ? "ok" : "FAIL");
  CHECK_MSG(e <= UPDATE_TOL, "head update error %g", e);
  float *zero = calloc(tc, sizeof(float));
  CHECK(zero != NULL);
  e = update_error(mf, mu, zero, tc);
  printf("%-52s rel %8.2e  tol %.0e %s\n", "net: fused vs unfused momentum", e, UPDATE_TOL,
         e <= UPDATE_TOL ? "ok" : "FAIL");
  CHECK_MSG(e <= UPDATE_TOL, "momentum error %g", e);

  /* evaluation: 64 rows in one call, then in groups, the same bits */
  float all_loss[GRAFT_NET_EVAL_ROWS], loss[GRAFT_NET_EVAL_ROWS];
  int32_t all_pred[GRAFT_NET_EVAL_ROWS], pred[GRAFT_NET_EVAL_ROWS];
  CHECK_OK(graft_net_put_features(nf, E, rows));
  CHECK_OK(graft_net_eval_step(nf, E, labels, all_loss, all_pred));
  const int groups[] = {B, B + 1, 1};
  for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
    for (int r0 = 0; r0 < E; r0 += groups[gi]) {
      int g = E - r0 < groups[gi] ? E - r0 : groups[gi];
      CHECK_OK(graft_net_put_features(nf, g, rows + (size_t)r0 * dim));
      CHECK_OK(graft_net_eval_step(nf, g, labels + r0, loss + r0, pred + r0));
    }
    char what[96];
    snprintf(what, sizeof what, "net: eval of 64 rows vs groups of %d, losses", groups[gi]);
    same_bits(what, loss, all_loss, E, false);
    CHECK(memcmp(pred, all_pred, sizeof pred) == 0);
  }
  control_bits("control: eval losses with one bit flipped", all_loss, E);

  /* the limits: rows up to graft_net_eval_rows, training steps up to max_batch */
  CHECK(graft_net_put_features(nf, E + 1, rows) == GRAFT_EINVAL);
  CHECK(graft_net_get_features(nf, E + 1, rows) == GRAFT_EINVAL);
  CHECK(graft_net_eval_step(nf, E + 1, labels, loss, pred) == GRAFT_EINVAL);
  CHECK(graft_net_eval_step(nf, 0, labels, loss, pred) == GRAFT_EINVAL);
  CHECK(graft_net_train_step(nf, B + 1, labels, &sgd, 1, loss, pred) == GRAFT_EINVAL);
  CHECK(graft_net_put_features(nn, B + 1, rows) == GRAFT_EINVAL);
  CHECK(graft_net_eval_step(nn, B + 1, labels, loss, pred) == GRAFT_EINVAL);

  graft_net_destroy(nf), graft_net_destroy(nu), graft_net_destroy(nn);
  bu->iface = orig_u, bn->iface = orig_n;
  free(tu), free(tn);
  graft_backend_destroy(bf), graft_backend_destroy(bu), graft_backend_destroy(bn);
  free(rows), free(hf), free(hu), free(mf), free(mu), free(zero);
  graft_model_free(m);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  graft_backend *generic = backend(2, "generic");
  graft_backend *be = backend(2, "auto"); /* created last: its team (2) is the one in force */
  printf("backend: %s\n", graft_backend_describe(be));
  printf("generic: %s\n", graft_backend_describe(generic));

  /* batches <= 8 (one vector loop) and > 8 (OpenBLAS tiles); odd widths for
   * the tails; out < 16 leaves one thread idle, out = 2 as the last layer */
  const int shapes[][3] = {{4, 37, 19}, {1, 256, 64}, {3, 1000, 67}, {8, 129, 33},
                           {9, 300, 40}, {17, 77, 2}, {4, 4096, 2}, {2, 515, 130}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    test_fused(be, generic, shapes[i][0], shapes[i][1], shapes[i][2], 0.01f, 0.9f, 5e-4f);
    test_fused(be, generic, shapes[i][0], shapes[i][1], shapes[i][2], 0.1f, 0.0f, 0.0f);
  }
  test_fused_teams(4, 1000, 300);
  test_fused_teams(12, 500, 100); /* leaves the team at 2 */

  const int rshapes[][2] = {{37, 19}, {1000, 67}, {4096, 2}, {2053, 130}};
  for (size_t i = 0; i < sizeof rshapes / sizeof rshapes[0]; i++)
    for (int relu = 0; relu < 2; relu++) {
      test_rows(be, 64, rshapes[i][0], rshapes[i][1], relu);
      test_rows(generic, 64, rshapes[i][0], rshapes[i][1], relu);
    }
  test_rows(be, 7, 300, 50, true);

  const int cshapes[][2] = {{37, 19}, {1000, 67}, {4096, 2}, {2053, 130}, {9216, 301}};
  const double shares[] = {0.0, 0.5, 0.95, 1.0};
  for (size_t i = 0; i < sizeof cshapes / sizeof cshapes[0]; i++)
    for (size_t z = 0; z < sizeof shares / sizeof shares[0]; z++)
      for (int relu = 0; relu < 2; relu++)
        test_cols(be, cshapes[i][0], cshapes[i][1], relu, shares[z]);
  test_cols(generic, 300, 50, true, 0.5);

  test_net();

  graft_backend_destroy(be);
  graft_backend_destroy(generic);
  return graft_test_finish("cpu_fused");
}
