/* The public face of a compute backend: an opaque handle and its constructors.
 * The function table lives in engine/backend_impl.h. */
#ifndef GRAFT_BACKEND_H
#define GRAFT_BACKEND_H

#include "engine/base/status.h"

typedef struct graft_backend graft_backend;

/* device: "auto", "cpu", "cuda" or "cuda:N". threads: CPU threads, 0 = all cores.
 * "auto" takes a usable GPU when the build has CUDA, else the CPU; when it falls
 * back it records why in *note, one line naming what was missing (the CUDA
 * module, a library, the driver, a device), valid until the next call on this
 * thread; NULL when there is nothing to say. "cuda" fails with that line as
 * the detail (GRAFT_ENODEV when something is missing, the CUDA error's
 * status when the GPU is there but fails). */
graft_status graft_backend_create(const char *device, int threads, graft_backend **out,
                                  const char **note);
void graft_backend_destroy(graft_backend *be);

/* "cpu", "cuda:0", ... */
const char *graft_backend_name(const graft_backend *be);

/* A human-readable description of what runs underneath ("oneDNN 2.6.3 avx512_core, 2 threads"). */
const char *graft_backend_describe(const graft_backend *be);

/* Numerics of a backend. FP32 is PyTorch's default: TF32 tensor cores allowed
 * for convolutions, true fp32 for matmuls. FP32_STRICT: no TF32 anywhere.
 * The CPU computes in fp32 either way. */
typedef enum graft_precision {
  GRAFT_PRECISION_FP32 = 0,
  GRAFT_PRECISION_FP32_STRICT,
} graft_precision;

/* "fp32" | "fp32-strict"; GRAFT_EINVAL otherwise. */
graft_status graft_precision_parse(const char *s, graft_precision *out);
const char *graft_precision_name(graft_precision p);

/* Set before nets are created on the backend (plans are built for it). */
void graft_backend_set_precision(graft_backend *be, graft_precision p);
graft_precision graft_backend_precision(const graft_backend *be);

graft_status graft_cpu_backend_create(int threads, graft_backend **out);

/* What the CUDA backend finds on this machine, a few "name: value" lines
 * into buf: the module, the driver, the CUDA runtime, cuDNN and cuBLAS as
 * loaded (and from where) against the versions the module was built with,
 * and "warning: ..." lines (a cuDNN older than the build's). GRAFT_OK when
 * the module loaded; otherwise its status, with the line saying what was
 * missing in buf and as the detail. No GPU is needed. */
graft_status graft_cuda_environment(char *buf, size_t cap);

#endif
