/* bench: graft's side of the benchmarks (bench/torch_bench.py is PyTorch's,
 * bench/compare runs the two interleaved). Each workload validates before it
 * reports: the timed run's output is checked against a reference run. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/batches.h"
#include "apps/bench.h"
#include "apps/common.h"
#include "engine/backend.h"
#include "engine/base/clock.h"
#include "engine/base/rng.h"
#include "engine/devices.h"
#include "engine/net.h"
#include "io/batch.h"
#include "io/h5.h"
#include "io/listing.h"

static const char usage[] =
    "usage: bench WORKLOAD [options]\n"
    "Workloads (same sizes and JSON as bench/torch_bench.py):\n"
    "  infer            forward passes of random input tensors (no decoding)\n"
    "  classify         the whole classify path over --images (decode, preprocess, forward)\n"
    "  finetune-step    one training step of the trainable part, trunk forward included\n"
    "  finetune-epoch   epochs over --data with the tutorial recipe or --augment none\n"
    "                   (with the feature cache: first and later epochs reported apart)\n"
    "  finetune-eval    evaluation of cached feature rows, --rows per call (no trunk)\n"
    "  devices          what the CUDA backend finds: its module, the driver, the CUDA\n"
    "                   runtime, cuDNN and cuBLAS as loaded against as built, the GPU\n"
    "                   (exit 0 when cuda:0 is usable)\n"
    "\n"
    "  --arch A           alexnet | vgg16 (default alexnet)\n"
    "  --batch N          images per pass (default 1; 4 for finetune workloads)\n"
    "  --device D         auto | cpu | cuda[:N] (default cpu)\n"
    "  --precision P      fp32 | fp32-strict | bf16 (GPU) | fp16-weights (CPU inference)\n"
    "                     (default fp32)\n"
    "  --threads N        CPU threads, 0 = all cores (default 0)\n"
    "  --iterations N     timed iterations (default 10; epochs for finetune-epoch: 3)\n"
    "  --warmup N         untimed iterations first (default 2)\n"
    "  --num-classes K    classes of the random model (default 1000)\n"
    "  --images DIR       image folder for classify (JPEG and PNG files by their bytes,\n"
    "                     searched recursively, sorted)\n"
    "  --count N          images for classify (default 64)\n"
    "  --trainable T      classifier | head (default classifier)\n"
    "  --cached           finetune-step from cached feature rows: no trunk, as in a cached epoch\n"
    "  --resident         infer: time the model alone on a batch already in backend memory\n"
    "                     (as GPU frameworks are timed); upload and download timed apart\n"
    "  --rows N           rows per evaluation call for finetune-eval (default: the net's most)\n"
    "  --data DIR         ImageFolder root with train/ and val/ for finetune-epoch\n"
    "  --augment A        tutorial | none (default tutorial)\n"
    "  --seed N           random weights and inputs (default 0)\n"
    "  --weights FILE     infer, classify, finetune-epoch: this weights file (graft-weights,\n"
    "                     Keras, .pth or safetensors, of --arch) instead of random weights;\n"
    "                     a file without a classifier (a Keras trunk) gets a random one\n"
    "  --save-output FILE infer, classify: write the reference run's logits (and infer's input,\n"
    "                     classify's image paths) to FILE, HDF5, for other engines to check theirs\n"
    "  --json             one JSON object on stdout\n";

static double median(double *v, int n) { return graft_median(v, (size_t)n); }

graft_status bench_random_model(const opts *o, int num_classes, graft_model **out) {
  GRAFT_TRY(graft_model_create(o->arch, num_classes, out));
  graft_model *m = *out;
  graft_rng rng = {(uint64_t)o->seed, 0};
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    const graft_param *w = graft_arch_weight(&m->arch, graft_arch_layer_of(&m->arch, p));
    size_t fan_in = w->count / (size_t)w->dims[0];
    double bound = 1.0 / sqrt((double)fan_in);
    float *v = graft_model_param(m, p);
    for (size_t j = 0; j < p->count; j++) v[j] = (float)((graft_rng_double(&rng) * 2 - 1) * bound);
  }
  return GRAFT_OK;
}

/* --weights FILE, or a random model; the file must be of --arch. A file
 * without a classifier (a Keras trunk) gets a random one: the timings do not
 * depend on its values. */
