// Tests for include/hyplora/analysis/power_law.hpp and its Hurwitz zeta (docs/math.md §8.2).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <hyplora/analysis/power_law.hpp>

namespace analysis_test_power_law {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

namespace an = hyplora::analysis;
using LD = long double;
constexpr double kPi = 3.14159265358979323846;

// Σ_{k<K} (q+k)^{-s} in long double, smallest terms first. Truncation error < K^{1-s}/(s-1).
LD direct_zeta(LD s, LD q, long K) {
  LD sum = 0;
  for (long k = K - 1; k >= 0; --k) sum += std::pow(q + static_cast<LD>(k), -s);
  return sum;
}

double rel_err(double a, double b) { return std::fabs(a - b) / std::fabs(b); }

// L(α)/n of Eq. (243) on x >= x_min, evaluated independently of the fit.
double log_lik(const std::vector<std::int64_t>& x, std::int64_t x_min, double alpha) {
  double n = 0.0, sum_log = 0.0;
  for (const auto v : x) {
    if (v < x_min) continue;
    n += 1.0;
    sum_log += std::log(static_cast<double>(v));
  }
  return -an::log_hurwitz_zeta(alpha, static_cast<double>(x_min)) - alpha * sum_log / n;
}

}  // namespace

TEST_CASE("Hurwitz zeta: closed forms") {
  const double z2 = kPi * kPi / 6.0;
  CHECK(rel_err(an::hurwitz_zeta(2.0, 1.0), z2) < 1e-14);
  CHECK(rel_err(an::hurwitz_zeta(3.0, 1.0), 1.2020569031595942) < 1e-14);
  CHECK(rel_err(an::hurwitz_zeta(2.0, 2.0), z2 - 1.0) < 1e-14);
  CHECK(rel_err(an::hurwitz_zeta(4.0, 1.0), std::pow(kPi, 4) / 90.0) < 1e-14);
  // ζ(s, 1/2) = (2^s − 1) ζ(s)
  CHECK(rel_err(an::hurwitz_zeta(2.0, 0.5), 3.0 * z2) < 1e-14);
  // Near the pole ζ(s, 1) = 1/(s−1) + γ + O(s−1)  (γ: Euler–Mascheroni).
  const double s = 1.0 + 1e-7;
  const double sm1 = s - 1.0;  // exact (Sterbenz): the s the function really sees
  CHECK(std::fabs(an::hurwitz_zeta(s, 1.0) - 1.0 / sm1 - 0.5772156649015329) < 1e-6);
}

TEST_CASE("Hurwitz zeta: long-double direct sums and the recurrence") {
  // Direct sums where they converge: the truncated tail, relative to ζ, is about
  // (1 + K/q)^{1-s}; K is chosen to make that < 1e-18, and pairs needing K > 3e5 are skipped.
  int checked = 0;
  for (const double s : {4.5, 7.0, 13.0, 40.0}) {
    for (const double q : {0.3, 1.0, 2.7, 11.0, 150.0}) {
      const double K = std::ceil(q * (std::pow(1e18, 1.0 / (s - 1.0)) - 1.0)) + 10.0;
      if (K > 3e5) continue;
      CAPTURE(s);
      CAPTURE(q);
      const LD ref = direct_zeta(s, q, static_cast<long>(K));
      CHECK(rel_err(an::hurwitz_zeta(s, q), static_cast<double>(ref)) < 1e-14);
      ++checked;
    }
  }
  CHECK(checked >= 14);
  // Any s > 1: ζ(s, q) − ζ(s, q+1) = q^{-s}. The difference cancels by ζ(s,q)/q^{-s}, which
  // bounds how much of the 1e-15 relative accuracy survives.
  for (const double s : {1.001, 1.3, 1.9, 2.5, 3.3}) {
    for (const double q : {1.0, 3.0, 17.5, 1e4, 3e9}) {
      const double a = an::hurwitz_zeta(s, q), b = an::hurwitz_zeta(s, q + 1.0);
      const double step = std::pow(q, -s);
      CAPTURE(s);
      CAPTURE(q);
      CHECK(std::fabs((a - b) - step) <= 1e-14 * a + 1e-15 * step);
    }
  }
  // log form past double's range: ln ζ(200, 1000) against a scaled long-double sum.
  LD scaled = 0;
  for (long k = 60000; k >= 0; --k) scaled += std::exp(-200.0L * std::log1p(static_cast<LD>(k) / 1000.0L));
  const double ref = static_cast<double>(-200.0L * std::log(1000.0L) + std::log(scaled));
  CHECK(rel_err(an::log_hurwitz_zeta(200.0, 1000.0), ref) < 1e-14);
  CHECK(an::hurwitz_zeta(400.0, 1e3) == 0.0);  // underflows, as it must
  CHECK(std::isfinite(an::log_hurwitz_zeta(400.0, 1e3)));
  CHECK_THROWS_AS(an::hurwitz_zeta(1.0, 1.0), hyplora::value_error);
  CHECK_THROWS_AS(an::hurwitz_zeta(2.0, 0.0), hyplora::value_error);
  CHECK_THROWS_AS(an::log_hurwitz_zeta(std::nan(""), 1.0), hyplora::value_error);
}

