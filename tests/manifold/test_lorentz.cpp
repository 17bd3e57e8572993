// Tests for include/hyplora/manifold/lorentz.hpp and manifold/detail/lorentz_rows.hpp.
//
// References are closed forms evaluated in long double from the same (T-valued) inputs; Jacobians
// are checked three ways: central differences (long double), forward-mode Dual<T>, and the
// *_backward row functions. Regimes: the origin, 1e-8 from it, random moderate, large norms.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <hyplora/manifold/lorentz.hpp>

#include "support/dual.hpp"

namespace manifold_test_lorentz {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

using hyplora::Lorentz;
using hyplora::MatrixR;
using hyplora::RowVectorX;
using hyplora::VectorX;
using hyplora::testing::Dual;
namespace rows = hyplora::lorentz_rows;
using LD = long double;
using hyplora::Index;

template <class T>
double tol_rel() {
  return std::is_same<T, float>::value ? 1e-5 : 1e-12;
}
template <class T>
double eps_of() {
  return static_cast<double>(std::numeric_limits<T>::epsilon());
}

const double kKs[] = {0.25, 1.0, 4.0};
const int kD = 6;

// Tangent lengths (in radii) of the four regimes.
enum class Regime { origin, near, moderate, large };
const Regime kRegimes[] = {Regime::origin, Regime::near, Regime::moderate, Regime::large};
const char* name(Regime r) {
  switch (r) {
    case Regime::origin: return "origin";
    case Regime::near: return "near";
    case Regime::moderate: return "moderate";
    default: return "large";
  }
}

struct Rng {
  std::mt19937_64 g{12345};
  double uni(double a, double b) { return std::uniform_real_distribution<double>(a, b)(g); }
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(g); }
  // Lengths in radii for a regime; `large` goes up to the saturation point of T's exp.
  template <class T>
  double length(Regime r) {
    switch (r) {
      case Regime::origin: return 0.0;
      case Regime::near: return 1e-8;
      case Regime::moderate: return uni(0.05, 3.0);
      default: return uni(5.0, static_cast<double>(hyplora::numerics<T>::max_exp_arg()) - 4.0);
    }
  }
  template <class T>
  VectorX<T> dir(Index d) {
    VectorX<double> v(d);
    for (Index i = 0; i < d; ++i) v(i) = normal();
    return (v / v.norm()).cast<T>();
  }
};

template <class A, class B>
double rel_err(const A& got, const B& want) {
  const LD n = want.norm();
  const LD e = (got.template cast<LD>() - want.template cast<LD>()).norm();
  return static_cast<double>(n > 0 ? e / n : e);
}
double rel_err_s(LD got, LD want) {
  return static_cast<double>(want != 0 ? std::fabs(got - want) / std::fabs(want) : std::fabs(got));
}

// Long-double closed forms.
VectorX<LD> ld_exp0(const VectorX<LD>& v, LD R) {  // exp_o((0,v)), Eq. (17)
  VectorX<LD> x(v.size() + 1);
  const LD r = v.norm() / R;
  x(0) = R * std::cosh(r);
  x.tail(v.size()) = (r == 0 ? LD(1) : std::sinh(r) / r) * v;
  return x;
}
LD ld_inner(const VectorX<LD>& x, const VectorX<LD>& y) {
  return -x(0) * y(0) + x.tail(x.size() - 1).dot(y.tail(y.size() - 1));
}
VectorX<LD> ld_proj(VectorX<LD> x, LD K) {
  x(0) = std::sqrt(K + x.tail(x.size() - 1).squaredNorm());
  return x;
}
// Tangent of Minkowski length r·R at x (T-valued x): P_x(random), rescaled.
template <class T>
VectorX<T> tangent_at(const Lorentz<T>& M, const VectorX<T>& x, double r, Rng& rng) {
  VectorX<T> z(x.size());
  for (Index i = 0; i < z.size(); ++i) z(i) = T(rng.normal());
  VectorX<T> u = M.proju(x, z);
  const T n = M.norm(u);
  return (n > T(0) ? u / n : u) * T(r * static_cast<double>(M.R()));
}
template <class T>
VectorX<T> point(const Lorentz<T>& M, double r, Rng& rng) {
  VectorX<T> u(kD + 1);
  u(0) = T(0);
  u.tail(kD) = rng.template dir<T>(kD) * T(r * static_cast<double>(M.R()));
  return M.expmap0(u);
}

}  // namespace

