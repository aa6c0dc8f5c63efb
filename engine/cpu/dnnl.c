/* Everything graft asks of oneDNN, behind one file (Debian 12 ships the v2.6
 * C API; v3 changed descriptors and primitive creation, so the surface here
 * is kept small: one engine and stream, convolution with bias and fused ReLU
 * (the default convolution paths, chosen in engine/cpu/conv.c), max pooling
 * on blocked activations and reorders, all forward inference on f32).
 *
 * Why oneDNN for the trunk: its JIT convolutions run on channel-blocked
 * activations (nChw16c on AVX-512) with weights reordered once, at plan time,
 * into the kernel's own layout; keeping the whole trunk blocked removes the
 * per-layer reorders an NCHW framework pays. */
#include <dnnl.h>
#include <dnnl_debug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"

struct cpu_dnnl {
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  void *scratch; /* one scratchpad for every primitive, grown to the largest need */
  size_t scratch_bytes;
};

/* Every oneDNN call goes through DNNL_CHECK(st, label, call): on failure it
 * records the call, file, line and oneDNN's status in the graft_status
 * variable st and jumps to label, where the function releases what it holds. */
#define DNNL_CHECK_AS(st, label, status, text)                                 \
  do {                                                                         \
    dnnl_status_t dnnl_st_ = (status);                                         \
    if (dnnl_st_ != dnnl_success) {                                            \
      (st) = graft__fail(GRAFT_EBACKEND, "oneDNN %s failed: %s (%s:%d)", text, \
                         dnnl_status2str(dnnl_st_), __FILE__, __LINE__);       \
      goto label;                                                              \
    }                                                                          \
  } while (0)
#define DNNL_CHECK(st, label, call) DNNL_CHECK_AS(st, label, call, #call)

graft_status graft__dnnl_init(cpu_backend *be) {
  graft_status st = GRAFT_OK;
  struct cpu_dnnl *d = calloc(1, sizeof *d);
  if (!d) return graft__fail(GRAFT_ENOMEM, "out of memory");
  be->dnnl = d;
  DNNL_CHECK(st, fail, dnnl_engine_create(&d->engine, dnnl_cpu, 0));
  DNNL_CHECK(st, fail, dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags));
  return GRAFT_OK;
fail:
  graft__dnnl_release(be);
  return st;
}

void graft__dnnl_release(cpu_backend *be) {
  struct cpu_dnnl *d = be->dnnl;
  if (!d) return;
  if (d->stream) dnnl_stream_destroy(d->stream);
  if (d->engine) dnnl_engine_destroy(d->engine);
  free(d->scratch);
  free(d);
  be->dnnl = NULL;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "generic";
  }
}

const char *graft__dnnl_describe(cpu_backend *be, char *buf, size_t cap) {
  (void)be;
  const dnnl_version_t *v = dnnl_version();
  snprintf(buf, cap, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch,
           isa_name(dnnl_get_effective_cpu_isa()));
  return buf;
}

int graft__dnnl_block(void) {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx:
    case dnnl_cpu_isa_avx512_core_bf16:
    case dnnl_cpu_isa_avx512_core_vnni:
    case dnnl_cpu_isa_avx512_core: return 16;
    default: return 8;
  }
}

/* The blocked layout's format tag. */
static dnnl_format_tag_t tag_of(int layout) {
  return layout == 16 ? dnnl_nChw16c : layout == 8 ? dnnl_nChw8c : dnnl_nchw;
}

static dnnl_status_t md_init(dnnl_memory_desc_t *md, const graft_act *a, int layout) {
  dnnl_dims_t dims = {a->n, a->c, a->h, a->w};
  return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag_of(layout));
}

/* A oneDNN plan: one primitive, its memory objects (data handles set per run)
 * and what it owns (reordered weights, bias). */
typedef struct dnnl_plan {
  graft_plan head;
  dnnl_primitive_t prim;
  dnnl_memory_t src, dst, wei, bias, scratch;
  int src_arg, dst_arg;
  void *wei_buf, *bias_buf;
  size_t scratch_bytes;
} dnnl_plan;

