/* Inside the CUDA backend: its state, the head of its plans, the one macro
 * family that checks every CUDA / cuDNN / cuBLAS call, and the cuDNN graph
 * layer that works with a real GPU or with a device description alone.
 *
 * Which path each op takes (details at the top of each file):
 *   conv2d         cuDNN operation graph conv -> +bias -> ReLU (engine/cuda/conv.c,
 *                  graphs in conv_graph.c), down a ladder of fall-backs
 *   max pooling    cuDNN resample graph, else cudnnPoolingForward (pool.c)
 *   adaptive avg   identity copy at the trunk's native size, else our kernel (pool.c)
 *   edges          NCHW fp32: device-to-device copies; NHWC or bf16: a layout
 *                  kernel (pool.c, layout.cu)
 *   classifier     cuBLAS SGEMM (no TF32) + small kernels (linear.c, loss.c, sgd.c,
 *                  kernels.cu); in bf16 GEMMs on bf16 tensor cores, fp32
 *                  accumulation, as PyTorch's autocast
 *
 * The trunk's activations are in one layout per backend (graft_act.layout,
 * GRAFT__CUDA_* bits below), chosen from the precision and layout options:
 * plain NCHW fp32 by default (cuDNN's pre-compiled ConvBiasAct engines take
 * it directly); channels-last (NHWC activations, KRSC filters) on request and
 * in bf16, where the data is bfloat16 with float compute. Every conv layer
 * of AlexNet and VGG16 plans in each combination deviceless
 * (test_cudnn_deviceless); none has run on a GPU yet. */
#ifndef GRAFT_CUDA_H
#define GRAFT_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/cuda/kernels.h"

/* ---- errors: one macro family for all three libraries ----
 * GRAFT_CU_STATUS(lib, call) evaluates call once and returns GRAFT_OK, or
 * records "call (file:line): what the library said" as the detail and returns
 * the matching status (ENOMEM, ENODEV, EUNSUPPORTED or EBACKEND). For cuDNN
 * the detail carries cudnnGetLastErrorString. lib is cuda, cudnn or cublas.
 * Kernel launches go through the launchers of kernels.h, which return
 * cudaGetLastError() after the launch: CU_TRY(cuda, graft__k_...(...)). */
graft_status graft__cuda_check(cudaError_t e, const char *call, const char *file, int line);
graft_status graft__cudnn_check(cudnnStatus_t e, const char *call, const char *file, int line);
graft_status graft__cublas_check(cublasStatus_t e, const char *call, const char *file, int line);

#define GRAFT_CU_STATUS(lib, call) graft__##lib##_check((call), #call, __FILE__, __LINE__)
#define CU_TRY(lib, call)                                     \
  do {                                                        \
    graft_status cu_s_ = GRAFT_CU_STATUS(lib, call);          \
    if (cu_s_ != GRAFT_OK) return cu_s_;                      \
  } while (0)
/* In a goto ladder: s = CU_STEP(lib, call); if (s) goto fail; */
#define CU_STEP(lib, call) GRAFT_CU_STATUS(lib, call)

/* ---- the cuDNN graph layer (cudnn_graph.c), usable without a GPU ---- */

/* Where graphs are planned: a real GPU (handle) or, deviceless, a finalized
 * CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR made from a device's JSON. */
typedef struct graft__cudnn_plan graft__cudnn_plan;
typedef struct graft__cudnn_target {
  cudnnHandle_t handle;
  cudnnBackendDescriptor_t device;
  int64_t workspace_limit; /* prefer configs needing at most this (0: any) */
  /* Tuned planning (cudnn.benchmark's rule): when time is set and tune_top
   * > 1, up to tune_top plans (at most GRAFT__CUDNN_TUNE_MAX) of the best
   * rank are finalized and timed, *ms set by time(time_ctx, candidate, ms),
   * and the fastest kept. NULL: the first plan that finalizes, as ranked. */
  graft_status (*time)(void *time_ctx, const graft__cudnn_plan *candidate, double *ms);
  void *time_ctx;
  int tune_top;
  /* Tuned choices kept on disk (NULL: none): a choice recorded for this
   * card and tune_key (the graph's shape, precision, layout and rung; the
   * heuristics mode is added) is finalized without timing anything when the
   * heuristics still offer it; a new choice is recorded. */
  struct graft__tune_cache *tune_cache;
  const char *tune_key;
} graft__cudnn_target;

