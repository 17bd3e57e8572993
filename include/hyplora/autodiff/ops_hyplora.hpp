// hyplora/autodiff/ops_hyplora.hpp — the fused HypLoRA node (exact variant, docs/math.md §6):
//
//   z = x·W0ᵀ + b + γ·σ_out·f_R⁻¹( B·A·f_R(x_a/σ) ),   f_R(v) = sinhc(|v|/R)·v,
//                                                       f_R⁻¹(y) = asinhc(|y|/R)·y,
//
// which is the paper's log_o(LLR(BA, exp_o(x))) with the correct time component (Eq. (152)).
//
// Cost is LoRA's plus O(N·(D + R²)): per token the forward needs |x| (one pass over x) and
// |y| = |B a|, which is read off the quadratic form aᵀ(BᵀB)a (R×R, in double) instead of forming
// y, so the two skinny GEMMs are the same as LoRA's and y is never stored. The backward
// (Eq. (160)–(166)) is LoRA's four skinny GEMMs plus one pass over x, a per-token M·a, and
// ∂B's R×R term as one small GEMM. Memory is LoRA's plus four scalars per token, BᵀB, and one
// scratch of max(N + a cache line per thread, R²) (detail/hyplora_token_pass.hpp): it saves
// a = A·f_R(x_a/σ) (N, R) and one (N, R) work buffer as LoRA does.
// The per-token passes run on the OpenMP threads the GEMMs use (contiguous shares of the rows),
// so at small widths they do not leave a thread idle; sums over tokens are per-thread partials
// added in thread order (reproducible for a fixed thread count).
// Every product is one detail::gemm with the right beta: no zero-fill passes over (N, D) buffers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "hyplora/autodiff/detail/hyplora_token_pass.hpp"
#include "hyplora/autodiff/detail/hyplora_rows.hpp"
#include "hyplora/autodiff/detail/linear_base.hpp"  // also detail::gemm
#include "hyplora/autodiff/detail/narrow_gemm.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::ad {

/// Options of the exact HypLoRA node.
struct HypLoRANodeOptions {
  double gamma = 1.0;          // α/r (or α/√r for rsLoRA)
  bool scale_out_by_sigma = false;  // σ_out = σ (reduces to LoRA as |x| → 0) or 1 (official scaling)
};

namespace detail {

// kWork is one (N, R) buffer reused: W_a = γσ_out·c2·a from the forward, read by the first
// backward (recomputed only if the backward runs again: ints[2] says whether it still holds W_a),
// then P = G·B, c1·g_a, and S or wy ⊙ a for ∂B's R×R term (hyplora_add_bs). HypLoRA thus holds
// LoRA's two N×R buffers plus 4 scalars per token. kScratch is the backward's
// hyplora_token_pass scratch: wy per token and a slot per thread, then S (R×R).
enum HypLoRASaved { kA = 0, kScalars = 1, kM = 2, kWork = 3, kScratch = 4, kSavedCount = 5 };
enum HypLoRAScalar { kRho = 0, kC = 1, kTau = 2, kC2 = 3 };

// parents: x, W0, x_a, A, B, R, σ [, bias]; ints: {bias id, has base, kWork holds W_a};
// attrs: {γ, σ_out flag}.
// A branch-only node (no x·W0ᵀ + b) has x_a in the x and W0 slots and ints[1] = 0.
template <class T>
void hyplora_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int x = n.parents[0], W0 = n.parents[1], xa = n.parents[2], A = n.parents[3], B = n.parents[4],
            Rid = n.parents[5], Sid = n.parents[6];
  const T gamma = static_cast<T>(n.attrs[0]);
  const bool sig_out = n.attrs[1] != 0.0;
  // The base map's backward runs last: x_a is usually x itself, and once the radial part below
  // has written ∂x its GEMM accumulates (β = 1), which spares OpenBLAS its zero-fill of C.
  const auto base_backward = [&] {
    if (n.ints[1] != 0) linear_base_backward(t, id, x, W0, static_cast<int>(n.ints[0]));
  };

  const bool needA = t.needs_grad(A), needB = t.needs_grad(B), needX = t.needs_grad(xa),
             needR = t.needs_grad(Rid), needS = t.needs_grad(Sid);
  if (!(needA || needB || needX || needR || needS)) return base_backward();

