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
