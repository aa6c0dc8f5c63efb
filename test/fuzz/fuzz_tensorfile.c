/* libFuzzer harness for the in-process weights readers: one binary per
 * kind, FUZZ_KIND naming it.
 *   pickle       the legacy .pth reader (a sequence of pickles and storage
 *                data: io/pickle.c, models/pth.c) and the bare unpickler
 *   zip          the zip reader (io/zip.c) and the zip .pth reader
 *   safetensors  the safetensors reader (io/safetensors.c, io/json.c)
 * and, for each, the whole load from bytes to a model (models/tensorfile.c).
 * These readers run in the caller's process (no isolation): any crash,
 * sanitizer report or leak is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/log.h"
#include "io/json.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/zip.h"
#include "models/tensorfile.h"

#ifndef FUZZ_KIND
#error "FUZZ_KIND names the reader: pickle, zip or safetensors"
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int kind; /* 0 pickle, 1 zip, 2 safetensors */

static void quiet(const char *msg, void *user) {
  (void)msg;
  (void)user;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *k = STR(FUZZ_KIND);
  kind = strcmp(k, "pickle") == 0 ? 0 : strcmp(k, "zip") == 0 ? 1 : 2;
  graft_set_log(quiet, NULL); /* "unexpected tensor" warnings */
  return 0;
}

static void pickles(const uint8_t *d, size_t n) {
  static const graft_pk_global allowed[] = {{"collections", "OrderedDict", GRAFT_PK_G_DICT},
                                            {"torch._utils", "_rebuild_tensor_v2", GRAFT_PK_G_CALL},
                                            {"torch", "FloatStorage", GRAFT_PK_G_VALUE}};
  size_t at = 0;
  for (int i = 0; i < 8 && at < n; i++) { /* a sequence, as in legacy files */
    graft_pickle *p;
    size_t used;
    if (graft_pickle_load(d + at, n - at, allowed, 3, &p, &used) != GRAFT_OK) break;
    graft_pk_ref r = graft_pickle_root(p);
    for (int j = 0; j < graft_pk_count(p, r); j++) (void)graft_pk_type_of(p, graft_pk_at(p, r, j));
    graft_pickle_free(p);
    at += used;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  graft_tensor_ref *t = NULL;
  int count = 0;
  if (kind == 0) {
    pickles(d, n);
    if (graft__pth_tensors(d, n, false, &t, &count) == GRAFT_OK) free(t);
  } else if (kind == 1) {
    graft_zip *z;
    if (graft_zip_open(d, n, &z) == GRAFT_OK) graft_zip_close(z);
    if (graft__pth_tensors(d, n, true, &t, &count) == GRAFT_OK) free(t);
  } else {
    graft_json *j;
    graft_json_ref meta;
    if (graft_safetensors_parse(d, n, &t, &count, &j, &meta) == GRAFT_OK) {
      free(t);
      graft_json_free(j);
    }
    if (n > 8 && graft_json_parse((const char *)d + 8, n - 8, &j) == GRAFT_OK) graft_json_free(j);
  }
  graft_model *m;
  if (graft__tensorfile_load(d, n, &m) == GRAFT_OK) graft_model_free(m);
  return 0;
}
