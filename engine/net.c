#include "engine/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/net_internal.h"

#define BE_CALL(net, fn, ...) ((net)->be->iface->fn((net)->be, __VA_ARGS__))

graft_status graft__net_alloc(graft_net *net, size_t bytes, void **out, const char *what) {
  graft_status s = BE_CALL(net, alloc, bytes, out);
  if (s != GRAFT_OK) return graft__context(s, "allocating %s (%zu bytes)", what, bytes);
  return GRAFT_OK;
}

graft_status graft__net_check_count(int n, int lo, int hi, const char *what) {
  if (n < lo || n > hi)
    return graft__fail(GRAFT_EINVAL, "%d %s (this net holds %d to %d)", n, what, lo, hi);
  return GRAFT_OK;
}

static void trunk_release(graft_net *net, trunk_plan *t) {
  if (t->forward && net->be->iface->replay_release)
    net->be->iface->replay_release(net->be, t->forward);
  t->forward = NULL;
  for (int i = 0; i < t->count; i++)
    if (t->plans[i]) net->be->iface->plan_destroy(t->plans[i]);
  memset(t, 0, sizeof *t);
}

static graft_status plan_layer(graft_net *net, const graft_layer *l, const graft_act *in,
                               graft_act *out, graft_plan **plan) {
  const graft_backend_iface *f = net->be->iface;
  const graft_arch *a = net->a;
  switch (l->kind) {
    case GRAFT_LAYER_CONV2D: {
      const graft_param *w = graft_arch_weight(a, l), *b = graft_arch_bias(a, l);
      if (graft_out_dim(in->h, l->u.conv.kernel, l->u.conv.stride, l->u.conv.pad) < 1 ||
          graft_out_dim(in->w, l->u.conv.kernel, l->u.conv.stride, l->u.conv.pad) < 1)
        return graft__fail(GRAFT_ERANGE, "input %dx%d is too small for %s", net->in_w,
                           net->in_h, a->name);
      return f->conv2d_plan(net->be, &l->u.conv, in, net->params + w->offset,
                            net->params + b->offset, out, plan);
    }
    case GRAFT_LAYER_MAXPOOL2D:
      if (graft_out_dim(in->h, l->u.pool.kernel, l->u.pool.stride, 0) < 1 ||
          graft_out_dim(in->w, l->u.pool.kernel, l->u.pool.stride, 0) < 1)
        return graft__fail(GRAFT_ERANGE, "input %dx%d is too small for %s", net->in_w,
                           net->in_h, a->name);
      return f->maxpool2d_plan(net->be, &l->u.pool, in, out, plan);
    case GRAFT_LAYER_ADAPTIVE_AVGPOOL2D:
      return f->adaptive_avgpool2d_plan(net->be, &l->u.avgpool, in, out, plan);
    default:
      return graft__fail(GRAFT_EUNSUPPORTED, "layer kind %d in the trunk", (int)l->kind);
  }
}

static graft_status trunk_build(graft_net *net, int n, trunk_plan *t) {
  const graft_backend_iface *f = net->be->iface;
  const graft_arch *a = net->a;
  graft_status s;
  memset(t, 0, sizeof *t);
  t->acts[0] = (graft_act){n, 3, net->in_h, net->in_w, GRAFT_LAYOUT_NCHW,
                           (size_t)n * 3 * net->in_h * net->in_w * sizeof(float)};
  s = f->nchw_to_act_plan(net->be, &t->acts[0], &t->acts[1], &t->plans[0]);
  if (s != GRAFT_OK) goto fail;
  t->count = 1;
  for (int i = 0; i < a->n_trunk; i++) {
    s = plan_layer(net, &a->trunk[i], &t->acts[t->count], &t->acts[t->count + 1],
                   &t->plans[t->count]);
    if (s != GRAFT_OK) {
      graft__context(s, "%s.%d", a->trunk[i].module, a->trunk[i].index);
      goto fail;
    }
    t->count++;
  }
  s = f->act_to_rows_plan(net->be, &t->acts[t->count], &t->acts[t->count + 1],
                          &t->plans[t->count]);
  if (s != GRAFT_OK) goto fail;
  t->count++;
  const graft_act *last = &t->acts[t->count];
  if ((size_t)last->c * last->h * last->w != (size_t)a->feature_dim) {
    s = graft__fail(GRAFT_ESHAPE, "trunk gives %d features per image, classifier expects %d",
                    last->c * last->h * last->w, a->feature_dim);
    goto fail;
  }
  t->n = n;
  return GRAFT_OK;
fail:
  trunk_release(net, t);
  return s;
}

