/* torch.save's .pth files: the state_dict's tensors and where their bytes
 * lie (models/tensorfile.h).
 *
 * Zip format (PyTorch >= 1.6): an archive of stored entries under one top
 * folder, whatever its name: data.pkl (the pickle), data/<key> (each
 * storage's bytes) and version. Legacy format: a magic-number pickle, a
 * protocol pickle, a sys_info pickle, the main pickle, a pickle list of
 * storage keys, then per key an 8-byte little-endian element count and the
 * storage's bytes. In both the main pickle is read by the restricted
 * unpickler (io/pickle.h) with this file's short list of globals; a tensor
 * is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
 * with the storage a persistent id ('storage', <type>Storage, key,
 * location, numel[, view_metadata]). Only contiguous tensors are read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "io/zip.h"
#include "models/tensorfile.h"

#define MAX_TENSORS 10000
#define MAX_KEY 64

enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_TENSOR_V1, G_REBUILD_PARAM, G_STORAGE0 };

/* The storage types: element size, graft's type when it reads it. */
static const struct {
  const char *name;
  size_t size;
  graft_dtype dtype;
} storage_types[] = {
    {"FloatStorage", 4, GRAFT_DT_F32},     {"HalfStorage", 2, GRAFT_DT_F16},
    {"BFloat16Storage", 2, GRAFT_DT_BF16}, {"DoubleStorage", 8, GRAFT_DT_OTHER},
    {"LongStorage", 8, GRAFT_DT_OTHER},    {"IntStorage", 4, GRAFT_DT_OTHER},
    {"ShortStorage", 2, GRAFT_DT_OTHER},   {"CharStorage", 1, GRAFT_DT_OTHER},
    {"ByteStorage", 1, GRAFT_DT_OTHER},    {"BoolStorage", 1, GRAFT_DT_OTHER},
};
#define N_STORAGE_TYPES ((int)(sizeof storage_types / sizeof storage_types[0]))

static void globals(graft_pk_global *g) {
  g[G_ORDERED_DICT] = (graft_pk_global){"collections", "OrderedDict", GRAFT_PK_G_DICT};
  g[G_REBUILD_TENSOR] = (graft_pk_global){"torch._utils", "_rebuild_tensor_v2", GRAFT_PK_G_CALL};
  /* torch 0.3's files, before _rebuild_tensor_v2: (storage, offset, size, stride) */
  g[G_REBUILD_TENSOR_V1] = (graft_pk_global){"torch._utils", "_rebuild_tensor", GRAFT_PK_G_CALL};
  g[G_REBUILD_PARAM] = (graft_pk_global){"torch._utils", "_rebuild_parameter", GRAFT_PK_G_CALL};
  for (int i = 0; i < N_STORAGE_TYPES; i++)
    g[G_STORAGE0 + i] = (graft_pk_global){"torch", storage_types[i].name, GRAFT_PK_G_VALUE};
}
#define N_GLOBALS (G_STORAGE0 + N_STORAGE_TYPES)

typedef struct storage {
  char key[MAX_KEY];
  int type; /* index in storage_types */
  uint64_t numel;
  const uint8_t *data;
  size_t bytes;
} storage;

#define HASH_SLOTS 32768 /* a power of two over 2 * MAX_TENSORS */

typedef struct pth {
  const graft_pickle *p;
  storage *s;
  int n;
  int *slot; /* HASH_SLOTS indices into s, -1 when empty: a hostile pickle
                names storages millions of times */
} pth;

static uint32_t hash(const char *k) {
  uint32_t h = 2166136261u;
  for (; *k; k++) h = (h ^ (uint8_t)*k) * 16777619u;
  return h;
}

/* The slot of key: its storage's, or the empty one where it would go. */
static int *slot_of(const pth *f, const char *key) {
  for (uint32_t i = hash(key);; i++) {
    int *x = &f->slot[i & (HASH_SLOTS - 1)];
    if (*x < 0 || strcmp(f->s[*x].key, key) == 0) return x;
  }
}

