/* The restricted unpickler (io/pickle.h): a stack machine over plain value
 * nodes. Every read is checked against the end of the buffer, every count
 * against its bound; on any failure the whole parse is dropped. */
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pnode {
  graft_pk_type type;
  int a; /* GLOBAL, CALL: global index; PERSID: the id */
  int b; /* CALL: arguments */
  int64_t i;
  double f;
  const uint8_t *s;
  size_t len;
  int *items; /* TUPLE, LIST: refs; DICT: key, value pairs */
  int n, cap;
} pnode;

struct graft_pickle {
  pnode *nodes;
  int n_nodes, cap_nodes;
  size_t items;
  int root;
};

typedef struct vm {
  graft_pickle *p;
  const uint8_t *buf, *at, *end;
  const graft_pk_global *allowed;
  int n_allowed;
  int *stack, sp, cap_stack;
  int *marks, mp, cap_marks;
  int *memo, memo_cap, memo_len;
} vm;

static graft_status bad(const vm *m, const char *what) {
  return graft__fail(GRAFT_EFORMAT, "pickle: %s at byte %zu", what, (size_t)(m->at - m->buf));
}

static graft_status nomem(void) { return graft__fail(GRAFT_ENOMEM, "pickle: out of memory"); }

static graft_status node(vm *m, graft_pk_type t, int *out) {
  graft_pickle *p = m->p;
  if (p->n_nodes >= GRAFT_PICKLE_MAX_NODES) return bad(m, "too many objects");
  if (p->n_nodes == p->cap_nodes) {
    int c = p->cap_nodes ? 2 * p->cap_nodes : 64;
    pnode *v = realloc(p->nodes, (size_t)c * sizeof *v);
    if (!v) return nomem();
    p->nodes = v, p->cap_nodes = c;
  }
  memset(&p->nodes[p->n_nodes], 0, sizeof(pnode));
  p->nodes[p->n_nodes].type = t;
  *out = p->n_nodes++;
  return GRAFT_OK;
}

static graft_status add_item(vm *m, int container, int item) {
  pnode *c = &m->p->nodes[container];
  if (m->p->items >= GRAFT_PICKLE_MAX_ITEMS) return bad(m, "too many items");
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 4;
    int *v = realloc(c->items, (size_t)cap * sizeof *v);
    if (!v) return nomem();
    c->items = v, c->cap = cap;
  }
  c->items[c->n++] = item;
  m->p->items++;
  return GRAFT_OK;
}

/* Room for one more entry in a stack that grows up to GRAFT_PICKLE_MAX_STACK. */
static graft_status room(vm *m, int **v, int n, int *cap, const char *what) {
  if (n >= GRAFT_PICKLE_MAX_STACK) return bad(m, what);
  if (n < *cap) return GRAFT_OK;
  int c = *cap ? 2 * *cap : 64;
  int *nv = realloc(*v, (size_t)c * sizeof *nv);
  if (!nv) return nomem();
  *v = nv, *cap = c;
  return GRAFT_OK;
}

static graft_status push(vm *m, int v) {
  GRAFT_TRY(room(m, &m->stack, m->sp, &m->cap_stack, "stack too deep"));
  m->stack[m->sp++] = v;
  return GRAFT_OK;
}

static graft_status push_new(vm *m, graft_pk_type t, int *out) {
  int v = 0;
  GRAFT_TRY(node(m, t, &v));
  if (out) *out = v;
  return push(m, v);
}

/* The bottom of the current mark's items (and the mark popped). */
static graft_status pop_mark(vm *m, int *base) {
  if (m->mp == 0) return bad(m, "no mark");
  *base = m->marks[--m->mp];
  return GRAFT_OK;
}

static graft_status pop(vm *m, int *v) {
  int floor = m->mp ? m->marks[m->mp - 1] : 0;
  if (m->sp <= floor) return bad(m, "stack underflow");
  *v = m->stack[--m->sp];
  return GRAFT_OK;
}

static graft_status top(vm *m, int *v) {
  int floor = m->mp ? m->marks[m->mp - 1] : 0;
  if (m->sp <= floor) return bad(m, "stack underflow");
  *v = m->stack[m->sp - 1];
  return GRAFT_OK;
}

