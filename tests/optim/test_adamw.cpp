// Tests for include/hyplora/optim/adamw.hpp: three updates against torch.optim.Adam / AdamW
// (float64 reference values, computed outside this code), AMSGrad, state accessors, frozen
// parameters, validation, no allocation per step.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>

#include <hyplora/optim/adamw.hpp>

#include "support/alloc_counter.hpp"


namespace optim_test_adamw {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

using hyplora::optim::AdamConfig;
using hyplora::optim::AdamW;
using Store = hyplora::ad::ParameterStore<double>;

template <class T>
T tol() {
  return std::is_same<T, float>::value ? T(2e-6) : T(1e-14);
}

// x₀ = (0.5, −1, 2); at step t the gradient is s_t·(2x − c), c = (0.1, 0.2, −0.3); a frozen
// 2×2 parameter with a nonzero gradient must not move.
template <class T>
void run_three_steps(const AdamConfig& cfg, const double (&scale)[3], const double (&expected)[3][3]) {
  hyplora::ad::ParameterStore<T> store;
  auto frozen = store.add("frozen", 2, 2, /*trainable=*/false);
  auto x = store.add("x", 1, 3);
  store.value(frozen).setConstant(T(3));
  store.value(x) << T(0.5), T(-1.0), T(2.0);
  const T c[3] = {T(0.1), T(0.2), T(-0.3)};
  AdamW<T> opt(store, cfg);
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 3; ++i) store.grad(x)(0, i) = T(scale[t]) * (T(2) * store.value(x)(0, i) - c[i]);
    store.grad(frozen).setConstant(T(7));
    opt.step();
    for (int i = 0; i < 3; ++i) {
      const T want = T(expected[t][i]);
      CHECK(std::abs(store.value(x)(0, i) - want) <= tol<T>() * (T(1) + std::abs(want)));
    }
    CHECK((store.value(frozen).array() == T(3)).all());
  }
  CHECK(opt.step_count(x) == 3);
}

AdamConfig base_cfg() {
  AdamConfig c;
  c.lr = 0.1;
  c.beta1 = 0.9;
  c.beta2 = 0.99;
  c.eps = 1e-8;
  c.weight_decay = 0.1;
  return c;
}

}  // namespace

TEST_CASE_TEMPLATE("Adam/AdamW: three steps equal torch.optim", T, float, double) {
  const double ones[3] = {1, 1, 1};
  SUBCASE("AdamW, decoupled weight decay") {
    const double want[3][3] = {{0.39500000111111111, -0.89000000045454541, 1.8800000002325581},
                               {0.29253581716831184, -0.78148856747797391, 1.7613778263566706},
                               {0.19434199477518099, -0.67477440282672263, 1.6442513067236444}};
    run_three_steps<T>(base_cfg(), ones, want);
  }
  SUBCASE("Adam, L2-coupled weight decay") {
    AdamConfig c = base_cfg();
    c.decoupled_weight_decay = false;
    const double want[3][3] = {{0.40000000105263156, -0.90000000043478257, 1.9000000002222222},
                               {0.30135153701866524, -0.80034179561144381, 1.8001422496006843},
                               {0.20564443491960693, -0.70131010913530722, 1.7005319822082292}};
    run_three_steps<T>(c, ones, want);
  }
  // Shrinking gradients with β2 = 0.5 make v fall, so AMSGrad's running max changes the steps.
  const double shrink[3] = {1, 0.1, 0.01};
  SUBCASE("AdamW with AMSGrad") {
    AdamConfig c = base_cfg();
    c.beta2 = 0.5;
    c.amsgrad = true;
    const double want[3][3] = {{0.39500000111111111, -0.89000000045454541, 1.8800000002325581},
                               {0.32809381820085542, -0.81728434697745866, 1.7970995221982726},
                               {0.28160317986687622, -0.76521063287734925, 1.7349985169520767}};
    run_three_steps<T>(c, shrink, want);
  }
  SUBCASE("the same without AMSGrad") {
    AdamConfig c = base_cfg();
    c.beta2 = 0.5;
    const double want[3][3] = {{0.39500000111111111, -0.89000000045454541, 1.8800000002325581},
                               {0.3025352637662293, -0.79157329099431661, 1.7713457351983497},
                               {0.21365450299211469, -0.6965923786881284, 1.6661740320100178}};
    run_three_steps<T>(c, shrink, want);
  }
}

