// hyplora/autodiff/ops_hyplora_official.hpp — the two HypLoRA branches of the published code,
// transcribed as fused tape nodes (docs/hyplora.md §3–§4, Eq. (175)–(193)):
//
//   hyplora_official_linear             `hyplora`            (MATH_NOTES §4.1), forward and the
//                                                            backward autograd gives for it;
//   hyplora_official_simplified_linear  `hyplora_simplified` (MATH_NOTES §3.3).
//
// They reproduce the published code, including where it departs from the geometry (the 1/K
// time component, the constant-norm region θ' < 1, the sphere-sign step of the simplified
// branch; docs/hyplora.md §3.2). For the geometrically exact layer use ops_hyplora.hpp; for the
// consistent stereographic layer ops_hyplora_stereographic.hpp.
//
// All three adapter nodes in this file and ops_hyplora_stereographic.hpp have the same shape:
// the input enters through a per-token coefficient, a = c1·A x_a, and leaves through another,
// out = w·B a, with c1 depending on |x_a| and w on |B a|. `detail::radial_lora_*` is that common
// skeleton (Eq. (184)–(189)): LoRA's two skinny GEMMs forward and four backward, |B a| read off
// aᵀ(BᵀB)a so y = B a is never stored, and eight scalars per token saved for the backward.
// Each node also has a `*_branch` form without the base map (z = the adapter's output alone),
// so the adapter's cost can be measured apart from the frozen GEMM (benchmarks/bench_adapters).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "hyplora/autodiff/detail/hyplora_official_rows.hpp"  // per-token scalars (shared with CUDA)
#include "hyplora/autodiff/detail/hyplora_token_pass.hpp"
#include "hyplora/autodiff/detail/hyplora_rows.hpp"  // threading helpers of the per-token passes
#include "hyplora/autodiff/detail/linear_base.hpp"   // also detail::gemm
#include "hyplora/autodiff/detail/narrow_gemm.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::ad {

