// hyplora/cuda/ops_dora.cuh — device twin of the DoRA layer as the CPU builds it from its two fused
// nodes, ad::dora_scale and ad::dora_linear_scaled (autodiff/ops_dora.hpp, nn::dora_linear;
// docs/hyplora.md §9, Eq. (260)–(269)):
//   s = m / ‖W0 + γ·B·A‖_row                                                   (1, D_out)
//   z = s ⊙ (x·W0ᵀ + γ·(x·Aᵀ)·Bᵀ) + b                                         (x_a = x)
//   z = x·W0ᵀ + b + (s − 1) ⊙ (x_a·W0ᵀ) + s ⊙ γ·(x_a·Aᵀ)·Bᵀ                   (x_a = dropout(x))
//   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  m, b: (1, D_out)  z: (N, D_out)
// Same math, saved quantities and gradients as the CPU nodes: nothing is detached (unlike PEFT,
// ‖V‖ carries its gradient into W0, A and B); V (D_out, D_in) is never formed. The scale keeps
// Q = W0·Aᵀ, M = A·Aᵀ and (‖V_i‖, exact flag, c_i) per row; a row whose quadratic form cancels is
// recomputed from V_i = W0_i + γ·B_i·A inside its block (Eq. (261)) — the CPU streams it through a
// (1, D_in) scratch, the device through registers and a tile of shared memory. The data path keeps
// LoRA's U = x_a·Aᵀ and s ⊙_row B, plus y (N, D_out) only with a separate x_a; with x_a = x the
// backward reads y back from z for ∂s (Eq. (268)–(269)), so it takes the forward's z.
// The scalar tests and formulas are the CPU's own (autodiff/detail/dora_rows.hpp). GEMMs go to
// cuBLAS; reductions are fixed-order block and column-lane sums, so results are deterministic.
// x_a = x is recognised by x_a viewing x's memory. T: float or double. Used by the device tape
// (cuda/graph.cuh, LinearParams::Kind::dora); ad::Tape does not dispatch here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "hyplora/autodiff/detail/dora_rows.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

/// The DoRA layer's operands. x_a may view the same memory as x (no dropout).
template <class T>
struct DoRAInputs {
  DeviceView<const T> x, W0, x_a, A, B, m, bias;  // m: the magnitude (1, D_out); bias may be absent
  T gamma = T(1);                                 // α/r
};

/// Gradients to accumulate into; absent = not needed. With x_a = x the input's gradient is
/// grads.x (grads.x_a absent or the same view).
template <class T>
struct DoRAGrads {
  DeviceView<T> x, W0, x_a, A, B, m, bias;
};

/// Saved by the forward, plus the backward's scratch; reused across steps.
template <class T>
struct DoRASaved {
  // the scale (ad::dora_scale's saved tensors)
  DeviceTensor<T> Q;     // (D_out, R)  W0·Aᵀ
  DeviceTensor<T> M;     // (R, R)      A·Aᵀ
  DeviceTensor<T> rows;  // (D_out, 3)  ‖V_i‖, exact flag, c_i (the CPU's kDoraNorm, kDoraExact, kDoraCoef)
  DeviceTensor<T> s;     // (1, D_out)  m/‖V‖_row
  // the data path (ad::dora_linear_scaled's)
  DeviceTensor<T> U;   // (N, R)      x_a·Aᵀ
  DeviceTensor<T> SB;  // (D_out, R)  s ⊙_row B
  DeviceTensor<T> Y;   // (N, D_out)  x_a·W0ᵀ + γ·U·Bᵀ, only with a separate x_a
  // backward scratch
  DeviceTensor<T> work;     // (D_out, R)  B·M, then C = c ⊙_row B
  DeviceTensor<T> K;        // (R, R)      Cᵀ·B
  DeviceTensor<T> P;        // (N, R)      γ·G·(s ⊙ B)
  DeviceTensor<T> Gs;       // (≤ kDoraChunkRows, D_out)  G ⊙ s' for one chunk of tokens
  DeviceTensor<T> ds;       // (1, D_out)  ∂L/∂s
  DeviceTensor<T> n_exact;  // (1, 1)      number of recomputed rows
};

