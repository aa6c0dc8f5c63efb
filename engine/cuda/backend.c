/* The CUDA backend's table: device memory, copies, the cache of cuDNN plans
 * and the shared workspace, and creation (which reports GRAFT_ENODEV when no
 * GPU or driver is usable, so that "auto" falls back to the CPU).
 *
 * Streams: every op runs in order on one compute stream (cuDNN's and
 * cuBLAS's handles are bound to it). Uploads go through double-buffered
 * pinned staging on a second stream: the host copy into staging overlaps
 * the GPU's work still queued, the DMA waits only for the compute queued
 * before it (which may still read the destination), and compute waits for
 * the DMA. Downloads are synchronous by the table's contract. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"

/* cuBLAS's workspace (setup). */
#define CUBLAS_WS ((size_t)32 << 20)

/* Uploads larger than this skip staging (the classifier's weights, once). */
#define STAGE_MAX ((size_t)64 << 20)

struct cuda_cached_graph {
  cuda_cached_graph *next;
  size_t key_size;
  unsigned char key[64];
  graft__cudnn_plan plan;
};

graft_status graft__cuda_plan_new(cuda_backend *be, size_t size,
                                  graft_status (*run)(graft_plan *, const void *, void *),
                                  void (*destroy)(graft_plan *), const graft_act *in,
                                  const graft_act *out, graft_plan **plan) {
  graft_plan *p = calloc(1, size);
  if (!p) return graft__fail(GRAFT_ENOMEM, "out of memory for a plan");
  p->run = run;
  p->destroy = destroy;
  p->be = be;
  p->in = *in;
  p->out = *out;
  p->path = "";
  p->engine = -1;
  *plan = p;
  return GRAFT_OK;
}

graft_status graft__cuda_trial(graft_plan *plan, size_t x_bytes, size_t y_bytes) {
  cuda_backend *be = plan->be;
  void *x = NULL, *y = NULL;
  graft_status s = GRAFT_CU_STATUS(cuda, cudaMalloc(&x, x_bytes ? x_bytes : 256));
  if (s == GRAFT_OK) s = GRAFT_CU_STATUS(cuda, cudaMalloc(&y, y_bytes ? y_bytes : 256));
  if (s == GRAFT_OK) s = GRAFT_CU_STATUS(cuda, cudaMemsetAsync(x, 0, x_bytes, be->stream));
  if (s == GRAFT_OK) s = plan->run(plan, x, y);
  /* An asynchronous failure of the run shows here. */
  if (s == GRAFT_OK) s = GRAFT_CU_STATUS(cuda, cudaStreamSynchronize(be->stream));
  if (x) cudaFree(x);
  if (y) cudaFree(y);
  if (s == GRAFT_ENOMEM) graft__context(s, "trying a new plan; try a smaller batch size");
  return s;
}

graft_status graft__cuda_workspace_reserve(cuda_backend *be, size_t bytes) {
  if (bytes <= be->workspace_bytes) return GRAFT_OK;
  /* Work queued earlier may still use the old workspace. */
  CU_TRY(cuda, cudaStreamSynchronize(be->stream));
  if (be->workspace) CU_TRY(cuda, cudaFree(be->workspace));
  be->workspace = NULL;
  be->workspace_bytes = 0;
  be->workspace_gen++;
  size_t want = (bytes + 0xFFFFF) & ~(size_t)0xFFFFF; /* whole MiB */
  graft_status s = GRAFT_CU_STATUS(cuda, cudaMalloc(&be->workspace, want));
  if (s != GRAFT_OK)
    return graft__context(s, "cuDNN workspace of %zu MiB; try a smaller batch size", want >> 20);
  be->workspace_bytes = want;
  return GRAFT_OK;
}

graft__cudnn_plan *graft__cuda_graph_find(cuda_backend *be, const void *key, size_t key_size) {
  for (cuda_cached_graph *g = be->graphs; g; g = g->next)
    if (g->key_size == key_size && memcmp(g->key, key, key_size) == 0) return &g->plan;
  return NULL;
}

graft_status graft__cuda_graph_add(cuda_backend *be, const void *key, size_t key_size,
                                   graft__cudnn_plan *p, graft__cudnn_plan **cached) {
  cuda_cached_graph *g = calloc(1, sizeof *g);
  if (!g || key_size > sizeof g->key) {
    free(g);
    graft__cudnn_plan_release(p);
    return graft__fail(GRAFT_ENOMEM, "out of memory for the plan cache");
  }
  g->key_size = key_size;
  memcpy(g->key, key, key_size);
  g->plan = *p;
  memset(p, 0, sizeof *p);
  g->next = be->graphs;
  be->graphs = g;
  *cached = &g->plan;
  return GRAFT_OK;
}

