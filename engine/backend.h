/* The public face of a compute backend: an opaque handle, the options it is
 * created with and its constructors. The function table lives in
 * engine/backend_impl.h.
 *
 * Every behaviour a backend has is an option given at creation: the library
 * reads no environment variable (apps/common.c turns the GRAFT_* variables
 * into these options). A zeroed struct asks for the defaults. */
#ifndef GRAFT_BACKEND_H
#define GRAFT_BACKEND_H

#include <stdbool.h>

#include "engine/base/status.h"

typedef struct graft_backend graft_backend;

/* Numerics of a backend. FP32 is PyTorch's default: TF32 tensor cores allowed
 * for convolutions, true fp32 for matmuls. FP32_STRICT: no TF32 anywhere.
 * The CPU computes in fp32 either way. FP16_WEIGHTS, opt-in and for
 * inference only: the classifier's Linear weights stored as IEEE fp16 and
 * widened to fp32 as they are read (F16C), every sum in fp32; the trunk as
 * FP32. The CPU backend alone has it, and refuses it without F16C; a net
 * refuses to train with it. Names: "fp32", "fp32-strict", "fp16-weights". */
typedef enum graft_precision {
  GRAFT_PRECISION_FP32 = 0,
  GRAFT_PRECISION_FP32_STRICT,
  GRAFT_PRECISION_FP16_WEIGHTS,
} graft_precision;

/* The CPU backend's convolutions. Names: "winograd", "dnnl-winograd",
 * "graft-winograd", "graft-winograd-f2", "graft-winograd-f4", "direct",
 * "auto", "gemm". Which Winograd the default runs depends on the ISA
 * (engine/cpu/conv.c decides it); the others force one path to compare. */
typedef enum graft_cpu_conv {
  GRAFT_CPU_CONV_WINOGRAD = 0,      /* the ISA's Winograd for 3x3/1 (5x5/1), else oneDNN direct */
  GRAFT_CPU_CONV_DNNL_WINOGRAD,     /* oneDNN's Winograd where it has one (AVX-512), else direct */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD,    /* graft's Winograd (AVX2 + FMA); GRAFT_ENODEV elsewhere */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD_F2, /* the same, F(2x2,3x3) on every 3x3 layer */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD_F4, /* the same, F(4x4,3x3) on every 3x3 layer */
  GRAFT_CPU_CONV_DIRECT,            /* oneDNN: direct convolution everywhere */
  GRAFT_CPU_CONV_AUTO,              /* oneDNN's own pick for 3x3/1 (Winograd at batch 8, not 1-2) */
  GRAFT_CPU_CONV_GEMM,              /* im2col + OpenBLAS sgemm on plain NCHW */
} graft_cpu_conv;

/* The kernels of the CPU backend's own loops. Names: "auto", "generic". */
typedef enum graft_cpu_kernels {
  GRAFT_CPU_KERNELS_AUTO = 0, /* AVX2 + FMA where the CPU has both, else generic C */
  GRAFT_CPU_KERNELS_GENERIC,  /* plain C (the tests compare the two) */
} graft_cpu_kernels;

/* The rungs of the CUDA backend's convolution ladder that may run (engine/cuda/conv.c).
 * Names: "auto", "fused", "fallback", "split", "legacy". */
typedef enum graft_cudnn_path {
  GRAFT_CUDNN_PATH_AUTO = 0, /* the whole ladder: the first rung that plans wins */
  GRAFT_CUDNN_PATH_FUSED,    /* fused graph only: heuristics mode A, then FALLBACK */
  GRAFT_CUDNN_PATH_FALLBACK, /* fused graph, FALLBACK heuristics only */
  GRAFT_CUDNN_PATH_SPLIT,    /* conv-only graph + our bias/ReLU kernel */
  GRAFT_CUDNN_PATH_LEGACY,   /* cudnnConvolutionForward + kernel; cudnnPoolingForward */
} graft_cudnn_path;

typedef struct graft_backend_options {
  const char *device;           /* "auto" (also NULL or ""), "cpu", "cuda" or "cuda:N" */
  int threads;                  /* CPU threads; 0 = all cores */
  graft_precision precision;
  graft_cpu_conv cpu_conv;
  graft_cpu_kernels cpu_kernels;
  graft_cudnn_path cudnn_path;
  bool cuda_eager;              /* the trunk op by op, never captured as a CUDA graph */
  /* The GPU that "cuda" and "auto" take when no index is named: this one
   * modulo the GPUs the process sees (the programs give each process of a
   * job its rank on its machine: one GPU each, as CUDA_VISIBLE_DEVICES per
   * process also allows). */
  int default_gpu;
} graft_backend_options;

/* Why "auto" runs on the CPU: the program decides whether to say so. */
typedef enum graft_fallback {
  GRAFT_FALLBACK_NONE,      /* no fallback: a GPU, or the device that was named */
  GRAFT_FALLBACK_NO_DRIVER, /* no NVIDIA driver (libcuda.so.1 not found): a machine
                               without NVIDIA GPUs, nothing is wrong */
  GRAFT_FALLBACK_NO_GPU,    /* something is wrong: a driver but no usable GPU (none,
                               or one that fails), or the CUDA module or a library
                               it needs missing */
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
void graft_backend_destroy(graft_backend *be);

/* "cpu", "cuda:0", ... */
const char *graft_backend_name(const graft_backend *be);

/* A human-readable description of what runs underneath ("oneDNN 2.6.3 avx512_core, 2 threads"). */
const char *graft_backend_describe(const graft_backend *be);

/* The names of each option's values, in the enum's order, NULL-terminated. */
extern const char *const graft_precision_names[];
extern const char *const graft_cpu_conv_names[];
extern const char *const graft_cpu_kernels_names[];
extern const char *const graft_cudnn_path_names[];

/* Options from their names; GRAFT_EINVAL naming the value and the names
 * expected otherwise. And back. */
graft_status graft_precision_parse(const char *s, graft_precision *out);
graft_status graft_cpu_conv_parse(const char *s, graft_cpu_conv *out);
graft_status graft_cpu_kernels_parse(const char *s, graft_cpu_kernels *out);
graft_status graft_cudnn_path_parse(const char *s, graft_cudnn_path *out);
const char *graft_precision_name(graft_precision p);
const char *graft_cpu_conv_name(graft_cpu_conv c);
const char *graft_cudnn_path_name(graft_cudnn_path p);

/* The CPU backend itself (graft_backend_create chooses it or the CUDA
 * module's). */
graft_status graft_cpu_backend_create(const graft_backend_options *o, graft_backend **out);

/* What the CUDA backend finds on this machine, a few "name: value" lines
 * into buf: the module, the driver, the CUDA runtime, cuDNN and cuBLAS as
 * loaded (and from where) against the versions the module was built with,
 * and "warning: ..." lines (a cuDNN older than the build's). GRAFT_OK when
 * the module loaded; otherwise its status, with the line saying what was
 * missing in buf and as the detail. No GPU is needed. */
graft_status graft_cuda_environment(char *buf, size_t cap);

#endif
