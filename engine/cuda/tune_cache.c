/* Tuned cuDNN choices kept on disk (the backend's cudnn_tune_cache option):
 * a later process on the same card and libraries takes the engine config
 * that timing chose before, and times nothing (cudnn.benchmark times again
 * in every process).
 *
 * The file is text, a header line, then one choice per line, six fields
 * separated by tabs:
 *   who     the card and its libraries (open_tune_cache, backend.c): a
 *           choice is used only by the card and library versions that made it
 *   key     the graph: op, shape, precision, layout, rung, heuristics mode
 *   engine  the config's CUDNN_ATTR_ENGINE_GLOBAL_INDEX
 *   knobs   its knob choices, "type=value,..." ("-": none)
 *   timed   how many configs were timed
 *   ms      the chosen one's time
 * Other cards' and versions' lines are kept as they are, up to
 * GRAFT__TUNE_MAX_LINES in all: beyond that a write drops the oldest lines
 * (the file's first), other cards' and versions' before this one's. A line
 * that does not parse is skipped (counted; graft__warn says so once) and
 * left out of the next write; a file of more than 4 x GRAFT__TUNE_MAX_LINES
 * choices, which graft never writes, is read that far (said once). A file
 * that does not start with the header is not ours: it is refused and never
 * written.
 *
 * Writing: the whole file to "<path>.<pid>.tmp" beside it, flushed to disk,
 * then renamed over the path, so that a reader sees the old file or the new
 * one, never half. Before writing it reads the file again and keeps what other
 * processes (an MPI job's ranks on one machine) added meanwhile; two
 * writers at the same moment can still lose one's new line, which the
 * next run times again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/cuda/cuda.h"
#include "engine/base/log.h"

#define HEADER "# graft tuned cuDNN plans, format 1"

struct graft__tune_cache {
  char *path;
  char who[GRAFT__TUNE_WHO];
  graft__tune_line *lines;
  int n, cap;
  int skipped; /* lines of the file that did not parse */
  bool cut;    /* the file held more choices than are read */
  bool warned; /* a failure to write was said */
};

/* Tabs and line ends would break the format: they become spaces. False
 * when src does not fit (dst then holds what did). */
static bool clean_copy(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < cap; i++) dst[i] = (src[i] == '\t' || src[i] == '\n' ||
                                              src[i] == '\r') ? ' ' : src[i];
  dst[i] = '\0';
  return src[i] == '\0';
}

static bool field(char **at, char *dst, size_t cap) {
  char *end = strchr(*at, '\t');
  size_t len = end ? (size_t)(end - *at) : strlen(*at);
  if (!end || len == 0 || len >= cap) return false;
  memcpy(dst, *at, len);
  dst[len] = '\0';
  *at = end + 1;
  return true;
}

/* One line (without its '\n') into l; false when it is not a choice. */
static bool parse_line(char *text, graft__tune_line *l) {
  char *at = text, num[64], *end;
  memset(l, 0, sizeof *l);
  if (!field(&at, l->who, sizeof l->who) || !field(&at, l->key, sizeof l->key) ||
      !field(&at, num, sizeof num))
    return false;
  errno = 0;
  long long engine = strtoll(num, &end, 10);
  if (errno || *end || engine < 0) return false;
  l->engine = engine;
  if (!field(&at, l->knobs, sizeof l->knobs) || !field(&at, num, sizeof num)) return false;
  long timed = strtol(num, &end, 10);
  if (errno || *end || timed < 2 || timed > GRAFT__CUDNN_TUNE_MAX) return false;
  l->timed = (int)timed;
  l->ms = strtod(at, &end);
  return !errno && *end == '\0' && end != at && l->ms >= 0 && l->ms < 1e9;
}

/* Keys first: they differ within a few bytes, a card's lines share its long who. */
static bool same(const graft__tune_line *l, const char *who, const char *key) {
  return strcmp(l->key, key) == 0 && strcmp(l->who, who) == 0;
}

/* l as a new line, or in place of the line of its card and key (left as it
 * was when keep is true). */
static graft_status add(graft__tune_cache *c, const graft__tune_line *l, bool keep) {
  for (int i = 0; i < c->n; i++)
    if (same(&c->lines[i], l->who, l->key)) {
      if (!keep) c->lines[i] = *l;
      return GRAFT_OK;
    }
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 32;
    graft__tune_line *grown = realloc(c->lines, (size_t)cap * sizeof *grown);
    if (!grown) return graft__fail(GRAFT_ENOMEM, "out of memory for the tuned plans");
    c->lines = grown;
    c->cap = cap;
  }
  c->lines[c->n++] = *l;
  return GRAFT_OK;
}

/* Read the file's choices into c (a missing file has none). Lines already
 * in c for the same card and key are replaced when keep_ours is false, kept
 * when true. */
static graft_status load(graft__tune_cache *c, bool keep_ours) {
  FILE *f = fopen(c->path, "r");
  if (!f) {
    if (errno == ENOENT) return GRAFT_OK;
    return graft__fail(GRAFT_EIO, "%s: %s", c->path, strerror(errno));
  }
  char text[1024];
  graft_status s = GRAFT_OK;
  bool first = true;
  int skipped = 0;
  while (s == GRAFT_OK && fgets(text, sizeof text, f)) {
    size_t len = strlen(text);
    bool whole = len > 0 && text[len - 1] == '\n';
    if (whole) text[--len] = '\0';
    if (first) {
      first = false;
      if (strcmp(text, HEADER) != 0)
        s = graft__fail(GRAFT_EFORMAT, "%s: not a file of graft's tuned cuDNN plans "
                        "(its first line is not \"%s\")", c->path, HEADER);
      continue;
    }
    graft__tune_line l;
    if (!whole && !feof(f)) { /* longer than any choice: skip the rest of it */
      int ch;
      while ((ch = fgetc(f)) != EOF && ch != '\n') {}
      skipped++;
      continue;
    }
    if (!parse_line(text, &l)) {
      skipped++;
      continue;
    }
    if (c->n >= 4 * GRAFT__TUNE_MAX_LINES) {
      c->cut = true;
      break;
    }
    s = add(c, &l, keep_ours);
  }
  if (s == GRAFT_OK && ferror(f)) s = graft__fail(GRAFT_EIO, "%s: read error", c->path);
  fclose(f);
  if (!keep_ours) c->skipped = skipped;
  return s;
}

