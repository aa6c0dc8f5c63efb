/* Damaged HDF5 files never take graft down. Every file graft opens goes
 * through a reader that parses it in a child process (io/isolate.h):
 * weights (graft's and Keras's layouts), configs and checkpoints. Seeds of
 * each kind are made at test time (graft's writer: the HDF5 1.8 format with
 * checksummed metadata; h5py's default layout: the oldest format, no
 * checksums, the parsers of HDF5 1.10.8 that crash; a small Keras-layout
 * file, groups below the root), and mutants of them get 1-4 bytes overwritten, mostly
 * in the metadata before the bulk data (deterministic: a fixed seed).
 *
 * Every mutant goes through the production reader of its kind and through
 * every io/h5 reader (graft_h5_*), in an isolated child (25 mutants a
 * child, read_batch says why); one in five also alone through the
 * production reader's own isolation. This process must survive them all: a
 * crash of graft ends the test. Each parse the isolation
 * stopped (HDF5 crashed or hung) runs again, in process, in a forked child
 * with its stderr kept (test/triage.c): it must have died inside HDF5; a
 * death anywhere else is graft's bug and fails the test, its file kept. The
 * first contained crash of a weights file is also given to classify, which
 * must exit 2 with one line.
 *
 *   test_h5_fuzz [N]              N mutants in all (default 10000)
 *   test_h5_fuzz --one KIND FILE  KIND's readers (weights, config,
 *                                 checkpoint) on one file, in this process */
#define _GNU_SOURCE /* popen */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/finetune/config.h"
#include "harness.h"
#include "io/fsutil.h"
#include "io/h5.h"
#include "io/isolate.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "triage.h"

/* Under ASan a forged size makes HDF5 ask for terabytes: let malloc say no,
 * as it would without the sanitizer, instead of aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

typedef enum kind { WEIGHTS, CONFIG, CHECKPOINT } kind;
static const char *const kind_names[] = {"weights", "config", "checkpoint"};

/* The checkpoint seed's sizes, which its reader must be told. */
enum { CK_COUNT = 64, CK_TRAIN = 8, CK_VAL = 4 };

#define TIME_LIMIT_S 10.0

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* ---- the readers ---- */

/* The production reader of a kind: what classify and finetune call. */
static graft_status production(kind k, const char *path) {
  if (k == WEIGHTS) {
    graft_model *m = NULL;
    graft_status s = graft_model_load(path, &m);
    graft_model_free(m);
    return s;
  }
  if (k == CONFIG) {
    graft_config c;
    return graft_config_load(path, &c);
  }
  graft_checkpoint c;
  graft_status s = graft_checkpoint_load(path, CK_COUNT, CK_TRAIN, CK_VAL, &c);
  if (s == GRAFT_OK) graft_checkpoint_free(&c);
  return s;
}

