// Tests for include/hyplora/analysis/delta_hyperbolicity.hpp (docs/math.md §8.1).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <hyplora/analysis/delta_hyperbolicity.hpp>
#include <hyplora/core/numerics.hpp>

namespace analysis_test_delta_hyperbolicity {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

constexpr double kPi = 3.14159265358979323846;
using hyplora::Index;
using hyplora::MatrixR;
namespace an = hyplora::analysis;

// Path metric of a random tree: node i > 0 hangs off a random earlier node with an integer
// weight in 1..9, so every sum and half-difference below is exact in float and double.
template <class T>
MatrixR<T> random_tree_metric(Index n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Index> parent(static_cast<std::size_t>(n), -1);
  std::vector<double> weight(static_cast<std::size_t>(n), 0.0);
  for (Index i = 1; i < n; ++i) {
    parent[static_cast<std::size_t>(i)] = static_cast<Index>(rng() % static_cast<std::uint64_t>(i));
    weight[static_cast<std::size_t>(i)] = static_cast<double>(1 + rng() % 9);
  }
  // d(i, j) = depth(i) + depth(j) − 2 depth(lca): walk the deeper-indexed node up (parents have
  // smaller indices, so the larger index is never an ancestor of the smaller).
  MatrixR<T> D(n, n);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < n; ++j) {
      Index a = i, b = j;
      double d = 0.0;
      while (a != b) {
        if (a > b) {
          d += weight[static_cast<std::size_t>(a)];
          a = parent[static_cast<std::size_t>(a)];
        } else {
          d += weight[static_cast<std::size_t>(b)];
          b = parent[static_cast<std::size_t>(b)];
        }
      }
      D(i, j) = static_cast<T>(d);
    }
  }
  return D;
}

template <class T>
MatrixR<T> cycle_metric(Index n) {
  MatrixR<T> D(n, n);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < n; ++j) {
      const Index k = i > j ? i - j : j - i;
      D(i, j) = static_cast<T>(std::min(k, n - k));
    }
  }
  return D;
}

// Eq. (239): four-point δ of the cycle C_n with unit edges.
double cycle_delta(Index n) {
  if (n < 4) return 0.0;
  const double m = static_cast<double>(n / 4);
  return n % 4 == 1 ? m - 0.5 : m;
}

// Independent brute force: every ordered 4-tuple, the three pair sums sorted with std::sort.
double brute_four_point(const MatrixR<double>& D) {
  const Index n = D.rows();
  double best = 0.0;
  for (Index a = 0; a < n; ++a)
    for (Index b = 0; b < n; ++b)
      for (Index c = 0; c < n; ++c)
        for (Index e = 0; e < n; ++e) {
          std::array<double, 3> s{D(a, b) + D(c, e), D(a, c) + D(b, e), D(a, e) + D(b, c)};
          std::sort(s.begin(), s.end());
          best = std::max(best, (s[2] - s[1]) / 2);
        }
  return best;
}

// Independent O(n³) δ_w straight from Eq. (232)–(234), Gromov products rounded to T as the
// library stores them.
template <class T>
double naive_base_point(const MatrixR<T>& D, Index w) {
  const Index n = D.rows();
  MatrixR<T> G(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j)
      G(i, j) = static_cast<T>(0.5 * (double(D(i, w)) + double(D(j, w)) - double(D(i, j))));
  double best = 0.0;
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      T m = std::numeric_limits<T>::lowest();
      for (Index k = 0; k < n; ++k) m = std::max(m, std::min(G(i, k), G(k, j)));
      best = std::max(best, double(m) - double(G(i, j)));
    }
  return best;
}

template <class T>
MatrixR<T> random_points(Index n, Index dim, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> N01;
  MatrixR<T> X(n, dim);
  for (Index i = 0; i < n; ++i)
    for (Index c = 0; c < dim; ++c) X(i, c) = static_cast<T>(N01(rng));
  return X;
}

}  // namespace

