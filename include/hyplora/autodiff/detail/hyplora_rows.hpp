// hyplora/autodiff/detail/hyplora_rows.hpp — the per-token scalars of the exact HypLoRA node
// (docs/hyplora.md Eq. (156)–(167)), shared by the CPU node (autodiff/ops_hyplora.hpp) and the
// CUDA kernels (cuda/ops_hyplora.cuh) so each formula exists once. Raw scalars, HYPLORA_HD.
#pragma once

#include <cmath>

#include "hyplora/core/config.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::ad::detail {

/// Per-token scalars saved by the forward pass.
template <class T>
struct HypLoRARowScalars {
  T rho;  // |x_a|/(σR)
  T c;    // exp coefficient c(ρ) (sinhc, or its clamped form); c1 = c/σ
  T tau;  // |y|/R, y = B·a
  T c2;   // asinhc(τ), the log coefficient
};

/// Input side, Eq. (156): f_R(x/σ) = (c(ρ)/σ)·x with ρ = |x|/(σR) — the radius-σR exp
/// coefficient. `x_sq` = |x|².
template <class T>
HYPLORA_HD_INLINE void hyplora_in_scalars(T x_sq, T sigma, T R, T& rho, T& c) {
  using std::sqrt;
  rho = sqrt(x_sq) / (sigma * R);
  T ch;
  lorentz_rows::exp_coeffs(rho, ch, c);
}

/// Output side, Eq. (157)–(158): τ = |y|/R from |y|² = aᵀ(BᵀB)a (accumulated in double by the
/// callers: it can lose digits when a is near B's null space), c2 = asinhc(τ).
template <class T>
HYPLORA_HD_INLINE void hyplora_out_scalars(double y_sq, T R, T& tau, T& c2) {
  using std::sqrt;
  tau = static_cast<T>(sqrt(y_sq > 0.0 ? y_sq : 0.0)) / R;
  c2 = asinhc(tau);
}

/// Per-token gradient scalars of Eq. (165)–(167), given s_x = x·(Aᵀg_a) and s_y = y·g_out.
template <class T>
struct HypLoRARowGrads {
  T dR;  // contribution to ∂L/∂R, Eq. (166)
  T dS;  // contribution to ∂L/∂σ, Eq. (167)
  T kx;  // radial part of ∂L/∂x_a is kx·x_a, Eq. (165)
};

template <class T>
HYPLORA_HD_INLINE HypLoRARowGrads<T> hyplora_row_grads(HypLoRARowScalars<T> s, T s_x, T s_y, T sigma, T R,
                                                        bool scale_out_by_sigma) {
  const T Dc = lorentz_rows::exp0_dcoef(lorentz_rows::Exp0Scalars<T>{s.rho, s.c});  // c′(ρ)/ρ
  const T D2 = asinhc_d2(s.tau);
  HypLoRARowGrads<T> g;
  g.dR = -s.rho * s.rho * Dc / (sigma * R) * s_x - s.tau * s.tau * D2 / R * s_y;
  // σ enters through c1 and, when σ_out = σ, through the output scale.
  g.dS = -(Dc * s.rho * s.rho + s.c) / (sigma * sigma) * s_x + (scale_out_by_sigma ? s.c2 * s_y / sigma : T(0));
  g.kx = Dc / (sigma * sigma * sigma * R * R) * s_x;
  return g;
}

}  // namespace hyplora::ad::detail
