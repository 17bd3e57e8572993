// hyplora/cuda/kernels/attention.cuh — causal multi-head self-attention forward and backward on the
// device. Reference: ad::causal_self_attention (autodiff/ops_attention.hpp), the same layout and math:
//   q, k, v: (B·T, C), C = H·Dh; token b·T + t, head h at columns [h·Dh, (h+1)·Dh).
//   Per (b, h), with s = 1/√Dh:  S = s·Q Kᵀ (j > i masked),  P = softmax_rows(S),  O = P V;
//   backward with G = ∂L/∂O:  dV = Pᵀ G,  dP = G Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//   dQ = s·dS K,  dK = s·dSᵀ Q.
// A simple, correct version: the heads are copied to a head-major layout (B·H, T, Dh) so every
// product is one cuBLAS strided-batched GEMM over the B·H pairs (full T×T products; the CPU op
// skips the masked half), and the masked softmax and its backward are one block per row.
// Saved for backward: the head-major Q, K, V and P (B·H·T, T), as the CPU op saves P.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/kernels/softmax.cuh"

namespace hyplora::cuda {

/// The forward's saved tensors and the backward's scratch; reused across steps.
template <class T>
struct AttentionSaved {
  DeviceTensor<T> q, k, v;     // (B·H·T, Dh) head-major copies of the inputs
  DeviceTensor<T> P;           // (B·H·T, T)  probabilities, exactly 0 above the diagonal
  DeviceTensor<T> o;           // (B·H·T, Dh) head-major output, then the head-major ∂L/∂O
  DeviceTensor<T> dP;          // (B·H·T, T)  dP, then s·dS
  DeviceTensor<T> dq, dk, dv;  // (B·H·T, Dh) head-major gradients
};

namespace detail {

// Head split: x (B·T, C) → xh (B·H, T, Dh), xh[((b·H + h)·T + t)·Dh + d] = x[(b·T + t)·C + h·Dh + d].
// One thread per element of x (coalesced reads).
template <class T>
__global__ void split_heads_kernel(const T* __restrict__ x, T* __restrict__ xh, std::int64_t n, std::int64_t Tn,
                                   std::int64_t H, std::int64_t Dh) {
  const std::int64_t C = H * Dh;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = e / C, c = e % C;  // row = b·T + t
    const std::int64_t b = row / Tn, t = row % Tn, h = c / Dh, d = c % Dh;
    xh[((b * H + h) * Tn + t) * Dh + d] = x[e];
  }
}

// Head merge, the inverse map: x[(b·T + t)·C + h·Dh + d] (+)= xh[...]; accumulate adds, as the
// tape's gradients do. One thread per element of x (coalesced writes).
template <class T>
__global__ void merge_heads_kernel(const T* __restrict__ xh, T* __restrict__ x, std::int64_t n, std::int64_t Tn,
                                   std::int64_t H, std::int64_t Dh, bool accumulate) {
  const std::int64_t C = H * Dh;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = e / C, c = e % C;
    const std::int64_t b = row / Tn, t = row % Tn, h = c / Dh, d = c % Dh;
    const T v = xh[((b * H + h) * Tn + t) * Dh + d];
    x[e] = accumulate ? x[e] + v : v;
  }
}

// One block per row r of S (B·H·T rows of T), in place: query position i = r mod T attends to
// j <= i: P_j = exp(S_j − max) / Σ exp(S − max) for j <= i, P_j = 0 for j > i. S holds s·Q Kᵀ.
template <class T>
__global__ void causal_softmax_kernel(T* __restrict__ S, std::int64_t Tn) {
  using A = acc_t<T>;
  const std::int64_t r = blockIdx.x, i = r % Tn;
  T* row = S + r * Tn;
  A m, s;
  row_max_sumexp<T>(row, i + 1, m, s);  // syncs: every read of the row is done before the writes below
  for (std::int64_t j = threadIdx.x; j < Tn; j += blockDim.x)
    row[j] = j <= i ? static_cast<T>(exp(static_cast<A>(row[j]) - m) / s) : T(0);
}

