/* The public face of a compute backend: an opaque handle, the options it is
 * created with and the CPU backend's constructor. The function table lives in
 * engine/backend_impl.h; choosing a device (CPU or CUDA) is engine/devices.h.
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
 * BF16 (CUDA only): the frozen trunk's weights and activations in bfloat16
 * with fp32 accumulation, the classifier as PyTorch's bf16 autocast runs it
 * (Linear on bf16-rounded inputs, fp32 accumulation, its output rounded to
 * bf16; softmax and cross-entropy in fp32). The CPU computes in fp32 and
 * refuses BF16. FP16_WEIGHTS (CPU only), opt-in and for inference only: the
 * classifier's Linear weights stored as IEEE fp16 and widened to fp32 as they
 * are read (F16C), every sum in fp32; the trunk as FP32. The CPU backend
 * refuses it without F16C, the CUDA backend refuses it, and a net refuses to
 * train with it. Names: "fp32", "fp32-strict", "bf16", "fp16-weights". */
typedef enum graft_precision {
  GRAFT_PRECISION_FP32 = 0,
  GRAFT_PRECISION_FP32_STRICT,
  GRAFT_PRECISION_BF16,
  GRAFT_PRECISION_FP16_WEIGHTS,
} graft_precision;

/* The CPU backend's convolutions. Names: "winograd", "dnnl-winograd",
 * "graft-winograd", "graft-winograd-f2", "graft-winograd-f4",
 * "graft-winograd-f6", "direct", "auto", "gemm", "tuned". Which Winograd the
 * default runs depends on the ISA (engine/cpu/conv.c decides it); "tuned"
 * times each layer's candidates when it is planned and keeps the fastest
 * (its bits may then differ from run to run); the others force one path to
 * compare. */
typedef enum graft_cpu_conv {
  GRAFT_CPU_CONV_WINOGRAD = 0,      /* the ISA's Winograd for 3x3/1 (5x5/1), else oneDNN direct */
  GRAFT_CPU_CONV_DNNL_WINOGRAD,     /* oneDNN's Winograd where it has one (AVX-512), else direct */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD,    /* graft's Winograd (AVX2 + FMA); GRAFT_ENODEV elsewhere */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD_F2, /* the same, F(2x2,3x3) on every 3x3 layer */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD_F4, /* the same, F(4x4,3x3) on every 3x3 layer */
  GRAFT_CPU_CONV_GRAFT_WINOGRAD_F6, /* the same, F(6x6,3x3) on every 3x3 layer */
  GRAFT_CPU_CONV_DIRECT,            /* oneDNN: direct convolution everywhere */
  GRAFT_CPU_CONV_AUTO,              /* oneDNN's own pick for 3x3/1 (Winograd at batch 8, not 1-2) */
  GRAFT_CPU_CONV_GEMM,              /* im2col + OpenBLAS sgemm on plain NCHW */
  GRAFT_CPU_CONV_TUNED,             /* the candidates of each layer timed at planning, as
                                       torch.backends.cudnn.benchmark (engine/cpu/conv_tune.c) */
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

/* The memory layout of the CUDA backend's trunk activations. Names: "auto",
 * "nchw", "nhwc". NHWC (channels-last, filters KRSC) is what cuDNN's
 * runtime-fused and bf16 tensor-core engines are built for; NCHW is what its
 * pre-compiled fp32 ConvBiasAct engines take. AUTO: NHWC in bf16, NCHW in
 * fp32 and fp32-strict (a choice made from deviceless planning, not from
 * timings: no GPU run has compared them yet). The CPU ignores it. */
typedef enum graft_cuda_layout {
  GRAFT_CUDA_LAYOUT_AUTO = 0,
  GRAFT_CUDA_LAYOUT_NCHW,
  GRAFT_CUDA_LAYOUT_NHWC,
} graft_cuda_layout;

typedef struct graft_backend_options {
  const char *device;           /* "auto" (also NULL or ""), "cpu", "cuda" or "cuda:N" */
  int threads;                  /* CPU threads; 0 = all cores */
  graft_precision precision;
  graft_cpu_conv cpu_conv;
  graft_cpu_kernels cpu_kernels;
  graft_cudnn_path cudnn_path;
  graft_cuda_layout cuda_layout;
  /* Tuned cuDNN plans, as torch.backends.cudnn.benchmark: each new graph's
   * top few engine configs are timed on scratch buffers and the fastest
   * kept (per shape, in this backend). Off (the default): the first config
   * that finalizes, in the heuristics' order, the same every run. */
  bool cudnn_tune;
  /* With cudnn_tune: a file that keeps the tuned choices across runs (per
   * card, library versions and graph; engine/cuda/tune_cache.c), so that a
   * later run times nothing it timed before. NULL: the process's life only.
   * A file that is not such a file is refused. */
  const char *cudnn_tune_cache;
  bool cuda_eager;              /* the trunk op by op, never captured as a CUDA graph */
  /* The GPU that "cuda" and "auto" take when no index is named: this one
   * modulo the GPUs the process sees (the programs give each process of a
   * job its rank on its machine: one GPU each, as CUDA_VISIBLE_DEVICES per
   * process also allows). */
  int default_gpu;
} graft_backend_options;

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
extern const char *const graft_cuda_layout_names[];

/* Options from their names; GRAFT_EINVAL naming the value and the names
 * expected otherwise. And back. */
graft_status graft_precision_parse(const char *s, graft_precision *out);
graft_status graft_cpu_conv_parse(const char *s, graft_cpu_conv *out);
graft_status graft_cpu_kernels_parse(const char *s, graft_cpu_kernels *out);
graft_status graft_cudnn_path_parse(const char *s, graft_cudnn_path *out);
graft_status graft_cuda_layout_parse(const char *s, graft_cuda_layout *out);
const char *graft_precision_name(graft_precision p);
const char *graft_cpu_conv_name(graft_cpu_conv c);
const char *graft_cudnn_path_name(graft_cudnn_path p);
const char *graft_cuda_layout_name(graft_cuda_layout l);

/* The CPU backend itself (graft_backend_create, engine/devices.h, chooses it
 * or the CUDA module's). */
graft_status graft_cpu_backend_create(const graft_backend_options *o, graft_backend **out);

#endif
