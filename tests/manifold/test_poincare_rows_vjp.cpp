// Tests for poincare_rows::dist_backward (docs/embeddings.md Eq. (E1)) against central
// differences, in float64, at the origin, random points and near the boundary.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "hyplora/manifold/detail/poincare_rows.hpp"

namespace manifold_test_poincare_rows_vjp {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace pr = hyplora::poincare_rows;

namespace {

// Max |analytic − central difference| / (1 + |fd|) over both arguments' coordinates.
double vjp_error(std::vector<double> x, std::vector<double> y, double K, double g) {
  const auto d = static_cast<pr::index_t>(x.size());
  std::vector<double> gx(x.size()), gy(y.size());
  pr::dist_backward(x.data(), y.data(), d, K, g, gx.data(), gy.data());
  double worst = 0.0;
  for (int which = 0; which < 2; ++which) {
    std::vector<double>& p = which == 0 ? x : y;
    const std::vector<double>& an = which == 0 ? gx : gy;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double h = 1e-6 * std::sqrt(K);
      const double keep = p[i];
      p[i] = keep + h;
      const double fp = pr::dist(x.data(), y.data(), d, K);
      p[i] = keep - h;
      const double fm = pr::dist(x.data(), y.data(), d, K);
      p[i] = keep;
      const double fd = g * (fp - fm) / (2 * h);
      worst = std::max(worst, std::abs(an[i] - fd) / (1.0 + std::abs(fd)));
    }
  }
  return worst;
}

std::vector<double> random_point(std::mt19937_64& rng, int d, double radius) {
  std::normal_distribution<double> N;
  std::vector<double> v(static_cast<std::size_t>(d));
  double n2 = 0;
  for (double& c : v) { c = N(rng); n2 += c * c; }
  for (double& c : v) c *= radius / std::sqrt(n2);
  return v;
}

}  // namespace

TEST_CASE("poincare dist_backward matches central differences") {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> U(0.05, 0.9);
  for (double K : {1.0, 0.3, 4.0}) {
    const double R = std::sqrt(K);
    for (int trial = 0; trial < 20; ++trial) {
      const auto x = random_point(rng, 5, U(rng) * R);
      const auto y = random_point(rng, 5, U(rng) * R);
      CHECK(vjp_error(x, y, K, 1.3) < 1e-6);
    }
    // origin as one argument
    CHECK(vjp_error(std::vector<double>(4, 0.0), random_point(rng, 4, 0.5 * R), K, -0.7) < 1e-6);
    // near the boundary (|x| = 0.99 R): gradients are large but still match (relative)
    CHECK(vjp_error(random_point(rng, 3, 0.99 * R), random_point(rng, 3, 0.95 * R), K, 1.0) < 1e-5);
  }
}

TEST_CASE("poincare dist_backward: coincident points give 0, g scales, null outputs") {
  const std::vector<double> x{0.1, -0.2, 0.3};
  std::vector<double> gx(3, 9.0), gy(3, 9.0);
  pr::dist_backward(x.data(), x.data(), 3, 1.0, 1.0, gx.data(), gy.data());
  for (int i = 0; i < 3; ++i) {
    CHECK(gx[i] == 0.0);
    CHECK(gy[i] == 0.0);
  }
  const std::vector<double> y{-0.3, 0.1, 0.2};
  std::vector<double> a(3), b(3);
  pr::dist_backward(x.data(), y.data(), 3, 1.0, 1.0, a.data(), static_cast<double*>(nullptr));
  pr::dist_backward(x.data(), y.data(), 3, 1.0, 2.5, b.data(), static_cast<double*>(nullptr));
  for (int i = 0; i < 3; ++i) CHECK(b[i] == doctest::Approx(2.5 * a[i]));
  // The Riemannian gradient of d(·, y) at x has unit norm (|grad d| = 1 off the cut point).
  std::vector<double> rg(3);
  pr::egrad2rgrad(x.data(), a.data(), rg.data(), 3, 1.0);
  CHECK(pr::tangent_norm(x.data(), rg.data(), 3, 1.0) == doctest::Approx(1.0).epsilon(1e-10));
}

TEST_CASE("poincare radial_backward_K and dist_backward_K match central differences in K") {
  std::mt19937_64 rng(29);
  for (double K : {0.3, 1.0, 4.0}) {
    const double R = std::sqrt(K);
    // |v|/R from the series side of T1/A1 to the saturated / clamped branches.
    for (double t : {1e-3, 0.05, 0.5, 0.9, 1.5, 20.0}) {
      const int d = 3;
      const auto v = random_point(rng, d, t * R);
      const auto g = random_point(rng, d, 1.0);
      for (int which = 0; which < 2; ++which) {  // 0: exp_0, 1: log_0
        if (which == 1 && t > 2.0) continue;
        std::vector<double> out(3), outp(3), outm(3);
        const pr::Radial<double> s = which == 0 ? pr::expmap0(v.data(), out.data(), d, K) : pr::logmap0(v.data(), out.data(), d, K);
        const double an = pr::radial_backward_K(v.data(), g.data(), d, K, s);
        const double h = 1e-6 * K;
        if (which == 0) {
          pr::expmap0(v.data(), outp.data(), d, K + h);
          pr::expmap0(v.data(), outm.data(), d, K - h);
        } else {
          pr::logmap0(v.data(), outp.data(), d, K + h);
          pr::logmap0(v.data(), outm.data(), d, K - h);
        }
        double fd = 0.0;
        for (int i = 0; i < d; ++i) fd += g[static_cast<std::size_t>(i)] * (outp[static_cast<std::size_t>(i)] - outm[static_cast<std::size_t>(i)]) / (2 * h);
        CAPTURE(K); CAPTURE(t); CAPTURE(which);
        CHECK(std::abs(an - fd) <= 1e-7 * (1.0 + std::abs(fd)));
      }
    }
    for (double rx : {0.0, 0.3, 0.9}) {
      for (double ry : {0.1, 0.6, 0.97}) {
        const auto x = random_point(rng, 4, rx * R);
        const auto y = random_point(rng, 4, ry * R);
        const double an = pr::dist_backward_K(x.data(), y.data(), 4, K, 0.8);
        const double h = 1e-6 * K;
        const double fd = 0.8 * (pr::dist(x.data(), y.data(), 4, K + h) - pr::dist(x.data(), y.data(), 4, K - h)) / (2 * h);
        CAPTURE(K); CAPTURE(rx); CAPTURE(ry);
        CHECK(std::abs(an - fd) <= 1e-6 * (1.0 + std::abs(fd)));
        CHECK(an <= 0.0);  // both terms of the formula are <= 0
      }
    }
  }
  const std::vector<double> x{0.1, -0.2, 0.3};
  CHECK(pr::dist_backward_K(x.data(), x.data(), 3, 1.0, 1.0) == 0.0);
}

}  // namespace manifold_test_poincare_rows_vjp
