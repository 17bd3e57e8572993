// hyplora/autodiff/ops_poincare.hpp — fused tape ops of the Poincaré ball (docs/autodiff.md,
// "Manifold ops"): exp_0, log_0 and d(x, y).
//
// Convention (docs/math.md Eq. (2), (60)): K > 0 is the squared radius, R = √K, ball |y| < R,
// sectional curvature −1/K (a library's ball "c" is 1/K). K is a (1, 1) tape value so a learned
// curvature gets a gradient. Each op is one node: the forward loops over rows calling the row
// function of manifold/detail/poincare_rows.hpp and saves at most two scalars per row (the
// Radial{coef, dcoef} the row function returns); the backward calls the matching row VJP, so every
// formula exists once. The row VJPs assign their outputs, so the backward writes them into a
// scratch buffer in node.saved (reused when the graph is rebuilt) and adds that to the parents'
// gradients. Gradients are ambient (Euclidean); egrad2rgrad converts them.
#pragma once

#include <cmath>
#include <string>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::parallel_for, check_same_tape
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/manifold/detail/poincare_rows.hpp"

namespace hyplora::ad {

namespace detail {

/// K must be a (1, 1) tape value, finite and > 0 (Eq. (1)). Returns K.
template <class T>
T check_ball_curvature(const char* op, const Var<T>& K) {
  if (K.rows() != 1 || K.cols() != 1)
    throw shape_error(std::string(op) + ": K must be (1, 1), got " + K.shape().str());
  const T k = K.value()(0, 0);
  check_curvature(k);
  return k;
}

enum PoincareSaved { kPRadial = 0, kPScratch = 1, kPScratch2 = 2, kPGradK = 3 };

// parents: v, K. saved: {(N, 2) per-row Radial {coef, dcoef}, (N, D) scratch, -, (N, 1) g_K rows}.
template <class T>
void poincare_map0_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int v = n.parents[0], Kid = n.parents[1];
  const bool needV = t.needs_grad(v), needK = t.needs_grad(Kid);
  const auto G = t.grad_acc(id);
  const auto V = t.value(v);
  const T K = t.value(Kid)(0, 0);
  const Index N = V.rows(), d = V.cols();
  const Tensor<T>& S = n.saved[kPRadial];
  Tensor<T>& gv = n.saved[kPScratch];
  Tensor<T>& gk = n.saved[kPGradK];
  if (needV) gv.resize(N, d);
  gk.resize(N, 1);
  parallel_for(N, N * d, [&](Index i) {
    const poincare_rows::Radial<T> s{S(i, 0), S(i, 1)};
    const T* vi = V.data() + i * d;
    const T* gi = G.data() + i * d;
    // expmap0_backward and logmap0_backward are the same radial VJP (Eq. (69), (71)).
    if (needV) poincare_rows::radial_backward(vi, gi, gv.data() + i * d, d, s);
    if (needK) gk(i, 0) = poincare_rows::radial_backward_K(vi, gi, d, K, s);
  });
  if (needV) t.grad_acc(v) += gv;
  if (needK) t.grad_acc(Kid)(0, 0) += gk.sum();  // serial sum: independent of the thread count
}

template <class T, bool kExp>
Var<T> poincare_map0(const char* op, Var<T> v, Var<T> K) {
  check_same_tape(op, v, K);
  const T k = check_ball_curvature(op, K);
  Tape<T>& t = *v.tape;
  const int id = t.push(op, v.rows(), v.cols(), &poincare_map0_backward<T>, {v.id, K.id});
  auto& n = t.node(id);
  n.saved.resize(4);
  const Index N = v.rows(), d = v.cols();
  Tensor<T>& S = n.saved[kPRadial];
  S.resize(N, 2);
  const auto V = t.value(v.id);
  auto out = t.value(id);
  parallel_for(N, N * d, [&](Index i) {
    const poincare_rows::Radial<T> s = kExp ? poincare_rows::expmap0(V.data() + i * d, out.data() + i * d, d, k)
                                            : poincare_rows::logmap0(V.data() + i * d, out.data() + i * d, d, k);
    S(i, 0) = s.coef;
    S(i, 1) = s.dcoef;
  });
  return Var<T>{&t, id};
}

// parents: x, y, K. saved: {-, (N, D) g_x, (N, D) g_y, (N, 1) g_K rows}.
template <class T>
void poincare_dist_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int x = n.parents[0], y = n.parents[1], Kid = n.parents[2];
  const bool needX = t.needs_grad(x), needY = t.needs_grad(y), needK = t.needs_grad(Kid);
  const auto G = t.grad_acc(id);  // (N, 1)
  const auto X = t.value(x), Y = t.value(y);
  const T K = t.value(Kid)(0, 0);
  const Index N = X.rows(), d = X.cols();
  Tensor<T>& gx = n.saved[kPScratch];
  Tensor<T>& gy = n.saved[kPScratch2];
  Tensor<T>& gk = n.saved[kPGradK];
  if (needX) gx.resize(N, d);
  if (needY) gy.resize(N, d);
  gk.resize(N, 1);
  parallel_for(N, N * d, [&](Index i) {
    const T* xi = X.data() + i * d;
    const T* yi = Y.data() + i * d;
    poincare_rows::dist_backward(xi, yi, d, K, G(i, 0), needX ? gx.data() + i * d : static_cast<T*>(nullptr),
                                 needY ? gy.data() + i * d : static_cast<T*>(nullptr));
    if (needK) gk(i, 0) = poincare_rows::dist_backward_K(xi, yi, d, K, G(i, 0));
  });
  if (needX) t.grad_acc(x) += gx;
  if (needY) t.grad_acc(y) += gy;
  if (needK) t.grad_acc(Kid)(0, 0) += gk.sum();
}

}  // namespace detail