/* Every io/h5 reader on every attribute and dataset the file lists. */
static void every_reader(const char *path) {
  graft_h5 *f;
  if (graft_h5_open(path, &f) != GRAFT_OK) return;
  char **names;
  int n;
  if (graft_h5_attr_names(f, &names, &n) == GRAFT_OK) {
    for (int i = 0; i < n; i++) {
      char buf[256], **v;
      int count;
      int64_t i64;
      double d;
      float fl[3];
      graft_h5_attr_string(f, names[i], buf, sizeof buf);
      if (graft_h5_attr_strings(f, names[i], &v, &count) == GRAFT_OK) graft_strv_free(v, count);
      graft_h5_attr_int(f, names[i], &i64);
      graft_h5_attr_double(f, names[i], &d);
      graft_h5_attr_floats(f, names[i], fl, 3);
      graft_h5_attr_kind(f, names[i]);
    }
    graft_strv_free(names, n);
  }
  /* A Keras layout: each listed layer's group and its weights. */
  if (graft_h5_attr_strings(f, "layer_names", &names, &n) == GRAFT_OK) {
    for (int i = 0; i < n; i++) {
      char **w;
      int count;
      graft_h5_has_group(f, names[i]);
      graft_h5_attr_kind_at(f, names[i], "weight_names");
      if (graft_h5_attr_strings_at(f, names[i], "weight_names", &w, &count) != GRAFT_OK)
        continue;
      for (int j = 0; j < count; j++) {
        char dataset[1200];
        int rank;
        int64_t dims[4];
        static float data[2048];
        snprintf(dataset, sizeof dataset, "%s/%s", names[i], w[j]);
        if (graft_h5_dataset_shape(f, dataset, &rank, dims, 4) != GRAFT_OK || rank < 1 ||
            dims[0] < 1)
          continue;
        int64_t row = 1; /* floats in one row: it must fit in data */
        for (int d = 1; d < rank && row <= 2048; d++)
          row = dims[d] < 0 || dims[d] > 2048 ? 4096 : row * dims[d];
        if (row <= 2048) graft_h5_read_f32_rows(f, dataset, rank, dims, 0, 1, data, true);
      }
      graft_strv_free(w, count);
    }
    graft_strv_free(names, n);
  }
  if (graft_h5_dataset_names(f, &names, &n) == GRAFT_OK) {
    static float data[4096];
    static double d64[4096];
    static int64_t i64[4096];
    static uint8_t u8[4096];
    static const int64_t sizes[] = {3, 64, 4096};
    for (int i = 0; i < n; i++)
      for (int j = 0; j < 3; j++) {
        graft_h5_read_f32(f, names[i], 1, &sizes[j], data, true);
        graft_h5_read_f64(f, names[i], 1, &sizes[j], d64);
        graft_h5_read_i64(f, names[i], 1, &sizes[j], i64);
        graft_h5_read_u8(f, names[i], 1, &sizes[j], u8);
      }
    graft_strv_free(names, n);
  }
  graft_h5_close(f);
}

/* Files to read in one isolated parse: a fork costs more than reading a
 * small file (HDF5 clears half a megabyte per open file, every page of it
 * new to the child), so most mutants are read 25 to a child, by the
 * production reader of their kind and every io/h5 reader; the child hands
 * back each production status. A batch that fails is read again one file at
 * a time to find the culprit. One mutant in PER_FILE also goes alone
 * through the production reader's own isolation, deferred reads included. */
#define BATCH 25
#define PER_FILE 5

typedef struct batch {
  kind k;
  char **paths;
  int n;
} batch;

static graft_status read_batch(void *arg, void **result) {
  const batch *b = arg;
  graft_status *st = graft_shm_alloc((size_t)b->n * sizeof *st);
  if (!st) return graft__fail(GRAFT_ENOMEM, "out of memory");
  for (int i = 0; i < b->n; i++) {
    st[i] = production(b->k, b->paths[i]); /* nested: in this child */
    every_reader(b->paths[i]);
  }
  *result = st;
  return GRAFT_OK;
}

/* The batch's statuses into out; a failure of the whole batch is returned. */
static graft_status read_isolated(kind k, char **paths, int n, graft_status *out) {
  batch b = {k, paths, n};
  graft_isolated *job;
  GRAFT_TRY(graft_isolate(paths[0], read_batch, &b, &job));
  memcpy(out, graft_isolated_result(job), (size_t)n * sizeof *out);
  graft_isolated_end(job);
  return GRAFT_OK;
}

/* For the triage, in a child: the same reader in process. */
typedef struct trial {
  kind k;
  bool all; /* every io/h5 reader too */
  const char *path;
} trial;

static void run_trial(void *arg) {
  const trial *t = arg;
  production(t->k, t->path);
  if (t->all) every_reader(t->path);
}

/* ---- seeds ---- */

