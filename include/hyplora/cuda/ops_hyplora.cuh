// hyplora/cuda/ops_hyplora.cuh — device twin of the fused exact HypLoRA node
// (autodiff/ops_hyplora.hpp, docs/math.md §6, Eq. (152)–(167)):
//   z = x·W0ᵀ + b + γ·σ_out·f_R⁻¹( f_R(x_a/σ)·Aᵀ·Bᵀ ),  f_R(v) = sinhc(|v|/R)·v,  f_R⁻¹(y) = asinhc(|y|/R)·y.
//   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  b: (1, D_out)
// Same saved quantities as the CPU node: a = c1·x_a·Aᵀ (N, R), W_a = γσ_out·c2·a (N, R),
// (ρ, c, τ, c2) per token (N, 4) and M = BᵀB (R, R). The per-token scalars come from the same
// HYPLORA_HD functions as the CPU path (lorentz_rows::exp_coeffs, asinhc, asinhc_d2, sinhc_d1,
// clamp_exp_arg); one block per token computes them, GEMMs go to cuBLAS.
//
// R = √K and σ are host scalars here (the CPU node reads them off the tape); their gradients are
// accumulated into (1, 1) device tensors. A non-finite input row, which the CPU node rejects with
// value_error, gives non-finite outputs here (a kernel cannot throw). Used by the device tape
// (cuda/graph.cuh); ad::Tape does not dispatch here.
//
// T: float, double, or __half / __nv_bfloat16 storage (half.hpp). With half storage the tensors
// (x, W0, x_a, A, B, bias, z, the gradients) and the (N, R) activations a, W_a, G·B, aw are in T;
// the kernels compute in float and round once on store; the per-token scalars, M, S, the
// per-token partials, the host scalars R, σ, γ and the R / σ gradients are float (compute_t<T>):
// they set every row's scale, and 11 bits would put a 2^-11 relative error on each whole row.
// The same HYPLORA_HD row functions run, instantiated with float. Float and double are unchanged:
// compute_t<T> = T there and every conversion is the identity.
#pragma once

#include <cmath>
#include <string>

#include "hyplora/autodiff/detail/hyplora_rows.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/half.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::cuda {

/// The HypLoRA node's operands.
template <class T>
struct HypLoRAInputs {
  DeviceView<const T> x, W0, x_a, A, B, bias;  // bias may be absent
  compute_t<T> R = compute_t<T>(1);            // √K          (T for float/double, float for half)
  compute_t<T> sigma = compute_t<T>(1);        // feature scale σ
  compute_t<T> gamma = compute_t<T>(1);        // α/r
  bool scale_out_by_sigma = false;             // σ_out = σ, else 1
};

/// Gradients to accumulate into; absent = not needed. R and sigma: (1, 1), in compute_t<T>.
template <class T>
struct HypLoRAGrads {
  DeviceView<T> x, W0, x_a, A, B, bias;
  DeviceView<compute_t<T>> R, sigma;
};

/// Saved by the forward, plus the backward's scratch; reused across steps.
template <class T>
struct HypLoRASaved {
  DeviceTensor<T> a;                   // (N, R)  c1·x_a·Aᵀ
  DeviceTensor<T> Wa;                  // (N, R)  γσ_out·c2·a
  DeviceTensor<compute_t<T>> scalars;  // (N, 4)  ρ, c, τ, c2  (the CPU node's kRho, kC, kTau, kC2)
  DeviceTensor<compute_t<T>> M;        // (R, R)  BᵀB
  // backward scratch
  DeviceTensor<T> Ga;                  // (N, R)  G·B, then c1·g_a
  DeviceTensor<T> aw;                  // (N, R)  (D2/K)·s_y·a, so S = aᵀ·aw
  DeviceTensor<compute_t<T>> S;        // (R, R)
  DeviceTensor<compute_t<T>> part;     // (N, 2)  per-token contributions to ∂R, ∂σ
};

