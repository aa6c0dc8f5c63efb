/* cuDNN's graph (backend) API from C: tensors, operation graphs, heuristics,
 * the precision filter, finalizing an execution plan, running it.
 *
 * Everything here except graft__cudnn_execute works without a GPU: given a
 * device description (CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR from the device's
 * JSON) instead of a handle, heuristics return the configs for that device
 * and plans finalize, or fail, as they would on it. test_cudnn_deviceless
 * plans every graph graft builds this way, against an A100 and an H100.
 *
 * With a real GPU the graph and the plan get the handle (the attribute is
 * marked deprecated in 9.x headers but is the documented way a plan learns
 * its device); deviceless, the heuristics and the plan get the description. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"

#define SET(d, name, type, count, ptr) \
  CU_STEP(cudnn, cudnnBackendSetAttribute((d), (name), (type), (count), (ptr)))

graft_status graft__cudnn_keep(graft__cudnn_plan *p, cudnnBackendDescriptor_t d) {
  if (p->n_keep == GRAFT__CUDNN_KEEP) {
    cudnnBackendDestroyDescriptor(d);
    return graft__fail(GRAFT_ELIMIT, "more than %d cuDNN descriptors in one graph",
                       GRAFT__CUDNN_KEEP);
  }
  p->keep[p->n_keep++] = d;
  return GRAFT_OK;
}

graft_status graft__cudnn_device_from_json(const char *json, cudnnBackendDescriptor_t *out) {
  cudnnBackendDescriptor_t d = NULL;
  *out = NULL;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &d));
  graft_status s = SET(d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                       (int64_t)strlen(json) + 1, json);
  if (s == GRAFT_OK) s = CU_STEP(cudnn, cudnnBackendFinalize(d));
  if (s != GRAFT_OK) {
    cudnnBackendDestroyDescriptor(d);
    return graft__context(s, "device description");
  }
  *out = d;
  return GRAFT_OK;
}

graft_status graft__cudnn_tensor(int64_t uid, const int64_t dims[4], cudnnDataType_t type,
                                 bool nhwc, bool is_virtual, cudnnBackendDescriptor_t *out) {
  /* dims are always [N, C, H, W] (filters [K, C, R, S]); the strides say the layout */
  int64_t strides[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  if (nhwc) {
    strides[1] = 1;
    strides[3] = dims[1];
    strides[2] = dims[3] * dims[1];
    strides[0] = dims[2] * dims[3] * dims[1];
  }
  const int64_t align = 16; /* cudaMalloc gives 256; plans check their pointers */
  const bool virt = is_virtual;
  cudnnBackendDescriptor_t d = NULL;
  *out = NULL;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &d));
  graft_status s = SET(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  if (s == GRAFT_OK) s = SET(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  if (s == GRAFT_OK) s = SET(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
  if (s == GRAFT_OK) s = SET(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
  if (s == GRAFT_OK) s = SET(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  if (s == GRAFT_OK) s = SET(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt);
  if (s == GRAFT_OK) s = CU_STEP(cudnn, cudnnBackendFinalize(d));
  if (s != GRAFT_OK) {
    cudnnBackendDestroyDescriptor(d);
    return s;
  }
  *out = d;
  return GRAFT_OK;
}

/* What an engine config is: its global engine index and numerical notes. */
typedef struct cfg_info {
  int64_t engine;
  int64_t workspace; /* CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE */
  bool known; /* its notes could be read */
  bool tensor_core, down_convert, reduced_reduction, nondeterministic;
  unsigned notes; /* GRAFT__NOTE_* */
} cfg_info;

const char *graft__notes_text(unsigned notes, char *buf, size_t cap) {
  static const struct { unsigned bit; const char *name; } names[] = {
      {GRAFT__NOTE_TENSOR_CORE, "TF32"},          {GRAFT__NOTE_FFT, "FFT"},
      {GRAFT__NOTE_WINOGRAD, "Winograd"},          {GRAFT__NOTE_WINOGRAD_4x4, "Winograd 4x4"},
      {GRAFT__NOTE_WINOGRAD_6x6, "Winograd 6x6"},  {GRAFT__NOTE_WINOGRAD_13x13, "Winograd 13x13"},
      {GRAFT__NOTE_NONDETERMINISTIC, "non-deterministic"}};
  size_t at = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!(notes & names[i].bit)) continue;
    int n = snprintf(buf + at, cap - at, "%s%s", at ? ", " : "", names[i].name);
    if (n < 0 || (size_t)n >= cap - at) break;
    at += (size_t)n;
  }
  return buf;
}

static graft_status read_cfg(cudnnBackendDescriptor_t cfg, cfg_info *info) {
  cudnnBackendDescriptor_t eng = NULL;
  memset(info, 0, sizeof *info);
  info->engine = -1;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng));
  int64_t got = 0;
  graft_status s = CU_STEP(cudnn, cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                                           &got, &eng));
  if (s == GRAFT_OK)
    s = CU_STEP(cudnn, cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX,
                                                CUDNN_TYPE_INT64, 1, &got, &info->engine));
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t n_notes = 0;
  if (s == GRAFT_OK)
    s = CU_STEP(cudnn, cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                                CUDNN_TYPE_NUMERICAL_NOTE,
                                                CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n_notes, notes));
  for (int64_t i = 0; s == GRAFT_OK && i < n_notes; i++) {
    info->tensor_core |= notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE;
    info->down_convert |= notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS;
    info->reduced_reduction |= notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION;
    info->nondeterministic |= notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC;
    switch (notes[i]) {
      case CUDNN_NUMERICAL_NOTE_TENSOR_CORE: info->notes |= GRAFT__NOTE_TENSOR_CORE; break;
      case CUDNN_NUMERICAL_NOTE_FFT: info->notes |= GRAFT__NOTE_FFT; break;
      case CUDNN_NUMERICAL_NOTE_WINOGRAD: info->notes |= GRAFT__NOTE_WINOGRAD; break;
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4: info->notes |= GRAFT__NOTE_WINOGRAD_4x4; break;
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6: info->notes |= GRAFT__NOTE_WINOGRAD_6x6; break;
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13:
        info->notes |= GRAFT__NOTE_WINOGRAD_13x13;
        break;
      case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:
        info->notes |= GRAFT__NOTE_NONDETERMINISTIC;
        break;
      default: break;
    }
  }
  cudnnBackendDestroyDescriptor(eng);
  if (s == GRAFT_OK &&
      cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
                               &info->workspace) != CUDNN_STATUS_SUCCESS)
    info->workspace = 0; /* unknown: the plan will say */
  return s;
}

