/* The kinds of HDF5 file graft reads (test/h5_kinds.h). */
#include "h5_kinds.h"

#include <string.h>

#include "apps/finetune/config.h"
#include "harness.h"
#include "io/h5.h"
#include "models/checkpoint.h"
#include "models/model.h"

const char *const h5_kind_names[H5_KINDS] = {"weights", "config", "checkpoint"};

int h5_kind_find(const char *name) {
  for (int k = 0; k < H5_KINDS; k++)
    if (strcmp(name, h5_kind_names[k]) == 0) return k;
  return -1;
}

graft_status h5_kind_read(h5_kind k, const char *path) {
  if (k == H5_WEIGHTS) {
    graft_model *m = NULL;
    graft_status s = graft_model_load(path, &m);
    graft_model_free(m);
    return s;
  }
  if (k == H5_CONFIG) {
    graft_config c;
    return graft_config_load(path, &c);
  }
  graft_checkpoint c;
  graft_status s = graft_checkpoint_load(path, SEED_CK_COUNT, SEED_CK_TRAIN, SEED_CK_VAL, &c);
  if (s == GRAFT_OK) graft_checkpoint_free(&c);
  return s;
}

/* Every io/h5 reader on every attribute and dataset the file lists. */
void h5_every_reader(const char *path) {
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

void h5_seed_checkpoint(const char *path, const graft_epoch_metrics *rows) {
  float params[SEED_CK_COUNT], momentum[SEED_CK_COUNT];
  for (int i = 0; i < SEED_CK_COUNT; i++) params[i] = momentum[i] = (float)i / SEED_CK_COUNT;
  uint8_t train_bad[SEED_CK_TRAIN] = {0, 1}, val_bad[SEED_CK_VAL] = {0};
  graft_epoch_metrics history[2] = {{1, 0.7, 0.5, 0.69, 0.5, 0.001, 1.5},
                                    {2, 0.6, 0.6, 0.68, 0.75, 0.001, 1.4}};
  if (rows) memcpy(history, rows, sizeof history);
  graft_checkpoint c = {.arch = "alexnet", .trainable = "head", .num_classes = 2,
                        .config_hash = 0x123456789abcdefull, .seed = 7, .epoch = 2, .step = 0,
                        .best_acc = 0.75, .best_epoch = 2, .count = SEED_CK_COUNT,
                        .params = params, .momentum = momentum, .n_history = 2,
                        .history = history, .n_train = SEED_CK_TRAIN, .n_val = SEED_CK_VAL,
                        .train_bad = train_bad, .val_bad = val_bad, .momentum_set = 1};
  CHECK_OK(graft_checkpoint_save(path, &c));
}

void h5_kind_seed(h5_kind k, const char *path) {
  if (k == H5_WEIGHTS) seed_weights(path);
  if (k == H5_CONFIG) seed_config(path);
  if (k == H5_CHECKPOINT) h5_seed_checkpoint(path, NULL);
}