namespace detail {

// One block per token i. a_i holds U_i = x_a,i·Aᵀ on entry and c1·U_i on exit (Eq. (156)–(158)).
// Arithmetic in A = acc_t<T>; a_i and W_a,i are rounded to T once each, and the quadratic form
// and W_a read the stored (rounded) a_i, as the backward does.
template <class T>
__global__ void hyplora_rows_forward_kernel(const T* __restrict__ xa, std::int64_t Din, T* __restrict__ a,
                                            const acc_t<T>* __restrict__ M, int r, acc_t<T>* __restrict__ sc,
                                            T* __restrict__ Wa, acc_t<T> R, acc_t<T> sigma, acc_t<T> gso) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const T* x = xa + i * Din;
  A ss = A(0);
  for (std::int64_t k = threadIdx.x; k < Din; k += blockDim.x) {
    const A xk = to_acc(x[k]);
    ss += xk * xk;
  }
  ss = block_sum(ss);
  A rho, c;  // f_R(x/σ) = c1·x, c1 = c(ρ)/σ (Eq. (156)) — the CPU node's own scalar function
  ad::detail::hyplora_in_scalars(ss, sigma, R, rho, c);
  const A c1 = c / sigma;
  T* ai = a + i * r;
  for (int j = threadIdx.x; j < r; j += blockDim.x) ai[j] = from_acc<T>(to_acc(ai[j]) * c1);
  __syncthreads();  // every scaled a_i visible before the quadratic form reads it
  // |B a|² = aᵀ M a (Eq. (158)), in double as on the CPU: it can lose digits near B's null space.
  double q = 0.0;
  for (int j = threadIdx.x; j < r; j += blockDim.x) {
    double row = 0.0;
    for (int k = 0; k < r; ++k) row += static_cast<double>(M[j * r + k]) * static_cast<double>(to_acc(ai[k]));
    q += row * static_cast<double>(to_acc(ai[j]));
  }
  q = block_sum(q);
  A tau, c2;  // f_R⁻¹ coefficient (Eq. (157))
  ad::detail::hyplora_out_scalars(q, R, tau, c2);
  if (threadIdx.x == 0) {
    sc[4 * i + 0] = rho;
    sc[4 * i + 1] = c;
    sc[4 * i + 2] = tau;
    sc[4 * i + 3] = c2;
  }
  for (int j = threadIdx.x; j < r; j += blockDim.x) Wa[i * r + j] = from_acc<T>(gso * c2 * to_acc(ai[j]));
}

