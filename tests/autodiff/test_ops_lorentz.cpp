// Tests for include/hyplora/autodiff/ops_lorentz.hpp: every op gradchecked in double (tol 1e-6)
// w.r.t. every input including R, on full and degenerate shapes (one row, d = 1, one column);
// each fused op against its composition from primitive tape ops (value and gradients, 1e-12);
// the finiteness sweep (row norms log-uniform in 1e-15…1e4, K in 1e-3…1e3, float and double);
// buffer reuse on rebuild; and the error cases.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_lorentz.hpp>
#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/autodiff/ops_shape.hpp>
#include <hyplora/manifold/detail/lorentz_rows.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace autodiff_test_ops_lorentz {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
namespace lr = hyplora::lorentz_rows;
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

// (√(R² + |v|²), v): a point of H from its spatial part, composed from primitive ops so that a
// gradcheck through it moves the point along H (and with R).
Var<double> on_H(Var<double> v, Var<double> R) {
  return ad::concat_cols({ad::sqrt(ad::add(ad::row_dot(v, v), ad::square(R))), v});
}

M point(const M& v, double R) {
  M x(v.rows(), v.cols() + 1);
  for (Index i = 0; i < v.rows(); ++i) x(i, 0) = std::sqrt(R * R + v.row(i).squaredNorm());
  x.rightCols(v.cols()) = v;
  return x;
}

void check_grad(const Fn& f, const std::vector<M>& xs) {
  auto res = hyplora::testing::gradcheck(f, xs);
  CHECK_MESSAGE(res.ok, res.report);
}

// max |a − b| / max(1, max |b|): the mixed relative difference of two tensors.
double mixed(const M& a, const M& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1.0, b.cwiseAbs().maxCoeff());
}

// The fused op and its composition on separate tapes, same inputs and seed: values and every
// input's gradient agree to 1e-12.
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

TEST_CASE("lorentz_expmap0 / lorentz_logmap0: gradcheck w.r.t. v and R, incl. the clamped branch") {
  const Fn ex = [](Tape<double>&, const Vars& v) { return ad::lorentz_expmap0(v[0], v[1]); };
  const Fn lg = [](Tape<double>&, const Vars& v) { return ad::lorentz_logmap0(v[0], v[1]); };
  unsigned seed = 1;
  for (const auto& [n_, d_] : kShapes)
    for (double R : {0.6, 1.0, 2.5})
      for (double scale : {1e-3, 0.8, 4.0}) {
        const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
        CAPTURE(n); CAPTURE(d); CAPTURE(R); CAPTURE(scale);
        const M v = rows_of_norm(n, d, scale * R, seed++);
        check_grad(ex, {v, scalar(R)});
        check_grad(lg, {v, scalar(R)});
      }
  // |v| = 400 R > max_exp_arg radii: the saturated map c = sinh(350)/ρ (Eq. (16)) and its exact
  // Jacobian; the values are ~1e151, so the mixed relative error still measures the agreement.
  const M v = rows_of_norm(3, 2, 400.0, 99);
  check_grad(ex, {v, scalar(1.0)});
}

TEST_CASE("lorentz_llr: gradcheck w.r.t. W, ambient x and R; value equals lorentz_rows::llr") {
  const Fn f = [](Tape<double>&, const Vars& v) { return ad::lorentz_llr(v[0], v[1], v[2]); };
  unsigned seed = 11;
  for (const auto& [n_, d_] : kShapes)
    for (Index m : {1, 3})
      for (double R : {0.5, 1.7}) {
        const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
        CAPTURE(n); CAPTURE(d); CAPTURE(m); CAPTURE(R);
        const M W = M::Random(m, d), x = point(rows_of_norm(n, d, 1.3, seed++), R);
        check_grad(f, {W, x, scalar(R)});
        Tape<double> t;
        const M out = ad::lorentz_llr(t.constant(W), t.constant(x), t.constant(scalar(R))).value();
        M ref(n, m + 1);
        for (Index i = 0; i < n; ++i) lr::llr(W.data(), m, x.row(i).data(), ref.row(i).data(), d, R);
        CHECK(mixed(out, ref) <= 1e-14);
        // x0 is not read: its gradient is exactly 0.
        Tape<double> u;
        Var<double> xv = u.leaf(x);
        u.backward(ad::lorentz_llr(u.constant(W), xv, u.constant(scalar(R))), M::Ones(n, m + 1));
        CHECK(M(xv.grad()).col(0).cwiseAbs().maxCoeff() == 0.0);
      }
}