/* ---- tuned choices on disk (tune_cache.c) ---- */
#define GRAFT__TUNE_WHO 192
#define GRAFT__TUNE_KEY 160
#define GRAFT__TUNE_KNOBS 256
#define GRAFT__TUNE_MAX_LINES 1024 /* a file's choices, all cards together */
typedef struct graft__tune_line {
  char who[GRAFT__TUNE_WHO];   /* the card and library versions */
  char key[GRAFT__TUNE_KEY];   /* the graph */
  int64_t engine;              /* CUDNN_ATTR_ENGINE_GLOBAL_INDEX */
  char knobs[GRAFT__TUNE_KNOBS]; /* "type=value,..." or "-" */
  int timed;                   /* configs timed */
  double ms;                   /* the chosen one's time */
} graft__tune_line;
typedef struct graft__tune_cache graft__tune_cache;

/* Open the file at path for the card and libraries `who` (a missing file
 * holds no choice; one not of this format is refused, GRAFT_EFORMAT, and
 * never written). Lines that do not parse are skipped, said once. */
graft_status graft__tune_cache_open(const char *path, const char *who, graft__tune_cache **out);
void graft__tune_cache_close(graft__tune_cache *c);
const char *graft__tune_cache_who(const graft__tune_cache *c);
/* The choice recorded for who and key, or NULL. */
const graft__tune_line *graft__tune_cache_find(const graft__tune_cache *c, const char *who,
                                               const char *key);
/* Record a choice for this cache's card and rewrite the file (read again
 * first: other processes' new lines are kept; the oldest dropped beyond
 * GRAFT__TUNE_MAX_LINES, other cards' first); said through graft__warn the
 * first time writing fails. */
graft_status graft__tune_cache_put(graft__tune_cache *c, const char *key, int64_t engine,
                                   const char *knobs, int timed, double ms);

#define GRAFT__CUDNN_TUNE_MAX 8

#define GRAFT__CUDNN_KEEP 20
#define GRAFT__CUDNN_MAX_IO 4

/* One finalized execution plan and what it needs at run time. */
struct graft__cudnn_plan {
  cudnnBackendDescriptor_t plan;
  cudnnBackendDescriptor_t keep[GRAFT__CUDNN_KEEP]; /* graph pieces, alive as long as the plan */
  int n_keep;
  int64_t uids[GRAFT__CUDNN_MAX_IO]; /* the non-virtual tensors, in run order */
  int n_uids;
  int64_t workspace;     /* bytes */
  int64_t engine;        /* CUDNN_ATTR_ENGINE_GLOBAL_INDEX of the chosen config */
  int candidates;        /* configs the heuristics returned */
  int viable;            /* of those, configs our precision filter keeps */
  int tried;             /* plans finalized or attempted before one worked */
  bool tensor_core;      /* the chosen engine uses tensor cores (TF32) */
  unsigned notes;        /* the chosen engine's GRAFT__NOTE_* */
  cudnnBackendHeurMode_t mode;
  int tuned;             /* candidates timed (0: not tuned, the first plan) */
  double tuned_ms;       /* the chosen one's time (-1: none could be timed) */
  bool tuned_earlier;    /* tuned and tuned_ms are an earlier run's, from the tune cache */
};

/* What an engine (or a legacy algorithm) does to the numbers, as cuDNN's
 * numerical notes say it; tests pick their tolerance from these. */
enum {
  GRAFT__NOTE_TENSOR_CORE = 1, /* TF32 */
  GRAFT__NOTE_FFT = 2,
  GRAFT__NOTE_WINOGRAD = 4,      /* tile not stated */
  GRAFT__NOTE_WINOGRAD_4x4 = 8,
  GRAFT__NOTE_WINOGRAD_6x6 = 16,
  GRAFT__NOTE_WINOGRAD_13x13 = 32,
  GRAFT__NOTE_NONDETERMINISTIC = 64,
};
#define GRAFT__NOTES_TRANSFORM                                                   \
  (GRAFT__NOTE_FFT | GRAFT__NOTE_WINOGRAD | GRAFT__NOTE_WINOGRAD_4x4 |           \
   GRAFT__NOTE_WINOGRAD_6x6 | GRAFT__NOTE_WINOGRAD_13x13)

/* "TF32, FFT" and so on ("" for plain fp32 arithmetic) into buf. */
const char *graft__notes_text(unsigned notes, char *buf, size_t cap);

/* The last variant packs (data pointers + workspace) of one user of a plan,
 * reused while the same buffers come back: the trunk's ping-pong makes that
 * the rule, so steady-state runs build no descriptor. */