TEST_CASE_TEMPLATE("Lorentz: curvature", T, float, double) {
  for (T bad : {T(0), T(-1), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    CAPTURE(bad);
    CHECK_THROWS_AS((void)Lorentz<T>{bad}, hyplora::value_error);
  }
  const Lorentz<T> M(T(4));
  CHECK(M.K() == T(4));
  CHECK(M.R() == T(2));
  const VectorX<T> o = M.origin(3);
  CHECK(o.size() == 4);
  CHECK(o(0) == T(2));
  CHECK(M.check_point(o).ok);
  CHECK(M.origin(5, 3).rows() == 5);
  CHECK_THROWS_AS(M.origin(0), hyplora::value_error);
}

TEST_CASE_TEMPLATE("Lorentz: exp0/log0 against long double, round trips, dist0", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    const LD R = std::sqrt(LD(K));
    for (Regime reg : kRegimes) {
      for (int rep = 0; rep < 8; ++rep) {
        CAPTURE(K);
        const std::string regime = name(reg);
        CAPTURE(regime);
        const double r = rng.length<T>(reg);
        const VectorX<T> v = rng.template dir<T>(kD) * T(r * std::sqrt(K));
        const VectorX<T> fv = M.expmap0_spatial(v);
        VectorX<T> u(kD + 1);
        u << T(0), v;
        const VectorX<T> x = M.expmap0(u);
        CHECK(fv.isApprox(x.tail(kD)));
        const VectorX<LD> xr = ld_exp0(v.template cast<LD>(), R);
        // The large regime loses r·ε in sinh(r); compare at the accuracy the formula allows.
        const double tol = (reg == Regime::large ? r : 1.0) * tol_rel<T>();
        CHECK(rel_err(x, xr) <= tol);
        CHECK(M.check_point(x).ok);
        // log0 ∘ exp0 = id and dist(o, exp0 v) = |v| (the origin regime compares exactly).
        const VectorX<T> back = M.logmap0_spatial(fv);
        const VectorX<T> lx = M.logmap0(x);
        CHECK(lx(0) == T(0));
        CHECK(rel_err(back, v.template cast<LD>()) <= tol_rel<T>());
        CHECK(rel_err(lx.tail(kD), v.template cast<LD>()) <= tol_rel<T>());
        const LD vn = v.template cast<LD>().norm();
        CHECK(rel_err_s(M.dist0(x), vn) <= tol_rel<T>());
        CHECK(rel_err_s(M.dist(M.origin(kD), x), vn) <= tol_rel<T>());
        // log0 of a point given as its spatial part agrees with the long-double asinh form.
        const VectorX<LD> ys = xr.tail(kD);
        const LD t = ys.norm() / R;
        const VectorX<LD> lr = (t == 0 ? LD(1) : std::asinh(t) / t) * ys;
        CHECK(rel_err(M.logmap0_spatial(ys.template cast<T>()), lr) <= tol_rel<T>());
      }
    }
  }
}

