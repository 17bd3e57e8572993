// Tests for include/hyplora/optim/riemannian_adam.hpp: convergence to the Fréchet mean on both
// manifolds with iterates on the manifold at every step, two steps against their composition
// from the manifold API (scalar second moment per row, transported first moment, bias
// correction), plain parameters equal to AdamW, errors, no allocation per step.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include <hyplora/optim/lr_schedule.hpp>
#include <hyplora/optim/riemannian_adam.hpp>

#include "support/alloc_counter.hpp"
#include "optim/hyperbolic_problem.hpp"

namespace optim_test_riemannian_adam {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::Index;
using hyplora::Lorentz;
using hyplora::PoincareBall;
using hyplora::optim::RiemannianAdam;
using hyplora::optim::RiemannianAdamConfig;
using optim_test::FrechetProblem;
using optim_test::Geo;
using optim_test::Vec;
using Store = hyplora::ad::ParameterStore<double>;

TEST_CASE_TEMPLATE("RiemannianAdam converges to the Fréchet mean and stays on the manifold", M, Lorentz<double>,
                   PoincareBall<double>) {
  FrechetProblem<M> prob(2, 3, 4, 9u);
  RiemannianAdamConfig cfg;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.99;
  SUBCASE("Adam, exponential map") {}
  SUBCASE("AMSGrad, retraction, stabilize every 5 steps") {
    cfg.amsgrad = true;
    cfg.use_expmap = false;
    cfg.stabilize = 5;
  }
  // Adam's step does not shrink with the gradient, so the rate decays to 0 (Eq. (210)–(211)).
  const int steps = 800;
  const hyplora::optim::WarmupCosineLR sched(0.05, 0.0, 10, steps);
  Store store;
  auto x = store.add("x", prob.start);
  RiemannianAdam<double> opt(store, cfg);
  opt.add_manifold(x, prob.m);
  REQUIRE(prob.max_dist(prob.start) > 0.2);
  bool on_manifold = true;
  for (int t = 0; t < steps; ++t) {
    opt.set_lr(sched.lr(t));
    prob.set_grad(store, x);
    opt.step();
    on_manifold = on_manifold && prob.all_on_manifold(store.value(x));
  }
  CHECK(on_manifold);
  CHECK(prob.max_dist(store.value(x)) < 1e-6);
}

TEST_CASE_TEMPLATE("RiemannianAdam: two steps equal their composition from the manifold API", M, Lorentz<double>,
                   PoincareBall<double>) {
  using G = Geo<M>;
  const M m = G::make();
  std::mt19937 rng(5);
  std::normal_distribution<double> nd(0.0, 1.0);
  const Index d = 3, n = G::width(d);
  // Two rows: the second moment is one scalar per row, so rows with different gradient sizes
  // take different step lengths.
  Vec x0[2] = {G::random_point(m, d, rng, 0.7), G::random_point(m, d, rng, 0.7)};
  Vec g1[2] = {Vec(n), Vec(n)}, g2[2] = {Vec(n), Vec(n)};
  for (int r = 0; r < 2; ++r)
    for (Index i = 0; i < n; ++i) {
      g1[r](i) = (r + 1) * nd(rng);
      g2[r](i) = (r + 1) * nd(rng);
    }
  RiemannianAdamConfig cfg;
  cfg.lr = 0.05;
  cfg.beta1 = 0.8;
  cfg.beta2 = 0.9;
  cfg.eps = 1e-3;  // large enough to matter in the comparison
  cfg.weight_decay = 0.02;
  SUBCASE("exponential map") {}
  SUBCASE("retraction, AMSGrad") {
    cfg.use_expmap = false;
    cfg.amsgrad = true;
  }
  auto move = [&](const Vec& x, const Vec& u) {
    return Vec(m.projx(cfg.use_expmap ? Vec(m.expmap(x, u)) : G::retr(m, x, u)));
  };
  // Eq. (220)–(225) by hand, row by row.
  Vec x2[2];
  for (int r = 0; r < 2; ++r) {
    const Vec r1 = m.egrad2rgrad(x0[r], Vec(g1[r] + cfg.weight_decay * x0[r]));
    const Vec m1 = (1 - cfg.beta1) * r1;
    const double v1 = (1 - cfg.beta2) * G::sqnorm(m, x0[r], r1);
    const double a1 = cfg.lr / (1 - cfg.beta1) / (std::sqrt(v1 / (1 - cfg.beta2)) + cfg.eps);
    const Vec x1 = move(x0[r], Vec(-a1 * m1));
    const Vec m1t = m.transp(x0[r], x1, m1);
    const Vec r2 = m.egrad2rgrad(x1, Vec(g2[r] + cfg.weight_decay * x1));
    const Vec m2 = cfg.beta1 * m1t + (1 - cfg.beta1) * r2;
    double v2 = cfg.beta2 * v1 + (1 - cfg.beta2) * G::sqnorm(m, x1, r2);
    if (cfg.amsgrad) v2 = std::max(v1, v2);
    const double bc1 = 1 - cfg.beta1 * cfg.beta1, bc2 = 1 - cfg.beta2 * cfg.beta2;
    const double a2 = cfg.lr / bc1 / (std::sqrt(v2 / bc2) + cfg.eps);
    x2[r] = move(x1, Vec(-a2 * m2));
  }
  Store store;
  hyplora::MatrixR<double> X(2, n), G1(2, n), G2(2, n);
  for (int r = 0; r < 2; ++r) {
    X.row(r) = x0[r].transpose();
    G1.row(r) = g1[r].transpose();
    G2.row(r) = g2[r].transpose();
  }
  auto p = store.add("p", X);
  RiemannianAdam<double> opt(store, cfg);
  opt.add_manifold(hyplora::optim::ManifoldParameter<M>{p, m});
  store.grad(p) = G1;
  opt.step();
  store.grad(p) = G2;
  opt.step();
  for (int r = 0; r < 2; ++r) {
    CHECK((store.value(p).row(r).transpose() - x2[r]).norm() <= 1e-12);
    CHECK((x2[r] - x0[r]).norm() > 1e-3);
  }
  CHECK(store.grad(p) == G2);  // the store's gradient is never overwritten
}

TEST_CASE("RiemannianAdam: a mixed set; plain parameters get exactly AdamW's update") {
  FrechetProblem<Lorentz<double>> lp(2, 3, 2, 3u);
  FrechetProblem<PoincareBall<double>> pp(3, 2, 2, 5u);
  Store store;
  auto a = store.add("lorentz", lp.start);
  auto frozen = store.add("frozen", 2, 2, false);
  auto w = store.add("plain", 3, 4);
  auto b = store.add("ball", pp.start);
  store.value(w).setRandom();
  store.value(frozen).setConstant(1.0);
  Store ref = store;
  RiemannianAdamConfig cfg;
  cfg.lr = 0.02;
  cfg.weight_decay = 0.1;
  cfg.amsgrad = true;
  cfg.stabilize = 2;
  RiemannianAdam<double> opt(store, cfg);
  opt.add_manifold(a, lp.m);
  opt.add_manifold(b, pp.m);
  hyplora::optim::AdamW<double> adamw(ref, cfg);
  for (int t = 0; t < 4; ++t) {
    lp.set_grad(store, a);
    pp.set_grad(store, b);
    store.grad(w).setConstant(0.5 / (t + 1));
    store.grad(frozen).setConstant(5.0);
    ref.grad(ref.find("plain")) = store.grad(w);
    opt.step();
    adamw.step();
    CHECK((store.value(w).array() == ref.value(ref.find("plain")).array()).all());
    CHECK(lp.all_on_manifold(store.value(a)));
    CHECK(pp.all_on_manifold(store.value(b)));
  }
  CHECK((store.value(frozen).array() == 1.0).all());
  CHECK(opt.step_counts()[2] == 4);
}

TEST_CASE("RiemannianAdam: misuse throws") {
  const PoincareBall<double> B(1.0);
  Store store;
  auto frozen = store.add("frozen", 1, 3, false);
  hyplora::MatrixR<double> outside(1, 2);
  outside << 0.9, 0.9;  // |y| > R = 1
  auto out = store.add("outside", outside);
  auto good = store.add("good", hyplora::MatrixR<double>::Zero(3, 2));
  RiemannianAdamConfig cfg;
  RiemannianAdam<double> opt(store, cfg);
  CHECK_THROWS_AS(opt.add_manifold(frozen, B), hyplora::value_error);
  CHECK_THROWS_AS(opt.add_manifold(out, B), hyplora::value_error);
  opt.add_manifold(good, B);
  CHECK_THROWS_AS(opt.add_manifold(good, Lorentz<double>(1.0)), hyplora::value_error);
  cfg.beta2 = 1.0;
  CHECK_THROWS_AS(RiemannianAdam<double>(store, cfg), hyplora::value_error);
  cfg.beta2 = 0.999;
  cfg.stabilize = -3;
  CHECK_THROWS_AS(RiemannianAdam<double>(store, cfg), hyplora::value_error);
}

TEST_CASE("RiemannianAdam: step() allocates nothing") {
  REQUIRE(hyplora::testing::counter_works());

  FrechetProblem<Lorentz<double>> lp(4, 5, 2, 1u);
  FrechetProblem<PoincareBall<double>> pp(4, 8, 2, 2u);
  Store store;
  auto a = store.add("lorentz", lp.start);
  auto b = store.add("ball", pp.start);
  auto w = store.add("plain", 16, 16);
  RiemannianAdamConfig cfg;
  cfg.amsgrad = true;
  cfg.stabilize = 2;
  RiemannianAdam<double> opt(store, cfg);
  opt.add_manifold(a, lp.m);
  opt.add_manifold(b, pp.m);
  lp.set_grad(store, a);
  pp.set_grad(store, b);
  store.grad(w).setConstant(1.0);
  opt.step();
  const long long before = hyplora::testing::allocations();
  for (int t = 0; t < 6; ++t) opt.step();
  CHECK(hyplora::testing::allocations() == before);
}

TEST_CASE("RiemannianAdam<float>: converges to a target point on both manifolds, staying on them") {
  // f(x) = d(x, p)² per row: Riemannian gradient −2 log_x(p); ambient gradient J·r (Lorentz),
  // λ_x²·r (ball), as in Geo::egrad_for.
  using VecF = hyplora::VectorX<float>;
  hyplora::ad::ParameterStore<float> store;
  const Lorentz<float> L(0.5f);
  const PoincareBall<float> B(2.0f);
  auto a = store.add("a", L.origin(Index(2), Index(3)));
  auto b = store.add("b", hyplora::MatrixR<float>::Zero(2, 3));
  VecF ua(4), ub(3);
  ua << 0.0f, 0.4f, -0.3f, 0.5f;
  ub << -0.6f, 0.2f, 0.9f;
  const VecF pa = L.expmap0(ua), pb = B.expmap0(ub);
  RiemannianAdamConfig cfg;
  cfg.beta2 = 0.99;
  RiemannianAdam<float> opt(store, cfg);
  opt.add_manifold(a, L);
  opt.add_manifold(b, B);
  const int steps = 300;
  bool ok = true;
  for (int t = 0; t < steps; ++t) {
    opt.set_lr(hyplora::optim::WarmupCosineLR(0.05, 0.0, 5, steps).lr(t));
    for (Index i = 0; i < 2; ++i) {
      const VecF xa = store.value(a).row(i).transpose(), xb = store.value(b).row(i).transpose();
      VecF ra = -2.0f * L.logmap(xa, pa);
      ra(0) = -ra(0);
      const float lb = B.lambda(xb);
      store.grad(a).row(i) = ra.transpose();
      store.grad(b).row(i) = (-2.0f * lb * lb * B.logmap(xb, pb)).transpose();
    }
    opt.step();
    ok = ok && L.check_point(hyplora::MatrixR<float>(store.value(a))).ok;
    for (Index i = 0; i < 2; ++i) ok = ok && store.value(b).row(i).norm() < B.R();
  }
  CHECK(ok);
  for (Index i = 0; i < 2; ++i) {
    CHECK(L.dist(VecF(store.value(a).row(i).transpose()), pa) < 1e-3f);
    CHECK(B.dist(VecF(store.value(b).row(i).transpose()), pb) < 1e-3f);
  }
}

}  // namespace optim_test_riemannian_adam