TEST_CASE("lorentz_dist / lorentz_dist0: gradcheck along H w.r.t. the points and R") {
  const Fn dist = [](Tape<double>&, const Vars& v) {
    return ad::lorentz_dist(on_H(v[0], v[2]), on_H(v[1], v[2]), v[2]);
  };
  const Fn dist0_H = [](Tape<double>&, const Vars& v) { return ad::lorentz_dist0(on_H(v[0], v[1]), v[1]); };
  const Fn dist0 = [](Tape<double>&, const Vars& v) { return ad::lorentz_dist0(v[0], v[1]); };
  unsigned seed = 21;
  for (const auto& [n_, d_] : kShapes)
    for (double R : {0.5, 1.0, 3.0})
      for (double scale : {0.01, 1.0, 6.0}) {
        const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
        CAPTURE(n); CAPTURE(d); CAPTURE(R); CAPTURE(scale);
        const M a = rows_of_norm(n, d, scale * R, seed++);
        // close pairs (the chord form of Eq. (20)) and far pairs (the inner-product form)
        const M b = a + rows_of_norm(n, d, 0.05 * R, seed++);
        const M c = rows_of_norm(n, d, 2.0 * R, seed++);
        check_grad(dist, {a, b, scalar(R)});
        check_grad(dist, {a, c, scalar(R)});
        check_grad(dist0_H, {a, scalar(R)});
        check_grad(dist0, {point(a, R), scalar(R)});  // ambient x: x0 is not read
      }
}

TEST_CASE("Lorentz fused ops equal their composition from primitive ops (value and gradients)") {
  // f_R(v) = (sinh ρ/ρ)·v, f_R⁻¹(y) = (asinh τ/τ)·y with ρ, τ = |·|/R (Eq. (17), (18)).
  const Fn ex = [](Tape<double>&, const Vars& v) { return ad::lorentz_expmap0(v[0], v[1]); };
  const Fn ex_c = [](Tape<double>&, const Vars& v) {
    Var<double> rho = ad::div(ad::row_norm(v[0]), v[1]);
    return ad::mul(v[0], ad::div(ad::sinh(rho), rho));
  };
  const Fn lg = [](Tape<double>&, const Vars& v) { return ad::lorentz_logmap0(v[0], v[1]); };
  const Fn lg_c = [](Tape<double>&, const Vars& v) {
    Var<double> tau = ad::div(ad::row_norm(v[0]), v[1]);
    return ad::mul(v[0], ad::div(ad::asinh(tau), tau));
  };
  // LLR: (√(|x_s Wᵀ|² + R²), x_s Wᵀ) (Eq. (32)).
  const Fn llr = [](Tape<double>&, const Vars& v) { return ad::lorentz_llr(v[0], v[1], v[2]); };
  const Fn llr_c = [](Tape<double>&, const Vars& v) {
    Var<double> z = ad::matmul(ad::slice_cols(v[1], 1, v[1].cols() - 1), v[0], false, true);
    return ad::concat_cols({ad::sqrt(ad::add(ad::row_dot(z, z), ad::square(v[2]))), z});
  };
  // d = 2R·asinh(√(e/2)), e = (x0 y0 − x_s·y_s)/R² − 1: the ambient extension dist_backward
  // differentiates (Eq. (20), (21)); d(o, x) = R·asinh(|x_s|/R) (Eq. (22)).
  const Fn dist = [](Tape<double>&, const Vars& v) { return ad::lorentz_dist(v[0], v[1], v[2]); };
  const Fn dist_c = [](Tape<double>&, const Vars& v) {
    const Index d = v[0].cols() - 1;
    Var<double> x0 = ad::slice_cols(v[0], 0, 1), y0 = ad::slice_cols(v[1], 0, 1);
    Var<double> ip = ad::sub(ad::mul(x0, y0), ad::row_dot(ad::slice_cols(v[0], 1, d), ad::slice_cols(v[1], 1, d)));
    Var<double> e = ad::add_scalar(ad::div(ip, ad::square(v[2])), -1.0);
    return ad::mul(ad::mul_scalar(v[2], 2.0), ad::asinh(ad::sqrt(ad::mul_scalar(e, 0.5))));
  };
  const Fn dist0 = [](Tape<double>&, const Vars& v) { return ad::lorentz_dist0(v[0], v[1]); };
  const Fn dist0_c = [](Tape<double>&, const Vars& v) {
    Var<double> n = ad::row_norm(ad::slice_cols(v[0], 1, v[0].cols() - 1));
    return ad::mul(v[1], ad::asinh(ad::div(n, v[1])));
  };
  unsigned seed = 41;
  for (const auto& [n_, d_] : kShapes)
    for (double R : {0.7, 1.9}) {
      const Index n = n_, d = d_;  // a lambda cannot capture a structured binding in C++17
      CAPTURE(n); CAPTURE(d); CAPTURE(R);
      const M v = rows_of_norm(n, d, 1.1 * R, seed++), w = rows_of_norm(n, d, 0.6 * R, seed++);
      check_composition(ex, ex_c, {v, scalar(R)});
      check_composition(lg, lg_c, {v, scalar(R)});
      check_composition(llr, llr_c, {M::Random(2, d), point(v, R), scalar(R)});
      check_composition(dist, dist_c, {point(v, R), point(w, R), scalar(R)});
      check_composition(dist0, dist0_c, {point(v, R), scalar(R)});
    }
}