  auto G = t.grad_acc(id);                       // (N, D_out)
  const Tensor<T>& a = n.saved[kA];              // (N, R)
  const Tensor<T>& sc = n.saved[kScalars];       // (N, 4)
  const Tensor<T>& M = n.saved[kM];              // (R, R) = BᵀB
  Tensor<T>& Ga = n.saved[kWork];                // (N, R) scratch: W_a, P, c1·g_a, wy ⊙ a
  Tensor<T>& scratch = n.saved[kScratch];        // wy, per-thread M·a slots; then S
  const auto Xa = t.value(xa);
  const auto Bv = t.value(B);
  const T R = t.value(Rid)(0, 0), sigma = t.value(Sid)(0, 0), K = R * R;
  const T so = sig_out ? sigma : T(1);
  const T gso = gamma * so;
  const Index N = a.rows(), r = a.cols(), D = Xa.cols();

  // ∂B, first term: γσ_out·Gᵀ·(c2 ⊙ a) = Gᵀ·W_a  (Eq. (163)).
  T* dB = nullptr;  // ∂B's buffer (D_out, R), when B needs one
  if (needB) {
    if (n.ints[2] == 0) Ga = (gso * sc.col(kC2)).asDiagonal() * a;  // W_a again: a second backward
    auto o = t.grad_out(B);
    dB = o.view.data();
    gemm(T(1), G, true, Ga, false, o.fresh ? T(0) : T(1), o.view);
  }

  // P = G·B (N, R); then per token (Eq. (161)–(162)):
  //   s_y = γσ_out·(a·P),  wy = (D2(τ)/K)·s_y,  g_a = γσ_out·c2·P + wy·(M a),
  //   s_x = (a·g_a)/c1 = (c2·s_y + wy·τ²K)/c1    (aᵀMa = |y|² = τ²K, saved by the forward),
  // with M a for a block of kHypLoRABlock tokens (hyplora_block_times_m; hyplora_token_pass), and
  // ∂B's second term B·S, S = Σ wy·a aᵀ, after the pass (hyplora_add_bs). The radial part of
  // ∂x_a (Eq. (165)) is written here, row by row, so the tangential GEMM after the pass only
  // accumulates onto it.
  Ga.resize(N, r);
  gemm(T(1), G, false, Bv, false, T(0), Ga);
  n.ints[2] = 0;  // kWork no longer holds W_a
  T* gX = nullptr;  // ∂x_a's buffer (N, D_in): assigned by the radial part when fresh
  bool gX_fresh = false;
  if (needX) {
    auto o = t.grad_out(xa);
    gX = o.view.data();
    gX_fresh = o.fresh;
  }
  const bool par = N * ((needX ? D : 0) + 2 * r * r) >= kHypLoRAParallelMinWork;
  const auto sums = hyplora_token_pass<T>(N, r, par, scratch, [&](Index i0, Index nb, T* Q, T* w, double& dR, double& dS) {
    hyplora_block_times_m(a.data() + i0 * r, nb, r, M.data(), Q);  // Q = a·M
    for (Index i = i0; i < i0 + nb; ++i) {
      T* gi = Ga.data() + i * r;
      const T* qi = Q + (i - i0) * r;
      const T* ai = a.data() + i * r;
      const T rho = sc(i, kRho), c = sc(i, kC), tau = sc(i, kTau), c2 = sc(i, kC2);
      const T c1 = c / sigma;
      const T s_y = gso * dot_lanes(ai, gi, r);
      const T wy = asinhc_d2(tau, c2) / K * s_y;
      const T s_x = (c2 * s_y + wy * tau * tau * K) / c1;
      const HypLoRARowGrads<T> rg = hyplora_row_grads(HypLoRARowScalars<T>{rho, c, tau, c2}, s_x, s_y, sigma, R, sig_out);
      dR += static_cast<double>(rg.dR);
      dS += static_cast<double>(rg.dS);
      if (needX) {  // radial part of ∂x_a; the tangential c1·Aᵀg_a is the GEMM below
        const T* xi = Xa.data() + i * D;
        T* gxi = gX + i * D;
        if (gX_fresh)
          for (Index j = 0; j < D; ++j) gxi[j] = rg.kx * xi[j];
        else
          for (Index j = 0; j < D; ++j) gxi[j] += rg.kx * xi[j];
      }
      const T p = c1 * gso * c2, q = c1 * wy;  // Ga = c1 ⊙ g_a
      for (Index j = 0; j < r; ++j) gi[j] = p * gi[j] + q * qi[j];
      w[i] = wy;
    }
  });
  const double dRs = sums.first, dSs = sums.second;
  if (needA) {                                                 // Eq. (164)
    auto dA = t.grad_out(A);
    gemm(T(1), Ga, true, Xa, false, dA.fresh ? T(0) : T(1), dA.view);
  }
  if (needX) gemm<T>(N, D, r, T(1), Ga.data(), r, false, t.value(A).data(), D, false, T(1), gX, D);  // Eq. (165), tangential
  if (needB) hyplora_add_bs(a.data(), N, r, Ga.data(), scratch, Bv.data(), Bv.rows(), dB);  // Eq. (163), 2nd term
  if (needR) t.grad_acc(Rid)(0, 0) += static_cast<T>(dRs);            // Eq. (166)
  if (needS) t.grad_acc(Sid)(0, 0) += static_cast<T>(dSs);            // Eq. (167)
  base_backward();
}

