// The one doctest main of the CUDA tests (tests/cuda/test_*.cu), compiled once by the host C++
// compiler: doctest's implementation costs ~11 s of nvcc per translation unit (two device passes
// and the host pass), so the .cu files hold only their test cases.
// Without a CUDA device every CUDA test prints "SKIPPED: no CUDA device" and returns 77, which
// CTest reports as skipped (SKIP_RETURN_CODE in cmake/hyplora_cuda.cmake).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <hyplora/cuda/device.hpp>

int main(int argc, char** argv) {
  if (hyplora::cuda::skip_without_device()) return hyplora::cuda::kSkipReturnCode;
  doctest::Context context(argc, argv);
  return context.run();
}