static void plan_destroy(graft_plan *plan) {
  dnnl_plan *p = (dnnl_plan *)plan;
  dnnl_memory_t mems[] = {p->src, p->dst, p->wei, p->bias, p->scratch};
  for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
    if (mems[i]) dnnl_memory_destroy(mems[i]);
  if (p->prim) dnnl_primitive_destroy(p->prim);
  free(p->wei_buf);
  free(p->bias_buf);
  free(p);
}

static graft_status plan_run(graft_plan *plan, const void *x, void *y) {
  dnnl_plan *p = (dnnl_plan *)plan;
  struct cpu_dnnl *d = plan->be->dnnl;
  graft_status st = GRAFT_OK;
  dnnl_exec_arg_t args[5];
  int n = 0;
  DNNL_CHECK(st, fail, dnnl_memory_set_data_handle(p->src, (void *)x));
  DNNL_CHECK(st, fail, dnnl_memory_set_data_handle(p->dst, y));
  args[n++] = (dnnl_exec_arg_t){p->src_arg, p->src};
  args[n++] = (dnnl_exec_arg_t){p->dst_arg, p->dst};
  if (p->wei) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, p->wei};
  if (p->bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias};
  if (p->scratch) {
    DNNL_CHECK(st, fail, dnnl_memory_set_data_handle(p->scratch, d->scratch));
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
  }
  DNNL_CHECK(st, fail, dnnl_primitive_execute(p->prim, d->stream, n, args));
  DNNL_CHECK(st, fail, dnnl_stream_wait(d->stream));
fail:
  return st;
}

/* Create the plan's primitive from pd, its src/dst memories, and its share of
 * the scratchpad. Takes ownership of pd. */
static graft_status finish_plan(cpu_backend *be, dnnl_primitive_desc_t pd, dnnl_plan *p) {
  struct cpu_dnnl *d = be->dnnl;
  graft_status st = GRAFT_OK;
  const dnnl_memory_desc_t *src =
      dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, p->src_arg);
  const dnnl_memory_desc_t *dst =
      dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, p->dst_arg);
  const dnnl_memory_desc_t *scr = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  const char *impl = NULL;
  dnnl_primitive_kind_t kind = dnnl_undefined_primitive;
  if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
    impl = NULL;
  if (dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind) != dnnl_success)
    kind = dnnl_undefined_primitive;
  snprintf(p->head.what, sizeof p->head.what, "oneDNN %s %s", dnnl_prim_kind2str(kind),
           impl ? impl : "?");
  DNNL_CHECK(st, fail, dnnl_memory_create(&p->src, src, d->engine, DNNL_MEMORY_NONE));
  DNNL_CHECK(st, fail, dnnl_memory_create(&p->dst, dst, d->engine, DNNL_MEMORY_NONE));
  size_t need = scr ? dnnl_memory_desc_get_size(scr) : 0;
  if (need > 0) {
    DNNL_CHECK(st, fail, dnnl_memory_create(&p->scratch, scr, d->engine, DNNL_MEMORY_NONE));
    if (need > d->scratch_bytes) {
      void *grown = NULL;
      if (posix_memalign(&grown, 64, need) != 0) {
        st = graft__fail(GRAFT_ENOMEM, "oneDNN scratchpad of %zu bytes", need);
        goto fail;
      }
      free(d->scratch);
      d->scratch = grown;
      d->scratch_bytes = need;
    }
  }
  DNNL_CHECK(st, fail, dnnl_primitive_create(&p->prim, pd));
fail:
  dnnl_primitive_desc_destroy(pd);
  return st;
}

static graft_status new_plan(cpu_backend *be, int src_arg, int dst_arg, dnnl_plan **out) {
  graft_plan *plan;
  GRAFT_TRY(graft__cpu_plan_new(be, sizeof(dnnl_plan), plan_run, plan_destroy, &plan));
  dnnl_plan *p = (dnnl_plan *)plan;
  p->src_arg = src_arg;
  p->dst_arg = dst_arg;
  *out = p;
  return GRAFT_OK;
}

