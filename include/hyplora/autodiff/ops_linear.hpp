// hyplora/autodiff/ops_linear.hpp — the fused linear node z = x·Wᵀ + b (PyTorch weight layout).
#pragma once

#include "hyplora/autodiff/detail/linear_base.hpp"
#include "hyplora/autodiff/tape.hpp"

namespace hyplora::ad {

namespace detail {
template <class T>
void linear_backward(Tape<T>& t, int id) {
  const auto& n = t.node(id);
  linear_base_backward(t, id, n.parents[0], n.parents[1], n.ints[0]);
}
}  // namespace detail

/// z = x·Wᵀ (+ b).  x: (N, D_in)  W: (D_out, D_in)  b: (1, D_out) or none  z: (N, D_out).
/// One node; no transposed copy of W in forward or backward.
template <class T>
Var<T> linear(Var<T> x, Var<T> W, Var<T> bias = Var<T>{}) {
  Tape<T>& t = *x.tape;
  const int b = bias.valid() ? bias.id : -1;
  detail::check_linear_shapes("linear", x, W, b);
  const int id = t.push("linear", x.rows(), W.rows(), &detail::linear_backward<T>, {x.id, W.id});
  if (b >= 0) t.add_parent(id, b);
  t.node(id).ints.assign(1, b);
  detail::linear_base_forward(t, id, x.id, W.id, b);
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
