// Tests for include/hyplora/manifold/poincare_ball.hpp and detail/poincare_rows.hpp
// (docs/math.md §3), over float and double in four regimes: the origin, 1e-8 from it, random
// points, and points near the boundary / large tangent norms.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <hyplora/manifold/poincare_ball.hpp>

#include "support/dual.hpp"

namespace manifold_test_poincare_ball {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

using hyplora::Index;
using hyplora::MatrixR;
using hyplora::PoincareBall;
using hyplora::VectorX;
namespace pr = hyplora::poincare_rows;
using LD = long double;

constexpr int kDim = 5;

template <class T>
double eps_of() {
  return static_cast<double>(std::numeric_limits<T>::epsilon());
}
template <class T>
double ball_eps_of() {
  return static_cast<double>(hyplora::numerics<T>::ball_eps());
}

template <class T>
VectorX<T> random_dir(std::mt19937& rng, int d = kDim) {
  std::normal_distribution<double> n(0.0, 1.0);
  VectorX<double> v(d);
  for (int i = 0; i < d; ++i) v[i] = n(rng);
  v /= v.norm();
  return v.cast<T>();
}

enum class Regime { origin, near_origin, random, boundary };
const Regime kRegimes[] = {Regime::origin, Regime::near_origin, Regime::random, Regime::boundary};
std::string name(Regime r) {
  switch (r) {
    case Regime::origin: return "origin";
    case Regime::near_origin: return "1e-8";
    case Regime::random: return "random";
    default: return "boundary";
  }
}

/// Points of the ball in a regime: |y|/R = 0, 1e-8, U(0.05, 0.9), or 1 − 2ε (ε = ball_eps).
template <class T>
std::vector<VectorX<T>> points(Regime r, T K, std::mt19937& rng, int count = 8) {
  const double R = std::sqrt(static_cast<double>(K));
  std::uniform_real_distribution<double> u(0.05, 0.9);
  std::vector<VectorX<T>> out;
  for (int k = 0; k < count; ++k) {
    double t = 0.0;
    if (r == Regime::near_origin) t = 1e-8;
    if (r == Regime::random) t = u(rng);
    if (r == Regime::boundary) t = 1.0 - 2.0 * ball_eps_of<T>();
    out.push_back((random_dir<double>(rng) * (t * R)).cast<T>());
  }
  return out;
}

/// Tangent vectors: |v|/R = 0, 1e-8, U(0.05, 2), or U(0.5, 1)·1e4 (saturating).
template <class T>
std::vector<VectorX<T>> tangents(Regime r, T K, std::mt19937& rng, int count = 8) {
  const double R = std::sqrt(static_cast<double>(K));
  std::uniform_real_distribution<double> u(0.05, 2.0), big(0.5, 1.0);
  std::vector<VectorX<T>> out;
  for (int k = 0; k < count; ++k) {
    double t = 0.0;
    if (r == Regime::near_origin) t = 1e-8;
    if (r == Regime::random) t = u(rng);
    if (r == Regime::boundary) t = 1e4 * big(rng);
    out.push_back((random_dir<double>(rng) * (t * R)).cast<T>());
  }
  return out;
}

template <class A, class B>
double abs_err(const A& a, const B& b) {
  return static_cast<double>((a.template cast<LD>() - b.template cast<LD>()).norm());
}
template <class A, class B>
double rel_err(const A& a, const B& b) {
  const LD nb = b.template cast<LD>().norm();
  return static_cast<double>(static_cast<LD>(abs_err(a, b)) / std::max(nb, LD(1e-300)));
}

// ---- long-double references: the textbook c-form formulas (MATH_NOTES §2) -----------------
using VL = VectorX<LD>;
VL ref_add(const VL& x, const VL& y, LD K) {
  const LD c = 1 / K, xy = x.dot(y), xx = x.squaredNorm(), yy = y.squaredNorm();
  return ((1 + 2 * c * xy + c * yy) * x + (1 - c * xx) * y) / (1 + 2 * c * xy + c * c * xx * yy);
}
VL ref_exp0(const VL& v, LD K) {
  const LD R = std::sqrt(K), n = v.norm();
  return n == 0 ? v : VL(R * std::tanh(n / R) * v / n);
}
VL ref_log0(const VL& y, LD K) {
  const LD R = std::sqrt(K), n = y.norm();
  return n == 0 ? y : VL(R * std::atanh(n / R) * y / n);
}
LD ref_lambda(const VL& y, LD K) { return 2 * K / (K - y.squaredNorm()); }
LD ref_dist(const VL& x, const VL& y, LD K) {
  const LD R = std::sqrt(K);
  return 2 * R * std::atanh(ref_add(-x, y, K).norm() / R);
}
VL ref_expmap(const VL& x, const VL& v, LD K) {
  const LD R = std::sqrt(K), n = v.norm();
  if (n == 0) return x;
  return ref_add(x, R * std::tanh(ref_lambda(x, K) * n / (2 * R)) * v / n, K);
}
VL ref_logmap(const VL& x, const VL& y, LD K) {
  const LD R = std::sqrt(K);
  const VL w = ref_add(-x, y, K);
  const LD n = w.norm();
  if (n == 0) return w;
  return 2 * R / ref_lambda(x, K) * std::atanh(n / R) * w / n;
}
/// gyr[u,v]w by its definition ⊖(u⊕v) ⊕ (u ⊕ (v ⊕ w)); w is scaled into the ball first (the
/// gyration is linear).
VL ref_gyr(const VL& u, const VL& v, const VL& w, LD K) {
  const LD s = w.norm() == 0 ? LD(1) : LD(0.1) * std::sqrt(K) / w.norm();
  return ref_add(-ref_add(u, v, K), ref_add(u, ref_add(v, s * w, K), K), K) / s;
}
VL ref_transp(const VL& x, const VL& y, const VL& v, LD K) {
  return ref_lambda(x, K) / ref_lambda(y, K) * ref_gyr(y, -x, v, K);
}

const double kCurvatures[] = {0.25, 1.0, 4.0};

}  // namespace

