#include <string.h>

#include "engine/backend_impl.h"

graft_status graft_precision_parse(const char *s, graft_precision *out) {
  if (strcmp(s, "fp32") == 0) {
    *out = GRAFT_PRECISION_FP32;
  } else if (strcmp(s, "fp32-strict") == 0) {
    *out = GRAFT_PRECISION_FP32_STRICT;
  } else {
    return graft__fail(GRAFT_EINVAL, "unknown precision \"%s\" (expected fp32, fp32-strict)", s);
  }
  return GRAFT_OK;
}

const char *graft_precision_name(graft_precision p) {
  return p == GRAFT_PRECISION_FP32_STRICT ? "fp32-strict" : "fp32";
}

void graft_backend_set_precision(graft_backend *be, graft_precision p) { be->precision = p; }

graft_precision graft_backend_precision(const graft_backend *be) { return be->precision; }
