// hyplora/manifold/poincare_ball.hpp — the Poincaré ball P^{d,K} (docs/math.md §3).
#pragma once

#include <cmath>
#include <sstream>
#include <string>

#include <Eigen/Core>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/manifold/detail/poincare_rows.hpp"

namespace hyplora {

/// The Poincaré ball of radius R = √K: {y ∈ R^d : |y| < R}, metric λ_y² I with
/// λ_y = 2K/(K − |y|²), sectional curvature −1/K (Eq. (2), (60)). K > 0 everywhere; geoopt's
/// PoincareBall(c) is c = 1/K.
///
/// Two APIs over the same row functions (detail/poincare_rows.hpp):
/// - single points: Eigen column vectors or expressions (shape (D, 1)) in, VectorX<T> out;
/// - batches: MatrixR<T>, one point per row (N, D), MatrixR<T> out; rows run in parallel with
///   OpenMP when it is enabled and the batch is large.
/// Points are kept in the ε-ball |y| ≤ (1 − ε)R by the maps that produce them (Eq. (72)).
template <class T>
class PoincareBall {
 public:
  using Scalar = T;
  using Vector = VectorX<T>;
  using Batch = MatrixR<T>;

  /// Result of check_point / check_vector: ok, or the reason it is not.
  struct CheckResult {
    bool ok;
    std::string reason;
  };

  explicit PoincareBall(T K) : K_(K) {
    check_curvature(K);
    R_ = std::sqrt(K);
  }

  T K() const { return K_; }
  T R() const { return R_; }
  /// c = 1/K, geoopt's / hgcn's PoincareBall parameter.
  T c() const { return T(1) / K_; }

  // ---- single points ---------------------------------------------------------------------

