// emu_runtime.hpp — the CUDA runtime API subset hyplora calls, on the host.
//
// Device memory is host memory that the emulator keeps a registry of, so it can refuse what the
// hardware would fault on or reject: a copy whose device side is not inside one allocation, a
// kernel or cuBLAS call handed a host pointer, a free of an unknown pointer. New allocations are
// filled with 0xFF bytes (NaN as float or double, −1 as an integer), so reading memory that was
// never written shows up in results instead of passing as zeros. Every call is synchronous;
// streams and events exist so that their handles can be checked.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <type_traits>

#include "emu_exec.hpp"
#include "emu_types.hpp"

namespace hyplora_emu {

namespace detail {

struct Runtime {
  std::mutex mu;
  std::map<std::uintptr_t, std::size_t> allocs;  // base → bytes
  std::set<cudaStream_t> streams;
  std::set<cudaEvent_t> events;
  cudaError_t last = cudaSuccess;
  unsigned long long mallocs = 0;
};

inline Runtime& runtime() {
  static Runtime r;
  return r;
}

// The allocation holding [p, p + bytes), or allocs.end().
inline std::map<std::uintptr_t, std::size_t>::const_iterator find_alloc(const void* p, std::size_t bytes) {
  const auto& a = runtime().allocs;
  const auto u = reinterpret_cast<std::uintptr_t>(p);
  auto it = a.upper_bound(u);
  if (it == a.begin()) return a.end();
  --it;
  if (u + bytes > it->first + it->second) return a.end();
  return it;
}

inline cudaError_t fail_call(const char* call, const char* why, cudaError_t code) {
  std::fprintf(stderr, "cuda_emu: %s: %s\n", call, why);
  return runtime().last = code;
}

}  // namespace detail

inline void set_last_error(cudaError_t e) { detail::runtime().last = e; }

/// True when p points into (or one past the end of) a live device allocation.
inline bool is_device_pointer(const void* p) {
  std::lock_guard<std::mutex> lock(detail::runtime().mu);
  return detail::find_alloc(p, 0) != detail::runtime().allocs.end();
}

/// True when p..p+bytes lies inside one live device allocation.
inline bool is_device_range(const void* p, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(detail::runtime().mu);
  return detail::find_alloc(p, bytes) != detail::runtime().allocs.end();
}

inline bool is_stream(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(detail::runtime().mu);
  return s == nullptr || detail::runtime().streams.count(s) > 0;
}

/// cudaMalloc calls so far (for tests of allocation behaviour).
inline unsigned long long malloc_count() { return detail::runtime().mallocs; }

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace hyplora_emu

inline cudaError_t cudaGetLastError() {
  auto& r = hyplora_emu::detail::runtime();
  const cudaError_t e = r.last;
  r.last = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return hyplora_emu::detail::runtime().last; }

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
  }
  return "unknown error";
}

inline cudaError_t cudaGetDeviceCount(int* n) {
  if (!n) return cudaErrorInvalidValue;
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  if (!d) return cudaErrorInvalidValue;
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (!p || d != 0) return cudaErrorInvalidValue;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "hyplora CUDA host emulator");
  p->totalGlobalMem = std::size_t(1) << 34;
  p->sharedMemPerBlock = 48 * 1024;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 1;
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  if (!p) return cudaErrorInvalidValue;
  auto& r = hyplora_emu::detail::runtime();
  if (bytes == 0) {
    *p = nullptr;
    return cudaSuccess;
  }
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!m) return r.last = cudaErrorMemoryAllocation;
  std::memset(m, 0xFF, bytes);
  std::lock_guard<std::mutex> lock(r.mu);
  r.allocs[reinterpret_cast<std::uintptr_t>(m)] = bytes;
  ++r.mallocs;
  *p = m;
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** p, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}

inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto& r = hyplora_emu::detail::runtime();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    const auto it = r.allocs.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == r.allocs.end())
      return hyplora_emu::detail::fail_call("cudaFree", "not the start of a live allocation",
                                            cudaErrorInvalidDevicePointer);
    r.allocs.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}

inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  using hyplora_emu::is_device_pointer;
  using hyplora_emu::is_device_range;
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return hyplora_emu::detail::fail_call("cudaMemcpy", "null pointer", cudaErrorInvalidValue);
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyDefault) {
    if (dst_dev ? !is_device_range(dst, bytes) : is_device_pointer(dst))
      return hyplora_emu::detail::fail_call(
          "cudaMemcpy", dst_dev ? "destination range is not inside one device allocation" : "destination is device memory",
          cudaErrorInvalidValue);
    if (src_dev ? !is_device_range(src, bytes) : is_device_pointer(src))
      return hyplora_emu::detail::fail_call(
          "cudaMemcpy", src_dev ? "source range is not inside one device allocation" : "source is device memory",
          cudaErrorInvalidValue);
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t s = nullptr) {
  if (!hyplora_emu::is_stream(s)) return cudaErrorInvalidResourceHandle;
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* p, int value, std::size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!hyplora_emu::is_device_range(p, bytes))
    return hyplora_emu::detail::fail_call("cudaMemset", "range is not inside one device allocation",
                                          cudaErrorInvalidValue);
  std::memset(p, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s = nullptr) {
  if (!hyplora_emu::is_stream(s)) return cudaErrorInvalidResourceHandle;
  return cudaMemset(p, value, bytes);
}

namespace hyplora_emu::detail {
// Stream and event handles: heap objects the runtime keeps a set of, so a stale or foreign handle
// is refused.
template <class H, class... Init>
cudaError_t create_handle(std::set<H>& live, H* h, Init... init) {
  if (!h) return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(runtime().mu);
  *h = new std::remove_pointer_t<H>{init...};
  live.insert(*h);
  return cudaSuccess;
}
template <class H>
cudaError_t destroy_handle(std::set<H>& live, H h) {
  std::lock_guard<std::mutex> lock(runtime().mu);
  if (!live.erase(h)) return cudaErrorInvalidResourceHandle;
  delete h;
  return cudaSuccess;
}
}  // namespace hyplora_emu::detail

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned /*flags*/) {
  auto& r = hyplora_emu::detail::runtime();
  return hyplora_emu::detail::create_handle(r.streams, s, static_cast<int>(r.streams.size()) + 1);
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  return hyplora_emu::detail::destroy_handle(hyplora_emu::detail::runtime().streams, s);
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return hyplora_emu::is_stream(s) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  return hyplora_emu::detail::create_handle(hyplora_emu::detail::runtime().events, e, 0.0);
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  return hyplora_emu::detail::destroy_handle(hyplora_emu::detail::runtime().events, e);
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr) {
  if (!hyplora_emu::is_stream(s)) return cudaErrorInvalidResourceHandle;
  e->ms = hyplora_emu::now_ms();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!ms || !a || !b) return cudaErrorInvalidValue;
  *ms = static_cast<float>(b->ms - a->ms);
  return cudaSuccess;
}