// One block per token i: the per-token part of Eq. (161)–(167). On entry Ga_i = (G·B)_i; on exit
// Ga_i = c1·g_a,i. Writes aw_i = (D2/K)·s_y·a_i (for ∂B's second term), part_i = (∂R_i, ∂σ_i),
// and adds the radial part of ∂x_a (Eq. (165)) into gX when present. Arithmetic in A = acc_t<T>:
// g_a stays in A for s_x, and c1·g_a is rounded to T once.
template <class T>
__global__ void hyplora_rows_backward_kernel(const T* __restrict__ a, const acc_t<T>* __restrict__ sc,
                                             const acc_t<T>* __restrict__ M, int r, T* __restrict__ Ga,
                                             T* __restrict__ aw, acc_t<T>* __restrict__ part,
                                             const T* __restrict__ xa, T* __restrict__ gX, std::int64_t Din,
                                             acc_t<T> R, acc_t<T> sigma, acc_t<T> gso, bool sig_out) {
  using A = acc_t<T>;
  const std::int64_t i = blockIdx.x;
  const T* ai = a + i * r;
  T* gi = Ga + i * r;
  const A rho = sc[4 * i + 0], c = sc[4 * i + 1], tau = sc[4 * i + 2], c2 = sc[4 * i + 3];
  const A c1 = c / sigma, K = R * R;
  // s_y = γσ_out·(a·P)  (Eq. (161))
  A p = A(0);
  for (int j = threadIdx.x; j < r; j += blockDim.x) p += to_acc(ai[j]) * to_acc(gi[j]);
  const A s_y = gso * block_sum(p);  // block_sum syncs: all reads of gi precede the writes below
  const A D2 = asinhc_d2(tau, c2);
  const A wy = D2 / K * s_y;
  // g_a = γσ_out·c2·P + (D2/K)·s_y·(M a)  (Eq. (162)); each thread reads and rewrites only its own
  // gi[j] (with the c1 of Ga = c1 ⊙ g_a applied at once: one rounding to T).
  A ag = A(0);
  for (int j = threadIdx.x; j < r; j += blockDim.x) {
    A Ma = A(0);
    for (int k = 0; k < r; ++k) Ma += M[j * r + k] * to_acc(ai[k]);
    const A aj = to_acc(ai[j]);
    const A g = gso * c2 * to_acc(gi[j]) + wy * Ma;
    gi[j] = from_acc<T>(g * c1);
    ag += aj * g;
    aw[i * r + j] = from_acc<T>(wy * aj);
  }
  const A s_x = block_sum(ag) / c1;
  const ad::detail::HypLoRARowGrads<A> rg =
      ad::detail::hyplora_row_grads(ad::detail::HypLoRARowScalars<A>{rho, c, tau, c2}, s_x, s_y, sigma, R, sig_out);
  if (threadIdx.x == 0) {
    part[2 * i + 0] = rg.dR;  // Eq. (166)
    part[2 * i + 1] = rg.dS;  // Eq. (167)
  }
  if (gX) {  // radial part of ∂x_a (Eq. (165)): kx·x_a
    const A kx = rg.kx;
    for (std::int64_t k = threadIdx.x; k < Din; k += blockDim.x)
      gX[i * Din + k] = from_acc<T>(to_acc(gX[i * Din + k]) + kx * to_acc(xa[i * Din + k]));
  }
}

// Half storage only (float and double use cuBLAS): C (rows, r) += B (rows, r)·S (r, r) with S in
// float, each element of C read, added in float and rounded once. ∂B's second term, B·S
// (Eq. (163)): rows·r² multiply-adds, r ≤ a few dozen.
template <class T>
__global__ void add_times_small_kernel(const T* __restrict__ B, const acc_t<T>* __restrict__ S, std::int64_t rows,
                                       int r, T* __restrict__ C) {
  using A = acc_t<T>;
  const std::int64_t n = rows * r;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = e / r;              // row of B and C
    const int k = static_cast<int>(e % r);     // column of S and C
    const T* Bj = B + j * r;
    A s = A(0);
    for (int l = 0; l < r; ++l) s += to_acc(Bj[l]) * S[l * r + k];
    C[e] = from_acc<T>(to_acc(C[e]) + s);
  }
}

// One block: dR += Σ_i part_i0, dS += Σ_i part_i1 (either may be null), fixed order.
template <class T>
__global__ void hyplora_scalar_grads_kernel(const T* __restrict__ part, std::int64_t N, T* __restrict__ dR,
                                            T* __restrict__ dS) {
  T s0 = T(0), s1 = T(0);
  for (std::int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    s0 += part[2 * i];
    s1 += part[2 * i + 1];
  }
  s0 = block_sum(s0);
  s1 = block_sum(s1);
  if (threadIdx.x == 0) {
    if (dR) dR[0] += s0;
    if (dS) dS[0] += s1;
  }
}

