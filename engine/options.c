/* The names of the backend options (engine/backend.h), one table each. */
#include <stdio.h>
#include <string.h>

#include "engine/backend.h"

static const char *const precision_names[] = {"fp32", "fp32-strict", NULL};
static const char *const cpu_conv_names[] = {"winograd", "direct", "auto", "gemm", NULL};
static const char *const cpu_kernels_names[] = {"auto", "generic", NULL};
static const char *const cudnn_path_names[] = {"auto", "fused", "fallback", "split", "legacy",
                                               NULL};

/* The index of s in names; GRAFT_EINVAL "unknown <what> "s" (expected a, b)" otherwise. */
static graft_status parse(const char *what, const char *const *names, const char *s, int *out) {
  for (int i = 0; names[i]; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = i;
      return GRAFT_OK;
    }
  char expected[128] = "";
  for (int i = 0; names[i]; i++) {
    size_t used = strlen(expected);
    snprintf(expected + used, sizeof expected - used, "%s%s", i ? ", " : "", names[i]);
  }
  return graft__fail(GRAFT_EINVAL, "unknown %s \"%s\" (expected %s)", what, s, expected);
}

static const char *name(const char *const *names, int count, int i) {
  return i >= 0 && i < count ? names[i] : "?";
}
#define COUNT(names) ((int)(sizeof names / sizeof names[0]) - 1)

graft_status graft_precision_parse(const char *s, graft_precision *out) {
  int i = 0;
  GRAFT_TRY(parse("precision", precision_names, s, &i));
  *out = (graft_precision)i;
  return GRAFT_OK;
}

graft_status graft_cpu_conv_parse(const char *s, graft_cpu_conv *out) {
  int i = 0;
  GRAFT_TRY(parse("CPU convolution path", cpu_conv_names, s, &i));
  *out = (graft_cpu_conv)i;
  return GRAFT_OK;
}

graft_status graft_cpu_kernels_parse(const char *s, graft_cpu_kernels *out) {
  int i = 0;
  GRAFT_TRY(parse("CPU kernels", cpu_kernels_names, s, &i));
  *out = (graft_cpu_kernels)i;
  return GRAFT_OK;
}

graft_status graft_cudnn_path_parse(const char *s, graft_cudnn_path *out) {
  int i = 0;
  GRAFT_TRY(parse("cuDNN path", cudnn_path_names, s, &i));
  *out = (graft_cudnn_path)i;
  return GRAFT_OK;
}

const char *graft_precision_name(graft_precision p) {
  return name(precision_names, COUNT(precision_names), (int)p);
}

const char *graft_cpu_conv_name(graft_cpu_conv c) {
  return name(cpu_conv_names, COUNT(cpu_conv_names), (int)c);
}

const char *graft_cudnn_path_name(graft_cudnn_path p) {
  return name(cudnn_path_names, COUNT(cudnn_path_names), (int)p);
}