/* The plans for batch size n: cached, or built in the spare slot. */
static graft_status trunk_for(graft_net *net, int n, trunk_plan **out) {
  for (int i = 0; i < TRUNK_SLOTS; i++)
    if (net->trunks[i].n == n) {
      *out = &net->trunks[i];
      return GRAFT_OK;
    }
  trunk_plan *spare = &net->trunks[TRUNK_SLOTS - 1];
  trunk_release(net, spare);
  GRAFT_TRY(trunk_build(net, n, spare));
  *out = spare;
  return GRAFT_OK;
}

/* binary32 to binary16, rounded to nearest, ties to even (what F16C's
 * vcvtps2ph does with rounding mode 0): overflow to infinity, small values to
 * subnormals or zero, NaN kept a NaN. */
static uint16_t float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* infinity, NaN */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: infinity */
  if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal */
    if (ax < 0x33000000u) return (uint16_t)sign;            /* below 2^-25: zero */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu; /* exponent 127 -> 15 */
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;    /* a carry rounds up the exponent */
  return (uint16_t)(sign | h);
}

uint16_t graft__float_to_half(float f) { return float_to_half(f); }

/* The classifier's parameters as fp16, for GRAFT_PRECISION_FP16_WEIGHTS. */
static graft_status upload_f16(graft_net *net, const float *src, size_t count) {
  uint16_t *h = malloc(count * sizeof *h);
  if (!h) return graft__fail(GRAFT_ENOMEM, "out of memory (fp16 classifier weights)");
  for (size_t i = 0; i < count; i++) h[i] = float_to_half(src[i]);
  graft_status s = graft__net_alloc(net, count * sizeof *h, (void **)&net->classifier_f16,
                                    "fp16 classifier");
  if (s == GRAFT_OK) s = BE_CALL(net, upload, net->classifier_f16, h, count * sizeof *h);
  free(h);
  return s;
}

graft_status graft_net_create(graft_backend *be, const graft_arch *a, const float *params,
                              int max_batch, int in_h, int in_w, graft_net **out) {
  *out = NULL;
  if (max_batch < 1 || in_h < 1 || in_w < 1)
    return graft__fail(GRAFT_EINVAL, "batch %d, input %dx%d", max_batch, in_w, in_h);
  graft_net *net = calloc(1, sizeof *net);
  if (!net) return graft__fail(GRAFT_ENOMEM, "out of memory");
  net->be = be;
  net->a = a;
  net->params = params;
  net->max_batch = max_batch;
  net->in_h = in_h;
  net->in_w = in_w;
  net->eval_rows = be->iface->linear_forward_rows && max_batch < GRAFT_NET_EVAL_ROWS
                       ? GRAFT_NET_EVAL_ROWS
                       : max_batch;
  graft_status s = trunk_build(net, max_batch, &net->trunks[0]);
  if (s != GRAFT_OK) goto fail;

  trunk_plan *t = &net->trunks[0];
  for (int i = 1; i < t->count; i++) /* acts[0] is the input, acts[count] the features */
    if (t->acts[i].bytes > net->act_bytes) net->act_bytes = t->acts[i].bytes;
  /* The batch's input and the trunk's two activation buffers, the bulk of
   * it: more than the backend could ever hold is GRAFT_ELIMIT now. */
  size_t need = t->acts[0].bytes + 2 * net->act_bytes;
  size_t have = be->iface->memory_bytes ? be->iface->memory_bytes(be) : 0;
  if (have && need > have) {
    s = graft__fail(GRAFT_ELIMIT,
                    "%.1f GB for the trunk's activations of %d images, more than "
                    "the %.1f GB of memory",
                    (double)need / 1e9, max_batch, (double)have / 1e9);
    goto fail;
  }
  s = graft__net_alloc(net, t->acts[0].bytes, &net->input, "input batch");
  if (s == GRAFT_OK)
    s = graft__net_alloc(net, net->act_bytes, &net->ping, "trunk activations");
  if (s == GRAFT_OK)
    s = graft__net_alloc(net, net->act_bytes, &net->pong, "trunk activations");
  const size_t rows = (size_t)net->eval_rows;
  if (s == GRAFT_OK)
    s = graft__net_alloc(net, rows * a->feature_dim * sizeof(float), (void **)&net->features,
                         "features");
  size_t bytes = (a->n_floats - a->classifier_offset) * sizeof(float);
  if (s == GRAFT_OK)
    s = graft__net_alloc(net, bytes, (void **)&net->classifier_params, "classifier");
  if (s == GRAFT_OK)
    s = BE_CALL(net, upload, net->classifier_params, params + a->classifier_offset, bytes);
  if (s == GRAFT_OK && be->precision == GRAFT_PRECISION_FP16_WEIGHTS) {
    if (!be->iface->linear_forward_f16w)
      s = graft__fail(GRAFT_EUNSUPPORTED, "precision fp16-weights on the %s backend",
                      graft_backend_name(be));
    else
      s = upload_f16(net, params + a->classifier_offset, a->n_floats - a->classifier_offset);
  }
  for (int i = 0; s == GRAFT_OK && i < a->n_classifier; i++)
    if (a->classifier[i].kind == GRAFT_LAYER_LINEAR)
      s = graft__net_alloc(net, rows * a->classifier[i].u.linear.out * sizeof(float),
                           (void **)&net->classifier_out[i], "classifier activations");
  if (s == GRAFT_OK)
    s = graft__net_alloc(net, rows * a->num_classes * sizeof(float), (void **)&net->probs,
                         "probabilities");
  if (s != GRAFT_OK) goto fail;
  *out = net;
  return GRAFT_OK;
fail:
  graft_net_destroy(net);
  return s;
}

