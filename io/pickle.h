/* A restricted unpickler for data read from untrusted files (models/pth.c).
 *
 * It builds a tree of plain values and never runs anything: no import, no
 * call, no attribute is ever looked up. A global (GLOBAL, STACK_GLOBAL) must
 * be on the caller's list or the parse stops, naming it; calling one
 * (REDUCE) is recorded as a node for the caller to interpret, except the
 * dict-like globals (collections.OrderedDict), whose call with no arguments
 * is an empty dict. BUILD's state is dropped; persistent ids (BINPERSID) are
 * recorded as nodes. Only the opcodes a torch.save state_dict uses
 * (protocols 2 to 5, without out-of-band buffers) are known; any other
 * stops the parse. Every count is bounded (GRAFT_PICKLE_MAX_*), strings
 * point into the caller's buffer and are never copied. */
#ifndef GRAFT_PICKLE_H
#define GRAFT_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

#define GRAFT_PICKLE_MAX_NODES (1 << 20)
#define GRAFT_PICKLE_MAX_ITEMS (1 << 22)
#define GRAFT_PICKLE_MAX_STACK (1 << 16)
#define GRAFT_PICKLE_MAX_MEMO (1 << 20)
#define GRAFT_PICKLE_MAX_NAME 256 /* a global's module or name */

typedef enum graft_pk_type {
  GRAFT_PK_NONE,
  GRAFT_PK_BOOL,
  GRAFT_PK_INT,    /* fits in int64 */
  GRAFT_PK_BIGINT, /* a longer LONG1: its little-endian bytes */
  GRAFT_PK_FLOAT,
  GRAFT_PK_STR,   /* unicode, UTF-8 bytes */
  GRAFT_PK_BYTES, /* bytes and protocol 2's byte strings */
  GRAFT_PK_TUPLE,
  GRAFT_PK_LIST,
  GRAFT_PK_DICT,
  GRAFT_PK_GLOBAL, /* one of the allowed globals */
  GRAFT_PK_CALL,   /* an allowed global called on a tuple */
  GRAFT_PK_PERSID  /* a persistent id */
} graft_pk_type;

typedef enum graft_pk_global_kind {
  GRAFT_PK_G_DICT,  /* called with no arguments: an empty dict */
  GRAFT_PK_G_CALL,  /* called: a CALL node */
  GRAFT_PK_G_VALUE, /* never called */
} graft_pk_global_kind;

typedef struct graft_pk_global {
  const char *module, *name;
  graft_pk_global_kind kind;
} graft_pk_global;

typedef struct graft_pickle graft_pickle;
typedef int graft_pk_ref;

/* Unpickle one pickle from buf (n bytes; it must outlive the result), up to
 * and including its STOP; *used is the bytes it took. */
graft_status graft_pickle_load(const uint8_t *buf, size_t n, const graft_pk_global *allowed,
                               int n_allowed, graft_pickle **out, size_t *used);
void graft_pickle_free(graft_pickle *p);

graft_pk_ref graft_pickle_root(const graft_pickle *p);
/* Every node is a ref from 0 to this count - 1. */
int graft_pickle_nodes(const graft_pickle *p);
graft_pk_type graft_pk_type_of(const graft_pickle *p, graft_pk_ref v);
int64_t graft_pk_int(const graft_pickle *p, graft_pk_ref v);  /* INT, BOOL */
double graft_pk_float(const graft_pickle *p, graft_pk_ref v); /* FLOAT */
/* STR, BYTES, BIGINT: the bytes (not NUL-terminated) and their length. */
const uint8_t *graft_pk_bytes(const graft_pickle *p, graft_pk_ref v, size_t *len);
/* Whether v is a STR equal to s. */
bool graft_pk_str_is(const graft_pickle *p, graft_pk_ref v, const char *s);
/* TUPLE, LIST: elements; DICT: pairs (graft_pk_key, graft_pk_at). */
int graft_pk_count(const graft_pickle *p, graft_pk_ref v);
graft_pk_ref graft_pk_at(const graft_pickle *p, graft_pk_ref v, int i);
graft_pk_ref graft_pk_key(const graft_pickle *p, graft_pk_ref v, int i);
/* GLOBAL, CALL: the index of the global in the caller's list; CALL: its
 * arguments (a TUPLE); PERSID: the id. */
int graft_pk_global_index(const graft_pickle *p, graft_pk_ref v);
graft_pk_ref graft_pk_args(const graft_pickle *p, graft_pk_ref v);

#endif
