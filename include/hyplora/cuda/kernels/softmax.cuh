// hyplora/cuda/kernels/softmax.cuh — row softmax and the fused mean cross-entropy on the device.
// Reference: ad::softmax and ad::cross_entropy (autodiff/ops_softmax.hpp): both subtract the row
// maximum before exp (log-sum-exp), and cross-entropy saves one lse per row, no activation.
//   softmax        y_i = exp(x_i − m) / Σ exp(x − m)
//   cross-entropy  loss = (1/n) Σ_{counted i} (lse_i − x_{i,t_i}),
//                  dx_i += g/n · (exp(x_i − lse_i) − onehot(t_i)),
// rows with target −1 are ignored (the CPU op maps ignore_index to −1 the same way); with no
// counted row the loss and its gradient are 0.
#pragma once

#include <cstdint>

#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

// The log-sum-exp parts of a row every thread of the block calls together: m = max_j x_j and
// s = Σ_j exp(x_j − m) over j < len, in acc_t<T>. Shared by the softmax, cross-entropy and causal
// attention kernels (one formula). Ends in a block reduction, which syncs: every read of the row
// is done when it returns, so a caller may then overwrite the row in place.
template <class T, class A = acc_t<T>>
__device__ void row_max_sumexp(const T* __restrict__ row, std::int64_t len, A& m, A& s) {
  m = neg_inf<A>();
  for (std::int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    const A v = static_cast<A>(row[j]);
    m = v > m ? v : m;
  }
  m = block_max(m, neg_inf<A>());
  s = A(0);
  for (std::int64_t j = threadIdx.x; j < len; j += blockDim.x) s += exp(static_cast<A>(row[j]) - m);
  s = block_sum(s);
}

// One block per row.  x, y: (N, C).
template <class T>
__global__ void softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, std::int64_t C) {
  using A = acc_t<T>;
  const T* xr = x + blockIdx.x * C;
  T* yr = y + blockIdx.x * C;
  A m, s;
  row_max_sumexp<T>(xr, C, m, s);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) yr[j] = static_cast<T>(exp(static_cast<A>(xr[j]) - m) / s);
}

// One block per row: lse_i and the row's loss term (0 when ignored).  x: (N, V); lse, row_loss: (N).
template <class T>
__global__ void ce_rows_kernel(const T* __restrict__ x, const std::int64_t* __restrict__ targets, std::int64_t V,
                               T* __restrict__ lse, T* __restrict__ row_loss) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * V;
  A m, s;
  row_max_sumexp<T>(xr, V, m, s);
  if (threadIdx.x == 0) {
    const std::int64_t t = targets[i];
    const A l = m + log(s);
    lse[i] = static_cast<T>(t >= 0 ? l : A(0));
    row_loss[i] = static_cast<T>(t >= 0 ? l - static_cast<A>(xr[t]) : A(0));
  }
}

// One block: loss = Σ row_loss / count, count = #(targets >= 0) (stored as T for the backward).
template <class T>
__global__ void ce_total_kernel(const T* __restrict__ row_loss, const std::int64_t* __restrict__ targets,
                                std::int64_t N, T* __restrict__ loss, T* __restrict__ count) {
  using A = acc_t<T>;
  A s = A(0), c = A(0);
  for (std::int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    s += static_cast<A>(row_loss[i]);
    c += targets[i] >= 0 ? A(1) : A(0);
  }
  s = block_sum(s);
  c = block_sum(c);
  if (threadIdx.x == 0) {
    loss[0] = static_cast<T>(c > A(0) ? s / c : A(0));
    count[0] = static_cast<T>(c);
  }
}

