/* The backend seam: one table of functions per backend (CPU, CUDA).
 *
 * Two kinds of op:
 *  - the frozen trunk (conv, pooling, layout changes) is planned once per
 *    input shape, like a cuDNN execution plan: the plan owns whatever the
 *    backend prepared (reordered weights, primitives, cuDNN graphs) and is run
 *    many times. Activations between trunk ops stay in the backend's own
 *    layout (graft_act.layout); only the `nchw_to_act` / `act_to_rows` plans
 *    at the trunk's edges see plain NCHW.
 *  - the classifier ops (linear, dropout, loss, SGD) work on plain row-major
 *    float32 buffers in backend memory and have forward and backward entries.
 *
 * All pointers passed to op entries are backend memory (host memory for the
 * CPU, device memory for CUDA) unless a name says _host. NULL entries mean
 * "not supported". Entries return GRAFT_OK or a status with graft_detail set.
 */
#ifndef GRAFT_BACKEND_IMPL_H
#define GRAFT_BACKEND_IMPL_H

#include "engine/backend.h"
#include "engine/ops.h"

/* An activation of the trunk: logical NCHW shape, backend-chosen layout. */
typedef struct graft_act {
  int n, c, h, w;
  int layout;   /* 0 = plain NCHW float32; other values belong to the backend */
  size_t bytes; /* storage it needs */
} graft_act;

#define GRAFT_LAYOUT_NCHW 0

typedef struct graft_plan graft_plan; /* a planned trunk op, backend-defined */
typedef struct graft_replay graft_replay; /* a recorded sequence of ops, backend-defined */

