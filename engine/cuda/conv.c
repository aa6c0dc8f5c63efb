/* Convolution + bias + ReLU of the frozen trunk on the GPU.
 *
 * The plan copies the layer's weights and bias to the device once and picks
 * the first rung of this ladder that plans (the backend's cudnn_path option
 * forces one):
 *   1. fused graph, heuristics mode A     conv -> +bias -> ReLU in one cuDNN
 *                                         execution (conv_graph.c)
 *   2. fused graph, heuristics FALLBACK   the same graph, cuDNN's fallback list
 *   3. split: conv-only graph (mode A,    then our bias/ReLU kernel over y
 *      then FALLBACK)
 *   4. legacy: cudnnConvolutionForward    the pre-graph API, the algorithm from
 *      + our kernel                       cudnnGetConvolutionForwardAlgorithm_v7
 * A rung that does not plan (no engine for this shape or precision) hands on
 * to the next, and so does one whose new plan fails when it is first run: a
 * plan that finalizes can still fail at execution (docs/CUDNN.md), so each new
 * plan runs once, on scratch buffers, before the ladder settles on it.
 * Running past the first rung is reported through graft__warn.
 *
 * cuDNN plans are cached in the backend by (op, rung, precision, shape,
 * batch): VGG16's repeated layers share one plan, and a batch size planned
 * once (the last, smaller batch of each epoch) is not planned again. The
 * plan's workspace lives in the backend, grown to the largest plan; configs
 * needing more than a 16th of the GPU's memory are tried last, and the legacy
 * rung takes only an algorithm whose workspace fits that 16th (or the
 * workspace the backend already has, when larger).
 *
 * Layout: the trunk's (NCHW, or NHWC with KRSC filters; the filters are
 * reordered and, in bf16, rounded to bfloat16 on the host once per plan).
 * Every rung takes both; the fused graph's bias is in the data's type.
 *
 * Precision: fp32 lets cuDNN use TF32 tensor cores (PyTorch's default,
 * torch.backends.cudnn.allow_tf32); fp32-strict drops every engine config
 * with CUDNN_NUMERICAL_NOTE_TENSOR_CORE and tries FFT and Winograd engines
 * last (cudnn_graph.c), and the legacy rung sets CUDNN_FMA_MATH. Neither ever
 * takes an engine or math type that converts fp32 inputs down. bf16: bfloat16
 * x, w, b and y, float compute and accumulation (the graph's virtual
 * intermediates are float), tensor cores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"
#include "engine/base/log.h"

enum rung { RUNG_FUSED_A, RUNG_FUSED_FALLBACK, RUNG_SPLIT, RUNG_LEGACY, RUNG_COUNT };

static const char *const rung_names[RUNG_COUNT] = {
    "fused graph (heuristics A)", "fused graph (heuristics FALLBACK)",
    "conv graph + bias/ReLU kernel", "legacy cudnnConvolutionForward + bias/ReLU kernel"};

typedef struct conv_plan {
  graft_plan head;
  graft__conv_shape s;
  int oh, ow;
  void *w, *b;                 /* device copies of the frozen parameters, in the
                                  trunk's layout (KRSC when NHWC) and element type */
  int layout;                  /* graft_act.layout of x and y (GRAFT__CUDA_*) */
  graft__cudnn_plan *graph;    /* rungs 1-3: cached in the backend */
  graft__cudnn_packs packs;
  bool bias_kernel;            /* rungs 3-4 */
  /* rung 4 */
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnConvolutionFwdAlgo_t algo;
  size_t ws;
} conv_plan;

/* The cache key: ints only, so no padding bytes take part in the compare. */
typedef struct conv_key {
  int op; /* 1 = convolution */
  int rung, precision, layout;
  int n, c, h, w, k, r, stride, pad, relu;
} conv_key;

static graft_status run(graft_plan *plan, const void *x, void *y);

/* Run the plan as it stands once, on scratch input and output. */
static graft_status trial(conv_plan *c) {
  const size_t e = graft__cuda_elem_bytes(c->layout);
  size_t x_bytes = (size_t)c->s.n * c->s.c * c->s.h * c->s.w * e;
  size_t y_bytes = (size_t)c->s.n * c->s.k * c->oh * c->ow * e;
  return graft__cuda_trial(&c->head, x_bytes, y_bytes);
}