static graft_status take(vm *m, size_t n, const uint8_t **out) {
  if ((size_t)(m->end - m->at) < n) return bad(m, "truncated");
  *out = m->at;
  m->at += n;
  return GRAFT_OK;
}

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static graft_status memo_put(vm *m, uint64_t idx) {
  int v = 0;
  GRAFT_TRY(top(m, &v));
  if (idx >= GRAFT_PICKLE_MAX_MEMO) return bad(m, "memo index too large");
  if ((int)idx >= m->memo_cap) {
    int cap = m->memo_cap ? m->memo_cap : 64;
    while (cap <= (int)idx) cap *= 2;
    int *n = realloc(m->memo, (size_t)cap * sizeof *n);
    if (!n) return nomem();
    for (int i = m->memo_cap; i < cap; i++) n[i] = -1;
    m->memo = n, m->memo_cap = cap;
  }
  m->memo[idx] = v;
  if ((int)idx >= m->memo_len) m->memo_len = (int)idx + 1;
  return GRAFT_OK;
}

static graft_status memo_get(vm *m, uint64_t idx) {
  if (idx >= (uint64_t)m->memo_cap || m->memo[idx] < 0) return bad(m, "memo entry not set");
  return push(m, m->memo[idx]);
}

/* A length-prefixed string of `width` bytes' length. */
static graft_status lstring(vm *m, int width, graft_pk_type t) {
  const uint8_t *p = NULL, *s = NULL;
  GRAFT_TRY(take(m, (size_t)width, &p));
  uint64_t n = le(p, width);
  if (width == 4 && t == GRAFT_PK_BYTES && n > INT32_MAX) return bad(m, "negative length");
  if (n > (uint64_t)(m->end - m->at)) return bad(m, "truncated string");
  GRAFT_TRY(take(m, (size_t)n, &s));
  int v = 0;
  GRAFT_TRY(push_new(m, t, &v));
  m->p->nodes[v].s = s;
  m->p->nodes[v].len = (size_t)n;
  return GRAFT_OK;
}

static void printable(const uint8_t *s, size_t n, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 4 < cap; i++)
    out[k++] = (s[i] < 0x20 || s[i] >= 0x7f) ? '?' : (char)s[i];
  if (n >= cap - 4) out[k++] = '.', out[k++] = '.', out[k++] = '.';
  out[k] = '\0';
}

static graft_status global(vm *m, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl) {
  for (int i = 0; i < m->n_allowed; i++) {
    const graft_pk_global *g = &m->allowed[i];
    if (strlen(g->module) == ml && memcmp(g->module, mod, ml) == 0 && strlen(g->name) == nl &&
        memcmp(g->name, name, nl) == 0) {
      int v = 0;
      GRAFT_TRY(push_new(m, GRAFT_PK_GLOBAL, &v));
      m->p->nodes[v].a = i;
      return GRAFT_OK;
    }
  }
  char a[80], b[80];
  printable(mod, ml, a, sizeof a);
  printable(name, nl, b, sizeof b);
  return graft__fail(GRAFT_EUNSUPPORTED, "refuses global %s.%s", a, b);
}

/* GLOBAL's two text lines. */
static graft_status text_line(vm *m, const uint8_t **s, size_t *n) {
  const uint8_t *nl = memchr(m->at, '\n', (size_t)(m->end - m->at));
  if (!nl) return bad(m, "truncated global");
  *s = m->at, *n = (size_t)(nl - m->at);
  if (*n > GRAFT_PICKLE_MAX_NAME) return bad(m, "global name too long");
  m->at = nl + 1;
  return GRAFT_OK;
}

static graft_status stack_global(vm *m) {
  int name = 0, mod = 0;
  GRAFT_TRY(pop(m, &name));
  GRAFT_TRY(pop(m, &mod));
  const pnode *a = &m->p->nodes[mod], *b = &m->p->nodes[name];
  if (a->type != GRAFT_PK_STR || b->type != GRAFT_PK_STR)
    return bad(m, "STACK_GLOBAL of non-strings");
  if (a->len > GRAFT_PICKLE_MAX_NAME || b->len > GRAFT_PICKLE_MAX_NAME)
    return bad(m, "global name too long");
  return global(m, a->s, a->len, b->s, b->len);
}