TEST_CASE_TEMPLATE("Lorentz: exp/log/dist at a point", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    const LD KL = K;
    const LD R = std::sqrt(KL);
    for (Regime reg : {Regime::origin, Regime::near, Regime::moderate}) {
      for (int rep = 0; rep < 8; ++rep) {
        CAPTURE(K);
        const std::string regime = name(reg);
        CAPTURE(regime);
        const VectorX<T> x = point(M, rng.uni(0.0, 2.0), rng);
        const double r = rng.length<T>(reg);
        const VectorX<T> u = tangent_at(M, x, r, rng);
        const VectorX<T> y = M.expmap(x, u);
        CHECK(M.check_point(y).ok);
        // Long-double closed form Eq. (14) from the same inputs, projected.
        const VectorX<LD> xl = x.template cast<LD>(), ul = u.template cast<LD>();
        const LD n = std::sqrt(std::max(ld_inner(ul, ul), LD(0)));
        const VectorX<LD> yl =
            ld_proj(std::cosh(n / R) * xl + (n == 0 ? LD(1) : std::sinh(n / R) / (n / R)) * ul, KL);
        const double scale = static_cast<double>(xl.norm() / std::max(yl.norm(), LD(1e-30)));
        if (reg == Regime::moderate) CHECK(rel_err(y, yl) <= tol_rel<T>());
        // Absolute bound for the round trips: the difference y − x carries ε·|x| of rounding.
        const double abs_tol = 64 * eps_of<T>() * static_cast<double>(xl.norm() + ul.norm());
        const VectorX<T> u2 = M.logmap(x, y);
        CHECK((u2 - u).norm() <= abs_tol);
        CHECK((M.expmap(x, u2) - y).norm() <= abs_tol / std::min(scale, 1.0));
        CHECK(std::fabs(static_cast<double>(M.dist(x, y)) - static_cast<double>(M.norm(u))) <=
              abs_tol);
        if (reg == Regime::moderate) {
          CHECK(rel_err_s(M.dist(x, y), static_cast<LD>(M.norm(u))) <= 10 * tol_rel<T>());
          // Long-double distance from the projected points (chord computed directly).
          const VectorX<LD> a = ld_proj(xl, KL), b = ld_proj(yl, KL);
          const LD c = std::sqrt(ld_inner(a - b, a - b));
          CHECK(rel_err_s(M.dist(x, y), 2 * R * std::asinh(c / (2 * R))) <= tol_rel<T>());
          CHECK(rel_err(u2, ul) <= 10 * tol_rel<T>());
          CHECK(M.check_vector(x, u2).ok);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("Lorentz: projections", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    for (Regime reg : kRegimes) {
      const std::string regime = name(reg);
        CAPTURE(regime);
      const VectorX<T> x = point(M, std::min(rng.length<T>(reg), 3.0), rng);
      VectorX<T> z = VectorX<T>::Zero(kD + 1);
      for (Index i = 0; i < z.size(); ++i) z(i) = T(rng.normal());
      const VectorX<T> px = M.projx(z);
      CHECK(M.check_point(px).ok);
      CHECK(M.projx(px) == px);
      const VectorX<T> pu = M.proju(x, z);
      CHECK(M.check_vector(x, pu).ok);
      // P_x(pu) − pu = (⟨x,pu⟩_L/K)·x, and ⟨x,pu⟩_L carries ε·|x|·(|pu| + |x||z|²/K) of rounding.
      const double xn = static_cast<double>(x.norm());
      CHECK(static_cast<double>((M.proju(x, pu) - pu).norm()) <=
            16 * eps_of<T>() * xn * xn / K * static_cast<double>(pu.norm() + z.norm()));
    }
  }
}

TEST_CASE_TEMPLATE("Lorentz: parallel transport", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    const VectorX<T> o = M.origin(kD);
    for (Regime reg : kRegimes) {
      for (int rep = 0; rep < 4; ++rep) {
        CAPTURE(K);
        const std::string regime = name(reg);
        CAPTURE(regime);
        const double ry = std::min(rng.length<T>(reg), 3.0);
        const VectorX<T> x = point(M, rng.uni(0.0, 2.0), rng);
        const VectorX<T> y = point(M, ry, rng);
        const VectorX<T> v1 = tangent_at(M, x, 1.0, rng), v2 = tangent_at(M, x, 0.5, rng);
        const VectorX<T> w1 = M.transp(x, y, v1), w2 = M.transp(x, y, v2);
        const double tol = 64 * eps_of<T>() * static_cast<double>(x.squaredNorm() + y.squaredNorm()) *
                           static_cast<double>(M.R() * M.R());
        CHECK(M.check_vector(y, w1).ok);
        CHECK(std::fabs(static_cast<double>(M.inner(w1, w2) - M.inner(v1, v2))) <= tol);
        CHECK(std::fabs(static_cast<double>(M.inner(w1, w1) - M.inner(v1, v1))) <= tol);
        // From and to the origin agree with the general formula.
        const VectorX<T> u0 = tangent_at(M, o, 1.0, rng);
        const VectorX<T> t0 = M.transp0(y, u0);
        CHECK((t0 - M.transp(o, y, u0)).norm() <= tol);
        CHECK(M.check_vector(y, t0).ok);
        const VectorX<T> back = M.transp0back(y, t0);
        CHECK(back(0) == T(0));
        CHECK((back - M.transp(y, o, t0)).norm() <= tol);
        CHECK((back - u0).norm() <= tol);
      }
    }
  }
}

TEST_CASE_TEMPLATE("Lorentz: egrad2rgrad", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    const LD R = std::sqrt(LD(K));
    for (Regime reg : {Regime::origin, Regime::near, Regime::moderate}) {
      CAPTURE(K);
      const std::string regime = name(reg);
        CAPTURE(regime);
      const VectorX<T> x = point(M, rng.length<T>(reg), rng);
      // f(x) = c·x + ½ xᵀ diag(a) x, ambient gradient c + a ⊙ x.
      VectorX<LD> c(kD + 1), a(kD + 1);
      for (Index i = 0; i <= kD; ++i) c(i) = rng.normal(), a(i) = rng.normal();
      auto f = [&](const VectorX<LD>& p) { return c.dot(p) + 0.5L * (a.array() * p.array().square()).sum(); };
      const VectorX<T> g = (c + a.cwiseProduct(x.template cast<LD>())).template cast<T>();
      const VectorX<T> g_copy = g;
      const VectorX<T> rg = M.egrad2rgrad(x, g);
      CHECK(g == g_copy);
      CHECK(M.check_vector(x, rg).ok);
      // d/dt f(exp_x(t u)) at 0 = ⟨rgrad, u⟩_L, by central differences along exp_x in long double.
      for (int k = 0; k < 3; ++k) {
        const VectorX<LD> u = tangent_at(M, x, 1.0, rng).template cast<LD>();
        const VectorX<LD> xl = ld_proj(x.template cast<LD>(), LD(K));
        const LD h = 1e-6L;
        VectorX<LD> p(kD + 1), q(kD + 1);
        const VectorX<LD> uh = h * u, umh = -h * u;
        rows::expmap(xl.data(), uh.data(), p.data(), kD, R);
        rows::expmap(xl.data(), umh.data(), q.data(), kD, R);
        const LD fd = (f(p) - f(q)) / (2 * h);
        const LD an = ld_inner(rg.template cast<LD>(), u);
        CHECK(rel_err_s(an, fd) <= (std::is_same<T, float>::value ? 1e-5 : 1e-9) *
                                       static_cast<double>(1 + xl.squaredNorm()));
      }
    }
  }
}

TEST_CASE_TEMPLATE("Lorentz: retraction", T, float, double) {
  Rng rng;
  const Lorentz<T> M{T(1)};
  const VectorX<T> x = point(M, 1.0, rng);
  const VectorX<T> u = tangent_at(M, x, 1e-3, rng);
  const VectorX<T> y = M.retr(x, u);
  CHECK(M.check_point(y).ok);
  // First order: agrees with exp_x to O(|u|²).
  CHECK((y - M.expmap(x, u)).norm() <= 4e-6 * static_cast<double>(x.norm()) + 1e3 * eps_of<T>());
  CHECK(M.retr(x, VectorX<T>::Zero(kD + 1)).isApprox(M.projx(x)));
}

TEST_CASE_TEMPLATE("Lorentz: boosts and rotations", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    MatrixR<T> J = MatrixR<T>::Identity(kD + 1, kD + 1);
    J(0, 0) = T(-1);
    const VectorX<T> o = M.origin(kD);
    for (Regime reg : kRegimes) {
      CAPTURE(K);
      const std::string regime = name(reg);
        CAPTURE(regime);
      const double phi = std::min(rng.length<T>(reg), 4.0);
      const VectorX<T> w = rng.template dir<T>(kD) * T(phi);
      const MatrixR<T> B = M.boost(w);
      const double tol = 64 * eps_of<T>() * std::cosh(phi) * std::cosh(phi);
      CHECK((B.transpose() * J * B - J).cwiseAbs().maxCoeff() <= tol);
      CHECK(B(0, 0) >= T(1));
      CHECK((M.boost(VectorX<T>(-w)) * B - MatrixR<T>::Identity(kD + 1, kD + 1)).cwiseAbs().maxCoeff() <= tol);
      // Boost(w)·o = exp_o((0, R w)).
      VectorX<T> u(kD + 1);
      u << T(0), M.R() * w;
      CHECK((B * o - M.expmap0(u)).norm() <= tol * static_cast<double>(M.R()));
      // apply_boost = the matrix, and is an isometry of H.
      const VectorX<T> x = point(M, 1.5, rng), y = point(M, 0.7, rng);
      const VectorX<T> bx = M.apply_boost(w, x), by = M.apply_boost(w, y);
      CHECK((bx - B * x).norm() <= tol * static_cast<double>(x.norm()));
      CHECK(M.check_point(bx).ok);
      CHECK(std::fabs(static_cast<double>(M.dist(bx, by) - M.dist(x, y))) <=
            1e3 * tol * static_cast<double>(M.R()));
      // Rotations: Cayley of a skew matrix, Rot(Q) preserves J, points and distances.
      MatrixR<T> S(kD, kD);
      for (Index i = 0; i < S.size(); ++i) S.data()[i] = T(rng.normal() * phi);
      S = (S - S.transpose()).eval();
      const MatrixR<T> Rt = M.rotation_from_skew(S);
      const MatrixR<T> Q = Rt.bottomRightCorner(kD, kD);
      CHECK((Rt.transpose() * J * Rt - J).cwiseAbs().maxCoeff() <= 1e3 * eps_of<T>());
      CHECK(M.rotation(Q) == Rt);
      const VectorX<T> rx = M.apply_rotation(Q, x);
      CHECK((rx - Rt * x).norm() <= 1e3 * eps_of<T>() * static_cast<double>(x.norm()));
      CHECK(M.check_point(rx).ok);
    }
  }
  const Lorentz<T> M{T(1)};
  MatrixR<T> Q = MatrixR<T>::Identity(3, 3);
  Q(0, 1) = T(1e-2);
  CHECK_THROWS_AS(M.rotation(Q), hyplora::value_error);
  CHECK_THROWS_AS(M.rotation_from_skew(MatrixR<T>::Identity(3, 3)), hyplora::value_error);
  CHECK_THROWS_AS(M.rotation(MatrixR<T>::Identity(3, 2)), hyplora::shape_error);
  CHECK_THROWS_AS(M.apply_rotation(MatrixR<T>::Identity(3, 3), M.origin(4)), hyplora::shape_error);
  CHECK_THROWS_AS(M.apply_boost(VectorX<T>::Zero(3), M.origin(4)), hyplora::shape_error);
}

