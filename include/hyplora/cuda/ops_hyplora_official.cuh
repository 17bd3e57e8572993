// hyplora/cuda/ops_hyplora_official.cuh — device twins of the two published HypLoRA branches
// (autodiff/ops_hyplora_official.hpp, docs/hyplora.md Eq. (175)–(193)):
//
//   hyplora_official_*             `hyplora`:            z = x·W0ᵀ + b + γ·R·g(θ')·y/q,
//   hyplora_official_simplified_*  `hyplora_simplified`: z = x·W0ᵀ + b + γ·y/(1 + √k·y0),
//
// and the radial skeleton they share with the stereographic node (cuda/ops_hyplora_stereographic.cuh):
// a = c1·A x_a, out = w·B a with c1 depending on |x_a| and w on |B a| (Eq. (184)–(189)). Same
// saved quantities and the same gradients as the CPU node: U = x_a·Aᵀ (N, R), W_a = w·c1·U (N, R),
// the eight per-token scalars (N, 8) in the CPU node's columns (radial_lora::Col) and M = BᵀB
// (R, R). The per-token scalars come from the same HYPLORA_HD row structs the CPU node calls
// (autodiff/detail/hyplora_official_rows.hpp: OfficialRow, OfficialSimplifiedRow, including the
// published clamps: sinh argument at 12, √(2e) below θ' = 1.01, q and n floored at 1e-7), and so
// do the per-token backward coefficients; one block per token computes them, GEMMs go to cuBLAS.
//
//   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  b: (1, D_out)
// W0 absent: the adapter branch alone (the CPU *_branch nodes), z = the adapter's output; x, b and
// the gradients of x, W0, b are then unused.
//
// The scalar parameters (θ and s, or k) are host scalars here (the CPU node reads them off the
// tape); their gradients are accumulated into (1, 1) device tensors, summed over tokens in double
// in a fixed order by one block. θ's gradient is ∂L/∂K·sigmoid(θ) clamped to ±0.01 per call, the
// published hook, as on the CPU (official_theta_grad). A non-finite input row, which the CPU node
// rejects with value_error, gives non-finite outputs here (a kernel cannot throw). Used by the device
// tape (cuda/graph.cuh); ad::Tape does not dispatch here.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "hyplora/autodiff/detail/hyplora_official_rows.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"  // SoftplusF, stable_sigmoid: θ → K and sigmoid(θ), host side
#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

/// Saved by a radial HypLoRA forward (official, simplified, stereographic), plus the backward's
/// scratch; reused across steps.
template <class T>
struct RadialHypLoRASaved {
  DeviceTensor<T> U;        // (N, R)  x_a·Aᵀ
  DeviceTensor<T> Wa;       // (N, R)  w·c1·U
  DeviceTensor<T> scalars;  // (N, 8)  the CPU node's columns kC1, kW, kKappa, kKappaX, kAlpha0, kBeta0, kAlpha1, kBeta1
  DeviceTensor<T> M;        // (R, R)  BᵀB
  // backward scratch
  DeviceTensor<T> Ga;          // (N, R)  P = G·B, then c1·g_a
  DeviceTensor<T> fU;          // (N, R)  f·U (f = kappa·s_y·c1²), so ∂B's R×R term is S = Uᵀ·fU
  DeviceTensor<T> S;           // (R, R)
  DeviceTensor<double> part;   // (N, 2)  per-token contributions to ∂p_0, ∂p_1
};

/// The official `hyplora` node's operands. K = softplus(θ) + 1e-6, R = √K.
template <class T>
struct HypLoRAOfficialInputs {
  DeviceView<const T> x, W0, x_a, A, B, bias;  // bias may be absent; W0 absent: the branch alone
  T theta = T(0);                              // raw curvature parameter θ
  T s = T(1);                                  // feature scale s (input side only)
  T gamma = T(1);                              // α/r
};

/// Gradients to accumulate into; absent = not needed. theta and s: (1, 1).
template <class T>
struct HypLoRAOfficialGrads {
  DeviceView<T> x, W0, x_a, A, B, bias, theta, s;
};

/// The official `hyplora_simplified` node's operands (k the raw trainable scalar, k > 0).
template <class T>
struct HypLoRAOfficialSimplifiedInputs {
  DeviceView<const T> x, W0, x_a, A, B, bias;  // bias may be absent; W0 absent: the branch alone
  T k = T(1);
  T gamma = T(1);
};

/// Gradients to accumulate into; absent = not needed. k: (1, 1).
template <class T>
struct HypLoRAOfficialSimplifiedGrads {
  DeviceView<T> x, W0, x_a, A, B, bias, k;
};

