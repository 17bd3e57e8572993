// Tests for include/hyplora/nn/linear.hpp: registration, init, forward against Eigen, gradients.
#include <doctest/doctest.h>

#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/nn/linear.hpp>

#include "nn/layer_gradcheck.hpp"

namespace nn_test_linear {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::MatrixR;
namespace ad = hyplora::ad;

TEST_CASE("Linear registers weight (out, in) and bias (1, out) and computes x W^T + b") {
  ad::ParameterStore<double> store;
  hyplora::nn::Linear<double> l(store, "fc", 4, 3);
  CHECK(store.info(l.weight()).name == "fc.weight");
  CHECK(store.info(l.weight()).rows == 3);
  CHECK(store.info(l.weight()).cols == 4);
  CHECK(store.info(l.bias()).rows == 1);
  CHECK(store.info(l.bias()).cols == 3);
  CHECK(l.in_features() == 4);
  CHECK(l.out_features() == 3);
  l.init_kaiming_uniform(store, 9);
  CHECK(store.value(l.weight()).cwiseAbs().maxCoeff() <= 0.5);
  CHECK(store.value(l.bias()).cwiseAbs().maxCoeff() <= 0.5);
  CHECK(store.value(l.bias()).cwiseAbs().maxCoeff() > 0.0);
  const MatrixR<double> X = MatrixR<double>::Random(5, 4);
  ad::Tape<double> t;
  const MatrixR<double> z = l.forward(t, store, t.constant(X)).value();
  MatrixR<double> ref = X * store.value(l.weight()).transpose();
  ref.rowwise() += store.value(l.bias()).row(0);
  CHECK((z - ref).cwiseAbs().maxCoeff() <= 1e-15);
  auto f = [&](ad::Tape<double>& tp, ad::Var<double> x) { return l.forward(tp, store, x); };
  const auto res = nn_test::check_layer(f, store, X);
  CHECK_MESSAGE(res.ok(), res.report);
}

TEST_CASE("Linear without bias; frozen; errors") {
  ad::ParameterStore<float> store;
  hyplora::nn::Linear<float> l(store, "fc", 2, 2, /*bias=*/false, /*trainable=*/false);
  CHECK_FALSE(l.bias().valid());
  CHECK_FALSE(store.trainable(l.weight()));
  ad::Tape<float> t;
  CHECK_THROWS_WITH_AS(l.forward(t, store, t.constant(MatrixR<float>::Zero(1, 3))), doctest::Contains("(1, 3)"),
                       hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::nn::Linear<float>(store, "bad", 0, 2), hyplora::value_error);
}

}  // namespace nn_test_linear