void graft_net_destroy(graft_net *net) {
  if (!net) return;
  const graft_backend_iface *f = net->be->iface;
  graft__net_train_free(net);
  graft__net_cols_free(net);
  for (int i = 0; i < TRUNK_SLOTS; i++) trunk_release(net, &net->trunks[i]);
  for (int i = 0; i < GRAFT_MAX_CLASSIFIER; i++)
    if (net->classifier_out[i]) f->free(net->be, net->classifier_out[i]);
  void *bufs[] = {net->input,  net->ping, net->pong, net->features, net->classifier_params,
                  net->probs, net->classifier_f16};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (bufs[i]) f->free(net->be, bufs[i]);
  free(net);
}

int graft_net_eval_rows(const graft_net *net) { return net->eval_rows; }
graft_backend *graft_net_backend(const graft_net *net) { return net->be; }

static graft_status check_batch(const graft_net *net, int n) {
  return graft__net_check_count(n, 1, net->max_batch, "images in a batch");
}

graft_status graft_net_set_input(graft_net *net, int n, const float *input_host) {
  GRAFT_TRY(check_batch(net, n));
  size_t bytes = (size_t)n * 3 * net->in_h * net->in_w * sizeof(float);
  return net->be->iface->upload(net->be, net->input, input_host, bytes);
}

/* The trunk over the n images in net->input. */
static graft_status trunk_resident(graft_net *net, int n) {
  trunk_plan *t;
  GRAFT_TRY(trunk_for(net, n, &t));
  const graft_backend_iface *f = net->be->iface;
  const void *xs[GRAFT_MAX_TRUNK + 2];
  void *ys[GRAFT_MAX_TRUNK + 2];
  for (int i = 0; i < t->count; i++) {
    xs[i] = i == 0 ? net->input : ys[i - 1];
    ys[i] = i == t->count - 1 ? (void *)net->features : (i % 2 == 0 ? net->ping : net->pong);
  }
  if (f->trunk_run) return f->trunk_run(net->be, t->plans, t->count, xs, ys);
  for (int i = 0; i < t->count; i++) GRAFT_TRY(f->plan_run(t->plans[i], xs[i], ys[i]));
  return GRAFT_OK;
}

graft_status graft_net_trunk(graft_net *net, int n, const float *input_host) {
  GRAFT_TRY(check_batch(net, n));
  trunk_plan *t; /* planned before the upload, which may overlap the GPU's work */
  GRAFT_TRY(trunk_for(net, n, &t));
  GRAFT_TRY(graft_net_set_input(net, n, input_host));
  return trunk_resident(net, n);
}

void graft__net_cols_free(graft_net *net) {
  for (int i = 0; i < GRAFT_MAX_CLASSIFIER; i++)
    if (net->classifier_cols[i]) {
      net->be->iface->free(net->be, net->classifier_cols[i]);
      net->classifier_cols[i] = NULL;
    }
  net->cols_calls = 0;
}

/* Whether one-row forwards take the backend's zero-skipping kernel
 * (linear_forward_cols), making its transposed weights at the second such
 * forward: a single classification does not pay for the transposition
 * (VGG16's 494 MB, ~0.1 s), a stream of them does, and holds that much more
 * memory. Not while the net trains (its weights change every step); never
 * where the backend has no such kernel or no memory for it. */
