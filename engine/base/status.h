/* graft status codes: the library returns these and never exits.
 *
 * Every failing function sets a thread-local detail string (what file,
 * dataset, layer or value was wrong) and returns a code; only apps/ print.
 */
#ifndef GRAFT_STATUS_H
#define GRAFT_STATUS_H

#include <stddef.h>

#define GRAFT_STATUS_MAP(XX)                                   \
  XX(OK,          "success")                                   \
  XX(ENOMEM,      "out of memory")                             \
  XX(EINVAL,      "invalid argument")                          \
  XX(EIO,         "input/output error")                        \
  XX(ENOENT,      "no such file or directory")                 \
  XX(EFORMAT,     "unrecognised or corrupt data")              \
  XX(ESHAPE,      "shape mismatch")                            \
  XX(ERANGE,      "value out of range")                        \
  XX(ELIMIT,      "size limit exceeded")                       \
  XX(ENONFINITE,  "non-finite value")                          \
  XX(EUNSUPPORTED,"not supported")                             \
  XX(EBACKEND,    "backend library failure")                   \
  XX(ENODEV,      "device not available")                      \
  XX(EINTR,       "interrupted")                               \
  XX(EBUSY,       "in use by another process")

typedef enum graft_status {
#define GRAFT__STATUS_ENUM(name, msg) GRAFT_##name,
  GRAFT_STATUS_MAP(GRAFT__STATUS_ENUM)
#undef GRAFT__STATUS_ENUM
  GRAFT_STATUS_COUNT
} graft_status;

/* Text of a status code ("out of memory"). Never NULL. */
const char *graft_strerror(graft_status s);

/* Detail of the last failure on this thread ("" if none was recorded). */
const char *graft_detail(void);

/* Clear this thread's detail string. */
void graft_clear_detail(void);

/* Library-internal: record a detail (printf format) and return s. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
graft_status graft__fail(graft_status s, const char *fmt, ...);

/* Library-internal: prepend "prefix: " to the current detail (context as a
 * failure travels up: "features.3.weight: " + "expected ..."). Returns s. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
graft_status graft__context(graft_status s, const char *fmt, ...);

/* Propagate a failure: evaluate expr once, return its status if not OK. */
#define GRAFT_TRY(expr)                                         \
  do {                                                          \
    graft_status graft__s = (expr);                             \
    if (graft__s != GRAFT_OK) return graft__s;                  \
  } while (0)

#endif
