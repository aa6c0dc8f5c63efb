/* --precision fp16-weights on the CPU (engine/cpu/linear_f16.c, engine/net.c):
 *  - graft__float_to_half gives F16C's bits (vcvtps2ph, round to nearest
 *    even) on random floats of every magnitude and on the special values;
 *  - linear_forward_f16w, AVX2 and generic kernels, against a double
 *    reference with the fp32 weights, within the bound derived in
 *    linear_f16.c: per output 2^-11 sum|w x| + 2^-25 sum|x| for the weights'
 *    rounding, plus DOT_TOL sum|terms| for fp32's sums;
 *  - a net (AlexNet, random weights, 1000 classes): fp16-weights logits
 *    against fp32 ones, the relative L2 error under NET_TOL and the same
 *    top-1; a net with fp16 weights refuses to train.
 * Every bound check first rejects a copy with one value moved by twice its
 * bound. Skips (77) on a CPU without F16C, where the backend refuses. */
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/base/rng.h"
#include "engine/net.h"
#include "engine/net_internal.h"
#include "harness.h"
#include "models/model.h"

#define DOT_TOL 1e-5 /* fp32 sums of <= ~10^4 products against double, per sum |terms| */
/* Logits of a net, relative L2: each of the three Linear layers moves its
 * outputs by at most 2^-11 (4.9e-4) of sum|w x| per output, roundings of
 * both signs that mostly cancel; 1e-2 is the bound bench/compare also uses. */
#define NET_TOL 1e-2

static graft_rng rng = {0xf16ULL, 0};

static float *falloc(size_t n) { return graft_test_alloc(n * sizeof(float)); }
static double *dalloc(size_t n) { return graft_test_alloc(n * sizeof(double)); }

static float *frand(size_t n, double lo, double hi) {
  float *x = falloc(n);
  for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * graft_rng_double(&rng));
  return x;
}

static graft_backend *backend(const char *kernels, graft_precision prec) {
  graft_backend_options o = {.threads = 2, .precision = prec};
  CHECK_OK(graft_cpu_kernels_parse(kernels, &o.cpu_kernels));
  graft_backend *be = NULL;
  CHECK_OK(graft_cpu_backend_create(&o, &be));
  return be;
}

__attribute__((target("f16c"))) static uint16_t f16c_half(float f) {
  return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}

static void test_conversion(void) {
  size_t bad = 0, n = 0;
  const float special[] = {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, 1e9f, -1e9f,
                           0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.7fep-15f,
                           INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++, n++)
    bad += graft__float_to_half(special[i]) != f16c_half(special[i]);
  for (int i = 0; i < 2000000; i++, n++) {
    uint32_t u = (uint32_t)graft_rng_next(&rng);
    float f;
    memcpy(&f, &u, sizeof f);
    if (isnan(f)) continue;
    bad += graft__float_to_half(f) != f16c_half(f);
  }
  printf("%-52s %zu of %zu differ %s\n", "float_to_half vs F16C", bad, n, bad ? "FAIL" : "ok");
  if (bad) graft_test_failures++;
}

/* y against ref within k * bound[i] (k = 1: the check; k = 2 on a copy with
 * one element moved by twice its bound: the control, which must fail). */
static bool within(const float *y, const double *ref, const double *bound, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(fabs((double)y[i] - ref[i]) <= bound[i])) return false;
  return true;
}

static void test_layer(graft_backend *be, const char *kind, int n, int in, int out, bool relu) {
  graft_linear_params lp = {in, out, relu};
  const double ws = 1.0 / sqrt(in);
  float *x = frand((size_t)n * in, 0, 2), *w = frand((size_t)out * in, -ws, ws);
  float *b = frand(out, -0.2, 0.2), *y = falloc((size_t)n * out);
  for (int i = 0; i < in; i += 7) w[i] = (float)(w[i] * 1e-4); /* subnormal in fp16 */
  uint16_t *h = graft_test_alloc((size_t)out * in * sizeof *h);
  for (size_t i = 0; i < (size_t)out * in; i++) h[i] = graft__float_to_half(w[i]);
  double *ref = dalloc((size_t)n * out), *bound = dalloc((size_t)n * out);
  double worst = 0;
  for (int r = 0; r < n; r++)
    for (int o = 0; o < out; o++) {
      double s = b[o], wx = 0, ax = 0;
      for (int j = 0; j < in; j++) {
        double xv = x[(size_t)r * in + j], t = xv * w[(size_t)o * in + j];
        s += t, wx += fabs(t), ax += fabs(xv);
      }
      size_t e = (size_t)r * out + o;
      ref[e] = relu && s < 0 ? 0 : s;
      bound[e] = 0x1p-11 * wx + 0x1p-25 * ax + DOT_TOL * (wx + fabs((double)b[o])) + 1e-30;
    }
  CHECK_OK(be->iface->linear_forward_f16w(be, &lp, n, x, h, b, y));
  for (size_t i = 0; i < (size_t)n * out; i++) {
    double q = fabs((double)y[i] - ref[i]) / bound[i];
    if (q > worst) worst = q;
  }
  size_t i = graft_rng_below(&rng, (size_t)n * out);
  float keep = y[i];
  y[i] = (float)(ref[i] + 2 * bound[i]);
  bool control = within(y, ref, bound, (size_t)n * out);
  y[i] = keep;
  bool ok = within(y, ref, bound, (size_t)n * out);
  printf("f16w %-7s n%d %dx%d%s: worst |err| / bound %.3f %s%s\n", kind, n, in, out,
         relu ? " relu" : "", worst, ok ? "ok" : "FAIL",
         control ? " CONTROL NOT REJECTED" : "");
  if (!ok || control) graft_test_failures++;
  free(x), free(w), free(b), free(y), free(h), free(ref), free(bound);
}

