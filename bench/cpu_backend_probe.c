/* cpu_backend_probe: where the CPU backend's time goes, layer by layer.
 *
 * Plans an AlexNet or VGG16 trunk (random He weights) on the CPU backend
 * (options from the environment as the apps read them, GRAFT_CPU_CONV and
 * GRAFT_CPU_KERNELS; correctness is test/test_cpu_trunk.c's job), then
 * times every trunk plan and classifier Linear (median of --reps runs) and
 * what a per-layer NCHW framework would add: a reorder of every blocked
 * activation to plain NCHW and back. Also reports how much CPU other
 * processes took while it ran (this machine is shared; over ~0.1 core the
 * numbers are suspect). Not part of the build; compile against a build tree:
 *
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -I. bench/cpu_backend_probe.c \
 *      apps/common.c build-cpu/libgraft_{models,io,backends,engine,base}.a \
 *      -ldnnl -lopenblas -lhdf5_serial -ljpeg -lpng -lcairo -lm -o /tmp/probe
 *   GRAFT_CPU_CONV=winograd /tmp/probe vgg16 8 [reps [threads, default 2]]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "apps/common.h"
#include "engine/base/clock.h"
#include "engine/cpu/cpu.h"
#include "engine/base/rng.h"
#include "models/arch.h"

#define TRY(expr)                                                                      \
  do {                                                                                 \
    graft_status s_ = (expr);                                                          \
    if (s_ != GRAFT_OK) {                                                              \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, graft_detail());   \
      exit(1);                                                                         \
    }                                                                                  \
  } while (0)

/* Busy CPU seconds of the whole machine and of this process. */
static void cpu_seconds(double *machine, double *self) {
  unsigned long long v[10] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f) {
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) != 8)
      v[0] = 0;
    fclose(f);
  }
  *machine = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / 100.0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *self = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
          ru.ru_stime.tv_usec * 1e-6;
}

typedef struct timed {
  graft_plan *plan;
  void *x, *y;
} timed;

static double median_ms(graft_backend *be, timed *t, int count, int reps) {
  double *v = malloc(reps * sizeof(double));
  for (int r = -2; r < reps; r++) {
    double t0 = graft_now();
    for (int i = 0; i < count; i++) TRY(be->iface->plan_run(t[i].plan, t[i].x, t[i].y));
    if (r >= 0) v[r] = (graft_now() - t0) * 1e3;
  }
  double m = graft_median(v, (size_t)reps);
  free(v);
  return m;
}

static void *alloc(graft_backend *be, size_t bytes) {
  void *p;
  TRY(be->iface->alloc(be, bytes, &p));
  memset(p, 0, bytes);
  return p;
}

static float *random_floats(graft_rng *r, size_t n, float lim) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = lim * (float)(2 * graft_rng_double(r) - 1);
  return p;
}

