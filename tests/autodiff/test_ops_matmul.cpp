// Tests for include/hyplora/autodiff/ops_matmul.hpp: every transpose combination against Eigen,
// gradients against central differences (double, tol 1e-6) incl. degenerate shapes, frozen
// parents get no gradient work, accumulation into existing gradients, and shape errors.
#include <doctest/doctest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <array>
#include <limits>
#include <type_traits>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace autodiff_test_ops_matmul {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using M = MatrixR<double>;
using Vars = std::vector<Var<double>>;
}  // namespace

TEST_CASE("matmul: all four transpose combinations, values and gradients, incl. degenerate shapes") {
  // (M, K, P) triples, incl. 1×1 products, a row times a column, a column times a row, K = 1.
  const std::vector<std::array<int, 3>> dims = {{3, 4, 5}, {1, 1, 1}, {1, 4, 1}, {4, 1, 3}, {1, 3, 5}, {5, 3, 1}};
  for (const auto& d : dims) {
    const int m = d[0], k = d[1], p = d[2];
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        CAPTURE(m); CAPTURE(k); CAPTURE(p); CAPTURE(ta); CAPTURE(tb);
        const M A = ta ? M(M::Random(k, m)) : M(M::Random(m, k));
        const M B = tb ? M(M::Random(p, k)) : M(M::Random(k, p));
        const M opA = ta ? M(A.transpose()) : A;
        const M opB = tb ? M(B.transpose()) : B;
        Tape<double> t;
        Var<double> c = ad::matmul(t.constant(A), t.constant(B), ta != 0, tb != 0);
        REQUIRE(c.rows() == m);
        REQUIRE(c.cols() == p);
        CHECK((M(c.value()) - opA * opB).cwiseAbs().maxCoeff() <= 1e-14);
        auto res = hyplora::testing::gradcheck(
            [&](Tape<double>&, const Vars& v) { return ad::matmul(v[0], v[1], ta != 0, tb != 0); }, {A, B});
        CHECK_MESSAGE(res.ok, res.report);
        // Exact backward against Eigen: dA' = G B'ᵀ, dB' = A'ᵀ G.
        const M G = M::Random(m, p);
        Tape<double> u;
        Var<double> va = u.leaf(A), vb = u.leaf(B);
        u.backward(ad::matmul(va, vb, ta != 0, tb != 0), G);
        const M dopA = G * opB.transpose(), dopB = opA.transpose() * G;
        CHECK((M(va.grad()) - (ta ? M(dopA.transpose()) : dopA)).cwiseAbs().maxCoeff() <= 1e-14);
        CHECK((M(vb.grad()) - (tb ? M(dopB.transpose()) : dopB)).cwiseAbs().maxCoeff() <= 1e-14);
      }
    }
  }
}

TEST_CASE("matmul: x·Wᵀ with a PyTorch-layout weight; a frozen weight receives no gradient") {
  const M x = M::Random(6, 4), W = M::Random(3, 4);  // x: (N, D_in)  W: (D_out, D_in)
  ad::ParameterStore<double> store;
  auto pW = store.add("W", W, /*trainable=*/false);
  Tape<double> t;
  Var<double> vx = t.leaf(x);
  Var<double> vW = t.param(store, pW);
  Var<double> y = ad::matmul(vx, vW, false, true);
  CHECK((M(y.value()) - x * W.transpose()).cwiseAbs().maxCoeff() <= 1e-14);
  const M G = M::Random(6, 3);
  t.backward(y, G);
  CHECK(M(store.grad(pW)).cwiseAbs().maxCoeff() == 0.0);  // frozen: untouched arena slot
  CHECK((M(vx.grad()) - G * W).cwiseAbs().maxCoeff() <= 1e-14);
}

TEST_CASE("matmul: parameter gradients accumulate across backward passes") {
  const M x = M::Random(5, 3), W0 = M::Random(3, 2), G = M::Random(5, 2);
  ad::ParameterStore<double> store;
  auto pW = store.add("W", W0);
  Tape<double> t;
  for (int step = 0; step < 3; ++step) {
    t.clear();
    Var<double> y = ad::matmul(t.constant(x), t.param(store, pW));
    t.backward(y, G);
  }
  CHECK((M(store.grad(pW)) - 3.0 * x.transpose() * G).cwiseAbs().maxCoeff() <= 1e-13);
}

TEST_CASE("matmul: a shared operand (x·xᵀ) gets both contributions") {
  const M x = M::Random(3, 4), G = M::Random(3, 3);
  Tape<double> t;
  Var<double> vx = t.leaf(x);
  t.backward(ad::matmul(vx, vx, false, true), G);
  CHECK((M(vx.grad()) - (G + G.transpose()) * x).cwiseAbs().maxCoeff() <= 1e-14);
  auto res = hyplora::testing::gradcheck(
      [](Tape<double>&, const Vars& v) { return ad::matmul(v[0], v[0], true, false); }, {x});
  CHECK_MESSAGE(res.ok, res.report);
}

TEST_CASE("matmul: inner dimension mismatch names both (transposed) shapes; empty K gives zeros") {
  Tape<double> t;
  Var<double> a = t.constant(M::Zero(3, 4)), b = t.constant(M::Zero(5, 2));
  try {
    (void)ad::matmul(a, b);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("(3, 4)") != std::string::npos);
    CHECK(msg.find("(5, 2)") != std::string::npos);
  }
  try {
    (void)ad::matmul(a, b, true, false);
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("a^T (4, 3)") != std::string::npos);
  }
  Tape<double> u;
  Var<double> x = u.leaf(M::Zero(3, 0)), w = u.leaf(M::Zero(0, 2));
  Var<double> y = ad::matmul(x, w);
  CHECK(y.rows() == 3);
  CHECK(y.cols() == 2);
  CHECK(M(y.value()).cwiseAbs().maxCoeff() == 0.0);
  u.backward(y, M::Ones(3, 2));  // no-op gradients of empty tensors, but no crash
}