TEST_CASE_TEMPLATE("a tree metric has δ = 0 under every estimator", T, float, double) {
  for (const std::uint64_t seed : {1u, 2u, 3u}) {
    const MatrixR<T> D = random_tree_metric<T>(45, seed);
    const auto four = an::delta_four_point(D);
    CHECK(four.diam > 0.0);
    CHECK(four.delta == 0.0);
    CHECK(four.relative == 0.0);
    for (const Index w : {Index(0), Index(7), Index(44)}) {
      const auto bp = an::delta_base_point(D, w);
      CHECK(bp.delta == 0.0);
      CHECK(bp.diam == four.diam);
    }
    CHECK(an::delta_sampled(D, 20000, seed).delta == 0.0);
  }
}

TEST_CASE("cycle C_n: four-point δ matches Eq. (239) and an independent brute force") {
  for (Index n = 3; n <= 32; ++n) {
    const MatrixR<double> D = cycle_metric<double>(n);
    const auto r = an::delta_four_point(D);
    CAPTURE(n);
    CHECK(r.delta == cycle_delta(n));
    CHECK(r.diam == static_cast<double>(n / 2));
    if (n <= 11) CHECK(brute_four_point(D) == cycle_delta(n));
  }
}

TEST_CASE_TEMPLATE("cycle C_n: δ_w equals δ_4pt for every w (vertex transitivity)", T, float,
                   double) {
  // δ_4pt = max_w δ_w (Eq. (235)) and all δ_w are equal on a vertex-transitive graph, so the
  // base-point estimator must return Eq. (239) exactly, also past four_point_max_n.
  for (const Index n : {Index(4), Index(5), Index(13), Index(18), Index(27), Index(101),
                        Index(230), Index(521), Index(523)}) {
    const MatrixR<T> D = cycle_metric<T>(n);
    for (const Index w : {Index(0), n / 3, n - 1}) {
      const auto r = an::delta_base_point(D, w);
      CAPTURE(n);
      CAPTURE(w);
      CHECK(r.delta == cycle_delta(n));
      CHECK(r.relative == doctest::Approx(2.0 * cycle_delta(n) / static_cast<double>(n / 2)));
    }
  }
}

TEST_CASE_TEMPLATE("random sets: δ_w <= δ_4pt <= 2δ_w, max_w δ_w = δ_4pt, sampled <= δ_4pt", T,
                   float, double) {
  for (const Index dim : {Index(2), Index(3), Index(8)}) {
    const MatrixR<T> X = random_points<T>(24, dim, 100 + static_cast<std::uint64_t>(dim));
    const MatrixR<double> D = an::euclidean_distances(X);
    const auto four = an::delta_four_point(D);
    CHECK(four.delta > 0.0);  // Euclidean space is not a tree
    // float stores Gromov products in float: each δ_w is off by a few ulp of diam.
    const double tol = 8.0 * static_cast<double>(std::numeric_limits<T>::epsilon()) * four.diam;
    double max_w = 0.0;
    for (Index w = 0; w < X.rows(); ++w) {
      const auto bp = an::delta_base_point_euclidean(X, w);
      CHECK(bp.delta <= four.delta + tol);
      CHECK(four.delta <= 2.0 * bp.delta + tol);
      max_w = std::max(max_w, bp.delta);
    }
    CHECK(max_w == doctest::Approx(four.delta).epsilon(tol / four.delta));
    for (const std::uint64_t seed : {0u, 1u, 2u}) {
      CHECK(an::delta_sampled(D, 3000, seed).delta <= four.delta);
      CHECK(an::delta_sampled_euclidean(X, 3000, seed).delta <= four.delta + tol);
    }
  }
}

TEST_CASE("sampled δ reaches δ_4pt with enough samples, and is reproducible") {
  const MatrixR<double> X = random_points<double>(12, 3, 7);
  const MatrixR<double> D = an::euclidean_distances(X);
  const auto four = an::delta_four_point(D);
  // 12^4 = 20736 ordered quadruples, >= 24 of them attain the max: 2e5 draws miss all of them
  // with probability < exp(-200).
  const auto s = an::delta_sampled(D, 200000, 3);
  CHECK(s.delta == four.delta);
  CHECK(an::delta_sampled(D, 500, 9).delta == an::delta_sampled(D, 500, 9).delta);
  CHECK(an::delta_sampled(D, 0, 9).delta == 0.0);
}

