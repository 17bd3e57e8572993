// Tests for include/hyplora/autodiff/ops_hyplora_stereographic.hpp: the consistent stereographic
// HypLoRA node z = x·W0ᵀ + b + γ·p(LLR(BA, p⁻¹(exp_0^P(x_a)))) (docs/hyplora.md Eq. (194)–(199)).
//
// - forward against the manifold's own row maps (exp_0^P, p⁻¹, LLR, p) applied point by point;
// - fused = composed from primitive tape ops (the ball formulas, not the identity the node uses),
//   in value and every gradient, to 1e-12;
// - central differences, degenerate shapes, the LoRA limit at small |x|, B = 0, homogeneity,
//   float32 finiteness over 1e-15 … 1e4, and typed errors.
#include <doctest/doctest.h>

#include <cmath>
#include "support/base_map.hpp"  // the base map through the tape's own linear node
#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_hyplora_stereographic.hpp>
#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/manifold/conversions.hpp>
#include <hyplora/manifold/detail/lorentz_rows.hpp>
#include <hyplora/manifold/detail/poincare_rows.hpp>
#include <hyplora/testing/gradcheck.hpp>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_ops_hyplora_stereographic {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
using Mat = MatrixR<double>;

Mat rnd(Eigen::Index r, Eigen::Index c, double scale) { return Mat::Random(r, c) * scale; }
Mat scalar(double v) { return Mat::Constant(1, 1, v); }

// Point by point with the manifold rows: u = exp_0^P(x), X = p⁻¹(u), Y = BA ⊗ X, out = p(Y).
Mat reference(const Mat& X, const Mat& W0, const Mat& A, const Mat& B, double R, double gamma) {
  const double K = R * R;
  const Mat W = B * A;  // (D_out, D_in), row-major as llr wants
  const Eigen::Index D = X.cols(), m = B.rows();
  Mat Z = X * W0.transpose();
  std::vector<double> u(D), Xl(D + 1), Yl(m + 1), out(m);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    hyplora::poincare_rows::expmap0(X.row(i).data(), u.data(), D, K);
    hyplora::conversion_rows::to_lorentz(u.data(), Xl.data(), D, K);
    hyplora::lorentz_rows::llr(W.data(), m, Xl.data(), Yl.data(), D, R);
    hyplora::conversion_rows::to_poincare(Yl.data(), out.data(), m, K);
    for (Eigen::Index j = 0; j < m; ++j) Z(i, j) += gamma * out[static_cast<std::size_t>(j)];
  }
  return Z;
}

// The same layer from primitive tape ops, through the ball (Eq. (68), (101), (32), (100)):
//   u = R tanh(|x|/R)·x/|x|,  X_s = 2K u/(K − |u|²),  y = X_s·Aᵀ·Bᵀ,  out = R y/(R + √(K + |y|²)).
Var<double> composed(const std::vector<Var<double>>& v, double gamma) {
  using namespace hyplora::ad;
  Var<double> x = v[0], W0 = v[1], A = v[2], B = v[3], R = v[4], b = v[5];
  Var<double> K = R * R;
  Var<double> nx = row_norm(x);                    // (N, 1)
  Var<double> u = x * (R * tanh(nx / R) / nx);     // exp_0^P
  Var<double> Xs = u * ((2.0 * K) / (K - row_dot(u, u)));  // p⁻¹, spatial part
  Var<double> y = matmul(matmul(Xs, A, false, true), B, false, true);
  Var<double> y0 = sqrt(K + row_dot(y, y));        // LLR time component
  Var<double> out = y * (R / (R + y0));            // p
  return matmul(x, W0, false, true) + b + gamma * out;
}

Var<double> fused(const std::vector<Var<double>>& v, double gamma) {
  return hyplora::ad::hyplora_stereographic_linear(v[0], v[1], v[0], v[2], v[3], v[4], gamma, v[5]);
}
}  // namespace

TEST_CASE("stereographic node equals exp_0^P → p⁻¹ → LLR → p applied with the manifold rows") {
  std::srand(3);
  for (double K : {0.25, 1.0, 4.0}) {
    for (double xs : {1e-3, 0.5, 2.0}) {  // |x|/R up to ≈ 4: inside the ball's ε-projection
      CAPTURE(K);
      CAPTURE(xs);
      const double R = std::sqrt(K);
      const Mat X = rnd(5, 7, xs * R), W0 = rnd(6, 7, 0.5), A = rnd(3, 7, 0.4), B = rnd(6, 3, 0.7);
      Tape<double> t;
      auto x = t.constant(X);
      auto z = hyplora::ad::hyplora_stereographic_linear(x, t.constant(W0), x, t.constant(A), t.constant(B),
                                                         t.constant(scalar(R)), 0.8);
      const Mat ref = reference(X, W0, A, B, R, 0.8);
      CHECK((z.value() - ref).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + ref.cwiseAbs().maxCoeff()));
    }
  }
}

