/* .pth and safetensors files to a model (models/tensorfile.h).
 *
 * The tensors are named as torchvision's state_dict names them and mapped
 * onto the architecture's parameter table (models/arch.c). The architecture
 * and the number of classes come from the safetensors metadata when it
 * says, else from the shapes: features.0.weight's kernel (11x11: AlexNet,
 * 3x3: VGG16) and classifier.6.weight's rows. Every needed tensor is checked
 * (present, shaped, of a float type) before the parameters are written;
 * extra tensors are a warning each once the file loads, as in HDF5 files. */
#include "models/tensorfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/log.h"
#include "io/safetensors.h"
#include "io/zip.h"
#include "models/keras.h"

#define MAX_CLASSES 100000

graft_tensorfile_kind graft__tensorfile_kind(const uint8_t *h, size_t n) {
  if (graft_zip_detect(h, n)) return GRAFT_TF_ZIP;
  if (n >= 2 && h[0] == 0x80 && h[1] >= 2 && h[1] <= 5) return GRAFT_TF_LEGACY;
  /* Whatever its header length says: a forged one is refused by the reader. */
  if (graft_safetensors_detect(h, n)) return GRAFT_TF_SAFETENSORS;
  return GRAFT_TF_NONE;
}

static const graft_tensor_ref *find(const graft_tensor_ref *t, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(t[i].name, name) == 0) return &t[i];
  return NULL;
}

static void shape_text(const int64_t *d, int rank, char *buf, size_t cap) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < rank && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)d[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* The metadata's string for key, or NULL. */
static const char *meta_str(const graft_json *j, graft_json_ref m, const char *key) {
  if (!j || m < 0) return NULL;
  graft_json_ref v = graft_json_get(j, m, key);
  return v < 0 ? NULL : graft_json_string(j, v, NULL);
}

static graft_status meta_int(const graft_json *j, graft_json_ref m, const char *key, int lo, int hi,
                             int *out) {
  const char *s = meta_str(j, m, key);
  if (!s) return GRAFT_OK;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi)
    return graft__fail(GRAFT_ERANGE, "metadata \"%s\": not an integer from %d to %d", key, lo, hi);
  *out = (int)v;
  return GRAFT_OK;
}

static graft_status meta_floats3(const graft_json *j, graft_json_ref m, const char *key,
                                 float *out) {
  const char *s = meta_str(j, m, key);
  if (!s) return GRAFT_OK;
  graft_json *a;
  graft_status st = graft_json_parse(s, strlen(s), &a);
  if (st != GRAFT_OK) return graft__fail(st, "metadata \"%s\": not a JSON array", key);
  bool ok = graft_json_type_of(a, 0) == GRAFT_JSON_ARRAY && graft_json_count(a, 0) == 3;
  for (int i = 0; ok && i < 3; i++) {
    graft_json_ref v = graft_json_at(a, 0, i);
    ok = graft_json_type_of(a, v) == GRAFT_JSON_NUMBER;
    if (ok) out[i] = (float)graft_json_number(a, v);
  }
  graft_json_free(a);
  return ok ? GRAFT_OK : graft__fail(GRAFT_EFORMAT, "metadata \"%s\": not 3 numbers", key);
}

