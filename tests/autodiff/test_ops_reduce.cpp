// Tests for include/hyplora/autodiff/ops_reduce.hpp: values against Eigen reductions, gradients
// against central differences (double, tol 1e-6) on full and degenerate shapes, the subgradient
// of row_norm at 0, and error cases.
#include <doctest/doctest.h>

#include <cmath>
#include <type_traits>
#include <utility>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace autodiff_test_ops_reduce {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using M = MatrixR<double>;
using Vars = std::vector<Var<double>>;

const std::vector<std::pair<int, int>> kShapes = {{3, 4}, {1, 1}, {1, 5}, {5, 1}};

template <class F>
void check_grad(F&& f, const std::vector<M>& xs) {
  auto res = hyplora::testing::gradcheck(std::forward<F>(f), xs);
  CHECK_MESSAGE(res.ok, res.report);
}
}  // namespace

TEST_CASE("sum, mean, sum_rows, sum_cols, mean_rows, mean_cols: values and gradients") {
  using Op = Var<double> (*)(Var<double>);
  struct Case {
    const char* name;
    Op op;
    M (*ref)(const M&);
  };
  const std::vector<Case> cases = {
      {"sum", &ad::sum<double>, [](const M& a) { return M(M::Constant(1, 1, a.sum())); }},
      {"mean", &ad::mean<double>, [](const M& a) { return M(M::Constant(1, 1, a.mean())); }},
      {"sum_rows", &ad::sum_rows<double>, [](const M& a) { return M(a.rowwise().sum()); }},
      {"sum_cols", &ad::sum_cols<double>, [](const M& a) { return M(a.colwise().sum()); }},
      {"mean_rows", &ad::mean_rows<double>, [](const M& a) { return M(a.rowwise().mean()); }},
      {"mean_cols", &ad::mean_cols<double>, [](const M& a) { return M(a.colwise().mean()); }},
  };
  for (const auto& cs : cases) {
    for (const auto& rc : kShapes) {
      const int r = rc.first, c = rc.second;
      CAPTURE(cs.name); CAPTURE(r); CAPTURE(c);
      const M a = M::Random(r, c);
      Tape<double> t;
      Var<double> y = cs.op(t.constant(a));
      const M ref = cs.ref(a);
      REQUIRE(y.rows() == ref.rows());
      REQUIRE(y.cols() == ref.cols());
      CHECK((M(y.value()) - ref).cwiseAbs().maxCoeff() <= 1e-15);
      check_grad([&](Tape<double>&, const Vars& v) { return cs.op(v[0]); }, {a});
    }
  }
}

