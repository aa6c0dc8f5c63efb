#include "io/settings.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5.h"
#include "io/isolate.h"

static void *field(void *obj, const graft_setting *s) { return (char *)obj + s->offset; }
static const void *cfield(const void *obj, const graft_setting *s) {
  return (const char *)obj + s->offset;
}

/* CHOICE fields are ints or enums: the table's owner asserts that its enums
 * have an int's size (apps/finetune/config.c). */
static int get_choice(const void *obj, const graft_setting *s) {
  int v;
  memcpy(&v, cfield(obj, s), sizeof v);
  return v;
}
static void put_choice(void *obj, const graft_setting *s, int v) {
  memcpy(field(obj, s), &v, sizeof v);
}

static int count_choices(const graft_setting *s) {
  int n = 0;
  while (s->choices[n]) n++;
  return n;
}

/* "a,b,c": how messages list the choices. */
static void list_choices(const graft_setting *s, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; s->choices[i] && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "," : "", s->choices[i]);
}

void graft_settings_defaults(const graft_settings *s, void *obj, bool *given) {
  for (int i = 0; i < s->count; i++) {
    const graft_setting *t = &s->table[i];
    if (t->type == GRAFT_SETTING_TEXT)
      snprintf(field(obj, t), t->size, "%s", t->text_default);
    else if (t->type == GRAFT_SETTING_INT)
      *(int64_t *)field(obj, t) = (int64_t)t->def;
    else if (t->type == GRAFT_SETTING_REAL)
      *(double *)field(obj, t) = t->def;
    else
      put_choice(obj, t, (int)t->def);
    given[i] = false;
  }
}

static int find(const graft_settings *s, const char *name) {
  char norm[64];
  snprintf(norm, sizeof norm, "%s", name);
  for (char *p = norm; *p; p++)
    if (*p == '-') *p = '_';
  for (int i = 0; i < s->count; i++)
    if (strcmp(s->table[i].name, norm) == 0) return i;
  return -1;
}

/* A CHOICE from its name. */
static graft_status set_choice(const graft_setting *t, void *obj, const char *v) {
  for (int i = 0; t->choices[i]; i++)
    if (strcmp(t->choices[i], v) == 0) {
      put_choice(obj, t, i);
      return GRAFT_OK;
    }
  char list[256];
  list_choices(t, list, sizeof list);
  return graft__fail(GRAFT_ERANGE, "\"%s\" is not one of: %s", v, list);
}

/* Range checks shared by the file and the command line. */
static graft_status check_value(const graft_setting *t, const void *obj) {
  if (t->type == GRAFT_SETTING_TEXT)
    return t->check ? t->check(cfield(obj, t)) : GRAFT_OK;
  if (t->type == GRAFT_SETTING_CHOICE) {
    int v = get_choice(obj, t);
    return v >= 0 && v < count_choices(t) ? GRAFT_OK
                                          : graft__fail(GRAFT_ERANGE, "choice %d", v);
  }
  double v = t->type == GRAFT_SETTING_INT ? (double)*(const int64_t *)cfield(obj, t)
                                          : *(const double *)cfield(obj, t);
  if (!(v >= t->lo && v <= t->hi))
    return graft__fail(GRAFT_ERANGE, "%g is outside [%g, %g]", v, t->lo, t->hi);
  return GRAFT_OK;
}

graft_status graft_settings_set(const graft_settings *s, void *obj, bool *given, const char *name,
                                const char *value) {
  int i = find(s, name);
  if (i < 0) return graft__fail(GRAFT_EINVAL, "unknown setting \"%s\"", name);
  const graft_setting *t = &s->table[i];
  char *end;
  errno = 0;
  graft_status st = GRAFT_OK;
  if (t->type == GRAFT_SETTING_TEXT) {
    if (strlen(value) >= t->size) return graft__fail(GRAFT_ERANGE, "%s: value too long", t->name);
    snprintf(field(obj, t), t->size, "%s", value);
  } else if (t->type == GRAFT_SETTING_INT) {
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end)
      return graft__fail(GRAFT_EINVAL, "%s: \"%s\" is not an integer", t->name, value);
    *(int64_t *)field(obj, t) = v;
  } else if (t->type == GRAFT_SETTING_REAL) {
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v))
      return graft__fail(GRAFT_EINVAL, "%s: \"%s\" is not a number", t->name, value);
    *(double *)field(obj, t) = v;
  } else {
    st = set_choice(t, obj, value);
  }
  if (st == GRAFT_OK) st = check_value(t, obj);
  if (st != GRAFT_OK) return graft__context(st, "%s", t->name);
  given[i] = true;
  return GRAFT_OK;
}

