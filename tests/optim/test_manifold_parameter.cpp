// Tests for include/hyplora/optim/manifold_parameter.hpp: the type-erased row operations equal
// the manifolds' own Eigen API (so the optimizers use the documented formulas), in place where
// the aliasing contract allows it; setup checks of manifold parameters.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include <hyplora/optim/manifold_parameter.hpp>

#include "optim/hyperbolic_problem.hpp"

namespace optim_test_manifold_parameter {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::Index;
using hyplora::Lorentz;
using hyplora::PoincareBall;
using hyplora::optim::ManifoldParameter;
using hyplora::optim::ManifoldRows;
using optim_test::Geo;
using optim_test::Vec;

TEST_CASE_TEMPLATE("ManifoldRows equal the manifold's Eigen API", M, Lorentz<double>, PoincareBall<double>) {
  using G = Geo<M>;
  const M m = G::make();
  const auto rows = hyplora::optim::make_rows(m);
  std::mt19937 rng(3);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (Index d : {Index(1), Index(2), Index(5)}) {
    const Index n = G::width(d);
    for (int trial = 0; trial < 5; ++trial) {
      const Vec x = G::random_point(m, d, rng, 1.0);
      const Vec y = G::random_point(m, d, rng, 1.0);
      const Vec u = G::random_tangent(m, x, rng, 0.7);
      Vec g(n), out(n);
      for (Index i = 0; i < n; ++i) g(i) = nd(rng);
      auto close = [](const Vec& a, const Vec& b) { return (a - b).norm() <= 1e-13 * (1 + b.norm()); };

      rows->egrad2rgrad(x.data(), g.data(), out.data(), n);
      CHECK(close(out, m.egrad2rgrad(x, g)));
      Vec inplace = g;  // out may alias the gradient
      rows->egrad2rgrad(x.data(), inplace.data(), inplace.data(), n);
      CHECK(close(inplace, out));
      CHECK(rows->sqnorm(x.data(), u.data(), n) == doctest::Approx(G::sqnorm(m, x, u)).epsilon(1e-13));
      rows->expmap(x.data(), u.data(), out.data(), n);
      CHECK(close(out, m.expmap(x, u)));
      rows->retr(x.data(), u.data(), out.data(), n);
      CHECK(close(out, G::retr(m, x, u)));
      rows->transp(x.data(), y.data(), u.data(), out.data(), n);
      CHECK(close(out, m.transp(x, y, u)));
      inplace = u;
      rows->transp(x.data(), y.data(), inplace.data(), inplace.data(), n);
      CHECK(close(inplace, out));
      rows->proju(x.data(), g.data(), out.data(), n);
      CHECK(close(out, G::proju(m, x, g)));
      rows->projx(x.data(), out.data(), n);
      CHECK(close(out, m.projx(x)));
      CHECK(rows->check_point(x.data(), n).empty());
    }
  }
  CHECK(std::string(rows->name()) == Geo<M>::name);
}

TEST_CASE("check_manifold_parameter names the offending row and shape") {
  hyplora::ad::ParameterStore<double> store;
  const Lorentz<double> L(4.0);
  hyplora::MatrixR<double> X = L.origin(Index(3), Index(2));
  X(2, 1) = 0.5;  // row 2 leaves the hyperboloid
  auto p = store.add("emb", X);
  auto q = store.add("thin", 3, 1);
  const auto rows = hyplora::optim::make_rows(L);
  try {
    hyplora::optim::check_manifold_parameter(store, p, *rows);
    FAIL("expected value_error");
  } catch (const hyplora::value_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'emb'") != std::string::npos);
    CHECK(msg.find("row 2") != std::string::npos);
  }
  CHECK_THROWS_AS(hyplora::optim::check_manifold_parameter(store, q, *rows), hyplora::shape_error);
  store.value(p) = L.origin(Index(3), Index(2));
  CHECK_NOTHROW(hyplora::optim::check_manifold_parameter(store, p, *rows));

  const PoincareBall<double> B(1.0);
  const ManifoldParameter<PoincareBall<double>> mp{q, B};
  store.value(q).setConstant(0.5);
  CHECK_NOTHROW(hyplora::optim::check_manifold_parameter(store, mp.param, *hyplora::optim::make_rows(mp.manifold)));
  store.value(q)(1, 0) = std::nan("");
  CHECK_THROWS_AS(hyplora::optim::check_manifold_parameter(store, q, *hyplora::optim::make_rows(B)),
                  hyplora::value_error);
}

}  // namespace optim_test_manifold_parameter