typedef struct graft_backend_iface {
  void (*destroy)(graft_backend *be);

  /* ---- memory ---- */
  graft_status (*alloc)(graft_backend *be, size_t bytes, void **out);
  void (*free)(graft_backend *be, void *p);
  graft_status (*upload)(graft_backend *be, void *dst, const void *src_host, size_t bytes);
  graft_status (*download)(graft_backend *be, void *dst_host, const void *src, size_t bytes);
  graft_status (*memset0)(graft_backend *be, void *dst, size_t bytes);
  /* The most memory the backend could ever give (the CPU's: the machine's
   * physical memory), so that a batch that cannot fit is refused before an
   * allocation the kernel overcommits and its OOM killer takes back. NULL:
   * the allocator itself says (cudaMalloc does). */
  size_t (*memory_bytes)(graft_backend *be);
  /* Wait until the work queued so far has finished (graft_net_forward times
   * the model alone with it). */
  graft_status (*synchronize)(graft_backend *be);

  /* ---- trunk plans (inference only; weights are baked into the plan) ---- */
  /* in: layout NCHW; out: the backend's layout for the next op. */
  graft_status (*nchw_to_act_plan)(graft_backend *be, const graft_act *in, graft_act *out,
                                   graft_plan **plan);
  /* w_host [out_c, in_c, k, k], b_host [out_c], float32 host memory, copied. */
  graft_status (*conv2d_plan)(graft_backend *be, const graft_conv2d_params *p,
                              const graft_act *in, const float *w_host, const float *b_host,
                              graft_act *out, graft_plan **plan);
  graft_status (*maxpool2d_plan)(graft_backend *be, const graft_pool2d_params *p,
                                 const graft_act *in, graft_act *out, graft_plan **plan);
  graft_status (*adaptive_avgpool2d_plan)(graft_backend *be,
                                          const graft_adaptive_avgpool_params *p,
                                          const graft_act *in, graft_act *out,
                                          graft_plan **plan);
  /* out: plain rows [n, c*h*w] in PyTorch's flatten order (layout NCHW, h = w = 1). */
  graft_status (*act_to_rows_plan)(graft_backend *be, const graft_act *in, graft_act *out,
                                   graft_plan **plan);
  /* Run a plan on in.n images: x and y sized by the plan's in/out acts. */
  graft_status (*plan_run)(graft_plan *plan, const void *x, void *y);
  void (*plan_destroy)(graft_plan *plan);
  /* Optional (NULL: the engine calls plan_run for each plan). Run a planned
   * trunk: plans[i] reads xs[i] and writes ys[i], in order. A backend may
   * capture the sequence (a CUDA graph) and replay it while the plans and
   * buffers are unchanged; the capture belongs to plans[0] and dies with it. */
  graft_status (*trunk_run)(graft_backend *be, graft_plan *const *plans, int count,
                            const void *const *xs, void *const *ys);
  /* Optional (NULL: the engine calls body itself). Run body(ctx), which
   * queues work only (no downloads, no waits) and queues the same ops on the
   * same buffers every time it is run through the same *slot: a backend may
   * record the sequence (one CUDA graph) and replay it from then on. *slot
   * starts NULL, belongs to the caller, and is released by replay_release
   * before any plan or buffer the body uses is. */
  graft_status (*replay)(graft_backend *be, graft_replay **slot, graft_status (*body)(void *ctx),
                         void *ctx);
  void (*replay_release)(graft_backend *be, graft_replay *slot);
  /* Optional (NULL: nothing to say). How a replay slot ran ("captured as a
   * CUDA graph, 12 replay(s)", "eager: capture failed: why"), for logs and
   * benchmarks. */
  void (*replay_describe)(const graft_replay *slot, char *buf, size_t cap);

  /* ---- classifier ops on row-major float32 ---- */
  /* y[n,out] = act(x[n,in] w[out,in]^T + b[out]) */
  graft_status (*linear_forward)(graft_backend *be, const graft_linear_params *p, int n,
                                 const float *x, const float *w, const float *b, float *y);
  /* Given dy[n,out] (already through the ReLU, see relu_backward):
   * dw[out,in] = dy^T x; db[out] = sum_n dy; dx[n,in] = dy w (skipped when dx NULL).
   * dw and db are overwritten. */
  graft_status (*linear_backward)(graft_backend *be, const graft_linear_params *p, int n,
                                  const float *dy, const float *x, const float *w, float *dx,
                                  float *dw, float *db);
  /* Optional (NULL: linear_backward into the gradient buffer, then one
   * sgd_step over the whole trainable range). linear_backward fused with the
   * SGD step of this layer's own parameters: first dx = dy w with the weights
   * as they were (skipped when dx NULL), then w [out,in] and b [out] with
   * their momentum buffers buf_w, buf_b (the layout sgd_step's buf has)
   * stepped exactly as sgd_step would step them with dw = dy^T x and
   * db = sum_n dy, which are never stored. Why: at a small batch a step is
   * bound by memory traffic, and this reads and writes w and buf_w once
   * (4 passes over the weights' size) where backward + sgd_step make ~7. */
  graft_status (*linear_backward_sgd)(graft_backend *be, const graft_linear_params *p, int n,
                                      const float *dy, const float *x, float *w, float *b,
                                      float *dx, float *buf_w, float *buf_b,
                                      const graft_sgd_params *sgd);
  /* Optional (NULL: not offered). linear_forward whose rows do not depend on
   * their company: y's row r is computed by the same float operations
   * whatever n is and wherever the row sits in x, so rows evaluated in
   * groups of any size give the same bits. BLAS kernels do not promise that
   * (their blocking changes with n); the engine evaluates cached feature
   * rows in groups larger than the trunk's batch only with this entry
   * (graft_net_eval_rows), so that results never depend on the cache. */
  graft_status (*linear_forward_rows)(graft_backend *be, const graft_linear_params *p, int n,
                                      const float *x, const float *w, const float *b, float *y);
  /* Optional (NULL: the backend has no GRAFT_PRECISION_FP16_WEIGHTS).
   * linear_forward with w [out,in] in IEEE binary16 (uint16_t bits), widened
   * exactly to fp32; x, b, y and every sum fp32. */
  graft_status (*linear_forward_f16w)(graft_backend *be, const graft_linear_params *p, int n,
                                      const float *x, const uint16_t *w, const float *b,
                                      float *y);
  /* dy[i] = y[i] > 0 ? dy[i] : 0, y the ReLU's output. */
  graft_status (*relu_backward)(graft_backend *be, size_t count, const float *y, float *dy);
  /* In place: keep element i with probability 1-p, scaled by 1/(1-p);
   * keep[i] = graft_rng_uniform(seed, offset + i) >= p (see engine/base/rng.h). */
  graft_status (*dropout_forward)(graft_backend *be, size_t count, float p, uint64_t seed,
                                  uint64_t offset, float *x, uint8_t *keep);
  graft_status (*dropout_backward)(graft_backend *be, size_t count, float p,
                                   const uint8_t *keep, float *dy);
  /* y[n,k] = softmax over each row of x[n,k]. */
  graft_status (*softmax_forward)(graft_backend *be, int n, int k, const float *x, float *y);
  /* loss[i] = -log softmax(logits[i])[labels[i]]; when dlogits is not NULL it
   * receives the gradient of the mean loss over the n rows: (softmax - onehot)/n.
   * labels int32 in backend memory; values outside [0,k) are GRAFT_ERANGE. */
  graft_status (*cross_entropy)(graft_backend *be, int n, int k, const float *logits,
                                const int32_t *labels, float *loss, float *dlogits);
  /* One SGD step over count parameters (see graft_sgd_params). */
  graft_status (*sgd_step)(graft_backend *be, size_t count, const graft_sgd_params *p,
                           float *param, const float *grad, float *buf);

  /* Optional (NULL: nothing to say). How a plan runs, for logs, tests and
   * benchmarks ("fused graph (heuristics A), engine 26, TF32"); for the first
   * plan of a trunk run through trunk_run, how that trunk ran too ("trunk
   * captured as a CUDA graph, 12 replay(s)"). */
  void (*plan_describe)(graft_plan *plan, char *buf, size_t cap);

  /* Optional (NULL: linear_forward_rows at one row too). One row's Linear
   * forward with the bits of linear_forward_rows, skipping the row's zero
   * inputs: wt is w transposed ([in][out]), made once by linear_cols_make
   * (GRAFT_EUNSUPPORTED where the backend has no such kernel); w is read
   * instead where the row has few zeros. */
  graft_status (*linear_cols_make)(graft_backend *be, const graft_linear_params *p,
                                   const float *w, float *wt);
  graft_status (*linear_forward_cols)(graft_backend *be, const graft_linear_params *p,
                                      const float *x, const float *w, const float *wt,
                                      const float *b, float *y);
} graft_backend_iface;

struct graft_backend {
  const graft_backend_iface *iface;
  char name[32];
  char description[320];
  int threads;
  graft_precision precision;
};

#endif