TEST_CASE_TEMPLATE("Lorentz: low-rank operator llr", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    const int r = 3, m = 4;
    MatrixR<T> A(r, kD), B(m, r);
    for (Index i = 0; i < A.size(); ++i) A.data()[i] = T(rng.normal());
    for (Index i = 0; i < B.size(); ++i) B.data()[i] = T(rng.normal());
    const VectorX<T> o = M.origin(kD);
    CHECK(M.llr(A, o) == M.origin(r));
    const VectorX<T> x = point(M, 1.2, rng);
    const VectorX<T> ax = M.llr(A, x);
    CHECK(ax.size() == r + 1);
    CHECK(M.check_point(ax).ok);
    const MatrixR<T> BA = B * A;
    CHECK(rel_err(M.llr(B, ax), M.llr(BA, x).template cast<LD>()) <= 100 * eps_of<T>());
    // Orthogonal Q: Q ⊗ x = Rot(Q)·x.
    MatrixR<T> S(kD, kD);
    for (Index i = 0; i < S.size(); ++i) S.data()[i] = T(rng.normal());
    S = (S - S.transpose()).eval();
    const MatrixR<T> Rt = M.rotation_from_skew(S);
    const MatrixR<T> Q = Rt.bottomRightCorner(kD, kD);
    CHECK(rel_err(M.llr(Q, x), (Rt * x).template cast<LD>()) <= 100 * eps_of<T>());
    // Batch rows agree with single points.
    MatrixR<T> X(2, kD + 1);
    X.row(0) = x.transpose();
    X.row(1) = o.transpose();
    const MatrixR<T> AX = M.llr(A, X);
    CHECK(AX.row(0).transpose() == ax);
    CHECK_THROWS_AS(M.llr(MatrixR<T>(r, kD + 1), x), hyplora::shape_error);
  }
}

