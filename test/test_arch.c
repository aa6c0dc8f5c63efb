/* The layer tables give torchvision's parameter names, shapes and counts. */
#include <string.h>

#include "harness.h"
#include "models/arch.h"

static void check_param(const graft_arch *a, const char *name, int rank, const long long *dims) {
  const graft_param *p = graft_arch_find_param(a, name);
  CHECK_MSG(p != NULL, "%s: no parameter %s", a->name, name);
  if (!p) return;
  CHECK_MSG(p->rank == rank, "%s rank %d", name, p->rank);
  for (int i = 0; i < rank && i < p->rank; i++)
    CHECK_MSG(p->dims[i] == dims[i], "%s dim %d: %lld vs %lld", name, i, (long long)p->dims[i],
              dims[i]);
}

int main(void) {
  graft_arch a;
  CHECK_OK(graft_arch_init(&a, "alexnet", 1000));
  /* torchvision: sum(p.numel() for p in alexnet().parameters()) */
  CHECK_MSG(a.n_floats == 61100840, "alexnet params %zu", a.n_floats);
  CHECK(a.n_params == 16);
  CHECK(a.feature_dim == 9216);
  check_param(&a, "features.0.weight", 4, (long long[]){64, 3, 11, 11});
  check_param(&a, "features.3.weight", 4, (long long[]){192, 64, 5, 5});
  check_param(&a, "features.10.bias", 1, (long long[]){256});
  check_param(&a, "classifier.1.weight", 2, (long long[]){4096, 9216});
  check_param(&a, "classifier.6.weight", 2, (long long[]){1000, 4096});
  CHECK(strcmp(a.params[a.n_params - 1].name, "classifier.6.bias") == 0);
  CHECK(a.params[10].in_classifier && !a.params[9].in_classifier);
  CHECK(a.classifier_offset == a.params[10].offset);
  /* parameter roles by index: each layer names its weight and bias; the head
   * is the last Linear */
  const graft_layer *head = &a.classifier[a.head];
  CHECK(head->kind == GRAFT_LAYER_LINEAR && a.head == a.n_classifier - 1);
  CHECK(strcmp(a.params[head->weight].name, "classifier.6.weight") == 0);
  CHECK(a.params[head->bias].role == GRAFT_PARAM_BIAS && head->bias == a.n_params - 1);
  for (int i = 0; i < a.n_params; i++) {
    const graft_param *p = &a.params[i];
    const graft_layer *l = graft_arch_layer_of(&a, p);
    CHECK_MSG((p->role == GRAFT_PARAM_WEIGHT ? l->weight : l->bias) == i, "%s", p->name);
    CHECK_MSG(strstr(p->name, p->role == GRAFT_PARAM_WEIGHT ? ".weight" : ".bias"), "%s", p->name);
  }

  CHECK_OK(graft_arch_init(&a, "vgg16", 2));
  CHECK_MSG(a.n_floats == 134268738, "vgg16 params %zu", a.n_floats);
  CHECK(a.n_params == 32);
  CHECK(a.feature_dim == 25088);
  check_param(&a, "features.28.weight", 4, (long long[]){512, 512, 3, 3});
  check_param(&a, "classifier.0.weight", 2, (long long[]){4096, 25088});
  check_param(&a, "classifier.6.weight", 2, (long long[]){2, 4096});
  CHECK(graft_arch_find_param(&a, "features.29.weight") == NULL);
  /* VGG16 forward: 15.5 GMAC */
  double f = graft_arch_flops(&a, 224, 224);
  CHECK_MSG(f > 30.9e9 && f < 31.0e9, "vgg16 flops %g", f);

  CHECK(graft_arch_init(&a, "resnet50", 10) == GRAFT_EINVAL);
  CHECK(strstr(graft_detail(), "resnet50") != NULL);
  CHECK(graft_arch_init(&a, "alexnet", 0) == GRAFT_ERANGE);
  return graft_test_finish("arch");
}
