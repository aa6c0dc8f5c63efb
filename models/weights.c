/* The graft-weights contract: one model per HDF5 file.
 *
 * Root attributes: format = "graft-weights", version = 1, arch, num_classes;
 * optional class_names (num_classes strings), mean and std (3 numbers each),
 * resize and crop (ints). One float32 dataset per parameter, named and shaped
 * as torchvision's state_dict(). Loading validates the attributes, then every
 * dataset's metadata, and only then reads the data (checking it is finite),
 * so a bad file fails fast and is never half-read into the model. Details
 * name the attribute or dataset, never the path: the apps prefix that. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/base/log.h"
#include "io/h5.h"
#include "io/isolate.h"
#include "models/keras.h"
#include "models/model.h"
#include "models/tensorfile.h"

#define MAX_CLASSES 100000
#define MIN_SIDE 32
#define MAX_SIDE 4096

/* A string from the file, made safe to quote in one-line messages. */
const char *graft__printable(const char *s, char *buf, size_t cap) {
  size_t n = 0;
  for (; *s && n + 4 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (*s) buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
  buf[n] = '\0';
  return buf;
}

/* A required attribute that is absent breaks the contract: EFORMAT, not ENOENT. */
static graft_status required(graft_status s) {
  return s == GRAFT_ENOENT ? GRAFT_EFORMAT : s;
}

/* Whether a square input of this side survives the trunk: every window
 * (padded input >= kernel) must fit, as PyTorch requires. */
static bool side_ok(const graft_arch *a, int side) {
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    int k, s, p;
    if (l->kind == GRAFT_LAYER_CONV2D) {
      k = l->u.conv.kernel, s = l->u.conv.stride, p = l->u.conv.pad;
    } else if (l->kind == GRAFT_LAYER_MAXPOOL2D) {
      k = l->u.pool.kernel, s = l->u.pool.stride, p = 0;
    } else {
      continue;
    }
    if (side + 2 * p < k) return false;
    side = graft_out_dim(side, k, s, p);
  }
  return true;
}

/* What load accepts and save writes: sizes, finite means, positive stds. */
graft_status graft__check_preproc(const graft_preproc *p, const graft_arch *a) {
  if (p->resize < MIN_SIDE || p->resize > MAX_SIDE)
    return graft__fail(GRAFT_ERANGE, "attribute \"resize\": %d is out of range (%d to %d)",
                       p->resize, MIN_SIDE, MAX_SIDE);
  if (p->crop < MIN_SIDE || p->crop > MAX_SIDE)
    return graft__fail(GRAFT_ERANGE, "attribute \"crop\": %d is out of range (%d to %d)",
                       p->crop, MIN_SIDE, MAX_SIDE);
  if (!side_ok(a, p->crop)) {
    int min = p->crop;
    while (min < MAX_SIDE && !side_ok(a, min)) min++;
    return graft__fail(GRAFT_ERANGE, "attribute \"crop\": %d is too small for %s (at least %d)",
                       p->crop, a->name, min);
  }
  for (int i = 0; i < 3; i++) {
    if (!isfinite(p->mean[i]))
      return graft__fail(GRAFT_ERANGE, "attribute \"mean\": value %d is not finite", i);
    if (!isfinite(p->std[i]) || !(p->std[i] > 0))
      return graft__fail(GRAFT_ERANGE, "attribute \"std\": value %d is %g, not a positive number",
                         i, (double)p->std[i]);
  }
  return GRAFT_OK;
}

/* Class names end up in one-line and CSV/JSON output: no control characters. */
graft_status graft__check_class_names(char *const *names, int count) {
  for (int i = 0; i < count; i++)
    for (const unsigned char *c = (const unsigned char *)names[i]; *c; c++)
      if (*c < 0x20 || *c == 0x7f)
        return graft__fail(GRAFT_EFORMAT,
                           "attribute \"class_names\": name %d contains a control character", i);
  return GRAFT_OK;
}