graft_status graft__tune_cache_open(const char *path, const char *who, graft__tune_cache **out) {
  *out = NULL;
  graft__tune_cache *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(path))) {
    free(c);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  if (!clean_copy(c->who, sizeof c->who, who)) {
    graft__tune_cache_close(c);
    return graft__fail(GRAFT_ELIMIT, "tuned cuDNN plans: card description longer than %d bytes",
                       GRAFT__TUNE_WHO - 1);
  }
  graft_status s = load(c, false);
  if (s != GRAFT_OK) {
    graft__tune_cache_close(c);
    return graft__context(s, "tuned cuDNN plans");
  }
  if (c->skipped)
    graft__warn("%s: %d line(s) that are not tuned plans skipped (left out when it is next "
                "written)", path, c->skipped);
  if (c->cut)
    graft__warn("%s: more than %d tuned plans; the rest were not read (the oldest are dropped "
                "when it is next written)", path, 4 * GRAFT__TUNE_MAX_LINES);
  *out = c;
  return GRAFT_OK;
}

void graft__tune_cache_close(graft__tune_cache *c) {
  if (!c) return;
  free(c->lines);
  free(c->path);
  free(c);
}

const char *graft__tune_cache_who(const graft__tune_cache *c) { return c->who; }

const graft__tune_line *graft__tune_cache_find(const graft__tune_cache *c, const char *who,
                                               const char *key) {
  for (int i = 0; c && i < c->n; i++)
    if (same(&c->lines[i], who, key)) return &c->lines[i];
  return NULL;
}

static graft_status write_all(const graft__tune_cache *c) {
  char tmp[4200];
  int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", c->path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof tmp)
    return graft__fail(GRAFT_EINVAL, "%s: path too long", c->path);
  FILE *f = fopen(tmp, "w");
  if (!f) return graft__fail(GRAFT_EIO, "%s: %s", tmp, strerror(errno));
  bool ok = fprintf(f, "%s\n", HEADER) > 0;
  for (int i = 0; ok && i < c->n; i++) {
    const graft__tune_line *l = &c->lines[i];
    ok = fprintf(f, "%s\t%s\t%lld\t%s\t%d\t%.6g\n", l->who, l->key, (long long)l->engine,
                 l->knobs, l->timed, l->ms) > 0;
  }
  int err = ok ? 0 : errno;
  if (fflush(f) != 0 && !err) err = errno ? errno : EIO;
  if (!err && fsync(fileno(f)) != 0) err = errno; /* whole on disk before it is renamed */
  if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
  if (!err && rename(tmp, c->path) != 0) err = errno;
  if (err) {
    remove(tmp);
    return graft__fail(GRAFT_EIO, "%s: %s", c->path, strerror(err));
  }
  return GRAFT_OK;
}

/* At most GRAFT__TUNE_MAX_LINES lines: the oldest dropped, other cards' and
 * versions' first, then this card's, never the choice just made (key). */
static void trim(graft__tune_cache *c, const char *key) {
  for (int pass = 0; pass < 2 && c->n > GRAFT__TUNE_MAX_LINES; pass++) {
    int excess = c->n - GRAFT__TUNE_MAX_LINES, kept = 0;
    for (int i = 0; i < c->n; i++) {
      const graft__tune_line *l = &c->lines[i];
      bool ours = strcmp(l->who, c->who) == 0;
      bool drop = excess > 0 && (pass == 0 ? !ours : strcmp(l->key, key) != 0);
      if (drop)
        excess--;
      else
        c->lines[kept++] = *l;
    }
    c->n = kept;
  }
}

graft_status graft__tune_cache_put(graft__tune_cache *c, const char *key, int64_t engine,
                                   const char *knobs, int timed, double ms) {
  graft__tune_line l = {.engine = engine, .timed = timed, .ms = ms};
  memcpy(l.who, c->who, sizeof l.who);
  if (!clean_copy(l.key, sizeof l.key, key) ||
      !clean_copy(l.knobs, sizeof l.knobs, knobs && *knobs ? knobs : "-"))
    return graft__fail(GRAFT_ELIMIT, "tuned cuDNN plan: key or knobs longer than %d bytes",
                       GRAFT__TUNE_KEY - 1);
  if (timed < 2 || timed > GRAFT__CUDNN_TUNE_MAX || !(ms >= 0 && ms < 1e9) || engine < 0)
    return graft__fail(GRAFT_EINVAL, "tuned cuDNN plan: engine %lld, %d timed, %g ms",
                       (long long)engine, timed, ms);
  GRAFT_TRY(add(c, &l, false));
  /* what other processes wrote meanwhile, ours kept where both have a key */
  graft_status s = load(c, true);
  if (s == GRAFT_OK) {
    trim(c, l.key);
    s = write_all(c);
  }
  if (s != GRAFT_OK && !c->warned) {
    c->warned = true;
    graft__warn("tuned cuDNN plans not kept: %s; later runs time them again", graft_detail());
  }
  return s;
}