static graft_status reduce(vm *m) {
  int args = 0, fn = 0, v = 0;
  GRAFT_TRY(pop(m, &args));
  GRAFT_TRY(pop(m, &fn));
  const pnode *f = &m->p->nodes[fn];
  if (f->type != GRAFT_PK_GLOBAL) return bad(m, "REDUCE of something other than a global");
  if (m->p->nodes[args].type != GRAFT_PK_TUPLE) return bad(m, "REDUCE without an argument tuple");
  const graft_pk_global *g = &m->allowed[f->a];
  if (g->kind == GRAFT_PK_G_VALUE)
    return graft__fail(GRAFT_EUNSUPPORTED, "refuses to call %s.%s", g->module, g->name);
  if (g->kind == GRAFT_PK_G_DICT) {
    if (m->p->nodes[args].n != 0) return bad(m, "a dict built from arguments");
    return push_new(m, GRAFT_PK_DICT, NULL);
  }
  int a = f->a;
  GRAFT_TRY(push_new(m, GRAFT_PK_CALL, &v));
  m->p->nodes[v].a = a;
  m->p->nodes[v].b = args;
  return GRAFT_OK;
}

/* The items above the last mark into container c (pairs when dict). */
static graft_status fill(vm *m, int c, int base, bool pairs) {
  if (pairs && (m->sp - base) % 2) return bad(m, "odd number of dict items");
  for (int i = base; i < m->sp; i++) GRAFT_TRY(add_item(m, c, m->stack[i]));
  m->sp = base;
  return GRAFT_OK;
}

/* APPENDS, SETITEMS: the items above the mark into the object below it. */
static graft_status add_many(vm *m, graft_pk_type want) {
  int base = 0;
  GRAFT_TRY(pop_mark(m, &base));
  int floor = m->mp ? m->marks[m->mp - 1] : 0;
  if (base <= floor) return bad(m, "stack underflow");
  int c = m->stack[base - 1];
  if (m->p->nodes[c].type != want)
    return bad(m, want == GRAFT_PK_DICT ? "SETITEMS on a non-dict" : "APPENDS on a non-list");
  return fill(m, c, base, want == GRAFT_PK_DICT);
}

static graft_status from_mark(vm *m, graft_pk_type t) {
  int base = 0, c = 0;
  GRAFT_TRY(pop_mark(m, &base));
  GRAFT_TRY(node(m, t, &c));
  GRAFT_TRY(fill(m, c, base, t == GRAFT_PK_DICT));
  return push(m, c);
}

static graft_status tuple_n(vm *m, int n) {
  int items[3] = {0, 0, 0}, c = 0;
  for (int i = n - 1; i >= 0; i--) GRAFT_TRY(pop(m, &items[i]));
  GRAFT_TRY(node(m, GRAFT_PK_TUPLE, &c));
  for (int i = 0; i < n; i++) GRAFT_TRY(add_item(m, c, items[i]));
  return push(m, c);
}

static graft_status set_item(vm *m) {
  int k = 0, v = 0, d = 0;
  GRAFT_TRY(pop(m, &v));
  GRAFT_TRY(pop(m, &k));
  GRAFT_TRY(top(m, &d));
  if (m->p->nodes[d].type != GRAFT_PK_DICT) return bad(m, "SETITEM on a non-dict");
  GRAFT_TRY(add_item(m, d, k));
  return add_item(m, d, v);
}

static graft_status append(vm *m) {
  int v = 0, l = 0;
  GRAFT_TRY(pop(m, &v));
  GRAFT_TRY(top(m, &l));
  if (m->p->nodes[l].type != GRAFT_PK_LIST) return bad(m, "APPEND on a non-list");
  return add_item(m, l, v);
}

/* An integer or a boolean, pushed. */
static graft_status push_int(vm *m, graft_pk_type t, int64_t x) {
  int v = 0;
  GRAFT_TRY(push_new(m, t, &v));
  m->p->nodes[v].i = x;
  return GRAFT_OK;
}

static graft_status number(vm *m, int width, bool is_signed) {
  const uint8_t *p = NULL;
  GRAFT_TRY(take(m, (size_t)width, &p));
  uint64_t u = le(p, width);
  return push_int(m, GRAFT_PK_INT, is_signed ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u);
}

