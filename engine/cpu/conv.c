/* Convolution on the CPU: the checks every path shares, then the path the
 * backend was created with (graft_backend_options.cpu_conv):
 *   winograd, direct, auto  oneDNN on channel-blocked activations (dnnl.c)
 *   gemm                    im2col + OpenBLAS sgemm on plain NCHW (conv_gemm.c) */
#include "engine/cpu/cpu.h"

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
  return graft__dnnl_conv_plan(be, p, in, w, bias, out, plan);
}
