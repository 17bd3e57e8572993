// hyplora/cuda/kernels/clip_grad.cuh — global gradient-norm clipping over a flat device gradient
// arena. Reference: optim::clip_grad_norm (optim/clip_grad.hpp, docs/math.md Eq. (208)):
//   ‖g‖ = √(Σ g_i²) accumulated in double;  g ← g·T(max_norm/‖g‖) when ‖g‖ > max_norm (finite),
//   else untouched. No +1e-6 in the denominator (the CPU op's choice, unlike torch).
// Everything stays on the device (no host round trip in a training step): per-block partial sums
// in double (a fixed grid, so a fixed reduction order: deterministic), one block combining them
// into the norm and the scale, one scaling pass that reads the scale from device memory.
//   g: n device elements (the trainable parameters' gradients, packed)
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

/// Scratch and results of clip_grad_norm; reused across steps. After the call (and a sync),
/// norm holds the pre-clip ‖g‖ and scale the factor applied (1 when not clipped).
template <class T>
struct ClipGradSaved {
  DeviceTensor<double> partial;  // (blocks, 1)
  DeviceTensor<double> norm;     // (1, 1)
  DeviceTensor<T> scale;         // (1, 1)
};

namespace detail {

/// Blocks of the partial-sum pass: enough to fill a GPU, fixed for a given n.
inline unsigned clip_blocks(std::int64_t n) {
  const unsigned b = flat_blocks(n);
  return b < 1024u ? (b > 0u ? b : 1u) : 1024u;
}

template <class T>
__global__ void grad_sq_partial_kernel(const T* __restrict__ g, std::int64_t n, double* __restrict__ partial) {
  double s = 0.0;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const double x = static_cast<double>(g[i]);
    s += x * x;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <class T>
__global__ void clip_scale_kernel(const double* __restrict__ partial, unsigned blocks, double max_norm,
                                  double* __restrict__ norm, T* __restrict__ scale) {
  double s = 0.0;
  for (unsigned i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    const double nrm = sqrt(s);
    norm[0] = nrm;
    scale[0] = (isfinite(nrm) && nrm > max_norm) ? static_cast<T>(max_norm / nrm) : T(1);
  }
}

template <class T>
__global__ void scale_grads_kernel(T* __restrict__ g, std::int64_t n, const T* __restrict__ scale) {
  const T s = scale[0];
  if (s == T(1)) return;  // not clipped: untouched, as on the CPU
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    g[i] *= s;
}

}  // namespace detail

/// Clips g (n elements) to global norm max_norm in place (Eq. (208)); the pre-clip norm is left in
/// saved.norm on the device. max_norm = +inf does nothing (the CPU trainer skips the call);
/// value_error for max_norm < 0 or NaN.
template <class T>
void clip_grad_norm(const Context& ctx, T* g, std::int64_t n, double max_norm, ClipGradSaved<T>& saved) {
  if (!(max_norm >= 0.0))
    throw value_error("cuda::clip_grad_norm: max_norm must be >= 0, got " + std::to_string(max_norm));
  saved.norm.resize(1, 1, *ctx.alloc);
  saved.scale.resize(1, 1, *ctx.alloc);
  if (std::isinf(max_norm)) return;
  const unsigned blocks = detail::clip_blocks(n);
  saved.partial.resize(blocks, 1, *ctx.alloc);
  HYPLORA_LAUNCH(blocks, detail::kFlatThreads, 0, ctx.stream, detail::grad_sq_partial_kernel<T>)(
      g, n > 0 ? n : 0, saved.partial.data());
  HYPLORA_CUDA_CHECK_LAUNCH();
  HYPLORA_LAUNCH(1, detail::kRowThreads, 0, ctx.stream, detail::clip_scale_kernel<T>)(
      saved.partial.data(), blocks, max_norm,
                                                                          saved.norm.data(), saved.scale.data());
  HYPLORA_CUDA_CHECK_LAUNCH();
  if (n <= 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::scale_grads_kernel<T>)(
      g, n, saved.scale.data());
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
