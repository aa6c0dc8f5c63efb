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

/* ---- results ----
 * Under MPI each rank classifies one contiguous block of the inputs, cut at
 * batch boundaries so that every batch is the one a single process would
 * run (the classifier's GEMM gives a row different bits in batches of other
 * sizes); rank 0 prints its own block as it goes, then the others' blocks,
 * which they send as records once done: the output is a single process's,
 * byte for byte. A record is an int32 status, then for an image classified
 * topk pairs (int32 class, float probability), for one that failed an int32
 * length and the error's text; a rank whose backend failed ends its records
 * with status -1 and that error. */
enum { RECORD_FATAL = -1, TAG_RECORDS = 1, RECORDS_CHUNK = 32 << 20 };

typedef struct sink {
  bool print;      /* rank 0: print at once; the others keep records */
  const char *who; /* "rank R on HOST", for a failure of the backend */
  char *buf;       /* the records */
  size_t len, cap;
  size_t *cuts;    /* where each message but the first starts (at records) */
  size_t n_cuts, cut_cap, last_cut;
  bool oom;
} sink;

/* One record: status, then the payload pieces. */
static void record(sink *k, int32_t status, const void *a, size_t an, const void *b, size_t bn) {
  size_t n = sizeof status + an + bn;
  if (k->oom) return;
  if (k->len - k->last_cut + n > RECORDS_CHUNK) {
    if (k->n_cuts == k->cut_cap) {
      size_t cap = k->cut_cap ? 2 * k->cut_cap : 16;
      size_t *c = realloc(k->cuts, cap * sizeof *c);
      if (!c) goto oom;
      k->cuts = c;
      k->cut_cap = cap;
    }
    k->cuts[k->n_cuts++] = k->last_cut = k->len;
  }
  if (k->len + n > k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 1 << 16;
    while (cap < k->len + n) cap *= 2;
    char *buf = realloc(k->buf, cap);
    if (!buf) goto oom;
    k->buf = buf;
    k->cap = cap;
  }
  memcpy(k->buf + k->len, &status, sizeof status);
  if (an) memcpy(k->buf + k->len + sizeof status, a, an);
  if (bn) memcpy(k->buf + k->len + sizeof status + an, b, bn);
  k->len += n;
  return;
oom:
  k->oom = true;
}

static void record_text(sink *k, int32_t status, const char *text) {
  int32_t len = (int32_t)strlen(text);
  record(k, status, &len, sizeof len, text, (size_t)len);
}

/* The records to rank 0, a chunk a message. */
static graft_status send_records(graft_comm *comm, const sink *k) {
  if (k->oom) return graft__fail(GRAFT_ENOMEM, "out of memory for the results");
  size_t from = 0;
  for (size_t i = 0; i <= k->n_cuts; i++) {
    size_t to = i < k->n_cuts ? k->cuts[i] : k->len;
    GRAFT_TRY(graft_comm_send(comm, 0, TAG_RECORDS, k->buf + from, to - from));
    from = to;
  }
  return GRAFT_OK;
}

/* Reading another rank's records, a message at a time. */
typedef struct reader {
  graft_comm *comm;
  int from;
  char *buf;
  size_t len, at;
} reader;

/* The next n bytes: a record never spans two messages, so a message is
 * fetched only at a record's start. NULL when they are not there. */
static const char *take(reader *r, size_t n) {
  if (r->at == r->len) {
    if (graft_comm_recv(r->comm, r->from, TAG_RECORDS, r->buf, RECORDS_CHUNK, &r->len, NULL) !=
        GRAFT_OK)
      return NULL;
    r->at = 0;
  }
  if (n > r->len - r->at) return NULL;
  const char *p = r->buf + r->at;
  r->at += n;
  return p;
}

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