// One block per row, in place over dP: dS_j = scale·P_j·(dP_j − Σ_{k<=i} dP_k P_k) for j <= i, 0 above.
template <class T>
__global__ void causal_softmax_backward_kernel(const T* __restrict__ P, T* __restrict__ dP, std::int64_t Tn, T scale) {
  using A = acc_t<T>;
  const std::int64_t r = blockIdx.x, i = r % Tn;
  const T* p = P + r * Tn;
  T* g = dP + r * Tn;
  A dot = A(0);
  for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) dot += static_cast<A>(g[j]) * static_cast<A>(p[j]);
  dot = block_sum(dot);  // syncs before the row is overwritten
  for (std::int64_t j = threadIdx.x; j < Tn; j += blockDim.x)
    g[j] = j <= i ? static_cast<T>(static_cast<A>(scale) * static_cast<A>(p[j]) * (static_cast<A>(g[j]) - dot)) : T(0);
}

template <class T>
void split_heads(const Context& ctx, const T* x, DeviceTensor<T>& xh, Index B, Index Tn, Index H, Index Dh) {
  xh.resize(B * H * Tn, Dh, *ctx.alloc);
  const std::int64_t n = B * Tn * H * Dh;
  if (n == 0) return;
  HYPLORA_LAUNCH(flat_blocks(n), kFlatThreads, 0, ctx.stream, split_heads_kernel<T>)(x, xh.data(), n, Tn, H, Dh);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

template <class T>
void merge_heads(const Context& ctx, const T* xh, T* x, Index B, Index Tn, Index H, Index Dh, bool accumulate) {
  const std::int64_t n = B * Tn * H * Dh;
  if (n == 0) return;
  HYPLORA_LAUNCH(flat_blocks(n), kFlatThreads, 0, ctx.stream, merge_heads_kernel<T>)(xh, x, n, Tn, H, Dh, accumulate);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// The CPU op's argument checks, with its messages.
inline void check_attention_args(const char* op, Index qr, Index qc, Index kr, Index kc, Index vr, Index vc, Index B,
                                 Index Tn, Index H) {
  if (B < 0 || Tn < 0 || H < 1)
    throw value_error(std::string(op) + ": need batch >= 0, seq_len >= 0, heads >= 1; got batch " + std::to_string(B) +
                      ", seq_len " + std::to_string(Tn) + ", heads " + std::to_string(H));
  if (kr != qr || kc != qc) throw_shape(op, "q", qr, qc, "k", kr, kc);
  if (vr != qr || vc != qc) throw_shape(op, "q", qr, qc, "v", vr, vc);
  if (qr != B * Tn) throw_shape(op, "q", qr, qc, "(batch·seq_len, C)", B * Tn, qc);
  if (qc % H != 0)
    throw shape_error(std::string(op) + ": q " + shape_str(qr, qc) + " has C = " + std::to_string(qc) +
                      " columns, not divisible by heads = " + std::to_string(H));
}

}  // namespace detail

/// out = causal multi-head self-attention of (q, k, v); saves what the backward needs.
///   q, k, v, out: (B·T, C), C = H·Dh; scale 1/√Dh; token i attends to j <= i.
template <class T>
void causal_attention_forward(const Context& ctx, DeviceView<const T> q, DeviceView<const T> k, DeviceView<const T> v,
                              Index B, Index Tn, Index H, DeviceView<T> out, AttentionSaved<T>& s) {
  const char* op = "cuda::causal_attention_forward";
  detail::check_attention_args(op, q.rows, q.cols, k.rows, k.cols, v.rows, v.cols, B, Tn, H);
  if (out.rows != q.rows || out.cols != q.cols) throw_shape(op, "q", q.rows, q.cols, "out", out.rows, out.cols);
  const Index Dh = q.cols / H, BH = B * H;
  detail::split_heads<T>(ctx, q.data, s.q, B, Tn, H, Dh);
  detail::split_heads<T>(ctx, k.data, s.k, B, Tn, H, Dh);
  detail::split_heads<T>(ctx, v.data, s.v, B, Tn, H, Dh);
  s.P.resize(BH * Tn, Tn, *ctx.alloc);
  s.o.resize(BH * Tn, Dh, *ctx.alloc);
  if (BH == 0 || Tn == 0 || Dh == 0) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  // S_b = s·Q_b K_bᵀ: (T, Dh)·(T, Dh)ᵀ per pair b.
  gemm_strided_batched<T>(ctx.blas, Op::N, Op::T, Tn, Tn, Dh, scale, s.q.data(), Dh, Tn * Dh, s.k.data(), Dh, Tn * Dh,
                          T(0), s.P.data(), Tn, Tn * Tn, BH);
  HYPLORA_LAUNCH(static_cast<unsigned>(BH * Tn), detail::kRowThreads, 0, ctx.stream, detail::causal_softmax_kernel<T>)(
      s.P.data(), Tn);
  HYPLORA_CUDA_CHECK_LAUNCH();
  // O_b = P_b V_b: (T, T)·(T, Dh).
  gemm_strided_batched<T>(ctx.blas, Op::N, Op::N, Tn, Dh, Tn, T(1), s.P.data(), Tn, Tn * Tn, s.v.data(), Dh, Tn * Dh,
                          T(0), s.o.data(), Dh, Tn * Dh, BH);
  detail::merge_heads<T>(ctx, s.o.data(), out.data, B, Tn, H, Dh, /*accumulate=*/false);
}

/// Accumulates dq, dk, dv (each may be absent) for G = ∂L/∂out (B·T, C), from the forward's saved
/// tensors (same B, T, H).
template <class T>
void causal_attention_backward(const Context& ctx, AttentionSaved<T>& s, Index B, Index Tn, Index H,
                               DeviceView<const T> G, DeviceView<T> dq, DeviceView<T> dk, DeviceView<T> dv) {
  const char* op = "cuda::causal_attention_backward";
  detail::check_attention_args(op, G.rows, G.cols, G.rows, G.cols, G.rows, G.cols, B, Tn, H);
  const Index Dh = G.cols / H, BH = B * H;
  if (s.P.rows() != BH * Tn || s.P.cols() != Tn || s.q.cols() != Dh)
    throw_shape(op, "P (saved)", s.P.rows(), s.P.cols(), "(B·H·T, T)", BH * Tn, Tn);
  for (const DeviceView<T>* d : {&dq, &dk, &dv})
    if (d->present() && (d->rows != G.rows || d->cols != G.cols)) throw_shape(op, "G", G.rows, G.cols, "gradient", d->rows, d->cols);
  if (BH == 0 || Tn == 0 || Dh == 0) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  detail::split_heads<T>(ctx, G.data, s.o, B, Tn, H, Dh);  // s.o := head-major G
  const std::int64_t sD = Tn * Dh, sT = Tn * Tn;
  if (dv.present()) {  // dV_b = P_bᵀ G_b
    s.dv.resize(BH * Tn, Dh, *ctx.alloc);
    gemm_strided_batched<T>(ctx.blas, Op::T, Op::N, Tn, Dh, Tn, T(1), s.P.data(), Tn, sT, s.o.data(), Dh, sD, T(0),
                            s.dv.data(), Dh, sD, BH);
    detail::merge_heads<T>(ctx, s.dv.data(), dv.data, B, Tn, H, Dh, true);
  }
  if (!dq.present() && !dk.present()) return;
  s.dP.resize(BH * Tn, Tn, *ctx.alloc);
  // dP_b = G_b V_bᵀ, then s·dS in place.
  gemm_strided_batched<T>(ctx.blas, Op::N, Op::T, Tn, Tn, Dh, T(1), s.o.data(), Dh, sD, s.v.data(), Dh, sD, T(0),
                          s.dP.data(), Tn, sT, BH);
  HYPLORA_LAUNCH(static_cast<unsigned>(BH * Tn), detail::kRowThreads, 0, ctx.stream, detail::causal_softmax_backward_kernel<T>)(
      s.P.data(), s.dP.data(), Tn, scale);
  HYPLORA_CUDA_CHECK_LAUNCH();
  if (dq.present()) {  // dQ_b = (s·dS_b) K_b
    s.dq.resize(BH * Tn, Dh, *ctx.alloc);
    gemm_strided_batched<T>(ctx.blas, Op::N, Op::N, Tn, Dh, Tn, T(1), s.dP.data(), Tn, sT, s.k.data(), Dh, sD, T(0),
                            s.dq.data(), Dh, sD, BH);
    detail::merge_heads<T>(ctx, s.dq.data(), dq.data, B, Tn, H, Dh, true);
  }
  if (dk.present()) {  // dK_b = (s·dS_b)ᵀ Q_b
    s.dk.resize(BH * Tn, Dh, *ctx.alloc);
    gemm_strided_batched<T>(ctx.blas, Op::T, Op::N, Tn, Dh, Tn, T(1), s.dP.data(), Tn, sT, s.q.data(), Dh, sD, T(0),
                            s.dk.data(), Dh, sD, BH);
    detail::merge_heads<T>(ctx, s.dk.data(), dk.data, B, Tn, H, Dh, true);
  }
}

}  // namespace hyplora::cuda