/* fp32: PyTorch's default, TF32 tensor cores allowed for convolutions.
 * fp32-strict: true fp32 arithmetic: no tensor-core (TF32) engine. bf16:
 * bf16 data with fp32 accumulation, tensor cores welcome. None ever converts
 * inputs down (fp16/bf16 is never PyTorch's fp32; below bf16 is nothing
 * graft's bf16 promises), reduces in lower precision than fp32, or takes
 * 13x13 Winograd tiles: an interpolation that wide loses more bits than any
 * bound test_cuda_ops could justify (test/transform_error.py measures the
 * 2x2 to 6x6 tiles). */
static bool allowed(const cfg_info *c, graft_precision prec) {
  if (!c->known || c->down_convert || c->reduced_reduction) return false;
  if (c->notes & GRAFT__NOTE_WINOGRAD_13x13) return false;
  return prec != GRAFT_PRECISION_FP32_STRICT || !c->tensor_core;
}

/* Lower is tried first (see graft__cudnn_plan_graph). */
static int rank(const cfg_info *c, const graft__cudnn_target *t, graft_precision prec) {
  bool fits = !t->workspace_limit || c->workspace <= t->workspace_limit;
  bool transform = prec == GRAFT_PRECISION_FP32_STRICT && (c->notes & GRAFT__NOTES_TRANSFORM);
  return (c->nondeterministic ? 4 : 0) + (fits ? 0 : 2) + (transform ? 1 : 0);
}

