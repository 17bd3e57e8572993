// Tests for include/hyplora/optim/riemannian_sgd.hpp: convergence to the Fréchet mean on both
// manifolds with iterates on the manifold at every step, two momentum steps against their
// composition from the manifold API, plain parameters equal to SGD, errors, no allocation.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include <hyplora/optim/riemannian_sgd.hpp>

#include "support/alloc_counter.hpp"

#include "optim/hyperbolic_problem.hpp"


namespace optim_test_riemannian_sgd {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::Index;
using hyplora::Lorentz;
using hyplora::PoincareBall;
using hyplora::optim::RiemannianSGD;
using hyplora::optim::RiemannianSGDConfig;
using optim_test::FrechetProblem;
using optim_test::Geo;
using optim_test::Vec;
using Store = hyplora::ad::ParameterStore<double>;

TEST_CASE_TEMPLATE("RiemannianSGD converges to the Fréchet mean and stays on the manifold", M, Lorentz<double>,
                   PoincareBall<double>) {
  const int pairs = 4;  // 8 points per row: Σ d² has Hessian ≈ 16 near the mean
  FrechetProblem<M> prob(2, 3, pairs, 7u);
  RiemannianSGDConfig cfg;
  cfg.lr = 0.03;
  int steps = 300;
  SUBCASE("plain, exponential map") {}
  SUBCASE("Nesterov momentum, exponential map") {
    cfg.momentum = 0.5;
    cfg.nesterov = true;
  }
  SUBCASE("momentum with dampening, retraction, stabilize every 7 steps") {
    cfg.momentum = 0.6;
    cfg.dampening = 0.2;
    cfg.use_expmap = false;
    cfg.stabilize = 7;
  }
  Store store;
  auto x = store.add("x", prob.start);
  RiemannianSGD<double> opt(store, cfg);
  opt.add_manifold(x, prob.m);
  REQUIRE(prob.max_dist(prob.start) > 0.2);
  bool on_manifold = true;
  for (int t = 0; t < steps; ++t) {
    prob.set_grad(store, x);
    opt.step();
    on_manifold = on_manifold && prob.all_on_manifold(store.value(x));
  }
  CHECK(on_manifold);
  CHECK(prob.max_dist(store.value(x)) < 1e-9);
}

TEST_CASE_TEMPLATE("RiemannianSGD: two momentum steps equal their composition from the manifold API", M,
                   Lorentz<double>, PoincareBall<double>) {
  using G = Geo<M>;
  const M m = G::make();
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0.0, 1.0);
  const Index d = 4, n = G::width(d);
  const Vec x0 = G::random_point(m, d, rng, 0.8);
  Vec g1(n), g2(n);
  for (Index i = 0; i < n; ++i) {
    g1(i) = nd(rng);
    g2(i) = nd(rng);
  }
  RiemannianSGDConfig cfg;
  cfg.lr = 0.1;
  cfg.momentum = 0.9;
  cfg.dampening = 0.1;
  cfg.weight_decay = 0.01;
  SUBCASE("exponential map") { cfg.use_expmap = true; }
  SUBCASE("retraction") { cfg.use_expmap = false; }
  auto move = [&](const Vec& x, const Vec& u) { return Vec(m.projx(cfg.use_expmap ? Vec(m.expmap(x, u)) : G::retr(m, x, u))); };

  // Eq. (215)–(218) by hand.
  const Vec r1 = m.egrad2rgrad(x0, Vec(g1 + cfg.weight_decay * x0));
  const Vec b1 = r1;  // first step: b = g
  const Vec x1 = move(x0, Vec(-cfg.lr * b1));
  const Vec b1t = m.transp(x0, x1, b1);
  const Vec r2 = m.egrad2rgrad(x1, Vec(g2 + cfg.weight_decay * x1));
  const Vec b2 = cfg.momentum * b1t + (1.0 - cfg.dampening) * r2;
  const Vec x2 = move(x1, Vec(-cfg.lr * b2));
  const Vec b2t = m.transp(x1, x2, b2);

