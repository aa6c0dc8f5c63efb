/* Every op of the CUDA backend against the CPU backend, over a table of
 * shapes, in both precisions and down every rung of the convolution ladder
 * (the cudnn_path option fused, fallback, split, legacy: one backend each).
 *
 * Tolerances, relative to the reference's norm. Trunk convolutions in fp32
 * (TF32) 5e-3. In fp32-strict by the engine's numerical notes, each 10x the
 * float32 error of the same algorithm measured on the CPU with exact
 * constants (test/transform_error.py, these shapes and inputs, 3 seeds),
 * because cuDNN's kernels round their constants and order their sums in
 * their own way:
 *   direct / GEMM engines   1e-5  (measured 1.2e-6, torch's float32 conv)
 *   FFT                     1e-5  (measured 3.1e-7; never tighter than direct)
 *   Winograd 4x4 tiles      3e-5  (F(4x4,3x3): 2.9e-6)
 *   Winograd 6x6 tiles      6e-5  (F(6x6,3x3): 5.6e-6), and any Winograd whose
 *                                 tile cuDNN does not state (F(2x2,3x3): 5e-7)
 * (13x13 tiles are never taken: engine/cuda/cudnn_graph.c.) The classifier's
 * GEMMs never use TF32, so 1e-5 in both. Pooling, copies, dropout (masks and
 * values), the ReLU's backward, bias column sums and SGD must match bit for
 * bit; softmax and cross-entropy (float reductions over a block, against the
 * CPU's double: about 1e-7 expected, engine/cuda/kernels.cu) to 1e-6.
 * The same in NHWC (fp32, fp32-strict, bf16) and bf16 NCHW, and with tuned
 * plans (fp32 NCHW, bf16 NHWC); bf16's tolerance is derived at BF16_TOL.
 * Then the whole trunk through graft__cuda_trunk_run (eager, captured,
 * replayed) must equal the plan-by-plan run bit for bit, and must have been
 * captured (the eager fallback gives the same bits); a random AlexNet
 * predicts and trains like the CPU.
 *
 * A forced rung (fused, fallback, split) may find no plan for a shape on this
 * GPU. Deviceless planning against a description says whether it should:
 * this card's own, as a device run recorded it (bench/cudnn-devices/<card>.json,
 * written by this test into $GRAFT_CUDNN_DEVICE_JSON_OUT/<card>.json), else
 * the hand-written one of its architecture (h100.json for sm_90, a100.json
 * for sm_80), else the GPU's own from its handle. Where that finds no plan
 * either, the refusal is accepted and said; where it finds one, the refusal
 * is a NOTE (a hand-written description is not the card, and the card is
 * held to itself), counted on the last line. A plan that this GPU makes but
 * that fails when run, or gives wrong numbers, fails the test, and so does a
 * refusal of the legacy rung (the ladder's last; it has no graph to plan
 * deviceless, and picks only an algorithm whose workspace fits). Skips (77)
 * only without a GPU (no driver, no device). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/cuda/cuda.h"
#include "engine/net.h"
#include "engine/net_internal.h"
#include "engine/base/rng.h"
#include "cuda_reference.h"
#include "harness.h"
#include "models/model.h"

/* bf16's tolerance, relative to the reference's norm. bf16 keeps 8
 * significant bits: each rounding to it errs by at most u = 2^-8 = 3.9e-3
 * relative. A bf16 trunk op's output has passed through at most three
 * roundings (input, weight, output; the bias's is of the output's order), so
 * each product is within 3u = 1.2e-2 of the exact one, and fp32 accumulation
 * adds nothing of that order. Summed over many terms the errors are
 * independent and partly cancel: about sqrt(2/3) u from the inputs plus
 * u / sqrt(3) from the output, 5e-3 in norm. 2e-2 = 5u holds the worst case
 * of every element with room; a whole net (several such layers and the
 * classifier) is allowed 4x that. Not yet run on a GPU; emulated on the CPU
 * (bench/bf16_accuracy.py, bench/bf16_training.py): whole_net's logits
 * within 4.4e-3 over 8 seeds, a seeded VGG16's within 6.8e-3. */
#define BF16_TOL 2e-2

/* A bf16 classifier's gradients after training steps, relative to the
 * CPU's fp32 (whole_net's momentum): not a rounding-sized error. Where a
 * hidden unit's fp32 pre-activation lies within bf16's error of zero, the
 * two forwards disagree on its ReLU, and its whole gradient row is kept by
 * one and zeroed by the other; the error in norm grows as the square root
 * of the fraction of units flipped. bench/bf16_training.py emulates
 * whole_net in PyTorch over 8 seeds: the momentum within 3.5e-2 to 5.0e-2
 * of fp32's (the first two Linear layers' up to 7.7e-2, the last one's 3e-3);
 * with fp32's ReLU masks it would be 3.3e-3. 0.15 = 3x the worst: a wrong
 * GEMM or scale is off by O(1). */
#define BF16_TRAIN_TOL 0.15

static graft_backend *cpu;
static uint64_t seed_counter = 1;
static int refused_notes; /* forced rungs refused where the description planned one */

static float *rand_host(size_t n, float lo, float hi) {
  float *v = malloc(n * sizeof *v + 1);
  graft_rng r = {seed_counter++, 0};
  for (size_t i = 0; v && i < n; i++) v[i] = lo + (hi - lo) * (float)graft_rng_double(&r);
  CHECK(v != NULL);
  return v;
}

