/* classify: top-k classes of images with a graft-weights or Keras model: the
 * flags, the usage and the output; the inputs, the batches themselves and
 * their sharing over an MPI job's ranks are apps/batches.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/batches.h"
#include "apps/common.h"
#include "engine/backend.h"
#include "io/image.h"
#include "io/strlist.h"
#include "models/model.h"

static const char usage[] =
    "usage: classify [options] IMAGE|DIR|- ...\n"
    "Print the top classes of each image (JPEG or PNG) with a graft-weights model\n"
    "or a Keras VGG16 weights file with its top.\n"
    "A directory means its images (sorted, not recursive); - reads paths from stdin.\n"
    "\n"
    "  -w, --weights FILE   weights file (graft-weights or Keras HDF5, PyTorch .pth or\n"
    "                       safetensors; or env GRAFT_WEIGHTS)\n"
    "  -k, --topk K         classes to show per image (default 5, at most num_classes)\n"
    "  -l, --labels FILE    one class name per line; overrides the file's class_names\n"
    "  -d, --device D       auto | cpu | cuda[:N] (default auto)\n"
    "  -b, --batch N        images per forward pass (default 8)\n"
    "  -t, --threads N      CPU threads, 0 = all cores (default 0)\n"
    "      --precision P    fp32 (TF32 convolutions on GPUs, as PyTorch) | fp32-strict | bf16 (GPU)\n"
    "                       | fp16-weights (CPU: the classifier's weights in fp16)\n"
    "      --max-pixels N   refuse images larger than N pixels (default 64000000)\n"
    "      --json           one JSON object per image per line\n"
    "  -h, --help           this text\n"
    "  -V, --version        version\n"
    "\n"
    "Exit status: 0 every image classified, 1 some image failed (the others are\n"
    "still printed), 2 usage or model error.\n";

typedef struct options {
  const char *weights, *labels, *device, *precision;
  long long topk, batch, threads, max_pixels;
  bool json;
} options;

static void print_failure(const options *o, const char *path, const char *error) {
  app_error(path, "%s", error);
  if (o->json) {
    fputs("{\"path\": ", stdout);
    app_json_string(stdout, path);
    fputs(", \"error\": ", stdout);
    app_json_string(stdout, error);
    fputs("}\n", stdout);
  }
}

static void print_result(const options *o, char **labels, const char *path, const int32_t *top,
                         const float *p) {
  if (o->json) {
    fputs("{\"path\": ", stdout);
    app_json_string(stdout, path);
    fputs(", \"top\": [", stdout);
  } else {
    printf("%s\n", path);
  }
  for (int t = 0; t < (int)o->topk; t++) {
    int c = top[t];
    char idx[16];
    snprintf(idx, sizeof idx, "%d", c);
    const char *label = labels ? labels[c] : idx;
    if (o->json) {
      printf("%s{\"index\": %d, \"label\": ", t ? ", " : "", c);
      app_json_string(stdout, label);
      printf(", \"prob\": %.6f}", p[t]);
    } else {
      printf("  %.4f  %s\n", p[t], label);
    }
  }
  if (o->json) fputs("]}\n", stdout);
}

/* One label per line (trailing CR/LF stripped); the count must match the model. */
static char **read_labels(const char *path, int k) {
  FILE *f = fopen(path, "r");
  if (!f) {
    app_error(path, "cannot open: %s", strerror(errno));
    return NULL;
  }
  char **v = calloc((size_t)k, sizeof *v);
  char line[1024];
  int n = 0;
  bool bad = v == NULL;
  while (!bad && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (n == k) {
      n++;
      break;
    }
    if (!(v[n++] = strdup(line))) bad = true;
  }
  fclose(f);
  if (bad || n != k) {
    if (!bad) app_error(path, "%s%d labels for a model with %d classes", n > k ? "more than " : "",
                        n > k ? k : n, k);
    for (int i = 0; v && i < k; i++) free(v[i]);
    free(v);
    return NULL;
  }
  return v;
}

/* The flags into o (optind after them): -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, bool speaker, options *o) {
  static const struct option longs[] = {
      {"weights", required_argument, 0, 'w'}, {"topk", required_argument, 0, 'k'},
      {"labels", required_argument, 0, 'l'},  {"device", required_argument, 0, 'd'},
      {"batch", required_argument, 0, 'b'},   {"threads", required_argument, 0, 't'},
      {"max-pixels", required_argument, 0, 'P'}, {"json", no_argument, 0, 'J'},
      {"precision", required_argument, 0, 'R'},
      {"help", no_argument, 0, 'h'},          {"version", no_argument, 0, 'V'},
      {0, 0, 0, 0}};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":w:k:l:d:b:t:hV", longs, NULL)) != -1) {
    switch (c) {
      case 'w': o->weights = optarg; break;
      case 'l': o->labels = optarg; break;
      case 'd': o->device = optarg; break;
      case 'J': o->json = true; break;
      case 'R': o->precision = optarg; break;
      case 'k':
        if (!app_parse_int(optarg, 1, 1000000, &o->topk)) goto bad_value;
        break;
      case 'b':
        if (!app_parse_int(optarg, 1, 256, &o->batch)) goto bad_value;
        break;
      case 't':
        if (!app_parse_int(optarg, 0, 1024, &o->threads)) goto bad_value;
        break;
      case 'P':
        if (!app_parse_int(optarg, 1, 1000000000000LL, &o->max_pixels)) goto bad_value;
        break;
      case 'h':
        if (speaker) fputs(usage, stdout);
        return APP_OK;
      case 'V':
        if (speaker) printf("classify (graft) %s\n", GRAFT_VERSION);
        return APP_OK;
      case ':': app_error(NULL, "option %s needs a value (see --help)", argv[optind - 1]); return APP_USAGE;
      default: app_error(NULL, "unknown option %s (see --help)", argv[optind - 1]); return APP_USAGE;
    }
    continue;
  bad_value:
    for (const struct option *l = longs; l->name; l++)
      if (l->val == c) app_error(NULL, "--%s: invalid value \"%s\" (see --help)", l->name, optarg);
    return APP_USAGE;
  }
  if (optind >= argc) {
    app_error(NULL, "no images given (see --help)");
    return APP_USAGE;
  }
  if (!o->weights || !*o->weights) {
    app_error(NULL, "no weights: give -w FILE or set GRAFT_WEIGHTS");
    return APP_USAGE;
  }
  return -1;
}

/* What a run holds: the model, its labels, the backend, the classifier. */
typedef struct opened {
  graft_model *m;
  char **labels; /* -l's, or NULL */
  graft_backend *be;
  app_classifier *cl;
} opened;

