// Tests for include/hyplora/autodiff/ops_attention.hpp: fused causal multi-head self-attention.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include <hyplora/autodiff/ops_attention.hpp>
#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/autodiff/ops_shape.hpp>
#include <hyplora/autodiff/ops_softmax.hpp>
#include <hyplora/testing/gradcheck.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_ops_attention {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::NoGradGuard;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using Vars = std::vector<Var<double>>;

template <class T>
MatrixR<T> random_matrix(Index r, Index c, unsigned seed, double scale = 1.5) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  MatrixR<T> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(u(gen));
  return m;
}

struct Dims {
  Index B, T, H, Dh;
};
// Degenerate cases: T = 1, H = 1, Dh = 1, all four 1 (1×1 tensors), one row of heads. Then T
// across the op's row/column blocks (kAttentionBlock = 32): a ragged third block (70), exactly
// two blocks (64), one row past a block (33).
const std::vector<Dims> kDims = {{2, 4, 2, 3}, {1, 1, 1, 1},  {1, 5, 1, 1},  {3, 1, 2, 2},
                                 {1, 3, 4, 1}, {2, 3, 1, 4},  {1, 70, 2, 2}, {2, 64, 1, 3},
                                 {1, 33, 3, 1}};
static_assert(ad::detail::kAttentionBlock == 32, "kDims' long sequences assume blocks of 32");

// Plain loops, long double.
MatrixR<double> reference_attention(const MatrixR<double>& q, const MatrixR<double>& k, const MatrixR<double>& v,
                                    Index B, Index T, Index H) {
  const Index C = q.cols(), Dh = C / H;
  const long double scale = 1.0L / std::sqrt(static_cast<long double>(Dh));
  MatrixR<double> out = MatrixR<double>::Zero(B * T, C);
  std::vector<long double> s(static_cast<std::size_t>(T));
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < H; ++h)
      for (Index i = 0; i < T; ++i) {
        long double m = -INFINITY, z = 0;
        for (Index j = 0; j <= i; ++j) {
          long double dot = 0;
          for (Index d = 0; d < Dh; ++d)
            dot += static_cast<long double>(q(b * T + i, h * Dh + d)) * k(b * T + j, h * Dh + d);
          s[static_cast<std::size_t>(j)] = dot * scale;
          m = std::max(m, dot * scale);
        }
        for (Index j = 0; j <= i; ++j) z += std::exp(s[static_cast<std::size_t>(j)] - m);
        for (Index d = 0; d < Dh; ++d) {
          long double acc = 0;
          for (Index j = 0; j <= i; ++j) acc += std::exp(s[static_cast<std::size_t>(j)] - m) / z * v(b * T + j, h * Dh + d);
          out(b * T + i, h * Dh + d) = static_cast<double>(acc);
        }
      }
  return out;
}

// The same attention from primitive tape ops: per (b, h) slice, matmul, scale, additive causal
// mask (−1e30 above the diagonal), softmax, matmul; heads concatenated, then batches.
Var<double> composed_attention(Tape<double>& t, Var<double> q, Var<double> k, Var<double> v, Index B, Index T,
                               Index H) {
  const Index C = q.cols(), Dh = C / H;
  MatrixR<double> mask = MatrixR<double>::Zero(T, T);
  for (Index i = 0; i < T; ++i)
    for (Index j = i + 1; j < T; ++j) mask(i, j) = -1e30;
  auto maskv = t.constant(mask);
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  std::vector<Var<double>> batches;
  for (Index b = 0; b < B; ++b) {
    auto qb = ad::slice_rows(q, b * T, T), kb = ad::slice_rows(k, b * T, T), vb = ad::slice_rows(v, b * T, T);
    std::vector<Var<double>> heads;
    for (Index h = 0; h < H; ++h) {
      auto qh = ad::slice_cols(qb, h * Dh, Dh), kh = ad::slice_cols(kb, h * Dh, Dh), vh = ad::slice_cols(vb, h * Dh, Dh);
      auto s = ad::add(ad::mul_scalar(ad::matmul(qh, kh, false, true), scale), maskv);
      heads.push_back(ad::matmul(ad::softmax(s), vh));
    }
    batches.push_back(ad::concat_cols(heads));
  }
  // Stack the batches' rows: transpose, concatenate columns, transpose back.
  std::vector<Var<double>> cols;
  for (auto& x : batches) cols.push_back(ad::transpose(x));
  return ad::transpose(ad::concat_cols(cols));
}
}  // namespace