static void *dev(graft_backend *be, const void *host, size_t bytes) {
  void *d;
  CHECK_OK(be->iface->alloc(be, bytes, &d));
  if (host) CHECK_OK(be->iface->upload(be, d, host, bytes));
  return d;
}

static float *back(graft_backend *be, const void *d, size_t n) {
  float *h = malloc(n * sizeof *h + 1);
  CHECK(h != NULL);
  CHECK_OK(be->iface->download(be, h, d, n * sizeof *h));
  return h;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         double tol) {
  graft_test_diff d = graft_test_compare(graft_test_f(got), graft_test_f(want), NULL, n);
  printf("  %-60s rel %.3g max|d| %.3g\n", what, d.rel, d.max_abs);
  if (tol == 0)
    CHECK_MSG(d.bits_differ == 0, "%s: not bit-identical (max |d| %g at %zu)", what, d.max_abs,
              d.where);
  else
    CHECK_MSG(d.rel <= tol, "%s: relative error %.3g > %.3g", what, d.rel, tol);
}

/* Run one planned trunk op on CPU and CUDA and compare. */
typedef graft_status (*plan_fn)(graft_backend *, const void *params, const graft_act *,
                                const float *w, const float *b, graft_act *, graft_plan **);

static graft_status conv_fn(graft_backend *be, const void *p, const graft_act *in,
                            const float *w, const float *b, graft_act *out, graft_plan **plan) {
  return be->iface->conv2d_plan(be, p, in, w, b, out, plan);
}
static graft_status max_fn(graft_backend *be, const void *p, const graft_act *in,
                           const float *w, const float *b, graft_act *out, graft_plan **plan) {
  (void)w, (void)b;
  return be->iface->maxpool2d_plan(be, p, in, out, plan);
}
static graft_status avg_fn(graft_backend *be, const void *p, const graft_act *in,
                           const float *w, const float *b, graft_act *out, graft_plan **plan) {
  (void)w, (void)b;
  return be->iface->adaptive_avgpool2d_plan(be, p, in, out, plan);
}

/* The CPU's output in plain NCHW: plan then, if blocked, reorder through act_to_rows. */
static float *cpu_run(plan_fn fn, const void *params, const graft_act *in, const float *x,
                      const float *w, const float *b, size_t *count) {
  graft_act out, rows;
  graft_plan *plan, *flat;
  CHECK_OK(fn(cpu, params, in, w, b, &out, &plan));
  float *y = malloc(out.bytes), *r;
  CHECK_OK(cpu->iface->plan_run(plan, x, y));
  CHECK_OK(cpu->iface->act_to_rows_plan(cpu, &out, &rows, &flat));
  r = malloc(rows.bytes);
  CHECK_OK(cpu->iface->plan_run(flat, y, r));
  cpu->iface->plan_destroy(plan);
  cpu->iface->plan_destroy(flat);
  free(y);
  *count = (size_t)rows.n * rows.c;
  return r;
}

/* fp32-strict's tolerance for an engine with these notes (see the top). */
static double strict_tol(unsigned notes) {
  if (notes & GRAFT__NOTE_WINOGRAD_4x4) return 3e-5;
  if (notes & (GRAFT__NOTE_WINOGRAD_6x6 | GRAFT__NOTE_WINOGRAD)) return 6e-5;
  return 1e-5;
}

/* The CPU's result rounded to bfloat16, as the GPU's bf16 trunk stores it. */
static void round_bf16(float *v, size_t n) {
  for (size_t i = 0; i < n; i++) v[i] = graft__bf16_to_float(graft__bf16_from_float(v[i]));
}

/* One trunk op on the GPU from plain NCHW float x: in the backend's own
 * layout (NHWC and/or bf16) through its edge plans, nchw_to_act before and
 * act_to_rows after, so the edges are checked with the op. */
