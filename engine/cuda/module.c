/* libgraft_cuda.so's face to the program that loads it (engine/cuda_module.h
 * says why it is a module and why symbols go through a table): the module's
 * copies of the status and log functions, which forward to the host's, the
 * versions report, and the one exported entry point.
 *
 * Only the module is built from this file; the tests that link the backend's
 * objects statically (test_cuda_ops, test_cudnn_deviceless) use graft_base's own
 * status and log functions instead. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/cuda/cuda.h"
#include "engine/cuda_module.h"
#include "engine/base/log.h"

static const graft_module_host *host;

graft_status graft__fail(graft_status s, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return host->fail(s, "%s", msg);
}

graft_status graft__context(graft_status s, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return host->context(s, "%s", msg);
}

const char *graft_detail(void) { return host->detail(); }

void graft_clear_detail(void) { host->clear_detail(); }

void graft__warn(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  host->warn("%s", msg);
}

const char *graft_precision_name(graft_precision p) { return host->precision_name(p); }

const char *graft_cudnn_path_name(graft_cudnn_path p) { return host->cudnn_path_name(p); }

/* The file a library function was loaded from. */
static void file_of(void *fn, char *out, size_t cap) {
  Dl_info info;
  out[0] = '\0';
  if (dladdr(fn, &info) && info.dli_fname) snprintf(out, cap, "%s", info.dli_fname);
}

static void versions(graft_cuda_versions *v) {
  memset(v, 0, sizeof *v);
  /* 0 when no driver is installed; an error says the same. */
  if (cudaDriverGetVersion(&v->driver) != cudaSuccess) v->driver = 0;
  if (cudaRuntimeGetVersion(&v->runtime) != cudaSuccess) v->runtime = CUDART_VERSION;
  (void)cudaGetLastError();
  v->cudnn = (int)cudnnGetVersion();
  v->cudnn_built = CUDNN_VERSION;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    v->cublas = major * 10000 + minor * 100 + patch;
  v->cublas_built = CUBLAS_VERSION;
  file_of((void *)cudnnGetVersion, v->cudnn_file, sizeof v->cudnn_file);
  file_of((void *)cublasGetProperty, v->cublas_file, sizeof v->cublas_file);
}

static const graft_cuda_module module = {
    .abi = GRAFT_CUDA_MODULE_ABI,
    .graft_version = GRAFT_VERSION,
    .backend_size = sizeof(graft_backend),
    .iface_size = sizeof(graft_backend_iface),
    .versions = versions,
    .create = graft__cuda_create,
};

__attribute__((visibility("default"))) const graft_cuda_module *graft_cuda_module_open(
    const graft_module_host *h);

/* The host checks module.abi before it calls anything else; a host of
 * another ABI is never used. */
const graft_cuda_module *graft_cuda_module_open(const graft_module_host *h) {
  if (h && h->abi == GRAFT_CUDA_MODULE_ABI) host = h;
  return &module;
}
