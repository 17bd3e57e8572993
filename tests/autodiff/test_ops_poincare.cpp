// Tests for include/hyplora/autodiff/ops_poincare.hpp: every op gradchecked in double (tol 1e-6)
// w.r.t. every input including K, on full and degenerate shapes (one row, d = 1, one column) and
// in the clamped branches; each fused op against its composition from primitive tape ops (value
// and gradients, 1e-12); the finiteness sweep (row norms log-uniform in 1e-15…1e4, K in
// 1e-3…1e3, float and double); buffer reuse on rebuild; and the error cases.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_poincare.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/manifold/detail/poincare_rows.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace autodiff_test_ops_poincare {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
namespace pr = hyplora::poincare_rows;
using M = MatrixR<double>;
using Vars = std::vector<Var<double>>;
using Fn = std::function<Var<double>(Tape<double>&, const Vars&)>;

M scalar(double v) { return M::Constant(1, 1, v); }

// Rows of norm `scale` (random directions), from a fixed seed.
M rows_of_norm(Index n, Index d, double scale, unsigned seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> nd;
  M v(n, d);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) v(i, j) = nd(g);
    v.row(i) *= scale / v.row(i).norm();
  }
  return v;
}

void check_grad(const Fn& f, const std::vector<M>& xs) {
  auto res = hyplora::testing::gradcheck(f, xs);
  CHECK_MESSAGE(res.ok, res.report);
}

double mixed(const M& a, const M& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1.0, b.cwiseAbs().maxCoeff());
}

void check_composition(const Fn& fused, const Fn& composed, const std::vector<M>& xs) {
  Tape<double> tf, tc;
  Vars vf, vc;
  for (const M& x : xs) {
    vf.push_back(tf.leaf(x));
    vc.push_back(tc.leaf(x));
  }
  Var<double> of = fused(tf, vf), oc = composed(tc, vc);
  REQUIRE(of.shape() == oc.shape());
  CHECK(mixed(of.value(), oc.value()) <= 1e-12);
  const M seed = M::Random(of.rows(), of.cols());
  tf.backward(of, seed);
  tc.backward(oc, seed);
  for (std::size_t k = 0; k < xs.size(); ++k) {
    CAPTURE(k);
    CHECK(mixed(vf[k].grad(), vc[k].grad()) <= 1e-12);
  }
}

const std::vector<std::pair<Index, Index>> kShapes = {{4, 3}, {1, 1}, {5, 1}, {1, 5}};
}  // namespace

TEST_CASE("poincare_expmap0 / poincare_logmap0: gradcheck w.r.t. v and K, incl. the clamped branches") {
  const Fn ex = [](Tape<double>&, const Vars& v) { return ad::poincare_expmap0(v[0], v[1]); };
  const Fn lg = [](Tape<double>&, const Vars& v) { return ad::poincare_logmap0(v[0], v[1]); };
  unsigned seed = 1;
  for (const auto& [n_, d_] : kShapes)
    for (double K : {0.3, 1.0, 5.0}) {
      const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
      const double R = std::sqrt(K);
      for (double t : {1e-3, 0.3, 0.9}) {
        CAPTURE(n); CAPTURE(d); CAPTURE(K); CAPTURE(t);
        check_grad(ex, {rows_of_norm(n, d, 2.0 * t * R, seed++), scalar(K)});  // τ up to 1.8
        check_grad(lg, {rows_of_norm(n, d, t * R, seed++), scalar(K)});        // |y|/R up to 0.9
      }
      // Clamped: exp_0 saturated at (1 − ε)R (τ = 20), log_0 of points outside the ε-ball
      // (Eq. (68), (73)); both maps have constant length there, with the exact Jacobian.
      check_grad(ex, {rows_of_norm(n, d, 20.0 * R, seed++), scalar(K)});
      check_grad(lg, {rows_of_norm(n, d, 1.5 * R, seed++), scalar(K)});
    }
}

TEST_CASE("poincare_dist: gradcheck w.r.t. x, y and K") {
  const Fn f = [](Tape<double>&, const Vars& v) { return ad::poincare_dist(v[0], v[1], v[2]); };
  unsigned seed = 31;
  for (const auto& [n_, d_] : kShapes)
    for (double K : {0.4, 1.0, 3.0}) {
      const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
      const double R = std::sqrt(K);
      for (double t : {1e-3, 0.4, 0.95}) {
        CAPTURE(n); CAPTURE(d); CAPTURE(K); CAPTURE(t);
        const M x = rows_of_norm(n, d, t * R, seed++);
        check_grad(f, {x, x + rows_of_norm(n, d, 0.02 * R, seed++), scalar(K)});  // close pairs
        check_grad(f, {x, rows_of_norm(n, d, 0.5 * R, seed++), scalar(K)});
      }
    }
}

