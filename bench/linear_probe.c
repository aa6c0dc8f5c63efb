/* linear_probe: the classifier's Linear layers alone, against the memory roof.
 *
 *   build/bin/linear_probe [alexnet|vgg16] [batch] [reps]
 *
 * Times the three inference Linear layers of AlexNet (9216->4096->4096->1000)
 * or VGG16 (25088->...) in sequence, as the classifier runs them, through
 * each CPU kernel: linear_forward (OpenBLAS sgemm split across the team),
 * linear_forward_rows (graft's fp32 loops) and linear_forward_f16w (fp16
 * weights, where the CPU has F16C); with 1 thread and with 2. Prints the
 * median over reps and the weight bytes read per second: at batch 1 each
 * weight is used once, so that is what the layer's speed comes down to (set
 * it against `build/bin/roofline`'s read bandwidth, measured alongside).
 * The weights (235-495 MB) are far larger than any cache: every run reads
 * them from memory, as a whole net's classifier does. Random weights; the
 * numbers are checked by test/test_cpu_fused.c and test_cpu_f16_weights.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend_impl.h"
#include "engine/base/rng.h"

typedef graft_status fwd32(graft_backend *, const graft_linear_params *, int, const float *,
                           const float *, const float *, float *);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "linear_probe: out of memory\n");
    exit(1);
  }
  return p;
}

int main(int argc, char **argv) {
  const char *arch = argc > 1 ? argv[1] : "alexnet";
  const int n = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 11;
  const int first = strcmp(arch, "vgg16") == 0 ? 25088 : 9216;
  const graft_linear_params lp[3] = {{first, 4096, true}, {4096, 4096, true}, {4096, 1000, false}};
  if (n < 1 || reps < 1) return 2;
  graft_rng rng = {7, 0};
  float *w[3], *b[3], *x[4];
  uint16_t *h[3];
  double bytes32 = 0;
  x[0] = xmalloc((size_t)n * first * sizeof(float));
  for (size_t i = 0; i < (size_t)n * first; i++) x[0][i] = (float)graft_rng_double(&rng);
  for (int l = 0; l < 3; l++) {
    size_t nw = (size_t)lp[l].in * lp[l].out;
    w[l] = xmalloc(nw * sizeof(float)), h[l] = xmalloc(nw * sizeof(uint16_t));
    b[l] = xmalloc((size_t)lp[l].out * sizeof(float));
    x[l + 1] = xmalloc((size_t)n * lp[l].out * sizeof(float));
    for (size_t i = 0; i < nw; i++) {
      w[l][i] = (float)((graft_rng_double(&rng) - 0.5) * 0.02);
      h[l][i] = 0x2000 | (uint16_t)(graft_rng_next(&rng) & 0x83ff); /* |w| ~ 2^-7 */
    }
    for (int o = 0; o < lp[l].out; o++) b[l][o] = 0.01f;
    bytes32 += 4.0 * nw;
  }
  printf("%s classifier, batch %d: %.0f MB of fp32 weights (%.0f MB as fp16)\n", arch, n,
         bytes32 / 1e6, bytes32 / 2e6);
  printf("%-28s %8s %10s %12s\n", "kernel", "threads", "ms", "weight GB/s");
  for (int threads = 1; threads <= 2; threads++) {
    /* fp16 weights where the backend has them (it refuses without F16C) */
    graft_backend_options o = {.threads = threads, .precision = GRAFT_PRECISION_FP16_WEIGHTS};
    graft_backend *be = NULL;
    graft_status made = graft_cpu_backend_create(&o, &be);
    if (made == GRAFT_ENODEV) {
      o.precision = GRAFT_PRECISION_FP32;
      made = graft_cpu_backend_create(&o, &be);
    }
    if (made != GRAFT_OK) {
      fprintf(stderr, "linear_probe: %s\n", graft_detail());
      return 1;
    }
    if (threads == 1) printf("backend: %s\n", graft_backend_describe(be));
    for (int k = 0; k < 3; k++) {
      const char *name[3] = {"linear_forward (OpenBLAS)", "linear_forward_rows", "fp16 weights"};
      fwd32 *f = k == 0 ? be->iface->linear_forward : be->iface->linear_forward_rows;
      if (k == 2 && o.precision != GRAFT_PRECISION_FP16_WEIGHTS) continue;
      double *t = xmalloc((size_t)reps * sizeof *t);
      for (int r = -2; r < reps; r++) {
        double t0 = now();
        for (int l = 0; l < 3; l++) {
          graft_status s = k == 2 ? be->iface->linear_forward_f16w(be, &lp[l], n, x[l], h[l],
                                                                   b[l], x[l + 1])
                                  : f(be, &lp[l], n, x[l], w[l], b[l], x[l + 1]);
          if (s != GRAFT_OK) {
            fprintf(stderr, "linear_probe: %s\n", graft_detail());
            return 1;
          }
        }
        if (r >= 0) t[r] = now() - t0;
      }
      qsort(t, (size_t)reps, sizeof *t, cmp);
      double med = t[reps / 2], by = k == 2 ? bytes32 / 2 : bytes32;
      printf("%-28s %8d %10.2f %12.2f\n", name[k], threads, med * 1e3, by / med / 1e9);
      free(t);
    }
    graft_backend_destroy(be);
  }
  for (int l = 0; l < 3; l++) free(w[l]), free(h[l]), free(b[l]), free(x[l + 1]);
  free(x[0]);
  return 0;
}
