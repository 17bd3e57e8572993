// hyplora/cuda/caching_allocator.hpp — a size-bucketed caching allocator for device memory.
//
// A training step asks for the same activation/scratch sizes every iteration; cudaMalloc and
// cudaFree synchronise the device and cost tens of µs each. Freed blocks therefore go to a
// free list keyed by their bucket size and the next request of that bucket reuses one: after
// the first step a loop calls cudaMalloc no more (stats().malloc_calls stays flat).
//
// Buckets: requests round up to a power of two (at least 512 B) up to 1 MiB, and to a multiple
// of 2 MiB above, so the waste is < 2× for small blocks and < 2 MiB for large ones.
//
// Streams: a block is reused as soon as it is freed on the host. That is safe when all work
// using one allocator is ordered on one stream (as in hyplora's ops, which take one Context):
// the next user's kernels run after the previous user's. Code that frees a block still read by
// another stream must synchronise first. Thread-safe (one mutex); the allocator must outlive
// its blocks.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

class CachingAllocator;

/// A block of device memory owned until destruction, then returned to its allocator's cache.
class DeviceBlock {
 public:
  DeviceBlock() = default;
  DeviceBlock(CachingAllocator* owner, void* ptr, std::size_t bytes) : owner_(owner), ptr_(ptr), bytes_(bytes) {}
  inline ~DeviceBlock();
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  DeviceBlock(DeviceBlock&& o) noexcept
      : owner_(std::exchange(o.owner_, nullptr)), ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBlock& operator=(DeviceBlock&& o) noexcept {
    if (this != &o) {
      reset();
      owner_ = std::exchange(o.owner_, nullptr);
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  void* get() const { return ptr_; }
  /// Usable bytes (the bucket size, >= the request).
  std::size_t capacity() const { return bytes_; }
  inline void reset();

 private:
  CachingAllocator* owner_ = nullptr;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

class CachingAllocator {
 public:
  struct Stats {
    std::size_t malloc_calls = 0;   // cudaMalloc calls made
    std::size_t free_calls = 0;     // cudaFree calls made (release_cached)
    std::size_t cache_hits = 0;     // requests served from the cache
    std::size_t bytes_in_use = 0;   // held by live DeviceBlocks
    std::size_t bytes_cached = 0;   // in free lists, ready for reuse
  };

  CachingAllocator() = default;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  ~CachingAllocator() { release_cached_nothrow(); }

  /// The bucket a request of `bytes` is served from (0 for 0).
  static std::size_t bucket_size(std::size_t bytes) {
    constexpr std::size_t kMin = 512, kSmall = std::size_t(1) << 20, kLarge = std::size_t(2) << 20;
    if (bytes == 0) return 0;
    if (bytes > kSmall) return (bytes + kLarge - 1) / kLarge * kLarge;
    std::size_t b = kMin;
    while (b < bytes) b <<= 1;
    return b;
  }

  /// A block of at least `bytes`; from the cache when a block of the same bucket is free.
  /// bytes = 0 gives an empty block (null pointer) and touches nothing.
  DeviceBlock allocate(std::size_t bytes) {
    const std::size_t b = bucket_size(bytes);
    if (b == 0) return DeviceBlock();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(b);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= b;
      stats_.bytes_in_use += b;
      ++stats_.cache_hits;
      return DeviceBlock(this, p, b);
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, b);
    if (e == cudaErrorMemoryAllocation) {  // out of memory: give the cache back and retry once
      (void)cudaGetLastError();
      release_cached_locked();
      e = cudaMalloc(&p, b);
    }
    ++stats_.malloc_calls;
    HYPLORA_CUDA_CHECK(e);
    stats_.bytes_in_use += b;
    return DeviceBlock(this, p, b);
  }

  /// cudaFree of every cached (free) block; live blocks are untouched.
  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  Stats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  /// The process-wide allocator the ops use by default (never destroyed: blocks held by
  /// static objects may outlive any other order of destruction; the driver frees at exit).
  static CachingAllocator& global() {
    static CachingAllocator* a = new CachingAllocator();
    return *a;
  }

 private:
  friend class DeviceBlock;
  void give_back(void* p, std::size_t b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[b].push_back(p);
    stats_.bytes_in_use -= b;
    stats_.bytes_cached += b;
  }
  void release_cached_locked() {
    for (auto& kv : free_) {
      for (void* p : kv.second) {
        HYPLORA_CUDA_CHECK(cudaFree(p));
        ++stats_.free_calls;
        stats_.bytes_cached -= kv.first;
      }
      kv.second.clear();
    }
  }
  void release_cached_nothrow() {
    for (auto& kv : free_)
      for (void* p : kv.second) (void)cudaFree(p);
    free_.clear();
  }

  mutable std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  Stats stats_;
};

inline void DeviceBlock::reset() {
  if (owner_ && ptr_) owner_->give_back(ptr_, bytes_);
  owner_ = nullptr;
  ptr_ = nullptr;
  bytes_ = 0;
}
inline DeviceBlock::~DeviceBlock() { reset(); }

}  // namespace hyplora::cuda
