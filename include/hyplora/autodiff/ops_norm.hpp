// hyplora/autodiff/ops_norm.hpp — fused layer_norm and rms_norm with hand-derived backward.
//
// Each op saves two (layer_norm: mean, rstd) or one (rms_norm: rstd) scalar per row and recomputes
// the normalised row x̂ in backward from x, which the tape keeps anyway: no (N, C) copy is saved.
//
// Derivation (row-wise, C columns, g = ∂L/∂y, ĝ = g ⊙ γ):
//   layer_norm  x̂ = (x − μ)·r,  r = 1/√(var + eps),  y = x̂ ⊙ γ + β
//               dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)),  dγ = Σ_rows g ⊙ x̂,  dβ = Σ_rows g
//   rms_norm    x̂ = x·r,  r = 1/√(mean(x²) + eps),  y = x̂ ⊙ γ
//               dx = r · (ĝ − x̂ · mean(ĝ ⊙ x̂)),  dγ = Σ_rows g ⊙ x̂
// (var is the biased variance, mean((x − μ)²), as in PyTorch's LayerNorm.)
#pragma once

#include <cmath>
#include <sstream>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::check_same_tape
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

template <class T>
void check_norm_args(const char* op, Var<T> x, Var<T> w, const char* w_name, T eps) {
  check_same_tape(op, x, w);
  if (w.rows() != 1 || w.cols() != x.cols()) throw_shape(op, "x", x.rows(), x.cols(), w_name, w.rows(), w.cols());
  if (!(eps >= T(0)) || !std::isfinite(static_cast<double>(eps))) {
    std::ostringstream s;
    s << op << ": eps must be finite and >= 0, got " << static_cast<double>(eps);
    throw value_error(s.str());
  }
}

// parents: x, gamma, beta; saved[0] (N, 2) = (mean, rstd) per row.
template <class T>
void layer_norm_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int ix = n.parents[0], ig = n.parents[1], ib = n.parents[2];
  const bool gx = t.needs_grad(ix), gg = t.needs_grad(ig), gb = t.needs_grad(ib);
  auto g = t.grad_acc(id);
  auto x = t.value(ix);
  auto G = t.value(ig);
  const auto gamma = G.row(0).array();
  const auto& stats = n.saved[0];
  const Index N = x.rows(), C = x.cols();
  if (!gx && !gg && !gb) return;
  // dx is assigned when its buffer is fresh (Tape::grad_out). dβ and dγ are summed over rows in
  // row order, contiguous rows at a time (colwise() on row-major data would not vectorise).
  bool fresh = false;
  T* dxp = nullptr;
  if (gx) {
    auto o = t.grad_out(ix);
    dxp = o.view.data();
    fresh = o.fresh;
  }
  TensorView<T> dx(dxp, gx ? N : 0, C);
  TensorView<T> dgamma(gg ? t.grad_acc(ig).data() : nullptr, gg ? 1 : 0, C);
  TensorView<T> dbeta(gb ? t.grad_acc(ib).data() : nullptr, gb ? 1 : 0, C);
  for (Index i = 0; i < N; ++i) {
    const T mu = stats(i, 0), r = stats(i, 1);
    const auto xhat = (x.row(i).array() - mu) * r;
    const auto gi = g.row(i).array();
    if (gx) {
      const T m1 = (gi * gamma).sum() / static_cast<T>(C);
      const T m2 = (gi * gamma * xhat).sum() / static_cast<T>(C);
      detail::accumulate(fresh, dx.row(i).array(), r * (gi * gamma - m1 - xhat * m2));
    }
    if (gg) dgamma.row(0).array() += gi * xhat;
    if (gb) dbeta.row(0) += g.row(i);
  }
}

