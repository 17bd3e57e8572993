// hyplora/cuda/kernels/dropout.cuh — inverted dropout on the device, the same mask as ad::dropout
// (autodiff/ops_dropout.hpp):
//   y = x ⊙ mask/(1 − p),   backward: dx += g ⊙ mask/(1 − p),
//   mask_e = [dropout_bits(seed, e) ≥ ⌊p·2^53⌋],  e the row-major element index.
// The mask is recomputed from (seed, e) in both passes with the CPU's own HYPLORA_HD functions, so
// nothing is stored and the device keeps exactly the elements the CPU keeps. For float and double
// the survivors are x·(1/(1 − p)) rounded once, as on the CPU: the results are bit-identical.
//   x, y, g, dx: n elements (any shape, contiguous). Math in acc_t<T> (float for half).
// The CPU op returns x itself when the tape's grad mode is off (evaluation); a device caller simply
// does not call these then. With p = 0 the mask keeps everything and the scale is 1: y = x.
#pragma once

#include <cstdint>
#include <sstream>

#include "hyplora/autodiff/ops_dropout.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

// a·b rounded once and never contracted into an FMA with a following add, so dx + g·scale rounds
// like the CPU's separate multiply and add.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <class T>
__global__ void dropout_forward_kernel(const T* __restrict__ x, T* __restrict__ y, std::int64_t n, acc_t<T> scale,
                                       std::uint64_t seed, std::uint64_t threshold) {
  using A = acc_t<T>;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const bool keep = ad::detail::dropout_bits(seed, static_cast<std::uint64_t>(e)) >= threshold;
    y[e] = keep ? static_cast<T>(mul_rn(static_cast<A>(x[e]), scale)) : static_cast<T>(A(0));
  }
}

// dx += g ⊙ mask·scale, accumulating like the tape's backward (dropped elements left untouched).
template <class T>
__global__ void dropout_backward_kernel(const T* __restrict__ g, T* __restrict__ dx, std::int64_t n, acc_t<T> scale,
                                        std::uint64_t seed, std::uint64_t threshold) {
  using A = acc_t<T>;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    if (ad::detail::dropout_bits(seed, static_cast<std::uint64_t>(e)) >= threshold)
      dx[e] = static_cast<T>(static_cast<A>(dx[e]) + mul_rn(static_cast<A>(g[e]), scale));
  }
}

/// ad::dropout's argument check: value_error unless 0 <= p < 1 (NaN included).
template <class T>
void check_dropout_p(const char* op, T p) {
  if (!(p >= T(0) && p < T(1))) {
    std::ostringstream s;
    s << op << ": p must be in [0, 1), got " << static_cast<double>(p);
    throw value_error(s.str());
  }
}

}  // namespace detail

/// y = dropout(x) over n elements: x·1/(1 − p) where the (seed, element) mask keeps, else 0.
/// Throws value_error unless 0 <= p < 1.
template <class T>
void dropout_forward(const Context& ctx, const T* x, T* y, std::int64_t n, T p, std::uint64_t seed) {
  detail::check_dropout_p("cuda::dropout_forward", p);
  if (n <= 0) return;
  using A = detail::acc_t<T>;
  const A scale = A(1) / (A(1) - static_cast<A>(p));  // the CPU's T(1)/(T(1) − p)
  const std::uint64_t thr = ad::detail::dropout_threshold(static_cast<double>(p));
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::dropout_forward_kernel<T>)(
      x, y, n, scale,
                                                                                                      seed, thr);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// dx += g ⊙ mask/(1 − p) over n elements, the mask of dropout_forward with the same (p, seed).
template <class T>
void dropout_backward(const Context& ctx, const T* g, T* dx, std::int64_t n, T p, std::uint64_t seed) {
  detail::check_dropout_p("cuda::dropout_backward", p);
  if (n <= 0) return;
  using A = detail::acc_t<T>;
  const A scale = A(1) / (A(1) - static_cast<A>(p));
  const std::uint64_t thr = ad::detail::dropout_threshold(static_cast<double>(p));
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::dropout_backward_kernel<T>)(
      g, dx, n, scale,
                                                                                                       seed, thr);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// The same on views: x, y (N, C) of one shape (shape_error otherwise); the element index is
/// row-major, as on the CPU.
template <class T>
void dropout_forward(const Context& ctx, DeviceView<const T> x, DeviceView<T> y, T p, std::uint64_t seed) {
  if (x.rows != y.rows || x.cols != y.cols) throw_shape("cuda::dropout_forward", "x", x.rows, x.cols, "y", y.rows, y.cols);
  dropout_forward<T>(ctx, x.data, y.data, x.size(), p, seed);
}

/// dx += g ⊙ mask/(1 − p); g, dx (N, C) of one shape.
template <class T>
void dropout_backward(const Context& ctx, DeviceView<const T> g, DeviceView<T> dx, T p, std::uint64_t seed) {
  if (g.rows != dx.rows || g.cols != dx.cols) throw_shape("cuda::dropout_backward", "g", g.rows, g.cols, "dx", dx.rows, dx.cols);
  dropout_backward<T>(ctx, g.data, dx.data, g.size(), p, seed);
}

}  // namespace hyplora::cuda
