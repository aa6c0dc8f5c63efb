#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

bool graft_safetensors_detect(const uint8_t *buf, size_t n) { return n >= 9 && buf[8] == '{'; }

typedef struct range {
  uint64_t begin, end;
  int tensor;
} range;

static int cmp_range(const void *a, const void *b) {
  const range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const graft_tensor_ref *)a)->name, ((const graft_tensor_ref *)b)->name);
}

static graft_status check_metadata(const graft_json *j, graft_json_ref m) {
  if (graft_json_type_of(j, m) != GRAFT_JSON_OBJECT)
    return graft__fail(GRAFT_EFORMAT, "safetensors header: __metadata__ is not an object");
  for (int i = 0; i < graft_json_count(j, m); i++)
    if (graft_json_type_of(j, graft_json_at(j, m, i)) != GRAFT_JSON_STRING)
      return graft__fail(GRAFT_EFORMAT, "safetensors header: __metadata__ entry %d is not a string",
                         i);
  return GRAFT_OK;
}

/* One tensor's entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static graft_status read_entry(const graft_json *j, graft_json_ref e, graft_tensor_ref *t, range *r,
                               uint64_t data_len) {
  const char *n = t->name;
  if (graft_json_type_of(j, e) != GRAFT_JSON_OBJECT || graft_json_count(j, e) != 3)
    return graft__fail(GRAFT_EFORMAT,
                       "tensor \"%.64s\": expected an object of dtype, shape and data_offsets", n);
  graft_json_ref dt = graft_json_get(j, e, "dtype"), sh = graft_json_get(j, e, "shape"),
                 off = graft_json_get(j, e, "data_offsets");
  if (dt < 0 || sh < 0 || off < 0 || graft_json_type_of(j, dt) != GRAFT_JSON_STRING ||
      graft_json_type_of(j, sh) != GRAFT_JSON_ARRAY ||
      graft_json_type_of(j, off) != GRAFT_JSON_ARRAY || graft_json_count(j, off) != 2)
    return graft__fail(GRAFT_EFORMAT,
                       "tensor \"%.64s\": expected an object of dtype, shape and data_offsets", n);
  const char *d = graft_json_string(j, dt, NULL);
  if (strcmp(d, "F32") == 0)
    t->dtype = GRAFT_DT_F32, t->type_name = "F32";
  else if (strcmp(d, "F16") == 0)
    t->dtype = GRAFT_DT_F16, t->type_name = "F16";
  else if (strcmp(d, "BF16") == 0)
    t->dtype = GRAFT_DT_BF16, t->type_name = "BF16";
  else
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "tensor \"%.64s\": dtype \"%.16s\" is not supported (F32, F16, BF16)", n, d);
  t->rank = graft_json_count(j, sh);
  if (t->rank > GRAFT_TENSOR_MAX_RANK)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": rank %d is over %d", n, t->rank,
                       GRAFT_TENSOR_MAX_RANK);
  uint64_t count = 1;
  for (int i = 0; i < t->rank; i++) {
    int64_t v;
    if (!graft_json_int(j, graft_json_at(j, sh, i), &v) || v < 0 || v > (int64_t)data_len)
      return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": shape entry %d is not a size", n, i);
    t->dims[i] = v;
    if (v && count > data_len / (uint64_t)v)
      return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": shape larger than the file", n);
    count *= (uint64_t)v;
  }
  int64_t b = -1, en = -1;
  if (!graft_json_int(j, graft_json_at(j, off, 0), &b) ||
      !graft_json_int(j, graft_json_at(j, off, 1), &en) || b < 0 || en < b ||
      (uint64_t)en > data_len)
    return graft__fail(GRAFT_EFORMAT,
                       "tensor \"%.64s\": data_offsets [%lld, %lld] outside the %llu bytes of data",
                       n, (long long)b, (long long)en, (unsigned long long)data_len);
  if ((uint64_t)(en - b) != count * graft_dtype_size(t->dtype))
    return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": %llu bytes for %llu elements of %s", n,
                       (unsigned long long)(en - b), (unsigned long long)count, d);
  t->count = (size_t)count;
  r->begin = (uint64_t)b;
  r->end = (uint64_t)en;
  return GRAFT_OK;
}

/* The ranges tile [0, data_len): sorted, each starts where the last ended. */
static graft_status check_tiling(range *r, int n, const graft_tensor_ref *t, uint64_t data_len) {
  qsort(r, (size_t)n, sizeof *r, cmp_range);
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (r[i].begin < at)
      return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": its bytes overlap another tensor's",
                         t[r[i].tensor].name);
    if (r[i].begin > at)
      return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": a gap of %llu bytes before its data",
                         t[r[i].tensor].name, (unsigned long long)(r[i].begin - at));
    at = r[i].end;
  }
  if (at != data_len)
    return graft__fail(GRAFT_EFORMAT,
                       "safetensors: %llu bytes after the last tensor's data (the file should "
                       "end there)",
                       (unsigned long long)(data_len - at));
  return GRAFT_OK;
}

