// hyplora/cuda/kernels/adamw.cuh — one AdamW (or Adam-L2, AMSGrad) step over a flat device arena.
// The element update is optim::detail::AdamStep's (optim/adamw.hpp, Eq. (203)–(207)), the CPU
// optimizer's; its per-step scalars are made on the host (in double), then each element does
//   g ← g + λx (L2 only);  x ← x(1 − lr·λ) (decoupled only);  m ← β1m + (1−β1)g;
//   v ← β2v + (1−β2)g²;  v̂ = max(v̂, v) (AMSGrad);  x ← x − step·m / (√v̂·(1/√bc2) + eps).
// Because parameters and gradients are one arena (autodiff/parameters.hpp) one launch updates all.
#pragma once

#include <cstdint>

#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/error.hpp"
#include "hyplora/optim/adamw.hpp"

namespace hyplora::cuda {

namespace detail {

// One thread per element; the update is optim::detail::AdamStep's (the CPU optimizer's).
template <class T>
__global__ void adamw_kernel(T* __restrict__ x, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                             T* __restrict__ vmax, std::int64_t n, optim::detail::AdamStep<T> k) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    T gi = g[i];
    T xi = x[i];
    if (k.l2) gi = k.l2_grad(gi, xi);
    if (k.decoupled) xi *= k.decay;
    const T mi = k.first_moment(m[i], gi);
    T vi = k.second_moment(v[i], gi);
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
      if (vi > vmax[i]) vmax[i] = vi;
      vi = vmax[i];
    }
    x[i] = k.updated(xi, mi, vi);
  }
}

}  // namespace detail

/// One Adam(W) update of n elements at step t >= 1 (t counts from 1, as the CPU optimizer's
/// per-slot step counts do). vmax is used (and required) only with cfg.amsgrad.
///   x, g, m, v, vmax: n device elements.
template <class T>
void adamw_step(const Context& ctx, T* x, const T* g, T* m, T* v, T* vmax, std::int64_t n,
                const optim::AdamConfig& cfg, std::int64_t t) {
  optim::check_config(cfg, "cuda::adamw_step");
  if (t < 1) throw value_error("cuda::adamw_step: step t must be >= 1, got " + std::to_string(t));
  if (cfg.amsgrad && vmax == nullptr && n > 0) throw value_error("cuda::adamw_step: amsgrad needs a vmax buffer");
  if (n <= 0) return;
  const auto k = optim::detail::AdamStep<T>::make(cfg, t);
  HYPLORA_LAUNCH(detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream, detail::adamw_kernel<T>)(
      x, g, m, v, cfg.amsgrad ? vmax : nullptr, n, k);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