static graft_status bad(const char *what) { return graft__fail(GRAFT_EFORMAT, "pth: %s", what); }

static bool is_int(const graft_pickle *p, graft_pk_ref v) {
  return graft_pk_type_of(p, v) == GRAFT_PK_INT;
}

static bool key_ok(const graft_pickle *p, graft_pk_ref v, char *out, size_t cap) {
  size_t len;
  if (graft_pk_type_of(p, v) != GRAFT_PK_STR) return false;
  const uint8_t *s = graft_pk_bytes(p, v, &len);
  if (len == 0 || len >= cap) return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] == 0x7f) return false;
  memcpy(out, s, len);
  out[len] = '\0';
  return true;
}

/* A persistent id: ('storage', type, key, location, numel[, None]). */
static graft_status read_persid(const graft_pickle *p, graft_pk_ref id, storage *st) {
  graft_pk_ref t = graft_pk_args(p, id);
  int n = graft_pk_count(p, t);
  if (graft_pk_type_of(p, t) != GRAFT_PK_TUPLE || (n != 5 && n != 6) ||
      !graft_pk_str_is(p, graft_pk_at(p, t, 0), "storage"))
    return bad("a persistent id that is not a storage");
  graft_pk_ref type = graft_pk_at(p, t, 1), numel = graft_pk_at(p, t, 4);
  if (graft_pk_type_of(p, type) != GRAFT_PK_GLOBAL || graft_pk_global_index(p, type) < G_STORAGE0)
    return bad("a storage of no storage type");
  if (!key_ok(p, graft_pk_at(p, t, 2), st->key, sizeof st->key))
    return bad("a storage key that is not a short string");
  if (!is_int(p, numel) || graft_pk_int(p, numel) < 0)
    return bad("a storage size that is not a size");
  if (n == 6 && graft_pk_type_of(p, graft_pk_at(p, t, 5)) != GRAFT_PK_NONE)
    return graft__fail(GRAFT_EUNSUPPORTED, "pth: storage %s is a view of another (not supported)",
                       st->key);
  st->type = graft_pk_global_index(p, type) - G_STORAGE0;
  st->numel = (uint64_t)graft_pk_int(p, numel);
  return GRAFT_OK;
}

/* Every storage the pickle names, once each (the same key twice must agree). */
static graft_status collect_storages(pth *f) {
  const graft_pickle *p = f->p;
  int cap = 0;
  f->slot = malloc(HASH_SLOTS * sizeof *f->slot);
  if (!f->slot) return graft__fail(GRAFT_ENOMEM, "pth: out of memory");
  for (int i = 0; i < HASH_SLOTS; i++) f->slot[i] = -1;
  for (int v = 0; v < graft_pickle_nodes(p); v++) {
    if (graft_pk_type_of(p, v) != GRAFT_PK_PERSID) continue;
    storage st = {0};
    GRAFT_TRY(read_persid(p, v, &st));
    int *x = slot_of(f, st.key);
    if (*x >= 0) {
      if (f->s[*x].type != st.type || f->s[*x].numel != st.numel)
        return bad("one storage key with two types or sizes");
      continue;
    }
    if (f->n >= MAX_TENSORS) return bad("too many storages");
    if (f->n == cap) {
      cap = cap ? 2 * cap : 64;
      storage *s = realloc(f->s, (size_t)cap * sizeof *s);
      if (!s) return graft__fail(GRAFT_ENOMEM, "pth: out of memory");
      f->s = s;
    }
    *x = f->n;
    f->s[f->n++] = st;
  }
  return GRAFT_OK;
}

static storage *find_storage(pth *f, const char *key) {
  int *x = slot_of(f, key);
  return *x < 0 ? NULL : &f->s[*x];
}

