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
#include <utility>

#include "hyplora/autodiff/detail/column_chunks.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::check_same_tape, parallel_for
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

template <class T>
using RowArray = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <class T>
using ConstRowArray = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

// Parallel layout (OpenMP, from kParallelMinElems elements on): dx row by row (rows are
// independent); dγ and dβ by column chunks, each summing its rows in row order
// (detail/column_chunks.hpp), so every result is bitwise the serial one for any thread count.
// The serial row loops were ~1.5% of a GPT step's instructions but ran on one core while the
// GEMMs used two.

// dγ[c0, c0 + w) += Σ_i g_i ⊙ x̂_i and dβ[c0, c0 + w) += Σ_i g_i, rows in order, with
// x̂_i = (x_i − μ_i)·r_i and (μ_i, r_i) = stats(i). The sums run in local accumulators whose width
// is a compile-time constant for full chunks, so the loop vectorises: Eigen maps of 16 dynamic
// columns cost ~250 instructions per row and chunk (callgrind), more than the serial loop saved.
// Same additions in the same order as adding into dγ, dβ directly.
template <bool Full, class T, class Stats>
void norm_param_grads(Index N, Index C, Index c0, Index w, const T* g, const T* x, Stats&& stats, T* dgamma,
                      T* dbeta) {
  constexpr Index W = kColumnChunk;
  const Index n = Full ? W : w;
  const bool shared = dgamma && dgamma == dbeta;  // one node passed as gamma and beta
  T ag[W] = {}, ab[W] = {};
  for (Index c = 0; c < n; ++c) {
    ag[c] = dgamma ? dgamma[c0 + c] : T(0);
    ab[c] = dbeta && !shared ? dbeta[c0 + c] : T(0);
  }
  for (Index i = 0; i < N; ++i) {
    const auto st = stats(i);  // (μ_i, r_i)
    const T* gi = g + i * C + c0;
    const T* xi = x + i * C + c0;
    if constexpr (Full) {  // fixed-size Eigen arrays: explicit packets, no runtime trip count
      using A = Eigen::Array<T, 1, W>;
      Eigen::Map<A> AG(ag), AB(ab);
      const Eigen::Map<const A> G(gi), X(xi);
      AG += G * ((X - st.first) * st.second);
      AB += G;
    } else {
      for (Index c = 0; c < n; ++c) {
        ag[c] += gi[c] * ((xi[c] - st.first) * st.second);
        ab[c] += gi[c];
      }
    }
  }
  for (Index c = 0; c < n; ++c) {
    if (shared) {
      dgamma[c0 + c] = ag[c] + ab[c];
      continue;
    }
    if (dgamma) dgamma[c0 + c] = ag[c];
    if (dbeta) dbeta[c0 + c] = ab[c];
  }
}

template <class T, class Stats>
void norm_param_grads(Index N, Index C, const T* g, const T* x, Stats&& stats, T* dgamma, T* dbeta) {
  for_column_chunks(N, C, [&](Index c0, Index c1) {
    if (c1 - c0 == kColumnChunk) norm_param_grads<true>(N, C, c0, c1 - c0, g, x, stats, dgamma, dbeta);
    else norm_param_grads<false>(N, C, c0, c1 - c0, g, x, stats, dgamma, dbeta);
  });
}

