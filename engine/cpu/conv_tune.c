/* GRAFT_CPU_CONV_TUNED ("tuned"): each convolution's candidate paths are
 * timed when the layer is planned and the fastest is kept, as
 * torch.backends.cudnn.benchmark does on a GPU. The default path decides by
 * rules measured on one machine (winograd.c's choose_shape: F(4x4,3x3),
 * F(2x2,3x3) where few tiles meet large weights, F(4x4,5x5)); another CPU's
 * caches and memory may favour another tile, or oneDNN's direct kernel.
 *
 * Candidates, from what the ISA runs (conv.c's graft__cpu_conv_choose):
 *   graft's Winograd (AVX2 + FMA, nChw8c): F(2x2), F(4x4) and F(6x6,3x3);
 *     F(2x2) and F(4x4,5x5); AlexNet's 11x11/4 first layer by space to
 *     depth, its inner 3x3 at each of the three tiles
 *   oneDNN's Winograd (AVX-512, 3x3/1)
 *   oneDNN direct, always
 * Each candidate is planned (its weights transformed) and run on scratch
 * buffers of the layer's shape: once to warm up, then TUNE_ROUNDS rounds
 * that run every candidate once in turn (so that a drift of the machine
 * falls on all of them), each candidate's best round counting. Batches whose
 * input and output would pass TUNE_BYTES are timed on fewer images, and the
 * winner planned again at the full batch. The choice is kept per shape for
 * the life of the backend: the next net of the same shape plans it without
 * timing. Where only one candidate exists, nothing is timed.
 *
 * What it costs: the bits. Winograd tiles round differently (all within the
 * 1e-4 of test_cpu_trunk), so a tuned run may differ from the next in the
 * last bits of its logits, as cudnn.benchmark's do; the default stays with
 * its rules, the same every run. Planning takes longer: every candidate's
 * weights are transformed, and each runs TUNE_ROUNDS + 1 times after the
 * caches are flushed (VGG16 at batch 1 on 2 cores: 5.5 s more, AlexNet 2.7). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/clock.h"
#include "engine/cpu/cpu.h"

#define TUNE_ROUNDS 3
#define TUNE_MAX 5                    /* candidates of one layer at most */
#define TUNE_BYTES ((size_t)256 << 20) /* timing buffers (input + output) at most */

/* One choice made: the layer's shape, and the candidate that won. */
struct cpu_tuned {
  int n, c, h, w, layout, k, kernel, stride, pad;
  cpu_wino wino;
  int m;
  int of;    /* candidates timed */
  double ms; /* the winner's best round */
};

typedef struct choice {
  cpu_wino wino;
  int m; /* graft's output tile (0: its rule) */
} choice;

static int candidates(const cpu_backend *be, const graft_conv2d_params *p, const graft_act *in,
                      choice *out) {
  int n = 0;
  if (graft__wino_fits(be, p, in) || graft__s2d_fits(be, p, in)) {
    out[n++] = (choice){CPU_WINO_GRAFT, 2};
    out[n++] = (choice){CPU_WINO_GRAFT, 4};
    /* F(6x6) is for 3x3 kernels (a 5x5 one takes F(4x4) on 8x8 tiles already) */
    if (p->kernel == 3 || graft__s2d_fits(be, p, in)) out[n++] = (choice){CPU_WINO_GRAFT, 6};
  } else if (be->wino == CPU_WINO_DNNL && p->kernel == 3 && p->stride == 1) {
    out[n++] = (choice){CPU_WINO_DNNL, 0};
  }
  out[n++] = (choice){CPU_WINO_NONE, 0};
  return n;
}

/* Plan the layer on one candidate: the backend's choice of Winograd set to
 * it for the call (planning runs on the caller's thread, one plan at a
 * time), then put back. */
static graft_status plan_choice(cpu_backend *be, choice c, const graft_conv2d_params *p,
                                const graft_act *in, const float *w, const float *b,
                                graft_act *out, graft_plan **plan) {
  const cpu_wino wino = be->wino;
  const int m = be->wino_m;
  be->wino = c.wino;
  be->wino_m = c.m;
  graft_status s = graft__cpu_conv_path_plan(be, p, in, w, b, out, plan);
  be->wino = wino;
  be->wino_m = m;
  return s;
}

