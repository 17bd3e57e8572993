// Tests for include/hyplora/autodiff/ops_norm.hpp: layer_norm and rms_norm.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_norm.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/core/numerics.hpp>
#include <hyplora/testing/gradcheck.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_ops_norm {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using Vars = std::vector<Var<double>>;

template <class T>
MatrixR<T> random_matrix(Index r, Index c, unsigned seed, double lo = -2.0, double hi = 2.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  MatrixR<T> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(u(gen));
  return m;
}

const std::vector<std::pair<Index, Index>> kShapes = {{3, 5}, {1, 1}, {1, 4}, {4, 1}, {5, 8}};

// Plain-loop references in long double.
MatrixR<double> ref_layer_norm(const MatrixR<double>& x, const MatrixR<double>& g, const MatrixR<double>& b, double eps) {
  MatrixR<double> y(x.rows(), x.cols());
  for (Index i = 0; i < x.rows(); ++i) {
    long double mu = 0, var = 0;
    for (Index j = 0; j < x.cols(); ++j) mu += x(i, j);
    mu /= x.cols();
    for (Index j = 0; j < x.cols(); ++j) var += (x(i, j) - mu) * (x(i, j) - mu);
    var /= x.cols();
    for (Index j = 0; j < x.cols(); ++j)
      y(i, j) = static_cast<double>((x(i, j) - mu) / std::sqrt(var + eps) * g(0, j) + b(0, j));
  }
  return y;
}

MatrixR<double> ref_rms_norm(const MatrixR<double>& x, const MatrixR<double>& g, double eps) {
  MatrixR<double> y(x.rows(), x.cols());
  for (Index i = 0; i < x.rows(); ++i) {
    long double ms = 0;
    for (Index j = 0; j < x.cols(); ++j) ms += static_cast<long double>(x(i, j)) * x(i, j);
    ms /= x.cols();
    for (Index j = 0; j < x.cols(); ++j) y(i, j) = static_cast<double>(x(i, j) / std::sqrt(ms + eps) * g(0, j));
  }
  return y;
}
}  // namespace

TEST_CASE_TEMPLATE("layer_norm with gamma = 1, beta = 0 gives zero mean and unit variance", T, float, double) {
  const MatrixR<T> x = random_matrix<T>(6, 16, 1, -3.0, 7.0);
  const MatrixR<T> ones = MatrixR<T>::Ones(1, 16), zeros = MatrixR<T>::Zero(1, 16);
  Tape<T> tape;
  auto y = ad::layer_norm(tape.constant(x), tape.constant(ones), tape.constant(zeros), T(0));
  const T tol = T(64) * hyplora::numerics<T>::eps();
  for (Index i = 0; i < x.rows(); ++i) {
    const T mean = y.value().row(i).mean();
    const T var = y.value().row(i).array().square().mean();
    CHECK(std::abs(mean) <= tol);
    CHECK(std::abs(var - T(1)) <= tol);
  }
  // With the default eps the variance is var/(var + eps) < 1.
  auto y2 = ad::layer_norm(tape.constant(x), tape.constant(ones), tape.constant(zeros));
  CHECK(std::abs(y2.value().row(0).mean()) <= tol);
  CHECK(y2.value().row(0).array().square().mean() < T(1));
  // rms_norm with gamma = 1 gives unit mean square.
  auto r = ad::rms_norm(tape.constant(x), tape.constant(ones), T(0));
  for (Index i = 0; i < x.rows(); ++i) CHECK(std::abs(r.value().row(i).array().square().mean() - T(1)) <= tol);
}

TEST_CASE("layer_norm and rms_norm match plain-loop references") {
  const MatrixR<double> x = random_matrix<double>(5, 7, 2), g = random_matrix<double>(1, 7, 3),
                        b = random_matrix<double>(1, 7, 4);
  Tape<double> tape;
  auto y = ad::layer_norm(tape.constant(x), tape.constant(g), tape.constant(b), 1e-3);
  CHECK((y.value() - ref_layer_norm(x, g, b, 1e-3)).cwiseAbs().maxCoeff() <= 1e-14);
  auto r = ad::rms_norm(tape.constant(x), tape.constant(g), 1e-3);
  CHECK((r.value() - ref_rms_norm(x, g, 1e-3)).cwiseAbs().maxCoeff() <= 1e-14);
}

