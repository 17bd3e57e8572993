// hyplora/autodiff/ops_reduce.hpp — reductions: sum/mean over everything, over rows, over
// columns; per-row Euclidean norm and per-row dot product.
#pragma once

#include <cmath>
#include <string>

#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

/// attrs[0] = the scale applied to the sum (1 for sum, 1/count for mean).
template <class T>
void sum_all_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  const T g = t.grad_acc(id)(0, 0) * static_cast<T>(n.attrs[0]);
  t.grad_acc(a).array() += g;
}

template <class T>
void sum_rows_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  const T s = static_cast<T>(n.attrs[0]);
  auto g = t.grad_acc(id);  // (N, 1)
  auto ga = t.grad_acc(a);  // (N, C)
  for (Index i = 0; i < ga.rows(); ++i) ga.row(i).array() += s * g(i, 0);
}

template <class T>
void sum_cols_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  const T s = static_cast<T>(n.attrs[0]);
  auto g = t.grad_acc(id);  // (1, C)
  auto ga = t.grad_acc(a);  // (N, C)
  for (Index i = 0; i < ga.rows(); ++i) ga.row(i) += s * g.row(0);
}

template <class T>
void row_norm_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  auto g = t.grad_acc(id);   // (N, 1)
  auto y = t.value(id);      // (N, 1)
  auto x = t.value(a);       // (N, C)
  auto ga = t.grad_acc(a);   // (N, C)
  const Index N = x.rows();
  // d|x|/dx = x/|x|; at x = 0 the subgradient 0 (the minimum-norm one).
  parallel_for(N, x.size(), [&](Index i) {
    if (y(i, 0) > T(0)) ga.row(i) += (g(i, 0) / y(i, 0)) * x.row(i);
  });
}

template <class T>
void row_dot_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0], b = n.parents[1];
  auto g = t.grad_acc(id);  // (N, 1)
  auto xa = t.value(a);
  auto xb = t.value(b);
  const Index N = xa.rows();
  if (t.needs_grad(a)) {
    auto ga = t.grad_acc(a);
    detail::parallel_for(N, xa.size(), [&](Index i) { ga.row(i) += g(i, 0) * xb.row(i); });
  }
  if (t.needs_grad(b)) {
    auto gb = t.grad_acc(b);
    detail::parallel_for(N, xa.size(), [&](Index i) { gb.row(i) += g(i, 0) * xa.row(i); });
  }
}

inline void check_nonempty(const char* op, Index count, Index rows, Index cols) {
  if (count == 0) throw value_error(std::string(op) + ": mean over zero elements of x " + shape_str(rows, cols));
}

template <class T>
Var<T> sum_all(Var<T> x, const char* name, double scale) {
  Tape<T>& t = *x.tape;
  const int id = t.push(name, 1, 1, &sum_all_backward<T>, {x.id});
  t.node(id).attrs[0] = scale;
  t.value(id)(0, 0) = t.value(x.id).sum() * static_cast<T>(scale);
  return Var<T>{&t, id};
}

template <class T>
Var<T> sum_rows_impl(Var<T> x, const char* name, double scale) {
  Tape<T>& t = *x.tape;
  const int id = t.push(name, x.rows(), 1, &sum_rows_backward<T>, {x.id});
  t.node(id).attrs[0] = scale;
  auto v = t.value(x.id);
  auto out = t.value(id);
  for (Index i = 0; i < v.rows(); ++i) out(i, 0) = v.row(i).sum() * static_cast<T>(scale);
  return Var<T>{&t, id};
}

template <class T>
Var<T> sum_cols_impl(Var<T> x, const char* name, double scale) {
  Tape<T>& t = *x.tape;
  const int id = t.push(name, 1, x.cols(), &sum_cols_backward<T>, {x.id});
  t.node(id).attrs[0] = scale;
  auto v = t.value(x.id);
  auto out = t.value(id);
  out.setZero();
  for (Index i = 0; i < v.rows(); ++i) out.row(0) += v.row(i);  // contiguous rows (row-major)
  out *= static_cast<T>(scale);
  return Var<T>{&t, id};
}

}  // namespace detail

/// Σ x: (N, C) → (1, 1).
template <class T> Var<T> sum(Var<T> x) { return detail::sum_all(x, "sum", 1.0); }

/// Mean of all elements: (N, C) → (1, 1). Throws value_error on an empty tensor.
template <class T> Var<T> mean(Var<T> x) {
  const Index m = x.rows() * x.cols();
  detail::check_nonempty("mean", m, x.rows(), x.cols());
  return detail::sum_all(x, "mean", 1.0 / static_cast<double>(m));
}

/// Sum over each row: (N, C) → (N, 1).
template <class T> Var<T> sum_rows(Var<T> x) { return detail::sum_rows_impl(x, "sum_rows", 1.0); }

/// Sum over each column: (N, C) → (1, C).
template <class T> Var<T> sum_cols(Var<T> x) { return detail::sum_cols_impl(x, "sum_cols", 1.0); }

/// Mean over each row: (N, C) → (N, 1). Throws value_error when C = 0.
template <class T> Var<T> mean_rows(Var<T> x) {
  if (x.rows() > 0) detail::check_nonempty("mean_rows", x.cols(), x.rows(), x.cols());
  return detail::sum_rows_impl(x, "mean_rows", x.cols() > 0 ? 1.0 / static_cast<double>(x.cols()) : 0.0);
}

/// Mean over each column: (N, C) → (1, C). Throws value_error when N = 0.
template <class T> Var<T> mean_cols(Var<T> x) {
  if (x.cols() > 0) detail::check_nonempty("mean_cols", x.rows(), x.rows(), x.cols());
  return detail::sum_cols_impl(x, "mean_cols", x.rows() > 0 ? 1.0 / static_cast<double>(x.rows()) : 0.0);
}

/// Euclidean norm of each row: (N, C) → (N, 1). At a zero row the gradient is the subgradient 0.
template <class T> Var<T> row_norm(Var<T> x) {
  Tape<T>& t = *x.tape;
  const int id = t.push("row_norm", x.rows(), 1, &detail::row_norm_backward<T>, {x.id});
  auto v = t.value(x.id);
  auto out = t.value(id);
  const Index N = v.rows();
  detail::parallel_for(N, v.size(), [&](Index i) { out(i, 0) = v.row(i).norm(); });
  return Var<T>{&t, id};
}

/// Per-row dot product: a (N, C), b (N, C) → (N, 1).
template <class T> Var<T> row_dot(Var<T> a, Var<T> b) {
  detail::check_same_tape("row_dot", a, b);
  if (a.rows() != b.rows() || a.cols() != b.cols()) throw_shape("row_dot", "a", a.rows(), a.cols(), "b", b.rows(), b.cols());
  Tape<T>& t = *a.tape;
  const int id = t.push("row_dot", a.rows(), 1, &detail::row_dot_backward<T>, {a.id, b.id});
  auto va = t.value(a.id);
  auto vb = t.value(b.id);
  auto out = t.value(id);
  const Index N = va.rows();
  detail::parallel_for(N, va.size(), [&](Index i) { out(i, 0) = va.row(i).dot(vb.row(i)); });
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