TEST_CASE("stereographic node = its composition from primitive ops, in value and every gradient") {
  std::srand(5);
  for (double R : {0.6, 1.0, 2.5}) {
    for (double xs : {0.05, 0.7, 2.0}) {
      CAPTURE(R);
      CAPTURE(xs);
      const std::vector<Mat> in = {rnd(4, 6, xs * R), rnd(5, 6, 0.5), rnd(3, 6, 0.5), rnd(5, 3, 0.8), scalar(R),
                                   rnd(1, 5, 0.2)};
      const Mat G = rnd(4, 5, 1.0);
      Tape<double> tf, tc;
      std::vector<Var<double>> vf, vc;
      for (const Mat& m : in) {
        vf.push_back(tf.leaf(m));
        vc.push_back(tc.leaf(m));
      }
      auto zf = fused(vf, 0.9);
      auto zc = composed(vc, 0.9);
      tf.backward(zf, G);
      tc.backward(zc, G);
      CHECK((zf.value() - zc.value()).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + zc.value().cwiseAbs().maxCoeff()));
      for (std::size_t k = 0; k < in.size(); ++k) {
        CAPTURE(k);
        const Mat gc = vc[k].grad(), gf = vf[k].grad();
        CHECK((gf - gc).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + gc.cwiseAbs().maxCoeff()));
      }
    }
  }
}

TEST_CASE("stereographic node gradients match central differences, including degenerate shapes") {
  std::srand(7);
  for (double xs : {1e-2, 0.8, 3.0, 30.0}) {
    CAPTURE(xs);
    const std::vector<Mat> in = {rnd(4, 5, xs), rnd(3, 5, 0.5), rnd(2, 5, 0.6), rnd(3, 2, 0.8), scalar(1.3), rnd(1, 3, 0.2)};
    auto res = hyplora::testing::gradcheck([](Tape<double>&, const std::vector<Var<double>>& v) { return fused(v, 0.7); }, in);
    CHECK_MESSAGE(res.ok, res.report);
  }
  // Separate adapter input; one row, rank 1, one output column; and 1×1 everything.
  const std::vector<Mat> one_row = {rnd(1, 4, 1.0), rnd(1, 4, 0.5), rnd(1, 4, 0.5), rnd(1, 4, 0.6), rnd(1, 1, 0.8),
                                    scalar(0.9)};
  auto f6 = [](Tape<double>&, const std::vector<Var<double>>& v) {
    return hyplora::ad::hyplora_stereographic_linear(v[0], v[1], v[2], v[3], v[4], v[5], 1.5);
  };
  auto res = hyplora::testing::gradcheck(f6, one_row);
  CHECK_MESSAGE(res.ok, res.report);
  const std::vector<Mat> ones = {scalar(0.7), scalar(0.3), scalar(-0.5), scalar(1.2), scalar(0.8), scalar(1.1)};
  auto res1 = hyplora::testing::gradcheck(f6, ones);
  CHECK_MESSAGE(res1.ok, res1.report);
}

TEST_CASE("stereographic node reduces to LoRA at small |x|: z − (x W0ᵀ + γ BA x) = O(|x|³)") {
  std::srand(11);
  const Mat A = rnd(3, 8, 0.5), B = rnd(6, 3, 0.5), W0 = rnd(6, 8, 0.5);
  const Mat u = rnd(1, 8, 1.0);
  double prev = 0.0;
  for (double s : {1e-1, 1e-2, 1e-3}) {
    CAPTURE(s);
    const Mat X = u * s;
    Tape<double> t;
    auto x = t.constant(X);
    auto z = hyplora::ad::hyplora_stereographic_linear(x, t.constant(W0), x, t.constant(A), t.constant(B),
                                                       t.constant(scalar(1.4)), 0.6);
    const Mat lora = X * W0.transpose() + 0.6 * X * (B * A).transpose();
    const double rel = (z.value() - lora).norm() / (0.6 * X * (B * A).transpose()).norm();
    CHECK(rel < 0.1 * s * s * 100);  // O(|x|²) relative
    if (prev > 0 && rel > 1e-13) CHECK(prev / rel > 50.0);
    prev = rel;
  }
}