static graft_status read_header(const uint8_t *buf, size_t n, const graft_json *j,
                                graft_tensor_ref *t, range *r, int *count, graft_json_ref *meta_obj,
                                uint64_t hlen) {
  uint64_t data_len = n - 8 - hlen;
  const uint8_t *data = buf + 8 + hlen;
  int k = 0;
  for (int i = 0; i < graft_json_count(j, 0); i++) {
    size_t len;
    const char *name = graft_json_string(j, graft_json_key(j, 0, i), &len);
    graft_json_ref e = graft_json_at(j, 0, i);
    if (strcmp(name, "__metadata__") == 0) {
      if (*meta_obj >= 0)
        return graft__fail(GRAFT_EFORMAT, "safetensors header: __metadata__ twice");
      GRAFT_TRY(check_metadata(j, e));
      *meta_obj = e;
      continue;
    }
    if (len == 0 || len >= GRAFT_TENSOR_NAME_MAX)
      return graft__fail(GRAFT_EFORMAT, "safetensors header: tensor name %d is %s", i,
                         len ? "too long" : "empty");
    for (size_t c = 0; c < len; c++)
      if ((unsigned char)name[c] < 0x20 || name[c] == 0x7f)
        return graft__fail(GRAFT_EFORMAT,
                           "safetensors header: tensor name %d contains a control character", i);
    memcpy(t[k].name, name, len + 1);
    GRAFT_TRY(read_entry(j, e, &t[k], &r[k], data_len));
    t[k].data = data + r[k].begin;
    r[k].tensor = k;
    k++;
  }
  GRAFT_TRY(check_tiling(r, k, t, data_len));
  qsort(t, (size_t)k, sizeof *t, cmp_name);
  for (int i = 1; i < k; i++)
    if (strcmp(t[i].name, t[i - 1].name) == 0)
      return graft__fail(GRAFT_EFORMAT, "tensor \"%.64s\": named twice", t[i].name);
  *count = k;
  return GRAFT_OK;
}

graft_status graft_safetensors_parse(const uint8_t *buf, size_t n, graft_tensor_ref **out,
                                     int *count, graft_json **meta, graft_json_ref *meta_obj) {
  *out = NULL, *count = 0, *meta = NULL, *meta_obj = -1;
  if (n < 8) return graft__fail(GRAFT_EFORMAT, "safetensors: shorter than its header length");
  uint64_t hlen = le64(buf);
  if (hlen > GRAFT_SAFETENSORS_MAX_HEADER)
    return graft__fail(GRAFT_ELIMIT, "safetensors: a header of %llu bytes (the limit is %u)",
                       (unsigned long long)hlen, GRAFT_SAFETENSORS_MAX_HEADER);
  if (hlen > n - 8)
    return graft__fail(GRAFT_EFORMAT, "safetensors: a header of %llu bytes in a file of %zu",
                       (unsigned long long)hlen, n);
  graft_json *j;
  GRAFT_TRY(graft_json_parse((const char *)buf + 8, (size_t)hlen, &j));
  if (graft_json_type_of(j, 0) != GRAFT_JSON_OBJECT) {
    graft_json_free(j);
    return graft__fail(GRAFT_EFORMAT, "safetensors header: not a JSON object");
  }
  int members = graft_json_count(j, 0);
  if (members > GRAFT_SAFETENSORS_MAX_TENSORS) {
    graft_json_free(j);
    return graft__fail(GRAFT_ELIMIT, "safetensors header: %d tensors (the limit is %d)", members,
                       GRAFT_SAFETENSORS_MAX_TENSORS);
  }
  graft_tensor_ref *t = calloc((size_t)members + 1, sizeof *t);
  range *r = calloc((size_t)members + 1, sizeof *r);
  graft_status s = t && r ? read_header(buf, n, j, t, r, count, meta_obj, hlen)
                          : graft__fail(GRAFT_ENOMEM, "safetensors: out of memory");
  free(r);
  if (s != GRAFT_OK) {
    free(t);
    graft_json_free(j);
    *count = 0, *meta_obj = -1;
    return s;
  }
  *out = t;
  *meta = j;
  return GRAFT_OK;
}
