// tests/cuda/device_compare.cuh — what the CUDA tests share: moving matrices to and from the
// device and comparing a device result with a CPU reference in double.
//
// Tolerances (normwise: max|got − ref| / max|ref|, ref in double on the CPU):
//   double on the device: 1e-10 (only the reduction order differs);
//   float on the device:  2e-4 values, 5e-4 gradients (float rounding; a formula or index error
//   shows as O(1e-2) or worse). Each test file says what its GEMM depths and reductions are.
#pragma once

#include <doctest/doctest.h>

#include <hyplora/core/types.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device_tensor.hpp>

namespace hyplora::cuda::testing {

using MD = MatrixR<double>;

template <class T>
double tol_value() { return sizeof(T) == 4 ? 2e-4 : 1e-10; }
template <class T>
double tol_grad() { return sizeof(T) == 4 ? 5e-4 : 1e-10; }

inline MD rnd(Index r, Index c, double scale = 1.0) { return MD::Random(r, c) * scale; }

/// max|got − ref| / max|ref| (absolute when ref is 0).
template <class T>
double rel_err(const MatrixR<T>& got, const MD& ref) {
  REQUIRE(got.rows() == ref.rows());
  REQUIRE(got.cols() == ref.cols());
  if (ref.size() == 0) return 0.0;
  const double den = ref.cwiseAbs().maxCoeff();
  const double num = (got.template cast<double>() - ref).cwiseAbs().maxCoeff();
  return den > 0 ? num / den : num;
}

template <class T>
DeviceTensor<T> up(const MD& m, const Context& ctx) {
  return DeviceTensor<T>::from_host(m.cast<T>(), ctx.stream, *ctx.alloc);
}
template <class T>
MatrixR<T> down(const DeviceTensor<T>& d, const Context& ctx) { return d.to_host(ctx.stream); }

/// Inputs rounded to T and back, so the double reference sees exactly what the device sees.
template <class T>
MD as(const MD& m) { return m.cast<T>().template cast<double>(); }

}  // namespace hyplora::cuda::testing