TEST_CASE("stereographic node: B = 0 gives the base output exactly; σ·layer_R(x/σ) = layer_σR(x)") {
  std::srand(13);
  const Mat X = rnd(4, 5, 1.5), W0 = rnd(3, 5, 0.5), A = rnd(2, 5, 0.5), B = rnd(3, 2, 0.7);
  {
    Tape<double> t;
    auto x = t.constant(X);
    auto Av = t.leaf(A);
    auto Bv = t.leaf(Mat::Zero(3, 2));
    auto z = hyplora::ad::hyplora_stereographic_linear(x, t.constant(W0), x, Av, Bv, t.constant(scalar(1.0)));
    CHECK((z.value() - hyplora::testing::base_output(X, W0)).cwiseAbs().maxCoeff() == 0.0);
    t.backward(z, Mat::Ones(4, 3));
    CHECK(Av.grad().cwiseAbs().maxCoeff() == 0.0);
    CHECK(Bv.grad().cwiseAbs().maxCoeff() > 0.0);
  }
  // Homogeneity (Eq. (199)): a feature scale σ is the same as radius σR.
  const double sigma = 3.0, R = 0.7;
  const Mat Z0 = Mat::Zero(3, 5);
  Tape<double> t;
  auto xs = t.constant(Mat(X / sigma));
  auto x = t.constant(X);
  auto z1 = hyplora::ad::hyplora_stereographic_linear(xs, t.constant(Z0), xs, t.constant(A), t.constant(B),
                                                      t.constant(scalar(R)));
  auto z2 = hyplora::ad::hyplora_stereographic_linear(x, t.constant(Z0), x, t.constant(A), t.constant(B),
                                                      t.constant(scalar(sigma * R)));
  CHECK((sigma * z1.value() - z2.value()).cwiseAbs().maxCoeff() <= 1e-13 * z2.value().cwiseAbs().maxCoeff());
}

TEST_CASE("stereographic node stays finite in float32 over tiny and huge inputs") {
  for (float s : {1e-15f, 1e-8f, 1e-3f, 1.0f, 1e2f, 1e4f}) {
    CAPTURE(s);
    using MF = MatrixR<float>;
    Tape<float> t;
    auto x = t.leaf(MF(MF::Random(3, 16) * s));
    auto A = t.leaf(MF::Random(4, 16));
    auto B = t.leaf(MF::Random(8, 4));
    auto R = t.leaf(MF::Constant(1, 1, 1.0f));
    const MF W0 = MF::Zero(8, 16);  // so z is the adapter's output alone
    auto z = hyplora::ad::hyplora_stereographic_linear(x, t.constant(W0), x, A, B, R, 1.0);
    t.backward(z, MF::Ones(3, 8));
    CHECK(z.value().allFinite());
    CHECK(x.grad().allFinite());
    CHECK(A.grad().allFinite());
    CHECK(B.grad().allFinite());
    CHECK(R.grad().allFinite());
    // |γ·out| < γR = 1: the adapter's output is a ball point.
    CHECK(z.value().rowwise().norm().maxCoeff() < 1.0f + 1e-5f);
  }
}

TEST_CASE("stereographic node rejects bad shapes, bad R and non-finite input") {
  Tape<double> t;
  auto x = t.constant(rnd(2, 4, 1.0));
  auto W0 = t.constant(rnd(3, 4, 1.0));
  auto A = t.constant(rnd(2, 4, 1.0)), B = t.constant(rnd(3, 2, 1.0));
  auto one = t.constant(scalar(1.0));
  using hyplora::ad::hyplora_stereographic_linear;
  CHECK_THROWS_AS(hyplora_stereographic_linear(x, W0, x, t.constant(rnd(2, 5, 1.0)), B, one), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora_stereographic_linear(x, W0, x, A, t.constant(rnd(4, 2, 1.0)), one), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora_stereographic_linear(x, W0, x, A, B, t.constant(rnd(2, 1, 1.0))), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora_stereographic_linear(x, W0, x, A, B, t.constant(scalar(0.0))), hyplora::value_error);
  CHECK_THROWS_AS(hyplora_stereographic_linear(x, W0, x, A, B, t.constant(scalar(-1.0))), hyplora::value_error);
  CHECK_THROWS_AS(hyplora_stereographic_linear(x, W0, x, A, B, t.constant(scalar(std::nan("")))), hyplora::value_error);
  Mat bad = rnd(2, 4, 1.0);
  bad(0, 3) = INFINITY;
  auto xb = t.constant(bad);
  CHECK_THROWS_AS(hyplora_stereographic_linear(xb, W0, xb, A, B, one), hyplora::value_error);
  try {
    hyplora_stereographic_linear(x, W0, x, A, t.constant(rnd(4, 2, 1.0)), one);
    FAIL("no throw");
  } catch (const hyplora::shape_error& e) {
    CHECK(std::string(e.what()).find("(2, 4)") != std::string::npos);
    CHECK(std::string(e.what()).find("(4, 2)") != std::string::npos);
  }
}

