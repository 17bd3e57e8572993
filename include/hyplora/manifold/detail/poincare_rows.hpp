// hyplora/manifold/detail/poincare_rows.hpp — per-row math of the Poincaré ball P^{d,K}.
//
// Convention (docs/math.md Eq. (2), (60)): K > 0, R = √K, ball {|y| < R}, λ_y = 2K/(K − |y|²),
// sectional curvature −1/K. Every function works on one row given as a raw pointer plus its
// dimension d, allocates nothing and is HYPLORA_HD, so the Eigen API (poincare_ball.hpp), the
// tape's ops and CUDA kernels share one copy of each formula.
//
// Aliasing: unless a comment says otherwise, `out` may alias any input of the same length
// (every scalar a row needs is reduced before the first write). mobius_matvec is the exception.
#pragma once

#include <cmath>
#include <cstddef>

#include "hyplora/core/config.hpp"
#include "hyplora/core/numerics.hpp"

namespace hyplora {
namespace poincare_rows {

using index_t = std::ptrdiff_t;  // = Eigen::Index; the same row-length type as lorentz_rows

/// A map of the form out = coef·v whose Jacobian is J = coef·I + dcoef·v vᵀ (symmetric, so the
/// vector–Jacobian product equals J g). expmap0 and logmap0 return it for their backward.
template <class T>
struct Radial {
  T coef;
  T dcoef;
};

template <class T>
HYPLORA_HD_INLINE T dot(const T* a, const T* b, index_t d) {
  T s = T(0);
  for (index_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

template <class T>
HYPLORA_HD_INLINE T sqnorm(const T* a, index_t d) {
  return dot(a, a, d);
}

template <class T>
HYPLORA_HD_INLINE T norm(const T* a, index_t d) {
  using std::sqrt;
  return sqrt(sqnorm(a, d));
}

/// K − |y|² formed as (R − |y|)(R + |y|): no cancellation near the boundary (Eq. (61)).
template <class T>
HYPLORA_HD_INLINE T gap_from_norm(T yn, T R) {
  return (R - yn) * (R + yn);
}

/// |y|/R clamped to the ε-projected ball, so artanh never sees 1 (Eq. (73)).
template <class T>
HYPLORA_HD_INLINE T ball_ratio(T yn, T R) {
  const T t = yn / R;
  const T t_max = T(1) - numerics<T>::ball_eps();
  return t > t_max ? t_max : t;
}

/// λ_y = 2K/(K − |y|²) (Eq. (61)).
template <class T>
HYPLORA_HD_INLINE T lambda(const T* y, index_t d, T K) {
  using std::sqrt;
  return T(2) * K / gap_from_norm(norm(y, d), sqrt(K));
}

/// ⟨u, v⟩_y = λ_y² u·v (Eq. (62)).
template <class T>
HYPLORA_HD_INLINE T inner(const T* y, const T* u, const T* v, index_t d, T K) {
  const T l = lambda(y, d, K);
  return l * l * dot(u, v, d);
}

/// ‖u‖_y = λ_y |u| (Eq. (62)).
template <class T>
HYPLORA_HD_INLINE T tangent_norm(const T* y, const T* u, index_t d, T K) {
  return lambda(y, d, K) * norm(u, d);
}

/// out = projection onto the ε-ball |y| ≤ (1 − ε)R, ε = numerics::ball_eps (Eq. (72)).
/// Points within 4 ulp of that sphere are left alone, so projx is exactly idempotent (the
/// rescaled point's norm rounds to (1 − ε)R·(1 ± 2 ulp)).
template <class T>
HYPLORA_HD_INLINE void projx(const T* y, T* out, index_t d, T K) {
  using std::sqrt;
  const T yn = norm(y, d);
  const T r_max = (T(1) - numerics<T>::ball_eps()) * sqrt(K);
  const T f = yn > r_max * (T(1) + T(4) * numerics<T>::eps()) ? r_max / yn : T(1);
  for (index_t i = 0; i < d; ++i) out[i] = f * y[i];
}

/// out = (sx·x) ⊕ y with sx = ±1, in the stable form of Eq. (64):
///   (sx x) ⊕ y = K[(K − |x|²)s + |s|² sx·x] / [(K − |x|²)(K − |y|²) + K|s|²],  s = sx·x + y.
/// Both denominator terms are ≥ 0 inside the ball, and s = y − x is formed elementwise, so
/// log_x(y) and dist keep their precision when y → x.
template <class T>
HYPLORA_HD_INLINE void mobius_add_signed(const T* x, T sx, const T* y, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  T xx = T(0), yy = T(0), ss = T(0);
  for (index_t i = 0; i < d; ++i) {
    const T si = sx * x[i] + y[i];
    xx += x[i] * x[i];
    yy += y[i] * y[i];
    ss += si * si;
  }
  const T gx = gap_from_norm(sqrt(xx), R);
  const T gy = gap_from_norm(sqrt(yy), R);
  const T den = gx * gy + K * ss;
  if (!(den > T(0))) {  // x = y = a boundary point: the sum is that point (limit along rays)
    for (index_t i = 0; i < d; ++i) out[i] = y[i];
    return;
  }
  const T a = K * gx / den;
  const T b = K * ss / den * sx;
  for (index_t i = 0; i < d; ++i) out[i] = a * (sx * x[i] + y[i]) + b * x[i];
}

/// out = x ⊕ y, Möbius addition (Eq. (63)–(64)).
template <class T>
HYPLORA_HD_INLINE void mobius_add(const T* x, const T* y, T* out, index_t d, T K) {
  mobius_add_signed(x, T(1), y, out, d, K);
}

/// out = r ⊗ x = R tanh(r·atanh(|x|/R)) x̂ = r·artanhc(t)·tanhc(r·t·artanhc(t))·x, t = |x|/R
/// (Eq. (65)); no division by |x|, exact at x = 0. The result is kept in the ε-ball.
template <class T>
HYPLORA_HD_INLINE void mobius_scalar_mul(T r, const T* x, T* out, index_t d, T K) {
  using std::sqrt;
  const T t = ball_ratio(norm(x, d), sqrt(K));
  const T at = artanhc(t);
  const T f = r * at * tanhc(r * t * at);
  for (index_t i = 0; i < d; ++i) out[i] = f * x[i];
  projx(out, out, d, K);
}

/// out = M ⊗ x = artanhc(t)·tanhc((|Mx|/R)·artanhc(t))·Mx, t = |x|/R (Eq. (66)); 0 when Mx = 0.
/// M: (m, n) row-major, x: (n), out: (m). `out` must NOT alias x or M.
template <class T>
HYPLORA_HD_INLINE void mobius_matvec(const T* M, index_t m, index_t n, const T* x, T* out, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  for (index_t i = 0; i < m; ++i) out[i] = dot(M + i * n, x, n);
  const T at = artanhc(ball_ratio(norm(x, n), R));
  const T f = at * tanhc(norm(out, m) / R * at);
  for (index_t i = 0; i < m; ++i) out[i] *= f;
  projx(out, out, m, K);
}

/// out = gyr[u, su·v]w with su = ±1, closed form (Eq. (67)), scaled by K² so that
///   gyr[u,v]w = w + 2(a u + b v)/D,  a = −(u·w)|v|² + K(v·w) + 2(u·v)(v·w),
///   b = −(v·w)|u|² − K(u·w),  D = (K − |u|²)(K − |v|²) + K|u + v|².
template <class T>
HYPLORA_HD_INLINE void gyration_signed(const T* u, const T* v, T sv, const T* w, T* out, index_t d,
                                       T K) {
  using std::sqrt;
  const T R = sqrt(K);
  T uu = T(0), vv = T(0), uv = T(0), uw = T(0), vw = T(0), ss = T(0);
  for (index_t i = 0; i < d; ++i) {
    const T vi = sv * v[i];
    const T si = u[i] + vi;
    uu += u[i] * u[i];
    vv += vi * vi;
    uv += u[i] * vi;
    uw += u[i] * w[i];
    vw += vi * w[i];
    ss += si * si;
  }
  const T D = gap_from_norm(sqrt(uu), R) * gap_from_norm(sqrt(vv), R) + K * ss;
  if (!(D > T(0))) {  // u = −v on the boundary: gyr is the identity in the limit
    for (index_t i = 0; i < d; ++i) out[i] = w[i];
    return;
  }
  const T a = T(2) * (-uw * vv + K * vw + T(2) * uv * vw) / D;
  const T b = T(2) * (-vw * uu - K * uw) / D * sv;
  for (index_t i = 0; i < d; ++i) out[i] = w[i] + a * u[i] + b * v[i];
}

/// out = gyr[u, v]w (Eq. (67)); it equals ⊖(u⊕v) ⊕ (u ⊕ (v ⊕ w)) for w in the ball and is
/// linear in w, so it also acts on tangent vectors.
template <class T>
HYPLORA_HD_INLINE void gyration(const T* u, const T* v, const T* w, T* out, index_t d, T K) {
  gyration_signed(u, v, T(1), w, out, d, K);
}

/// out = exp_0(v) = R tanh(|v|/R) v̂ = tanhc(τ)·v, τ = |v|/R (Eq. (68)), kept inside the
/// ε-ball: when tanh τ > 1 − ε the result is (1 − ε)R v̂ (what projx would give).
/// Returns the Radial scalars of the map actually applied, for expmap0_backward (Eq. (69)).
template <class T>
HYPLORA_HD_INLINE Radial<T> expmap0(const T* v, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T n = norm(v, d);
  const T tau = n / R;
  const T th = tanhc(tau);
  const T t_max = T(1) - numerics<T>::ball_eps();
  Radial<T> s;
  if (tau * th > t_max) {  // saturated: out = (1−ε)R v̂, J = coef (I − v̂v̂ᵀ)
    s.coef = t_max * R / n;
    s.dcoef = -s.coef / (n * n);
  } else {
    s.coef = th;
    s.dcoef = tanhc_d1(tau) / K;  // (1/n) d tanhc(n/R)/dn = T1(τ)/K
  }
  for (index_t i = 0; i < d; ++i) out[i] = s.coef * v[i];
  return s;
}

/// out = log_0(y) = R atanh(|y|/R) ŷ = artanhc(t)·y, t = |y|/R (Eq. (70)). Points outside the
/// ε-ball are read as their projection. Returns the Radial scalars for logmap0_backward.
template <class T>
HYPLORA_HD_INLINE Radial<T> logmap0(const T* y, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T n = norm(y, d);
  const T t_raw = n / R;
  const T t = ball_ratio(n, R);
  Radial<T> s;
  if (t < t_raw) {  // clamped: out = R·atanh(t_max)·ŷ, constant length
    s.coef = R * t * artanhc(t) / n;
    s.dcoef = -s.coef / (n * n);
  } else {
    s.coef = artanhc(t);
    s.dcoef = artanhc_d1(t) / K;  // (1/n) d artanhc(n/R)/dn = A1(t)/K
  }
  for (index_t i = 0; i < d; ++i) out[i] = s.coef * y[i];
  return s;
}

/// Vector–Jacobian product of a Radial map out = coef·v: g_v = coef·g + dcoef·(v·g)·v
/// (Eq. (69), (71)). `g_v` may alias `g`.
template <class T>
HYPLORA_HD_INLINE void radial_backward(const T* v, const T* g, T* g_v, index_t d, Radial<T> s) {
  const T k = s.dcoef * dot(v, g, d);
  for (index_t i = 0; i < d; ++i) g_v[i] = s.coef * g[i] + k * v[i];
}

/// g·∂out/∂K of a Radial map out = coef·v of the form R·φ(|v|/R)·v̂ — expmap0 and logmap0,
/// their clamped branches included. coef is then homogeneous of degree 0 in (|v|, R), so
/// ∂coef/∂R = −(|v|/R)·∂coef/∂|v| and, with dcoef = (∂coef/∂|v|)/|v|,
///   g_K = −|v|²·dcoef·(v·g)/(2K)   (Eq. (69), (71)).
template <class T>
HYPLORA_HD_INLINE T radial_backward_K(const T* v, const T* g, index_t d, T K, Radial<T> s) {
  return -sqnorm(v, d) * s.dcoef * dot(v, g, d) / (T(2) * K);
}

/// g_v = (∂ exp_0(v)/∂v)ᵀ g, from the scalars expmap0 returned (Eq. (69)).
template <class T>
HYPLORA_HD_INLINE void expmap0_backward(const T* v, const T* g, T* g_v, index_t d, Radial<T> s) {
  radial_backward(v, g, g_v, d, s);
}

/// g_y = (∂ log_0(y)/∂y)ᵀ g, from the scalars logmap0 returned (Eq. (71)).
template <class T>
HYPLORA_HD_INLINE void logmap0_backward(const T* y, const T* g, T* g_y, index_t d, Radial<T> s) {
  radial_backward(y, g, g_y, d, s);
}

/// out = exp_x(v) = x ⊕ (R tanh(λ_x|v|/(2R)) v̂) = x ⊕ (tanhc(ν)·(λ_x/2)·v), ν = λ_x|v|/(2R)
/// (Eq. (74)); the second operand and the result are kept in the ε-ball. `out` must not alias x.
template <class T>
HYPLORA_HD_INLINE void expmap(const T* x, const T* v, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T half_l = K / gap_from_norm(norm(x, d), R);  // λ_x/2
  const T nu = half_l * norm(v, d) / R;
  const T f = tanhc(nu) * half_l;
  for (index_t i = 0; i < d; ++i) out[i] = f * v[i];
  projx(out, out, d, K);
  mobius_add(x, out, out, d, K);
  projx(out, out, d, K);
}

/// out = log_x(y) = (2/λ_x)·artanhc(|w|/R)·w, w = (−x) ⊕ y (Eq. (75)). `out` must not alias x.
template <class T>
HYPLORA_HD_INLINE void logmap(const T* x, const T* y, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T two_over_l = gap_from_norm(norm(x, d), R) / K;  // 2/λ_x
  mobius_add_signed(x, T(-1), y, out, d, K);
  const T f = two_over_l * artanhc(ball_ratio(norm(out, d), R));
  for (index_t i = 0; i < d; ++i) out[i] *= f;
}

/// The quantities of the chord form of dist (Eq. (76)) for a pair of points: |x|², |y|²,
/// |x − y|² and the boundary gaps K − |x|², K − |y|² (computed as (R − |x|)(R + |x|)).
/// Shared by dist and its two backwards so the form is written once.
template <class T>
struct PairGaps {
  T xx, yy, dd, gx, gy;
};

template <class T>
HYPLORA_HD_INLINE PairGaps<T> pair_gaps(const T* x, const T* y, index_t d, T R) {
  using std::sqrt;
  PairGaps<T> p{T(0), T(0), T(0), T(0), T(0)};
  for (index_t i = 0; i < d; ++i) {
    const T di = x[i] - y[i];
    p.xx += x[i] * x[i];
    p.yy += y[i] * y[i];
    p.dd += di * di;
  }
  p.gx = gap_from_norm(sqrt(p.xx), R);
  p.gy = gap_from_norm(sqrt(p.yy), R);
  return p;
}

/// d(x, y) = 2R asinh(R|x − y| / √((K − |x|²)(K − |y|²))) (Eq. (76)), the chord form: exact for
/// close points, and the gaps are formed as (R − |x|)(R + |x|).
template <class T>
HYPLORA_HD_INLINE T dist(const T* x, const T* y, index_t d, T K) {
  using std::asinh;
  using std::sqrt;
  const T R = sqrt(K);
  const PairGaps<T> p = pair_gaps(x, y, d, R);
  return T(2) * R * asinh(R * sqrt(p.dd) / sqrt(p.gx * p.gy));
}

/// d(0, y) = 2R atanh(|y|/R) (Eq. (77)).
template <class T>
HYPLORA_HD_INLINE T dist0(const T* y, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T t = ball_ratio(norm(y, d), R);
  return T(2) * R * t * artanhc(t);
}

/// out = PT_{x→y}(v) = (λ_x/λ_y)·gyr[y, −x]v (Eq. (78)); λ_x/λ_y = (K − |y|²)/(K − |x|²).
template <class T>
HYPLORA_HD_INLINE void transp(const T* x, const T* y, const T* v, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T f = gap_from_norm(norm(y, d), R) / gap_from_norm(norm(x, d), R);
  gyration_signed(y, x, T(-1), v, out, d, K);
  for (index_t i = 0; i < d; ++i) out[i] *= f;
}

/// out = PT_{0→y}(v) = (2/λ_y)·v = ((K − |y|²)/K)·v (Eq. (79)).
template <class T>
HYPLORA_HD_INLINE void transp0(const T* y, const T* v, T* out, index_t d, T K) {
  using std::sqrt;
  const T f = gap_from_norm(norm(y, d), sqrt(K)) / K;
  for (index_t i = 0; i < d; ++i) out[i] = f * v[i];
}

/// out = PT_{y→0}(v) = (λ_y/2)·v = (K/(K − |y|²))·v (Eq. (79)).
template <class T>
HYPLORA_HD_INLINE void transp0back(const T* y, const T* v, T* out, index_t d, T K) {
  using std::sqrt;
  const T f = K / gap_from_norm(norm(y, d), sqrt(K));
  for (index_t i = 0; i < d; ++i) out[i] = f * v[i];
}

/// out = ∇f/λ_y² = ((K − |y|²)²/(4K²))·∇f (Eq. (80)); writes `out`, never the gradient itself.
template <class T>
HYPLORA_HD_INLINE void egrad2rgrad(const T* y, const T* egrad, T* out, index_t d, T K) {
  using std::sqrt;
  const T g = gap_from_norm(norm(y, d), sqrt(K));
  const T f = g * g / (T(4) * K * K);
  for (index_t i = 0; i < d; ++i) out[i] = f * egrad[i];
}

/// Vector–Jacobian product of dist (Eq. (76)), docs/embeddings.md Eq. (E1):
///   ∂d/∂x = c·[(x − y) + (|x − y|²/(K − |x|²))·x],  c = 2K / (|x − y|·√((K − |x|²)(K − |y|²) + K|x − y|²)),
/// and ∂d/∂y the same with x and y swapped. g_x = g·∂d/∂x, g_y = g·∂d/∂y (Euclidean gradients;
/// egrad2rgrad converts them). At x = y, where d has a cone point, both are 0 (a subgradient).
/// g_x, g_y: (d), must not alias x or y; either may be null.
template <class T>
HYPLORA_HD_INLINE void dist_backward(const T* x, const T* y, index_t d, T K, T g, T* g_x, T* g_y) {
  using std::sqrt;
  const T R = sqrt(K);
  const PairGaps<T> p = pair_gaps(x, y, d, R);
  const T dd = p.dd, gx = p.gx, gy = p.gy;
  const T n = sqrt(dd);
  const T den = n * sqrt(gx * gy + K * dd);
  const T c = den > T(0) ? g * T(2) * K / den : T(0);
  const T ax = den > T(0) ? c * dd / gx : T(0);
  const T ay = den > T(0) ? c * dd / gy : T(0);
  for (index_t i = 0; i < d; ++i) {
    const T di = x[i] - y[i];
    if (g_x) g_x[i] = c * di + ax * x[i];
    if (g_y) g_y[i] = -c * di + ay * y[i];
  }
}

/// g·∂d/∂K of dist (Eq. (76)) at fixed x, y. With s = R|x − y|/√((K − |x|²)(K − |y|²)),
///   ∂d/∂K = −s³·D2(s)/R − s/(R·√(1 + s²))·(|x|²/(K − |x|²) + |y|²/(K − |y|²)),
/// both terms ≤ 0 and free of cancellation (asinh s − s/√(1+s²) = −s³·D2(s), D2 = asinhc_d2).
/// 0 at x = y.
template <class T>
HYPLORA_HD_INLINE T dist_backward_K(const T* x, const T* y, index_t d, T K, T g) {
  using std::sqrt;
  const T R = sqrt(K);
  const PairGaps<T> p = pair_gaps(x, y, d, R);
  const T xx = p.xx, yy = p.yy, dd = p.dd, gx = p.gx, gy = p.gy;
  const T s = R * sqrt(dd) / sqrt(gx * gy);
  const T radial = -s * s * s * asinhc_d2(s);
  const T gaps = xx / gx + yy / gy;
  return g * (radial - s / sqrt(T(1) + s * s) * gaps) / R;
}

}  // namespace poincare_rows
}  // namespace hyplora
