/* Keras VGG16 weights files (models/keras.c) against a seeded torchvision
 * VGG16 written in Keras's layout by test/make_keras.py:
 *  - every naming generation, fixed and variable strings, with and without
 *    the top, a whole-model file: each parameter bit for bit what graft's
 *    conversion must give (expected.h5), the preprocessing, the class names,
 *    whether a classifier came with the file;
 *  - broken files: the status and a one-line detail naming the layer;
 *  - with the shared images: graft's logits on the with-top file against
 *    Keras's own computation (BGR, caffe mean, NHWC flatten), within 1e-4. */
#include <math.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/devices.h"
#include "engine/net.h"
#include "harness.h"
#include "io/batch.h"
#include "io/h5.h"
#include "models/keras.h"
#include "models/model.h"

static const char *dir;

static const char *fixture(const char *name) { return graft_test_path(dir, name); }

/* Every parameter (the trunk's only for a file without its top) as expected.h5 has it. */
static void check_params(const char *name, const graft_model *m, graft_h5 *want, bool top) {
  int64_t worst = 0;
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    if (p->in_classifier && !top) continue;
    float *v = graft_test_alloc(p->count * sizeof(float));
    CHECK_OK(graft_h5_read_f32(want, p->name, p->rank, p->dims, v, true));
    graft_test_diff d =
        graft_test_compare(graft_test_f(graft_model_param(m, p)), graft_test_f(v), NULL, p->count);
    int64_t differ = (int64_t)d.bits_differ;
    CHECK_MSG(differ == 0, "%s: %s: %lld values differ from the expected conversion (first %zu)",
              name, p->name, (long long)differ, d.first_differ);
    worst = differ > worst ? differ : worst;
    free(v);
  }
  if (!top) {
    /* No classifier came with the file: its parameters are zeros. */
    const float *h = m->params + m->arch.classifier_offset;
    size_t nonzero = 0;
    for (size_t j = 0; j < m->arch.n_floats - m->arch.classifier_offset; j++) nonzero += h[j] != 0;
    CHECK_MSG(nonzero == 0, "%s: %zu classifier values are not zero", name, nonzero);
  }
  printf("  %-26s %s, %d params compared bit for bit%s\n", name, top ? "with top" : "trunk",
         top ? m->arch.n_params : m->arch.n_params - 6, worst ? " (DIFFER)" : "");
}

static void check_good(const char *name, bool top, graft_h5 *want) {
  graft_model *m = NULL;
  graft_status s = graft_model_load(fixture(name), &m);
  CHECK_MSG(s == GRAFT_OK, "%s: %s", name, graft_detail());
  if (s != GRAFT_OK) return;
  CHECK(strcmp(m->arch.name, "vgg16") == 0);
  CHECK_MSG(m->no_classifier == !top, "%s: no_classifier is %d", name, m->no_classifier);
  CHECK(m->arch.num_classes == 1000);
  const float mean[3] = {(float)(123.68 / 255.0), (float)(116.779 / 255.0),
                         (float)(103.939 / 255.0)};
  for (int c = 0; c < 3; c++) {
    CHECK_MSG(m->pre.mean[c] == mean[c], "%s: mean[%d] %.9g", name, c, m->pre.mean[c]);
    CHECK_MSG(m->pre.std[c] == (float)(GRAFT_KERAS_SCALE / 255.0), "%s: std[%d] %.9g", name, c,
              m->pre.std[c]);
  }
  CHECK(m->pre.resize == 256 && m->pre.crop == 224);
  if (top) {
    CHECK_MSG(m->class_names && strcmp(m->class_names[0], "tench") == 0 &&
                  strcmp(m->class_names[999], "toilet tissue") == 0,
              "%s: not the ImageNet class names", name);
  } else {
    CHECK_MSG(m->class_names == NULL, "%s: class names without a classifier", name);
  }
  check_params(name, m, want, top);
  graft_model_free(m);
}

/* A broken file: this status, a one-line detail with both texts, no path. */
static void check_bad(const char *name, graft_status want, const char *n1, const char *n2) {
  graft_test_expect_load_fail(dir, name, want, n1, n2);
}

