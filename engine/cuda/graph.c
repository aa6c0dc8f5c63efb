/* A whole trunk as one CUDA graph: at a fixed batch size the trunk is the
 * same sequence of cuDNN executions, kernels and copies on the same buffers
 * every time, so it is captured once and replayed, which removes the host's
 * per-op launch cost (tens of microseconds per layer, most of AlexNet's time
 * at batch 1).
 *
 * The per-plan table entries cannot express this (the backend never sees
 * which plans form a trunk, nor its buffers), hence the table's `trunk_run`
 * entry, graft__cuda_trunk_run here. The capture is keyed on the plans, their
 * buffers and the workspace: a change of any of them starts over. The first
 * run of a key is eager (it loads every kernel and builds the variant packs);
 * the second captures and replays; a failed capture falls back to eager runs
 * for good, and says why once (graft__warn). The backend's cuda_eager option
 * turns capture off. graft__cuda_trunk_state tells which happened: the eager
 * fallback gives the same bits, so only it can show that capture works. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"
#include "engine/base/log.h"
#include "engine/layers.h"

#define MAX_STEPS (GRAFT_MAX_TRUNK + 2)

struct cuda_trunk_graph {
  int count;
  graft_plan *plans[MAX_STEPS];
  const void *xs[MAX_STEPS];
  void *ys[MAX_STEPS];
  void *ws;
  unsigned ws_gen;
  int runs;    /* eager runs of this key */
  int replays; /* launches of the captured graph */
  bool failed; /* capture failed: stay eager */
  bool off;    /* the backend's cuda_eager option */
  char why[256]; /* why the capture failed */
  cudaGraphExec_t exec;
};

static void reset(cuda_trunk_graph *g) {
  if (g->exec) cudaGraphExecDestroy(g->exec); /* freed once an in-flight replay ends */
  memset(g, 0, sizeof *g);
}

void graft__cuda_plan_free(graft_plan *plan) {
  if (!plan) return;
  if (plan->captured) {
    reset(plan->captured);
    free(plan->captured);
  }
  free(plan);
}

static graft_status run_eager(graft_plan *const *plans, int count, const void *const *xs,
                              void *const *ys) {
  for (int i = 0; i < count; i++) GRAFT_TRY(plans[i]->run(plans[i], xs[i], ys[i]));
  return GRAFT_OK;
}

static bool same_key(const cuda_trunk_graph *g, const cuda_backend *be, graft_plan *const *plans,
                     int count, const void *const *xs, void *const *ys) {
  if (g->count != count || g->ws != be->workspace || g->ws_gen != be->workspace_gen) return false;
  for (int i = 0; i < count; i++)
    if (g->plans[i] != plans[i] || g->xs[i] != xs[i] || g->ys[i] != ys[i]) return false;
  return true;
}

/* Capture what body queues on the backend's stream into *exec; false
 * (errors cleared, the reason in why and said once, naming what) when it
 * cannot be. The trunk's graph and a whole forward's are made the same way. */
static bool capture_into(cuda_backend *be, const char *what, graft_status (*body)(void *),
                         void *ctx, cudaGraphExec_t *exec, char *why, size_t why_cap) {
  cudaError_t e = cudaStreamBeginCapture(be->stream, cudaStreamCaptureModeThreadLocal);
  graft_status s = GRAFT_OK;
  const char *step = "cudaStreamBeginCapture";
  if (e == cudaSuccess) {
    s = body(ctx);
    if (s != GRAFT_OK) snprintf(why, why_cap, "a step failed: %s", graft_detail());
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(be->stream, &graph);
    step = "cudaStreamEndCapture";
    if (s == GRAFT_OK && e == cudaSuccess && graph) {
      e = cudaGraphInstantiate(exec, graph, 0);
      step = "cudaGraphInstantiate";
    }
    if (graph) cudaGraphDestroy(graph);
  }
  if (s == GRAFT_OK && e == cudaSuccess && *exec) return true;
  if (s == GRAFT_OK)
    snprintf(why, why_cap, "%s: %s (%s)", step, cudaGetErrorString(e), cudaGetErrorName(e));
  (void)cudaGetLastError();
  graft_clear_detail();
  if (*exec) cudaGraphExecDestroy(*exec);
  *exec = NULL;
  graft__warn("%s: the %s runs eagerly: capturing it as a CUDA graph failed: %s", be->base.name,
              what, why);
  return false;
}

static graft_status trunk_body(void *ctx) {
  cuda_trunk_graph *g = ctx;
  return run_eager(g->plans, g->count, g->xs, g->ys);
}

/* Capture the sequence into g->exec; false (the reason in g->why) when it
 * cannot be. */
static bool capture(cuda_backend *be, cuda_trunk_graph *g) {
  return capture_into(be, "trunk", trunk_body, g, &g->exec, g->why, sizeof g->why);
}