static graft_status user_scratch_attr(dnnl_primitive_attr_t *attr) {
  graft_status st = GRAFT_OK;
  DNNL_CHECK(st, fail, dnnl_primitive_attr_create(attr));
  DNNL_CHECK(st, fail, dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user));
fail:
  return st;
}

graft_status graft__dnnl_reorder_plan(cpu_backend *be, const graft_act *in, int out_layout,
                                      graft_act *out, graft_plan **plan) {
  graft_status st = GRAFT_OK;
  dnnl_plan *p = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_memory_desc_t src, dst;
  *out = *in;
  out->layout = out_layout;
  out->bytes = cpu_act_bytes(in->n, in->c, in->h, in->w, out_layout);
  GRAFT_TRY(new_plan(be, DNNL_ARG_FROM, DNNL_ARG_TO, &p));
  DNNL_CHECK(st, fail, md_init(&src, in, in->layout));
  DNNL_CHECK(st, fail, md_init(&dst, out, out_layout));
  st = user_scratch_attr(&attr);
  if (st != GRAFT_OK) goto fail;
  DNNL_CHECK(st, fail,
             dnnl_reorder_primitive_desc_create(&pd, &src, be->dnnl->engine, &dst, be->dnnl->engine,
                                                attr));
  dnnl_primitive_attr_destroy(attr);
  attr = NULL;
  st = finish_plan(be, pd, p);
  pd = NULL;
  if (st != GRAFT_OK) goto fail;
  *plan = &p->head;
  return GRAFT_OK;
fail:
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (p) plan_destroy(&p->head);
  return st;
}

/* Reorder user weights (plain oihw) into the primitive's chosen layout, once. */
static graft_status reorder_weights(cpu_backend *be, const dnnl_memory_desc_t *want,
                                    const graft_conv2d_params *cp, const float *w, dnnl_plan *p) {
  struct cpu_dnnl *d = be->dnnl;
  graft_status st = GRAFT_OK;
  dnnl_memory_desc_t user_md;
  dnnl_memory_t user = NULL;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t reorder = NULL;
  dnnl_dims_t dims = {cp->out_c, cp->in_c, cp->kernel, cp->kernel};
  size_t bytes = dnnl_memory_desc_get_size(want);
  if (posix_memalign(&p->wei_buf, 64, bytes ? bytes : 64) != 0) {
    p->wei_buf = NULL;
    return graft__fail(GRAFT_ENOMEM, "weights of %zu bytes", bytes);
  }
  DNNL_CHECK(st, fail, dnnl_memory_desc_init_by_tag(&user_md, 4, dims, dnnl_f32, dnnl_oihw));
  DNNL_CHECK(st, fail, dnnl_memory_create(&user, &user_md, d->engine, (void *)w));
  DNNL_CHECK(st, fail, dnnl_memory_create(&p->wei, want, d->engine, p->wei_buf));
  DNNL_CHECK(st, fail,
             dnnl_reorder_primitive_desc_create(&rpd, &user_md, d->engine, want, d->engine, NULL));
  DNNL_CHECK(st, fail, dnnl_primitive_create(&reorder, rpd));
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, p->wei}};
  DNNL_CHECK(st, fail, dnnl_primitive_execute(reorder, d->stream, 2, args));
  DNNL_CHECK(st, fail, dnnl_stream_wait(d->stream));
fail:
  if (reorder) dnnl_primitive_destroy(reorder);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  if (user) dnnl_memory_destroy(user);
  return st;
}

/* oneDNN names its reference (plain C loop) implementations "ref:..."; they
 * are correct but one to two orders of magnitude slower than its JIT and GEMM
 * kernels, so graft never runs one in the hot path when another layout
 * offers a JIT or GEMM kernel. */
static bool is_reference(const_dnnl_primitive_desc_t pd) {
  const char *impl = NULL;
  if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
    return false;
  return strncmp(impl, "ref", 3) == 0;
}

/* A convolution's primitive descriptor for this algorithm and destination
 * format; dnnl_unimplemented is returned, not recorded, so callers can try
 * the next choice. */
