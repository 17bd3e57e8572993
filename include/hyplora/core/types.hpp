// hyplora/core/types.hpp — the Eigen types points and batches are stored in.
#pragma once

#include <Eigen/Core>

namespace hyplora {

using Index = Eigen::Index;

/// A batch: one point (or tangent vector) per row, row-major so a row is contiguous.
template <class T>
using MatrixR = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A single point or tangent vector.
template <class T>
using VectorX = Eigen::Matrix<T, Eigen::Dynamic, 1>;

template <class T>
using RowVectorX = Eigen::Matrix<T, 1, Eigen::Dynamic>;

}  // namespace hyplora
