/* What the apps share: their name in messages, one-line errors, warnings
 * from the library, number parsing. */
#ifndef GRAFT_APPS_COMMON_H
#define GRAFT_APPS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

/* Exit codes shared by the apps. */
enum { APP_OK = 0, APP_FAILED = 1, APP_USAGE = 2, APP_INTERRUPTED = 130 };

/* Set the program name used as the prefix of every message, and route the
 * library's warnings to stderr as "name: warning: ...". */
void app_init(const char *name);
const char *app_name(void);

/* "name: what: detail\n" on stderr, on one line (newlines in the text are
 * replaced). what may be NULL. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void app_error(const char *what, const char *fmt, ...);

/* app_error(what, "%s", graft detail or strerror(s)). */
void app_status_error(const char *what, graft_status s);

/* Strict integer / float parsing; false when s is not entirely a number in [lo, hi]. */
bool app_parse_int(const char *s, long long lo, long long hi, long long *out);
bool app_parse_double(const char *s, double lo, double hi, double *out);

/* Append JSON string literal of s (quoted, escaped) to f. */
void app_json_string(void *file, const char *s);

#endif
