/* A small strict JSON parser for headers read from untrusted files
 * (safetensors, io/safetensors.c; the metadata strings in them).
 *
 * RFC 8259 only: no comments, no trailing commas, no NaN, no bare control
 * characters in strings, a single value and nothing but whitespace after
 * it. Nesting, values and string lengths are bounded by the caller's input
 * and by GRAFT_JSON_MAX_DEPTH and GRAFT_JSON_MAX_VALUES; the parse
 * allocates nothing but its node array and the decoded strings. */
#ifndef GRAFT_JSON_H
#define GRAFT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

#define GRAFT_JSON_MAX_DEPTH 32
#define GRAFT_JSON_MAX_VALUES (1 << 20) /* 16 MiB of "[0,0,...]" is 8M values */

typedef enum graft_json_type {
  GRAFT_JSON_NULL,
  GRAFT_JSON_BOOL,
  GRAFT_JSON_NUMBER,
  GRAFT_JSON_STRING,
  GRAFT_JSON_ARRAY,
  GRAFT_JSON_OBJECT
} graft_json_type;

typedef struct graft_json graft_json; /* a parsed document */

/* A value, by index in its document; 0 is the root. */
typedef int graft_json_ref;

/* Parse len bytes. Details say what is wrong and at which byte. */
graft_status graft_json_parse(const char *text, size_t len, graft_json **out);
void graft_json_free(graft_json *j);

graft_json_type graft_json_type_of(const graft_json *j, graft_json_ref v);
/* A string's decoded UTF-8 bytes (NUL-terminated; *len without the NUL;
 * an embedded NUL is refused at parse time). */
const char *graft_json_string(const graft_json *j, graft_json_ref v, size_t *len);
double graft_json_number(const graft_json *j, graft_json_ref v);
/* Whether a number was written as an integer (no fraction, no exponent) that
 * fits in int64; *out is it. */
bool graft_json_int(const graft_json *j, graft_json_ref v, int64_t *out);
/* Arrays and objects: the number of elements, the i-th element (in file
 * order), and for objects the i-th key (a string value). */
int graft_json_count(const graft_json *j, graft_json_ref v);
graft_json_ref graft_json_at(const graft_json *j, graft_json_ref v, int i);
graft_json_ref graft_json_key(const graft_json *j, graft_json_ref v, int i);
/* An object's member by key, or -1. */
graft_json_ref graft_json_get(const graft_json *j, graft_json_ref obj, const char *key);

#endif
