// Test support for tests/optim: a global operator new counter, so a test can assert that an
// optimizer step allocates nothing. Include from exactly one translation unit per executable.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace optim_test {
inline std::atomic<long> g_news{0};
}

// Replacements of the global allocation functions; the deletes are kept out of line so that
// g++ does not pair an inlined std::malloc / std::free with the other side
// (-Wmismatched-new-delete).
#if defined(__GNUC__)
__attribute__((noinline))
#endif
void* operator new(std::size_t n) {
  ++optim_test::g_news;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
#if defined(__GNUC__)
__attribute__((noinline))
#endif
void operator delete(void* p) noexcept {
  std::free(p);
}
#if defined(__GNUC__)
__attribute__((noinline))
#endif
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace optim_test {
/// True when the replacement above sees allocations. Calls ::operator new directly: a
/// new-expression or std::allocator pair may be elided by the compiler (clang does).
inline bool counter_works() {
  const long before = g_news.load();
  void* p = ::operator new(16);
  ::operator delete(p);
  return g_news.load() > before;
}
}  // namespace optim_test
