/* Small test harness: checks that fail loudly, skips that say why, a scratch
 * folder per test, and a runner for the PyTorch reference scripts. */
#ifndef GRAFT_TEST_HARNESS_H
#define GRAFT_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/backend.h"
#include "engine/base/status.h"

extern int graft_test_failures;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      graft_test_failures++;                                                     \
    }                                                                            \
  } while (0)

#define CHECK_MSG(cond, ...)                                                     \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                              \
      fputc('\n', stderr);                                                       \
      graft_test_failures++;                                                     \
    }                                                                            \
  } while (0)

/* A library call that must succeed; on failure print the detail and abort the test. */
#define CHECK_OK(expr)                                                           \
  do {                                                                           \
    graft_status s_ = (expr);                                                    \
    if (s_ != GRAFT_OK) {                                                        \
      fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #expr,   \
              graft_strerror(s_), graft_detail());                               \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

/* Print "SKIP: reason" and exit 77 (ctest reports the test as skipped). */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 1, 2)))
#endif
void graft_test_skip(const char *fmt, ...);

/* malloc (of at least one byte) that ends the test when memory runs out. */
void *graft_test_alloc(size_t bytes);

/* Exit status for main: prints a summary line. */
int graft_test_finish(const char *name);

/* The shared data folder ($GRAFT_DATA, else ../shared/data beside the
 * project). Returns NULL when it does not exist. */
const char *graft_test_data_dir(void);
/* data dir + "/hymenoptera", or skip the test saying why. */
const char *graft_test_hymenoptera_or_skip(void);

/* A fresh scratch folder for this test under the build tree. */
const char *graft_test_tmpdir(const char *name);

/* The python3 with torch/torchvision/h5py ($GRAFT_PYTHON, else the one
 * CMake found), NULL when there is none; or skip saying why. */
const char *graft_test_python(void);
const char *graft_test_python_or_skip(void);

/* A setting ctest (or the person running the test) gives in the environment:
 * NULL when unset or empty. The tests read the environment only here; the
 * library never does (its behaviour is options). */
const char *graft_test_env(const char *name);

/* Run "python script args..." (script relative to the source tree's test/ or
 * models/ as given, e.g. "test/ref_models.py"); returns its exit status. The
 * command line is printed. */
int graft_test_run_python(const char *script, const char *args);

/* ---- the one numeric comparison of the tests ---- */

/* n values, floats or doubles: one of the pointers is set (graft_test_f,
 * graft_test_d). */
typedef struct graft_test_values {
  const float *f;
  const double *d;
} graft_test_values;

static inline graft_test_values graft_test_f(const float *p) {
  return (graft_test_values){p, NULL};
}
static inline graft_test_values graft_test_d(const double *p) {
  return (graft_test_values){NULL, p};
}

/* How far a result a is from a reference b, each measure computed in double. */
typedef struct graft_test_diff {
  double rel;         /* ||a - b||_2 / ||b||_2; 0 when a == b == 0, infinite when only b is 0 */
  double max_abs;     /* the largest |a - b| (NaN wins), at index where */
  size_t where;
  double elem;        /* the largest |a - b| / scale[i] (NaN wins), at elem_where; without a
                       * scale, over max |b| (|a - b| itself where that is 0) */
  size_t elem_where;
  size_t non_finite;  /* elements of a that are NaN or infinite */
  size_t bits_differ; /* elements whose bits differ (a and b both floats; else 0) */
  size_t first_differ;
} graft_test_diff;

/* a against b over n elements; scale (NULL: none) as the elem measure says. */
graft_test_diff graft_test_compare(graft_test_values a, graft_test_values b,
                                   const double *scale, size_t n);

/* CPU backend options for a test program: the defaults, with the
 * convolution path and kernels ctest may give in GRAFT_CPU_CONV and
 * GRAFT_CPU_KERNELS (test/CMakeLists.txt runs cpu_ops once per path). An
 * unknown value ends the test. */
graft_backend_options graft_test_backend_options(void);

/* Path join into a static rotating buffer (for test code only). */
const char *graft_test_path(const char *dir, const char *name);

/* The last failure's detail is one line, contains n1 and n2 (either may be
 * NULL) and never the folder `hide` (details name no paths: the programs
 * put the file's name in front). */
void graft_test_check_detail(const char *what, const char *hide, const char *n1,
                             const char *n2);

/* graft_model_load of dir/name must fail with `want`, returning no model,
 * with a detail graft_test_check_detail accepts (hiding dir). */
void graft_test_expect_load_fail(const char *dir, const char *name, graft_status want,
                                 const char *n1, const char *n2);

#endif