int main(int argc, char **argv) {
  const char *arch_name = argc > 1 ? argv[1] : "alexnet";
  int n = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 9;
  int threads = argc > 4 ? atoi(argv[4]) : 2;
  graft_arch a;
  TRY(graft_arch_init(&a, arch_name, 1000));
  graft_backend *be;
  graft_backend_options o;
  if (!app_backend_options("cpu", threads, NULL, &o)) return 2;
  TRY(graft_cpu_backend_create(&o, &be));
  printf("%s batch %d: %s\n", arch_name, n, graft_backend_describe(be));
  graft_rng rng = {1, 0};

  timed steps[GRAFT_MAX_TRUNK + 2];
  graft_act acts[GRAFT_MAX_TRUNK + 3];
  int ns = 0;
  acts[0] = (graft_act){n, 3, 224, 224, 0, (size_t)n * 3 * 224 * 224 * sizeof(float)};
  void *in = alloc(be, acts[0].bytes);
  float *img = random_floats(&rng, (size_t)n * 3 * 224 * 224, 2.0f);
  memcpy(in, img, acts[0].bytes);
  TRY(be->iface->nchw_to_act_plan(be, &acts[0], &acts[1], &steps[ns].plan));
  steps[ns].x = in;
  steps[ns].y = alloc(be, acts[1].bytes);
  ns++;
  for (int i = 0; i < a.n_trunk; i++, ns++) {
    const graft_layer *l = &a.trunk[i];
    graft_act *ai = &acts[ns], *ao = &acts[ns + 1];
    if (l->kind == GRAFT_LAYER_CONV2D) {
      const graft_conv2d_params *p = &l->u.conv;
      size_t fan = (size_t)p->in_c * p->kernel * p->kernel;
      float *w = random_floats(&rng, fan * p->out_c, sqrtf(6.0f / fan));
      float *b = random_floats(&rng, p->out_c, 0.1f);
      TRY(be->iface->conv2d_plan(be, p, ai, w, b, ao, &steps[ns].plan));
      free(w), free(b);
    } else if (l->kind == GRAFT_LAYER_MAXPOOL2D) {
      TRY(be->iface->maxpool2d_plan(be, &l->u.pool, ai, ao, &steps[ns].plan));
    } else {
      TRY(be->iface->adaptive_avgpool2d_plan(be, &l->u.avgpool, ai, ao, &steps[ns].plan));
    }
    steps[ns].x = steps[ns - 1].y;
    steps[ns].y = alloc(be, ao->bytes);
  }
  TRY(be->iface->act_to_rows_plan(be, &acts[ns], &acts[ns + 1], &steps[ns].plan));
  steps[ns].x = steps[ns - 1].y;
  steps[ns].y = alloc(be, acts[ns + 1].bytes);
  ns++;

  /* The classifier at inference: Linear layers (dropout is the identity). */
  int nl = 0;
  graft_linear_params lin[GRAFT_MAX_CLASSIFIER];
  float *lw[GRAFT_MAX_CLASSIFIER], *lb[GRAFT_MAX_CLASSIFIER], *lx[GRAFT_MAX_CLASSIFIER + 1];
  lx[0] = steps[ns - 1].y;
  for (int i = 0; i < a.n_classifier; i++) {
    if (a.classifier[i].kind != GRAFT_LAYER_LINEAR) continue;
    lin[nl] = a.classifier[i].u.linear;
    lw[nl] = random_floats(&rng, (size_t)lin[nl].in * lin[nl].out, sqrtf(6.0f / lin[nl].in));
    lb[nl] = random_floats(&rng, lin[nl].out, 0.1f);
    lx[nl + 1] = alloc(be, (size_t)n * lin[nl].out * sizeof(float));
    nl++;
  }

  double m0, s0, m1, s1;
  cpu_seconds(&m0, &s0);
  double t0 = graft_now();
  double total = 0, total_extra = 0;
  printf("%-34s %10s %10s\n", "layer", "ms", "nchw+ms");
  for (int i = 0; i < ns; i++) {
    double ms = median_ms(be, &steps[i], 1, reps), extra = 0;
    /* What an NCHW framework pays around a blocked op: output to plain and back. */
    const graft_act *o = &acts[i + 1];
    if (o->layout) {
      graft_act plain, back;
      timed rt[2];
      void *tmp = alloc(be, cpu_act_bytes(o->n, o->c, o->h, o->w, 0));
      void *tmp2 = alloc(be, o->bytes);
      TRY(graft__dnnl_reorder_plan((cpu_backend *)be, o, 0, &plain, &rt[0].plan));
      TRY(graft__dnnl_reorder_plan((cpu_backend *)be, &plain, o->layout, &back, &rt[1].plan));
      rt[0].x = steps[i].y, rt[0].y = tmp, rt[1].x = tmp, rt[1].y = tmp2;
      extra = median_ms(be, rt, 2, reps);
      be->iface->plan_destroy(rt[0].plan), be->iface->plan_destroy(rt[1].plan);
      be->iface->free(be, tmp), be->iface->free(be, tmp2);
    }
    char name[64];
    const graft_layer *l = i > 0 && i <= a.n_trunk ? &a.trunk[i - 1] : NULL;
    if (!l)
      snprintf(name, sizeof name, "%s", i == 0 ? "nchw_to_act" : "act_to_rows");
    else if (l->kind == GRAFT_LAYER_CONV2D)
      snprintf(name, sizeof name, "conv %d->%d k%d @%dx%d", l->u.conv.in_c, l->u.conv.out_c,
               l->u.conv.kernel, acts[i].h, acts[i].w);
    else
      snprintf(name, sizeof name, "%s -> %dx%d",
               l->kind == GRAFT_LAYER_MAXPOOL2D ? "maxpool" : "avgpool", o->h, o->w);
    char how[512] = "";
    if (be->iface->plan_describe) be->iface->plan_describe(steps[i].plan, how, sizeof how);
    printf("%-34s %10.3f %10.3f  [layout %d] %s\n", name, ms, extra, o->layout, how);
    total += ms;
    total_extra += extra;
  }
  double head = 0;
  for (int r = -2; r < reps; r++) {
    double t1 = graft_now();
    for (int i = 0; i < nl; i++)
      TRY(be->iface->linear_forward(be, &lin[i], n, lx[i], lw[i], lb[i], lx[i + 1]));
    if (r == reps / 2) head = (graft_now() - t1) * 1e3; /* a sample, not a median */
  }
  double trunk_whole = median_ms(be, steps, ns, reps);
  cpu_seconds(&m1, &s1);
  double wall = graft_now() - t0;
  printf("classifier (%d Linear)                %10.3f\n", nl, head);
  printf("trunk: sum of layers %.2f ms, whole trunk %.2f ms; + classifier: %.1f images/s\n",
         total, trunk_whole, n / ((trunk_whole + head) * 1e-3));
  printf("per-layer NCHW would add %.2f ms of reorders (%.0f%% of the trunk)\n", total_extra,
         100.0 * total_extra / total);
  printf("other processes used %.2f cores while timing\n", (m1 - m0 - (s1 - s0)) / wall);
  return 0;
}
