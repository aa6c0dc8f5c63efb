/* A small strict JSON parser (io/json.h): recursive descent over a bounded
 * buffer, depth-limited, every read checked against the end. */
#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
  graft_json_type type;
  bool is_int;
  int count;    /* arrays: elements; objects: members */
  size_t first; /* arrays: kids[first..]; objects: key, value pairs; strings: pool offset */
  size_t len;   /* strings: decoded length */
  double num;
  int64_t i64;
} node;

struct graft_json {
  node *nodes;
  size_t n_nodes, cap_nodes;
  int *kids;
  size_t n_kids, cap_kids;
  char *pool;
  size_t n_pool, cap_pool;
};

typedef struct parser {
  const char *p, *end, *start;
  graft_json *j;
} parser;

static graft_status bad(const parser *ps, const char *what) {
  return graft__fail(GRAFT_EFORMAT, "JSON: %s at byte %zu", what, (size_t)(ps->p - ps->start));
}

static bool grow(void **v, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *n = realloc(*v, c * elem);
  if (!n) return false;
  *v = n;
  *cap = c;
  return true;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static graft_status new_node(parser *ps, graft_json_type t, int *at) {
  graft_json *j = ps->j;
  if (j->n_nodes >= GRAFT_JSON_MAX_VALUES) return bad(ps, "too many values");
  if (!grow((void **)&j->nodes, &j->cap_nodes, j->n_nodes + 1, sizeof(node)))
    return graft__fail(GRAFT_ENOMEM, "JSON: out of memory");
  memset(&j->nodes[j->n_nodes], 0, sizeof(node));
  j->nodes[j->n_nodes].type = t;
  *at = (int)j->n_nodes++;
  return GRAFT_OK;
}

static bool put(graft_json *j, const char *s, size_t n) {
  if (!grow((void **)&j->pool, &j->cap_pool, j->n_pool + n, 1)) return false;
  memcpy(j->pool + j->n_pool, s, n);
  j->n_pool += n;
  return true;
}

static int hex4(const char *s) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static size_t utf8(unsigned cp, char *out) {
  if (cp < 0x80) return out[0] = (char)cp, 1;
  if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 63));
    out[2] = (char)(0x80 | (cp & 63));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | ((cp >> 12) & 63));
  out[2] = (char)(0x80 | ((cp >> 6) & 63)), out[3] = (char)(0x80 | (cp & 63));
  return 4;
}

/* One \u escape (and its low surrogate); ps->p at the 'u'. */
static graft_status escape_u(parser *ps, unsigned *cp) {
  if (ps->end - ps->p < 5 || hex4(ps->p + 1) < 0) return bad(ps, "bad \\u escape");
  unsigned c = (unsigned)hex4(ps->p + 1);
  ps->p += 5;
  if (c >= 0xDC00 && c <= 0xDFFF) return bad(ps, "lone low surrogate");
  if (c >= 0xD800 && c <= 0xDBFF) {
    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || hex4(ps->p + 2) < 0xDC00 ||
        hex4(ps->p + 2) > 0xDFFF)
      return bad(ps, "lone high surrogate");
    c = 0x10000 + ((c - 0xD800) << 10) + ((unsigned)hex4(ps->p + 2) - 0xDC00);
    ps->p += 6;
  }
  if (c == 0) return bad(ps, "NUL in a string");
  *cp = c;
  return GRAFT_OK;
}

static graft_status string(parser *ps, int *at) {
  graft_json *j = ps->j;
  GRAFT_TRY(new_node(ps, GRAFT_JSON_STRING, at));
  size_t begin = j->n_pool;
  ps->p++; /* the quote */
  for (;;) {
    if (ps->p >= ps->end) return bad(ps, "unterminated string");
    unsigned char c = (unsigned char)*ps->p;
    if (c == '"') break;
    if (c < 0x20) return bad(ps, "control character in a string");
    char buf[4];
    size_t n = 1;
    if (c != '\\') {
      buf[0] = (char)c;
      ps->p++;
    } else {
      if (ps->end - ps->p < 2) return bad(ps, "unterminated string");
      ps->p++;
      const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
      const char *e = *ps->p ? strchr(from, *ps->p) : NULL;
      if (e) {
        buf[0] = to[e - from];
        ps->p++;
      } else if (*ps->p == 'u') {
        unsigned cp = 0;
        GRAFT_TRY(escape_u(ps, &cp));
        n = utf8(cp, buf);
      } else {
        return bad(ps, "bad escape");
      }
    }
    if (!put(j, buf, n)) return graft__fail(GRAFT_ENOMEM, "JSON: out of memory");
  }
  ps->p++;
  if (!put(j, "", 1)) return graft__fail(GRAFT_ENOMEM, "JSON: out of memory");
  j->nodes[*at].first = begin;
  j->nodes[*at].len = j->n_pool - begin - 1;
  return GRAFT_OK;
}

