// hyplora/autodiff/detail/linear_base.hpp — the frozen-or-trainable base map z = x·Wᵀ + b shared
// by the fused linear, LoRA and HypLoRA nodes, so its forward and backward are written once.
#pragma once

#include <string>

#include "hyplora/autodiff/ops_matmul.hpp"  // detail::gemm
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

/// Σ_rows G added to a (1, D) gradient row: a row loop over contiguous rows (Eigen's colwise()
/// sum of a row-major matrix walks each column with stride D and does not vectorise). Same
/// summation order (rows 0, 1, …) as colwise().sum().
template <class T, class G, class Db>
void add_row_sums(const G& g, Db&& db) {
  auto d = db.row(0);
  for (Index i = 0; i < g.rows(); ++i) d += g.row(i);
}

/// z = x·Wᵀ (+ b). z: (N, D_out), x: (N, D_in), W: (D_out, D_in), b: (1, D_out).
/// With a bias, z is first filled with b and the GEMM adds into it (beta = 1): one write-only
/// pass instead of a GEMM that zero-fills plus a read-modify-write bias pass.
template <class T>
void linear_base_forward(Tape<T>& t, int z, int x, int W, int bias) {
  auto Z = t.value(z);
  if (bias >= 0) {
    const auto b = t.value(bias).row(0);
    for (Index i = 0; i < Z.rows(); ++i) Z.row(i) = b;
  }
  gemm(T(1), t.value(x), false, t.value(W), true, bias >= 0 ? T(1) : T(0), Z);
}

/// Adds the base map's gradients from G = ∂L/∂z: dx += G·W, dW += Gᵀ·x, db += Σ_rows G (dx is
/// assigned when it is fresh, Tape::grad_out). A parent that needs no gradient (a frozen W, a
/// constant x) costs nothing.
template <class T>
void linear_base_backward(Tape<T>& t, int z, int x, int W, int bias) {
  auto G = t.grad_acc(z);
  if (t.needs_grad(x)) {
    auto dx = t.grad_out(x);
    gemm(T(1), G, false, t.value(W), false, dx.fresh ? T(0) : T(1), dx.view);
  }
  if (t.needs_grad(W)) {
    auto dW = t.grad_out(W);
    gemm(T(1), G, true, t.value(x), false, dW.fresh ? T(0) : T(1), dW.view);
  }
  if (bias >= 0 && t.needs_grad(bias)) add_row_sums<T>(G, t.grad_acc(bias));
}

}  // namespace hyplora::ad::detail
