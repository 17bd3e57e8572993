// Tests for include/hyplora/autodiff/ops_shape.hpp: concat/slice/embedding/transpose/reshape
// values against Eigen block operations, gradients against central differences (double, tol
// 1e-6) incl. degenerate shapes, scatter-add of repeated ids, and the error messages.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_shape.hpp>
#include <hyplora/testing/gradcheck.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_ops_shape {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using M = MatrixR<double>;
using Vars = std::vector<Var<double>>;

template <class F>
void check_grad(F&& f, const std::vector<M>& xs) {
  auto res = hyplora::testing::gradcheck(std::forward<F>(f), xs);
  CHECK_MESSAGE(res.ok, res.report);
}
}  // namespace

TEST_CASE("concat_cols: values, gradients for 1, 2 and 3 inputs, frozen inputs skipped") {
  const M a = M::Random(3, 2), b = M::Random(3, 1), c = M::Random(3, 4);
  Tape<double> t;
  Var<double> y = ad::concat_cols<double>({t.constant(a), t.constant(b), t.constant(c)});
  M ref(3, 7);
  ref << a, b, c;
  CHECK((M(y.value()) - ref).cwiseAbs().maxCoeff() == 0.0);
  check_grad([](Tape<double>&, const Vars& v) { return ad::concat_cols(v); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::concat_cols(v); }, {a, b});
  check_grad([](Tape<double>&, const Vars& v) { return ad::concat_cols(v); }, {a, b, c});
  check_grad([](Tape<double>&, const Vars& v) { return ad::concat_cols(v); },
             {M(M::Random(1, 1)), M(M::Random(1, 3)), M(M::Random(1, 1))});
  // exact: each input gets its block of the output gradient; a constant gets nothing
  const M G = M::Random(3, 7);
  Tape<double> u;
  Var<double> va = u.leaf(a), vb = u.constant(b), vc = u.leaf(c);
  u.backward(ad::concat_cols<double>({va, vb, vc}), G);
  CHECK((M(va.grad()) - G.leftCols(2)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M(vc.grad()) - G.rightCols(4)).cwiseAbs().maxCoeff() == 0.0);
  CHECK(!u.needs_grad(vb.id));
}

TEST_CASE("concat_cols: errors") {
  Tape<double> t, u;
  CHECK_THROWS_AS(ad::concat_cols<double>({}), hyplora::value_error);
  try {
    (void)ad::concat_cols<double>({t.constant(M::Zero(3, 2)), t.constant(M::Zero(4, 2))});
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("(3, 2)") != std::string::npos);
    CHECK(msg.find("(4, 2)") != std::string::npos);
  }
  CHECK_THROWS_AS(ad::concat_cols<double>({t.constant(M::Zero(3, 2)), u.constant(M::Zero(3, 2))}),
                  hyplora::value_error);
}

TEST_CASE("slice_cols / slice_rows: values, gradients, range errors") {
  const M a = M::Random(4, 5);
  Tape<double> t;
  Var<double> x = t.constant(a);
  CHECK((M(ad::slice_cols(x, 1, 3).value()) - a.middleCols(1, 3)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((M(ad::slice_rows(x, 2, 2).value()) - a.middleRows(2, 2)).cwiseAbs().maxCoeff() == 0.0);
  CHECK(ad::slice_cols(x, 5, 0).cols() == 0);
  check_grad([](Tape<double>&, const Vars& v) { return ad::slice_cols(v[0], 1, 3); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::slice_rows(v[0], 1, 2); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::slice_cols(v[0], 0, 1); }, {M(M::Random(1, 1))});
  check_grad([](Tape<double>&, const Vars& v) { return ad::slice_rows(v[0], 2, 1); }, {M(M::Random(3, 1))});
  // two slices of the same input accumulate
  Tape<double> u;
  Var<double> z = u.leaf(a);
  u.backward(ad::concat_cols<double>({ad::slice_cols(z, 0, 3), ad::slice_cols(z, 2, 3)}), M::Ones(4, 6));
  M g = M::Ones(4, 5);
  g.col(2).setConstant(2.0);
  CHECK((M(z.grad()) - g).cwiseAbs().maxCoeff() == 0.0);
  try {
    (void)ad::slice_cols(x, 3, 3);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("[3, 6)") != std::string::npos);
    CHECK(msg.find("(4, 5)") != std::string::npos);
  }
  CHECK_THROWS_AS(ad::slice_rows(x, -1, 2), hyplora::shape_error);
  CHECK_THROWS_AS(ad::slice_rows(x, 0, 5), hyplora::shape_error);
  CHECK_THROWS_AS(ad::slice_cols(x, 0, -1), hyplora::shape_error);
}

TEST_CASE("embedding: gather, scatter-add of repeated ids, out-of-range ids") {
  const M table = M::Random(5, 3);  // (V, C)
  const std::vector<std::int64_t> ids = {4, 0, 4, 2};
  Tape<double> t;
  Var<double> tab = t.leaf(table);
  Var<double> y = ad::embedding(tab, ids);
  REQUIRE(y.rows() == 4);
  for (int i = 0; i < 4; ++i) CHECK((M(y.value()).row(i) - table.row(ids[static_cast<std::size_t>(i)])).cwiseAbs().maxCoeff() == 0.0);
  const M G = M::Random(4, 3);
  t.backward(y, G);
  M ref = M::Zero(5, 3);
  ref.row(4) = G.row(0) + G.row(2);
  ref.row(0) = G.row(1);
  ref.row(2) = G.row(3);
  CHECK((M(tab.grad()) - ref).cwiseAbs().maxCoeff() <= 1e-16);
  check_grad([&](Tape<double>&, const Vars& v) { return ad::embedding(v[0], ids); }, {table});
  check_grad([](Tape<double>&, const Vars& v) { return ad::embedding(v[0], {0}); }, {M(M::Random(1, 1))});
  try {
    (void)ad::embedding(tab, {1, 5});
    FAIL("expected value_error");
  } catch (const hyplora::value_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("id 5") != std::string::npos);
    CHECK(msg.find("V = 5") != std::string::npos);
  }
  CHECK_THROWS_AS(ad::embedding(tab, {-1}), hyplora::value_error);
  CHECK(ad::embedding(tab, {}).rows() == 0);
}