/* Finalize a plan for cfg; on failure the reason goes to why. */
static cudnnBackendDescriptor_t try_plan(const graft__cudnn_target *t,
                                         cudnnBackendDescriptor_t cfg, char *why,
                                         size_t why_cap) {
  cudnnBackendDescriptor_t plan = NULL;
  cudnnStatus_t e = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
  if (e == CUDNN_STATUS_SUCCESS)
    e = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
  if (e == CUDNN_STATUS_SUCCESS)
    e = t->handle ? cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                             CUDNN_TYPE_HANDLE, 1, &t->handle)
                  : cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP,
                                             CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t->device);
  if (e == CUDNN_STATUS_SUCCESS) e = cudnnBackendFinalize(plan);
  if (e == CUDNN_STATUS_SUCCESS) return plan;
  char last[256] = "";
  cudnnGetLastErrorString(last, sizeof last);
  snprintf(why, why_cap, "%s (%d)%s%s", cudnnGetErrorString(e), (int)e, last[0] ? ": " : "",
           last);
  if (plan) cudnnBackendDestroyDescriptor(plan);
  return NULL;
}

static graft_status run_heuristics(const graft__cudnn_target *t, cudnnBackendDescriptor_t graph,
                                   cudnnBackendHeurMode_t mode, cudnnBackendDescriptor_t *heur,
                                   cudnnBackendDescriptor_t **cfgs, int64_t *count) {
  *cfgs = NULL;
  *count = 0;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, heur));
  GRAFT_TRY(SET(*heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &graph));
  GRAFT_TRY(SET(*heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
  if (!t->handle)
    GRAFT_TRY(SET(*heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &t->device));
  CU_TRY(cudnn, cudnnBackendFinalize(*heur));
  int64_t n = 0, got = 0;
  CU_TRY(cudnn, cudnnBackendGetAttribute(*heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL));
  if (n <= 0) return GRAFT_OK;
  *cfgs = calloc((size_t)n, sizeof **cfgs);
  if (!*cfgs) return graft__fail(GRAFT_ENOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) {
    CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &(*cfgs)[i]));
    *count = i + 1; /* created, to be destroyed */
  }
  /* In 9.x this drops configs that fail support checks: use `got`. */
  CU_TRY(cudnn, cudnnBackendGetAttribute(*heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, *cfgs));
  for (int64_t i = got; i < n; i++) cudnnBackendDestroyDescriptor((*cfgs)[i]);
  *count = got;
  return GRAFT_OK;
}

static const char *mode_name(cudnnBackendHeurMode_t m) {
  return m == CUDNN_HEUR_MODE_A ? "A" : m == CUDNN_HEUR_MODE_FALLBACK ? "FALLBACK"
                                      : m == CUDNN_HEUR_MODE_B        ? "B"
                                                                      : "INSTANT";
}

