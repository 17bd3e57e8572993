// Tests for include/hyplora/autodiff/ops_elementwise.hpp: values against Eigen/std, gradients
// against central differences (double, tol 1e-6) incl. every broadcasting pattern and the
// degenerate shapes, stability at extreme inputs, and the error cases.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace autodiff_test_ops_elementwise {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using M = MatrixR<double>;
using Vars = std::vector<Var<double>>;

M rnd(hyplora::Index r, hyplora::Index c) { return M::Random(r, c); }
// Entries in [lo, hi].
M rnd_in(hyplora::Index r, hyplora::Index c, double lo, double hi) {
  return ((M::Random(r, c).array() + 1.0) * 0.5 * (hi - lo) + lo).matrix();
}

// The broadcast of m to (r, c), computed by Eigen's replicate.
M bcast(const M& m, hyplora::Index r, hyplora::Index c) { return m.replicate(r / m.rows(), c / m.cols()); }

template <class F>
void check_grad(F&& f, const std::vector<M>& xs) {
  auto res = hyplora::testing::gradcheck(std::forward<F>(f), xs);
  CHECK_MESSAGE(res.ok, res.report);
}

// Every broadcasting pattern and the degenerate shapes.
const std::vector<std::pair<std::pair<int, int>, std::pair<int, int>>> kShapePairs = {
    {{3, 4}, {3, 4}}, {{3, 4}, {1, 4}}, {{1, 4}, {3, 4}}, {{3, 4}, {3, 1}}, {{3, 1}, {3, 4}},
    {{3, 4}, {1, 1}}, {{1, 1}, {3, 4}}, {{1, 4}, {3, 1}}, {{1, 1}, {1, 1}}, {{1, 5}, {1, 5}},
    {{5, 1}, {5, 1}}, {{1, 5}, {1, 1}}, {{5, 1}, {1, 1}}};
}  // namespace

TEST_CASE("binary ops: values match Eigen with broadcasting, gradients pass gradcheck") {
  using BinOp = Var<double> (*)(Var<double>, Var<double>);
  struct Case {
    const char* name;
    BinOp op;
    std::function<M(const M&, const M&)> ref;
  };
  const std::vector<Case> cases = {
      {"add", &ad::add<double>, [](const M& a, const M& b) { return M(a + b); }},
      {"sub", &ad::sub<double>, [](const M& a, const M& b) { return M(a - b); }},
      {"mul", &ad::mul<double>, [](const M& a, const M& b) { return M(a.array() * b.array()); }},
      {"div", &ad::div<double>, [](const M& a, const M& b) { return M(a.array() / b.array()); }},
  };
  for (const auto& cs : cases) {
    for (const auto& sp : kShapePairs) {
      const int ar = sp.first.first, ac = sp.first.second;
      const int br = sp.second.first, bc = sp.second.second;
      const int r = std::max(ar, br), c = std::max(ac, bc);
      CAPTURE(cs.name);
      CAPTURE(ar); CAPTURE(ac); CAPTURE(br); CAPTURE(bc);
      const M a = rnd(ar, ac);
      const M b = rnd_in(br, bc, 0.5, 1.5);  // away from 0 for div
      Tape<double> t;
      Var<double> y = cs.op(t.constant(a), t.constant(b));
      REQUIRE(y.rows() == r);
      REQUIRE(y.cols() == c);
      const M ref = cs.ref(bcast(a, r, c), bcast(b, r, c));
      CHECK((M(y.value()) - ref).cwiseAbs().maxCoeff() <= 1e-15);
      check_grad([&](Tape<double>&, const Vars& v) { return cs.op(v[0], v[1]); }, {a, b});
    }
  }
}