TEST_CASE_TEMPLATE("PoincareBall: exp0/log0 round trips and dist(0, exp0 v) = λ_0|v|", T, float,
                   double) {
  std::mt19937 rng(11);
  const double e = eps_of<T>();
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const PoincareBall<T> M(K);
    const double R = std::sqrt(Kd);
    for (Regime rg : kRegimes) {
      CAPTURE(name(rg));
      CAPTURE(Kd);
      for (const auto& y : points<T>(rg, K, rng)) {
        // exp0 contracts, so exp0(log0(y)) comes back to a few ulps of R.
        CHECK(abs_err(M.expmap0(M.logmap0(y)), y) <= 8 * e * R);
      }
      for (const auto& v : tangents<T>(rg, K, rng)) {
        const VectorX<T> y = M.expmap0(v);
        CHECK(y.allFinite());
        CHECK(static_cast<double>(y.norm()) <= (1 - ball_eps_of<T>()) * R * (1 + 2 * e));
        if (rg == Regime::boundary) continue;  // saturated: exp0 is not invertible there
        // log0 near the boundary amplifies rounding in y by 1/(1 − t²), t = |y|/R (Eq. (70)).
        const double t = static_cast<double>(y.norm()) / R;
        const double tol = 8 * e / (1 - t * t);
        CHECK(rel_err(M.logmap0(y), v) <= tol);
        // d(0, exp0 v) is the Riemannian length λ_0|v| = 2|v| (Eq. (77)).
        const VectorX<T> zero = VectorX<T>::Zero(kDim);
        const double len = static_cast<double>(M.norm(zero, v));
        CHECK(std::abs(static_cast<double>(M.dist(zero, y)) - len) <= tol * std::max(len, 1e-300) + 1e-300);
        CHECK(std::abs(static_cast<double>(M.dist0(y)) - len) <= tol * std::max(len, 1e-300) + 1e-300);
      }
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: exp_x/log_x round trips and dist(x, exp_x v) = λ_x|v|", T, float,
                   double) {
  std::mt19937 rng(12);
  const double e = eps_of<T>();
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const PoincareBall<T> M(K);
    for (Regime rg : {Regime::origin, Regime::near_origin, Regime::random}) {
      CAPTURE(name(rg));
      CAPTURE(Kd);
      const auto xs = points<T>(Regime::random, K, rng);
      const auto ys = points<T>(rg, K, rng);
      const auto vs = tangents<T>(rg, K, rng);
      for (std::size_t k = 0; k < xs.size(); ++k) {
        const VectorX<T>& x = xs[k];
        const double lx = static_cast<double>(M.lambda(x));
        // log_x(exp_x v) = v for |v| small enough that exp_x(v) stays well inside.
        const VectorX<T> v = vs[k] / T(lx);
        const VectorX<T> y = M.expmap(x, v);
        const double ty = static_cast<double>(y.norm()) / std::sqrt(Kd);
        // y is stored to rounding (ε|y| ≤ εR), which log_x reads back amplified by
        // 1/(1 − |y|²/R²): an absolute bound, since v may be 1e-8 or 0.
        const double R = std::sqrt(Kd);
        const double cond = 1 / (1 - ty * ty);
        const double vn = static_cast<double>(v.norm());
        CHECK(abs_err(M.logmap(x, y), v) <= 16 * e * (vn + R) * cond);
        const double len = static_cast<double>(M.norm(x, v));
        CHECK(std::abs(static_cast<double>(M.dist(x, y)) - len) <= 16 * e * (len + lx * R) * cond);
        // exp_x(log_x y) = y.
        const double tyk = static_cast<double>(ys[k].norm()) / R;
        CHECK(abs_err(M.expmap(x, M.logmap(x, ys[k])), ys[k]) <= 16 * e * R / (1 - tyk * tyk));
      }
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: closed forms match long double", T, float, double) {
  // Moderate norms (|y| ≤ 0.7R, |v| ≤ 1.5R): fp64 ≤ 1e-12 and fp32 ≤ 1e-5 relative.
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  std::mt19937 rng(13);
  std::uniform_real_distribution<double> u(0.05, 0.7), uv(0.05, 1.5);
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const LD KL = static_cast<LD>(K);
    const PoincareBall<T> M(K);
    const double R = std::sqrt(Kd);
    CAPTURE(Kd);
    for (int k = 0; k < 20; ++k) {
      const VectorX<T> x = random_dir<T>(rng) * T(u(rng) * R);
      const VectorX<T> y = random_dir<T>(rng) * T(u(rng) * R);
      const VectorX<T> v = random_dir<T>(rng) * T(uv(rng) * R);
      const VL xl = x.template cast<LD>(), yl = y.template cast<LD>(), vl = v.template cast<LD>();
      CHECK(rel_err(M.mobius_add(x, y), ref_add(xl, yl, KL)) <= tol);
      CHECK(rel_err(M.expmap0(v), ref_exp0(vl, KL)) <= tol);
      CHECK(rel_err(M.logmap0(y), ref_log0(yl, KL)) <= tol);
      CHECK(rel_err(M.expmap(x, v / T(4)), ref_expmap(xl, vl / 4, KL)) <= tol);
      CHECK(rel_err(M.logmap(x, y), ref_logmap(xl, yl, KL)) <= tol);
      CHECK(rel_err(M.transp(x, y, v), ref_transp(xl, yl, vl, KL)) <= tol);
      CHECK(rel_err(M.gyration(x, y, v), ref_gyr(xl, yl, vl, KL)) <= tol);
      const LD dref = ref_dist(xl, yl, KL);
      CHECK(static_cast<double>(std::fabs(static_cast<LD>(M.dist(x, y)) - dref) / dref) <= tol);
      CHECK(std::abs(static_cast<double>(M.lambda(x)) - static_cast<double>(ref_lambda(xl, KL))) <=
            tol * static_cast<double>(ref_lambda(xl, KL)));
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: distance of close points keeps its digits", T, float, double) {
  // The chord form (Eq. (76)) needs no cancellation: d(x, x + δ) ≈ λ_x|δ| to O(δ²) relative.
  const T K = T(1);
  const PoincareBall<T> M(K);
  std::mt19937 rng(14);
  for (double sep : {1e-3, 1e-5}) {
    const VectorX<T> x = random_dir<T>(rng) * T(0.5);
    const VectorX<T> y = x + random_dir<T>(rng) * T(sep);
    const VL xl = x.template cast<LD>(), yl = y.template cast<LD>();
    const LD gx = 1 - xl.squaredNorm(), gy = 1 - yl.squaredNorm();
    const LD want = 2 * std::asinh((xl - yl).norm() / std::sqrt(gx * gy));
    CAPTURE(sep);
    // x − y carries one rounding of x relative to sep: error ≈ ε|x|/sep.
    CHECK(static_cast<double>(std::fabs(static_cast<LD>(M.dist(x, y)) - want) / want) <=
          4 * eps_of<T>() * (1 + 0.5 / sep));
    CHECK(M.dist(x, x) == T(0));
  }
}

TEST_CASE_TEMPLATE("PoincareBall: parallel transport preserves λ|v|", T, float, double) {
  std::mt19937 rng(15);
  const double e = eps_of<T>();
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const PoincareBall<T> M(K);
    const VectorX<T> zero = VectorX<T>::Zero(kDim);
    for (Regime rg : kRegimes) {
      CAPTURE(name(rg));
      CAPTURE(Kd);
      const auto xs = points<T>(Regime::random, K, rng);
      const auto ys = points<T>(rg, K, rng);
      const auto vs = tangents<T>(Regime::random, K, rng);
      for (std::size_t k = 0; k < xs.size(); ++k) {
        const double want = static_cast<double>(M.norm(xs[k], vs[k]));
        const VectorX<T> w = M.transp(xs[k], ys[k], vs[k]);
        CHECK(w.allFinite());
        CHECK(std::abs(static_cast<double>(M.norm(ys[k], w)) - want) <= 32 * e * want);
        // Back again gives v.
        CHECK(rel_err(M.transp(ys[k], xs[k], w), vs[k]) <= 64 * e);
        // The special cases agree with the general formula (Eq. (79)).
        CHECK(rel_err(M.transp0(ys[k], vs[k]), M.transp(zero, ys[k], vs[k])) <= 16 * e);
        CHECK(rel_err(M.transp0back(ys[k], vs[k]), M.transp(ys[k], zero, vs[k])) <= 16 * e);
      }
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: gyrogroup identities", T, float, double) {
  std::mt19937 rng(16);
  const double e = eps_of<T>();
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const PoincareBall<T> M(K);
    const double R = std::sqrt(Kd);
    for (Regime rg : kRegimes) {
      CAPTURE(name(rg));
      CAPTURE(Kd);
      const auto as = points<T>(rg, K, rng);
      const auto bs = points<T>(Regime::random, K, rng);
      const auto ws = tangents<T>(Regime::random, K, rng);
      for (std::size_t k = 0; k < as.size(); ++k) {
        const VectorX<T>& a = as[k];
        const VectorX<T>& b = bs[k];
        // Left cancellation (−a) ⊕ (a ⊕ b) = b. The inner sum sits up to |a ⊕ b| → R, where
        // rounding is amplified by λ_{a⊕b}/λ_b; bound it by that ratio.
        const VectorX<T> ab = M.mobius_add(a, b);
        const double amp = static_cast<double>(M.lambda(ab) / M.lambda(b)) + 1;
        CHECK(abs_err(M.mobius_add(VectorX<T>(-a), ab), b) <= 32 * e * R * amp);
        // a ⊕ 0 = 0 ⊕ a = a exactly up to rounding.
        const VectorX<T> zero = VectorX<T>::Zero(kDim);
        CHECK(abs_err(M.mobius_add(a, zero), a) <= 4 * e * R);
        CHECK(abs_err(M.mobius_add(zero, a), a) <= 4 * e * R);
        // gyr[a, b] is an isometry of R^d: it preserves norms (of any w, tangent or point).
        const VectorX<T> g = M.gyration(a, b, ws[k]);
        CHECK(std::abs(static_cast<double>(g.norm() - ws[k].norm())) <=
              16 * e * static_cast<double>(ws[k].norm()));
        // And it is its definition ⊖(a⊕b) ⊕ (a ⊕ (b ⊕ w)) for w in the ball.
        const VectorX<T> w = ws[k] * T(0.3 * R / static_cast<double>(ws[k].norm()));
        const VectorX<T> def =
            M.mobius_add(VectorX<T>(-ab), M.mobius_add(a, M.mobius_add(b, w)));
        CHECK(abs_err(M.gyration(a, b, w), def) <= 64 * e * R * amp);
      }
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: Möbius scalar and matrix multiplication", T, float, double) {
  std::mt19937 rng(17);
  const double e = eps_of<T>();
  const double tol = 64 * e;
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const PoincareBall<T> M(K);
    const double R = std::sqrt(Kd);
    for (Regime rg : {Regime::origin, Regime::near_origin, Regime::random}) {
      CAPTURE(name(rg));
      CAPTURE(Kd);
      for (const auto& x : points<T>(rg, K, rng)) {
        const VectorX<T> zero = VectorX<T>::Zero(kDim);
        CHECK(abs_err(M.mobius_scalar_mul(T(1), x), x) <= tol * R);
        CHECK(abs_err(M.mobius_scalar_mul(T(0), x), zero) == 0.0);
        // (−1) ⊗ x = −x; r ⊗ (s ⊗ x) = (rs) ⊗ x; (r + s) ⊗ x = (r ⊗ x) ⊕ (s ⊗ x).
        CHECK(abs_err(M.mobius_scalar_mul(T(-1), x), VectorX<T>(-x)) <= tol * R);
        const T r = T(0.7), s = T(1.3);
        CHECK(abs_err(M.mobius_scalar_mul(r, M.mobius_scalar_mul(s, x)),
                      M.mobius_scalar_mul(r * s, x)) <= tol * R);
        CHECK(abs_err(M.mobius_scalar_mul(r + s, x),
                      M.mobius_add(M.mobius_scalar_mul(r, x), M.mobius_scalar_mul(s, x))) <=
              tol * R);
        // d(0, r ⊗ x) = |r| d(0, x) (scaling the geodesic from 0).
        const double d0 = static_cast<double>(M.dist0(x));
        CHECK(std::abs(static_cast<double>(M.dist0(M.mobius_scalar_mul(r, x))) - 0.7 * d0) <=
              tol * d0 + 1e-300);
        // M = rI gives r ⊗ x; an orthogonal Q gives Qx; Mx = 0 gives 0.
        const MatrixR<T> rI = MatrixR<T>::Identity(kDim, kDim) * r;
        CHECK(abs_err(M.mobius_matvec(rI, x), M.mobius_scalar_mul(r, x)) <= tol * R);
        MatrixR<T> Q = MatrixR<T>::Identity(kDim, kDim);
        Q.row(0).swap(Q.row(3));
        Q.row(1) *= T(-1);
        CHECK(abs_err(M.mobius_matvec(Q, x), VectorX<T>(Q * x)) <= tol * R);
        const MatrixR<T> Z = MatrixR<T>::Zero(3, kDim);
        CHECK(M.mobius_matvec(Z, x).norm() == T(0));
        // A rectangular M: (3, D) ⊗ x lies in the 3-ball, along Mx.
        MatrixR<T> A(3, kDim);
        for (int i = 0; i < 3; ++i) A.row(i) = random_dir<T>(rng).transpose();
        const VectorX<T> Ax = M.mobius_matvec(A, x);
        CHECK(Ax.rows() == 3);
        if (x.norm() > T(0)) {
          const VectorX<T> Mx = A * x;
          CHECK(rel_err(Ax.normalized(), Mx.normalized()) <= tol);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: projx, boundary and large norms stay finite", T, float, double) {
  std::mt19937 rng(18);
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const PoincareBall<T> M(K);
    const T r_max = (T(1) - hyplora::numerics<T>::ball_eps()) * M.R();
    CAPTURE(Kd);
    for (double scale : {0.5, 0.999, 1.0, 1.5, 1e3, 1e8}) {
      const VectorX<T> y = random_dir<T>(rng) * T(scale * std::sqrt(Kd));
      const VectorX<T> p = M.projx(y);
      CHECK(p.norm() <= r_max * (T(1) + 6 * std::numeric_limits<T>::epsilon()));
      CHECK(M.projx(p) == p);                   // idempotent
      if (y.norm() <= r_max) CHECK(p == y);     // interior points untouched
      if (scale >= 1.0) CHECK(static_cast<double>(p.norm()) >= static_cast<double>(r_max) * (1 - 4 * eps_of<T>()));
      CHECK(M.check_point(p).ok);
      // Every op on projected boundary points and huge tangents is finite.
      const VectorX<T> v = random_dir<T>(rng) * T(1e4 * std::sqrt(Kd));
      const VectorX<T> q = M.projx(VectorX<T>(-p + random_dir<T>(rng) * T(0.01)));
      CHECK(std::isfinite(static_cast<double>(M.lambda(p))));
      CHECK(M.expmap0(v).allFinite());
      CHECK(M.logmap0(p).allFinite());
      CHECK(M.expmap(p, v).allFinite());
      CHECK(M.check_point(M.expmap(p, v)).ok);
      CHECK(M.logmap(p, q).allFinite());
      CHECK(M.logmap(q, p).allFinite());
      CHECK(std::isfinite(static_cast<double>(M.dist(p, q))));
      CHECK(M.transp(p, q, v).allFinite());
      CHECK(M.mobius_add(p, q).allFinite());
      CHECK(M.mobius_add(p, p).allFinite());
      CHECK(M.mobius_scalar_mul(T(1e3), p).allFinite());
      CHECK(M.check_point(M.mobius_scalar_mul(T(1e3), p)).ok);
      CHECK(M.gyration(p, q, v).allFinite());
      CHECK(M.egrad2rgrad(p, v).allFinite());
      CHECK(M.expmap0_backward(v, v).allFinite());
      CHECK(M.logmap0_backward(p, v).allFinite());
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: egrad2rgrad is ∇f/λ² and leaves its inputs alone", T, float,
                   double) {
  std::mt19937 rng(19);
  const PoincareBall<T> M(T(2));
  for (Regime rg : kRegimes) {
    for (const auto& y : points<T>(rg, M.K(), rng, 3)) {
      const VectorX<T> g = random_dir<T>(rng) * T(3);
      const VectorX<T> g_copy = g;
      const VectorX<T> r = M.egrad2rgrad(y, g);
      CHECK(g == g_copy);
      const T l = M.lambda(y);
      CHECK(rel_err(r, VectorX<T>(g / (l * l))) <= 8 * eps_of<T>());
      // ⟨rgrad, u⟩_y = ∇f·u for every u: the defining property.
      const VectorX<T> u = random_dir<T>(rng);
      CHECK(std::abs(static_cast<double>(M.inner(y, r, u) - g.dot(u))) <=
            16 * eps_of<T>() * 3);
    }
  }
}

namespace {

/// Jacobian of a row map by Dual<T> (exact forward mode): column j is d out / d in_j.
template <class T, class F>
MatrixR<T> jacobian_dual(F f, const VectorX<T>& x) {
  using D = hyplora::testing::Dual<T>;
  const Index d = x.rows();
  MatrixR<T> J(d, d);
  std::vector<D> in(d), out(d);
  for (Index j = 0; j < d; ++j) {
    for (Index i = 0; i < d; ++i) in[i] = D(x[i], i == j ? T(1) : T(0));
    f(in.data(), out.data(), d);
    for (Index i = 0; i < d; ++i) J(i, j) = out[i].der;
  }
  return J;
}

/// Jacobian by central differences in double with step h.
template <class F>
MatrixR<double> jacobian_fd(F f, const VectorX<double>& x, double h) {
  const Index d = x.rows();
  MatrixR<double> J(d, d);
  VectorX<double> xp = x, xm = x, op(d), om(d);
  for (Index j = 0; j < d; ++j) {
    xp = x;
    xm = x;
    xp[j] += h;
    xm[j] -= h;
    f(xp.data(), op.data(), d);
    f(xm.data(), om.data(), d);
    J.col(j) = (op - om) / (2 * h);
  }
  return J;
}

}  // namespace

TEST_CASE_TEMPLATE("PoincareBall: expmap0/logmap0 Jacobians and their backward", T, float,
                   double) {
  using D = hyplora::testing::Dual<T>;
  std::mt19937 rng(20);
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-13;
  for (double Kd : kCurvatures) {
    const T K = static_cast<T>(Kd);
    const D KD = D(K);
    const PoincareBall<T> M(K);
    for (Regime rg : kRegimes) {
      CAPTURE(name(rg));
      CAPTURE(Kd);
      // Tangents for exp0 (the boundary regime saturates: the Jacobian of (1−ε)R v̂); points for
      // log0 (the boundary regime is 2ε inside the clamp). The origin itself is skipped by the
      // Dual check: |v| has no derivative at 0.
      for (int which = 0; which < 2; ++which) {
        const bool exp0 = which == 0;
        const auto xs = exp0 ? tangents<T>(rg, K, rng, 4) : points<T>(rg, K, rng, 4);
        for (const auto& x : xs) {
          const int d = kDim;
          const VectorX<T> g = random_dir<T>(rng);
          const VectorX<T> bw = exp0 ? M.expmap0_backward(x, g) : M.logmap0_backward(x, g);
          CHECK(bw.allFinite());
          if (rg == Regime::origin) {
            // At 0 both maps have Jacobian I: the backward is the identity.
            CHECK(rel_err(bw, g) == 0.0);
            continue;
          }
          const MatrixR<T> J = jacobian_dual<T>(
              [&](const D* in, D* out, Index n) {
                if (exp0) pr::expmap0(in, out, n, KD); else pr::logmap0(in, out, n, KD);
              },
              x);
          const VectorX<T> vjp = J.transpose() * g;
          const double scale = static_cast<double>(J.norm());
          CHECK(abs_err(bw, vjp) <= tol * scale);
          if (std::is_same<T, double>::value && rg == Regime::random) {
            // Central differences (double, h = 1e-6·R) agree with the Dual Jacobian to O(h²).
            const VectorX<double> xd = x.template cast<double>();
            const MatrixR<double> Jfd = jacobian_fd(
                [&](const double* in, double* out, Index n) {
                  if (exp0) pr::expmap0(in, out, n, Kd); else pr::logmap0(in, out, n, Kd);
                },
                xd, 1e-6 * std::sqrt(Kd));
            CHECK((Jfd - J.template cast<double>()).norm() <= 1e-7 * scale);
          }
          (void)d;
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("PoincareBall: batched rows equal single points", T, float, double) {
  std::mt19937 rng(21);
  const PoincareBall<T> M(T(0.25));
  const int N = 6;
  MatrixR<T> X(N, kDim), Y(N, kDim), V(N, kDim);
  const auto xs = points<T>(Regime::random, M.K(), rng, N);
  const auto ys = points<T>(Regime::boundary, M.K(), rng, N);
  const auto vs = tangents<T>(Regime::random, M.K(), rng, N);
  for (int i = 0; i < N; ++i) {
    X.row(i) = xs[i].transpose();
    Y.row(i) = ys[i].transpose();
    V.row(i) = vs[i].transpose();
  }
  const MatrixR<T> A = MatrixR<T>::Random(3, kDim);
  const auto EX = M.expmap(X, V), LX = M.logmap(X, Y), AD = M.mobius_add(X, Y),
             E0 = M.expmap0(V), L0 = M.logmap0(Y), TP = M.transp(X, Y, V), P = M.projx(V),
             T0 = M.transp0(Y, V), TB = M.transp0back(Y, V), RG = M.egrad2rgrad(Y, V),
             SM = M.mobius_scalar_mul(T(0.5), X), MV = M.mobius_matvec(A, X),
             EB = M.expmap0_backward(V, X), LB = M.logmap0_backward(Y, X);
  const VectorX<T> DI = M.dist(X, Y);
  CHECK(MV.rows() == N);
  CHECK(MV.cols() == 3);
  for (int i = 0; i < N; ++i) {
    const VectorX<T> x = xs[i], y = ys[i], v = vs[i];
    CHECK(VectorX<T>(EX.row(i).transpose()) == M.expmap(x, v));
    CHECK(VectorX<T>(LX.row(i).transpose()) == M.logmap(x, y));
    CHECK(VectorX<T>(AD.row(i).transpose()) == M.mobius_add(x, y));
    CHECK(VectorX<T>(E0.row(i).transpose()) == M.expmap0(v));
    CHECK(VectorX<T>(L0.row(i).transpose()) == M.logmap0(y));
    CHECK(VectorX<T>(TP.row(i).transpose()) == M.transp(x, y, v));
    CHECK(VectorX<T>(P.row(i).transpose()) == M.projx(v));
    CHECK(VectorX<T>(T0.row(i).transpose()) == M.transp0(y, v));
    CHECK(VectorX<T>(TB.row(i).transpose()) == M.transp0back(y, v));
    CHECK(VectorX<T>(RG.row(i).transpose()) == M.egrad2rgrad(y, v));
    CHECK(VectorX<T>(SM.row(i).transpose()) == M.mobius_scalar_mul(T(0.5), x));
    CHECK(VectorX<T>(MV.row(i).transpose()) == M.mobius_matvec(A, x));
    CHECK(VectorX<T>(EB.row(i).transpose()) == M.expmap0_backward(v, x));
    CHECK(VectorX<T>(LB.row(i).transpose()) == M.logmap0_backward(y, x));
    CHECK(DI[i] == M.dist(x, y));
  }
  CHECK(M.check_point(X).ok);
  CHECK(M.check_vector(X, V).ok);
}

TEST_CASE("PoincareBall: invalid curvature, shapes and points are reported") {
  using T = double;
  for (double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    CHECK_THROWS_AS(PoincareBall<T>{bad}, hyplora::value_error);
  }
  const PoincareBall<T> M(4.0);
  CHECK(M.R() == 2.0);
  CHECK(M.c() == 0.25);
  const VectorX<T> x3 = VectorX<T>::Constant(3, 0.1), x4 = VectorX<T>::Constant(4, 0.1);
  try {
    (void)M.mobius_add(x3, x4);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string m = e.what();
    CHECK(m.find("(3, 1)") != std::string::npos);
    CHECK(m.find("(4, 1)") != std::string::npos);
  }
  CHECK_THROWS_AS(M.dist(x3, x4), hyplora::shape_error);
  CHECK_THROWS_AS(M.transp(x3, x3, x4), hyplora::shape_error);
  CHECK_THROWS_AS(M.expmap0(MatrixR<T>::Zero(2, 2).row(0)), hyplora::shape_error);  // not a column
  const MatrixR<T> A = MatrixR<T>::Zero(2, 3), B = MatrixR<T>::Zero(2, 4);
  try {
    (void)M.expmap(A, B);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string m = e.what();
    CHECK(m.find("(2, 3)") != std::string::npos);
    CHECK(m.find("(2, 4)") != std::string::npos);
  }
  CHECK_THROWS_AS(M.mobius_matvec(MatrixR<T>::Zero(2, 4), x3), hyplora::shape_error);
  CHECK_THROWS_AS(M.mobius_matvec(MatrixR<T>::Zero(2, 4), A), hyplora::shape_error);

  CHECK(M.check_point(x3).ok);
  const VectorX<T> outside = VectorX<T>::Constant(3, 2.0);
  const auto r = M.check_point(outside);
  CHECK_FALSE(r.ok);
  CHECK(r.reason.find("radius") != std::string::npos);
  VectorX<T> nan_pt = x3;
  nan_pt[1] = std::nan("");
  CHECK_FALSE(M.check_point(nan_pt).ok);
  CHECK_FALSE(M.check_vector(x3, x4).ok);
  CHECK_FALSE(M.check_vector(x3, nan_pt).ok);
  CHECK(M.check_vector(x3, x3).ok);
  MatrixR<T> Bt = MatrixR<T>::Zero(3, 3);
  Bt(2, 0) = 5.0;
  const auto rb = M.check_point(Bt);
  CHECK_FALSE(rb.ok);
  CHECK(rb.reason.find("row 2") != std::string::npos);
}

}  // namespace manifold_test_poincare_ball
