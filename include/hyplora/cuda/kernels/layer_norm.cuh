// hyplora/cuda/kernels/layer_norm.cuh — layer normalisation forward and backward on the device.
// Reference: ad::layer_norm (autodiff/ops_norm.hpp), the same math and saved scalars:
//   x̂ = (x − μ)·r,  r = 1/√(var + eps) (biased var, two passes),  y = x̂ ⊙ γ + β;
//   dx += r·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)),  ĝ = g ⊙ γ;   dγ += Σ_rows g ⊙ x̂;   dβ += Σ_rows g.
// Saves (μ, r) per row, (N, 2); x̂ is recomputed from x in the backward.
//   x, y, g, dx: (N, C)   gamma, beta, dgamma, dbeta: (1, C)   stats: (N, 2)
#pragma once

#include <cstdint>

#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

template <class T>
__global__ void layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                          const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ stats,
                                          std::int64_t C, acc_t<T> eps) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * C;
  A s = A(0);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) s += static_cast<A>(xr[j]);
  const A mu = block_sum(s) / static_cast<A>(C);
  A v = A(0);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const A d = static_cast<A>(xr[j]) - mu;
    v += d * d;
  }
  const A var = block_sum(v) / static_cast<A>(C);
  const A r = A(1) / sqrt(var + eps);
  if (threadIdx.x == 0) {
    stats[2 * i] = static_cast<T>(mu);
    stats[2 * i + 1] = static_cast<T>(r);
  }
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x)
    y[i * C + j] = static_cast<T>((static_cast<A>(xr[j]) - mu) * r * static_cast<A>(gamma[j]) + static_cast<A>(beta[j]));
}

// One block per row: dx_i.
template <class T>
__global__ void layer_norm_dx_kernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ stats,
                                     const T* __restrict__ g, T* __restrict__ dx, std::int64_t C) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const A mu = static_cast<A>(stats[2 * i]), r = static_cast<A>(stats[2 * i + 1]);
  A s1 = A(0), s2 = A(0);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const A gh = static_cast<A>(g[i * C + j]) * static_cast<A>(gamma[j]);
    const A xh = (static_cast<A>(x[i * C + j]) - mu) * r;
    s1 += gh;
    s2 += gh * xh;
  }
  const A m1 = block_sum(s1) / static_cast<A>(C);
  const A m2 = block_sum(s2) / static_cast<A>(C);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const A gh = static_cast<A>(g[i * C + j]) * static_cast<A>(gamma[j]);
    const A xh = (static_cast<A>(x[i * C + j]) - mu) * r;
    dx[i * C + j] = static_cast<T>(static_cast<A>(dx[i * C + j]) + r * (gh - m1 - xh * m2));
  }
}

// dγ_j += Σ_i g_ij x̂_ij, dβ_j += Σ_i g_ij (either may be null): the column reduction of
// block_reduce.cuh (kColWidth columns × kColLanes row lanes per block, fixed-order lane sums).
template <class T>
__global__ void layer_norm_dparams_kernel(const T* __restrict__ x, const T* __restrict__ stats,
                                          const T* __restrict__ g, T* __restrict__ dgamma, T* __restrict__ dbeta,
                                          std::int64_t N, std::int64_t C) {
  using A = acc_t<T>;
  const std::int64_t tx = threadIdx.x % kColWidth, ty = threadIdx.x / kColWidth;
  for (std::int64_t j0 = blockIdx.x * static_cast<std::int64_t>(kColWidth); j0 < C;
       j0 += static_cast<std::int64_t>(gridDim.x) * kColWidth) {  // block-uniform loop
    const std::int64_t j = j0 + tx;
    A sg = A(0), sb = A(0);
    if (j < C)
      for (std::int64_t i = ty; i < N; i += kColLanes) {
        const A gi = static_cast<A>(g[i * C + j]);
        sg += gi * (static_cast<A>(x[i * C + j]) - static_cast<A>(stats[2 * i])) * static_cast<A>(stats[2 * i + 1]);
        sb += gi;
      }
    sg = column_lane_sum(sg);
    sb = column_lane_sum(sb);
    if (ty == 0 && j < C) {
      if (dgamma) dgamma[j] = static_cast<T>(static_cast<A>(dgamma[j]) + sg);
      if (dbeta) dbeta[j] = static_cast<T>(static_cast<A>(dbeta[j]) + sb);
    }
  }
}

}  // namespace detail

/// y = layer_norm(x)·γ + β, saving (μ, r) per row in stats (resized to (N, 2)).
template <class T>
void layer_norm_forward(const Context& ctx, DeviceView<const T> x, DeviceView<const T> gamma,
                        DeviceView<const T> beta, DeviceView<T> y, DeviceTensor<T>& stats, double eps = 1e-5) {
  const char* op = "cuda::layer_norm_forward";
  if (gamma.rows != 1 || gamma.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "gamma", gamma.rows, gamma.cols);
  if (beta.rows != 1 || beta.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "beta", beta.rows, beta.cols);
  if (y.rows != x.rows || y.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "y", y.rows, y.cols);
  if (!(eps >= 0.0)) throw value_error(std::string(op) + ": eps must be >= 0, got " + std::to_string(eps));
  stats.resize(x.rows, 2, *ctx.alloc);
  if (x.rows == 0 || x.cols == 0) return;
  HYPLORA_LAUNCH(static_cast<unsigned>(x.rows), detail::kRowThreads, 0, ctx.stream, detail::layer_norm_forward_kernel<T>)(
      x.data, gamma.data, beta.data, y.data, stats.data(), x.cols, static_cast<detail::acc_t<T>>(eps));
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// Accumulates the gradients of layer_norm_forward; dx, dgamma, dbeta may each be absent.
template <class T>
void layer_norm_backward(const Context& ctx, DeviceView<const T> x, DeviceView<const T> gamma,
                         const DeviceTensor<T>& stats, DeviceView<const T> g, DeviceView<T> dx, DeviceView<T> dgamma,
                         DeviceView<T> dbeta) {
  const char* op = "cuda::layer_norm_backward";
  if (g.rows != x.rows || g.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "g", g.rows, g.cols);
  if (dx.present() && (dx.rows != x.rows || dx.cols != x.cols)) throw_shape(op, "x", x.rows, x.cols, "dx", dx.rows, dx.cols);
  if (dgamma.present() && (dgamma.rows != 1 || dgamma.cols != x.cols)) throw_shape(op, "x", x.rows, x.cols, "dgamma", dgamma.rows, dgamma.cols);
  if (dbeta.present() && (dbeta.rows != 1 || dbeta.cols != x.cols)) throw_shape(op, "x", x.rows, x.cols, "dbeta", dbeta.rows, dbeta.cols);
  if (x.rows == 0 || x.cols == 0) return;
  if (dx.present()) {
    HYPLORA_LAUNCH(static_cast<unsigned>(x.rows), detail::kRowThreads, 0, ctx.stream, detail::layer_norm_dx_kernel<T>)(
        x.data, gamma.data, stats.data(), g.data, dx.data, x.cols);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  if (dgamma.present() || dbeta.present()) {
    HYPLORA_LAUNCH(detail::col_blocks(x.cols), detail::kColThreads, 0, ctx.stream, detail::layer_norm_dparams_kernel<T>)(
        x.data, stats.data(), g.data, dgamma.data, dbeta.data, x.rows, x.cols);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace hyplora::cuda