/* The config's knob choices as "type=value,..." ("-": none) into buf. */
static graft_status cfg_knobs(cudnnBackendDescriptor_t cfg, char *buf, size_t cap) {
  cudnnBackendDescriptor_t knob[CUDNN_KNOB_TYPE_COUNTS] = {0};
  int64_t n = 0, made = 0;
  graft_status s = GRAFT_OK;
  for (; s == GRAFT_OK && made < CUDNN_KNOB_TYPE_COUNTS; made++)
    s = CU_STEP(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR,
                                                    &knob[made]));
  if (s == GRAFT_OK)
    s = CU_STEP(cudnn, cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                                CUDNN_KNOB_TYPE_COUNTS, &n, knob));
  size_t at = 0;
  snprintf(buf, cap, "-");
  for (int64_t i = 0; s == GRAFT_OK && i < n; i++) {
    cudnnBackendKnobType_t type;
    int64_t value = 0, got = 0;
    s = CU_STEP(cudnn, cudnnBackendGetAttribute(knob[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE,
                                                CUDNN_TYPE_KNOB_TYPE, 1, &got, &type));
    if (s == GRAFT_OK)
      s = CU_STEP(cudnn, cudnnBackendGetAttribute(knob[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE,
                                                  CUDNN_TYPE_INT64, 1, &got, &value));
    int w = s == GRAFT_OK ? snprintf(buf + at, cap - at, "%s%d=%lld", at ? "," : "", (int)type,
                                     (long long)value)
                          : 0;
    if (s == GRAFT_OK && (w < 0 || (size_t)w >= cap - at))
      s = graft__fail(GRAFT_ELIMIT, "%lld knob choices do not fit %zu bytes", (long long)n, cap);
    at += s == GRAFT_OK ? (size_t)w : 0;
  }
  for (int64_t i = 0; i < made; i++)
    if (knob[i]) cudnnBackendDestroyDescriptor(knob[i]);
  return s;
}

/* The tune cache's key for this graph: the target's plus the mode. */
static void full_key(const graft__cudnn_target *t, cudnnBackendHeurMode_t mode, char *buf,
                     size_t cap) {
  snprintf(buf, cap, "%s, heuristics %s", t->tune_key, mode_name(mode));
}

/* The choice the tune cache holds for this graph, finalized without timing:
 * the allowed config of that engine and knobs, if the heuristics still offer
 * it and it finalizes; *chosen_out -1 otherwise. */
static graft_status from_cache(const graft__cudnn_target *t, graft__cudnn_plan *p,
                               cudnnBackendDescriptor_t *cfgs, const cfg_info *info, int64_t n,
                               graft_precision prec, const char *key, int *chosen_out) {
  *chosen_out = -1;
  const graft__tune_line *l =
      graft__tune_cache_find(t->tune_cache, graft__tune_cache_who(t->tune_cache), key);
  for (int64_t i = 0; l && i < n; i++) {
    char knobs[GRAFT__TUNE_KNOBS], why[320];
    if (!allowed(&info[i], prec) || info[i].engine != l->engine) continue;
    if (cfg_knobs(cfgs[i], knobs, sizeof knobs) != GRAFT_OK) { /* not comparable: no match */
      graft_clear_detail();
      continue;
    }
    if (strcmp(knobs, l->knobs) != 0) continue;
    p->tried++;
    cudnnBackendDescriptor_t plan = try_plan(t, cfgs[i], why, sizeof why);
    if (!plan) return GRAFT_OK; /* the card refuses it now: time again */
    int64_t got = 0;
    graft_status s = CU_STEP(cudnn, cudnnBackendGetAttribute(
                                        plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                        CUDNN_TYPE_INT64, 1, &got, &p->workspace));
    if (s != GRAFT_OK) {
      cudnnBackendDestroyDescriptor(plan);
      return s;
    }
    p->plan = plan;
    p->tuned = l->timed;
    p->tuned_ms = l->ms;
    p->tuned_earlier = true;
    *chosen_out = (int)i;
    return GRAFT_OK;
  }
  return GRAFT_OK;
}

/* Record a timed choice in the tune cache; a failure to write is said once
 * (graft__tune_cache_put) and changes nothing else. */
static void remember(const graft__cudnn_target *t, const graft__cudnn_plan *p,
                     cudnnBackendDescriptor_t cfg, const char *key) {
  char knobs[GRAFT__TUNE_KNOBS];
  if (p->tuned_ms < 0 || cfg_knobs(cfg, knobs, sizeof knobs) != GRAFT_OK ||
      graft__tune_cache_put(t->tune_cache, key, p->engine, knobs, p->tuned, p->tuned_ms) !=
          GRAFT_OK)
    graft_clear_detail();
}

/* Time each candidate plan with the target's timer (p's uids name the
 * tensors); the index of the fastest. A candidate the timer cannot run is
 * never chosen unless none can be (then the first, which the trial run
 * after planning will judge). */
static int pick_fastest(const graft__cudnn_target *t, graft__cudnn_plan *p,
                        const cudnnBackendDescriptor_t *cand, const int64_t *ws, int n) {
  int best = 0;
  double best_ms = -1;
  cudnnBackendDescriptor_t keep_plan = p->plan;
  int64_t keep_ws = p->workspace;
  for (int k = 0; k < n; k++) {
    double ms = 0;
    p->plan = cand[k];
    p->workspace = ws[k];
    if (t->time(t->time_ctx, p, &ms) != GRAFT_OK) {
      graft_clear_detail();
      continue;
    }
    if (best_ms < 0 || ms < best_ms) best = k, best_ms = ms;
  }
  p->plan = keep_plan;
  p->workspace = keep_ws;
  p->tuned_ms = best_ms;
  return best;
}

/* Finalize the allowed configs in rank order and choose one: *chosen_out is
 * its index in cfgs (-1, with the status saying why none finalized). */
static graft_status choose_plan(const graft__cudnn_target *t, graft__cudnn_plan *p,
                                cudnnBackendDescriptor_t *cfgs, const cfg_info *info, int64_t n,
                                cudnnBackendHeurMode_t mode, graft_precision prec,
                                int *chosen_out) {
  /* Deterministic configs first (bench and tests compare reruns bit for
   * bit), a non-deterministic one only when nothing else finalizes; within
   * that, configs whose workspace fits the target's limit first (VGG16's
   * fastest fp32 engines at batch 64 ask for 1.5 GB); within that, in
   * fp32-strict, no FFT or Winograd transform unless nothing else finalizes. */
  /* Tuned (the target has a timer): up to tune_top plans of the first rank
   * that finalizes any, in the heuristics' order, each timed; the fastest
   * wins. Otherwise the first that finalizes. */
  const int want = t->time && t->tune_top > 1 ? (t->tune_top < GRAFT__CUDNN_TUNE_MAX
                                                     ? t->tune_top
                                                     : GRAFT__CUDNN_TUNE_MAX)
                                              : 1;
  cudnnBackendDescriptor_t cand[GRAFT__CUDNN_TUNE_MAX];
  int64_t cand_ws[GRAFT__CUDNN_TUNE_MAX];
  int cand_cfg[GRAFT__CUDNN_TUNE_MAX], n_cand = 0;
  char why[320] = "no engine config was allowed";
  int chosen = -1;
  graft_status s = GRAFT_OK;
  for (int pass = 0; s == GRAFT_OK && n_cand == 0 && pass < 8; pass++)
    for (int64_t i = 0; s == GRAFT_OK && n_cand < want && i < n; i++) {
      if (!allowed(&info[i], prec) || rank(&info[i], t, prec) != pass) continue;
      p->tried++;
      cudnnBackendDescriptor_t plan = try_plan(t, cfgs[i], why, sizeof why);
      if (!plan) continue;
      int64_t got = 0;
      s = CU_STEP(cudnn, cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                  CUDNN_TYPE_INT64, 1, &got, &cand_ws[n_cand]));
      cand[n_cand] = plan;
      cand_cfg[n_cand++] = (int)i;
    }
  if (s == GRAFT_OK && n_cand > 1) {
    int best = pick_fastest(t, p, cand, cand_ws, n_cand);
    p->tuned = n_cand;
    chosen = cand_cfg[best];
    p->plan = cand[best];
    p->workspace = cand_ws[best];
    for (int k = 0; k < n_cand; k++)
      if (k != best) cudnnBackendDestroyDescriptor(cand[k]);
  } else if (n_cand > 0) {
    if (s == GRAFT_OK) {
      chosen = cand_cfg[0];
      p->plan = cand[0];
      p->workspace = cand_ws[0];
    } else {
      for (int k = 0; k < n_cand; k++) cudnnBackendDestroyDescriptor(cand[k]);
    }
  }
  if (s == GRAFT_OK && chosen < 0)
    s = graft__fail(GRAFT_EUNSUPPORTED,
                    "heuristics mode %s: %d engine config(s), %d allowed in %s, none finalized: %s",
                    mode_name(mode), p->candidates, p->viable, graft_precision_name(prec), why);
  *chosen_out = chosen;
  return s;
}