namespace detail {

/// Tokens per chunk of the backward's G ⊙ s' scratch: whole-tensor GEMMs up to 4096 tokens (the
/// GEMMs stay large), a bounded (4096, D_out) buffer beyond, as the CPU's 64-row blocks.
inline constexpr std::int64_t kDoraChunkRows = 4096;

// Column layout of `rows` (the CPU node's enum DoraRow).
inline constexpr int kDrNorm = 0, kDrExact = 1, kDrCoef = 2;

// One block per output row i (Eq. (260)–(261)): ‖V_i‖ from the form w + 2γ·Q_i·B_i + γ²·(B·M)_i·B_i,
// or, where it cancels, from V_i itself; then s_i = m_i/‖V_i‖.
template <class T>
__global__ void dora_scale_forward_kernel(const T* __restrict__ W0, const T* __restrict__ A,
                                          const T* __restrict__ B, const T* __restrict__ Q,
                                          const T* __restrict__ BM, const T* __restrict__ m, std::int64_t Din, int r,
                                          T gamma, T rho, T* __restrict__ rows, T* __restrict__ s) {
  using std::sqrt;
  const std::int64_t i = blockIdx.x;
  const T* Wi = W0 + i * Din;
  const T* Bi = B + i * r;
  T w = T(0);
  for (std::int64_t k = threadIdx.x; k < Din; k += blockDim.x) w += Wi[k] * Wi[k];
  w = block_sum(w);
  T qb = T(0), bmb = T(0);
  for (int j = threadIdx.x; j < r; j += blockDim.x) {
    qb += Q[i * r + j] * Bi[j];
    bmb += BM[i * r + j] * Bi[j];
  }
  qb = block_sum(qb);
  bmb = block_sum(bmb);
  bool exact = false;
  T nv = ad::detail::dora_form_norm<T>(w, qb, bmb, gamma, rho, exact);
  if (exact) {  // block-uniform: every thread holds the same block sums
    T v2 = T(0);
    for (std::int64_t k = threadIdx.x; k < Din; k += blockDim.x) {
      T ba = T(0);
      for (int l = 0; l < r; ++l) ba += Bi[l] * A[l * Din + k];
      const T v = Wi[k] + gamma * ba;  // V_ik, Eq. (261)
      v2 += v * v;
    }
    nv = sqrt(block_sum(v2));
  }
  if (threadIdx.x == 0) {
    rows[3 * i + kDrNorm] = nv;
    rows[3 * i + kDrExact] = exact ? T(1) : T(0);
    rows[3 * i + kDrCoef] = T(0);
    s[i] = m[i] / nv;
  }
}

// SB = s ⊙_row B over D_out·R elements.
template <class T>
__global__ void dora_scale_rows_kernel(const T* __restrict__ s, const T* __restrict__ B, T* __restrict__ SB,
                                       std::int64_t n, int r) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    SB[e] = s[e / r] * B[e];
}

// z = s ⊙ z (+ b), column j = e mod D_out (x_a = x: z held x·W0ᵀ).
template <class T>
__global__ void dora_scale_cols_kernel(T* __restrict__ z, const T* __restrict__ s, const T* __restrict__ b,
                                       std::int64_t n, std::int64_t cols) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = e % cols;
    z[e] = b ? s[j] * z[e] + b[j] : z[e] * s[j];
  }
}

// out = a ⊙ (s − shift) (+ out when `add`), column j = e mod cols: z += (s − 1) ⊙ Y in the forward
// with a separate x_a, and the backward's G ⊙ s' chunk.
template <class T>
__global__ void dora_col_scaled_kernel(const T* __restrict__ a, const T* __restrict__ s, T shift, T* __restrict__ out,
                                       std::int64_t n, std::int64_t cols, bool add) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = e % cols;
    if (add) out[e] += (s[j] - shift) * a[e];
    else out[e] = a[e] * (s[j] - shift);
  }
}

