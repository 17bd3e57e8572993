// hyplora/autodiff/ops_shape.hpp — ops that move values without arithmetic: column concat,
// row/column slices, embedding gather, transpose and row-major reshape.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "hyplora/autodiff/detail/column_chunks.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

template <class T>
void concat_cols_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  auto g = t.grad_acc(id);  // (N, ΣC_k)
  Index off = 0;
  for (std::size_t k = 0; k < n.parents.size(); ++k) {
    const int p = n.parents[k];
    const Index c = t.node(p).cols;
    if (t.needs_grad(p)) t.grad_acc(p) += g.middleCols(off, c);
    off += c;
  }
}

// attrs[0] = begin
template <class T>
void slice_cols_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  const Index begin = static_cast<Index>(n.attrs[0]);
  t.grad_acc(a).middleCols(begin, n.cols) += t.grad_acc(id);
}

template <class T>
void slice_rows_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  const Index begin = static_cast<Index>(n.attrs[0]);
  t.grad_acc(a).middleRows(begin, n.rows) += t.grad_acc(id);
}

// ints = the token ids (validated in the forward)
template <class T>
void embedding_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  const T* g = t.grad_acc(id).data();  // (N, C)
  T* gt = t.grad_acc(a).data();        // (V, C)
  const Index N = n.rows, C = n.cols;
  const std::int64_t* ids = n.ints.data();
  // Scatter-add: repeated ids add into the same row, so rows cannot go to different threads
  // without partial buffers. Column chunks instead (detail/column_chunks.hpp): each task adds
  // every row, in row order, into its own columns, bitwise the serial result.
  for_column_chunks(N, C, [&](Index c0, Index c1) {
    const Index w = c1 - c0;
    for (Index i = 0; i < N; ++i) {
      T* dst = gt + static_cast<Index>(ids[i]) * C + c0;
      const T* src = g + i * C + c0;
      for (Index c = 0; c < w; ++c) dst[c] += src[c];
    }
  });
}

template <class T>
void transpose_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  t.grad_acc(a) += t.grad_acc(id).transpose();
}

template <class T>
void reshape_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  auto g = t.grad_acc(id);
  auto ga = t.grad_acc(a);
  // Same row-major storage order: the gradient is the flat buffer, reinterpreted back.
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(ga.data(), ga.size()) +=
      Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(g.data(), g.size());
}

inline void check_range(const char* op, const char* axis, Index begin, Index count, Index rows, Index cols) {
  const Index extent = axis[0] == 'r' ? rows : cols;
  if (begin < 0 || count < 0 || begin > extent || count > extent - begin) {
    std::ostringstream s;
    s << op << ": " << axis << " [" << begin << ", " << begin + count << ") out of range for x " << shape_str(rows, cols);
    throw shape_error(s.str());
  }
}

}  // namespace detail

namespace detail {
template <class T>
Var<T> concat_cols_impl(const Var<T>* xs, std::size_t count) {
  if (count == 0) throw value_error("concat_cols: no inputs");
  Tape<T>& t = *xs[0].tape;
  const Index N = xs[0].rows();
  Index C = 0;
  for (std::size_t k = 0; k < count; ++k) {
    check_same_tape("concat_cols", xs[0], xs[k]);
    if (xs[k].rows() != N)
      throw_shape("concat_cols (row counts differ)", "inputs[0]", N, xs[0].cols(), "inputs[" + std::to_string(k) + "]",
                  xs[k].rows(), xs[k].cols());
    C += xs[k].cols();
  }
  const int id = t.push("concat_cols", N, C, &concat_cols_backward<T>, {});
  for (std::size_t k = 0; k < count; ++k) t.add_parent(id, xs[k].id);
  auto out = t.value(id);
  Index off = 0;
  for (std::size_t k = 0; k < count; ++k) {
    out.middleCols(off, xs[k].cols()) = t.value(xs[k].id);
    off += xs[k].cols();
  }
  return Var<T>{&t, id};
}
}  // namespace detail

