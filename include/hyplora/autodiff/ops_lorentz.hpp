// hyplora/autodiff/ops_lorentz.hpp — fused tape ops of the Lorentz model (docs/autodiff.md,
// "Manifold ops"): f_R, f_R⁻¹, the Lorentz low-rank map (LLR), d(x, y) and d(o, x).
//
// Convention (docs/math.md Eq. (1)): K > 0, R = √K, points are rows of d+1 values, time first;
// R is a (1, 1) tape value so a learned curvature (R = √(softplus(θ) + ε), …) gets a gradient.
// Each op is one node: the forward loops over rows calling the row function of
// manifold/detail/lorentz_rows.hpp and saves at most two scalars per row; the backward calls the
// matching row VJP (lorentz_rows::*_backward), so every formula exists once. The row VJPs assign
// their outputs, so the backward writes them into a scratch buffer in node.saved (allocated once,
// reused when the graph is rebuilt with the same shapes) and adds that to the parents' gradients.
// Gradients are ambient (Euclidean): egrad2rgrad turns them into Riemannian ones (docs/autodiff.md).
#pragma once

#include <cmath>
#include <string>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::parallel_for, check_same_tape
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/manifold/detail/lorentz_dist_vjp.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::ad {

namespace detail {

/// R must be a (1, 1) tape value, finite and > 0, with K = R² finite (Eq. (1)). Returns R.
template <class T>
T check_radius(const char* op, const Var<T>& R) {
  if (R.rows() != 1 || R.cols() != 1)
    throw shape_error(std::string(op) + ": R must be (1, 1), got " + R.shape().str());
  const T r = R.value()(0, 0);
  if (!(r > T(0)) || !std::isfinite(static_cast<double>(r)))
    throw value_error(std::string(op) + ": radius R = sqrt(K) must be finite and > 0, got " +
                      std::to_string(static_cast<double>(r)));
  check_curvature(r * r);
  return r;
}

/// Adds Σ rows of the per-row curvature gradients `gr` (N, 1) to R's gradient; summed serially so
/// the result does not depend on the thread count.
template <class T>
void add_scalar_grad(Tape<T>& t, int r_id, const Tensor<T>& gr) {
  t.grad_acc(r_id)(0, 0) += gr.sum();
}

enum LorentzSaved { kLScalars = 0, kLScratch = 1, kLScratch2 = 2, kLGradR = 3 };

// ---- f_R and f_R⁻¹ (Eq. (17)–(19)) ----------------------------------------------------------

// parents: v, R. saved: {(N, 2) per-row {ρ, c} or {τ, c}, (N, d) scratch, -, (N, 1) g_R rows}.
template <class T, bool kExp>
void lorentz_map0_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int v = n.parents[0], Rid = n.parents[1];
  const bool needV = t.needs_grad(v), needR = t.needs_grad(Rid);
  const auto G = t.grad_acc(id);
  const auto V = t.value(v);
  const T R = t.value(Rid)(0, 0);
  const Index N = V.rows(), d = V.cols();
  const Tensor<T>& S = n.saved[kLScalars];
  Tensor<T>& gv = n.saved[kLScratch];
  Tensor<T>& gr = n.saved[kLGradR];
  gv.resize(N, d);
  gr.resize(N, 1);
  parallel_for(N, N * d, [&](Index i) {
    T* gRi = needR ? &gr(i, 0) : nullptr;
    if constexpr (kExp) {
      const lorentz_rows::Exp0Scalars<T> s{S(i, 0), S(i, 1)};
      lorentz_rows::expmap0_spatial_backward(V.data() + i * d, d, R, s, G.data() + i * d, gv.data() + i * d, gRi);
    } else {
      const lorentz_rows::Log0Scalars<T> s{S(i, 0), S(i, 1)};
      lorentz_rows::logmap0_spatial_backward(V.data() + i * d, d, R, s, G.data() + i * d, gv.data() + i * d, gRi);
    }
  });
  if (needV) t.grad_acc(v) += gv;
  if (needR) add_scalar_grad(t, Rid, gr);
}

template <class T, bool kExp>
Var<T> lorentz_map0(const char* op, Var<T> v, Var<T> R) {
  check_same_tape(op, v, R);
  const T r = check_radius(op, R);
  Tape<T>& t = *v.tape;
  const int id = t.push(op, v.rows(), v.cols(), &lorentz_map0_backward<T, kExp>, {v.id, R.id});
  auto& n = t.node(id);
  n.saved.resize(4);
  const Index N = v.rows(), d = v.cols();
  Tensor<T>& S = n.saved[kLScalars];
  S.resize(N, 2);
  const auto V = t.value(v.id);
  auto out = t.value(id);
  parallel_for(N, N * d, [&](Index i) {
    if constexpr (kExp) {
      const auto s = lorentz_rows::expmap0_spatial(V.data() + i * d, out.data() + i * d, d, r);
      S(i, 0) = s.rho;
      S(i, 1) = s.c;
    } else {
      const auto s = lorentz_rows::logmap0_spatial(V.data() + i * d, out.data() + i * d, d, r);
      S(i, 0) = s.tau;
      S(i, 1) = s.c;
    }
  });
  return Var<T>{&t, id};
}

// ---- LLR (Eq. (32)) ---------------------------------------------------------------------------

// parents: W, x, R. The backward reads the node's own value p = (p0, z); saved: {-, (N, D_out) g_z,
// -, (N, 1) g_R rows}.
template <class T>
void lorentz_llr_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int W = n.parents[0], x = n.parents[1], Rid = n.parents[2];
  const bool needW = t.needs_grad(W), needX = t.needs_grad(x), needR = t.needs_grad(Rid);
  const auto G = t.grad_acc(id);   // (N, m+1)
  const auto P = t.value(id);      // (N, m+1)
  const T R = t.value(Rid)(0, 0);
  const Index N = P.rows(), m = P.cols() - 1;
  Tensor<T>& gz = n.saved[kLScratch];
  Tensor<T>& gr = n.saved[kLGradR];
  gz.resize(N, m);
  gr.resize(N, 1);
  parallel_for(N, N * (m + 1), [&](Index i) {
    lorentz_rows::projx_backward(P.data() + i * (m + 1), G.data() + i * (m + 1), m, R, gz.data() + i * m,
                                 needR ? &gr(i, 0) : static_cast<T*>(nullptr));
  });
  const auto X = t.value(x);
  const Index d = X.cols() - 1;
  if (needW) t.grad_acc(W).noalias() += gz.transpose() * X.rightCols(d);  // (m, d)
  if (needX) t.grad_acc(x).rightCols(d).noalias() += gz * t.value(W);     // x0 gets 0
  if (needR) add_scalar_grad(t, Rid, gr);
}

