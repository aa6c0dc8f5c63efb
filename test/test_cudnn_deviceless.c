/* Every cuDNN graph graft builds for AlexNet and VGG16, planned without a GPU.
 *
 * cuDNN 9 runs heuristics and finalizes execution plans against a device
 * description (CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR from JSON) with no GPU and
 * no driver. For each conv layer at batch 1, 4, 8 and 64, in fp32,
 * fp32-strict and bf16, in NCHW and NHWC (channels-last activations, KRSC
 * filters), on an A100 and an H100 description, this builds the graphs of
 * the convolution ladder (engine/cuda/conv.c) through the backend's own code:
 *   fused graph, heuristics A, then FALLBACK, then the conv-only graph (A,
 *   then FALLBACK only if nothing else planned): the first that plans is what
 *   graft runs (marked '*') and one must; the others are reported, with the
 *   reason when they do not plan;
 * and each max pooling's resample graph: in NCHW it must finalize (the legacy
 * pooling API is the run-time fall-back, but the graph is what runs by
 * default); in NHWC cuDNN lists no pre-compiled resample engine and its
 * runtime-compiled ones cannot be finalized without a driver, so graft runs
 * NHWC pooling with cudnnPoolingForward (engine/cuda/pool.c) and the row only
 * says whether a graph planned. Plus the 256x300 shapes of test_models at
 * batch 2. A variant pack with dummy pointers is finalized for every plan.
 * fp32-strict plans must not use tensor cores. Prints one line per layer,
 * precision and layout: per device the chosen engine, viable configs /
 * heuristics results, and workspace.
 *
 * Tuned planning's choice (engine/cuda/cudnn_graph.c) is checked with a
 * made-up timer: the fastest candidate is kept, a timer that fails keeps
 * the first plan, no timer times nothing.
 *
 * Devices: $GRAFT_CUDNN_DEVICES (a folder with a100.json, h100.json), default
 * GRAFT_SOURCE_DIR/../shared/docs/cudnn-devices. Skips when absent. The
 * cards' own descriptions that device runs recorded in bench/cudnn-devices/
 * (test_cuda_ops holds the card to its own) must each load and plan a
 * convolution. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"
#include "engine/base/log.h"
#include "harness.h"
#include "models/arch.h"

static const char *const device_names[] = {"a100", "h100"};
enum { N_DEV = 2, N_PREC = GRAFT_PRECISION_BF16 + 1 };
static graft__cudnn_target targets[N_DEV];
static int plans_ok, plans_failed;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n > 0 && n < (1 << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
      if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
      } else {
        buf[n] = '\0';
      }
    }
  }
  fclose(f);
  return buf;
}

static void human(char *out, size_t cap, int64_t bytes) {
  if (bytes >= (1 << 20))
    snprintf(out, cap, "%.1fM", (double)bytes / (1 << 20));
  else if (bytes >= 1024)
    snprintf(out, cap, "%.1fK", (double)bytes / 1024);
  else
    snprintf(out, cap, "%ld", (long)bytes);
}

/* Check a planned graph: its variant pack finalizes, strict has no TF32. */
static void check_plan(graft__cudnn_plan *p, graft_precision prec, const char *what) {
  void *dummy[GRAFT__CUDNN_MAX_IO];
  for (int i = 0; i < GRAFT__CUDNN_MAX_IO; i++) dummy[i] = (void *)(uintptr_t)(0x10000 * (i + 1));
  cudnnBackendDescriptor_t pack = NULL;
  graft_status s = graft__cudnn_make_pack(p, dummy, (void *)(uintptr_t)0x100000, &pack);
  CHECK_MSG(s == GRAFT_OK, "%s: variant pack: %s", what, graft_detail());
  if (pack) cudnnBackendDestroyDescriptor(pack);
  if (prec == GRAFT_PRECISION_FP32_STRICT)
    CHECK_MSG(!p->tensor_core, "%s: fp32-strict chose tensor-core engine %ld", what,
              (long)p->engine);
}

