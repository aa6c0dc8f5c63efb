/* Timings: one monotonic clock and one median, for the library, the
 * programs, the benchmarks and the tests. */
#ifndef GRAFT_CLOCK_H
#define GRAFT_CLOCK_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on CLOCK_MONOTONIC: for intervals and deadlines, never dates. */
static inline double graft_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* qsort's order of doubles, ascending. */
static inline int graft_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of n > 0 values; sorts v in place (v[0] is then the least). */
static inline double graft_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, graft_cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