static void seed_weights(const char *path) {
  graft_h5w *w;
  CHECK_OK(graft_h5w_create(path, &w));
  char *names[3] = {"cat", "dog", "emu"};
  float mean[3] = {0.5f, 0.5f, 0.5f}, bias[64];
  for (int i = 0; i < 64; i++) bias[i] = (float)i;
  CHECK_OK(graft_h5w_attr_string(w, "format", GRAFT_WEIGHTS_FORMAT));
  CHECK_OK(graft_h5w_attr_int(w, "version", GRAFT_WEIGHTS_VERSION));
  CHECK_OK(graft_h5w_attr_string(w, "arch", "alexnet"));
  CHECK_OK(graft_h5w_attr_int(w, "num_classes", 3));
  CHECK_OK(graft_h5w_attr_strings(w, "class_names", names, 3));
  CHECK_OK(graft_h5w_attr_floats(w, "mean", mean, 3));
  CHECK_OK(graft_h5w_attr_double(w, "scale", 0.5));
  CHECK_OK(graft_h5w_f32(w, "features.0.bias", 1, (int64_t[]){64}, bias));
  CHECK_OK(graft_h5w_f32(w, "classifier.6.bias", 1, (int64_t[]){3}, bias));
  CHECK_OK(graft_h5w_commit(w));
}

static void seed_config(const char *path) {
  graft_config c;
  graft_config_defaults(&c);
  const char *set[][2] = {{"arch", "alexnet"}, {"weights", "model.h5"}, {"data", "data"},
                          {"epochs", "3"},      {"lr", "0.01"},          {"augment", "none"},
                          {"trainable", "head"}, {"save_every", "0"}};
  for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
    CHECK_OK(graft_config_set(&c, set[i][0], set[i][1]));
  CHECK_OK(graft_config_save(path, &c));
}

static void seed_checkpoint(const char *path) {
  float params[CK_COUNT], momentum[CK_COUNT];
  for (int i = 0; i < CK_COUNT; i++) params[i] = momentum[i] = (float)i / CK_COUNT;
  uint8_t train_bad[CK_TRAIN] = {0, 1}, val_bad[CK_VAL] = {0};
  graft_epoch_metrics history[2] = {{1, 0.7, 0.5, 0.69, 0.5, 0.001, 1.5},
                                    {2, 0.6, 0.6, 0.68, 0.75, 0.001, 1.4}};
  graft_checkpoint c = {.arch = "alexnet", .trainable = "head", .num_classes = 2,
                        .config_hash = 0x123456789abcdefull, .seed = 7, .epoch = 2, .step = 0,
                        .best_acc = 0.75, .best_epoch = 2, .count = CK_COUNT,
                        .params = params, .momentum = momentum, .n_history = 2,
                        .history = history, .n_train = CK_TRAIN, .n_val = CK_VAL,
                        .train_bad = train_bad, .val_bad = val_bad, .momentum_set = 1};
  CHECK_OK(graft_checkpoint_save(path, &c));
}

/* ---- fuzzing ---- */

typedef struct tally {
  int mutants, alone, outcomes[GRAFT_STATUS_COUNT];
  int contained;          /* parses the isolation stopped */
  int hdf5, not_reproduced, graft;
  int triaged;
} tally;

static bool hdf5_failed(graft_status s) {
  return s == GRAFT_EFORMAT && strstr(graft_detail(), "the HDF5 library failed on it");
}

static int classify_checked;

/* classify on a weights file that crashes HDF5: exit 2, one line. */
static void check_classify(const char *path) {
  const char *bin = graft_test_env("GRAFT_BIN");
  if (!bin || classify_checked++) return;
  char cmd[8600];
  snprintf(cmd, sizeof cmd, "'%s/classify' -d cpu -w '%s' /dev/null 2>&1 >/dev/null; echo \"rc=$?\"",
           bin, path);
  FILE *p = popen(cmd, "r");
  char out[4096] = "", line[2048];
  int lines = 0;
  while (p && fgets(line, sizeof line, p)) {
    if (strncmp(line, "rc=", 3) != 0) lines++;
    strncat(out, line, sizeof out - strlen(out) - 1);
  }
  if (p) pclose(p);
  printf("  classify on it: %s", out);
  CHECK_MSG(strstr(out, "rc=2") && lines == 1 &&
                strstr(out, "not a readable HDF5 file: the HDF5 library failed on it"),
            "classify on a file that crashes HDF5: %s", out);
}