// ---- distances (Eq. (20)–(22)) ----------------------------------------------------------------

// parents: x, y, R. saved: {-, (N, d+1) g_x, (N, d+1) g_y, (N, 1) g_R rows}.
template <class T>
void lorentz_dist_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int x = n.parents[0], y = n.parents[1], Rid = n.parents[2];
  const bool needX = t.needs_grad(x), needY = t.needs_grad(y), needR = t.needs_grad(Rid);
  const auto G = t.grad_acc(id);  // (N, 1)
  const auto X = t.value(x), Y = t.value(y);
  const T R = t.value(Rid)(0, 0);
  const Index N = X.rows(), D = X.cols(), d = D - 1;
  Tensor<T>& gx = n.saved[kLScratch];
  Tensor<T>& gy = n.saved[kLScratch2];
  Tensor<T>& gr = n.saved[kLGradR];
  if (needX) gx.resize(N, D);
  if (needY) gy.resize(N, D);
  gr.resize(N, 1);
  parallel_for(N, N * D, [&](Index i) {
    const T* xi = X.data() + i * D;
    const T* yi = Y.data() + i * D;
    lorentz_rows::dist_backward(xi, yi, d, R, G(i, 0), needX ? gx.data() + i * D : static_cast<T*>(nullptr),
                                needY ? gy.data() + i * D : static_cast<T*>(nullptr));
    if (needR) gr(i, 0) = lorentz_rows::dist_backward_R(xi, yi, d, R, G(i, 0));
  });
  if (needX) t.grad_acc(x) += gx;
  if (needY) t.grad_acc(y) += gy;
  if (needR) add_scalar_grad(t, Rid, gr);
}

// parents: x, R. saved: {-, (N, d+1) g_x, -, (N, 1) g_R rows}.
template <class T>
void lorentz_dist0_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int x = n.parents[0], Rid = n.parents[1];
  const bool needX = t.needs_grad(x), needR = t.needs_grad(Rid);
  const auto G = t.grad_acc(id);  // (N, 1)
  const auto X = t.value(x);
  const T R = t.value(Rid)(0, 0);
  const Index N = X.rows(), D = X.cols();
  Tensor<T>& gx = n.saved[kLScratch];
  Tensor<T>& gr = n.saved[kLGradR];
  gx.resize(N, D);
  gr.resize(N, 1);
  parallel_for(N, N * D, [&](Index i) {
    lorentz_rows::dist0_backward(X.data() + i * D, D - 1, R, G(i, 0), gx.data() + i * D,
                                 needR ? &gr(i, 0) : static_cast<T*>(nullptr));
  });
  if (needX) t.grad_acc(x) += gx;
  if (needR) add_scalar_grad(t, Rid, gr);
}

template <class T>
void check_points(const char* op, const Var<T>& x) {
  if (x.cols() < 1) throw shape_error(std::string(op) + ": points need d+1 >= 1 columns, got " + x.shape().str());
}

}  // namespace detail

