// hyplora/manifold/lorentz.hpp — the Lorentz (hyperboloid) model H^{d,K} as an Eigen API.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

#include <Eigen/Core>
#include <Eigen/LU>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

namespace hyplora {

/// The hyperboloid H^{d,K} = {x ∈ R^{d+1} : −x0² + |x_s|² = −K, x0 > 0}, K > 0 the squared radius
/// (sectional curvature −1/K), R = √K, origin o = (R, 0, …, 0) — docs/math.md Eq. (1), §2.
///
/// Single points and batches. Every method that takes points accepts Eigen expressions:
///   * a compile-time column vector (VectorX<T>, X.row(i).transpose(), a.segment(…)) is ONE point
///     (or tangent vector) of length d+1 and the result is a VectorX<T> (or T for scalars);
///   * anything else (MatrixR<T>, a column-major MatrixX, a block, a row vector) is a BATCH, one
///     point per row, shape (N, d+1); the result is a MatrixR<T> (or a VectorX<T> of N scalars).
/// Mixing a single point with a batch in one call is a compile error (no implicit broadcasting).
/// "Spatial" methods (expmap0_spatial, logmap0_spatial) take d-vectors / (N, d) batches.
/// Shape mismatches throw shape_error naming both shapes; nothing projects silently except where
/// the formula says so (expmap, retr recompute x0 by π, Eq. (11)).
template <class T>
class Lorentz {
 public:
  using Scalar = T;
  using Point = VectorX<T>;
  using Batch = MatrixR<T>;

  /// Result of check_point / check_vector: ok, or the first reason it is not.
  struct Check {
    bool ok = true;
    std::string reason;
    explicit operator bool() const { return ok; }
  };

  /// Rows of a batch above which the row loops run in parallel (when built with OpenMP).
  static constexpr Index parallel_rows = 256;

  explicit Lorentz(T K = T(1)) : K_(K) {
    check_curvature(K);
    using std::sqrt;
    R_ = sqrt(K);
  }

  T K() const { return K_; }
  T R() const { return R_; }

  // ---- geometry (docs/math.md §2) ---------------------------------------------------------

  /// ⟨x,y⟩_L, Eq. (10).
  template <class DX, class DY>
  auto inner(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) const {
    return reduce2("Lorentz::inner", x, y, [](const T* a, const T* b, Index d) {
      return lorentz_rows::inner(a, b, d);
    });
  }

  /// ‖u‖_L (clamped at 0), Eq. (13).
  template <class DU>
  auto norm(const Eigen::MatrixBase<DU>& u) const {
    return reduce1("Lorentz::norm", u, 1, [](const T* a, Index d) { return lorentz_rows::norm(a, d); });
  }

  /// The origin (R, 0, …, 0) of H^d, Eq. (1); origin(N, d) is N copies as a batch.
  Point origin(Index d) const {
    need_dim("Lorentz::origin", d);
    Point o(d + 1);
    lorentz_rows::origin(o.data(), d, R_);
    return o;
  }
  Batch origin(Index N, Index d) const {
    need_dim("Lorentz::origin", d);
    Batch o(N, d + 1);
    for (Index i = 0; i < N; ++i) lorentz_rows::origin(o.row(i).data(), d, R_);
    return o;
  }

  /// π(x) = (√(K + |x_s|²), x_s), Eq. (11).
  template <class DX>
  auto projx(const Eigen::MatrixBase<DX>& x) const {
    return map1("Lorentz::projx", x, 1, [R = R_](const T* a, T* o, Index d) {
      lorentz_rows::projx(a, o, d, R);
    });
  }

  /// P_x(u), Eq. (12).
  template <class DX, class DU>
  auto proju(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DU>& u) const {
    return map2("Lorentz::proju", x, u, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::proju(a, b, o, d, R);
    });
  }

  /// f_R(v) = sinhc(|v|/R)·v: the spatial part of exp_o((0, v)), Eq. (17). v: (d) or (N, d).
  template <class DV>
  auto expmap0_spatial(const Eigen::MatrixBase<DV>& v) const {
    return map1("Lorentz::expmap0_spatial", v, 0, [R = R_](const T* a, T* o, Index d) {
      lorentz_rows::expmap0_spatial(a, o, d, R);
    });
  }

