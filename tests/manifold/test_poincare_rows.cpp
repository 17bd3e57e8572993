// Precision of poincare_rows::pair_gaps / dist in double for points on the shell |x| = (1 − ε)R
// (docs/embeddings.md, `--ball-eps`): the gap K − |x|² and the distance, against long double on the
// same double coordinates. This is what bounds the trainer's smallest ball ε (1e-12).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "hyplora/manifold/detail/poincare_rows.hpp"

namespace manifold_test_poincare_rows {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace pr = hyplora::poincare_rows;

namespace {

struct ShellErrors {
  double gap_rel = 0.0, dist_abs = 0.0;
};

// Worst errors over 20,000 pairs in d = 10, K = 1: x on the shell, y either a nearby point (relative
// perturbation 1e-7) or a random point on the shell or at radius 0.9.
ShellErrors shell_errors(double eps) {
  constexpr int d = 10;
  std::mt19937_64 rng(1);
  std::normal_distribution<double> nd(0.0, 1.0);
  ShellErrors e;
  for (int t = 0; t < 20000; ++t) {
    double x[d], y[d], nx = 0.0, ny = 0.0;
    for (int i = 0; i < d; ++i) {
      x[i] = nd(rng);
      y[i] = nd(rng);
      nx += x[i] * x[i];
      ny += y[i] * y[i];
    }
    nx = std::sqrt(nx);
    ny = std::sqrt(ny);
    const double ry = (t % 2) ? 1.0 - eps : 0.9;
    for (int i = 0; i < d; ++i) {
      x[i] *= (1.0 - eps) / nx;
      y[i] = (t % 4 < 2) ? x[i] * (1.0 + 1e-7 * nd(rng)) : y[i] * ry / ny;
    }
    long double xx = 0, yy = 0, dd = 0;
    for (int i = 0; i < d; ++i) {
      xx += static_cast<long double>(x[i]) * x[i];
      yy += static_cast<long double>(y[i]) * y[i];
      const long double di = static_cast<long double>(x[i]) - y[i];
      dd += di * di;
    }
    const long double gx = 1 - xx, gy = 1 - yy;
    const long double dref = 2 * std::asinh(std::sqrt(dd) / std::sqrt(gx * gy));
    const pr::PairGaps<double> p = pr::pair_gaps(x, y, d, 1.0);
    e.gap_rel = std::max(e.gap_rel, static_cast<double>(std::fabs((p.gx - gx) / gx)));
    e.dist_abs = std::max(e.dist_abs, static_cast<double>(std::fabs(pr::dist(x, y, d, 1.0) - dref)));
  }
  return e;
}

}  // namespace

TEST_CASE("pair_gaps and dist keep enough digits on the shell down to ball eps 1e-12") {
  double prev = 0.0;
  for (double eps : {1e-10, 1e-12, 1e-13, 1e-14}) {
    const ShellErrors e = shell_errors(eps);
    char line[160];
    std::snprintf(line, sizeof line, "eps %.0e: radius %.1f, max rel. error of K - |x|^2 %.1e, max abs. error of d %.1e",
                  eps, 2.0 * std::atanh(1.0 - eps), e.gap_rel, e.dist_abs);
    MESSAGE(line);
    if (eps == 1e-10) CHECK(std::max(e.gap_rel, e.dist_abs) < 1e-4);
    if (eps == 1e-12) CHECK(std::max(e.gap_rel, e.dist_abs) < 5e-3);  // the trainer's limit: ranking-safe
    CHECK(e.dist_abs >= prev);  // digits are lost as the shell moves out, none are gained
    prev = e.dist_abs;
  }
}

}  // namespace manifold_test_poincare_rows
