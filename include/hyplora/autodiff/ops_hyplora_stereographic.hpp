// hyplora/autodiff/ops_hyplora_stereographic.hpp — the consistent "simplified" HypLoRA node
// (docs/hyplora.md §5, Eq. (194)–(199)): the published `hyplora_simplified` branch with its
// sphere-sign step and its mixed use of k as K and as c replaced by the stereographic maps of
// docs/math.md §4, all of radius R = √K:
//
//   out = p( LLR(BA, p⁻¹( exp_0^P(x_a) )) ),   z = x·W0ᵀ (+ b) + γ·out.
//
// x_a enters the ball through exp_0^P, so any x_a works (p⁻¹ alone needs |x_a| < R). By
// Eq. (104), p⁻¹∘exp_0^P = exp_o^L∘(2·), so the input map is f_R(2x_a) = sinhc(2|x_a|/R)·2x_a
// (Eq. (195)) and no ball point, no ε-projection and no division by K − |u|² is ever formed;
// the output map is p(y0, y) = R·y/(R + y0) = y/(1 + √(1 + |y|²/K)) (Eq. (196)). Near the origin
// the ½ of dp_o and the 2 of its inverse cancel: z = x·W0ᵀ + γ·BA·x_a + O(|x_a|³), i.e. LoRA.
//
// The node is the radial skeleton of ops_hyplora_official.hpp (c1 = 2 sinhc(2|x_a|/R),
// w = γ/(1 + √(1+τ²)), τ = |BA f|/R): two skinny GEMMs forward, four backward, 8 scalars/token.
#pragma once

#include <cmath>
#include <string>

#include "hyplora/autodiff/detail/hyplora_stereographic_rows.hpp"
#include "hyplora/autodiff/ops_hyplora_official.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora::ad {

namespace detail {

// The per-token scalars: StereographicRow (detail/hyplora_stereographic_rows.hpp, shared with CUDA).

// parents: x, W0, x_a, A, B, R [, bias]; ints: {bias id, has base}; attrs: {γ}.
template <class T>
void hyplora_stereographic_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int xa = n.parents[2], A = n.parents[3], B = n.parents[4], Rid = n.parents[5];
  const bool need_p[2] = {t.needs_grad(Rid), false};
  double dp[2];
  radial_lora::backward(t, id, xa, A, B, need_p, dp);
  radial_lora::base_backward(t, id);
  if (need_p[0]) t.grad_acc(Rid)(0, 0) += static_cast<T>(dp[0]);
}

// The node, with a base map (x, W0 valid) or as the branch alone (x, W0, bias invalid).
template <class T>
Var<T> hyplora_stereographic_node(const char* op, Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> R,
                                  double gamma, Var<T> bias) {
  const int b = bias.valid() ? bias.id : -1;
  radial_lora::check_shapes(op, x, W0, x_a, A, B, b, {{"R", R}});
  const T Rv = R.value()(0, 0);
  if (!(Rv > T(0)) || !std::isfinite(static_cast<double>(Rv)))
    radial_lora::throw_value(op, "radius R = sqrt(K) must be finite and > 0", Rv);
  check_curvature(Rv * Rv);  // R² can underflow to 0 or overflow
  const int id = radial_lora::push_node(op, &hyplora_stereographic_backward<T>, x, W0, x_a, A, B, {R}, b, gamma);
  const StereographicRow<T> row{Rv, static_cast<T>(gamma)};
  radial_lora::forward(*x_a.tape, id, x_a.id, A.id, B.id, row, op);
  return Var<T>{x_a.tape, id};
}

}  // namespace detail

/// The consistent stereographic HypLoRA node (docs/hyplora.md Eq. (194)), row-wise:
///   z = x·W0ᵀ (+ b) + γ·p( LLR(BA, p⁻¹(exp_0^P(x_a))) )
///     = x·W0ᵀ (+ b) + γ·y/(1 + √(1 + |y|²/K)),   y = B·A·f_R(2x_a),   K = R².
///   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  R: (1, 1)  b: (1, D_out)
/// R = √K is a tape value, so a learnable curvature composes from primitive ops. There is no
/// separate feature scale: σ·layer(x/σ) is the same layer with radius σR (Eq. (199)).
/// Throws value_error unless R is finite and > 0, or for a non-finite input row.
template <class T>
Var<T> hyplora_stereographic_linear(Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> R,
                                    double gamma = 1.0, Var<T> bias = Var<T>{}) {
  return detail::hyplora_stereographic_node("hyplora_stereographic_linear", x, W0, x_a, A, B, R, gamma, bias);
}

/// The adapter branch of hyplora_stereographic_linear alone (no x·W0ᵀ + b):
///   z = γ·y/(1 + √(1 + |y|²/K)),  y = B·A·f_R(2x_a).   x_a: (N, D_in) → z: (N, D_out)
template <class T>
Var<T> hyplora_stereographic_branch(Var<T> x_a, Var<T> A, Var<T> B, Var<T> R, double gamma = 1.0) {
  return detail::hyplora_stereographic_node("hyplora_stereographic_branch", Var<T>{}, Var<T>{}, x_a, A, B, R, gamma,
                                            Var<T>{});
}

}  // namespace hyplora::ad
