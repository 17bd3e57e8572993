// Tests for include/hyplora/manifold/conversions.hpp (docs/math.md §4): the stereographic maps
// between H^{d,K} and P^{d,K} are mutually inverse isometries for every K, and the tangent
// spaces at the origins are identified with a factor ½.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <hyplora/manifold/conversions.hpp>
#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>

namespace manifold_test_conversions {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

using hyplora::Index;
using hyplora::Lorentz;
using hyplora::MatrixR;
using hyplora::PoincareBall;
using hyplora::VectorX;

constexpr Index kDim = 4;
const double kCurvatures[] = {0.25, 1.0, 4.0};

template <class T>
double eps_of() {
  return static_cast<double>(std::numeric_limits<T>::epsilon());
}

template <class T>
VectorX<T> random_dir(std::mt19937& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  VectorX<double> v(kDim);
  for (Index i = 0; i < kDim; ++i) v[i] = n(rng);
  return (v / v.norm()).cast<T>();
}

/// Spatial tangent vectors at the origin, |v|/R in the four regimes: 0, 1e-8, U(0.05, 2), and
/// far out (5 in float: p(x) at 0.987R; 9 in double: 0.9998R — both inside the ε-ball).
template <class T>
std::vector<VectorX<T>> tangents(int regime, double R, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.05, 2.0);
  const double far = std::is_same<T, float>::value ? 5.0 : 9.0;
  std::vector<VectorX<T>> out;
  for (int k = 0; k < 6; ++k) {
    const double t = regime == 0 ? 0.0 : regime == 1 ? 1e-8 : regime == 2 ? u(rng) : far;
    out.push_back(random_dir<T>(rng) * T(t * R));
  }
  return out;
}

template <class T>
VectorX<T> at_origin(const VectorX<T>& v) {  // (0, v) ∈ T_oH
  VectorX<T> u(v.rows() + 1);
  u[0] = T(0);
  u.tail(v.rows()) = v;
  return u;
}

template <class A, class B>
double err(const A& a, const B& b) {
  return static_cast<double>((a.template cast<double>() - b.template cast<double>()).norm());
}

}  // namespace

TEST_CASE_TEMPLATE("conversions: p and p⁻¹ are inverse isometries for every K", T, float,
                   double) {
  std::mt19937 rng(31);
  const double e = eps_of<T>();
  for (double Kd : kCurvatures) {
    const T K = T(Kd);
    const double R = std::sqrt(Kd);
    const Lorentz<T> L(K);
    const PoincareBall<T> P(K);
    for (int regime = 0; regime < 4; ++regime) {
      CAPTURE(Kd);
      CAPTURE(regime);
      const auto vs = tangents<T>(regime, R, rng);
      const auto ws = tangents<T>(2, R, rng);
      for (std::size_t k = 0; k < vs.size(); ++k) {
        const VectorX<T> x = L.expmap0(at_origin(vs[k]));
        const VectorX<T> x2 = L.expmap0(at_origin(ws[k]));
        const VectorX<T> y = hyplora::to_poincare(x, K);
        const VectorX<T> y2 = hyplora::to_poincare(x2, K);
        CHECK(y.rows() == kDim);
        CHECK(P.check_point(y).ok);
        // Round trips. x has entries up to R·cosh(9); its rounding is relative to |x|.
        const VectorX<T> xb = hyplora::to_lorentz(y, K);
        CHECK(xb.rows() == kDim + 1);
        CHECK(L.check_point(xb).ok);
        const double ty = static_cast<double>(y.norm()) / R;
        const double cond = 1 / (1 - ty * ty);  // p⁻¹ amplifies by λ_y/2 near the boundary
        CHECK(err(xb, x) <= 16 * e * static_cast<double>(x.norm()) * (1 + cond));
        CHECK(err(hyplora::to_poincare(hyplora::to_lorentz(y2, K), K), y2) <= 16 * e * R);
        // Isometry: d_H(x, x2) = d_P(p(x), p(x2)).
        const double dL = static_cast<double>(L.dist(x, x2));
        const double dP = static_cast<double>(P.dist(y, y2));
        CHECK(std::abs(dL - dP) <= 64 * e * (dL + R) * cond);
        // And from the origin: d_H(o, x) = |v| = d_P(0, p(x)).
        const double vn = static_cast<double>(vs[k].norm());
        CHECK(std::abs(static_cast<double>(P.dist0(y)) - vn) <= 16 * e * (vn + R) * cond);
      }
    }
  }
}