/* The state dict: the root, or its "state_dict" or "model" entry. */
static graft_status find_state_dict(const graft_pickle *p, graft_pk_ref *sd) {
  graft_pk_ref r = graft_pickle_root(p);
  if (graft_pk_type_of(p, r) != GRAFT_PK_DICT) return bad("the pickle holds no dict");
  for (int i = 0; i < graft_pk_count(p, r); i++) {
    graft_pk_ref k = graft_pk_key(p, r, i), v = graft_pk_at(p, r, i);
    if ((graft_pk_str_is(p, k, "state_dict") || graft_pk_str_is(p, k, "model")) &&
        graft_pk_type_of(p, v) == GRAFT_PK_DICT) {
      *sd = v;
      return GRAFT_OK;
    }
  }
  *sd = r;
  return GRAFT_OK;
}

static graft_status int_tuple(const graft_pickle *p, graft_pk_ref v, int64_t *out, int *n,
                              const char *name, const char *what) {
  *n = graft_pk_count(p, v);
  if (graft_pk_type_of(p, v) != GRAFT_PK_TUPLE || *n > GRAFT_TENSOR_MAX_RANK)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": its %s is not a short tuple", name, what);
  for (int i = 0; i < *n; i++) {
    graft_pk_ref x = graft_pk_at(p, v, i);
    if (!is_int(p, x) || graft_pk_int(p, x) < 0 || graft_pk_int(p, x) > (INT64_C(1) << 40))
      return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": its %s holds a bad value", name, what);
    out[i] = graft_pk_int(p, x);
  }
  return GRAFT_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]),
 * or the older _rebuild_tensor(storage, offset, size, stride). */
static graft_status read_tensor(pth *f, graft_pk_ref v, graft_tensor_ref *t) {
  const graft_pickle *p = f->p;
  if (graft_pk_type_of(p, v) == GRAFT_PK_CALL &&
      graft_pk_global_index(p, v) == G_REBUILD_PARAM) { /* a Parameter around a tensor */
    graft_pk_ref a = graft_pk_args(p, v);
    if (graft_pk_count(p, a) < 1)
      return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": an empty parameter", t->name);
    v = graft_pk_at(p, a, 0);
  }
  int g = graft_pk_type_of(p, v) == GRAFT_PK_CALL ? graft_pk_global_index(p, v) : -1;
  if (g != G_REBUILD_TENSOR && g != G_REBUILD_TENSOR_V1)
    return graft__fail(GRAFT_EFORMAT, "entry \"%s\": not a tensor", t->name);
  graft_pk_ref a = graft_pk_args(p, v);
  int na = graft_pk_count(p, a);
  if (g == G_REBUILD_TENSOR ? na != 6 && na != 7 : na != 4)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": %d arguments", t->name, na);
  graft_pk_ref id = graft_pk_at(p, a, 0), off = graft_pk_at(p, a, 1);
  if (graft_pk_type_of(p, id) != GRAFT_PK_PERSID)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": no storage", t->name);
  storage st;
  GRAFT_TRY(read_persid(p, id, &st));
  const storage *s = find_storage(f, st.key);
  if (!s || !is_int(p, off) || graft_pk_int(p, off) < 0)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": a bad storage or offset", t->name);
  int64_t stride[GRAFT_TENSOR_MAX_RANK];
  int ns;
  GRAFT_TRY(int_tuple(p, graft_pk_at(p, a, 2), t->dims, &t->rank, t->name, "size"));
  GRAFT_TRY(int_tuple(p, graft_pk_at(p, a, 3), stride, &ns, t->name, "stride"));
  if (ns != t->rank)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": size and stride differ in rank", t->name);
  size_t es = storage_types[s->type].size;
  uint64_t count = 1, room = s->bytes / es, first = (uint64_t)graft_pk_int(p, off);
  bool fits = true;
  for (int i = t->rank - 1; i >= 0; i--) {
    if (t->dims[i] != 1 && (uint64_t)stride[i] != count)
      return graft__fail(GRAFT_EUNSUPPORTED,
                         "tensor \"%s\": not contiguous (strides not supported)", t->name);
    if (t->dims[i] && count > room / (uint64_t)t->dims[i]) fits = false;
    if (fits) count *= (uint64_t)t->dims[i];
  }
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] == 0) fits = true, count = 0; /* nothing to read */
  if (!fits || first > room || count > room - first)
    return graft__fail(GRAFT_EFORMAT, "tensor \"%s\": runs past the end of its storage", t->name);
  t->dtype = storage_types[s->type].dtype;
  t->type_name = storage_types[s->type].name;
  t->count = (size_t)count;
  t->data = s->data + first * es;
  return GRAFT_OK;
}

