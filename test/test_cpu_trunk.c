/* Whole trunks, planned from the layer tables of models/arch.h with random
 * weights, through every CPU convolution path (the default, with the ISA's
 * Winograd; oneDNN direct and auto; im2col+GEMM; graft's Winograd with each
 * tile size, where it can run; tuned, which times each layer's candidates
 * and prints what it chose): each against a double-precision reference
 * and the others against the GEMM one, relative L2 error <= 1e-4 (Winograd's
 * transforms cost bits: VGG16 at 224x224, 13 of its convolutions, is the
 * case that shows how many). Sizes other than
 * 224x224 exercise the adaptive average pooling (256x300 gives AlexNet a 7x8
 * map pooled to 6x6; VGG16 at 64x64 a 2x2 map stretched to 7x7). Also the
 * backend's refusals: device names, convolution paths, misfit windows. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpu_ref.h"
#include "engine/devices.h"
#include "models/arch.h"

static const char *paths[] = {"gemm",           "winograd",          "direct",
                              "auto",           "graft-winograd-f2", "graft-winograd-f4",
                              "graft-winograd-f6", "tuned"};
#define N_PATHS (int)(sizeof paths / sizeof *paths)
#define GEMM 0

/* He-uniform weights and small biases for every convolution, in trunk order. */
static float **random_weights(const graft_arch *a, graft_rng *r, float ***biases) {
  float **w = calloc(a->n_trunk, sizeof *w), **b = calloc(a->n_trunk, sizeof *b);
  if (!w || !b) exit(1);
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    if (l->kind != GRAFT_LAYER_CONV2D) continue;
    const graft_conv2d_params *p = &l->u.conv;
    size_t fan_in = (size_t)p->in_c * p->kernel * p->kernel;
    float lim = sqrtf(6.0f / (float)fan_in);
    w[i] = ref_alloc_floats(fan_in * p->out_c);
    b[i] = ref_alloc_floats(p->out_c);
    ref_fill(r, w[i], fan_in * p->out_c, -lim, lim);
    ref_fill(r, b[i], p->out_c, -0.1f, 0.1f);
  }
  *biases = b;
  return w;
}

/* The trunk in double; returns rows [n, c*h*w] (caller frees), *dim their width. */
static double *reference_trunk(const graft_arch *a, float **w, float **b, int n, int h, int wd,
                               const float *x, int *dim) {
  int c = 3;
  double *cur = ref_alloc_doubles((size_t)n * c * h * wd);
  for (size_t i = 0; i < (size_t)n * c * h * wd; i++) cur[i] = x[i];
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    int oc = c, oh = h, ow = wd;
    if (l->kind == GRAFT_LAYER_CONV2D) {
      oc = l->u.conv.out_c;
      oh = graft_out_dim(h, l->u.conv.kernel, l->u.conv.stride, l->u.conv.pad);
      ow = graft_out_dim(wd, l->u.conv.kernel, l->u.conv.stride, l->u.conv.pad);
    } else if (l->kind == GRAFT_LAYER_MAXPOOL2D) {
      oh = graft_out_dim(h, l->u.pool.kernel, l->u.pool.stride, 0);
      ow = graft_out_dim(wd, l->u.pool.kernel, l->u.pool.stride, 0);
    } else {
      oh = l->u.avgpool.out_h;
      ow = l->u.avgpool.out_w;
    }
    double *next = ref_alloc_doubles((size_t)n * oc * oh * ow);
    if (l->kind == GRAFT_LAYER_CONV2D)
      ref_conv(&l->u.conv, n, h, wd, cur, w[i], b[i], next);
    else if (l->kind == GRAFT_LAYER_MAXPOOL2D)
      ref_maxpool(&l->u.pool, n * c, h, wd, cur, next);
    else
      ref_adaptive_avg(n * c, h, wd, oh, ow, cur, next);
    free(cur);
    cur = next;
    c = oc, h = oh, wd = ow;
  }
  *dim = c * h * wd;
  return cur;
}

/* The trunk on a backend: plan every layer, run them in order; with `say`,
 * print how each convolution runs. */