TEST_CASE_TEMPLATE("Lorentz: outputs finite for tangent norms 1e-15 .. 1e4 radii", T, float, double) {
  Rng rng;
  for (double K : kKs) {
    const Lorentz<T> M{T(K)};
    const VectorX<T> x = point(M, 1.0, rng);
    const VectorX<T> o = M.origin(kD);
    for (double lr = -15; lr <= 4.0; lr += 0.5) {
      CAPTURE(K);
      CAPTURE(lr);
      const double r = std::pow(10.0, lr);
      const VectorX<T> v = rng.template dir<T>(kD) * T(r * std::sqrt(K));
      VectorX<T> u(kD + 1);
      u << T(0), v;
      const VectorX<T> y0 = M.expmap0(u);
      CHECK(y0.allFinite());
      CHECK(M.logmap0(y0).allFinite());
      CHECK(std::isfinite(M.dist0(y0)));
      CHECK(std::isfinite(M.dist(o, y0)));
      CHECK(M.logmap(o, y0).allFinite());
      CHECK(M.transp0(y0, tangent_at(M, o, 1.0, rng)).allFinite());
      const VectorX<T> y = M.expmap(x, tangent_at(M, x, r, rng));
      CHECK(y.allFinite());
      CHECK(M.apply_boost(v / M.R(), o).allFinite());
      // Backward passes stay finite too.
      VectorX<T> g = rng.template dir<T>(kD), gv(kD);
      T gR = T(0);
      rows::expmap0_spatial_backward(v.data(), kD, M.R(), g.data(), gv.data(), &gR);
      CHECK(gv.allFinite());
      CHECK(std::isfinite(gR));
      const VectorX<T> ys = y0.tail(kD);
      rows::logmap0_spatial_backward(ys.data(), kD, M.R(), g.data(), gv.data(), &gR);
      CHECK(gv.allFinite());
      CHECK(std::isfinite(gR));
    }
  }
}

