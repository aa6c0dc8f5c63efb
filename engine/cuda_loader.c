/* Loading the CUDA backend's module (engine/cuda_module.h) and saying, in one
 * line, what was missing when it cannot be used: the module itself, a
 * library it needs (cuDNN, cuBLAS), the driver, or a device.
 *
 * Where: beside the running program (the build tree's bin/, where the apps
 * are built), then ../lib from it (the device bundle's layout). Loaded once
 * per process and never unloaded: cuDNN and cuBLAS keep state for the
 * process's lifetime. */
#ifdef GRAFT_HAVE_CUDA
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/cuda_module.h"
#include "engine/base/log.h"
#include "engine/devices.h"

static const graft_module_host host = {
    GRAFT_CUDA_MODULE_ABI, graft__fail, graft__context,       graft_detail,
    graft_clear_detail,    graft__warn, graft_precision_name, graft_cudnn_path_name};

static struct {
  pthread_once_t once;
  const graft_cuda_module *mod;
  graft_status status;
  char why[1200];
  char path[PATH_MAX];
} loaded = {.once = PTHREAD_ONCE_INIT};

static void set_why(graft_status s, const char *fmt, const char *a, const char *b) {
  loaded.status = s;
  if (snprintf(loaded.why, sizeof loaded.why, fmt, a, b) < 0) loaded.why[0] = '\0';
}

/* The module's file, or "" with loaded.why set. */
static void find_module(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    set_why(GRAFT_ENODEV, "CUDA module missing: cannot locate the running program%s%s", "", "");
    return;
  }
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  static const char *const where[] = {"%s/" GRAFT_CUDA_MODULE_FILE,
                                      "%s/../lib/" GRAFT_CUDA_MODULE_FILE};
  for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
    int len = snprintf(loaded.path, sizeof loaded.path, where[i], exe);
    if (len > 0 && (size_t)len < sizeof loaded.path && access(loaded.path, F_OK) == 0) return;
  }
  loaded.path[0] = '\0';
  set_why(GRAFT_ENODEV, "CUDA module missing: no " GRAFT_CUDA_MODULE_FILE " in %s or %s/../lib",
          exe, exe);
}

static void load(void) {
  find_module();
  if (!loaded.path[0]) return;
  void *lib = dlopen(loaded.path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    e = e ? e : "dlopen failed";
    /* "libcudnn.so.9: cannot open shared object file: ..." names the
     * dependency; "<module>: undefined symbol: x" a library older than the
     * one the module was built against; anything else is the module's own. */
    if (strncmp(e, loaded.path, strlen(loaded.path)) != 0)
      set_why(GRAFT_ENODEV, "CUDA library missing: %s (needed by %s)", e,
              strstr(e, "required by") ? "the module" : loaded.path);
    else if (strstr(e, "undefined symbol"))
      set_why(GRAFT_ENODEV, "CUDA library too old: %s%s", e, "");
    else
      set_why(GRAFT_ENODEV, "CUDA module unusable: %s%s", e, "");
    return;
  }
  void *sym = dlsym(lib, GRAFT_CUDA_MODULE_ENTRY);
  graft_cuda_module_open_fn open_fn = NULL;
  memcpy(&open_fn, &sym, sizeof open_fn); /* POSIX: a data pointer to a function */
  const graft_cuda_module *mod = open_fn ? open_fn(&host) : NULL;
  if (!mod) {
    set_why(GRAFT_ENODEV, "CUDA module unusable: %s has no %s", loaded.path,
            GRAFT_CUDA_MODULE_ENTRY);
    return;
  }
  if (mod->abi != GRAFT_CUDA_MODULE_ABI || strcmp(mod->graft_version, GRAFT_VERSION) != 0 ||
      mod->backend_size != sizeof(graft_backend) ||
      mod->iface_size != sizeof(graft_backend_iface)) {
    set_why(GRAFT_ENODEV, "CUDA module unusable: %s is from another build of graft (%s)",
            loaded.path, mod->graft_version);
    return;
  }
  graft_cuda_versions v;
  mod->versions(&v);
  if (v.cudnn / 10000 != v.cudnn_built / 10000) {
    char got[32];
    snprintf(got, sizeof got, "%d.%d.%d", v.cudnn / 10000, v.cudnn / 100 % 100, v.cudnn % 100);
    set_why(GRAFT_ENODEV, "CUDA library missing: cuDNN %s loaded (%s); graft needs cuDNN 9", got,
            v.cudnn_file);
    return;
  }
  loaded.mod = mod;
  loaded.status = GRAFT_OK;
}