namespace detail::radial {

/// The matrix operands and gradients every radial node has.
template <class T>
struct Operands {
  DeviceView<const T> x, W0, x_a, A, B, bias;
};
template <class T>
struct MatrixGrads {
  DeviceView<T> x, W0, x_a, A, B, bias;
};

// One block per token i (Eq. (184)–(186)): n2 = |x_a,i|², the row's input scalars, |y|² =
// c1²·U_iᵀ M U_i in double, the output scalars; writes the token's 8 scalars and W_a,i = w·c1·U_i.
template <class T, class Row>
__global__ void radial_rows_forward_kernel(const T* __restrict__ xa, std::int64_t Din, const T* __restrict__ U,
                                           const T* __restrict__ M, int r, T* __restrict__ sc, T* __restrict__ Wa,
                                           Row row) {
  namespace rl = ad::detail::radial_lora;
  const std::int64_t i = blockIdx.x;
  const T* x = xa + i * Din;
  T ss = T(0);
  for (std::int64_t k = threadIdx.x; k < Din; k += blockDim.x) ss += x[k] * x[k];
  ss = block_sum(ss);
  T o[rl::kCols];  // every thread forms the same scalars from the same block sums
  row.input(ss, o);
  const T* ui = U + i * r;
  double q = 0.0;  // U_iᵀ M U_i, in double as on the CPU: it loses digits near B's null space
  for (int j = threadIdx.x; j < r; j += blockDim.x) {
    double mu = 0.0;
    for (int k = 0; k < r; ++k) mu += static_cast<double>(M[j * r + k]) * static_cast<double>(ui[k]);
    q += mu * static_cast<double>(ui[j]);
  }
  q = block_sum(q);
  row.output(rl::row_q2(o[rl::kC1], q), o);
  if (threadIdx.x == 0)
    for (int c = 0; c < rl::kCols; ++c) sc[i * rl::kCols + c] = o[c];
  const T wc = rl::row_wa_coef(o);
  for (int j = threadIdx.x; j < r; j += blockDim.x) Wa[i * r + j] = wc * ui[j];
}

// One block per token i: the per-token part of Eq. (186)–(189). On entry Ga_i = P_i = (G·B)_i; on
// exit Ga_i = c1·g_a,i with g_a = w·P + m·(M U_i). Writes fU_i = f·U_i (∂B's R×R term),
// part_i = the token's (∂p_0, ∂p_1) contributions, and adds the radial part of ∂x_a (kx·x_a,i)
// into gX when present.
template <class T>
__global__ void radial_rows_backward_kernel(const T* __restrict__ U, const T* __restrict__ sc,
                                            const T* __restrict__ M, int r, T* __restrict__ Ga, T* __restrict__ fU,
                                            double* __restrict__ part, const T* __restrict__ xa, T* __restrict__ gX,
                                            std::int64_t Din) {
  namespace rl = ad::detail::radial_lora;
  const std::int64_t i = blockIdx.x;
  const T* ui = U + i * r;
  T* gi = Ga + i * r;
  const T* s = sc + i * rl::kCols;
  T p = T(0);
  for (int j = threadIdx.x; j < r; j += blockDim.x) p += ui[j] * gi[j];
  const T s_y = rl::row_s_y(s, block_sum(p));  // block_sum syncs: all reads of gi precede the writes below
  const T m = rl::row_ga_coef(s, s_y);
  const T w = s[rl::kW];
  T ag = T(0);
  for (int j = threadIdx.x; j < r; j += blockDim.x) {  // each thread rewrites only its own gi[j]
    T Mu = T(0);
    for (int k = 0; k < r; ++k) Mu += M[j * r + k] * ui[k];
    const T g = w * gi[j] + m * Mu;
    gi[j] = g;
    ag += ui[j] * g;
  }
  const T s_x = block_sum(ag);
  if (threadIdx.x == 0) {
    part[2 * i + 0] = rl::row_param_grad(s, 0, s_y, s_x);
    part[2 * i + 1] = rl::row_param_grad(s, 1, s_y, s_x);
  }
  if (gX) {
    const T kx = rl::row_kx(s, s_x);
    for (std::int64_t k = threadIdx.x; k < Din; k += blockDim.x) gX[i * Din + k] += kx * xa[i * Din + k];
  }
  const T c1 = s[rl::kC1];
  const T f = m * c1;
  for (int j = threadIdx.x; j < r; j += blockDim.x) {
    gi[j] *= c1;
    fU[i * r + j] = f * ui[j];
  }
}

// One block: Σ_i part_i in double, fixed order; d0 += Σ part_i0 (or, with theta_hook, the
// official hook's clamp of Σ part_i0·sigmoid(θ)), d1 += Σ part_i1. Either may be null.
template <class T>
__global__ void radial_scalar_grads_kernel(const double* __restrict__ part, std::int64_t N, T* __restrict__ d0,
                                           T* __restrict__ d1, bool theta_hook, double sigmoid_theta) {
  double s0 = 0.0, s1 = 0.0;
  for (std::int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    s0 += part[2 * i];
    s1 += part[2 * i + 1];
  }
  s0 = block_sum(s0);
  s1 = block_sum(s1);
  if (threadIdx.x == 0) {
    if (d0) d0[0] += static_cast<T>(theta_hook ? ad::detail::official_theta_grad(s0, sigmoid_theta) : s0);
    if (d1) d1[0] += static_cast<T>(s1);
  }
}

/// The CPU node's shape checks (radial_lora::check_shapes), with or without the base map.
template <class T>
void check_shapes(const char* op, const Operands<T>& in) {
  if (in.W0.present()) {
    check_linear_shapes<T>(op, in.x, in.W0, in.bias);
    if (in.x_a.rows != in.x.rows || in.x_a.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "x_a", in.x_a.rows, in.x_a.cols);
    if (in.A.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "A", in.A.rows, in.A.cols);
    if (in.B.rows != in.W0.rows || in.B.cols != in.A.rows) throw_shape(op, "A", in.A.rows, in.A.cols, "B", in.B.rows, in.B.cols);
  } else {
    if (in.A.cols != in.x_a.cols) throw_shape(op, "x_a", in.x_a.rows, in.x_a.cols, "A", in.A.rows, in.A.cols);
    if (in.B.cols != in.A.rows) throw_shape(op, "A", in.A.rows, in.A.cols, "B", in.B.rows, in.B.cols);
  }
}

template <class T>
[[noreturn]] void throw_value(const char* op, const char* what, T v) {
  throw value_error(std::string(op) + ": " + what + ", got " + std::to_string(static_cast<double>(v)));
}

/// Throws shape_error unless a scalar parameter's gradient is absent or (1, 1).
template <class T>
void check_scalar_grad(const char* op, const char* name, DeviceView<T> g) {
  if (g.present() && (g.rows != 1 || g.cols != 1))
    throw_shape(op, name, 1, 1, (std::string("d") + name).c_str(), g.rows, g.cols);
}

/// z (resized to (N, D_out)) = [x·W0ᵀ + b] + W_a·Bᵀ, saving U, W_a, the scalars and M (Eq. (184)).
template <class T, class Row>
void forward(const Context& ctx, const Operands<T>& in, const Row& row, DeviceTensor<T>& z, RadialHypLoRASaved<T>& s) {
  const bool base = in.W0.present();
  const Index N = in.x_a.rows, Din = in.x_a.cols, Dout = in.B.rows, r = in.A.rows;
  z.resize(N, Dout, *ctx.alloc);
  s.U.resize(N, r, *ctx.alloc);
  s.Wa.resize(N, r, *ctx.alloc);
  s.scalars.resize(N, ad::detail::radial_lora::kCols, *ctx.alloc);
  s.M.resize(r, r, *ctx.alloc);
  if (base) linear_base_forward<T>(ctx, in.x, in.W0, in.bias, z.view());
  gemm<T>(ctx.blas, Op::N, Op::T, N, r, Din, T(1), in.x_a.data, Din, in.A.data, Din, T(0), s.U.data(), r);  // U = x_a·Aᵀ
  gemm<T>(ctx.blas, Op::T, Op::N, r, r, Dout, T(1), in.B.data, r, in.B.data, r, T(0), s.M.data(), r);      // M = BᵀB
  if (N == 0) return;
  HYPLORA_LAUNCH(static_cast<unsigned>(N), kRowThreads, 0, ctx.stream, radial_rows_forward_kernel<T, Row>)(
      in.x_a.data, Din, s.U.data(), s.M.data(), static_cast<int>(r), s.scalars.data(), s.Wa.data(), row);
  HYPLORA_CUDA_CHECK_LAUNCH();
  gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, r, T(1), s.Wa.data(), r, in.B.data, r, base ? T(1) : T(0), z.data(), Dout);
}

