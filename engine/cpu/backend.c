/* The CPU backend's table (where each op lives: engine/cpu/cpu.h), host
 * memory, the trunk's edges and pooling checks, and creation. */
#include <cblas.h>
#include <cpuid.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/cpu/cpu.h"

graft_status graft__cpu_plan_new(cpu_backend *be, size_t size,
                                 graft_status (*run)(graft_plan *, const void *, void *),
                                 void (*destroy)(graft_plan *), graft_plan **out) {
  graft_plan *p = calloc(1, size);
  if (!p) return graft__fail(GRAFT_ENOMEM, "out of memory for a plan");
  p->run = run;
  p->destroy = destroy;
  p->be = be;
  *out = p;
  return GRAFT_OK;
}

graft_status graft__cpu_scratch(cpu_backend *be, size_t floats, float **out) {
  if (floats > be->scratch_floats) {
    void *p = NULL;
    if (posix_memalign(&p, 64, floats * sizeof(float)) != 0)
      return graft__fail(GRAFT_ENOMEM, "cannot allocate a %zu-byte workspace",
                         floats * sizeof(float));
    free(be->scratch);
    be->scratch = p;
    be->scratch_floats = floats;
  }
  *out = be->scratch;
  return GRAFT_OK;
}

static graft_status cpu_alloc(graft_backend *be, size_t bytes, void **out) {
  (void)be;
  *out = NULL;
  if (posix_memalign(out, 64, bytes ? bytes : 64) != 0) {
    *out = NULL;
    return graft__fail(GRAFT_ENOMEM, "cannot allocate %zu bytes", bytes);
  }
  return GRAFT_OK;
}

static void cpu_free(graft_backend *be, void *p) {
  (void)be;
  free(p);
}

static graft_status cpu_copy(graft_backend *be, void *dst, const void *src, size_t bytes) {
  (void)be;
  if (bytes && dst != src) memcpy(dst, src, bytes);
  return GRAFT_OK;
}

static graft_status cpu_memset0(graft_backend *be, void *dst, size_t bytes) {
  (void)be;
  memset(dst, 0, bytes);
  return GRAFT_OK;
}

static graft_status cpu_sync(graft_backend *be) {
  (void)be; /* every op has finished when it returns */
  return GRAFT_OK;
}

/* The trunk's edges: into the oneDNN blocked layout, and out to plain rows. */
static graft_status nchw_to_act(graft_backend *b, const graft_act *in, graft_act *out,
                                graft_plan **plan) {
  cpu_backend *be = cpu_of(b);
  /* The first convolution reads plain NCHW itself (3 channels do not fill a
   * block); the edge is a copy. */
  (void)be;
  return graft__cpu_copy_plan(be, in, out, plan);
}

static graft_status act_to_rows(graft_backend *b, const graft_act *in, graft_act *out,
                                graft_plan **plan) {
  cpu_backend *be = cpu_of(b);
  graft_act flat = *in;
  graft_status s = in->layout ? graft__dnnl_reorder_plan(be, in, 0, &flat, plan)
                              : graft__cpu_copy_plan(be, in, &flat, plan);
  if (s != GRAFT_OK) return s;
  *out = (graft_act){in->n, in->c * in->h * in->w, 1, 1, 0, flat.bytes};
  return GRAFT_OK;
}

graft_status graft__cpu_check_window(const char *op, const graft_act *in, int kernel, int stride,
                                    int pad) {
  if (in->n < 1 || in->c < 1 || in->h < 1 || in->w < 1)
    return graft__fail(GRAFT_ESHAPE, "%s input %dx%dx%dx%d is empty", op, in->n, in->c, in->h,
                       in->w);
  if (kernel < 1 || stride < 1 || pad < 0 || pad >= kernel)
    return graft__fail(GRAFT_EINVAL, "%s kernel %d, stride %d, pad %d", op, kernel, stride, pad);
  if (in->h + 2 * pad < kernel || in->w + 2 * pad < kernel)
    return graft__fail(GRAFT_ESHAPE, "%s input %dx%d is smaller than its %dx%d window", op,
                       in->h, in->w, kernel, kernel);
  return GRAFT_OK;
}

static graft_status maxpool2d_plan(graft_backend *b, const graft_pool2d_params *p,
                                   const graft_act *in, graft_act *out, graft_plan **plan) {
  cpu_backend *be = cpu_of(b);
  GRAFT_TRY(graft__cpu_check_window("max pooling", in, p->kernel, p->stride, 0));
  if (in->layout) return graft__dnnl_maxpool_plan(be, p, in, out, plan);
  return graft__cpu_maxpool_plan(be, p, in, out, plan);
}

static graft_status avgpool_plan(graft_backend *b, const graft_adaptive_avgpool_params *p,
                                 const graft_act *in, graft_act *out, graft_plan **plan) {
  if (p->out_h < 1 || p->out_w < 1)
    return graft__fail(GRAFT_EINVAL, "adaptive average pooling to %dx%d", p->out_h, p->out_w);
  GRAFT_TRY(graft__cpu_check_window("adaptive average pooling", in, 1, 1, 0));
  return graft__cpu_adaptive_avgpool_plan(cpu_of(b), p, in, out, plan);
}

static graft_status plan_run(graft_plan *plan, const void *x, void *y) {
  return plan->run(plan, x, y);
}

static void plan_destroy(graft_plan *plan) {
  if (plan) plan->destroy(plan);
}

static void plan_describe(graft_plan *plan, char *buf, size_t cap) {
  snprintf(buf, cap, "%s", plan->what[0] ? plan->what : "?");
}