/* "e26 20/20 6.4M" or "none" (the reason printed as a note). */
static void cell(char *out, size_t cap, graft_status s, graft__cudnn_plan *p,
                 graft_precision prec, const char *what) {
  if (s == GRAFT_OK) {
    char ws[32];
    human(ws, sizeof ws, p->workspace);
    /* T: TF32 tensor cores, F: FFT, W: Winograd (its tile when stated) */
    char n[8] = "";
    int k = 0;
    if (p->notes & GRAFT__NOTE_TENSOR_CORE) n[k++] = 'T';
    if (p->notes & GRAFT__NOTE_FFT) n[k++] = 'F';
    if (p->notes & GRAFT__NOTE_WINOGRAD) n[k++] = 'W';
    if (p->notes & GRAFT__NOTE_WINOGRAD_4x4) n[k++] = '4';
    if (p->notes & GRAFT__NOTE_WINOGRAD_6x6) n[k++] = '6';
    if (p->notes & GRAFT__NOTE_WINOGRAD_13x13) n[k++] = 'D';
    n[k] = '\0';
    snprintf(out, cap, "e%-3ld%-2s %2d/%-2d %6s", (long)p->engine, n, p->viable, p->candidates,
             ws);
    check_plan(p, prec, what);
    plans_ok++;
    graft__cudnn_plan_release(p);
  } else {
    snprintf(out, cap, "%-17s", "none");
    printf("  note: %s: %s\n", what, graft_detail());
  }
}

/* The ladder's graph rungs in conv.c's order: the first that plans is what
 * graft runs (marked '*'); at least one must. Each is reported. */
static const char *layout_name(bool nhwc) { return nhwc ? "nhwc" : "nchw"; }

static void conv_row(const char *arch, const graft_layer *l, const graft__conv_shape *sh,
                     graft_precision prec) {
  static const struct {
    bool fused;
    cudnnBackendHeurMode_t mode;
    const char *name;
  } rungs[] = {{true, CUDNN_HEUR_MODE_A, "fused/A"},
               {true, CUDNN_HEUR_MODE_FALLBACK, "fused/FALLBACK"},
               {false, CUDNN_HEUR_MODE_A, "split/A"},
               {false, CUDNN_HEUR_MODE_FALLBACK, "split/FALLBACK"}};
  char line[1024];
  int at = snprintf(line, sizeof line,
                    "%-7s %s.%-2d %3d->%-3d %2dx%-2d/%d %3dx%-3d b%-2d %-11s %s", arch, l->module,
                    l->index, sh->c, sh->k, sh->r, sh->r, sh->stride, sh->h, sh->w, sh->n,
                    graft_precision_name(prec), layout_name(sh->nhwc));
  for (int d = 0; d < N_DEV; d++) {
    bool chosen = false;
    for (size_t k = 0; k < 3; k++) { /* split/FALLBACK only when needed, below */
      graft__cudnn_plan p;
      char what[160], c[64];
      snprintf(what, sizeof what, "%s %s.%d batch %d %s %s %s %s", arch, l->module, l->index,
               sh->n, graft_precision_name(prec), layout_name(sh->nhwc), device_names[d],
               rungs[k].name);
      graft_status s = graft__conv_graph(&targets[d], sh, rungs[k].fused, rungs[k].mode, prec, &p);
      bool first = s == GRAFT_OK && !chosen;
      chosen = chosen || s == GRAFT_OK;
      cell(c, sizeof c, s, &p, prec, what);
      at += snprintf(line + at, sizeof line - (size_t)at, "%s%s%s", k ? " " : " | ",
                     first ? "*" : " ", c);
    }
    if (!chosen) {
      graft__cudnn_plan p;
      char what[160], c[64];
      snprintf(what, sizeof what, "%s %s.%d batch %d %s %s %s %s", arch, l->module, l->index,
               sh->n, graft_precision_name(prec), layout_name(sh->nhwc), device_names[d],
               rungs[3].name);
      graft_status s = graft__conv_graph(&targets[d], sh, false, rungs[3].mode, prec, &p);
      chosen = s == GRAFT_OK;
      cell(c, sizeof c, s, &p, prec, what);
      at += snprintf(line + at, sizeof line - (size_t)at, " split/FALLBACK:%s", c);
    }
    if (!chosen) plans_failed++;
    CHECK_MSG(chosen, "%s %s.%d batch %d %s %s %s: no graph rung plans", arch, l->module,
              l->index, sh->n, graft_precision_name(prec), layout_name(sh->nhwc),
              device_names[d]);
  }
  puts(line);
}