TEST_CASE("Poincaré fused ops equal their composition from primitive ops (value and gradients)") {
  // exp_0(v) = tanh(τ)/τ·v, log_0(y) = atanh(t)/t·y with τ, t = |·|/√K (Eq. (68), (70)).
  const Fn ex = [](Tape<double>&, const Vars& v) { return ad::poincare_expmap0(v[0], v[1]); };
  const Fn ex_c = [](Tape<double>&, const Vars& v) {
    Var<double> tau = ad::div(ad::row_norm(v[0]), ad::sqrt(v[1]));
    return ad::mul(v[0], ad::div(ad::tanh(tau), tau));
  };
  const Fn lg = [](Tape<double>&, const Vars& v) { return ad::poincare_logmap0(v[0], v[1]); };
  const Fn lg_c = [](Tape<double>&, const Vars& v) {
    Var<double> t = ad::div(ad::row_norm(v[0]), ad::sqrt(v[1]));
    return ad::mul(v[0], ad::div(ad::atanh(t), t));
  };
  // d = 2R·asinh(R|x − y|/√((K − |x|²)(K − |y|²))) (Eq. (76)).
  const Fn dist = [](Tape<double>&, const Vars& v) { return ad::poincare_dist(v[0], v[1], v[2]); };
  const Fn dist_c = [](Tape<double>&, const Vars& v) {
    Var<double> R = ad::sqrt(v[2]);
    Var<double> gx = ad::sub(v[2], ad::row_dot(v[0], v[0])), gy = ad::sub(v[2], ad::row_dot(v[1], v[1]));
    Var<double> s = ad::div(ad::mul(R, ad::row_norm(ad::sub(v[0], v[1]))), ad::sqrt(ad::mul(gx, gy)));
    return ad::mul(ad::mul_scalar(R, 2.0), ad::asinh(s));
  };
  unsigned seed = 51;
  for (const auto& [n_, d_] : kShapes)
    for (double K : {0.5, 2.0}) {
      const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
      CAPTURE(n); CAPTURE(d); CAPTURE(K);
      const double R = std::sqrt(K);
      const M a = rows_of_norm(n, d, 0.6 * R, seed++), b = rows_of_norm(n, d, 0.3 * R, seed++);
      check_composition(ex, ex_c, {rows_of_norm(n, d, 1.2 * R, seed++), scalar(K)});
      check_composition(lg, lg_c, {a, scalar(K)});
      check_composition(dist, dist_c, {a, b, scalar(K)});
    }
}