TEST_CASE_TEMPLATE("conversions: the origin tangent spaces differ by a factor ½", T, float,
                   double) {
  std::mt19937 rng(32);
  const double e = eps_of<T>();
  for (double Kd : kCurvatures) {
    const T K = T(Kd);
    const double R = std::sqrt(Kd);
    const Lorentz<T> L(K);
    const PoincareBall<T> P(K);
    CHECK(hyplora::to_poincare(L.origin(kDim), K).norm() == T(0));
    CHECK(err(hyplora::to_lorentz(VectorX<T>(VectorX<T>::Zero(kDim)), K), L.origin(kDim)) == 0.0);
    for (int regime = 0; regime < 3; ++regime) {
      CAPTURE(Kd);
      CAPTURE(regime);
      for (const auto& v : tangents<T>(regime, R, rng)) {
        const VectorX<T> x = L.expmap0(at_origin(v));
        const VectorX<T> y = hyplora::to_poincare(x, K);
        // p(exp_o^L(v)) = exp_0^P(v/2)  (Eq. (104)).
        const VectorX<T> half = hyplora::tangent0_to_poincare(v);
        CHECK(err(half, VectorX<T>(v / T(2))) == 0.0);
        CHECK(err(y, P.expmap0(half)) <= 16 * e * R);
        // log_0^P(p(x)) = ½ log_o^L(x)_s, and tangent0_to_lorentz undoes the factor.
        const VectorX<T> lp = P.logmap0(y);
        const VectorX<T> ll = L.logmap0(x);
        const double ty = static_cast<double>(y.norm()) / R;
        CHECK(err(lp, VectorX<T>(ll.tail(kDim) / T(2))) <=
              16 * e * (static_cast<double>(v.norm()) + R) / (1 - ty * ty));
        CHECK(err(hyplora::tangent0_to_lorentz(lp), ll) <=
              32 * e * (static_cast<double>(v.norm()) + R) / (1 - ty * ty));
        // The trap: exp_0^P(v) is not p(exp_o^L(v)) — an O(1) gap, not rounding.
        if (regime == 2) CHECK(err(P.expmap0(v), y) >= 0.01 * static_cast<double>(y.norm()));
      }
    }
  }
}

TEST_CASE_TEMPLATE("conversions: the curvature matters (not only K = 1)", T, float, double) {
  // Mapping with the wrong K breaks the isometry: p is specific to the radius R = √K.
  std::mt19937 rng(33);
  const T K = T(4);
  const Lorentz<T> L(K);
  const PoincareBall<T> P(K), P1(T(1));
  const VectorX<T> x = L.expmap0(at_origin(VectorX<T>(random_dir<T>(rng) * T(1.5))));
  const VectorX<T> x2 = L.expmap0(at_origin(VectorX<T>(random_dir<T>(rng) * T(3.0))));
  const double dL = static_cast<double>(L.dist(x, x2));
  const double good = static_cast<double>(P.dist(hyplora::to_poincare(x, K), hyplora::to_poincare(x2, K)));
  CHECK(std::abs(good - dL) <= 1e-4 * dL);
  // geoopt's lorentz_to_poincare is x_s/(x0 + R): the unit-ball image, off by R from ours.
  const VectorX<T> geo = x.tail(kDim) / (x[0] + L.R());
  CHECK(err(hyplora::to_poincare(x, K), VectorX<T>(geo * L.R())) <= 16 * eps_of<T>());
  const double bad = static_cast<double>(P1.dist(P1.projx(geo), P1.projx(VectorX<T>(x2.tail(kDim) / (x2[0] + L.R())))));
  CHECK(std::abs(bad - dL) > 0.1 * dL);
}

TEST_CASE("conversions: batches, shapes and invalid K") {
  using T = double;
  std::mt19937 rng(34);
  const T K = 0.25;
  const Lorentz<T> L(K);
  const Index N = 5;
  MatrixR<T> X(N, kDim + 1), Y(N, kDim);
  for (Index i = 0; i < N; ++i) {
    X.row(i) = L.expmap0(at_origin(VectorX<T>(random_dir<T>(rng) * T(0.3 * (double(i) + 1)))))
                   .transpose();
    Y.row(i) = (random_dir<T>(rng) * T(0.1 * (double(i) + 1) * std::sqrt(K) / 5.0)).transpose();
  }
  const MatrixR<T> PX = hyplora::to_poincare(X, K);
  const MatrixR<T> LY = hyplora::to_lorentz(Y, K);
  CHECK(PX.cols() == kDim);
  CHECK(LY.cols() == kDim + 1);
  for (Index i = 0; i < N; ++i) {
    CHECK(VectorX<T>(PX.row(i).transpose()) ==
          hyplora::to_poincare(VectorX<T>(X.row(i).transpose()), K));
    CHECK(VectorX<T>(LY.row(i).transpose()) ==
          hyplora::to_lorentz(VectorX<T>(Y.row(i).transpose()), K));
  }
  for (double bad : {0.0, -2.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    CHECK_THROWS_AS(hyplora::to_poincare(X, bad), hyplora::value_error);
    CHECK_THROWS_AS(hyplora::to_lorentz(Y, bad), hyplora::value_error);
    CHECK_THROWS_AS(hyplora::to_poincare(VectorX<T>(X.row(0).transpose()), bad),
                    hyplora::value_error);
    CHECK_THROWS_AS(hyplora::to_lorentz(VectorX<T>(Y.row(0).transpose()), bad),
                    hyplora::value_error);
  }
  try {
    (void)hyplora::to_poincare(VectorX<T>(VectorX<T>::Zero(1)), K);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    CHECK(std::string(e.what()).find("(1, 1)") != std::string::npos);
  }
  CHECK_THROWS_AS(hyplora::to_poincare(MatrixR<T>(MatrixR<T>::Zero(3, 1)), K), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::to_lorentz(MatrixR<T>(MatrixR<T>::Zero(3, 2)).row(0), K),
                  hyplora::shape_error);
  // Ball points outside the ε-ball are read as their projection: finite, on the hyperboloid.
  const PoincareBall<T> P(K);
  const VectorX<T> far = random_dir<T>(rng) * T(10);
  const VectorX<T> xf = hyplora::to_lorentz(far, K);
  CHECK(xf.allFinite());
  CHECK(err(xf, hyplora::to_lorentz(P.projx(far), K)) <= 1e-12 * static_cast<double>(xf.norm()));
}

}  // namespace manifold_test_conversions