namespace {

// Jacobian of f_R (which = 0) or f_R⁻¹ (which = 1) at v, column j = ∂out/∂v_j; column d = ∂out/∂R.
template <class S>
void apply_spatial(int which, const S* v, S* out, Index d, S R) {
  if (which == 0)
    rows::expmap0_spatial(v, out, d, R);
  else
    rows::logmap0_spatial(v, out, d, R);
}

template <class T>
MatrixR<LD> jac_dual(int which, const VectorX<T>& v, T R) {
  const Index d = v.size();
  MatrixR<LD> J(d, d + 1);
  std::vector<Dual<T>> in(d), out(d);
  for (Index j = 0; j <= d; ++j) {
    for (Index i = 0; i < d; ++i) in[i] = Dual<T>{v(i), T(i == j ? 1 : 0)};
    const Dual<T> Rd{R, T(j == d ? 1 : 0)};
    apply_spatial(which, in.data(), out.data(), d, Rd);
    for (Index i = 0; i < d; ++i) J(i, j) = out[i].der;
  }
  return J;
}

MatrixR<LD> jac_fd(int which, const VectorX<LD>& v, LD R) {
  // Five-point central differences in long double (error O(h⁴)). f_R grows like e^ρ, so its
  // derivatives scale with powers of ρ: the step is 1e-3·R/max(1, ρ), leaving truncation ~1e-13
  // and rounding (ρ·1e-19 relative in sinh, over the step) ~1e-11.
  const Index d = v.size();
  MatrixR<LD> J(d, d + 1);
  VectorX<LD> out(d);
  const LD rho = v.norm() / R;
  const LD h = 1e-3L * R / (which == 0 ? std::max(LD(1), rho) : LD(1));
  for (Index j = 0; j <= d; ++j) {
    VectorX<LD> acc = VectorX<LD>::Zero(d);
    const LD w[4] = {1, -8, 8, -1};
    const int k[4] = {-2, -1, 1, 2};
    for (int s = 0; s < 4; ++s) {
      VectorX<LD> a = v;
      LD Ra = R;
      if (j < d)
        a(j) += k[s] * h;
      else
        Ra += k[s] * h;
      apply_spatial(which, a.data(), out.data(), d, Ra);
      acc += w[s] * out;
    }
    J.col(j) = acc / (12 * h);
  }
  return J;
}

}  // namespace

