#include "models/export_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/fsutil.h"

/* ---- bytes ---- */

static bool reserve(graft__buf *b, size_t n) {
  if (b->oom) return false;
  if (n <= b->cap - b->len) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2) goto oom;
    cap *= 2;
  }
  uint8_t *d = realloc(b->data, cap);
  if (!d) goto oom;
  b->data = d;
  b->cap = cap;
  return true;
oom:
  b->oom = true;
  return false;
}

void graft__buf_put(graft__buf *b, const void *p, size_t n) {
  if (!n || !reserve(b, n)) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void graft__buf_str(graft__buf *b, const char *s) { graft__buf_put(b, s, strlen(s)); }

void graft__buf_printf(graft__buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = true;
    return;
  }
  if ((size_t)n < sizeof small) {
    graft__buf_put(b, small, (size_t)n);
    return;
  }
  if (!reserve(b, (size_t)n + 1)) return;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void graft__buf_json_string(graft__buf *b, const char *s) {
  graft__buf_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\')
      graft__buf_printf(b, "\\%c", *c);
    else if (*c < 0x20 || *c == 0x7f)
      graft__buf_printf(b, "\\u%04x", *c);
    else
      graft__buf_put(b, c, 1); /* UTF-8 as it is: checked by graft__export_check */
  }
  graft__buf_put(b, "\"", 1);
}

/* The fewest significant digits (6 to 9) that read back to the same float:
 * 0.485f is written "0.485", not "0.485000014". */
static void put_float(graft__buf *b, float v) {
  char s[32];
  for (int digits = 6; digits <= 9; digits++) {
    snprintf(s, sizeof s, "%.*g", digits, (double)v);
    if (strtof(s, NULL) == v) break;
  }
  graft__buf_str(b, s);
}

void graft__buf_json_floats(graft__buf *b, const float *v, int n) {
  graft__buf_put(b, "[", 1);
  for (int i = 0; i < n; i++) {
    if (i) graft__buf_put(b, ", ", 2);
    put_float(b, v[i]);
  }
  graft__buf_put(b, "]", 1);
}

void graft__buf_free(graft__buf *b) {
  free(b->data);
  *b = (graft__buf){0};
}

graft_status graft__buf_status(const graft__buf *b) {
  return b->oom ? graft__fail(GRAFT_ENOMEM, "out of memory") : GRAFT_OK;
}

/* ---- the model's metadata ---- */

/* Whether s is well-formed UTF-8 (no overlongs, surrogates or code points
 * past U+10FFFF): JSON and protobuf strings must be. */
static bool utf8_ok(const unsigned char *s) {
  while (*s) {
    unsigned c = *s++;
    int more;
    unsigned min, cp;
    if (c < 0x80) continue;
    if ((c & 0xe0) == 0xc0) more = 1, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) more = 2, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) more = 3, min = 0x10000, cp = c & 0x07;
    else return false;
    for (; more; more--, s++) {
      if ((*s & 0xc0) != 0x80) return false;
      cp = cp << 6 | (*s & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  }
  return true;
}

graft_status graft__export_check(const graft_model *m) {
  if (m->no_classifier) return graft__fail(GRAFT_EUNSUPPORTED, "no classifier: fine-tune it first");
  for (int i = 0; m->class_names && i < m->arch.num_classes; i++)
    if (!utf8_ok((const unsigned char *)m->class_names[i]))
      return graft__fail(GRAFT_EFORMAT, "class name %d is not valid UTF-8", i);
  return GRAFT_OK;
}

static char *take(graft__buf *b) {
  graft__buf_put(b, "", 1);
  if (b->oom) {
    graft__buf_free(b);
    return NULL;
  }
  return (char *)b->data;
}