static void backend_trunk(graft_backend *be, const graft_arch *a, float **w, float **b, int n,
                          int h, int wd, const float *x, float *rows, bool say) {
  ref_act t = ref_to_act(be, n, 3, h, wd, x, false);
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    ref_act next = {{0}, NULL};
    graft_plan *plan;
    if (l->kind == GRAFT_LAYER_CONV2D)
      CHECK_OK(be->iface->conv2d_plan(be, &l->u.conv, &t.a, w[i], b[i], &next.a, &plan));
    else if (l->kind == GRAFT_LAYER_MAXPOOL2D)
      CHECK_OK(be->iface->maxpool2d_plan(be, &l->u.pool, &t.a, &next.a, &plan));
    else
      CHECK_OK(be->iface->adaptive_avgpool2d_plan(be, &l->u.avgpool, &t.a, &next.a, &plan));
    if (say && l->kind == GRAFT_LAYER_CONV2D) {
      char how[256];
      be->iface->plan_describe(plan, how, sizeof how);
      printf("  layer %2d %4d->%-4d @%dx%d: %s\n", i, l->u.conv.in_c, l->u.conv.out_c, t.a.h,
             t.a.w, how);
    }
    ref_run(be, plan, &t, &next);
    ref_act_free(be, &t);
    t = next;
  }
  ref_from_act(be, &t, rows);
}

static void run_case(graft_backend *const *bes, const char *arch, int n, int h, int w) {
  graft_arch a;
  CHECK_OK(graft_arch_init(&a, arch, 10));
  graft_rng r = {7, 0};
  float **bias, **wts = random_weights(&a, &r, &bias);
  size_t nx = (size_t)n * 3 * h * w;
  float *x = ref_alloc_floats(nx);
  ref_fill(&r, x, nx, -2, 2);
  int dim;
  double *ref = reference_trunk(&a, wts, bias, n, h, w, x, &dim);
  size_t rows_n = (size_t)n * dim;
  float *rows[N_PATHS];
  for (int p = 0; p < N_PATHS; p++) {
    rows[p] = NULL;
    if (!bes[p]) continue;
    rows[p] = ref_alloc_floats(rows_n);
    backend_trunk(bes[p], &a, wts, bias, n, h, w, x, rows[p], strcmp(paths[p], "tuned") == 0);
    graft_test_diff d = graft_test_compare(graft_test_f(rows[p]), graft_test_d(ref), NULL, rows_n);
    double rel = d.rel;
    size_t zeros = 0;
    for (size_t i = 0; i < rows_n; i++) zeros += ref[i] == 0;
    printf("%s trunk n%d %dx%d, %-17s vs double: rel %.2e max %.2e (%d features, %.0f%% zero)\n",
           arch, n, h, w, paths[p], rel, d.max_abs, dim,
           100.0 * zeros / rows_n);
    CHECK_MSG(rel <= 1e-4, "%s %s rel %.3e", arch, paths[p], rel);
  }
  for (int p = GEMM + 1; p < N_PATHS; p++) {
    if (!bes[p]) continue;
    double rel =
        graft_test_compare(graft_test_f(rows[p]), graft_test_f(rows[GEMM]), NULL, rows_n).rel;
    printf("%s trunk n%d %dx%d, %-17s vs gemm: rel %.2e\n", arch, n, h, w, paths[p], rel);
    CHECK_MSG(rel <= 1e-4, "%s %s vs gemm rel %.3e", arch, paths[p], rel);
  }
  for (int p = 0; p < N_PATHS; p++) free(rows[p]);
  for (int i = 0; i < a.n_trunk; i++) free(wts[i]), free(bias[i]);
  free(wts), free(bias), free(x), free(ref);
}

/* Whose Winograd the default path runs (engine/cpu/conv.c decides it in
 * one place): oneDNN's on AVX-512, graft's on AVX2 + FMA with oneDNN's
 * 8-channel layout, none with the generic kernels, where graft-winograd is
 * refused. */
static void test_winograd_choice(void) {
  graft_backend *be = ref_cpu_backend("winograd");
  const char *d = graft_backend_describe(be);
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  bool graft = strstr(d, "graft Winograd") != NULL;
  if (strstr(d, "avx512"))
    CHECK_MSG(!graft && strstr(d, "oneDNN Winograd"), "AVX-512: %s", d);
  else
    CHECK_MSG(graft == avx2, "AVX2 %s: %s", avx2 ? "and FMA" : "missing", d);
  graft_backend_destroy(be);
  graft_backend_options o = {.threads = 2, .cpu_kernels = GRAFT_CPU_KERNELS_GENERIC};
  be = NULL;
  CHECK_OK(graft_cpu_backend_create(&o, &be));
  CHECK_MSG(!strstr(graft_backend_describe(be), "graft Winograd"), "generic kernels: %s",
            graft_backend_describe(be));
  graft_backend_destroy(be);
  o.cpu_conv = GRAFT_CPU_CONV_GRAFT_WINOGRAD;
  be = NULL;
  CHECK(graft_cpu_backend_create(&o, &be) == GRAFT_ENODEV && be == NULL);
  CHECK(strstr(graft_detail(), "graft-winograd") != NULL);
}