static graft_status bench_model(const opts *o, int num_classes, graft_model **out) {
  if (!o->weights) return bench_random_model(o, num_classes, out);
  graft_status s = graft_model_load(o->weights, out);
  if (s != GRAFT_OK) return graft__context(s, "%s", o->weights);
  graft_model *m = *out, *r = NULL;
  if (strcmp(m->arch.name, o->arch) != 0)
    s = graft__fail(GRAFT_EINVAL, "%s holds %s, not --arch %s", o->weights, m->arch.name,
                    o->arch);
  else if (m->no_classifier && (s = bench_random_model(o, m->arch.num_classes, &r)) == GRAFT_OK)
    memcpy(m->params + m->arch.classifier_offset, r->params + r->arch.classifier_offset,
           (m->arch.n_floats - m->arch.classifier_offset) * sizeof(float));
  graft_model_free(r);
  if (s != GRAFT_OK) {
    graft_model_free(m);
    *out = NULL;
  }
  return s;
}

/* --save-output: the reference run's logits [n, k], and infer's input
 * [n, 3, 224, 224] or classify's image paths, for bench/compare's other
 * engines to validate theirs against. */
static graft_status save_output(const opts *o, const float *logits, int n, int k,
                                const float *input, char *const *paths) {
  graft_h5w *w;
  GRAFT_TRY(graft_h5w_create(o->save_output, &w));
  int64_t ldims[2] = {n, k}, idims[4] = {n, 3, 224, 224};
  graft_status s = graft_h5w_attr_string(w, "workload", o->workload);
  if (s == GRAFT_OK) s = graft_h5w_attr_string(w, "arch", o->arch);
  if (s == GRAFT_OK) s = graft_h5w_f32(w, "logits", 2, ldims, logits);
  if (s == GRAFT_OK && input) s = graft_h5w_f32(w, "input", 4, idims, input);
  if (s == GRAFT_OK && paths) s = graft_h5w_attr_strings(w, "paths", paths, n);
  if (s != GRAFT_OK) {
    graft_h5w_abort(w);
    return s;
  }
  return graft_h5w_commit(w);
}

