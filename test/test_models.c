/* Whole models against PyTorch: seeded AlexNet and VGG16 exported by our
 * script, logits for fixed inputs (224x224, and 256x300 where the adaptive
 * pooling is not the identity) checked to 1e-4 of the logits' norm.
 * Usage: test_models ARCH */
#include <string.h>

#include "engine/backend.h"
#include "engine/devices.h"
#include "engine/net.h"
#include "harness.h"
#include "io/h5.h"
#include "models/model.h"

static const int sizes[][2] = {{224, 224}, {256, 300}};
enum { BATCH = 2 };

int main(int argc, char **argv) {
  const char *arch = argc > 1 ? argv[1] : "alexnet";
  const char *device = argc > 2 ? argv[2] : "cpu";
  char name[64], args[4200];
  snprintf(name, sizeof name, "models-%s", arch);
  const char *dir = graft_test_tmpdir(name);
  graft_test_python_or_skip();
  snprintf(args, sizeof args, "--arch %s --seed 1 --num-classes 10 --batch %d --out '%s'", arch,
           BATCH, dir);
  CHECK_MSG(graft_test_run_python("test/ref_models.py", args) == 0, "reference script failed");
  if (graft_test_failures) return graft_test_finish(name);

  graft_backend *be;
  graft_backend_note note;
  /* PyTorch's reference is fp32 on the CPU: on a GPU, no TF32 */
  graft_backend_options o = {.device = device};
  if (strcmp(device, "cpu") != 0) o.precision = GRAFT_PRECISION_FP32_STRICT;
  graft_status st = graft_backend_create(&o, &be, &note);
  if (st == GRAFT_ENODEV) graft_test_skip("%s: %s", device, graft_detail());
  CHECK_OK(st);
  printf("%s, %s\n", graft_backend_describe(be), graft_precision_name(o.precision));
  graft_model *m;
  CHECK_OK(graft_model_load(graft_test_path(dir, "model.h5"), &m));
  graft_h5 *ref;
  CHECK_OK(graft_h5_open(graft_test_path(dir, "ref.h5"), &ref));

  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    int h = sizes[si][0], w = sizes[si][1], k = m->arch.num_classes;
    size_t in_count = (size_t)BATCH * 3 * h * w;
    float *x = malloc(in_count * sizeof *x), *want = malloc((size_t)BATCH * k * sizeof *want);
    float *got = malloc((size_t)BATCH * k * sizeof *got), *probs = malloc((size_t)BATCH * k * 4);
    CHECK(x && want && got && probs);
    char ds[64];
    snprintf(ds, sizeof ds, "input_%dx%d", h, w);
    CHECK_OK(graft_h5_read_f32(ref, ds, 4, (int64_t[]){BATCH, 3, h, w}, x, true));
    snprintf(ds, sizeof ds, "logits_%dx%d", h, w);
    CHECK_OK(graft_h5_read_f32(ref, ds, 2, (int64_t[]){BATCH, k}, want, true));

    graft_net *net;
    CHECK_OK(graft_net_create(be, &m->arch, m->params, BATCH, h, w, &net));
    CHECK_OK(graft_net_predict(net, BATCH, x, probs, got));
    graft_test_diff d =
        graft_test_compare(graft_test_f(got), graft_test_f(want), NULL, (size_t)BATCH * k);
    double rel = d.rel;
    size_t at = d.where;
    printf("%s %s %dx%d batch %d: relative error %.3g, max |diff| %.3g at %zu (%g vs %g)\n",
           arch, graft_backend_name(be), h, w, BATCH, rel, d.max_abs, at, got[at], want[at]);
    CHECK_MSG(rel <= 1e-4, "%s %dx%d logits differ from PyTorch: %.3g", arch, h, w, rel);
    /* one image alone (the second plan slot) gives the same logits */
    CHECK_OK(graft_net_predict(net, 1, x + 3 * (size_t)h * w, probs, got));
    rel = graft_test_compare(graft_test_f(got), graft_test_f(want + k), NULL, (size_t)k).rel;
    printf("%s %dx%d batch 1: relative error %.3g\n", arch, h, w, rel);
    CHECK_MSG(rel <= 1e-4, "%s %dx%d batch 1 logits differ: %.3g", arch, h, w, rel);
    for (int i = 0; i < k; i++) CHECK(probs[i] >= 0 && probs[i] <= 1);
    graft_net_destroy(net);
    free(x);
    free(want);
    free(got);
    free(probs);
  }
  graft_h5_close(ref);
  graft_model_free(m);
  graft_backend_destroy(be);
  return graft_test_finish(name);
}
