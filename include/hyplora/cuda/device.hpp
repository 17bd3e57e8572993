// hyplora/cuda/device.hpp — is there a GPU? Answered without throwing, for tests and callers that
// fall back to the CPU path.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

namespace hyplora::cuda {

/// Number of usable CUDA devices; 0 (never an exception) when there is no driver, no GPU, or the
/// runtime cannot initialise. The probe's error is cleared so later checks do not see it.
inline int device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

inline bool has_device() { return device_count() > 0; }

/// Exit code of a skipped test (CTest's SKIP_RETURN_CODE, the automake convention).
inline constexpr int kSkipReturnCode = 77;

/// For test mains: true (after printing "SKIPPED: no CUDA device") when the test must skip.
inline bool skip_without_device() {
  if (has_device()) return false;
  std::printf("SKIPPED: no CUDA device\n");
  std::fflush(stdout);
  return true;
}

}  // namespace hyplora::cuda
