/* Inside the CPU backend: its state, the common head of its plans, and the
 * activation layouts it uses.
 *
 * Layouts (graft_act.layout): 0 = plain NCHW; 8 or 16 = oneDNN's channel-
 * blocked nChw8c / nChw16c (8 or 16 channels innermost, channels padded to a
 * multiple of the block). The oneDNN path keeps the trunk blocked from the
 * first convolution's output to the flatten at the end; the GEMM path stays
 * plain.
 *
 * Plans own what they prepared: the oneDNN primitive and its weights
 * reordered (or Winograd-transformed) once into the primitive's layout, or
 * the GEMM path's copy of the weights and its im2col buffer; the caller's
 * weights may be freed after planning. oneDNN plans share one scratchpad
 * owned by the backend, so a backend runs one plan at a time.
 *
 * Threads: one OpenMP team of `threads` (set on the creating thread) runs
 * oneDNN, our loops and, split into single-threaded calls, OpenBLAS. */
#ifndef GRAFT_CPU_H
#define GRAFT_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/backend_impl.h"

/* Whose Winograd the 3x3 (and 5x5) stride-1 layers run (engine/cpu/conv.c's
 * graft__cpu_conv_choose decides, in one place, from the path and the ISA). */
typedef enum cpu_wino {
  CPU_WINO_NONE,  /* oneDNN direct */
  CPU_WINO_DNNL,  /* oneDNN's (it has kernels on AVX-512 only, 3x3 only) */
  CPU_WINO_GRAFT, /* graft's (engine/cpu/winograd.c) */
} cpu_wino;

typedef struct cpu_backend {
  graft_backend base;
  graft_cpu_conv conv_path;
  int block;                 /* channel block of the oneDNN layout: 16, 8 or 0 */
  cpu_wino wino;
  int wino_m;                /* graft's Winograd output tile: 2, 4 or 6, 0 = chosen per layer */
  struct cpu_dnnl *dnnl;     /* engine, stream, shared scratchpad (engine/cpu/dnnl.c) */
  /* Our own loops' kernels (engine/cpu/linear_rows.c, linear_sgd.c): AVX2 (+FMA)
   * where the CPU has them, else generic C; GRAFT_CPU_KERNELS_GENERIC forces
   * generic C (the tests run both). Chosen once: a run never mixes them. */
  bool avx2;
  bool f16c; /* and F16C (linear_f16.c's AVX2 kernel needs all three) */
  float *scratch; /* our loops' workspace (graft__cpu_scratch), grown to the largest need */
  size_t scratch_floats;
  struct cpu_tuned *tuned; /* GRAFT_CPU_CONV_TUNED: choices made so far, by shape (conv_tune.c) */
  int n_tuned, cap_tuned;
  size_t cache_bytes; /* the last level cache's */
  float *tune_junk;   /* 2 * cache_bytes written once, read to flush it (conv_tune.c) */
} cpu_backend;

/* Every CPU plan starts with this head. */
struct graft_plan {
  graft_status (*run)(graft_plan *plan, const void *x, void *y);
  void (*destroy)(graft_plan *plan);
  cpu_backend *be;
  char what[128]; /* how it runs, for logs, tests and benchmarks (plan_describe) */
};

static inline cpu_backend *cpu_of(graft_backend *be) { return (cpu_backend *)be; }

/* Bytes of an activation of this shape in this layout. */
static inline size_t cpu_act_bytes(int n, int c, int h, int w, int layout) {
  size_t cp = layout ? (size_t)((c + layout - 1) / layout) * layout : (size_t)c;
  return (size_t)n * cp * h * w * sizeof(float);
}

/* Offset (in floats) of element (n, c, h, w). */
static inline size_t cpu_act_index(int n, int c, int h, int w, int C, int H, int W, int layout) {
  if (!layout) return (((size_t)n * C + c) * H + h) * W + w;
  int cb = (C + layout - 1) / layout;
  return ((((size_t)n * cb + c / layout) * H + h) * W + w) * layout + c % layout;
}

/* The backend's workspace of at least `floats` floats, valid until the next
 * call (one op runs at a time). */
