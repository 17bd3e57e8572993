// hyplora/autodiff/detail/hyplora_stereographic_rows.hpp — the per-token scalars of the
// stereographic HypLoRA node (docs/hyplora.md Eq. (194)–(199)), shared by the CPU node
// (autodiff/ops_hyplora_stereographic.hpp) and the CUDA kernels (cuda/ops_hyplora_stereographic.cuh)
// so each formula exists once. Columns and the backward coefficients: hyplora_official_rows.hpp.
#pragma once

#include <cmath>

#include "hyplora/autodiff/detail/hyplora_official_rows.hpp"
#include "hyplora/core/config.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::ad::detail {

/// Per-token scalars of the stereographic node. p_0 = R; p_1 unused.
template <class T>
struct StereographicRow {
  T R, gamma;

  // f_R(2x) = c·2x, ρ = 2|x|/R, with the exp coefficient of Eq. (15)–(16) (clamped past
  // max_exp_arg); its backward is Eq. (19) applied to v = 2x (Eq. (197)).
  HYPLORA_HD_INLINE void input(T n2, T* o) const {
    using namespace radial_lora;
    using std::sqrt;
    const T K = R * R;
    const T rho = T(2) * sqrt(n2) / R;
    const T c = lorentz_rows::exp_coeff(rho);
    const T Dc = lorentz_rows::exp0_dcoef(lorentz_rows::Exp0Scalars<T>{rho, c});
    o[kC1] = T(2) * c;
    o[kKappaX] = T(8) * Dc / K;
    o[kBeta0] = -T(2) * rho * rho * Dc / R;
    o[kBeta1] = T(0);
  }

  // p(LLR) = c3·y, c3 = 1/(1 + E), E = √(1 + τ²), τ = |y|/R (Eq. (196), (198)):
  // (dc3/d|y|)/|y| = −c3²/(K E) and ∂c3/∂R = c3²τ²/(E R); neither cancels.
  HYPLORA_HD_INLINE void output(double q2d, T* o) const {
    using namespace radial_lora;
    using std::sqrt;
    const T tau = static_cast<T>(sqrt(q2d)) / R;
    const T E = sqrt(T(1) + tau * tau);
    const T c3 = T(1) / (T(1) + E);
    o[kW] = gamma * c3;
    o[kKappa] = -gamma * c3 * c3 / (R * R * E);
    o[kAlpha0] = gamma * c3 * c3 * tau * tau / (E * R);
    o[kAlpha1] = T(0);
  }
};

}  // namespace hyplora::ad::detail
