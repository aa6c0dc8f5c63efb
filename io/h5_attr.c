/* Root attributes of an HDF5 file (io/h5.h): scalars or 1-D arrays, each
 * checked for its class and size before it is read. Strings may be fixed- or
 * variable-length; HDF5's allocations for the latter are handed back to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5.h"
#include "io/h5_impl.h"

/* Limits on string attributes (each string; how many; all together).
 * Variable-length ones are also held to 4096 bytes by io/h5_heap.c. */
#define MAX_STRING_BYTES (1u << 20)
#define MAX_STRING_COUNT (1u << 20)
#define MAX_STRINGS_TOTAL (64u << 20)

static const char *class_phrase(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER: return "an integer";
    case H5T_FLOAT: return "a float";
    case H5T_STRING: return "a string";
    default: return "an unsupported type";
  }
}

typedef struct h5_attr {
  graft_h5 *f;
  hid_t group; /* the attribute's group below the root, or invalid for the root */
  hid_t attr, type, space;
  H5T_class_t cls;
  int rank;
  hsize_t n; /* elements */
} h5_attr;

static void attr_close(h5_attr *a) {
  graft__h5_close_id(a->space);
  graft__h5_close_id(a->type);
  graft__h5_close_id(a->attr);
  if (a->group >= 0) H5Gclose(a->group);
}

/* Open an attribute of the root (group NULL) or of a group below it, that
 * is a scalar or a 1-D array. */
static graft_status attr_open(graft_h5 *f, const char *group, const char *name, h5_attr *a) {
  graft_status st = GRAFT_OK;
  *a = (h5_attr){f,           H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID,
                 H5I_INVALID_HID, H5T_NO_CLASS,  0,               0};
  if (!graft__h5_name_ok(name)) return graft__fail(GRAFT_EINVAL, "invalid name");
  if (group) {
    if ((st = graft__h5_find(f, group, H5O_TYPE_GROUP)) != GRAFT_OK)
      return graft__context(st, "group \"%s\"", group);
    H5CK(a->group = H5Gopen2(f->file, group, H5P_DEFAULT));
  }
  hid_t loc = group ? a->group : f->file;
  htri_t exists;
  H5CK(exists = H5Aexists(loc, name));
  if (!exists) {
    st = graft__fail(GRAFT_ENOENT, "missing");
    goto fail;
  }
  H5CK(a->attr = H5Aopen(loc, name, H5P_DEFAULT));
  H5CK(a->type = H5Aget_type(a->attr));
  H5CK(a->cls = H5Tget_class(a->type));
  H5CK(a->space = H5Aget_space(a->attr));
  H5S_class_t sc;
  H5CK(sc = H5Sget_simple_extent_type(a->space));
  if (sc == H5S_SCALAR) {
    a->n = 1;
  } else if (sc == H5S_SIMPLE) {
    H5CK(a->rank = H5Sget_simple_extent_ndims(a->space));
    if (a->rank != 1) {
      st = graft__fail(GRAFT_ESHAPE, "expected a scalar or a 1-D array, found rank %d", a->rank);
      goto fail;
    }
    H5CK(H5Sget_simple_extent_dims(a->space, &a->n, NULL));
  } else {
    st = graft__fail(GRAFT_EFORMAT, "has no value (null dataspace)");
    goto fail;
  }
  return GRAFT_OK;
fail:
  attr_close(a);
  return st;
}

static graft_status expect_class(const h5_attr *a, H5T_class_t want, H5T_class_t also) {
  if (a->cls == want || a->cls == also) return GRAFT_OK;
  return graft__fail(GRAFT_EFORMAT, "expected %s, found %s",
                     want == H5T_FLOAT ? "a number" : class_phrase(want), class_phrase(a->cls));
}

static graft_status expect_one(const h5_attr *a) {
  if (a->n == 1) return GRAFT_OK;
  return graft__fail(GRAFT_ESHAPE, "expected a single value, found %llu", (unsigned long long)a->n);
}