static void pool_row(const char *arch, const graft_layer *l, int n, int c, int h, int w,
                     bool nhwc, graft_precision prec) {
  char line[512];
  int at = snprintf(line, sizeof line,
                    "%-7s %s.%-2d maxpool %d/%d %3d ch %3dx%-3d b%-2d %-11s %s", arch, l->module,
                    l->index, l->u.pool.kernel, l->u.pool.stride, c, h, w, n,
                    graft_precision_name(prec), layout_name(nhwc));
  for (int d = 0; d < N_DEV; d++) {
    graft__cudnn_plan p;
    char what[160], cs[64];
    snprintf(what, sizeof what, "%s %s.%d maxpool batch %d %s %s %s", arch, l->module, l->index,
             n, graft_precision_name(prec), layout_name(nhwc), device_names[d]);
    graft_status s = graft__maxpool_graph(&targets[d], n, c, h, w, l->u.pool.kernel,
                                          l->u.pool.stride, nhwc, prec, &p);
    int mode = s == GRAFT_OK ? (int)p.mode : -1;
    if (s != GRAFT_OK && nhwc) { /* not required: see the top of the file */
      snprintf(cs, sizeof cs, "%-17s", "none");
      graft_clear_detail();
    } else {
      cell(cs, sizeof cs, s, &p, prec, what);
    }
    if (s != GRAFT_OK && !nhwc) plans_failed++;
    CHECK_MSG(s == GRAFT_OK || nhwc, "%s: no resample plan", what);
    at += snprintf(line + at, sizeof line - (size_t)at, " | %s %s", cs,
                   mode == CUDNN_HEUR_MODE_A    ? "(A)"
                   : mode >= 0                  ? "(FALLBACK)"
                                                : "(runs cudnnPoolingForward, NHWC)");
  }
  puts(line);
}

/* Walk the trunk at h x w, as engine/net.c plans it, visiting each graph. */
static void walk(const graft_arch *a, int n, int h, int w, graft_precision prec, bool nhwc) {
  int c = 3;
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    if (l->kind == GRAFT_LAYER_CONV2D) {
      const graft_conv2d_params *p = &l->u.conv;
      graft__conv_shape sh = {n, c, h, w, p->out_c, p->kernel, p->stride, p->pad, p->relu, nhwc};
      conv_row(a->name, l, &sh, prec);
      h = graft_out_dim(h, p->kernel, p->stride, p->pad);
      w = graft_out_dim(w, p->kernel, p->stride, p->pad);
      c = p->out_c;
    } else if (l->kind == GRAFT_LAYER_MAXPOOL2D) {
      pool_row(a->name, l, n, c, h, w, nhwc, prec);
      h = graft_out_dim(h, l->u.pool.kernel, l->u.pool.stride, 0);
      w = graft_out_dim(w, l->u.pool.kernel, l->u.pool.stride, 0);
    }
  }
}

/* Each description recorded in bench/cudnn-devices/ loads and plans VGG16's
 * second convolution (fused, else conv-only; heuristics A). */
