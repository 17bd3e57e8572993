// hyplora/cuda/device_tensor.hpp — a 2-D row-major device tensor backed by the caching allocator,
// and the non-owning views the kernels and ops take.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/cuda/caching_allocator.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

/// Non-owning view of a row-major (rows, cols) device array (contiguous rows). A default
/// (null) view is "absent": no bias, or a gradient nobody needs. An empty tensor's view is null
/// too, which is harmless: there is nothing to read or write.
template <class T>
struct DeviceView {
  T* data = nullptr;
  Index rows = 0;
  Index cols = 0;
  bool present() const { return data != nullptr; }
  Index size() const { return rows * cols; }
  /// A mutable view converts to a read-only one (not declared for views of const T).
  template <class U = T, class = std::enable_if_t<!std::is_const_v<U>>>
  operator DeviceView<const U>() const {
    return DeviceView<const U>{data, rows, cols};
  }
};

template <class T>
class DeviceTensor {
 public:
  DeviceTensor() = default;
  explicit DeviceTensor(Index rows, Index cols, CachingAllocator& alloc = CachingAllocator::global())
      : alloc_(&alloc) {
    resize(rows, cols);
  }
  DeviceTensor(DeviceTensor&&) noexcept = default;
  DeviceTensor& operator=(DeviceTensor&&) noexcept = default;
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  /// A device copy of a host batch (synchronous with respect to the host).
  static DeviceTensor from_host(const MatrixR<T>& m, cudaStream_t s = nullptr,
                                CachingAllocator& alloc = CachingAllocator::global()) {
    DeviceTensor d(m.rows(), m.cols(), alloc);
    d.copy_from_host(m, s);
    return d;
  }

  /// New shape; keeps the block (contents unspecified) when it is large enough, so rebuilding
  /// the same step allocates nothing.
  void resize(Index rows, Index cols) {
    if (rows < 0 || cols < 0) throw value_error("DeviceTensor: negative shape " + shape_str(rows, cols));
    const std::size_t bytes = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols) * sizeof(T);
    if (bytes > block_.capacity()) {
      block_.reset();
      block_ = alloc_->allocate(bytes);
    }
    rows_ = rows;
    cols_ = cols;
  }

  /// As resize(rows, cols), drawing from `alloc` (the ops pass their Context's allocator, so saved
  /// and scratch tensors come from it); a block from another allocator is given back first.
  void resize(Index rows, Index cols, CachingAllocator& alloc) {
    if (&alloc != alloc_) {
      block_.reset();
      alloc_ = &alloc;
    }
    resize(rows, cols);
  }

  /// Sets every element to 0 (byte-wise) on stream s.
  void set_zero(cudaStream_t s = nullptr) {
    if (size() > 0) HYPLORA_CUDA_CHECK(cudaMemsetAsync(data(), 0, bytes(), s));
  }

  /// Copies a host batch in, resizing to its shape; returns when the copy is done.
  void copy_from_host(const MatrixR<T>& m, cudaStream_t s = nullptr) {
    resize(m.rows(), m.cols());
    if (size() == 0) return;
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(data(), m.data(), bytes(), cudaMemcpyHostToDevice, s));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(s));
  }

  /// The tensor read back (waits for the work queued on s).
  MatrixR<T> to_host(cudaStream_t s = nullptr) const {
    MatrixR<T> m(rows_, cols_);
    if (size() == 0) return m;
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(m.data(), data(), bytes(), cudaMemcpyDeviceToHost, s));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(s));
    return m;
  }

  T* data() { return static_cast<T*>(block_.get()); }
  const T* data() const { return static_cast<const T*>(block_.get()); }
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  Index size() const { return rows_ * cols_; }
  std::size_t bytes() const { return static_cast<std::size_t>(size()) * sizeof(T); }
  DeviceView<T> view() { return DeviceView<T>{data(), rows_, cols_}; }
  DeviceView<const T> view() const { return DeviceView<const T>{data(), rows_, cols_}; }
  DeviceView<const T> cview() const { return view(); }

 private:
  CachingAllocator* alloc_ = &CachingAllocator::global();
  DeviceBlock block_;
  Index rows_ = 0;
  Index cols_ = 0;
};

}  // namespace hyplora::cuda