TEST_CASE("the sampler draws the discrete power law") {
  const std::size_t n = 100000;
  for (const double alpha : {1.9, 2.5}) {
    for (const std::int64_t x_min : {std::int64_t(1), std::int64_t(5)}) {
      const auto x = an::sample_discrete_power_law(n, alpha, x_min, 17);
      CHECK(*std::min_element(x.begin(), x.end()) >= x_min);
      const double norm = an::hurwitz_zeta(alpha, static_cast<double>(x_min));
      for (std::int64_t v = x_min; v < x_min + 4; ++v) {
        const double p = std::pow(static_cast<double>(v), -alpha) / norm;
        const double freq = static_cast<double>(std::count(x.begin(), x.end(), v)) / n;
        CAPTURE(alpha);
        CAPTURE(v);
        CHECK(std::fabs(freq - p) < 4.5 * std::sqrt(p * (1 - p) / n));  // binomial 4.5σ
      }
      const std::int64_t far = 10 * x_min;
      const double pf = an::power_law_ccdf(alpha, x_min, far);
      const double ff =
          static_cast<double>(std::count_if(x.begin(), x.end(), [&](std::int64_t v) { return v >= far; })) / n;
      CHECK(std::fabs(ff - pf) < 4.5 * std::sqrt(pf * (1 - pf) / n));
    }
  }
  CHECK(an::sample_discrete_power_law(10, 2.0, 1, 3) == an::sample_discrete_power_law(10, 2.0, 1, 3));
  CHECK_THROWS_AS(an::sample_discrete_power_law(10, 1.0, 1), hyplora::value_error);
  CHECK_THROWS_AS(an::sample_discrete_power_law(10, 2.0, 0), hyplora::value_error);
}

TEST_CASE("exact MLE at a fixed x_min recovers α and maximises L") {
  for (const double alpha : {1.9, 2.5}) {
    const auto x = an::sample_discrete_power_law(20000, alpha, 1, 2024);
    an::power_law_options opt;
    opt.x_min = 1;
    const auto r = an::fit_power_law(x, opt);
    CAPTURE(alpha);
    CAPTURE(r.alpha);
    CHECK(r.n_tail == 20000);
    CHECK(r.x_min == 1);
    CHECK(std::fabs(r.alpha - alpha) < 3.0 * r.sigma);
    // A maximum of L: both neighbours are lower.
    CHECK(log_lik(x, 1, r.alpha) > log_lik(x, 1, r.alpha + 1e-4));
    CHECK(log_lik(x, 1, r.alpha) > log_lik(x, 1, r.alpha - 1e-4));
    if (alpha == 2.5) {
      // σ² = 1/(n Var_α(ln X)), Eq. (244), against a direct sum to K = 3e5 (the truncated
      // tail of Σ x^{-α} ln² x is ~2e-6 of the total at α = 2.5).
      double z = 0, m1 = 0, m2 = 0;
      for (long v = 300000; v >= 1; --v) {
        const double l = std::log(static_cast<double>(v));
        const double p = std::exp(-r.alpha * l);
        z += p;
        m1 += p * l;
        m2 += p * l * l;
      }
      const double var = m2 / z - (m1 / z) * (m1 / z);
      CHECK(rel_err(r.sigma, 1.0 / std::sqrt(20000.0 * var)) < 1e-4);
    }
    // KS distance of a correct model is O(1/√n).
    CHECK(r.ks < 1.5 / std::sqrt(20000.0));
  }
}