template <class T>
void check_hyplora_inputs(const char* op, const HypLoRAInputs<T>& in) {
  check_linear_shapes<T>(op, in.x, in.W0, in.bias);
  if (in.x_a.rows != in.x.rows || in.x_a.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "x_a", in.x_a.rows, in.x_a.cols);
  if (in.A.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "A", in.A.rows, in.A.cols);
  if (in.B.rows != in.W0.rows || in.B.cols != in.A.rows) throw_shape(op, "A", in.A.rows, in.A.cols, "B", in.B.rows, in.B.cols);
  check_curvature(in.R * in.R);
  if (!(in.sigma > compute_t<T>(0)) || !std::isfinite(static_cast<double>(in.sigma)))
    throw value_error(std::string(op) + ": feature scale sigma must be finite and > 0, got " + std::to_string(static_cast<double>(in.sigma)));
}

}  // namespace detail

/// z (resized to (N, D_out)) = x·W0ᵀ + b + W_a·Bᵀ, saving a, W_a, the per-token scalars and M.
template <class T>
void hyplora_forward(const Context& ctx, const HypLoRAInputs<T>& in, DeviceTensor<T>& z, HypLoRASaved<T>& s) {
  detail::check_hyplora_inputs("cuda::hyplora_forward", in);
  using A = compute_t<T>;
  const Index N = in.x.rows, Din = in.x.cols, Dout = in.W0.rows, r = in.A.rows;
  const A gso = in.gamma * (in.scale_out_by_sigma ? in.sigma : A(1));
  z.resize(N, Dout, *ctx.alloc);
  s.a.resize(N, r, *ctx.alloc);
  s.Wa.resize(N, r, *ctx.alloc);
  s.scalars.resize(N, 4, *ctx.alloc);
  s.M.resize(r, r, *ctx.alloc);
  detail::linear_base_forward<T>(ctx, in.x, in.W0, in.bias, z.view());
  gemm<T>(ctx.blas, Op::N, Op::T, N, r, Din, A(1), in.x_a.data, Din, in.A.data, Din, A(0), s.a.data(), r);  // U
  gemm_mixed<T, A>(ctx.blas, Op::T, Op::N, r, r, Dout, A(1), in.B.data, r, in.B.data, r, A(0), s.M.data(), r);  // BᵀB
  if (N == 0) return;
  HYPLORA_LAUNCH(static_cast<unsigned>(N), detail::kRowThreads, 0, ctx.stream, detail::hyplora_rows_forward_kernel<T>)(
      in.x_a.data, Din, s.a.data(), s.M.data(), static_cast<int>(r), s.scalars.data(), s.Wa.data(), in.R, in.sigma, gso);
  HYPLORA_CUDA_CHECK_LAUNCH();
  gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, r, A(1), s.Wa.data(), r, in.B.data, r, A(1), z.data(), Dout);
}

