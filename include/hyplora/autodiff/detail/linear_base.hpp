// hyplora/autodiff/detail/linear_base.hpp — the frozen-or-trainable base map z = x·Wᵀ + b shared
// by the fused linear, LoRA and HypLoRA nodes, so its forward and backward are written once.
#pragma once

#include <string>

#include "hyplora/autodiff/tape.hpp"

namespace hyplora::ad::detail {

/// Checks x (N, D_in), W (D_out, D_in) and an optional bias (1, D_out); `op` names the caller.
template <class T>
void check_linear_shapes(const char* op, Var<T> x, Var<T> W, int bias_id) {
  if (x.cols() != W.cols()) throw_shape(op, "x", x.rows(), x.cols(), "weight", W.rows(), W.cols());
  if (bias_id >= 0) {
    const auto& b = x.tape->node(bias_id);
    if (b.rows != 1 || b.cols != W.rows()) throw_shape(op, "weight", W.rows(), W.cols(), "bias", b.rows, b.cols);
  }
}

/// z = x·Wᵀ (+ b). z: (N, D_out), x: (N, D_in), W: (D_out, D_in), b: (1, D_out).
template <class T>
void linear_base_forward(Tape<T>& t, int z, int x, int W, int bias) {
  auto Z = t.value(z);
  Z.noalias() = t.value(x) * t.value(W).transpose();
  if (bias >= 0) Z.rowwise() += t.value(bias).row(0);
}

/// Accumulates the base map's gradients from G = ∂L/∂z: dx += G·W, dW += Gᵀ·x, db += Σ_rows G.
/// A parent that needs no gradient (a frozen W, a constant x) costs nothing.
template <class T>
void linear_base_backward(Tape<T>& t, int z, int x, int W, int bias) {
  auto G = t.grad_acc(z);
  if (t.needs_grad(x)) t.grad_acc(x).noalias() += G * t.value(W);
  if (t.needs_grad(W)) t.grad_acc(W).noalias() += G.transpose() * t.value(x);
  if (bias >= 0 && t.needs_grad(bias)) t.grad_acc(bias).row(0) += G.colwise().sum();
}

}  // namespace hyplora::ad::detail