TEST_CASE("binary ops: broadcast backward sums over the repeated axis") {
  // d/db Σ W ⊙ (a + b) for b (1, C) is the column sums of W; check it exactly.
  const M a = rnd(4, 3), b = rnd(1, 3), W = rnd(4, 3);
  Tape<double> t;
  Var<double> va = t.leaf(a), vb = t.leaf(b);
  Var<double> y = va + vb;
  t.backward(y, W);
  CHECK((M(vb.grad()) - M(W.colwise().sum())).cwiseAbs().maxCoeff() <= 1e-15);
  CHECK((M(va.grad()) - W).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("binary ops: the same Var on both sides accumulates both contributions") {
  const M a = rnd(2, 3);
  Tape<double> t;
  Var<double> x = t.leaf(a);
  Var<double> y = x * x;
  t.backward(y, M::Ones(2, 3));
  CHECK((M(x.grad()) - M(2.0 * a)).cwiseAbs().maxCoeff() <= 1e-15);
}

TEST_CASE("binary ops: shape and tape errors name both operands") {
  Tape<double> t, u;
  Var<double> a = t.constant(M::Zero(3, 4)), b = t.constant(M::Zero(2, 4));
  try {
    (void)ad::add(a, b);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("add") != std::string::npos);
    CHECK(msg.find("(3, 4)") != std::string::npos);
    CHECK(msg.find("(2, 4)") != std::string::npos);
  }
  CHECK_THROWS_AS(ad::mul(a, t.constant(M::Zero(3, 2))), hyplora::shape_error);
  CHECK_THROWS_AS(ad::sub(t.constant(M::Zero(1, 4)), t.constant(M::Zero(1, 3))), hyplora::shape_error);
  CHECK_THROWS_AS(ad::add(a, u.constant(M::Zero(3, 4))), hyplora::value_error);
}

TEST_CASE("scalar ops and operators: values and gradients") {
  const M a = rnd_in(3, 2, 0.5, 2.0);
  Tape<double> t;
  Var<double> x = t.constant(a);
  CHECK((M((-x).value()) + a).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((x + 2.0).value()) - M(a.array() + 2.0)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((2.0 + x).value()) - M(a.array() + 2.0)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((x - 2.0).value()) - M(a.array() - 2.0)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((2.0 - x).value()) - M(2.0 - a.array())).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((x * 3.0).value()) - M(a * 3.0)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((3.0 * x).value()) - M(a * 3.0)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((x / 4.0).value()) - M(a / 4.0)).cwiseAbs().maxCoeff() <= 1e-16);
  CHECK((M((3.0 / x).value()) - M(3.0 / a.array())).cwiseAbs().maxCoeff() <= 1e-15);
  CHECK((M((x + x).value()) - M(2 * a)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M((x / x).value()).array() - 1.0).abs().maxCoeff() <= 1e-15);
  check_grad([](Tape<double>&, const Vars& v) { return -v[0]; }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::add_scalar(v[0], 1.5); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::mul_scalar(v[0], -2.5); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return 1.5 - v[0]; }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return 1.5 / v[0]; }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return v[0] / 1.5; }, {a});
  // float Vars take double literals (the scalar is not deduced).
  Tape<float> tf;
  Var<float> xf = tf.constant(a.cast<float>());
  Var<float> yf = 2.0 * xf + 1;
  CHECK((yf.value() - (2.0f * a.cast<float>().array() + 1.0f).matrix()).cwiseAbs().maxCoeff() <= 1e-6f);
}

