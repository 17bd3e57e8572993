// Tests for include/hyplora/autodiff/ops_dropout.hpp: inverted dropout with a counter-based mask.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <hyplora/autodiff/ops_dropout.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace autodiff_test_ops_dropout {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::NoGradGuard;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using Vars = std::vector<Var<double>>;

template <class T>
MatrixR<T> random_nonzero(Index r, Index c, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  MatrixR<T> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(i % 2 ? u(gen) : -u(gen));
  return m;
}
}  // namespace

TEST_CASE_TEMPLATE("dropout keeps about 1-p of a large tensor, scaled by 1/(1-p)", T, float, double) {
  const Index n = 1000;
  const MatrixR<T> x = random_nonzero<T>(n, n, 1);
  for (T p : {T(0.1), T(0.5), T(0.9)}) {
    CAPTURE(p);
    Tape<T> tape;
    auto y = ad::dropout(tape.leaf(x), p, 42);
    const auto yv = y.value();
    Index kept = 0;
    bool scaled = true;
    const T scale = T(1) / (T(1) - p);
    for (Index e = 0; e < x.size(); ++e) {
      if (yv.data()[e] == T(0)) continue;
      ++kept;
      scaled = scaled && yv.data()[e] == x.data()[e] * scale;
    }
    CHECK(scaled);
    const double frac = static_cast<double>(kept) / static_cast<double>(x.size());
    const double sigma = std::sqrt(static_cast<double>(p) * (1.0 - static_cast<double>(p)) / static_cast<double>(x.size()));
    CHECK(std::abs(frac - (1.0 - static_cast<double>(p))) <= 6.0 * sigma);
    // The mean is preserved in expectation.
    CHECK(std::abs(yv.template cast<double>().mean() - x.template cast<double>().mean()) <= 6.0 * sigma * 2.0 / (1.0 - p));
  }
}

TEST_CASE("dropout is deterministic in the seed and independent of the tensor's shape") {
  const MatrixR<double> x = random_nonzero<double>(64, 48, 2);
  Tape<double> tape;
  auto a = ad::dropout(tape.leaf(x), 0.3, 7);
  auto b = ad::dropout(tape.leaf(x), 0.3, 7);
  auto c = ad::dropout(tape.leaf(x), 0.3, 8);
  CHECK(a.value() == b.value());
  CHECK(a.value() != c.value());
  // Nearby seeds give unrelated masks: they agree on about p² + (1−p)² = 58% of the elements.
  const double agree = ((a.value().array() == 0) == (c.value().array() == 0)).cast<double>().mean();
  CHECK(agree == doctest::Approx(0.58).epsilon(0.05));
  // The mask depends on (seed, element index) only: the same elements of a reshaped tensor
  // (other shape, same row-major storage) get the same decisions.
  const MatrixR<double> xr = Eigen::Map<const MatrixR<double>>(x.data(), 48, 64);
  auto r = ad::dropout(tape.leaf(xr), 0.3, 7);
  CHECK(Eigen::Map<const MatrixR<double>>(r.value().data(), 64, 48) == a.value());
}

TEST_CASE("dropout is the identity at p = 0 and in no-grad mode") {
  const MatrixR<double> x = random_nonzero<double>(5, 6, 3);
  Tape<double> tape;
  auto xv = tape.leaf(x);
  const int before = tape.size();
  auto y0 = ad::dropout(xv, 0.0, 1);
  CHECK(y0.id == xv.id);
  CHECK(tape.size() == before);
  {
    NoGradGuard<double> guard(tape);
    auto y = ad::dropout(xv, 0.5, 1);
    CHECK(y.id == xv.id);
    CHECK(tape.size() == before);
  }
  auto y = ad::dropout(xv, 0.5, 1);
  CHECK(y.id != xv.id);
  CHECK(tape.size() == before + 1);
}

TEST_CASE("dropout rejects p outside [0, 1)") {
  Tape<double> tape;
  auto xv = tape.leaf(MatrixR<double>::Ones(2, 2));
  CHECK_THROWS_AS(ad::dropout(xv, 1.0, 1), hyplora::value_error);
  CHECK_THROWS_AS(ad::dropout(xv, -0.1, 1), hyplora::value_error);
  CHECK_THROWS_AS(ad::dropout(xv, std::numeric_limits<double>::quiet_NaN(), 1), hyplora::value_error);
  CHECK_THROWS_WITH(ad::dropout(xv, 1.5, 1), doctest::Contains("1.5"));
}

TEST_CASE("dropout backward applies the same mask and scale, and gradchecks") {
  const MatrixR<double> x = random_nonzero<double>(7, 9, 4);
  Tape<double> tape;
  auto xv = tape.leaf(x);
  auto y = ad::dropout(xv, 0.4, 99);
  const MatrixR<double> seed = random_nonzero<double>(7, 9, 5);
  tape.backward(y, seed);
  // ∂y/∂x is diagonal with entries y/x (x has no zeros).
  const MatrixR<double> expect = seed.array() * y.value().array() / x.array();
  CHECK((xv.grad() - expect).cwiseAbs().maxCoeff() <= 1e-15);
  for (const auto& rc : std::vector<std::pair<Index, Index>>{{7, 9}, {1, 1}, {1, 6}, {6, 1}}) {
    const Index r = rc.first, c = rc.second;
    CAPTURE(r);
    CAPTURE(c);
    for (std::uint64_t s : {1ull, 2ull, 0xFFFFFFFFFFFFFFFFull}) {  // also a seed above INT64_MAX
      auto g = hyplora::testing::gradcheck(
          [s](Tape<double>&, const Vars& v) { return ad::dropout(v[0], 0.3, s); }, {random_nonzero<double>(r, c, 6)});
      CHECK_MESSAGE(g.ok, g.report);
    }
  }
}

}  // namespace autodiff_test_ops_dropout