static graft_status load_attr(graft_h5 *f, const graft_setting *t, void *obj) {
  const char *kind = graft_h5_attr_kind(f, t->name);
  char kind_found[32]; /* "a string", "an integer" */
  snprintf(kind_found, sizeof kind_found, "%s %s", strchr("aeiou", kind[0]) ? "an" : "a", kind);
  if (t->type == GRAFT_SETTING_TEXT || t->type == GRAFT_SETTING_CHOICE) {
    if (strcmp(kind, "string") != 0)
      return graft__fail(GRAFT_EFORMAT, "expected a string, found %s", kind_found);
    if (t->type == GRAFT_SETTING_TEXT)
      return graft_h5_attr_string(f, t->name, field(obj, t), t->size);
    char v[256];
    GRAFT_TRY(graft_h5_attr_string(f, t->name, v, sizeof v));
    return set_choice(t, obj, v);
  }
  if (t->type == GRAFT_SETTING_INT) {
    if (strcmp(kind, "integer") != 0)
      return graft__fail(GRAFT_EFORMAT, "expected an integer, found %s", kind_found);
    return graft_h5_attr_int(f, t->name, (int64_t *)field(obj, t));
  }
  if (strcmp(kind, "integer") != 0 && strcmp(kind, "float") != 0)
    return graft__fail(GRAFT_EFORMAT, "expected a number, found %s", kind_found);
  return graft_h5_attr_double(f, t->name, (double *)field(obj, t));
}

static graft_status load_file(const graft_settings *s, const char *path, void *obj,
                              bool *given) {
  graft_settings_defaults(s, obj, given);
  graft_h5 *f;
  GRAFT_TRY(graft_h5_open(path, &f));
  char **names = NULL;
  int count = 0;
  graft_status st = graft_h5_attr_names(f, &names, &count);
  for (int a = 0; st == GRAFT_OK && a < count; a++) {
    int i = find(s, names[a]);
    if (i < 0 || strchr(names[a], '-')) {
      st = graft__fail(GRAFT_EINVAL, "unknown attribute \"%s\"", names[a]);
      break;
    }
    st = load_attr(f, &s->table[i], obj);
    if (st == GRAFT_OK) st = check_value(&s->table[i], obj);
    if (st != GRAFT_OK)
      graft__context(st, "attribute \"%s\"", names[a]);
    else
      given[i] = true;
  }
  graft_strv_free(names, count);
  if (st == GRAFT_OK) {
    char **ds = NULL;
    int nds = 0;
    st = graft_h5_dataset_names(f, &ds, &nds);
    if (st == GRAFT_OK && nds > 0)
      st = graft__fail(GRAFT_EFORMAT, "unexpected dataset \"%s\" in a config file", ds[0]);
    graft_strv_free(ds, nds);
  }
  graft_h5_close(f);
  return st;
}

static size_t field_size(const graft_setting *t) {
  return t->type == GRAFT_SETTING_TEXT     ? t->size
         : t->type == GRAFT_SETTING_CHOICE ? sizeof(int)
         : t->type == GRAFT_SETTING_INT    ? sizeof(int64_t)
                                           : sizeof(double);
}

/* The bytes of obj the table covers. */
static size_t extent(const graft_settings *s) {
  size_t end = 0;
  for (int i = 0; i < s->count; i++) {
    size_t e = s->table[i].offset + field_size(&s->table[i]);
    if (e > end) end = e;
  }
  return end;
}

typedef struct load_job {
  const graft_settings *s;
  const char *path;
} load_job;