const char *graft__cuda_trunk_state(const graft_plan *first, char *buf, size_t cap,
                                    bool *captured) {
  const cuda_trunk_graph *g = first->captured;
  *captured = g && g->exec;
  if (!g)
    snprintf(buf, cap, "not run as a trunk");
  else if (g->off)
    snprintf(buf, cap, "eager (cuda_eager, GRAFT_CUDA_GRAPHS=0)");
  else if (g->exec)
    snprintf(buf, cap, "captured as a CUDA graph, %d replay(s)", g->replays);
  else if (g->failed)
    snprintf(buf, cap, "eager: capture failed: %s", g->why);
  else
    snprintf(buf, cap, "eager (%d run(s); captured from the second)", g->runs);
  return buf;
}

graft_status graft__cuda_trunk_run(graft_backend *b, graft_plan *const *plans, int count,
                                   const void *const *xs, void *const *ys) {
  cuda_backend *be = cuda_of(b);
  if (count < 1 || count > MAX_STEPS)
    return graft__fail(GRAFT_EINVAL, "a trunk of %d plans (1 to %d)", count, MAX_STEPS);
  /* inside a whole forward being recorded (graft__cuda_replay): the trunk's
   * ops go into that graph; a capture cannot nest */
  if (be->capturing) return run_eager(plans, count, xs, ys);
  bool off = be->eager;
  cuda_trunk_graph *g = plans[0]->captured;
  if (!g) {
    g = calloc(1, sizeof *g);
    if (!g) return run_eager(plans, count, xs, ys);
    plans[0]->captured = g;
  }
  if (off) {
    g->off = true;
    return run_eager(plans, count, xs, ys);
  }
  if (!same_key(g, be, plans, count, xs, ys)) {
    reset(g);
    g->count = count;
    memcpy(g->plans, plans, (size_t)count * sizeof *plans);
    memcpy(g->xs, xs, (size_t)count * sizeof *xs);
    memcpy(g->ys, ys, (size_t)count * sizeof *ys);
    g->ws = be->workspace;
    g->ws_gen = be->workspace_gen;
  }
  if (!g->exec && !g->failed && g->runs > 0 && !capture(be, g)) g->failed = true;
  if (!g->exec) {
    g->runs++;
    return run_eager(plans, count, xs, ys);
  }
  CU_TRY(cuda, cudaGraphLaunch(g->exec, be->stream));
  g->replays++;
  return GRAFT_OK;
}

/* ---- a whole forward as one CUDA graph (the table's replay entry) ----
 * The same rule as the trunk's, for any sequence the engine hands over
 * (engine/net.c: trunk, classifier and softmax): the first run eager, the
 * second captured, later ones replayed; a failed capture stays eager and
 * says why once. The caller owns the slot and guarantees the same ops on the
 * same buffers; the workspace is checked here (it may move when a later plan
 * grows it), and a change starts over. */
struct graft_replay {
  void *ws;
  unsigned ws_gen;
  int runs, replays;
  bool failed;
  char why[256];
  cudaGraphExec_t exec;
};

static bool capture_body(cuda_backend *be, graft_replay *r, graft_status (*body)(void *),
                         void *ctx) {
  be->capturing = true; /* the trunk inside runs its plans, not its own graph */
  bool ok = capture_into(be, "forward", body, ctx, &r->exec, r->why, sizeof r->why);
  be->capturing = false;
  return ok;
}

graft_status graft__cuda_replay(graft_backend *b, graft_replay **slot,
                                graft_status (*body)(void *ctx), void *ctx) {
  cuda_backend *be = cuda_of(b);
  if (be->eager || be->capturing) return body(ctx);
  graft_replay *r = *slot;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return body(ctx);
    *slot = r;
  }
  if (r->ws != be->workspace || r->ws_gen != be->workspace_gen) {
    if (r->exec) cudaGraphExecDestroy(r->exec);
    memset(r, 0, sizeof *r);
    r->ws = be->workspace;
    r->ws_gen = be->workspace_gen;
  }
  if (!r->exec && !r->failed && r->runs > 0 && !capture_body(be, r, body, ctx)) {
    r->failed = true;
    /* the failed capture queued nothing: this run still has to happen */
  }
  if (!r->exec) {
    r->runs++;
    return body(ctx);
  }
  CU_TRY(cuda, cudaGraphLaunch(r->exec, be->stream));
  r->replays++;
  return GRAFT_OK;
}

void graft__cuda_replay_release(graft_backend *b, graft_replay *r) {
  (void)b;
  if (!r) return;
  if (r->exec) cudaGraphExecDestroy(r->exec); /* freed once an in-flight launch ends */
  free(r);
}

void graft__cuda_replay_describe(const graft_replay *r, char *buf, size_t cap) {
  bool captured;
  graft__cuda_replay_state(r, buf, cap, &captured);
}

const char *graft__cuda_replay_state(const graft_replay *r, char *buf, size_t cap,
                                     bool *captured) {
  *captured = r && r->exec;
  if (!r)
    snprintf(buf, cap, "not run");
  else if (r->exec)
    snprintf(buf, cap, "captured as a CUDA graph, %d replay(s)", r->replays);
  else if (r->failed)
    snprintf(buf, cap, "eager: capture failed: %s", r->why);
  else
    snprintf(buf, cap, "eager (%d run(s); captured from the second)", r->runs);
  return buf;
}
