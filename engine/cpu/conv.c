/* Convolution on the CPU: which path each layer takes, decided here and
 * nowhere else, from the backend's option (graft_backend_options.cpu_conv)
 * and the ISA it runs on:
 *   winograd (default)  3x3/1 (and 5x5/1) layers on the ISA's Winograd, see
 *                       graft__cpu_conv_choose (graft's also takes AlexNet's
 *                       11x11/4 first layer, by space to depth: s2d.c); the
 *                       others oneDNN direct
 *   dnnl-winograd       oneDNN's Winograd where it has one, else direct
 *   graft-winograd      graft's Winograd (winograd.c); -f2, -f4 force its tile
 *   direct, auto        oneDNN direct everywhere, oneDNN's own choice
 *   gemm                im2col + OpenBLAS sgemm on plain NCHW (conv_gemm.c)
 *   tuned               each layer's candidates among the above timed when
 *                       it is planned, the fastest kept (conv_tune.c)
 * oneDNN's layers run on channel-blocked activations (dnnl.c); graft's
 * Winograd reads and writes the same nChw8c, so the trunk needs no reorders
 * between the two. */
#include <stdio.h>

#include "engine/cpu/cpu.h"

/* Whose Winograd runs the 3x3/1 (and 5x5/1) layers, from the ISA oneDNN
 * runs on (its block: 16 on AVX-512, 8 below, also when ONEDNN_MAX_CPU_ISA
 * caps an AVX-512 machine) and graft's own AVX2 kernels:
 *   AVX-512:      oneDNN's Winograd (jit_avx512_core_f32_wino_conv_*, 3x3)
 *   AVX2 + FMA:   graft's (oneDNN 2.6 has none there), unless the generic
 *                 kernels (GRAFT_CPU_KERNELS_GENERIC) turn graft's AVX2 off
 *   below:        none, oneDNN direct
 * graft-winograd insists on graft's and fails where it cannot run. */
graft_status graft__cpu_conv_choose(cpu_backend *be, char *what, size_t cap) {
  const bool graft_ok = be->avx2 && be->block == 8;
  be->wino = CPU_WINO_NONE;
  be->wino_m = 0;
  switch (be->conv_path) {
    case GRAFT_CPU_CONV_WINOGRAD:
    case GRAFT_CPU_CONV_TUNED:
      be->wino = be->block == 16 ? CPU_WINO_DNNL : graft_ok ? CPU_WINO_GRAFT : CPU_WINO_NONE;
      break;
    case GRAFT_CPU_CONV_DNNL_WINOGRAD: be->wino = CPU_WINO_DNNL; break;
    case GRAFT_CPU_CONV_GRAFT_WINOGRAD:
    case GRAFT_CPU_CONV_GRAFT_WINOGRAD_F2:
    case GRAFT_CPU_CONV_GRAFT_WINOGRAD_F4:
    case GRAFT_CPU_CONV_GRAFT_WINOGRAD_F6:
      if (!graft_ok)
        return graft__fail(GRAFT_ENODEV,
                           "CPU convolution path %s needs graft's AVX2 + FMA kernels (%s here) "
                           "and oneDNN's 8-channel layout (%d here; ONEDNN_MAX_CPU_ISA=AVX2 "
                           "gives it on AVX-512)",
                           graft_cpu_conv_name(be->conv_path), be->avx2 ? "on" : "off",
                           be->block);
      be->wino = CPU_WINO_GRAFT;
      be->wino_m = be->conv_path == GRAFT_CPU_CONV_GRAFT_WINOGRAD_F2   ? 2
                   : be->conv_path == GRAFT_CPU_CONV_GRAFT_WINOGRAD_F4 ? 4
                   : be->conv_path == GRAFT_CPU_CONV_GRAFT_WINOGRAD_F6 ? 6
                                                                       : 0;
      break;
    default: break;
  }
  const char *tile = be->wino_m == 2   ? "F(2x2,3x3|5x5)"
                     : be->wino_m == 4 ? "F(4x4,3x3|5x5)"
                     : be->wino_m == 6 ? "F(6x6,3x3) F(4x4,5x5)"
                                       : "F(4x4|2x2,3x3) F(4x4,5x5)";
  if (be->conv_path == GRAFT_CPU_CONV_GEMM)
    snprintf(what, cap, "im2col+sgemm convolutions");
  else if (be->conv_path == GRAFT_CPU_CONV_TUNED && be->wino == CPU_WINO_GRAFT)
    snprintf(what, cap, "convolutions tuned per layer: graft Winograd F(2x2|4x4|6x6,3x3) "
                        "F(2x2|4x4,5x5), oneDNN direct");
  else if (be->conv_path == GRAFT_CPU_CONV_TUNED && be->wino == CPU_WINO_DNNL)
    snprintf(what, cap, "convolutions tuned per layer: oneDNN Winograd, oneDNN direct");
  else if (be->conv_path == GRAFT_CPU_CONV_AUTO)
    snprintf(what, cap, "oneDNN auto convolutions");
  else if (be->wino == CPU_WINO_GRAFT)
    snprintf(what, cap, "graft Winograd %s + oneDNN direct convolutions", tile);
  else if (be->wino == CPU_WINO_DNNL)
    snprintf(what, cap, "oneDNN Winograd/direct convolutions");
  else
    snprintf(what, cap, "oneDNN direct convolutions");
  return GRAFT_OK;
}

graft_status graft__cpu_conv2d_plan(graft_backend *b, const graft_conv2d_params *p,
                                    const graft_act *in, const float *w, const float *bias,
                                    graft_act *out, graft_plan **plan) {
  cpu_backend *be = cpu_of(b);
  if (p->in_c != in->c)
    return graft__fail(GRAFT_ESHAPE, "convolution expects %d channels, input has %d", p->in_c,
                       in->c);
  GRAFT_TRY(graft__cpu_check_window("convolution", in, p->kernel, p->stride, p->pad));
  if (p->out_c < 1) return graft__fail(GRAFT_EINVAL, "convolution with %d outputs", p->out_c);
  if (be->conv_path == GRAFT_CPU_CONV_GEMM)
    return graft__gemm_conv_plan(be, p, in, w, bias, out, plan);
  if (be->conv_path == GRAFT_CPU_CONV_TUNED)
    return graft__cpu_conv_tuned_plan(be, p, in, w, bias, out, plan);
  return graft__cpu_conv_path_plan(be, p, in, w, bias, out, plan);
}

graft_status graft__cpu_conv_path_plan(cpu_backend *be, const graft_conv2d_params *p,
                                       const graft_act *in, const float *w, const float *bias,
                                       graft_act *out, graft_plan **plan) {
  /* graft's takes 3x3/1 and 5x5/1 on nChw8c; the first layer (plain NCHW,
   * 3 channels) and strided ones stay on oneDNN. */
  if (be->wino == CPU_WINO_GRAFT && graft__wino_fits(be, p, in))
    return graft__wino_conv_plan(be, p, in, w, bias, out, plan);
  /* AlexNet's first layer (11x11/4 on the image) too, by space to depth. */
  if (graft__s2d_fits(be, p, in)) return graft__s2d_conv_plan(be, p, in, w, bias, out, plan);
  return graft__dnnl_conv_plan(be, p, in, w, bias, out, plan);
}
