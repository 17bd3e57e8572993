// Tests for include/hyplora/nn/dora.hpp: the DoRA layer (fused nodes) against the explicit merged
// weight m ⊙ V/‖V‖_row, its gradients (central differences), the composed reference
// (dora_linear_composed), and the merge helper. The nodes themselves: tests/autodiff/test_ops_dora.cpp.
#include <doctest/doctest.h>

#include <algorithm>

#include <hyplora/autodiff/ops_dropout.hpp>
#include <hyplora/nn/dora.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace nn_test_dora {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::MatrixR;
namespace ad = hyplora::ad;

namespace {
MatrixR<double> rnd(Eigen::Index r, Eigen::Index c, double s) { return MatrixR<double>::Random(r, c) * s; }
}  // namespace

TEST_CASE("dora_linear equals x W'^T + b with W' = m * V/|V|_row") {
  std::srand(4);
  const MatrixR<double> X = rnd(5, 6, 1.0), W0 = rnd(4, 6, 0.5), A = rnd(2, 6, 0.4), B = rnd(4, 2, 0.7),
                        m = rnd(1, 4, 1.0), b = rnd(1, 4, 0.2);
  const double g = 1.5;
  MatrixR<double> V = W0 + g * B * A;
  for (Eigen::Index i = 0; i < V.rows(); ++i) V.row(i) *= m(0, i) / V.row(i).norm();
  MatrixR<double> ref = X * V.transpose();
  ref.rowwise() += b.row(0);
  ad::Tape<double> t;
  auto x = t.constant(X);
  const MatrixR<double> z =
      hyplora::nn::dora_linear(x, t.constant(W0), x, t.constant(A), t.constant(B), t.constant(m), g, t.constant(b)).value();
  CHECK((z - ref).cwiseAbs().maxCoeff() <= 1e-14);
  MatrixR<double> W = W0;
  const auto s = hyplora::nn::dora_merge_weight(W, A, B, m, g);
  CHECK((W - V).cwiseAbs().maxCoeff() <= 1e-15);
  CHECK(s.size() == 4);
}

TEST_CASE("dora_linear gradients, with and without a separate (dropout) adapter input") {
  std::srand(6);
  for (bool drop : {false, true}) {
    for (int rows : {1, 3}) {
      const std::vector<MatrixR<double>> in = {rnd(rows, 5, 1.0), rnd(3, 5, 0.5), rnd(2, 5, 0.6), rnd(3, 2, 0.8),
                                               rnd(1, 3, 1.0), rnd(1, 3, 0.2)};
      auto f = [drop](ad::Tape<double>&, const std::vector<ad::Var<double>>& v) {
        ad::Var<double> xa = drop ? ad::dropout(v[0], 0.4, 3) : v[0];
        return hyplora::nn::dora_linear(v[0], v[1], xa, v[2], v[3], v[4], 0.9, v[5]);
      };
      const auto res = hyplora::testing::gradcheck(f, in);
      CHECK_MESSAGE(res.ok, res.report);
    }
  }
}

TEST_CASE("dora_scale shape errors name both shapes") {
  ad::Tape<double> t;
  auto W0 = t.constant(rnd(3, 4, 1.0));
  auto A = t.constant(rnd(2, 4, 1.0));
  CHECK_THROWS_WITH_AS(hyplora::nn::dora_scale(W0, A, t.constant(rnd(3, 3, 1.0)), t.constant(rnd(1, 3, 1.0)), 1.0),
                       doctest::Contains("A (2, 4) vs B (3, 3)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(hyplora::nn::dora_scale(W0, A, t.constant(rnd(3, 2, 1.0)), t.constant(rnd(3, 1, 1.0)), 1.0),
                       doctest::Contains("magnitude (3, 1)"), hyplora::shape_error);
}

TEST_CASE("dora_linear (fused nodes) equals dora_linear_composed, with and without dropout and bias") {
  std::srand(8);
  for (bool drop : {false, true})
    for (bool with_bias : {false, true}) {
      CAPTURE(drop);
      CAPTURE(with_bias);
      const MatrixR<double> X = rnd(6, 5, 1.0), W0 = rnd(4, 5, 0.5), A = rnd(2, 5, 0.6), B = rnd(4, 2, 0.8),
                            m = rnd(1, 4, 1.0), b = rnd(1, 4, 0.2), G = rnd(6, 4, 1.0);
      MatrixR<double> out[2][6];
      for (int fused = 0; fused < 2; ++fused) {
        ad::Tape<double> t;
        auto x = t.leaf(X), W = t.constant(W0), Av = t.leaf(A), Bv = t.leaf(B), mv = t.leaf(m), bv = t.leaf(b);
        auto xa = drop ? ad::dropout(x, 0.3, 11) : x;
        const ad::Var<double> bias = with_bias ? bv : ad::Var<double>{};
        auto z = fused ? hyplora::nn::dora_linear(x, W, xa, Av, Bv, mv, 0.7, bias)
                       : hyplora::nn::dora_linear_composed(x, W, xa, Av, Bv, mv, 0.7, bias);
        t.backward(z, G);
        out[fused][0] = z.value();
        out[fused][1] = x.grad();
        out[fused][2] = Av.grad();
        out[fused][3] = Bv.grad();
        out[fused][4] = mv.grad();
        out[fused][5] = bv.grad();
      }
      for (int k = 0; k < 6; ++k) {
        CAPTURE(k);
        const double scale = std::max(1e-300, out[0][k].cwiseAbs().maxCoeff());
        CHECK((out[1][k] - out[0][k]).cwiseAbs().maxCoeff() <= 1e-12 * scale);
      }
      CHECK(out[0][2].cwiseAbs().maxCoeff() > 0.0);  // the comparison is not of zeros
    }
}

TEST_CASE("dora_scale_composed keeps the shape checks") {
  ad::Tape<double> t;
  auto W0 = t.constant(rnd(3, 4, 1.0));
  CHECK_THROWS_WITH_AS(hyplora::nn::dora_scale_composed(W0, t.constant(rnd(2, 5, 1.0)), t.constant(rnd(3, 2, 1.0)),
                                                        t.constant(rnd(1, 3, 1.0)), 1.0),
                       doctest::Contains("W0 (3, 4) vs A (2, 5)"), hyplora::shape_error);
}

}  // namespace nn_test_dora