TEST_CASE_TEMPLATE("streamed base-point δ equals a naive O(n³) evaluation", T, float, double) {
  // Sizes straddle the kernel's 8-row blocks and 512-column tiles.
  for (const Index n : {Index(1), Index(2), Index(9), Index(37), Index(515)}) {
    const MatrixR<T> X = random_points<T>(n, 5, 40 + static_cast<std::uint64_t>(n));
    const MatrixR<double> Dd = an::euclidean_distances(X);
    const MatrixR<T> D = Dd.template cast<T>();
    const Index w = n / 2;
    CAPTURE(n);
    CHECK(an::delta_base_point(D, w).delta == naive_base_point(D, w));
    // From points, distances are rounded to T only inside the Gromov products.
    const auto from_points = an::delta_base_point_euclidean(X, w);
    const double tol = 8.0 * static_cast<double>(std::numeric_limits<T>::epsilon()) * from_points.diam;
    CHECK(std::fabs(from_points.delta - naive_base_point(Dd, w)) <= tol);
    CHECK(from_points.diam == doctest::Approx(Dd.maxCoeff()));
  }
}

TEST_CASE("Poincaré-disk points are nearly trees; Euclidean points are not") {
  // H² (curvature −1) is a CAT(−1) space, hence ln 2-hyperbolic in the four-point sense
  // (Nica & Špakula 2016; an ideal square attains it in the limit). So δ_4pt <= ln 2 and
  // δ_rel <= 2 ln 2 / diam, small once points spread to hyperbolic radius ~10. Uniform points
  // in a Euclidean disk contain near-squares, whose δ_rel is 2(√2 − 1)/√2 ≈ 0.59.
  const Index n = 80;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  std::vector<std::array<double, 2>> y(static_cast<std::size_t>(n));
  std::vector<double> one_minus_sq(static_cast<std::size_t>(n));  // 1 − |y|², exact from ρ
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double rho = 10.0 * std::sqrt(U(rng));
    const double theta = 2.0 * kPi * U(rng);
    const double r = std::tanh(rho / 2.0);  // Poincaré radius of hyperbolic radius ρ (K = 1)
    y[i] = {r * std::cos(theta), r * std::sin(theta)};
    one_minus_sq[i] = 1.0 / (std::cosh(rho / 2.0) * std::cosh(rho / 2.0));
  }
  MatrixR<double> Dh(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      const auto a = static_cast<std::size_t>(i), b = static_cast<std::size_t>(j);
      const double dx = y[a][0] - y[b][0], dy = y[a][1] - y[b][1];
      const double e = 2.0 * (dx * dx + dy * dy) / (one_minus_sq[a] * one_minus_sq[b]);
      Dh(i, j) = i == j ? 0.0 : hyplora::acosh1p(e);
    }
  Dh = (0.5 * (Dh + Dh.transpose())).eval();  // the formula is symmetric up to rounding
  const auto hyp = an::delta_four_point(Dh);
  CHECK(hyp.delta <= std::log(2.0) + 1e-12);
  CHECK(hyp.diam > 12.0);
  CHECK(hyp.relative < 0.12);

  MatrixR<double> Xe(n, 2);
  for (Index i = 0; i < n; ++i) {
    const double r = std::sqrt(U(rng)), theta = 2.0 * kPi * U(rng);
    Xe(i, 0) = r * std::cos(theta);
    Xe(i, 1) = r * std::sin(theta);
  }
  const auto euc = an::delta_four_point_euclidean(Xe);
  CHECK(euc.relative > 0.4);
  CHECK(euc.relative > 4.0 * hyp.relative);
  // The paper's estimator orders them the same way.
  CHECK(an::delta_base_point(Dh).relative < an::delta_base_point_euclidean(Xe).relative);
}