TEST_CASE_TEMPLATE("Lorentz ops: finiteness sweep over row norms 1e-15…1e4 and K 1e-3…1e3", T, float, double) {
  // Each case is one row of one op at one (K, d); its value, its input gradients and its share
  // of the R gradient must all be finite. Rows whose tangent length exceeds max_exp_arg radii
  // are where f_R saturates (Eq. (16), (124)); they are counted and reported.
  using MT = MatrixR<T>;
  std::mt19937_64 gen(2024);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const Index N = 40;
  auto rows = [&](Index d) {
    MT v(N, d);
    std::normal_distribution<double> nd;
    for (Index i = 0; i < N; ++i) {
      double s2 = 0.0;
      std::vector<double> r(static_cast<std::size_t>(d));
      for (auto& e : r) { e = nd(gen); s2 += e * e; }
      const double norm = i == 0 ? 0.0 : std::pow(10.0, -15.0 + 19.0 * u01(gen));  // row 0: exactly 0
      for (Index j = 0; j < d; ++j) v(i, j) = static_cast<T>(r[static_cast<std::size_t>(j)] * norm / std::sqrt(s2));
    }
    return v;
  };
  auto to_H = [](const MT& v, T R) {  // x0 = √(K + |v|²) by the row function (Eq. (11))
    MT x(v.rows(), v.cols() + 1);
    x.rightCols(v.cols()) = v;
    for (Index i = 0; i < v.rows(); ++i) lr::projx(x.row(i).data(), x.row(i).data(), v.cols(), R);
    return x;
  };
  long cases = 0, bad = 0, clamped = 0;
  std::ostringstream first_bad;
  auto finite = [](const auto& m) { return m.array().isFinite().all(); };
  for (int kexp = -6; kexp <= 6; ++kexp) {  // K = 10^(kexp/2): 1e-3 … 1e3
    const T R = static_cast<T>(std::sqrt(std::pow(10.0, kexp / 2.0)));
    for (Index d : {1, 3, 16}) {
      const MT a = rows(d), b = rows(d);
      MT b_close = a;  // every 4th pair coincident, the rest independent
      for (Index i = 0; i < N; ++i)
        if (i % 4 != 0) b_close.row(i) = b.row(i);
      const MT x = to_H(a, R), y = to_H(b_close, R);
      const MT W = MT::Random(2, d);
      for (int op = 0; op < 5; ++op) {
        Tape<T> t;
        Var<T> Rv = t.leaf(MT::Constant(1, 1, R));
        Var<T> in0 = t.leaf(op <= 1 ? a : x), in1 = t.leaf(op == 2 ? W : y);
        Var<T> out = op == 0 ? ad::lorentz_expmap0(in0, Rv)
                   : op == 1 ? ad::lorentz_logmap0(in0, Rv)
                   : op == 2 ? ad::lorentz_llr(in1, in0, Rv)
                   : op == 3 ? ad::lorentz_dist(in0, in1, Rv)
                             : ad::lorentz_dist0(in0, Rv);
        t.backward(out, MT::Ones(out.rows(), out.cols()));
        const MT val = out.value(), g0 = in0.grad();
        const bool ok_R = std::isfinite(static_cast<double>(Rv.grad()(0, 0)));
        for (Index i = 0; i < N; ++i) {
          ++cases;
          if (op == 0 && a.row(i).template cast<double>().norm() / static_cast<double>(R) >
                             static_cast<double>(hyplora::numerics<T>::max_exp_arg()))
            ++clamped;
          const bool ok = finite(val.row(i)) && finite(g0.row(i)) && ok_R &&
                          (op != 3 || finite(MT(in1.grad()).row(i)));
          if (!ok && bad++ == 0) first_bad << "op " << op << " K " << double(R) * double(R) << " d " << d << " row " << i;
        }
        if (op == 2) CHECK(finite(MT(in1.grad())));
      }
    }
  }
  MESSAGE("Lorentz finiteness sweep (" << std::string(sizeof(T) == 4 ? "float" : "double") << "): " << cases
          << " cases (5 ops x 13 K x 3 d x " << N << " rows), " << clamped
          << " f_R rows saturated at max_exp_arg = " << double(hyplora::numerics<T>::max_exp_arg()) << " radii");
  CHECK_MESSAGE(bad == 0, bad << " non-finite cases, first: " << first_bad.str());
  CHECK(clamped > 0);  // the sweep does reach the clamp
}

