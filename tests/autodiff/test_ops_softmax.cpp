// Tests for include/hyplora/autodiff/ops_softmax.hpp: softmax, log_softmax, cross_entropy.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/autodiff/ops_softmax.hpp>
#include <hyplora/core/numerics.hpp>
#include <hyplora/testing/gradcheck.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_ops_softmax {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using Vars = std::vector<Var<double>>;

template <class T>
MatrixR<T> random_matrix(Index r, Index c, unsigned seed, double scale = 2.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  MatrixR<T> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(u(gen));
  return m;
}

const std::vector<std::pair<Index, Index>> kShapes = {{3, 5}, {1, 1}, {1, 4}, {4, 1}, {6, 7}};

// −mean over counted rows of log_softmax(x)[target], by hand in long double.
double reference_ce(const MatrixR<double>& x, const std::vector<std::int64_t>& tg, std::int64_t ignore) {
  long double total = 0;
  int count = 0;
  for (Index i = 0; i < x.rows(); ++i) {
    if (tg[static_cast<std::size_t>(i)] == ignore) continue;
    long double m = x(i, 0);
    for (Index j = 1; j < x.cols(); ++j) m = std::max<long double>(m, x(i, j));
    long double s = 0;
    for (Index j = 0; j < x.cols(); ++j) s += std::exp(static_cast<long double>(x(i, j)) - m);
    total += -(static_cast<long double>(x(i, static_cast<Index>(tg[static_cast<std::size_t>(i)]))) - m - std::log(s));
    ++count;
  }
  return count ? static_cast<double>(total / count) : 0.0;
}
}  // namespace

TEST_CASE_TEMPLATE("softmax rows sum to 1 and are invariant to a constant shift", T, float, double) {
  const T tol = T(16) * hyplora::numerics<T>::eps();
  const MatrixR<T> x = random_matrix<T>(5, 9, 1, 5.0);
  Tape<T> tape;
  auto y = ad::softmax(tape.constant(x));
  MatrixR<T> shifted = x.array() + T(100);
  auto ys = ad::softmax(tape.constant(shifted));
  for (Index i = 0; i < x.rows(); ++i) {
    CHECK(std::abs(y.value().row(i).sum() - T(1)) <= tol);
    CHECK((y.value().row(i).array() > T(0)).all());
  }
  // x + 100 rounds each entry to the float grid of 100 (ulp 7.6e-6 in float), hence the 1e-4.
  const T shift_tol = std::is_same<T, float>::value ? T(1e-4) : T(1e-12);
  CHECK((y.value() - ys.value()).cwiseAbs().maxCoeff() <= shift_tol);
  // log_softmax = log(softmax), and exp of it sums to 1.
  auto l = ad::log_softmax(tape.constant(x));
  CHECK((l.value().array().exp() - y.value().array()).abs().maxCoeff() <= tol);
}

TEST_CASE("softmax and log_softmax of huge logits are finite and exact") {
  MatrixR<double> x(2, 3);
  x << 1e4, -1e4, 0.0, -1e4, -1e4 + 1.0, -1e4;
  Tape<double> tape;
  auto y = ad::softmax(tape.constant(x));
  auto l = ad::log_softmax(tape.constant(x));
  CHECK(y.value().allFinite());
  CHECK(l.value().allFinite());
  CHECK(y.value()(0, 0) == doctest::Approx(1.0));
  CHECK(l.value()(0, 1) == doctest::Approx(-2e4));
  const double e = std::exp(1.0);
  CHECK(y.value()(1, 1) == doctest::Approx(e / (e + 2.0)).epsilon(1e-14));
}

TEST_CASE("softmax and log_softmax gradcheck, including degenerate shapes") {
  for (const auto& rc : kShapes) {
    const Index r = rc.first, c = rc.second;
    CAPTURE(r);
    CAPTURE(c);
    const MatrixR<double> x = random_matrix<double>(r, c, 3);
    auto g1 = hyplora::testing::gradcheck([](Tape<double>&, const Vars& v) { return ad::softmax(v[0]); }, {x});
    CHECK_MESSAGE(g1.ok, g1.report);
    auto g2 = hyplora::testing::gradcheck([](Tape<double>&, const Vars& v) { return ad::log_softmax(v[0]); }, {x});
    CHECK_MESSAGE(g2.ok, g2.report);
  }
}