static void recorded_devices(void) {
  char dir[4200], path[4500];
  snprintf(dir, sizeof dir, "%s/bench/cudnn-devices", GRAFT_SOURCE_DIR);
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    n++;
    char *json = slurp(path);
    CHECK_MSG(json != NULL, "cannot read %s", path);
    graft__cudnn_target t = {.device = NULL};
    graft_status s = json ? graft__cudnn_device_from_json(json, &t.device) : GRAFT_EIO;
    free(json);
    CHECK_MSG(s == GRAFT_OK, "%s: not a device description: %s", path, graft_detail());
    if (s != GRAFT_OK) continue;
    graft__conv_shape sh = {1, 64, 224, 224, 64, 3, 1, 1, true, false};
    graft__cudnn_plan p;
    s = graft__conv_graph(&t, &sh, true, CUDNN_HEUR_MODE_A, GRAFT_PRECISION_FP32, &p);
    if (s != GRAFT_OK)
      s = graft__conv_graph(&t, &sh, false, CUDNN_HEUR_MODE_A, GRAFT_PRECISION_FP32, &p);
    CHECK_MSG(s == GRAFT_OK, "%s: VGG16's second convolution does not plan: %s", path,
              graft_detail());
    if (s == GRAFT_OK) {
      printf("recorded %s: VGG16's second convolution plans on engine %ld\n", e->d_name,
             (long)p.engine);
      graft__cudnn_plan_release(&p);
    }
    cudnnBackendDestroyDescriptor(t.device);
  }
  if (d) closedir(d);
  printf("%d recorded card description(s) in %s\n", n, dir);
}

/* The legacy rung's choice (no GPU needed: a made-up results table). */
static void legacy_pick(void) {
  const size_t mib = 1 << 20;
  cudnnConvolutionFwdAlgoPerf_t perf[4] = {0};
  const struct {
    cudnnConvolutionFwdAlgo_t algo;
    size_t memory;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
  } rows[] = {{CUDNN_CONVOLUTION_FWD_ALGO_FFT, 900 * mib, CUDNN_DETERMINISTIC, CUDNN_DEFAULT_MATH},
              {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, 300 * mib, CUDNN_DETERMINISTIC,
               CUDNN_DEFAULT_MATH},
              {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, 40 * mib, CUDNN_DETERMINISTIC,
               CUDNN_DEFAULT_MATH},
              {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0, CUDNN_NON_DETERMINISTIC,
               CUDNN_FMA_MATH}};
  for (int i = 0; i < 4; i++) {
    perf[i].algo = rows[i].algo, perf[i].status = CUDNN_STATUS_SUCCESS;
    perf[i].memory = rows[i].memory, perf[i].determinism = rows[i].det;
    perf[i].mathType = rows[i].math;
  }
  int smallest;
  CHECK(graft__legacy_pick(perf, 4, false, 1024 * mib, &smallest) == 0 && smallest == -1);
  CHECK(graft__legacy_pick(perf, 4, false, 500 * mib, &smallest) == 1); /* FFT too big */
  CHECK(graft__legacy_pick(perf, 4, true, 500 * mib, &smallest) == 1);  /* strict: no transform */
  CHECK(graft__legacy_pick(perf, 4, true, 100 * mib, &smallest) == 2);  /* transform, it fits */
  CHECK(graft__legacy_pick(perf, 3, true, 10 * mib, &smallest) == -1 && smallest == 2);
  CHECK(graft__legacy_pick(perf, 4, true, 10 * mib, &smallest) == 3);   /* non-deterministic */
  perf[3].status = CUDNN_STATUS_NOT_SUPPORTED;
  CHECK(graft__legacy_pick(perf, 4, false, 0, &smallest) == -1 && smallest == 2);
  perf[1].mathType = CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION; /* never, however small */
  perf[1].memory = 0;
  CHECK(graft__legacy_pick(perf, 4, false, 10 * mib, &smallest) == -1 && smallest == 2);
  printf("legacy rung: algorithm choice within the workspace limit checked\n");
}

