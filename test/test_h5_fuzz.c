/* Damaged HDF5 files must fail cleanly: a small valid file has 1-4 of its
 * bytes overwritten (mostly in the metadata before the data), and every
 * io/h5 reader and graft_model_load run on the result. Deterministic (fixed
 * seed); most useful under -DGRAFT_SANITIZE=ON.
 *
 *   test_h5_fuzz [N]        N mutants of the first seed, N/2 of the others (default 300)
 *   test_h5_fuzz --one F    run the readers on one file (to study a crash)
 *
 * Seed 1, from graft's writer (HDF5 1.8 format: checksummed object headers),
 * runs in this process: any crash fails the test.
 *
 * Seed 2, in h5py's default layout (no checksums), reaches parsers of HDF5
 * 1.10.8 that are not memory-safe and that no public call lets us check
 * first: attribute-message decoding (H5O__msg_iterate_real, behind every
 * H5Aexists/H5Aopen) and the heap index of a variable-length string (H5HG_read).
 * Each of its mutants runs in a child process; crashes and hangs are counted,
 * the first few mutants kept as h5py_crash_N.h5, and the test fails on them
 * only with GRAFT_FUZZ_STRICT=1.
 *
 * Seed 3, a small file in Keras's weights layout (h5py, the same format as
 * seed 2, so isolated the same way), reaches the paths below the root: group
 * attributes, datasets in nested groups, and the Keras reader
 * (models/keras.c) through graft_model_load. */
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "io/fsutil.h"
#include "io/h5.h"
#include "models/model.h"

/* Under ASan a forged size makes HDF5 ask for terabytes: let malloc say no,
 * as it would without the sanitizer, instead of aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static int outcomes[GRAFT_STATUS_COUNT];

static void exercise(const char *path) {
  graft_h5 *f;
  graft_status s = graft_h5_open(path, &f);
  outcomes[s]++;
  if (s == GRAFT_OK) {
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
      static const int64_t sizes[] = {3, 64, 4096};
      for (int i = 0; i < n; i++)
        for (int j = 0; j < 3; j++) graft_h5_read_f32(f, names[i], 1, &sizes[j], data, true);
      graft_strv_free(names, n);
    }
    graft_h5_close(f);
  }
  graft_model *m = NULL;
  if (graft_model_load(path, &m) == GRAFT_OK) graft_model_free(m);
}

/* Run exercise() in a child; true when it exited normally. */
static bool survives(const char *path) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2); /* the sanitizer's report of a known crash */
    alarm(20);                     /* a hang counts as a crash */
    exercise(path);
    _exit(0);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return false;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Returns the number of mutants that crashed (always 0 in-process). */
static int fuzz(const char *dir, const char *seed_path, const char *tag, int iterations,
                bool isolated) {
  uint8_t *seed;
  size_t len;
  CHECK_OK(graft_read_file(seed_path, 1 << 24, &seed, &len));
  uint8_t *buf = malloc(len);
  char path[4200];
  snprintf(path, sizeof path, "%s/current.h5", dir);
  size_t meta = len < 12288 ? len : 12288; /* the metadata sits before the bulk data */
  memset(outcomes, 0, sizeof outcomes);
  int crashes = 0;
  for (int it = 0; it < iterations; it++) {
    memcpy(buf, seed, len);
    int flips = 1 + (int)(next() % 4);
    for (int k = 0; k < flips; k++) {
      size_t at = (next() % 10) ? next() % meta : next() % len;
      buf[at] = (next() % 2) ? (uint8_t)next() : (uint8_t)(buf[at] ^ (1u << (next() % 8)));
    }
    FILE *out = fopen(path, "wb"); /* not atomic: no fsync per mutant */
    CHECK(out && fwrite(buf, 1, len, out) == len);
    if (out) fclose(out);
    if (!isolated) {
      exercise(path);
    } else if (!survives(path)) {
      if (crashes++ < 5) {
        char keep[4300];
        snprintf(keep, sizeof keep, "%s/%s_crash_%d.h5", dir, tag, it);
        rename(path, keep);
        printf("  mutant %d crashed HDF5: kept as %s\n", it, keep);
      }
    }
  }
  printf("%s: %d mutants%s", tag, iterations, isolated ? "" : "; graft_h5_open:");
  for (int s = 0; !isolated && s < GRAFT_STATUS_COUNT; s++)
    if (outcomes[s]) printf(" %s %d,", graft_strerror((graft_status)s), outcomes[s]);
  if (isolated) printf(", %d crashed or hung inside HDF5", crashes);
  printf("\n");
  free(buf);
  free(seed);
  return crashes;
}

static void write_seed(const char *path) {
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

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "--one") == 0) {
    exercise(argv[2]);
    return 0;
  }
  int iterations = argc > 1 ? atoi(argv[1]) : 300;
  const char *dir = graft_test_tmpdir("h5_fuzz");
  char seed[4200];

  snprintf(seed, sizeof seed, "%s/seed_graft.h5", dir);
  write_seed(seed);
  fuzz(dir, seed, "graft-written", iterations, false);

  if (!graft_test_python()) {
    printf("no python with h5py: the h5py-layout seed is not fuzzed\n");
    return graft_test_finish("h5_fuzz");
  }
  snprintf(seed, sizeof seed, "%s/seed_h5py.h5", dir);
  char args[4300];
  snprintf(args, sizeof args, "fuzzseed '%s'", seed);
  CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
  int crashes = fuzz(dir, seed, "h5py-layout", (iterations + 1) / 2, true); /* a fork each */
  snprintf(seed, sizeof seed, "%s/seed_keras.h5", dir);
  snprintf(args, sizeof args, "fuzzseed-keras '%s'", seed);
  CHECK(graft_test_run_python("test/make_bad_weights.py", args) == 0);
  crashes += fuzz(dir, seed, "keras-layout", (iterations + 1) / 2, true);
  const char *strict = graft_test_env("GRAFT_FUZZ_STRICT");
  if (strict && *strict == '1')
    CHECK_MSG(crashes == 0, "%d h5py- and Keras-layout mutants crashed HDF5", crashes);
  return graft_test_finish("h5_fuzz");
}
