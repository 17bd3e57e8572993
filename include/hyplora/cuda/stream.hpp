// hyplora/cuda/stream.hpp — RAII CUDA stream and event (the event also times kernels).
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

/// An owned, non-blocking stream (it does not synchronise with the legacy default stream).
class Stream {
 public:
  Stream() { HYPLORA_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) (void)cudaStreamDestroy(s_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      if (s_) (void)cudaStreamDestroy(s_);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  cudaStream_t get() const { return s_; }
  /// Waits for all work queued on the stream; throws cuda_error for a fault in that work.
  void synchronize() const { HYPLORA_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

/// An owned event with timing enabled.
class Event {
 public:
  Event() { HYPLORA_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() {
    if (e_) (void)cudaEventDestroy(e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&&) = delete;
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s) { HYPLORA_CUDA_CHECK(cudaEventRecord(e_, s)); }
  void synchronize() const { HYPLORA_CUDA_CHECK(cudaEventSynchronize(e_)); }
  /// Milliseconds from `start` to this event (both recorded; waits for this one).
  float elapsed_ms_since(const Event& start) const {
    synchronize();
    float ms = 0.f;
    HYPLORA_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

}  // namespace hyplora::cuda