TEST_CASE_TEMPLATE("Lorentz rows: Jacobians of expmap0_spatial / logmap0_spatial", T, float, double) {
  Rng rng;
  const Index d = 5;
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-10;
  for (double K : kKs) {
    const T R = T(std::sqrt(K));
    for (Regime reg : kRegimes) {
      for (int which = 0; which < 2; ++which) {
        for (int rep = 0; rep < 3; ++rep) {
          CAPTURE(K);
          const std::string regime = name(reg);
        CAPTURE(regime);
          CAPTURE(which);
          double r = rng.length<T>(reg);
          if (which == 1 && reg == Regime::large) r = std::sinh(std::min(r, 20.0));  // |y| = R sinh ρ
          const VectorX<T> v = rng.template dir<T>(d) * T(r * std::sqrt(K));
          const MatrixR<LD> Jd = jac_dual(which, v, R);
          const MatrixR<LD> Jf = jac_fd(which, v.template cast<LD>(), LD(R));
          const LD scale = std::max(LD(1), Jf.cwiseAbs().maxCoeff());
          CHECK(static_cast<double>((Jd - Jf).cwiseAbs().maxCoeff() / scale) <= tol);
          // The backward is gᵀJ (columns 0..d−1 for g_v, column d for g_R).
          for (int k = 0; k < 3; ++k) {
            const VectorX<T> g = rng.template dir<T>(d);
            VectorX<T> gv(d);
            T gR = T(0);
            if (which == 0)
              rows::expmap0_spatial_backward(v.data(), d, R, g.data(), gv.data(), &gR);
            else
              rows::logmap0_spatial_backward(v.data(), d, R, g.data(), gv.data(), &gR);
            const RowVectorX<LD> want = g.template cast<LD>().transpose() * Jd;
            CHECK(static_cast<double>((gv.template cast<LD>().transpose() - want.head(d)).cwiseAbs().maxCoeff() / scale) <= tol);
            CHECK(static_cast<double>(std::fabs(LD(gR) - want(d)) / scale) <= tol);
          }
        }
      }
    }
    // Saturated exp (past max_exp_arg): Dual and backward agree (the map is the clamped one).
    const VectorX<T> v = rng.template dir<T>(d) * T(1e4 * std::sqrt(K));
    const MatrixR<LD> Jd = jac_dual(0, v, R);
    const VectorX<T> g = rng.template dir<T>(d);
    VectorX<T> gv(d);
    T gR;
    const auto s = rows::expmap0_spatial(v.data(), VectorX<T>(d).data(), d, R);
    rows::expmap0_spatial_backward(v.data(), d, R, s, g.data(), gv.data(), &gR);
    const RowVectorX<LD> want = g.template cast<LD>().transpose() * Jd;
    const LD scale = std::max(LD(1), Jd.cwiseAbs().maxCoeff());
    CHECK(static_cast<double>((gv.template cast<LD>().transpose() - want.head(d)).cwiseAbs().maxCoeff() / scale) <= tol);
    CHECK(static_cast<double>(std::fabs(LD(gR) - want(d)) / scale) <= tol);
  }
}