static dnnl_status_t conv_pd(cpu_backend *be, const graft_conv2d_params *cp,
                             const dnnl_memory_desc_t *src, const graft_act *out,
                             dnnl_format_tag_t dst_tag, dnnl_alg_kind_t alg,
                             const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd) {
  dnnl_memory_desc_t wei, bias, dst;
  dnnl_dims_t wd = {cp->out_c, cp->in_c, cp->kernel, cp->kernel}, bd = {cp->out_c};
  dnnl_dims_t dd = {out->n, out->c, out->h, out->w};
  dnnl_dims_t strides = {cp->stride, cp->stride}, pad = {cp->pad, cp->pad};
  dnnl_status_t s;
  if ((s = dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dst_tag)) != dnnl_success ||
      (s = dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any)) !=
          dnnl_success ||
      (s = dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x)) != dnnl_success)
    return s;
  dnnl_convolution_desc_t cd;
  s = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, src, &wei, &bias, &dst,
                                         strides, pad, pad);
  if (s != dnnl_success) return s;
  *pd = NULL;
  s = dnnl_primitive_desc_create(pd, &cd, attr, be->dnnl->engine, NULL);
  if (s != dnnl_success) *pd = NULL;
  return s;
}

/* A convolution whose kernel writes plain NCHW, then a reorder into the
 * trunk's blocked layout: one plan that owns both and the plain buffer
 * between them. Used where oneDNN has no JIT kernel for a blocked
 * destination (AlexNet's 11x11/4 first layer on AVX2: only its reference
 * kernel, ~1.4 s per image; GEMM into NCHW then reorder: ~1.5 ms). */
typedef struct chain_plan {
  graft_plan head;
  graft_plan *first, *second;
  void *mid;
} chain_plan;

static graft_status chain_run(graft_plan *plan, const void *x, void *y) {
  chain_plan *c = (chain_plan *)plan;
  GRAFT_TRY(c->first->run(c->first, x, c->mid));
  return c->second->run(c->second, c->mid, y);
}

static void chain_destroy(graft_plan *plan) {
  chain_plan *c = (chain_plan *)plan;
  if (c->first) c->first->destroy(c->first);
  if (c->second) c->second->destroy(c->second);
  free(c->mid);
  free(c);
}

static graft_status chain_to_blocked(cpu_backend *be, graft_plan *first, const graft_act *mid,
                                     graft_act *out, graft_plan **plan) {
  graft_plan *head = NULL;
  graft_status st = graft__cpu_plan_new(be, sizeof(chain_plan), chain_run, chain_destroy, &head);
  if (st != GRAFT_OK) {
    first->destroy(first);
    return st;
  }
  chain_plan *c = (chain_plan *)head;
  c->first = first;
  snprintf(head->what, sizeof head->what, "%.80s, reordered", first->what);
  if (posix_memalign(&c->mid, 64, mid->bytes ? mid->bytes : 64) != 0) {
    c->mid = NULL;
    st = graft__fail(GRAFT_ENOMEM, "convolution output of %zu bytes", mid->bytes);
    goto fail;
  }
  st = graft__dnnl_reorder_plan(be, mid, be->block, out, &c->second);
  if (st != GRAFT_OK) goto fail;
  *plan = head;
  return GRAFT_OK;
fail:
  chain_destroy(head);
  return st;
}

/* The attributes of every convolution: the user's scratchpad and, where the
 * layer has one, ReLU fused as a post-op. */