TEST_CASE("softmax and log_softmax equal their composition from primitive ops") {
  const MatrixR<double> x0 = random_matrix<double>(4, 6, 5, 3.0);
  const MatrixR<double> w = random_matrix<double>(4, 6, 6);
  for (int which = 0; which < 2; ++which) {
    Tape<double> tf, tc;
    auto xf = tf.leaf(x0), xc = tc.leaf(x0);
    auto yf = which == 0 ? ad::softmax(xf) : ad::log_softmax(xf);
    // Composition: exp(x) / Σ exp(x) and x − log Σ exp(x) (fine for these moderate logits).
    auto sc = ad::sum_rows(ad::exp(xc));
    auto yc = which == 0 ? ad::div(ad::exp(xc), sc) : ad::sub(xc, ad::log(sc));
    CHECK((yf.value() - yc.value()).cwiseAbs().maxCoeff() <= 1e-12);
    tf.backward(yf, w);
    tc.backward(yc, w);
    CHECK((xf.grad() - xc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
  }
}

TEST_CASE("cross_entropy equals -mean log_softmax[target] and gradchecks") {
  const MatrixR<double> x = random_matrix<double>(6, 5, 7, 3.0);
  const std::vector<std::int64_t> tg = {0, 4, -1, 2, 2, 1};
  Tape<double> tape;
  auto xv = tape.leaf(x);
  auto loss = ad::cross_entropy(xv, tg);
  CHECK(loss.item() == doctest::Approx(reference_ce(x, tg, -1)).epsilon(1e-14));
  // Backward: (softmax − onehot)/count on counted rows, 0 on the ignored one.
  tape.backward(loss);
  auto sm = ad::softmax(tape.constant(x));
  MatrixR<double> expect = sm.value();
  for (Index i = 0; i < x.rows(); ++i) {
    if (tg[static_cast<std::size_t>(i)] < 0) expect.row(i).setZero();
    else expect(i, static_cast<Index>(tg[static_cast<std::size_t>(i)])) -= 1.0;
  }
  expect /= 5.0;
  CHECK((xv.grad() - expect).cwiseAbs().maxCoeff() <= 1e-15);

  auto g = hyplora::testing::gradcheck(
      [&](Tape<double>&, const Vars& v) { return ad::cross_entropy(v[0], tg); }, {x});
  CHECK_MESSAGE(g.ok, g.report);
  // Custom ignore_index; degenerate shapes.
  const std::vector<std::int64_t> tg2 = {3, -100, 0, -100, 4, 4};
  CHECK(ad::cross_entropy(tape.constant(x), tg2, -100).item() ==
        doctest::Approx(reference_ce(x, tg2, -100)).epsilon(1e-14));
  auto g2 = hyplora::testing::gradcheck(
      [&](Tape<double>&, const Vars& v) { return ad::cross_entropy(v[0], tg2, -100); }, {x});
  CHECK_MESSAGE(g2.ok, g2.report);
  struct Case { Index r, c; std::vector<std::int64_t> t; };
  for (const auto& cs : {Case{1, 1, {0}}, Case{1, 4, {2}}, Case{3, 1, {0, 0, 0}}}) {
    const MatrixR<double> xs = random_matrix<double>(cs.r, cs.c, 11);
    CHECK(ad::cross_entropy(tape.constant(xs), cs.t).item() == doctest::Approx(reference_ce(xs, cs.t, -1)));
    auto gd = hyplora::testing::gradcheck(
        [&](Tape<double>&, const Vars& v) { return ad::cross_entropy(v[0], cs.t); }, {xs});
    CHECK_MESSAGE(gd.ok, gd.report);
  }
}

TEST_CASE("cross_entropy on the parallel path: reference loss and gradient; 1 and 2 threads agree bitwise") {
  // 3000 × 30 = 90,000 logits >= kParallelMinElems: rows go to OpenMP threads; every 7th ignored.
  const Index N = 3000, V = 30;
  static_assert(N * V >= ad::detail::kParallelMinElems, "the test must take the parallel path");
  const MatrixR<double> x = random_matrix<double>(N, V, 23, 4.0);
  std::vector<std::int64_t> tg(static_cast<std::size_t>(N));
  Index counted = 0;
  for (Index i = 0; i < N; ++i) {
    tg[static_cast<std::size_t>(i)] = i % 7 == 3 ? -1 : (i * 13) % V;
    counted += i % 7 == 3 ? 0 : 1;
  }
  double loss[2];
  MatrixR<double> grad[2];
  for (int k = 0; k < 2; ++k) {
#ifdef _OPENMP
    const int prev = omp_get_max_threads();
    omp_set_num_threads(k + 1);
#endif
    Tape<double> tape;
    auto xv = tape.leaf(x);
    auto l = ad::cross_entropy(xv, tg);
    tape.backward(l);
    loss[k] = l.item();
    grad[k] = xv.grad();
#ifdef _OPENMP
    omp_set_num_threads(prev);
#endif
  }
  CHECK(loss[0] == doctest::Approx(reference_ce(x, tg, -1)).epsilon(1e-13));
  // (softmax − onehot)/count on counted rows, 0 on ignored ones, in long double.
  double worst = 0;
  for (Index i = 0; i < N; ++i) {
    long double m = x(i, 0), z = 0;
    for (Index j = 1; j < V; ++j) m = std::max<long double>(m, x(i, j));
    for (Index j = 0; j < V; ++j) z += std::exp(static_cast<long double>(x(i, j)) - m);
    const std::int64_t t = tg[static_cast<std::size_t>(i)];
    for (Index j = 0; j < V; ++j) {
      const long double p = std::exp(static_cast<long double>(x(i, j)) - m) / z;
      const long double e = t < 0 ? 0.0L : (p - (j == t ? 1 : 0)) / counted;
      worst = std::max(worst, static_cast<double>(std::abs(grad[0](i, j) - e)));
    }
  }
  CHECK(worst <= 1e-16);
  CHECK(loss[0] == loss[1]);
  CHECK(grad[0] == grad[1]);
}

TEST_CASE("cross_entropy is stable for logits of +-1e4") {
  MatrixR<double> x(3, 3);
  x << 1e4, -1e4, 0.0,  //
      -1e4, 1e4, -1e4,  //
      1e4, 1e4, -1e4;
  const std::vector<std::int64_t> tg = {1, 1, 0};
  Tape<double> tape;
  auto xv = tape.leaf(x);
  auto loss = ad::cross_entropy(xv, tg);
  // Row 0: lse = 1e4 (+ e^-1e4 terms), loss 2e4; row 1: 0; row 2: log 2.
  const double expect = (2e4 + 0.0 + std::log(2.0)) / 3.0;
  REQUIRE(std::isfinite(loss.item()));
  CHECK(loss.item() == doctest::Approx(expect).epsilon(1e-15));
  tape.backward(loss);
  CHECK(xv.grad().allFinite());
  CHECK(xv.grad()(0, 0) == doctest::Approx(1.0 / 3.0));
  CHECK(xv.grad()(0, 1) == doctest::Approx(-1.0 / 3.0));
  CHECK(xv.grad()(2, 0) == doctest::Approx(-0.5 / 3.0));
  CHECK(xv.grad()(2, 1) == doctest::Approx(0.5 / 3.0));
  Tape<float> tf;  // float too
  auto lf = ad::cross_entropy(tf.constant(x.cast<float>()), tg);
  CHECK(std::isfinite(lf.item()));
  CHECK(lf.item() == doctest::Approx(expect).epsilon(1e-6));
}

TEST_CASE("cross_entropy: all rows ignored gives 0 and a zero gradient") {
  Tape<double> tape;
  auto xv = tape.leaf(random_matrix<double>(2, 3, 13));
  auto loss = ad::cross_entropy(xv, {-1, -1});
  CHECK(loss.item() == 0.0);
  tape.backward(loss);
  CHECK(xv.grad().cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("cross_entropy rejects bad targets with the offending values in the message") {
  Tape<double> tape;
  auto xv = tape.leaf(random_matrix<double>(2, 3, 17));
  CHECK_THROWS_AS(ad::cross_entropy(xv, {0, 1, 2}), hyplora::shape_error);
  CHECK_THROWS_WITH(ad::cross_entropy(xv, {0}), doctest::Contains("(2, 3)"));
  CHECK_THROWS_AS(ad::cross_entropy(xv, {0, 3}), hyplora::value_error);
  CHECK_THROWS_AS(ad::cross_entropy(xv, {-2, 0}), hyplora::value_error);
  CHECK_THROWS_WITH(ad::cross_entropy(xv, {0, 7}), doctest::Contains("target 7"));
  CHECK_THROWS_WITH(ad::cross_entropy(xv, {0, 7}), doctest::Contains("V = 3"));
  CHECK_THROWS_AS(ad::cross_entropy(xv, {-1, 0}, -100), hyplora::value_error);
  CHECK_NOTHROW(ad::cross_entropy(xv, {-100, 0}, -100));
}

TEST_CASE("softmax-family ops reuse their buffers when the graph is rebuilt") {
  const MatrixR<double> x = random_matrix<double>(4, 5, 19);
  Tape<double> tape;
  const double* before[3] = {};
  for (int step = 0; step < 2; ++step) {
    tape.clear();
    auto xv = tape.leaf(x);
    auto a = ad::softmax(xv);
    auto b = ad::log_softmax(xv);
    auto c = ad::cross_entropy(xv, {0, 1, 2, 3});
    tape.backward(c);
    const double* now[3] = {a.value().data(), b.value().data(), tape.node(c.id).saved[0].data()};
    if (step == 1)
      for (int k = 0; k < 3; ++k) CHECK(now[k] == before[k]);
    for (int k = 0; k < 3; ++k) before[k] = now[k];
  }
}

}  // namespace autodiff_test_ops_softmax