TEST_CASE("reductions: exact backward (broadcast of the output gradient)") {
  const M a = M::Random(4, 3);
  Tape<double> t;
  Var<double> x = t.leaf(a);
  const M g = M::Random(4, 1);
  t.backward(ad::mean_rows(x), g);
  CHECK((M(x.grad()) - M(g.replicate(1, 3) / 3.0)).cwiseAbs().maxCoeff() <= 1e-16);
  Tape<double> u;
  Var<double> z = u.leaf(a);
  const M h = M::Random(1, 3);
  u.backward(ad::sum_cols(z), h);
  CHECK((M(z.grad()) - M(h.replicate(4, 1))).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("row_norm: value, gradient, subgradient 0 at a zero row, no overflow of the gradient") {
  M a = M::Random(4, 3);
  a.row(2).setZero();
  Tape<double> t;
  Var<double> x = t.leaf(a);
  Var<double> y = ad::row_norm(x);
  CHECK((M(y.value()) - M(a.rowwise().norm())).cwiseAbs().maxCoeff() <= 1e-15);
  const M g = M::Random(4, 1);
  t.backward(y, g);
  CHECK(M(x.grad()).allFinite());
  CHECK(M(x.grad()).row(2).cwiseAbs().maxCoeff() == 0.0);
  for (int i : {0, 1, 3})
    CHECK((M(x.grad()).row(i) - g(i, 0) * a.row(i) / a.row(i).norm()).cwiseAbs().maxCoeff() <= 1e-15);
  for (const auto& rc : kShapes) {
    const int r = rc.first, c = rc.second;
    CAPTURE(r); CAPTURE(c);
    check_grad([](Tape<double>&, const Vars& v) { return ad::row_norm(v[0]); }, {M(M::Random(r, c))});
  }
}

TEST_CASE("row_dot: value, gradients, shape errors") {
  for (const auto& rc : kShapes) {
    const int r = rc.first, c = rc.second;
    CAPTURE(r); CAPTURE(c);
    const M a = M::Random(r, c), b = M::Random(r, c);
    Tape<double> t;
    Var<double> y = ad::row_dot(t.constant(a), t.constant(b));
    CHECK((M(y.value()) - M((a.array() * b.array()).rowwise().sum())).cwiseAbs().maxCoeff() <= 1e-15);
    check_grad([](Tape<double>&, const Vars& v) { return ad::row_dot(v[0], v[1]); }, {a, b});
  }
  // a·a: both contributions
  const M a = M::Random(3, 2);
  Tape<double> t;
  Var<double> x = t.leaf(a);
  t.backward(ad::row_dot(x, x), M::Ones(3, 1));
  CHECK((M(x.grad()) - 2.0 * a).cwiseAbs().maxCoeff() <= 1e-15);
  try {
    (void)ad::row_dot(x, t.constant(M::Zero(3, 4)));
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("(3, 2)") != std::string::npos);
    CHECK(msg.find("(3, 4)") != std::string::npos);
  }
}

TEST_CASE("reductions: empty inputs — sums are 0, means throw value_error") {
  Tape<double> t;
  Var<double> e = t.constant(M::Zero(0, 3));
  CHECK(ad::sum(e).item() == 0.0);
  CHECK(ad::sum_cols(e).cols() == 3);
  CHECK(M(ad::sum_cols(e).value()).cwiseAbs().maxCoeff() == 0.0);
  CHECK(ad::sum_rows(e).rows() == 0);
  CHECK_THROWS_AS(ad::mean(e), hyplora::value_error);
  CHECK_THROWS_AS(ad::mean_cols(e), hyplora::value_error);
  CHECK(ad::mean_rows(e).rows() == 0);  // no rows: nothing to average, no error
  CHECK_THROWS_AS(ad::mean_rows(t.constant(M::Zero(2, 0))), hyplora::value_error);
}

TEST_CASE("reductions on a big tensor (parallel path) match Eigen") {
  const M a = M::Random(400, 300), b = M::Random(400, 300);
  Tape<double> t;
  Var<double> x = t.leaf(a), z = t.leaf(b);
  Var<double> n = ad::row_norm(x), d = ad::row_dot(x, z);
  CHECK((M(n.value()) - M(a.rowwise().norm())).cwiseAbs().maxCoeff() <= 1e-13);
  CHECK((M(d.value()) - M((a.array() * b.array()).rowwise().sum())).cwiseAbs().maxCoeff() <= 1e-12);
  t.backward(ad::sum(ad::add(n, d)));
  const M gx = (a.array().colwise() / a.rowwise().norm().array()).matrix() + b;
  CHECK((M(x.grad()) - gx).cwiseAbs().maxCoeff() <= 1e-13);
  CHECK((M(z.grad()) - a).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE_TEMPLATE("reductions in float", T, float, double) {
  const M a = M::Random(7, 9);
  Tape<T> t;
  Var<T> x = t.constant(a.cast<T>());
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-14;
  CHECK(std::abs(static_cast<double>(ad::mean(x).item()) - a.mean()) <= tol);
  CHECK((ad::row_norm(x).value().template cast<double>() - a.rowwise().norm()).cwiseAbs().maxCoeff() <= tol);
  CHECK((ad::sum_cols(x).value().template cast<double>() - a.colwise().sum()).cwiseAbs().maxCoeff() <= 10 * tol);
}

}  // namespace autodiff_test_ops_reduce