static void cpu_destroy(graft_backend *b) {
  cpu_backend *be = cpu_of(b);
  graft__dnnl_release(be);
  free(be->scratch);
  free(be->tuned);
  free(be->tune_junk);
  free(be);
}

static size_t cpu_memory_bytes(graft_backend *be) {
  (void)be;
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : 0;
}

static const graft_backend_iface cpu_iface = {
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .memset0 = cpu_memset0,
    .memory_bytes = cpu_memory_bytes,
    .synchronize = cpu_sync,
    .nchw_to_act_plan = nchw_to_act,
    .conv2d_plan = graft__cpu_conv2d_plan,
    .maxpool2d_plan = maxpool2d_plan,
    .adaptive_avgpool2d_plan = avgpool_plan,
    .act_to_rows_plan = act_to_rows,
    .plan_run = plan_run,
    .plan_destroy = plan_destroy,
    .linear_forward = graft__cpu_linear_forward,
    .linear_backward = graft__cpu_linear_backward,
    .relu_backward = graft__cpu_relu_backward,
    .dropout_forward = graft__cpu_dropout_forward,
    .dropout_backward = graft__cpu_dropout_backward,
    .softmax_forward = graft__cpu_softmax_forward,
    .cross_entropy = graft__cpu_cross_entropy,
    .sgd_step = graft__cpu_sgd_step,
    .linear_backward_sgd = graft__cpu_linear_backward_sgd,
    .linear_forward_rows = graft__cpu_linear_forward_rows,
    .linear_forward_f16w = graft__cpu_linear_forward_f16w,
    .plan_describe = plan_describe,
    .linear_cols_make = graft__cpu_linear_cols_make,
    .linear_forward_cols = graft__cpu_linear_forward_cols,
};

/* F16C (CPUID leaf 1, ECX bit 29): asked of the CPU itself, since clang's
 * __builtin_cpu_supports does not know the feature. */
static bool has_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}

graft_status graft_cpu_backend_create(const graft_backend_options *o, graft_backend **out) {
  static const graft_backend_options defaults = {0};
  if (!o) o = &defaults;
  *out = NULL;
  if ((unsigned)o->cpu_conv > GRAFT_CPU_CONV_TUNED)
    return graft__fail(GRAFT_EINVAL, "CPU convolution path %d", (int)o->cpu_conv);
  if ((unsigned)o->cpu_kernels > GRAFT_CPU_KERNELS_GENERIC)
    return graft__fail(GRAFT_EINVAL, "CPU kernels %d", (int)o->cpu_kernels);
  if (o->precision == GRAFT_PRECISION_BF16)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "precision bf16 runs on a CUDA GPU only; the CPU computes in fp32");
  if ((unsigned)o->precision > GRAFT_PRECISION_FP16_WEIGHTS)
    return graft__fail(GRAFT_EINVAL, "precision %d", (int)o->precision);
  const bool f16c = has_f16c();
  if (o->precision == GRAFT_PRECISION_FP16_WEIGHTS && !f16c)
    return graft__fail(GRAFT_ENODEV, "precision fp16-weights needs a CPU with F16C; this one "
                                     "has none");
  cpu_backend *be = calloc(1, sizeof *be);
  if (!be) return graft__fail(GRAFT_ENOMEM, "out of memory");
  be->conv_path = o->cpu_conv;
  long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
  be->cache_bytes = llc > 0 ? (size_t)llc : (size_t)32 << 20;
  if (o->cpu_kernels == GRAFT_CPU_KERNELS_AUTO) {
    be->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    be->f16c = f16c;
  }
  int threads = o->threads;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (threads <= 0) threads = cores > 0 ? (int)cores : 1;
  /* One pool of threads: oneDNN and our loops run on OpenMP, and every
   * OpenBLAS call is a single-threaded piece of a block split across the
   * OpenMP team (engine/cpu/linear.c says why: two pools on the same cores
   * cost 2-5x). */
  omp_set_num_threads(threads);
  openblas_set_num_threads(1);
  be->base.iface = &cpu_iface;
  be->base.threads = threads;
  be->base.precision = o->precision;
  snprintf(be->base.name, sizeof be->base.name, "cpu");
  graft_status s = graft__dnnl_init(be);
  if (s != GRAFT_OK) {
    free(be);
    return s;
  }
  char dnnl[96];
  graft__dnnl_describe(be, dnnl, sizeof dnnl);
  be->block = graft__dnnl_block();
  char path[96];
  s = graft__cpu_conv_choose(be, path, sizeof path);
  if (s != GRAFT_OK) {
    graft__dnnl_release(be);
    free(be);
    return s;
  }
  /* openblas_get_config() starts "OpenBLAS 0.3.21 ..."; the core name says
   * which kernels run (OPENBLAS_CORETYPE can force them). */
  const char *cfg = openblas_get_config();
  int vlen = 0;
  while (cfg[vlen] && cfg[vlen] != ' ') vlen++;
  if (cfg[vlen] == ' ')
    for (vlen++; cfg[vlen] && cfg[vlen] != ' ';) vlen++;
  snprintf(be->base.description, sizeof be->base.description,
           "cpu: %s, %s, %.*s (%s), %s kernels, %d threads%s", dnnl, path, vlen, cfg,
           openblas_get_corename(), be->avx2 ? "avx2" : "generic", threads,
           o->precision == GRAFT_PRECISION_FP16_WEIGHTS ? ", fp16 classifier weights" : "");
  *out = &be->base;
  return GRAFT_OK;
}