TEST_CASE_TEMPLATE("causal_self_attention matches a plain-loop reference", T, float, double) {
  for (const auto& d : kDims) {
    CAPTURE(d.B);
    CAPTURE(d.T);
    CAPTURE(d.H);
    CAPTURE(d.Dh);
    const Index N = d.B * d.T, C = d.H * d.Dh;
    const MatrixR<double> q = random_matrix<double>(N, C, 1), k = random_matrix<double>(N, C, 2),
                          v = random_matrix<double>(N, C, 3);
    Tape<T> tape;
    auto o = ad::causal_self_attention(tape.leaf(q.cast<T>()), tape.leaf(k.cast<T>()), tape.leaf(v.cast<T>()), d.B,
                                       d.T, d.H);
    REQUIRE(o.rows() == N);
    REQUIRE(o.cols() == C);
    const double tol = std::is_same<T, float>::value ? 2e-6 : 1e-14;
    CHECK((o.value().template cast<double>() - reference_attention(q, k, v, d.B, d.T, d.H)).cwiseAbs().maxCoeff() <= tol);
  }
}

TEST_CASE("causal_self_attention: the first token attends only to itself, later tokens to the past") {
  const MatrixR<double> q = random_matrix<double>(4, 4, 4), k = random_matrix<double>(4, 4, 5),
                        v = random_matrix<double>(4, 4, 6);
  Tape<double> tape;
  auto o = ad::causal_self_attention(tape.constant(q), tape.constant(k), tape.constant(v), 1, 4, 2);
  CHECK((o.value().row(0) - v.row(0)).cwiseAbs().maxCoeff() <= 1e-15);
  // Changing the last token's k and v leaves every earlier output unchanged.
  MatrixR<double> k2 = k, v2 = v;
  k2.row(3).setConstant(9.0);
  v2.row(3).setConstant(-9.0);
  auto o2 = ad::causal_self_attention(tape.constant(q), tape.constant(k2), tape.constant(v2), 1, 4, 2);
  CHECK(o2.value().topRows(3) == o.value().topRows(3));
  CHECK(o2.value().row(3) != o.value().row(3));
}

TEST_CASE("causal_self_attention gradchecks in q, k and v, including degenerate shapes") {
  for (const auto& d : kDims) {
    CAPTURE(d.B);
    CAPTURE(d.T);
    CAPTURE(d.H);
    CAPTURE(d.Dh);
    const Index N = d.B * d.T, C = d.H * d.Dh;
    const MatrixR<double> q = random_matrix<double>(N, C, 7), k = random_matrix<double>(N, C, 8),
                          v = random_matrix<double>(N, C, 9);
    auto g = hyplora::testing::gradcheck(
        [&](Tape<double>&, const Vars& x) { return ad::causal_self_attention(x[0], x[1], x[2], d.B, d.T, d.H); },
        {q, k, v});
    CHECK_MESSAGE(g.ok, g.report);
  }
  // One Var used as q, k and v (gradients of all three uses accumulate into it: the first
  // write assigns the fresh buffer, the others add), in one block and across three.
  const MatrixR<double> x = random_matrix<double>(6, 4, 10);
  auto g = hyplora::testing::gradcheck(
      [](Tape<double>&, const Vars& v) { return ad::causal_self_attention(v[0], v[0], v[0], 2, 3, 2); }, {x});
  CHECK_MESSAGE(g.ok, g.report);
  const MatrixR<double> xl = random_matrix<double>(70, 2, 26);
  auto gl = hyplora::testing::gradcheck(
      [](Tape<double>&, const Vars& v) { return ad::causal_self_attention(v[0], v[0], v[0], 1, 70, 1); }, {xl});
  CHECK_MESSAGE(gl.ok, gl.report);
  // Only some inputs needing gradients exercises the skipped branches.
  const MatrixR<double> q = random_matrix<double>(6, 4, 11), k = random_matrix<double>(6, 4, 12),
                        v = random_matrix<double>(6, 4, 13);
  for (const auto& mask : {std::vector<bool>{true, false, false}, std::vector<bool>{false, true, false},
                           std::vector<bool>{false, false, true}}) {
    hyplora::testing::GradcheckOptions opt;
    opt.check = mask;
    auto gm = hyplora::testing::gradcheck(
        [](Tape<double>&, const Vars& x) { return ad::causal_self_attention(x[0], x[1], x[2], 2, 3, 2); }, {q, k, v},
        opt);
    CHECK_MESSAGE(gm.ok, gm.report);
  }
}

