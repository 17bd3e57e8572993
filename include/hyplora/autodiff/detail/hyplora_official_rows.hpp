// hyplora/autodiff/detail/hyplora_official_rows.hpp — the per-token scalars of the radial
// HypLoRA nodes (docs/hyplora.md Eq. (175)–(193)): the published `hyplora` and
// `hyplora_simplified` branches, and the per-token backward coefficients of the radial skeleton
// they share with the stereographic node (detail/hyplora_stereographic_rows.hpp). Shared by the CPU
// nodes (autodiff/ops_hyplora_official.hpp, ops_hyplora_stereographic.hpp) and the CUDA kernels
// (cuda/ops_hyplora_official.cuh, ops_hyplora_stereographic.cuh), so each formula exists once.
// Raw scalars, HYPLORA_HD; no std:: call nvcc cannot make on the device.
#pragma once

#include <cmath>

#include "hyplora/core/config.hpp"
#include "hyplora/core/numerics.hpp"

namespace hyplora::ad {

/// The published `hyplora` branch's constants, verbatim (MATH_NOTES §4.1). They are part of the
/// function being reproduced, not numerical choices of this library, so they live here and not
/// in core/numerics.hpp.
struct OfficialHypLoRAConstants {
  static constexpr double k_eps = 1e-6;            // K = softplus(θ) + k_eps
  static constexpr double min_norm = 1e-7;         // n = max(|x|, ·) and q = max(|y|, ·)
  static constexpr double sinh_clamp = 12.0;       // sinh(min(n/(sR), ·))
  static constexpr double min_K_time = 1e-6;       // time component √(|y|² + 1/max(K, ·))
  static constexpr double min_excess = 1e-6;       // e = max(θ' − 1, ·)
  static constexpr double small_angle_below = 1.01;  // √(2e) below, arcosh above
  static constexpr double acosh_floor_excess = 1e-7; // arcosh(max(θ', 1 + ·))
  static constexpr double theta_grad_clip = 0.01;  // hook: ∂L/∂θ clamped to ±·
};

namespace detail {
namespace radial_lora {

/// Per-token scalars of the radial skeleton (columns of the saved (N, kCols) array), Eq. (184)–(186):
///   a = c1·U (U = A x_a), out = w·y (y = B a), kappa = (dw/d|y|)/|y| so that
///   g_y = w·G + kappa·(G·y)·y, kappa_x = (dc1/d|x|)/|x| so that the radial part of the input
///   map's backward is g_x += kappa_x·(U·g_a)·x,
///   ∂L/∂p_j += alpha_j·(G·y) + beta_j·(U·g_a) for the node's two scalar parameters p_0, p_1.
/// A row's input(n2, s) fills kC1, kKappaX, kBeta0, kBeta1; its output(q2, s) the other four.
enum Col { kC1 = 0, kW, kKappa, kKappaX, kAlpha0, kBeta0, kAlpha1, kBeta1, kCols };

/// |y|² = c1²·uᵀ(BᵀB)u in double (uMu accumulated in double: it loses digits when a is near B's
/// null space; a rounding-negative uMu counts as 0), the argument of a row's output().
template <class T>
HYPLORA_HD_INLINE double row_q2(T c1, double uMu) {
  const double c = static_cast<double>(c1);
  return c * c * (uMu > 0.0 ? uMu : 0.0);
}

/// W_a = (w·c1)·U, so out = W_a·Bᵀ (Eq. (184)).
template <class T>
HYPLORA_HD_INLINE T row_wa_coef(const T* s) {
  return s[kW] * s[kC1];
}

// ---- backward, per token (Eq. (186)–(189)); s = the token's saved scalars, P = G·B ---------------

/// s_y = G·y = c1·(U·P).
template <class T>
HYPLORA_HD_INLINE T row_s_y(const T* s, T uP) {
  return s[kC1] * uP;
}

/// The coefficient m of M·u in g_a = w·P + m·(M u), m = kappa·s_y·c1 (M = BᵀB); also m·c1 = f,
/// the token's weight in ∂B's R×R term Σ f·u uᵀ = Σ kappa·s_y·a aᵀ.
template <class T>
HYPLORA_HD_INLINE T row_ga_coef(const T* s, T s_y) {
  return s[kKappa] * s_y * s[kC1];
}

/// The radial part of ∂x_a is kx·x_a, kx = kappa_x·s_x with s_x = U·g_a.
template <class T>
HYPLORA_HD_INLINE T row_kx(const T* s, T s_x) {
  return s[kKappaX] * s_x;
}

/// The token's contribution to ∂L/∂p_j (j = 0, 1), each product rounded in T and summed in double.
template <class T>
HYPLORA_HD_INLINE double row_param_grad(const T* s, int j, T s_y, T s_x) {
  const T alpha = j == 0 ? s[kAlpha0] : s[kAlpha1];
  const T beta = j == 0 ? s[kBeta0] : s[kBeta1];
  return static_cast<double>(alpha * s_y) + static_cast<double>(beta * s_x);
}

}  // namespace radial_lora

// ---- official `hyplora` ------------------------------------------------------------------------

/// K = softplus(θ) + 1e-6 from softplus(θ) (the caller's stable softplus).
template <class T>
HYPLORA_HD_INLINE T official_curvature(T softplus_theta) {
  return softplus_theta + T(OfficialHypLoRAConstants::k_eps);
}

/// ∂L/∂θ from ∂L/∂K summed over the tokens: ·sigmoid(θ), then the published hook's clamp to
/// ±0.01 (Eq. (189)). In double, as the sums are.
HYPLORA_HD_INLINE double official_theta_grad(double dK, double sigmoid_theta) {
  const double clip = OfficialHypLoRAConstants::theta_grad_clip;
  const double d = dK * sigmoid_theta;
  return d < -clip ? -clip : (d > clip ? clip : d);
}

/// Per-token scalars of the official branch. p_0 = K, p_1 = s (θ gets ∂K·sigmoid(θ), clipped).
template <class T>
struct OfficialRow {
  using C = OfficialHypLoRAConstants;
  T K, R, s, gamma;  // R = √K