static void compare_op(graft_backend *be, const char *what, plan_fn fn, const void *params,
                       const graft_act *in, const float *w, const float *b, double tol,
                       const char *forced) {
  size_t count;
  const float *x = rand_host((size_t)in->n * in->c * in->h * in->w, -1, 1);
  float *want = cpu_run(fn, params, in, x, w, b, &count);
  const int layout = graft__cuda_act_layout(be);
  graft_act in_act = *in, out, rows;
  graft_plan *plan, *to_act = NULL, *to_rows = NULL;
  if (layout != GRAFT_LAYOUT_NCHW) CHECK_OK(be->iface->nchw_to_act_plan(be, in, &in_act, &to_act));
  graft_status s = fn(be, params, &in_act, w, b, &out, &plan);
  /* The legacy rung is the ladder's last: no description can excuse it. */
  if (s == GRAFT_EUNSUPPORTED && forced && fn == conv_fn && strcmp(forced, "legacy") != 0) {
    const graft_conv2d_params *p = params;
    graft__conv_shape sh = {in->n,    in->c,     in->h,     in->w,
                            p->out_c, p->kernel, p->stride, p->pad,
                            p->relu,  (in_act.layout & GRAFT__CUDA_NHWC) != 0};
    char why[1024], note[400];
    snprintf(why, sizeof why, "%s", graft_detail());
    if (cuda_reference_plans(forced, &sh, be->precision, note, sizeof note)) {
      refused_notes++;
      printf("  NOTE %-55s refused by this GPU (%s), though %s\n", what, why, note);
    } else {
      printf("  %-60s unsupported, accepted: %s\n", what, note);
    }
    graft_clear_detail();
  } else {
    CHECK_MSG(s == GRAFT_OK, "%s: plan: %s: %s", what, graft_strerror(s), graft_detail());
  }
  if (s == GRAFT_OK) {
    rows = out;
    if (layout != GRAFT_LAYOUT_NCHW) CHECK_OK(be->iface->act_to_rows_plan(be, &out, &rows, &to_rows));
    void *dx = dev(be, x, in->bytes), *dy = dev(be, NULL, out.bytes);
    void *da = to_act ? dev(be, NULL, in_act.bytes) : dx;
    void *dr = to_rows ? dev(be, NULL, rows.bytes) : dy;
    if (to_act) CHECK_OK(be->iface->plan_run(to_act, dx, da));
    CHECK_OK(be->iface->plan_run(plan, da, dy));
    if (to_rows) CHECK_OK(be->iface->plan_run(to_rows, dy, dr));
    float *got = back(be, dr, count);
    char label[300], describe[200];
    be->iface->plan_describe(plan, describe, sizeof describe);
    if (tol > 0 && be->precision == GRAFT_PRECISION_FP32_STRICT) tol = strict_tol(plan->notes);
    /* bf16: max pooling commutes with rounding (both are monotonic), so the
     * CPU's maximum rounded to bf16 is exactly the GPU's; the average is
     * computed in float from rounded inputs and rounded once more */
    if (layout & GRAFT__CUDA_BF16) {
      if (fn == max_fn) round_bf16(want, count);
      if (fn == avg_fn) tol = BF16_TOL;
    }
    snprintf(label, sizeof label, "%s [%s]", what, describe);
    expect_close(label, got, want, count, tol);
    free(got);
    if (to_act) be->iface->free(be, da);
    if (to_rows) be->iface->free(be, dr);
    be->iface->free(be, dx);
    be->iface->free(be, dy);
    be->iface->plan_destroy(plan);
    if (to_rows) be->iface->plan_destroy(to_rows);
  }
  if (to_act) be->iface->plan_destroy(to_act);
  free((void *)x);
  free(want);
}

static const struct { int n, c, h, w, k, r, stride, pad, relu; } convs[] = {
    {1, 3, 224, 224, 64, 11, 4, 2, 1}, {2, 64, 27, 27, 192, 5, 1, 2, 1},
    {4, 64, 56, 56, 128, 3, 1, 1, 1},  {3, 16, 13, 15, 8, 3, 1, 1, 0},
    {8, 512, 14, 14, 512, 3, 1, 1, 1}, {2, 3, 256, 300, 64, 11, 4, 2, 1},
};

/* The shapes a forced rung of the other layouts and precisions runs (the
 * whole ladder runs them all): C = 3 with an 11x11 stride 4, an odd size
 * without ReLU, 512 channels. A device check has 150 s for this test, and
 * NHWC plans may compile engines at run time (docs/CUDNN.md). */
static const size_t few_convs[] = {0, 3, 4};

static void trunk_ops(graft_backend *be, const char *path, graft_precision prec, bool few) {
  double tol = prec == GRAFT_PRECISION_FP32_STRICT ? 1e-5 /* strict: by engine */
               : prec == GRAFT_PRECISION_BF16      ? BF16_TOL
                                                   : 5e-3;
  const char *layout = graft__cuda_act_layout(be) & GRAFT__CUDA_NHWC ? "nhwc" : "nchw";
  const char *forced = strcmp(path, "auto") == 0 ? NULL : path;
  const size_t n_convs = few ? sizeof few_convs / sizeof few_convs[0] : sizeof convs / sizeof convs[0];
  for (size_t j = 0; j < n_convs; j++) {
    const size_t i = few ? few_convs[j] : j;
    graft_conv2d_params p = {convs[i].c, convs[i].k, convs[i].r, convs[i].stride, convs[i].pad,
                             convs[i].relu};
    graft_act in = {convs[i].n, convs[i].c, convs[i].h, convs[i].w, 0,
                    (size_t)convs[i].n * convs[i].c * convs[i].h * convs[i].w * 4};
    float bound = 1.0f / sqrtf((float)(p.in_c * p.kernel * p.kernel));
    float *w = rand_host((size_t)p.out_c * p.in_c * p.kernel * p.kernel, -bound, bound);
    float *b = rand_host((size_t)p.out_c, -bound, bound);
    char what[128];
    snprintf(what, sizeof what, "%s %s %s conv %d->%d %dx%d/%d %dx%d b%d", path,
             graft_precision_name(prec), layout, p.in_c, p.out_c, p.kernel, p.kernel, p.stride,
             in.h, in.w, in.n);
    compare_op(be, what, conv_fn, &p, &in, w, b, tol, forced);
    free(w);
    free(b);
  }
  static const struct { int n, c, h, w, k, s; } pools[] = {
      {2, 64, 55, 55, 3, 2}, {1, 512, 14, 14, 2, 2}, {2, 3, 9, 11, 3, 2}, {2, 64, 74, 73, 3, 2}};
  for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
    graft_pool2d_params p = {pools[i].k, pools[i].s};
    graft_act in = {pools[i].n, pools[i].c, pools[i].h, pools[i].w, 0,
                    (size_t)pools[i].n * pools[i].c * pools[i].h * pools[i].w * 4};
    char what[128];
    snprintf(what, sizeof what, "%s %s %s maxpool %d/%d %dx%d c%d b%d", path,
             graft_precision_name(prec), layout, p.kernel, p.stride, in.h, in.w, in.c, in.n);
    compare_op(be, what, max_fn, &p, &in, NULL, NULL, 0, forced);
  }
  static const struct { int n, c, h, w, oh, ow; } avgs[] = {
      {2, 256, 6, 6, 6, 6}, {2, 256, 8, 9, 6, 6}, {1, 512, 9, 10, 7, 7}, {3, 5, 3, 4, 7, 7}};
  for (size_t i = 0; i < sizeof avgs / sizeof avgs[0]; i++) {
    graft_adaptive_avgpool_params p = {avgs[i].oh, avgs[i].ow};
    graft_act in = {avgs[i].n, avgs[i].c, avgs[i].h, avgs[i].w, 0,
                    (size_t)avgs[i].n * avgs[i].c * avgs[i].h * avgs[i].w * 4};
    char what[128];
    snprintf(what, sizeof what, "%s %s %s adaptive avgpool %dx%d -> %dx%d", path,
             graft_precision_name(prec), layout, in.h, in.w, p.out_h, p.out_w);
    compare_op(be, what, avg_fn, &p, &in, NULL, NULL, 0, forced);
  }
}

