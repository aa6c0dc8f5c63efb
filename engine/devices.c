/* Choosing a backend by device name (engine/devices.h; the library
 * graft_backends, above the CPU backend and the CUDA one it creates). The
 * CUDA backend lives in a module loaded on first use (engine/cuda_loader.c);
 * "auto" falls back to the CPU without it. */
#include "engine/devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#ifdef GRAFT_HAVE_CUDA
#include "engine/cuda_module.h"
#endif

static graft_status backend_open(const graft_backend_options *o, graft_backend **out,
                                  graft_backend_note *note);

/* A backend that cannot run the precision asked for is refused, by name. */
graft_status graft_backend_create(const graft_backend_options *o, graft_backend **out,
                                  graft_backend_note *note) {
  GRAFT_TRY(backend_open(o, out, note));
  if (o && o->precision == GRAFT_PRECISION_FP16_WEIGHTS && !(*out)->iface->linear_forward_f16w) {
    graft_status s = graft__fail(GRAFT_EUNSUPPORTED,
                                 "precision fp16-weights: the %s backend has no fp16 weights "
                                 "(a CPU mode; use -d cpu)", graft_backend_name(*out));
    graft_backend_destroy(*out);
    *out = NULL;
    return s;
  }
  return GRAFT_OK;
}

static graft_status backend_open(const graft_backend_options *o, graft_backend **out,
                                 graft_backend_note *note) {
  static const graft_backend_options defaults = {0};
  if (!o) o = &defaults;
  const char *device = o->device;
  *out = NULL;
  if (note) *note = (graft_backend_note){GRAFT_FALLBACK_NONE, NULL};
  if (!device || !*device || strcmp(device, "auto") == 0) {
#ifdef GRAFT_HAVE_CUDA
    /* Any failure falls back, a GPU that is there but fails included: the
     * line says which, the kind whether anything is wrong. */
    static _Thread_local char why[1280];
    if (graft__cuda_backend_open(-1, o, out) == GRAFT_OK) return GRAFT_OK;
    snprintf(why, sizeof why, "no usable CUDA GPU (%s); running on the CPU", graft_detail());
    graft_clear_detail();
    if (note)
      *note = (graft_backend_note){
          graft__cuda_no_driver() ? GRAFT_FALLBACK_NO_DRIVER : GRAFT_FALLBACK_NO_GPU, why};
#endif
    return graft_cpu_backend_create(o, out);
  }
  if (strcmp(device, "cpu") == 0) return graft_cpu_backend_create(o, out);
  if (strncmp(device, "cuda", 4) == 0) {
    int index = -1; /* none named: o->default_gpu */
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
    return graft__cuda_backend_open(index, o, out);
#else
    (void)index;
    return graft__fail(GRAFT_ENODEV, "device \"%s\": this build of graft has no CUDA support",
                       device);
#endif
  }
  return graft__fail(GRAFT_EINVAL, "unknown device \"%s\" (expected auto, cpu, cuda[:N])", device);
}

#ifndef GRAFT_HAVE_CUDA
graft_status graft_cuda_environment(char *buf, size_t cap) {
  snprintf(buf, cap, "module: this build of graft has no CUDA support\n");
  return graft__fail(GRAFT_ENODEV, "this build of graft has no CUDA support");
}
#endif

void graft_backend_destroy(graft_backend *be) {
  if (be) be->iface->destroy(be);
}

const char *graft_backend_name(const graft_backend *be) { return be->name; }

const char *graft_backend_describe(const graft_backend *be) { return be->description; }