TEST_CASE("Lorentz: single points vs batches, shapes") {
  using T = double;
  Rng rng;
  const Lorentz<T> M{T(2)};
  MatrixR<T> X(5, kD + 1), U(5, kD + 1);
  for (Index i = 0; i < 5; ++i) {
    const VectorX<T> x = point(M, rng.uni(0.0, 2.0), rng);
    X.row(i) = x.transpose();
    U.row(i) = tangent_at(M, x, 0.7, rng).transpose();
  }
  // Compile-time column vectors are single points; everything else is a batch of rows.
  static_assert(std::is_same<decltype(M.dist(X.row(0).transpose(), X.row(1).transpose())), T>::value);
  static_assert(std::is_same<decltype(M.dist(X, X)), VectorX<T>>::value);
  static_assert(std::is_same<decltype(M.expmap(X, U)), MatrixR<T>>::value);
  static_assert(std::is_same<decltype(M.expmap(VectorX<T>(X.row(0)), VectorX<T>(U.row(0)))), VectorX<T>>::value);
  static_assert(std::is_same<decltype(M.expmap(X.row(0), U.row(0))), MatrixR<T>>::value);
  const MatrixR<T> Y = M.expmap(X, U);
  const Eigen::MatrixXd Xc = X;  // column-major batches work too
  const MatrixR<T> Yc = M.expmap(Xc, Eigen::MatrixXd(U));
  CHECK(Yc == Y);
  const VectorX<T> dists = M.dist(X, Y);
  for (Index i = 0; i < 5; ++i) {
    CHECK(Y.row(i).transpose() == M.expmap(X.row(i).transpose(), U.row(i).transpose()));
    CHECK(dists(i) == M.dist(X.row(i).transpose(), Y.row(i).transpose()));
    CHECK(M.expmap(X.row(i), U.row(i)) == Y.row(i));  // a row is a batch of one
  }
  CHECK(M.transp(X, Y, U).rows() == 5);
  CHECK(M.check_point(X).ok);
  CHECK(M.check_vector(X, U).ok);
  // Shape errors name both shapes.
  try {
    (void)M.expmap(X, MatrixR<T>(4, kD + 1));
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("(5, 7)") != std::string::npos);
    CHECK(msg.find("(4, 7)") != std::string::npos);
  }
  CHECK_THROWS_AS(M.dist(VectorX<T>(3), VectorX<T>(4)), hyplora::shape_error);
  CHECK_THROWS_AS(M.projx(VectorX<T>(1)), hyplora::shape_error);
  CHECK_THROWS_AS(M.expmap0_spatial(VectorX<T>(0)), hyplora::shape_error);
}

TEST_CASE_TEMPLATE("Lorentz: check_point / check_vector", T, float, double) {
  const Lorentz<T> M{T(1)};
  const VectorX<T> o = M.origin(3);
  CHECK(M.check_point(o));
  VectorX<T> bad = o;
  bad(0) = T(1.1);
  auto c = M.check_point(bad);
  CHECK_FALSE(c.ok);
  CHECK(c.reason.find("K") != std::string::npos);
  bad = -o;
  CHECK_FALSE(M.check_point(bad).ok);
  bad = o;
  bad(1) = std::numeric_limits<T>::quiet_NaN();
  CHECK_FALSE(M.check_point(bad).ok);
  VectorX<T> u = VectorX<T>::Zero(4);
  u(1) = T(1);
  CHECK(M.check_vector(o, u).ok);
  u(0) = T(0.5);
  c = M.check_vector(o, u);
  CHECK_FALSE(c.ok);
  CHECK(c.reason.find("tangent") != std::string::npos);
  MatrixR<T> X(3, 4);
  X.row(0) = o.transpose();
  X.row(1) = o.transpose();
  X.row(2) = (T(2) * o).transpose();
  c = M.check_point(X);
  CHECK_FALSE(c.ok);
  CHECK(c.reason.find("row 2") != std::string::npos);
}

}  // namespace manifold_test_lorentz