static graft_status run(graft_plan *plan, const void *x, void *y) {
  conv_plan *c = (conv_plan *)plan;
  cuda_backend *be = plan->be;
  if (c->graph) {
    void *ptrs[4] = {(void *)x, c->w, c->b, y};
    if (c->bias_kernel) ptrs[2] = y; /* split graph: x, w, y */
    GRAFT_TRY(graft__cudnn_execute(be->cudnn, c->graph, &c->packs, ptrs, be->workspace));
  } else {
    const float one = 1.0f, zero = 0.0f;
    CU_TRY(cudnn, cudnnConvolutionForward(be->cudnn, &one, c->xd, x, c->wd, c->w, c->cd,
                                          c->algo, be->workspace, c->ws, &zero, c->yd, y));
  }
  if (c->bias_kernel && c->layout == GRAFT_LAYOUT_NCHW)
    CU_TRY(cuda, graft__k_bias_act_nchw(be->stream, y, c->b, c->s.n, c->s.k,
                                        (size_t)c->oh * c->ow, c->s.relu));
  else if (c->bias_kernel)
    CU_TRY(cuda, graft__k_bias_act(be->stream, y, c->b, c->s.n, c->s.k, (size_t)c->oh * c->ow,
                                   c->s.relu, c->layout));
  return GRAFT_OK;
}

static void destroy(graft_plan *plan) {
  conv_plan *c = (conv_plan *)plan;
  graft__cudnn_packs_release(&c->packs);
  if (c->xd) cudnnDestroyTensorDescriptor(c->xd);
  if (c->yd) cudnnDestroyTensorDescriptor(c->yd);
  if (c->wd) cudnnDestroyFilterDescriptor(c->wd);
  if (c->cd) cudnnDestroyConvolutionDescriptor(c->cd);
  if (c->w) cudaFree(c->w);
  if (c->b) cudaFree(c->b);
  graft__cuda_plan_free(plan);
}

/* Tuned planning's timer: a candidate on the layer's own weights and
 * scratch x and y (zeros), once to warm up, then TUNE_RUNS times between two
 * events; the mean. The backend's workspace grows to the candidate's need
 * (the candidates are of one rank: within the limit when any is). */
enum { TUNE_TOP = 4, TUNE_RUNS = 3 };
typedef struct tune_ctx {
  cuda_backend *be;
  conv_plan *c;
  void *x, *y;
  cudaEvent_t start, stop;
} tune_ctx;

static graft_status time_candidate(void *ctx, const graft__cudnn_plan *cand, double *ms) {
  tune_ctx *tc = ctx;
  cuda_backend *be = tc->be;
  GRAFT_TRY(graft__cuda_workspace_reserve(be, (size_t)cand->workspace));
  void *ptrs[4] = {tc->x, tc->c->w, tc->c->b, tc->y};
  if (cand->n_uids == 3) ptrs[2] = tc->y; /* conv-only graph: x, w, y */
  cudnnBackendDescriptor_t pack = NULL;
  GRAFT_TRY(graft__cudnn_make_pack(cand, ptrs, be->workspace, &pack));
  graft_status s = CU_STEP(cudnn, cudnnBackendExecute(be->cudnn, cand->plan, pack));
  if (s == GRAFT_OK) s = CU_STEP(cuda, cudaEventRecord(tc->start, be->stream));
  for (int i = 0; s == GRAFT_OK && i < TUNE_RUNS; i++)
    s = CU_STEP(cudnn, cudnnBackendExecute(be->cudnn, cand->plan, pack));
  if (s == GRAFT_OK) s = CU_STEP(cuda, cudaEventRecord(tc->stop, be->stream));
  if (s == GRAFT_OK) s = CU_STEP(cuda, cudaEventSynchronize(tc->stop));
  float elapsed = 0;
  if (s == GRAFT_OK) s = CU_STEP(cuda, cudaEventElapsedTime(&elapsed, tc->start, tc->stop));
  cudnnBackendDestroyDescriptor(pack);
  *ms = (double)elapsed / TUNE_RUNS;
  return s;
}