static graft_status conv_attr(const graft_conv2d_params *cp, dnnl_primitive_attr_t *attr) {
  graft_status st = GRAFT_OK;
  dnnl_post_ops_t ops = NULL;
  GRAFT_TRY(user_scratch_attr(attr));
  if (cp->relu) {
    DNNL_CHECK(st, fail, dnnl_post_ops_create(&ops));
    DNNL_CHECK(st, fail, dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
    DNNL_CHECK(st, fail, dnnl_primitive_attr_set_post_ops(*attr, ops)); /* copies ops */
  }
  if (ops) dnnl_post_ops_destroy(ops);
  return GRAFT_OK;
fail:
  if (ops) dnnl_post_ops_destroy(ops);
  dnnl_primitive_attr_destroy(*attr);
  *attr = NULL;
  return st;
}

/* Which convolution primitive runs this layer, as *pd (the caller's to
 * destroy). *chained: it writes plain NCHW, to be reordered into out's
 * blocked layout after.
 *
 * Winograd F(4x4,3x3) does 4x fewer multiplies for 3x3/1; on this machine
 * (AVX-512, 2 cores) it runs VGG's layers 2-3x faster than direct, which is
 * already at the FMA peak, and VGG16's trunk 2.2x (error vs double 1e-6
 * relative, direct 5e-7: test_cpu_trunk). oneDNN's own `auto` picks it only
 * for larger batches (at 8 images, not at 1-2). There is no Winograd kernel
 * for some shapes (3 input channels, plain layouts) nor below AVX-512:
 * direct then (on AVX2 + FMA graft's own Winograd takes these layers before
 * they get here: engine/cpu/winograd.c, chosen in conv.c). Where no JIT
 * kernel writes the blocked layout from this input (a first layer reading
 * plain NCHW, on some ISAs) and oneDNN offers only its reference kernel,
 * its GEMM convolution into plain NCHW is taken instead. */
static graft_status choose_conv(cpu_backend *be, const graft_conv2d_params *cp, const graft_act *in,
                                const graft_act *out, const_dnnl_primitive_attr_t attr,
                                dnnl_primitive_desc_t *pd, bool *chained) {
  graft_status st = GRAFT_OK;
  dnnl_primitive_desc_t plain = NULL;
  dnnl_memory_desc_t src;
  dnnl_status_t got;
  *pd = NULL;
  *chained = false;
  DNNL_CHECK(st, fail, md_init(&src, in, in->layout));
  if ((be->wino == CPU_WINO_DNNL || be->conv_path == GRAFT_CPU_CONV_AUTO) && cp->kernel == 3 &&
      cp->stride == 1) {
    dnnl_alg_kind_t alg =
        be->conv_path == GRAFT_CPU_CONV_AUTO ? dnnl_convolution_auto : dnnl_convolution_winograd;
    got = conv_pd(be, cp, &src, out, tag_of(out->layout), alg, attr, pd);
    if (got != dnnl_unimplemented) DNNL_CHECK_AS(st, fail, got, "winograd convolution descriptor");
  }
  if (!*pd) {
    got = conv_pd(be, cp, &src, out, tag_of(out->layout), dnnl_convolution_direct, attr, pd);
    if (got != dnnl_unimplemented) DNNL_CHECK_AS(st, fail, got, "direct convolution descriptor");
  }
  if (*pd && !is_reference(*pd)) return GRAFT_OK;
  graft_act flat = *out;
  flat.layout = 0;
  flat.bytes = cpu_act_bytes(flat.n, flat.c, flat.h, flat.w, 0);
  got = conv_pd(be, cp, &src, &flat, dnnl_nchw, dnnl_convolution_direct, attr, &plain);
  if (got != dnnl_unimplemented) DNNL_CHECK_AS(st, fail, got, "plain convolution descriptor");
  if (plain && (!*pd || !is_reference(plain))) {
    if (*pd) dnnl_primitive_desc_destroy(*pd);
    *pd = plain;
    *chained = true;
  } else if (plain) {
    dnnl_primitive_desc_destroy(plain);
  }
  if (*pd) return GRAFT_OK;
  return graft__fail(GRAFT_EBACKEND, "oneDNN has no convolution for %dx%d/%d on %dx%dx%d",
                     cp->kernel, cp->kernel, cp->stride, in->c, in->h, in->w);
fail:
  if (*pd) dnnl_primitive_desc_destroy(*pd);
  *pd = NULL;
  return st;
}

/* The plan of the convolution pd describes: weights reordered into its
 * layout once, the bias copied, the primitive created. Takes ownership of pd. */
static graft_status build_conv(cpu_backend *be, const graft_conv2d_params *cp,
                               dnnl_primitive_desc_t pd, const float *w, const float *b,
                               dnnl_plan **out) {
  graft_status st = GRAFT_OK;
  dnnl_plan *p = NULL;
  dnnl_memory_desc_t bias;
  dnnl_dims_t bd = {cp->out_c};
  st = new_plan(be, DNNL_ARG_SRC, DNNL_ARG_DST, &p);
  if (st != GRAFT_OK) goto fail;
  st = reorder_weights(be, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), cp, w, p);
  if (st != GRAFT_OK) goto fail;
  if (posix_memalign(&p->bias_buf, 64, (size_t)cp->out_c * sizeof(float)) != 0) {
    p->bias_buf = NULL;
    st = graft__fail(GRAFT_ENOMEM, "out of memory");
    goto fail;
  }
  memcpy(p->bias_buf, b, (size_t)cp->out_c * sizeof(float));
  DNNL_CHECK(st, fail, dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x));
  DNNL_CHECK(st, fail, dnnl_memory_create(&p->bias, &bias, be->dnnl->engine, p->bias_buf));
  st = finish_plan(be, pd, p);
  pd = NULL;
  if (st != GRAFT_OK) goto fail;
  *out = p;
  return GRAFT_OK;
