// tests/support/dual.hpp — a tiny forward-mode dual number for Jacobian checks in tests.
//
// Dual<T>{val, der} carries a value and one directional derivative. Seeding der = e_j on input j
// and reading der of every output gives column j of the Jacobian exactly (no step size), which
// tests compare against central differences and against the *_backward row functions.
// The std math functions below are found by ADL from the library's `using std::f; f(x)` calls,
// and numerics<Dual<T>> forwards every threshold to numerics<T>, so a row function instantiated
// on Dual<T> takes exactly the branches it takes on T.
#pragma once

#include <cmath>
#include <ostream>
#include <type_traits>

#include <Eigen/Core>

#include "hyplora/core/numerics.hpp"

namespace hyplora {
namespace testing {

template <class T>
struct Dual {
  T val{};
  T der{};

  constexpr Dual() = default;
  // Implicit from T so mixed expressions (Dual * T, T - Dual) work through the friends below.
  constexpr Dual(T v) : val(v), der(T(0)) {}  // NOLINT(google-explicit-constructor)
  constexpr Dual(T v, T d) : val(v), der(d) {}
  // Literals of another arithmetic type, e.g. T(0.5) written as Dual<float>(0.5) in generic code.
  template <class U, std::enable_if_t<std::is_arithmetic<U>::value && !std::is_same<U, T>::value,
                                      int> = 0>
  constexpr explicit Dual(U v) : val(static_cast<T>(v)), der(T(0)) {}

  Dual& operator+=(const Dual& o) { val += o.val; der += o.der; return *this; }
  Dual& operator-=(const Dual& o) { val -= o.val; der -= o.der; return *this; }
  Dual& operator*=(const Dual& o) { return *this = *this * o; }
  Dual& operator/=(const Dual& o) { return *this = *this / o; }

  friend Dual operator+(const Dual& a) { return a; }
  friend Dual operator-(const Dual& a) { return {-a.val, -a.der}; }
  friend Dual operator+(const Dual& a, const Dual& b) { return {a.val + b.val, a.der + b.der}; }
  friend Dual operator-(const Dual& a, const Dual& b) { return {a.val - b.val, a.der - b.der}; }
  friend Dual operator*(const Dual& a, const Dual& b) {
    return {a.val * b.val, a.der * b.val + a.val * b.der};
  }
  friend Dual operator/(const Dual& a, const Dual& b) {
    const T q = a.val / b.val;
    return {q, (a.der - q * b.der) / b.val};
  }

  // Comparisons look at the value only: branches are chosen as the scalar code would choose them.
  friend bool operator<(const Dual& a, const Dual& b) { return a.val < b.val; }
  friend bool operator>(const Dual& a, const Dual& b) { return a.val > b.val; }
  friend bool operator<=(const Dual& a, const Dual& b) { return a.val <= b.val; }
  friend bool operator>=(const Dual& a, const Dual& b) { return a.val >= b.val; }
  friend bool operator==(const Dual& a, const Dual& b) { return a.val == b.val; }
  friend bool operator!=(const Dual& a, const Dual& b) { return a.val != b.val; }

  friend std::ostream& operator<<(std::ostream& os, const Dual& a) {
    return os << a.val << "+" << a.der << "ε";
  }

  // ---- math, found by ADL; each is f(a) with derivative f'(a.val)·a.der -------------------
  // At val = 0 with der = 0 the derivative is taken as 0 (not 0/0): that is the limit in the
  // library's compositions, e.g. sinhc(√(v·v)/R) at v = 0, whose inner derivative is 2v·dv = 0.
  friend Dual sqrt(const Dual& a) {
    const T s = std::sqrt(a.val);
    if (s == T(0) && a.der == T(0)) return {s, T(0)};
    return {s, a.der / (T(2) * s)};
  }
  friend Dual exp(const Dual& a) {
    const T e = std::exp(a.val);
    return {e, e * a.der};
  }
  friend Dual log(const Dual& a) { return {std::log(a.val), a.der / a.val}; }
  friend Dual log1p(const Dual& a) { return {std::log1p(a.val), a.der / (T(1) + a.val)}; }
  friend Dual sinh(const Dual& a) { return {std::sinh(a.val), std::cosh(a.val) * a.der}; }
  friend Dual cosh(const Dual& a) { return {std::cosh(a.val), std::sinh(a.val) * a.der}; }
  friend Dual tanh(const Dual& a) {
    const T t = std::tanh(a.val);
    return {t, (T(1) - t * t) * a.der};
  }
  friend Dual asinh(const Dual& a) {
    return {std::asinh(a.val), a.der / std::sqrt(T(1) + a.val * a.val)};
  }
  friend Dual acosh(const Dual& a) {
    return {std::acosh(a.val), a.der / std::sqrt((a.val - T(1)) * (a.val + T(1)))};
  }
  friend Dual atanh(const Dual& a) {
    return {std::atanh(a.val), a.der / ((T(1) - a.val) * (T(1) + a.val))};
  }
  // |a|: derivative sign(a)·der, taking +der at 0 (the one-sided choice the library never needs).
  friend Dual abs(const Dual& a) { return a.val < T(0) ? Dual{-a.val, -a.der} : a; }
  friend bool isfinite(const Dual& a) { return std::isfinite(a.val) && std::isfinite(a.der); }
};

}  // namespace testing

/// Thresholds of a Dual<T> are those of T, so the dual code follows the scalar code's branches.
/// (Add a line here when core/numerics.hpp gains a constant that Dual-instantiated code reads.)
template <class T>
struct numerics<testing::Dual<T>> {
  using D = testing::Dual<T>;
  static D eps() { return D(numerics<T>::eps()); }
  static D sinhc_series_below() { return D(numerics<T>::sinhc_series_below()); }
  static D d1_series_below() { return D(numerics<T>::d1_series_below()); }
  static D d2_series_below() { return D(numerics<T>::d2_series_below()); }
  static D max_exp_arg() { return D(numerics<T>::max_exp_arg()); }
  static D ball_eps() { return D(numerics<T>::ball_eps()); }
  static D min_norm() { return D(numerics<T>::min_norm()); }
  static D acosh_log_above() { return D(numerics<T>::acosh_log_above()); }
  static D check_tol() { return D(numerics<T>::check_tol()); }
  static D tanhc_d1_series_below() { return D(numerics<T>::tanhc_d1_series_below()); }
  static D artanhc_d1_series_below() { return D(numerics<T>::artanhc_d1_series_below()); }
};

}  // namespace hyplora

// Lets tests hold Dual<T> in Eigen matrices (e.g. VectorX<Dual<double>>).
namespace Eigen {
template <class T>
struct NumTraits<hyplora::testing::Dual<T>> : NumTraits<T> {
  using Real = hyplora::testing::Dual<T>;
  using NonInteger = hyplora::testing::Dual<T>;
  using Nested = hyplora::testing::Dual<T>;
  using Literal = hyplora::testing::Dual<T>;
  enum { IsComplex = 0, IsInteger = 0, IsSigned = 1, RequireInitialization = 1, ReadCost = 2,
         AddCost = 3, MulCost = 3 };
};
}  // namespace Eigen
