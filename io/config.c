#include "io/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5.h"

typedef enum { T_STR, T_INT, T_REAL } value_type;

/* One setting: where it lives, its default and its bounds or choices. */
typedef struct setting {
  const char *name;
  value_type type;
  size_t offset;
  size_t size;          /* T_STR: buffer size */
  const char *def_str;  /* T_STR default ("" = none) */
  double def, lo, hi;   /* T_INT / T_REAL default and inclusive bounds */
  const char *choices;  /* T_STR: comma-separated allowed values, NULL = free */
  bool required, hashed;
} setting;

#define STR(n, d, ch, req, h) \
  {#n, T_STR, offsetof(graft_config, n), sizeof(((graft_config *)0)->n), d, 0, 0, 0, ch, req, h}
#define INT(n, d, lo, hi, h) {#n, T_INT, offsetof(graft_config, n), 0, NULL, d, lo, hi, NULL, false, h}
#define REAL(n, d, lo, hi, h) \
  {#n, T_REAL, offsetof(graft_config, n), 0, NULL, d, lo, hi, NULL, false, h}

static const setting table[] = {
    STR(arch, "", "alexnet,vgg16", true, true),
    STR(weights, "", NULL, true, true),
    STR(data, "", NULL, true, true),
    STR(output, "", NULL, false, false),
    INT(epochs, 25, 1, 100000, false),
    INT(batch_size, 4, 1, 4096, true),
    REAL(lr, 0.001, 0, 10, true),
    REAL(momentum, 0.9, 0, 1, true),
    REAL(weight_decay, 0, 0, 1, true),
    INT(step_size, 7, 1, 100000, true),
    REAL(gamma, 0.1, 0, 1, true),
    STR(trainable, "classifier", "classifier,head", false, true),
    INT(new_head, 1, 0, 1, true),
    REAL(dropout, 0.5, 0, 0.99, true),
    STR(augment, "tutorial", "tutorial,none", false, true),
    INT(shuffle, 1, 0, 1, true),
    INT(seed, 0, 0, 9007199254740991.0, true),
    STR(cache_features, "auto", "auto,on,off", false, false),
    STR(device, "auto", NULL, false, false),
    STR(precision, "fp32", "fp32,fp32-strict", false, false),
    INT(threads, 0, 0, 1024, false),
    REAL(save_every, 60, 0, 1e9, false),
};
#define N_SETTINGS ((int)(sizeof table / sizeof table[0]))
_Static_assert(sizeof table / sizeof table[0] <= sizeof((graft_config *)0)->given,
               "graft_config.given must have a flag per setting");

int graft_config_count(void) { return N_SETTINGS; }
const char *graft_config_name(int i) { return table[i].name; }

static void *field(graft_config *c, const setting *s) { return (char *)c + s->offset; }
static const void *cfield(const graft_config *c, const setting *s) {
  return (const char *)c + s->offset;
}

void graft_config_defaults(graft_config *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < N_SETTINGS; i++) {
    const setting *s = &table[i];
    if (s->type == T_STR)
      snprintf(field(c, s), s->size, "%s", s->def_str);
    else if (s->type == T_INT)
      *(int64_t *)field(c, s) = (int64_t)s->def;
    else
      *(double *)field(c, s) = s->def;
  }
}

static int find(const char *name) {
  char norm[64];
  snprintf(norm, sizeof norm, "%s", name);
  for (char *p = norm; *p; p++)
    if (*p == '-') *p = '_';
  for (int i = 0; i < N_SETTINGS; i++)
    if (strcmp(table[i].name, norm) == 0) return i;
  return -1;
}

static bool in_choices(const char *choices, const char *v) {
  size_t n = strlen(v);
  for (const char *p = choices; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, v, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}

/* Range and choice checks shared by the file and the command line. */
static graft_status check_value(const setting *s, const graft_config *c) {
  if (s->type == T_STR) {
    const char *v = cfield(c, s);
    if (s->choices && !in_choices(s->choices, v))
      return graft__fail(GRAFT_ERANGE, "\"%s\" is not one of: %s", v, s->choices);
    if (strcmp(s->name, "device") == 0 && strcmp(v, "auto") != 0 && strcmp(v, "cpu") != 0 &&
        strncmp(v, "cuda", 4) != 0)
      return graft__fail(GRAFT_ERANGE, "\"%s\" is not one of: auto, cpu, cuda, cuda:N", v);
    return GRAFT_OK;
  }
  double v = s->type == T_INT ? (double)*(const int64_t *)cfield(c, s) : *(const double *)cfield(c, s);
  if (!(v >= s->lo && v <= s->hi))
    return graft__fail(GRAFT_ERANGE, "%g is outside [%g, %g]", v, s->lo, s->hi);
  return GRAFT_OK;
}

graft_status graft_config_set(graft_config *c, const char *name, const char *value) {
  int i = find(name);
  if (i < 0) return graft__fail(GRAFT_EINVAL, "unknown setting \"%s\"", name);
  const setting *s = &table[i];
  char *end;
  errno = 0;
  if (s->type == T_STR) {
    if (strlen(value) >= s->size)
      return graft__fail(GRAFT_ERANGE, "%s: value too long", s->name);
    snprintf(field(c, s), s->size, "%s", value);
  } else if (s->type == T_INT) {
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end)
      return graft__fail(GRAFT_EINVAL, "%s: \"%s\" is not an integer", s->name, value);
    *(int64_t *)field(c, s) = v;
  } else {
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v))
      return graft__fail(GRAFT_EINVAL, "%s: \"%s\" is not a number", s->name, value);
    *(double *)field(c, s) = v;
  }
  graft_status st = check_value(s, c);
  if (st != GRAFT_OK) return graft__context(st, "%s", s->name);
  c->given[i] = true;
  return GRAFT_OK;
}

