// Tests for include/hyplora/autodiff/ops_linear.hpp (and the shared base map in detail/linear_base.hpp).
#include <doctest/doctest.h>

#include <hyplora/autodiff/ops_linear.hpp>
#include <hyplora/testing/gradcheck.hpp>
#include <vector>

namespace autodiff_test_ops_linear {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
MatrixR<double> rnd(Eigen::Index r, Eigen::Index c) { return MatrixR<double>::Random(r, c); }
}  // namespace

TEST_CASE("linear equals x·Wᵀ + b and gradchecks, with and without bias") {
  const MatrixR<double> X = rnd(4, 3), W = rnd(5, 3), b = rnd(1, 5);
  Tape<double> t;
  auto z = hyplora::ad::linear(t.constant(X), t.constant(W), t.constant(b));
  MatrixR<double> ref = X * W.transpose();
  ref.rowwise() += b.row(0);
  CHECK((z.value() - ref).cwiseAbs().maxCoeff() < 1e-14);

  auto with_bias = hyplora::testing::gradcheck(
      [](Tape<double>&, const std::vector<Var<double>>& v) { return hyplora::ad::linear(v[0], v[1], v[2]); }, {X, W, b});
  CHECK_MESSAGE(with_bias.ok, with_bias.report);
  auto no_bias = hyplora::testing::gradcheck(
      [](Tape<double>&, const std::vector<Var<double>>& v) { return hyplora::ad::linear(v[0], v[1]); }, {rnd(1, 1), rnd(1, 1)});
  CHECK_MESSAGE(no_bias.ok, no_bias.report);
}

TEST_CASE("linear with a frozen weight computes no weight gradient") {
  hyplora::ad::ParameterStore<double> store;
  auto W = store.add("W", rnd(2, 3), /*trainable=*/false);
  Tape<double> t;
  auto x = t.leaf(rnd(4, 3));
  auto z = hyplora::ad::linear(x, t.param(store, W));
  t.backward(z, MatrixR<double>::Ones(4, 2));
  CHECK(store.grad(W).cwiseAbs().maxCoeff() == 0.0);
  CHECK(x.grad().cwiseAbs().maxCoeff() > 0.0);
}

TEST_CASE("linear shape errors") {
  Tape<double> t;
  CHECK_THROWS_AS(hyplora::ad::linear(t.constant(rnd(2, 3)), t.constant(rnd(4, 2))), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::ad::linear(t.constant(rnd(2, 3)), t.constant(rnd(4, 3)), t.constant(rnd(1, 3))), hyplora::shape_error);
}

}  // namespace autodiff_test_ops_linear
