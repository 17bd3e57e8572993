// hyplora/autodiff/ops_matmul.hpp — the matrix product node, with optional transposes.
//
// out = op(a) · op(b), op(m) = m or mᵀ. With G = ∂L/∂out:
//   ∂L/∂op(a) = G · op(b)ᵀ,   ∂L/∂op(b) = op(a)ᵀ · G,
// and a transposed operand receives the transpose of that. Every product (forward and backward)
// is one GEMM on transpose *expressions*: no transposed copy is ever made, and each backward GEMM
// accumulates (`noalias() +=`, BLAS beta = 1) straight into the parent's gradient buffer. A parent
// that needs no gradient (a frozen weight, a constant) costs no backward GEMM.
#pragma once

#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

// attrs[0] = transpose_a, attrs[1] = transpose_b
template <class T>
void matmul_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int ia = n.parents[0], ib = n.parents[1];
  const bool ta = n.attrs[0] != 0.0, tb = n.attrs[1] != 0.0;
  auto G = t.grad_acc(id);  // (M, P)
  auto A = t.value(ia);     // (M, K) or, transposed, (K, M)
  auto B = t.value(ib);     // (K, P) or, transposed, (P, K)
  if (t.needs_grad(ia)) {
    auto dA = t.grad_acc(ia);
    if (!ta && !tb) dA.noalias() += G * B.transpose();              // (M,P)(P,K)
    else if (!ta && tb) dA.noalias() += G * B;                      // (M,P)(P,K)
    else if (ta && !tb) dA.noalias() += B * G.transpose();          // (K,P)(P,M)
    else dA.noalias() += B.transpose() * G.transpose();             // (K,P)(P,M)
  }
  if (t.needs_grad(ib)) {
    auto dB = t.grad_acc(ib);
    if (!ta && !tb) dB.noalias() += A.transpose() * G;              // (K,M)(M,P)
    else if (ta && !tb) dB.noalias() += A * G;                      // (K,M)(M,P)
    else if (!ta && tb) dB.noalias() += G.transpose() * A;          // (P,M)(M,K)
    else dB.noalias() += G.transpose() * A.transpose();             // (P,M)(M,K)
  }
}

}  // namespace detail

/// op(a) · op(b), op = transpose when the flag is set.
/// a: (M, K) [or (K, M) with transpose_a]  b: (K, P) [or (P, K) with transpose_b]  out: (M, P).
/// E.g. matmul(x, W, false, true) = x·Wᵀ for a PyTorch-layout weight W (D_out, D_in).
template <class T>
Var<T> matmul(Var<T> a, Var<T> b, bool transpose_a = false, bool transpose_b = false) {
  detail::check_same_tape("matmul", a, b);
  Tape<T>& t = *a.tape;
  const Index M = transpose_a ? a.cols() : a.rows();
  const Index Ka = transpose_a ? a.rows() : a.cols();
  const Index Kb = transpose_b ? b.cols() : b.rows();
  const Index P = transpose_b ? b.rows() : b.cols();
  if (Ka != Kb)
    throw_shape("matmul (inner dimensions differ)", transpose_a ? "a^T" : "a", M, Ka, transpose_b ? "b^T" : "b", Kb, P);
  const int id = t.push("matmul", M, P, &detail::matmul_backward<T>, {a.id, b.id});
  Node<T>& n = t.node(id);
  n.attrs[0] = transpose_a ? 1.0 : 0.0;
  n.attrs[1] = transpose_b ? 1.0 : 0.0;
  auto A = t.value(a.id);
  auto B = t.value(b.id);
  auto C = t.value(id);
  if (!transpose_a && !transpose_b) C.noalias() = A * B;
  else if (!transpose_a && transpose_b) C.noalias() = A * B.transpose();
  else if (transpose_a && !transpose_b) C.noalias() = A.transpose() * B;
  else C.noalias() = A.transpose() * B.transpose();
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