// hyplora_stereographic_branch is the node without the base map: the value less x·W0ᵀ + b and
// the same gradients to x_a, A, B and R (x, W0, b constants in the full node).
TEST_CASE("stereographic branch: value and gradients are the full node's less the base map") {
  const Mat X = rnd(5, 7, 1.5), W0 = rnd(6, 7, 0.5), b = rnd(1, 6, 0.3), A = rnd(3, 7, 0.5), B = rnd(6, 3, 0.9);
  const Mat G = rnd(5, 6, 1.0);
  auto run = [&](bool full) {
    Tape<double> t;
    auto xa = t.leaf(X), a = t.leaf(A), bb = t.leaf(B), R = t.leaf(scalar(0.8));
    const Var<double> z =
        full ? hyplora::ad::hyplora_stereographic_linear(t.constant(X), t.constant(W0), xa, a, bb, R, 1.5, t.constant(b))
             : hyplora::ad::hyplora_stereographic_branch(xa, a, bb, R, 1.5);
    t.backward(z, G);
    Mat v = z.value();
    if (full) v -= (X * W0.transpose()).rowwise() + b.row(0);
    return std::vector<Mat>{v, xa.grad(), a.grad(), bb.grad(), R.grad()};
  };
  const std::vector<Mat> f = run(true), br = run(false);
  CHECK(br[0].cwiseAbs().maxCoeff() > 0.1);
  CHECK(br[4].cwiseAbs().maxCoeff() > 0.0);
  for (std::size_t k = 0; k < f.size(); ++k) {
    CAPTURE(k);
    CHECK((f[k] - br[k]).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + f[k].cwiseAbs().maxCoeff()));
  }
  Tape<double> t;
  CHECK_THROWS_AS(hyplora::ad::hyplora_stereographic_branch(t.leaf(rnd(5, 6, 1.0)), t.leaf(A), t.leaf(B), t.leaf(scalar(1.0))),
                  hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::ad::hyplora_stereographic_branch(t.leaf(X), t.leaf(A), t.leaf(B), t.leaf(scalar(0.0))),
                  hyplora::value_error);
}

#ifdef _OPENMP
TEST_CASE("stereographic node: 1 and 2 OpenMP threads agree to rounding; a fixed thread count is bitwise reproducible") {
  // Two threads share the 200 tokens; only the order in which the per-thread partials (∂R) are
  // added depends on the thread count.
  using hyplora::ad::detail::kHypLoRAParallelMinWork;
  std::srand(29);
  const Eigen::Index n = 200, d_in = 96, d_out = 80, r = 8;
  REQUIRE(n * d_in >= kHypLoRAParallelMinWork);
  const Mat X = rnd(n, d_in, 0.3), W0 = rnd(d_out, d_in, 0.2), A = rnd(r, d_in, 0.4), B = rnd(d_out, r, 0.5),
            b = rnd(1, d_out, 0.1), G = rnd(n, d_out, 1.0);
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tape<double> t;
    auto x = t.leaf(X), W = t.leaf(W0), a = t.leaf(A), bb = t.leaf(B), R = t.leaf(scalar(1.4)), bias = t.leaf(b);
    auto z = hyplora::ad::hyplora_stereographic_linear(x, W, x, a, bb, R, 1.5, bias);
    t.backward(z, G);
    omp_set_num_threads(prev);
    return std::vector<Mat>{z.value(), x.grad(), W.grad(), a.grad(), bb.grad(), R.grad(), bias.grad()};
  };
  const auto one = run(1), two = run(2), again = run(2);
  CHECK(std::abs(one[5](0, 0)) > 1e-6);  // ∂R is a non-trivial sum over tokens
  for (std::size_t k = 0; k < one.size(); ++k) {
    CAPTURE(k);
    REQUIRE(one[k].allFinite());
    // Reordered partial sums: rounding-level, far below 1e-12 relative in double.
    CHECK((one[k] - two[k]).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + one[k].cwiseAbs().maxCoeff()));
    CHECK((two[k].array() == again[k].array()).all());
  }
}
#endif

}  // namespace autodiff_test_ops_hyplora_stereographic
