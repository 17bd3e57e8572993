// emu_exec.hpp — the CUDA execution model on the CPU: a launch runs its blocks one after the
// other, and the threads of a block as fibers (one stack each) on the calling thread.
//
// A fiber runs until it reaches __syncthreads() or a warp shuffle, then the next fiber runs; a
// barrier opens when every live thread of its scope (the block, or the warp for a shuffle) has
// reached it. So shared memory written before a barrier is seen after it, and code that reads it
// without the barrier reads what the earlier-scheduled threads left there: odd blocks schedule
// their threads in reverse order, which turns most missing barriers into wrong results. A barrier
// that can never open (divergent __syncthreads, a shuffle some lanes skip) aborts with the kernel's
// name and block, as does a shuffle whose mask names a lane that has exited.
//
// What it does not model: concurrent blocks (shared memory is `static`, one block at a time),
// the GPU memory model and atomics, FMA contraction and the device math library's rounding (the
// host's libm is used), launch_bounds and register/shared-memory limits beyond 48 KB checks.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <type_traits>
#include <vector>

#include "emu_types.hpp"

namespace hyplora_emu {

namespace detail {

#if !(defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)))
#error "the CUDA host emulator switches fibers with x86-64 assembly (GCC or Clang)"
#endif
#if defined(__SANITIZE_ADDRESS__)
#error "the CUDA host emulator's fibers are not annotated for AddressSanitizer"
#endif

// Saves the callee-saved registers on the current stack, stores the stack pointer in *save, loads
// `load` and restores the same registers from there. MXCSR and the x87 control word are not
// switched: every fiber runs with the launching thread's floating-point environment, and kernel
// code never changes it. Weak: every translation unit that includes this header defines it.
extern "C" void hyplora_emu_switch(void** save, void* load);
asm(R"(
  .text
  .weak hyplora_emu_switch
  .type hyplora_emu_switch, @function
hyplora_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size hyplora_emu_switch, .-hyplora_emu_switch
)");

enum class FiberState { ready, block_barrier, warp_barrier, done };

struct Fiber {
  void* sp = nullptr;
  uint3 tid{};
  int warp = 0, lane = 0;
  unsigned shfl_gen = 0;  // shuffles this thread has made (selects the exchange buffer)
  FiberState state = FiberState::ready;
};

inline constexpr std::size_t kStackBytes = 256 * 1024;  // flash attention keeps tiles per thread
inline constexpr std::size_t kGuardBytes = 4096;
inline constexpr int kMaxThreads = 1024;
inline constexpr int kMaxWarps = kMaxThreads / 32;

struct Exec {
  // Stacks are mapped once (lazily committed) with a guard page below each.
  char* stacks = nullptr;
  std::vector<Fiber> fibers;
  int nthreads = 0;
  void* sched_sp = nullptr;
  Fiber* current = nullptr;
  dim3 grid, block;
  uint3 block_idx{};
  const char* kernel = "";
  void (*body)(const void*) = nullptr;
  const void* body_ctx = nullptr;
  // Barrier bookkeeping: live (not exited) threads and arrivals, for the block and per warp.
  int live = 0, block_arrived = 0;
  int warp_live[kMaxWarps] = {}, warp_size[kMaxWarps] = {}, warp_arrived[kMaxWarps] = {};
  // Warp shuffle exchange, double-buffered: shuffle g writes buffer g & 1, and no lane can write
  // that buffer again (shuffle g + 2) before every lane has passed shuffle g + 1, i.e. has read it.
  std::uint64_t shfl_slot[2][kMaxThreads] = {};
  std::exception_ptr error;
  unsigned long long launches = 0;
};

inline Exec& exec() {
  static Exec e;
  return e;
}

[[noreturn]] inline void fail(const char* what) {
  const Exec& e = exec();
  std::fprintf(stderr, "cuda_emu: %s in kernel %s, block (%u, %u, %u)\n", what, e.kernel, e.block_idx.x,
               e.block_idx.y, e.block_idx.z);
  std::fflush(stderr);
  std::abort();
}

inline void open_block_barrier(Exec& e) {
  for (int t = 0; t < e.nthreads; ++t)
    if (e.fibers[static_cast<std::size_t>(t)].state == FiberState::block_barrier)
      e.fibers[static_cast<std::size_t>(t)].state = FiberState::ready;
  e.block_arrived = 0;
}

inline void open_warp_barrier(Exec& e, int w) {
  const int end = w * 32 + e.warp_size[w];
  for (int t = w * 32; t < end; ++t)
    if (e.fibers[static_cast<std::size_t>(t)].state == FiberState::warp_barrier)
      e.fibers[static_cast<std::size_t>(t)].state = FiberState::ready;
  e.warp_arrived[w] = 0;
}

// The calling fiber arrives at its block's (warp == -1) or its warp's barrier. The last live
// thread to arrive opens it and goes on; the others wait for the scheduler to run them again.
inline void arrive(int warp) {
  Exec& e = exec();
  Fiber* self = e.current;
  if (warp < 0) {
    if (++e.block_arrived == e.live) {
      open_block_barrier(e);
      return;
    }
    self->state = FiberState::block_barrier;
  } else {
    if (++e.warp_arrived[warp] == e.warp_live[warp]) {
      open_warp_barrier(e, warp);
      return;
    }
    self->state = FiberState::warp_barrier;
  }
  hyplora_emu_switch(&self->sp, e.sched_sp);
}

inline void fiber_entry() {
  Exec& e = exec();
  try {
    e.body(e.body_ctx);
  } catch (...) {
    if (!e.error) e.error = std::current_exception();
  }
  Fiber* self = e.current;
  self->state = FiberState::done;
  // An exited thread counts as arrived at the block barrier (as on sm_70 and later); a warp
  // shuffle that still waits on it is reported by the shuffle's mask check or as a deadlock.
  --e.live;
  --e.warp_live[self->warp];
  if (e.block_arrived > 0 && e.block_arrived == e.live) open_block_barrier(e);
  if (e.warp_arrived[self->warp] > 0 && e.warp_arrived[self->warp] == e.warp_live[self->warp])
    open_warp_barrier(e, self->warp);
  hyplora_emu_switch(&self->sp, e.sched_sp);
  std::abort();  // a finished fiber is never resumed
}

inline void* stack_top(int i) {
  Exec& e = exec();
  if (!e.stacks) {
    const std::size_t bytes = (kStackBytes + kGuardBytes) * kMaxThreads;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "cuda_emu: cannot map fiber stacks\n");
      std::abort();
    }
    e.stacks = static_cast<char*>(p);
    for (int t = 0; t < kMaxThreads; ++t)
      (void)mprotect(e.stacks + static_cast<std::size_t>(t) * (kStackBytes + kGuardBytes), kGuardBytes, PROT_NONE);
  }
  return e.stacks + static_cast<std::size_t>(i + 1) * (kStackBytes + kGuardBytes);
}

