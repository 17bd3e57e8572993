// Tests for hyplora/manifold/detail/lorentz_dist_vjp.hpp: dist_backward against central
// differences along tangent directions, and dist_rgrad against egrad2rgrad(dist_backward).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "hyplora/manifold/detail/lorentz_dist_vjp.hpp"

namespace manifold_test_lorentz_dist_vjp {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace lr = hyplora::lorentz_rows;

namespace {

std::vector<double> random_point(std::mt19937_64& rng, int d, double scale, double R) {
  std::normal_distribution<double> N;
  std::vector<double> x(static_cast<std::size_t>(d + 1));
  for (int i = 1; i <= d; ++i) x[static_cast<std::size_t>(i)] = scale * N(rng);
  lr::projx(x.data(), x.data(), d, R);
  return x;
}

}  // namespace

TEST_CASE("lorentz dist_backward: directional derivatives match central differences") {
  // d is defined on the hyperboloid, so compare along curves t -> exp_x(t v), v tangent: the
  // derivative is <g_x, v> (Euclidean pairing of the ambient gradient with v).
  std::mt19937_64 rng(5);
  std::normal_distribution<double> N;
  for (double K : {1.0, 0.5, 3.0}) {
    const double R = std::sqrt(K);
    const int d = 4;
    for (int trial = 0; trial < 20; ++trial) {
      const auto x = random_point(rng, d, 0.3 + trial * 0.1, R);
      const auto y = random_point(rng, d, 0.5, R);
      std::vector<double> gx(d + 1), gy(d + 1), v(d + 1), xp(d + 1), xm(d + 1), w(d + 1);
      lr::dist_backward(x.data(), y.data(), d, R, 1.0, gx.data(), gy.data());
      for (double& c : w) c = N(rng);
      lr::proju(x.data(), w.data(), v.data(), d, R);
      const double h = 1e-6;
      for (int i = 0; i <= d; ++i) w[static_cast<std::size_t>(i)] = h * v[static_cast<std::size_t>(i)];
      lr::expmap(x.data(), w.data(), xp.data(), d, R);
      for (double& c : w) c = -c;
      lr::expmap(x.data(), w.data(), xm.data(), d, R);
      const double fd = (lr::dist(xp.data(), y.data(), d, R) - lr::dist(xm.data(), y.data(), d, R)) / (2 * h);
      double an = 0;
      for (int i = 0; i <= d; ++i) an += gx[static_cast<std::size_t>(i)] * v[static_cast<std::size_t>(i)];
      CHECK(an == doctest::Approx(fd).epsilon(1e-6).scale(1.0));
      // symmetry: g_y is g_x with the roles swapped
      std::vector<double> hy(d + 1);
      lr::dist_backward(y.data(), x.data(), d, R, 1.0, hy.data(), static_cast<double*>(nullptr));
      for (int i = 0; i <= d; ++i) CHECK(hy[static_cast<std::size_t>(i)] == doctest::Approx(gy[static_cast<std::size_t>(i)]));
    }
  }
}

TEST_CASE("lorentz dist_rgrad equals egrad2rgrad of dist_backward and has unit norm") {
  std::mt19937_64 rng(9);
  for (double K : {1.0, 2.0}) {
    const double R = std::sqrt(K);
    const int d = 3;
    for (int trial = 0; trial < 10; ++trial) {
      const auto x = random_point(rng, d, 1.0, R);
      const auto y = random_point(rng, d, 1.0, R);
      std::vector<double> gx(d + 1), a(d + 1), b(d + 1);
      lr::dist_backward(x.data(), y.data(), d, R, 0.8, gx.data(), static_cast<double*>(nullptr));
      lr::egrad2rgrad(x.data(), gx.data(), a.data(), d, R);
      const double dist = lr::dist_rgrad(x.data(), y.data(), d, R, 0.8, b.data());
      CHECK(dist == doctest::Approx(lr::dist(x.data(), y.data(), d, R)));
      for (int i = 0; i <= d; ++i)
        CHECK(b[static_cast<std::size_t>(i)] == doctest::Approx(a[static_cast<std::size_t>(i)]).epsilon(1e-8).scale(1.0));
      CHECK(lr::norm(b.data(), d) == doctest::Approx(0.8).epsilon(1e-8));
      CHECK(std::abs(lr::inner(x.data(), b.data(), d)) < 1e-9 * (1 + x[0] * x[0]));  // tangent at x
    }
  }
}

TEST_CASE("lorentz dist gradients: coincident and very close points") {
  std::mt19937_64 rng(1);
  const auto x = random_point(rng, 3, 1.0, 1.0);
  std::vector<double> g(4, 7.0), r(4, 7.0);
  lr::dist_backward(x.data(), x.data(), 3, 1.0, 1.0, g.data(), static_cast<double*>(nullptr));
  CHECK(lr::dist_rgrad(x.data(), x.data(), 3, 1.0, 1.0, r.data()) == 0.0);
  for (int i = 0; i < 4; ++i) {
    CHECK(g[static_cast<std::size_t>(i)] == 0.0);
    CHECK(r[static_cast<std::size_t>(i)] == 0.0);
  }
  // y at distance 1e-7: dist_rgrad still has unit norm (the ambient gradient would be ~1e7).
  std::vector<double> u{0, 1e-7, 0, 0}, v(4), y(4);
  lr::proju(x.data(), u.data(), v.data(), 3, 1.0);
  lr::expmap(x.data(), v.data(), y.data(), 3, 1.0);
  lr::dist_rgrad(x.data(), y.data(), 3, 1.0, 1.0, r.data());
  CHECK(lr::norm(r.data(), 3) == doctest::Approx(1.0).epsilon(1e-4));
}

TEST_CASE("lorentz dist_backward_R: with dist_backward, the R-derivative along H matches central differences") {
  // Keep the spatial parts fixed and let R move: x(R) = π_R(x_s), so
  // d/dR d(x(R), y(R), R) = dist_backward_R + g_x0·R/x0 + g_y0·R/y0 (∂x0/∂R = R/x0).
  std::mt19937_64 rng(17);
  for (double K : {0.2, 1.0, 4.0}) {
    const double R = std::sqrt(K);
    for (double scale : {0.01, 0.4, 3.0}) {
      for (int trial = 0; trial < 6; ++trial) {
        const int d = 1 + trial % 4;
        auto x = random_point(rng, d, scale, R);
        auto y = random_point(rng, d, trial % 2 ? scale : 1.0, R);
        auto f = [&](double r) {
          auto a = x, b = y;
          lr::projx(a.data(), a.data(), d, r);
          lr::projx(b.data(), b.data(), d, r);
          return lr::dist(a.data(), b.data(), d, r);
        };
        std::vector<double> gx(static_cast<std::size_t>(d + 1)), gy(gx.size());
        lr::dist_backward(x.data(), y.data(), d, R, 0.7, gx.data(), gy.data());
        const double an = lr::dist_backward_R(x.data(), y.data(), d, R, 0.7) + gx[0] * R / x[0] + gy[0] * R / y[0];
        const double h = 1e-6 * R;
        const double fd = 0.7 * (f(R + h) - f(R - h)) / (2 * h);
        CAPTURE(K); CAPTURE(scale); CAPTURE(d);
        CHECK(std::abs(an - fd) <= 1e-6 * (1.0 + std::abs(fd)));
      }
    }
  }
  const auto x = random_point(rng, 3, 0.5, 1.0);
  CHECK(lr::dist_backward_R(x.data(), x.data(), 3, 1.0, 1.0) == 0.0);  // the cone point: 0
}

TEST_CASE("lorentz dist0_backward matches central differences in x_s and R; 0 at o") {
  std::mt19937_64 rng(23);
  for (double K : {0.3, 1.0, 5.0}) {
    const double R = std::sqrt(K);
    for (double scale : {1e-4, 0.05, 0.8, 20.0}) {  // τ from ~1e-4 (series side of D2) to ~40
      const int d = 3;
      auto x = random_point(rng, d, scale, R);
      std::vector<double> gx(static_cast<std::size_t>(d + 1));
      double gR = 0.0;
      lr::dist0_backward(x.data(), d, R, 1.3, gx.data(), &gR);
      CHECK(gx[0] == 0.0);
      for (int i = 1; i <= d; ++i) {
        const double h = 1e-5 * std::sqrt(x[1] * x[1] + x[2] * x[2] + x[3] * x[3]);  // d0 has a cone at o
        auto p = x, m = x;
        p[static_cast<std::size_t>(i)] += h;
        m[static_cast<std::size_t>(i)] -= h;
        const double fd = 1.3 * (lr::dist0(p.data(), d, R) - lr::dist0(m.data(), d, R)) / (2 * h);
        CHECK(std::abs(gx[static_cast<std::size_t>(i)] - fd) <= 1e-7 * (1.0 + std::abs(fd)));
      }
      const double h = 1e-6 * R;
      const double fd = 1.3 * (lr::dist0(x.data(), d, R + h) - lr::dist0(x.data(), d, R - h)) / (2 * h);
      CAPTURE(K); CAPTURE(scale);
      CHECK(std::abs(gR - fd) <= 1e-7 * (1.0 + std::abs(fd)));
    }
  }
  std::vector<double> o{1.0, 0.0, 0.0}, g(3, 9.0);
  double gR = 9.0;
  lr::dist0_backward(o.data(), 2, 1.0, 1.0, g.data(), &gR);
  CHECK(g == std::vector<double>{0.0, 0.0, 0.0});
  CHECK(gR == 0.0);
}

}  // namespace manifold_test_lorentz_dist_vjp
