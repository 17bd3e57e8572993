// hyplora/autodiff/tensor.hpp — the 2-D row-major tensor, its views and shape checks.
#pragma once

#include <Eigen/Core>
#include <string>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora::ad {

/// An owning 2-D row-major tensor (one token / point per row).
template <class T>
using Tensor = MatrixR<T>;

/// A mutable view of a tensor's storage (a tape node's value or gradient, a parameter's slot).
template <class T>
using TensorView = Eigen::Map<MatrixR<T>>;

/// A read-only view.
template <class T>
using ConstTensorView = Eigen::Map<const MatrixR<T>>;

/// Rows/cols of a 2-D tensor.
struct Shape {
  Index rows = 0;
  Index cols = 0;
  friend bool operator==(const Shape& a, const Shape& b) { return a.rows == b.rows && a.cols == b.cols; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  std::string str() const { return shape_str(rows, cols); }
};

/// Throws shape_error "<op>: a (r, c) vs b (r, c)" unless the shapes are equal.
inline void check_same_shape(const char* op, Shape a, Shape b) {
  if (a != b) throw_shape(op, "a", a.rows, a.cols, "b", b.rows, b.cols);
}

}  // namespace hyplora::ad