graft_status graft__cudnn_plan_graph(const graft__cudnn_target *t, graft__cudnn_plan *p,
                                     const cudnnBackendDescriptor_t *ops, int n_ops,
                                     cudnnBackendHeurMode_t mode, graft_precision prec) {
  cudnnBackendDescriptor_t graph = NULL, heur = NULL, *cfgs = NULL;
  int64_t n = 0;
  p->mode = mode;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
  GRAFT_TRY(graft__cudnn_keep(p, graph));
  GRAFT_TRY(SET(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops));
  if (t->handle)
    GRAFT_TRY(SET(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &t->handle));
  CU_TRY(cudnn, cudnnBackendFinalize(graph));

  graft_status s = run_heuristics(t, graph, mode, &heur, &cfgs, &n);
  cfg_info *info = s == GRAFT_OK && n ? calloc((size_t)n, sizeof *info) : NULL;
  if (s == GRAFT_OK && n && !info) s = graft__fail(GRAFT_ENOMEM, "out of memory");
  p->candidates = (int)n;
  p->viable = 0;
  for (int64_t i = 0; s == GRAFT_OK && i < n; i++) {
    /* A config whose notes cannot be read is not used: strict could not be kept. */
    info[i].known = read_cfg(cfgs[i], &info[i]) == GRAFT_OK;
    if (allowed(&info[i], prec)) p->viable++;
  }
  int chosen = -1;
  char key[GRAFT__TUNE_KEY + 32] = "";
  const bool cache = t->time && t->tune_top > 1 && t->tune_cache && t->tune_key;
  if (cache) full_key(t, mode, key, sizeof key);
  if (s == GRAFT_OK && cache) s = from_cache(t, p, cfgs, info, n, prec, key, &chosen);
  if (s == GRAFT_OK && chosen < 0) s = choose_plan(t, p, cfgs, info, n, mode, prec, &chosen);
  if (chosen >= 0) {
    p->engine = info[chosen].engine;
    p->tensor_core = info[chosen].tensor_core;
    p->notes = info[chosen].notes;
    if (s == GRAFT_OK && cache && !p->tuned_earlier && p->tuned > 1)
      remember(t, p, cfgs[chosen], key);
  }
  /* The chosen config and the heuristics stay with the plan (whether a plan
   * needs them alive is not documented); the other configs go now. */
  for (int64_t i = 0; i < n; i++) {
    if (i == chosen && graft__cudnn_keep(p, cfgs[i]) == GRAFT_OK) continue;
    if (i != chosen) cudnnBackendDestroyDescriptor(cfgs[i]);
  }
  if (heur && graft__cudnn_keep(p, heur) != GRAFT_OK && s == GRAFT_OK)
    s = graft__fail(GRAFT_ELIMIT, "too many cuDNN descriptors");
  free(cfgs);
  free(info);
  return s;
}

