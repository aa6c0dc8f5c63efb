/* classify's batch step and its run over the job's ranks (batches.h). */
#include "apps/batches.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/common.h"
#include "comm/batches.h"
#include "engine/net.h"
#include "io/batch.h"
#include "io/listing.h"

enum { TAG_RECORDS = 1, MAX_TOPK = 64 };

struct app_classifier {
  app_classifier_options o;
  char who[300];       /* "rank R on HOST", for a failure of the backend */
  graft_records *out;  /* the records of a rank other than 0 */
  graft_net *net;      /* for batches of `batch` */
  int batch;
  float *input, *probs, *logits; /* [batch, 3, crop, crop], [batch, k], [batch, k] */
  graft_file_result *res;        /* [batch] how each image went */
  int *slot;                     /* [batch] image i's row among the good ones */
};

graft_status app_classifier_create(const app_classifier_options *o, app_classifier **out) {
  app_classifier *c = calloc(1, sizeof *c);
  if (!c || graft_records_create(&c->out) != GRAFT_OK) {
    free(c);
    *out = NULL;
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  c->o = *o;
  *out = c;
  return GRAFT_OK;
}

static void drop_net(app_classifier *c) {
  graft_net_destroy(c->net);
  free(c->input);
  free(c->probs);
  free(c->logits);
  free(c->res);
  free(c->slot);
  c->net = NULL;
  c->input = c->probs = c->logits = NULL;
  c->res = NULL;
  c->slot = NULL;
  c->batch = 0;
}

void app_classifier_free(app_classifier *c) {
  if (!c) return;
  drop_net(c);
  graft_records_free(c->out);
  free(c);
}

/* A failure that stops this rank: said here (rank 0 prints it), and
 * recorded for rank 0 as "rank R on HOST: [what: ]text". */
static void fatal(app_classifier *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fatal(app_classifier *c, const char *what, const char *fmt, ...) {
  char text[1100], line[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  app_error(what, "%s", text);
  int n = what ? snprintf(line, sizeof line, "%s: %s: %s", c->who, what, text)
               : snprintf(line, sizeof line, "%s: %s", c->who, text);
  graft_records_text(c->out, GRAFT_RECORD_FATAL, n >= 0 ? line : text); /* cut short if long */
}

/* The net and the buffers for batches of b, kept from an earlier call when
 * it had the same; false after a fatal failure. */
static bool open_net(app_classifier *c, int b) {
  const graft_model *m = c->o.m;
  const int crop = m->pre.crop, k = m->arch.num_classes;
  if (c->net && c->batch == b) return true;
  drop_net(c);
  graft_status s = graft_net_create(c->o.be, &m->arch, m->params, b, crop, crop, &c->net);
  if (s == GRAFT_ELIMIT || s == GRAFT_ENOMEM) { /* the option to change, on the same line */
    fatal(c, NULL, "a batch of %d images does not fit: %s; lower --batch", b, graft_detail());
    return false;
  }
  if (s != GRAFT_OK) {
    fatal(c, c->o.weights, "%s", graft_detail()[0] ? graft_detail() : graft_strerror(s));
    return false;
  }
  c->batch = b;
  c->input = malloc((size_t)b * 3 * crop * crop * sizeof *c->input);
  c->probs = malloc((size_t)b * k * sizeof *c->probs);
  c->logits = malloc((size_t)b * k * sizeof *c->logits);
  c->res = malloc((size_t)b * sizeof *c->res);
  c->slot = malloc((size_t)b * sizeof *c->slot);
  if (!c->input || !c->probs || !c->logits || !c->res || !c->slot) {
    drop_net(c);
    fatal(c, NULL, "out of memory for a batch of %d images", b);
    return false;
  }
  return true;
}

/* The top o.topk classes, best first (a selection: k is small next to the forward pass). */
static void top_classes(int topk, int k, const float *probs, int32_t *top, float *p) {
  uint64_t taken[1024 / 64 + 1] = {0}, *big = NULL;
  uint64_t *mark = k <= 1024 ? taken : (big = calloc((size_t)k / 64 + 1, sizeof *big));
  for (int t = 0; t < topk; t++) {
    int best = -1;
    for (int c = 0; c < k; c++)
      if (!(mark && (mark[c / 64] >> (c % 64) & 1)) && (best < 0 || probs[c] > probs[best])) best = c;
    top[t] = best;
    p[t] = probs[best];
    if (mark) mark[best / 64] |= (uint64_t)1 << (best % 64);
  }
  free(big);
}

/* One batch step: paths[0, n) decoded and preprocessed, the good ones
 * through the net (c->res says how each went, c->slot where a good one's
 * row is); their logits into logits' rows when given. false after a fatal
 * failure. */
static bool step(app_classifier *c, char *const *paths, int n, float *logits) {
  const size_t per = (size_t)3 * c->o.m->pre.crop * c->o.m->pre.crop;
  const size_t k = (size_t)c->o.m->arch.num_classes;
  graft_preprocess_files(paths, n, &c->o.m->pre, &c->o.dec, c->input, c->res);
  int ok = 0;
  for (int i = 0; i < n; i++) {
    graft_file_result *r = &c->res[i];
    if (r->status == GRAFT_ELIMIT && strstr(r->error, "-pixel limit")) { /* the option to change */
      size_t used = strlen(r->error);
      snprintf(r->error + used, sizeof r->error - used, "; --max-pixels raises it");
    }
    if (r->status != GRAFT_OK) continue;
    if (ok != i) memmove(c->input + (size_t)ok * per, c->input + (size_t)i * per, per * sizeof *c->input);
    c->slot[i] = ok++;
  }
  if (ok == 0) return true;
  graft_status s = graft_net_predict(c->net, ok, c->input, c->probs, logits ? c->logits : NULL);
  if (s != GRAFT_OK) {
    fatal(c, graft_backend_name(graft_net_backend(c->net)), "%s",
          graft_detail()[0] ? graft_detail() : graft_strerror(s));
    return false;
  }
  for (int i = 0; logits && i < n; i++)
    if (c->res[i].status == GRAFT_OK)
      memcpy(logits + (size_t)i * k, c->logits + (size_t)c->slot[i] * k, k * sizeof *logits);
  return true;
}

/* paths[lo, hi) batch by batch: rank 0 emits each result as it goes, the
 * others record them. The images that failed, or -1 after a fatal failure. */
static int run_block(app_classifier *c, bool speaker, char *const *paths, size_t lo, size_t hi,
                     float *logits, app_result_fn emit, void *user) {
  const int b = c->batch, topk = c->o.topk, k = c->o.m->arch.num_classes;
  int32_t top[MAX_TOPK];
  float p[MAX_TOPK];
  int failed = 0;
  for (size_t start = lo; start < hi; start += (size_t)b) {
    int n = (int)(hi - start < (size_t)b ? hi - start : (size_t)b);
    if (!step(c, paths + start, n, logits ? logits + start * (size_t)k : NULL)) return -1;
    for (int i = 0; i < n; i++) {
      const graft_file_result *r = &c->res[i];
      if (r->status != GRAFT_OK) {
        failed++;
        if (speaker)
          emit(user, start + (size_t)i, r->status, r->error, NULL, NULL);
        else
          graft_records_text(c->out, (int32_t)r->status, r->error);
        continue;
      }
      top_classes(topk, k, c->probs + (size_t)c->slot[i] * k, top, p);
      if (speaker)
        emit(user, start + (size_t)i, GRAFT_OK, NULL, top, p);
      else
        graft_records_put(c->out, GRAFT_OK, top, (size_t)topk * sizeof *top, p,
                          (size_t)topk * sizeof *p);
    }
    if (speaker) fflush(stdout);
  }
  return failed;
}

/* Rank `from`'s records for items [lo, hi), emitted in order (when show);
 * its count of failed images, or -1 when its backend failed (said). */
static int take_records(graft_comm *comm, int from, const app_classifier *c, size_t lo, size_t hi,
                        bool show, app_result_fn emit, void *user) {
  const size_t pairs = (size_t)c->o.topk * 4;
  graft_records_reader *r;
  int failed = 0;
  int32_t top[MAX_TOPK], st;
  float p[MAX_TOPK];
  if (graft_records_reader_open(comm, from, TAG_RECORDS, &r) != GRAFT_OK) {
    app_error(NULL, "out of memory");
    return -1;
  }
  for (size_t i = lo; i < hi; i++) {
    const char *q;
    size_t n;
    if (graft_records_next(r, 2 * pairs, &st, &q, &n) != GRAFT_OK) {
      if (show) app_error(NULL, "rank %d: its results are cut short (%s)", from, graft_detail());
      failed = -1;
      break;
    }
    char text[1400];
    if (st == GRAFT_OK) {
      memcpy(top, q, pairs);
      memcpy(p, q + pairs, pairs);
      if (show) emit(user, i, GRAFT_OK, NULL, top, p);
      continue;
    }
    snprintf(text, sizeof text, "%.*s", (int)n, q);
    if (st == GRAFT_RECORD_FATAL) {
      if (show) app_error(NULL, "%s", text);
      failed = -1;
      break;
    }
    if (show) emit(user, i, (graft_status)st, text, NULL, NULL);
    failed++;
  }
  graft_records_reader_free(r);
  if (failed >= 0) fflush(stdout);
  return failed;
}

int app_classify(graft_comm *comm, app_classifier *c, char *const *paths, size_t n,
                 float *logits, app_result_fn emit, void *user) {
  if (n == 0) return 0;
  const int ranks = graft_comm_size(comm), me = graft_comm_rank(comm);
  const bool speaker = me == 0;
  /* This rank's block: whole batches, as a single process would run them. */
  const size_t b = n < (size_t)c->o.batch ? n : (size_t)c->o.batch;
  const size_t lo = graft_batches_start(n, b, ranks, me), hi = graft_batches_start(n, b, ranks, me + 1);
  snprintf(c->who, sizeof c->who, "rank %d on %s", me, graft_comm_host(comm));
  graft_records_reset(c->out);
  int f = 0;
  if (lo < hi) f = open_net(c, (int)b) ? run_block(c, speaker, paths, lo, hi, logits, emit, user) : -1;
  if (!speaker) {
    if (graft_records_oom(c->out)) {
      graft_records_reset(c->out);
      char line[400];
      snprintf(line, sizeof line, "%s: out of memory for the results", c->who);
      graft_records_text(c->out, GRAFT_RECORD_FATAL, line);
    }
    if (lo < hi && graft_records_send(comm, c->out, 0, TAG_RECORDS) != GRAFT_OK) return -1;
    return f;
  }
  /* The other ranks' blocks in order; after a failure of a backend, only
   * taken (a single process would have stopped there). */
  bool show = f >= 0;
  for (int r = 1; r < ranks; r++) {
    int g = take_records(comm, r, c, graft_batches_start(n, b, ranks, r),
                         graft_batches_start(n, b, ranks, r + 1), show, emit, user);
    if (g < 0) show = false, f = -1;
    if (f >= 0) f += g;
  }
  return f;
}

/* Rank 0's inputs: argv[first, argc) in order (paths, the images of
 * folders, stdin's lines for -), those it cannot read said and counted in
 * *failed. GRAFT_ENOMEM when out of memory. */
static graft_status read_inputs(int argc, char **argv, int first, graft_strlist *paths,
                                int *failed) {
  graft_status s = GRAFT_OK;
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
        (*failed)++;
        s = GRAFT_OK;
      } else if (s == GRAFT_OK && found == 0) {
        app_error(a, "no images in this directory");
        (*failed)++;
      }
    } else if (graft_strlist_push(paths, a) != 0) {
      s = GRAFT_ENOMEM;
    }
  }
  return s;
}

/* Rank 0's list (and its status and count of failures) to the other ranks,
 * NUL-separated after its size, rank 0's failure as a size of all ones.
 * The failures so far, or -1 (said). */
static int share_list(graft_comm *comm, graft_status s, int failed, graft_strlist *paths) {
  uint64_t size = 0;
  char *blob = NULL;
  for (size_t i = 0; graft_comm_rank(comm) == 0 && s == GRAFT_OK && i < paths->n; i++)
    size += strlen(paths->v[i]) + 1;
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
  if (graft_comm_agree(comm, s) != GRAFT_OK) {
    app_error(NULL, "out of memory");
    return -1;
  }
  return failed;
comm_failed:
  free(blob);
  app_status_error("MPI", GRAFT_EIO);
  return -1;
}

int app_classify_inputs(graft_comm *comm, int argc, char **argv, int first,
                        graft_strlist *paths) {
  int failed = 0;
  graft_status s = GRAFT_OK;
  if (graft_comm_rank(comm) == 0) s = read_inputs(argc, argv, first, paths, &failed);
  if (graft_comm_size(comm) > 1) return share_list(comm, s, failed, paths);
  if (s != GRAFT_OK) {
    app_error(NULL, "out of memory");
    return -1;
  }
  return failed;
}