static graft_status tune_begin(cuda_backend *be, conv_plan *c, tune_ctx *tc) {
  const size_t e = graft__cuda_elem_bytes(c->layout);
  memset(tc, 0, sizeof *tc);
  tc->be = be;
  tc->c = c;
  CU_TRY(cuda, cudaMalloc(&tc->x, (size_t)c->s.n * c->s.c * c->s.h * c->s.w * e));
  CU_TRY(cuda, cudaMalloc(&tc->y, (size_t)c->s.n * c->s.k * c->oh * c->ow * e));
  CU_TRY(cuda, cudaMemsetAsync(tc->x, 0, (size_t)c->s.n * c->s.c * c->s.h * c->s.w * e,
                               be->stream));
  CU_TRY(cuda, cudaEventCreate(&tc->start));
  CU_TRY(cuda, cudaEventCreate(&tc->stop));
  return GRAFT_OK;
}

static void tune_end(tune_ctx *tc) {
  if (tc->be && tc->be->stream) cudaStreamSynchronize(tc->be->stream);
  if (tc->x) cudaFree(tc->x);
  if (tc->y) cudaFree(tc->y);
  if (tc->start) cudaEventDestroy(tc->start);
  if (tc->stop) cudaEventDestroy(tc->stop);
}

/* Rungs 1-3: the cached cuDNN plan for this shape, built if new. */
static graft_status graph_rung(cuda_backend *be, conv_plan *c, enum rung r) {
  conv_key key = {1, r, (int)be->base.precision, c->layout, c->s.n, c->s.c, c->s.h, c->s.w,
                  c->s.k, c->s.r, c->s.stride, c->s.pad, c->s.relu};
  graft__cudnn_plan *cached = graft__cuda_graph_find(be, &key, sizeof key);
  if (!cached) {
    graft__cudnn_target t = {.handle = be->cudnn,
                             .workspace_limit = (int64_t)(be->total_mem / 16)};
    tune_ctx tc = {0};
    if (be->tune) {
      graft_status ts = tune_begin(be, c, &tc);
      if (ts != GRAFT_OK) {
        tune_end(&tc);
        return graft__context(ts, "scratch buffers to time engine configs");
      }
      t.time = time_candidate;
      t.time_ctx = &tc;
      t.tune_top = TUNE_TOP;
    }
    char tune_key[GRAFT__TUNE_KEY];
    snprintf(tune_key, sizeof tune_key, "conv %dx%dx%dx%d to %d, %dx%d/%d pad %d%s, %s %s, rung %d",
             c->s.n, c->s.c, c->s.h, c->s.w, c->s.k, c->s.r, c->s.r, c->s.stride, c->s.pad,
             c->s.relu ? " relu" : "", graft_precision_name(be->base.precision),
             c->layout & GRAFT__CUDA_NHWC ? "NHWC" : "NCHW", (int)r);
    t.tune_cache = be->tune_cache;
    t.tune_key = tune_key;
    graft__cudnn_plan p;
    graft_status s;
    if (r == RUNG_SPLIT) {
      s = graft__conv_graph(&t, &c->s, false, CUDNN_HEUR_MODE_A, be->base.precision, &p);
      if (s == GRAFT_EUNSUPPORTED)
        s = graft__conv_graph(&t, &c->s, false, CUDNN_HEUR_MODE_FALLBACK, be->base.precision,
                              &p);
    } else {
      cudnnBackendHeurMode_t mode =
          r == RUNG_FUSED_A ? CUDNN_HEUR_MODE_A : CUDNN_HEUR_MODE_FALLBACK;
      s = graft__conv_graph(&t, &c->s, true, mode, be->base.precision, &p);
    }
    tune_end(&tc);
    if (s != GRAFT_OK) return s;
    /* New: run it once before it is cached for every plan of this shape. */
    s = graft__cuda_workspace_reserve(be, (size_t)p.workspace);
    c->graph = &p;
    c->bias_kernel = r == RUNG_SPLIT;
    if (s == GRAFT_OK) s = trial(c);
    c->graph = NULL;
    graft__cudnn_packs_release(&c->packs); /* they name the scratch buffers */
    if (s != GRAFT_OK) {
      char notes[96];
      graft__context(s, "engine %ld (%s) planned but failed when run", (long)p.engine,
                     graft__notes_text(p.notes, notes, sizeof notes));
      graft__cudnn_plan_release(&p);
      return s;
    }
    GRAFT_TRY(graft__cuda_graph_add(be, &key, sizeof key, &p, &cached));
  }
  GRAFT_TRY(graft__cuda_workspace_reserve(be, (size_t)cached->workspace));
  c->graph = cached;
  c->bias_kernel = r == RUNG_SPLIT;
  c->head.engine = cached->engine;
  c->head.notes = cached->notes;
  c->head.tuned = cached->tuned;
  c->head.tuned_ms = cached->tuned_ms;
  c->head.tuned_earlier = cached->tuned_earlier;
  return GRAFT_OK;
}

