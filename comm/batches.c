/* Items over the job's ranks in whole batches, their results back in input
 * order (batches.h). */
#include "comm/batches.h"

#include <stdlib.h>
#include <string.h>

size_t graft_batches_start(size_t n, size_t b, int ranks, int r) {
  size_t batches = (n + b - 1) / b, at = batches * (size_t)r / (size_t)ranks * b;
  return at < n ? at : n;
}

struct graft_records {
  char *buf; /* the records */
  size_t len, cap;
  size_t *cuts; /* where each message but the first starts (at records) */
  size_t n_cuts, cut_cap, last_cut;
  bool oom;
};

graft_status graft_records_create(graft_records **out) {
  *out = calloc(1, sizeof **out);
  return *out ? GRAFT_OK : graft__fail(GRAFT_ENOMEM, "out of memory for the results");
}

void graft_records_free(graft_records *w) {
  if (!w) return;
  free(w->buf);
  free(w->cuts);
  free(w);
}

bool graft_records_oom(const graft_records *w) { return w->oom; }

void graft_records_reset(graft_records *w) {
  w->len = w->n_cuts = w->last_cut = 0;
  w->oom = false;
}

/* Room for a record of n bytes, in the message it starts. */
static bool room(graft_records *w, size_t n) {
  if (w->len - w->last_cut + n > GRAFT_RECORDS_CHUNK) {
    if (w->n_cuts == w->cut_cap) {
      size_t cap = w->cut_cap ? 2 * w->cut_cap : 16;
      size_t *c = realloc(w->cuts, cap * sizeof *c);
      if (!c) return false;
      w->cuts = c;
      w->cut_cap = cap;
    }
    w->cuts[w->n_cuts++] = w->last_cut = w->len;
  }
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 1 << 16;
    while (cap < w->len + n) cap *= 2;
    char *buf = realloc(w->buf, cap);
    if (!buf) return false;
    w->buf = buf;
    w->cap = cap;
  }
  return true;
}

void graft_records_put(graft_records *w, int32_t status, const void *a, size_t an, const void *b,
                       size_t bn) {
  size_t n = sizeof status + an + bn;
  if (w->oom) return;
  if (!room(w, n)) {
    w->oom = true;
    return;
  }
  memcpy(w->buf + w->len, &status, sizeof status);
  if (an) memcpy(w->buf + w->len + sizeof status, a, an);
  if (bn) memcpy(w->buf + w->len + sizeof status + an, b, bn);
  w->len += n;
}

void graft_records_text(graft_records *w, int32_t status, const char *text) {
  int32_t len = (int32_t)strlen(text);
  graft_records_put(w, status, &len, sizeof len, text, (size_t)len);
}

graft_status graft_records_send(graft_comm *c, const graft_records *w, int to, int tag) {
  if (w->oom) return graft__fail(GRAFT_ENOMEM, "out of memory for the results");
  size_t from = 0;
  for (size_t i = 0; i <= w->n_cuts; i++) {
    size_t end = i < w->n_cuts ? w->cuts[i] : w->len;
    GRAFT_TRY(graft_comm_send(c, to, tag, w->buf + from, end - from));
    from = end;
  }
  return GRAFT_OK;
}

struct graft_records_reader {
  graft_comm *comm;
  int from, tag;
  char *buf;
  size_t len, at;
};

graft_status graft_records_reader_open(graft_comm *c, int from, int tag,
                                       graft_records_reader **out) {
  graft_records_reader *r = calloc(1, sizeof *r);
  char *buf = malloc(GRAFT_RECORDS_CHUNK);
  if (!r || !buf) {
    free(r);
    free(buf);
    *out = NULL;
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  *r = (graft_records_reader){c, from, tag, buf, 0, 0};
  *out = r;
  return GRAFT_OK;
}

void graft_records_reader_free(graft_records_reader *r) {
  if (!r) return;
  free(r->buf);
  free(r);
}

const void *graft_records_bytes(const graft_records *w, size_t *len) {
  *len = w->len;
  return w->buf;
}

size_t graft_records_bound(size_t n, size_t ok_bytes, size_t text_bytes) {
  size_t text = sizeof(int32_t) + text_bytes, most = ok_bytes > text ? ok_bytes : text;
  return n * (sizeof(int32_t) + most);
}

/* The next n bytes of the record at *at, *at moved past them. */
static bool take(const char *buf, size_t len, size_t *at, size_t n, const char **p) {
  if (n > len - *at) return false;
  *p = buf + *at;
  *at += n;
  return true;
}

graft_status graft_records_parse(const void *buf, size_t len, size_t *at, size_t ok_bytes,
                                 int32_t *status, const char **data, size_t *bytes) {
  const char *q = NULL;
  int32_t n;
  if (!take(buf, len, at, sizeof *status, &q)) goto malformed;
  memcpy(status, q, sizeof *status);
  if (*status == GRAFT_OK) {
    *bytes = ok_bytes;
    if (!take(buf, len, at, ok_bytes, data)) goto malformed;
    return GRAFT_OK;
  }
  if (!take(buf, len, at, sizeof n, &q)) goto malformed;
  memcpy(&n, q, sizeof n);
  if (n < 0 || !take(buf, len, at, (size_t)n, data)) goto malformed;
  *bytes = (size_t)n;
  return GRAFT_OK;
malformed:
  return graft__fail(GRAFT_EFORMAT, "a malformed record");
}

graft_status graft_records_next(graft_records_reader *r, size_t ok_bytes, int32_t *status,
                                const char **data, size_t *bytes) {
  /* A record never spans two messages: a message is fetched only at a
   * record's start. */
  if (r->at == r->len) {
    GRAFT_TRY(graft_comm_recv(r->comm, r->from, r->tag, r->buf, GRAFT_RECORDS_CHUNK, &r->len, NULL));
    r->at = 0;
  }
  return graft_records_parse(r->buf, r->len, &r->at, ok_bytes, status, data, bytes);
}