TEST_CASE("causal_self_attention equals its composition from primitive ops, value and gradients") {
  for (const auto& d : {Dims{2, 5, 3, 2}, Dims{1, 1, 1, 1}, Dims{1, 4, 1, 3}, Dims{1, 45, 2, 2}}) {
    CAPTURE(d.B);
    CAPTURE(d.T);
    CAPTURE(d.H);
    const Index N = d.B * d.T, C = d.H * d.Dh;
    const MatrixR<double> q = random_matrix<double>(N, C, 14), k = random_matrix<double>(N, C, 15),
                          v = random_matrix<double>(N, C, 16), w = random_matrix<double>(N, C, 17);
    Tape<double> tf, tc;
    auto qf = tf.leaf(q), kf = tf.leaf(k), vf = tf.leaf(v);
    auto of = ad::causal_self_attention(qf, kf, vf, d.B, d.T, d.H);
    auto qc = tc.leaf(q), kc = tc.leaf(k), vc = tc.leaf(v);
    auto oc = composed_attention(tc, qc, kc, vc, d.B, d.T, d.H);
    REQUIRE(oc.shape() == of.shape());
    CHECK((of.value() - oc.value()).cwiseAbs().maxCoeff() <= 1e-12);
    tf.backward(of, w);
    tc.backward(oc, w);
    CHECK((qf.grad() - qc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((kf.grad() - kc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK((vf.grad() - vc.grad()).cwiseAbs().maxCoeff() <= 1e-12);
  }
}

TEST_CASE("causal_self_attention rejects bad shapes, naming them") {
  Tape<double> tape;
  auto q = tape.leaf(MatrixR<double>::Ones(6, 4));
  auto k5 = tape.leaf(MatrixR<double>::Ones(6, 5));
  auto v7 = tape.leaf(MatrixR<double>::Ones(7, 4));
  CHECK_THROWS_AS(ad::causal_self_attention(q, k5, q, 2, 3, 2), hyplora::shape_error);
  CHECK_THROWS_WITH(ad::causal_self_attention(q, k5, q, 2, 3, 2), doctest::Contains("(6, 5)"));
  CHECK_THROWS_AS(ad::causal_self_attention(q, q, v7, 2, 3, 2), hyplora::shape_error);
  CHECK_THROWS_WITH(ad::causal_self_attention(q, q, v7, 2, 3, 2), doctest::Contains("(7, 4)"));
  CHECK_THROWS_AS(ad::causal_self_attention(q, q, q, 2, 4, 2), hyplora::shape_error);  // rows != B·T
  CHECK_THROWS_WITH(ad::causal_self_attention(q, q, q, 2, 4, 2), doctest::Contains("(8, 4)"));
  CHECK_THROWS_AS(ad::causal_self_attention(q, q, q, 2, 3, 3), hyplora::shape_error);  // C % H != 0
  CHECK_THROWS_WITH(ad::causal_self_attention(q, q, q, 2, 3, 3), doctest::Contains("heads = 3"));
  CHECK_THROWS_AS(ad::causal_self_attention(q, q, q, 2, 3, 0), hyplora::value_error);
  CHECK_THROWS_AS(ad::causal_self_attention(q, q, q, -2, -3, 2), hyplora::value_error);
  const int size = tape.size();
  CHECK_THROWS(ad::causal_self_attention(q, q, q, 2, 3, 3));
  CHECK(tape.size() == size);  // a rejected call records nothing
}

TEST_CASE("causal_self_attention in no-grad mode: same output, no per-head P kept") {
  const Index B = 3, T = 6, H = 4, Dh = 2;
  const MatrixR<double> q = random_matrix<double>(B * T, H * Dh, 18), k = random_matrix<double>(B * T, H * Dh, 19),
                        v = random_matrix<double>(B * T, H * Dh, 20);
  Tape<double> tape;
  auto o = ad::causal_self_attention(tape.leaf(q), tape.leaf(k), tape.leaf(v), B, T, H);
  CHECK(tape.node(o.id).saved[0].rows() == B * H * T);
  NoGradGuard<double> guard(tape);
  auto o2 = ad::causal_self_attention(tape.leaf(q), tape.leaf(k), tape.leaf(v), B, T, H);
  CHECK(o2.value() == o.value());
  CHECK(tape.node(o2.id).saved[0].rows() < B * H * T);
}

TEST_CASE("causal_self_attention reuses its buffers when the graph is rebuilt") {
  const Index B = 2, T = 5, H = 2, Dh = 3;
  const MatrixR<double> q = random_matrix<double>(B * T, H * Dh, 21);
  Tape<double> tape;
  const double* before[3] = {};
  for (int step = 0; step < 2; ++step) {
    tape.clear();
    auto x = tape.leaf(q);
    auto o = ad::causal_self_attention(x, x, x, B, T, H);
    tape.backward(o, q);
    const auto& n = tape.node(o.id);
    const double* now[3] = {o.value().data(), n.saved[0].data(), n.saved[1].data()};
    if (step == 1)
      for (int i = 0; i < 3; ++i) CHECK(now[i] == before[i]);
    for (int i = 0; i < 3; ++i) before[i] = now[i];
  }
}

#ifdef _OPENMP
TEST_CASE("causal_self_attention gives bitwise the same results on 1 and 2 threads") {
  for (const Index T : {7, 70}) {  // one block; three blocks
    CAPTURE(T);
    const Index B = 2, H = 3, Dh = 4;
    const MatrixR<double> q = random_matrix<double>(B * T, H * Dh, 22), k = random_matrix<double>(B * T, H * Dh, 23),
                          v = random_matrix<double>(B * T, H * Dh, 24), w = random_matrix<double>(B * T, H * Dh, 25);
    const int prev = omp_get_max_threads();
    MatrixR<double> out[2], dq[2], dk[2], dv[2];
    for (int r = 0; r < 2; ++r) {
      omp_set_num_threads(r + 1);
      Tape<double> tape;
      auto qv = tape.leaf(q), kv = tape.leaf(k), vv = tape.leaf(v);
      auto o = ad::causal_self_attention(qv, kv, vv, B, T, H);
      tape.backward(o, w);
      out[r] = o.value();
      dq[r] = qv.grad();
      dk[r] = kv.grad();
      dv[r] = vv.grad();
    }
    omp_set_num_threads(prev);
    CHECK(out[0] == out[1]);
    CHECK(dq[0] == dq[1]);
    CHECK(dk[0] == dk[1]);
    CHECK(dv[0] == dv[1]);
  }
}
#endif

}  // namespace autodiff_test_ops_attention
