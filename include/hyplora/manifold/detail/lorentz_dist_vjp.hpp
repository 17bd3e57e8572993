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

}  // namespace lorentz_rows
}  // namespace hyplora