TEST_CASE("layer_norm and rms_norm gradcheck in x, gamma and beta, including degenerate shapes") {
  for (const auto& rc : kShapes) {
    const Index r = rc.first, c = rc.second;
    CAPTURE(r);
    CAPTURE(c);
    const MatrixR<double> x = random_matrix<double>(r, c, 5), g = random_matrix<double>(1, c, 6),
                          b = random_matrix<double>(1, c, 7);
    auto ln = hyplora::testing::gradcheck(
        [](Tape<double>&, const Vars& v) { return ad::layer_norm(v[0], v[1], v[2], 1e-5); }, {x, g, b});
    CHECK_MESSAGE(ln.ok, ln.report);
    auto rn = hyplora::testing::gradcheck(
        [](Tape<double>&, const Vars& v) { return ad::rms_norm(v[0], v[1], 1e-6); }, {x, g});
    CHECK_MESSAGE(rn.ok, rn.report);
  }
  // Only some inputs needing a gradient (frozen gamma/beta, or frozen x).
  const MatrixR<double> x = random_matrix<double>(3, 4, 8), g = random_matrix<double>(1, 4, 9),
                        b = random_matrix<double>(1, 4, 10);
  for (const auto& mask : {std::vector<bool>{true, false, false}, std::vector<bool>{false, true, false},
                           std::vector<bool>{false, false, true}}) {
    hyplora::testing::GradcheckOptions opt;
    opt.check = mask;
    auto ln = hyplora::testing::gradcheck(
        [](Tape<double>&, const Vars& v) { return ad::layer_norm(v[0], v[1], v[2]); }, {x, g, b}, opt);
    CHECK_MESSAGE(ln.ok, ln.report);
    opt.check = {mask[0], mask[1]};
    auto rn = hyplora::testing::gradcheck(
        [](Tape<double>&, const Vars& v) { return ad::rms_norm(v[0], v[1]); }, {x, g}, opt);
    CHECK_MESSAGE(rn.ok, rn.report);
  }
}