graft_status graft__cpu_scratch(cpu_backend *be, size_t floats, float **out);

/* Allocate a zeroed plan of `size` bytes with its head filled. */
graft_status graft__cpu_plan_new(cpu_backend *be, size_t size,
                                 graft_status (*run)(graft_plan *, const void *, void *),
                                 void (*destroy)(graft_plan *), graft_plan **out);

/* A window (kernel, stride, pad) must fit the input at least once: oneDNN
 * and the loops here assume outputs of at least 1x1 (engine/cpu/backend.c). */
graft_status graft__cpu_check_window(const char *op, const graft_act *in, int kernel, int stride,
                                    int pad);

/* ---- engine/cpu/conv.c: the convolution entry, which picks a path ---- */
/* At creation, once conv_path, avx2 and block are set: whose Winograd runs
 * (be->wino, be->wino_m) and the path's words for the backend line into
 * what; GRAFT_ENODEV when the option insists on a kernel this ISA lacks. */
graft_status graft__cpu_conv_choose(cpu_backend *be, char *what, size_t cap);
graft_status graft__cpu_conv2d_plan(graft_backend *be, const graft_conv2d_params *p,
                                    const graft_act *in, const float *w, const float *b,
                                    graft_act *out, graft_plan **plan);
/* The layer on the path be->wino and be->wino_m say, without tuning. */
graft_status graft__cpu_conv_path_plan(cpu_backend *be, const graft_conv2d_params *p,
                                       const graft_act *in, const float *w, const float *b,
                                       graft_act *out, graft_plan **plan);

/* ---- engine/cpu/conv_tune.c: GRAFT_CPU_CONV_TUNED, the fastest candidate per shape ---- */
graft_status graft__cpu_conv_tuned_plan(cpu_backend *be, const graft_conv2d_params *p,
                                        const graft_act *in, const float *w, const float *b,
                                        graft_act *out, graft_plan **plan);

/* ---- engine/cpu/dnnl.c: the only file that sees oneDNN ---- */
graft_status graft__dnnl_init(cpu_backend *be);
void graft__dnnl_release(cpu_backend *be);
const char *graft__dnnl_describe(cpu_backend *be, char *buf, size_t cap);
/* The channel block of the trunk's activations, from oneDNN's effective ISA
 * (ONEDNN_MAX_CPU_ISA caps it): 16 (nChw16c) where its AVX-512 kernels run,
 * else 8 (nChw8c, the AVX2 kernels' and graft's Winograd's). */
int graft__dnnl_block(void);
graft_status graft__dnnl_reorder_plan(cpu_backend *be, const graft_act *in, int out_layout,
                                      graft_act *out, graft_plan **plan);
graft_status graft__dnnl_conv_plan(cpu_backend *be, const graft_conv2d_params *p,
                                   const graft_act *in, const float *w, const float *b,
                                   graft_act *out, graft_plan **plan);
graft_status graft__dnnl_maxpool_plan(cpu_backend *be, const graft_pool2d_params *p,
                                      const graft_act *in, graft_act *out, graft_plan **plan);

/* ---- engine/cpu/conv_gemm.c: im2col + sgemm on plain NCHW ---- */
graft_status graft__gemm_conv_plan(cpu_backend *be, const graft_conv2d_params *p,
                                   const graft_act *in, const float *w, const float *b,
                                   graft_act *out, graft_plan **plan);

/* ---- engine/cpu/winograd.c: graft's Winograd for 3x3/1, 5x5/1 on nChw8c, AVX2 + FMA ---- */
/* Whether it can take this layer: 3x3/1 or 5x5/1, nChw8c input, AVX2 kernels on. */
bool graft__wino_fits(const cpu_backend *be, const graft_conv2d_params *p, const graft_act *in);
graft_status graft__wino_conv_plan(cpu_backend *be, const graft_conv2d_params *p,
                                   const graft_act *in, const float *w, const float *b,
                                   graft_act *out, graft_plan **plan);

/* ---- engine/cpu/s2d.c: a strided layer on plain NCHW as a stride-1 one (space to depth) ---- */
/* Whether it can take this layer: graft's Winograd on, plain NCHW input, a
 * stride whose space-to-depth leaves a 3x3 kernel (AlexNet's 11x11/4). */
