// tests/support/base_map.hpp — the frozen base map z = x·Wᵀ and its input gradient G·W, computed
// through the tape's own linear node. Tests of "B = 0 gives exactly the base output" compare
// against these bitwise: an Eigen product written in the test may round differently from the
// node's GEMM call (BLAS or not, compiler), which says nothing about the adapter.
#pragma once

#include <hyplora/autodiff/ops_linear.hpp>
#include <hyplora/autodiff/tape.hpp>

namespace hyplora::testing {

template <class T>
MatrixR<T> base_output(const MatrixR<T>& X, const MatrixR<T>& W) {
  ad::Tape<T> t;
  return ad::linear(t.constant(X), t.constant(W)).value();
}

template <class T>
MatrixR<T> base_input_grad(const MatrixR<T>& X, const MatrixR<T>& W, const MatrixR<T>& G) {
  ad::Tape<T> t;
  const ad::Var<T> x = t.leaf(X);
  t.backward(ad::linear(x, t.constant(W)), G);
  return x.grad();
}

}  // namespace hyplora::testing