TEST_CASE("Lorentz ops: rebuilding the graph after clear() reuses every buffer") {
  Tape<double> t;
  const M v = rows_of_norm(6, 4, 1.2, 5), W = M::Random(4, 4) * 0.5;
  std::vector<const double*> first;
  for (int step = 0; step < 3; ++step) {
    t.clear();
    Var<double> R = t.leaf(scalar(1.3)), vv = t.leaf(v), Wv = t.leaf(W);
    Var<double> x = on_H(ad::lorentz_logmap0(ad::lorentz_expmap0(vv, R), R), R);
    Var<double> loss = ad::sum(ad::add(ad::add(ad::lorentz_dist(x, ad::lorentz_llr(Wv, x, R), R), ad::lorentz_dist0(x, R)),
                                       ad::sum_rows(ad::lorentz_llr(ad::slice_rows(Wv, 0, 2), x, R))));
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

TEST_CASE("Lorentz ops: shape and value errors name the offending shape or value") {
  Tape<double> t;
  Var<double> R = t.constant(scalar(1.0)), x = t.constant(M::Random(3, 4)), y = t.constant(M::Random(2, 4));
  CHECK_THROWS_AS(ad::lorentz_dist(x, y, R), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::lorentz_llr(t.constant(M::Random(2, 4)), x, R), doctest::Contains("(2, 4)"), hyplora::shape_error);
  CHECK_THROWS_AS(ad::lorentz_expmap0(x, t.constant(M::Ones(1, 2))), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::lorentz_expmap0(x, t.constant(scalar(-2.0))), doctest::Contains("-2"), hyplora::value_error);
  CHECK_THROWS_AS(ad::lorentz_dist0(x, t.constant(scalar(std::nan("")))), hyplora::value_error);
  CHECK_THROWS_AS(ad::lorentz_dist0(t.constant(M(3, 0)), R), hyplora::shape_error);
  Tape<double> other;
  CHECK_THROWS_AS(ad::lorentz_logmap0(x, other.constant(scalar(1.0))), hyplora::value_error);
}

}  // namespace autodiff_test_ops_lorentz