/* The module, or its failure as the detail. */
static graft_status module(const graft_cuda_module **out) {
  pthread_once(&loaded.once, load);
  *out = loaded.mod;
  if (loaded.mod) return GRAFT_OK;
  return graft__fail(loaded.status, "%s", loaded.why);
}

static void version_text(char *out, size_t cap, int v) {
  snprintf(out, cap, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
}

/* The warning a cuDNN older than the build's deserves: graph attributes and
 * engines added since may be missing, and fail only when used. "" if none. */
static void cudnn_warning(const graft_cuda_versions *v, char *out, size_t cap) {
  out[0] = '\0';
  if (v->cudnn >= v->cudnn_built / 100 * 100) return;
  char got[32], built[32];
  version_text(got, sizeof got, v->cudnn);
  version_text(built, sizeof built, v->cudnn_built);
  snprintf(out, cap,
           "cuDNN %s loaded (%s) is older than the cuDNN %s graft was built with: what cuDNN "
           "added since may be missing, and fails only when used",
           got, v->cudnn_file, built);
}

/* Said once per process, when a GPU is first used: every net of a run would
 * say it again. */
static void warn_old_cudnn(void) {
  graft_cuda_versions v;
  char warning[512];
  loaded.mod->versions(&v);
  cudnn_warning(&v, warning, sizeof warning);
  if (warning[0]) graft__warn("%s", warning);
}

graft_status graft__cuda_backend_open(int device, const graft_backend_options *o,
                                      graft_backend **out) {
  static pthread_once_t warned = PTHREAD_ONCE_INIT;
  const graft_cuda_module *mod;
  *out = NULL;
  GRAFT_TRY(module(&mod));
  GRAFT_TRY(mod->create(device, o, out));
  pthread_once(&warned, warn_old_cudnn);
  return GRAFT_OK;
}

bool graft__cuda_no_driver(void) {
  pthread_once(&loaded.once, load);
  if (loaded.mod) {
    graft_cuda_versions v;
    loaded.mod->versions(&v);
    return v.driver == 0;
  }
  /* The module did not load (not there, or a library it needs missing):
   * whether this machine has a driver at all decides if that is news. */
  void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!driver) return true;
  dlclose(driver);
  return false;
}

/* Append to a report, cutting at its end. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void add(char *buf, size_t cap, size_t *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *at, cap - *at, fmt, ap);
  va_end(ap);
  if (n > 0) *at = (size_t)n < cap - *at ? *at + (size_t)n : cap - 1;
}

graft_status graft_cuda_environment(char *buf, size_t cap) {
  const graft_cuda_module *mod;
  size_t at = 0;
  buf[0] = '\0';
#define ADD(...) add(buf, cap, &at, __VA_ARGS__)
  graft_status s = module(&mod);
  if (s != GRAFT_OK) {
    ADD("module: %s\n", graft_detail());
    return s;
  }
  graft_cuda_versions v;
  mod->versions(&v);
  char got[32], built[32], warning[512];
  ADD("module: %s (graft %s)\n", loaded.path, mod->graft_version);
  if (v.driver)
    ADD("driver: supports CUDA %d.%d\n", v.driver / 1000, v.driver % 1000 / 10);
  else
    ADD("driver: none found (no libcuda.so.1)\n");
  ADD("CUDA runtime: %d.%d (linked into the module)\n", v.runtime / 1000, v.runtime % 1000 / 10);
  if (v.driver && v.driver < v.runtime)
    ADD("warning: the driver supports CUDA %d.%d, older than this build's runtime %d.%d\n",
        v.driver / 1000, v.driver % 1000 / 10, v.runtime / 1000, v.runtime % 1000 / 10);
  version_text(got, sizeof got, v.cudnn);
  version_text(built, sizeof built, v.cudnn_built);
  ADD("cuDNN: %s loaded from %s; built with %s\n", got, v.cudnn_file, built);
  cudnn_warning(&v, warning, sizeof warning);
  if (warning[0]) ADD("warning: %s\n", warning);
  version_text(got, sizeof got, v.cublas);
  version_text(built, sizeof built, v.cublas_built);
  ADD("cuBLAS: %s loaded from %s; built with %s\n", got, v.cublas_file, built);
#undef ADD
  return GRAFT_OK;
}
#endif /* GRAFT_HAVE_CUDA */