TEST_CASE_TEMPLATE("Poincaré ops: finiteness sweep over row norms 1e-15…1e4 and K 1e-3…1e3", T, float, double) {
  // One case is one row of one op at one (K, d). exp_0 and log_0 take the raw rows (log_0 reads
  // a row outside the ε-ball as its projection, Eq. (73)); dist takes x = exp_0(a), y = exp_0(b)
  // of such rows, every 4th pair coincident. Rows where exp_0 saturates at (1 − ε)R (Eq. (68)) or
  // log_0 clamps |y|/R at 1 − ε (Eq. (73)) are counted and reported.
  using MT = MatrixR<T>;
  std::mt19937_64 gen(77);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const Index N = 40;
  auto rows = [&](Index d) {
    MT v(N, d);
    std::normal_distribution<double> nd;
    std::vector<double> r(static_cast<std::size_t>(d));
    for (Index i = 0; i < N; ++i) {
      double s2 = 0.0;
      for (auto& e : r) { e = nd(gen); s2 += e * e; }
      const double norm = i == 0 ? 0.0 : std::pow(10.0, -15.0 + 19.0 * u01(gen));  // row 0: exactly 0
      for (Index j = 0; j < d; ++j) v(i, j) = static_cast<T>(r[static_cast<std::size_t>(j)] * norm / std::sqrt(s2));
    }
    return v;
  };
  long cases = 0, bad = 0, sat_exp = 0, clamp_log = 0;
  std::ostringstream first_bad;
  auto finite = [](const auto& m) { return m.array().isFinite().all(); };
  for (int kexp = -6; kexp <= 6; ++kexp) {  // K = 10^(kexp/2): 1e-3 … 1e3
    const T K = static_cast<T>(std::pow(10.0, kexp / 2.0));
    const double R = std::sqrt(static_cast<double>(K)), t_max = 1.0 - double(hyplora::numerics<T>::ball_eps());
    for (Index d : {1, 3, 16}) {
      const MT a = rows(d), b = rows(d);
      MT x(N, d), y(N, d);
      for (Index i = 0; i < N; ++i) {
        pr::expmap0(a.row(i).data(), x.row(i).data(), d, K);
        pr::expmap0(b.row(i).data(), y.row(i).data(), d, K);
        if (i % 4 == 0) y.row(i) = x.row(i);
        const double na = a.row(i).template cast<double>().norm();
        if (std::tanh(na / R) > t_max) ++sat_exp;
        if (na / R > t_max) ++clamp_log;
      }
      for (int op = 0; op < 3; ++op) {
        Tape<T> t;
        Var<T> Kv = t.leaf(MT::Constant(1, 1, K));
        Var<T> in0 = t.leaf(op <= 1 ? a : x), in1 = t.leaf(y);
        Var<T> out = op == 0 ? ad::poincare_expmap0(in0, Kv)
                   : op == 1 ? ad::poincare_logmap0(in0, Kv)
                             : ad::poincare_dist(in0, in1, Kv);
        t.backward(out, MT::Ones(out.rows(), out.cols()));
        const MT val = out.value(), g0 = in0.grad(), g1 = in1.grad();
        const bool ok_K = std::isfinite(static_cast<double>(Kv.grad()(0, 0)));
        for (Index i = 0; i < N; ++i) {
          ++cases;
          const bool ok = finite(val.row(i)) && finite(g0.row(i)) && finite(g1.row(i)) && ok_K;
          if (!ok && bad++ == 0) first_bad << "op " << op << " K " << double(K) << " d " << d << " row " << i;
        }
      }
    }
  }
  MESSAGE("Poincare finiteness sweep (" << std::string(sizeof(T) == 4 ? "float" : "double") << "): " << cases
          << " cases (3 ops x 13 K x 3 d x " << N << " rows); ε-ball clamps (ε = "
          << double(hyplora::numerics<T>::ball_eps()) << "): exp_0 saturated in about " << sat_exp
          << " of 1560 input rows, log_0 read " << clamp_log << " rows as their projection");
  CHECK_MESSAGE(bad == 0, bad << " non-finite cases, first: " << first_bad.str());
  CHECK(sat_exp > 0);
  CHECK(clamp_log > 0);
}

TEST_CASE("Poincaré ops: rebuilding the graph after clear() reuses every buffer") {
  Tape<double> t;
  const M v = rows_of_norm(6, 4, 0.7, 5), w = rows_of_norm(6, 4, 0.2, 6);
  std::vector<const double*> first;
  for (int step = 0; step < 3; ++step) {
    t.clear();
    Var<double> K = t.leaf(scalar(1.3)), vv = t.leaf(v), wv = t.leaf(w);
    Var<double> x = ad::poincare_expmap0(vv, K);
    Var<double> loss = ad::sum(ad::add(ad::poincare_dist(x, ad::poincare_expmap0(wv, K), K),
                                       ad::row_norm(ad::poincare_logmap0(x, K))));
    t.backward(loss);
    std::vector<const double*> ptrs;
    for (int id = 0; id < t.size(); ++id) {
      auto& n = t.node(id);
      ptrs.push_back(n.own_value.data());
      ptrs.push_back(n.own_grad.data());
      for (const auto& s : n.saved) ptrs.push_back(s.data());
    }
    if (step == 0) first = ptrs;
    else CHECK(ptrs == first);
  }
}

TEST_CASE("Poincaré ops: shape and value errors name the offending shape or value") {
  Tape<double> t;
  Var<double> K = t.constant(scalar(1.0)), x = t.constant(M::Random(3, 4) * 0.1), y = t.constant(M::Random(3, 2) * 0.1);
  CHECK_THROWS_WITH_AS(ad::poincare_dist(x, y, K), doctest::Contains("(3, 2)"), hyplora::shape_error);
  CHECK_THROWS_AS(ad::poincare_expmap0(x, t.constant(M::Ones(2, 1))), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::poincare_logmap0(x, t.constant(scalar(-0.5))), doctest::Contains("-0.5"), hyplora::value_error);
  CHECK_THROWS_AS(ad::poincare_expmap0(x, t.constant(scalar(std::nan("")))), hyplora::value_error);
  Tape<double> other;
  CHECK_THROWS_AS(ad::poincare_dist(x, x, other.constant(scalar(1.0))), hyplora::value_error);
}

}  // namespace autodiff_test_ops_poincare
