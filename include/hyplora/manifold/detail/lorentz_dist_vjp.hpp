// hyplora/manifold/detail/lorentz_dist_vjp.hpp — gradients of the Lorentz distance, per row.
//
// Convention (docs/math.md Eq. (1)): K > 0, R = √K, points are d+1 values, time first. These
// sit beside lorentz_rows.hpp (whose functions they call) and are used by the embedding trainer
// (examples/poincare_embeddings) and by anyone putting d(x, y) into a loss.
#pragma once

#include <cmath>

#include "hyplora/core/config.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora {
namespace lorentz_rows {

/// Euclidean (ambient) vector–Jacobian product of dist (Eq. (21)), docs/embeddings.md Eq. (E2):
/// with e = −⟨x,y⟩_L/K − 1 (Eq. (20)),
///   ∂d/∂x = (y0, −y_s) / (R·√(e(e + 2))),   ∂d/∂y = (x0, −x_s) / (R·√(e(e + 2))).
/// g_x = g·∂d/∂x, g_y = g·∂d/∂y. They blow up like 1/d as y → x (only their tangential part,
/// egrad2rgrad's output, stays bounded): prefer dist_rgrad when a Riemannian gradient is wanted.
/// 0 at e = 0 (a subgradient at the cone point). x, y, g_x, g_y: (d+1); g_x, g_y may be null and
/// must not alias x or y.
template <class T>
HYPLORA_HD_INLINE void dist_backward(const T* x, const T* y, index_t d, T R, T g, T* g_x, T* g_y) {
  using std::sqrt;
  const T e = excess(x, y, d, R);
  const T den = R * sqrt(e * (e + T(2)));
  const T c = den > T(0) ? g / den : T(0);
  if (g_x) {
    g_x[0] = c * y[0];
    for (index_t i = 1; i <= d; ++i) g_x[i] = -c * y[i];
  }
  if (g_y) {
    g_y[0] = c * x[0];
    for (index_t i = 1; i <= d; ++i) g_y[i] = -c * x[i];
  }
}

/// Riemannian gradient at x of g·d(x, y): −g·log_x(y)/d(x, y), docs/embeddings.md Eq. (E3). It
/// equals egrad2rgrad(x, dist_backward's g_x) but is formed from the stable log map (Eq. (23)),
/// so it has unit Lorentz norm (times |g|) however close y is. 0 when d(x, y) = 0.
/// x, y, out: (d+1); out must not alias x or y. Returns d(x, y).
template <class T>
HYPLORA_HD_INLINE T dist_rgrad(const T* x, const T* y, index_t d, T R, T g, T* out) {
  using std::asinh;
  using std::sqrt;
  const T e = excess(x, y, d, R);
  const T dist_xy = T(2) * R * asinh(sqrt(e / T(2)));
  const T inv = T(1) / sinhc(dist_xy / R);
  const T c = dist_xy > T(0) ? -g * inv / dist_xy : T(0);
  for (index_t i = 0; i <= d; ++i) out[i] = c * ((y[i] - x[i]) - e * x[i]);  // c·sinhc·log_x(y)
  return dist_xy;
}

/// g·∂d/∂R at fixed ambient x, y, for the same extension of d that dist_backward differentiates
/// (d = 2R·asinh(√(e/2)), e = −⟨x,y⟩_L/K − 1), so that a learned curvature gets a gradient:
///   ∂d/∂R = d/R − 2(e + 1)/(√e·√(e + 2))   (the product under one root would overflow).
/// It blows up like 1/d as y → x, as dist_backward does; 0 at e = 0 (a subgradient).
template <class T>
HYPLORA_HD_INLINE T dist_backward_R(const T* x, const T* y, index_t d, T R, T g) {
  using std::asinh;
  using std::sqrt;
  const T e = excess(x, y, d, R);
  if (!(e > T(0))) return T(0);
  const T dR = T(2) * asinh(sqrt(e / T(2)));  // d/R, Eq. (21)
  return g * (dR - T(2) * (e + T(1)) / (sqrt(e) * sqrt(e + T(2))));
}

/// Vector–Jacobian product of dist0 (Eq. (22)), d = R·asinh(τ), τ = |x_s|/R:
///   ∂d/∂x_s = x_s / (|x_s|·√(1 + τ²)),  ∂d/∂x0 = 0,
///   ∂d/∂R = asinh τ − τ/√(1 + τ²) = −τ³·D2(τ)   (D2 = asinhc_d2: no cancellation at small τ;
///   the direct form from τ = 1 on, where τ³ could overflow).
/// At x_s = 0 (the cone point at o) g_x is 0. x, g_x: (d+1), g_x must not alias x; g_R may be null.
template <class T>
HYPLORA_HD_INLINE void dist0_backward(const T* x, index_t d, T R, T g, T* g_x, T* g_R) {
  using std::asinh;
  using std::sqrt;
  const T n = sqrt(dot(x + 1, x + 1, d));
  const T tau = n / R;
  const T c = n > T(0) ? g / (n * sqrt(T(1) + tau * tau)) : T(0);
  g_x[0] = T(0);
  for (index_t i = 1; i <= d; ++i) g_x[i] = c * x[i];
  // Series-backed −τ³·D2(τ) where the difference cancels; past τ = 1 it does not, and the direct
  // form there keeps τ³ (inf past τ ≈ 7e12 in float) out of the product.
  if (g_R) *g_R = tau < T(1) ? -g * tau * tau * tau * asinhc_d2(tau) : g * (asinh(tau) - T(1) / sqrt(T(1) + T(1) / (tau * tau)));
}

}  // namespace lorentz_rows
}  // namespace hyplora
