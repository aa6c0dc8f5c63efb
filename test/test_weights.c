/* The graft-weights contract and the defensive HDF5 layer under it:
 *  - save -> load round trips of both architectures, bit for bit;
 *  - a file written by models/export_torchvision.py, against torchvision's values;
 *  - the io/h5 readers on every attribute and dataset form they accept or refuse;
 *  - each kind of bad file fails with the right status and a one-line detail
 *    that names the attribute or dataset and not the path.
 * Fixtures come from test/make_bad_weights.py (h5py), written to the test's
 * scratch folder; the big ones are removed at the end. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "engine/base/log.h"
#include "harness.h"
#include "io/h5.h"
#include "models/model.h"

static const char *dir;

/* ---- warnings ---- */

static char warnings[4096];
static int n_warnings;

static void on_warning(const char *msg, void *user) {
  (void)user;
  n_warnings++;
  size_t used = strlen(warnings);
  snprintf(warnings + used, sizeof warnings - used, "%s\n", msg);
}

static void clear_warnings(void) {
  warnings[0] = '\0';
  n_warnings = 0;
}

/* ---- helpers ---- */

static const char *fixture(const char *name) { return graft_test_path(dir, name); }

static void check_detail(const char *what, const char *n1, const char *n2) {
  graft_test_check_detail(what, dir, n1, n2);
}

/* graft_model_load of a fixture must fail with `want`, detail containing n1 and n2. */
static void expect_load_fail(const char *name, graft_status want, const char *n1, const char *n2) {
  graft_test_expect_load_fail(dir, name, want, n1, n2);
}

static void expect_status(const char *what, graft_status got, graft_status want, const char *n1) {
  printf("  %-24s %s: %s\n", what, graft_strerror(got), got ? graft_detail() : "");
  CHECK_MSG(got == want, "%s: got \"%s\", want \"%s\" (%s)", what, graft_strerror(got),
            graft_strerror(want), graft_detail());
  if (got != GRAFT_OK) check_detail(what, n1, NULL);
}

static int python(const char *args) {
  return graft_test_run_python("test/make_bad_weights.py", args);
}

/* "cmd 'path'" for the fixture script. */
static const char *on_dir(const char *cmd) {
  static char buf[4200];
  snprintf(buf, sizeof buf, "%s '%s'", cmd, dir);
  return buf;
}