/// Concatenates along columns: inputs (N, C_k) → (N, ΣC_k). Throws value_error on an empty
/// list, shape_error naming the first mismatching pair of shapes.
template <class T>
Var<T> concat_cols(const std::vector<Var<T>>& xs) {
  return detail::concat_cols_impl(xs.data(), xs.size());
}

/// concat_cols({a, b, ...}) without building a std::vector (no allocation in a training loop).
template <class T>
Var<T> concat_cols(std::initializer_list<Var<T>> xs) {
  return detail::concat_cols_impl(xs.begin(), xs.size());
}

/// Columns [begin, begin + count): (N, C) → (N, count). Throws shape_error when out of range.
template <class T>
Var<T> slice_cols(Var<T> x, Index begin, Index count) {
  detail::check_range("slice_cols", "columns", begin, count, x.rows(), x.cols());
  Tape<T>& t = *x.tape;
  const int id = t.push("slice_cols", x.rows(), count, &detail::slice_cols_backward<T>, {x.id});
  t.node(id).attrs[0] = static_cast<double>(begin);
  t.value(id) = t.value(x.id).middleCols(begin, count);
  return Var<T>{&t, id};
}

/// Rows [begin, begin + count): (N, C) → (count, C). Throws shape_error when out of range.
template <class T>
Var<T> slice_rows(Var<T> x, Index begin, Index count) {
  detail::check_range("slice_rows", "rows", begin, count, x.rows(), x.cols());
  Tape<T>& t = *x.tape;
  const int id = t.push("slice_rows", count, x.cols(), &detail::slice_rows_backward<T>, {x.id});
  t.node(id).attrs[0] = static_cast<double>(begin);
  t.value(id) = t.value(x.id).middleRows(begin, count);
  return Var<T>{&t, id};
}

/// Gathers rows of a table: table (V, C), ids (N) → (N, C); the backward scatter-adds into the
/// table's gradient (repeated ids accumulate). Throws value_error naming an id outside [0, V).
template <class T>
Var<T> embedding(Var<T> table, const std::vector<std::int64_t>& ids) {
  const Index V = table.rows();
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] >= static_cast<std::int64_t>(V)) {
      std::ostringstream s;
      s << "embedding: id " << ids[k] << " at position " << k << " is outside [0, V) for V = " << V;
      throw value_error(s.str());
    }
  }
  Tape<T>& t = *table.tape;
  const Index N = static_cast<Index>(ids.size());
  const int id = t.push("embedding", N, table.cols(), &detail::embedding_backward<T>, {table.id});
  Node<T>& n = t.node(id);
  n.ints.assign(ids.begin(), ids.end());  // capacity is kept across clear(): no allocation
  const Index C = table.cols();
  const T* tab = t.value(table.id).data();
  T* out = t.value(id).data();
  detail::parallel_for(N, N * C, [&](Index i) {  // the gather: rows are independent
    const T* src = tab + static_cast<Index>(ids[static_cast<std::size_t>(i)]) * C;
    std::copy(src, src + C, out + i * C);
  });
  return Var<T>{&t, id};
}

/// xᵀ as a copy: (N, C) → (C, N). (matmul takes transpose flags; prefer those for products.)
template <class T>
Var<T> transpose(Var<T> x) {
  Tape<T>& t = *x.tape;
  const int id = t.push("transpose", x.cols(), x.rows(), &detail::transpose_backward<T>, {x.id});
  t.value(id) = t.value(x.id).transpose();
  return Var<T>{&t, id};
}

/// Reinterprets the row-major storage as (rows, cols): (N, C) → (rows, cols), rows·cols = N·C,
/// else shape_error naming both shapes.
template <class T>
Var<T> reshape(Var<T> x, Index rows, Index cols) {
  if (rows < 0 || cols < 0 || rows * cols != x.rows() * x.cols())
    throw_shape("reshape (element counts differ)", "x", x.rows(), x.cols(), "target", rows, cols);
  Tape<T>& t = *x.tape;
  const int id = t.push("reshape", rows, cols, &detail::reshape_backward<T>, {x.id});
  auto v = t.value(x.id);
  auto out = t.value(id);
  std::copy(v.data(), v.data() + v.size(), out.data());
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