/* All a->n strings of a string attribute, fixed- or variable-length, as
 * malloc'd C strings (fixed ones cut at the first NUL, space padding removed). */
static graft_status attr_read_strings(const h5_attr *a, char ***out) {
  graft_status st = GRAFT_OK;
  hid_t mem = H5I_INVALID_HID;
  char **raw = NULL, *fixed = NULL, **v = NULL;
  size_t n = (size_t)a->n;
  if (a->n > MAX_STRING_COUNT)
    return graft__fail(GRAFT_ELIMIT, "%llu strings, over the limit of %u",
                       (unsigned long long)a->n, MAX_STRING_COUNT);
  v = calloc(n ? n : 1, sizeof *v);
  if (!v) return graft__fail(GRAFT_ENOMEM, "out of memory");
  htri_t is_var;
  H5CK(is_var = H5Tis_variable_str(a->type));
  if (is_var) {
    if ((st = graft__h5_check_heaps(a->f)) != GRAFT_OK) goto fail;
    H5T_cset_t cset;
    H5CK(cset = H5Tget_cset(a->type));
    H5CK(mem = H5Tcopy(H5T_C_S1));
    H5CK(H5Tset_size(mem, H5T_VARIABLE));
    H5CK(H5Tset_cset(mem, cset));
    raw = calloc(n ? n : 1, sizeof *raw);
    if (!raw) {
      st = graft__fail(GRAFT_ENOMEM, "out of memory");
      goto fail;
    }
    /* A read that fails part-way may have allocated some strings already:
     * they are reclaimed below either way (the rest are still NULL). */
    if (H5Aread(a->attr, mem, raw) < 0)
      st = graft__h5_failed(GRAFT_EFORMAT, "H5Aread", __FILE__, __LINE__);
    size_t total = 0;
    for (size_t i = 0; i < n && st == GRAFT_OK; i++) {
      size_t len = raw[i] ? strnlen(raw[i], MAX_STRING_BYTES + 1) : 0;
      total += len;
      if (len > MAX_STRING_BYTES || total > MAX_STRINGS_TOTAL)
        st = graft__fail(GRAFT_ELIMIT, "strings longer than the limits (%u bytes each, %u in all)",
                         MAX_STRING_BYTES, MAX_STRINGS_TOTAL);
      else if (!(v[i] = strndup(raw[i] ? raw[i] : "", len)))
        st = graft__fail(GRAFT_ENOMEM, "out of memory");
    }
    /* HDF5 allocated the strings: it must free them. */
    if (H5Dvlen_reclaim(mem, a->space, H5P_DEFAULT, raw) < 0 && st == GRAFT_OK)
      st = graft__h5_failed(GRAFT_EFORMAT, "H5Dvlen_reclaim", __FILE__, __LINE__);
    if (st != GRAFT_OK) goto fail;
  } else {
    size_t size = H5Tget_size(a->type);
    H5T_str_t pad = H5Tget_strpad(a->type);
    if (size == 0 || size > MAX_STRING_BYTES || (n && size > MAX_STRINGS_TOTAL / n)) {
      st = graft__fail(GRAFT_ELIMIT, "fixed strings of %zu bytes, over the limits", size);
      goto fail;
    }
    fixed = malloc(n * size + 1);
    if (!fixed) {
      st = graft__fail(GRAFT_ENOMEM, "out of memory");
      goto fail;
    }
    /* Read in the file's own type: bytes as stored, no conversion. */
    H5CK(H5Aread(a->attr, a->type, fixed));
    for (size_t i = 0; i < n; i++) {
      const char *s = fixed + i * size;
      size_t len = strnlen(s, size);
      if (pad == H5T_STR_SPACEPAD)
        while (len && s[len - 1] == ' ') len--;
      if (!(v[i] = strndup(s, len))) {
        st = graft__fail(GRAFT_ENOMEM, "out of memory");
        goto fail;
      }
    }
  }
  graft__h5_close_id(mem);
  free(raw);
  free(fixed);
  *out = v;
  return GRAFT_OK;
fail:
  graft__h5_close_id(mem);
  free(raw);
  free(fixed);
  graft_strv_free(v, (int)n);
  return st;
}