graft_status graft__cudnn_make_pack(const graft__cudnn_plan *p, void *const *ptrs, void *ws,
                                    cudnnBackendDescriptor_t *out) {
  void *data[GRAFT__CUDNN_MAX_IO];
  for (int i = 0; i < p->n_uids; i++) data[i] = ptrs[i];
  cudnnBackendDescriptor_t d = NULL;
  CU_TRY(cudnn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &d));
  graft_status s = SET(d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, p->n_uids, p->uids);
  if (s == GRAFT_OK)
    s = SET(d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, p->n_uids, data);
  if (s == GRAFT_OK) s = SET(d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  if (s == GRAFT_OK) s = CU_STEP(cudnn, cudnnBackendFinalize(d));
  if (s != GRAFT_OK) {
    cudnnBackendDestroyDescriptor(d);
    return s;
  }
  *out = d;
  return GRAFT_OK;
}

graft_status graft__cudnn_execute(cudnnHandle_t h, const graft__cudnn_plan *p,
                                  graft__cudnn_packs *packs, void *const *ptrs, void *workspace) {
  cudnnBackendDescriptor_t pack = NULL;
  for (int k = 0; k < 2 && !pack; k++) {
    if (!packs->slot[k].pack || packs->slot[k].ws != workspace) continue;
    bool same = true;
    for (int i = 0; i < p->n_uids; i++) same = same && packs->slot[k].ptrs[i] == ptrs[i];
    if (same) pack = packs->slot[k].pack;
  }
  if (!pack) {
    for (int i = 0; i < p->n_uids; i++)
      if ((uintptr_t)ptrs[i] % 16)
        return graft__fail(GRAFT_EINVAL, "cuDNN tensor %d at %p is not 16-byte aligned", i,
                           ptrs[i]);
    GRAFT_TRY(graft__cudnn_make_pack(p, ptrs, workspace, &pack));
    int k = packs->next;
    packs->next = (k + 1) % 2;
    if (packs->slot[k].pack) cudnnBackendDestroyDescriptor(packs->slot[k].pack);
    packs->slot[k].pack = pack;
    packs->slot[k].ws = workspace;
    for (int i = 0; i < p->n_uids; i++) packs->slot[k].ptrs[i] = ptrs[i];
  }
  CU_TRY(cudnn, cudnnBackendExecute(h, p->plan, pack));
  return GRAFT_OK;
}

void graft__cudnn_packs_release(graft__cudnn_packs *packs) {
  for (int k = 0; k < 2; k++)
    if (packs->slot[k].pack) cudnnBackendDestroyDescriptor(packs->slot[k].pack);
  memset(packs, 0, sizeof *packs);
}

void graft__cudnn_plan_release(graft__cudnn_plan *p) {
  if (!p) return;
  if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
  for (int i = p->n_keep - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(p->keep[i]);
  memset(p, 0, sizeof *p);
}