// The node, with a base map (x, W0 valid) or as the branch alone (x, W0, bias invalid).
template <class T>
Var<T> hyplora_node(const char* op, Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> R, Var<T> sigma,
                    HypLoRANodeOptions opt, Var<T> bias) {
  Tape<T>& t = *x_a.tape;
  const bool base = W0.valid();
  const int b = bias.valid() ? bias.id : -1;
  if (base) {
    check_linear_shapes(op, x, W0, b);
    if (x_a.rows() != x.rows() || x_a.cols() != x.cols()) throw_shape(op, "x", x.rows(), x.cols(), "x_a", x_a.rows(), x_a.cols());
    if (B.rows() != W0.rows()) throw_shape(op, "weight", W0.rows(), W0.cols(), "B", B.rows(), B.cols());
  }
  if (A.cols() != x_a.cols()) throw_shape(op, "x_a", x_a.rows(), x_a.cols(), "A", A.rows(), A.cols());
  if (B.cols() != A.rows()) throw_shape(op, "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  if (R.rows() != 1 || R.cols() != 1) throw shape_error(std::string(op) + ": R must be (1, 1), got " + R.shape().str());
  if (sigma.rows() != 1 || sigma.cols() != 1) throw shape_error(std::string(op) + ": sigma must be (1, 1), got " + sigma.shape().str());
  const T Rv = R.value()(0, 0), sv = sigma.value()(0, 0);
  check_curvature(Rv * Rv);
  if (!(sv > T(0)) || !std::isfinite(static_cast<double>(sv)))
    throw value_error(std::string(op) + ": feature scale sigma must be finite and > 0, got " + std::to_string(static_cast<double>(sv)));

  const int id = t.push(op, x_a.rows(), B.rows(), &hyplora_backward<T>,
                        {base ? x.id : x_a.id, base ? W0.id : x_a.id, x_a.id, A.id, B.id, R.id, sigma.id});
  if (b >= 0) t.add_parent(id, b);
  auto& n = t.node(id);
  n.ints.assign({static_cast<std::int64_t>(b), base ? 1 : 0, 1});  // [2]: kWork holds W_a (until the backward)
  n.attrs[0] = opt.gamma;
  n.attrs[1] = opt.scale_out_by_sigma ? 1.0 : 0.0;
  n.saved.resize(kSavedCount);
  const Index N = x_a.rows(), r = A.rows(), D = x_a.cols();
  const T gso = static_cast<T>(opt.gamma) * (opt.scale_out_by_sigma ? sv : T(1));

  if (base) linear_base_forward(t, id, x.id, W0.id, b);
  Tensor<T>& a = n.saved[kA];
  Tensor<T>& Wa = n.saved[kWork];
  Tensor<T>& sc = n.saved[kScalars];
  Tensor<T>& M = n.saved[kM];
  a.resize(N, r);
  Wa.resize(N, r);
  sc.resize(N, 4);
  M.resize(r, r);
  const auto Xa = t.value(x_a.id);
  const auto Bv = t.value(B.id);
  gemm(T(1), Xa, false, t.value(A.id), true, T(0), a);  // U = x_a·Aᵀ; scaled to a = c1·U below
  const Index Do = Bv.rows();
  narrow_gemm<T>(r, r, Do, T(1), Bv.data(), r, true, Bv.data(), r, T(0), M.data(), r);  // |B a|² = aᵀ M a  (Eq. (158))
  narrow_gemm<T>(N, r, r, T(1), a.data(), r, false, M.data(), r, T(0), Wa.data(), r);  // U·M into the W_a buffer
  // One pass over the tokens, on OpenMP threads (rows are independent): |x_a| gives ρ and c1
  // (Eq. (156)); |y|² = c1²·(U·M)·U, the row dot accumulated in double (it can lose digits when
  // a is near B's null space), gives τ and c2 (Eq. (157)); then a = c1·U and W_a = γσ_out·c2·a.
  // A non-finite row is recorded (the smallest index, so the message does not depend on the
  // threads) and thrown after the loop: an exception must not leave a parallel region.
  Index bad = N;
  hyplora_run_team(N > 1 && N * D >= kHypLoRAParallelMinWork, [&](int tid, int nth) {
    Index i0, i1;
    hyplora_share(N, tid, nth, i0, i1);
    for (Index i = i0; i < i1; ++i) {
      const T* xi = Xa.data() + i * D;
      T rho, c;
      hyplora_in_scalars(dot_lanes(xi, xi, D), sv, Rv, rho, c);
      if (!std::isfinite(static_cast<double>(rho))) {
#ifdef _OPENMP
#pragma omp critical(hyplora_bad_row)
#endif
        bad = std::min(bad, i);
        continue;
      }
      const T c1 = c / sv;
      T* ai = a.data() + i * r;
      T* wi = Wa.data() + i * r;
      const double q2 = dot_lanes_double(wi, ai, r) * static_cast<double>(c1) * static_cast<double>(c1);
      T tau, c2;
      hyplora_out_scalars(q2, Rv, tau, c2);
      for (Index j = 0; j < r; ++j) ai[j] *= c1;
      for (Index j = 0; j < r; ++j) wi[j] = gso * c2 * ai[j];
      sc(i, kRho) = rho;
      sc(i, kC) = c;
      sc(i, kTau) = tau;
      sc(i, kC2) = c2;
    }
  });
  if (bad < N)
    throw value_error(std::string(op) + ": input row " + std::to_string(bad) + " is not finite (or its norm overflows)");
  gemm(T(1), Wa, false, Bv, true, base ? T(1) : T(0), t.value(id));
  return Var<T>{&t, id};
}

}  // namespace detail