static struct cpu_tuned *find(cpu_backend *be, const graft_conv2d_params *p,
                              const graft_act *in) {
  for (int i = 0; i < be->n_tuned; i++) {
    struct cpu_tuned *t = &be->tuned[i];
    if (t->n == in->n && t->c == in->c && t->h == in->h && t->w == in->w &&
        t->layout == in->layout && t->k == p->out_c && t->kernel == p->kernel &&
        t->stride == p->stride && t->pad == p->pad)
      return t;
  }
  return NULL;
}

static graft_status remember(cpu_backend *be, const graft_conv2d_params *p, const graft_act *in,
                             choice c, int of, double ms) {
  if (be->n_tuned == be->cap_tuned) {
    int cap = be->cap_tuned ? 2 * be->cap_tuned : 16;
    struct cpu_tuned *t = realloc(be->tuned, (size_t)cap * sizeof *t);
    if (!t) return graft__fail(GRAFT_ENOMEM, "out of memory for the tuned choices");
    be->tuned = t;
    be->cap_tuned = cap;
  }
  be->tuned[be->n_tuned++] = (struct cpu_tuned){in->n,     in->c,       in->h,     in->w,
                                                in->layout, p->out_c,   p->kernel, p->stride,
                                                p->pad,    c.wino,      c.m,       of,
                                                ms};
  return GRAFT_OK;
}

static void note(graft_plan *plan, const char *how) {
  size_t len = strlen(plan->what);
  snprintf(plan->what + len, sizeof plan->what - len, " (%s)", how);
}

/* A pattern in [-1, 1) for the timing input: speed does not depend on the
 * values (no denormals, no zeros skipped). */
static void fill(float *x, size_t count) {
  for (size_t i = 0; i < count; i++)
    x[i] = (float)((uint32_t)(i * 2654435761u) >> 8) / 8388608.0f - 1.0f;
}

/* The caches' size twice over, read before each timed run, so that the
 * run finds its weights in memory as in a whole net, where every other
 * layer passes between two runs of this one; then the input, which the
 * layer before has just written. Kept by the backend, written once (pages
 * never written would all be the one zero page, and evict nothing). */
static graft_status evict(cpu_backend *be, const float *x, size_t x_floats, float *sum) {
  const size_t floats = 2 * be->cache_bytes / sizeof(float);
  if (!be->tune_junk) {
    if (!(be->tune_junk = malloc(floats * sizeof(float))))
      return graft__fail(GRAFT_ENOMEM, "out of memory for timing a convolution's candidates");
    for (size_t i = 0; i < floats; i++) be->tune_junk[i] = (float)(i & 7);
  }
  for (size_t i = 0; i < floats; i += 16) *sum += be->tune_junk[i];
  for (size_t i = 0; i < x_floats; i += 16) *sum += x[i];
  return GRAFT_OK;
}

/* The timing shape: the layer's, on fewer images where its input and output
 * (in the widest channel block a candidate writes: graft's 8, oneDNN's
 * be->block) would pass TUNE_BYTES. */
static graft_act timing_input(const cpu_backend *be, const graft_conv2d_params *p,
                              const graft_act *in) {
  graft_act tin = *in;
  const int oh = graft_out_dim(in->h, p->kernel, p->stride, p->pad);
  const int ow = graft_out_dim(in->w, p->kernel, p->stride, p->pad);
  const int out_block = be->block > 8 ? be->block : 8;
  const size_t per_image = cpu_act_bytes(1, in->c, in->h, in->w, in->layout) +
                           cpu_act_bytes(1, p->out_c, oh, ow, out_block);
  if ((size_t)in->n * per_image > TUNE_BYTES) {
    tin.n = (int)(TUNE_BYTES / per_image);
    if (tin.n < 1) tin.n = 1;
    tin.bytes = cpu_act_bytes(tin.n, in->c, in->h, in->w, in->layout);
  }
  return tin;
}

/* Every planned candidate run once per round on the same buffers, the
 * first round a warm-up; best[i] its best round in ms. */