/* Zip: every storage's bytes in <top>/data/<key>. */
static graft_status zip_storages(pth *f, const graft_zip *z, const char *top) {
  for (int i = 0; i < f->n; i++) {
    storage *s = &f->s[i];
    char name[GRAFT_ZIP_MAX_NAME + MAX_KEY + 8];
    snprintf(name, sizeof name, "%s/data/%s", top, s->key);
    if (!graft_zip_find(z, name, &s->data, &s->bytes))
      return graft__fail(GRAFT_EFORMAT, "pth: no entry data/%s for its storage", s->key);
    if (s->numel > s->bytes / storage_types[s->type].size)
      return graft__fail(GRAFT_EFORMAT, "pth: storage %s is shorter than its size", s->key);
  }
  return GRAFT_OK;
}

/* Legacy: after the main pickle, the key list and each storage in order. */
static graft_status legacy_storages(pth *f, const uint8_t *buf, size_t n, size_t at) {
  static const graft_pk_global none[1] = {{"", "", GRAFT_PK_G_VALUE}};
  graft_pickle *keys;
  size_t used;
  GRAFT_TRY(graft_pickle_load(buf + at, n - at, none, 0, &keys, &used));
  at += used;
  graft_pk_ref l = graft_pickle_root(keys);
  graft_status s =
      graft_pk_type_of(keys, l) == GRAFT_PK_LIST ? GRAFT_OK : bad("no storage key list");
  for (int i = 0; s == GRAFT_OK && i < graft_pk_count(keys, l); i++) {
    char key[MAX_KEY];
    storage *st =
        key_ok(keys, graft_pk_at(keys, l, i), key, sizeof key) ? find_storage(f, key) : NULL;
    if (!st || st->data) {
      s = bad("a storage key list that does not match the pickle");
      break;
    }
    size_t es = storage_types[st->type].size;
    if (n - at < 8) {
      s = bad("truncated storage data");
      break;
    }
    uint64_t count = 0;
    for (int b = 7; b >= 0; b--) count = count << 8 | buf[at + (size_t)b];
    at += 8;
    if (count != st->numel || count > (n - at) / es) {
      s = bad("truncated or mis-sized storage data");
      break;
    }
    st->data = buf + at;
    st->bytes = (size_t)count * es;
    at += st->bytes;
  }
  graft_pickle_free(keys);
  for (int i = 0; s == GRAFT_OK && i < f->n; i++)
    if (!f->s[i].data) s = graft__fail(GRAFT_EFORMAT, "pth: storage %s has no data", f->s[i].key);
  return s;
}

/* The zip's top folder: the one of its data.pkl, "<top>/data.pkl". */
static graft_status zip_top(const graft_zip *z, char *top, size_t cap) {
  for (int i = 0; i < graft_zip_count(z); i++) {
    size_t len;
    const char *name = graft_zip_name(z, i, &len);
    if (len <= 9 || memcmp(name + len - 9, "/data.pkl", 9) != 0) continue;
    size_t tl = len - 9;
    if (memchr(name, '/', tl) || memchr(name, '\0', tl) || tl >= cap) continue;
    memcpy(top, name, tl);
    top[tl] = '\0';
    return GRAFT_OK;
  }
  return bad("a zip without data.pkl (not a torch.save file)");
}