/* The top o->topk classes, best first (a selection: k is small next to the forward pass). */
static void top_classes(const options *o, int k, const float *probs, int32_t *top, float *p) {
  uint64_t taken[1024 / 64 + 1] = {0}, *big = NULL;
  uint64_t *mark = k <= 1024 ? taken : (big = calloc((size_t)k / 64 + 1, sizeof *big));
  for (int t = 0; t < (int)o->topk; t++) {
    int best = -1;
    for (int c = 0; c < k; c++)
      if (!(mark && (mark[c / 64] >> (c % 64) & 1)) && (best < 0 || probs[c] > probs[best])) best = c;
    top[t] = best;
    p[t] = probs[best];
    if (mark) mark[best / 64] |= (uint64_t)1 << (best % 64);
  }
  free(big);
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

/* Classify paths[lo, hi) batch by batch into the sink; the number of images
 * that failed, or -1 when the backend failed (said, or recorded). */
static int run_batches(const options *o, const graft_model *m, char **labels, graft_net *net,
                       const graft_strlist *paths, size_t lo, size_t hi, sink *out) {
  const int crop = m->pre.crop, b = (int)o->batch, k = m->arch.num_classes;
  const size_t per = (size_t)3 * crop * crop;
  float *input = malloc((size_t)b * per * sizeof *input);
  float *probs = malloc((size_t)b * k * sizeof *probs);
  int slot[256];
  int32_t top[64];
  float p[64];
  int failed = 0;
  if (!input || !probs) {
    free(input);
    free(probs);
    app_error(NULL, "out of memory for a batch of %d images", b);
    char text[300];
    snprintf(text, sizeof text, "%s: out of memory for a batch of %d images", out->who, b);
    record_text(out, RECORD_FATAL, text);
    return -1;
  }
  graft_decode_opts dec = {(uint64_t)o->max_pixels, 0, 1};
  for (size_t start = lo; start < hi; start += (size_t)b) {
    int n = (int)(hi - start < (size_t)b ? hi - start : (size_t)b);
    graft_file_result results[256];
    graft_preprocess_files(paths->v + start, n, &m->pre, &dec, input, results);
    for (int i = 0; i < n; i++) {
      graft_file_result *r = &results[i];
      if (r->status == GRAFT_ELIMIT && strstr(r->error, "-pixel limit")) { /* the option to change */
        size_t used = strlen(r->error);
        snprintf(r->error + used, sizeof r->error - used, "; --max-pixels raises it");
      }
    }
    int ok = 0;
    for (int i = 0; i < n; i++) {
      if (results[i].status != GRAFT_OK) continue;
      if (ok != i) memmove(input + (size_t)ok * per, input + (size_t)i * per, per * sizeof *input);
      slot[i] = ok++;
    }
    if (ok > 0) {
      graft_status s = graft_net_predict(net, ok, input, probs, NULL);
      if (s != GRAFT_OK) {
        const char *be = graft_backend_name(graft_net_backend(net));
        char text[1400];
        snprintf(text, sizeof text, "%s: %s: %s", out->who, be,
                 graft_detail()[0] ? graft_detail() : graft_strerror(s));
        app_status_error(be, s);
        record_text(out, RECORD_FATAL, text);
        free(input);
        free(probs);
        return -1;
      }
    }
    for (int i = 0; i < n; i++) {
      const char *path = paths->v[start + (size_t)i];
      if (results[i].status != GRAFT_OK) {
        failed++;
        if (out->print)
          print_failure(o, path, results[i].error);
        else
          record_text(out, (int32_t)results[i].status, results[i].error);
        continue;
      }
      top_classes(o, k, probs + (size_t)slot[i] * k, top, p);
      if (out->print) {
        print_result(o, labels, path, top, p);
      } else {
        record(out, GRAFT_OK, top, (size_t)o->topk * sizeof *top, p, (size_t)o->topk * sizeof *p);
      }
    }
    if (out->print) fflush(stdout);
  }
  free(input);
  free(probs);
  return failed;
}

/* Where rank r's block of n inputs starts: batch boundaries of b, shared out
 * evenly. */
static size_t block_start(size_t n, size_t b, int ranks, int r) {
  size_t batches = (n + b - 1) / b, at = batches * (size_t)r / (size_t)ranks * b;
  return at < n ? at : n;
}

/* Rank `from`'s records for paths[lo, hi), printed in order (when show);
 * its count of failed images, or -1 when its backend failed (said). */
static int print_records(graft_comm *comm, int from, const options *o, char **labels,
                         const graft_strlist *paths, size_t lo, size_t hi, bool show) {
  reader r = {comm, from, malloc(RECORDS_CHUNK), 0, 0};
  int failed = 0;
  const size_t pairs = (size_t)o->topk * 4;
  int32_t top[64], st, n;
  float p[64];
  const char *q;
  if (!r.buf) {
    app_error(NULL, "out of memory");
    return -1;
  }
  for (size_t i = lo; i < hi; i++) {
    if (!(q = take(&r, sizeof st))) goto broken;
    memcpy(&st, q, sizeof st);
    if (st == GRAFT_OK) {
      if (!(q = take(&r, 2 * pairs))) goto broken;
      memcpy(top, q, pairs);
      memcpy(p, q + pairs, pairs);
      if (show) print_result(o, labels, paths->v[i], top, p);
      continue;
    }
    if (!(q = take(&r, sizeof n))) goto broken;
    memcpy(&n, q, sizeof n);
    if (n < 0 || !(q = take(&r, (size_t)n))) goto broken;
    char text[1400];
    snprintf(text, sizeof text, "%.*s", n, q);
    if (st == RECORD_FATAL) {
      if (show) app_error(NULL, "%s", text);
      free(r.buf);
      return -1;
    }
    if (show) print_failure(o, paths->v[i], text);
    failed++;
  }
  free(r.buf);
  fflush(stdout);
  return failed;
broken:
  if (show)
    app_error(NULL, "rank %d: its results are cut short (%s)", from,
            graft_detail()[0] ? graft_detail() : "a malformed record");
  free(r.buf);
  return -1;
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

/* The inputs in order: paths, the images of folders, stdin's lines. Rank 0
 * reads them (only it has stdin) and reports what it cannot read; every
 * rank gets the list. The failures so far, or -1 (said). */
static int gather_inputs(graft_comm *comm, int argc, char **argv, int first,
                         graft_strlist *paths) {
  int failed = 0;
  char *blob = NULL;
  uint64_t size = 0;
  graft_status s = GRAFT_OK;
  if (graft_comm_rank(comm) == 0) {
    for (int i = first; i < argc && s == GRAFT_OK; i++) {
      const char *a = argv[i];
      struct stat st;
      if (strcmp(a, "-") == 0) {
        char line[4096];
        while (fgets(line, sizeof line, stdin) && s == GRAFT_OK) {
          line[strcspn(line, "\r\n")] = '\0';
          if (line[0] && graft_strlist_push(paths, line) != 0) s = GRAFT_ENOMEM;
        }
      } else if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
        int found = 0;
        s = graft_list_images(a, GRAFT_IMAGES_ANY, false, paths, &found);
        if (s != GRAFT_OK && s != GRAFT_ENOMEM) {
          app_error(a, "cannot read directory: %s", graft_detail());
          failed++;
          s = GRAFT_OK;
        } else if (s == GRAFT_OK && found == 0) {
          app_error(a, "no images in this directory");
          failed++;
        }
      } else if (graft_strlist_push(paths, a) != 0) {
        s = GRAFT_ENOMEM;
      }
    }
    for (size_t i = 0; s == GRAFT_OK && i < paths->n; i++) size += strlen(paths->v[i]) + 1;
  }
  if (graft_comm_size(comm) > 1) {
    /* The list, NUL-separated, to the other ranks (after its size, and
     * rank 0's failure as a size of all ones). */
    uint64_t head[2] = {s == GRAFT_OK ? size : UINT64_MAX, (uint64_t)failed};
    if (graft_comm_bcast(comm, head, sizeof head) != GRAFT_OK) goto comm_failed;
    if (head[0] == UINT64_MAX) s = GRAFT_ENOMEM;
    size = head[0];
    failed = (int)head[1];
    if (s == GRAFT_OK && !(blob = malloc(size ? size : 1))) s = GRAFT_ENOMEM;
    if (graft_comm_agree(comm, s) != GRAFT_OK) {
      free(blob);
      app_error(NULL, "out of memory for the list of images");
      return -1;
    }
    if (graft_comm_rank(comm) == 0)
      for (size_t i = 0, at = 0; i < paths->n; at += strlen(paths->v[i++]) + 1)
        memcpy(blob + at, paths->v[i], strlen(paths->v[i]) + 1);
    if (graft_comm_bcast(comm, blob, size) != GRAFT_OK) goto comm_failed;
    if (graft_comm_rank(comm) != 0)
      for (uint64_t at = 0; at < size && s == GRAFT_OK; at += strlen(blob + at) + 1)
        if (graft_strlist_push(paths, blob + at) != 0) s = GRAFT_ENOMEM;
    free(blob);
    blob = NULL;
    s = graft_comm_agree(comm, s);
  }
  if (s != GRAFT_OK) {
    app_error(NULL, "out of memory");
    return -1;
  }
  return failed;
comm_failed:
  free(blob);
  app_status_error("MPI", GRAFT_EIO);
  return -1;
}

static int classify(graft_comm *comm, int argc, char **argv) {
  const bool speaker = graft_comm_rank(comm) == 0;
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
  sink out = {speaker, "", NULL, 0, 0, NULL, 0, 0, 0, false};
  char who[300];
  snprintf(who, sizeof who, "rank %d on %s", graft_comm_rank(comm), graft_comm_host(comm));
  out.who = who;
  /* The model and the backend on every rank; a rank that fails is reported
   * by rank 0, once. */
  graft_status s = graft_model_load(o.weights, &m);
  if (s != GRAFT_OK) {
    app_status_error(o.weights, s);
    s = graft__context(s, "%s", o.weights); /* as rank 0 reports another rank's */
  } else if (m->no_classifier) {
    app_error(o.weights, "no classifier: fine-tune it first (the file holds the trunk only; "
                         "finetune's best.h5 has one)");
    s = graft__fail(GRAFT_EINVAL, "%s: no classifier", o.weights);
  } else {
    int k = m->arch.num_classes;
    if (o.topk < 0) o.topk = k < 5 ? k : 5;
    if (o.topk > k || o.topk > 64) {
      app_error(NULL, "--topk %lld: the model has %d classes (at most %d can be shown)", o.topk,
                k, k < 64 ? k : 64);
      s = graft__fail(GRAFT_EINVAL, "--topk %lld: the model has %d classes", o.topk, k);
    } else if (o.labels && !(labels = read_labels(o.labels, k))) {
      s = graft__fail(GRAFT_EINVAL, "%s: cannot use these labels", o.labels);
    } else {
      graft_backend_options bo;
      if (!app_backend_options(o.device, app_threads(o.threads), o.precision, &bo) ||
          !app_backend_create(&bo, &be))
        s = graft__fail(GRAFT_EINVAL, "no backend (%s)", o.device);
    }
  }
  if (graft_comm_agree(comm, s) != GRAFT_OK) {
    if (s == GRAFT_OK) app_error(NULL, "%s", graft_detail());
    goto done;
  }

  failed = gather_inputs(comm, argc, argv, optind, &paths);
  if (failed < 0) goto done;
  if (paths.n > 0) {
    /* This rank's block: whole batches, as a single process would run them. */
    const size_t b = paths.n < (size_t)o.batch ? paths.n : (size_t)o.batch;
    const int ranks = graft_comm_size(comm), me = graft_comm_rank(comm);
    const size_t lo = block_start(paths.n, b, ranks, me), hi = block_start(paths.n, b, ranks, me + 1);
    o.batch = (long long)b;
    int f = 0;
    if (lo < hi) {
      s = graft_net_create(be, &m->arch, m->params, (int)b, m->pre.crop, m->pre.crop, &net);
      if (s != GRAFT_OK) {
        char text[1400];
        if (s == GRAFT_ELIMIT || s == GRAFT_ENOMEM) { /* the option to change, on the same line */
          snprintf(text, sizeof text, "%s: a batch of %d images does not fit: %s; lower --batch",
                   who, (int)b, graft_detail());
          app_error(NULL, "a batch of %d images does not fit: %s; lower --batch", (int)b,
                    graft_detail());
        } else {
          snprintf(text, sizeof text, "%s: %s: %s", who, o.weights, graft_detail());
          app_status_error(o.weights, s);
        }
        record_text(&out, RECORD_FATAL, text);
        f = -1;
      } else {
        f = run_batches(&o, m, labels ? labels : m->class_names, net, &paths, lo, hi, &out);
      }
    }
    if (!speaker) {
      if (out.oom) {
        out.len = out.n_cuts = out.last_cut = 0;
        out.oom = false;
        snprintf(who + strlen(who), sizeof who - strlen(who), ": out of memory for the results");
        record_text(&out, RECORD_FATAL, who);
      }
      if (lo < hi && send_records(comm, &out) != GRAFT_OK) goto done;
    } else {
      /* The other ranks' blocks in order; after a failure of a backend,
       * only taken (a single process would have stopped there). */
      bool show = f >= 0;
      for (int r = 1; r < ranks; r++) {
        int g = print_records(comm, r, &o, labels ? labels : m->class_names, &paths,
                              block_start(paths.n, b, ranks, r),
                              block_start(paths.n, b, ranks, r + 1), show);
        if (g < 0) show = false, f = -1;
        if (f >= 0) f += g;
      }
    }
    if (f < 0) goto done;
    failed += f;
  }
  rc = failed ? APP_FAILED : APP_OK;
done:
  free(out.buf);
  free(out.cuts);
  graft_net_destroy(net);
  if (be) graft_backend_destroy(be);
  graft_strlist_clear(&paths);
  if (labels)
    for (int i = 0; i < m->arch.num_classes; i++) free(labels[i]);
  free(labels);
  graft_model_free(m);
  return rc;
}

int main(int argc, char **argv) {
  app_init("classify");
  graft_comm *comm;
  if (!app_comm_open(&comm)) return APP_USAGE;
  return app_comm_close(comm, classify(comm, argc, argv));
}