static graft_status meta_class_names(const graft_json *j, graft_json_ref m, graft_model *mod) {
  const char *s = meta_str(j, m, "class_names");
  if (!s) return GRAFT_OK;
  graft_json *a;
  graft_status st = graft_json_parse(s, strlen(s), &a);
  if (st != GRAFT_OK) return graft__fail(st, "metadata \"class_names\": not a JSON array");
  int k = mod->arch.num_classes, n = graft_json_count(a, 0);
  char **names = calloc((size_t)k, sizeof *names);
  if (graft_json_type_of(a, 0) != GRAFT_JSON_ARRAY)
    st = graft__fail(GRAFT_EFORMAT, "metadata \"class_names\": not a JSON array");
  else if (n != k)
    st = graft__fail(GRAFT_ESHAPE, "metadata \"class_names\": %d names for %d classes", n, k);
  else if (!names)
    st = graft__fail(GRAFT_ENOMEM, "out of memory");
  for (int i = 0; st == GRAFT_OK && i < k; i++) {
    graft_json_ref v = graft_json_at(a, 0, i);
    names[i] = (char *)graft_json_string(a, v, NULL);
    if (!names[i])
      st = graft__fail(GRAFT_EFORMAT, "metadata \"class_names\": name %d is not a string", i);
  }
  if (st == GRAFT_OK) st = graft__check_class_names(names, k);
  if (st == GRAFT_OK) st = graft_model_set_class_names(mod, names, k);
  free(names);
  graft_json_free(a);
  return st;
}

/* The architecture and number of classes: metadata, else the shapes. */
static graft_status arch_of(const graft_tensor_ref *t, int n, const graft_json *j, graft_json_ref m,
                            char *arch, size_t cap, int *classes) {
  const char *a = meta_str(j, m, "arch");
  char safe[64];
  if (a && graft_arch_find(a) < 0)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "metadata \"arch\": unknown architecture \"%s\" (expected %s)",
                       graft__printable(a, safe, sizeof safe), graft_arch_names());
  const graft_tensor_ref *f0 = find(t, n, "features.0.weight"),
                         *c6 = find(t, n, "classifier.6.weight");
  if (!a) {
    if (!f0 || f0->rank != 4)
      return graft__fail(GRAFT_EFORMAT,
                         "tensor \"features.0.weight\": %s (the architecture "
                         "cannot be told)",
                         f0 ? "not 4-dimensional" : "missing");
    a = f0->dims[2] == 11 ? "alexnet" : f0->dims[2] == 3 ? "vgg16" : NULL;
    if (!a)
      return graft__fail(GRAFT_EUNSUPPORTED,
                         "tensor \"features.0.weight\": a %lldx%lld kernel "
                         "is neither AlexNet's (11x11) nor VGG16's (3x3)",
                         (long long)f0->dims[2], (long long)f0->dims[3]);
  }
  snprintf(arch, cap, "%s", a);
  if (!c6 || c6->rank != 2)
    return graft__fail(GRAFT_EFORMAT,
                       "tensor \"classifier.6.weight\": %s (the number of "
                       "classes cannot be told)",
                       c6 ? "not 2-dimensional" : "missing");
  if (c6->dims[0] < 1 || c6->dims[0] > MAX_CLASSES)
    return graft__fail(GRAFT_ERANGE, "tensor \"classifier.6.weight\": %lld classes (1 to %d)",
                       (long long)c6->dims[0], MAX_CLASSES);
  *classes = (int)c6->dims[0];
  int said = *classes;
  GRAFT_TRY(meta_int(j, m, "num_classes", 1, MAX_CLASSES, &said));
  if (said != *classes)
    return graft__fail(GRAFT_ESHAPE,
                       "metadata \"num_classes\": %d, but classifier.6.weight has "
                       "%d rows",
                       said, *classes);
  return GRAFT_OK;
}

/* Every parameter present, shaped and of a float type, before any is read. */
static graft_status check_all(const graft_tensor_ref *t, int n, const graft_arch *a) {
  for (int i = 0; i < a->n_params; i++) {
    const graft_param *p = &a->params[i];
    const graft_tensor_ref *r = find(t, n, p->name);
    if (!r) return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": missing", p->name);
    bool same = r->rank == p->rank;
    for (int d = 0; same && d < p->rank; d++) same = r->dims[d] == p->dims[d];
    if (!same) {
      char got[128], want[128];
      shape_text(r->dims, r->rank, got, sizeof got);
      shape_text(p->dims, p->rank, want, sizeof want);
      return graft__fail(GRAFT_ESHAPE, "tensor \"%s\": shape %s, %s expects %s", p->name, got,
                         a->name, want);
    }
    if (r->dtype == GRAFT_DT_OTHER)
      return graft__fail(GRAFT_EUNSUPPORTED,
                         "tensor \"%s\": type %s is not supported (float32, "
                         "float16, bfloat16)",
                         p->name, r->type_name);
  }
  return GRAFT_OK;
}

