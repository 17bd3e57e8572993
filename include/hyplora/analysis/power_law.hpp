// hyplora/analysis/power_law.hpp — discrete power-law fit (Clauset, Shalizi & Newman 2009).
//
// Model (docs/math.md §8.2): p(x) = x^{-α} / ζ(α, x_min) for integers x >= x_min, Eq. (242).
//   exact        α̂ maximises L(α) = −n ln ζ(α, x_min) − α Σ ln x_i (Brent on the convex −L/n),
//                σ = 1/√(n ∂²_α ln ζ(α, x_min)) (Fisher information), Eq. (243)–(244);
//   approximate  α̂ = 1 + n / Σ ln(x_i/(x_min − ½)), σ = (α̂ − 1)/√n, Eq. (245). Biased low for
//                small x_min (Clauset et al. recommend it for x_min >~ 6).
// x_min, unless fixed, minimises the KS distance D = sup_{x >= x_min} |S(x) − P(x)| over the
// candidates (every distinct value but the largest, as `powerlaw` does), with
// P(x) = 1 − ζ(α, x+1)/ζ(α, x_min), Eq. (246)–(247). D is the exact supremum over integers x
// (also between data values), which `powerlaw` approximates at the data values only.
//
// The paper's γ (token-frequency exponent) is `powerlaw.Fit(freqs, discrete=True).alpha`;
// which estimator that uses depends on the `powerlaw` version (MATH_NOTES §6.2), so both are here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "hyplora/analysis/detail/brent_minimize.hpp"
#include "hyplora/analysis/detail/hurwitz_zeta.hpp"
#include "hyplora/analysis/detail/rng.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora {
namespace analysis {

enum class power_law_estimator { exact, approximate };

struct power_law_options {
  power_law_estimator estimator = power_law_estimator::exact;
  std::int64_t x_min = 0;      ///< > 0: fixed; 0: chosen by minimal KS distance
  std::int64_t x_min_max = 0;  ///< > 0: only candidates <= this are scanned (speed); 0: all
  double alpha_lo = 1.0 + 1e-6;  ///< bracket of the exact MLE; L → −∞ as α → 1, so the
  double alpha_hi = 20.0;        ///< optimum is interior unless the tail is nearly constant
  double alpha_tol = 1e-10;      ///< absolute tolerance on α̂ (exact estimator)
};

struct power_law_result {
  double alpha = 0.0;      ///< exponent α̂
  double sigma = 0.0;      ///< its standard error
  std::int64_t x_min = 0;  ///< lower cut-off used
  double ks = 0.0;         ///< KS distance of the tail to the fitted law
  std::int64_t n_tail = 0; ///< number of samples x >= x_min
};

/// P(X >= x) = ζ(α, x)/ζ(α, x_min) for x >= x_min: the complementary CDF of Eq. (242).
inline double power_law_ccdf(double alpha, std::int64_t x_min, std::int64_t x) {
  if (x <= x_min) return 1.0;
  return std::exp(log_hurwitz_zeta(alpha, static_cast<double>(x)) -
                  log_hurwitz_zeta(alpha, static_cast<double>(x_min)));
}

/// n exact draws from the discrete power law Eq. (242) by inverting its CDF: with U uniform on
/// (0, 1], X = max{x : P(X >= x) >= U} (doubling, then bisection on the zeta ratio). Draws are
/// capped at 2^62 (where P(X >= x) < 1e-17 for α >= 2; the cap only matters for α near 1).
inline std::vector<std::int64_t> sample_discrete_power_law(std::size_t n, double alpha,
                                                           std::int64_t x_min,
                                                           std::uint64_t seed = 0) {
  if (!(alpha > 1.0) || !std::isfinite(alpha) || x_min < 1) {
    std::ostringstream s;
    s << "sample_discrete_power_law: needs alpha > 1 and x_min >= 1, got alpha = " << alpha
      << ", x_min = " << x_min;
    throw value_error(s.str());
  }
  const std::int64_t cap = std::int64_t(1) << 62;
  const double log_norm = log_hurwitz_zeta(alpha, static_cast<double>(x_min));
  // X >= x  <=>  ln ζ(α, x) − ln ζ(α, x_min) >= ln U.
  const auto reaches = [&](std::int64_t x, double log_u) {
    return log_hurwitz_zeta(alpha, static_cast<double>(x)) - log_norm >= log_u;
  };
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double log_u = std::log(detail::uniform_open0(rng));
    std::int64_t lo = x_min;  // reaches(lo) holds
    std::int64_t hi = x_min + 1;
    while (hi < cap && reaches(hi, log_u)) {
      lo = hi;
      hi = std::min(cap, hi + (hi - x_min + 1));  // roughly doubles the distance from x_min
    }
    if (hi == cap && reaches(hi, log_u)) {
      out[i] = cap;
      continue;
    }
    while (hi - lo > 1) {  // reaches(lo) && !reaches(hi)
      const std::int64_t mid = lo + (hi - lo) / 2;
      if (reaches(mid, log_u)) lo = mid; else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

namespace detail {

/// The data sorted into distinct values u (ascending) with their counts, and suffix sums.
struct power_law_data {
  std::vector<std::int64_t> value;   // u_0 < u_1 < ... < u_{m-1}
  std::vector<std::int64_t> count;   // occurrences of u_i
  std::vector<std::int64_t> n_from;  // Σ_{t >= i} count_t (m + 1 entries)
  std::vector<double> log_from;      // Σ_{t >= i} count_t ln u_t (m + 1 entries)
};

inline power_law_data tabulate(const std::vector<std::int64_t>& x) {
  std::vector<std::int64_t> s = x;
  std::sort(s.begin(), s.end());
  power_law_data t;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    while (j < s.size() && s[j] == s[i]) ++j;
    t.value.push_back(s[i]);
    t.count.push_back(static_cast<std::int64_t>(j - i));
    i = j;
  }
  const std::size_t m = t.value.size();
  t.n_from.assign(m + 1, 0);
  t.log_from.assign(m + 1, 0.0);
  for (std::size_t i = m; i-- > 0;) {
    t.n_from[i] = t.n_from[i + 1] + t.count[i];
    t.log_from[i] = t.log_from[i + 1] +
                    static_cast<double>(t.count[i]) * std::log(static_cast<double>(t.value[i]));
  }
  return t;
}

/// α̂ and σ on the tail of n samples >= x_min with Σ ln x = sum_log, Eq. (243)–(245).
inline void fit_alpha(power_law_result& r, double sum_log, const power_law_options& opt) {
  const double n = static_cast<double>(r.n_tail);
  const double xm = static_cast<double>(r.x_min);
  if (opt.estimator == power_law_estimator::approximate) {
    const double denom = sum_log - n * std::log(xm - 0.5);  // Σ ln(x_i/(x_min − ½)) > 0
    r.alpha = 1.0 + n / denom;
    r.sigma = (r.alpha - 1.0) / std::sqrt(n);
    return;
  }
  const double mean_log = sum_log / n;
  const auto neg_ll = [&](double a) { return log_hurwitz_zeta(a, xm) + a * mean_log; };  // −L/n
  r.alpha = brent_minimize(neg_ll, opt.alpha_lo, opt.alpha_hi, opt.alpha_tol);
  // σ² = 1/(n ∂²_α ln ζ), Eq. (244); central difference, h small against α − 1.
  const double h = std::min(1e-4, 0.25 * (r.alpha - 1.0));
  const double f0 = log_hurwitz_zeta(r.alpha, xm);
  const double d2 = (log_hurwitz_zeta(r.alpha + h, xm) - 2.0 * f0 +
                     log_hurwitz_zeta(r.alpha - h, xm)) / (h * h);
  r.sigma = d2 > 0.0 ? 1.0 / std::sqrt(n * d2) : std::numeric_limits<double>::infinity();
}

/// Exact sup over integers x >= x_min of |S(x) − P(x)|, Eq. (247), for the tail starting at
/// distinct-value index first. Between data values S is flat and P rises, so the supremum on
/// each gap [u_i, u_{i+1} − 1] sits at one of its ends.
inline double ks_distance(const power_law_data& t, std::size_t first, std::int64_t x_min,
                          double alpha) {
  const double n = static_cast<double>(t.n_from[first]);
  const double log_norm = log_hurwitz_zeta(alpha, static_cast<double>(x_min));
  // P(x) = 1 − ζ(α, x+1)/ζ(α, x_min)
  const auto P = [&](std::int64_t x) {
    return 1.0 - std::exp(log_hurwitz_zeta(alpha, static_cast<double>(x + 1)) - log_norm);
  };
  double d = 0.0;
  if (t.value[first] > x_min) d = P(t.value[first] - 1);  // S = 0 below the first sample
  double cum = 0.0;
  const std::size_t m = t.value.size();
  for (std::size_t i = first; i < m; ++i) {
    cum += static_cast<double>(t.count[i]);
    const double S = cum / n;
    d = std::max(d, std::fabs(S - P(t.value[i])));
    if (i + 1 < m && t.value[i + 1] - 1 > t.value[i]) {
      d = std::max(d, std::fabs(S - P(t.value[i + 1] - 1)));
    }
  }
  return d;
}

}  // namespace detail

/// Fits Eq. (242) to x (every entry >= 1, e.g. token counts). See the header comment.
inline power_law_result fit_power_law(const std::vector<std::int64_t>& x,
                                      const power_law_options& opt = {}) {
  if (x.empty()) throw value_error("fit_power_law: no data");
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] < 1) {
      throw value_error("fit_power_law: x[" + std::to_string(i) + "] = " + std::to_string(x[i]) +
                        " < 1 (a discrete power law lives on the positive integers)");
    }
  }
  if (!(opt.alpha_lo > 1.0) || !(opt.alpha_hi > opt.alpha_lo) || !std::isfinite(opt.alpha_hi) ||
      !(opt.alpha_tol > 0.0)) {
    std::ostringstream s;
    s << "fit_power_law: needs 1 < alpha_lo < alpha_hi < inf and alpha_tol > 0, got ["
      << opt.alpha_lo << ", " << opt.alpha_hi << "], tol " << opt.alpha_tol;
    throw value_error(s.str());
  }
  const detail::power_law_data t = detail::tabulate(x);
  const std::size_t m = t.value.size();

  const auto fit_at = [&](std::size_t first, std::int64_t x_min) {
    power_law_result r;
    r.x_min = x_min;
    r.n_tail = t.n_from[first];
    detail::fit_alpha(r, t.log_from[first], opt);
    r.ks = detail::ks_distance(t, first, x_min, r.alpha);
    return r;
  };

  if (opt.x_min > 0) {
    const auto first = static_cast<std::size_t>(
        std::lower_bound(t.value.begin(), t.value.end(), opt.x_min) - t.value.begin());
    if (first == m) {
      throw value_error("fit_power_law: no data >= x_min = " + std::to_string(opt.x_min) +
                        " (largest is " + std::to_string(t.value.back()) + ")");
    }
    return fit_at(first, opt.x_min);
  }
  if (m < 2) {
    throw value_error("fit_power_law: choosing x_min needs >= 2 distinct values, all are " +
                      std::to_string(t.value[0]) + "; fix x_min instead");
  }
  power_law_result best;
  best.ks = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i + 1 < m; ++i) {  // the largest value is no candidate
    if (opt.x_min_max > 0 && t.value[i] > opt.x_min_max) break;
    const power_law_result r = fit_at(i, t.value[i]);
    if (r.ks < best.ks) best = r;  // ties keep the smaller x_min
  }
  if (!std::isfinite(best.ks)) {
    throw value_error("fit_power_law: no x_min candidate <= x_min_max = " +
                      std::to_string(opt.x_min_max));
  }
  return best;
}

}  // namespace analysis
}  // namespace hyplora