/// Accumulates the gradients for G = ∂L/∂z (N, D_out) (Eq. (160)–(167)).
template <class T>
void hyplora_backward(const Context& ctx, const HypLoRAInputs<T>& in, HypLoRASaved<T>& s, DeviceView<const T> G,
                      const HypLoRAGrads<T>& grads) {
  const char* op = "cuda::hyplora_backward";
  using A = compute_t<T>;
  detail::check_hyplora_inputs(op, in);
  const Index N = in.x.rows, Din = in.x.cols, Dout = in.W0.rows, r = in.A.rows;
  if (G.rows != N || G.cols != Dout) throw_shape(op, "z", N, Dout, "G", G.rows, G.cols);
  if (s.a.rows() != N || s.a.cols() != r) throw_shape(op, "a (saved)", s.a.rows(), s.a.cols(), "expected", N, r);
  detail::check_grad_shape<T>(op, "x", in.x, grads.x);
  detail::check_grad_shape<T>(op, "W0", in.W0, grads.W0);
  detail::check_grad_shape<T>(op, "x_a", in.x_a, grads.x_a);
  detail::check_grad_shape<T>(op, "A", in.A, grads.A);
  detail::check_grad_shape<T>(op, "B", in.B, grads.B);
  if (in.bias.present()) detail::check_grad_shape<T>(op, "bias", in.bias, grads.bias);
  if (grads.R.present() && (grads.R.rows != 1 || grads.R.cols != 1)) throw_shape(op, "R", 1, 1, "dR", grads.R.rows, grads.R.cols);
  if (grads.sigma.present() && (grads.sigma.rows != 1 || grads.sigma.cols != 1)) throw_shape(op, "sigma", 1, 1, "dsigma", grads.sigma.rows, grads.sigma.cols);

  detail::linear_base_backward<T>(ctx, in.x, in.W0, G, grads.x, grads.W0, in.bias.present() ? grads.bias : DeviceView<T>{});
  const bool needA = grads.A.present(), needB = grads.B.present(), needX = grads.x_a.present(),
             needR = grads.R.present(), needS = grads.sigma.present();
  if (!(needA || needB || needX || needR || needS)) return;
  const A gso = in.gamma * (in.scale_out_by_sigma ? in.sigma : A(1));

  // ∂B, first term: Gᵀ·W_a (Eq. (163)).
  if (needB) gemm<T>(ctx.blas, Op::T, Op::N, Dout, r, N, A(1), G.data, Dout, s.Wa.data(), r, A(1), grads.B.data, r);
  s.Ga.resize(N, r, *ctx.alloc);
  s.aw.resize(N, r, *ctx.alloc);
  s.part.resize(N, 2, *ctx.alloc);
  gemm<T>(ctx.blas, Op::N, Op::N, N, r, Dout, A(1), G.data, Dout, in.B.data, r, A(0), s.Ga.data(), r);  // P = G·B
  if (N > 0) {
    HYPLORA_LAUNCH(static_cast<unsigned>(N), detail::kRowThreads, 0, ctx.stream, detail::hyplora_rows_backward_kernel<T>)(
        s.a.data(), s.scalars.data(), s.M.data(), static_cast<int>(r), s.Ga.data(), s.aw.data(), s.part.data(),
        in.x_a.data, needX ? grads.x_a.data : nullptr, Din, in.R, in.sigma, gso, in.scale_out_by_sigma);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  if (needB) {  // Eq. (163), second term: B·S with S = Σ (D2/K)·s_y·a aᵀ = aᵀ·aw
    s.S.resize(r, r, *ctx.alloc);
    gemm_mixed<T, A>(ctx.blas, Op::T, Op::N, r, r, N, A(1), s.a.data(), r, s.aw.data(), r, A(0), s.S.data(), r);
    if constexpr (is_half_v<T>) {  // B (T) times S (float): no cuBLAS type combination, a small kernel
      if (Dout > 0 && r > 0) {
        HYPLORA_LAUNCH(detail::flat_blocks(Dout * r), detail::kFlatThreads, 0, ctx.stream, detail::add_times_small_kernel<T>)(
            in.B.data, s.S.data(), Dout, static_cast<int>(r), grads.B.data);
        HYPLORA_CUDA_CHECK_LAUNCH();
      }
    } else {
      gemm<T>(ctx.blas, Op::N, Op::N, Dout, r, r, A(1), in.B.data, r, s.S.data(), r, A(1), grads.B.data, r);
    }
  }
  if (needA) gemm<T>(ctx.blas, Op::T, Op::N, r, Din, N, A(1), s.Ga.data(), r, in.x_a.data, Din, A(1), grads.A.data, Din);  // Eq. (164)
  if (needX) gemm<T>(ctx.blas, Op::N, Op::N, N, Din, r, A(1), s.Ga.data(), r, in.A.data, Din, A(1), grads.x_a.data, Din);  // Eq. (165)
  if (needR || needS) {  // Eq. (166)–(167)
    HYPLORA_LAUNCH(1, detail::kRowThreads, 0, ctx.stream, detail::hyplora_scalar_grads_kernel<A>)(
        s.part.data(), N, needR ? grads.R.data : nullptr, needS ? grads.sigma.data : nullptr);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace hyplora::cuda