/* format, version, arch, num_classes: what the file is, before anything else. */
static graft_status read_header(graft_h5 *f, char *arch, size_t cap, int *num_classes) {
  char buf[256], safe[64];
  if (!graft_h5_has_attr(f, "format"))
    return graft__fail(GRAFT_EFORMAT,
                       "attribute \"format\": missing (not a %s file, nor Keras weights: no "
                       "attribute \"layer_names\")",
                       GRAFT_WEIGHTS_FORMAT);
  graft_status s = graft_h5_attr_string(f, "format", buf, sizeof buf);
  if (s == GRAFT_ELIMIT || (s == GRAFT_OK && strcmp(buf, GRAFT_WEIGHTS_FORMAT) != 0))
    return graft__fail(GRAFT_EFORMAT, "attribute \"format\": expected \"%s\", found \"%s\"",
                       GRAFT_WEIGHTS_FORMAT,
                       s == GRAFT_OK ? graft__printable(buf, safe, sizeof safe) : "(a long string)");
  if (s != GRAFT_OK) return s;

  int64_t version;
  GRAFT_TRY(required(graft_h5_attr_int(f, "version", &version)));
  if (version != GRAFT_WEIGHTS_VERSION)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "attribute \"version\": version %lld is not supported (expected %d)",
                       (long long)version, GRAFT_WEIGHTS_VERSION);

  s = graft_h5_attr_string(f, "arch", arch, cap);
  if (s == GRAFT_ELIMIT)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "attribute \"arch\": unknown architecture (a long string; expected %s)",
                       graft_arch_names());
  GRAFT_TRY(required(s));
  if (graft_arch_find(arch) < 0)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "attribute \"arch\": unknown architecture \"%s\" (expected %s)",
                       graft__printable(arch, safe, sizeof safe), graft_arch_names());

  int64_t k;
  GRAFT_TRY(required(graft_h5_attr_int(f, "num_classes", &k)));
  if (k < 1 || k > MAX_CLASSES)
    return graft__fail(GRAFT_ERANGE, "attribute \"num_classes\": %lld is out of range (1 to %d)",
                       (long long)k, MAX_CLASSES);
  *num_classes = (int)k;
  return GRAFT_OK;
}

static graft_status read_side(graft_h5 *f, const char *name, int *out) {
  if (!graft_h5_has_attr(f, name)) return GRAFT_OK;
  int64_t v;
  GRAFT_TRY(graft_h5_attr_int(f, name, &v));
  if (v < MIN_SIDE || v > MAX_SIDE)
    return graft__fail(GRAFT_ERANGE, "attribute \"%s\": %lld is out of range (%d to %d)", name,
                       (long long)v, MIN_SIDE, MAX_SIDE);
  *out = (int)v;
  return GRAFT_OK;
}

/* The optional attributes, each with ImageNet's default when absent. */
static graft_status read_options(graft_h5 *f, graft_model *m) {
  GRAFT_TRY(read_side(f, "resize", &m->pre.resize));
  GRAFT_TRY(read_side(f, "crop", &m->pre.crop));
  if (graft_h5_has_attr(f, "mean")) GRAFT_TRY(graft_h5_attr_floats(f, "mean", m->pre.mean, 3));
  if (graft_h5_has_attr(f, "std")) GRAFT_TRY(graft_h5_attr_floats(f, "std", m->pre.std, 3));
  GRAFT_TRY(graft__check_preproc(&m->pre, &m->arch));
  if (!graft_h5_has_attr(f, "class_names")) return GRAFT_OK;
  char **names;
  int count;
  GRAFT_TRY(graft_h5_attr_strings(f, "class_names", &names, &count));
  graft_status s = GRAFT_OK;
  if (count != m->arch.num_classes)
    s = graft__fail(GRAFT_ESHAPE,
                    "attribute \"class_names\": %d names for %d classes (num_classes)", count,
                    m->arch.num_classes);
  else
    s = graft__check_class_names(names, count);
  if (s != GRAFT_OK) {
    graft_strv_free(names, count);
    return s;
  }
  m->class_names = names; /* count == num_classes: the model frees them */
  return GRAFT_OK;
}

static int cmp_name(const void *key, const void *elem) {
  return strcmp(key, *(char *const *)elem);
}

/* Every parameter's dataset present and well-formed (metadata only, no bulk
 * reads); unexpected datasets are a warning each when the file is good. */