/* Tuned choices kept on disk (the cudnn_tune_cache option): a second
 * backend on the same file times nothing and takes the first one's engine;
 * the plans it makes from the file are held to the CPU as any other. */
static void tuned_from_disk(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/cudnn-tuned.tsv", graft_test_tmpdir("cuda_tune_cache"));
  remove(path);
  const graft_backend_options o = {.cudnn_tune = true, .cudnn_tune_cache = path};
  graft_conv2d_params p = {64, 128, 3, 1, 1, true};
  graft_act in = {8, 64, 56, 56, 0, (size_t)8 * 64 * 56 * 56 * 4}, out;
  float *w = rand_host((size_t)128 * 64 * 9, -0.05f, 0.05f), *b = rand_host(128, -0.1f, 0.1f);
  int64_t engine[2] = {-1, -1};
  int tuned[2] = {0, 0};
  bool earlier[2] = {true, false};
  for (int run = 0; run < 2; run++) {
    graft_backend *bp = NULL;
    graft_plan *plan = NULL;
    CHECK_OK(graft__cuda_create(0, &o, &bp));
    if (!bp) break;
    CHECK_OK(bp->iface->conv2d_plan(bp, &p, &in, w, b, &out, &plan));
    if (plan) {
      char what[400];
      bp->iface->plan_describe(plan, what, sizeof what);
      printf("tuned, run %d on %s: %s\n", run + 1, path, what);
      engine[run] = plan->engine;
      tuned[run] = plan->tuned;
      earlier[run] = plan->tuned_earlier;
      bp->iface->plan_destroy(plan);
    }
    if (run == 1) trunk_ops(bp, "auto", GRAFT_PRECISION_FP32, true);
    graft_backend_destroy(bp);
  }
  CHECK_MSG(tuned[0] > 1 && !earlier[0], "first run: %d timed", tuned[0]);
  CHECK_MSG(earlier[1] && engine[1] == engine[0] && tuned[1] == tuned[0],
            "second run: engine %ld (first %ld), from the file: %d", (long)engine[1],
            (long)engine[0], (int)earlier[1]);
  free(w);
  free(b);
}

