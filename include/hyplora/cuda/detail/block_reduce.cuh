// hyplora/cuda/detail/block_reduce.cuh — block-wide sum/max and the launch shapes the kernels use.
//
// Row kernels run one block of kRowThreads threads per row (per token); each thread strides
// over the row, then block_sum/block_max combine the partials. The reduction order depends only
// on blockDim, so results are deterministic run to run.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "hyplora/cuda/half.hpp"

namespace hyplora::cuda::detail {

/// Threads per row block (a multiple of 32: block_sum needs whole warps).
inline constexpr int kRowThreads = 256;
/// Threads per block of the flat elementwise kernels.
inline constexpr int kFlatThreads = 256;

// acc_t<T> (the accumulation type: float for __half and __nv_bfloat16 storage, T otherwise) and
// to_acc / from_acc live in hyplora/cuda/half.hpp.

/// Blocks for n elements with kFlatThreads threads each, a grid-stride loop covering the rest.
inline unsigned flat_blocks(std::int64_t n) {
  const std::int64_t b = (n + kFlatThreads - 1) / kFlatThreads;
  return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}

/// −∞ in A (HUGE_VAL, not numeric_limits, so no relaxed-constexpr flag is needed).
template <class A>
__device__ __forceinline__ A neg_inf() {
  return static_cast<A>(-HUGE_VAL);
}

/// Sum of v over the block; every thread gets the result. All threads of the block must call
/// it (no early return before it); it may be called repeatedly in one kernel.
template <class A>
__device__ A block_sum(A v) {
  __shared__ A partial[32];
  __shared__ A total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();  // a previous call's readers of `total` are done
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = static_cast<int>((blockDim.x + 31) >> 5);
    v = lane < nw ? partial[lane] : A(0);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

/// Maximum of v over the block (same contract as block_sum); `lowest` is the identity.
template <class A>
__device__ A block_max(A v, A lowest) {
  __shared__ A partial[32];
  __shared__ A total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const A w = __shfl_down_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = static_cast<int>((blockDim.x + 31) >> 5);
    v = lane < nw ? partial[lane] : lowest;
    for (int o = 16; o > 0; o >>= 1) {
      const A w = __shfl_down_sync(0xffffffffu, v, o);
      v = w > v ? w : v;
    }
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

/// Column reductions (bias and layer-norm parameter gradients) run blocks of kColThreads threads:
/// kColWidth adjacent columns (one warp reads 32 adjacent addresses) × kColLanes row lanes, lane
/// l summing rows l, l + kColLanes, …; column_lane_sum then adds the lanes in a fixed tree, so
/// the result is deterministic. One thread per column walking all rows (the first version) left
/// C = 128 columns to 4 warps on one SM with a 2,048-long dependent chain each: ~0.1 ms per call,
/// and a full fine-tuning step of the transformer example makes 33 such calls.
inline constexpr int kColWidth = 32;
inline constexpr int kColLanes = 32;
inline constexpr int kColThreads = kColWidth * kColLanes;

/// Blocks for a column reduction over `cols` columns (a grid-stride loop covers the rest).
inline unsigned col_blocks(std::int64_t cols) {
  const std::int64_t b = (cols + kColWidth - 1) / kColWidth;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

/// Sum of v over the kColLanes row lanes of this thread's column; every thread gets its column's
/// total. Launch with kColThreads threads; all threads must call it (it may be called repeatedly).
template <class A>
__device__ A column_lane_sum(A v) {
  __shared__ A part[kColLanes][kColWidth + 1];  // +1: no bank conflicts between lanes
  const int tx = static_cast<int>(threadIdx.x) % kColWidth, ty = static_cast<int>(threadIdx.x) / kColWidth;
  __syncthreads();  // a previous call's readers of part are done
  part[ty][tx] = v;
  __syncthreads();
  for (int h = kColLanes / 2; h > 0; h >>= 1) {
    if (ty < h) part[ty][tx] += part[ty + h][tx];
    __syncthreads();
  }
  return part[0][tx];
}

/// Column sums of a row-major (rows, cols) array added into out (cols), deterministic.
/// Launch: col_blocks(cols) blocks of kColThreads threads.
template <class T>
__global__ void add_col_sums_kernel(const T* __restrict__ x, std::int64_t rows, std::int64_t cols, T* __restrict__ out) {
  const std::int64_t tx = threadIdx.x % kColWidth, ty = threadIdx.x / kColWidth;
  for (std::int64_t c0 = blockIdx.x * static_cast<std::int64_t>(kColWidth); c0 < cols;
       c0 += static_cast<std::int64_t>(gridDim.x) * kColWidth) {  // block-uniform: the syncs below are safe
    const std::int64_t c = c0 + tx;
    acc_t<T> s = acc_t<T>(0);
    if (c < cols)
      for (std::int64_t i = ty; i < rows; i += kColLanes) s += static_cast<acc_t<T>>(x[i * cols + c]);
    s = column_lane_sum(s);
    if (ty == 0 && c < cols) out[c] = static_cast<T>(static_cast<acc_t<T>>(out[c]) + s);
  }
}

}  // namespace hyplora::cuda::detail
