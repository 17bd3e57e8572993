// hyplora/manifold/conversions.hpp — isometries between the hyperboloid H^{d,K} and the
// Poincaré ball P^{d,K} (docs/math.md §4), for every K > 0.
//
// Points of H^{d,K} are (d+1)-vectors, time first; ball points are d-vectors. Single points are
// Eigen column vectors; batches are MatrixR<T>, one point per row. Only core/ is needed: the
// maps take K, not a manifold object, so neither model's header depends on the other.
#pragma once

#include <cmath>
#include <string>

#include <Eigen/Core>

#include "hyplora/core/config.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/manifold/detail/poincare_rows.hpp"

namespace hyplora {
namespace conversion_rows {

using index_t = poincare_rows::index_t;

/// p(x) = R x_s/(R + x0) (Eq. (100)). x: (d+1), out: (d). x0 is re-read from x_s as
/// √(K + |x_s|²) (the hyperboloid projection π), so a point slightly off the hyperboloid maps to
/// the image of its projection; the result is kept in the ε-ball (Eq. (72)).
template <class T>
HYPLORA_HD_INLINE void to_poincare(const T* x, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T x0 = sqrt(K + poincare_rows::sqnorm(x + 1, d));
  const T f = R / (R + x0);
  for (index_t i = 0; i < d; ++i) out[i] = f * x[i + 1];
  poincare_rows::projx(out, out, d, K);
}

/// p⁻¹(y) = (R(K + |y|²)/(K − |y|²), 2K y/(K − |y|²)) (Eq. (101)). y: (d), out: (d+1); K − |y|²
/// is formed as (R − |y|)(R + |y|) and x0 as √(K + |x_s|²), so the result lies on the
/// hyperboloid to rounding. Points outside the ε-ball are read as their projection.
template <class T>
HYPLORA_HD_INLINE void to_lorentz(const T* y, T* out, index_t d, T K) {
  using std::sqrt;
  const T R = sqrt(K);
  const T yn = poincare_rows::norm(y, d);
  const T t = poincare_rows::ball_ratio(yn, R);
  const T scale = (yn > T(0) && t * R < yn) ? t * R / yn : T(1);  // the projection, if any
  const T f = T(2) * K * scale / poincare_rows::gap_from_norm(yn * scale, R);
  T ss = T(0);
  for (index_t i = 0; i < d; ++i) {
    out[i + 1] = f * y[i];
    ss += out[i + 1] * out[i + 1];
  }
  out[0] = sqrt(K + ss);
}

}  // namespace conversion_rows

namespace conversions_detail {
template <class D>
inline void need_column(const char* what, const char* name, const Eigen::MatrixBase<D>& x,
                        Index min_rows) {
  if (x.cols() != 1 || x.rows() < min_rows)
    throw_shape(std::string(what) + ": expected a column vector of length >= " +
                    std::to_string(min_rows),
                name, x.rows(), x.cols(), "required", min_rows, 1);
}
}  // namespace conversions_detail

/// Hyperboloid point x: (d+1) → ball point: (d), Eq. (100).
template <class D>
VectorX<typename D::Scalar> to_poincare(const Eigen::MatrixBase<D>& x, typename D::Scalar K) {
  using T = typename D::Scalar;
  check_curvature(K);
  conversions_detail::need_column("to_poincare", "x", x, 2);
  const VectorX<T> xe = x;
  VectorX<T> out(xe.rows() - 1);
  conversion_rows::to_poincare(xe.data(), out.data(), out.rows(), K);
  return out;
}

/// Ball point y: (d) → hyperboloid point: (d+1), Eq. (101).
template <class D>
VectorX<typename D::Scalar> to_lorentz(const Eigen::MatrixBase<D>& y, typename D::Scalar K) {
  using T = typename D::Scalar;
  check_curvature(K);
  conversions_detail::need_column("to_lorentz", "y", y, 1);
  const VectorX<T> ye = y;
  VectorX<T> out(ye.rows() + 1);
  conversion_rows::to_lorentz(ye.data(), out.data(), ye.rows(), K);
  return out;
}

/// Batched: X: (N, d+1) → (N, d).
template <class T>
MatrixR<T> to_poincare(const MatrixR<T>& X, typename MatrixR<T>::Scalar K) {
  check_curvature(K);
  if (X.cols() < 2)
    throw_shape("to_poincare: points need >= 2 coordinates", "X", X.rows(), X.cols(), "required",
                X.rows(), 2);
  MatrixR<T> out(X.rows(), X.cols() - 1);
  for (Index i = 0; i < X.rows(); ++i)
    conversion_rows::to_poincare(X.row(i).data(), out.row(i).data(), out.cols(), K);
  return out;
}

/// Batched: Y: (N, d) → (N, d+1).
template <class T>
MatrixR<T> to_lorentz(const MatrixR<T>& Y, typename MatrixR<T>::Scalar K) {
  check_curvature(K);
  if (Y.cols() < 1)
    throw_shape("to_lorentz: points need >= 1 coordinate", "Y", Y.rows(), Y.cols(), "required",
                Y.rows(), 1);
  MatrixR<T> out(Y.rows(), Y.cols() + 1);
  for (Index i = 0; i < Y.rows(); ++i)
    conversion_rows::to_lorentz(Y.row(i).data(), out.row(i).data(), Y.cols(), K);
  return out;
}

/// The differential of p at the origin on spatial tangent vectors: dp_o(0, v) = v/2
/// (Eq. (103)). Hence p(exp_o^L(0, v)) = exp_0^P(v/2) and log_0^P(p(x)) = ½·log_o^L(x)_s:
/// the ball's exp_0 is NOT p∘exp_o^L on the same vector.
template <class D>
VectorX<typename D::Scalar> tangent0_to_poincare(const Eigen::MatrixBase<D>& v) {
  conversions_detail::need_column("tangent0_to_poincare", "v", v, 1);
  return v / typename D::Scalar(2);
}

/// Inverse of tangent0_to_poincare: u ∈ T_0P ↦ (0, 2u) ∈ T_oH (Eq. (103)).
template <class D>
VectorX<typename D::Scalar> tangent0_to_lorentz(const Eigen::MatrixBase<D>& u) {
  using T = typename D::Scalar;
  conversions_detail::need_column("tangent0_to_lorentz", "u", u, 1);
  VectorX<T> out(u.rows() + 1);
  out[0] = T(0);
  out.tail(u.rows()) = u * T(2);
  return out;
}

}  // namespace hyplora