/// Accumulates the gradients for G = ∂L/∂z (N, D_out) (Eq. (186)–(189)): the base map's, then
///   ∂B += Gᵀ·W_a + B·(Uᵀ·fU);  ∂A += (c1 g_a)ᵀ·x_a;  ∂x_a += (c1 g_a)·A + kx·x_a;
///   ∂p_0, ∂p_1 += Σ_tokens (theta_hook: the official θ hook on ∂p_0).
/// Checks G, the saved U and the matrix gradients' shapes; the caller checks d0, d1.
template <class T>
void backward(const Context& ctx, const char* op, const Operands<T>& in, RadialHypLoRASaved<T>& s,
              DeviceView<const T> G, const MatrixGrads<T>& g, DeviceView<T> d0, DeviceView<T> d1, bool theta_hook,
              double sigmoid_theta) {
  namespace rl = ad::detail::radial_lora;
  const bool base = in.W0.present();
  const Index N = in.x_a.rows, Din = in.x_a.cols, Dout = in.B.rows, r = in.A.rows;
  if (G.rows != N || G.cols != Dout) throw_shape(op, "z", N, Dout, "G", G.rows, G.cols);
  if (s.U.rows() != N || s.U.cols() != r) throw_shape(op, "U (saved)", s.U.rows(), s.U.cols(), "expected", N, r);
  if (s.scalars.rows() != N || s.scalars.cols() != rl::kCols)
    throw_shape(op, "scalars (saved)", s.scalars.rows(), s.scalars.cols(), "expected", N, rl::kCols);
  if (base) {
    check_grad_shape<T>(op, "x", in.x, g.x);
    check_grad_shape<T>(op, "W0", in.W0, g.W0);
    if (in.bias.present()) check_grad_shape<T>(op, "bias", in.bias, g.bias);
  }
  check_grad_shape<T>(op, "x_a", in.x_a, g.x_a);
  check_grad_shape<T>(op, "A", in.A, g.A);
  check_grad_shape<T>(op, "B", in.B, g.B);

  if (base)
    linear_base_backward<T>(ctx, in.x, in.W0, G, g.x, g.W0, in.bias.present() ? g.bias : DeviceView<T>{});
  const bool needA = g.A.present(), needB = g.B.present(), needX = g.x_a.present(), need0 = d0.present(),
             need1 = d1.present();
  if (!(needA || needB || needX || need0 || need1)) return;

  // ∂B, first term: Gᵀ·W_a.
  if (needB) gemm<T>(ctx.blas, Op::T, Op::N, Dout, r, N, T(1), G.data, Dout, s.Wa.data(), r, T(1), g.B.data, r);
  s.Ga.resize(N, r, *ctx.alloc);
  s.fU.resize(N, r, *ctx.alloc);
  s.part.resize(N, 2, *ctx.alloc);
  gemm<T>(ctx.blas, Op::N, Op::N, N, r, Dout, T(1), G.data, Dout, in.B.data, r, T(0), s.Ga.data(), r);  // P = G·B
  if (N > 0) {
    HYPLORA_LAUNCH(static_cast<unsigned>(N), kRowThreads, 0, ctx.stream, radial_rows_backward_kernel<T>)(
        s.U.data(), s.scalars.data(), s.M.data(), static_cast<int>(r), s.Ga.data(), s.fU.data(), s.part.data(),
        in.x_a.data, needX ? g.x_a.data : nullptr, Din);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  if (needB) {  // second term: B·S, S = Σ f·U_i U_iᵀ = Uᵀ·fU (R, R)
    s.S.resize(r, r, *ctx.alloc);
    gemm<T>(ctx.blas, Op::T, Op::N, r, r, N, T(1), s.U.data(), r, s.fU.data(), r, T(0), s.S.data(), r);
    gemm<T>(ctx.blas, Op::N, Op::N, Dout, r, r, T(1), in.B.data, r, s.S.data(), r, T(1), g.B.data, r);
  }
  if (needA) gemm<T>(ctx.blas, Op::T, Op::N, r, Din, N, T(1), s.Ga.data(), r, in.x_a.data, Din, T(1), g.A.data, Din);
  if (needX) gemm<T>(ctx.blas, Op::N, Op::N, N, Din, r, T(1), s.Ga.data(), r, in.A.data, Din, T(1), g.x_a.data, Din);
  if (need0 || need1) {
    HYPLORA_LAUNCH(1, kRowThreads, 0, ctx.stream, radial_scalar_grads_kernel<T>)(
        s.part.data(), N, need0 ? d0.data : nullptr, need1 ? d1.data : nullptr, theta_hook, sigmoid_theta);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace detail::radial

namespace detail {

template <class T>
radial::Operands<T> official_operands(const HypLoRAOfficialInputs<T>& in) {
  return {in.x, in.W0, in.x_a, in.A, in.B, in.bias};
}
template <class T>
radial::Operands<T> official_operands(const HypLoRAOfficialSimplifiedInputs<T>& in) {
  return {in.x, in.W0, in.x_a, in.A, in.B, in.bias};
}

/// The CPU node's checks (hyplora_official_node) and its per-token row: K = softplus(θ) + 1e-6.
template <class T>
ad::detail::OfficialRow<T> official_row(const char* op, const HypLoRAOfficialInputs<T>& in) {
  radial::check_shapes(op, official_operands(in));
  if (!std::isfinite(static_cast<double>(in.theta))) radial::throw_value(op, "theta must be finite", in.theta);
  if (!(in.s != T(0)) || !std::isfinite(static_cast<double>(in.s)))
    radial::throw_value(op, "feature scale s must be finite and non-zero", in.s);
  const T K = ad::detail::official_curvature(ad::detail::SoftplusF::f(in.theta, T(0), T(0)));
  return ad::detail::OfficialRow<T>{K, static_cast<T>(std::sqrt(K)), in.s, in.gamma};
}

/// The CPU node's checks (hyplora_official_simplified_node) and its per-token row.
template <class T>
ad::detail::OfficialSimplifiedRow<T> official_simplified_row(const char* op,
                                                             const HypLoRAOfficialSimplifiedInputs<T>& in) {
  radial::check_shapes(op, official_operands(in));
  if (!(in.k > T(0)) || !std::isfinite(static_cast<double>(in.k)))
    radial::throw_value(op, "k must be finite and > 0", in.k);
  using std::abs;
  using std::sqrt;
  return ad::detail::OfficialSimplifiedRow<T>{in.k, sqrt(abs(in.k)), in.gamma};
}

}  // namespace detail

/// Official `hyplora` forward (Eq. (175)–(179)): z (resized to (N, D_out)) = [x·W0ᵀ + b] +
/// γ·R·g(θ')·y/q, saving what the backward needs.
template <class T>
void hyplora_official_forward(const Context& ctx, const HypLoRAOfficialInputs<T>& in, DeviceTensor<T>& z,
                              RadialHypLoRASaved<T>& s) {
  const auto row = detail::official_row("cuda::hyplora_official_forward", in);
  detail::radial::forward<T>(ctx, detail::official_operands(in), row, z, s);
}

/// Accumulates the official node's gradients for G = ∂L/∂z (N, D_out) (Eq. (184)–(189)), θ's
/// clamped to ±0.01 as the published hook does.
template <class T>
void hyplora_official_backward(const Context& ctx, const HypLoRAOfficialInputs<T>& in, RadialHypLoRASaved<T>& s,
                               DeviceView<const T> G, const HypLoRAOfficialGrads<T>& grads) {
  const char* op = "cuda::hyplora_official_backward";
  (void)detail::official_row(op, in);
  detail::radial::check_scalar_grad<T>(op, "theta", grads.theta);
  detail::radial::check_scalar_grad<T>(op, "s", grads.s);
  const double sig = static_cast<double>(ad::detail::stable_sigmoid(in.theta));  // as the CPU node: in T, then double
  detail::radial::backward<T>(ctx, op, detail::official_operands(in), s, G,
                              {grads.x, grads.W0, grads.x_a, grads.A, grads.B, grads.bias}, grads.theta, grads.s,
                              true, sig);
}

/// Official `hyplora_simplified` forward (Eq. (190)–(193)): z = [x·W0ᵀ + b] + γ·y/(1 + √k·y0).
template <class T>
void hyplora_official_simplified_forward(const Context& ctx, const HypLoRAOfficialSimplifiedInputs<T>& in,
                                         DeviceTensor<T>& z, RadialHypLoRASaved<T>& s) {
  const auto row = detail::official_simplified_row("cuda::hyplora_official_simplified_forward", in);
  detail::radial::forward<T>(ctx, detail::official_operands(in), row, z, s);
}

/// Accumulates the simplified node's gradients for G = ∂L/∂z (N, D_out).
template <class T>
void hyplora_official_simplified_backward(const Context& ctx, const HypLoRAOfficialSimplifiedInputs<T>& in,
                                          RadialHypLoRASaved<T>& s, DeviceView<const T> G,
                                          const HypLoRAOfficialSimplifiedGrads<T>& grads) {
  const char* op = "cuda::hyplora_official_simplified_backward";
  (void)detail::official_simplified_row(op, in);
  detail::radial::check_scalar_grad<T>(op, "k", grads.k);
  detail::radial::backward<T>(ctx, op, detail::official_operands(in), s, G,
                              {grads.x, grads.W0, grads.x_a, grads.A, grads.B, grads.bias}, grads.k,
                              DeviceView<T>{}, false, 0.0);
}

}  // namespace hyplora::cuda
