// hyplora/core/numerics.hpp — every dtype-aware constant and the stable scalar functions.
//
// All clamps and thresholds live here, each with the reason it exists (docs/math.md §5).
// The scalar functions are HYPLORA_HD so the manifold rows, tape ops and CUDA kernels share them.
#pragma once

#include <cmath>
#include <limits>

#include "hyplora/core/config.hpp"

namespace hyplora {

/// Per-scalar constants. Specialised for float and double (usable on the device); the primary
/// template derives them from std::numeric_limits for other scalars (long double, AD scalars
/// in tests may specialise it).
template <class T>
struct numerics {
  static T eps() { return std::numeric_limits<T>::epsilon(); }
  static T sinhc_series_below() { return T(1e-4); }
  static T d1_series_below() { return T(0.4); }
  static T d2_series_below() { return T(0.04); }
  static T max_exp_arg() { return T(350); }
  static T ball_eps() { return T(1e-5); }
  static T min_norm() { return T(1e-300); }
  static T acosh_log_above() { return T(1e8); }
  static T check_tol() { return T(1e-8); }
  static T tanhc_d1_series_below() { return T(0.1); }
  static T artanhc_d1_series_below() { return T(0.2); }
  static T dora_exact_below() { return T(0.25); }
  static T dora_readback_bias_ratio() { return T(4); }
};

template <>
struct numerics<float> {
  HYPLORA_HD static constexpr float eps() { return 1.1920929e-07f; }
  // Below this |t| the Taylor polynomials of sinhc/asinhc/tanhc/artanhc are exact to rounding
  // (next term t^4/120 < 1e-10) and, unlike sinh(t)/t, differentiate cleanly at 0.
  HYPLORA_HD static constexpr float sinhc_series_below() { return 1e-2f; }
  // D1 and D2 (Eq. (5.3), (5.4)) cancel catastrophically for small t; series below these.
  HYPLORA_HD static constexpr float d1_series_below() { return 0.5f; }
  HYPLORA_HD static constexpr float d2_series_below() { return 0.25f; }
  // Largest tangent length (in radii) fed to cosh/sinh: R sinh(44) = 6.4e18·R, whose square
  // (4e37·K) still fits in float; past it exp/log cannot represent the point (docs §5.3).
  HYPLORA_HD static constexpr float max_exp_arg() { return 44.0f; }
  // Poincaré points are kept at |y| <= (1 - ball_eps) R: float cannot resolve the boundary
  // closer (the same ε as geoopt/hgcn/HypLL use).
  HYPLORA_HD static constexpr float ball_eps() { return 4e-3f; }
  // Norms below this are treated as zero when a direction y/|y| is needed.
  HYPLORA_HD static constexpr float min_norm() { return 1e-30f; }
  // arcosh(t) = log(t) + log 2 above this (t^2 would lose everything / overflow).
  HYPLORA_HD static constexpr float acosh_log_above() { return 4096.0f; }
  // Default relative tolerance of check_point/check_vector and the orthogonality checks:
  // ~1000 ulp, above what a few float ops leave behind, far below a real misuse.
  HYPLORA_HD static constexpr float check_tol() { return 1e-4f; }
  // tanhc'(t)/t and artanhc'(t)/t (Eq. (69), (71)) cancel like D1/D2; series below these.
  HYPLORA_HD static constexpr float tanhc_d1_series_below() { return 0.4f; }
  HYPLORA_HD static constexpr float artanhc_d1_series_below() { return 0.5f; }
  // DoRA's row norm from its quadratic form (Eq. (260)) is recomputed from V_i below this
  // fraction of (|W0_i| + |γB_iA|)²: above it the form loses at most 2 bits to cancellation.
  HYPLORA_HD static constexpr float dora_exact_below() { return 0.25f; }
  // DoRA reads y back from z = s⊙y + b for ∂s (Eq. (269)) while the bias adds at most this
  // multiple of the column's own rounding bound; past it the column is recomputed.
  HYPLORA_HD static constexpr float dora_readback_bias_ratio() { return 4.0f; }
};

template <>
struct numerics<double> {
  HYPLORA_HD static constexpr double eps() { return 2.220446049250313e-16; }
  HYPLORA_HD static constexpr double sinhc_series_below() { return 1e-4; }
  HYPLORA_HD static constexpr double d1_series_below() { return 0.4; }
  HYPLORA_HD static constexpr double d2_series_below() { return 0.04; }
  // R sinh(350) = 5e151·R: its square still fits in double.
  HYPLORA_HD static constexpr double max_exp_arg() { return 350.0; }
  HYPLORA_HD static constexpr double ball_eps() { return 1e-5; }
  HYPLORA_HD static constexpr double min_norm() { return 1e-300; }
  HYPLORA_HD static constexpr double acosh_log_above() { return 6.7e7; }
  HYPLORA_HD static constexpr double check_tol() { return 1e-8; }
  HYPLORA_HD static constexpr double tanhc_d1_series_below() { return 0.1; }
  HYPLORA_HD static constexpr double artanhc_d1_series_below() { return 0.2; }
  HYPLORA_HD static constexpr double dora_exact_below() { return 0.25; }
  HYPLORA_HD static constexpr double dora_readback_bias_ratio() { return 4.0; }
};

// ---- stable scalar functions (docs/math.md §5) ----------------------------------------------
// Each uses `using std::f; f(x)` so an AD scalar's own overloads are found by ADL.

/// sinhc(t) = sinh(t)/t, 1 at t = 0. No cancellation; the series only avoids 0/0.
template <class T>
HYPLORA_HD_INLINE T sinhc(T t) {
  using std::abs;
  using std::sinh;
  if (abs(t) < numerics<T>::sinhc_series_below()) {
    const T t2 = t * t;
    return T(1) + t2 / T(6) * (T(1) + t2 / T(20));
  }
  return sinh(t) / t;
}

/// asinhc(t) = asinh(t)/t, 1 at t = 0.
template <class T>
HYPLORA_HD_INLINE T asinhc(T t) {
  using std::abs;
  using std::asinh;
  if (abs(t) < numerics<T>::sinhc_series_below()) {
    const T t2 = t * t;
    return T(1) - t2 / T(6) * (T(1) - T(9) * t2 / T(20));
  }
  return asinh(t) / t;
}

/// tanhc(t) = tanh(t)/t, 1 at t = 0.
template <class T>
HYPLORA_HD_INLINE T tanhc(T t) {
  using std::abs;
  using std::tanh;
  if (abs(t) < numerics<T>::sinhc_series_below()) {
    const T t2 = t * t;
    return T(1) - t2 / T(3) * (T(1) - T(2) * t2 / T(5));
  }
  return tanh(t) / t;
}

/// artanhc(t) = atanh(t)/t for |t| < 1, 1 at t = 0. The caller keeps |t| < 1 (ball projection).
template <class T>
HYPLORA_HD_INLINE T artanhc(T t) {
  using std::abs;
  using std::atanh;
  if (abs(t) < numerics<T>::sinhc_series_below()) {
    const T t2 = t * t;
    return T(1) + t2 / T(3) * (T(1) + T(3) * t2 / T(5));
  }
  return atanh(t) / t;
}

/// D1(t) = (t cosh t − sinh t)/t³, so d/dt sinhc(t) = t·D1(t). Series where it cancels
/// (MATH_NOTES §4.4: 1/3 + t²/30 + t⁴/840 + t⁶/45360 + t⁸/3991680 + t¹⁰/518918400).
template <class T>
HYPLORA_HD_INLINE T sinhc_d1(T t) {
  using std::abs;
  using std::cosh;
  using std::sinh;
  if (abs(t) < numerics<T>::d1_series_below()) {
    const T u = t * t;
    return T(1) / T(3) +
           u * (T(1) / T(30) +
                u * (T(1) / T(840) +
                     u * (T(1) / T(45360) + u * (T(1) / T(3991680) + u * (T(1) / T(518918400))))));
  }
  return (t * cosh(t) - sinh(t)) / (t * t * t);
}

/// D2(t) = (t/√(1+t²) − asinh t)/t³, so d/dt asinhc(t) = t·D2(t). Series where it cancels
/// (−1/3 + 3t²/10 − 15t⁴/56 + 35t⁶/144 − 315t⁸/1408).
template <class T>
HYPLORA_HD_INLINE T asinhc_d2(T t) {
  using std::abs;
  using std::asinh;
  using std::sqrt;
  if (abs(t) < numerics<T>::d2_series_below()) {
    const T u = t * t;
    return -T(1) / T(3) +
           u * (T(3) / T(10) + u * (-T(15) / T(56) + u * (T(35) / T(144) + u * (-T(315) / T(1408)))));
  }
  return (t / sqrt(T(1) + t * t) - asinh(t)) / (t * t * t);
}

// The backward passes already hold the forward's sinhc(t) / asinhc(t) (the coefficients of the
// exp/log maps), so D1/D2 are read off them with one sqrt instead of two more transcendental
// calls per token: cosh t = √(1 + (t·sinhc t)²) and asinh'(t) = 1/√(1+t²). The differences cancel
// as in the direct forms; float is evaluated in double so the given coefficient's own rounding
// (≤ 1 ulp) is the only error the cancellation magnifies, as in the direct forms.
namespace detail {
template <class T> struct wider { using type = T; };
template <> struct wider<float> { using type = double; };
}  // namespace detail

/// D1(t) given s = sinhc(t) (same value as sinhc_d1(t); series below d1_series_below).
template <class T>
HYPLORA_HD_INLINE T sinhc_d1(T t, T s) {
  using std::abs;
  using std::sqrt;
  if (abs(t) < numerics<T>::d1_series_below()) return sinhc_d1(t);
  using W = typename detail::wider<T>::type;
  const W tw = static_cast<W>(t), sw = static_cast<W>(s), sh = tw * sw;
  return static_cast<T>((sqrt(W(1) + sh * sh) - sw) / (tw * tw));
}

/// D2(t) given a = asinhc(t) (same value as asinhc_d2(t); series below d2_series_below).
template <class T>
HYPLORA_HD_INLINE T asinhc_d2(T t, T a) {
  using std::abs;
  using std::sqrt;
  if (abs(t) < numerics<T>::d2_series_below()) return asinhc_d2(t);
  using W = typename detail::wider<T>::type;
  const W tw = static_cast<W>(t);
  return static_cast<T>((W(1) / sqrt(W(1) + tw * tw) - static_cast<W>(a)) / (tw * tw));
}

/// T1(t) = (t sech²t − tanh t)/t³, so d/dt tanhc(t) = t·T1(t) (Eq. (69)). The direct form
/// cancels for small t; series −2/3 + 8t²/15 − 34t⁴/105 + 496t⁶/2835 − … (radius π/2) below
/// numerics::tanhc_d1_series_below.
template <class T>
HYPLORA_HD_INLINE T tanhc_d1(T t) {
  using std::abs;
  using std::cosh;
  using std::tanh;
  if (abs(t) < numerics<T>::tanhc_d1_series_below()) {
    const T u = t * t;
    return -T(2) / T(3) +
           u * (T(8) / T(15) +
                u * (-T(34) / T(105) +
                     u * (T(496) / T(2835) +
                          u * (-T(2764) / T(31185) +
                               u * (T(262128) / T(6081075) +
                                    u * (-T(13013966) / T(638512875)))))));
  }
  const T ch = cosh(t);
  return (t / (ch * ch) - tanh(t)) / (t * t * t);
}

/// A1(t) = (t/(1−t²) − atanh t)/t³, so d/dt artanhc(t) = t·A1(t) (Eq. (71)), for |t| < 1.
/// Series Σ_{k≥1} 2k/(2k+1)·t^{2k−2} (16 terms) below numerics::artanhc_d1_series_below, where
/// the direct form cancels; 1 − t² is formed as (1−t)(1+t).
template <class T>
HYPLORA_HD_INLINE T artanhc_d1(T t) {
  using std::abs;
  using std::atanh;
  if (abs(t) < numerics<T>::artanhc_d1_series_below()) {
    const T u = t * t;
    T acc = T(0);
    for (int k = 16; k >= 1; --k) acc = acc * u + T(2 * k) / T(2 * k + 1);
    return acc;
  }
  return (t / ((T(1) - t) * (T(1) + t)) - atanh(t)) / (t * t * t);
}

/// arcosh(1 + e) for e >= 0 without forming 1 + e first (MATH_NOTES §5: the information is in e).
template <class T>
HYPLORA_HD_INLINE T acosh1p(T e) {
  using std::log;
  using std::log1p;
  using std::sqrt;
  if (!(e > T(0))) return T(0);  // e < 0 only from rounding of a quantity that is >= 0
  if (e > numerics<T>::acosh_log_above()) return log(e + T(1)) + T(0.6931471805599453);
  return log1p(e + sqrt(e * (T(2) + e)));
}

/// Clamp a tangent length (in radii) to what cosh/sinh can represent (numerics::max_exp_arg).
template <class T>
HYPLORA_HD_INLINE T clamp_exp_arg(T t) {
  return t > numerics<T>::max_exp_arg() ? numerics<T>::max_exp_arg() : t;
}

}  // namespace hyplora
