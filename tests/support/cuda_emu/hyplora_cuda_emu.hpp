// hyplora_cuda_emu.hpp — a host emulator of the CUDA subset hyplora uses, so the CUDA tests
// (tests/cuda/test_*.cu) also run where there is no GPU: each is compiled a second time by the
// host C++ compiler with this header forced in first (`-include`, as nvcc puts cuda_runtime.h
// first) and this directory ahead on the include path (its cuda_runtime.h, cuda_fp16.h,
// cuda_bf16.h, cublas_v2.h come here). tests/cuda_emu/CMakeLists.txt builds them.
//
// It runs the kernels' own code — indexing, shared memory, barriers, warp shuffles, the launch
// configuration, the per-row math shared with the CPU — against the tests' CPU references. It is
// no substitute for a GPU run: the memory model, timing, cuBLAS's own kernels, FMA contraction and
// the device math library are not modelled (emu_exec.hpp says what is).
#pragma once

#if defined(__CUDACC__)
#error "hyplora_cuda_emu.hpp is for host-compiler builds of the CUDA sources, not for nvcc"
#endif

#define HYPLORA_CUDA_EMULATION 1

// Device code calls the math functions unqualified, with float and double overloads and
// isfinite / isnan in the global namespace, as CUDA declares them; libstdc++'s <math.h> does too.
#include <math.h>

#include "emu_types.hpp"
#include "emu_exec.hpp"
#include "emu_runtime.hpp"
#include "emu_cublas.hpp"

// Execution-space keywords: every function is a host function here.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs at a time, so a function-local static is exactly one block's shared memory.
#define __shared__ static

#define threadIdx (::hyplora_emu::thread_idx())
#define blockIdx (::hyplora_emu::block_idx())
#define blockDim (::hyplora_emu::block_dim())
#define gridDim (::hyplora_emu::grid_dim())
#define warpSize 32

#define __syncthreads() ::hyplora_emu::syncthreads()
#define __shfl_down_sync(...) ::hyplora_emu::shfl_down_sync(__VA_ARGS__)
#define __shfl_xor_sync(...) ::hyplora_emu::shfl_xor_sync(__VA_ARGS__)
#define __shfl_sync(...) ::hyplora_emu::shfl_sync(__VA_ARGS__)

// kernel<<<grid, block, shared_bytes, stream>>>(args...), spelled as in include/hyplora/cuda/error.hpp.
#define HYPLORA_LAUNCH(grid, block, shared_bytes, stream, ...)                     \
  ::hyplora_emu::launch(grid, block, shared_bytes, stream, #__VA_ARGS__,           \
                        [](auto... hyplora_emu_args) { __VA_ARGS__(hyplora_emu_args...); })