/// The exact HypLoRA linear node (docs/math.md Eq. (152)):
///   z = x·W0ᵀ (+ b) + γ·σ_out·f_R⁻¹( f_R(x_a/σ)·Aᵀ·Bᵀ ),   row-wise.
///   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  R, σ: (1, 1)  b: (1, D_out)
/// R = √K is a tape value so a learnable curvature (K = softplus(θ) + ε) composes from
/// primitive ops; σ is the feature scale (1 for the plain layer). σ_out = σ when
/// `scale_out_by_sigma`, else 1.
template <class T>
Var<T> hyplora_linear(Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> R, Var<T> sigma,
                      HypLoRANodeOptions opt = {}, Var<T> bias = Var<T>{}) {
  if (!x.valid() || !W0.valid()) throw value_error("hyplora_linear: x and W0 are required (hyplora_branch() is the branch alone)");
  return detail::hyplora_node("hyplora_linear", x, W0, x_a, A, B, R, sigma, opt, bias);
}

/// The adapter branch of hyplora_linear alone (no x·W0ᵀ + b), same node and backward:
///   z = γ·σ_out·f_R⁻¹( f_R(x_a/σ)·Aᵀ·Bᵀ ).   x_a: (N, D_in) → z: (N, D_out)
template <class T>
Var<T> hyplora_branch(Var<T> x_a, Var<T> A, Var<T> B, Var<T> R, Var<T> sigma, HypLoRANodeOptions opt = {}) {
  return detail::hyplora_node("hyplora_branch", Var<T>{}, Var<T>{}, x_a, A, B, R, sigma, opt, Var<T>{});
}


}  // namespace hyplora::ad