// ∂s_j = Σ_n G_nj·y_nj (Eq. (268)), one column per thread column of a kColThreads block.
// readback (x_a = x): Yz is z, y is read back as (z − b)/s (Eq. (269)) where dora_readback_ok
// allows, else the column is recomputed, y_:j = x·W0_jᵀ + γ·U·B_jᵀ. Otherwise Yz is the saved y.
template <class T>
__global__ void __launch_bounds__(kColThreads)
    dora_ds_kernel(const T* __restrict__ G, const T* __restrict__ Yz, const T* __restrict__ b,
                   const T* __restrict__ s, const T* __restrict__ X, const T* __restrict__ W0,
                   const T* __restrict__ U, const T* __restrict__ B, std::int64_t N, std::int64_t Dout,
                   std::int64_t Din, int r, T gamma, T kappa, bool readback, T* __restrict__ ds) {
  using std::abs;
  const std::int64_t tx = threadIdx.x % kColWidth, ty = threadIdx.x / kColWidth;
  const bool has_b = b != nullptr;
  for (std::int64_t c0 = blockIdx.x * static_cast<std::int64_t>(kColWidth); c0 < Dout;
       c0 += static_cast<std::int64_t>(gridDim.x) * kColWidth) {  // block-uniform: the syncs inside are safe
    const std::int64_t c = c0 + tx;
    const bool valid = c < Dout;
    const T bc = valid && has_b ? b[c] : T(0);
    T gz = T(0), g1 = T(0), ag = T(0), agy = T(0);
    if (valid)
      for (std::int64_t i = ty; i < N; i += kColLanes) {
        const T gi = G[i * Dout + c], yi = Yz[i * Dout + c];
        gz += gi * yi;
        if (readback && has_b) {
          g1 += gi;
          ag += abs(gi);
          agy += abs(gi * (yi - bc));
        }
      }
    gz = column_lane_sum(gz);
    T d = gz;
    if (readback) {  // a kernel argument: uniform
      if (has_b) {
        g1 = column_lane_sum(g1);
        ag = column_lane_sum(ag);
        agy = column_lane_sum(agy);
      }
      const T sc = valid ? s[c] : T(1);
      const bool ok = ad::detail::dora_readback_ok<T>(sc, bc, has_b, ag, agy, kappa);
      T part = T(0);
      if (valid && !ok)
        for (std::int64_t i = ty; i < N; i += kColLanes) {
          T xw = T(0), ub = T(0);
          for (std::int64_t k = 0; k < Din; ++k) xw += X[i * Din + k] * W0[c * Din + k];
          for (int l = 0; l < r; ++l) ub += U[i * r + l] * B[c * r + l];
          part += G[i * Dout + c] * (xw + gamma * ub);
        }
      part = column_lane_sum(part);  // every thread calls it
      d = ok ? ad::detail::dora_readback_ds<T>(gz, g1, sc, bc, has_b) : part;
    }
    if (ty == 0 && valid) ds[c] = d;
  }
}

// One block over the D_out rows (Eq. (262)–(263)): c_i = −ds_i·m_i/‖V_i‖³ into rows, dm_i += ds_i/‖V_i‖
// (dm may be null), and the number of recomputed rows into n_exact[0].
template <class T>
__global__ void dora_scale_coef_kernel(const T* __restrict__ ds, const T* __restrict__ m, T* __restrict__ rows,
                                       T* __restrict__ dm, std::int64_t Dout, T* __restrict__ n_exact) {
  T count = T(0);
  for (std::int64_t i = threadIdx.x; i < Dout; i += blockDim.x) {
    const T nv = rows[3 * i + kDrNorm];
    rows[3 * i + kDrCoef] = ad::detail::dora_norm_coef<T>(ds[i], m[i], nv);
    if (dm) dm[i] += ds[i] / nv;
    count += rows[3 * i + kDrExact] != T(0) ? T(1) : T(0);
  }
  count = block_sum(count);
  if (threadIdx.x == 0) n_exact[0] = count;
}