static int temp_files_left(void) {
  int n = 0;
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

/* ---- save -> load ---- */

static void fill(graft_model *m, uint32_t seed) {
  uint32_t x = seed;
  for (size_t i = 0; i < m->arch.n_floats; i++) {
    x = x * 1664525u + 1013904223u;
    m->params[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.2f;
  }
  m->params[0] = -0.0f; /* bit patterns survive too */
  m->params[1] = 1e-42f;
  m->params[2] = 3.0e38f;
}

static void test_round_trip(const char *arch, int k) {
  printf("round trip %s, %d classes\n", arch, k);
  graft_model *m, *back = NULL;
  CHECK_OK(graft_model_create(arch, k, &m));
  fill(m, 42);
  char *names[5] = {"zero", "one", "caf\xc3\xa9", "three, with a comma", "four"};
  CHECK_OK(graft_model_set_class_names(m, names, k));
  m->pre = (graft_preproc){288, 240, {0.5f, 0.25f, 0.125f}, {0.3f, 0.2f, 0.1f}};
  const char *path = fixture("round_trip.h5");
  CHECK_OK(graft_model_save(path, m));
  CHECK_OK(graft_model_save(path, m)); /* replacing an existing file */
  CHECK_OK(graft_model_load(path, &back));
  CHECK(strcmp(back->arch.name, arch) == 0);
  CHECK(back->arch.num_classes == k);
  CHECK(back->arch.n_floats == m->arch.n_floats);
  CHECK_MSG(memcmp(back->params, m->params, m->arch.n_floats * sizeof(float)) == 0,
            "%s: parameters differ after the round trip", arch);
  CHECK(memcmp(&back->pre, &m->pre, sizeof m->pre) == 0);
  CHECK(back->class_names != NULL);
  for (int i = 0; back->class_names && i < k; i++)
    CHECK_MSG(strcmp(back->class_names[i], names[i]) == 0, "class %d: %s", i,
              back->class_names[i]);
  graft_model_free(back);

  /* Without class names, and with a non-finite weight (refused, nothing written). */
  graft_model *plain;
  CHECK_OK(graft_model_create(arch, k, &plain));
  CHECK_OK(graft_model_save(fixture("plain.h5"), plain));
  CHECK_OK(graft_model_load(fixture("plain.h5"), &back));
  CHECK(back->class_names == NULL);
  graft_preproc def;
  graft_preproc_default(&def);
  CHECK(memcmp(&back->pre, &def, sizeof def) == 0);
  graft_model_free(back);
  plain->params[plain->arch.params[3].offset + 5] = NAN;
  expect_status("save NaN", graft_model_save(fixture("nan_saved.h5"), plain), GRAFT_ENONFINITE,
                "features.");
  CHECK(access(fixture("nan_saved.h5"), F_OK) != 0);
  plain->params[plain->arch.params[3].offset + 5] = 0;
  plain->pre.crop = 8;
  expect_status("save crop 8", graft_model_save(fixture("crop.h5"), plain), GRAFT_ERANGE,
                "attribute \"crop\"");
  graft_model_free(plain);
  expect_status("save into missing dir", graft_model_save(fixture("no/such/dir/w.h5"), m),
                GRAFT_ENOENT, NULL);
  graft_model_free(m);
  CHECK_MSG(temp_files_left() == 0, "temporary files left in %s", dir);
  unlink(path);
  unlink(fixture("plain.h5"));
}

/* ---- io/h5 readers ---- */

static void test_attributes(void) {
  printf("attributes\n");
  graft_h5 *f;
  CHECK_OK(graft_h5_open(fixture("attrs.h5"), &f));
  char buf[64];
  const char *hello[] = {"s_vlen", "s_fixed", "s_nullterm", "s_spacepad",
                         "s_vlen1", "s_fixed1", "s_ascii"};
  for (size_t i = 0; i < sizeof hello / sizeof *hello; i++) {
    graft_status s = graft_h5_attr_string(f, hello[i], buf, sizeof buf);
    CHECK_MSG(s == GRAFT_OK && strcmp(buf, "hello") == 0, "%s: %s \"%s\"", hello[i],
              graft_detail(), s == GRAFT_OK ? buf : "");
  }
  CHECK_OK(graft_h5_attr_string(f, "s_empty", buf, sizeof buf));
  CHECK(buf[0] == '\0');
  expect_status("string in 3 bytes", graft_h5_attr_string(f, "s_vlen", buf, 3), GRAFT_ELIMIT,
                "attribute \"s_vlen\"");
  expect_status("string of 3", graft_h5_attr_string(f, "names_vlen", buf, sizeof buf),
                GRAFT_ESHAPE, "attribute \"names_vlen\"");
  expect_status("string as int", graft_h5_attr_string(f, "i_scalar", buf, sizeof buf),
                GRAFT_EFORMAT, "attribute \"i_scalar\": expected a string, found an integer");

  const char *vlen[] = {"cat", "dog", "\xc3\xa9mu"}, *fixed[] = {"cat", "dog", "emu"};
  char **v;
  int n;
  CHECK_OK(graft_h5_attr_strings(f, "names_vlen", &v, &n));
  CHECK(n == 3);
  for (int i = 0; i < n && i < 3; i++) CHECK(strcmp(v[i], vlen[i]) == 0);
  graft_strv_free(v, n);
  CHECK_OK(graft_h5_attr_strings(f, "names_fixed", &v, &n));
  CHECK(n == 3);
  for (int i = 0; i < n && i < 3; i++) CHECK(strcmp(v[i], fixed[i]) == 0);
  graft_strv_free(v, n);

  int64_t i64;
  CHECK_OK(graft_h5_attr_int(f, "i_scalar", &i64));
  CHECK(i64 == -7);
  CHECK_OK(graft_h5_attr_int(f, "i_1", &i64));
  CHECK(i64 == 7);
  CHECK_OK(graft_h5_attr_int(f, "u8", &i64));
  CHECK(i64 == 200);
  expect_status("uint64 2^63+5", graft_h5_attr_int(f, "u64_big", &i64), GRAFT_ERANGE,
                "attribute \"u64_big\"");
  expect_status("int of 2", graft_h5_attr_int(f, "i_array", &i64), GRAFT_ESHAPE,
                "attribute \"i_array\": expected a single value, found 2");
  expect_status("int from string", graft_h5_attr_int(f, "s_vlen", &i64), GRAFT_EFORMAT,
                "attribute \"s_vlen\": expected an integer, found a string");
  expect_status("int from float", graft_h5_attr_int(f, "d_scalar", &i64), GRAFT_EFORMAT,
                "expected an integer, found a float");
  expect_status("missing attribute", graft_h5_attr_int(f, "nope", &i64), GRAFT_ENOENT,
                "attribute \"nope\": missing");

  double d;
  CHECK_OK(graft_h5_attr_double(f, "d_scalar", &d));
  CHECK(d == 0.5);
  CHECK_OK(graft_h5_attr_double(f, "f32_scalar", &d));
  CHECK(d == 0.25);
  CHECK_OK(graft_h5_attr_double(f, "i_scalar", &d));
  CHECK(d == -7);
  expect_status("double from float16", graft_h5_attr_double(f, "f16_scalar", &d), GRAFT_EFORMAT,
                "found float16");
  expect_status("double from string", graft_h5_attr_double(f, "s_fixed", &d), GRAFT_EFORMAT,
                "expected a number, found a string");

  float fl[3];
  CHECK_OK(graft_h5_attr_floats(f, "f3_f64", fl, 3));
  CHECK(fl[0] == 0.1f && fl[1] == 0.2f && fl[2] == 0.3f);
  CHECK_OK(graft_h5_attr_floats(f, "f3_f32", fl, 3));
  CHECK(fl[0] == 0.1f && fl[1] == 0.2f && fl[2] == 0.3f);
  CHECK_OK(graft_h5_attr_floats(f, "f3_int", fl, 3));
  CHECK(fl[0] == 1 && fl[1] == 2 && fl[2] == 3);
  expect_status("3 floats as 2", graft_h5_attr_floats(f, "f3_f64", fl, 2), GRAFT_ESHAPE,
                "expected 2 values, found 3");
  expect_status("rank-2 attribute", graft_h5_attr_floats(f, "rank2", fl, 3), GRAFT_ESHAPE,
                "attribute \"rank2\"");

  CHECK(strcmp(graft_h5_attr_kind(f, "s_vlen"), "string") == 0);
  CHECK(strcmp(graft_h5_attr_kind(f, "i_scalar"), "integer") == 0);
  CHECK(strcmp(graft_h5_attr_kind(f, "d_scalar"), "float") == 0);
  CHECK(strcmp(graft_h5_attr_kind(f, "nope"), "other") == 0);
  CHECK(graft_h5_has_attr(f, "s_vlen") && !graft_h5_has_attr(f, "nope"));
  CHECK(!graft_h5_has_attr(f, "a/b"));
  CHECK_OK(graft_h5_attr_names(f, &v, &n));
  CHECK_MSG(n == 22, "%d attributes", n);
  for (int i = 1; i < n; i++) CHECK(strcmp(v[i - 1], v[i]) < 0);
  graft_strv_free(v, n);
  graft_h5_close(f);
}

static void test_datasets(void) {
  printf("datasets\n");
  graft_h5 *f;
  CHECK_OK(graft_h5_open(fixture("data.h5"), &f));
  float v[10];
  int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d6[1] = {6}, d10[1] = {10};
  CHECK_OK(graft_h5_read_f32(f, "f32", 2, d23, v, true));
  for (int i = 0; i < 6; i++) CHECK(v[i] == (float)i);
  memset(v, 0, sizeof v);
  CHECK_OK(graft_h5_read_f32(f, "f32be", 2, d23, v, true));
  for (int i = 0; i < 6; i++) CHECK(v[i] == (float)i);
  CHECK_OK(graft_h5_check_f32(f, "f32", 2, d23));
  expect_status("f64 as f32", graft_h5_read_f32(f, "f64", 2, d23, v, true), GRAFT_EFORMAT,
                "dataset \"f64\": expected float32, found float64");
  expect_status("i32 as f32", graft_h5_read_f32(f, "i32", 2, d23, v, true), GRAFT_EFORMAT,
                "expected float32, found int32");
  expect_status("transposed", graft_h5_read_f32(f, "f32", 2, d32, v, true), GRAFT_ESHAPE,
                "dataset \"f32\": expected shape [3,2], found [2,3]");
  expect_status("flattened", graft_h5_check_f32(f, "f32", 1, d6), GRAFT_ESHAPE,
                "expected shape [6], found [2,3]");
  expect_status("NaN", graft_h5_read_f32(f, "nan", 1, d10, v, true), GRAFT_ENONFINITE,
                "dataset \"nan\": NaN at flat index 4");
  CHECK_OK(graft_h5_read_f32(f, "nan", 1, d10, v, false));
  CHECK(isnan(v[4]));
  expect_status("Inf", graft_h5_read_f32(f, "inf", 1, d10, v, true), GRAFT_ENONFINITE,
                "infinity at flat index 9");
  CHECK_OK(graft_h5_read_f32(f, "scalar", 0, NULL, v, true));
  CHECK(v[0] == 1.5f);
  expect_status("unallocated", graft_h5_check_f32(f, "unallocated", 2, d23), GRAFT_EFORMAT,
                "no data stored");
  expect_status("group", graft_h5_check_f32(f, "group", 2, d23), GRAFT_EFORMAT, "is a group");
  expect_status("missing dataset", graft_h5_check_f32(f, "nope", 2, d23), GRAFT_ENOENT,
                "dataset \"nope\": missing");
  /* Paths below the root: hard links to groups all the way. */
  memset(v, 0, sizeof v);
  CHECK_OK(graft_h5_read_f32(f, "group/sub/f32", 2, d23, v, true));
  CHECK(v[5] == 5.0f);
  float rows[3];
  CHECK_OK(graft_h5_read_f32_rows(f, "group/sub/f32", 2, d23, 1, 1, rows, true));
  CHECK(rows[0] == 3.0f && rows[2] == 5.0f);
  expect_status("rows past the end", graft_h5_read_f32_rows(f, "f32", 2, d23, 1, 2, rows, true),
                GRAFT_EINVAL, "rows 1..3 outside");
  expect_status("NaN in rows", graft_h5_read_f32_rows(f, "nan", 1, d10, 3, 2, v, true),
                GRAFT_ENONFINITE, "NaN at flat index 4 (of 10 values)");
  int rank;
  int64_t shape[4];
  CHECK_OK(graft_h5_dataset_shape(f, "group/sub/f32", &rank, shape, 4));
  CHECK(rank == 2 && shape[0] == 2 && shape[1] == 3);
  expect_status("a/b", graft_h5_check_f32(f, "a/b", 2, d23), GRAFT_ENOENT, "\"a\" missing");
  expect_status("missing in a group", graft_h5_check_f32(f, "group/nope", 2, d23), GRAFT_ENOENT,
                "dataset \"group/nope\": missing");
  expect_status("through a soft link", graft_h5_check_f32(f, "link/sub/f32", 2, d23),
                GRAFT_EUNSUPPORTED, "\"link\" is a soft link, not a group");
  expect_status("a soft link", graft_h5_check_f32(f, "group/soft", 2, d23), GRAFT_EUNSUPPORTED,
                "is a soft link, not a dataset");
  expect_status("through a dataset", graft_h5_check_f32(f, "f32/x", 2, d23), GRAFT_EFORMAT,
                "\"f32\" is a dataset, not a group");
  const char *invalid[] = {"group/../f32", "/f32", "group//sub/f32", "group/./sub", "group/"};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
    expect_status(invalid[i], graft_h5_check_f32(f, invalid[i], 2, d23), GRAFT_EINVAL, NULL);
  CHECK(graft_h5_has_group(f, "group") && graft_h5_has_group(f, "group/sub"));
  CHECK(!graft_h5_has_group(f, "f32") && !graft_h5_has_group(f, "link") &&
        !graft_h5_has_group(f, "nope"));
  char **names_at;
  int n_at;
  CHECK_OK(graft_h5_attr_strings_at(f, "group", "names", &names_at, &n_at));
  CHECK(n_at == 2 && strcmp(names_at[1], "dog") == 0);
  graft_strv_free(names_at, n_at);
  CHECK(strcmp(graft_h5_attr_kind_at(f, "group", "empty"), "float") == 0);
  CHECK(strcmp(graft_h5_attr_kind_at(f, "group", "nope"), "missing") == 0);
  CHECK(strcmp(graft_h5_attr_kind_at(f, "nope", "names"), "missing") == 0);
  CHECK(graft_h5_has_attr_at(f, "group", "names") && !graft_h5_has_attr_at(f, "link", "names"));
  expect_status("strings of a float array",
                graft_h5_attr_strings_at(f, "group", "empty", &names_at, &n_at), GRAFT_EFORMAT,
                "attribute \"empty\": expected a string");

  int64_t i64[4], d4[1] = {4}, d5[1] = {5};
  CHECK_OK(graft_h5_read_i64(f, "i64", 1, d4, i64));
  CHECK(i64[0] == 1 && i64[1] == -2 && i64[2] == 3 && i64[3] == ((int64_t)1 << 40));
  expect_status("i32 as i64", graft_h5_read_i64(f, "i32", 2, d23, i64), GRAFT_EFORMAT,
                "expected a 64-bit integer, found int32");
  uint8_t u8[5];
  CHECK_OK(graft_h5_read_u8(f, "u8", 1, d5, u8));
  CHECK(u8[0] == 0 && u8[3] == 254 && u8[4] == 255);
  expect_status("f32 as u8", graft_h5_read_u8(f, "f32", 2, d23, u8), GRAFT_EFORMAT,
                "expected an 8-bit integer, found float32");

  char **names;
  int n;
  CHECK_OK(graft_h5_dataset_names(f, &names, &n));
  const char *want[] = {"f32", "f32be", "f64", "i32", "i64", "inf", "nan", "scalar", "u8",
                        "unallocated"};
  CHECK_MSG(n == 10, "%d datasets", n);
  for (int i = 0; i < n && i < 10; i++) CHECK_MSG(strcmp(names[i], want[i]) == 0, "%s", names[i]);
  graft_strv_free(names, n);
  CHECK(graft_h5_has_dataset(f, "f32") && !graft_h5_has_dataset(f, "group"));
  CHECK(!graft_h5_has_dataset(f, "nope"));
  graft_h5_close(f);

  CHECK_OK(graft_h5_open(fixture("userblock.h5"), &f));
  memset(v, 0, sizeof v);
  CHECK_OK(graft_h5_read_f32(f, "f32", 2, d23, v, true));
  CHECK(v[5] == 5.0f);
  char s[8];
  CHECK_OK(graft_h5_attr_string(f, "s", s, sizeof s));
  CHECK(strcmp(s, "hello") == 0);
  graft_h5_close(f);
}

static void test_writer(void) {
  printf("writer\n");
  /* Tens of thousands of strings: beyond an object header's 64 KiB. */
  enum { NS = 30000 };
  char **many = calloc(NS, sizeof *many);
  for (int i = 0; i < NS; i++) {
    many[i] = malloc(32);
    snprintf(many[i], 32, "class number %d", i);
  }
  const char *path = fixture("writer.h5");
  graft_h5w *w;
  CHECK_OK(graft_h5w_create(path, &w));
  CHECK_OK(graft_h5w_attr_strings(w, "many", many, NS));
  CHECK_OK(graft_h5w_attr_string(w, "s", "value"));
  CHECK_OK(graft_h5w_attr_double(w, "d", -2.5));
  int64_t i64[3] = {-1, 0, INT64_MAX}, d3[1] = {3}, d0[1] = {0};
  uint8_t u8[3] = {1, 2, 255};
  CHECK_OK(graft_h5w_i64(w, "i64", 1, d3, i64));
  CHECK_OK(graft_h5w_u8(w, "u8", 1, d3, u8));
  float one = 1.0f;
  CHECK_OK(graft_h5w_f32(w, "scalar", 0, NULL, &one));
  CHECK_OK(graft_h5w_f32(w, "empty", 1, d0, NULL));
  CHECK_OK(graft_h5w_commit(w));

  graft_h5 *f;
  CHECK_OK(graft_h5_open(path, &f));
  char **back;
  int n;
  CHECK_OK(graft_h5_attr_strings(f, "many", &back, &n));
  CHECK(n == NS);
  for (int i = 0; i < n && i < NS; i++) CHECK_MSG(strcmp(back[i], many[i]) == 0, "string %d", i);
  graft_strv_free(back, n);
  graft_strv_free(many, NS);
  char buf[16];
  CHECK_OK(graft_h5_attr_string(f, "s", buf, sizeof buf));
  CHECK(strcmp(buf, "value") == 0);
  double d;
  CHECK_OK(graft_h5_attr_double(f, "d", &d));
  CHECK(d == -2.5);
  int64_t i64b[3];
  uint8_t u8b[3];
  CHECK_OK(graft_h5_read_i64(f, "i64", 1, d3, i64b));
  CHECK(memcmp(i64, i64b, sizeof i64) == 0);
  CHECK_OK(graft_h5_read_u8(f, "u8", 1, d3, u8b));
  CHECK(memcmp(u8, u8b, sizeof u8) == 0);
  float fb = 0;
  CHECK_OK(graft_h5_read_f32(f, "scalar", 0, NULL, &fb, true));
  CHECK(fb == 1.0f);
  CHECK_OK(graft_h5_read_f32(f, "empty", 1, d0, NULL, true));
  graft_h5_close(f);
  unlink(path);

  /* A failed write poisons the file: commit refuses, nothing is left behind. */
  CHECK_OK(graft_h5w_create(path, &w));
  CHECK_OK(graft_h5w_attr_int(w, "x", 1));
  expect_status("attribute twice", graft_h5w_attr_int(w, "x", 2), GRAFT_EIO, "attribute \"x\"");
  expect_status("commit after failure", graft_h5w_commit(w), GRAFT_EIO, "earlier write");
  CHECK(access(path, F_OK) != 0);
  CHECK_OK(graft_h5w_create(path, &w));
  CHECK_OK(graft_h5w_attr_int(w, "x", 1));
  graft_h5w_abort(w);
  CHECK(access(path, F_OK) != 0);
  CHECK_MSG(temp_files_left() == 0, "temporary files left in %s", dir);
}

/* ---- several threads at once (the library serialises HDF5 behind one lock) ---- */

static char data_path[4200], attrs_path[4200]; /* graft_test_path is not thread-safe */

static void *reader(void *arg) {
  (void)arg;
  int bad = 0;
  for (int i = 0; i < 50; i++) {
    graft_h5 *f;
    float v[10];
    char **names;
    int n;
    int64_t d23[2] = {2, 3};
    if (graft_h5_open(data_path, &f) != GRAFT_OK) {
      bad++;
      continue;
    }
    bad += graft_h5_read_f32(f, "f32", 2, d23, v, true) != GRAFT_OK || v[5] != 5.0f;
    bad += graft_h5_read_f32(f, "nan", 1, (int64_t[]){10}, v, true) != GRAFT_ENONFINITE;
    graft_h5_close(f);
    if (graft_h5_open(attrs_path, &f) != GRAFT_OK) {
      bad++;
      continue;
    }
    if (graft_h5_attr_strings(f, "names_vlen", &names, &n) == GRAFT_OK)
      graft_strv_free(names, n);
    else
      bad++;
    graft_h5_close(f);
  }
  return (void *)(intptr_t)bad;
}

static void test_threads(void) {
  printf("4 threads\n");
  pthread_t t[4];
  snprintf(data_path, sizeof data_path, "%s", fixture("data.h5"));
  snprintf(attrs_path, sizeof attrs_path, "%s", fixture("attrs.h5"));
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, reader, NULL) == 0);
  for (int i = 0; i < 4; i++) {
    void *bad = NULL;
    pthread_join(t[i], &bad);
    CHECK_MSG(bad == NULL, "thread %d: %d failures", i, (int)(intptr_t)bad);
  }
}

