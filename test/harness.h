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

/* Relative error of a against reference b: ||a-b||_2 / ||b||_2 (0 when both
 * are zero); and the largest |a-b| with its index. */
double graft_test_rel_error(const float *a, const float *b, size_t n);
double graft_test_max_abs_diff(const float *a, const float *b, size_t n, size_t *where);

/* CPU backend options for a test program: the defaults, with the
 * convolution path and kernels ctest may give in GRAFT_CPU_CONV and
 * GRAFT_CPU_KERNELS (test/CMakeLists.txt runs cpu_ops once per path). An
 * unknown value ends the test. */
graft_backend_options graft_test_backend_options(void);

/* Path join into a static rotating buffer (for test code only). */
const char *graft_test_path(const char *dir, const char *name);

#endif