// One block per row: dx_i += (g/n)(exp(x_i − lse_i) − onehot(t_i)).
template <class T>
__global__ void ce_backward_kernel(const T* __restrict__ x, const std::int64_t* __restrict__ targets,
                                   const T* __restrict__ lse, const T* __restrict__ g, const T* __restrict__ count,
                                   std::int64_t V, T* __restrict__ dx) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const std::int64_t t = targets[i];
  const A n = static_cast<A>(count[0]);
  if (t < 0 || !(n > A(0))) return;  // uniform over the block: no reduction follows
  const A coef = static_cast<A>(g[0]) / n, l = static_cast<A>(lse[i]);
  for (std::int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    A d = coef * exp(static_cast<A>(x[i * V + j]) - l);
    if (j == t) d -= coef;
    dx[i * V + j] = static_cast<T>(static_cast<A>(dx[i * V + j]) + d);
  }
}

}  // namespace detail

/// Row-wise softmax.  x, y: (N, C).
template <class T>
void softmax_rows(const Context& ctx, DeviceView<const T> x, DeviceView<T> y) {
  if (x.rows != y.rows || x.cols != y.cols) throw_shape("cuda::softmax_rows", "x", x.rows, x.cols, "y", y.rows, y.cols);
  if (x.rows == 0 || x.cols == 0) return;
  HYPLORA_LAUNCH(static_cast<unsigned>(x.rows), detail::kRowThreads, 0, ctx.stream, detail::softmax_rows_kernel<T>)(
      x.data, y.data, x.cols);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// What the cross-entropy backward needs: lse per row and the number of counted rows.
template <class T>
struct CrossEntropySaved {
  DeviceTensor<T> lse;       // (N, 1)
  DeviceTensor<T> row_loss;  // (N, 1) scratch
  DeviceTensor<T> count;     // (1, 1)
};

/// Mean cross-entropy of the counted rows into loss (1, 1).
///   logits: (N, V)  targets: N device int64 in [0, V) or −1 (ignored; validate on the host —
///   the kernel does not range-check)  loss: (1, 1).
template <class T>
void cross_entropy_forward(const Context& ctx, DeviceView<const T> logits, const std::int64_t* targets,
                           DeviceView<T> loss, CrossEntropySaved<T>& saved) {
  if (loss.rows != 1 || loss.cols != 1) throw_shape("cuda::cross_entropy_forward", "logits", logits.rows, logits.cols, "loss", loss.rows, loss.cols);
  const std::int64_t N = logits.rows, V = logits.cols;
  saved.lse.resize(N, 1, *ctx.alloc);
  saved.row_loss.resize(N, 1, *ctx.alloc);
  saved.count.resize(1, 1, *ctx.alloc);
  if (N > 0 && V > 0) {
    HYPLORA_LAUNCH(static_cast<unsigned>(N), detail::kRowThreads, 0, ctx.stream, detail::ce_rows_kernel<T>)(
        logits.data, targets, V, saved.lse.data(), saved.row_loss.data());
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  HYPLORA_LAUNCH(1, detail::kRowThreads, 0, ctx.stream, detail::ce_total_kernel<T>)(
      saved.row_loss.data(), targets, V > 0 ? N : 0, loss.data, saved.count.data());
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// dlogits += g · ∂loss/∂logits, g: (1, 1) on the device.
template <class T>
void cross_entropy_backward(const Context& ctx, DeviceView<const T> logits, const std::int64_t* targets,
                            const CrossEntropySaved<T>& saved, DeviceView<const T> g, DeviceView<T> dlogits) {
  if (dlogits.rows != logits.rows || dlogits.cols != logits.cols)
    throw_shape("cuda::cross_entropy_backward", "logits", logits.rows, logits.cols, "dlogits", dlogits.rows, dlogits.cols);
  if (logits.rows == 0 || logits.cols == 0) return;
  HYPLORA_LAUNCH(static_cast<unsigned>(logits.rows), detail::kRowThreads, 0, ctx.stream, detail::ce_backward_kernel<T>)(
      logits.data, targets, saved.lse.data(), g.data, saved.count.data(), logits.cols, dlogits.data);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
