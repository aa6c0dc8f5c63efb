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
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/finetune/config.h"
#include "harness.h"
#include "engine/base/clock.h"
#include "io/fsutil.h"
#include "io/h5.h"
#include "io/isolate.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "h5_kinds.h"
#include "triage.h"

/* Under ASan a forged size makes HDF5 ask for terabytes: let malloc say no,
 * as it would without the sanitizer, instead of aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

#define TIME_LIMIT_S 10.0

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
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
  h5_kind k;
  char **paths;
  int n;
} batch;

static graft_status read_batch(void *arg, graft_arena *mem, void **result) {
  const batch *b = arg;
  graft_status *st = graft_arena_alloc(mem, (size_t)b->n * sizeof *st);
  if (!st) return graft__fail(GRAFT_ENOMEM, "out of memory");
  /* The production readers' own parses run in this child, not in more. */
  graft_isolate_configure(&(graft_isolate_options){TIME_LIMIT_S, true});
  for (int i = 0; i < b->n; i++) {
    st[i] = h5_kind_read(b->k, b->paths[i]); /* nested: in this child */
    h5_every_reader(b->paths[i]);
  }
  *result = st;
  return GRAFT_OK;
}

/* The batch's statuses into out; a failure of the whole batch is returned. */
static graft_status read_isolated(h5_kind k, char **paths, int n, graft_status *out) {
  batch b = {k, paths, n};
  graft_isolated *job;
  GRAFT_TRY(graft_isolate(paths[0], read_batch, &b, &job));
  memcpy(out, graft_isolated_result(job), (size_t)n * sizeof *out);
  graft_isolated_end(job);
  return GRAFT_OK;
}

/* For the triage, in a child: the same reader in process. */
typedef struct trial {
  h5_kind k;
  bool all; /* every io/h5 reader too */
  const char *path;
} trial;

static void run_trial(void *arg) {
  const trial *t = arg;
  h5_kind_read(t->k, t->path);
  if (t->all) h5_every_reader(t->path);
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
static void triage(const char *dir, const char *tag, int it, h5_kind k, bool all, const char *path,
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
    if (k == H5_WEIGHTS && !all) check_classify(path);
    return;
  }
  if (v == TRIAGE_SURVIVED) {
    if (t->not_reproduced++ < 3) {
      char keep[4400];
      snprintf(keep, sizeof keep, "%s/%s_slow_%d.h5", dir, h5_kind_names[k], it);
      rename(path, keep);
      printf("  %s mutant %d (kept as %s): stopped by the isolation (%s), not in the triage\n",
             tag, it, keep, detail);
    }
    return;
  }
  t->graft++;
  char keep[4400];
  snprintf(keep, sizeof keep, "%s/%s_graft_%d.h5", dir, h5_kind_names[k], it);
  rename(path, keep);
  CHECK_MSG(false, "%s mutant %d (kept as %s): graft's own crash, %s", tag, it, keep, where);
}

