/* classify: top-k classes of images with a graft-weights or Keras model. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/common.h"
#include "engine/backend.h"
#include "engine/net.h"
#include "io/batch.h"
#include "io/image.h"
#include "io/preprocess.h"
#include "io/listing.h"
#include "io/strlist.h"
#include "models/model.h"

static const char usage[] =
    "usage: classify [options] IMAGE|DIR|- ...\n"
    "Print the top classes of each image (JPEG or PNG) with a graft-weights model\n"
    "or a Keras VGG16 weights file with its top.\n"
    "A directory means its images (sorted, not recursive); - reads paths from stdin.\n"
    "\n"
    "  -w, --weights FILE   weights file (graft-weights or Keras HDF5; or env GRAFT_WEIGHTS)\n"
    "  -k, --topk K         classes to show per image (default 5, at most num_classes)\n"
    "  -l, --labels FILE    one class name per line; overrides the file's class_names\n"
    "  -d, --device D       auto | cpu | cuda[:N] (default auto)\n"
    "  -b, --batch N        images per forward pass (default 8)\n"
    "  -t, --threads N      CPU threads, 0 = all cores (default 0)\n"
    "      --precision P    fp32 (TF32 convolutions on GPUs, as PyTorch) | fp32-strict\n"
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

/* ---- one batch ---- */
typedef struct item {
  const char *path;
  graft_file_result r;
} item;

static void print_failure(const options *o, const item *it) {
  app_error(it->path, "%s", it->r.error);
  if (o->json) {
    fputs("{\"path\": ", stdout);
    app_json_string(stdout, it->path);
    fputs(", \"error\": ", stdout);
    app_json_string(stdout, it->r.error);
    fputs("}\n", stdout);
  }
}

static void print_result(const options *o, const graft_model *m, char **labels, const char *path,
                         const float *probs) {
  int k = m->arch.num_classes, top[64];
  int want = (int)o->topk;
  bool *taken = calloc((size_t)k, sizeof *taken);
  if (!taken) return;
  for (int t = 0; t < want; t++) { /* selection: k is small next to the forward pass */
    int best = -1;
    for (int c = 0; c < k; c++)
      if (!taken[c] && (best < 0 || probs[c] > probs[best])) best = c;
    top[t] = best;
    taken[best] = true;
  }
  free(taken);
  if (o->json) {
    fputs("{\"path\": ", stdout);
    app_json_string(stdout, path);
    fputs(", \"top\": [", stdout);
  } else {
    printf("%s\n", path);
  }
  for (int t = 0; t < want; t++) {
    int c = top[t];
    char idx[16];
    snprintf(idx, sizeof idx, "%d", c);
    const char *label = labels ? labels[c] : idx;
    if (o->json) {
      printf("%s{\"index\": %d, \"label\": ", t ? ", " : "", c);
      app_json_string(stdout, label);
      printf(", \"prob\": %.6f}", probs[c]);
    } else {
      printf("  %.4f  %s\n", probs[c], label);
    }
  }
  if (o->json) fputs("]}\n", stdout);
}

