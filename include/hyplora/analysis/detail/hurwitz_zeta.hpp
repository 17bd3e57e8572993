// hyplora/analysis/detail/hurwitz_zeta.hpp — the Hurwitz zeta function ζ(s, q), s > 1, q > 0.
//
// Included by analysis/power_law.hpp, whose discrete power law is normalised by it. Evaluated by
// Euler–Maclaurin summation (docs/math.md Eq. (240)): the terms (q + k)^{-s} below a = q + N
// are summed directly, the tail from a by its integral, half its first term and ten Bernoulli
// corrections. With a >= s + 12 the first omitted correction is below 1e-17 relative for every
// s > 1 (Eq. (241)), so the result is accurate to a few ulp in double.
#pragma once

#include <cmath>
#include <sstream>

#include "hyplora/core/errors.hpp"

namespace hyplora {
namespace analysis {
namespace detail {

/// B_{2j}/(2j)! for j = 1..10 (B_2 = 1/6, B_4 = -1/30, ..., B_20 = -174611/330).
inline constexpr double kEulerMaclaurinCoeff[10] = {
    8.3333333333333329e-02,  -1.3888888888888889e-03, 3.3068783068783071e-05,
    -8.2671957671957675e-07, 2.08767569878681e-08,    -5.2841901386874932e-10,
    1.3382536530684679e-11,  -3.3896802963225827e-13, 8.5860620562778452e-15,
    -2.1748686985580619e-16};

/// Direct terms are summed until q + N >= s + kDirectShift (Eq. (241): the Bernoulli tail then
/// converges like ((s + 20)/(2π a))^20).
inline constexpr double kDirectShift = 12.0;

inline void check_zeta_args(double s, double q, const char* what) {
  if (!(s > 1.0) || !std::isfinite(s) || !(q > 0.0) || !std::isfinite(q)) {
    std::ostringstream m;
    m << what << ": needs finite s > 1 and q > 0, got s = " << s << ", q = " << q;
    throw value_error(m.str());
  }
}

/// q^s ζ(s, q) = Σ_k (1 + k/q)^{-s}: scaled so that large s or large q cannot underflow.
inline double hurwitz_zeta_scaled(double s, double q) {
  const double a_min = s + kDirectShift;
  const double n_direct = q < a_min ? std::ceil(a_min - q) : 0.0;
  double direct = 0.0;
  for (double k = n_direct - 1.0; k >= 0.0; k -= 1.0) {  // smallest terms first
    direct += std::exp(-s * std::log1p(k / q));
  }
  const double a = q + n_direct;
  // Tail Σ_{k>=0} (a+k)^{-s} = a^{-s} [a/(s-1) + 1/2 + Σ_j B_2j/(2j)! (s)_{2j-1} a^{1-2j}].
  double corr = 0.0;
  double rising = s / a;  // (s)_1 a^{-1}
  for (int j = 0; j < 10; ++j) {
    corr += kEulerMaclaurinCoeff[j] * rising;
    rising *= (s + 2.0 * j + 1.0) * (s + 2.0 * j + 2.0) / (a * a);
  }
  const double scale = std::exp(-s * std::log(a / q));  // (a/q)^{-s}
  return direct + scale * (a / (s - 1.0) + 0.5 + corr);
}

}  // namespace detail

/// ln ζ(s, q) for s > 1, q > 0 (value_error otherwise). Finite even where ζ itself underflows.
inline double log_hurwitz_zeta(double s, double q) {
  detail::check_zeta_args(s, q, "log_hurwitz_zeta");
  return -s * std::log(q) + std::log(detail::hurwitz_zeta_scaled(s, q));
}

/// ζ(s, q) = Σ_{k>=0} (q + k)^{-s} for s > 1, q > 0 (value_error otherwise); Eq. (240).
inline double hurwitz_zeta(double s, double q) {
  detail::check_zeta_args(s, q, "hurwitz_zeta");
  // pow, not exp(−s ln q): the latter loses |s ln q| ulp (2e-14 at s = 40, q = 150).
  return std::pow(q, -s) * detail::hurwitz_zeta_scaled(s, q);
}

}  // namespace analysis
}  // namespace hyplora