/* The three pickles before the main one: magic number, protocol, sys_info. */
static graft_status legacy_preamble(const uint8_t *buf, size_t n, size_t *at) {
  static const uint8_t magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  static const graft_pk_global none[1] = {{"", "", GRAFT_PK_G_VALUE}};
  for (int k = 0; k < 3; k++) {
    graft_pickle *p;
    size_t used;
    GRAFT_TRY(graft_pickle_load(buf + *at, n - *at, none, 0, &p, &used));
    *at += used;
    graft_pk_ref r = graft_pickle_root(p);
    size_t len = 0;
    bool ok = k == 0 ? graft_pk_type_of(p, r) == GRAFT_PK_BIGINT &&
                           !memcmp(graft_pk_bytes(p, r, &len), magic, 10) && len == 10
              : k == 1 ? graft_pk_type_of(p, r) == GRAFT_PK_INT && graft_pk_int(p, r) == 1001
                       : graft_pk_type_of(p, r) == GRAFT_PK_DICT;
    for (int i = 0; ok && k == 2 && i < graft_pk_count(p, r); i++)
      if (graft_pk_str_is(p, graft_pk_key(p, r, i), "little_endian"))
        ok = graft_pk_type_of(p, graft_pk_at(p, r, i)) == GRAFT_PK_BOOL &&
             graft_pk_int(p, graft_pk_at(p, r, i)) == 1;
    graft_pickle_free(p);
    if (!ok)
      return bad(k == 0   ? "not a torch.save file (no magic number)"
                 : k == 1 ? "an unknown legacy protocol version"
                          : "a big-endian or damaged legacy file");
  }
  return GRAFT_OK;
}

static graft_status tensors_of(pth *f, graft_tensor_ref **out, int *count) {
  const graft_pickle *p = f->p;
  graft_pk_ref sd = 0;
  GRAFT_TRY(find_state_dict(p, &sd));
  int n = graft_pk_count(p, sd);
  if (n > MAX_TENSORS) return bad("too many tensors");
  graft_tensor_ref *t = calloc((size_t)n + 1, sizeof *t);
  if (!t) return graft__fail(GRAFT_ENOMEM, "pth: out of memory");
  graft_status s = GRAFT_OK;
  for (int i = 0; s == GRAFT_OK && i < n; i++) {
    if (!key_ok(p, graft_pk_key(p, sd, i), t[i].name, sizeof t[i].name))
      s = bad("a state_dict key that is not a short string");
    else
      s = read_tensor(f, graft_pk_at(p, sd, i), &t[i]);
  }
  if (s != GRAFT_OK) {
    free(t);
    return s;
  }
  *out = t;
  *count = n;
  return GRAFT_OK;
}

graft_status graft__pth_tensors(const uint8_t *buf, size_t n, bool zip, graft_tensor_ref **t,
                                int *count) {
  *t = NULL, *count = 0;
  graft_pk_global g[N_GLOBALS];
  globals(g);
  graft_zip *z = NULL;
  graft_pickle *p = NULL;
  pth f = {0};
  char top[GRAFT_ZIP_MAX_NAME];
  const uint8_t *pkl = buf;
  size_t pkl_len = n, at = 0, used = 0;
  graft_status s = GRAFT_OK;
  if (zip) {
    s = graft_zip_open(buf, n, &z);
    if (s == GRAFT_OK) s = zip_top(z, top, sizeof top);
    if (s == GRAFT_OK) {
      char name[GRAFT_ZIP_MAX_NAME + 16];
      snprintf(name, sizeof name, "%s/data.pkl", top);
      if (!graft_zip_find(z, name, &pkl, &pkl_len)) s = bad("a zip without data.pkl");
    }
  } else {
    s = legacy_preamble(buf, n, &at);
  }
  if (s == GRAFT_OK) s = graft_pickle_load(pkl + at, pkl_len - at, g, N_GLOBALS, &p, &used);
  f.p = p;
  if (s == GRAFT_OK) s = collect_storages(&f);
  if (s == GRAFT_OK) s = zip ? zip_storages(&f, z, top) : legacy_storages(&f, buf, n, at + used);
  if (s == GRAFT_OK) s = tensors_of(&f, t, count);
  free(f.s);
  free(f.slot);
  graft_pickle_free(p);
  graft_zip_close(z);
  return s;
}
