#include "engine/base/log.h"

#include <stdarg.h>
#include <stdio.h>

static graft_log_fn log_fn;
static void *log_user;

void graft_set_log(graft_log_fn fn, void *user) {
  log_fn = fn;
  log_user = user;
}

void graft__warn(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  if (!log_fn) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_fn(msg, log_user);
}