// parents: x, gamma, beta; saved[0] (N, 2) = (mean, rstd) per row.
template <class T>
void layer_norm_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int ix = n.parents[0], ig = n.parents[1], ib = n.parents[2];
  const bool gx = t.needs_grad(ix), gg = t.needs_grad(ig), gb = t.needs_grad(ib);
  if (!gx && !gg && !gb) return;
  const Index N = n.rows, C = n.cols;
  if (N == 0 || C == 0) return;
  const T* g = t.grad_acc(id).data();
  const T* x = t.value(ix).data();
  const T* gamma = t.value(ig).data();
  const T* stats = n.saved[0].data();  // row i: (μ, r) at [2i, 2i + 1]
  const T invC = T(1) / static_cast<T>(C);
  // Every buffer is fetched before any loop (grad_out / grad_acc mutate node state). dx first:
  // it is assigned when fresh (Tape::grad_out), so it must be written before dγ, dβ add into a
  // shared buffer (the same node passed as x and gamma).
  if (gx) {
    auto o = t.grad_out(ix);
    T* dx = o.view.data();
    const bool fresh = o.fresh;
    parallel_for(N, N * C, [&](Index i) {
      const T mu = stats[2 * i], r = stats[2 * i + 1];
      const auto xhat = (ConstRowArray<T>(x + i * C, C) - mu) * r;
      const auto gh = ConstRowArray<T>(g + i * C, C) * ConstRowArray<T>(gamma, C);  // ĝ = g ⊙ γ
      const T m1 = gh.sum() * invC;
      const T m2 = (gh * xhat).sum() * invC;
      detail::accumulate(fresh, RowArray<T>(dx + i * C, C), r * (gh - m1 - xhat * m2));
    });
  }
  if (!gg && !gb) return;
  T* dgamma = gg ? t.grad_acc(ig).data() : nullptr;
  T* dbeta = gb ? t.grad_acc(ib).data() : nullptr;
  norm_param_grads(N, C, g, x, [stats](Index i) { return std::make_pair(stats[2 * i], stats[2 * i + 1]); }, dgamma,
                   dbeta);
}

// parents: x, gamma; saved[0] (N, 1) = rstd per row.
template <class T>
void rms_norm_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int ix = n.parents[0], ig = n.parents[1];
  const bool gx = t.needs_grad(ix), gg = t.needs_grad(ig);
  if (!gx && !gg) return;
  const Index N = n.rows, C = n.cols;
  if (N == 0 || C == 0) return;
  const T* g = t.grad_acc(id).data();
  const T* x = t.value(ix).data();
  const T* gamma = t.value(ig).data();
  const T* rstd = n.saved[0].data();
  const T invC = T(1) / static_cast<T>(C);
  if (gx) {  // before dγ, as in layer_norm_backward
    auto o = t.grad_out(ix);
    T* dx = o.view.data();
    const bool fresh = o.fresh;
    parallel_for(N, N * C, [&](Index i) {
      const T r = rstd[i];
      const auto xhat = ConstRowArray<T>(x + i * C, C) * r;
      const auto gh = ConstRowArray<T>(g + i * C, C) * ConstRowArray<T>(gamma, C);
      const T m2 = (gh * xhat).sum() * invC;
      detail::accumulate(fresh, RowArray<T>(dx + i * C, C), r * (gh - xhat * m2));
    });
  }
  if (!gg) return;
  T* dgamma = t.grad_acc(ig).data();
  norm_param_grads(N, C, g, x, [rstd](Index i) { return std::make_pair(T(0), rstd[i]); }, dgamma,
                   static_cast<T*>(nullptr));
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
  if (C == 0) return Var<T>{&t, id};
  const T* X = t.value(x.id).data();
  T* Y = t.value(id).data();
  const T* gm = t.value(gamma.id).data();
  const T* bt = t.value(beta.id).data();
  T* stats = n.saved[0].data();
  const T invC = T(1) / static_cast<T>(C);
  detail::parallel_for(N, N * C, [&](Index i) {  // rows are independent
    using std::sqrt;
    const detail::ConstRowArray<T> xi(X + i * C, C);
    const T mu = xi.sum() * invC;
    const T var = (xi - mu).square().sum() * invC;  // two-pass: no E[x²] − μ² cancellation
    const T r = T(1) / sqrt(var + eps);
    stats[2 * i] = mu;
    stats[2 * i + 1] = r;
    detail::RowArray<T>(Y + i * C, C) =
        (xi - mu) * r * detail::ConstRowArray<T>(gm, C) + detail::ConstRowArray<T>(bt, C);
  });
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
  if (C == 0) return Var<T>{&t, id};
  const T* X = t.value(x.id).data();
  T* Y = t.value(id).data();
  const T* gm = t.value(gamma.id).data();
  T* rstd = n.saved[0].data();
  detail::parallel_for(N, N * C, [&](Index i) {  // rows are independent
    using std::sqrt;
    const detail::ConstRowArray<T> xi(X + i * C, C);
    const T r = T(1) / sqrt(xi.square().sum() / static_cast<T>(C) + eps);
    rstd[i] = r;
    detail::RowArray<T>(Y + i * C, C) = xi * r * detail::ConstRowArray<T>(gm, C);
  });
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