  /// f_R⁻¹(y) = asinhc(|y|/R)·y: log_o(x) restricted to spatial parts y = x_s, Eq. (18).
  template <class DY>
  auto logmap0_spatial(const Eigen::MatrixBase<DY>& y) const {
    return map1("Lorentz::logmap0_spatial", y, 0, [R = R_](const T* a, T* o, Index d) {
      lorentz_rows::logmap0_spatial(a, o, d, R);
    });
  }

  /// exp_o(u) for an ambient tangent vector u at o (only u_s is read: exp_o(P_o u)), Eq. (17).
  template <class DU>
  auto expmap0(const Eigen::MatrixBase<DU>& u) const {
    return map1("Lorentz::expmap0", u, 1, [R = R_](const T* a, T* o, Index d) {
      lorentz_rows::expmap0(a, o, d, R);
    });
  }

  /// log_o(x) = (0, f_R⁻¹(x_s)), Eq. (18).
  template <class DX>
  auto logmap0(const Eigen::MatrixBase<DX>& x) const {
    return map1("Lorentz::logmap0", x, 1, [R = R_](const T* a, T* o, Index d) {
      lorentz_rows::logmap0(a, o, d, R);
    });
  }

  /// exp_x(u), Eq. (14)–(16).
  template <class DX, class DU>
  auto expmap(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DU>& u) const {
    return map2("Lorentz::expmap", x, u, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::expmap(a, b, o, d, R);
    });
  }

  /// log_x(y), Eq. (23).
  template <class DX, class DY>
  auto logmap(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) const {
    return map2("Lorentz::logmap", x, y, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::logmap(a, b, o, d, R);
    });
  }

  /// d(x,y), Eq. (20)–(21).
  template <class DX, class DY>
  auto dist(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) const {
    return reduce2("Lorentz::dist", x, y, [R = R_](const T* a, const T* b, Index d) {
      return lorentz_rows::dist(a, b, d, R);
    });
  }

  /// d(o,x), Eq. (22).
  template <class DX>
  auto dist0(const Eigen::MatrixBase<DX>& x) const {
    return reduce1("Lorentz::dist0", x, 1,
                   [R = R_](const T* a, Index d) { return lorentz_rows::dist0(a, d, R); });
  }

  /// PT_{x→y}(v), Eq. (24).
  template <class DX, class DY, class DV>
  auto transp(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
              const Eigen::MatrixBase<DV>& v) const {
    return map3("Lorentz::transp", x, y, v,
                [R = R_](const T* a, const T* b, const T* c, T* o, Index d) {
                  lorentz_rows::transp(a, b, c, o, d, R);
                });
  }

  /// PT_{o→y}(u) for u tangent at o (only u_s is read), Eq. (25).
  template <class DY, class DU>
  auto transp0(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DU>& u) const {
    return map2("Lorentz::transp0", y, u, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::transp0(a, b, o, d, R);
    });
  }

  /// PT_{y→o}(w), Eq. (26).
  template <class DY, class DW>
  auto transp0back(const Eigen::MatrixBase<DY>& y, const Eigen::MatrixBase<DW>& w) const {
    return map2("Lorentz::transp0back", y, w, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::transp0back(a, b, o, d, R);
    });
  }

  /// Riemannian gradient from the ambient (Euclidean) one, Eq. (27). Returns a new vector; the
  /// gradient passed in is never modified.
  template <class DX, class DG>
  auto egrad2rgrad(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DG>& g) const {
    return map2("Lorentz::egrad2rgrad", x, g, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::egrad2rgrad(a, b, o, d, R);
    });
  }

  /// π(x + u), Eq. (28).
  template <class DX, class DU>
  auto retr(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DU>& u) const {
    return map2("Lorentz::retr", x, u, [R = R_](const T* a, const T* b, T* o, Index d) {
      lorentz_rows::retr(a, b, o, d, R);
    });
  }

  // ---- checks (Eq. (33)) -------------------------------------------------------------------

  /// x finite, x0 > 0 and |⟨x,x⟩_L + K| ≤ tol·(K + |x_s|²) (relative: the constraint's
  /// rounding grows with x0²), Eq. (33). Batches report the first failing row.
  template <class DX>
  Check check_point(const Eigen::MatrixBase<DX>& x, T tol = numerics<T>::check_tol()) const {
    return check_rows("point", x, x, tol, false);
  }

  /// x is a point (as above) and u is finite and tangent: |⟨x,u⟩_L| ≤ tol·|x|·|u| (Euclidean
  /// norms), Eq. (33).
  template <class DX, class DU>
  Check check_vector(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DU>& u,
                     T tol = numerics<T>::check_tol()) const {
    return check_rows("vector", x, u, tol, true);
  }

  // ---- Lorentz group and the low-rank operator (Eq. (29)–(32)) ----------------------------

  /// Boost(w) = [[cosh φ, s wᵀ], [s w, I + h w wᵀ]], φ = |w| (rapidity vector w ∈ R^d), Eq. (29).
  /// Boost(w)·o = exp_o((0, R w)). Returns (d+1, d+1).
  template <class DW>
  MatrixR<T> boost(const Eigen::MatrixBase<DW>& w) const {
    const VectorX<T> wv = as_vector("Lorentz::boost", "w", w, 0);
    const Index d = wv.size();
    T ch, s, h;
    lorentz_rows::boost_coeffs(wv.data(), d, ch, s, h);
    MatrixR<T> M(d + 1, d + 1);
    M(0, 0) = ch;
    M.row(0).tail(d) = s * wv.transpose();
    M.col(0).tail(d) = s * wv;
    M.bottomRightCorner(d, d) = MatrixR<T>::Identity(d, d) + h * wv * wv.transpose();
    return M;
  }

  /// Boost(w)·x without forming the matrix, Eq. (30). w: (d); x: (d+1) or (N, d+1).
  template <class DW, class DX>
  auto apply_boost(const Eigen::MatrixBase<DW>& w, const Eigen::MatrixBase<DX>& x) const {
    const VectorX<T> wv = as_vector("Lorentz::apply_boost", "w", w, 0);
    need_cols("Lorentz::apply_boost", "w", wv.size(), x, 1);
    return map1("Lorentz::apply_boost", x, 1, [&wv](const T* a, T* o, Index d) {
      lorentz_rows::apply_boost(wv.data(), a, o, d);
    });
  }

  /// Rot(Q) = diag(1, Q), Eq. (31); Q (d, d) must satisfy |QᵀQ − I|_max ≤ tol (value_error).
  template <class DQ>
  MatrixR<T> rotation(const Eigen::MatrixBase<DQ>& Q, T tol = numerics<T>::check_tol()) const {
    const MatrixR<T> q = Q;
    check_orthogonal("Lorentz::rotation", q, tol);
    MatrixR<T> M = MatrixR<T>::Zero(q.rows() + 1, q.rows() + 1);
    M(0, 0) = T(1);
    M.bottomRightCorner(q.rows(), q.rows()) = q;
    return M;
  }

  /// Rot((I − S)(I + S)⁻¹) for skew S (Cayley, Eq. (31)); |S + Sᵀ|_max ≤ tol·max(1, |S|_max)
  /// or value_error. I + S is invertible for every skew S (its eigenvalues are 1 + iλ).
  template <class DS>
  MatrixR<T> rotation_from_skew(const Eigen::MatrixBase<DS>& S,
                                T tol = numerics<T>::check_tol()) const {
    const MatrixR<T> s = S;
    if (s.rows() != s.cols() || s.rows() < 1)
      throw_shape("Lorentz::rotation_from_skew: S must be square", "S", s.rows(), s.cols(), "S^T",
                  s.cols(), s.rows());
    using std::abs;
    const T skew_err = (s + s.transpose()).cwiseAbs().maxCoeff();
    const T scale = s.cwiseAbs().maxCoeff() > T(1) ? s.cwiseAbs().maxCoeff() : T(1);
    if (!(skew_err <= tol * scale)) {
      std::ostringstream m;
      m << "Lorentz::rotation_from_skew: S is not skew-symmetric, max|S + S^T| = " << skew_err
        << " > tol " << tol * scale;
      throw value_error(m.str());
    }
    const Index d = s.rows();
    const MatrixR<T> I = MatrixR<T>::Identity(d, d);
    // (I − S) and (I + S)⁻¹ commute, so Q = (I + S)⁻¹(I − S): one LU solve.
    const MatrixR<T> q = (I + s).partialPivLu().solve(I - s);
    MatrixR<T> M = MatrixR<T>::Zero(d + 1, d + 1);
    M(0, 0) = T(1);
    M.bottomRightCorner(d, d) = q;
    return M;
  }

  /// Rot(Q)·x = (x0, Q x_s), Eq. (31), with the same orthogonality check as rotation().
  template <class DQ, class DX>
  auto apply_rotation(const Eigen::MatrixBase<DQ>& Q, const Eigen::MatrixBase<DX>& x,
                      T tol = numerics<T>::check_tol()) const {
    const MatrixR<T> q = Q;
    check_orthogonal("Lorentz::apply_rotation", q, tol);
    need_cols("Lorentz::apply_rotation", "Q", q.cols(), x, 1);
    return map1("Lorentz::apply_rotation", x, 1, [&q](const T* a, T* o, Index d) {
      lorentz_rows::apply_rotation(q.data(), a, o, d);
    });
  }

  /// W ⊗^K x = (√(|W x_s|² + K), W x_s), Eq. (32). W: (m, d); x: (d+1) -> (m+1), or
  /// (N, d+1) -> (N, m+1). Not an isometry unless W is orthogonal.
  template <class DW, class DX>
  auto llr(const Eigen::MatrixBase<DW>& W, const Eigen::MatrixBase<DX>& x) const {
    const MatrixR<T> Wr = W;
    const Index m = Wr.rows();
    if (m < 1) throw_shape("Lorentz::llr: W needs rows", "W", Wr.rows(), Wr.cols(), "x", x.rows(), x.cols());
    need_cols("Lorentz::llr", "W", Wr.cols(), x, 1);
    const T R = R_;
    if constexpr (DX::ColsAtCompileTime == 1) {
      const Eigen::Ref<const VectorX<T>> xv(x.derived());
      VectorX<T> out(m + 1);
      lorentz_rows::llr(Wr.data(), m, xv.data(), out.data(), xv.size() - 1, R);
      return out;
    } else {
      const Eigen::Ref<const MatrixR<T>> X(x.derived());
      MatrixR<T> out(X.rows(), m + 1);
      const Index d = X.cols() - 1;
      for_rows(X.rows(), [&](Index i) {
        lorentz_rows::llr(Wr.data(), m, X.row(i).data(), out.row(i).data(), d, R);
      });
      return out;
    }
  }

 private:
  T K_;
  T R_;

  template <class D>
  static constexpr bool is_single = D::ColsAtCompileTime == 1;

  template <class F>
  static void for_rows(Index N, F&& f) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (N >= parallel_rows)
