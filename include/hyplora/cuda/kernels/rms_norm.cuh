// hyplora/cuda/kernels/rms_norm.cuh — RMS normalisation forward and backward on the device.
// Reference: ad::rms_norm (autodiff/ops_norm.hpp), the same math and saved scalar:
//   x̂ = x·r,  r = 1/√(mean(x²) + eps),  y = x̂ ⊙ γ;
//   dx += r·(ĝ − x̂·mean(ĝ ⊙ x̂)),  ĝ = g ⊙ γ;   dγ += Σ_rows g ⊙ x̂.
// Saves r per row, (N, 1); x̂ is recomputed from x in the backward. The launch shapes and
// reductions are those of layer_norm.cuh (one kRowThreads block per row; dγ by the column
// reduction of block_reduce.cuh).
//   x, y, g, dx: (N, C)   gamma, dgamma: (1, C)   stats: (N, 1)
#pragma once

#include <cstdint>

#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

template <class T>
__global__ void rms_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ gamma, T* __restrict__ y,
                                        T* __restrict__ stats, std::int64_t C, acc_t<T> eps) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * C;
  A s = A(0);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const A v = static_cast<A>(xr[j]);
    s += v * v;
  }
  const A ms = block_sum(s) / static_cast<A>(C);
  const A r = A(1) / sqrt(ms + eps);
  if (threadIdx.x == 0) stats[i] = static_cast<T>(r);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x)
    y[i * C + j] = static_cast<T>(static_cast<A>(xr[j]) * r * static_cast<A>(gamma[j]));
}

// One block per row: dx_i.
template <class T>
__global__ void rms_norm_dx_kernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ stats,
                                   const T* __restrict__ g, T* __restrict__ dx, std::int64_t C) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const A r = static_cast<A>(stats[i]);
  A s2 = A(0);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const A gh = static_cast<A>(g[i * C + j]) * static_cast<A>(gamma[j]);
    const A xh = static_cast<A>(x[i * C + j]) * r;
    s2 += gh * xh;
  }
  const A m2 = block_sum(s2) / static_cast<A>(C);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const A gh = static_cast<A>(g[i * C + j]) * static_cast<A>(gamma[j]);
    const A xh = static_cast<A>(x[i * C + j]) * r;
    dx[i * C + j] = static_cast<T>(static_cast<A>(dx[i * C + j]) + r * (gh - xh * m2));
  }
}

// dγ_j += Σ_i g_ij x̂_ij: the column reduction of block_reduce.cuh (kColWidth columns ×
// kColLanes row lanes per block, fixed-order lane sums), as layer_norm_dparams_kernel.
template <class T>
__global__ void rms_norm_dgamma_kernel(const T* __restrict__ x, const T* __restrict__ stats, const T* __restrict__ g,
                                       T* __restrict__ dgamma, std::int64_t N, std::int64_t C) {
  using A = acc_t<T>;
  const std::int64_t tx = threadIdx.x % kColWidth, ty = threadIdx.x / kColWidth;
  for (std::int64_t j0 = blockIdx.x * static_cast<std::int64_t>(kColWidth); j0 < C;
       j0 += static_cast<std::int64_t>(gridDim.x) * kColWidth) {  // block-uniform loop
    const std::int64_t j = j0 + tx;
    A sg = A(0);
    if (j < C)
      for (std::int64_t i = ty; i < N; i += kColLanes)
        sg += static_cast<A>(g[i * C + j]) * (static_cast<A>(x[i * C + j]) * static_cast<A>(stats[i]));  // g ⊙ x̂
    sg = column_lane_sum(sg);
    if (ty == 0 && j < C) dgamma[j] = static_cast<T>(static_cast<A>(dgamma[j]) + sg);
  }
}

}  // namespace detail

/// y = rms_norm(x)·γ, saving r = 1/√(mean(x²) + eps) per row in stats (resized to (N, 1)).
/// The eps default is ad::rms_norm's.
template <class T>
void rms_norm_forward(const Context& ctx, DeviceView<const T> x, DeviceView<const T> gamma, DeviceView<T> y,
                      DeviceTensor<T>& stats, double eps = 1e-6) {
  const char* op = "cuda::rms_norm_forward";
  if (gamma.rows != 1 || gamma.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "gamma", gamma.rows, gamma.cols);
  if (y.rows != x.rows || y.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "y", y.rows, y.cols);
  if (!(eps >= 0.0)) throw value_error(std::string(op) + ": eps must be >= 0, got " + std::to_string(eps));
  stats.resize(x.rows, 1, *ctx.alloc);
  if (x.rows == 0 || x.cols == 0) return;
  HYPLORA_LAUNCH(static_cast<unsigned>(x.rows), detail::kRowThreads, 0, ctx.stream, detail::rms_norm_forward_kernel<T>)(
      x.data, gamma.data, y.data, stats.data(), x.cols, static_cast<detail::acc_t<T>>(eps));
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// Accumulates the gradients of rms_norm_forward; dx and dgamma may each be absent.
template <class T>
void rms_norm_backward(const Context& ctx, DeviceView<const T> x, DeviceView<const T> gamma,
                       const DeviceTensor<T>& stats, DeviceView<const T> g, DeviceView<T> dx, DeviceView<T> dgamma) {
  const char* op = "cuda::rms_norm_backward";
  if (gamma.rows != 1 || gamma.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "gamma", gamma.rows, gamma.cols);
  if (stats.rows() != x.rows || stats.cols() != 1) throw_shape(op, "x", x.rows, x.cols, "stats", stats.rows(), stats.cols());
  if (g.rows != x.rows || g.cols != x.cols) throw_shape(op, "x", x.rows, x.cols, "g", g.rows, g.cols);
  if (dx.present() && (dx.rows != x.rows || dx.cols != x.cols)) throw_shape(op, "x", x.rows, x.cols, "dx", dx.rows, dx.cols);
  if (dgamma.present() && (dgamma.rows != 1 || dgamma.cols != x.cols)) throw_shape(op, "x", x.rows, x.cols, "dgamma", dgamma.rows, dgamma.cols);
  if (x.rows == 0 || x.cols == 0) return;
  if (dx.present()) {
    HYPLORA_LAUNCH(static_cast<unsigned>(x.rows), detail::kRowThreads, 0, ctx.stream, detail::rms_norm_dx_kernel<T>)(
        x.data, gamma.data, stats.data(), g.data, dx.data, x.cols);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  if (dgamma.present()) {
    HYPLORA_LAUNCH(detail::col_blocks(x.cols), detail::kColThreads, 0, ctx.stream, detail::rms_norm_dgamma_kernel<T>)(
        x.data, stats.data(), g.data, dgamma.data, x.rows, x.cols);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace hyplora::cuda