  template <class D>
  T lambda(const Eigen::MatrixBase<D>& y) const {
    const Vector ye = col("lambda", "y", y);
    return poincare_rows::lambda(ye.data(), dim(ye), K_);
  }
  template <class DY, class DU, class DV>
  T inner(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DU>& u,
          const Eigen::MatrixBase<DV>& v) const {
    const Vector ye = col("inner", "y", y), ue = col("inner", "u", u), ve = col("inner", "v", v);
    same("inner", "y", ye, "u", ue);
    same("inner", "u", ue, "v", ve);
    return poincare_rows::inner(ye.data(), ue.data(), ve.data(), dim(ye), K_);
  }
  template <class DY, class DU>
  T norm(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DU>& u) const {
    const Vector ye = col("norm", "y", y), ue = col("norm", "u", u);
    same("norm", "y", ye, "u", ue);
    return poincare_rows::tangent_norm(ye.data(), ue.data(), dim(ye), K_);
  }
  template <class DX, class DY>
  Vector mobius_add(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) const {
    return binary("mobius_add", "x", x, "y", y, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::mobius_add(a, b, o, d, K_);
    });
  }
  template <class D>
  Vector mobius_scalar_mul(T r, const Eigen::MatrixBase<D>& x) const {
    Vector out = col("mobius_scalar_mul", "x", x);
    poincare_rows::mobius_scalar_mul(r, out.data(), out.data(), dim(out), K_);
    return out;
  }
  /// M ⊗ x for M: (D_out, D_in), x: (D_in) (Eq. (66)).
  template <class DM, class DX>
  Vector mobius_matvec(const Eigen::MatrixBase<DM>& M, const Eigen::MatrixBase<DX>& x) const {
    const Vector xe = col("mobius_matvec", "x", x);
    if (M.cols() != xe.rows())
      throw_shape("mobius_matvec", "M", M.rows(), M.cols(), "x", xe.rows(), 1);
    const Batch Me = M;
    Vector out(Me.rows());
    poincare_rows::mobius_matvec(Me.data(), Me.rows(),
                                 Me.cols(), xe.data(), out.data(), K_);
    return out;
  }
  /// gyr[u, v]w (Eq. (67)).
  template <class DU, class DV, class DW>
  Vector gyration(const Eigen::MatrixBase<DU>& u, const Eigen::MatrixBase<DV>& v,
                  const Eigen::MatrixBase<DW>& w) const {
    const Vector ue = col("gyration", "u", u), ve = col("gyration", "v", v);
    Vector out = col("gyration", "w", w);
    same("gyration", "u", ue, "v", ve);
    same("gyration", "u", ue, "w", out);
    poincare_rows::gyration(ue.data(), ve.data(), out.data(), out.data(), dim(out), K_);
    return out;
  }
  template <class D>
  Vector projx(const Eigen::MatrixBase<D>& y) const {
    return unary("projx", "y", y, [this](const T* a, T* o, Index d) {
      poincare_rows::projx(a, o, d, K_);
    });
  }
  template <class D>
  Vector expmap0(const Eigen::MatrixBase<D>& v) const {
    return unary("expmap0", "v", v, [this](const T* a, T* o, Index d) {
      poincare_rows::expmap0(a, o, d, K_);
    });
  }
  template <class D>
  Vector logmap0(const Eigen::MatrixBase<D>& y) const {
    return unary("logmap0", "y", y, [this](const T* a, T* o, Index d) {
      poincare_rows::logmap0(a, o, d, K_);
    });
  }
  /// (∂ exp_0(v)/∂v)ᵀ g (Eq. (69)).
  template <class DV, class DG>
  Vector expmap0_backward(const Eigen::MatrixBase<DV>& v, const Eigen::MatrixBase<DG>& g) const {
    return binary("expmap0_backward", "v", v, "g", g, [this](const T* a, const T* b, T* o, Index d) {
      radial_backward_row(a, b, o, d, true);
    });
  }
  /// (∂ log_0(y)/∂y)ᵀ g (Eq. (71)).
  template <class DY, class DG>
  Vector logmap0_backward(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DG>& g) const {
    return binary("logmap0_backward", "y", y, "g", g, [this](const T* a, const T* b, T* o, Index d) {
      radial_backward_row(a, b, o, d, false);
    });
  }
  template <class DX, class DV>
  Vector expmap(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DV>& v) const {
    return binary("expmap", "x", x, "v", v, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::expmap(a, b, o, d, K_);
    });
  }
  template <class DX, class DY>
  Vector logmap(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) const {
    return binary("logmap", "x", x, "y", y, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::logmap(a, b, o, d, K_);
    });
  }
  template <class DX, class DY>
  T dist(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) const {
    const Vector xe = col("dist", "x", x), ye = col("dist", "y", y);
    same("dist", "x", xe, "y", ye);
    return poincare_rows::dist(xe.data(), ye.data(), dim(xe), K_);
  }
  template <class D>
  T dist0(const Eigen::MatrixBase<D>& y) const {
    const Vector ye = col("dist0", "y", y);
    return poincare_rows::dist0(ye.data(), dim(ye), K_);
  }
  /// PT_{x→y}(v) (Eq. (78)).
  template <class DX, class DY, class DV>
  Vector transp(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                const Eigen::MatrixBase<DV>& v) const {
    const Vector xe = col("transp", "x", x), ye = col("transp", "y", y);
    Vector out = col("transp", "v", v);
    same("transp", "x", xe, "y", ye);
    same("transp", "x", xe, "v", out);
    poincare_rows::transp(xe.data(), ye.data(), out.data(), out.data(), dim(out), K_);
    return out;
  }
  /// PT_{0→y}(v) (Eq. (79)).
  template <class DY, class DV>
  Vector transp0(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DV>& v) const {
    return binary("transp0", "y", y, "v", v, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::transp0(a, b, o, d, K_);
    });
  }
  /// PT_{y→0}(v) (Eq. (79)).
  template <class DY, class DV>
  Vector transp0back(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DV>& v) const {
    return binary("transp0back", "y", y, "v", v, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::transp0back(a, b, o, d, K_);
    });
  }
  /// Riemannian gradient from the Euclidean one (Eq. (80)); returns a new vector.
  template <class DY, class DG>
  Vector egrad2rgrad(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DG>& g) const {
    return binary("egrad2rgrad", "y", y, "g", g, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::egrad2rgrad(a, b, o, d, K_);
    });
  }

  /// Is y a point of the ball: finite and |y| < R (Eq. (81))? Never throws.
  template <class D>
  CheckResult check_point(const Eigen::MatrixBase<D>& y) const {
    if (y.cols() != 1) return {false, "expected a column vector, got " + shape_str(y.rows(), y.cols())};
    const Vector ye = y;
    return check_row(ye.data(), dim(ye));
  }
  /// Is v a tangent vector at y: y a point, v finite and of y's dimension (Eq. (81))?
  template <class DY, class DV>
  CheckResult check_vector(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DV>& v) const {
    CheckResult r = check_point(y);
    if (!r.ok) return r;
    if (v.cols() != 1 || v.rows() != y.rows())
      return {false, "v " + shape_str(v.rows(), v.cols()) + " vs y " + shape_str(y.rows(), 1)};
    if (!v.allFinite()) return {false, "v has a non-finite entry"};
    return {true, ""};
  }

  // ---- batches: one point per row, X: (N, D) -----------------------------------------------

  Batch mobius_add(const Batch& X, const Batch& Y) const {
    return rows2("mobius_add", "X", X, "Y", Y, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::mobius_add(a, b, o, d, K_);
    });
  }
  Batch mobius_scalar_mul(T r, const Batch& X) const {
    return rows1(X, [this, r](const T* a, T* o, Index d) {
      poincare_rows::mobius_scalar_mul(r, a, o, d, K_);
    });
  }
  /// Each row x_n ↦ M ⊗ x_n. M: (D_out, D_in), X: (N, D_in), out: (N, D_out).
  template <class DM>
  Batch mobius_matvec(const Eigen::MatrixBase<DM>& M, const Batch& X) const {
    if (M.cols() != X.cols()) throw_shape("mobius_matvec", "M", M.rows(), M.cols(), "X", X.rows(), X.cols());
    const Batch Me = M;
    Batch out(X.rows(), Me.rows());
    const Index m = Me.rows(), n = Me.cols();
    for_rows(X.rows(), X.cols(), [&](Index i) {
      poincare_rows::mobius_matvec(Me.data(), m, n, X.row(i).data(), out.row(i).data(), K_);
    });
    return out;
  }
  Batch projx(const Batch& Y) const {
    return rows1(Y, [this](const T* a, T* o, Index d) { poincare_rows::projx(a, o, d, K_); });
  }
  Batch expmap0(const Batch& V) const {
    return rows1(V, [this](const T* a, T* o, Index d) { poincare_rows::expmap0(a, o, d, K_); });
  }
  Batch logmap0(const Batch& Y) const {
    return rows1(Y, [this](const T* a, T* o, Index d) { poincare_rows::logmap0(a, o, d, K_); });
  }
  Batch expmap0_backward(const Batch& V, const Batch& G) const {
    return rows2("expmap0_backward", "V", V, "G", G, [this](const T* a, const T* b, T* o, Index d) {
      radial_backward_row(a, b, o, d, true);
    });
  }
  Batch logmap0_backward(const Batch& Y, const Batch& G) const {
    return rows2("logmap0_backward", "Y", Y, "G", G, [this](const T* a, const T* b, T* o, Index d) {
      radial_backward_row(a, b, o, d, false);
    });
  }
  Batch expmap(const Batch& X, const Batch& V) const {
    return rows2("expmap", "X", X, "V", V, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::expmap(a, b, o, d, K_);
    });
  }
  Batch logmap(const Batch& X, const Batch& Y) const {
    return rows2("logmap", "X", X, "Y", Y, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::logmap(a, b, o, d, K_);
    });
  }
  /// Row-wise distances: X, Y: (N, D), out: (N).
  Vector dist(const Batch& X, const Batch& Y) const {
    same_shape("dist", "X", X, "Y", Y);
    Vector out(X.rows());
    const Index d = X.cols();
    for_rows(X.rows(), X.cols(), [&](Index i) {
      out[i] = poincare_rows::dist(X.row(i).data(), Y.row(i).data(), d, K_);
    });
    return out;
  }
  /// Row-wise PT_{x_n→y_n}(v_n).
  Batch transp(const Batch& X, const Batch& Y, const Batch& V) const {
    same_shape("transp", "X", X, "Y", Y);
    same_shape("transp", "X", X, "V", V);
    Batch out(V.rows(), V.cols());
    const Index d = V.cols();
    for_rows(V.rows(), V.cols(), [&](Index i) {
      poincare_rows::transp(X.row(i).data(), Y.row(i).data(), V.row(i).data(), out.row(i).data(),
                            d, K_);
    });
    return out;
  }
  Batch transp0(const Batch& Y, const Batch& V) const {
    return rows2("transp0", "Y", Y, "V", V, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::transp0(a, b, o, d, K_);
    });
  }
  Batch transp0back(const Batch& Y, const Batch& V) const {
    return rows2("transp0back", "Y", Y, "V", V, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::transp0back(a, b, o, d, K_);
    });
  }
  Batch egrad2rgrad(const Batch& Y, const Batch& G) const {
    return rows2("egrad2rgrad", "Y", Y, "G", G, [this](const T* a, const T* b, T* o, Index d) {
      poincare_rows::egrad2rgrad(a, b, o, d, K_);
    });
  }
  /// Every row a point? The reason names the first bad row.
  CheckResult check_point(const Batch& Y) const {
    for (Index i = 0; i < Y.rows(); ++i) {
      CheckResult r = check_row(Y.row(i).data(), Y.cols());
      if (!r.ok) return {false, "row " + std::to_string(i) + ": " + r.reason};
    }
    return {true, ""};
  }
  CheckResult check_vector(const Batch& Y, const Batch& V) const {
    CheckResult r = check_point(Y);
    if (!r.ok) return r;
    if (V.rows() != Y.rows() || V.cols() != Y.cols())
      return {false, "V " + shape_str(V.rows(), V.cols()) + " vs Y " + shape_str(Y.rows(), Y.cols())};
    if (!V.allFinite()) return {false, "V has a non-finite entry"};
    return {true, ""};
  }

 private:
  // Rows run in parallel only past this many scalars: below it the OpenMP fork costs more than
  // the row math (tens of ns per element).
  static constexpr Index kParallelMinElements = Index(1) << 15;

  T K_;
  T R_;

  static Index dim(const Vector& v) { return v.rows(); }

  template <class D>
  static Vector col(const char* what, const char* name, const Eigen::MatrixBase<D>& x) {
    if (x.cols() != 1) {
      throw shape_error(std::string(what) + ": " + name + " " + shape_str(x.rows(), x.cols()) +
                        " is not a column vector (use MatrixR<T> for batches)");
    }
    return Vector(x);
  }
  static void same(const char* what, const char* a, const Vector& x, const char* b,
                   const Vector& y) {
    if (x.rows() != y.rows()) throw_shape(what, a, x.rows(), 1, b, y.rows(), 1);
  }
  static void same_shape(const char* what, const char* a, const Batch& x, const char* b,
                         const Batch& y) {
    if (x.rows() != y.rows() || x.cols() != y.cols())
      throw_shape(what, a, x.rows(), x.cols(), b, y.rows(), y.cols());
  }

  template <class D, class F>
  static Vector unary(const char* what, const char* name, const Eigen::MatrixBase<D>& x, F f) {
    const Vector xe = col(what, name, x);
    Vector out(xe.rows());
    f(xe.data(), out.data(), dim(xe));
    return out;
  }
  template <class DA, class DB, class F>
  static Vector binary(const char* what, const char* an, const Eigen::MatrixBase<DA>& a,
                       const char* bn, const Eigen::MatrixBase<DB>& b, F f) {
    const Vector ae = col(what, an, a), be = col(what, bn, b);
    same(what, an, ae, bn, be);
    Vector out(ae.rows());
    f(ae.data(), be.data(), out.data(), dim(ae));
    return out;
  }

  template <class F>
  static void for_rows(Index n, Index d, F f) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n * d >= kParallelMinElements && n > 1)
    for (Index i = 0; i < n; ++i) f(i);