int graft__cuda_act_layout(const graft_backend *b) {
  return ((const cuda_backend *)b)->act_layout;
}

/* ---- memory ---- */
static graft_status cuda_alloc(graft_backend *b, size_t bytes, void **out) {
  cuda_backend *be = cuda_of(b);
  *out = NULL;
  cudaError_t e = cudaMalloc(out, bytes ? bytes : 256);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    *out = NULL;
    return graft__fail(GRAFT_ENOMEM,
                       "out of GPU memory: %zu MiB asked for, %zu MiB free of %zu MiB on %s; "
                       "try a smaller batch size",
                       bytes >> 20, free_b >> 20, total >> 20, be->base.name);
  }
  return GRAFT_CU_STATUS(cuda, e);
}

static void cuda_free(graft_backend *b, void *p) {
  (void)b;
  if (p) cudaFree(p); /* implicitly waits for work using it; nothing to report */
}

static graft_status stage_reserve(cuda_stage *st, size_t bytes) {
  if (st->cap >= bytes) return GRAFT_OK;
  if (st->host) CU_TRY(cuda, cudaFreeHost(st->host));
  st->host = NULL;
  st->cap = 0;
  size_t want = bytes < ((size_t)1 << 20) ? (size_t)1 << 20 : bytes;
  CU_TRY(cuda, cudaMallocHost(&st->host, want));
  st->cap = want;
  return GRAFT_OK;
}

static graft_status cuda_upload(graft_backend *b, void *dst, const void *src, size_t bytes) {
  cuda_backend *be = cuda_of(b);
  if (!bytes) return GRAFT_OK;
  if (bytes > STAGE_MAX) { /* once per model: a plain copy in stream order */
    CU_TRY(cuda, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be->stream));
    CU_TRY(cuda, cudaStreamSynchronize(be->stream));
    return GRAFT_OK;
  }
  cuda_stage *st = &be->stage[be->next_stage];
  be->next_stage ^= 1;
  if (st->used) CU_TRY(cuda, cudaEventSynchronize(st->done)); /* its last copy has left */
  GRAFT_TRY(stage_reserve(st, bytes));
  memcpy(st->host, src, bytes); /* overlaps whatever the GPU is still doing */
  CU_TRY(cuda, cudaEventRecord(be->compute_mark, be->stream));
  CU_TRY(cuda, cudaStreamWaitEvent(be->copy_stream, be->compute_mark, 0));
  CU_TRY(cuda, cudaMemcpyAsync(dst, st->host, bytes, cudaMemcpyHostToDevice, be->copy_stream));
  CU_TRY(cuda, cudaEventRecord(st->done, be->copy_stream));
  st->used = true;
  CU_TRY(cuda, cudaStreamWaitEvent(be->stream, st->done, 0));
  return GRAFT_OK;
}

static graft_status cuda_download(graft_backend *b, void *dst, const void *src, size_t bytes) {
  cuda_backend *be = cuda_of(b);
  if (!bytes) return GRAFT_OK;
  CU_TRY(cuda, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, be->stream));
  CU_TRY(cuda, cudaStreamSynchronize(be->stream));
  return GRAFT_OK;
}

static graft_status cuda_memset0(graft_backend *b, void *dst, size_t bytes) {
  CU_TRY(cuda, cudaMemsetAsync(dst, 0, bytes, cuda_of(b)->stream));
  return GRAFT_OK;
}

static graft_status cuda_sync(graft_backend *b) {
  CU_TRY(cuda, cudaStreamSynchronize(cuda_of(b)->stream));
  return GRAFT_OK;
}

/* ---- plans ---- */
static graft_status plan_run(graft_plan *plan, const void *x, void *y) {
  return plan->run(plan, x, y);
}

static void plan_destroy(graft_plan *plan) {
  if (plan) plan->destroy(plan);
}