  // h = R·sinh(min(ρ, 12))·x/n = c1·x, n = max(|x|, 1e-7), ρ = n/(sR)  (Eq. (176)).
  HYPLORA_HD_INLINE void input(T n2, T* o) const {
    using namespace radial_lora;
    using std::cosh;
    using std::sinh;
    using std::sqrt;
    const T nx = sqrt(n2);
    const bool n_clamped = !(nx >= T(C::min_norm));  // torch's clamp passes the gradient at equality
    const T nn = n_clamped ? T(C::min_norm) : nx;
    const T rho = nn / (s * R);
    if (rho <= T(C::sinh_clamp)) {
      // c1 = R sinh(ρ)/n = sinhc(ρ)/s; d c1/dn · (1/n) = D1(ρ)/(s³K): no cancellation (Eq. (185)).
      const T D1 = sinhc_d1(rho);
      o[kC1] = sinhc(rho) / s;
      o[kKappaX] = n_clamped ? T(0) : D1 / (s * s * s * K);
      o[kBeta0] = -rho * rho * D1 / (T(2) * K * s);  // (d|h|/dR)/(2R n) = −ρ³D1/(2Rn)
      o[kBeta1] = -cosh(rho) / (s * s);              // (d|h|/ds)/n
    } else {
      // Saturated: |h| = R sinh(12), no gradient to n or s through it (Eq. (185)).
      const T sh = sinh(T(C::sinh_clamp));
      o[kC1] = R * sh / nn;
      o[kKappaX] = n_clamped ? T(0) : -o[kC1] / (nn * nn);
      o[kBeta0] = sh / (T(2) * R * nn);
      o[kBeta1] = T(0);
    }
  }

  // out = γ·R·g(θ')·y/q, θ' = √(|y|² + 1/max(K,1e-6))/R, q = max(|y|, 1e-7)  (Eq. (177)–(178)).
  HYPLORA_HD_INLINE void output(double q2d, T* o) const {
    using namespace radial_lora;
    using std::acosh;
    using std::sqrt;
    const T q2 = static_cast<T>(q2d);
    const T ny = sqrt(q2);
    const bool q_clamped = !(ny >= T(C::min_norm));
    const T q = q_clamped ? T(C::min_norm) : ny;
    const bool K_clamped = !(K >= T(C::min_K_time));
    const T Kt = K_clamped ? T(C::min_K_time) : K;
    const T z0 = sqrt(q2 + T(1) / Kt);
    const T th = z0 / R;
    T g, gp;  // g(θ') and g'(θ') (Eq. (178), (187))
    if (th < T(C::small_angle_below)) {
      const T em = th - T(1);
      const bool e_clamped = !(em >= T(C::min_excess));
      const T e = e_clamped ? T(C::min_excess) : em;
      g = sqrt(T(2) * e);
      gp = e_clamped ? T(0) : T(1) / g;
    } else {
      const T floor_th = T(1) + T(C::acosh_floor_excess);
      const T tc = th >= floor_th ? th : floor_th;
      g = acosh(tc);
      gp = th >= floor_th ? T(1) / sqrt((tc - T(1)) * (tc + T(1))) : T(0);
    }
    const T dth_dK = (K_clamped ? T(0) : -T(1) / (T(2) * z0 * K * K * R)) - z0 / (T(2) * R * R * R);
    o[kW] = gamma * R * g / q;
    o[kKappa] = gamma * (gp / (z0 * q) - (q_clamped ? T(0) : R * g / (q * q * q)));
    o[kAlpha0] = gamma / q * (g / (T(2) * R) + R * gp * dth_dK);
    o[kAlpha1] = T(0);  // s does not enter the output side ("no multiplication by s")
  }
};

// ---- official `hyplora_simplified` -------------------------------------------------------------

/// Per-token scalars of the simplified branch. p_0 = k (the raw trainable scalar).
template <class T>
struct OfficialSimplifiedRow {
  T k, sk, gamma;  // sk = √|k|

  // u = 2x/(1 + k|x|²) = c1·x  (Eq. (190)).
  HYPLORA_HD_INLINE void input(T n2, T* o) const {
    using namespace radial_lora;
    const T d1 = T(1) + k * n2;
    o[kC1] = T(2) / d1;
    o[kKappaX] = -T(4) * k / (d1 * d1);
    o[kBeta0] = -T(2) * n2 / (d1 * d1);
    o[kBeta1] = T(0);
  }

  // y0 = √(|y|² + k), out = γ·y/(1 + √|k|·y0)  (Eq. (191)).
  HYPLORA_HD_INLINE void output(double q2d, T* o) const {
    using namespace radial_lora;
    using std::sqrt;
    const T y0 = sqrt(static_cast<T>(q2d) + k);
    const T c3 = T(1) / (T(1) + sk * y0);
    o[kW] = gamma * c3;
    o[kKappa] = -gamma * c3 * c3 * sk / y0;
    o[kAlpha0] = -gamma * c3 * c3 * (y0 / (T(2) * sk) + sk / (T(2) * y0));
    o[kAlpha1] = T(0);
  }
};

}  // namespace detail
}  // namespace hyplora::ad