TEST_CASE("AdamW: state round-trips through the accessors (checkpoint/resume)") {
  // Run 5 steps straight, and 2 steps + save + a fresh optimizer loaded with the state + 3 steps.
  auto grad_at = [](Store& s, hyplora::ad::Parameter p) {
    s.grad(p) = (2.0 * s.value(p).array() - 0.3).matrix();
  };
  AdamConfig cfg = base_cfg();
  cfg.amsgrad = true;
  Store a;
  auto pa = a.add("w", 2, 3);
  a.value(pa) << 1, -2, 3, 0.5, 0.25, -4;
  Store b = a;
  auto pb = b.find("w");
  AdamW<double> oa(a, cfg);
  for (int t = 0; t < 5; ++t) { grad_at(a, pa); oa.step(); }

  AdamW<double> ob1(b, cfg);
  for (int t = 0; t < 2; ++t) { grad_at(b, pb); ob1.step(); }
  const std::vector<double> m = ob1.exp_avg_arena(), v = ob1.exp_avg_sq_arena(), vm = ob1.max_exp_avg_sq_arena();
  const auto steps = ob1.step_count(pb);
  CHECK(steps == 2);
  CHECK(ob1.exp_avg(pb).rows() == 2);
  CHECK(ob1.exp_avg(pb)(1, 2) == m[5]);
  AdamW<double> ob2(b, cfg);
  ob2.exp_avg_arena() = m;
  ob2.exp_avg_sq_arena() = v;
  ob2.max_exp_avg_sq_arena() = vm;
  ob2.set_step_count(pb, steps);
  Store c = b;  // the same point, for a resume that forgets the step count
  hyplora::ad::Tensor<double> after_third;
  for (int t = 0; t < 3; ++t) {
    grad_at(b, pb);
    ob2.step();
    if (t == 0) after_third = b.value(pb);
  }
  CHECK((a.value(pa).array() == b.value(pb).array()).all());

  // Forgetting the step count changes the bias correction, so the check above could fail.
  AdamW<double> oc(c, cfg);
  oc.exp_avg_arena() = m;
  oc.exp_avg_sq_arena() = v;
  oc.max_exp_avg_sq_arena() = vm;
  grad_at(c, c.find("w"));
  oc.step();
  CHECK((c.value(c.find("w")) - after_third).norm() > 1e-3);
  CHECK_THROWS_AS(oc.set_step_count(pb, -1), hyplora::value_error);
}

TEST_CASE("AdamW: frozen parameters get no state; invalid configurations throw") {
  Store store;
  auto base = store.add("base", 50, 50, false);
  auto x = store.add("x", 1, 4);
  AdamW<double> opt(store, AdamConfig{});
  CHECK(opt.exp_avg_arena().size() == 4);
  CHECK(opt.max_exp_avg_sq_arena().empty());
  CHECK_THROWS_AS(opt.exp_avg(base), hyplora::value_error);
  CHECK(opt.exp_avg(x).cols() == 4);
  auto make = [&](AdamConfig c) { AdamW<double> o(store, c); (void)o; };
  AdamConfig c;
  c.beta1 = 1.0;
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c = AdamConfig{};
  c.beta2 = -0.1;
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c = AdamConfig{};
  c.eps = 0;
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  c = AdamConfig{};
  c.weight_decay = -1;
  CHECK_THROWS_AS(make(c), hyplora::value_error);
  CHECK_THROWS_AS(opt.set_lr(std::nan("")), hyplora::value_error);
}

TEST_CASE("AdamW: step() allocates nothing") {
  REQUIRE(hyplora::testing::counter_works());

  hyplora::ad::ParameterStore<float> store;
  auto w = store.add("w", 64, 32);
  store.add("frozen", 8, 8, false);
  AdamConfig cfg;
  cfg.amsgrad = true;
  cfg.weight_decay = 0.01;
  AdamW<float> opt(store, cfg);
  store.grad(w).setConstant(0.5f);
  opt.step();
  const long long before = hyplora::testing::allocations();
  for (int t = 0; t < 10; ++t) opt.step();
  CHECK(hyplora::testing::allocations() == before);
}

TEST_CASE_TEMPLATE("adam_update: the chunked (and, from 2^16 scalars, threaded) path equals the per-scalar formula", T, float, double) {
  // Sizes around the 1024-scalar chunk and past the parallel threshold; every weight-decay form.
  for (std::size_t n : {std::size_t(1), std::size_t(1023), std::size_t(2500), std::size_t(70001)}) {
    for (int form = 0; form < 3; ++form) {
      CAPTURE(n); CAPTURE(form);
      AdamConfig c;
      c.lr = 0.01;
      c.beta2 = 0.95;
      c.weight_decay = form == 0 ? 0.0 : 0.1;
      c.decoupled_weight_decay = form != 2;
      std::vector<T> x(n), g(n), m(n), v(n);
      for (std::size_t i = 0; i < n; ++i) {
        x[i] = T(std::sin(0.37 * double(i)));
        g[i] = T(std::cos(1.3 * double(i))) * T(i % 7 == 0 ? 1e-6 : 1.0);
        m[i] = T(0.01 * std::sin(double(i)));
        v[i] = T(1e-4 * (1.0 + std::cos(double(i))));
      }
      std::vector<T> xr = x, mr = m, vr = v;
      hyplora::optim::detail::adam_update(x.data(), g.data(), m.data(), v.data(), static_cast<T*>(nullptr), n, c, 3);
      // Reference: Eq. (203)–(206) scalar by scalar, in double.
      const auto k = hyplora::optim::detail::adam_coefs(c, 3);
      double worst = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        double gi = double(g[i]), xi = double(xr[i]);
        if (form == 2) gi += c.weight_decay * xi;
        if (form == 1) xi *= 1.0 - c.lr * c.weight_decay;
        const double mi = c.beta1 * double(mr[i]) + (1.0 - c.beta1) * gi;
        const double vi = c.beta2 * double(vr[i]) + (1.0 - c.beta2) * gi * gi;
        xi -= k.step_size * mi / (std::sqrt(vi) * k.inv_sqrt_bc2 + c.eps);
        worst = std::max(worst, std::abs(double(x[i]) - xi) / (1.0 + std::abs(xi)));
        worst = std::max(worst, std::abs(double(m[i]) - mi) / (1e-3 + std::abs(mi)));
      }
      CHECK(worst <= double(tol<T>()) * 10);
    }
  }
}

}  // namespace optim_test_adamw