static void plan_describe(graft_plan *plan, char *buf, size_t cap) {
  char engine[160] = "", trunk[320] = "";
  if (plan->engine >= 0) {
    char notes[96], tuned[96] = "";
    graft__notes_text(plan->notes, notes, sizeof notes);
    if (plan->tuned > 1)
      snprintf(tuned, sizeof tuned, ", fastest of %d timed (%.3g ms%s)", plan->tuned,
               plan->tuned_ms, plan->tuned_earlier ? ", by an earlier run" : "");
    snprintf(engine, sizeof engine, ", engine %ld%s%s%s", (long)plan->engine,
             notes[0] ? ", " : "", notes, tuned);
  }
  if (plan->captured) {
    bool captured;
    char state[300];
    snprintf(trunk, sizeof trunk, "; trunk %s",
             graft__cuda_trunk_state(plan, state, sizeof state, &captured));
  }
  snprintf(buf, cap, "%s%s%s", plan->path, engine, trunk);
}

/* ---- the table ---- */
static void cuda_destroy(graft_backend *b);

static const graft_backend_iface cuda_iface = {
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .memset0 = cuda_memset0,
    .synchronize = cuda_sync,
    .nchw_to_act_plan = graft__cuda_nchw_to_act,
    .conv2d_plan = graft__cuda_conv_plan,
    .maxpool2d_plan = graft__cuda_maxpool_plan,
    .adaptive_avgpool2d_plan = graft__cuda_avgpool_plan,
    .act_to_rows_plan = graft__cuda_act_to_rows,
    .plan_run = plan_run,
    .plan_destroy = plan_destroy,
    .trunk_run = graft__cuda_trunk_run,
    .replay = graft__cuda_replay,
    .replay_release = graft__cuda_replay_release,
    .replay_describe = graft__cuda_replay_describe,
    .linear_forward = graft__cuda_linear_forward,
    .linear_backward = graft__cuda_linear_backward,
    .relu_backward = graft__cuda_relu_backward,
    .dropout_forward = graft__cuda_dropout_forward,
    .dropout_backward = graft__cuda_dropout_backward,
    .softmax_forward = graft__cuda_softmax_forward,
    .cross_entropy = graft__cuda_cross_entropy,
    .sgd_step = graft__cuda_sgd_step,
    .plan_describe = plan_describe,
};

static void cuda_destroy(graft_backend *b) {
  cuda_backend *be = cuda_of(b);
  if (be->stream) cudaStreamSynchronize(be->stream);
  if (be->copy_stream) cudaStreamSynchronize(be->copy_stream);
  while (be->graphs) {
    cuda_cached_graph *g = be->graphs;
    be->graphs = g->next;
    graft__cudnn_plan_release(&g->plan);
    free(g);
  }
  if (be->workspace) cudaFree(be->workspace);
  for (int i = 0; i < 2; i++) {
    if (be->stage[i].host) cudaFreeHost(be->stage[i].host);
    if (be->stage[i].done) cudaEventDestroy(be->stage[i].done);
  }
  if (be->flag) cudaFree(be->flag);
  if (be->flag_host) cudaFreeHost(be->flag_host);
  if (be->compute_mark) cudaEventDestroy(be->compute_mark);
  graft__tune_cache_close(be->tune_cache);
  if (be->cublas) cublasDestroy(be->cublas);
  if (be->cublas_ws) cudaFree(be->cublas_ws);
  if (be->cudnn) cudnnDestroy(be->cudnn);
  if (be->copy_stream) cudaStreamDestroy(be->copy_stream);
  if (be->stream) cudaStreamDestroy(be->stream);
  free(be);
}

/* Is there a GPU graft can use? GRAFT_ENODEV only when there is none: no
 * driver, no device, no such index. Any other failure is the CUDA error as it
 * is: a driver older than the runtime or a broken install must not read as
 * "no GPU" ("auto" still falls back to the CPU, saying why; tests fail
 * rather than skip). */