TEST_CASE("approximate estimator: biased at x_min = 1, consistent at larger x_min") {
  const auto x = an::sample_discrete_power_law(20000, 1.9, 1, 77);
  an::power_law_options opt;
  opt.estimator = an::power_law_estimator::approximate;
  opt.x_min = 1;
  const auto biased = an::fit_power_law(x, opt);
  CHECK(biased.alpha < 1.8);  // MATH_NOTES §6.2: ~1.73 for Zipf(1.9)
  CHECK(biased.sigma == doctest::Approx((biased.alpha - 1.0) / std::sqrt(20000.0)));
  opt.x_min = 8;
  const auto approx8 = an::fit_power_law(x, opt);
  opt.estimator = an::power_law_estimator::exact;
  const auto exact8 = an::fit_power_law(x, opt);
  CHECK(approx8.n_tail == exact8.n_tail);
  CHECK(std::fabs(approx8.alpha - exact8.alpha) < 0.5 * exact8.sigma);
  CHECK(std::fabs(exact8.alpha - 1.9) < 3.0 * exact8.sigma);
}

TEST_CASE("KS selection of x_min") {
  // Pure power law: every candidate fits, the chosen α is still within 3σ.
  for (const double alpha : {1.9, 2.5}) {
    const auto x = an::sample_discrete_power_law(20000, alpha, 1, 99);
    for (const auto est : {an::power_law_estimator::exact, an::power_law_estimator::approximate}) {
      an::power_law_options opt;
      opt.estimator = est;
      const auto r = an::fit_power_law(x, opt);
      CAPTURE(alpha);
      CAPTURE(r.x_min);
      CHECK(std::fabs(r.alpha - alpha) < 3.0 * r.sigma);
      // The chosen x_min has the smallest KS distance among candidates.
      for (const std::int64_t xm : {std::int64_t(1), std::int64_t(2), std::int64_t(4), std::int64_t(10)}) {
        opt.x_min = xm;
        CHECK(an::fit_power_law(x, opt).ks >= r.ks);
      }
    }
  }
  // Shifted: a flat body on [1, 29] below a power law from 30: x_min is found near 30.
  auto x = an::sample_discrete_power_law(12000, 2.5, 30, 5);
  std::mt19937_64 rng(6);
  for (int i = 0; i < 8000; ++i) x.push_back(1 + static_cast<std::int64_t>(rng() % 29));
  const auto r = an::fit_power_law(x);
  CHECK(r.x_min >= 25);
  CHECK(r.x_min <= 40);
  CHECK(std::fabs(r.alpha - 2.5) < 3.0 * r.sigma);
}

TEST_CASE("KS distance is the exact supremum over integers") {
  // Small data with gaps; brute force over every integer from x_min to past the maximum.
  const std::vector<std::int64_t> x{2, 2, 3, 5, 5, 5, 9, 14, 14, 40};
  for (const auto xm : {std::int64_t(1), std::int64_t(2), std::int64_t(5)}) {
    an::power_law_options opt;
    opt.x_min = xm;
    const auto r = an::fit_power_law(x, opt);
    double n = 0;
    for (const auto v : x) n += v >= xm;
    double d = 0.0;
    for (std::int64_t t = xm; t <= 60; ++t) {
      double S = 0;
      for (const auto v : x) S += (v >= xm && v <= t);
      S /= n;
      const double P = 1.0 - an::hurwitz_zeta(r.alpha, static_cast<double>(t + 1)) /
                                 an::hurwitz_zeta(r.alpha, static_cast<double>(xm));
      d = std::max(d, std::fabs(S - P));
    }
    CAPTURE(xm);
    CHECK(r.ks == doctest::Approx(d).epsilon(1e-12));
    CHECK(r.n_tail == static_cast<std::int64_t>(n));
  }
}

TEST_CASE("power-law input errors") {
  CHECK_THROWS_AS(an::fit_power_law({}), hyplora::value_error);
  CHECK_THROWS_AS(an::fit_power_law({3, 0, 2}), hyplora::value_error);
  CHECK_THROWS_AS(an::fit_power_law({4, 4, 4}), hyplora::value_error);
  an::power_law_options opt;
  opt.x_min = 50;
  CHECK_THROWS_AS(an::fit_power_law({1, 2, 3}, opt), hyplora::value_error);
  opt.x_min = 0;
  opt.alpha_lo = 0.5;
  CHECK_THROWS_AS(an::fit_power_law({1, 2, 3}, opt), hyplora::value_error);
}

}  // namespace analysis_test_power_law