/* A small trunk run plan by plan, then through trunk_run three times. */
static void trunk_capture(graft_backend *be) {
  graft_conv2d_params c1 = {3, 16, 5, 2, 2, true}, c2 = {16, 32, 3, 1, 1, true};
  graft_pool2d_params mp = {3, 2};
  graft_adaptive_avgpool_params ap = {3, 3};
  graft_act acts[8];
  graft_plan *plans[7];
  acts[0] = (graft_act){2, 3, 40, 44, 0, (size_t)2 * 3 * 40 * 44 * 4};
  float *w1 = rand_host(16 * 3 * 25, -0.2f, 0.2f), *b1 = rand_host(16, -0.1f, 0.1f);
  float *w2 = rand_host(32 * 16 * 9, -0.1f, 0.1f), *b2 = rand_host(32, -0.1f, 0.1f);
  const graft_backend_iface *f = be->iface;
  CHECK_OK(f->nchw_to_act_plan(be, &acts[0], &acts[1], &plans[0]));
  CHECK_OK(f->conv2d_plan(be, &c1, &acts[1], w1, b1, &acts[2], &plans[1]));
  CHECK_OK(f->maxpool2d_plan(be, &mp, &acts[2], &acts[3], &plans[2]));
  CHECK_OK(f->conv2d_plan(be, &c2, &acts[3], w2, b2, &acts[4], &plans[3]));
  CHECK_OK(f->adaptive_avgpool2d_plan(be, &ap, &acts[4], &acts[5], &plans[4]));
  CHECK_OK(f->act_to_rows_plan(be, &acts[5], &acts[6], &plans[5]));
  size_t big = 0;
  for (int i = 0; i < 7; i++) big = acts[i].bytes > big ? acts[i].bytes : big;
  float *x = rand_host(acts[0].bytes / 4, -1, 1);
  void *in = dev(be, x, acts[0].bytes), *ping = dev(be, NULL, big), *pong = dev(be, NULL, big);
  void *out = dev(be, NULL, acts[6].bytes);
  const void *xs[6] = {in, ping, pong, ping, pong, ping};
  void *ys[6] = {ping, pong, ping, pong, ping, out};
  for (int i = 0; i < 6; i++) CHECK_OK(f->plan_run(plans[i], xs[i], ys[i]));
  size_t n = acts[6].bytes / 4;
  float *want = back(be, out, n);
  for (int rep = 0; rep < 3; rep++) {
    CHECK_OK(f->memset0(be, out, acts[6].bytes));
    CHECK_OK(graft__cuda_trunk_run(be, plans, 6, xs, ys));
    float *got = back(be, out, n);
    const char *names[] = {"trunk_run eager", "trunk_run captured", "trunk_run replayed"};
    expect_close(names[rep], got, want, n, 0);
    free(got);
  }
  char state[320];
  bool captured;
  printf("  trunk_run: %s\n", graft__cuda_trunk_state(plans[0], state, sizeof state, &captured));
  CHECK_MSG(captured && strstr(state, "2 replay(s)"),
            "trunk_run: the second and third runs must replay a captured CUDA graph: %s", state);
  for (int i = 0; i < 6; i++) f->plan_destroy(plans[i]);
  void *bufs[] = {in, ping, pong, out};
  for (int i = 0; i < 4; i++) f->free(be, bufs[i]);
  free(x), free(want), free(w1), free(b1), free(w2), free(b2);
}

