// Tests for include/hyplora/optim/clip_grad.hpp: the global norm over trainable parameters,
// clipping to exactly max_norm, no-ops, non-finite norms, double accumulation.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include <hyplora/optim/clip_grad.hpp>

namespace optim_test_clip_grad {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::optim::clip_grad_norm;
using hyplora::optim::grad_norm;

TEST_CASE_TEMPLATE("clip_grad_norm clips the trainable gradients to max_norm", T, float, double) {
  hyplora::ad::ParameterStore<T> store;
  auto a = store.add("a", 1, 2);
  auto frozen = store.add("frozen", 1, 1, false);
  auto b = store.add("b", 2, 1);
  store.grad(a) << T(3), T(0);
  store.grad(frozen)(0, 0) = T(1000);  // frozen: not counted, not scaled
  store.grad(b) << T(0), T(-4);
  CHECK(grad_norm(store) == doctest::Approx(5.0));

  SUBCASE("below the limit: unchanged") {
    CHECK(clip_grad_norm(store, 10.0) == doctest::Approx(5.0));
    CHECK(store.grad(a)(0, 0) == T(3));
    CHECK(store.grad(b)(1, 0) == T(-4));
  }
  SUBCASE("above the limit: scaled to exactly max_norm") {
    CHECK(clip_grad_norm(store, 1.0) == doctest::Approx(5.0));
    CHECK(store.grad(a)(0, 0) == doctest::Approx(0.6));
    CHECK(store.grad(b)(1, 0) == doctest::Approx(-0.8));
    CHECK(grad_norm(store) == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(store.grad(frozen)(0, 0) == T(1000));
  }
  SUBCASE("max_norm 0 zeroes, +inf never clips, negative or NaN throws") {
    hyplora::ad::ParameterStore<T> s2 = store;
    CHECK(clip_grad_norm(s2, std::numeric_limits<double>::infinity()) == doctest::Approx(5.0));
    CHECK(s2.grad(a)(0, 0) == T(3));
    clip_grad_norm(store, 0.0);
    CHECK(grad_norm(store) == 0.0);
    CHECK_THROWS_AS(clip_grad_norm(store, -1.0), hyplora::value_error);
    CHECK_THROWS_AS(clip_grad_norm(store, std::nan("")), hyplora::value_error);
  }
  SUBCASE("non-finite norm: gradients untouched, norm returned") {
    store.grad(b)(0, 0) = std::numeric_limits<T>::quiet_NaN();
    CHECK(std::isnan(clip_grad_norm(store, 1.0)));
    CHECK(store.grad(a)(0, 0) == T(3));
    store.grad(b)(0, 0) = std::numeric_limits<T>::infinity();
    CHECK(std::isinf(clip_grad_norm(store, 1.0)));
    CHECK(store.grad(b)(1, 0) == T(-4));
  }
}

TEST_CASE("grad_norm accumulates float gradients in double") {
  // 2^22 squares of 1e-3f: a float running sum stalls once it is large against each term.
  hyplora::ad::ParameterStore<float> store;
  const int n = 1 << 22;
  auto p = store.add("p", n, 1);
  store.grad(p).setConstant(1e-3f);
  const double want = std::sqrt(static_cast<double>(n)) * static_cast<double>(1e-3f);
  // double summation of n equal terms errs by at most ~n·ε/2 ≈ 5e-10; a float sum is off by %.
  CHECK(std::abs(grad_norm(store) - want) <= 1e-9 * want);
  CHECK(grad_norm(hyplora::ad::ParameterStore<float>{}) == 0.0);
}

}  // namespace optim_test_clip_grad
