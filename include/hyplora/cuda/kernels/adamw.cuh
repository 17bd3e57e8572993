// hyplora/cuda/kernels/adamw.cuh — one AdamW (or Adam-L2, AMSGrad) step over a flat device arena.
// Reference: optim::detail::adam_update (optim/adamw.hpp, Eq. (203)–(207)). The per-step scalars
// come from the same optim::detail::adam_coefs on the host (in double), then each element does
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

template <class T>
struct AdamStepScalars {
  T b1, b2, one_b1, one_b2, eps, wd, decay, step, ibc2;
  bool decoupled, l2;
};

template <class T>
__global__ void adamw_kernel(T* __restrict__ x, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                             T* __restrict__ vmax, std::int64_t n, AdamStepScalars<T> k) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    T gi = g[i];
    T xi = x[i];
    if (k.l2) gi += k.wd * xi;
    if (k.decoupled) xi *= k.decay;
    const T mi = k.b1 * m[i] + k.one_b1 * gi;
    T vi = k.b2 * v[i] + k.one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
      if (vi > vmax[i]) vmax[i] = vi;
      vi = vmax[i];
    }
    x[i] = xi - k.step * mi / (sqrt(vi) * k.ibc2 + k.eps);
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
  const optim::detail::AdamCoefs c = optim::detail::adam_coefs(cfg, t);
  detail::AdamStepScalars<T> k;
  k.b1 = T(cfg.beta1);
  k.b2 = T(cfg.beta2);
  k.one_b1 = T(1.0 - cfg.beta1);
  k.one_b2 = T(1.0 - cfg.beta2);
  k.eps = T(cfg.eps);
  k.wd = T(cfg.weight_decay);
  k.decay = T(1.0 - cfg.lr * cfg.weight_decay);
  k.step = T(c.step_size);
  k.ibc2 = T(c.inv_sqrt_bc2);
  k.decoupled = cfg.weight_decay != 0.0 && cfg.decoupled_weight_decay;
  k.l2 = cfg.weight_decay != 0.0 && !cfg.decoupled_weight_decay;
  detail::adamw_kernel<T><<<detail::flat_blocks(n), detail::kFlatThreads, 0, ctx.stream>>>(
      x, g, m, v, cfg.amsgrad ? vmax : nullptr, n, k);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