typedef struct graft__cudnn_packs {
  struct {
    void *ptrs[GRAFT__CUDNN_MAX_IO];
    void *ws;
    cudnnBackendDescriptor_t pack;
  } slot[2];
  int next;
} graft__cudnn_packs;
void graft__cudnn_packs_release(graft__cudnn_packs *packs);

/* A finalized device description from its JSON text (deviceless planning). */
graft_status graft__cudnn_device_from_json(const char *json, cudnnBackendDescriptor_t *out);

/* A non-virtual (or virtual) tensor of dims [N,C,H,W] (filters [K,C,R,S])
 * of this data type, packed NCHW strides or, nhwc, packed NHWC (KRSC)
 * strides, 16-byte aligned. */
graft_status graft__cudnn_tensor(int64_t uid, const int64_t dims[4], cudnnDataType_t type,
                                 bool nhwc, bool is_virtual, cudnnBackendDescriptor_t *out);

/* The data type of the trunk's tensors in a precision: bfloat16 in bf16,
 * float otherwise (compute and virtual intermediates are float always). */
static inline cudnnDataType_t graft__cudnn_io_type(graft_precision prec) {
  return prec == GRAFT_PRECISION_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

/* Keep a descriptor with the plan (destroyed by graft__cudnn_plan_release). */
graft_status graft__cudnn_keep(graft__cudnn_plan *p, cudnnBackendDescriptor_t d);

/* Make the operation graph of ops[] (already kept), run heuristics in `mode`
 * on the target, drop configs the precision forbids (both precisions: any
 * that converts inputs down or reduces in lower precision; FP32_STRICT:
 * tensor-core TF32 too), and finalize the first config that finalizes, in
 * the heuristics' order within ranks: deterministic before not, workspace
 * within the target's limit before not, and in FP32_STRICT direct and GEMM
 * engines before FFT and Winograd ones (whose transforms cost bits).
 * With a timer on the target (tuned planning), up to tune_top configs of
 * the first rank that finalizes any are finalized and timed, and the
 * fastest kept (p->tuned, p->tuned_ms); p's uids must be set before.
 * GRAFT_EUNSUPPORTED with the reason when none does. */
graft_status graft__cudnn_plan_graph(const graft__cudnn_target *t, graft__cudnn_plan *p,
                                     const cudnnBackendDescriptor_t *ops, int n_ops,
                                     cudnnBackendHeurMode_t mode, graft_precision prec);

/* The legacy rung's choice among cudnnGetConvolutionForwardAlgorithm_v7's
 * results (engine/cuda/conv.c): the index of the first that succeeded, never
 * converts fp32 down (nor, strict, uses TF32) and needs at most limit bytes
 * of workspace, deterministic first and, strict, FFT and Winograd last; -1
 * if none, with *smallest the otherwise eligible one needing the least
 * workspace (-1 if there is none either). */
int graft__legacy_pick(const cudnnConvolutionFwdAlgoPerf_t *perf, int got, bool strict,
                       size_t limit, int *smallest);

/* Execute with data pointers in the order of p->uids. Async on the handle's stream. */
graft_status graft__cudnn_execute(cudnnHandle_t h, const graft__cudnn_plan *p,
                                  graft__cudnn_packs *packs, void *const *ptrs, void *workspace);

/* The variant pack alone (deviceless tests finalize one with dummy pointers). */
graft_status graft__cudnn_make_pack(const graft__cudnn_plan *p, void *const *ptrs, void *ws,
                                    cudnnBackendDescriptor_t *out);

void graft__cudnn_plan_release(graft__cudnn_plan *p);

/* ---- graphs graft builds (conv_graph.c) ---- */

/* A convolution as the trunk uses it: x [n,c,h,w], w [k,c,r,r], stride, pad;
 * nhwc: x and y channels-last, w KRSC (the data type follows the precision). */
typedef struct graft__conv_shape {
  int n, c, h, w;
  int k, r, stride, pad;
  bool relu;
  bool nhwc;
} graft__conv_shape;

/* fused: conv -> ADD(bias) -> RELU (uids x=1, w=2, b=3, y=4);
 * not fused: conv alone (x=1, w=2, y=4). */
graft_status graft__conv_graph(const graft__cudnn_target *t, const graft__conv_shape *s,
                               bool fused, cudnnBackendHeurMode_t mode, graft_precision prec,
                               graft__cudnn_plan *out);

/* Max pooling as a resample graph, floor mode, no padding (x=1, y=2);
 * heuristics mode A then FALLBACK (NCHW pooling has only pre-compiled
 * engines, which FALLBACK lists). */
graft_status graft__maxpool_graph(const graft__cudnn_target *t, int n, int c, int h, int w,
                                  int kernel, int stride, bool nhwc, graft_precision prec,
                                  graft__cudnn_plan *out);

/* ---- the backend ---- */

/* graft_act.layout of the CUDA backend's trunk activations, as bits:
 * 0 (GRAFT_LAYOUT_NCHW) is plain NCHW float, as everywhere. */
enum {
  GRAFT__CUDA_NHWC = 1, /* channels-last [n,h,w,c] */
  GRAFT__CUDA_BF16 = 2, /* bfloat16 elements */
};
static inline size_t graft__cuda_elem_bytes(int layout) {
  return layout & GRAFT__CUDA_BF16 ? 2 : 4;
}

/* A float's bfloat16 (its top 16 bits), rounded to nearest even, as
 * __float2bfloat16_rn rounds; a NaN stays a (quiet) NaN. */
static inline uint16_t graft__bf16_from_float(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static inline float graft__bf16_to_float(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* The trunk's layout in this backend (graft__cuda_create decides it). */
int graft__cuda_act_layout(const graft_backend *be);

typedef struct cuda_cached_graph cuda_cached_graph; /* backend.c: cuDNN plans by key */

typedef struct cuda_stage {
  void *host;          /* pinned */
  size_t cap;
  cudaEvent_t done;    /* the copy out of it has finished */
  bool used;
} cuda_stage;

typedef struct cuda_backend {
  graft_backend base;
  int device;
  int sm;                       /* compute capability * 10 */
  size_t total_mem;
  cudaStream_t stream;          /* all compute, in order */
  cudaStream_t copy_stream;     /* host-to-device copies */
  cudaEvent_t compute_mark;     /* copies wait for the compute queued before them */
  cuda_stage stage[2];          /* double-buffered pinned staging for uploads */
  int next_stage;
  cudnnHandle_t cudnn;
  cublasHandle_t cublas;
  void *cublas_ws;              /* cuBLAS's workspace, set once */
  graft_cudnn_path path;        /* the rungs of the convolution ladder that may run */
  int act_layout;               /* the trunk's graft_act.layout (GRAFT__CUDA_* bits) */
  bool eager;                   /* never capture the trunk as a CUDA graph */
  bool tune;                    /* time the top engine configs of each new graph */
  graft__tune_cache *tune_cache; /* tuned choices on disk (NULL: none) */
  bool capturing;               /* a whole forward is being captured (graph.c) */
  void *workspace;              /* one cuDNN workspace, grown to the largest plan */
  size_t workspace_bytes;
  unsigned workspace_gen;       /* bumped when it moves (captured graphs are stale) */
  int *flag;                    /* device int: label range check */
  int *flag_host;               /* pinned */
  cuda_cached_graph *graphs;    /* cuDNN plans by (op, shape, precision, rung) */
} cuda_backend;

static inline cuda_backend *cuda_of(graft_backend *be) { return (cuda_backend *)be; }

/* The backend on GPU `device` with these options (NULL: the defaults; the
 * module's create, engine/cuda_module.h). */
graft_status graft__cuda_create(int device, const graft_backend_options *o, graft_backend **out);

/* A captured trunk (graft__cuda_trunk_run), owned by the trunk's first plan. */
typedef struct cuda_trunk_graph cuda_trunk_graph;

/* Every CUDA plan starts with this head. */
struct graft_plan {
  graft_status (*run)(graft_plan *plan, const void *x, void *y);
  void (*destroy)(graft_plan *plan);
  cuda_backend *be;
  graft_act in, out;
  const char *path; /* how it runs, for logs and tests: "fused graph (mode A)", ... */
  int64_t engine;   /* cuDNN engine (or legacy algorithm) it runs; -1: none */
  unsigned notes;   /* that engine's GRAFT__NOTE_* */
  int tuned;        /* engine configs timed to choose it (0: the first plan) */
  double tuned_ms;  /* its time then */
  bool tuned_earlier; /* timed by an earlier run (the tune cache) */
  cuda_trunk_graph *captured;
};

/* Allocate a zeroed plan of `size` bytes with its head filled. */
graft_status graft__cuda_plan_new(cuda_backend *be, size_t size,
                                  graft_status (*run)(graft_plan *, const void *, void *),
                                  void (*destroy)(graft_plan *), const graft_act *in,
                                  const graft_act *out, graft_plan **plan);

/* Frees a plan's head resources (a captured trunk) and the plan itself: the
 * last step of every plan's destroy. */
void graft__cuda_plan_free(graft_plan *plan);

/* Run a plan once, as it stands, on scratch input and output of these sizes
 * (zeroed, freed after), and wait for it: how a new execution plan proves
 * that it runs before it is adopted. The first error, as it is. */
graft_status graft__cuda_trial(graft_plan *plan, size_t x_bytes, size_t y_bytes);

/* Grow the shared workspace to at least bytes (at plan time only). */
graft_status graft__cuda_workspace_reserve(cuda_backend *be, size_t bytes);

/* The backend's cached plan for key (compared bytewise; zero the key's
 * padding), or NULL; and adding one (the cache takes *p over). */
graft__cudnn_plan *graft__cuda_graph_find(cuda_backend *be, const void *key, size_t key_size);
graft_status graft__cuda_graph_add(cuda_backend *be, const void *key, size_t key_size,
                                   graft__cudnn_plan *p, graft__cudnn_plan **cached);

/* The table's trunk_run entry (graph.c): run a whole trunk, plans[i] from
 * xs[i] to ys[i]. The first run of a set of plans and buffers is eager; the
 * second captures the sequence as a CUDA graph; later ones replay it. */
graft_status graft__cuda_trunk_run(graft_backend *be, graft_plan *const *plans, int count,
                                   const void *const *xs, void *const *ys);

/* The table's replay and replay_release entries (graph.c): a whole forward
 * (trunk, classifier, softmax) as one CUDA graph; and how it ran, as
 * graft__cuda_trunk_state says it for a trunk. */
graft_status graft__cuda_replay(graft_backend *be, graft_replay **slot,
                                graft_status (*body)(void *ctx), void *ctx);
void graft__cuda_replay_release(graft_backend *be, graft_replay *slot);
void graft__cuda_replay_describe(const graft_replay *slot, char *buf, size_t cap);
const char *graft__cuda_replay_state(const graft_replay *r, char *buf, size_t cap,
                                     bool *captured);

/* How the trunk whose first plan is `first` ran: "captured as a CUDA graph,
 * N replay(s)", "eager: capture failed: why", ... into buf; *captured says
 * whether a captured graph is in use. */
const char *graft__cuda_trunk_state(const graft_plan *first, char *buf, size_t cap,
                                    bool *captured);

/* ---- plans (conv.c, pool.c) ---- */
graft_status graft__cuda_conv_plan(graft_backend *be, const graft_conv2d_params *p,
                                   const graft_act *in, const float *w_host,
                                   const float *b_host, graft_act *out, graft_plan **plan);
graft_status graft__cuda_maxpool_plan(graft_backend *be, const graft_pool2d_params *p,
                                      const graft_act *in, graft_act *out, graft_plan **plan);
graft_status graft__cuda_avgpool_plan(graft_backend *be, const graft_adaptive_avgpool_params *p,
                                      const graft_act *in, graft_act *out, graft_plan **plan);
graft_status graft__cuda_nchw_to_act(graft_backend *be, const graft_act *in, graft_act *out,
                                     graft_plan **plan);
graft_status graft__cuda_act_to_rows(graft_backend *be, const graft_act *in, graft_act *out,
                                     graft_plan **plan);

/* ---- classifier ops (linear.c, loss.c, sgd.c) ---- */
graft_status graft__cuda_linear_forward(graft_backend *be, const graft_linear_params *p, int n,
                                        const float *x, const float *w, const float *b,
                                        float *y);
graft_status graft__cuda_linear_backward(graft_backend *be, const graft_linear_params *p, int n,
                                         const float *dy, const float *x, const float *w,
                                         float *dx, float *dw, float *db);
graft_status graft__cuda_relu_backward(graft_backend *be, size_t count, const float *y,
                                       float *dy);
graft_status graft__cuda_dropout_forward(graft_backend *be, size_t count, float p,
                                         uint64_t seed, uint64_t offset, float *x,
                                         uint8_t *keep);
graft_status graft__cuda_dropout_backward(graft_backend *be, size_t count, float p,
                                          const uint8_t *keep, float *dy);
graft_status graft__cuda_softmax_forward(graft_backend *be, int n, int k, const float *x,
                                         float *y);
graft_status graft__cuda_cross_entropy(graft_backend *be, int n, int k, const float *logits,
                                       const int32_t *labels, float *loss, float *dlogits);
graft_status graft__cuda_sgd_step(graft_backend *be, size_t count, const graft_sgd_params *p,
                                  float *param, const float *grad, float *buf);

#endif