/* Tuned planning's choice, with a made-up timer: each candidate is
 * "faster" than the one before, so the last timed must win; a timer that
 * fails every time leaves the first; no timer, today's first plan. */
static int timed;
static cudnnBackendDescriptor_t first_timed, last_timed;
static bool fail_timer;
static graft_status fake_timer(void *ctx, const graft__cudnn_plan *cand, double *ms) {
  (void)ctx;
  if (!timed) first_timed = cand->plan;
  last_timed = cand->plan;
  *ms = 100.0 - timed++;
  return fail_timer ? graft__fail(GRAFT_EBACKEND, "made-up failure") : GRAFT_OK;
}

static void tuned_pick(void) {
  graft__conv_shape sh = {8, 64, 56, 56, 128, 3, 1, 1, true, false};
  for (int d = 0; d < N_DEV; d++)
    for (int fail = 0; fail < 2; fail++) {
      graft__cudnn_target t = targets[d];
      t.time = fake_timer;
      t.tune_top = 4;
      timed = 0;
      fail_timer = fail;
      graft__cudnn_plan p, plain;
      CHECK_OK(graft__conv_graph(&t, &sh, true, CUDNN_HEUR_MODE_A, GRAFT_PRECISION_FP32, &p));
      CHECK_OK(graft__conv_graph(&targets[d], &sh, true, CUDNN_HEUR_MODE_A, GRAFT_PRECISION_FP32,
                                 &plain));
      CHECK_MSG(timed > 1 && p.tuned == timed && timed <= 4, "%s: %d timed, %d tuned",
                device_names[d], timed, p.tuned);
      CHECK_MSG(p.plan == (fail ? first_timed : last_timed), "%s: tuned kept the wrong plan",
                device_names[d]);
      CHECK_MSG(plain.tuned == 0, "untuned planning timed something");
      if (fail) /* nothing timed: the first plan, which is the untuned choice */
        CHECK_MSG(p.engine == plain.engine, "%s: engine %ld, untuned %ld", device_names[d],
                  (long)p.engine, (long)plain.engine);
      printf("tuned planning on %s (%s timer): %d candidates timed, engine %ld kept "
             "(untuned: %ld)\n",
             device_names[d], fail ? "failing" : "made-up", timed, (long)p.engine,
             (long)plain.engine);
      graft__cudnn_plan_release(&p);
      graft__cudnn_plan_release(&plain);
      graft_clear_detail();
    }
}

/* Tuned choices kept on disk (engine/cuda/tune_cache.c), with the made-up
 * timer: a first run times and writes; a run from the file times nothing
 * and finalizes the same engine and knobs; other cards, keys and modes time
 * again; broken lines are skipped and dropped when the file is next
 * written; a choice the heuristics no longer offer is timed again and
 * replaced; a file of another format is refused and left as it was; a file
 * that cannot be written is said once and planning goes on. */
static int warnings;
static void count_warning(const char *msg, void *user) {
  (void)user;
  printf("  warning: %s\n", msg);
  warnings++;
}

static int count_lines(const char *path) {
  char *text = slurp(path);
  int n = 0;
  for (char *at = text; at && *at; at++) n += *at == '\n';
  free(text);
  return n;
}

/* Plan sh through cache c as card d, mode A or FALLBACK; how many timed. */
static int plan_cached(int d, graft__tune_cache *c, const char *key, cudnnBackendHeurMode_t mode,
                       graft__cudnn_plan *p) {
  const graft__conv_shape sh = {8, 64, 56, 56, 128, 3, 1, 1, true, false};
  graft__cudnn_target t = targets[d];
  t.time = fake_timer;
  t.tune_top = 4;
  t.tune_cache = c;
  t.tune_key = key;
  timed = 0;
  fail_timer = false;
  CHECK_OK(graft__conv_graph(&t, &sh, true, mode, GRAFT_PRECISION_FP32, p));
  return timed;
}

