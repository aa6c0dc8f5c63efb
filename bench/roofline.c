#define _POSIX_C_SOURCE 200809L /* clock_gettime */
/* roofline: the two roofs bench/compare holds graft's speeds against,
 * measured on this machine with the libraries graft links.
 *
 *   compute: single-precision GEMM of the OpenBLAS graft links (square
 *            --size matrices, OpenBLAS's own --threads): what a convolution
 *            or Linear layer run as one big GEMM can reach.
 *   memory:  bandwidth to DRAM of --threads OpenMP threads over arrays of
 *            --mb MB each (well past the caches): read (a sum), copy and
 *            triad (a = b + s*c), counted as STREAM counts them (bytes
 *            named in the source, no write-allocate). What bounds the
 *            classifier, whose weights are read once per batch.
 *
 * Each figure is the median of --reps timed runs after one untimed run; the
 * best run is printed too. One JSON object on stdout with --json. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine/base/clock.h"

/* Median and best (shortest) of n times; v is sorted. */
static void stats(double *v, int n, double *median, double *best) {
  *median = graft_median(v, (size_t)n);
  *best = v[0];
}

typedef struct measure {
  double median, best; /* GFLOP/s or GB/s */
} measure;

static measure sgemm_rate(int n, int reps, float *a, float *b, float *c) {
  double t[64];
  for (int r = -1; r < reps; r++) {
    double t0 = graft_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    if (r >= 0) t[r] = graft_now() - t0;
  }
  double med, best, flops = 2.0 * n * n * (double)n;
  stats(t, reps, &med, &best);
  return (measure){flops / med / 1e9, flops / best / 1e9};
}

enum kernel { READ, COPY, TRIAD };

/* One pass of a kernel over n floats per array; returns the bytes it names. */
static double pass(enum kernel k, size_t n, float *a, float *b, float *c, float *sink) {
  long long len = (long long)n;
  if (k == READ) {
    /* 16 independent sums per thread: one chain of dependent adds would be
     * bound by the add's latency, not by memory. */
    float sum = 0;
#pragma omp parallel reduction(+ : sum)
    {
      float acc[16] = {0};
#pragma omp for schedule(static)
      for (long long i = 0; i < len / 16; i++)
        for (int j = 0; j < 16; j++) acc[j] += a[i * 16 + j];
      for (int j = 0; j < 16; j++) sum += acc[j];
    }
    *sink += sum;
    return 4.0 * (double)(len / 16 * 16);
  }
  if (k == COPY) {
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < len; i++) c[i] = a[i];
    return 8.0 * n;
  }
#pragma omp parallel for simd schedule(static)
  for (long long i = 0; i < len; i++) a[i] = b[i] + 0.5f * c[i];
  return 12.0 * n;
}

static measure bandwidth(enum kernel k, size_t n, int reps, float *a, float *b, float *c,
                         float *sink) {
  double t[64], bytes = 0;
  for (int r = -1; r < reps; r++) {
    double t0 = graft_now();
    bytes = pass(k, n, a, b, c, sink);
    if (r >= 0) t[r] = graft_now() - t0;
  }
  double med, best;
  stats(t, reps, &med, &best);
  return (measure){bytes / med / 1e9, bytes / best / 1e9};
}

static long arg(int argc, char **argv, const char *name, long def, long lo, long hi) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) {
      char *end;
      long v = strtol(argv[i + 1], &end, 10);
      if (*end || v < lo || v > hi) {
        fprintf(stderr, "roofline: %s: expected an integer in [%ld, %ld], got \"%s\"\n", name,
                lo, hi, argv[i + 1]);
        exit(2);
      }
      return v;
    }
  return def;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      puts("usage: roofline [--threads N (2)] [--size N (2048)] [--mb MB (128)] [--reps N (5)] "
           "[--json]");
      return 0;
    }
  int threads = (int)arg(argc, argv, "--threads", 2, 1, 1024);
  int n = (int)arg(argc, argv, "--size", 2048, 64, 16384);
  size_t mb = (size_t)arg(argc, argv, "--mb", 128, 1, 65536);
  int reps = (int)arg(argc, argv, "--reps", 5, 1, 64);
  int json = 0;
  for (int i = 1; i < argc; i++) json |= strcmp(argv[i], "--json") == 0;

  size_t gemm = (size_t)n * n, len = mb * 1024 * 1024 / sizeof(float);
  size_t most = gemm > len ? gemm : len;
  float *a = malloc(most * sizeof *a), *b = malloc(most * sizeof *b), *c = malloc(most * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "roofline: out of memory (3 arrays of %zu MB)\n", most * 4 >> 20);
    return 1;
  }
  omp_set_num_threads(threads);
  /* First touch by the threads that will stream them (pages on their node). */
  long long total = (long long)most;
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < total; i++) {
    a[i] = (float)(i % 1009) / 1009.0f;
    b[i] = (float)(i % 997) / 997.0f;
    c[i] = 0;
  }
  openblas_set_num_threads(threads);
  measure g = sgemm_rate(n, reps, a, b, c);
  openblas_set_num_threads(1);
  float sink = 0;
  measure rd = bandwidth(READ, len, reps, a, b, c, &sink);
  measure cp = bandwidth(COPY, len, reps, a, b, c, &sink);
  measure tr = bandwidth(TRIAD, len, reps, a, b, c, &sink);
  const char *cfg = openblas_get_config(), *core = openblas_get_corename();
  if (json) {
    printf("{\"threads\": %d, \"sgemm_size\": %d, \"sgemm_gflops\": %.1f, "
           "\"sgemm_gflops_best\": %.1f, \"openblas\": \"%s\", \"openblas_core\": \"%s\", "
           "\"array_mb\": %zu, \"read_gbs\": %.2f, \"read_gbs_best\": %.2f, \"copy_gbs\": %.2f, "
           "\"copy_gbs_best\": %.2f, \"triad_gbs\": %.2f, \"triad_gbs_best\": %.2f, "
           "\"reps\": %d}\n",
           threads, n, g.median, g.best, cfg, core, mb, rd.median, rd.best, cp.median, cp.best,
           tr.median, tr.best, reps);
  } else {
    printf("threads %d; OpenBLAS %s (%s)\n", threads, cfg, core);
    printf("sgemm %dx%dx%d: %.1f GFLOP/s (best %.1f)\n", n, n, n, g.median, g.best);
    printf("memory, %zu MB arrays: read %.2f GB/s (best %.2f), copy %.2f (%.2f), triad %.2f "
           "(%.2f)\n", mb, rd.median, rd.best, cp.median, cp.best, tr.median, tr.best);
  }
  free(a);
  free(b);
  free(c);
  return sink == -1.0f; /* keeps the read kernel's sum alive; never true */
}
