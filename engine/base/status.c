#include "engine/base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define GRAFT_DETAIL_MAX 1024

static _Thread_local char detail[GRAFT_DETAIL_MAX];

const char *graft_strerror(graft_status s) {
  switch (s) {
#define GRAFT__STATUS_TEXT(name, msg) \
  case GRAFT_##name:                  \
    return msg;
    GRAFT_STATUS_MAP(GRAFT__STATUS_TEXT)
#undef GRAFT__STATUS_TEXT
    default:
      return "unknown status";
  }
}

const char *graft_detail(void) { return detail; }

void graft_clear_detail(void) { detail[0] = '\0'; }

graft_status graft__fail(graft_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return s;
}

graft_status graft__context(graft_status s, const char *fmt, ...) {
  char prefix[GRAFT_DETAIL_MAX];
  char old[GRAFT_DETAIL_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, detail, sizeof old);
  /* Truncation of an over-long detail is acceptable; the return value is
   * checked only to say so to the compiler. */
  int n = snprintf(detail, sizeof detail, "%s: %s", prefix,
                   old[0] != '\0' ? old : graft_strerror(s));
  if (n < 0) detail[0] = '\0';
  return s;
}