/* The loader (io/isolate.h): the fields and the given flags, in mem. */
static graft_status load_settings(void *arg, graft_arena *mem, void **result) {
  const load_job *j = arg;
  size_t bytes = extent(j->s);
  char *pub = graft_arena_alloc(mem, bytes + (size_t)j->s->count);
  if (!pub) return graft__fail(GRAFT_ENOMEM, "out of memory");
  GRAFT_TRY(load_file(j->s, j->path, pub, (bool *)(pub + bytes)));
  *result = pub;
  return GRAFT_OK;
}

graft_status graft_settings_load(const graft_settings *s, const char *path, void *obj,
                                 bool *given) {
  graft_settings_defaults(s, obj, given);
  load_job j = {s, path};
  graft_isolated *job;
  GRAFT_TRY(graft_isolate(path, load_settings, &j, &job));
  const char *pub = graft_isolated_result(job);
  size_t bytes = extent(s);
  for (int i = 0; i < s->count; i++) {
    const graft_setting *t = &s->table[i];
    memcpy(field(obj, t), pub + t->offset, field_size(t));
    given[i] = ((const bool *)(pub + bytes))[i];
  }
  graft_isolated_end(job);
  return GRAFT_OK;
}

int graft_settings_missing(const graft_settings *s, const void *obj, const bool *given) {
  for (int i = 0; i < s->count; i++) {
    const graft_setting *t = &s->table[i];
    if (!t->required) continue;
    bool empty = t->type == GRAFT_SETTING_TEXT && ((const char *)cfield(obj, t))[0] == '\0';
    if (!given[i] || empty) return i;
  }
  return -1;
}

graft_status graft_settings_save(const graft_settings *s, const char *path, const void *obj,
                                 const bool *given) {
  graft_h5w *w;
  GRAFT_TRY(graft_h5w_create(path, &w));
  graft_status st = GRAFT_OK;
  for (int i = 0; st == GRAFT_OK && i < s->count; i++) {
    const graft_setting *t = &s->table[i];
    if (!given[i] && !t->required) continue;
    if (t->type == GRAFT_SETTING_TEXT)
      st = graft_h5w_attr_string(w, t->name, cfield(obj, t));
    else if (t->type == GRAFT_SETTING_CHOICE)
      st = graft_h5w_attr_string(w, t->name, t->choices[get_choice(obj, t)]);
    else if (t->type == GRAFT_SETTING_INT)
      st = graft_h5w_attr_int(w, t->name, *(const int64_t *)cfield(obj, t));
    else
      st = graft_h5w_attr_double(w, t->name, *(const double *)cfield(obj, t));
  }
  if (st != GRAFT_OK) {
    graft_h5w_abort(w);
    return st;
  }
  return graft_h5w_commit(w);
}

void graft_settings_format(const graft_settings *s, int i, const void *obj, char *buf,
                           size_t cap) {
  const graft_setting *t = &s->table[i];
  if (t->type == GRAFT_SETTING_TEXT)
    snprintf(buf, cap, "%s", (const char *)cfield(obj, t));
  else if (t->type == GRAFT_SETTING_CHOICE)
    snprintf(buf, cap, "%s", t->choices[get_choice(obj, t)]);
  else if (t->type == GRAFT_SETTING_INT)
    snprintf(buf, cap, "%lld", (long long)*(const int64_t *)cfield(obj, t));
  else
    snprintf(buf, cap, "%.17g", *(const double *)cfield(obj, t));
}

uint64_t graft_settings_hash(const graft_settings *s, const void *obj) {
  uint64_t h = 0xcbf29ce484222325ULL;
  char value[4200], buf[4300];
  for (int i = 0; i < s->count; i++) {
    const graft_setting *t = &s->table[i];
    if (!t->hashed) continue;
    graft_settings_format(s, i, obj, value, sizeof value);
    int n = snprintf(buf, sizeof buf, "%s=%s;", t->name, value);
    for (int j = 0; j < n && j < (int)sizeof buf; j++) {
      h ^= (unsigned char)buf[j];
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}