TEST_CASE("delta_per_prompt: the paper's protocol") {
  const Index V = 40, Dm = 6;
  const MatrixR<double> E = random_points<double>(V, Dm, 11);
  std::mt19937_64 rng(12);
  std::vector<std::vector<std::int64_t>> prompts(3);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    for (int t = 0; t < 20 + 15 * static_cast<int>(p); ++t) {
      prompts[p].push_back(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(V)));
    }
  }
  const auto s = an::delta_per_prompt(prompts, E);
  REQUIRE(s.per_prompt.size() == 3);
  double mean = 0.0;
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    MatrixR<double> X(static_cast<Index>(prompts[p].size()), Dm);
    for (std::size_t t = 0; t < prompts[p].size(); ++t) X.row(static_cast<Index>(t)) = E.row(prompts[p][t]);
    const auto r = an::delta_base_point_euclidean(X, 0);
    CHECK(s.per_prompt[p].delta == r.delta);
    CHECK(s.per_prompt[p].relative == r.relative);
    mean += r.relative / 3.0;
  }
  double var = 0.0;
  for (const auto& r : s.per_prompt) var += (r.relative - mean) * (r.relative - mean) / 3.0;
  CHECK(s.mean_relative == doctest::Approx(mean));
  CHECK(s.std_relative == doctest::Approx(std::sqrt(var)));

  // Subsampling: tokens on a line (a tree metric) stay a tree; the seed makes it reproducible.
  MatrixR<double> L = MatrixR<double>::Zero(V, Dm);
  for (Index v = 0; v < V; ++v) L(v, 0) = static_cast<double>(v * v % 17);
  an::prompt_delta_options opt;
  opt.max_tokens = 10;
  opt.seed = 4;
  const auto sub = an::delta_per_prompt(prompts, L, opt);
  for (const auto& r : sub.per_prompt) CHECK(r.delta == 0.0);
  const auto a = an::delta_per_prompt(prompts, E, opt);
  const auto b = an::delta_per_prompt(prompts, E, opt);
  opt.seed = 5;
  const auto c = an::delta_per_prompt(prompts, E, opt);
  bool differs = false;
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    CHECK(a.per_prompt[p].delta == b.per_prompt[p].delta);
    differs = differs || a.per_prompt[p].delta != c.per_prompt[p].delta;
  }
  CHECK(differs);
}

TEST_CASE("bad input throws typed errors") {
  const MatrixR<double> rect(3, 4);
  CHECK_THROWS_AS(an::delta_base_point(rect), hyplora::shape_error);
  MatrixR<double> D = cycle_metric<double>(6);
  D(1, 2) = 1.5;  // no longer symmetric
  CHECK_THROWS_AS(an::delta_four_point(D), hyplora::value_error);
  D = cycle_metric<double>(6);
  D(3, 3) = 1.0;
  CHECK_THROWS_AS(an::delta_sampled(D, 10), hyplora::value_error);
  D = cycle_metric<double>(6);
  D(0, 1) = D(1, 0) = std::nan("");
  CHECK_THROWS_AS(an::delta_base_point(D), hyplora::value_error);
  D = cycle_metric<double>(6);
  CHECK_THROWS_AS(an::delta_base_point(D, 6), hyplora::value_error);
  CHECK_THROWS_AS(an::delta_base_point(D, -1), hyplora::value_error);
  CHECK_THROWS_AS(an::delta_sampled(D, -1), hyplora::value_error);
  CHECK_THROWS_AS(an::delta_four_point(cycle_metric<double>(an::four_point_max_n + 1)),
                  hyplora::value_error);
  MatrixR<float> X = random_points<float>(5, 2, 1);
  X(2, 1) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(an::delta_base_point_euclidean(X), hyplora::value_error);
  const MatrixR<double> E = random_points<double>(4, 2, 1);
  CHECK_THROWS_AS(an::delta_per_prompt({{0, 1, 4}}, E), hyplora::value_error);
  CHECK_THROWS_AS(an::delta_per_prompt({{0, 1}, {}}, E), hyplora::value_error);
  CHECK(an::delta_base_point(MatrixR<double>(0, 0)).delta == 0.0);
}

}  // namespace analysis_test_delta_hyperbolicity