/* ---- a file from models/export_torchvision.py ---- */

static void test_exported(void) {
  printf("exported by export_torchvision.py\n");
  CHECK(python(on_dir("reference")) == 0);
  graft_model *m;
  CHECK_OK(graft_model_load(fixture("base.h5"), &m));
  CHECK(strcmp(m->arch.name, "alexnet") == 0 && m->arch.num_classes == 10);
  CHECK(m->class_names && strcmp(m->class_names[3], "caf\xc3\xa9 cr\xc3\xa8me") == 0);
  CHECK(m->class_names && strcmp(m->class_names[9], "class_9") == 0);
  graft_preproc def;
  graft_preproc_default(&def);
  CHECK(memcmp(&m->pre, &def, sizeof def) == 0);
  FILE *ref = fopen(fixture("base_ref.txt"), "r");
  CHECK(ref != NULL);
  char name[64];
  size_t index;
  float want;
  int compared = 0, params_seen = 0;
  const graft_param *last = NULL;
  while (ref && fscanf(ref, "%63s %zu %f", name, &index, &want) == 3) {
    const graft_param *p = graft_arch_find_param(&m->arch, name);
    CHECK_MSG(p != NULL, "no parameter %s", name);
    if (!p) continue;
    if (p != last) params_seen++;
    last = p;
    CHECK(index < p->count);
    float got = graft_model_param(m, p)[index];
    CHECK_MSG(got == want, "%s[%zu]: %.9g, torchvision %.9g", name, index, got, want);
    compared++;
  }
  if (ref) fclose(ref);
  printf("  %d values of %d parameters equal torchvision's\n", compared, params_seen);
  CHECK(params_seen == 16 && compared >= 48);
  graft_model_free(m);
}