// parents: x, gamma; saved[0] (N, 1) = rstd per row.
template <class T>
void rms_norm_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int ix = n.parents[0], ig = n.parents[1];
  const bool gx = t.needs_grad(ix), gg = t.needs_grad(ig);
  if (!gx && !gg) return;
  auto g = t.grad_acc(id);
  auto x = t.value(ix);
  auto G = t.value(ig);
  const auto gamma = G.row(0).array();
  const auto& rstd = n.saved[0];
  const Index N = x.rows(), C = x.cols();
  TensorView<T> dx(gx ? t.grad_acc(ix).data() : nullptr, gx ? N : 0, C);
  TensorView<T> dgamma(gg ? t.grad_acc(ig).data() : nullptr, gg ? 1 : 0, C);
  for (Index i = 0; i < N; ++i) {
    const T r = rstd(i, 0);
    const auto xhat = x.row(i).array() * r;
    const auto gi = g.row(i).array();
    if (gx) {
      const T m2 = (gi * gamma * xhat).sum() / static_cast<T>(C);
      dx.row(i).array() += r * (gi * gamma - xhat * m2);
    }
    if (gg) dgamma.row(0).array() += gi * xhat;
  }
}

}  // namespace detail

/// Layer normalisation over each row, then a per-column affine map.
/// x: (N, C)  gamma: (1, C)  beta: (1, C)  out: (N, C).
/// Throws shape_error when gamma or beta is not (1, C), value_error for eps < 0 or non-finite.
template <class T>
Var<T> layer_norm(Var<T> x, Var<T> gamma, Var<T> beta, T eps = T(1e-5)) {
  Tape<T>& t = *x.tape;
  detail::check_norm_args("layer_norm", x, gamma, "gamma", eps);
  detail::check_norm_args("layer_norm", x, beta, "beta", eps);
  const Index N = x.rows(), C = x.cols();
  const int id = t.push("layer_norm", N, C, &detail::layer_norm_backward<T>, {x.id, gamma.id, beta.id});
  auto& n = t.node(id);
  if (n.saved.empty()) n.saved.resize(1);
  n.saved[0].resize(N, 2);
  auto X = t.value(x.id);
  auto Y = t.value(id);
  auto Gm = t.value(gamma.id);
  auto Bt = t.value(beta.id);
  const auto gm = Gm.row(0).array();
  const auto bt = Bt.row(0).array();
  if (C == 0) return Var<T>{&t, id};
  for (Index i = 0; i < N; ++i) {
    using std::sqrt;
    const T mu = X.row(i).mean();
    const T var = (X.row(i).array() - mu).square().mean();  // two-pass: no E[x²] − μ² cancellation
    const T r = T(1) / sqrt(var + eps);
    n.saved[0](i, 0) = mu;
    n.saved[0](i, 1) = r;
    Y.row(i).array() = (X.row(i).array() - mu) * r * gm + bt;
  }
  return Var<T>{&t, id};
}

/// RMS normalisation over each row, then a per-column scale.
/// x: (N, C)  gamma: (1, C)  out: (N, C).
/// Throws shape_error when gamma is not (1, C), value_error for eps < 0 or non-finite.
template <class T>
Var<T> rms_norm(Var<T> x, Var<T> gamma, T eps = T(1e-6)) {
  Tape<T>& t = *x.tape;
  detail::check_norm_args("rms_norm", x, gamma, "gamma", eps);
  const Index N = x.rows(), C = x.cols();
  const int id = t.push("rms_norm", N, C, &detail::rms_norm_backward<T>, {x.id, gamma.id});
  auto& n = t.node(id);
  if (n.saved.empty()) n.saved.resize(1);
  n.saved[0].resize(N, 1);
  auto X = t.value(x.id);
  auto Y = t.value(id);
  auto Gm = t.value(gamma.id);
  const auto gm = Gm.row(0).array();
  if (C == 0) return Var<T>{&t, id};
  for (Index i = 0; i < N; ++i) {
    using std::sqrt;
    const T r = T(1) / sqrt(X.row(i).squaredNorm() / static_cast<T>(C) + eps);
    n.saved[0](i, 0) = r;
    Y.row(i).array() = X.row(i).array() * r * gm;
  }
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
