/* Choosing a backend by name. */
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"

graft_status graft_backend_create(const char *device, int threads, graft_backend **out,
                                  const char **note) {
  *out = NULL;
  if (note) *note = NULL;
  if (!device || !*device || strcmp(device, "auto") == 0) {
#ifdef GRAFT_HAVE_CUDA
    if (graft_cuda_backend_create(0, out) == GRAFT_OK) return GRAFT_OK;
    if (note) *note = "no usable CUDA GPU; running on the CPU";
#endif
    return graft_cpu_backend_create(threads, out);
  }
  if (strcmp(device, "cpu") == 0) return graft_cpu_backend_create(threads, out);
  if (strncmp(device, "cuda", 4) == 0) {
    int index = 0;
    if (device[4] == ':') {
      char *end;
      long v = strtol(device + 5, &end, 10);
      if (end == device + 5 || *end || v < 0 || v > 1024)
        return graft__fail(GRAFT_EINVAL, "device \"%s\": expected cuda or cuda:N", device);
      index = (int)v;
    } else if (device[4] != '\0') {
      return graft__fail(GRAFT_EINVAL, "unknown device \"%s\" (expected auto, cpu, cuda[:N])",
                         device);
    }
#ifdef GRAFT_HAVE_CUDA
    return graft_cuda_backend_create(index, out);
#else
    (void)index;
    return graft__fail(GRAFT_ENODEV, "device \"%s\": this build of graft has no CUDA support",
                       device);
#endif
  }
  return graft__fail(GRAFT_EINVAL, "unknown device \"%s\" (expected auto, cpu, cuda[:N])", device);
}

void graft_backend_destroy(graft_backend *be) {
  if (be) be->iface->destroy(be);
}

const char *graft_backend_name(const graft_backend *be) { return be->name; }

const char *graft_backend_describe(const graft_backend *be) { return be->description; }
