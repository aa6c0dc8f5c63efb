/* The names of the backend options (engine/backend.h), one table each. */
#include <stdio.h>
#include <string.h>

#include "engine/backend.h"

const char *const graft_precision_names[] = {"fp32", "fp32-strict", "bf16", "fp16-weights", NULL};
const char *const graft_cpu_conv_names[] = {"winograd",          "dnnl-winograd",
                                             "graft-winograd",    "graft-winograd-f2",
                                             "graft-winograd-f4", "graft-winograd-f6",
                                             "direct",            "auto",
                                             "gemm",              "tuned",
                                             NULL};
const char *const graft_cpu_kernels_names[] = {"auto", "generic", NULL};
const char *const graft_cudnn_path_names[] = {"auto", "fused", "fallback", "split", "legacy",
                                              NULL};
const char *const graft_cuda_layout_names[] = {"auto", "nchw", "nhwc", NULL};

/* The enums count up from 0 in the order of their names, in an int. */
_Static_assert(GRAFT_PRECISION_BF16 == 2 && GRAFT_PRECISION_FP16_WEIGHTS == 3 &&
                   GRAFT_CUDA_LAYOUT_NHWC == 2 && GRAFT_CPU_CONV_TUNED == 9 &&
                   GRAFT_CPU_KERNELS_GENERIC == 1 && GRAFT_CUDNN_PATH_LEGACY == 4,
               "one name per value, in order");
_Static_assert(sizeof(graft_precision) == sizeof(int) && sizeof(graft_cpu_conv) == sizeof(int) &&
                   sizeof(graft_cpu_kernels) == sizeof(int) &&
                   sizeof(graft_cudnn_path) == sizeof(int) &&
                   sizeof(graft_cuda_layout) == sizeof(int),
               "each option is stored as an int");

/* The index of s in names, into the enum at out; GRAFT_EINVAL "unknown <what>
 * "s" (expected a, b)" otherwise, out untouched. */
static graft_status parse(const char *what, const char *const *names, const char *s, void *out) {
  for (int i = 0; names[i]; i++)
    if (strcmp(s, names[i]) == 0) {
      memcpy(out, &i, sizeof i);
      return GRAFT_OK;
    }
  char expected[128] = "";
  for (int i = 0; names[i]; i++) {
    size_t used = strlen(expected);
    snprintf(expected + used, sizeof expected - used, "%s%s", i ? ", " : "", names[i]);
  }
  return graft__fail(GRAFT_EINVAL, "unknown %s \"%s\" (expected %s)", what, s, expected);
}

/* names[i], or "?" for a value outside the enum. */
static const char *name(const char *const *names, int i) {
  for (int j = 0; names[j]; j++)
    if (j == i) return names[j];
  return "?";
}

graft_status graft_precision_parse(const char *s, graft_precision *out) {
  return parse("precision", graft_precision_names, s, out);
}
graft_status graft_cpu_conv_parse(const char *s, graft_cpu_conv *out) {
  return parse("CPU convolution path", graft_cpu_conv_names, s, out);
}
graft_status graft_cpu_kernels_parse(const char *s, graft_cpu_kernels *out) {
  return parse("CPU kernels", graft_cpu_kernels_names, s, out);
}
graft_status graft_cudnn_path_parse(const char *s, graft_cudnn_path *out) {
  return parse("cuDNN path", graft_cudnn_path_names, s, out);
}
graft_status graft_cuda_layout_parse(const char *s, graft_cuda_layout *out) {
  return parse("CUDA layout", graft_cuda_layout_names, s, out);
}

const char *graft_precision_name(graft_precision p) { return name(graft_precision_names, p); }
const char *graft_cpu_conv_name(graft_cpu_conv c) { return name(graft_cpu_conv_names, c); }
const char *graft_cudnn_path_name(graft_cudnn_path p) { return name(graft_cudnn_path_names, p); }
const char *graft_cuda_layout_name(graft_cuda_layout l) { return name(graft_cuda_layout_names, l); }