static graft_status find_device(int *index, int pick, struct cudaDeviceProp *prop) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    int driver = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    (void)cudaGetLastError();
    if (e == cudaErrorNoDevice)
      return graft__fail(GRAFT_ENODEV, "no CUDA device: cudaGetDeviceCount: %s (%s)",
                         cudaGetErrorString(e), cudaGetErrorName(e));
    if (e == cudaErrorInsufficientDriver && driver == 0)
      return graft__fail(GRAFT_ENODEV,
                         "no NVIDIA driver (libcuda.so.1 not found): cudaGetDeviceCount: %s (%s)",
                         cudaGetErrorString(e), cudaGetErrorName(e));
    if (e == cudaErrorInsufficientDriver)
      return graft__fail(GRAFT_EBACKEND,
                         "NVIDIA driver too old: it supports CUDA %d.%d, this build's runtime is "
                         "%d.%d: cudaGetDeviceCount: %s (%s)",
                         driver / 1000, driver % 1000 / 10, CUDART_VERSION / 1000,
                         CUDART_VERSION % 1000 / 10, cudaGetErrorString(e), cudaGetErrorName(e));
    return graft__cuda_check(e, "cudaGetDeviceCount", __FILE__, __LINE__);
  }
  if (count == 0) return graft__fail(GRAFT_ENODEV, "no CUDA device: cudaGetDeviceCount found none");
  /* None named: the process's own among those it sees (one per rank). */
  if (*index < 0) *index = (pick < 0 ? 0 : pick) % count;
  const int device = *index;
  if (device >= count)
    return graft__fail(GRAFT_ENODEV, "no CUDA device cuda:%d: this machine has %d", device,
                       count);
  return GRAFT_CU_STATUS(cuda, cudaGetDeviceProperties(prop, device));
}

/* A do-nothing kernel, run once: a build without code for this GPU fails
 * here rather than at the first op, and says so. */
static graft_status probe_kernels(cuda_backend *be) {
  cudaError_t e = graft__k_probe(be->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(be->stream);
  if (e == cudaSuccess) return GRAFT_OK;
  (void)cudaGetLastError();
  if (e == cudaErrorNoKernelImageForDevice)
    return graft__fail(GRAFT_ENODEV,
                       "sm_%d: this build has no code for it (%s); rebuild with "
                       "-DCMAKE_CUDA_ARCHITECTURES=%d",
                       be->sm, cudaGetErrorName(e), be->sm);
  if (e == cudaErrorUnsupportedPtxVersion)
    return graft__fail(GRAFT_EBACKEND,
                       "sm_%d: the driver cannot compile this build's PTX (%s): the driver is "
                       "older than the CUDA %d.%d compiler; update it, or build for sm_%d "
                       "(-DCMAKE_CUDA_ARCHITECTURES=%d)",
                       be->sm, cudaGetErrorName(e), CUDART_VERSION / 1000,
                       CUDART_VERSION % 1000 / 10, be->sm, be->sm);
  return graft__cuda_check(e, "probe kernel", __FILE__, __LINE__);
}

static graft_status setup(cuda_backend *be) {
  CU_TRY(cuda, cudaSetDevice(be->device));
  CU_TRY(cuda, cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking));
  CU_TRY(cuda, cudaStreamCreateWithFlags(&be->copy_stream, cudaStreamNonBlocking));
  GRAFT_TRY(probe_kernels(be));
  CU_TRY(cuda, cudaEventCreateWithFlags(&be->compute_mark, cudaEventDisableTiming));
  for (int i = 0; i < 2; i++)
    CU_TRY(cuda, cudaEventCreateWithFlags(&be->stage[i].done, cudaEventDisableTiming));
  CU_TRY(cuda, cudaMalloc((void **)&be->flag, sizeof(int)));
  CU_TRY(cuda, cudaMallocHost((void **)&be->flag_host, sizeof(int)));
  CU_TRY(cudnn, cudnnCreate(&be->cudnn));
  CU_TRY(cudnn, cudnnSetStream(be->cudnn, be->stream));
  CU_TRY(cublas, cublasCreate(&be->cublas));
  CU_TRY(cublas, cublasSetStream(be->cublas, be->stream));
  /* Plain fp32 GEMMs: DEFAULT_MATH never lowers fp32 to TF32 (PyTorch's
   * default for matmuls, and what both of graft's precisions ask for). */
  CU_TRY(cublas, cublasSetMathMode(be->cublas, CUBLAS_DEFAULT_MATH));
  /* cuBLAS's workspace our own, so that a captured forward (graph.c) never
   * needs cuBLAS to allocate one during the capture (32 MiB: NVIDIA's
   * recommendation for Hopper, more than enough before it). */
  CU_TRY(cuda, cudaMalloc(&be->cublas_ws, CUBLAS_WS));
  CU_TRY(cublas, cublasSetWorkspace(be->cublas, be->cublas_ws, CUBLAS_WS));
  return GRAFT_OK;
}