static graft__tune_cache *open_as(const char *path, int d) {
  char who[64];
  snprintf(who, sizeof who, "deviceless %s", device_names[d]);
  graft__tune_cache *c = NULL;
  CHECK_OK(graft__tune_cache_open(path, who, &c));
  return c;
}

static void tune_cache_writes_and_reads(const char *path) {
  graft__cudnn_plan p, q;
  for (int d = 0; d < N_DEV; d++) {
    graft__tune_cache *c = open_as(path, d);
    int first = plan_cached(d, c, "test conv", CUDNN_HEUR_MODE_A, &p);
    CHECK_MSG(first > 1 && !p.tuned_earlier, "%s: %d timed", device_names[d], first);
    CHECK(plan_cached(d, c, "test conv", CUDNN_HEUR_MODE_FALLBACK, &q) > 1); /* its own key */
    graft__cudnn_plan_release(&q);
    graft__tune_cache_close(c);
    /* the header, each card before with 3 choices, this one with 2 */
    CHECK_MSG(count_lines(path) == 1 + 3 * d + 2, "%s: %d lines", path, count_lines(path));
    c = open_as(path, d); /* a later run */
    CHECK_MSG(plan_cached(d, c, "test conv", CUDNN_HEUR_MODE_A, &q) == 0,
              "%s: a kept choice was timed again", device_names[d]);
    CHECK(q.tuned_earlier && q.tuned == p.tuned && q.tuned_ms == p.tuned_ms);
    CHECK_MSG(q.engine == p.engine && q.workspace == p.workspace, "%s: engine %ld, kept %ld",
              device_names[d], (long)q.engine, (long)p.engine);
    graft__cudnn_plan_release(&q);
    CHECK(plan_cached(d, c, "another conv", CUDNN_HEUR_MODE_A, &q) > 1);
    graft__cudnn_plan_release(&q);
    printf("tune cache on %s: first run timed %d, the next none (engine %ld)\n",
           device_names[d], first, (long)p.engine);
    graft__cudnn_plan_release(&p);
    graft__tune_cache_close(c);
  }
}

static void tune_cache_broken(const char *path) {
  /* broken lines, and a choice for an engine the heuristics do not offer */
  FILE *f = fopen(path, "a");
  CHECK(f != NULL);
  if (!f) return;
  fprintf(f, "garbage\nno\ttabs\tenough\ndeviceless h100\tx\t1\t-\t1\t2\n");
  for (int i = 0; i < 1500; i++) fputc('z', f);
  fprintf(f, "\ndeviceless h100\tstale, heuristics A\t999999\t-\t4\t1\n");
  fprintf(f, "deviceless h100\ttruncated\t12\t-\t4");
  fclose(f);
  const int before = count_lines(path);
  warnings = 0;
  graft__tune_cache *c = open_as(path, 1);
  CHECK_MSG(warnings == 1, "%d warnings for the broken lines", warnings);
  graft__cudnn_plan p;
  CHECK(plan_cached(1, c, "test conv", CUDNN_HEUR_MODE_A, &p) == 0); /* still there */
  graft__cudnn_plan_release(&p);
  CHECK(plan_cached(1, c, "stale", CUDNN_HEUR_MODE_A, &p) > 1);
  const graft__tune_line *l = graft__tune_cache_find(c, "deviceless h100", "stale, heuristics A");
  CHECK(l && l->engine == p.engine);
  graft__cudnn_plan_release(&p);
  graft__tune_cache_close(c);
  /* rewritten: the broken lines gone (4 whole ones and the unfinished last),
   * the stale choice replaced where it was */
  CHECK_MSG(count_lines(path) == before - 4, "%d lines, %d before", count_lines(path), before);
  /* the engine alone does not make the choice: its knobs must match too */
  c = open_as(path, 1);
  l = graft__tune_cache_find(c, "deviceless h100", "test conv, heuristics A");
  CHECK(l && graft__tune_cache_put(c, "knobs, heuristics A", l->engine, "2=99", 4, 1.0) ==
                 GRAFT_OK);
  CHECK(plan_cached(1, c, "knobs", CUDNN_HEUR_MODE_A, &p) > 1);
  graft__cudnn_plan_release(&p);
  graft__tune_cache_close(c);
}