/* ---- the exported file, broken in place one way at a time ---- */

static void with_mutation(const char *cas, graft_status want, const char *n1, const char *n2,
                          int warnings_want) {
  char args[4200];
  snprintf(args, sizeof args, "mutate '%s' %s", fixture("base.h5"), cas);
  CHECK(python(args) == 0);
  clear_warnings();
  if (want == GRAFT_OK) {
    graft_model *m = NULL;
    graft_status s = graft_model_load(fixture("base.h5"), &m);
    printf("  %-16s %s%s%s", cas, graft_strerror(s), n_warnings ? "; warning: " : "\n", warnings);
    CHECK_MSG(s == GRAFT_OK, "%s: %s", cas, graft_detail());
    if (m && strcmp(cas, "fixed") == 0)
      CHECK(m->class_names && strcmp(m->class_names[3], "caf\xc3\xa9 cr\xc3\xa8me") == 0);
    graft_model_free(m);
  } else {
    expect_load_fail("base.h5", want, n1, n2);
  }
  if (n1 && want == GRAFT_OK) CHECK_MSG(strstr(warnings, n1) != NULL, "warnings: %s", warnings);
  CHECK_MSG(n_warnings == warnings_want, "%s: %d warnings, want %d: %s", cas, n_warnings,
            warnings_want, warnings);
  snprintf(args, sizeof args, "restore '%s' %s", fixture("base.h5"), cas);
  CHECK(python(args) == 0);
}