fail:
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (p) plan_destroy(&p->head);
  return st;
}

graft_status graft__dnnl_conv_plan(cpu_backend *be, const graft_conv2d_params *cp,
                                   const graft_act *in, const float *w, const float *b,
                                   graft_act *out, graft_plan **plan) {
  int oh = graft_out_dim(in->h, cp->kernel, cp->stride, cp->pad);
  int ow = graft_out_dim(in->w, cp->kernel, cp->stride, cp->pad);
  *out = (graft_act){in->n, cp->out_c, oh, ow, be->block, 0};
  out->bytes = cpu_act_bytes(out->n, out->c, oh, ow, out->layout);
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_plan *p = NULL;
  bool chained = false;
  GRAFT_TRY(conv_attr(cp, &attr));
  graft_status st = choose_conv(be, cp, in, out, attr, &pd, &chained);
  dnnl_primitive_attr_destroy(attr); /* the descriptor holds its own copy */
  if (st == GRAFT_OK) st = build_conv(be, cp, pd, w, b, &p);
  if (st != GRAFT_OK) return st;
  if (!chained) {
    *plan = &p->head;
    return GRAFT_OK;
  }
  graft_act mid = *out;
  mid.layout = 0;
  mid.bytes = cpu_act_bytes(mid.n, mid.c, oh, ow, 0);
  return chain_to_blocked(be, &p->head, &mid, out, plan);
}

graft_status graft__dnnl_maxpool_plan(cpu_backend *be, const graft_pool2d_params *pp,
                                      const graft_act *in, graft_act *out, graft_plan **plan) {
  graft_status st = GRAFT_OK;
  dnnl_plan *p = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_attr_t attr = NULL;
  int oh = graft_out_dim(in->h, pp->kernel, pp->stride, 0);
  int ow = graft_out_dim(in->w, pp->kernel, pp->stride, 0);
  *out = (graft_act){in->n, in->c, oh, ow, in->layout, 0};
  out->bytes = cpu_act_bytes(out->n, out->c, oh, ow, out->layout);
  GRAFT_TRY(new_plan(be, DNNL_ARG_SRC, DNNL_ARG_DST, &p));
  dnnl_memory_desc_t src, dst;
  dnnl_dims_t strides = {pp->stride, pp->stride}, kernel = {pp->kernel, pp->kernel}, pad = {0, 0};
  DNNL_CHECK(st, fail, md_init(&src, in, in->layout));
  DNNL_CHECK(st, fail, md_init(&dst, out, out->layout));
  dnnl_pooling_desc_t desc;
  DNNL_CHECK(st, fail,
             dnnl_pooling_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_max, &src,
                                            &dst, strides, kernel, pad, pad));
  st = user_scratch_attr(&attr);
  if (st != GRAFT_OK) goto fail;
  DNNL_CHECK(st, fail, dnnl_primitive_desc_create(&pd, &desc, attr, be->dnnl->engine, NULL));
  st = finish_plan(be, pd, p);
  pd = NULL;
  if (st != GRAFT_OK) goto fail;
  dnnl_primitive_attr_destroy(attr);
  *plan = &p->head;
  return GRAFT_OK;
fail:
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (p) plan_destroy(&p->head);
  return st;
}