/// exp_0(v) = tanhc(|v|/R)·v per row, kept in the ε-ball (docs/math.md Eq. (68); VJP Eq. (69),
/// K-gradient poincare_rows::radial_backward_K).
/// v: (N, D) tangent vectors at 0  K: (1, 1)  out: (N, D) points.
template <class T>
Var<T> poincare_expmap0(Var<T> v, Var<T> K) {
  return detail::poincare_map0<T, true>("poincare_expmap0", v, K);
}

/// log_0(y) = artanhc(|y|/R)·y per row; points outside the ε-ball are read as their projection
/// (Eq. (70), (71), (73)).
/// y: (N, D) points  K: (1, 1)  out: (N, D) tangent vectors at 0.
template <class T>
Var<T> poincare_logmap0(Var<T> y, Var<T> K) {
  return detail::poincare_map0<T, false>("poincare_logmap0", y, K);
}

/// d(x, y) = 2R·asinh(R|x − y| / √((K − |x|²)(K − |y|²))) per row (Eq. (76)); x, y inside the
/// ball (outside it the value is NaN). Gradients: poincare_rows::dist_backward (0 at x = y) and
/// dist_backward_K.
/// x, y: (N, D) points  K: (1, 1)  out: (N, 1).
template <class T>
Var<T> poincare_dist(Var<T> x, Var<T> y, Var<T> K) {
  const char* op = "poincare_dist";
  detail::check_same_tape(op, x, y);
  detail::check_same_tape(op, x, K);
  if (x.shape() != y.shape()) throw_shape(op, "x", x.rows(), x.cols(), "y", y.rows(), y.cols());
  const T k = detail::check_ball_curvature(op, K);
  Tape<T>& t = *x.tape;
  const Index N = x.rows(), d = x.cols();
  const int id = t.push(op, N, 1, &detail::poincare_dist_backward<T>, {x.id, y.id, K.id});
  t.node(id).saved.resize(4);
  const auto X = t.value(x.id), Y = t.value(y.id);
  auto out = t.value(id);
  detail::parallel_for(N, N * d, [&](Index i) { out(i, 0) = poincare_rows::dist(X.data() + i * d, Y.data() + i * d, d, k); });
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
