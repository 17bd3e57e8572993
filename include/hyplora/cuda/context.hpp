// hyplora/cuda/context.hpp — where device work runs: one stream, the cuBLAS handle bound to it,
// and the allocator scratch comes from. Every op takes one, so its kernels and GEMMs are ordered
// on one stream (what the caching allocator's reuse relies on).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "hyplora/cuda/caching_allocator.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/stream.hpp"

namespace hyplora::cuda {

/// Non-owning: what the ops read.
struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  CachingAllocator* alloc = &CachingAllocator::global();
};

/// Owns a stream and a cuBLAS handle on it; context() is the view to pass to ops.
class DeviceContext {
 public:
  explicit DeviceContext(CachingAllocator& alloc = CachingAllocator::global())
      : blas_(stream_.get()), alloc_(&alloc) {}
  Context context() const { return Context{stream_.get(), blas_.get(), alloc_}; }
  cudaStream_t stream() const { return stream_.get(); }
  void synchronize() const { stream_.synchronize(); }

 private:
  Stream stream_;  // declared before blas_: the handle is bound to it
  CublasHandle blas_;
  CachingAllocator* alloc_;
};

}  // namespace hyplora::cuda