static graft_status check_datasets(graft_h5 *f, const graft_model *m) {
  char **names;
  int n;
  GRAFT_TRY(graft_h5_dataset_names(f, &names, &n)); /* sorted */
  char missing[512] = "";
  size_t used = 0;
  int n_missing = 0;
  const char *first_missing = NULL;
  graft_status s = GRAFT_OK;
  for (int i = 0; i < m->arch.n_params && s == GRAFT_OK; i++) {
    const graft_param *p = &m->arch.params[i];
    s = graft_h5_check_f32(f, p->name, p->rank, p->dims);
    bool listed = n && bsearch(p->name, names, (size_t)n, sizeof *names, cmp_name);
    if (s == GRAFT_ENOENT && !listed) {
      if (!first_missing) first_missing = p->name;
      if (used < sizeof missing)
        used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%s",
                                 n_missing ? ", " : "", p->name);
      n_missing++;
      s = GRAFT_OK;
    } else if (s == GRAFT_ENOENT) {
      s = GRAFT_EFORMAT;
    } else if (s == GRAFT_ESHAPE && p->in_classifier && p->layer == m->arch.head &&
               p->dims[0] == m->arch.num_classes) {
      /* The last layer's shape follows num_classes: say which one disagrees. */
      char why[768];
      snprintf(why, sizeof why, "%s", graft_detail());
      s = graft__fail(s, "%s (attribute num_classes is %d)", why, m->arch.num_classes);
    }
  }
  if (s == GRAFT_OK && n_missing == 1)
    s = graft__fail(GRAFT_EFORMAT, "dataset \"%s\": missing", first_missing);
  if (s == GRAFT_OK && n_missing > 1)
    s = graft__fail(GRAFT_EFORMAT, "%d of %d datasets missing: %s%s", n_missing,
                    m->arch.n_params, missing, used >= sizeof missing ? "..." : "");
  /* Warnings only for a file that loads: a failure is reported on one line. */
  char safe[128];
  for (int i = 0; s == GRAFT_OK && i < n; i++)
    if (!graft_arch_find_param(&m->arch, names[i]))
      graft__warn("unexpected dataset \"%s\" ignored", graft__printable(names[i], safe, sizeof safe));
  graft_strv_free(names, n);
  return s;
}

/* The whole reading of a file, the parameters in mem (graft_model_load). The
 * parameters' pages are mapped but not touched until every dataset's
 * metadata has been checked: a small forged file that claims 100000 classes
 * costs address space, not memory. */
static graft_status load_file(const char *path, graft_arena *mem, graft_model **out) {
  *out = NULL;
  graft_h5 *f;
  GRAFT_TRY(graft_h5_open(path, &f));
  if (graft__keras_detect(f)) { /* the layout of Keras's weights files (models/keras.c) */
    graft_status ks = graft__keras_load(f, mem, out);
    graft_h5_close(f);
    return ks;
  }
  graft_model *m = NULL;
  char arch[32];
  int k = 0;
  graft_status s = read_header(f, arch, sizeof arch, &k);
  if (s == GRAFT_OK) s = graft__model_create_in(mem, arch, k, &m);
  if (s == GRAFT_OK) s = read_options(f, m);
  if (s == GRAFT_OK) s = check_datasets(f, m);
  for (int i = 0; s == GRAFT_OK && i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    s = graft_h5_read_f32_deferred(f, mem, p->name, p->rank, p->dims, graft_model_param(m, p),
                                   true);
  }
  graft_h5_close(f);
  if (s != GRAFT_OK) {
    graft__model_drop(m); /* its parameters go back with the job */
    return s;
  }
  *out = m;
  return GRAFT_OK;
}

/* The loader (io/isolate.h): the model as its caller will see it, in mem (the
 * struct, its class names packed); the parameters are already there. */
static graft_status load_weights(void *path, graft_arena *mem, void **result) {
  graft_model *m;
  GRAFT_TRY(load_file(path, mem, &m));
  graft_model *pub = graft_arena_copy(mem, m, sizeof *m);
  char **names =
      m->class_names ? graft_arena_strv(mem, m->class_names, m->arch.num_classes) : NULL;
  graft_strv_free(m->class_names, m->class_names ? m->arch.num_classes : 0);
  free(m); /* not its parameters: they are the result's */
  if (!pub || (pub->class_names && !names))
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  pub->class_names = names;
  *result = pub;
  return GRAFT_OK;
}

/* A .pth or safetensors file (models/tensorfile.h), read and parsed in this
 * process; false when the file is not one of them (nor
 * readable: the HDF5 path then says why). */