static bool cols_ready(graft_net *net) {
  const graft_arch *a = net->a;
  const graft_backend_iface *f = net->be->iface;
  if (net->cols_off || net->train || net->classifier_f16 || !f->linear_forward_cols) return false;
  if (net->classifier_cols[a->head]) return true;
  if (++net->cols_calls < 2) return false;
  graft_status s = GRAFT_OK;
  for (int i = 0; s == GRAFT_OK && i < a->n_classifier; i++) {
    const graft_layer *l = &a->classifier[i];
    if (l->kind != GRAFT_LAYER_LINEAR) continue;
    const graft_param *w = graft_arch_weight(a, l);
    s = graft__net_alloc(net, w->count * sizeof(float), (void **)&net->classifier_cols[i],
                         "transposed classifier");
    if (s == GRAFT_OK)
      s = f->linear_cols_make(net->be, &l->u.linear,
                              net->classifier_params + (w->offset - a->classifier_offset),
                              net->classifier_cols[i]);
  }
  if (s == GRAFT_OK) return true;
  graft__net_cols_free(net); /* the row kernel then: the same bits */
  graft_clear_detail();
  net->cols_off = true;
  return false;
}

/* Inference forward of the classifier; returns the logits buffer. */
graft_status graft__classifier_forward(graft_net *net, int n, bool rows, const float **logits) {
  const graft_arch *a = net->a;
  const graft_backend_iface *f = net->be->iface;
  graft_status (*forward)(graft_backend *, const graft_linear_params *, int, const float *,
                          const float *, const float *, float *) =
      rows && f->linear_forward_rows ? f->linear_forward_rows : f->linear_forward;
  const bool cols = rows && n == 1 && f->linear_forward_rows && cols_ready(net);
  const float *x = net->features;
  for (int i = 0; i < a->n_classifier; i++) {
    const graft_layer *l = &a->classifier[i];
    if (l->kind != GRAFT_LAYER_LINEAR) continue; /* dropout: identity at inference */
    const graft_param *w = graft_arch_weight(a, l), *b = graft_arch_bias(a, l);
    if (cols) {
      GRAFT_TRY(f->linear_forward_cols(
          net->be, &l->u.linear, x, net->classifier_params + (w->offset - a->classifier_offset),
          net->classifier_cols[i], net->classifier_params + (b->offset - a->classifier_offset),
          net->classifier_out[i]));
      x = net->classifier_out[i];
      continue;
    }
    if (net->classifier_f16) { /* GRAFT_PRECISION_FP16_WEIGHTS */
      GRAFT_TRY(f->linear_forward_f16w(
          net->be, &l->u.linear, n, x, net->classifier_f16 + (w->offset - a->classifier_offset),
          net->classifier_params + (b->offset - a->classifier_offset), net->classifier_out[i]));
      x = net->classifier_out[i];
      continue;
    }
    GRAFT_TRY(forward(net->be, &l->u.linear, n, x,
                      net->classifier_params + (w->offset - a->classifier_offset),
                      net->classifier_params + (b->offset - a->classifier_offset),
                      net->classifier_out[i]));
    x = net->classifier_out[i];
  }
  *logits = x;
  return GRAFT_OK;
}

/* The whole inference forward over the n images in net->input: trunk,
 * classifier and softmax, into net->logits and net->probs. Queued only; one
 * replayable sequence per trunk slot where the backend records them. */
typedef struct forward_ctx {
  graft_net *net;
  int n;
} forward_ctx;

/* Inference takes the backend's row kernel (linear_forward_rows) for up to
 * this many rows. On the CPU it reads the weights once, asking for their
 * next pages ahead of the hardware prefetcher, and beats OpenBLAS there:
 * VGG16's classifier (2 threads, AVX2, bench/linear_probe) 15.5-16.7 ms
 * against sgemv's 18.5-20.2 at 1 row, 19 against 28-32 at 4 and 25-30
 * against 31-36 at 8; at 64 rows it is 0.86x sgemm's speed. Training keeps
 * linear_forward: on the CPU that is OpenBLAS, the BLAS of the PyTorch it is
 * tested against, and 8 epochs amplify any other order of the sums past
 * 1e-4 of PyTorch's metrics (keras_finetune). */
#define INFER_ROWS_MAX 8

static graft_status forward_body(void *ctx) {
  forward_ctx *c = ctx;
  graft_net *net = c->net;
  GRAFT_TRY(trunk_resident(net, c->n));
  GRAFT_TRY(graft__classifier_forward(net, c->n, c->n <= INFER_ROWS_MAX, &net->logits));
  return net->be->iface->softmax_forward(net->be, c->n, net->a->num_classes, net->logits,
                                         net->probs);
}