static void tune_cache_refusals(const char *dir) {
  char other[4200], nowhere[4200];
  snprintf(other, sizeof other, "%s/not-ours.txt", dir);
  snprintf(nowhere, sizeof nowhere, "%s/missing-folder/cudnn-tuned.tsv", dir);
  FILE *f = fopen(other, "w");
  CHECK(f && fputs("my notes\n", f) >= 0 && fclose(f) == 0);
  graft__tune_cache *c = NULL;
  CHECK(graft__tune_cache_open(other, "deviceless h100", &c) == GRAFT_EFORMAT && !c);
  printf("refused: %s\n", graft_detail());
  CHECK(count_lines(other) == 1);
  graft_clear_detail();
  c = open_as(nowhere, 0);
  warnings = 0;
  graft__cudnn_plan p;
  CHECK(plan_cached(0, c, "test conv", CUDNN_HEUR_MODE_A, &p) > 1); /* planned all the same */
  graft__cudnn_plan_release(&p);
  CHECK(plan_cached(0, c, "another conv", CUDNN_HEUR_MODE_A, &p) > 1);
  graft__cudnn_plan_release(&p);
  CHECK_MSG(warnings == 1, "%d warnings for a file that cannot be written", warnings);
  graft__tune_cache_close(c);
}

/* A file of n choices: "other card" keys o0.., then this card's keys c0... */
static void write_choices(const char *path, int others, int ours) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fprintf(f, "# graft tuned cuDNN plans, format 1\n");
  for (int i = 0; i < others; i++) fprintf(f, "other card\to%d\t%d\t-\t4\t1\n", i, i);
  for (int i = 0; i < ours; i++) fprintf(f, "deviceless h100\tc%d\t%d\t-\t4\t1\n", i, i);
  CHECK(fclose(f) == 0);
}

static bool kept(graft__tune_cache *c, const char *who, const char *key) {
  return graft__tune_cache_find(c, who, key) != NULL;
}

/* At most GRAFT__TUNE_MAX_LINES choices: the oldest dropped, other cards'
 * first, never the new one; a file of far more is read only so far. */
static void tune_cache_bound(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/full.tsv", dir);
  const int max = GRAFT__TUNE_MAX_LINES;
  write_choices(path, 3, max);
  graft__tune_cache *c = open_as(path, 1);
  CHECK_OK(graft__tune_cache_put(c, "new", 7, "-", 4, 1.0));
  CHECK_MSG(count_lines(path) == 1 + max, "%d lines, at most %d choices", count_lines(path), max);
  CHECK(!kept(c, "other card", "o2") && !kept(c, "deviceless h100", "c0"));
  CHECK(kept(c, "deviceless h100", "c1") && kept(c, "deviceless h100", "new"));
  graft__tune_cache_close(c);
  write_choices(path, max, 2); /* others' oldest go, this card's stay */
  c = open_as(path, 1);
  CHECK_OK(graft__tune_cache_put(c, "new", 7, "-", 4, 1.0));
  CHECK(count_lines(path) == 1 + max && !kept(c, "other card", "o2"));
  CHECK(kept(c, "other card", "o3") && kept(c, "deviceless h100", "c0"));
  graft__tune_cache_close(c);
  write_choices(path, 4 * max + 10, 0);
  warnings = 0;
  c = open_as(path, 1);
  CHECK_MSG(warnings == 1, "%d warnings for a file of too many choices", warnings);
  char last[32];
  snprintf(last, sizeof last, "o%d", 4 * max); /* the first not read */
  CHECK(kept(c, "other card", "o0") && !kept(c, "other card", last));
  CHECK_OK(graft__tune_cache_put(c, "new", 7, "-", 4, 1.0));
  CHECK(count_lines(path) == 1 + max && kept(c, "deviceless h100", "new"));
  graft__tune_cache_close(c);
  printf("tune cache: at most %d choices, the oldest dropped\n", max);
}

