// hyplora/autodiff/ops_lora.hpp — the fused LoRA node z = x·W0ᵀ + b + γ·(x_a·Aᵀ)·Bᵀ.
#pragma once

#include "hyplora/autodiff/detail/linear_base.hpp"
#include "hyplora/autodiff/tape.hpp"

namespace hyplora::ad {

namespace detail {
// parents: x, W0, x_a, A, B [, bias]; ints: {bias id or -1}; attrs: {γ}; saved: {U = x_a·Aᵀ}.
template <class T>
void lora_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int x = n.parents[0], W0 = n.parents[1], xa = n.parents[2], A = n.parents[3], B = n.parents[4];
  const T gamma = static_cast<T>(n.attrs[0]);
  linear_base_backward(t, id, x, W0, static_cast<int>(n.ints[0]));
  auto G = t.grad_acc(id);
  const auto& U = n.saved[0];
  // P = γ·G·B: (N, R), the adapter's gradient at the rank-R bottleneck.
  Tensor<T>& P = n.saved[1];
  if (t.needs_grad(A) || t.needs_grad(xa)) {
    P.resize(G.rows(), U.cols());
    gemm(gamma, G, false, t.value(B), false, T(0), P);
  }
  if (t.needs_grad(B)) gemm(gamma, G, true, U, false, T(1), t.grad_acc(B));
  if (t.needs_grad(A)) gemm(T(1), P, true, t.value(xa), false, T(1), t.grad_acc(A));
  if (t.needs_grad(xa)) {
    auto dxa = t.grad_out(xa);
    gemm(T(1), P, false, t.value(A), false, dxa.fresh ? T(0) : T(1), dxa.view);
  }
}
}  // namespace detail

/// z = x·W0ᵀ (+ b) + γ·(x_a·Aᵀ)·Bᵀ.
///   x, x_a: (N, D_in)   W0: (D_out, D_in)   A: (R, D_in)   B: (D_out, R)   b: (1, D_out)
/// x_a is the adapter's input (dropout(x), or x itself). Two skinny GEMMs forward, four backward;
/// saves only U = x_a·Aᵀ (N, R). Every product is one detail::gemm (BLAS when built with it).
template <class T>
Var<T> lora_linear(Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, T gamma, Var<T> bias = Var<T>{}) {
  Tape<T>& t = *x.tape;
  const int b = bias.valid() ? bias.id : -1;
  detail::check_linear_shapes("lora_linear", x, W0, b);
  if (x_a.rows() != x.rows() || x_a.cols() != x.cols()) throw_shape("lora_linear", "x", x.rows(), x.cols(), "x_a", x_a.rows(), x_a.cols());
  if (A.cols() != x.cols()) throw_shape("lora_linear", "x", x.rows(), x.cols(), "A", A.rows(), A.cols());
  if (B.rows() != W0.rows() || B.cols() != A.rows()) throw_shape("lora_linear", "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  const int id = t.push("lora_linear", x.rows(), W0.rows(), &detail::lora_backward<T>, {x.id, W0.id, x_a.id, A.id, B.id});
  if (b >= 0) t.add_parent(id, b);
  auto& n = t.node(id);
  n.ints.assign(1, b);
  n.attrs[0] = static_cast<double>(gamma);
  n.saved.resize(2);
  detail::linear_base_forward(t, id, x.id, W0.id, b);
  Tensor<T>& U = n.saved[0];
  U.resize(x.rows(), A.rows());
  detail::gemm(T(1), t.value(x_a.id), false, t.value(A.id), true, T(0), U);
  detail::gemm(gamma, U, false, t.value(B.id), true, T(1), t.value(id));
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