static void test_net(void) {
  enum { B = 3 };
  graft_model *m;
  CHECK_OK(graft_model_create("alexnet", 1000, &m));
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    const graft_param *w = graft_arch_weight(&m->arch, graft_arch_layer_of(&m->arch, p));
    double bound = 1.0 / sqrt((double)(w->count / (size_t)w->dims[0]));
    float *v = graft_model_param(m, p);
    for (size_t j = 0; j < p->count; j++) v[j] = (float)((graft_rng_double(&rng) * 2 - 1) * bound);
  }
  graft_backend *b32 = backend("auto", GRAFT_PRECISION_FP32);
  graft_backend *b16 = backend("auto", GRAFT_PRECISION_FP16_WEIGHTS);
  graft_net *n32, *n16;
  CHECK_OK(graft_net_create(b32, &m->arch, m->params, B, 96, 96, &n32));
  CHECK_OK(graft_net_create(b16, &m->arch, m->params, B, 96, 96, &n16));
  const size_t k = 1000;
  float *x = frand((size_t)B * 3 * 96 * 96, -2, 2);
  float *p32 = falloc(B * k), *l32 = falloc(B * k), *p16 = falloc(B * k), *l16 = falloc(B * k);
  CHECK_OK(graft_net_predict(n32, B, x, p32, l32));
  CHECK_OK(graft_net_predict(n16, B, x, p16, l16));
  graft_test_diff d = graft_test_compare(graft_test_f(l16), graft_test_f(l32), NULL, B * k);
  int agree = 0;
  for (int r = 0; r < B; r++) {
    size_t a = 0, c = 0;
    for (size_t j = 1; j < k; j++) {
      if (l32[r * k + j] > l32[r * k + a]) a = j;
      if (l16[r * k + j] > l16[r * k + c]) c = j;
    }
    agree += a == c;
  }
  bool ok = d.non_finite == 0 && d.rel <= NET_TOL && agree == B;
  printf("f16w net alexnet logits vs fp32: rel %.2e (tol %.0e), top-1 %d of %d %s\n", d.rel,
         NET_TOL, agree, B, ok ? "ok" : "FAIL");
  if (!ok) graft_test_failures++;
  graft_status s = graft_net_train_init(n16, GRAFT_TRAIN_CLASSIFIER, 0.5f);
  printf("f16w net refuses to train: %s %s\n", graft_detail(),
         s == GRAFT_EUNSUPPORTED ? "ok" : "FAIL");
  if (s != GRAFT_EUNSUPPORTED) graft_test_failures++;
  graft_clear_detail();
  graft_net_destroy(n32), graft_net_destroy(n16);
  graft_backend_destroy(b32), graft_backend_destroy(b16);
  free(x), free(p32), free(l32), free(p16), free(l16);
  graft_model_free(m);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  unsigned ca, cb, cc, cd; /* F16C: CPUID leaf 1, ECX bit 29 (clang's builtin lacks it) */
  if (!(__get_cpuid(1, &ca, &cb, &cc, &cd) && (cc & (1u << 29)))) {
    graft_backend_options o = {.precision = GRAFT_PRECISION_FP16_WEIGHTS};
    graft_backend *be = NULL;
    CHECK(graft_cpu_backend_create(&o, &be) == GRAFT_ENODEV && !be);
    printf("refused without F16C: %s\n", graft_detail());
    graft_test_skip("this CPU has no F16C");
  }
  test_conversion();
  graft_backend *gen = backend("generic", GRAFT_PRECISION_FP16_WEIGHTS);
  graft_backend *be = backend("auto", GRAFT_PRECISION_FP16_WEIGHTS);
  printf("backend: %s\n", graft_backend_describe(be));
  const int shapes[][3] = {{1, 9216, 300}, {1, 4096, 1000}, {4, 37, 19}, {3, 1000, 67},
                           {8, 129, 33}, {9, 2053, 130}, {1, 4096, 2}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int relu = 0; relu < 2; relu++) {
      test_layer(be, "avx2", shapes[i][0], shapes[i][1], shapes[i][2], relu);
      test_layer(gen, "generic", shapes[i][0], shapes[i][1], shapes[i][2], relu);
    }
  graft_backend_destroy(be);
  graft_backend_destroy(gen);
  test_net();
  return graft_test_finish("cpu_f16_weights");
}
