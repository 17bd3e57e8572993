// hyplora/cuda/kernels/gelu.cuh — GELU (tanh approximation) forward and backward on the device.
// The formula is ad::gelu's (autodiff/ops_elementwise.hpp, detail::GeluF's HYPLORA_HD pieces):
//   y = ½x(1 + th),  y′ = ½(1 + th) + ½x(1 − th²)·k0(1 + 3k1x²),  th = tanh(k0(x + k1x³)).
// x, y, g, dx: n elements (any shape, contiguous). Math in acc_t<T> (float for half).
#pragma once

#include <cstdint>

#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

template <class T>
__global__ void gelu_forward_kernel(const T* __restrict__ x, T* __restrict__ y, std::int64_t n) {
  using A = acc_t<T>;
  using ad::detail::GeluF;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const A v = static_cast<A>(x[e]);
    y[e] = static_cast<T>(GeluF::from_tanh<A>(v, tanh(GeluF::tanh_arg<A>(v))));
  }
}

// dx += g ⊙ gelu′(x), accumulating like the tape's backward.
template <class T>
__global__ void gelu_backward_kernel(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ dx,
                                     std::int64_t n) {
  using A = acc_t<T>;
  using ad::detail::GeluF;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const A v = static_cast<A>(x[e]);
    const A d = GeluF::grad_from_tanh<A>(v, tanh(GeluF::tanh_arg<A>(v)));
    dx[e] = static_cast<T>(static_cast<A>(dx[e]) + static_cast<A>(g[e]) * d);
  }
}

}  // namespace detail

/// y = gelu(x).  x, y: same element count n.
template <class T>
void gelu_forward(const Context& ctx, const T* x, T* y, std::int64_t n) {
  if (n <= 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::gelu_forward_kernel<T>)(x, y, n);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// dx += g ⊙ gelu′(x).  x, g, dx: n elements.
template <class T>
void gelu_backward(const Context& ctx, const T* x, const T* g, T* dx, std::int64_t n) {
  if (n <= 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::gelu_backward_kernel<T>)(
      x, g, dx, n);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