/* The tune cache, its choices those of this card and these libraries. */
static graft_status open_tune_cache(cuda_backend *be, const graft_backend_options *o,
                                    const struct cudaDeviceProp *prop) {
  int driver = 0;
  cudaDriverGetVersion(&driver);
  char who[GRAFT__TUNE_WHO];
  snprintf(who, sizeof who, "%.80s, sm_%d, %d SMs, %zu MiB; driver %d, cuDNN %zu; graft %s",
           prop->name, be->sm, prop->multiProcessorCount, be->total_mem >> 20, driver,
           cudnnGetVersion(), GRAFT_VERSION);
  return graft__tune_cache_open(o->cudnn_tune_cache, who, &be->tune_cache);
}

graft_status graft__cuda_create(int device, const graft_backend_options *o, graft_backend **out) {
  static const graft_backend_options defaults = {0};
  if (!o) o = &defaults;
  *out = NULL;
  struct cudaDeviceProp prop;
  GRAFT_TRY(find_device(&device, o->default_gpu, &prop));
  graft_cudnn_path path = o->cudnn_path;
  if ((unsigned)path > GRAFT_CUDNN_PATH_LEGACY)
    return graft__fail(GRAFT_EINVAL, "cuDNN path %d", (int)path);
  if (o->precision == GRAFT_PRECISION_FP16_WEIGHTS)
    return graft__fail(GRAFT_EUNSUPPORTED, "precision fp16-weights runs on the CPU only (-d cpu)");
  if ((unsigned)o->precision > GRAFT_PRECISION_BF16)
    return graft__fail(GRAFT_EINVAL, "precision %d", (int)o->precision);
  if ((unsigned)o->cuda_layout > GRAFT_CUDA_LAYOUT_NHWC)
    return graft__fail(GRAFT_EINVAL, "CUDA layout %d", (int)o->cuda_layout);
  cuda_backend *be = calloc(1, sizeof *be);
  if (!be) return graft__fail(GRAFT_ENOMEM, "out of memory");
  be->base.iface = &cuda_iface;
  be->base.threads = 1;
  be->base.precision = o->precision;
  be->device = device;
  be->path = path;
  be->eager = o->cuda_eager;
  be->tune = o->cudnn_tune;
  /* auto: NHWC in bf16 (where cuDNN's bf16 tensor-core engines are at home),
   * NCHW in fp32 (its pre-compiled fp32 ConvBiasAct engines take NCHW). Both
   * plan for every layer deviceless; which is faster no GPU run has said. */
  bool bf16 = o->precision == GRAFT_PRECISION_BF16;
  bool nhwc = o->cuda_layout == GRAFT_CUDA_LAYOUT_NHWC ||
              (o->cuda_layout == GRAFT_CUDA_LAYOUT_AUTO && bf16);
  be->act_layout = (nhwc ? GRAFT__CUDA_NHWC : 0) | (bf16 ? GRAFT__CUDA_BF16 : 0);
  be->sm = prop.major * 10 + prop.minor;
  be->total_mem = prop.totalGlobalMem;
  snprintf(be->base.name, sizeof be->base.name, "cuda:%d", device);
  graft_status s = setup(be);
  if (s == GRAFT_OK && o->cudnn_tune && o->cudnn_tune_cache) s = open_tune_cache(be, o, &prop);
  if (s != GRAFT_OK) {
    graft__context(s, "%s (%.96s)", be->base.name, prop.name);
    cuda_destroy(&be->base);
    return s;
  }
  int driver = 0, cublas_v = 0;
  cudaDriverGetVersion(&driver);
  cublasGetVersion(be->cublas, &cublas_v);
  size_t dnn = cudnnGetVersion();
  snprintf(be->base.description, sizeof be->base.description,
           "%s: %.96s (sm_%d, %zu MiB), driver %d.%d, runtime %d.%d, cuDNN %zu.%zu.%zu "
           "graphs%s%s%s, trunk %s %s, cuBLAS %d.%d",
           be->base.name, prop.name, be->sm, be->total_mem >> 20, driver / 1000,
           driver % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10, dnn / 10000,
           dnn / 100 % 100, dnn % 100, path ? ", path " : "",
           path ? graft_cudnn_path_name(path) : "",
           !be->tune ? "" : be->tune_cache ? ", tuned (kept on disk)" : ", tuned",
           nhwc ? "NHWC" : "NCHW", bf16 ? "bf16" : "fp32", cublas_v / 10000,
           cublas_v / 100 % 100);
  *out = &be->base;
  return GRAFT_OK;
}