bool graft__s2d_fits(const cpu_backend *be, const graft_conv2d_params *p, const graft_act *in);
graft_status graft__s2d_conv_plan(cpu_backend *be, const graft_conv2d_params *p,
                                  const graft_act *in, const float *w, const float *b,
                                  graft_act *out, graft_plan **plan);

/* ---- engine/cpu/pool.c ---- */
graft_status graft__cpu_maxpool_plan(cpu_backend *be, const graft_pool2d_params *p,
                                     const graft_act *in, graft_act *out, graft_plan **plan);
graft_status graft__cpu_adaptive_avgpool_plan(cpu_backend *be,
                                              const graft_adaptive_avgpool_params *p,
                                              const graft_act *in, graft_act *out,
                                              graft_plan **plan);
graft_status graft__cpu_copy_plan(cpu_backend *be, const graft_act *in, graft_act *out,
                                  graft_plan **plan);

/* Thread t of nt's share [lo, hi) of `total` elements, cut at multiples of 16
 * floats (engine/cpu/linear.c). */
void graft__cpu_split(int total, int t, int nt, int *lo, int *hi);
/* Threads for a classifier op of this many multiply-adds: 1 below the size
 * where a parallel region pays for itself, else the whole team. */
int graft__cpu_team(double macs);

/* ---- classifier ops (engine/cpu/linear.c, loss.c, sgd.c) ---- */
graft_status graft__cpu_linear_forward(graft_backend *be, const graft_linear_params *p, int n,
                                       const float *x, const float *w, const float *b, float *y);
graft_status graft__cpu_linear_backward(graft_backend *be, const graft_linear_params *p, int n,
                                        const float *dy, const float *x, const float *w,
                                        float *dx, float *dw, float *db);
graft_status graft__cpu_relu_backward(graft_backend *be, size_t count, const float *y,
                                      float *dy);
graft_status graft__cpu_dropout_forward(graft_backend *be, size_t count, float p, uint64_t seed,
                                        uint64_t offset, float *x, uint8_t *keep);
graft_status graft__cpu_dropout_backward(graft_backend *be, size_t count, float p,
                                         const uint8_t *keep, float *dy);
graft_status graft__cpu_softmax_forward(graft_backend *be, int n, int k, const float *x,
                                        float *y);
graft_status graft__cpu_cross_entropy(graft_backend *be, int n, int k, const float *logits,
                                      const int32_t *labels, float *loss, float *dlogits);
graft_status graft__cpu_sgd_step(graft_backend *be, size_t count, const graft_sgd_params *p,
                                 float *param, const float *grad, float *buf);

/* ---- engine/cpu/linear_rows.c, linear_f16.c, linear_sgd.c (see backend_impl.h) ---- */

/* The order of the sums of a Linear forward whose rows do not depend on
 * their company, defined once for its kernels (linear_tile.inc, and
 * linear_cols.c, which must give the same bits): per output, blocks of
 * GRAFT__LINEAR_KB inputs, each summed in 8 lanes that are then added as
 * graft__lanes_sum does. */
#define GRAFT__LINEAR_KB 1024
static inline float graft__lanes_sum(float l0, float l1, float l2, float l3, float l4, float l5,
                                     float l6, float l7) {
  return ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7));
}
graft_status graft__cpu_linear_cols_make(graft_backend *be, const graft_linear_params *p,
                                         const float *w, float *wt);
graft_status graft__cpu_linear_forward_cols(graft_backend *be, const graft_linear_params *p,
                                            const float *x, const float *w, const float *wt,
                                            const float *b, float *y);
graft_status graft__cpu_linear_forward_rows(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *x, const float *w,
                                            const float *b, float *y);
graft_status graft__cpu_linear_forward_f16w(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *x, const uint16_t *w,
                                            const float *b, float *y);
graft_status graft__cpu_linear_backward_sgd(graft_backend *be, const graft_linear_params *p,
                                            int n, const float *dy, const float *x, float *w,
                                            float *b, float *dx, float *buf_w, float *buf_b,
                                            const graft_sgd_params *sgd);

#endif