static graft_status time_all(cpu_backend *be, graft_plan *const *plans, int nc,
                             const graft_act *tin, size_t y_bytes, double *best) {
  void *x = NULL, *y = NULL;
  if (posix_memalign(&x, 64, tin->bytes) != 0) x = NULL;
  if (x && posix_memalign(&y, 64, y_bytes) != 0) y = NULL;
  graft_status s = x && y ? GRAFT_OK
                          : graft__fail(GRAFT_ENOMEM,
                                        "out of memory for timing a convolution's candidates");
  if (s == GRAFT_OK) fill(x, tin->bytes / sizeof(float));
  float sum = 0;
  for (int round = -1; round < TUNE_ROUNDS && s == GRAFT_OK; round++)
    for (int i = 0; i < nc && s == GRAFT_OK; i++) {
      if (!plans[i]) continue;
      s = evict(be, x, tin->bytes / sizeof(float), &sum);
      if (s != GRAFT_OK) break;
      double t0 = graft_now();
      s = plans[i]->run(plans[i], x, y);
      double ms = (graft_now() - t0) * 1e3;
      if (round >= 0 && ms < best[i]) best[i] = ms;
    }
  volatile float sink = sum; /* the reads happen */
  (void)sink;
  free(x);
  free(y);
  return s;
}

graft_status graft__cpu_conv_tuned_plan(cpu_backend *be, const graft_conv2d_params *p,
                                        const graft_act *in, const float *w, const float *b,
                                        graft_act *out, graft_plan **plan) {
  const struct cpu_tuned *known = find(be, p, in);
  char how[64];
  if (known) {
    GRAFT_TRY(plan_choice(be, (choice){known->wino, known->m}, p, in, w, b, out, plan));
    snprintf(how, sizeof how, "tuned earlier: fastest of %d, %.3g ms", known->of, known->ms);
    note(*plan, how);
    return GRAFT_OK;
  }
  choice cand[TUNE_MAX];
  const int nc = candidates(be, p, in, cand);
  if (nc == 1) {
    GRAFT_TRY(plan_choice(be, cand[0], p, in, w, b, out, plan));
    note(*plan, "tuned: the only candidate");
    return GRAFT_OK;
  }
  const graft_act tin = timing_input(be, p, in);
  graft_plan *plans[TUNE_MAX] = {0};
  graft_act outs[TUNE_MAX];
  double best[TUNE_MAX];
  size_t y_bytes = 0;
  graft_status s = GRAFT_OK, last = GRAFT_OK;
  int planned = 0, win = -1;
  for (int i = 0; i < nc; i++) {
    best[i] = INFINITY;
    graft_status si = plan_choice(be, cand[i], p, &tin, w, b, &outs[i], &plans[i]);
    if (si != GRAFT_OK) { /* a candidate that cannot plan here is not one */
      last = si;
      plans[i] = NULL;
      graft_clear_detail();
      continue;
    }
    planned++;
    if (outs[i].bytes > y_bytes) y_bytes = outs[i].bytes;
  }
  if (!planned)
    return graft__fail(last, "no convolution path plans %dx%d/%d on %dx%dx%d", p->kernel,
                       p->kernel, p->stride, in->c, in->h, in->w);
  s = time_all(be, plans, nc, &tin, y_bytes, best);
  for (int i = 0; s == GRAFT_OK && i < nc; i++)
    if (plans[i] && (win < 0 || best[i] < best[win])) win = i;
  if (s == GRAFT_OK) s = remember(be, p, in, cand[win], planned, best[win]);
  if (s == GRAFT_OK && tin.n == in->n) {
    *plan = plans[win];
    *out = outs[win];
    plans[win] = NULL;
  } else if (s == GRAFT_OK) {
    s = plan_choice(be, cand[win], p, in, w, b, out, plan);
  }
  if (s == GRAFT_OK) {
    snprintf(how, sizeof how, "tuned: fastest of %d, %.3g ms%s", planned, best[win],
             tin.n == in->n ? "" : " on fewer images");
    note(*plan, how);
  }
  for (int i = 0; i < nc; i++)
    if (plans[i]) plans[i]->destroy(plans[i]);
  return s;
}