static void test_mutations(void) {
  printf("broken exports\n");
  with_mutation("nan", GRAFT_ENONFINITE, "dataset \"classifier.4.bias\": NaN at flat index 7",
                NULL, 0);
  with_mutation("inf", GRAFT_ENONFINITE,
                "dataset \"features.8.weight\": infinity at flat index 3475", NULL, 0);
  /* A file that fails to load gets its one error, no warnings besides. */
  with_mutation("missing", GRAFT_EFORMAT, "dataset \"features.3.bias\": missing", NULL, 0);
  with_mutation("extra", GRAFT_OK, "unexpected dataset \"extra_dataset\" ignored", NULL, 1);
  with_mutation("fixed", GRAFT_OK, NULL, NULL, 0);
  graft_model *m;
  CHECK_OK(graft_model_load(fixture("base.h5"), &m)); /* restored */
  graft_model_free(m);

  char args[8400];
  snprintf(args, sizeof args, "half '%s' '%s'", fixture("base.h5"), fixture("half.h5"));
  CHECK(python(args) == 0);
  expect_load_fail("half.h5", GRAFT_EFORMAT, NULL, NULL);
  unlink(fixture("half.h5"));
}

/* ---- small bad files ---- */

static void test_small(void) {
  printf("bad files\n");
  CHECK(python(on_dir("small")) == 0);
  expect_load_fail("no_format.h5", GRAFT_EFORMAT, "attribute \"format\": missing", NULL);
  expect_load_fail("bad_format.h5", GRAFT_EFORMAT, "attribute \"format\"", "\"keras\"");
  expect_load_fail("bad_version.h5", GRAFT_EUNSUPPORTED, "attribute \"version\"", "2");
  expect_load_fail("bad_arch.h5", GRAFT_EUNSUPPORTED,
                   "attribute \"arch\": unknown architecture \"resnet\" (expected alexnet, vgg16)",
                   NULL);
  expect_load_fail("nc_string.h5", GRAFT_EFORMAT,
                   "attribute \"num_classes\": expected an integer, found a string", NULL);
  expect_load_fail("nc_zero.h5", GRAFT_ERANGE, "attribute \"num_classes\"", NULL);
  expect_load_fail("names_count.h5", GRAFT_ESHAPE,
                   "attribute \"class_names\": 3 names for 10 classes", NULL);
  expect_load_fail("names_ctrl.h5", GRAFT_EFORMAT, "attribute \"class_names\"", "control");
  expect_load_fail("bad_crop.h5", GRAFT_ERANGE,
                   "attribute \"crop\": 40 is too small for alexnet (at least 63)", NULL);
  expect_load_fail("bad_std.h5", GRAFT_ERANGE, "attribute \"std\"", NULL);
  expect_load_fail("mean_count.h5", GRAFT_ESHAPE,
                   "attribute \"mean\": expected 3 values, found 2", NULL);
  expect_load_fail("none.h5", GRAFT_EFORMAT, "16 of 16 datasets missing: features.0.weight, ",
                   "classifier.6.bias");
  expect_load_fail(
      "wrong_shape.h5", GRAFT_ESHAPE,
      "dataset \"features.0.weight\": expected shape [64,3,11,11], found [64,3,11]", NULL);
  expect_load_fail("nc_mismatch.h5", GRAFT_ESHAPE,
                   "dataset \"classifier.6.weight\": expected shape [5,4096], found [7,4096]",
                   "num_classes is 5");
  expect_load_fail("int_dataset.h5", GRAFT_EFORMAT,
                   "dataset \"features.0.weight\": expected float32, found int32", NULL);
  expect_load_fail("f64_dataset.h5", GRAFT_EFORMAT, "found float64", NULL);
  expect_load_fail("gzip.h5", GRAFT_EUNSUPPORTED, "dataset \"features.0.weight\"", "chunked");
  expect_load_fail("chunked.h5", GRAFT_EUNSUPPORTED, "dataset \"features.0.weight\"", "chunked");
  expect_load_fail("external.h5", GRAFT_EUNSUPPORTED, "dataset \"features.0.weight\"",
                   "external");
  expect_load_fail("compact.h5", GRAFT_EUNSUPPORTED, "dataset \"features.0.bias\"", "compact");
  expect_load_fail("softlink.h5", GRAFT_EUNSUPPORTED, "dataset \"features.0.weight\"",
                   "soft link");
  expect_load_fail("group.h5", GRAFT_EFORMAT, "dataset \"features.0.weight\"", "group");
  expect_load_fail("unallocated.h5", GRAFT_EFORMAT, "dataset \"features.0.weight\"",
                   "no data stored");
  expect_load_fail("past_eof.h5", GRAFT_EFORMAT, "dataset \"features.0.weight\"",
                   "past the end of the file");
  expect_load_fail("cut.h5", GRAFT_EFORMAT, NULL, NULL);
  expect_load_fail("text.h5", GRAFT_EFORMAT, "not an HDF5 file", NULL);
  expect_load_fail("empty.h5", GRAFT_EFORMAT, "not an HDF5 file", NULL);
  expect_load_fail("no_such_file.h5", GRAFT_ENOENT, NULL, NULL);
  expect_load_fail(".", GRAFT_EINVAL, "directory", NULL);
}

int main(void) {
  graft_set_log(on_warning, NULL);
  dir = graft_test_tmpdir("weights");
  test_round_trip("alexnet", 5);
  test_round_trip("vgg16", 3);
  test_writer();
  if (graft_test_failures) return graft_test_finish("weights");
  graft_test_python_or_skip(); /* the rest needs h5py fixtures */
  test_small();
  test_attributes();
  test_datasets();
  test_threads();
  test_exported();
  test_mutations();
  unlink(fixture("base.h5"));
  CHECK_MSG(temp_files_left() == 0, "temporary files left in %s", dir);
  return graft_test_finish("weights");
}
