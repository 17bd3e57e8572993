// hyplora/autodiff/detail/dora_rows.hpp — the per-row and per-column scalars of the fused DoRA
// nodes (docs/hyplora.md Eq. (260)–(269)), shared by the CPU nodes (autodiff/ops_dora.hpp) and the
// CUDA op (cuda/ops_dora.cuh) so each formula and each branch exists once. Raw scalars, HYPLORA_HD.
#pragma once

#include <cmath>

#include "hyplora/core/config.hpp"

namespace hyplora::ad::detail {

/// ‖V_i‖ from the quadratic form (Eq. (260)), given w = ‖W0_i‖², qb = Q_i·B_i and bmb = (B·M)_i·B_i:
/// ‖V_i‖² = w + 2γ·qb + γ²·bmb. Sets `exact` (and returns 0) when the form has cancelled, i.e.
/// ‖V_i‖² < rho·(‖W0_i‖ + ‖γB_iA‖)² (rho = numerics<T>::dora_exact_below(); also for NaN): the
/// caller then streams V_i itself (Eq. (261)).
template <class T>
HYPLORA_HD_INLINE T dora_form_norm(T w, T qb, T bmb, T gamma, T rho, bool& exact) {
  using std::abs;
  using std::sqrt;
  const T q = T(2) * gamma * qb;
  const T b = gamma * gamma * bmb;
  const T n2 = w + q + b;
  exact = !(n2 >= rho * (w + abs(b) + T(2) * sqrt(w * abs(b))));  // also catches NaN
  return exact ? T(0) : sqrt(n2);
}

/// c_i = −ds_i·m_i/‖V_i‖³ (Eq. (263)); 0 at V_i = 0, the subgradient the composed row_norm takes.
template <class T>
HYPLORA_HD_INLINE T dora_norm_coef(T ds, T m, T norm) {
  return norm > T(0) ? -ds * m / (norm * norm * norm) : T(0);
}

/// Whether ∂s_j may be read back from z = s ⊙ y + b (Eq. (269)): s_j finite and non-zero, and,
/// with a bias, |b_j|·Σ_n|G_nj| ≤ κ·Σ_n|G_nj·(z_nj − b_j)| (κ = dora_readback_bias_ratio()).
/// Otherwise the column is recomputed.
template <class T>
HYPLORA_HD_INLINE bool dora_readback_ok(T s, T b, bool has_bias, T sum_abs_g, T sum_abs_gy, T kappa) {
  using std::abs;
  // abs(s) < HUGE_VAL is abs(s) <= max(): false for ±∞ and NaN (HUGE_VAL works on the device too).
  return abs(s) > T(0) && abs(s) < static_cast<T>(HUGE_VAL) && (!has_bias || abs(b) * sum_abs_g <= kappa * sum_abs_gy);
}

/// ∂s_j read back from z (Eq. (269)): (Σ_n G_nj·z_nj − b_j·Σ_n G_nj)/s_j.
template <class T>
HYPLORA_HD_INLINE T dora_readback_ds(T sum_gz, T sum_g, T s, T b, bool has_bias) {
  return has_bias ? (sum_gz - b * sum_g) / s : sum_gz / s;
}

}  // namespace hyplora::ad::detail
