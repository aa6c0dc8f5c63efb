/* Choosing a device: a backend by device name ("auto", "cpu", "cuda",
 * "cuda:N"), the CPU's or the CUDA module's, and what the CUDA module finds
 * on this machine. The library graft_backends (engine/devices.c,
 * engine/cuda_loader.c), above the engine: the engine's own header,
 * engine/backend.h, has the handle and the options. */
#ifndef GRAFT_DEVICES_H
#define GRAFT_DEVICES_H

#include <stddef.h>

#include "engine/backend.h"

/* Why "auto" runs on the CPU: the program decides whether to say so. */
typedef enum graft_fallback {
  GRAFT_FALLBACK_NONE,      /* no fallback: a GPU, or the device that was named */
  GRAFT_FALLBACK_NO_DRIVER, /* no NVIDIA driver (libcuda.so.1 not found): a machine
                               without NVIDIA GPUs, nothing is wrong (whatever else,
                               the module or a library, is missing too) */
  GRAFT_FALLBACK_NO_GPU,    /* something is wrong: a driver but no usable GPU (none,
                               or one that fails), or beside a driver the CUDA module
                               or a library it needs missing */
} graft_fallback;

typedef struct graft_backend_note {
  graft_fallback kind;
  const char *line; /* one line naming what was missing; NULL with NONE */
} graft_backend_note;

/* o->device: "auto" takes a usable GPU when the build has CUDA, else the
 * CPU; when it falls back it says why in *note (NULL: not wanted): its kind
 * and one line naming what was missing (the CUDA module, a library, the
 * driver, a device), valid until the next call on this thread. "cuda" fails
 * with that line as the detail (GRAFT_ENODEV when something is missing, the
 * CUDA error's status when the GPU is there but fails). o NULL: the
 * defaults. */
graft_status graft_backend_create(const graft_backend_options *o, graft_backend **out,
                                  graft_backend_note *note);

/* What the CUDA backend finds on this machine, a few "name: value" lines
 * into buf: the module, the driver, the CUDA runtime, cuDNN and cuBLAS as
 * loaded (and from where) against the versions the module was built with,
 * and "warning: ..." lines (a cuDNN older than the build's). GRAFT_OK when
 * the module loaded; otherwise its status, with the line saying what was
 * missing in buf and as the detail. No GPU is needed. */
graft_status graft_cuda_environment(char *buf, size_t cap);

#endif