static void classifier_ops(graft_backend *be) {
  const double lin_tol = be->precision == GRAFT_PRECISION_BF16 ? BF16_TOL : 1e-5;
  static const struct { int n, in, out, relu; } lin[] = {
      {1, 9216, 4096, 1}, {4, 25088, 64, 1}, {7, 4096, 10, 0}, {64, 4096, 1000, 1}, {3, 5, 2, 0}};
  const graft_backend_iface *f = be->iface;
  for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
    graft_linear_params p = {lin[i].in, lin[i].out, lin[i].relu};
    int n = lin[i].n;
    size_t nx = (size_t)n * p.in, nw = (size_t)p.in * p.out, ny = (size_t)n * p.out;
    float bound = 1.0f / sqrtf((float)p.in);
    float *x = rand_host(nx, -1, 1), *w = rand_host(nw, -bound, bound);
    float *b = rand_host((size_t)p.out, -bound, bound), *dyh = rand_host(ny, -1, 1);
    float *y = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc(p.out * 4);
    CHECK_OK(cpu->iface->linear_forward(cpu, &p, n, x, w, b, y));
    CHECK_OK(cpu->iface->linear_backward(cpu, &p, n, dyh, x, w, dx, dw, db));
    float *gx = dev(be, x, nx * 4), *gw = dev(be, w, nw * 4), *gb = dev(be, b, p.out * 4);
    float *gy = dev(be, NULL, ny * 4), *gdy = dev(be, dyh, ny * 4), *gdx = dev(be, NULL, nx * 4);
    float *gdw = dev(be, NULL, nw * 4), *gdb = dev(be, NULL, p.out * 4);
    CHECK_OK(f->linear_forward(be, &p, n, gx, gw, gb, gy));
    CHECK_OK(f->linear_backward(be, &p, n, gdy, gx, gw, gdx, gdw, gdb));
    char what[128];
    float *h;
    snprintf(what, sizeof what, "linear %d x %d -> %d%s forward", n, p.in, p.out,
             p.relu ? " relu" : "");
    expect_close(what, h = back(be, gy, ny), y, ny, lin_tol), free(h);
    snprintf(what, sizeof what, "linear %d x %d -> %d backward dx", n, p.in, p.out);
    expect_close(what, h = back(be, gdx, nx), dx, nx, lin_tol), free(h);
    snprintf(what, sizeof what, "linear %d x %d -> %d backward dw", n, p.in, p.out);
    expect_close(what, h = back(be, gdw, nw), dw, nw, lin_tol), free(h);
    snprintf(what, sizeof what, "linear %d x %d -> %d backward db (column sums)", n, p.in, p.out);
    expect_close(what, h = back(be, gdb, (size_t)p.out), db, (size_t)p.out, 0), free(h);
    /* ReLU backward, masked by one output on both: the CPU forward's (the
     * GPU's may differ in sign where it is near zero) */
    CHECK_OK(f->upload(be, gy, y, ny * 4));
    CHECK_OK(f->upload(be, gdy, dyh, ny * 4));
    CHECK_OK(cpu->iface->relu_backward(cpu, ny, y, dyh));
    CHECK_OK(f->relu_backward(be, ny, gy, gdy));
    h = back(be, gdy, ny);
    expect_close("relu backward", h, dyh, ny, 0), free(h);
    float *bufs[] = {gx, gw, gb, gy, gdy, gdx, gdw, gdb};
    for (int k = 0; k < 8; k++) f->free(be, bufs[k]);
    free(x), free(w), free(b), free(dyh), free(y), free(dx), free(dw), free(db);
  }

  /* dropout: identical masks and values, offsets past 2^32 included */
  static const struct { size_t count; float p; uint64_t seed, offset; } drops[] = {
      {4096 * 3, 0.5f, 42, 0}, {9216 * 2 + 7, 0.3f, 7, 5000000000ull}, {17, 0.9f, 1, 3}};
  for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
    size_t n = drops[i].count;
    float *x = rand_host(n, -1, 1), *g = rand_host(n, -1, 1);
    uint8_t *keep = malloc(n), *gkeep_h = malloc(n);
    float *gx = dev(be, x, n * 4), *gg = dev(be, g, n * 4);
    uint8_t *gkeep = dev(be, NULL, n);
    CHECK_OK(cpu->iface->dropout_forward(cpu, n, drops[i].p, drops[i].seed, drops[i].offset, x,
                                         keep));
    CHECK_OK(f->dropout_forward(be, n, drops[i].p, drops[i].seed, drops[i].offset, gx, gkeep));
    CHECK_OK(f->download(be, gkeep_h, gkeep, n));
    CHECK_MSG(memcmp(keep, gkeep_h, n) == 0, "dropout %zu p %g: masks differ", n, drops[i].p);
    float *h = back(be, gx, n);
    expect_close("dropout forward", h, x, n, 0), free(h);
    CHECK_OK(cpu->iface->dropout_backward(cpu, n, drops[i].p, keep, g));
    CHECK_OK(f->dropout_backward(be, n, drops[i].p, gkeep, gg));
    expect_close("dropout backward", h = back(be, gg, n), g, n, 0), free(h);
    f->free(be, gx), f->free(be, gg), f->free(be, gkeep);
    free(x), free(g), free(keep), free(gkeep_h);
  }

  /* softmax and cross-entropy */
  static const struct { int n, k; } sm[] = {{1, 1000}, {64, 2}, {5, 10}, {3, 1}};
  for (size_t i = 0; i < sizeof sm / sizeof sm[0]; i++) {
    int n = sm[i].n, k = sm[i].k;
    size_t nk = (size_t)n * k;
    float *x = rand_host(nk, -20, 20), *y = malloc(nk * 4), *dl = malloc(nk * 4);
    float *loss = malloc(n * 4);
    int32_t *labels = malloc(n * 4);
    for (int r = 0; r < n; r++) labels[r] = (r * 7 + 3) % k;
    CHECK_OK(cpu->iface->softmax_forward(cpu, n, k, x, y));
    CHECK_OK(cpu->iface->cross_entropy(cpu, n, k, x, labels, loss, dl));
    float *gx = dev(be, x, nk * 4), *gy = dev(be, NULL, nk * 4), *gdl = dev(be, NULL, nk * 4);
    float *gloss = dev(be, NULL, n * 4);
    int32_t *glab = dev(be, labels, n * 4);
    CHECK_OK(f->softmax_forward(be, n, k, gx, gy));
    CHECK_OK(f->cross_entropy(be, n, k, gx, glab, gloss, gdl));
    float *h;
    expect_close("softmax", h = back(be, gy, nk), y, nk, 1e-6), free(h);
    expect_close("cross-entropy loss", h = back(be, gloss, n), loss, n, 1e-6), free(h);
    expect_close("cross-entropy dlogits", h = back(be, gdl, nk), dl, nk, 1e-6), free(h);
    CHECK_OK(f->cross_entropy(be, n, k, gx, glab, gloss, NULL));
    labels[n - 1] = k; /* out of range */
    CHECK_OK(f->upload(be, glab, labels, n * 4));
    graft_status s = f->cross_entropy(be, n, k, gx, glab, gloss, gdl);
    CHECK_MSG(s == GRAFT_ERANGE, "bad label: %s (%s)", graft_strerror(s), graft_detail());
    printf("  bad label: %s\n", graft_detail());
    void *bufs[] = {gx, gy, gdl, gloss, glab};
    for (int j = 0; j < 5; j++) f->free(be, bufs[j]);
    free(x), free(y), free(dl), free(loss), free(labels);
  }

  /* SGD: bit for bit, with and without weight decay, first step and later */
  size_t n = 1000003;
  float *p0 = rand_host(n, -1, 1), *g = rand_host(n, -1, 1), *buf = rand_host(n, -1, 1);
  float *gp = dev(be, p0, n * 4), *gg = dev(be, g, n * 4), *gbuf = dev(be, buf, n * 4);
  graft_sgd_params steps[] = {{0.01f, 0.9f, 0, true}, {0.001f, 0.9f, 5e-4f, false},
                              {0.1f, 0.0f, 0, false}};
  for (size_t i = 0; i < 3; i++) {
    CHECK_OK(cpu->iface->sgd_step(cpu, n, &steps[i], p0, g, buf));
    CHECK_OK(f->sgd_step(be, n, &steps[i], gp, gg, gbuf));
    float *h;
    expect_close("sgd param", h = back(be, gp, n), p0, n, 0), free(h);
    expect_close("sgd momentum", h = back(be, gbuf, n), buf, n, 0), free(h);
  }
  f->free(be, gp), f->free(be, gg), f->free(be, gbuf);
  free(p0), free(g), free(buf);
}

