// Tests for include/hyplora/autodiff/parameters.hpp: one contiguous arena of values and
// gradients, registration errors, lookup, trainability and zero_grad.
#include <doctest/doctest.h>

#include <string>

#include <hyplora/autodiff/parameters.hpp>

namespace autodiff_test_parameters {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::MatrixR;
using hyplora::ad::Parameter;
using hyplora::ad::ParameterStore;

TEST_CASE_TEMPLATE("parameters live in one contiguous arena, in registration order", T, float, double) {
  ParameterStore<T> s;
  MatrixR<T> init(2, 3);
  init << 1, 2, 3, 4, 5, 6;
  Parameter a = s.add("a", init);
  Parameter b = s.add("b", 4, 1);
  Parameter c = s.add("c", 1, 2, /*trainable=*/false);
  CHECK(s.count() == 3);
  CHECK(s.values().size() == 12);
  CHECK(s.grads().size() == 12);
  CHECK(s.info(a).offset == 0);
  CHECK(s.info(b).offset == 6);
  CHECK(s.info(c).offset == 10);
  CHECK(s.values()[4] == T(5));                    // row-major copy of init
  CHECK(s.value(b).cwiseAbs().maxCoeff() == T(0));  // zero-initialised
  // Views alias the arena.
  s.value(b)(3, 0) = T(7);
  CHECK(s.values()[9] == T(7));
  s.grad(a)(1, 1) = T(2);
  CHECK(s.grads()[4] == T(2));
  CHECK(s.trainable_size() == 10);
  s.set_trainable(c, true);
  CHECK(s.trainable(c));
  CHECK(s.trainable_size() == 12);
  s.zero_grad();
  for (T g : s.grads()) CHECK(g == T(0));
  CHECK(s.values()[9] == T(7));  // zero_grad leaves values alone
}

TEST_CASE("parameter lookup and registration errors") {
  ParameterStore<double> s;
  Parameter w = s.add("w", 2, 2);
  CHECK(s.find("w").index == w.index);
  CHECK(s.info(w).name == "w");
  CHECK(s.at_index(0).index == w.index);
  CHECK_THROWS_WITH_AS(s.find("nope"), doctest::Contains("nope"), hyplora::value_error);
  CHECK_THROWS_WITH_AS(s.add("w", 1, 1), doctest::Contains("already registered"), hyplora::value_error);
  CHECK_THROWS_WITH_AS(s.add("neg", -1, 2), doctest::Contains("(-1, 2)"), hyplora::value_error);
  CHECK_THROWS_AS(s.value(Parameter{}), hyplora::value_error);
  CHECK_THROWS_AS(s.grad(Parameter{5}), hyplora::value_error);
  CHECK_FALSE(Parameter{}.valid());
  CHECK(w.valid());
}

}  // namespace autodiff_test_parameters