static double rel_error(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- infer ---- */
/* The JSON string literal of s (quoted, escaped) into out. */
static void json_quote(char *out, size_t cap, const char *s) {
  size_t at = 0;
  if (cap < 3) return;
  out[at++] = '"';
  for (; *s && at + 3 < cap; s++)
    if (*s == '"' || *s == '\\') {
      out[at++] = '\\';
      out[at++] = *s;
    } else if ((unsigned char)*s >= 0x20) {
      out[at++] = *s;
    }
  out[at++] = '"';
  out[at] = '\0';
}

/* --resident: the forward alone on an input already in backend memory, each
 * iteration waiting for the backend; uploads and downloads timed apart. */
static graft_status infer_resident(const opts *o, graft_net *net, const float *x, float *probs,
                                   float *logits, result *r) {
  int b = (int)o->batch;
  double *up = calloc((size_t)r->n, sizeof *up), *down = calloc((size_t)r->n, sizeof *down);
  graft_status s = up && down ? GRAFT_OK : graft__fail(GRAFT_ENOMEM, "out of memory");
  for (int i = 0; s == GRAFT_OK && i < r->n; i++) {
    double t = graft_now();
    s = graft_net_set_input(net, b, x);
    up[i] = graft_now() - t;
  }
  for (int i = 0; s == GRAFT_OK && i < o->warmup; i++) s = graft_net_forward(net, b);
  for (int i = 0; s == GRAFT_OK && i < r->n; i++) {
    double t = graft_now();
    s = graft_net_forward(net, b);
    r->times[i] = graft_now() - t;
  }
  for (int i = 0; s == GRAFT_OK && i < r->n; i++) {
    double t = graft_now();
    s = graft_net_get_output(net, b, probs, logits);
    down[i] = graft_now() - t;
  }
  if (s == GRAFT_OK) {
    char describe[3000], quoted[3200];
    json_quote(quoted, sizeof quoted, graft_net_describe(net, describe, sizeof describe));
    snprintf(r->extra, sizeof r->extra,
             ", \"resident\": true, \"upload_s\": %.6g, \"download_s\": %.6g, \"trunk\": %s",
             median(up, r->n), median(down, r->n), quoted);
  }
  free(up);
  free(down);
  return s;
}

static graft_status bench_infer(const opts *o, graft_backend *be, result *r) {
  graft_model *m;
  GRAFT_TRY(bench_model(o, (int)o->num_classes, &m));
  int b = (int)o->batch, k = m->arch.num_classes;
  size_t in = (size_t)b * 3 * 224 * 224;
  float *x = malloc(in * sizeof *x), *ref = malloc((size_t)b * k * sizeof *ref);
  float *probs = malloc((size_t)b * k * sizeof *probs), *logits = malloc((size_t)b * k * 4);
  graft_net *net = NULL;
  graft_status s = x && ref && probs && logits ? GRAFT_OK : graft__fail(GRAFT_ENOMEM, "out of memory");
  graft_rng rng = {(uint64_t)o->seed + 1, 0};
  for (size_t i = 0; s == GRAFT_OK && i < in; i++) x[i] = (float)(graft_rng_double(&rng) * 2 - 1);
  if (s == GRAFT_OK) s = graft_net_create(be, &m->arch, m->params, b, 224, 224, &net);
  if (s == GRAFT_OK) s = graft_net_predict(net, b, x, probs, ref);
  if (s == GRAFT_OK && o->save_output) s = save_output(o, ref, b, k, x, NULL);
  if (o->resident) {
    if (s == GRAFT_OK) s = infer_resident(o, net, x, probs, logits, r);
  } else {
    for (int i = 0; s == GRAFT_OK && i < o->warmup; i++)
      s = graft_net_predict(net, b, x, probs, NULL);
    for (int i = 0; s == GRAFT_OK && i < r->n; i++) {
      double t = graft_now();
      s = graft_net_predict(net, b, x, probs, logits);
      r->times[i] = graft_now() - t;
    }
  }
  if (s == GRAFT_OK) {
    r->images = b;
    r->flops = graft_arch_flops(&m->arch, 224, 224) * b;
    r->rel_error = rel_error(logits, ref, (size_t)b * k);
    r->validated = r->rel_error <= 1e-5;
  }
  graft_net_destroy(net);
  free(x);
  free(ref);
  free(probs);
  free(logits);
  graft_model_free(m);
  return s;
}

/* ---- classify ---- */
/* Each image's best class from app_classify; the first image that failed. */
typedef struct best_of {
  int *top;
  char *const *paths;
  graft_status s;
} best_of;

static void keep_best(void *user, size_t item, graft_status status, const char *error,
                      const int32_t *top, const float *p) {
  best_of *b = user;
  (void)p;
  if (status == GRAFT_OK)
    b->top[item] = top[0];
  else if (b->s == GRAFT_OK)
    b->s = graft__fail(status, "%s: %s", b->paths[item], error);
}

/* The classify program's path, apps/batches.c: decode + preprocess a batch
 * on all cores, then forward, batch after batch; the reference run first,
 * untimed, keeping the logits when they are to be saved. */
static graft_status classify_runs(const opts *o, app_classifier *cl, char *const *paths, int n,
                                  int k, int *ref, result *r) {
  float *logits = o->save_output ? malloc((size_t)n * k * sizeof *logits) : NULL;
  best_of b = {malloc((size_t)n * sizeof *b.top), paths, GRAFT_OK};
  graft_status s = b.top && (!o->save_output || logits) ? GRAFT_OK
                                                        : graft__fail(GRAFT_ENOMEM, "out of memory");
  for (int it = -(int)o->warmup - 1; s == GRAFT_OK && it < r->n; it++) {
    const bool reference = it == -(int)o->warmup - 1;
    double t = graft_now();
    if (app_classify(NULL, cl, paths, (size_t)n, reference ? logits : NULL, keep_best, &b) < 0)
      s = GRAFT_EIO; /* said, the detail kept */
    if (s == GRAFT_OK) s = b.s;
    if (it >= 0) r->times[it] = graft_now() - t;
    if (reference) memcpy(ref, b.top, (size_t)n * sizeof *ref);
    if (s == GRAFT_OK && reference && logits) s = save_output(o, logits, n, k, NULL, paths);
  }
  if (s == GRAFT_OK) {
    r->images = n;
    r->validated = memcmp(ref, b.top, (size_t)n * sizeof *ref) == 0;
  }
  free(logits);
  free(b.top);
  return s;
}

static graft_status bench_classify(const opts *o, graft_backend *be, result *r) {
  if (!o->images) return graft__fail(GRAFT_EINVAL, "classify needs --images DIR");
  /* The first --count JPEG and PNG files under the folder, in name order. */
  graft_strlist files = {0};
  int n = 0;
  if (graft_list_images(o->images, GRAFT_IMAGES_DECODABLE, true, &files, &n) != GRAFT_OK) n = 0;
  if (n > o->count) n = (int)o->count;
  graft_model *m = NULL;
  app_classifier *cl = NULL;
  int *ref = NULL;
  graft_status s = n ? GRAFT_OK : graft__fail(GRAFT_ENOENT, "no JPEG or PNG files in %s", o->images);
  if (s == GRAFT_OK) s = bench_model(o, (int)o->num_classes, &m);
  if (s == GRAFT_OK && !(ref = malloc((size_t)n * sizeof *ref)))
    s = graft__fail(GRAFT_ENOMEM, "out of memory");
  if (s == GRAFT_OK) {
    app_classifier_options co = {m, be, (int)o->batch, 1, {0, 0, 1}, o->weights};
    s = app_classifier_create(&co, &cl);
  }
  if (s == GRAFT_OK) s = classify_runs(o, cl, files.v, n, m->arch.num_classes, ref, r);
  app_classifier_free(cl);
  graft_model_free(m);
  graft_strlist_clear(&files);
  free(ref);
  return s;
}

static void report(const opts *o, graft_backend *be, result *r) {
  double lo = INFINITY, hi = 0;
  for (int i = 0; i < r->n; i++) {
    lo = fmin(lo, r->times[i]);
    hi = fmax(hi, r->times[i]);
  }
  double med = median(r->times, r->n);
  double ips = r->images / med;
  if (o->json) {
    printf("{\"engine\": \"graft\", \"version\": \"%s\", \"workload\": \"%s\", \"arch\": \"%s\", "
           "\"batch\": %lld, \"device\": \"%s\", \"backend\": ",
           GRAFT_VERSION, o->workload, o->arch, o->batch, graft_backend_name(be));
    app_json_string(stdout, graft_backend_describe(be));
    printf(", \"precision\": \"%s\", \"threads\": %lld, \"iterations\": %d, \"median_s\": %.6g, "
           "\"min_s\": %.6g, \"max_s\": %.6g, \"images\": %d, \"images_per_s\": %.6g",
           o->precision, o->threads, r->n, med, lo, hi, r->images, ips);
    if (r->flops > 0) printf(", \"gflops\": %.6g", r->flops / med / 1e9);
    printf(", \"validated\": %s", r->validated ? "true" : "false");
    if (r->rel_error >= 0) printf(", \"max_rel_error\": %.3g", r->rel_error);
    printf("%s}\n", r->extra);
  } else {
    printf("%s %s batch %lld %s: median %.4f s (%.4f-%.4f), %.2f img/s", o->workload, o->arch,
           o->batch, graft_backend_describe(be), med, lo, hi, ips);
    if (r->flops > 0) printf(", %.1f GFLOP/s", r->flops / med / 1e9);
    printf("%s\n", r->validated ? "" : "  NOT VALIDATED");
  }
}

/* ---- devices ---- */
static int devices(const opts *o) {
  static char env[4096];
  graft_status s = graft_cuda_environment(env, sizeof env);
  fputs(env, stdout);
  if (s != GRAFT_OK) return APP_FAILED;
  graft_backend *be;
  graft_backend_options bo;
  const char *dev = strcmp(o->device, "cpu") == 0 ? "cuda:0" : o->device;
  if (!app_backend_options(dev, 0, NULL, &bo)) return APP_USAGE;
  s = graft_backend_create(&bo, &be, NULL);
  if (s != GRAFT_OK) {
    printf("%s: unusable: %s\n", dev, graft_detail());
    return APP_FAILED;
  }
  printf("%s: %s\n", dev, graft_backend_describe(be));
  graft_backend_destroy(be);
  return APP_OK;
}

/* The workload o->workload on its backend, timed and reported; the exit status. */
static int run_workload(opts *o) {
  bool finetune = strncmp(o->workload, "finetune", 8) == 0;
  if (o->batch < 0) o->batch = finetune ? 4 : 1;
  if (o->iterations < 0) o->iterations = strcmp(o->workload, "finetune-epoch") == 0 ? 3 : 10;

  graft_backend *be = NULL;
  if (!app_backend_options(o->device, o->threads, o->precision, &o->backend) ||
      !app_cache_memory_mb(&o->cache_memory_mb) || !app_backend_create(&o->backend, &be))
    return APP_USAGE;
  graft_status s = GRAFT_OK;
  result r = {calloc((size_t)o->iterations, sizeof(double)), (int)o->iterations, 0, 0, false, -1, ""};
  if (!r.times) s = graft__fail(GRAFT_ENOMEM, "out of memory");
  else if (strcmp(o->workload, "infer") == 0) s = bench_infer(o, be, &r);
  else if (strcmp(o->workload, "classify") == 0) s = bench_classify(o, be, &r);
  else if (strcmp(o->workload, "finetune-step") == 0) s = bench_step(o, be, &r);
  else if (strcmp(o->workload, "finetune-eval") == 0) s = bench_eval(o, be, &r);
  else if (strcmp(o->workload, "finetune-epoch") == 0) {
    s = bench_epoch(o, &r);
    r.images = bench_count_images(o->data);
  } else {
    app_error(NULL, "unknown workload \"%s\" (see --help)", o->workload);
    graft_backend_destroy(be);
    free(r.times);
    return APP_USAGE;
  }
  int rc = APP_OK;
  if (s != GRAFT_OK) {
    app_status_error(o->workload, s);
    rc = APP_FAILED;
  } else {
    report(o, be, &r);
    if (!r.validated) rc = APP_FAILED;
  }
  graft_backend_destroy(be);
  free(r.times);
  return rc;
}

int main(int argc, char **argv) {
  app_init("bench");
  opts o = {NULL, "alexnet", "cpu", "fp32", NULL, NULL, "tutorial", "classifier", NULL, NULL,
            -1, 0, -1, 2, 1000, 64, 0, 0, false, false, false, {0}, -1};
  static const struct option longs[] = {
      {"arch", 1, 0, 'a'},       {"batch", 1, 0, 'b'},      {"device", 1, 0, 'd'},
      {"precision", 1, 0, 'p'},  {"threads", 1, 0, 't'},    {"iterations", 1, 0, 'i'},
      {"warmup", 1, 0, 'w'},     {"num-classes", 1, 0, 'k'}, {"images", 1, 0, 'I'},
      {"count", 1, 0, 'c'},      {"trainable", 1, 0, 'T'},  {"data", 1, 0, 'D'},
      {"augment", 1, 0, 'A'},    {"seed", 1, 0, 's'},       {"json", 0, 0, 'J'},
      {"help", 0, 0, 'h'},       {"version", 0, 0, 'V'},    {"cached", 0, 0, 'C'},
      {"rows", 1, 0, 'R'},       {"resident", 0, 0, 'E'},   {"weights", 1, 0, 'W'},
      {"save-output", 1, 0, 'O'}, {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  while ((ch = getopt_long(argc, argv, "hV", longs, NULL)) != -1) {
    long long *num = NULL, lo = 0, hi = 1 << 30;
    switch (ch) {
      case 'a': o.arch = optarg; break;
      case 'd': o.device = optarg; break;
      case 'p': o.precision = optarg; break;
      case 'I': o.images = optarg; break;
      case 'T': o.trainable = optarg; break;
      case 'D': o.data = optarg; break;
      case 'A': o.augment = optarg; break;
      case 'W': o.weights = optarg; break;
      case 'O': o.save_output = optarg; break;
      case 'J': o.json = true; break;
      case 'C': o.cached = true; break;
      case 'E': o.resident = true; break;
      case 'R': num = &o.rows, lo = 1, hi = 4096; break;
      case 'b': num = &o.batch, lo = 1, hi = 4096; break;
      case 't': num = &o.threads; break;
      case 'i': num = &o.iterations, lo = 1, hi = 100000; break;
      case 'w': num = &o.warmup; break;
      case 'k': num = &o.num_classes, lo = 1, hi = 100000; break;
      case 'c': num = &o.count, lo = 1, hi = 100000; break;
      case 's': num = &o.seed; break;
      case 'h': fputs(usage, stdout); return APP_OK;
      case 'V': printf("bench (graft) %s\n", GRAFT_VERSION); return APP_OK;
      default: app_error(NULL, "unknown option or missing value: %s (see --help)", argv[optind - 1]); return APP_USAGE;
    }
    if (num && !app_parse_int(optarg, lo, hi, num)) {
      app_error(NULL, "%s: invalid value \"%s\"", argv[optind - 2], optarg);
      return APP_USAGE;
    }
  }
  if (optind != argc - 1) {
    app_error(NULL, "give one workload: infer, classify, finetune-step, finetune-eval, "
                    "finetune-epoch or devices");
    return APP_USAGE;
  }
  o.workload = argv[optind];
  if (strcmp(o.workload, "devices") == 0) return devices(&o);
  return run_workload(&o);
}