static void memory(graft_backend *be) {
  const graft_backend_iface *f = be->iface;
  size_t sizes[] = {1, 4096, (size_t)70 << 20}; /* the last skips pinned staging */
  for (int i = 0; i < 3; i++) {
    unsigned char *h = malloc(sizes[i]), *r = malloc(sizes[i]);
    for (size_t j = 0; j < sizes[i]; j++) h[j] = (unsigned char)(j * 131 + i);
    void *d = dev(be, h, sizes[i]);
    CHECK_OK(f->download(be, r, d, sizes[i]));
    CHECK_MSG(memcmp(h, r, sizes[i]) == 0, "round trip of %zu bytes", sizes[i]);
    CHECK_OK(f->memset0(be, d, sizes[i]));
    CHECK_OK(f->download(be, r, d, sizes[i]));
    CHECK(r[0] == 0 && r[sizes[i] - 1] == 0);
    f->free(be, d);
    free(h), free(r);
  }
  void *huge;
  graft_status s = f->alloc(be, (size_t)1 << 50, &huge);
  CHECK_MSG(s == GRAFT_ENOMEM && strstr(graft_detail(), "smaller batch"),
            "1 PiB allocation: %s: %s", graft_strerror(s), graft_detail());
  printf("  out of memory: %s\n", graft_detail());
}

/* A random AlexNet predicts and trains on CUDA as on the CPU. */
static void whole_net(graft_backend *be, graft_precision prec) {
  graft_model *m;
  CHECK_OK(graft_model_create("alexnet", 5, &m));
  graft_rng r = {99, 0};
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    const graft_param *w = graft_arch_weight(&m->arch, graft_arch_layer_of(&m->arch, p));
    double bound = 1.0 / sqrt((double)(w->count / (size_t)w->dims[0]));
    float *v = graft_model_param(m, p);
    for (size_t j = 0; j < p->count; j++) v[j] = (float)((graft_rng_double(&r) * 2 - 1) * bound);
  }
  enum { B = 3 };
  float *x = rand_host((size_t)B * 3 * 224 * 224, -2, 2);
  float pc[B * 5], lc[B * 5], pg[B * 5], lg[B * 5], loss_c[B], loss_g[B];
  int32_t labels[B] = {0, 3, 4}, pred[B];
  graft_net *nc, *ng;
  CHECK_OK(graft_net_create(cpu, &m->arch, m->params, B, 224, 224, &nc));
  CHECK_OK(graft_net_create(be, &m->arch, m->params, B, 224, 224, &ng));
  CHECK_OK(graft_net_predict(nc, B, x, pc, lc));
  CHECK_OK(graft_net_predict(ng, B, x, pg, lg));
  const bool bf16 = prec == GRAFT_PRECISION_BF16;
  double tol = prec == GRAFT_PRECISION_FP32_STRICT ? 1e-4 : bf16 ? 4 * BF16_TOL : 1e-2;
  expect_close("alexnet logits (net_predict)", lg, lc, B * 5, tol);
  /* the whole forward (trunk, classifier, softmax) as one CUDA graph: the
   * first predict ran it eagerly, the second captures it, the third replays;
   * the same bits every time */
  for (int rep = 0; rep < 2; rep++) {
    float p2[B * 5], l2[B * 5];
    CHECK_OK(graft_net_predict(ng, B, x, p2, l2));
    expect_close(rep ? "alexnet logits, forward replayed" : "alexnet logits, forward captured", l2,
                 lg, B * 5, 0);
    expect_close("alexnet probabilities, the same bits", p2, pg, B * 5, 0);
  }
  char state[320];
  bool captured;
  printf("  whole forward: %s\n",
         graft__cuda_replay_state(ng->trunks[0].forward, state, sizeof state, &captured));
  CHECK_MSG(captured && strstr(state, "1 replay(s)"),
            "the second predict must capture the whole forward, the third replay it: %s", state);
  CHECK_OK(graft_net_train_init(nc, GRAFT_TRAIN_CLASSIFIER, 0.5f));
  CHECK_OK(graft_net_train_init(ng, GRAFT_TRAIN_CLASSIFIER, 0.5f));
  size_t fd = (size_t)m->arch.feature_dim, count = graft_net_train_count(nc);
  float *feat = malloc(B * fd * 4);
  CHECK_OK(graft_net_get_features(nc, B, feat)); /* the same features on both */
  CHECK_OK(graft_net_put_features(ng, B, feat));
  graft_sgd_params sgd = {0.01f, 0.9f, 1e-4f, false};
  for (int step = 0; step < 3; step++) {
    CHECK_OK(graft_net_put_features(nc, B, feat));
    CHECK_OK(graft_net_put_features(ng, B, feat));
    CHECK_OK(graft_net_train_step(nc, B, labels, &sgd, 7 + step, loss_c, pred));
    CHECK_OK(graft_net_train_step(ng, B, labels, &sgd, 7 + step, loss_g, pred));
    expect_close("alexnet training loss", loss_g, loss_c, B, bf16 ? BF16_TOL : 1e-4);
  }
  size_t head = m->arch.n_floats - m->arch.classifier_offset;
  float *hc = malloc(head * 4), *hg = malloc(head * 4), *mc = malloc(count * 4),
        *mg = malloc(count * 4);
  CHECK_OK(graft_net_get_classifier(nc, hc, mc));
  CHECK_OK(graft_net_get_classifier(ng, hg, mg));
  expect_close("alexnet classifier after 3 steps", hg, hc, head, bf16 ? 1e-3 : 1e-5);
  expect_close("alexnet momentum after 3 steps", mg, mc, count, bf16 ? BF16_TRAIN_TOL : 1e-4);
  graft_net_destroy(nc);
  graft_net_destroy(ng);
  graft_model_free(m);
  free(x), free(feat), free(hc), free(hg), free(mc), free(mg);
}