/// f_R(v) = sinhc(|v|/R)·v, the spatial part of exp_o((0, v)) (docs/math.md Eq. (17), VJP Eq. (19)).
/// Lengths past numerics::max_exp_arg radii saturate (Eq. (16)).
/// v: (N, D)  R: (1, 1)  out: (N, D).
template <class T>
Var<T> lorentz_expmap0(Var<T> v, Var<T> R) {
  return detail::lorentz_map0<T, true>("lorentz_expmap0", v, R);
}

/// f_R⁻¹(y) = asinhc(|y|/R)·y, the spatial part of log_o(x) with y = x_s (Eq. (18), (19)).
/// y: (N, D)  R: (1, 1)  out: (N, D).
template <class T>
Var<T> lorentz_logmap0(Var<T> y, Var<T> R) {
  return detail::lorentz_map0<T, false>("lorentz_logmap0", y, R);
}

/// The Lorentz low-rank map W ⊗^K x = (√(|W x_s|² + K), W x_s) = π(diag(1, W)·x), Eq. (32).
/// The linear part is one GEMM x_s·Wᵀ over all rows; π is the row function lorentz_rows::projx
/// (the same two steps lorentz_rows::llr takes per row), and the backward is projx_backward then
/// two GEMMs. x0 is not read and gets a zero gradient.
/// W: (D_out, D)  x: (N, D+1) ambient points  R: (1, 1)  out: (N, D_out+1).
template <class T>
Var<T> lorentz_llr(Var<T> W, Var<T> x, Var<T> R) {
  const char* op = "lorentz_llr";
  detail::check_same_tape(op, W, x);
  detail::check_same_tape(op, x, R);
  detail::check_points(op, x);
  if (W.cols() != x.cols() - 1) throw_shape(op, "W", W.rows(), W.cols(), "x (time first)", x.rows(), x.cols());
  const T r = detail::check_radius(op, R);
  Tape<T>& t = *x.tape;
  const Index N = x.rows(), d = x.cols() - 1, m = W.rows();
  const int id = t.push(op, N, m + 1, &detail::lorentz_llr_backward<T>, {W.id, x.id, R.id});
  t.node(id).saved.resize(4);
  auto P = t.value(id);
  P.rightCols(m).noalias() = t.value(x.id).rightCols(d) * t.value(W.id).transpose();
  detail::parallel_for(N, N * (m + 1), [&](Index i) {
    T* p = P.data() + i * (m + 1);
    lorentz_rows::projx(p, p, m, r);  // reads p_s only, writes p0
  });
  return Var<T>{&t, id};
}

/// d(x, y) = 2R·asinh(√(e/2)) per row, e from the better conditioned of the two exact forms of
/// Eq. (20) (Eq. (21)). Gradients w.r.t. x, y are the ambient ones of lorentz_rows::dist_backward
/// (they blow up like 1/d as y → x and are 0 at y = x), w.r.t. R dist_backward_R.
/// x, y: (N, D+1) points  R: (1, 1)  out: (N, 1).
template <class T>
Var<T> lorentz_dist(Var<T> x, Var<T> y, Var<T> R) {
  const char* op = "lorentz_dist";
  detail::check_same_tape(op, x, y);
  detail::check_same_tape(op, x, R);
  detail::check_points(op, x);
  if (x.shape() != y.shape()) throw_shape(op, "x", x.rows(), x.cols(), "y", y.rows(), y.cols());
  const T r = detail::check_radius(op, R);
  Tape<T>& t = *x.tape;
  const Index N = x.rows(), D = x.cols();
  const int id = t.push(op, N, 1, &detail::lorentz_dist_backward<T>, {x.id, y.id, R.id});
  t.node(id).saved.resize(4);
  const auto X = t.value(x.id), Y = t.value(y.id);
  auto out = t.value(id);
  detail::parallel_for(N, N * D, [&](Index i) {
    out(i, 0) = lorentz_rows::dist(X.data() + i * D, Y.data() + i * D, D - 1, r);
  });
  return Var<T>{&t, id};
}

/// d(o, x) = R·asinh(|x_s|/R) per row (Eq. (22)); x0 is not read and gets a zero gradient; the
/// gradient at x_s = 0 is the subgradient 0.
/// x: (N, D+1) points  R: (1, 1)  out: (N, 1).
template <class T>
Var<T> lorentz_dist0(Var<T> x, Var<T> R) {
  const char* op = "lorentz_dist0";
  detail::check_same_tape(op, x, R);
  detail::check_points(op, x);
  const T r = detail::check_radius(op, R);
  Tape<T>& t = *x.tape;
  const Index N = x.rows(), D = x.cols();
  const int id = t.push(op, N, 1, &detail::lorentz_dist0_backward<T>, {x.id, R.id});
  t.node(id).saved.resize(4);
  const auto X = t.value(x.id);
  auto out = t.value(id);
  detail::parallel_for(N, N * D, [&](Index i) { out(i, 0) = lorentz_rows::dist0(X.data() + i * D, D - 1, r); });
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
