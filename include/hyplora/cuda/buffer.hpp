// hyplora/cuda/buffer.hpp — an RAII device array (plain cudaMalloc; no managed memory) and the
// explicit host↔device copies of a row-major batch.
//
// Copies are explicit and synchronous (cudaMemcpy): a buffer never migrates on its own, so
// every transfer is visible in the code that pays for it. For per-step tensors use
// DeviceTensor (device_tensor.hpp), which draws from the caching allocator instead.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// n elements, uninitialised. n = 0 allocates nothing (data() is null).
  explicit DeviceBuffer(std::size_t n) : size_(n) {
    if (n > 0) HYPLORA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (ptr_) (void)cudaFree(ptr_);  // no throw from a destructor; a failing free is unrecoverable
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (ptr_) (void)cudaFree(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }

  /// Copies n = size() elements from host memory.
  void copy_from_host(const T* src, std::size_t n) {
    check_count("copy_from_host", n);
    if (n > 0) HYPLORA_CUDA_CHECK(cudaMemcpy(ptr_, src, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  /// Copies n = size() elements to host memory.
  void copy_to_host(T* dst, std::size_t n) const {
    check_count("copy_to_host", n);
    if (n > 0) HYPLORA_CUDA_CHECK(cudaMemcpy(dst, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost));
  }

 private:
  void check_count(const char* op, std::size_t n) const {
    if (n != size_) throw_shape(std::string("DeviceBuffer::") + op, "buffer", static_cast<std::int64_t>(size_), 1,
                                "host", static_cast<std::int64_t>(n), 1);
  }
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

/// A device copy of a row-major batch (rows·cols elements, row-major).
template <class T>
DeviceBuffer<T> to_device(const MatrixR<T>& m) {
  DeviceBuffer<T> b(static_cast<std::size_t>(m.size()));
  b.copy_from_host(m.data(), static_cast<std::size_t>(m.size()));
  return b;
}

/// The buffer read back as a (rows, cols) row-major batch; throws shape_error when rows·cols
/// differs from the buffer's size.
template <class T>
MatrixR<T> to_host(const DeviceBuffer<T>& b, Index rows, Index cols) {
  MatrixR<T> m(rows, cols);
  b.copy_to_host(m.data(), static_cast<std::size_t>(m.size()));
  return m;
}

}  // namespace hyplora::cuda
