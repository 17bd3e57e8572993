// hyplora/nn/dora.hpp — DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation"):
//
//   W' = m ⊙ V/‖V‖_row,   V = W0 + γ·B·A,   z = x·W'ᵀ + b,
//
// with the norm taken per output row (PEFT layout: weight (D_out, D_in), magnitude (1, D_out)
// initialised to the row norms of W0, so W' = W0 at B = 0). With s = m/‖V‖_row (1, D_out):
//
//   z = x·W0ᵀ + b + (s − 1) ⊙ (x_a·W0ᵀ) + s ⊙ γ(x_a·Aᵀ)·Bᵀ          (PEFT's form, x_a = dropout(x))
//     = s ⊙ (x·W0ᵀ + γ(x·Aᵀ)·Bᵀ) + b                                   (x_a = x)
//
// so the data path is LoRA's GEMMs with a per-column scale. Both parts are fused nodes
// (autodiff/ops_dora.hpp, docs/hyplora.md §9): the scale reads ‖V‖_row off (D_out, R) and
// (R, R) products and never forms V (2·D_out·D_in·R flops a step, independent of N), and the
// data path keeps LoRA's buffers (no extra (N, D_out) tensor when x_a = x). Unlike PEFT, ‖V‖ is not
// detached: the gradient is the exact one (gradcheck-able); PEFT's detach is the DoRA paper's
// §4.3 memory saving, which changes the gradient.
#pragma once

#include "hyplora/autodiff/ops_dora.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/ops_linear.hpp"
#include "hyplora/autodiff/ops_lora.hpp"
#include "hyplora/autodiff/ops_matmul.hpp"
#include "hyplora/autodiff/ops_reduce.hpp"
#include "hyplora/autodiff/ops_shape.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora::nn {

/// The DoRA column scale s = m / ‖W0 + γ·B·A‖_row as one fused node (ad::dora_scale,
/// docs/hyplora.md Eq. (260)–(266)): no (D_out, D_in) buffer unless W0 itself needs a gradient.
///   W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  m: (1, D_out)  →  s: (1, D_out)
/// (A using-declaration, not a wrapper: Var's namespace would make an unqualified call ambiguous.)
using ad::dora_scale;

/// The same scale composed from primitive ops (materialises γBA, V and their gradients, all
/// (D_out, D_in)): the reference the fused node is tested against.
template <class T>
ad::Var<T> dora_scale_composed(ad::Var<T> W0, ad::Var<T> A, ad::Var<T> B, ad::Var<T> m, T gamma) {
  if (A.cols() != W0.cols()) throw_shape("dora_scale", "W0", W0.rows(), W0.cols(), "A", A.rows(), A.cols());
  if (B.rows() != W0.rows() || B.cols() != A.rows()) throw_shape("dora_scale", "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  if (m.rows() != 1 || m.cols() != W0.rows()) throw_shape("dora_scale", "W0", W0.rows(), W0.cols(), "magnitude", m.rows(), m.cols());
  const ad::Var<T> V = ad::add(W0, ad::matmul(ad::mul_scalar(B, gamma), A));  // (D_out, D_in)
  return ad::div(m, ad::transpose(ad::row_norm(V)));                           // (1, D_out)
}

/// The DoRA layer z = x·W'ᵀ + b (see the header comment); x_a is the adapter's input
/// (dropout(x), or x itself, which takes the cheaper second form). Two fused nodes: the scale
/// (ad::dora_scale) and the data path (ad::dora_linear_scaled), which keeps LoRA's buffers.
///   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  m, b: (1, D_out)  z: (N, D_out)
template <class T>
ad::Var<T> dora_linear(ad::Var<T> x, ad::Var<T> W0, ad::Var<T> x_a, ad::Var<T> A, ad::Var<T> B, ad::Var<T> m,
                       T gamma, ad::Var<T> bias = ad::Var<T>{}) {
  const ad::Var<T> s = dora_scale(W0, A, B, m, gamma);
  return ad::dora_linear_scaled(x, W0, x_a, A, B, s, gamma, bias);
}

/// The same layer composed from primitive ops (dora_scale_composed, LoRA's node, mul, add): the
/// reference the fused nodes are tested against.
template <class T>
ad::Var<T> dora_linear_composed(ad::Var<T> x, ad::Var<T> W0, ad::Var<T> x_a, ad::Var<T> A, ad::Var<T> B,
                                ad::Var<T> m, T gamma, ad::Var<T> bias = ad::Var<T>{}) {
  const ad::Var<T> s = dora_scale_composed(W0, A, B, m, gamma);
  if (x_a.id == x.id && x_a.tape == x.tape) {
    const ad::Var<T> z = ad::mul(ad::lora_linear(x, W0, x, A, B, gamma), s);
    return bias.valid() ? ad::add(z, bias) : z;
  }
  // (s − 1) ⊙ (x_a·W0ᵀ) + s ⊙ γ(x_a·Aᵀ)·Bᵀ = s ⊙ lora(x_a) − x_a·W0ᵀ
  const ad::Var<T> base = bias.valid() ? ad::linear(x, W0, bias) : ad::linear(x, W0);
  const ad::Var<T> adapted = ad::mul(ad::lora_linear(x_a, W0, x_a, A, B, gamma), s);
  return ad::add(base, ad::sub(adapted, ad::linear(x_a, W0)));
}

/// Merged DoRA weight, for merge(): W' = s ⊙_row (W0 + γBA); returns s (1, D_out) so unmerge
/// can invert it (W0 = W'/s − γBA), as PEFT caches its weight norm.
template <class T, class DW, class DA, class DB, class DM>
RowVectorX<T> dora_merge_weight(Eigen::MatrixBase<DW>& W, const Eigen::MatrixBase<DA>& A, const Eigen::MatrixBase<DB>& B,
                                const Eigen::MatrixBase<DM>& m, T gamma) {
  W.noalias() += gamma * (B * A);
  RowVectorX<T> s(W.rows());
  for (Index i = 0; i < W.rows(); ++i) {
    s(i) = m(0, i) / W.row(i).norm();
    W.row(i) *= s(i);
  }
  return s;
}

}  // namespace hyplora::nn