static void fuzz(const char *dir, const char *seed_path, const char *tag, h5_kind k, int iterations,
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
  double t0 = graft_now();
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
      graft_status s = h5_kind_read(k, paths[i]);
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
  printf("%s: %d mutants (%d also alone) in %.1f s;", tag, iterations, mine.alone, graft_now() - t0);
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

/* History rows graft never writes: the reader refuses them in one line (a
 * fuzzer's epoch of -3e290 was cast to int, which is undefined; the
 * non-finite values io/h5 refuses for any dataset). */
static void bad_history(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/bad_history.h5", dir);
  const graft_epoch_metrics one = {1, 0.7, 0.5, 0.69, 0.5, 0.001, 1.5},
                            two = {2, 0.6, 0.6, 0.68, 0.75, 0.001, 1.4};
  graft_epoch_metrics rows[3][2] = {{one, two}, {one, two}, {one, two}};
  rows[0][1].epoch = 5;          /* not the second epoch */
  rows[1][0].val_loss = NAN;     /* not finite */
  rows[2][1].seconds = INFINITY; /* nor this */
  for (int v = 0; v < 3; v++) {
    h5_seed_checkpoint(path, rows[v]);
    graft_checkpoint c;
    graft_status s = graft_checkpoint_load(path, SEED_CK_COUNT, SEED_CK_TRAIN, SEED_CK_VAL, &c);
    CHECK_MSG(v == 0 ? s == GRAFT_EFORMAT && strstr(graft_detail(), "history row 1 is for epoch 5")
                     : s == GRAFT_ENONFINITE && strstr(graft_detail(), "\"history\""),
              "bad history %d: %s: %s", v, graft_strerror(s), graft_detail());
    if (s == GRAFT_OK) graft_checkpoint_free(&c);
  }
  h5_seed_checkpoint(path, NULL);
  graft_checkpoint c;
  CHECK_OK(graft_checkpoint_load(path, SEED_CK_COUNT, SEED_CK_TRAIN, SEED_CK_VAL, &c));
  CHECK(c.n_history == 2 && c.history[1].epoch == 2 && c.history[1].val_acc == 0.75);
  graft_checkpoint_free(&c);
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "--one") == 0) {
    graft_isolate_configure(&(graft_isolate_options){0, true});
    int k = h5_kind_find(argv[2]);
    if (k >= 0) {
      graft_status s = h5_kind_read((h5_kind)k, argv[3]);
      printf("%s: %s: %s\n", h5_kind_names[k], graft_strerror(s), graft_detail());
      h5_every_reader(argv[3]);
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
  double t0 = graft_now();
  bad_history(dir);
  tally t = {0};
  char seed[4200], args[4400];
  /* The shares of n: weights, configs, checkpoints; h5py's seeds (if any)
   * get what the graft-written ones leave. */
  int w = n * 45 / 100, c = n * 25 / 100, k = n - w - c;
  snprintf(seed, sizeof seed, "%s/seed_weights.h5", dir);
  h5_kind_seed(H5_WEIGHTS, seed);
  fuzz(dir, seed, "weights (graft's writer)", H5_WEIGHTS, py ? w / 3 : w, &t);
  if (py) {
    snprintf(seed, sizeof seed, "%s/seed_weights_h5py.h5", dir);
    snprintf(args, sizeof args, "fuzzseed '%s'", seed);
    CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
    fuzz(dir, seed, "weights (h5py)", H5_WEIGHTS, w / 3, &t);
    /* Keras's layout: groups below the root, read by models/keras.c. */
    snprintf(seed, sizeof seed, "%s/seed_weights_keras.h5", dir);
    snprintf(args, sizeof args, "fuzzseed-keras '%s'", seed);
    CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
    fuzz(dir, seed, "weights (Keras layout)", H5_WEIGHTS, w - 2 * (w / 3), &t);
  }
  snprintf(seed, sizeof seed, "%s/seed_config.h5", dir);
  h5_kind_seed(H5_CONFIG, seed);
  fuzz(dir, seed, "config (graft's writer)", H5_CONFIG, py ? c / 2 : c, &t);
  if (py) {
    snprintf(seed, sizeof seed, "%s/seed_config_h5py.h5", dir);
    snprintf(args, sizeof args, "fuzzseed-config '%s'", seed);
    CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
    fuzz(dir, seed, "config (h5py)", H5_CONFIG, c - c / 2, &t);
  }
  snprintf(seed, sizeof seed, "%s/seed_checkpoint.h5", dir);
  h5_kind_seed(H5_CHECKPOINT, seed);
  fuzz(dir, seed, "checkpoint (graft's writer)", H5_CHECKPOINT, k, &t);
  if (!py) printf("no python with h5py: the h5py-layout seeds are not fuzzed\n");
  printf("%d mutants (%d of them also alone) in %.1f s: this process survived all; %d parses "
         "stopped by the isolation, %d of those triaged inside HDF5, %d in graft's code\n",
         t.mutants, t.alone, graft_now() - t0, t.contained, t.hdf5, t.graft);
  return graft_test_finish("h5_fuzz");
}
