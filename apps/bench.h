/* bench's parts (apps/bench.c: options, infer, classify, the report;
 * apps/bench_train.c: the finetune workloads). */
#ifndef GRAFT_APPS_BENCH_H
#define GRAFT_APPS_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/base/clock.h"
#include "models/model.h"

typedef struct opts {
  const char *workload, *arch, *device, *precision, *images, *data, *augment, *trainable;
  const char *weights, *save_output;
  long long batch, threads, iterations, warmup, num_classes, count, seed, rows;
  bool json, cached, resident;
  graft_backend_options backend; /* from the above and the environment */
  int64_t cache_memory_mb;       /* GRAFT_CACHE_MEMORY_MB, for finetune-epoch */
} opts;

typedef struct result {
  double *times;
  int n;
  int images;        /* per timed iteration */
  double flops;      /* per timed iteration, 0 when not meaningful */
  bool validated;
  double rel_error;  /* reference vs timed output, -1 when not applicable */
  char extra[4096];  /* more JSON members, each starting with ", " */
} result;


/* A model with PyTorch's default initialisation scale: U(+-1/sqrt(fan_in)). */
graft_status bench_random_model(const opts *o, int num_classes, graft_model **out);

/* The workloads of apps/bench_train.c. */
graft_status bench_step(const opts *o, graft_backend *be, result *r);
graft_status bench_eval(const opts *o, graft_backend *be, result *r);
graft_status bench_epoch(const opts *o, result *r);
/* Train + val images of an ImageFolder that graft decodes (for img/s). */
int bench_count_images(const char *data);

#endif