// A new fiber's stack, laid out as hyplora_emu_switch leaves a suspended one: six zeroed
// registers, then fiber_entry as the return address (and a null one above it, so fiber_entry
// starts with the stack alignment of a called function). The tops are staggered by 17 cache lines
// per fiber: stacks a power of two apart would put every fiber's hot frames in the same cache sets.
inline void* fresh_stack(int i) {
  auto* top = reinterpret_cast<std::uint64_t*>(static_cast<char*>(stack_top(i)) -
                                               static_cast<std::size_t>(i) * 17 * 64 % (64 * 1024));
  top[-1] = 0;
  top[-2] = reinterpret_cast<std::uint64_t>(&fiber_entry);
  for (int r = 3; r <= 8; ++r) top[-r] = 0;
  return &top[-8];
}

inline void run_block(int nthreads, bool reverse) {
  Exec& e = exec();
  const int nwarps = (nthreads + 31) / 32;
  e.nthreads = nthreads;
  e.live = nthreads;
  e.block_arrived = 0;
  for (int w = 0; w < nwarps; ++w) {
    e.warp_size[w] = e.warp_live[w] = nthreads - w * 32 < 32 ? nthreads - w * 32 : 32;
    e.warp_arrived[w] = 0;
  }
  for (int t = 0; t < nthreads; ++t) {
    Fiber& f = e.fibers[static_cast<std::size_t>(t)];
    f.sp = fresh_stack(t);
    f.tid = uint3{static_cast<unsigned>(t) % e.block.x, (static_cast<unsigned>(t) / e.block.x) % e.block.y,
                  static_cast<unsigned>(t) / (e.block.x * e.block.y)};
    f.warp = t / 32;
    f.lane = t % 32;
    f.shfl_gen = 0;
    f.state = FiberState::ready;
  }
  for (;;) {
    bool ran = false;
    for (int k = 0; k < nthreads; ++k) {
      Fiber& f = e.fibers[static_cast<std::size_t>(reverse ? nthreads - 1 - k : k)];
      if (k + 2 < nthreads) {  // the saved registers and frames two fibers ahead (cache misses)
        const char* sp = static_cast<const char*>(e.fibers[static_cast<std::size_t>(reverse ? nthreads - 3 - k : k + 2)].sp);
        for (int l = 0; l < 4; ++l) __builtin_prefetch(sp + 64 * l);
      }
      if (f.state != FiberState::ready) continue;
      ran = true;
      e.current = &f;
      hyplora_emu_switch(&e.sched_sp, f.sp);
    }
    e.current = nullptr;
    if (e.live == 0) return;
    if (!ran) fail("deadlock: a barrier no live thread can open (divergent __syncthreads or warp shuffle)");
  }
}

template <class Body>
void call_body(const void* ctx) {
  (*static_cast<const Body*>(ctx))();
}

}  // namespace detail

inline void syncthreads() {
  if (!detail::exec().current) detail::fail("__syncthreads outside a kernel");
  detail::arrive(-1);
}