/* Only the standard number layouts reach HDF5's converters: IEEE float32 or
 * float64, and whole-byte integers of 1, 2, 4 or 8 bytes (either order). */
static graft_status standard_number(const h5_attr *a) {
  char d[48];
  if (a->cls == H5T_FLOAT) {
    if (H5Tequal(a->type, H5T_IEEE_F32LE) > 0 || H5Tequal(a->type, H5T_IEEE_F32BE) > 0 ||
        H5Tequal(a->type, H5T_IEEE_F64LE) > 0 || H5Tequal(a->type, H5T_IEEE_F64BE) > 0)
      return GRAFT_OK;
    graft__h5_describe_type(a->type, d, sizeof d);
    return graft__fail(GRAFT_EFORMAT, "expected float32 or float64, found %s", d);
  }
  size_t size = H5Tget_size(a->type);
  if ((size == 1 || size == 2 || size == 4 || size == 8) &&
      H5Tget_precision(a->type) == size * 8 && H5Tget_offset(a->type) == 0)
    return GRAFT_OK;
  graft__h5_describe_type(a->type, d, sizeof d);
  return graft__fail(GRAFT_EFORMAT, "unsupported integer layout (%s)", d);
}

/* One numeric value or several, converted by HDF5 to double. */
static graft_status attr_read_doubles(const h5_attr *a, double *v) {
  graft_status st = standard_number(a);
  if (st != GRAFT_OK) return st;
  H5CK(H5Aread(a->attr, H5T_NATIVE_DOUBLE, v));
  return GRAFT_OK;
fail:
  return st;
}

/* Every attribute reader: take the lock, open the attribute (`a`, status
 * `st`), ..., close it, release the lock, and name the attribute in the
 * detail of any failure. */
#define ATTR_BEGIN(f, group, name)                                      \
  GRAFT_TRY(graft__h5_enter());                                         \
  h5_attr a;                                                            \
  graft_status st = attr_open((f), (group), (name), &a);                \
  if (st != GRAFT_OK) goto done

#define ATTR_END(name)                                                  \
  attr_close(&a);                                                       \
  done:                                                                 \
  graft__h5_leave();                                                    \
  if (st != GRAFT_OK) graft__context(st, "attribute \"%s\"", (name));   \
  return st

bool graft_h5_has_attr(graft_h5 *f, const char *name) {
  if (!graft__h5_name_ok(name) || graft__h5_enter() != GRAFT_OK) return false;
  bool yes = H5Aexists(f->file, name) > 0;
  graft__h5_leave();
  return yes;
}

graft_status graft_h5_attr_string(graft_h5 *f, const char *name, char *buf, size_t cap) {
  char **v = NULL;
  ATTR_BEGIN(f, NULL, name);
  if ((st = expect_class(&a, H5T_STRING, H5T_STRING)) == GRAFT_OK &&
      (st = expect_one(&a)) == GRAFT_OK && (st = attr_read_strings(&a, &v)) == GRAFT_OK) {
    if (strlen(v[0]) >= cap)
      st = graft__fail(GRAFT_ELIMIT, "string of %zu bytes, longer than %zu", strlen(v[0]),
                       cap ? cap - 1 : 0);
    else
      memcpy(buf, v[0], strlen(v[0]) + 1);
    graft_strv_free(v, 1);
  }
  ATTR_END(name);
}

graft_status graft_h5_attr_strings_at(graft_h5 *f, const char *group, const char *name,
                                      char ***out, int *count) {
  *out = NULL;
  *count = 0;
  ATTR_BEGIN(f, group, name);
  if ((st = expect_class(&a, H5T_STRING, H5T_STRING)) == GRAFT_OK &&
      (st = attr_read_strings(&a, out)) == GRAFT_OK)
    *count = (int)a.n;
  ATTR_END(name);
}