/* A parse the isolation stopped: whose crash was it? */
static void triage(const char *dir, const char *tag, int it, kind k, bool all, const char *path,
                   tally *t) {
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", graft_detail());
  t->contained++;
  if (t->triaged >= 150) return; /* enough to know; the rest only counted */
  t->triaged++;
  trial tr = {k, all, path};
  char where[512];
  triage_verdict v = triage_run(run_trial, &tr, 2 * TIME_LIMIT_S, where, sizeof where);
  if (v == TRIAGE_HDF5) {
    if (t->hdf5++ < 3) printf("  %s mutant %d: HDF5 failed, contained: %s\n", tag, it, where);
    if (k == WEIGHTS && !all) check_classify(path);
    return;
  }
  if (v == TRIAGE_SURVIVED) {
    if (t->not_reproduced++ < 3) {
      char keep[4400];
      snprintf(keep, sizeof keep, "%s/%s_slow_%d.h5", dir, kind_names[k], it);
      rename(path, keep);
      printf("  %s mutant %d (kept as %s): stopped by the isolation (%s), not in the triage\n",
             tag, it, keep, detail);
    }
    return;
  }
  t->graft++;
  char keep[4400];
  snprintf(keep, sizeof keep, "%s/%s_graft_%d.h5", dir, kind_names[k], it);
  rename(path, keep);
  CHECK_MSG(false, "%s mutant %d (kept as %s): graft's own crash, %s", tag, it, keep, where);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fuzz(const char *dir, const char *seed_path, const char *tag, kind k, int iterations,
                 tally *t) {
  uint8_t *seed;
  size_t len;
  CHECK_OK(graft_read_file(seed_path, 1 << 24, &seed, &len));
  uint8_t *buf = graft_test_alloc(len);
  char *paths[BATCH];
  for (int i = 0; i < BATCH; i++) {
    paths[i] = graft_test_alloc(4200);
    snprintf(paths[i], 4200, "%s/current_%d.h5", dir, i);
  }
  size_t meta = len < 12288 ? len : 12288; /* the metadata sits before the bulk data */
  tally mine = {0};
  double t0 = now_s();
  for (int first = 0; first < iterations; first += BATCH) {
    int n = iterations - first < BATCH ? iterations - first : BATCH;
    for (int i = 0; i < n; i++) {
      memcpy(buf, seed, len);
      int flips = 1 + (int)(next() % 4);
      for (int j = 0; j < flips; j++) {
        size_t at = (next() % 10) ? next() % meta : next() % len;
        buf[at] = (next() % 2) ? (uint8_t)next() : (uint8_t)(buf[at] ^ (1u << (next() % 8)));
      }
      FILE *out = fopen(paths[i], "wb"); /* not atomic: no fsync per mutant */
      CHECK(out && fwrite(buf, 1, len, out) == len);
      if (out) fclose(out);
      mine.mutants++;
      if ((first + i) % PER_FILE) continue;
      graft_status s = production(k, paths[i]);
      mine.alone++;
      if (hdf5_failed(s)) triage(dir, tag, first + i, k, false, paths[i], &mine);
    }
    graft_status st[BATCH];
    if (!hdf5_failed(read_isolated(k, paths, n, st))) {
      for (int i = 0; i < n; i++) mine.outcomes[st[i]]++;
      continue;
    }
    for (int i = 0; i < n; i++) {
      if (!hdf5_failed(read_isolated(k, &paths[i], 1, &st[i]))) {
        mine.outcomes[st[i]]++;
        continue;
      }
      mine.outcomes[GRAFT_EFORMAT]++;
      triage(dir, tag, first + i, k, true, paths[i], &mine);
    }
  }
  printf("%s: %d mutants (%d also alone) in %.1f s;", tag, iterations, mine.alone, now_s() - t0);
  for (int s = 0; s < GRAFT_STATUS_COUNT; s++)
    if (mine.outcomes[s]) printf(" %s %d,", graft_strerror((graft_status)s), mine.outcomes[s]);
  printf(" parses stopped by the isolation: %d (triaged %d: inside HDF5 %d, not reproduced %d,"
         " graft %d)\n",
         mine.contained, mine.triaged, mine.hdf5, mine.not_reproduced, mine.graft);
  t->mutants += mine.mutants;
  t->alone += mine.alone;
  t->contained += mine.contained;
  t->hdf5 += mine.hdf5;
  t->graft += mine.graft;
  for (int i = 0; i < BATCH; i++) free(paths[i]);
  free(buf);
  free(seed);
}


int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "--one") == 0) {
    graft_isolate_configure(&(graft_isolate_options){0, true});
    for (int k = 0; k < 3; k++)
      if (strcmp(argv[2], kind_names[k]) == 0) {
        graft_status s = production((kind)k, argv[3]);
        printf("%s: %s: %s\n", kind_names[k], graft_strerror(s), graft_detail());
        every_reader(argv[3]);
        printf("every io/h5 reader: done\n");
        return 0;
      }
    fprintf(stderr, "unknown kind %s\n", argv[2]);
    return 2;
  }
  int n = argc > 1 ? atoi(argv[1]) : 10000;
  const char *dir = graft_test_tmpdir("h5_fuzz");
  graft_isolate_configure(&(graft_isolate_options){TIME_LIMIT_S, false});
  const char *py = graft_test_python();
  double t0 = now_s();
  tally t = {0};
  char seed[4200], args[4400];
  /* The shares of n: weights, configs, checkpoints; h5py's seeds (if any)
   * get what the graft-written ones leave. */
  int w = n * 45 / 100, c = n * 25 / 100, k = n - w - c;
  snprintf(seed, sizeof seed, "%s/seed_weights.h5", dir);
  seed_weights(seed);
  fuzz(dir, seed, "weights (graft's writer)", WEIGHTS, py ? w / 3 : w, &t);
  if (py) {
    snprintf(seed, sizeof seed, "%s/seed_weights_h5py.h5", dir);
    snprintf(args, sizeof args, "fuzzseed '%s'", seed);
    CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
    fuzz(dir, seed, "weights (h5py)", WEIGHTS, w / 3, &t);
    /* Keras's layout: groups below the root, read by models/keras.c. */
    snprintf(seed, sizeof seed, "%s/seed_weights_keras.h5", dir);
    snprintf(args, sizeof args, "fuzzseed-keras '%s'", seed);
    CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
    fuzz(dir, seed, "weights (Keras layout)", WEIGHTS, w - 2 * (w / 3), &t);
  }
  snprintf(seed, sizeof seed, "%s/seed_config.h5", dir);
  seed_config(seed);
  fuzz(dir, seed, "config (graft's writer)", CONFIG, py ? c / 2 : c, &t);
  if (py) {
    snprintf(seed, sizeof seed, "%s/seed_config_h5py.h5", dir);
    snprintf(args, sizeof args, "fuzzseed-config '%s'", seed);
    CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
    fuzz(dir, seed, "config (h5py)", CONFIG, c - c / 2, &t);
  }
  snprintf(seed, sizeof seed, "%s/seed_checkpoint.h5", dir);
  seed_checkpoint(seed);
  fuzz(dir, seed, "checkpoint (graft's writer)", CHECKPOINT, k, &t);
  if (!py) printf("no python with h5py: the h5py-layout seeds are not fuzzed\n");
  printf("%d mutants (%d of them also alone) in %.1f s: this process survived all; %d parses "
         "stopped by the isolation, %d of those triaged inside HDF5, %d in graft's code\n",
         t.mutants, t.alone, now_s() - t0, t.contained, t.hdf5, t.graft);
  return graft_test_finish("h5_fuzz");
}