namespace {
struct UnaryCase {
  const char* name;
  Var<double> (*op)(Var<double>);
  double (*ref)(double);
  double lo, hi;  // input domain for the random test
};
double ref_softplus(double x) { return std::log1p(std::exp(x)); }
double ref_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double ref_square(double x) { return x * x; }
double ref_relu(double x) { return x > 0 ? x : 0.0; }
double ref_gelu(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double ref_gelu_exact(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double ref_sqrt(double x) { return std::sqrt(x); }
double ref_exp(double x) { return std::exp(x); }
double ref_log(double x) { return std::log(x); }
double ref_sinh(double x) { return std::sinh(x); }
double ref_cosh(double x) { return std::cosh(x); }
double ref_tanh(double x) { return std::tanh(x); }
double ref_asinh(double x) { return std::asinh(x); }
double ref_acosh(double x) { return std::acosh(x); }
double ref_atanh(double x) { return std::atanh(x); }

const std::vector<UnaryCase> kUnary = {
    {"sqrt", &ad::sqrt<double>, &ref_sqrt, 0.2, 3.0},
    {"exp", &ad::exp<double>, &ref_exp, -3.0, 3.0},
    {"log", &ad::log<double>, &ref_log, 0.2, 3.0},
    {"sinh", &ad::sinh<double>, &ref_sinh, -3.0, 3.0},
    {"cosh", &ad::cosh<double>, &ref_cosh, -3.0, 3.0},
    {"tanh", &ad::tanh<double>, &ref_tanh, -3.0, 3.0},
    {"asinh", &ad::asinh<double>, &ref_asinh, -5.0, 5.0},
    {"acosh", &ad::acosh<double>, &ref_acosh, 1.05, 5.0},
    {"atanh", &ad::atanh<double>, &ref_atanh, -0.9, 0.9},
    {"softplus", &ad::softplus<double>, &ref_softplus, -6.0, 6.0},
    {"sigmoid", &ad::sigmoid<double>, &ref_sigmoid, -6.0, 6.0},
    {"square", &ad::square<double>, &ref_square, -3.0, 3.0},
    {"relu", &ad::relu<double>, &ref_relu, -3.0, 3.0},
    {"gelu", &ad::gelu<double>, &ref_gelu, -4.0, 4.0},
    {"gelu_exact", &ad::gelu_exact<double>, &ref_gelu_exact, -4.0, 4.0},
};
}  // namespace

TEST_CASE("unary ops: values match std, gradients pass gradcheck on (3,4), (1,1), (1,5), (5,1)") {
  const std::vector<std::pair<int, int>> shapes = {{3, 4}, {1, 1}, {1, 5}, {5, 1}};
  for (const auto& u : kUnary) {
    for (const auto& rc : shapes) {
      const int r = rc.first, c = rc.second;
      CAPTURE(u.name);
      CAPTURE(r); CAPTURE(c);
      M a = rnd_in(r, c, u.lo, u.hi);
      if (std::string(u.name) == "relu") {
        // keep finite differences away from the kink at 0
        a = a.unaryExpr([](double v) { return std::abs(v) < 0.05 ? v + 0.1 : v; });
      }
      Tape<double> t;
      Var<double> y = u.op(t.constant(a));
      const M ref = a.unaryExpr(u.ref);
      CHECK((M(y.value()) - ref).cwiseAbs().maxCoeff() <= 1e-14 * std::max(1.0, ref.cwiseAbs().maxCoeff()));
      check_grad([&](Tape<double>&, const Vars& v) { return u.op(v[0]); }, {a});
    }
  }
}

TEST_CASE("clamp: values, gradient 1 inside [lo, hi] and 0 outside, lo > hi throws") {
  M a(1, 5);
  a << -2.0, -0.5, 0.0, 0.5, 2.0;
  Tape<double> t;
  Var<double> x = t.leaf(a);
  Var<double> y = ad::clamp(x, -1.0, 1.0);
  M ref(1, 5);
  ref << -1.0, -0.5, 0.0, 0.5, 1.0;
  CHECK((M(y.value()) - ref).cwiseAbs().maxCoeff() == 0.0);
  t.backward(y, M::Ones(1, 5));
  M g(1, 5);
  g << 0.0, 1.0, 1.0, 1.0, 0.0;
  CHECK((M(x.grad()) - g).cwiseAbs().maxCoeff() == 0.0);
  check_grad([](Tape<double>&, const Vars& v) { return ad::clamp(v[0], -0.5, 0.5); },
             {M((M(3, 4) << -0.9, -0.7, -0.3, 0.0, 0.2, 0.4, 0.6, 0.8, -0.6, 0.45, -0.45, 0.1).finished())});
  CHECK_THROWS_AS(ad::clamp(x, 1.0, -1.0), hyplora::value_error);
}

TEST_CASE("stable forms: softplus, sigmoid, gelu at extreme inputs; asinh gradient at 1e200") {
  M a(1, 6);
  a << -1000.0, -40.0, -1e-3, 1e-3, 40.0, 1000.0;
  Tape<double> t;
  Var<double> x = t.leaf(a);
  Var<double> sp = ad::softplus(x), sg = ad::sigmoid(x), ge = ad::gelu(x), gx = ad::gelu_exact(x);
  CHECK(M(sp.value()).allFinite());
  CHECK(sp.value()(0, 5) == doctest::Approx(1000.0).epsilon(1e-15));
  CHECK(sp.value()(0, 0) >= 0.0);
  CHECK(sp.value()(0, 0) < 1e-300);
  CHECK(sp.value()(0, 1) == doctest::Approx(std::exp(-40.0)).epsilon(1e-12));
  CHECK(sg.value()(0, 0) == 0.0);
  CHECK(sg.value()(0, 5) == 1.0);
  CHECK(sg.value()(0, 1) == doctest::Approx(std::exp(-40.0)).epsilon(1e-12));
  CHECK(ge.value()(0, 5) == 1000.0);
  CHECK(ge.value()(0, 0) == 0.0);
  CHECK(gx.value()(0, 5) == 1000.0);
  CHECK(gx.value()(0, 0) == 0.0);
  Var<double> all = ad::add(ad::add(sp, sg), ad::add(ge, gx));
  t.backward(all, M::Ones(1, 6));
  CHECK(M(x.grad()).allFinite());
  // the two GELUs agree to ~1e-3 everywhere
  const M b = Eigen::RowVectorXd::LinSpaced(41, -5.0, 5.0);
  Tape<double> u;
  Var<double> xb = u.constant(b);
  CHECK((M(ad::gelu(xb).value()) - M(ad::gelu_exact(xb).value())).cwiseAbs().maxCoeff() < 1e-3);
  // asinh's gradient 1/√(1+x²) must not become 0/NaN through x² overflow
  Tape<double> w;
  Var<double> big = w.leaf(M::Constant(1, 1, 1e200));
  w.backward(ad::asinh(big), M::Ones(1, 1));
  CHECK(big.grad()(0, 0) == doctest::Approx(1e-200).epsilon(1e-12));
}

TEST_CASE("acosh: clamps below 1 (value 0, gradient 0); anomaly mode throws naming the value") {
  M a(1, 3);
  a << 1.0 - 1e-12, 1.5, 3.0;
  {
    Tape<double> t;
    Var<double> x = t.leaf(a);
    Var<double> y = ad::acosh(x);
    CHECK(y.value()(0, 0) == 0.0);
    CHECK(y.value()(0, 1) == doctest::Approx(std::acosh(1.5)).epsilon(1e-15));
    t.backward(y, M::Ones(1, 3));
    CHECK(x.grad()(0, 0) == 0.0);
    CHECK(x.grad()(0, 2) == doctest::Approx(1.0 / std::sqrt(8.0)).epsilon(1e-14));
  }
  {
    Tape<double> t;
    hyplora::ad::DetectAnomalyGuard<double> guard(t);
    Var<double> x = t.leaf(a);
    try {
      (void)ad::acosh(x);
      FAIL("expected value_error");
    } catch (const hyplora::value_error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("acosh") != std::string::npos);
      CHECK(msg.find("< 1") != std::string::npos);
    }
  }
  // Near 1 the gradient uses (x−1)(x+1): exact for x = 1 + 2⁻³⁰.
  const double x0 = 1.0 + std::ldexp(1.0, -30);
  Tape<double> t;
  Var<double> x = t.leaf(M::Constant(1, 1, x0));
  t.backward(ad::acosh(x));
  CHECK(x.grad()(0, 0) == doctest::Approx(1.0 / std::sqrt((x0 - 1.0) * (x0 + 1.0))).epsilon(1e-15));
}

TEST_CASE_TEMPLATE("elementwise ops in float agree with double", T, float, double) {
  const M a = rnd_in(4, 5, 0.2, 0.9);
  Tape<T> t;
  Var<T> x = t.constant(a.cast<T>());
  Var<T> y = ad::gelu(x) * ad::softplus(x) / ad::sqrt(x) + ad::atanh(x) - ad::log(x) * ad::acosh(x + T(1));
  Tape<double> td;
  Var<double> xd = td.constant(a);
  Var<double> yd =
      ad::gelu(xd) * ad::softplus(xd) / ad::sqrt(xd) + ad::atanh(xd) - ad::log(xd) * ad::acosh(xd + 1.0);
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-15;
  CHECK((y.value().template cast<double>() - M(yd.value())).cwiseAbs().maxCoeff() <= tol * 10);
}

TEST_CASE("elementwise ops on a big tensor (parallel path) match the small-tensor path") {
  // 300×300 = 90000 elements, above kParallelMinElems.
  const M a = rnd(300, 300), b = rnd_in(300, 300, 0.5, 1.5);
  Tape<double> t;
  Var<double> x = t.leaf(a), z = t.leaf(b);
  Var<double> y = ad::tanh(x) * z + ad::exp(x) / z;
  const M ref = (a.array().tanh() * b.array() + a.array().exp() / b.array()).matrix();
  CHECK((M(y.value()) - ref).cwiseAbs().maxCoeff() <= 1e-14);
  const M W = rnd(300, 300);
  t.backward(y, W);
  const M gx = (W.array() * ((1.0 - a.array().tanh().square()) * b.array() + a.array().exp() / b.array())).matrix();
  const M gz = (W.array() * (a.array().tanh() - a.array().exp() / b.array().square())).matrix();
  CHECK((M(x.grad()) - gx).cwiseAbs().maxCoeff() <= 1e-13);
  CHECK((M(z.grad()) - gz).cwiseAbs().maxCoeff() <= 1e-13);
}

}  // namespace autodiff_test_ops_elementwise