TEST_CASE("layer_norm and rms_norm equal their composition from primitive ops") {
  const MatrixR<double> x0 = random_matrix<double>(4, 6, 11), g0 = random_matrix<double>(1, 6, 12),
                        b0 = random_matrix<double>(1, 6, 13), w = random_matrix<double>(4, 6, 14);
  const double eps = 1e-5;
  {
    Tape<double> tf, tc;
    auto xf = tf.leaf(x0), gf = tf.leaf(g0), bf = tf.leaf(b0);
    auto yf = ad::layer_norm(xf, gf, bf, eps);
    auto xc = tc.leaf(x0), gc = tc.leaf(g0), bc = tc.leaf(b0);
    auto xm = ad::sub(xc, ad::mean_rows(xc));
    auto var = ad::mean_rows(ad::square(xm));
    auto yc = ad::add(ad::mul(ad::div(xm, ad::sqrt(ad::add_scalar(var, eps))), gc), bc);
    CHECK((yf.value() - yc.value()).cwiseAbs().maxCoeff() <= 1e-12);
    tf.backward(yf, w);
    tc.backward(yc, w);
    CHECK((xf.grad() - xc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((gf.grad() - gc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((bf.grad() - bc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
  }
  {
    Tape<double> tf, tc;
    auto xf = tf.leaf(x0), gf = tf.leaf(g0);
    auto yf = ad::rms_norm(xf, gf, eps);
    auto xc = tc.leaf(x0), gc = tc.leaf(g0);
    auto ms = ad::mean_rows(ad::square(xc));
    auto yc = ad::mul(ad::div(xc, ad::sqrt(ad::add_scalar(ms, eps))), gc);
    CHECK((yf.value() - yc.value()).cwiseAbs().maxCoeff() <= 1e-12);
    tf.backward(yf, w);
    tc.backward(yc, w);
    CHECK((xf.grad() - xc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((gf.grad() - gc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
  }
}

namespace {
// Norm results (value, dx, dγ, dβ) on a fresh tape.
struct NormRun {
  MatrixR<double> y, dx, dg, db;
};
NormRun run_norm(bool rms, const MatrixR<double>& x, const MatrixR<double>& g, const MatrixR<double>& b,
                 const MatrixR<double>& w) {
  Tape<double> t;
  auto xv = t.leaf(x), gv = t.leaf(g), bv = t.leaf(b);
  auto y = rms ? ad::rms_norm(xv, gv) : ad::layer_norm(xv, gv, bv);
  t.backward(y, w);
  return {y.value(), xv.grad(), gv.grad(), rms ? MatrixR<double>() : MatrixR<double>(bv.grad())};
}
}  // namespace

TEST_CASE("layer_norm and rms_norm on the parallel path match the composition; 1 and 2 threads agree bitwise") {
  // 600 × 120 = 72,000 elements >= kParallelMinElems: rows (forward, dx) and column chunks (dγ,
  // dβ; 120 is not a multiple of kColumnChunk, so the last chunk is ragged) go to OpenMP threads.
  const Index N = 600, C = 120;
  static_assert(N * C >= ad::detail::kParallelMinElems, "the test must take the parallel path");
  static_assert(C % ad::detail::kColumnChunk != 0, "a ragged last column chunk");
  const MatrixR<double> x = random_matrix<double>(N, C, 17), g = random_matrix<double>(1, C, 18),
                        b = random_matrix<double>(1, C, 19), w = random_matrix<double>(N, C, 20);
  for (const bool rms : {false, true}) {
    CAPTURE(rms);
    const NormRun f = run_norm(rms, x, g, b, w);
    Tape<double> tc;
    auto xc = tc.leaf(x), gc = tc.leaf(g), bc = tc.leaf(b);
    Var<double> yc;
    if (rms) {
      yc = ad::mul(ad::div(xc, ad::sqrt(ad::add_scalar(ad::mean_rows(ad::square(xc)), 1e-6))), gc);
    } else {
      auto xm = ad::sub(xc, ad::mean_rows(xc));
      yc = ad::add(ad::mul(ad::div(xm, ad::sqrt(ad::add_scalar(ad::mean_rows(ad::square(xm)), 1e-5))), gc), bc);
    }
    tc.backward(yc, w);
    CHECK((f.y - yc.value()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((f.dx - xc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((f.dg - gc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    if (!rms) CHECK((f.db - bc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
#ifdef _OPENMP
    const int prev = omp_get_max_threads();
    NormRun r[2];
    for (int k = 0; k < 2; ++k) {
      omp_set_num_threads(k + 1);
      r[k] = run_norm(rms, x, g, b, w);
    }
    omp_set_num_threads(prev);
    CHECK(r[0].y == r[1].y);
    CHECK(r[0].dx == r[1].dx);
    CHECK(r[0].dg == r[1].dg);
    CHECK(r[0].db == r[1].db);
#endif
  }
}

TEST_CASE("norms reject wrong gamma/beta shapes and a bad eps") {
  Tape<double> tape;
  auto x = tape.leaf(random_matrix<double>(3, 4, 15));
  auto g = tape.leaf(MatrixR<double>::Ones(1, 4));
  auto b = tape.leaf(MatrixR<double>::Zero(1, 4));
  auto g5 = tape.leaf(MatrixR<double>::Ones(1, 5));
  auto g2 = tape.leaf(MatrixR<double>::Ones(2, 4));
  CHECK_THROWS_AS(ad::layer_norm(x, g5, b), hyplora::shape_error);
  CHECK_THROWS_WITH(ad::layer_norm(x, g5, b), doctest::Contains("(1, 5)"));
  CHECK_THROWS_WITH(ad::layer_norm(x, g5, b), doctest::Contains("(3, 4)"));
  CHECK_THROWS_AS(ad::layer_norm(x, g, g2), hyplora::shape_error);
  CHECK_THROWS_AS(ad::rms_norm(x, g2), hyplora::shape_error);
  CHECK_THROWS_AS(ad::layer_norm(x, g, b, -1e-5), hyplora::value_error);
  CHECK_THROWS_AS(ad::rms_norm(x, g, std::nan("")), hyplora::value_error);
  Tape<double> other;
  CHECK_THROWS_AS(ad::rms_norm(x, other.leaf(MatrixR<double>::Ones(1, 4))), hyplora::value_error);
}

TEST_CASE("norm ops reuse their buffers when the graph is rebuilt") {
  const MatrixR<double> x = random_matrix<double>(4, 5, 16);
  Tape<double> tape;
  const double* before[4] = {};
  for (int step = 0; step < 2; ++step) {
    tape.clear();
    auto xv = tape.leaf(x), g = tape.leaf(MatrixR<double>::Ones(1, 5)), b = tape.leaf(MatrixR<double>::Zero(1, 5));
    auto l = ad::layer_norm(xv, g, b);
    auto r = ad::rms_norm(xv, g);
    tape.backward(l, x);
    const double* now[4] = {l.value().data(), r.value().data(), tape.node(l.id).saved[0].data(),
                            tape.node(r.id).saved[0].data()};
    if (step == 1)
      for (int k = 0; k < 4; ++k) CHECK(now[k] == before[k]);
    for (int k = 0; k < 4; ++k) before[k] = now[k];
  }
}

}  // namespace autodiff_test_ops_norm