/* A CUDA backend on cuda:0 with this precision, convolution ladder and layout. */
static graft_backend *cuda_backend_for(graft_precision prec, graft_cudnn_path path,
                                       graft_cuda_layout layout) {
  graft_backend *be;
  CHECK_OK(graft__cuda_create(
      0, &(graft_backend_options){.precision = prec, .cudnn_path = path, .cuda_layout = layout},
      &be));
  return be;
}

int main(void) {
  graft_backend *be;
  graft_status s = graft__cuda_create(0, NULL, &be);
  if (s == GRAFT_ENODEV) graft_test_skip("cuda: %s", graft_detail());
  CHECK_OK(s);
  printf("%s\n", graft_backend_describe(be));
  cuda_reference_dump(be);
  cuda_reference_setup(be);
  CHECK_OK(graft_cpu_backend_create(NULL, &cpu));
  memory(be);
  classifier_ops(be);
  trunk_capture(be);
  /* the precision and the ladder are the backend's from its creation: one
   * backend each (the first stays: the reference description may be its) */
  for (int prec = 1; prec >= 0; prec--) {
    graft_backend *bp =
        cuda_backend_for((graft_precision)prec, GRAFT_CUDNN_PATH_AUTO, GRAFT_CUDA_LAYOUT_NCHW);
    trunk_ops(bp, "auto", (graft_precision)prec, false);
    whole_net(bp, (graft_precision)prec);
    graft_backend_destroy(bp);
  }
  /* every rung of the ladder, forced */
  const graft_cudnn_path paths[] = {GRAFT_CUDNN_PATH_FUSED, GRAFT_CUDNN_PATH_FALLBACK,
                                    GRAFT_CUDNN_PATH_SPLIT, GRAFT_CUDNN_PATH_LEGACY};
  for (int i = 0; i < 4; i++)
    for (int prec = 1; prec >= 0; prec--) {
      graft_backend *bp = cuda_backend_for((graft_precision)prec, paths[i], GRAFT_CUDA_LAYOUT_NCHW);
      trunk_ops(bp, graft_cudnn_path_name(paths[i]), (graft_precision)prec, false);
      graft_backend_destroy(bp);
    }
  /* channels-last in each precision, bf16 in NCHW too: every path, the
   * whole ladder and each rung forced; a whole net in each */
  static const struct {
    graft_precision prec;
    graft_cuda_layout layout;
  } others[] = {{GRAFT_PRECISION_FP32, GRAFT_CUDA_LAYOUT_NHWC},
                {GRAFT_PRECISION_FP32_STRICT, GRAFT_CUDA_LAYOUT_NHWC},
                {GRAFT_PRECISION_BF16, GRAFT_CUDA_LAYOUT_AUTO},
                {GRAFT_PRECISION_BF16, GRAFT_CUDA_LAYOUT_NCHW}};
  for (size_t o = 0; o < sizeof others / sizeof others[0]; o++) {
    graft_backend *bp = cuda_backend_for(others[o].prec, GRAFT_CUDNN_PATH_AUTO, others[o].layout);
    printf("%s\n", graft_backend_describe(bp));
    if (others[o].prec == GRAFT_PRECISION_BF16) {
      CHECK_MSG(others[o].layout != GRAFT_CUDA_LAYOUT_AUTO ||
                    graft__cuda_act_layout(bp) == (GRAFT__CUDA_NHWC | GRAFT__CUDA_BF16),
                "bf16's auto layout is NHWC");
      classifier_ops(bp);
    }
    trunk_capture(bp);
    trunk_ops(bp, "auto", others[o].prec, false);
    whole_net(bp, others[o].prec);
    graft_backend_destroy(bp);
    for (int i = 0; i < 4; i++) {
      bp = cuda_backend_for(others[o].prec, paths[i], others[o].layout);
      trunk_ops(bp, graft_cudnn_path_name(paths[i]), others[o].prec, true);
      graft_backend_destroy(bp);
    }
  }
  /* tuned plans (the fastest of the top configs, timed): fp32 NCHW, bf16 NHWC */
  for (int bf16 = 0; bf16 < 2; bf16++) {
    graft_precision prec = bf16 ? GRAFT_PRECISION_BF16 : GRAFT_PRECISION_FP32;
    graft_backend *bp;
    CHECK_OK(graft__cuda_create(0, &(graft_backend_options){.precision = prec, .cudnn_tune = true},
                                &bp));
    printf("tuned: %s\n", graft_backend_describe(bp));
    trunk_ops(bp, "auto", prec, true);
    graft_backend_destroy(bp);
  }
  tuned_from_disk();
  /* the last line, which bench/device-check.sh puts in its table */
  if (refused_notes)
    printf("NOTE: %d forced rung(s) refused by this GPU where %s planned one (above)\n",
           refused_notes, cuda_reference_name());
  cuda_reference_release();
  graft_backend_destroy(be);
  graft_backend_destroy(cpu);
  return graft_test_finish("cuda_ops");
}