/* graft on the with-top file against Keras's logits, image by image. */
static void check_logits(void) {
  graft_h5 *ref;
  CHECK_OK(graft_h5_open(fixture("logits.h5"), &ref));
  char **images;
  int n;
  CHECK_OK(graft_h5_attr_strings(ref, "images", &images, &n));
  graft_model *m;
  CHECK_OK(graft_model_load(fixture("top_tf2_fixed.h5"), &m));
  const int k = m->arch.num_classes, crop = m->pre.crop;
  float *want = graft_test_alloc((size_t)n * k * sizeof(float));
  float *got = graft_test_alloc((size_t)n * k * sizeof(float));
  float *probs = graft_test_alloc((size_t)n * k * sizeof(float));
  float *x = graft_test_alloc((size_t)n * 3 * crop * crop * sizeof(float));
  graft_file_result *res = graft_test_alloc((size_t)n * sizeof *res);
  CHECK_OK(graft_h5_read_f32(ref, "logits", 2, (int64_t[]){n, k}, want, true));
  graft_decode_opts dec = {0, 0, 1};
  graft_preprocess_files(images, n, &m->pre, &dec, x, res);
  for (int i = 0; i < n; i++)
    CHECK_MSG(res[i].status == GRAFT_OK, "%s: %s", images[i], res[i].error);
  graft_backend *be;
  graft_backend_note note;
  graft_backend_options o = graft_test_backend_options();
  CHECK_OK(graft_backend_create(&o, &be, &note));
  graft_net *net;
  CHECK_OK(graft_net_create(be, &m->arch, m->params, n, crop, crop, &net));
  CHECK_OK(graft_net_predict(net, n, x, probs, got));
  for (int i = 0; i < n; i++) {
    const float *g = got + (size_t)i * k, *w = want + (size_t)i * k;
    double rel = graft_test_compare(graft_test_f(g), graft_test_f(w), NULL, (size_t)k).rel;
    int gt = 0, wt = 0;
    for (int c = 1; c < k; c++) {
      gt = g[c] > g[gt] ? c : gt;
      wt = w[c] > w[wt] ? c : wt;
    }
    printf("  logits of %s: relative error %.3g (top-1 %d \"%s\", Keras %d)\n",
           strrchr(images[i], '/') + 1, rel, gt, m->class_names[gt], wt);
    CHECK_MSG(rel <= 1e-4, "%s: logits differ from Keras's by %.3g", images[i], rel);
    CHECK_MSG(gt == wt, "%s: top-1 %d, Keras %d", images[i], gt, wt);
  }
  graft_net_destroy(net);
  graft_backend_destroy(be);
  graft_model_free(m);
  graft_strv_free(images, n);
  graft_h5_close(ref);
  free(want);
  free(got);
  free(probs);
  free(x);
  free(res);
}

int main(void) {
  dir = graft_test_tmpdir("keras");
  graft_test_python_or_skip();
  const char *data = graft_test_data_dir();
  char hym[4200], args[8600];
  snprintf(hym, sizeof hym, "%s/hymenoptera", data ? data : "");
  bool images = data != NULL;
  snprintf(args, sizeof args, "'%s'%s%s%s", dir, images ? " --data '" : "", images ? hym : "",
           images ? "'" : "");
  CHECK_MSG(graft_test_run_python("test/make_keras.py", args) == 0, "make_keras.py failed");
  if (graft_test_failures) return graft_test_finish("keras");

  printf("Keras files in each generation's layout\n");
  graft_h5 *want;
  CHECK_OK(graft_h5_open(fixture("expected.h5"), &want));
  check_good("top_tf2_fixed.h5", true, want);
  check_good("notop_keras3_vlen.h5", false, want);
  check_good("notop_keras1_fixed.h5", false, want);
  check_good("notop_tf2_vlen_model.h5", false, want);
  graft_h5_close(want);

  printf("Keras files that are not a VGG16 or are broken\n");
  check_bad("bad_vgg19.h5", GRAFT_ESHAPE,
            "Keras layer \"block3_conv4\" (VGG16's 8th layer with weights is block4_conv1)",
            "expected shape [3,3,256,512], found [3,3,256,256]");
  check_bad("bad_resnet.h5", GRAFT_ESHAPE, "Keras layer \"conv1_conv\" (VGG16's 1st layer",
            "expected shape [3,3,3,64], found [7,7,3,64]");
  check_bad("bad_shape.h5", GRAFT_ESHAPE, "Keras layer \"block2_conv1\": dataset",
            "expected shape [128], found [127]");
  check_bad("bad_missing.h5", GRAFT_ENOENT, "Keras layer \"block1_conv2\"",
            "\"block1_conv2/block1_conv2/kernel:0\": missing");
  check_bad("bad_int.h5", GRAFT_EFORMAT, "Keras layer \"block1_conv1\"",
            "expected float32, found int32");
  check_bad("bad_nan.h5", GRAFT_ENONFINITE, "Keras layer \"block3_conv3\"", "NaN at flat index");
  check_bad("bad_channels_first.h5", GRAFT_ESHAPE, "block1_conv1_W_1:0",
            "a channels-first (Theano-ordered) kernel");
  check_bad("bad_few.h5", GRAFT_ESHAPE, "2 layers with weights, the last \"block1_conv2\"",
            "block2_conv1 is missing");
  check_bad("bad_nobias.h5", GRAFT_ESHAPE, "Keras layer \"block1_conv1\"",
            "1 weight, expected 2 (kernel, bias)");
  check_bad("bad_head.h5", GRAFT_ESHAPE,
            "Keras layer \"dense\" (VGG16's 14th layer with weights is fc1)",
            "expected shape [25088,4096], found [25088,256]");
  check_bad("bad_group.h5", GRAFT_EFORMAT, "Keras layer \"block1_conv2\": no group", NULL);
  check_bad("bad_names.h5", GRAFT_EFORMAT, "attribute \"layer_names\"", "expected a string");

  if (images) {
    printf("logits against Keras's computation\n");
    check_logits();
  } else {
    printf("SKIP (logits): no shared images (set GRAFT_DATA)\n");
  }
  /* The big files go; the small ones stay to look at. */
  const char *big[] = {"top_tf2_fixed.h5", "expected.h5", "notop_keras3_vlen.h5",
                       "notop_keras1_fixed.h5", "notop_tf2_vlen_model.h5", "bad_nan.h5",
                       "bad_head.h5"};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) remove(fixture(big[i]));
  return graft_test_finish("keras");
}
