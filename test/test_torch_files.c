/* .pth and safetensors reading (models/tensorfile.c and the io/ readers).
 *
 *   test_torch_files unit      the readers on hand-made bytes: JSON strictness,
 *                              half and bfloat16 conversion, pickle opcodes and
 *                              refusals, zip and safetensors limits
 *   test_torch_files same A B  A and B load to the same model: architecture,
 *                              classes, class names, preprocessing and every
 *                              parameter bit for bit, and the class names
 *                              when both have them (test/torch_files.sh) */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "io/json.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/tensors.h"
#include "io/zip.h"
#include "models/model.h"

static int same(const char *a, const char *b) {
  graft_model *x, *y;
  CHECK_OK(graft_model_load(a, &x));
  CHECK_OK(graft_model_load(b, &y));
  CHECK_MSG(strcmp(x->arch.name, y->arch.name) == 0, "arch %s, %s", x->arch.name, y->arch.name);
  CHECK_MSG(x->arch.num_classes == y->arch.num_classes, "classes %d, %d", x->arch.num_classes,
            y->arch.num_classes);
  if (graft_test_failures) return graft_test_finish("torch_files same");
  CHECK(memcmp(&x->pre, &y->pre, sizeof x->pre) == 0);
  /* A .pth holds no names: compared when both files have them. */
  for (int i = 0; x->class_names && y->class_names && i < x->arch.num_classes; i++)
    CHECK_MSG(strcmp(x->class_names[i], y->class_names[i]) == 0, "class %d: %s, %s", i,
              x->class_names[i], y->class_names[i]);
  for (int i = 0; i < x->arch.n_params; i++) {
    const graft_param *p = &x->arch.params[i];
    CHECK_MSG(memcmp(graft_model_param(x, p), graft_model_param(y, p), p->count * 4) == 0,
              "%s differs", p->name);
  }
  printf("%s and %s: %s, %d classes, %d parameters, the same bits\n", a, b, x->arch.name,
         x->arch.num_classes, x->arch.n_params);
  graft_model_free(x);
  graft_model_free(y);
  return graft_test_finish("torch_files same");
}

static bool json_ok(const char *text) {
  graft_json *j;
  graft_status s = graft_json_parse(text, strlen(text), &j);
  graft_json_free(s == GRAFT_OK ? j : NULL);
  return s == GRAFT_OK;
}

static void unit_json(void) {
  const char *good[] = {"{}", "[]", "{\"a\": [1, -2.5e3, true, false, null]}",
                        "\"\\u00e9\\ud83d\\ude00\"", " 0 "};
  const char *bad[] = {"",         "{",         "[1,]",  "{\"a\":1,}",  "01", "NaN", "\"\\ud800\"",
                       "\"a\nb\"", "{\"a\" 1}", "[] []", "\"\\u0000\"", "1.", "-",   "tru"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    CHECK_MSG(json_ok(good[i]), "%s", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK_MSG(!json_ok(bad[i]), "%s", bad[i]);
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  graft_json *j;
  CHECK(graft_json_parse(deep, 200, &j) == GRAFT_EFORMAT && strstr(graft_detail(), "too deep"));
  const char *doc = "{\"x\": \"\\u00e9\", \"n\": 12}";
  CHECK_OK(graft_json_parse(doc, strlen(doc), &j));
  size_t len;
  const char *s = graft_json_string(j, graft_json_get(j, 0, "x"), &len);
  CHECK(len == 2 && (unsigned char)s[0] == 0xc3 && (unsigned char)s[1] == 0xa9);
  int64_t n;
  CHECK(graft_json_int(j, graft_json_get(j, 0, "n"), &n) && n == 12);
  graft_json_free(j);
}

static void unit_halves(void) {
  const uint8_t h[] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c, 0xff, 0x7b};
  float f[5];
  graft_tensor_to_f32(GRAFT_DT_F16, h, 5, f);
  CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] == ldexpf(1, -24) && isinf(f[3]) && f[4] == 65504.0f);
  const uint8_t b[] = {0x80, 0x3f, 0x49, 0x40};
  graft_tensor_to_f32(GRAFT_DT_BF16, b, 2, f);
  CHECK(f[0] == 1.0f && f[1] == 3.140625f);
}

