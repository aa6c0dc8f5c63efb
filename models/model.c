#include "models/model.h"

#include <stdlib.h>
#include <string.h>

#include "io/isolate.h"

graft_status graft_model_create(const char *arch, int num_classes, graft_model **out) {
  return graft__model_create_in(graft_arena_private(), arch, num_classes, out);
}

graft_status graft__model_create_in(graft_arena *mem, const char *arch, int num_classes,
                                    graft_model **out) {
  *out = NULL;
  graft_model *m = calloc(1, sizeof *m);
  if (!m) return graft__fail(GRAFT_ENOMEM, "model: out of memory");
  graft_status s = graft_arch_init(&m->arch, arch, num_classes);
  if (s != GRAFT_OK) {
    free(m);
    return s;
  }
  /* In a loader's arena, memory its caller keeps (io/isolate.h). */
  m->params = graft_arena_alloc(mem, m->arch.n_floats * sizeof(float));
  if (!m->params) {
    size_t n = m->arch.n_floats;
    free(m);
    return graft__fail(GRAFT_ENOMEM, "%s: cannot allocate %zu parameters", arch, n);
  }
  graft_preproc_default(&m->pre);
  *out = m;
  return GRAFT_OK;
}

static void free_names(graft_model *m) {
  if (!m->class_names) return;
  for (int i = 0; i < m->arch.num_classes; i++) free(m->class_names[i]);
  free(m->class_names);
  m->class_names = NULL;
}

void graft__model_drop(graft_model *m) {
  if (!m) return;
  free_names(m);
  free(m);
}

void graft_model_free(graft_model *m) {
  if (!m) return;
  free_names(m);
  graft_arena_free(m->params, m->arch.n_floats * sizeof(float));
  free(m);
}

graft_status graft_model_set_class_names(graft_model *m, char *const *names, int count) {
  if (count != m->arch.num_classes)
    return graft__fail(GRAFT_ESHAPE, "%d class names for %d classes", count,
                       m->arch.num_classes);
  char **v = calloc((size_t)count, sizeof *v);
  if (!v) return graft__fail(GRAFT_ENOMEM, "class names: out of memory");
  for (int i = 0; i < count; i++) {
    v[i] = strdup(names[i]);
    if (!v[i]) {
      for (int j = 0; j < i; j++) free(v[j]);
      free(v);
      return graft__fail(GRAFT_ENOMEM, "class names: out of memory");
    }
  }
  free_names(m);
  m->class_names = v;
  return GRAFT_OK;
}