// One block per output row i, kRowThreads threads (Eq. (265)): dB_i += γc_i·(Q_i + γ·(B·M)_i),
// or for a recomputed row γc_i·V_i·Aᵀ, V_i built a tile of kRowThreads columns at a time in
// shared memory.
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    dora_dB_kernel(const T* __restrict__ Q, const T* __restrict__ BM, const T* __restrict__ rows,
                   const T* __restrict__ W0, const T* __restrict__ A, const T* __restrict__ B, std::int64_t Din,
                   int r, T gamma, T* __restrict__ dB) {
  __shared__ T vt[kRowThreads];
  const std::int64_t i = blockIdx.x;
  const T gc = gamma * rows[3 * i + kDrCoef];
  T* dBi = dB + i * r;
  if (rows[3 * i + kDrExact] == T(0)) {
    for (int j = threadIdx.x; j < r; j += blockDim.x) dBi[j] += gc * (Q[i * r + j] + gamma * BM[i * r + j]);
    return;  // block-uniform branch
  }
  const T* Wi = W0 + i * Din;
  const T* Bi = B + i * r;
  for (int j0 = 0; j0 < r; j0 += kRowThreads) {
    const int j = j0 + static_cast<int>(threadIdx.x);
    T acc = T(0);
    for (std::int64_t k0 = 0; k0 < Din; k0 += kRowThreads) {
      const std::int64_t k = k0 + threadIdx.x;
      __syncthreads();  // the previous tile's readers are done
      if (k < Din) {
        T ba = T(0);
        for (int l = 0; l < r; ++l) ba += Bi[l] * A[l * Din + k];
        vt[threadIdx.x] = Wi[k] + gamma * ba;  // V_ik
      }
      __syncthreads();
      const std::int64_t kn = Din - k0 < kRowThreads ? Din - k0 : kRowThreads;
      if (j < r)
        for (std::int64_t t = 0; t < kn; ++t) acc += vt[t] * A[j * Din + k0 + t];
    }
    if (j < r) dBi[j] += gc * acc;
  }
}

// C = c ⊙_row B into work (D_out, R); with zero_exact the recomputed rows are 0 (their terms of
// (264) come from V_i in dora_dA_exact_kernel).
template <class T>
__global__ void dora_coef_rows_kernel(const T* __restrict__ rows, const T* __restrict__ B, T* __restrict__ C,
                                      std::int64_t n, int r, bool zero_exact) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t i = e / r;
    C[e] = zero_exact && rows[3 * i + kDrExact] != T(0) ? T(0) : rows[3 * i + kDrCoef] * B[e];
  }
}

// dW0 += c ⊙_row W0 over D_out·D_in elements (Eq. (266), every row).
template <class T>
__global__ void dora_dW0_rows_kernel(const T* __restrict__ rows, const T* __restrict__ W0, T* __restrict__ dW0,
                                     std::int64_t n, std::int64_t Din) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    dW0[e] += rows[3 * (e / Din) + kDrCoef] * W0[e];
}

// dA_:k += γc_i·B_iᵀ·V_ik for each recomputed row i, in row order (Eq. (264) with V_i); one thread
// per column k. Returns at once when no row was recomputed.
template <class T>
__global__ void dora_dA_exact_kernel(const T* __restrict__ rows, const T* __restrict__ n_exact,
                                     const T* __restrict__ W0, const T* __restrict__ A, const T* __restrict__ B,
                                     std::int64_t Dout, std::int64_t Din, int r, T gamma, T* __restrict__ dA) {
  if (n_exact[0] == T(0)) return;
  for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < Din;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    for (std::int64_t i = 0; i < Dout; ++i) {
      if (rows[3 * i + kDrExact] == T(0)) continue;
      const T* Bi = B + i * r;
      T ba = T(0);
      for (int l = 0; l < r; ++l) ba += Bi[l] * A[l * Din + k];
      const T v = W0[i * Din + k] + gamma * ba;  // V_ik
      const T gc = gamma * rows[3 * i + kDrCoef];
      for (int j = 0; j < r; ++j) dA[j * Din + k] += gc * (Bi[j] * v);
    }
}

