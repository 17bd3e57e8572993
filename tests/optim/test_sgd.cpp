// Tests for include/hyplora/optim/sgd.hpp: three updates against torch.optim.SGD (float64
// reference values, computed outside this code), frozen parameters, validation, no allocation.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>

#include <hyplora/optim/sgd.hpp>

#include "support/alloc_counter.hpp"


namespace optim_test_sgd {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

using hyplora::optim::SGD;
using hyplora::optim::SGDConfig;
using Store = hyplora::ad::ParameterStore<double>;

template <class T>
T tol() {
  return std::is_same<T, float>::value ? T(2e-6) : T(1e-14);
}

// The test problem: x₀ = (0.5, −1, 2), gradient g = 2x − c with c = (0.1, 0.2, −0.3) at each
// step; a frozen 2×2 parameter with a nonzero gradient rides along and must not move.
template <class T, class Opt, class Cfg>
void run_three_steps(const Cfg& cfg, const double (&expected)[3][3]) {
  hyplora::ad::ParameterStore<T> store;
  auto frozen = store.add("frozen", 2, 2, /*trainable=*/false);
  auto x = store.add("x", 1, 3);
  store.value(frozen).setConstant(T(3));
  store.value(x) << T(0.5), T(-1.0), T(2.0);
  const T c[3] = {T(0.1), T(0.2), T(-0.3)};
  Opt opt(store, cfg);
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 3; ++i) store.grad(x)(0, i) = T(2) * store.value(x)(0, i) - c[i];
    store.grad(frozen).setConstant(T(7));
    opt.step();
    for (int i = 0; i < 3; ++i) {
      const T want = T(expected[t][i]);
      CHECK(std::abs(store.value(x)(0, i) - want) <= tol<T>() * (T(1) + std::abs(want)));
    }
    CHECK((store.value(frozen).array() == T(3)).all());
  }
}

}  // namespace

TEST_CASE_TEMPLATE("SGD: three steps equal torch.optim.SGD", T, float, double) {
  SUBCASE("plain") {
    SGDConfig cfg;
    cfg.lr = 0.1;
    const double want[3][3] = {{0.41, -0.78, 1.57}, {0.338, -0.604, 1.226}, {0.2804, -0.4632, 0.9508}};
    run_three_steps<T, SGD<T>>(cfg, want);
  }
  SUBCASE("momentum, dampening, weight decay") {
    SGDConfig cfg;
    cfg.lr = 0.1;
    cfg.momentum = 0.9;
    cfg.dampening = 0.1;
    cfg.weight_decay = 0.01;
    const double want[3][3] = {{0.40949999999999998, -0.77900000000000003, 1.5680000000000001},
                               {0.26297144999999994, -0.42117890000000002, 0.86854880000000012},
                               {0.092524219694999937, -0.0049486469900000152, 0.054922242080000093}};
    run_three_steps<T, SGD<T>>(cfg, want);
  }
  SUBCASE("Nesterov, weight decay") {
    SGDConfig cfg;
    cfg.lr = 0.1;
    cfg.momentum = 0.9;
    cfg.nesterov = true;
    cfg.weight_decay = 0.01;
    const double want[3][3] = {{0.32805000000000001, -0.58009999999999995, 1.1792},
                               {0.14846270499999997, -0.14154980999999997, 0.32194352000000015},
                               {-0.00051952253950002518, 0.22226314343900005, -0.38922026228799989}};
    run_three_steps<T, SGD<T>>(cfg, want);
  }
}

TEST_CASE("SGD: a parameter frozen after construction is skipped; momentum state is exposed") {
  Store store;
  auto a = store.add("a", 1, 2);
  auto b = store.add("b", 3, 1);
  SGDConfig cfg;
  cfg.lr = 0.5;
  cfg.momentum = 0.9;
  SGD<double> opt(store, cfg);
  CHECK(opt.momentum_arena().size() == 5);
  store.grad(a).setConstant(1.0);
  store.grad(b).setConstant(2.0);
  store.set_trainable(b, false);
  opt.step();
  CHECK(store.value(a)(0, 0) == doctest::Approx(-0.5));
  CHECK((store.value(b).array() == 0.0).all());
  CHECK(opt.momentum_buffer(a)(0, 1) == 1.0);  // b₁ = g₁, undamped (PyTorch)
  CHECK(opt.momentum_buffer(b).rows() == 3);
  CHECK(opt.step_counts()[0] == 1);
  CHECK(opt.step_counts()[1] == 0);
  opt.zero_grad();
  CHECK(store.grad(a)(0, 0) == 0.0);
}

TEST_CASE("SGD: parameters frozen at construction get no state") {
  Store store;
  auto big = store.add("base", 100, 10, /*trainable=*/false);
  auto x = store.add("x", 1, 1);
  SGDConfig cfg;
  cfg.momentum = 0.5;
  SGD<double> opt(store, cfg);
  CHECK(opt.momentum_arena().size() == 1);
  CHECK_THROWS_AS(opt.momentum_buffer(big), hyplora::value_error);
  CHECK(opt.momentum_buffer(x).size() == 1);
}

TEST_CASE("SGD: invalid configurations throw value_error") {
  Store store;
  store.add("x", 1, 1);
  auto make = [&](SGDConfig c) { SGD<double> o(store, c); (void)o; };
  SGDConfig c;
  c.lr = -1;
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c = SGDConfig{};
  c.lr = std::nan("");
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c = SGDConfig{};
  c.nesterov = true;  // momentum 0
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c.momentum = 0.9;
  c.dampening = 0.1;
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c.dampening = 0.0;
  CHECK_NOTHROW(make(c));
  SGD<double> o(store, c);
  CHECK_THROWS_AS(o.set_lr(-0.1), hyplora::value_error);
  o.set_lr(0.25);
  CHECK(o.lr() == 0.25);
}

TEST_CASE("SGD: step() allocates nothing") {
  REQUIRE(hyplora::testing::counter_works());

  Store store;
  auto w = store.add("w", 64, 32);
  store.add("frozen", 8, 8, false);
  auto u = store.add("u", 1, 5);
  SGDConfig cfg;
  cfg.lr = 0.01;
  cfg.momentum = 0.9;
  cfg.nesterov = true;
  cfg.weight_decay = 1e-4;
  SGD<double> opt(store, cfg);
  store.grad(w).setConstant(0.5);
  store.grad(u).setConstant(-0.5);
  opt.step();
  const long long before = hyplora::testing::allocations();
  for (int t = 0; t < 10; ++t) opt.step();
  const long long after = hyplora::testing::allocations();
  CHECK(after == before);
}

}  // namespace optim_test_sgd
