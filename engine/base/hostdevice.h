/* GRAFT_HD marks a header's inline function for both the host and, compiled
 * by nvcc, the device: one definition serves the CPU and CUDA backends. */
#ifndef GRAFT_HOSTDEVICE_H
#define GRAFT_HOSTDEVICE_H

#if defined(__CUDACC__)
#define GRAFT_HD __host__ __device__
#else
#define GRAFT_HD
#endif

#endif