static graft_status number(parser *ps, int *at) {
  const char *s = ps->p;
  bool is_int = true;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return bad(ps, "bad number");
  if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9')
    return bad(ps, "leading zero");
  while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  if (ps->p < ps->end && *ps->p == '.') {
    is_int = false;
    ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return bad(ps, "bad number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    is_int = false;
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return bad(ps, "bad number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  size_t n = (size_t)(ps->p - s);
  if (n > 64) return bad(ps, "number too long");
  char buf[72];
  memcpy(buf, s, n);
  buf[n] = '\0';
  GRAFT_TRY(new_node(ps, GRAFT_JSON_NUMBER, at));
  node *v = &ps->j->nodes[*at];
  v->num = strtod(buf, NULL);
  if (is_int) {
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    v->is_int = errno == 0;
    v->i64 = x;
  }
  return GRAFT_OK;
}

static graft_status literal(parser *ps, const char *word, graft_json_type t, bool val, int *at) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return bad(ps, "bad value");
  ps->p += n;
  GRAFT_TRY(new_node(ps, t, at));
  ps->j->nodes[*at].i64 = val;
  return GRAFT_OK;
}

static graft_status value(parser *ps, int depth, int *at);

/* Elements (arrays) or key, value pairs (objects), kept on a local list
 * while nested values are parsed, then appended to kids. */
static graft_status container(parser *ps, int depth, bool object, int *at) {
  if (depth >= GRAFT_JSON_MAX_DEPTH) return bad(ps, "nesting too deep");
  char close = object ? '}' : ']';
  GRAFT_TRY(new_node(ps, object ? GRAFT_JSON_OBJECT : GRAFT_JSON_ARRAY, at));
  ps->p++;
  int *list = NULL;
  size_t n = 0, cap = 0;
  graft_status s = GRAFT_OK;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
  } else {
    for (;;) {
      int k = -1, v;
      skip_ws(ps);
      if (object) {
        if (ps->p >= ps->end || *ps->p != '"') {
          s = bad(ps, "expected a key");
          break;
        }
        if ((s = string(ps, &k)) != GRAFT_OK) break;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
          s = bad(ps, "expected ':'");
          break;
        }
        ps->p++;
      }
      if ((s = value(ps, depth + 1, &v)) != GRAFT_OK) break;
      if (n + 2 > INT32_MAX || !grow((void **)&list, &cap, n + 2, sizeof *list)) {
        s = graft__fail(GRAFT_ENOMEM, "JSON: out of memory");
        break;
      }
      if (object) list[n++] = k;
      list[n++] = v;
      skip_ws(ps);
      if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        continue;
      }
      if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        break;
      }
      s = bad(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
      break;
    }
  }
  graft_json *j = ps->j;
  if (s == GRAFT_OK && !grow((void **)&j->kids, &j->cap_kids, j->n_kids + n, sizeof(int)))
    s = graft__fail(GRAFT_ENOMEM, "JSON: out of memory");
  if (s == GRAFT_OK) {
    if (n) memcpy(j->kids + j->n_kids, list, n * sizeof(int));
    j->nodes[*at].first = j->n_kids;
    j->nodes[*at].count = (int)(object ? n / 2 : n);
    j->n_kids += n;
  }
  free(list);
  return s;
}

static graft_status value(parser *ps, int depth, int *at) {
  skip_ws(ps);
  if (ps->p >= ps->end) return bad(ps, "unexpected end");
  switch (*ps->p) {
    case '{':
      return container(ps, depth, true, at);
    case '[':
      return container(ps, depth, false, at);
    case '"':
      return string(ps, at);
    case 't':
      return literal(ps, "true", GRAFT_JSON_BOOL, true, at);
    case 'f':
      return literal(ps, "false", GRAFT_JSON_BOOL, false, at);
    case 'n':
      return literal(ps, "null", GRAFT_JSON_NULL, false, at);
    default:
      return number(ps, at);
  }
}

void graft_json_free(graft_json *j) {
  if (!j) return;
  free(j->nodes);
  free(j->kids);
  free(j->pool);
  free(j);
}

graft_status graft_json_parse(const char *text, size_t len, graft_json **out) {
  *out = NULL;
  graft_json *j = calloc(1, sizeof *j);
  if (!j) return graft__fail(GRAFT_ENOMEM, "JSON: out of memory");
  parser ps = {text, text + len, text, j};
  int root;
  graft_status s = value(&ps, 0, &root);
  if (s == GRAFT_OK) {
    skip_ws(&ps);
    if (ps.p != ps.end) s = bad(&ps, "data after the value");
  }
  if (s != GRAFT_OK) {
    graft_json_free(j);
    return s;
  }
  *out = j;
  return GRAFT_OK;
}

graft_json_type graft_json_type_of(const graft_json *j, graft_json_ref v) {
  return j->nodes[v].type;
}

const char *graft_json_string(const graft_json *j, graft_json_ref v, size_t *len) {
  const node *n = &j->nodes[v];
  if (n->type != GRAFT_JSON_STRING) return NULL;
  if (len) *len = n->len;
  return j->pool + n->first;
}

double graft_json_number(const graft_json *j, graft_json_ref v) { return j->nodes[v].num; }

bool graft_json_int(const graft_json *j, graft_json_ref v, int64_t *out) {
  const node *n = &j->nodes[v];
  if (n->type != GRAFT_JSON_NUMBER || !n->is_int) return false;
  *out = n->i64;
  return true;
}

int graft_json_count(const graft_json *j, graft_json_ref v) {
  const node *n = &j->nodes[v];
  return n->type == GRAFT_JSON_ARRAY || n->type == GRAFT_JSON_OBJECT ? n->count : 0;
}

graft_json_ref graft_json_at(const graft_json *j, graft_json_ref v, int i) {
  const node *n = &j->nodes[v];
  return n->type == GRAFT_JSON_OBJECT ? j->kids[n->first + 2 * (size_t)i + 1]
                                      : j->kids[n->first + (size_t)i];
}

graft_json_ref graft_json_key(const graft_json *j, graft_json_ref v, int i) {
  return j->kids[j->nodes[v].first + 2 * (size_t)i];
}

graft_json_ref graft_json_get(const graft_json *j, graft_json_ref obj, const char *key) {
  if (j->nodes[obj].type != GRAFT_JSON_OBJECT) return -1;
  for (int i = 0; i < j->nodes[obj].count; i++) {
    size_t len = 0;
    const char *k = graft_json_string(j, graft_json_key(j, obj, i), &len);
    if (len == strlen(key) && memcmp(k, key, len) == 0) return graft_json_at(j, obj, i);
  }
  return -1;
}