static graft_status long1(vm *m) {
  const uint8_t *p = NULL, *s = NULL;
  GRAFT_TRY(take(m, 1, &p));
  GRAFT_TRY(take(m, *p, &s));
  int v = 0;
  if (*p > 8) {
    GRAFT_TRY(push_new(m, GRAFT_PK_BIGINT, &v));
    m->p->nodes[v].s = s;
    m->p->nodes[v].len = *p;
    return GRAFT_OK;
  }
  uint64_t u = *p ? le(s, *p) : 0;
  if (*p && *p < 8 && (s[*p - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * *p); /* sign-extend */
  return push_int(m, GRAFT_PK_INT, (int64_t)u);
}

static graft_status binfloat(vm *m) {
  const uint8_t *p = NULL;
  GRAFT_TRY(take(m, 8, &p));
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = u << 8 | p[i]; /* big-endian */
  int v = 0;
  GRAFT_TRY(push_new(m, GRAFT_PK_FLOAT, &v));
  memcpy(&m->p->nodes[v].f, &u, 8);
  return GRAFT_OK;
}

/* PROTO: the protocols a state_dict is written in. */
static graft_status proto(vm *m) {
  const uint8_t *p = NULL;
  GRAFT_TRY(take(m, 1, &p));
  if (*p < 2 || *p > 5) return bad(m, "unsupported protocol");
  return GRAFT_OK;
}

/* GLOBAL: module and name as text lines. */
static graft_status text_global(vm *m) {
  const uint8_t *mod = NULL, *name = NULL;
  size_t ml = 0, nl = 0;
  GRAFT_TRY(text_line(m, &mod, &ml));
  GRAFT_TRY(text_line(m, &name, &nl));
  return global(m, mod, ml, name, nl);
}

/* BINPERSID: the persistent id on the stack (a storage's tuple). */
static graft_status binpersid(vm *m) {
  int id = 0, v = 0;
  GRAFT_TRY(pop(m, &id));
  GRAFT_TRY(push_new(m, GRAFT_PK_PERSID, &v));
  m->p->nodes[v].a = id;
  return GRAFT_OK;
}

/* One opcode; *stop when it was STOP. */
static graft_status step(vm *m, bool *stop) {
  const uint8_t *p = NULL;
  GRAFT_TRY(take(m, 1, &p));
  uint8_t op = *p;
  int v = 0;
  switch (op) {
    case 0x80: return proto(m);
    case 0x95: return take(m, 8, &p); /* FRAME: a hint only */
    case '.': *stop = true; return GRAFT_OK;
    case '(':
      GRAFT_TRY(room(m, &m->marks, m->mp, &m->cap_marks, "too many marks"));
      m->marks[m->mp++] = m->sp;
      return GRAFT_OK;
    case '}': return push_new(m, GRAFT_PK_DICT, NULL);
    case ']': return push_new(m, GRAFT_PK_LIST, NULL);
    case ')': return push_new(m, GRAFT_PK_TUPLE, NULL);
    case 't': return from_mark(m, GRAFT_PK_TUPLE);
    case 'l': return from_mark(m, GRAFT_PK_LIST);
    case 'd': return from_mark(m, GRAFT_PK_DICT);
    case 0x85: return tuple_n(m, 1);
    case 0x86: return tuple_n(m, 2);
    case 0x87: return tuple_n(m, 3);
    case 'N': return push_new(m, GRAFT_PK_NONE, NULL);
    case 0x88: return push_int(m, GRAFT_PK_BOOL, 1); /* NEWTRUE */
    case 0x89: return push_int(m, GRAFT_PK_BOOL, 0); /* NEWFALSE */
    case 'J': return number(m, 4, true);
    case 'K': return number(m, 1, false);
    case 'M': return number(m, 2, false);
    case 0x8a: return long1(m);
    case 'G': return binfloat(m);
    case 'X': return lstring(m, 4, GRAFT_PK_STR);
    case 0x8c: return lstring(m, 1, GRAFT_PK_STR);
    case 0x8d: return lstring(m, 8, GRAFT_PK_STR);
    case 'T': return lstring(m, 4, GRAFT_PK_BYTES);
    case 'U': return lstring(m, 1, GRAFT_PK_BYTES);
    case 'B': return lstring(m, 4, GRAFT_PK_BYTES);
    case 'C': return lstring(m, 1, GRAFT_PK_BYTES);
    case 0x8e: return lstring(m, 8, GRAFT_PK_BYTES);
    case 'q': GRAFT_TRY(take(m, 1, &p)); return memo_put(m, *p);
    case 'r': GRAFT_TRY(take(m, 4, &p)); return memo_put(m, le(p, 4));
    case 0x94: return memo_put(m, (uint64_t)m->memo_len);
    case 'h': GRAFT_TRY(take(m, 1, &p)); return memo_get(m, *p);
    case 'j': GRAFT_TRY(take(m, 4, &p)); return memo_get(m, le(p, 4));
    case 'c': return text_global(m);
    case 0x93: return stack_global(m);
    case 'R': return reduce(m);
    case 'b': GRAFT_TRY(pop(m, &v)); return top(m, &v); /* BUILD: the state is dropped */
    case 'Q': return binpersid(m);
    case 's': return set_item(m);
    case 'u': return add_many(m, GRAFT_PK_DICT);
    case 'a': return append(m);
    case 'e': return add_many(m, GRAFT_PK_LIST);
    case '0': return pop(m, &v);
    case '1': return pop_mark(m, &m->sp);
    case '2': GRAFT_TRY(top(m, &v)); return push(m, v);
    default: {
      char what[64];
      m->at--;
      snprintf(what, sizeof what, "unsupported opcode 0x%02x", op);
      return bad(m, what);
    }
  }
}

void graft_pickle_free(graft_pickle *p) {
  if (!p) return;
  for (int i = 0; i < p->n_nodes; i++) free(p->nodes[i].items);
  free(p->nodes);
  free(p);
}

graft_status graft_pickle_load(const uint8_t *buf, size_t n, const graft_pk_global *allowed,
                               int n_allowed, graft_pickle **out, size_t *used) {
  *out = NULL;
  vm m = {0};
  m.buf = m.at = buf, m.end = buf + n;
  m.allowed = allowed, m.n_allowed = n_allowed;
  m.p = calloc(1, sizeof *m.p);
  graft_status s = m.p ? GRAFT_OK : nomem();
  bool stop = false;
  while (s == GRAFT_OK && !stop) s = step(&m, &stop);
  if (s == GRAFT_OK && (m.sp != 1 || m.mp != 0)) s = bad(&m, "STOP with more than one object");
  if (s == GRAFT_OK) m.p->root = m.stack[0];
  free(m.stack);
  free(m.marks);
  free(m.memo);
  if (s != GRAFT_OK) {
    graft_pickle_free(m.p);
    return s;
  }
  *out = m.p;
  *used = (size_t)(m.at - buf);
  return GRAFT_OK;
}

graft_pk_ref graft_pickle_root(const graft_pickle *p) { return p->root; }
int graft_pickle_nodes(const graft_pickle *p) { return p->n_nodes; }
graft_pk_type graft_pk_type_of(const graft_pickle *p, graft_pk_ref v) { return p->nodes[v].type; }
int64_t graft_pk_int(const graft_pickle *p, graft_pk_ref v) { return p->nodes[v].i; }
double graft_pk_float(const graft_pickle *p, graft_pk_ref v) { return p->nodes[v].f; }

const uint8_t *graft_pk_bytes(const graft_pickle *p, graft_pk_ref v, size_t *len) {
  *len = p->nodes[v].len;
  return p->nodes[v].s;
}

bool graft_pk_str_is(const graft_pickle *p, graft_pk_ref v, const char *s) {
  const pnode *x = &p->nodes[v];
  return x->type == GRAFT_PK_STR && x->len == strlen(s) && memcmp(x->s, s, x->len) == 0;
}

int graft_pk_count(const graft_pickle *p, graft_pk_ref v) {
  const pnode *x = &p->nodes[v];
  return x->type == GRAFT_PK_DICT                                ? x->n / 2
         : x->type == GRAFT_PK_TUPLE || x->type == GRAFT_PK_LIST ? x->n
                                                                 : 0;
}

graft_pk_ref graft_pk_at(const graft_pickle *p, graft_pk_ref v, int i) {
  const pnode *x = &p->nodes[v];
  return x->type == GRAFT_PK_DICT ? x->items[2 * i + 1] : x->items[i];
}

graft_pk_ref graft_pk_key(const graft_pickle *p, graft_pk_ref v, int i) {
  return p->nodes[v].items[2 * i];
}

int graft_pk_global_index(const graft_pickle *p, graft_pk_ref v) { return p->nodes[v].a; }

graft_pk_ref graft_pk_args(const graft_pickle *p, graft_pk_ref v) {
  return p->nodes[v].type == GRAFT_PK_PERSID ? p->nodes[v].a : p->nodes[v].b;
}