graft_status graft__meta_init(graft__meta *meta, const graft_model *m) {
  *meta = (graft__meta){0};
  graft__buf v[GRAFT__META_MAX] = {{0}};
  int n = 0;
  meta->key[n] = "arch";
  graft__buf_str(&v[n++], m->arch.name);
  meta->key[n] = "num_classes";
  graft__buf_printf(&v[n++], "%d", m->arch.num_classes);
  if (m->class_names) {
    meta->key[n] = "class_names";
    graft__buf_put(&v[n], "[", 1);
    for (int i = 0; i < m->arch.num_classes; i++) {
      if (i) graft__buf_put(&v[n], ", ", 2);
      graft__buf_json_string(&v[n], m->class_names[i]);
    }
    graft__buf_put(&v[n++], "]", 1);
  }
  meta->key[n] = "mean";
  graft__buf_json_floats(&v[n++], m->pre.mean, 3);
  meta->key[n] = "std";
  graft__buf_json_floats(&v[n++], m->pre.std, 3);
  meta->key[n] = "resize";
  graft__buf_printf(&v[n++], "%d", m->pre.resize);
  meta->key[n] = "crop";
  graft__buf_printf(&v[n++], "%d", m->pre.crop);
  meta->n = n;
  bool oom = false;
  for (int i = 0; i < n; i++) oom |= !(meta->value[i] = take(&v[i]));
  if (oom) {
    graft__meta_free(meta);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  return GRAFT_OK;
}

void graft__meta_free(graft__meta *meta) {
  for (int i = 0; i < meta->n; i++) free(meta->value[i]);
  *meta = (graft__meta){0};
}

/* ---- the output file ---- */

graft_status graft__out_open(graft__out *o, const char *path) {
  *o = (graft__out){.path = path};
  o->tmp = graft_temp_path_for(path);
  if (!o->tmp) return graft__fail(GRAFT_ENOMEM, "out of memory");
  /* O_EXCL: never truncate anything else's file. */
  int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    free(o->tmp);
    o->tmp = NULL;
    return graft__fail(e == ENOENT ? GRAFT_ENOENT : GRAFT_EIO,
                       "cannot create a temporary file in the target's directory: %s",
                       strerror(e));
  }
  o->f = fdopen(fd, "wb");
  if (!o->f) {
    int e = errno;
    close(fd);
    graft__out_abort(o);
    return graft__fail(GRAFT_EIO, "cannot open the temporary file: %s", strerror(e));
  }
  return GRAFT_OK;
}

void graft__out_write(graft__out *o, const void *p, size_t n) {
  if (o->err || !n) return;
  errno = 0;
  if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
}

void graft__out_floats_le(graft__out *o, const float *v, size_t n) {
  uint8_t chunk[1 << 16];
  const size_t per = sizeof chunk / 4;
  for (size_t at = 0; at < n && !o->err; at += per) {
    size_t k = n - at < per ? n - at : per;
    for (size_t i = 0; i < k; i++) {
      uint32_t u;
      memcpy(&u, &v[at + i], 4);
      chunk[4 * i] = (uint8_t)u;
      chunk[4 * i + 1] = (uint8_t)(u >> 8);
      chunk[4 * i + 2] = (uint8_t)(u >> 16);
      chunk[4 * i + 3] = (uint8_t)(u >> 24);
    }
    graft__out_write(o, chunk, 4 * k);
  }
}

graft_status graft__out_commit(graft__out *o) {
  int e = o->err;
  if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
  o->f = NULL;
  graft_status s;
  if (e) {
    unlink(o->tmp);
    s = graft__fail(GRAFT_EIO, "write failed: %s", strerror(e));
  } else {
    s = graft_commit_file(o->tmp, o->path); /* removes the temporary on failure */
  }
  free(o->tmp);
  o->tmp = NULL;
  return s;
}

void graft__out_abort(graft__out *o) {
  if (o->f) fclose(o->f);
  o->f = NULL;
  if (o->tmp) unlink(o->tmp);
  free(o->tmp);
  o->tmp = NULL;
}