/* Refusals: device names, convolution paths, windows that do not fit. */
static void test_errors(graft_backend *be) {
  graft_backend *other = NULL;
  graft_backend_note note = {GRAFT_FALLBACK_NO_GPU, "unset"};
  CHECK_OK(graft_backend_create(&(graft_backend_options){.device = "auto", .threads = 1}, &other,
                                &note));
#ifndef GRAFT_HAVE_CUDA
  CHECK(note.kind == GRAFT_FALLBACK_NONE && note.line == NULL &&
        strcmp(graft_backend_name(other), "cpu") == 0);
  graft_backend_destroy(other);
  CHECK(graft_backend_create(&(graft_backend_options){.device = "cuda:1"}, &other, NULL) ==
            GRAFT_ENODEV &&
        other == NULL);
  CHECK(strstr(graft_detail(), "no CUDA support") != NULL);
#else
  /* a GPU and nothing to say, or the CPU and why: no driver (nothing is
   * wrong) only where the line says so */
  bool on_cpu = strcmp(graft_backend_name(other), "cpu") == 0;
  CHECK(on_cpu == (note.kind != GRAFT_FALLBACK_NONE) && on_cpu == (note.line != NULL));
  if (on_cpu) {
    printf("auto: %s (%s)\n", note.line,
           note.kind == GRAFT_FALLBACK_NO_DRIVER ? "no driver: quiet" : "said");
    CHECK((note.kind == GRAFT_FALLBACK_NO_DRIVER) == (strstr(note.line, "no NVIDIA driver") != NULL));
  }
  graft_backend_destroy(other);
#endif
  CHECK(graft_backend_create(&(graft_backend_options){.device = "tpu"}, &other, NULL) ==
            GRAFT_EINVAL &&
        other == NULL);
  CHECK(strstr(graft_detail(), "tpu") != NULL);
  CHECK(graft_backend_create(&(graft_backend_options){.device = "cuda:x"}, &other, NULL) ==
        GRAFT_EINVAL);
  graft_cpu_conv path = GRAFT_CPU_CONV_DIRECT;
  CHECK(graft_cpu_conv_parse("fastest", &path) == GRAFT_EINVAL && path == GRAFT_CPU_CONV_DIRECT);
  CHECK(strstr(graft_detail(), "fastest") != NULL);
  CHECK(graft_cpu_backend_create(&(graft_backend_options){.cpu_conv = (graft_cpu_conv)99},
                                 &other) == GRAFT_EINVAL &&
        other == NULL);

  float w[64 * 3 * 121] = {0}, b[64] = {0};
  graft_act in = {1, 3, 8, 8, GRAFT_LAYOUT_NCHW, 3 * 8 * 8 * sizeof(float)}, out;
  graft_plan *plan = NULL;
  graft_conv2d_params conv = {3, 64, 11, 4, 1, true};
  CHECK(be->iface->conv2d_plan(be, &conv, &in, w, b, &out, &plan) == GRAFT_ESHAPE);
  CHECK(strstr(graft_detail(), "smaller") != NULL);
  graft_pool2d_params pool = {3, 0};
  CHECK(be->iface->maxpool2d_plan(be, &pool, &in, &out, &plan) == GRAFT_EINVAL);
  graft_adaptive_avgpool_params avg = {0, 6};
  CHECK(be->iface->adaptive_avgpool2d_plan(be, &avg, &in, &out, &plan) == GRAFT_EINVAL);
  CHECK(plan == NULL);
}

int main(void) {
  graft_backend *bes[N_PATHS];
  for (int i = 0; i < N_PATHS; i++) {
    graft_backend_options o = {.threads = 2};
    CHECK_OK(graft_cpu_conv_parse(paths[i], &o.cpu_conv));
    bes[i] = NULL;
    graft_status s = graft_cpu_backend_create(&o, &bes[i]);
    if (s == GRAFT_ENODEV && strncmp(paths[i], "graft-", 6) == 0)
      printf("%s: not here (%s)\n", paths[i], graft_detail());
    else
      CHECK_OK(s);
  }
  test_winograd_choice();
  for (int i = 0; i < N_PATHS; i++)
    if (bes[i]) test_errors(bes[i]);
  run_case(bes, "alexnet", 1, 224, 224);
  run_case(bes, "alexnet", 2, 256, 300);
  run_case(bes, "vgg16", 1, 64, 64);
  run_case(bes, "vgg16", 1, 224, 224);
  for (int i = 0; i < N_PATHS; i++)
    if (bes[i]) graft_backend_destroy(bes[i]);
  return graft_test_finish("cpu_trunk");
}
