// hyplora/analysis/detail/brent_minimize.hpp — 1-D minimisation on a bracket (Brent's method).
//
// Golden-section steps, replaced by parabolic interpolation steps when those are safe. For a
// unimodal f on [a, b] it never leaves the bracket and needs no derivative; the power-law
// likelihood is convex in α (docs/math.md Eq. (243)), so the minimiser is unique.
#pragma once

#include <cmath>

namespace hyplora {
namespace analysis {
namespace detail {

/// Returns x in [a, b] minimising f to within ~x_tol (absolute) + 1.5e-8·|x| (relative; past
/// that f is flat to rounding, so no method resolves x better).
template <class F>
double brent_minimize(F&& f, double a, double b, double x_tol, int max_iter = 200) {
  const double golden = 0.3819660112501051;  // (3 - √5)/2
  const double rel_tol = 1.4901161193847656e-08;  // √(double eps)
  double x = a + golden * (b - a);
  double w = x;
  double v = x;
  double fx = f(x);
  double fw = fx;
  double fv = fx;
  double d = 0.0;  // last step
  double e = 0.0;  // step before last
  for (int it = 0; it < max_iter; ++it) {
    const double mid = 0.5 * (a + b);
    const double tol = rel_tol * std::fabs(x) + x_tol / 3.0;
    const double tol2 = 2.0 * tol;
    if (std::fabs(x - mid) <= tol2 - 0.5 * (b - a)) break;
    bool take_golden = true;
    if (std::fabs(e) > tol) {
      // Parabola through (x, fx), (w, fw), (v, fv): its vertex is x + p/q.
      const double r = (x - w) * (fx - fv);
      double q = (x - v) * (fx - fw);
      double p = (x - v) * q - (x - w) * r;
      q = 2.0 * (q - r);
      if (q > 0.0) p = -p; else q = -q;
      const double e_prev = e;
      e = d;
      // Accept only a step inside the bracket and shorter than half the step before last.
      if (std::fabs(p) < std::fabs(0.5 * q * e_prev) && p > q * (a - x) && p < q * (b - x)) {
        d = p / q;
        const double u = x + d;
        if (u - a < tol2 || b - u < tol2) d = x < mid ? tol : -tol;
        take_golden = false;
      }
    }
    if (take_golden) {
      e = x < mid ? b - x : a - x;
      d = golden * e;
    }
    const double u = std::fabs(d) >= tol ? x + d : x + (d > 0.0 ? tol : -tol);
    const double fu = f(u);
    if (fu <= fx) {
      if (u < x) b = x; else a = x;
      v = w; fv = fw;
      w = x; fw = fx;
      x = u; fx = fu;
    } else {
      if (u < x) a = u; else b = u;
      if (fu <= fw || w == x) {
        v = w; fv = fw;
        w = u; fw = fu;
      } else if (fu <= fv || v == x || v == w) {
        v = u; fv = fu;
      }
    }
  }
  return x;
}

}  // namespace detail
}  // namespace analysis
}  // namespace hyplora