TEST_CASE("embedding on the parallel path: gather and scatter-add equal plain loops bitwise, on 1 and 2 threads") {
  // 3000 × 40 = 120,000 >= kParallelMinElems: the gather goes by rows, the scatter-add by column
  // chunks (40 = 2.5 chunks: a ragged last one). V = 7, so every id repeats ~430 times.
  const Index V = 7, C = 40, N = 3000;
  static_assert(N * C >= ad::detail::kParallelMinElems, "the test must take the parallel path");
  const M table = M::Random(V, C), G = M::Random(N, C);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(N));
  for (Index i = 0; i < N; ++i) ids[static_cast<std::size_t>(i)] = (i * i + 3 * i) % V;
  // Plain loops: the serial scatter-add adds the rows in row order, as each column chunk does.
  M gather(N, C), scatter = M::Zero(V, C);
  for (Index i = 0; i < N; ++i) {
    const Index r = static_cast<Index>(ids[static_cast<std::size_t>(i)]);
    for (Index c = 0; c < C; ++c) {
      gather(i, c) = table(r, c);
      scatter(r, c) += G(i, c);
    }
  }
  const int threads[2] = {1, 2};
  for (const int th : threads) {
    CAPTURE(th);
#ifdef _OPENMP
    const int prev = omp_get_max_threads();
    omp_set_num_threads(th);
#endif
    Tape<double> t;
    Var<double> tab = t.leaf(table);
    Var<double> y = ad::embedding(tab, ids);
    t.backward(y, G);
    CHECK(M(y.value()) == gather);
    CHECK(M(tab.grad()) == scatter);
#ifdef _OPENMP
    omp_set_num_threads(prev);
#endif
  }
}

TEST_CASE("transpose and reshape: values, gradients, errors") {
  const M a = M::Random(3, 4);
  Tape<double> t;
  Var<double> x = t.constant(a);
  CHECK((M(ad::transpose(x).value()) - a.transpose()).cwiseAbs().maxCoeff() == 0.0);
  Var<double> r = ad::reshape(x, 2, 6);
  REQUIRE(r.rows() == 2);
  for (int k = 0; k < 12; ++k) CHECK(r.value().data()[k] == a.data()[k]);  // row-major order kept
  CHECK(r.value()(1, 0) == a(1, 2));
  check_grad([](Tape<double>&, const Vars& v) { return ad::transpose(v[0]); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::transpose(v[0]); }, {M(M::Random(1, 4))});
  check_grad([](Tape<double>&, const Vars& v) { return ad::reshape(v[0], 6, 2); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::reshape(v[0], 1, 12); }, {a});
  check_grad([](Tape<double>&, const Vars& v) { return ad::reshape(v[0], 12, 1); }, {a});
  try {
    (void)ad::reshape(x, 5, 2);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("(3, 4)") != std::string::npos);
    CHECK(msg.find("(5, 2)") != std::string::npos);
  }
}

}  // namespace autodiff_test_ops_shape