namespace detail {
namespace radial_lora {

// kGa: P, then c1·g_a, then f ⊙ U for ∂B's R×R term; kScratch: the backward's
// hyplora_token_pass scratch (f = kappa·s_y·c1² per token and a slot per thread, then S).
enum Saved { kU = 0, kWa = 1, kSc = 2, kM = 3, kGa = 4, kScratch = 5, kSavedCount = 6 };

// Per-token scalars: the columns Col (kC1 … kBeta1, kCols) of detail/hyplora_official_rows.hpp.

/// Forward of the skeleton: writes U, M = BᵀB, the scalars and W_a = w·c1·U (N, R), then adds
/// W_a·Bᵀ to the node's value (which already holds the base map; a branch-only node has none and
/// assigns it). `row.input(n2, s)` fills kC1, kKappaX, kBeta0, kBeta1 from n2 = |x_a|²;
/// `row.output(q2, s)` fills kW, kKappa, kAlpha0, kAlpha1 from q2 = |y|² (formed in double: aᵀMa
/// loses digits when a is near B's null space). The per-token pass runs on OpenMP threads (rows
/// are independent); a non-finite row is thrown after it (the smallest index).
///   x_a: (N, D_in)  A: (R, D_in)  B: (D_out, R)  value: (N, D_out)
template <class T, class Row>
void forward(Tape<T>& t, int id, int xa, int A, int B, const Row& row, const char* op) {
  auto& n = t.node(id);
  n.saved.resize(kSavedCount);
  const auto Xa = t.value(xa);
  const auto Bv = t.value(B);
  const Index N = Xa.rows(), D = Xa.cols(), r = t.node(A).rows;
  Tensor<T>& U = n.saved[kU];
  Tensor<T>& Wa = n.saved[kWa];
  Tensor<T>& sc = n.saved[kSc];
  Tensor<T>& M = n.saved[kM];
  U.resize(N, r);
  Wa.resize(N, r);
  sc.resize(N, kCols);
  M.resize(r, r);
  gemm(T(1), Xa, false, t.value(A), true, T(0), U);
  narrow_gemm<T>(r, r, Bv.rows(), T(1), Bv.data(), r, true, Bv.data(), r, T(0), M.data(), r);
  Index bad = N;
  hyplora_run_team(N > 1 && N * (D + r * r) >= kHypLoRAParallelMinWork, [&](int tid, int nth) {
    Index i0, i1;
    hyplora_share(N, tid, nth, i0, i1);
    for (Index i = i0; i < i1; ++i) {
      const T* xi = Xa.data() + i * D;
      const T n2 = dot_lanes(xi, xi, D);
      if (!std::isfinite(static_cast<double>(n2))) {
#ifdef _OPENMP
#pragma omp critical(hyplora_radial_bad_row)
#endif
        bad = std::min(bad, i);
        continue;
      }
      T* s = sc.data() + i * kCols;
      row.input(n2, s);
      const T* ui = U.data() + i * r;
      const double uMu = quad_form_double(M.data(), ui, r);
      row.output(row_q2(s[kC1], uMu), s);
      const T wc = row_wa_coef(s);
      T* wi = Wa.data() + i * r;
      for (Index j = 0; j < r; ++j) wi[j] = wc * ui[j];
    }
  });
  if (bad < N)
    throw value_error(std::string(op) + ": input row " + std::to_string(bad) +
                      " is not finite (or its squared norm overflows)");
  gemm(T(1), Wa, false, Bv, true, n.ints[1] != 0 ? T(1) : T(0), t.value(id));
}

/// Backward of the skeleton (Eq. (186)–(189)), given G = ∂L/∂out of node `id`:
///   P = G·B;  s_y = G·y = c1·(U·P);  g_a = w·P + kappa·s_y·M a;  s_x = U·g_a;
///   ∂B += Gᵀ·W_a + B·Σ kappa·s_y·a aᵀ;  ∂A += (c1 g_a)ᵀ·X_a;
///   ∂x_a += (c1 g_a)·A + kappa_x·s_x·x_a;  ∂p_j += Σ alpha_j·s_y + beta_j·s_x (returned in dp).
/// Parents that need no gradient cost nothing; the scalar sums are accumulated in double. The
/// per-token work (M·u from a small GEMM per block of kHypLoRABlock tokens) runs on contiguous
/// shares of the blocks over OpenMP threads;
/// each thread sums its scalars, and the partials are added in thread order (bitwise-reproducible
/// for a fixed thread count); Σ f·u uᵀ is one small GEMM after the pass (hyplora_add_bs). The radial part of ∂x_a is written row by row there, so the tangential GEMM only
/// accumulates onto it.
template <class T>
void backward(Tape<T>& t, int id, int xa, int A, int B, const bool need_p[2], double dp[2]) {
  dp[0] = dp[1] = 0.0;
  const bool needA = t.needs_grad(A), needB = t.needs_grad(B), needX = t.needs_grad(xa);
  if (!(needA || needB || needX || need_p[0] || need_p[1])) return;
  auto& n = t.node(id);
  auto G = t.grad_acc(id);                  // (N, D_out)
  const Tensor<T>& U = n.saved[kU];         // (N, R)
  const Tensor<T>& Wa = n.saved[kWa];       // (N, R)
  const Tensor<T>& sc = n.saved[kSc];       // (N, kCols)
  const Tensor<T>& M = n.saved[kM];         // (R, R)
  Tensor<T>& Ga = n.saved[kGa];             // (N, R): P, then c1·g_a, then f ⊙ U
  Tensor<T>& scratch = n.saved[kScratch];   // f, per-thread M·u slots; then S
  const auto Xa = t.value(xa);
  const auto Bv = t.value(B);
  const Index N = U.rows(), r = U.cols(), D = Xa.cols();

  T* dB = nullptr;  // ∂B's buffer (D_out, R), when B needs one
  if (needB) {
    auto o = t.grad_out(B);
    dB = o.view.data();
    gemm(T(1), G, true, Wa, false, o.fresh ? T(0) : T(1), o.view);
  }
  Ga.resize(N, r);
  gemm(T(1), G, false, Bv, false, T(0), Ga);
  T* gX = nullptr;  // ∂x_a's buffer (N, D_in): assigned by the radial part when fresh
  bool gX_fresh = false;
  if (needX) {
    auto o = t.grad_out(xa);
    gX = o.view.data();
    gX_fresh = o.fresh;
  }
  const bool par = N * ((needX ? D : 0) + 2 * r * r) >= kHypLoRAParallelMinWork;
  const auto sums = hyplora_token_pass<T>(N, r, par, scratch, [&](Index i0, Index nb, T* Q, T* f, double& s0, double& s1) {
    hyplora_block_times_m(U.data() + i0 * r, nb, r, M.data(), Q);  // Q = U·M
    for (Index i = i0; i < i0 + nb; ++i) {
      T* gi = Ga.data() + i * r;
      const T* qi = Q + (i - i0) * r;
      const T* ui = U.data() + i * r;
      const T* s = sc.data() + i * kCols;
      const T c1 = s[kC1], w = s[kW];
      const T s_y = row_s_y(s, dot_lanes(ui, gi, r));
      const T m = row_ga_coef(s, s_y);
      for (Index j = 0; j < r; ++j) gi[j] = w * gi[j] + m * qi[j];
      const T s_x = dot_lanes(ui, gi, r);
      if (need_p[0]) s0 += row_param_grad(s, 0, s_y, s_x);
      if (need_p[1]) s1 += row_param_grad(s, 1, s_y, s_x);
      if (needX) {
        const T kx = row_kx(s, s_x);
        const T* xi = Xa.data() + i * D;
        T* gxi = gX + i * D;
        if (gX_fresh)
          for (Index j = 0; j < D; ++j) gxi[j] = kx * xi[j];
        else if (s[kKappaX] != T(0))
          for (Index j = 0; j < D; ++j) gxi[j] += kx * xi[j];
      }
      for (Index j = 0; j < r; ++j) gi[j] *= c1;
      f[i] = m * c1;  // Σ f·u uᵀ = Σ kappa·s_y·a aᵀ
    }
  });
  dp[0] = sums.first;
  dp[1] = sums.second;
  if (needA) {
    auto o = t.grad_out(A);
    gemm(T(1), Ga, true, Xa, false, o.fresh ? T(0) : T(1), o.view);
  }
  if (needX) gemm<T>(N, D, r, T(1), Ga.data(), r, false, t.value(A).data(), D, false, T(1), gX, D);
  if (needB) hyplora_add_bs(U.data(), N, r, Ga.data(), scratch, Bv.data(), Bv.rows(), dB);
}

/// Shape checks shared by the adapter nodes: x, x_a (N, D_in), W0 (D_out, D_in), A (R, D_in),
/// B (D_out, R), optional bias (1, D_out), and each named scalar (1, 1). A branch-only node has
/// no x, W0 and bias (W0 invalid): then only x_a, A, B and the scalars are checked.
template <class T>
void check_shapes(const char* op, Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, int bias,
                  std::initializer_list<std::pair<const char*, Var<T>>> scalars) {
  if (W0.valid()) {
    check_linear_shapes(op, x, W0, bias);
    if (x_a.rows() != x.rows() || x_a.cols() != x.cols()) throw_shape(op, "x", x.rows(), x.cols(), "x_a", x_a.rows(), x_a.cols());
    if (A.cols() != x.cols()) throw_shape(op, "x", x.rows(), x.cols(), "A", A.rows(), A.cols());
    if (B.rows() != W0.rows() || B.cols() != A.rows()) throw_shape(op, "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  } else {
    if (A.cols() != x_a.cols()) throw_shape(op, "x_a", x_a.rows(), x_a.cols(), "A", A.rows(), A.cols());
    if (B.cols() != A.rows()) throw_shape(op, "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  }
  for (const auto& [name, v] : scalars)
    if (v.rows() != 1 || v.cols() != 1) throw_shape(op, name, v.rows(), v.cols(), "expected", 1, 1);
}

/// Pushes an adapter node with parents {x, W0, x_a, A, B, scalars... [, bias]}, ints {bias id,
/// has base}, attrs {γ}, and writes the base map x·W0ᵀ (+ b) into its value. Without a base
/// (W0 invalid: the `*_branch` nodes, value = the adapter alone) x_a stands in as parents 0
/// and 1, and ints[1] = 0 tells forward() and base_backward() to skip the base.
template <class T>
int push_node(const char* op, BackwardFn<T> backward, Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B,
              std::initializer_list<Var<T>> scalars, int bias, double gamma) {
  Tape<T>& t = *x_a.tape;
  const bool base = W0.valid();
  const int id = t.push(op, x_a.rows(), B.rows(), backward,
                        {base ? x.id : x_a.id, base ? W0.id : x_a.id, x_a.id, A.id, B.id});
  for (const Var<T>& v : scalars) t.add_parent(id, v.id);
  if (bias >= 0) t.add_parent(id, bias);
  auto& n = t.node(id);
  n.ints.assign({static_cast<std::int64_t>(bias), base ? 1 : 0});
  n.attrs[0] = gamma;
  if (base) linear_base_forward(t, id, x.id, W0.id, bias);
  return id;
}

/// The base map's backward (dx, dW0, db), skipped for a branch-only node. The nodes call it after
/// backward(): x_a is usually x itself, and once the radial part has written ∂x the base GEMM
/// accumulates (β = 1), which spares OpenBLAS its zero-fill of C.
template <class T>
void base_backward(Tape<T>& t, int id) {
  const auto& n = t.node(id);
  if (n.ints[1] != 0) linear_base_backward(t, id, n.parents[0], n.parents[1], static_cast<int>(n.ints[0]));
}

template <class T>
void throw_value(const char* op, const char* what, T v) {
  throw value_error(std::string(op) + ": " + what + ", got " + std::to_string(static_cast<double>(v)));
}

}  // namespace radial_lora

// ---- official `hyplora` ------------------------------------------------------------------------

// The per-token scalars of the official branch: OfficialRow (detail/hyplora_official_rows.hpp).

// parents: x, W0, x_a, A, B, θ, s [, bias]; ints: {bias id, has base}; attrs: {γ}.
template <class T>
void hyplora_official_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int xa = n.parents[2], A = n.parents[3], B = n.parents[4], th = n.parents[5], sid = n.parents[6];
  const bool need_p[2] = {t.needs_grad(th), t.needs_grad(sid)};
  double dp[2];
  radial_lora::backward(t, id, xa, A, B, need_p, dp);
  radial_lora::base_backward(t, id);
  if (need_p[0]) {
    // ∂L/∂θ = ∂L/∂K · sigmoid(θ), then the published hook clamps it to ±0.01 (Eq. (189)).
    const double d = official_theta_grad(dp[0], static_cast<double>(stable_sigmoid(t.value(th)(0, 0))));
    t.grad_acc(th)(0, 0) += static_cast<T>(d);
  }
  if (need_p[1]) t.grad_acc(sid)(0, 0) += static_cast<T>(dp[1]);
}

// ---- official `hyplora_simplified` -------------------------------------------------------------

// The per-token scalars of the simplified branch: OfficialSimplifiedRow (detail/hyplora_official_rows.hpp).

// parents: x, W0, x_a, A, B, k [, bias]; ints: {bias id, has base}; attrs: {γ}.
template <class T>
void hyplora_official_simplified_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int xa = n.parents[2], A = n.parents[3], B = n.parents[4], kid = n.parents[5];
  const bool need_p[2] = {t.needs_grad(kid), false};
  double dp[2];
  radial_lora::backward(t, id, xa, A, B, need_p, dp);
  radial_lora::base_backward(t, id);
  if (need_p[0]) t.grad_acc(kid)(0, 0) += static_cast<T>(dp[0]);
}

// The two nodes, with a base map (x, W0 valid) or as the branch alone (x, W0, bias invalid).
template <class T>
Var<T> hyplora_official_node(const char* op, Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> theta,
                             Var<T> s, double gamma, Var<T> bias) {
  const int b = bias.valid() ? bias.id : -1;
  radial_lora::check_shapes(op, x, W0, x_a, A, B, b, {{"theta", theta}, {"s", s}});
  const T th = theta.value()(0, 0), sv = s.value()(0, 0);
  if (!std::isfinite(static_cast<double>(th))) radial_lora::throw_value(op, "theta must be finite", th);
  if (!(sv != T(0)) || !std::isfinite(static_cast<double>(sv)))
    radial_lora::throw_value(op, "feature scale s must be finite and non-zero", sv);
  const T K = official_curvature(SoftplusF::f(th, T(0), T(0)));
  const int id = radial_lora::push_node(op, &hyplora_official_backward<T>, x, W0, x_a, A, B, {theta, s}, b, gamma);
  const OfficialRow<T> row{K, static_cast<T>(std::sqrt(K)), sv, static_cast<T>(gamma)};
  radial_lora::forward(*x_a.tape, id, x_a.id, A.id, B.id, row, op);
  return Var<T>{x_a.tape, id};
}

template <class T>
Var<T> hyplora_official_simplified_node(const char* op, Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B,
                                        Var<T> k, double gamma, Var<T> bias) {
  const int b = bias.valid() ? bias.id : -1;
  radial_lora::check_shapes(op, x, W0, x_a, A, B, b, {{"k", k}});
  const T kv = k.value()(0, 0);
  if (!(kv > T(0)) || !std::isfinite(static_cast<double>(kv)))
    radial_lora::throw_value(op, "k must be finite and > 0", kv);
  const int id = radial_lora::push_node(op, &hyplora_official_simplified_backward<T>, x, W0, x_a, A, B, {k}, b, gamma);
  using std::abs;
  using std::sqrt;
  const OfficialSimplifiedRow<T> row{kv, sqrt(abs(kv)), static_cast<T>(gamma)};
  radial_lora::forward(*x_a.tape, id, x_a.id, A.id, B.id, row, op);
  return Var<T>{x_a.tape, id};
}

}  // namespace detail

/// The published `hyplora` branch (docs/hyplora.md Eq. (175)–(179)), row-wise:
///   K = softplus(θ) + 1e-6,  R = √K,  n = max(|x_a|, 1e-7),
///   h = R·sinh(min(n/(sR), 12))·x_a/n,  y = B·A·h,
///   z0 = √(|y|² + 1/max(K, 1e-6)),  q = max(|y|, 1e-7),  θ' = z0/R,
///   g = √(2·max(θ'−1, 1e-6)) if θ' < 1.01 else arcosh(max(θ', 1+1e-7)),
///   z = x·W0ᵀ (+ b) + γ·R·g·y/q            (no multiplication by s).
///   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  θ, s: (1, 1)  b: (1, D_out)
/// The backward is what autograd gives for that code (Eq. (184)–(189)), including zero gradients
/// past the clamps, and the published hook: this node's contribution to ∂L/∂θ is clamped to
/// [−0.01, 0.01] in each backward call (the hook clamps θ's total gradient per call; with one
/// HypLoRA node per θ the two agree). γ = α/r. Throws value_error for a non-finite θ, s = 0 or a
/// non-finite s, or a non-finite input row.
template <class T>
Var<T> hyplora_official_linear(Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> theta, Var<T> s,
                               double gamma, Var<T> bias = Var<T>{}) {
  return detail::hyplora_official_node("hyplora_official_linear", x, W0, x_a, A, B, theta, s, gamma, bias);
}

/// The adapter branch of hyplora_official_linear alone, without the base map:
///   z = γ·R·g·y/q  (Eq. (175)–(179) without x·W0ᵀ + b).   x_a: (N, D_in) → z: (N, D_out)
/// Same node, forward and backward as hyplora_official_linear minus the frozen GEMM (for timing
/// the adapter apart from it, or for a caller that adds the base map itself).
template <class T>
Var<T> hyplora_official_branch(Var<T> x_a, Var<T> A, Var<T> B, Var<T> theta, Var<T> s, double gamma) {
  return detail::hyplora_official_node("hyplora_official_branch", Var<T>{}, Var<T>{}, x_a, A, B, theta, s, gamma,
                                       Var<T>{});
}

/// The published `hyplora_simplified` branch (docs/hyplora.md Eq. (190)–(193)), row-wise, with
/// k the raw trainable scalar (no softplus):
///   u = 2x_a/(1 + k|x_a|²),  y = B·A·u,  y0 = √(|y|² + k),
///   z = x·W0ᵀ (+ b) + γ·y/(1 + √|k|·y0).
///   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  k: (1, 1)  b: (1, D_out)
/// Step 1 is the inverse stereographic projection onto the sphere, not the hyperboloid; k is used
/// as K in y0 and as c in the last step (docs/hyplora.md §4). Transcribed as published for
/// k > 0; k ≤ 0 (where the published code divides by zero or takes √ of a negative number, and
/// whose gradient at k = 0 is NaN) throws value_error.
template <class T>
Var<T> hyplora_official_simplified_linear(Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> k,
                                          double gamma, Var<T> bias = Var<T>{}) {
  return detail::hyplora_official_simplified_node("hyplora_official_simplified_linear", x, W0, x_a, A, B, k, gamma,
                                                  bias);
}

/// The adapter branch of hyplora_official_simplified_linear alone (no x·W0ᵀ + b):
///   z = γ·y/(1 + √k·y0).   x_a: (N, D_in) → z: (N, D_out)
template <class T>
Var<T> hyplora_official_simplified_branch(Var<T> x_a, Var<T> A, Var<T> B, Var<T> k, double gamma) {
  return detail::hyplora_official_simplified_node("hyplora_official_simplified_branch", Var<T>{}, Var<T>{}, x_a, A, B,
                                                  k, gamma, Var<T>{});
}

}  // namespace hyplora::ad
