// hyplora/cuda/kernels/residual.cuh — the residual connection x ← x + f(x) on the device.
// Reference: ad::add (autodiff/ops_elementwise.hpp) of two same-shaped tensors:
//   out = a + b;   backward: da += g, db += g  (accumulate_grad, once per operand that needs it).
// A transformer step that accumulates gradients in place needs the backward only where a
// gradient enters a buffer that does not already hold the residual stream's gradient.
//   a, b, out, g, d: n elements (any shape, contiguous); out may alias a or b.
#pragma once

#include <cstdint>

#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

template <class T>
__global__ void residual_add_kernel(const T* a, const T* b, T* out, std::int64_t n) {  // no __restrict__: out may alias
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[e] = a[e] + b[e];
}

template <class T>
__global__ void accumulate_grad_kernel(const T* __restrict__ g, T* __restrict__ d, std::int64_t n) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    d[e] += g[e];
}

}  // namespace detail

/// out = a + b over n elements (out may alias a or b).
template <class T>
void residual_add(const Context& ctx, const T* a, const T* b, T* out, std::int64_t n) {
  if (n <= 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::residual_add_kernel<T>)(
      a, b, out, n);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// d += g over n elements: the backward of residual_add for one operand.
template <class T>
void accumulate_grad(const Context& ctx, const T* g, T* d, std::int64_t n) {
  if (n <= 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::accumulate_grad_kernel<T>)(
      g, d, n);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