#endif
    for (Index i = 0; i < N; ++i) f(i);
  }

  static void need_dim(const char* what, Index d) {
    if (d < 1) {
      std::ostringstream m;
      m << what << ": dimension d must be >= 1, got " << d;
      throw value_error(m.str());
    }
  }

  // A single vector (off = 1: ambient, length d+1 >= 2; off = 0: spatial, length d >= 1).
  template <class D>
  static VectorX<T> as_vector(const char* what, const char* name, const Eigen::MatrixBase<D>& v,
                              Index off) {
    if (v.rows() < 1 + off || (v.cols() != 1 && v.rows() != 1))
      throw_shape(std::string(what) + ": expected a vector of length >= " + std::to_string(1 + off),
                  name, v.rows(), v.cols(), "required", 1 + off, 1);
    if constexpr (is_single<D>) {
      return v.template cast<T>();
    } else {
      if (v.cols() == 1) return v.col(0).template cast<T>();
      return v.row(0).transpose().template cast<T>();
    }
  }

  // x's (last) dimension must be `cols + off` (a point after a d-column operator).
  template <class D>
  static void need_cols(const char* what, const char* op, Index cols, const Eigen::MatrixBase<D>& x,
                        Index off) {
    const Index n = is_single<D> ? x.rows() : x.cols();
    if (n != cols + off)
      throw_shape(std::string(what) + ": " + op + " acts on " + std::to_string(cols) +
                      " spatial coordinates",
                  op, cols, cols, "x", x.rows(), x.cols());
  }

  template <class DA, class DB>
  static void same_shape(const char* what, const char* an, const Eigen::MatrixBase<DA>& a,
                         const char* bn, const Eigen::MatrixBase<DB>& b, Index off) {
    static_assert(is_single<DA> == is_single<DB>,
                  "hyplora::Lorentz: pass either single points (column vectors) or batches "
                  "(one point per row) to one call, not a mix");
    if (a.rows() != b.rows() || a.cols() != b.cols())
      throw_shape(what, an, a.rows(), a.cols(), bn, b.rows(), b.cols());
    const Index n = is_single<DA> ? a.rows() : a.cols();
    if (n < 1 + off)
      throw_shape(std::string(what) + ": points need at least " + std::to_string(1 + off) +
                      " coordinates",
                  an, a.rows(), a.cols(), "required", is_single<DA> ? 1 + off : a.rows(),
                  is_single<DA> ? 1 : 1 + off);
  }

  // Unary map, same length in and out; fn(in, out, d) with d = length − off.
  template <class DX, class F>
  static auto map1(const char* what, const Eigen::MatrixBase<DX>& x, Index off, F fn) {
    same_shape(what, "x", x, "x", x, off);
    if constexpr (is_single<DX>) {
      const Eigen::Ref<const VectorX<T>> xv(x.derived());
      VectorX<T> out(xv.size());
      fn(xv.data(), out.data(), xv.size() - off);
      return out;
    } else {
      const Eigen::Ref<const MatrixR<T>> X(x.derived());
      MatrixR<T> out(X.rows(), X.cols());
      const Index d = X.cols() - off;
      for_rows(X.rows(), [&](Index i) { fn(X.row(i).data(), out.row(i).data(), d); });
      return out;
    }
  }

  // Binary map on ambient vectors of equal shape.
  template <class DX, class DY, class F>
  static auto map2(const char* what, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                   F fn) {
    same_shape(what, "x", x, "y", y, 1);
    if constexpr (is_single<DX>) {
      const Eigen::Ref<const VectorX<T>> xv(x.derived()), yv(y.derived());
      VectorX<T> out(xv.size());
      fn(xv.data(), yv.data(), out.data(), xv.size() - 1);
      return out;
    } else {
      const Eigen::Ref<const MatrixR<T>> X(x.derived()), Y(y.derived());
      MatrixR<T> out(X.rows(), X.cols());
      const Index d = X.cols() - 1;
      for_rows(X.rows(),
               [&](Index i) { fn(X.row(i).data(), Y.row(i).data(), out.row(i).data(), d); });
      return out;
    }
  }

  template <class DX, class DY, class DV, class F>
  static auto map3(const char* what, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                   const Eigen::MatrixBase<DV>& v, F fn) {
    same_shape(what, "x", x, "y", y, 1);
    same_shape(what, "x", x, "v", v, 1);
    if constexpr (is_single<DX>) {
      const Eigen::Ref<const VectorX<T>> xv(x.derived()), yv(y.derived()), vv(v.derived());
      VectorX<T> out(xv.size());
      fn(xv.data(), yv.data(), vv.data(), out.data(), xv.size() - 1);
      return out;
    } else {
      const Eigen::Ref<const MatrixR<T>> X(x.derived()), Y(y.derived()), V(v.derived());
      MatrixR<T> out(X.rows(), X.cols());
      const Index d = X.cols() - 1;
      for_rows(X.rows(), [&](Index i) {
        fn(X.row(i).data(), Y.row(i).data(), V.row(i).data(), out.row(i).data(), d);
      });
      return out;
    }
  }

  // Scalar per point: T for a single point, VectorX<T> (N) for a batch.
  template <class DX, class F>
  static auto reduce1(const char* what, const Eigen::MatrixBase<DX>& x, Index off, F fn) {
    same_shape(what, "x", x, "x", x, off);
    if constexpr (is_single<DX>) {
      const Eigen::Ref<const VectorX<T>> xv(x.derived());
      return T(fn(xv.data(), xv.size() - off));
    } else {
      const Eigen::Ref<const MatrixR<T>> X(x.derived());
      VectorX<T> out(X.rows());
      const Index d = X.cols() - off;
      for_rows(X.rows(), [&](Index i) { out(i) = fn(X.row(i).data(), d); });
      return out;
    }
  }

  template <class DX, class DY, class F>
  static auto reduce2(const char* what, const Eigen::MatrixBase<DX>& x,
                      const Eigen::MatrixBase<DY>& y, F fn) {
    same_shape(what, "x", x, "y", y, 1);
    if constexpr (is_single<DX>) {
      const Eigen::Ref<const VectorX<T>> xv(x.derived()), yv(y.derived());
      return T(fn(xv.data(), yv.data(), xv.size() - 1));
    } else {
      const Eigen::Ref<const MatrixR<T>> X(x.derived()), Y(y.derived());
      VectorX<T> out(X.rows());
      const Index d = X.cols() - 1;
      for_rows(X.rows(), [&](Index i) { out(i) = fn(X.row(i).data(), Y.row(i).data(), d); });
      return out;
    }
  }

  static void check_orthogonal(const char* what, const MatrixR<T>& q, T tol) {
    if (q.rows() != q.cols() || q.rows() < 1)
      throw_shape(std::string(what) + ": Q must be square", "Q", q.rows(), q.cols(), "Q^T",
                  q.cols(), q.rows());
    const T err =
        (q.transpose() * q - MatrixR<T>::Identity(q.rows(), q.rows())).cwiseAbs().maxCoeff();
    if (!(err <= tol)) {
      std::ostringstream m;
      m << what << ": Q is not orthogonal, max|Q^T Q - I| = " << err << " > tol " << tol;
      throw value_error(m.str());
    }
  }

  // Eq. (33). `vector` = false checks x only (u is x).
  template <class DX, class DU>
  Check check_rows(const char* kind, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DU>& u,
                   T tol, bool vector) const {
    same_shape(vector ? "Lorentz::check_vector" : "Lorentz::check_point", "x", x, "u", u, 1);
    const MatrixR<T> X = as_rows(x);
    const MatrixR<T> U = as_rows(u);
    const Index d = X.cols() - 1;
    using std::abs;
    using std::isfinite;
    using std::sqrt;
    for (Index i = 0; i < X.rows(); ++i) {
      const T* p = X.row(i).data();
      std::ostringstream m;
      const char* where = is_single<DX> ? "" : " (row ";
      auto fail = [&](const std::string& why) {
        m << kind << where;
        if (!is_single<DX>) m << i << ")";
        m << ": " << why;
        return Check{false, m.str()};
      };
      if (!X.row(i).allFinite()) return fail("x has a non-finite coordinate");
      if (!(p[0] > T(0))) {
        std::ostringstream w;
        w << "x0 = " << p[0] << " is not > 0 (lower sheet or zero)";
        return fail(w.str());
      }
      const T s2 = lorentz_rows::dot(p + 1, p + 1, d);
      const T err = abs(-p[0] * p[0] + s2 + K_) / (K_ + s2);
      if (!(err <= tol)) {
        std::ostringstream w;
        w << "|<x,x>_L + K| / (K + |x_s|^2) = " << err << " > tol " << tol << " (K = " << K_ << ")";
        return fail(w.str());
      }
      if (vector) {
        const T* q = U.row(i).data();
        if (!U.row(i).allFinite()) return fail("u has a non-finite coordinate");
        const T ip = abs(lorentz_rows::inner(p, q, d));
        const T scale = sqrt(lorentz_rows::dot(p, p, d + 1) * lorentz_rows::dot(q, q, d + 1));
        if (!(ip <= tol * scale)) {
          std::ostringstream w;
          w << "u is not tangent at x: |<x,u>_L| = " << ip << " > tol * |x| |u| = " << tol * scale;
          return fail(w.str());
        }
      }
    }
    return Check{};
  }

  // A single vector as a one-row batch; batches as they are (a copy: checks are not hot).
  template <class D>
  static MatrixR<T> as_rows(const Eigen::MatrixBase<D>& x) {
    if constexpr (is_single<D>) {
      return x.transpose();
    } else {
      return x;
    }
  }
};

}  // namespace hyplora