static graft_status read_all(const graft_tensor_ref *t, int n, graft_model *m) {
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    const graft_tensor_ref *r = find(t, n, p->name);
    float *dst = graft_model_param(m, p);
    graft_tensor_to_f32(r->dtype, r->data, p->count, dst);
    for (size_t j = 0; j < p->count; j++)
      if (!isfinite(dst[j]))
        return graft__fail(GRAFT_ENONFINITE, "tensor \"%s\": %s at flat index %zu", p->name,
                           isnan(dst[j]) ? "NaN" : "infinity", j);
  }
  return GRAFT_OK;
}

static graft_status to_model(const graft_tensor_ref *t, int n, const graft_json *j,
                             graft_json_ref meta, graft_model **out) {
  char arch[32];
  int k = 0;
  graft_model *m = NULL;
  graft_arch a; /* the tensors checked against its table before anything is allocated */
  graft_status s = arch_of(t, n, j, meta, arch, sizeof arch, &k);
  if (s == GRAFT_OK) s = graft_arch_init(&a, arch, k);
  if (s == GRAFT_OK) s = check_all(t, n, &a);
  if (s == GRAFT_OK) s = graft_model_create(arch, k, &m);
  if (s == GRAFT_OK) s = meta_int(j, meta, "resize", 1, 1 << 20, &m->pre.resize);
  if (s == GRAFT_OK) s = meta_int(j, meta, "crop", 1, 1 << 20, &m->pre.crop);
  if (s == GRAFT_OK) s = meta_floats3(j, meta, "mean", m->pre.mean);
  if (s == GRAFT_OK) s = meta_floats3(j, meta, "std", m->pre.std);
  if (s == GRAFT_OK) s = graft__check_preproc(&m->pre, &m->arch);
  if (s == GRAFT_OK) s = meta_class_names(j, meta, m);
  if (s == GRAFT_OK && !m->class_names && k == 1000)
    s = graft_model_set_class_names(m, (char *const *)graft__imagenet_classes, 1000);
  if (s == GRAFT_OK) s = read_all(t, n, m);
  if (s != GRAFT_OK) {
    graft_model_free(m);
    return s;
  }
  char safe[128];
  for (int i = 0; i < n; i++)
    if (!graft_arch_find_param(&m->arch, t[i].name))
      graft__warn("unexpected tensor \"%s\" ignored",
                  graft__printable(t[i].name, safe, sizeof safe));
  *out = m;
  return GRAFT_OK;
}

graft_status graft__tensorfile_load(const uint8_t *buf, size_t n, graft_model **out) {
  *out = NULL;
  graft_tensorfile_kind kind = graft__tensorfile_kind(buf, n);
  graft_tensor_ref *t = NULL;
  int count = 0;
  graft_json *j = NULL;
  graft_json_ref meta = -1;
  graft_status s;
  if (kind == GRAFT_TF_ZIP || kind == GRAFT_TF_LEGACY)
    s = graft__pth_tensors(buf, n, kind == GRAFT_TF_ZIP, &t, &count);
  else if (kind == GRAFT_TF_SAFETENSORS)
    s = graft_safetensors_parse(buf, n, &t, &count, &j, &meta);
  else
    s = graft__fail(GRAFT_EFORMAT, "not a .pth, safetensors or HDF5 file");
  if (s == GRAFT_OK) s = to_model(t, count, j, meta, out);
  free(t);
  graft_json_free(j);
  return s;
}