static bool load_tensorfile(const char *path, graft_model **out, graft_status *s) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  uint8_t head[16];
  ssize_t got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, head, sizeof head, 0) : -1;
  if (got <= 0 || graft__tensorfile_kind(head, (size_t)got) == GRAFT_TF_NONE) {
    close(fd);
    return false;
  }
  /* Read into private memory rather than mapped: a file cut short by another
   * process while it is parsed would make a mapping fault (SIGBUS); bytes
   * read once are the parser's to check. */
  size_t size = (size_t)st.st_size, at = 0;
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) {
    close(fd);
    *s = graft__fail(GRAFT_ENOMEM, "out of memory reading the file (%zu bytes)", size);
    return true;
  }
  ssize_t n = 1;
  while (at < size && (n = pread(fd, buf + at, size - at, (off_t)at)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    at += (size_t)n;
  }
  int err = errno;
  close(fd);
  if (at < size)
    *s = n < 0 ? graft__fail(GRAFT_EIO, "cannot read the file: %s", strerror(err))
               : graft__fail(GRAFT_EFORMAT, "the file shrank while it was read (%zu of %zu bytes)",
                             at, size);
  else
    *s = graft__tensorfile_load(buf, size, out);
  free(buf);
  return true;
}

graft_status graft_model_load(const char *path, graft_model **out) {
  *out = NULL;
  graft_status ts;
  if (load_tensorfile(path, out, &ts)) return ts;
  graft_isolated *job;
  GRAFT_TRY(graft_isolate(path, load_weights, (void *)path, &job));
  const graft_model *pub = graft_isolated_result(job);
  graft_model *m = malloc(sizeof *m);
  graft_status s = m ? GRAFT_OK : graft__fail(GRAFT_ENOMEM, "out of memory");
  if (m) {
    *m = *pub;
    m->class_names = NULL;
    s = graft_isolated_keep(job, m->params); /* the parameters' bytes are read here */
    if (s != GRAFT_OK) m->params = NULL;
    if (s == GRAFT_OK && pub->class_names)
      s = graft_model_set_class_names(m, pub->class_names, m->arch.num_classes);
  }
  graft_isolated_end(job);
  if (s != GRAFT_OK) {
    graft_model_free(m);
    return s;
  }
  *out = m;
  return GRAFT_OK;
}

/* Loading rejects non-finite weights, so saving must not write them. */
static graft_status check_finite(const graft_model *m) {
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    const float *v = graft_model_param(m, p);
    for (size_t j = 0; j < p->count; j++)
      if (!isfinite(v[j]))
        return graft__fail(GRAFT_ENONFINITE, "dataset \"%s\": %s at flat index %zu; not saved",
                           p->name, isnan(v[j]) ? "NaN" : "infinity", j);
  }
  return GRAFT_OK;
}

graft_status graft_model_save(const char *path, const graft_model *m) {
  GRAFT_TRY(graft__check_preproc(&m->pre, &m->arch));
  if (m->class_names) GRAFT_TRY(graft__check_class_names(m->class_names, m->arch.num_classes));
  GRAFT_TRY(check_finite(m));
  graft_h5w *w;
  GRAFT_TRY(graft_h5w_create(path, &w));
  graft_status s = graft_h5w_attr_string(w, "format", GRAFT_WEIGHTS_FORMAT);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "version", GRAFT_WEIGHTS_VERSION);
  if (s == GRAFT_OK) s = graft_h5w_attr_string(w, "arch", m->arch.name);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "num_classes", m->arch.num_classes);
  if (s == GRAFT_OK && m->class_names)
    s = graft_h5w_attr_strings(w, "class_names", m->class_names, m->arch.num_classes);
  if (s == GRAFT_OK) s = graft_h5w_attr_floats(w, "mean", m->pre.mean, 3);
  if (s == GRAFT_OK) s = graft_h5w_attr_floats(w, "std", m->pre.std, 3);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "resize", m->pre.resize);
  if (s == GRAFT_OK) s = graft_h5w_attr_int(w, "crop", m->pre.crop);
  for (int i = 0; s == GRAFT_OK && i < m->arch.n_params; i++) {
    const graft_param *p = &m->arch.params[i];
    s = graft_h5w_f32(w, p->name, p->rank, p->dims, graft_model_param(m, p));
  }
  if (s != GRAFT_OK) {
    graft_h5w_abort(w);
    return s;
  }
  return graft_h5w_commit(w);
}