static graft_status load_attr(graft_h5 *f, const setting *s, graft_config *c) {
  const char *kind = graft_h5_attr_kind(f, s->name);
  char kind_found[32]; /* "a string", "an integer" */
  snprintf(kind_found, sizeof kind_found, "%s %s", strchr("aeiou", kind[0]) ? "an" : "a", kind);
  if (s->type == T_STR) {
    if (strcmp(kind, "string") != 0)
      return graft__fail(GRAFT_EFORMAT, "expected a string, found %s", kind_found);
    GRAFT_TRY(graft_h5_attr_string(f, s->name, field(c, s), s->size));
  } else if (s->type == T_INT) {
    if (strcmp(kind, "integer") != 0)
      return graft__fail(GRAFT_EFORMAT, "expected an integer, found %s", kind_found);
    GRAFT_TRY(graft_h5_attr_int(f, s->name, (int64_t *)field(c, s)));
  } else {
    if (strcmp(kind, "integer") != 0 && strcmp(kind, "float") != 0)
      return graft__fail(GRAFT_EFORMAT, "expected a number, found %s", kind_found);
    GRAFT_TRY(graft_h5_attr_double(f, s->name, (double *)field(c, s)));
  }
  return check_value(s, c);
}

graft_status graft_config_load(const char *path, graft_config *c) {
  graft_config_defaults(c);
  if (strlen(path) >= sizeof c->path) return graft__fail(GRAFT_EINVAL, "path too long");
  snprintf(c->path, sizeof c->path, "%s", path);
  graft_h5 *f;
  GRAFT_TRY(graft_h5_open(path, &f));
  char **names = NULL;
  int count = 0;
  graft_status st = graft_h5_attr_names(f, &names, &count);
  for (int a = 0; st == GRAFT_OK && a < count; a++) {
    int i = find(names[a]);
    if (i < 0 || strchr(names[a], '-')) {
      st = graft__fail(GRAFT_EINVAL, "unknown attribute \"%s\"", names[a]);
      break;
    }
    st = load_attr(f, &table[i], c);
    if (st != GRAFT_OK)
      graft__context(st, "attribute \"%s\"", names[a]);
    else
      c->given[i] = true;
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
  if (st != GRAFT_OK) return st;
  return graft_config_validate(c);
}

graft_status graft_config_validate(const graft_config *c) {
  for (int i = 0; i < N_SETTINGS; i++)
    if (table[i].required && ((const char *)cfield(c, &table[i]))[0] == '\0')
      return graft__fail(GRAFT_EINVAL, "attribute \"%s\" is required", table[i].name);
  return GRAFT_OK;
}

graft_status graft_config_save(const char *path, const graft_config *c) {
  graft_h5w *w;
  GRAFT_TRY(graft_h5w_create(path, &w));
  graft_status st = GRAFT_OK;
  for (int i = 0; st == GRAFT_OK && i < N_SETTINGS; i++) {
    const setting *s = &table[i];
    if (!c->given[i] && !s->required) continue;
    if (s->type == T_STR)
      st = graft_h5w_attr_string(w, s->name, cfield(c, s));
    else if (s->type == T_INT)
      st = graft_h5w_attr_int(w, s->name, *(const int64_t *)cfield(c, s));
    else
      st = graft_h5w_attr_double(w, s->name, *(const double *)cfield(c, s));
  }
  if (st != GRAFT_OK) {
    graft_h5w_abort(w);
    return st;
  }
  return graft_h5w_commit(w);
}

static void print_value(const setting *s, const graft_config *c, FILE *f) {
  if (s->type == T_STR)
    fprintf(f, "%s", (const char *)cfield(c, s));
  else if (s->type == T_INT)
    fprintf(f, "%lld", (long long)*(const int64_t *)cfield(c, s));
  else
    fprintf(f, "%.17g", *(const double *)cfield(c, s));
}

void graft_config_print(const graft_config *c, FILE *f) {
  for (int i = 0; i < N_SETTINGS; i++) {
    const setting *s = &table[i];
    fprintf(f, "%-15s = ", s->name);
    if (strcmp(s->name, "output") == 0 && !c->given[i]) {
      char out[GRAFT_PATH_MAX];
      graft_config_resolve(c, "", out, sizeof out);
      fprintf(f, "%s  (default)\n", out);
      continue;
    }
    print_value(s, c, f);
    fputs(c->given[i] || s->required ? "\n" : "  (default)\n", f);
  }
}

/* FNV-1a over "name=value;" of the result-determining settings. */
uint64_t graft_config_hash(const graft_config *c) {
  uint64_t h = 0xcbf29ce484222325ULL;
  char buf[GRAFT_PATH_MAX + 64];
  for (int i = 0; i < N_SETTINGS; i++) {
    const setting *s = &table[i];
    if (!s->hashed) continue;
    int n;
    if (s->type == T_STR)
      n = snprintf(buf, sizeof buf, "%s=%s;", s->name, (const char *)cfield(c, s));
    else if (s->type == T_INT)
      n = snprintf(buf, sizeof buf, "%s=%lld;", s->name, (long long)*(const int64_t *)cfield(c, s));
    else
      n = snprintf(buf, sizeof buf, "%s=%.17g;", s->name, *(const double *)cfield(c, s));
    for (int j = 0; j < n && j < (int)sizeof buf; j++) {
      h ^= (unsigned char)buf[j];
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

void graft_config_resolve(const graft_config *c, const char *rel, char *out, size_t cap) {
  char dir[GRAFT_PATH_MAX];
  const char *slash = strrchr(c->path, '/');
  if (slash)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - c->path), c->path);
  else
    snprintf(dir, sizeof dir, ".");
  if (rel[0] == '\0') { /* the default output: runs/<config name> */
    const char *base = slash ? slash + 1 : c->path;
    const char *dot = strrchr(base, '.');
    int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(out, cap, "%s/runs/%.*s", dir, len, base);
  } else if (rel[0] == '/') {
    snprintf(out, cap, "%s", rel);
  } else {
    snprintf(out, cap, "%s/%s", dir, rel);
  }
}