/* What a legacy algorithm does to the numbers (GRAFT__NOTE_*): only
 * FMA_MATH keeps TF32 out (DEFAULT_MATH permits it on sm_80 and up). */
static unsigned algo_notes(cudnnConvolutionFwdAlgo_t a, cudnnMathType_t m) {
  unsigned notes = m == CUDNN_FMA_MATH ? 0 : GRAFT__NOTE_TENSOR_CORE;
  if (a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING)
    notes |= GRAFT__NOTE_FFT;
  if (a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED)
    notes |= GRAFT__NOTE_WINOGRAD;
  return notes;
}

/* (cuda.h) Never TENSOR_OP_MATH_ALLOW_CONVERSION (fp32 computed in fp16);
 * in strict no TENSOR_OP_MATH (TF32) either. Ranks as the graph rungs'. */
int graft__legacy_pick(const cudnnConvolutionFwdAlgoPerf_t *perf, int got, bool strict,
                       size_t limit, int *smallest) {
  /* (bf16 data: ALLOW_CONVERSION would mean fp16 arithmetic; never that either) */
  int pick = -1;
  *smallest = -1;
  for (int pass = 0; pass < 4 && pick < 0; pass++)
    for (int i = 0; i < got && pick < 0; i++) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
      if (perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
      if (strict && perf[i].mathType == CUDNN_TENSOR_OP_MATH) continue;
      if (perf[i].memory > limit) {
        if (pass == 0 && (*smallest < 0 || perf[i].memory < perf[*smallest].memory)) *smallest = i;
        continue;
      }
      bool transform = strict && (algo_notes(perf[i].algo, perf[i].mathType) &
                                  GRAFT__NOTES_TRANSFORM);
      int r = (perf[i].determinism == CUDNN_DETERMINISTIC ? 0 : 2) + (transform ? 1 : 0);
      if (r == pass) pick = i;
    }
  if (pick >= 0) *smallest = -1;
  return pick;
}

/* Rung 4: the legacy API. TF32 as PyTorch sets it: TENSOR_OP_MATH when
 * allowed, FMA_MATH (no tensor cores) in fp32-strict; bf16 data with float
 * compute on tensor cores in bf16. NHWC: tensors CUDNN_TENSOR_NHWC, the
 * filter in the same format (KRSC). */
