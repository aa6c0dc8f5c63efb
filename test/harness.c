#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "io/fsutil.h"
#include "models/model.h"

int graft_test_failures;

void graft_test_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("SKIP: ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
  fflush(stdout);
  exit(77);
}

int graft_test_finish(const char *name) {
  if (graft_test_failures) {
    printf("%s: %d check(s) FAILED\n", name, graft_test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *graft_test_data_dir(void) {
  const char *d = graft_test_env("GRAFT_DATA");
  if (!d) d = GRAFT_DEFAULT_DATA;
  return is_dir(d) ? d : NULL;
}

const char *graft_test_hymenoptera_or_skip(void) {
  static char path[4096];
  const char *d = graft_test_data_dir();
  if (!d)
    graft_test_skip("no shared data folder (set GRAFT_DATA; default %s)", GRAFT_DEFAULT_DATA);
  snprintf(path, sizeof path, "%s/hymenoptera", d);
  if (!is_dir(path)) graft_test_skip("%s is missing", path);
  return path;
}

void *graft_test_alloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return p;
}

/* Where the sources and the scratch folders are: the build's, unless the
 * environment says otherwise (bench/device-check.sh runs the test programs
 * from a bundle, far from the tree they were built in). */
static const char *source_dir(void) {
  const char *d = graft_test_env("GRAFT_SOURCE_DIR");
  return d ? d : GRAFT_SOURCE_DIR;
}

const char *graft_test_tmpdir(const char *name) {
  static char path[4096];
  char cmd[4200];
  const char *root = graft_test_env("GRAFT_TEST_TMP");
  if (root)
    snprintf(path, sizeof path, "%s/%s", root, name);
  else
    snprintf(path, sizeof path, "%s/test-tmp/%s", GRAFT_BINARY_DIR, name);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not clear %s\n", path);
  if (graft_mkdirs(path) != GRAFT_OK) {
    fprintf(stderr, "cannot create %s: %s\n", path, graft_detail());
    exit(1);
  }
  return path;
}

const char *graft_test_env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

const char *graft_test_python(void) {
  const char *py = graft_test_env("GRAFT_PYTHON");
  if (!py) py = GRAFT_TEST_PYTHON;
  return *py ? py : NULL;
}

const char *graft_test_python_or_skip(void) {
  const char *py = graft_test_python();
  if (!py) graft_test_skip("no python3 with torch, torchvision and h5py (set GRAFT_PYTHON)");
  return py;
}

int graft_test_run_python(const char *script, const char *args) {
  const char *py = graft_test_python_or_skip();
  const char *src = source_dir();
  size_t need = strlen(py) + strlen(script) + strlen(args) + strlen(src) + 16;
  char *cmd = malloc(need);
  if (!cmd) return -1;
  snprintf(cmd, need, "%s %s/%s %s", py, src, script, args);
  printf("+ %s\n", cmd);
  fflush(stdout);
  int rc = system(cmd);
  free(cmd);
  if (rc == -1) return -1;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static double value(graft_test_values v, size_t i) { return v.f ? (double)v.f[i] : v.d[i]; }

graft_test_diff graft_test_compare(graft_test_values a, graft_test_values b,
                                   const double *scale, size_t n) {
  graft_test_diff r = {0};
  double num = 0, den = 0, bmax = 0;
  bool first = true;
  for (size_t i = 0; i < n; i++) bmax = fmax(bmax, fabs(value(b, i)));
  for (size_t i = 0; i < n; i++) {
    double x = value(a, i), y = value(b, i), d = fabs(x - y);
    if (!isfinite(x)) r.non_finite++;
    num += d * d;
    den += y * y;
    if (d > r.max_abs || isnan(d)) r.max_abs = d, r.where = i;
    double s = scale ? scale[i] : bmax, e = s > 0 ? d / s : d;
    if (e > r.elem || isnan(e)) r.elem = e, r.elem_where = i;
    if (a.f && b.f && memcmp(&a.f[i], &b.f[i], sizeof(float)) != 0) {
      if (first) r.first_differ = i;
      first = false;
      r.bits_differ++;
    }
  }
  r.rel = den > 0 ? sqrt(num / den) : num == 0 ? 0 : INFINITY;
  return r;
}

graft_backend_options graft_test_backend_options(void) {
  graft_backend_options o = {0};
  const char *conv = graft_test_env("GRAFT_CPU_CONV");
  const char *kernels = graft_test_env("GRAFT_CPU_KERNELS");
  if (conv) CHECK_OK(graft_cpu_conv_parse(conv, &o.cpu_conv));
  if (kernels) CHECK_OK(graft_cpu_kernels_parse(kernels, &o.cpu_kernels));
  return o;
}

const char *graft_test_path(const char *dir, const char *name) {
  static char bufs[8][4096];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
  return b;
}

void graft_test_check_detail(const char *what, const char *hide, const char *n1,
                             const char *n2) {
  const char *d = graft_detail();
  if (n1) CHECK_MSG(strstr(d, n1) != NULL, "%s: detail \"%s\" lacks \"%s\"", what, d, n1);
  if (n2) CHECK_MSG(strstr(d, n2) != NULL, "%s: detail \"%s\" lacks \"%s\"", what, d, n2);
  CHECK_MSG(strchr(d, '\n') == NULL, "%s: detail on several lines: %s", what, d);
  CHECK_MSG(strstr(d, hide) == NULL, "%s: detail contains the path: %s", what, d);
}

void graft_test_expect_load_fail(const char *dir, const char *name, graft_status want,
                                 const char *n1, const char *n2) {
  graft_model *m = NULL;
  graft_clear_detail();
  graft_status s = graft_model_load(graft_test_path(dir, name), &m);
  printf("  %-24s %s: %s\n", name, graft_strerror(s), graft_detail());
  CHECK_MSG(s == want, "%s: got \"%s\", want \"%s\"", name, graft_strerror(s),
            graft_strerror(want));
  CHECK_MSG(m == NULL, "%s: a model came back on failure", name);
  graft_model_free(m);
  graft_test_check_detail(name, dir, n1, n2);
}