static graft_status unpickle(const char *bytes, size_t n) {
  static const graft_pk_global allowed[] = {{"collections", "OrderedDict", GRAFT_PK_G_DICT},
                                            {"torch", "FloatStorage", GRAFT_PK_G_VALUE}};
  graft_pickle *p;
  size_t used;
  graft_status s = graft_pickle_load((const uint8_t *)bytes, n, allowed, 2, &p, &used);
  if (s == GRAFT_OK) graft_pickle_free(p);
  return s;
}

static void unit_pickle(void) {
  /* {'a': [1, 2.0]} at protocol 2, and an OrderedDict() */
  const char ok1[] =
      "\x80\x02}q\x00X\x01\x00\x00\x00"
      "aq\x01]q\x02(K\x01G@\x00\x00\x00\x00\x00\x00\x00"
      "es.";
  CHECK_OK(unpickle(ok1, sizeof ok1 - 1));
  const char ok2[] =
      "\x80\x02"
      "ccollections\nOrderedDict\nq\x00)Rq\x01.";
  CHECK_OK(unpickle(ok2, sizeof ok2 - 1));
  const char evil[] =
      "\x80\x02"
      "cos\nsystem\nX\x02\x00\x00\x00lsR.";
  CHECK(unpickle(evil, sizeof evil - 1) == GRAFT_EUNSUPPORTED &&
        strcmp(graft_detail(), "refuses global os.system") == 0);
  const char evil4[] =
      "\x80\x04\x8c\x08"
      "builtins\x8c\x04"
      "eval\x93.";
  CHECK(unpickle(evil4, sizeof evil4 - 1) == GRAFT_EUNSUPPORTED &&
        strcmp(graft_detail(), "refuses global builtins.eval") == 0);
  const char call[] =
      "\x80\x02"
      "ctorch\nFloatStorage\n)R.";
  CHECK(unpickle(call, sizeof call - 1) == GRAFT_EUNSUPPORTED &&
        strstr(graft_detail(), "refuses to call torch.FloatStorage"));
  const char *bad[] = {"\x80\x02",   "\x80\x02h\x05.", "\x80\x02X\xff\xff\xff\x7f",
                       "\x80\x02(.", "\x80\x02\x30.",  "\x80\x02i.",
                       "\x80\x09N."};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK_MSG(unpickle(bad[i], strlen(bad[i])) == GRAFT_EFORMAT, "bad pickle %zu: %s", i,
              graft_detail());
}

static void unit_containers(void) {
  graft_zip *z;
  const uint8_t junk[64] = "PK\x03\x04";
  CHECK(graft_zip_open(junk, sizeof junk, &z) == GRAFT_EFORMAT);
  graft_tensor_ref *t;
  int n;
  graft_json *j;
  graft_json_ref m;
  const char st[] =
      "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,"
      "4]}}";
  CHECK(graft_safetensors_parse((const uint8_t *)st, sizeof st - 1, &t, &n, &j, &m) ==
        GRAFT_EFORMAT);
  char ok[128] =
      "\x38\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,"
      "4]}}"
      "  \x00\x3c\x00\xc0";
  CHECK_OK(graft_safetensors_parse((const uint8_t *)ok, 8 + 56 + 4, &t, &n, &j, &m));
  CHECK(n == 1 && t[0].dtype == GRAFT_DT_F16 && t[0].count == 2 && m == -1);
  free(t);
  graft_json_free(j);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "same") == 0) return same(argv[2], argv[3]);
  if (argc != 2 || strcmp(argv[1], "unit") != 0) {
    fprintf(stderr, "usage: test_torch_files unit | same A B\n");
    return 2;
  }
  unit_json();
  unit_halves();
  unit_pickle();
  unit_containers();
  return graft_test_finish("torch_files unit");
}