TEST_CASE_TEMPLATE("matmul in float matches the double product", T, float, double) {
  const M A = M::Random(64, 48), B = M::Random(40, 48);
  Tape<T> t;
  Var<T> c = ad::matmul(t.constant(A.cast<T>()), t.constant(B.cast<T>()), false, true);
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-13;
  CHECK((c.value().template cast<double>() - A * B.transpose()).cwiseAbs().maxCoeff() <= tol * 48);
}

TEST_CASE_TEMPLATE("detail::gemm: transposes, strides, alpha and beta against Eigen; beta = 0 ignores C", T, float, double) {
  using MT = MatrixR<T>;
  const T tol = std::is_same<T, float>::value ? T(1e-5) : T(1e-13);
  // (M, N, K) incl. 1×1, K = 1, sizes big enough for a blocked BLAS kernel, and two above the
  // threaded split's threshold (M·N·K ≥ 2²⁰): rows split (M ≥ N), columns split (N > M), block
  // sizes not multiples of the 16-row alignment.
  const std::vector<std::array<int, 3>> dims = {{1, 1, 1}, {3, 5, 4}, {7, 1, 6}, {1, 9, 2}, {70, 65, 33},
                                                {150, 70, 101}, {40, 300, 90}};
  for (const auto& d : dims) {
    const int m = d[0], n = d[1], k = d[2];
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        CAPTURE(m); CAPTURE(n); CAPTURE(k); CAPTURE(ta); CAPTURE(tb);
        // Operands live inside wider buffers: leading strides exceed the column counts by 3.
        const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        const MT Abuf = MT::Random(ar, ac + 3), Bbuf = MT::Random(br, bc + 3);
        const MT A = Abuf.leftCols(ac), B = Bbuf.leftCols(bc);
        const MT opA = ta ? MT(A.transpose()) : A, opB = tb ? MT(B.transpose()) : B;
        const MT C0 = MT::Random(m, n + 3);
        const T alpha = T(0.75);
        // beta = 1 adds into C; beta = 0 must not read C, even when it holds NaN.
        MT C1 = C0;
        ad::detail::gemm<T>(m, n, k, alpha, Abuf.data(), ac + 3, ta != 0, Bbuf.data(), bc + 3, tb != 0, T(1), C1.data(), n + 3);
        const MT want1 = C0.leftCols(n) + alpha * opA * opB;
        CHECK((C1.leftCols(n) - want1).cwiseAbs().maxCoeff() <= tol * T(k + 1));
        CHECK(C1.rightCols(3) == C0.rightCols(3));  // the padding columns are untouched
        MT C2 = MT::Constant(m, n + 3, std::numeric_limits<T>::quiet_NaN());
        ad::detail::gemm<T>(m, n, k, alpha, Abuf.data(), ac + 3, ta != 0, Bbuf.data(), bc + 3, tb != 0, T(0), C2.data(), n + 3);
        CHECK((C2.leftCols(n) - alpha * opA * opB).cwiseAbs().maxCoeff() <= tol * T(k + 1));
        // The contiguous overload on plain tensors.
        MT C3(m, n);
        ad::detail::gemm(T(1), A, ta != 0, B, tb != 0, T(0), C3);
        CHECK((C3 - opA * opB).cwiseAbs().maxCoeff() <= tol * T(k + 1));
      }
    }
  }
  // K = 0: the empty sum, C = beta·C (0 for beta = 0, even from NaN).
  MT C = MT::Constant(2, 3, std::numeric_limits<T>::quiet_NaN());
  const MT e(2, 0), f(0, 3);
  ad::detail::gemm(T(1), e, false, f, false, T(0), C);
  CHECK(C.isZero(0));
  C.setConstant(T(2));
  ad::detail::gemm(T(1), e, false, f, false, T(0.5), C);
  CHECK((C.array() == T(1)).all());
}

#ifdef _OPENMP
TEST_CASE_TEMPLATE("detail::gemm: the threaded split agrees with one thread and is reproducible", T, float, double) {
  // The split runs one single-threaded BLAS call per thread on disjoint blocks of C; each element
  // keeps BLAS's single-thread summation order, so 1 and 2 threads are expected to agree to
  // rounding of a reordered sum at most (tolerance as the Eigen comparison above), and two runs
  // with the same thread count bitwise.
  using MT = MatrixR<T>;
  const T tol = std::is_same<T, float>::value ? T(1e-5) : T(1e-13);
  const int saved = omp_get_max_threads();
  for (const auto& d : std::vector<std::array<int, 3>>{{257, 96, 64}, {48, 333, 80}, {128, 128, 2048}}) {
    const int m = d[0], n = d[1], k = d[2];
    CAPTURE(m); CAPTURE(n); CAPTURE(k);
    const MT A = MT::Random(m, k), B = MT::Random(n, k);  // C = A·Bᵀ, the linear layer's forward
    MT C1(m, n), C2(m, n), C2b(m, n);
    omp_set_num_threads(1);
    ad::detail::gemm(T(1), A, false, B, true, T(0), C1);
    omp_set_num_threads(2);
    ad::detail::gemm(T(1), A, false, B, true, T(0), C2);
    ad::detail::gemm(T(1), A, false, B, true, T(0), C2b);
    CHECK((C2 - C1).cwiseAbs().maxCoeff() <= tol * T(k));
    CHECK(C2 == C2b);
    CHECK((C2 - A * B.transpose()).cwiseAbs().maxCoeff() <= tol * T(k));
  }
  omp_set_num_threads(saved);
}
#endif

}  // namespace autodiff_test_ops_matmul
