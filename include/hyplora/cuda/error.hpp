// hyplora/cuda/error.hpp — CUDA runtime and cuBLAS status checks that throw hyplora errors.
//
// Every runtime/cuBLAS call in cuda/ goes through HYPLORA_CUDA_CHECK / HYPLORA_CUBLAS_CHECK, so
// a failure surfaces as a typed exception naming the call, the file:line and the error string,
// never as a silently ignored status. Kernel launches are followed by HYPLORA_CUDA_CHECK_LAUNCH().
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "hyplora/core/errors.hpp"

namespace hyplora::cuda {

/// A CUDA runtime call failed; code() is the cudaError_t.
class cuda_error : public hyplora::error {
 public:
  cuda_error(const std::string& what, cudaError_t code) : hyplora::error(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

/// A cuBLAS call failed; code() is the cublasStatus_t.
class cublas_error : public hyplora::error {
 public:
  cublas_error(const std::string& what, cublasStatus_t code) : hyplora::error(what), code_(code) {}
  cublasStatus_t code() const { return code_; }

 private:
  cublasStatus_t code_;
};

namespace detail {

inline std::string where(const char* call, const char* file, int line) {
  return std::string(call) + " at " + file + ":" + std::to_string(line);
}

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a sticky-free error so the next check does not see it again
  throw cuda_error("CUDA error " + std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) +
                       ") in " + where(call, file, line),
                   e);
}

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw cublas_error("cuBLAS error " + std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) +
                         ") in " + where(call, file, line),
                     s);
}

}  // namespace detail
}  // namespace hyplora::cuda

/// Throws hyplora::cuda::cuda_error when `expr` (a cudaError_t) is not cudaSuccess.
#define HYPLORA_CUDA_CHECK(expr) ::hyplora::cuda::detail::check_cuda((expr), #expr, __FILE__, __LINE__)
/// Throws hyplora::cuda::cublas_error when `expr` (a cublasStatus_t) is not CUBLAS_STATUS_SUCCESS.
#define HYPLORA_CUBLAS_CHECK(expr) ::hyplora::cuda::detail::check_cublas((expr), #expr, __FILE__, __LINE__)
/// HYPLORA_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...) is
/// kernel<<<grid, block, shared_bytes, stream>>>(args...); every launch in hyplora is spelled this
/// way so that tests/support/cuda_emu (which defines the macro first) can run the same launch on
/// the CPU. The kernel comes last: its template arguments may contain commas.
#ifndef HYPLORA_LAUNCH
#define HYPLORA_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#endif
/// After a launch: reports a bad launch configuration (asynchronous faults surface at
/// the next synchronising call).
#define HYPLORA_CUDA_CHECK_LAUNCH() \
  ::hyplora::cuda::detail::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
