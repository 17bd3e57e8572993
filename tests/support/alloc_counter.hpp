// tests/support/alloc_counter.hpp — counts heap allocations, for tests and benchmarks that assert
// "no allocation per step" or report peak bytes. Include from EXACTLY ONE translation unit per
// executable: it defines the replaceable global allocation functions.
//
// Every C++ allocation (operator new) is counted. Eigen allocates with std::malloc, so on glibc
// malloc/calloc/realloc/free are interposed too and live/peak bytes are exact
// (malloc_usable_size). Under a sanitizer the malloc interposition is left out (the sanitizer
// owns malloc); operator new is still counted, so "zero allocations" tests stay meaningful but
// see only C++ allocations there.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HYPLORA_ALLOC_COUNTER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define HYPLORA_ALLOC_COUNTER_SANITIZED 1
#endif
#endif
#if defined(__GLIBC__) && !defined(HYPLORA_ALLOC_COUNTER_SANITIZED)
#define HYPLORA_ALLOC_COUNTER_MALLOC 1
#include <malloc.h>
#endif

namespace hyplora::testing {
namespace alloc_detail {
inline std::atomic<long long> g_count{0};
inline std::atomic<long long> g_live{0};
inline std::atomic<long long> g_peak{0};
inline void note(long long bytes) {
  const long long now = g_live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  long long peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  g_count.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace alloc_detail

/// Allocations so far (operator new, plus malloc/calloc/realloc where interposed).
inline long long allocations() { return alloc_detail::g_count.load(); }
/// Bytes currently allocated, and the high-water mark since the last reset_peak().
inline long long live_bytes() { return alloc_detail::g_live.load(); }
inline long long peak_bytes() { return alloc_detail::g_peak.load(); }
inline void reset_peak() { alloc_detail::g_peak = alloc_detail::g_live.load(); }
/// True when the counter sees allocations (calls ::operator new directly: a new-expression
/// may be elided by the compiler).
inline bool counter_works() {
  const long long before = allocations();
  void* p = ::operator new(16);
  ::operator delete(p);
  return allocations() > before;
}
}  // namespace hyplora::testing

#if defined(HYPLORA_ALLOC_COUNTER_MALLOC)
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* malloc(std::size_t n) {
  void* p = __libc_malloc(n);
  if (p) hyplora::testing::alloc_detail::note(static_cast<long long>(malloc_usable_size(p)));
  return p;
}
void* calloc(std::size_t n, std::size_t s) {
  void* p = __libc_calloc(n, s);
  if (p) hyplora::testing::alloc_detail::note(static_cast<long long>(malloc_usable_size(p)));
  return p;
}
void* realloc(void* q, std::size_t n) {
  const long long old = q ? static_cast<long long>(malloc_usable_size(q)) : 0;
  void* p = __libc_realloc(q, n);
  if (p) {
    hyplora::testing::alloc_detail::g_live.fetch_sub(old, std::memory_order_relaxed);
    hyplora::testing::alloc_detail::note(static_cast<long long>(malloc_usable_size(p)));
  }
  return p;
}
void free(void* p) {
  if (p) hyplora::testing::alloc_detail::g_live.fetch_sub(static_cast<long long>(malloc_usable_size(p)),
                                                          std::memory_order_relaxed);
  __libc_free(p);
}
}
#endif

namespace hyplora::testing::alloc_detail {
#if defined(__GNUC__)
__attribute__((noinline))
#endif
inline void* counted_new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p) throw std::bad_alloc();
#if !defined(HYPLORA_ALLOC_COUNTER_MALLOC)
  note(static_cast<long long>(n));  // with the malloc hook, malloc above already counted it
#endif
  return p;
}
}  // namespace hyplora::testing::alloc_detail

// Out of line (noinline) so g++ does not pair an inlined malloc/free with the other side
// (-Wmismatched-new-delete).
#if defined(__GNUC__)
#define HYPLORA_ALLOC_NOINLINE __attribute__((noinline))
#else
#define HYPLORA_ALLOC_NOINLINE
#endif
HYPLORA_ALLOC_NOINLINE void* operator new(std::size_t n) { return hyplora::testing::alloc_detail::counted_new(n); }
HYPLORA_ALLOC_NOINLINE void* operator new[](std::size_t n) { return hyplora::testing::alloc_detail::counted_new(n); }
HYPLORA_ALLOC_NOINLINE void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return hyplora::testing::alloc_detail::counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
HYPLORA_ALLOC_NOINLINE void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return hyplora::testing::alloc_detail::counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
HYPLORA_ALLOC_NOINLINE void operator delete(void* p) noexcept { std::free(p); }
HYPLORA_ALLOC_NOINLINE void operator delete[](void* p) noexcept { std::free(p); }
HYPLORA_ALLOC_NOINLINE void operator delete(void* p, std::size_t) noexcept { std::free(p); }
HYPLORA_ALLOC_NOINLINE void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