/* The labels, the backend and the classifier for the loaded model. */
static graft_status open_rest(options *o, opened *x) {
  const int k = x->m->arch.num_classes;
  if (o->topk < 0) o->topk = k < 5 ? k : 5;
  if (o->topk > k || o->topk > 64) {
    app_error(NULL, "--topk %lld: the model has %d classes (at most %d can be shown)", o->topk, k,
              k < 64 ? k : 64);
    return graft__fail(GRAFT_EINVAL, "--topk %lld: the model has %d classes", o->topk, k);
  }
  if (o->labels && !(x->labels = read_labels(o->labels, k)))
    return graft__fail(GRAFT_EINVAL, "%s: cannot use these labels", o->labels);
  graft_backend_options bo;
  if (!app_backend_options(o->device, app_threads(o->threads), o->precision, &bo) ||
      !app_backend_create(&bo, &x->be))
    return graft__fail(GRAFT_EINVAL, "no backend (%s)", o->device);
  app_classifier_options co = {x->m, x->be, (int)o->batch, (int)o->topk,
                               {(uint64_t)o->max_pixels, 0, 1}, o->weights};
  graft_status s = app_classifier_create(&co, &x->cl);
  if (s != GRAFT_OK) app_status_error(NULL, s);
  return s;
}

/* The model and the rest on every rank; a rank that fails is reported by
 * rank 0, once. false when some rank failed (said). */
static bool open_all(graft_comm *comm, options *o, opened *x) {
  graft_status s = graft_model_load(o->weights, &x->m);
  if (s != GRAFT_OK) {
    app_status_error(o->weights, s);
    s = graft__context(s, "%s", o->weights); /* as rank 0 reports another rank's */
  } else if (x->m->no_classifier) {
    app_error(o->weights, "no classifier: fine-tune it first (the file holds the trunk only; "
                          "finetune's best.h5 has one)");
    s = graft__fail(GRAFT_EINVAL, "%s: no classifier", o->weights);
  } else {
    s = open_rest(o, x);
  }
  if (graft_comm_agree(comm, s) != GRAFT_OK) {
    if (s == GRAFT_OK) app_error(NULL, "%s", graft_detail());
    return false;
  }
  return true;
}

static void close_all(opened *x) {
  app_classifier_free(x->cl);
  if (x->be) graft_backend_destroy(x->be);
  if (x->labels)
    for (int i = 0; i < x->m->arch.num_classes; i++) free(x->labels[i]);
  free(x->labels);
  graft_model_free(x->m);
}

/* The output: each image's result as app_classify hands it out, in order. */
typedef struct printer {
  const options *o;
  char **labels;
  char *const *paths;
} printer;

static void on_result(void *user, size_t item, graft_status status, const char *error,
                      const int32_t *top, const float *p) {
  const printer *pr = user;
  if (status != GRAFT_OK)
    print_failure(pr->o, pr->paths[item], error);
  else
    print_result(pr->o, pr->labels, pr->paths[item], top, p);
}

static int classify(graft_comm *comm, int argc, char **argv) {
  options o = {getenv("GRAFT_WEIGHTS"), NULL, "auto", "fp32", -1, 8, 0,
               (long long)GRAFT_DEFAULT_MAX_PIXELS, false};
  int rc = parse_options(argc, argv, graft_comm_rank(comm) == 0, &o);
  if (rc >= 0) return rc;
  rc = APP_USAGE;
  opened x = {0};
  graft_strlist paths = {0};
  if (open_all(comm, &o, &x)) {
    int failed = app_classify_inputs(comm, argc, argv, optind, &paths);
    printer pr = {&o, x.labels ? x.labels : x.m->class_names, paths.v};
    int f = failed < 0 ? -1 : app_classify(comm, x.cl, paths.v, paths.n, NULL, on_result, &pr);
    if (f >= 0) rc = failed + f ? APP_FAILED : APP_OK;
  }
  graft_strlist_clear(&paths);
  close_all(&x);
  return rc;
}

int main(int argc, char **argv) {
  app_init("classify");
  graft_comm *comm;
  if (!app_comm_open(&comm)) return APP_USAGE;
  return app_comm_close(comm, classify(comm, argc, argv));
}
