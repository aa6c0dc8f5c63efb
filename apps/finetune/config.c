#include "apps/finetune/config.h"

#include <stddef.h>
#include <string.h>

#include "io/settings.h"
#include "models/arch.h"

static const char *const trainable_names[] = {"classifier", "head", NULL};
static const char *const augment_names[] = {"tutorial", "none", NULL};
static const char *const cache_names[] = {"auto", "on", "off", NULL};

/* CHOICE fields are read and written as ints. */
_Static_assert(sizeof(graft_trainable) == sizeof(int) && sizeof(graft_augment) == sizeof(int) &&
                   sizeof(graft_cache_mode) == sizeof(int) &&
                   sizeof(graft_precision) == sizeof(int),
               "an enum setting must have an int's size");
_Static_assert(GRAFT_TRAIN_HEAD == 1 && GRAFT_AUGMENT_NONE == 1 && GRAFT_CACHE_OFF == 2,
               "the names above follow the enums' order");

static graft_status check_device(const char *v) {
  if (strcmp(v, "auto") != 0 && strcmp(v, "cpu") != 0 && strncmp(v, "cuda", 4) != 0)
    return graft__fail(GRAFT_ERANGE, "\"%s\" is not one of: auto, cpu, cuda, cuda:N", v);
  return GRAFT_OK;
}

#define F(n) offsetof(graft_config, n)
#define TEXT(n, d, chk, req, h) \
  {#n, GRAFT_SETTING_TEXT, F(n), sizeof(((graft_config *)0)->n), d, 0, 0, 0, NULL, chk, req, h}
#define INT(n, d, lo, hi, h) {#n, GRAFT_SETTING_INT, F(n), 0, NULL, d, lo, hi, NULL, NULL, false, h}
#define REAL(n, d, lo, hi, h) \
  {#n, GRAFT_SETTING_REAL, F(n), 0, NULL, d, lo, hi, NULL, NULL, false, h}
#define CHOICE(n, d, names, req, h) \
  {#n, GRAFT_SETTING_CHOICE, F(n), 0, NULL, d, 0, 0, names, NULL, req, h}

/* name, default, bounds or choices, required, hashed (graft_config_hash) */
static const graft_setting table[] = {
    CHOICE(arch, 0, graft_arch_list, true, true),
    TEXT(weights, "", NULL, true, true),
    TEXT(data, "", NULL, true, true),
    TEXT(output, "", NULL, false, false),
    INT(epochs, 25, 1, 100000, false),
    INT(batch_size, 4, 1, 4096, true),
    REAL(lr, 0.001, 0, 10, true),
    REAL(momentum, 0.9, 0, 1, true),
    REAL(weight_decay, 0, 0, 1, true),
    INT(step_size, 7, 1, 100000, true),
    REAL(gamma, 0.1, 0, 1, true),
    CHOICE(trainable, GRAFT_TRAIN_CLASSIFIER, trainable_names, false, true),
    INT(new_head, 1, 0, 1, true),
    REAL(dropout, 0.5, 0, 0.99, true),
    CHOICE(augment, GRAFT_AUGMENT_TUTORIAL, augment_names, false, true),
    INT(shuffle, 1, 0, 1, true),
    INT(seed, 0, 0, 9007199254740991.0, true),
    CHOICE(cache_features, GRAFT_CACHE_AUTO, cache_names, false, false),
    TEXT(device, "auto", check_device, false, false),
    CHOICE(precision, GRAFT_PRECISION_FP32, graft_precision_names, false, false),
    INT(threads, 0, 0, 1024, false),
    REAL(save_every, 60, 0, 1e9, false),
};
static const graft_settings settings = {table, (int)(sizeof table / sizeof table[0])};
_Static_assert(sizeof table / sizeof table[0] <= sizeof((graft_config *)0)->given,
               "graft_config.given must have a flag per setting");

void graft_config_defaults(graft_config *c) {
  memset(c, 0, sizeof *c);
  graft_settings_defaults(&settings, c, c->given);
}

graft_status graft_config_load(const char *path, graft_config *c) {
  graft_config_defaults(c);
  if (strlen(path) >= sizeof c->path) return graft__fail(GRAFT_EINVAL, "path too long");
  GRAFT_TRY(graft_settings_load(&settings, path, c, c->given));
  snprintf(c->path, sizeof c->path, "%s", path);
  return graft_config_validate(c);
}

graft_status graft_config_set(graft_config *c, const char *name, const char *value) {
  return graft_settings_set(&settings, c, c->given, name, value);
}

const char *graft_config_missing(const graft_config *c) {
  int i = graft_settings_missing(&settings, c, c->given);
  return i < 0 ? NULL : table[i].name;
}

graft_status graft_config_validate(const graft_config *c) {
  const char *missing = graft_config_missing(c);
  if (missing) return graft__fail(GRAFT_EINVAL, "attribute \"%s\" is required", missing);
  /* The trunk's output is cached only when it never changes: random crops
   * change it every epoch. */
  if (c->precision == GRAFT_PRECISION_FP16_WEIGHTS)
    return graft__fail(GRAFT_EINVAL, "precision = fp16-weights is for inference (classify, "
                                     "bench infer); finetune trains in fp32");
  if (c->cache_features == GRAFT_CACHE_ON && c->augment == GRAFT_AUGMENT_TUTORIAL)
    return graft__fail(GRAFT_EINVAL,
                       "cache_features = on needs augment = none: random crops change the "
                       "trunk's output every epoch");
  return GRAFT_OK;
}

graft_status graft_config_save(const char *path, const graft_config *c) {
  return graft_settings_save(&settings, path, c, c->given);
}

void graft_config_print(const graft_config *c, FILE *f) {
  char value[GRAFT_PATH_MAX + 64];
  for (int i = 0; i < settings.count; i++) {
    const graft_setting *s = &table[i];
    fprintf(f, "%-15s = ", s->name);
    if (strcmp(s->name, "output") == 0 && !c->given[i]) {
      graft_config_resolve(c, "", value, sizeof value);
      fprintf(f, "%s  (default)\n", value);
      continue;
    }
    graft_settings_format(&settings, i, c, value, sizeof value);
    fprintf(f, "%s%s", value, c->given[i] || s->required ? "\n" : "  (default)\n");
  }
}

uint64_t graft_config_hash(const graft_config *c) { return graft_settings_hash(&settings, c); }

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

const char *graft_config_arch(const graft_config *c) { return graft_arch_list[c->arch]; }

const char *graft_config_trainable(const graft_config *c) {
  return trainable_names[c->trainable];
}
