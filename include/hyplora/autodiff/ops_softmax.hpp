// hyplora/autodiff/ops_softmax.hpp — row-wise softmax, log_softmax and the fused cross-entropy.
//
// All three subtract the row maximum before exp (log-sum-exp), so logits of any magnitude give
// finite values and gradients. Backward passes read the node's own output (softmax, log_softmax)
// or one saved scalar per row (cross_entropy's log-sum-exp): no copy of an activation is kept.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::parallel_for
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

// y = softmax(x) row-wise; backward  dx = y ⊙ (g − rowsum(g ⊙ y)).
template <class T>
void softmax_backward(Tape<T>& t, int id) {
  const int a = t.node(id).parents[0];
  if (!t.needs_grad(a)) return;
  auto g = t.grad_acc(id);
  auto y = t.value(id);
  auto dx = t.grad_acc(a);
  for (Index i = 0; i < y.rows(); ++i) {
    const T r = (g.row(i).array() * y.row(i).array()).sum();
    dx.row(i).array() += y.row(i).array() * (g.row(i).array() - r);
  }
}

// y = x − lse(x) row-wise; backward  dx = g − exp(y)·rowsum(g).
template <class T>
void log_softmax_backward(Tape<T>& t, int id) {
  const int a = t.node(id).parents[0];
  if (!t.needs_grad(a)) return;
  auto g = t.grad_acc(id);
  auto y = t.value(id);
  auto dx = t.grad_acc(a);
  for (Index i = 0; i < y.rows(); ++i) {
    const T r = g.row(i).sum();
    dx.row(i).array() += g.row(i).array() - y.row(i).array().exp() * r;
  }
}

// loss = (1/n) Σ_{i counted} (lse_i − x_{i,t_i});  dx_i = g/n · (softmax(x_i) − onehot(t_i)).
// ints[i] is the target of row i, or −1 for an ignored row; saved[0] (N, 1) is lse per row;
// attrs[0] is the number n of counted rows.
template <class T>
void cross_entropy_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a) || n.attrs[0] == 0.0) return;
  const T coef = t.grad_acc(id)(0, 0) / static_cast<T>(n.attrs[0]);
  auto x = t.value(a);
  auto out = t.grad_out(a);  // fresh: every row is assigned (ignored rows get 0), no zero-fill
  auto dx = out.view;
  const bool fresh = out.fresh;
  const T* lse = n.saved[0].data();
  const std::int64_t* targets = n.ints.data();
  // Rows are independent: parallel over rows (OpenMP, from kParallelMinElems elements on).
  parallel_for(x.rows(), x.size(), [&](Index i) {
    const std::int64_t target = targets[i];
    if (target < 0) {
      if (fresh) dx.row(i).setZero();
      return;
    }
    detail::accumulate(fresh, dx.row(i).array(), coef * (x.row(i).array() - lse[i]).exp());
    dx(i, static_cast<Index>(target)) -= coef;
  });
}

}  // namespace detail

/// Row-wise softmax.  x: (N, C)  out: (N, C); each row sums to 1.
template <class T>
Var<T> softmax(Var<T> x) {
  Tape<T>& t = *x.tape;
  const int id = t.push("softmax", x.rows(), x.cols(), &detail::softmax_backward<T>, {x.id});
  auto X = t.value(x.id);
  auto Y = t.value(id);
  if (X.cols() == 0) return Var<T>{&t, id};
  for (Index i = 0; i < X.rows(); ++i) {
    const T m = X.row(i).maxCoeff();
    Y.row(i).array() = (X.row(i).array() - m).exp();
    Y.row(i) /= Y.row(i).sum();
  }
  return Var<T>{&t, id};
}

/// Row-wise log-softmax, x − log Σ exp(x) evaluated as x − m − log Σ exp(x − m), m = row max.
/// x: (N, C)  out: (N, C).
template <class T>
Var<T> log_softmax(Var<T> x) {
  Tape<T>& t = *x.tape;
  const int id = t.push("log_softmax", x.rows(), x.cols(), &detail::log_softmax_backward<T>, {x.id});
  auto X = t.value(x.id);
  auto Y = t.value(id);
  if (X.cols() == 0) return Var<T>{&t, id};
  for (Index i = 0; i < X.rows(); ++i) {
    using std::log;
    const T m = X.row(i).maxCoeff();
    const T lse = m + log((X.row(i).array() - m).exp().sum());
    Y.row(i).array() = X.row(i).array() - lse;
  }
  return Var<T>{&t, id};
}

/// Mean cross-entropy of the rows whose target is not ignore_index.
/// logits: (N, V)  targets: N class indices in [0, V) or ignore_index  out: (1, 1).
/// Fused and stable (log-sum-exp). When every row is ignored the loss is 0 and so is its
/// gradient (a fully padded batch contributes nothing rather than NaN).
/// Throws shape_error when targets.size() != N, value_error for a target outside [0, V).
template <class T>
Var<T> cross_entropy(Var<T> logits, const std::vector<std::int64_t>& targets,
                     std::int64_t ignore_index = -1) {
  Tape<T>& t = *logits.tape;
  const Index N = logits.rows(), V = logits.cols();
  if (static_cast<Index>(targets.size()) != N)
    throw_shape("cross_entropy", "logits", N, V, "targets", static_cast<std::int64_t>(targets.size()), 1);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::int64_t c = targets[i];
    if (c != ignore_index && (c < 0 || c >= V))
      throw value_error("cross_entropy: target " + std::to_string(c) + " (row " + std::to_string(i) +
                        ") is out of range for V = " + std::to_string(V) + " classes (ignore_index " +
                        std::to_string(ignore_index) + ")");
  }
  const int id = t.push("cross_entropy", 1, 1, &detail::cross_entropy_backward<T>, {logits.id});
  auto& n = t.node(id);
  n.ints.resize(targets.size());
  if (n.saved.empty()) n.saved.resize(1);
  n.saved[0].resize(N, 1);
  auto X = t.value(logits.id);
  T* lse = n.saved[0].data();
  std::int64_t* tg = n.ints.data();
  // The per-row log-sum-exps in parallel (rows are independent), then the loss summed serially
  // in row order: the same sum for any thread count.
  detail::parallel_for(N, N * V, [&](Index i) {
    const std::int64_t c = targets[static_cast<std::size_t>(i)];
    const bool counted = c != ignore_index;
    tg[i] = counted ? c : -1;
    if (!counted || V == 0) {
      lse[i] = T(0);
      return;
    }
    using std::log;
    const T m = X.row(i).maxCoeff();
    lse[i] = m + log((X.row(i).array() - m).exp().sum());
  });
  T total = T(0);
  Index count = 0;
  for (Index i = 0; i < N; ++i) {
    if (tg[i] < 0) continue;
    total += lse[i] - X(i, static_cast<Index>(tg[i]));
    ++count;
  }
  n.attrs[0] = static_cast<double>(count);
  t.value(id)(0, 0) = count > 0 ? total / static_cast<T>(count) : T(0);
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