static int run_batches(const options *o, const graft_model *m, char **labels, graft_net *net,
                       const graft_strlist *paths) {
  const int crop = m->pre.crop, b = (int)o->batch, k = m->arch.num_classes;
  const size_t per = (size_t)3 * crop * crop;
  float *input = malloc((size_t)b * per * sizeof *input);
  float *probs = malloc((size_t)b * k * sizeof *probs);
  item *items = calloc((size_t)b, sizeof *items);
  int slot[256];
  int failed = 0;
  if (!input || !probs || !items) {
    app_error(NULL, "out of memory for a batch of %d images", b);
    free(input);
    free(probs);
    free(items);
    return -1;
  }
  graft_decode_opts dec = {(uint64_t)o->max_pixels, 0, 1};
  for (size_t start = 0; start < paths->n; start += (size_t)b) {
    int n = (int)(paths->n - start < (size_t)b ? paths->n - start : (size_t)b);
    graft_file_result results[256];
    graft_preprocess_files(paths->v + start, n, &m->pre, &dec, input, results);
    for (int i = 0; i < n; i++) {
      items[i].path = paths->v[start + (size_t)i];
      items[i].r = results[i];
      graft_file_result *r = &items[i].r;
      if (r->status == GRAFT_ELIMIT && strstr(r->error, "-pixel limit")) { /* the option to change */
        size_t used = strlen(r->error);
        snprintf(r->error + used, sizeof r->error - used, "; --max-pixels raises it");
      }
    }
    int ok = 0;
    for (int i = 0; i < n; i++) {
      if (items[i].r.status != GRAFT_OK) continue;
      if (ok != i) memmove(input + (size_t)ok * per, input + (size_t)i * per, per * sizeof *input);
      slot[i] = ok++;
    }
    if (ok > 0) {
      graft_status s = graft_net_predict(net, ok, input, probs, NULL);
      if (s != GRAFT_OK) {
        app_status_error(graft_backend_name(graft_net_backend(net)), s);
        free(input);
        free(probs);
        free(items);
        return -1;
      }
    }
    for (int i = 0; i < n; i++) {
      if (items[i].r.status != GRAFT_OK) {
        print_failure(o, &items[i]);
        failed++;
      } else {
        print_result(o, m, labels, items[i].path, probs + (size_t)slot[i] * k);
      }
    }
    fflush(stdout);
  }
  free(input);
  free(probs);
  free(items);
  return failed;
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

int main(int argc, char **argv) {
  app_init("classify");
  options o = {getenv("GRAFT_WEIGHTS"), NULL, "auto", "fp32", -1, 8, 0,
               (long long)GRAFT_DEFAULT_MAX_PIXELS, false};
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
      case 'w': o.weights = optarg; break;
      case 'l': o.labels = optarg; break;
      case 'd': o.device = optarg; break;
      case 'J': o.json = true; break;
      case 'R': o.precision = optarg; break;
      case 'k':
        if (!app_parse_int(optarg, 1, 1000000, &o.topk)) goto bad_value;
        break;
      case 'b':
        if (!app_parse_int(optarg, 1, 256, &o.batch)) goto bad_value;
        break;
      case 't':
        if (!app_parse_int(optarg, 0, 1024, &o.threads)) goto bad_value;
        break;
      case 'P':
        if (!app_parse_int(optarg, 1, 1000000000000LL, &o.max_pixels)) goto bad_value;
        break;
      case 'h': fputs(usage, stdout); return APP_OK;
      case 'V': printf("classify (graft) %s\n", GRAFT_VERSION); return APP_OK;
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
  if (!o.weights || !*o.weights) {
    app_error(NULL, "no weights: give -w FILE or set GRAFT_WEIGHTS");
    return APP_USAGE;
  }

  int rc = APP_USAGE, failed = 0;
  graft_model *m = NULL;
  graft_backend *be = NULL;
  graft_net *net = NULL;
  char **labels = NULL;
  graft_strlist paths = {0};
  graft_status s = graft_model_load(o.weights, &m);
  if (s != GRAFT_OK) {
    app_status_error(o.weights, s);
    goto done;
  }
  if (m->no_classifier) {
    app_error(o.weights, "no classifier: fine-tune it first (the file holds the trunk only; "
                         "finetune's best.h5 has one)");
    goto done;
  }
  int k = m->arch.num_classes;
  if (o.topk < 0) o.topk = k < 5 ? k : 5;
  if (o.topk > k || o.topk > 64) {
    app_error(NULL, "--topk %lld: the model has %d classes (at most %d can be shown)", o.topk, k,
              k < 64 ? k : 64);
    goto done;
  }
  if (o.labels) {
    if (!(labels = read_labels(o.labels, k))) goto done;
  }
  graft_backend_options bo;
  if (!app_backend_options(o.device, o.threads, o.precision, &bo) ||
      !app_backend_create(&bo, &be))
    goto done;

  /* Gather the inputs; unreadable ones are reported in order with the rest. */
  for (int i = optind; i < argc; i++) {
    const char *a = argv[i];
    struct stat st;
    if (strcmp(a, "-") == 0) {
      char line[4096];
      while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] && graft_strlist_push(&paths, line) != 0) goto oom;
      }
    } else if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
      int found = 0;
      s = graft_list_images(a, GRAFT_IMAGES_ANY, false, &paths, &found);
      if (s == GRAFT_ENOMEM) goto oom;
      if (s != GRAFT_OK) {
        app_error(a, "cannot read directory: %s", graft_detail());
        failed++;
      } else if (found == 0) {
        app_error(a, "no images in this directory");
        failed++;
      }
    } else if (graft_strlist_push(&paths, a) != 0) {
      goto oom;
    }
  }
  if (paths.n > 0) {
    int b = (int)(paths.n < (size_t)o.batch ? paths.n : (size_t)o.batch);
    o.batch = b;
    s = graft_net_create(be, &m->arch, m->params, b, m->pre.crop, m->pre.crop, &net);
    if (s == GRAFT_ELIMIT || s == GRAFT_ENOMEM) { /* the option to change, on the same line */
      app_error(NULL, "a batch of %d images does not fit: %s; lower --batch", b, graft_detail());
      goto done;
    }
    if (s != GRAFT_OK) {
      app_status_error(o.weights, s);
      goto done;
    }
    int f = run_batches(&o, m, labels ? labels : m->class_names, net, &paths);
    if (f < 0) goto done;
    failed += f;
  }
  rc = failed ? APP_FAILED : APP_OK;
  goto done;
oom:
  app_error(NULL, "out of memory");
done:
  graft_net_destroy(net);
  if (be) graft_backend_destroy(be);
  graft_strlist_clear(&paths);
  if (labels)
    for (int i = 0; i < m->arch.num_classes; i++) free(labels[i]);
  free(labels);
  graft_model_free(m);
  return rc;
}
