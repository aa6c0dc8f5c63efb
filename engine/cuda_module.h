/* The CUDA backend is a module loaded at run time: libgraft_cuda.so, built
 * beside the apps (engine/cuda/, cmake/GraftCuda.cmake), dlopen'ed by
 * engine/cuda_loader.c when a device other than "cpu" is asked for. Neither
 * the apps nor graft's libraries link cuDNN, cuBLAS or the CUDA runtime, so
 * a CUDA build starts, and runs on the CPU, on a machine that has none of
 * them; only the module needs them (ggml's GGML_BACKEND_DL does the same).
 *
 * Sharing symbols: the module resolves no graft symbol against the program
 * that loads it. At load the host hands it graft_module_host, the functions
 * of its status detail and warning sink and the options' names; the
 * module's graft__fail, graft__context, graft_detail, graft_clear_detail,
 * graft__warn, graft_precision_name and graft_cudnn_path_name
 * (engine/cuda/module.c) forward through it, so a failure inside the module
 * sets the host's thread-local detail and its warnings reach the app's sink.
 * Chosen over exporting the executables' symbols (-rdynamic) and over a
 * shared graft library because: the apps stay single executables with
 * nothing new to find at start-up; the module links with --no-undefined, so
 * whatever it needs is checked when it is built rather than when a user
 * first asks for a GPU (a static library only keeps the objects its program
 * references, so symbols the module wanted from it could be missing at run
 * time); nothing is bound before the ABI check below; sanitizer builds need
 * nothing special.
 *
 * The module exports one function, GRAFT_CUDA_MODULE_ENTRY. */
#ifndef GRAFT_CUDA_MODULE_H
#define GRAFT_CUDA_MODULE_H

#include <stddef.h>

#include "engine/backend_impl.h"

/* Bumped whenever this header, graft_backend, graft_backend_iface or
 * graft_backend_options changes. */
#define GRAFT_CUDA_MODULE_ABI 6
#define GRAFT_CUDA_MODULE_FILE "libgraft_cuda.so"
#define GRAFT_CUDA_MODULE_ENTRY "graft_cuda_module_open"

/* What the host lends the module. The variadic entries are printf-style;
 * the module passes them one preformatted "%s" argument. */
typedef struct graft_module_host {
  int abi;
  graft_status (*fail)(graft_status s, const char *fmt, ...);
  graft_status (*context)(graft_status s, const char *fmt, ...);
  const char *(*detail)(void);
  void (*clear_detail)(void);
  void (*warn)(const char *fmt, ...);
  const char *(*precision_name)(graft_precision p);
  const char *(*cudnn_path_name)(graft_cudnn_path p);
} graft_module_host;

/* Versions as the module was built and as they loaded; a version is
 * major * 1000 + minor * 10 for CUDA (13000 = 13.0, as cudaDriverGetVersion
 * gives it; 0 = none), major * 10000 + minor * 100 + patch for cuDNN and
 * cuBLAS (91900 = 9.19.0). No GPU is needed to fill it. */
typedef struct graft_cuda_versions {
  int driver;                 /* highest CUDA version the driver supports; 0: no driver */
  int runtime;                /* the CUDA runtime, static in the module: as built */
  int cudnn, cudnn_built;
  int cublas, cublas_built;
  char cudnn_file[256];       /* where the loaded library lives ("" if unknown) */
  char cublas_file[256];
} graft_cuda_versions;

typedef struct graft_cuda_module {
  int abi;
  const char *graft_version;      /* GRAFT_VERSION of the build the module is from */
  size_t backend_size, iface_size; /* sizeof(graft_backend), sizeof(graft_backend_iface) */
  void (*versions)(graft_cuda_versions *out);
  /* GRAFT_ENODEV only when there is no driver, no device (or no such index)
   * or no code for the device in this build; any other CUDA failure is
   * reported as it is (GRAFT_EBACKEND, ...). */
  graft_status (*create)(int device, const graft_backend_options *o, graft_backend **out);
  /* (device < 0: none named, o->default_gpu modulo the GPUs there are.) */
} graft_cuda_module;

typedef const graft_cuda_module *(*graft_cuda_module_open_fn)(const graft_module_host *host);

/* The host's side (engine/cuda_loader.c): load the module once, then create
 * the backend on device with the options o. Failures name what was missing
 * (engine/backend.h). */
graft_status graft__cuda_backend_open(int device, const graft_backend_options *o,
                                      graft_backend **out);

/* Has this machine no NVIDIA driver? Asked of the module when it loaded,
 * else of the loader (libcuda.so.1): without a driver a missing module or
 * library is no news, the CPU is what runs anyway. */
bool graft__cuda_no_driver(void);

#endif