static graft_status legacy_rung(cuda_backend *be, conv_plan *c) {
  const graft__conv_shape *s = &c->s;
  bool strict = be->base.precision == GRAFT_PRECISION_FP32_STRICT;
  const cudnnTensorFormat_t fmt = s->nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const cudnnDataType_t io = graft__cudnn_io_type(be->base.precision);
  CU_TRY(cudnn, cudnnCreateTensorDescriptor(&c->xd));
  CU_TRY(cudnn, cudnnCreateTensorDescriptor(&c->yd));
  CU_TRY(cudnn, cudnnCreateFilterDescriptor(&c->wd));
  CU_TRY(cudnn, cudnnCreateConvolutionDescriptor(&c->cd));
  CU_TRY(cudnn, cudnnSetTensor4dDescriptor(c->xd, fmt, io, s->n, s->c, s->h, s->w));
  /* the filter: data type first, then format (the tensor's call is the other way) */
  CU_TRY(cudnn, cudnnSetFilter4dDescriptor(c->wd, io, fmt, s->k, s->c, s->r, s->r));
  CU_TRY(cudnn, cudnnSetConvolution2dDescriptor(c->cd, s->pad, s->pad, s->stride, s->stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CU_TRY(cudnn, cudnnSetConvolutionMathType(c->cd, strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
  int n, k, h, w;
  CU_TRY(cudnn, cudnnGetConvolution2dForwardOutputDim(c->cd, c->xd, c->wd, &n, &k, &h, &w));
  if (n != s->n || k != s->k || h != c->oh || w != c->ow)
    return graft__fail(GRAFT_ESHAPE, "cuDNN's output %dx%dx%dx%d, expected %dx%dx%dx%d", n, k, h,
                       w, s->n, s->k, c->oh, c->ow);
  CU_TRY(cudnn, cudnnSetTensor4dDescriptor(c->yd, fmt, io, n, k, h, w));
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int got = 0;
  CU_TRY(cudnn, cudnnGetConvolutionForwardAlgorithm_v7(be->cudnn, c->xd, c->wd, c->cd, c->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                       perf));
  const size_t limit = be->workspace_bytes > be->total_mem / 16 ? be->workspace_bytes
                                                                 : be->total_mem / 16;
  int smallest = -1, pick = graft__legacy_pick(perf, got, strict, limit, &smallest);
  if (pick < 0 && smallest >= 0)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "no legacy convolution algorithm fits the workspace limit of %zu MiB: the "
                       "smallest, algorithm %d, needs %zu MiB",
                       limit >> 20, (int)perf[smallest].algo,
                       (perf[smallest].memory + 0xFFFFF) >> 20);
  if (pick < 0)
    return graft__fail(GRAFT_EUNSUPPORTED, "no legacy convolution algorithm among %d", got);
  c->algo = perf[pick].algo;
  /* Strict keeps FMA_MATH: DEFAULT_MATH lets fp32 run as TF32 on sm_80 and up. */
  cudnnMathType_t math = strict ? CUDNN_FMA_MATH : perf[pick].mathType;
  CU_TRY(cudnn, cudnnSetConvolutionMathType(c->cd, math));
  CU_TRY(cudnn, cudnnGetConvolutionForwardWorkspaceSize(be->cudnn, c->xd, c->wd, c->cd, c->yd,
                                                        c->algo, &c->ws));
  GRAFT_TRY(graft__cuda_workspace_reserve(be, c->ws));
  c->bias_kernel = true;
  c->head.engine = (int64_t)c->algo;
  c->head.notes = algo_notes(c->algo, math);
  graft_status st = trial(c);
  if (st != GRAFT_OK)
    return graft__context(st, "legacy algorithm %d planned but failed when run", (int)c->algo);
  return GRAFT_OK;
}

/* Which rungs the cudnn_path option lets run: [first, last]. */
static void rung_range(graft_cudnn_path path, int *first, int *last) {
  switch (path) {
    case GRAFT_CUDNN_PATH_FUSED: *first = RUNG_FUSED_A, *last = RUNG_FUSED_FALLBACK; break;
    case GRAFT_CUDNN_PATH_FALLBACK: *first = *last = RUNG_FUSED_FALLBACK; break;
    case GRAFT_CUDNN_PATH_SPLIT: *first = *last = RUNG_SPLIT; break;
    case GRAFT_CUDNN_PATH_LEGACY: *first = *last = RUNG_LEGACY; break;
    default: *first = RUNG_FUSED_A, *last = RUNG_LEGACY; break;
  }
}

/* The frozen parameters in the trunk's layout: KCRS float from the model,
 * KRSC when NHWC, bfloat16 (rounded to nearest even) in bf16; on the host,
 * once per plan. */
static void *host_params(const float *w_host, const float *b_host, const graft__conv_shape *s,
                         int layout, size_t *w_bytes, size_t *b_bytes) {
  const size_t rs = (size_t)s->r * s->r, wn = (size_t)s->k * s->c * rs, bn = (size_t)s->k;
  const size_t e = graft__cuda_elem_bytes(layout);
  unsigned char *buf = malloc((wn + bn) * e);
  if (!buf) return NULL;
  for (size_t i = 0; i < wn + bn; i++) {
    size_t from = i;
    if (i < wn && (layout & GRAFT__CUDA_NHWC)) { /* i counts KRSC: k, pixel, ch */
      size_t ch = i % (size_t)s->c, pixel = (i / (size_t)s->c) % rs, k = i / ((size_t)s->c * rs);
      from = (k * (size_t)s->c + ch) * rs + pixel;
    }
    float v = i < wn ? w_host[from] : b_host[i - wn];
    if (layout & GRAFT__CUDA_BF16) {
      uint16_t h = graft__bf16_from_float(v);
      memcpy(buf + i * e, &h, e);
    } else {
      memcpy(buf + i * e, &v, e);
    }
  }
  *w_bytes = wn * e;
  *b_bytes = bn * e;
  return buf;
}

static graft_status upload_params(conv_plan *c, const float *w_host, const float *b_host) {
  size_t wb = 0, bb = 0;
  unsigned char *host = host_params(w_host, b_host, &c->s, c->layout, &wb, &bb);
  if (!host) return graft__fail(GRAFT_ENOMEM, "out of memory for convolution weights");
  graft_status s = GRAFT_CU_STATUS(cuda, cudaMalloc(&c->w, wb));
  if (s == GRAFT_OK) s = GRAFT_CU_STATUS(cuda, cudaMalloc(&c->b, bb));
  if (s != GRAFT_OK) {
    free(host);
    return graft__context(s, "convolution weights; try a smaller batch size");
  }
  /* In stream order (a plain cudaMemcpy from pageable memory may return
   * before its DMA lands, and our streams do not wait for the legacy one);
   * plan time is not hot, so wait for it here. */
  cudaStream_t st = c->head.be->stream;
  s = GRAFT_CU_STATUS(cuda, cudaMemcpyAsync(c->w, host, wb, cudaMemcpyHostToDevice, st));
  if (s == GRAFT_OK)
    s = GRAFT_CU_STATUS(cuda, cudaMemcpyAsync(c->b, host + wb, bb, cudaMemcpyHostToDevice, st));
  if (s == GRAFT_OK) s = GRAFT_CU_STATUS(cuda, cudaStreamSynchronize(st));
  free(host);
  return s;
}

graft_status graft__cuda_conv_plan(graft_backend *b, const graft_conv2d_params *p,
                                   const graft_act *in, const float *w_host,
                                   const float *b_host, graft_act *out, graft_plan **plan) {
  cuda_backend *be = cuda_of(b);
  *plan = NULL;
  if (in->layout != be->act_layout)
    return graft__fail(GRAFT_EUNSUPPORTED, "a CUDA convolution takes the trunk's layout %d, not %d",
                       be->act_layout, in->layout);
  if (p->in_c != in->c)
    return graft__fail(GRAFT_ESHAPE, "convolution expects %d channels, input has %d", p->in_c,
                       in->c);
  int oh = graft_out_dim(in->h, p->kernel, p->stride, p->pad);
  int ow = graft_out_dim(in->w, p->kernel, p->stride, p->pad);
  graft_act o = {in->n, p->out_c, oh, ow, in->layout,
                 (size_t)in->n * p->out_c * oh * ow * graft__cuda_elem_bytes(in->layout)};
  graft_plan *head;
  GRAFT_TRY(graft__cuda_plan_new(be, sizeof(conv_plan), run, destroy, in, &o, &head));
  conv_plan *c = (conv_plan *)head;
  c->layout = in->layout;
  c->s = (graft__conv_shape){in->n, in->c, in->h, in->w, p->out_c, p->kernel, p->stride, p->pad,
                             p->relu, (in->layout & GRAFT__CUDA_NHWC) != 0};
  c->oh = oh;
  c->ow = ow;
  graft_status s = upload_params(c, w_host, b_host);
  int first, last;
  rung_range(be->path, &first, &last);
  char why[512] = "";
  int r = first;
  for (; s == GRAFT_OK && r <= last; r++) {
    graft_status rs = r == RUNG_LEGACY ? legacy_rung(be, c) : graph_rung(be, c, (enum rung)r);
    if (rs == GRAFT_OK) break;
    if (rs == GRAFT_ENOMEM) s = rs; /* a smaller batch is the cure, not another rung */
    if (!why[0]) snprintf(why, sizeof why, "%s: %s", rung_names[r], graft_detail());
    c->head.engine = -1;
    c->head.notes = 0;
  }
  if (s == GRAFT_OK && r > last)
    s = graft__fail(GRAFT_EUNSUPPORTED, "no cuDNN path plans this convolution (path %s): %s",
                    graft_cudnn_path_name(be->path), why);
  if (s != GRAFT_OK) {
    destroy(head);
    return graft__context(s, "conv %dx%d/%d %d->%d on %dx%d, batch %d", p->kernel, p->kernel,
                          p->stride, p->in_c, p->out_c, in->h, in->w, in->n);
  }
  head->path = rung_names[r];
  if (r != first)
    graft__warn("%s: conv %d->%d on %dx%d, batch %d runs as %s (%s)", be->base.name, p->in_c,
                p->out_c, in->h, in->w, in->n, rung_names[r], why);
  graft_clear_detail();
  *out = o;
  *plan = head;
  return GRAFT_OK;
}