graft_status graft_h5_attr_strings(graft_h5 *f, const char *name, char ***out, int *count) {
  return graft_h5_attr_strings_at(f, NULL, name, out, count);
}

graft_status graft_h5_attr_int(graft_h5 *f, const char *name, int64_t *v) {
  ATTR_BEGIN(f, NULL, name);
  if ((st = expect_class(&a, H5T_INTEGER, H5T_INTEGER)) == GRAFT_OK &&
      (st = expect_one(&a)) == GRAFT_OK && (st = standard_number(&a)) == GRAFT_OK) {
    if (H5Tget_sign(a.type) == H5T_SGN_NONE) {
      uint64_t u = 0;
      if (H5Aread(a.attr, H5T_NATIVE_UINT64, &u) < 0)
        st = graft__h5_failed(GRAFT_EFORMAT, "H5Aread", __FILE__, __LINE__);
      else if (u > INT64_MAX)
        st = graft__fail(GRAFT_ERANGE, "value %llu is too large", (unsigned long long)u);
      else
        *v = (int64_t)u;
    } else if (H5Aread(a.attr, H5T_NATIVE_INT64, v) < 0) {
      st = graft__h5_failed(GRAFT_EFORMAT, "H5Aread", __FILE__, __LINE__);
    }
  }
  ATTR_END(name);
}

graft_status graft_h5_attr_double(graft_h5 *f, const char *name, double *v) {
  ATTR_BEGIN(f, NULL, name);
  if ((st = expect_class(&a, H5T_FLOAT, H5T_INTEGER)) == GRAFT_OK &&
      (st = expect_one(&a)) == GRAFT_OK)
    st = attr_read_doubles(&a, v);
  ATTR_END(name);
}

graft_status graft_h5_attr_floats(graft_h5 *f, const char *name, float *v, int count) {
  double *d = NULL;
  ATTR_BEGIN(f, NULL, name);
  if ((st = expect_class(&a, H5T_FLOAT, H5T_INTEGER)) != GRAFT_OK) goto close;
  if (count < 1 || a.n != (hsize_t)count) {
    st = graft__fail(GRAFT_ESHAPE, "expected %d values, found %llu", count,
                     (unsigned long long)a.n);
    goto close;
  }
  if (!(d = malloc((size_t)count * sizeof *d))) {
    st = graft__fail(GRAFT_ENOMEM, "out of memory");
    goto close;
  }
  if ((st = attr_read_doubles(&a, d)) == GRAFT_OK)
    for (int i = 0; i < count; i++) v[i] = (float)d[i];
  free(d);
close:
  ATTR_END(name);
}

const char *graft_h5_attr_kind_at(graft_h5 *f, const char *group, const char *name) {
  const char *kind = "other";
  if (graft__h5_enter() != GRAFT_OK) return kind;
  h5_attr a;
  graft_status st = attr_open(f, group, name, &a);
  if (st == GRAFT_OK) {
    kind = a.cls == H5T_STRING ? "string" : a.cls == H5T_INTEGER ? "integer"
         : a.cls == H5T_FLOAT ? "float" : "other";
    attr_close(&a);
  } else {
    kind = "missing"; /* or not reachable: a group through a soft link, a corrupt header */
  }
  graft__h5_leave();
  return kind;
}

const char *graft_h5_attr_kind(graft_h5 *f, const char *name) {
  const char *kind = graft_h5_attr_kind_at(f, NULL, name);
  return strcmp(kind, "missing") == 0 ? "other" : kind;
}

bool graft_h5_has_attr_at(graft_h5 *f, const char *group, const char *name) {
  return strcmp(graft_h5_attr_kind_at(f, group, name), "missing") != 0;
}