static graft_status forward_resident(graft_net *net, int n) {
  trunk_plan *t;
  GRAFT_TRY(trunk_for(net, n, &t));
  forward_ctx ctx = {net, n};
  const graft_backend_iface *f = net->be->iface;
  if (f->replay) return f->replay(net->be, &t->forward, forward_body, &ctx);
  return forward_body(&ctx);
}

graft_status graft_net_classify_features(graft_net *net, int n, float *probs_host,
                                         float *logits_host) {
  const graft_backend_iface *f = net->be->iface;
  int k = net->a->num_classes;
  if (n < 1 || n > net->eval_rows)
    return graft__fail(GRAFT_EINVAL, "%d feature rows (this net holds 1 to %d)", n,
                       net->eval_rows);
  const float *logits;
  GRAFT_TRY(graft__classifier_forward(net, n, n <= INFER_ROWS_MAX, &logits));
  GRAFT_TRY(f->softmax_forward(net->be, n, k, logits, net->probs));
  if (logits_host)
    GRAFT_TRY(f->download(net->be, logits_host, logits, (size_t)n * k * sizeof(float)));
  return f->download(net->be, probs_host, net->probs, (size_t)n * k * sizeof(float));
}

graft_status graft_net_predict(graft_net *net, int n, const float *input_host, float *probs_host,
                               float *logits_host) {
  const graft_backend_iface *f = net->be->iface;
  const size_t bytes = (size_t)n * net->a->num_classes * sizeof(float);
  GRAFT_TRY(check_batch(net, n));
  trunk_plan *t; /* planned before the upload, which may overlap the GPU's work */
  GRAFT_TRY(trunk_for(net, n, &t));
  GRAFT_TRY(graft_net_set_input(net, n, input_host));
  GRAFT_TRY(forward_resident(net, n));
  if (logits_host) GRAFT_TRY(f->download(net->be, logits_host, net->logits, bytes));
  return f->download(net->be, probs_host, net->probs, bytes);
}

graft_status graft_net_forward(graft_net *net, int n) {
  const graft_backend_iface *f = net->be->iface;
  GRAFT_TRY(check_batch(net, n));
  GRAFT_TRY(forward_resident(net, n));
  return f->synchronize(net->be);
}

graft_status graft_net_get_output(graft_net *net, int n, float *probs_host, float *logits_host) {
  const graft_backend_iface *f = net->be->iface;
  size_t bytes = (size_t)n * net->a->num_classes * sizeof(float);
  GRAFT_TRY(check_batch(net, n));
  if (!net->logits) return graft__fail(GRAFT_EINVAL, "no forward pass to read yet");
  if (logits_host) GRAFT_TRY(f->download(net->be, logits_host, net->logits, bytes));
  return f->download(net->be, probs_host, net->probs, bytes);
}

/* Identical descriptions of consecutive plans are counted, not repeated. */
const char *graft_net_describe(graft_net *net, char *buf, size_t cap) {
  const graft_backend_iface *f = net->be->iface;
  const trunk_plan *t = &net->trunks[0];
  size_t at = 0;
  buf[0] = '\0';
  if (!f->plan_describe) return buf;
  char prev[512] = "", cur[512];
  int same = 0;
  for (int i = 0; i <= t->count; i++) {
    if (i < t->count) f->plan_describe(t->plans[i], cur, sizeof cur);
    if (i < t->count && same > 0 && strcmp(cur, prev) == 0) {
      same++;
      continue;
    }
    if (same > 0 && at < cap) {
      int k = same > 1 ? snprintf(buf + at, cap - at, "%s%d x %s", at ? " | " : "", same, prev)
                       : snprintf(buf + at, cap - at, "%s%s", at ? " | " : "", prev);
      if (k > 0) at = (size_t)k < cap - at ? at + (size_t)k : cap - 1;
    }
    if (i < t->count) {
      memcpy(prev, cur, sizeof prev);
      same = 1;
    }
  }
  if (net->classifier_cols[net->a->head] && at < cap) {
    int k = snprintf(buf + at, cap - at, "%sclassifier at one row: transposed weights, zero "
                     "inputs skipped", at ? " | " : "");
    if (k > 0) at = (size_t)k < cap - at ? at + (size_t)k : cap - 1;
  }
  if (t->forward && f->replay_describe && at < cap) {
    f->replay_describe(t->forward, cur, sizeof cur);
    int k = snprintf(buf + at, cap - at, "%swhole forward %s", at ? " | " : "", cur);
    if (k > 0) at = (size_t)k < cap - at ? at + (size_t)k : cap - 1;
  }
  return buf;
}
