// Tests for include/hyplora/core/numerics.hpp: the stable scalar functions against long double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <hyplora/core/numerics.hpp>

namespace core_test_numerics {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

using LD = long double;
LD ref_sinhc(LD t) { return t == 0 ? 1.0L : std::sinh(t) / t; }
LD ref_asinhc(LD t) { return t == 0 ? 1.0L : std::asinh(t) / t; }
LD ref_tanhc(LD t) { return t == 0 ? 1.0L : std::tanh(t) / t; }
LD ref_artanhc(LD t) { return t == 0 ? 1.0L : std::atanh(t) / t; }

// Reference D1/D2 by long-double series (many terms) for small t, direct formula otherwise.
LD ref_d1(LD t) {
  if (std::fabs(t) > 0.5L) return (t * std::cosh(t) - std::sinh(t)) / (t * t * t);
  // D1 = sum_{k>=1} t^{2k-2} * 2k / (2k+1)!
  LD sum = 0, term_pow = 1, fact = 6;  // (2k+1)! for k = 1
  for (int k = 1; k < 20; ++k) {
    sum += term_pow * (2 * k) / fact;
    term_pow *= t * t;
    fact *= (2 * k + 2) * (2 * k + 3);
  }
  return sum;
}
LD ref_d2(LD t) {
  // d/dt asinhc(t) = t * D2(t); central difference in long double is not enough near 0, so use
  // the exact form where it does not cancel and the series (coefficients from asinh's series)
  // elsewhere: asinhc(t) = sum_n (-1)^n (2n)! / (4^n (n!)^2 (2n+1)) t^{2n}.
  if (std::fabs(t) > 0.3L) return (t / std::sqrt(1 + t * t) - std::asinh(t)) / (t * t * t);
  LD sum = 0, c = 1;  // c = (2n)!/(4^n (n!)^2)
  LD tp = 1;          // t^{2n-2}
  for (int n = 1; n < 40; ++n) {
    c *= LD(2 * n - 1) / LD(2 * n);
    const LD coef = ((n % 2) ? -1 : 1) * c / (2 * n + 1);  // coefficient of t^{2n} in asinhc
    sum += coef * 2 * n * tp;                              // derivative / t
    tp *= t * t;
  }
  return sum;
}

template <class T>
void check_rel(T got, LD want, double tol) {
  const LD err = std::fabs(static_cast<LD>(got) - want) / std::max(std::fabs(want), LD(1e-300));
  CHECK_MESSAGE(static_cast<double>(err) <= tol, "got " << static_cast<double>(got) << " want "
                                                        << static_cast<double>(want));
}

}  // namespace

TEST_CASE_TEMPLATE("stable scalar functions match long double", T, float, double) {
  const double tol = std::is_same<T, float>::value ? 2e-6 : 2e-14;
  for (double t : {0.0, 1e-12, 1e-8, 1e-5, 1e-3, 9e-3, 0.011, 0.03, 0.1, 0.24, 0.26, 0.39, 0.41,
                   0.5, 0.7, 1.0, 3.0, 10.0, 30.0}) {
    const T x = static_cast<T>(t);
    const LD lx = static_cast<LD>(x);
    CAPTURE(t);
    check_rel(hyplora::sinhc(x), ref_sinhc(lx), tol);
    check_rel(hyplora::asinhc(x), ref_asinhc(lx), tol);
    check_rel(hyplora::tanhc(x), ref_tanhc(lx), tol);
    if (t < 0.99) check_rel(hyplora::artanhc(x), ref_artanhc(lx), tol);
    if (t <= 30.0) check_rel(hyplora::sinhc_d1(x), ref_d1(lx), std::is_same<T, float>::value ? 1e-5 : 1e-12);
    check_rel(hyplora::asinhc_d2(x), ref_d2(lx), std::is_same<T, float>::value ? 1e-5 : 1e-12);
    // The forms that reuse the forward's coefficient (what the backward passes call) are as
    // accurate as the direct ones, given the coefficient as the forward computes it.
    if (t <= 30.0) check_rel(hyplora::sinhc_d1(x, hyplora::sinhc(x)), ref_d1(lx), std::is_same<T, float>::value ? 1e-5 : 1e-12);
    check_rel(hyplora::asinhc_d2(x, hyplora::asinhc(x)), ref_d2(lx), std::is_same<T, float>::value ? 1e-5 : 1e-12);
  }
}

TEST_CASE_TEMPLATE("acosh1p keeps the information in e", T, float, double) {
  const double tol = std::is_same<T, float>::value ? 2e-6 : 2e-14;
  for (double e : {1e-30, 1e-14, 1e-7, 1e-3, 0.5, 3.0, 1e4, 1e7, 1e9, 1e20}) {
    const T x = static_cast<T>(e);
    const LD lx = static_cast<LD>(x);
    CAPTURE(e);
    check_rel(hyplora::acosh1p(x), std::log1p(lx + std::sqrt(lx * (2 + lx))), tol);
  }
  CHECK(hyplora::acosh1p(T(0)) == T(0));
  CHECK(hyplora::acosh1p(T(-1e-9)) == T(0));
}

TEST_CASE_TEMPLATE("sinh/cosh arguments are clamped where they stop being representable", T,
                   float, double) {
  const T big = hyplora::clamp_exp_arg(T(1e4));
  const T s = std::sinh(big);
  CHECK(std::isfinite(static_cast<double>(s * s)));
  CHECK(hyplora::clamp_exp_arg(T(2)) == T(2));
}

}  // namespace core_test_numerics
