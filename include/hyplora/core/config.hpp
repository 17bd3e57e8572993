// hyplora/core/config.hpp — version and the host/device annotation.
#pragma once

#define HYPLORA_VERSION_MAJOR 0
#define HYPLORA_VERSION_MINOR 1
#define HYPLORA_VERSION_PATCH 0

// HYPLORA_HD marks the per-row math (manifold/detail/*_rows.hpp) that the Eigen API, the tape's
// fused ops and the CUDA kernels all call, so each formula exists once.
#if defined(__CUDACC__)
#define HYPLORA_HD __host__ __device__
#define HYPLORA_HD_INLINE __host__ __device__ __forceinline__
#else
#define HYPLORA_HD
#define HYPLORA_HD_INLINE inline
#endif

// HYPLORA_HD_GENERIC goes before the `template` line of an HYPLORA_HD template that the host
// also instantiates on host-only value types (Eigen arrays: the vectorised CPU loops share the
// element formula with the kernels). It tells nvcc not to check the execution space of such an
// instantiation; device code only ever instantiates it on scalars.
#if defined(__CUDACC__)
#define HYPLORA_HD_GENERIC _Pragma("nv_exec_check_disable")
#else
#define HYPLORA_HD_GENERIC
#endif