  Store store;
  auto p = store.add("p", x0.transpose());
  RiemannianSGD<double> opt(store, cfg);
  opt.add_manifold(hyplora::optim::ManifoldParameter<M>{p, m});
  store.grad(p) = g1.transpose();
  opt.step();
  CHECK((store.value(p).transpose() - x1).norm() <= 1e-12);
  const Vec grad_before = store.grad(p).transpose();
  store.grad(p) = g2.transpose();
  opt.step();
  CHECK((store.value(p).transpose() - x2).norm() <= 1e-12);
  CHECK((Eigen::Map<const Vec>(opt.momentum_arena().data(), n) - b2t).norm() <= 1e-12);
  CHECK(grad_before == g1);  // the store's gradient is never overwritten by egrad2rgrad
  CHECK((x2 - x1).norm() > 1e-3);
}

TEST_CASE("RiemannianSGD: a mixed set; plain parameters get exactly SGD's update") {
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
  RiemannianSGDConfig cfg;
  cfg.lr = 0.05;
  cfg.momentum = 0.9;
  cfg.nesterov = true;
  cfg.weight_decay = 0.1;
  RiemannianSGD<double> opt(store, cfg);
  opt.add_manifold(a, lp.m);
  opt.add_manifold(b, pp.m);
  hyplora::optim::SGD<double> sgd(ref, cfg);
  for (int t = 0; t < 4; ++t) {
    lp.set_grad(store, a);
    pp.set_grad(store, b);
    store.grad(w).setConstant(0.25 * (t + 1));
    store.grad(frozen).setConstant(5.0);
    ref.grad(ref.find("plain")) = store.grad(w);
    opt.step();
    sgd.step();
    CHECK((store.value(w).array() == ref.value(ref.find("plain")).array()).all());
    CHECK(lp.all_on_manifold(store.value(a)));
    CHECK(pp.all_on_manifold(store.value(b)));
  }
  CHECK((store.value(frozen).array() == 1.0).all());
  CHECK(opt.step_counts()[0] == 4);
}

TEST_CASE("RiemannianSGD: misuse throws") {
  const Lorentz<double> L(1.0);
  Store store;
  auto frozen = store.add("frozen", 1, 3, false);
  auto zeros = store.add("zeros", 2, 3);        // (0, 0, 0) is not on the hyperboloid
  auto narrow = store.add("narrow", 2, 1);
  auto good = store.add("good", L.origin(Index(2), Index(2)));
  auto plain = store.add("plain", 1, 2);
  RiemannianSGDConfig cfg;
  RiemannianSGD<double> opt(store, cfg);
  CHECK_THROWS_AS(opt.add_manifold(frozen, L), hyplora::value_error);
  CHECK_THROWS_AS(opt.add_manifold(zeros, L), hyplora::value_error);
  CHECK_THROWS_AS(opt.add_manifold(narrow, L), hyplora::shape_error);
  opt.add_manifold(good, L);
  CHECK_THROWS_AS(opt.add_manifold(good, L), hyplora::value_error);
  opt.step();
  CHECK_THROWS_AS(opt.add_manifold(plain, PoincareBall<double>(1.0)), hyplora::value_error);
  cfg.stabilize = -1;
  CHECK_THROWS_AS(RiemannianSGD<double>(store, cfg), hyplora::value_error);
}

TEST_CASE("RiemannianSGD: step() allocates nothing") {
  REQUIRE(hyplora::testing::counter_works());

  FrechetProblem<Lorentz<double>> lp(4, 5, 2, 1u);
  FrechetProblem<PoincareBall<double>> pp(4, 8, 2, 2u);
  Store store;
  auto a = store.add("lorentz", lp.start);
  auto b = store.add("ball", pp.start);
  auto w = store.add("plain", 16, 16);
  RiemannianSGDConfig cfg;
  cfg.lr = 0.01;
  cfg.momentum = 0.9;
  cfg.stabilize = 2;
  RiemannianSGD<double> opt(store, cfg);
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

TEST_CASE("RiemannianSGD<float>: converges to a target point on both manifolds, staying on them") {
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
  RiemannianSGDConfig cfg;
  cfg.lr = 0.2;
  cfg.momentum = 0.3;
  RiemannianSGD<float> opt(store, cfg);
  opt.add_manifold(a, L);
  opt.add_manifold(b, B);
  const int steps = 60;
  bool ok = true;
  for (int t = 0; t < steps; ++t) {
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

}  // namespace optim_test_riemannian_sgd