#else
    (void)d;
    for (Index i = 0; i < n; ++i) f(i);
#endif
  }
  template <class F>
  static Batch rows1(const Batch& X, F f) {
    Batch out(X.rows(), X.cols());
    const Index d = X.cols();
    for_rows(X.rows(), X.cols(), [&](Index i) { f(X.row(i).data(), out.row(i).data(), d); });
    return out;
  }
  template <class F>
  static Batch rows2(const char* what, const char* an, const Batch& A, const char* bn,
                     const Batch& B, F f) {
    same_shape(what, an, A, bn, B);
    Batch out(A.rows(), A.cols());
    const Index d = A.cols();
    for_rows(A.rows(), A.cols(),
             [&](Index i) { f(A.row(i).data(), B.row(i).data(), out.row(i).data(), d); });
    return out;
  }

  // Recomputes the forward's Radial scalars (into the output row as scratch) and applies the VJP.
  void radial_backward_row(const T* v, const T* g, T* o, Index d, bool exp0) const {
    const poincare_rows::Radial<T> s =
        exp0 ? poincare_rows::expmap0(v, o, d, K_) : poincare_rows::logmap0(v, o, d, K_);
    poincare_rows::radial_backward(v, g, o, d, s);
  }

  CheckResult check_row(const T* y, Index d) const {
    for (Index i = 0; i < d; ++i) {
      if (!std::isfinite(static_cast<double>(y[i]))) {
        std::ostringstream s;
        s << "entry " << i << " is not finite (" << y[i] << ")";
        return {false, s.str()};
      }
    }
    const T n = poincare_rows::norm(y, d);
    if (!(n < R_)) {
      std::ostringstream s;
      s << "|y| = " << n << " is not inside the ball of radius R = " << R_ << " (K = " << K_ << ")";
      return {false, s.str()};
    }
    return {true, ""};
  }
};

}  // namespace hyplora