/// Shape checks in nn::dora_linear's order (ad::dora_scale's, then ad::dora_linear_scaled's), with
/// the CPU nodes' messages.
template <class T>
void check_dora_inputs(const char* op, const DoRAInputs<T>& in) {
  if (in.A.cols != in.W0.cols) throw_shape(op, "W0", in.W0.rows, in.W0.cols, "A", in.A.rows, in.A.cols);
  if (in.B.rows != in.W0.rows || in.B.cols != in.A.rows) throw_shape(op, "A", in.A.rows, in.A.cols, "B", in.B.rows, in.B.cols);
  if (in.m.rows != 1 || in.m.cols != in.W0.rows) throw_shape(op, "W0", in.W0.rows, in.W0.cols, "magnitude", in.m.rows, in.m.cols);
  check_linear_shapes<T>(op, in.x, in.W0, in.bias);
  if (in.x_a.rows != in.x.rows || in.x_a.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "x_a", in.x_a.rows, in.x_a.cols);
}

inline int rank_int(Index r) {
  if (r < 0 || r > (1 << 30)) throw value_error("cuda DoRA: rank " + std::to_string(r) + " out of range");
  return static_cast<int>(r);
}

template <class T>
void check_saved(const char* op, const char* name, const DeviceTensor<T>& t, Index rows, Index cols) {
  if (t.rows() != rows || t.cols() != cols) throw_shape(op, (std::string(name) + " (saved)").c_str(), t.rows(), t.cols(), "expected", rows, cols);
}

}  // namespace detail

/// z (resized to (N, D_out)) = the DoRA layer, saving Q, M, the per-row (‖V_i‖, exact, c_i), s, U,
/// s ⊙ B and, with a separate x_a, y.
template <class T>
void dora_forward(const Context& ctx, const DoRAInputs<T>& in, DeviceTensor<T>& z, DoRASaved<T>& sv) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuda DoRA: float or double");
  detail::check_dora_inputs("cuda::dora_forward", in);
  const Index N = in.x.rows, Din = in.x.cols, Dout = in.W0.rows, r = in.A.rows;
  const int ri = detail::rank_int(r);
  const bool shared = in.x_a.data == in.x.data;
  const T gamma = in.gamma;
  auto& al = *ctx.alloc;
  z.resize(N, Dout, al);
  sv.Q.resize(Dout, r, al);
  sv.M.resize(r, r, al);
  sv.work.resize(Dout, r, al);
  sv.rows.resize(Dout, 3, al);
  sv.s.resize(1, Dout, al);
  sv.U.resize(N, r, al);
  sv.SB.resize(Dout, r, al);

  // The scale (Eq. (260)–(261)).
  gemm<T>(ctx.blas, Op::N, Op::T, Dout, r, Din, T(1), in.W0.data, Din, in.A.data, Din, T(0), sv.Q.data(), r);  // Q = W0·Aᵀ
  gemm<T>(ctx.blas, Op::N, Op::T, r, r, Din, T(1), in.A.data, Din, in.A.data, Din, T(0), sv.M.data(), r);       // M = A·Aᵀ
  gemm<T>(ctx.blas, Op::N, Op::N, Dout, r, r, T(1), in.B.data, r, sv.M.data(), r, T(0), sv.work.data(), r);     // B·M
  if (Dout > 0) {
    HYPLORA_LAUNCH(static_cast<unsigned>(Dout), detail::kRowThreads, 0, ctx.stream, detail::dora_scale_forward_kernel<T>)(
        in.W0.data, in.A.data, in.B.data, sv.Q.data(), sv.work.data(), in.m.data, Din, ri, gamma,
        numerics<T>::dora_exact_below(), sv.rows.data(), sv.s.data());
    HYPLORA_CUDA_CHECK_LAUNCH();
  }

  // The data path.
  gemm<T>(ctx.blas, Op::N, Op::T, N, r, Din, T(1), in.x_a.data, Din, in.A.data, Din, T(0), sv.U.data(), r);  // U = x_a·Aᵀ
  if (Dout * r > 0) {
    HYPLORA_LAUNCH(detail::flat_blocks(Dout * r), detail::kFlatThreads, 0, ctx.stream, detail::dora_scale_rows_kernel<T>)(
        sv.s.data(), in.B.data, sv.SB.data(), Dout * r, ri);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  if (shared) {  // z = s ⊙ (x·W0ᵀ) + b
    gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, Din, T(1), in.x.data, Din, in.W0.data, Din, T(0), z.data(), Dout);
    if (z.size() > 0) {
      HYPLORA_LAUNCH(detail::flat_blocks(z.size()), detail::kFlatThreads, 0, ctx.stream, detail::dora_scale_cols_kernel<T>)(
          z.data(), sv.s.data(), in.bias.data, z.size(), Dout);
      HYPLORA_CUDA_CHECK_LAUNCH();
    }
  } else {  // z = x·W0ᵀ + b + (s − 1) ⊙ Y, Y = x_a·W0ᵀ; then y = Y + γ·U·Bᵀ is kept for ∂s
    sv.Y.resize(N, Dout, al);
    detail::linear_base_forward<T>(ctx, in.x, in.W0, in.bias, z.view());
    gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, Din, T(1), in.x_a.data, Din, in.W0.data, Din, T(0), sv.Y.data(), Dout);
    if (z.size() > 0) {
      HYPLORA_LAUNCH(detail::flat_blocks(z.size()), detail::kFlatThreads, 0, ctx.stream, detail::dora_col_scaled_kernel<T>)(
          sv.Y.data(), sv.s.data(), T(1), z.data(), z.size(), Dout, true);
      HYPLORA_CUDA_CHECK_LAUNCH();
    }
    gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, r, gamma, sv.U.data(), r, in.B.data, r, T(1), sv.Y.data(), Dout);
  }
  gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, r, gamma, sv.U.data(), r, sv.SB.data(), r, T(1), z.data(), Dout);  // += γ·U·(s⊙B)ᵀ
}