static void tune_cache(bool quick) {
  /* its own folder per mode: ctest -j runs the two at once */
  const char *dir = graft_test_tmpdir(quick ? "cudnn_tune_cache_quick" : "cudnn_tune_cache");
  char path[4200];
  snprintf(path, sizeof path, "%s/cudnn-tuned.tsv", dir);
  remove(path);
  graft_set_log(count_warning, NULL);
  tune_cache_writes_and_reads(path);
  tune_cache_broken(path);
  tune_cache_refusals(dir);
  tune_cache_bound(dir);
  graft_set_log(NULL, NULL);
  graft_clear_detail();
}

/* No argument: every layer at batch 1, 4, 8, 64 (224x224) and 2 (256x300).
 * "quick" (the quick tier): batch 1 only. */
int main(int argc, char **argv) {
  const bool quick = argc > 1 && strcmp(argv[1], "quick") == 0;
  legacy_pick();
  recorded_devices();
  const char *dir = graft_test_env("GRAFT_CUDNN_DEVICES");
  char fallback[4096];
  if (!dir) {
    snprintf(fallback, sizeof fallback, "%s/../shared/docs/cudnn-devices", GRAFT_SOURCE_DIR);
    dir = fallback;
  }
  size_t version = cudnnGetVersion();
  printf("cuDNN %zu (headers %d.%d.%d), device descriptions in %s\n", version, CUDNN_MAJOR,
         CUDNN_MINOR, CUDNN_PATCHLEVEL, dir);
  for (int d = 0; d < N_DEV; d++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", dir, device_names[d]);
    char *json = slurp(path);
    if (!json) graft_test_skip("no device description %s (set GRAFT_CUDNN_DEVICES)", path);
    CHECK_OK(graft__cudnn_device_from_json(json, &targets[d].device));
    /* the backend's workspace preference: a 16th of the GPU's memory */
    const char *mem = strstr(json, "\"totalGlobalMem\":");
    if (mem) targets[d].workspace_limit = strtoll(mem + 17, NULL, 10) / 16;
    printf("%s: workspace limit %lld MiB\n", device_names[d],
           (long long)(targets[d].workspace_limit >> 20));
    free(json);
  }
  tuned_pick();
  tune_cache(quick);
  printf("columns per device: fused/A, fused/FALLBACK, split/A; each "
         "e<engine id><notes> <viable>/<heuristics results> <workspace>; notes: T TF32, F FFT, "
         "W Winograd (4, 6, D: 4x4, 6x6, 13x13 tiles); * = the plan graft runs\n");
  printf("%-52s | %-53s | %s\n", "layer", "A100", "H100");
  static const int batches[] = {1, 4, 8, 64};
  static const char *const archs[] = {"alexnet", "vgg16"};
  for (size_t ai = 0; ai < 2; ai++) {
    graft_arch a;
    CHECK_OK(graft_arch_init(&a, archs[ai], 1000));
    for (int nhwc = 0; nhwc < 2; nhwc++)
      for (int prec = 0; prec < N_PREC; prec++) {
        for (size_t b = 0; b < (quick ? 1 : sizeof batches / sizeof batches[0]); b++)
          walk(&a, batches[b], 224, 224, (graft_precision)prec, nhwc);
        /* test_models' second size, where the adaptive pooling is a real kernel */
        if (!quick) walk(&a, 2, 256, 300, (graft_precision)prec, nhwc);
      }
  }
  for (int d = 0; d < N_DEV; d++) cudnnBackendDestroyDescriptor(targets[d].device);
  printf("%d plans finalized, %d required plans failed\n", plans_ok, plans_failed);
  return graft_test_finish("cudnn_deviceless");
}