namespace detail {
// __shfl_down_sync / __shfl_xor_sync / __shfl_sync: every lane of `mask` must be live and reach
// the call (a lane that has exited is reported).
template <class T, class SrcLane>
T shuffle(unsigned mask, T v, int width, SrcLane src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "cuda_emu: shuffle of a type wider than 8 bytes");
  Exec& e = exec();
  Fiber* self = e.current;
  if (!self) fail("warp shuffle outside a kernel");
  if (width != 32) fail("warp shuffle with width != 32 (not emulated)");
  const int base = self->warp * 32;
  // Fast path: a full mask over a whole warp with every lane live.
  if (!(mask == 0xffffffffu && e.warp_size[self->warp] == 32 && e.warp_live[self->warp] == 32)) {
    for (int l = 0; l < 32; ++l) {
      if (!(mask >> l & 1u)) continue;
      if (l >= e.warp_size[self->warp] || e.fibers[static_cast<std::size_t>(base + l)].state == FiberState::done)
        fail("warp shuffle: the mask names a lane that has exited or does not exist");
    }
    if (!(mask >> self->lane & 1u)) fail("warp shuffle: the calling lane is not in the mask");
  }
  std::uint64_t* slot = e.shfl_slot[self->shfl_gen++ & 1u] + base;
  std::memcpy(&slot[self->lane], &v, sizeof(T));
  arrive(self->warp);
  const int from = src(self->lane);
  T out = v;
  if (from >= 0 && from < 32 && (mask >> from & 1u)) std::memcpy(&out, &slot[from], sizeof(T));
  return out;
}
}  // namespace detail

template <class T>
T shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return detail::shuffle(mask, v, width, [delta](int lane) { return lane + static_cast<int>(delta); });
}
template <class T>
T shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return detail::shuffle(mask, v, width, [lane_mask](int lane) { return lane ^ lane_mask; });
}
template <class T>
T shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return detail::shuffle(mask, v, width, [src_lane](int) { return src_lane; });
}

inline const uint3& thread_idx() {
  detail::Exec& e = detail::exec();
  if (!e.current) detail::fail("threadIdx read outside a kernel");
  return e.current->tid;
}
inline const uint3& block_idx() { return detail::exec().block_idx; }
inline const dim3& block_dim() { return detail::exec().block; }
inline const dim3& grid_dim() { return detail::exec().grid; }

inline void set_last_error(cudaError_t e);
inline bool is_device_pointer(const void* p);
inline bool is_stream(cudaStream_t s);

/// One launch: checks the configuration like the runtime (an invalid one sets the last error and
/// runs nothing), checks that every raw pointer argument points into device memory, then runs the
/// grid. Kernel arguments are copied into each thread, as the hardware passes them.
template <class Kernel>
struct Launch {
  dim3 grid, block;
  std::size_t shared_bytes;
  cudaStream_t stream;
  const char* name;
  Kernel kernel;

  template <class... Args>
  void operator()(Args... args) const {
    const unsigned long long nthreads = 1ull * block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nthreads == 0 || nthreads > detail::kMaxThreads ||
        block.z > 64 || grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u || shared_bytes > 48 * 1024) {
      set_last_error(cudaErrorInvalidConfiguration);
      return;
    }
    if (!is_stream(stream)) {
      set_last_error(cudaErrorInvalidResourceHandle);
      return;
    }
    bool host_pointer = false;
    (
        [&](const auto& a) {
          using A = std::decay_t<decltype(a)>;
          if constexpr (std::is_pointer_v<A>)
            if (a != nullptr && !is_device_pointer(a)) host_pointer = true;
        }(args),
        ...);
    if (host_pointer) {
      std::fprintf(stderr, "cuda_emu: kernel %s was passed a pointer that is not device memory\n", name);
      set_last_error(cudaErrorIllegalAddress);
      return;
    }
    detail::Exec& e = detail::exec();
    const Kernel k = kernel;
    auto body = [&]() { k(args...); };
    e.grid = grid;
    e.block = block;
    e.kernel = name;
    e.body = &detail::call_body<decltype(body)>;
    e.body_ctx = &body;
    e.fibers.resize(static_cast<std::size_t>(nthreads));
    ++e.launches;
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          e.block_idx = uint3{x, y, z};
          detail::run_block(static_cast<int>(nthreads), ((x ^ y ^ z) & 1u) != 0);
          if (e.error) {
            const std::exception_ptr err = e.error;
            e.error = nullptr;
            std::rethrow_exception(err);
          }
        }
    e.kernel = "";
  }
};

template <class Kernel>
Launch<Kernel> launch(dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream, const char* name,
                      Kernel kernel) {
  return Launch<Kernel>{grid, block, shared_bytes, stream, name, kernel};
}

/// Kernel launches so far (tests of the emulator).
inline unsigned long long launch_count() { return detail::exec().launches; }

}  // namespace hyplora_emu