/// Accumulates the gradients for G = ∂L/∂z (N, D_out); z is the forward's output, unchanged
/// (read back for ∂s when x_a = x, Eq. (269)). Eq. (262)–(269).
template <class T>
void dora_backward(const Context& ctx, const DoRAInputs<T>& in, DoRASaved<T>& sv, DeviceView<const T> z,
                   DeviceView<const T> G, const DoRAGrads<T>& grads) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuda DoRA: float or double");
  const char* op = "cuda::dora_backward";
  detail::check_dora_inputs(op, in);
  const Index N = in.x.rows, Din = in.x.cols, Dout = in.W0.rows, r = in.A.rows;
  const int ri = detail::rank_int(r);
  const bool shared = in.x_a.data == in.x.data;
  const T gamma = in.gamma;
  auto& al = *ctx.alloc;
  if (G.rows != N || G.cols != Dout) throw_shape(op, "z", N, Dout, "G", G.rows, G.cols);
  if (z.rows != N || z.cols != Dout) throw_shape(op, "expected z", N, Dout, "z", z.rows, z.cols);
  detail::check_saved<T>(op, "Q", sv.Q, Dout, r);
  detail::check_saved<T>(op, "M", sv.M, r, r);
  detail::check_saved<T>(op, "rows", sv.rows, Dout, 3);
  detail::check_saved<T>(op, "s", sv.s, 1, Dout);
  detail::check_saved<T>(op, "U", sv.U, N, r);
  detail::check_saved<T>(op, "SB", sv.SB, Dout, r);
  if (!shared) detail::check_saved<T>(op, "y", sv.Y, N, Dout);
  detail::check_grad_shape<T>(op, "x", in.x, grads.x);
  detail::check_grad_shape<T>(op, "W0", in.W0, grads.W0);
  detail::check_grad_shape<T>(op, "x_a", in.x_a, grads.x_a);
  detail::check_grad_shape<T>(op, "A", in.A, grads.A);
  detail::check_grad_shape<T>(op, "B", in.B, grads.B);
  detail::check_grad_shape<T>(op, "magnitude", in.m, grads.m);
  if (in.bias.present()) detail::check_grad_shape<T>(op, "bias", in.bias, grads.bias);
  if (shared && grads.x.present() && grads.x_a.present() && grads.x_a.data != grads.x.data)
    throw value_error(std::string(op) + ": x_a is x (no dropout), so dx_a must be absent or the same view as dx");
  const DeviceView<T> dX = shared ? (grads.x.present() ? grads.x : grads.x_a) : grads.x_a;  // x_a's gradient
  const DeviceView<T> db = in.bias.present() ? grads.bias : DeviceView<T>{};
  const bool needW = grads.W0.present(), needA = grads.A.present(), needB = grads.B.present(),
             needM = grads.m.present(), needS = needW || needA || needB || needM;

  // The base map's part (a separate x_a): dx += G·W0, dW0 += Gᵀ·x, db += Σ G. With x_a = x only db.
  if (!shared) detail::linear_base_backward<T>(ctx, in.x, in.W0, G, grads.x, grads.W0, db);
  else if (db.present() && Dout > 0) {
    HYPLORA_LAUNCH(detail::col_blocks(Dout), detail::kColThreads, 0, ctx.stream, detail::add_col_sums_kernel<T>)(
        G.data, N, Dout,
                                                                                                     db.data);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }

  // ∂s (Eq. (268)–(269)).
  if (needS && Dout > 0) {
    sv.ds.resize(1, Dout, al);
    HYPLORA_LAUNCH(detail::col_blocks(Dout), detail::kColThreads, 0, ctx.stream, detail::dora_ds_kernel<T>)(
        G.data, shared ? z.data : sv.Y.data(), shared ? in.bias.data : nullptr, sv.s.data(), in.x.data, in.W0.data,
        sv.U.data(), in.B.data, N, Dout, Din, ri, gamma, numerics<T>::dora_readback_bias_ratio(), shared,
        sv.ds.data());
    HYPLORA_CUDA_CHECK_LAUNCH();
  }

  // The data path (Eq. (267)): P = γ·G·(s ⊙ B), dA += Pᵀ·x_a; with s' = s (x_a = x) or s − 1,
  // chunk by chunk of tokens: dx_a += (G ⊙ s')·W0, dW0 += (G ⊙ s')ᵀ·x_a, dB += γ·(G ⊙ s')ᵀ·U
  // (plus γ·Gᵀ·U first with a separate x_a, so dB gets γ·(G ⊙ s)ᵀ·U); then dx_a += P·A.
  if (needA || dX.present()) {
    sv.P.resize(N, r, al);
    gemm<T>(ctx.blas, Op::N, Op::N, N, r, Dout, gamma, G.data, Dout, sv.SB.data(), r, T(0), sv.P.data(), r);
  }
  if (needA) gemm<T>(ctx.blas, Op::T, Op::N, r, Din, N, T(1), sv.P.data(), r, in.x_a.data, Din, T(1), grads.A.data, Din);
  if (dX.present() || needW || needB) {
    const T shift = shared ? T(0) : T(1);
    if (needB && !shared)
      gemm<T>(ctx.blas, Op::T, Op::N, Dout, r, N, gamma, G.data, Dout, sv.U.data(), r, T(1), grads.B.data, r);
    sv.Gs.resize(std::min<Index>(N, detail::kDoraChunkRows), Dout, al);
    for (Index i0 = 0; i0 < N; i0 += detail::kDoraChunkRows) {
      const Index nb = std::min<Index>(detail::kDoraChunkRows, N - i0);
      if (nb * Dout > 0) {
        HYPLORA_LAUNCH(detail::flat_blocks(nb * Dout), detail::kFlatThreads, 0, ctx.stream, detail::dora_col_scaled_kernel<T>)(
            G.data + i0 * Dout, sv.s.data(), shift, sv.Gs.data(), nb * Dout, Dout, false);
        HYPLORA_CUDA_CHECK_LAUNCH();
      }
      if (dX.present())
        gemm<T>(ctx.blas, Op::N, Op::N, nb, Din, Dout, T(1), sv.Gs.data(), Dout, in.W0.data, Din, T(1),
                dX.data + i0 * Din, Din);
      if (needW)
        gemm<T>(ctx.blas, Op::T, Op::N, Dout, Din, nb, T(1), sv.Gs.data(), Dout, in.x_a.data + i0 * Din, Din, T(1),
                grads.W0.data, Din);
      if (needB)
        gemm<T>(ctx.blas, Op::T, Op::N, Dout, r, nb, gamma, sv.Gs.data(), Dout, sv.U.data() + i0 * r, r, T(1),
                grads.B.data, r);
    }
    if (dX.present()) gemm<T>(ctx.blas, Op::N, Op::N, N, Din, r, T(1), sv.P.data(), r, in.A.data, Din, T(1), dX.data, Din);
  }

  // The scale's backward (Eq. (262)–(266)), given ∂s.
  if (!needS || Dout == 0) return;
  sv.n_exact.resize(1, 1, al);
  HYPLORA_LAUNCH(1, detail::kRowThreads, 0, ctx.stream, detail::dora_scale_coef_kernel<T>)(
      sv.ds.data(), in.m.data, sv.rows.data(), needM ? grads.m.data : nullptr, Dout, sv.n_exact.data());
  HYPLORA_CUDA_CHECK_LAUNCH();
  if (!(needW || needA || needB)) return;
  sv.work.resize(Dout, r, al);
  if (needB) {  // Eq. (265), B·M recomputed into the work buffer
    gemm<T>(ctx.blas, Op::N, Op::N, Dout, r, r, T(1), in.B.data, r, sv.M.data(), r, T(0), sv.work.data(), r);
    HYPLORA_LAUNCH(static_cast<unsigned>(Dout), detail::kRowThreads, 0, ctx.stream, detail::dora_dB_kernel<T>)(
        sv.Q.data(), sv.work.data(), sv.rows.data(), in.W0.data, in.A.data, in.B.data, Din, ri, gamma, grads.B.data);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  const Index nC = Dout * r;
  auto coef_rows = [&](bool zero_exact) {  // C = c ⊙_row B over the work buffer
    if (nC == 0) return;
    HYPLORA_LAUNCH(detail::flat_blocks(nC), detail::kFlatThreads, 0, ctx.stream, detail::dora_coef_rows_kernel<T>)(
        sv.rows.data(), in.B.data, sv.work.data(), nC, ri, zero_exact);
    HYPLORA_CUDA_CHECK_LAUNCH();
  };
  if (needW) {  // Eq. (266): dW0 += c ⊙_row W0 + γ·C·A, every row
    coef_rows(false);
    if (Dout * Din > 0) {
      HYPLORA_LAUNCH(detail::flat_blocks(Dout * Din), detail::kFlatThreads, 0, ctx.stream, detail::dora_dW0_rows_kernel<T>)(
          sv.rows.data(), in.W0.data, grads.W0.data, Dout * Din, Din);
      HYPLORA_CUDA_CHECK_LAUNCH();
    }
    gemm<T>(ctx.blas, Op::N, Op::N, Dout, Din, r, gamma, sv.work.data(), r, in.A.data, Din, T(1), grads.W0.data, Din);
  }
  if (needA) {  // Eq. (264): dA += γ·Cᵀ·W0 + γ²·(Cᵀ·B)·A over the form rows, γc_i·B_iᵀ·V_i over the others
    coef_rows(true);
    sv.K.resize(r, r, al);
    gemm<T>(ctx.blas, Op::T, Op::N, r, r, Dout, T(1), sv.work.data(), r, in.B.data, r, T(0), sv.K.data(), r);
    gemm<T>(ctx.blas, Op::T, Op::N, r, Din, Dout, gamma, sv.work.data(), r, in.W0.data, Din, T(1), grads.A.data, Din);
    gemm<T>(ctx.blas, Op::N, Op::N, r, Din, r, gamma * gamma, sv.K.data(), r, in.A.data, Din, T(1), grads.A.data, Din);
    if (Din > 0 && r > 0) {
      HYPLORA_LAUNCH(detail::flat_blocks(Din), detail::kFlatThreads, 0, ctx.stream, detail::dora_dA_exact_kernel<T>)(
          sv.rows.data(), sv.n_exact.data(), in.W0.data, in.A.data, in.B.data, Dout, Din, ri, gamma, grads.A.data);
      HYPLORA_CUDA_CHECK_LAUNCH();
    }
  }
}

}  // namespace hyplora::cuda
