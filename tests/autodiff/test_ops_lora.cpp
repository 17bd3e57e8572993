// Tests for include/hyplora/autodiff/ops_lora.hpp: the fused LoRA node.
#include <doctest/doctest.h>

#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/testing/gradcheck.hpp>
#include <vector>

namespace autodiff_test_ops_lora {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
MatrixR<double> rnd(Eigen::Index r, Eigen::Index c) { return MatrixR<double>::Random(r, c); }
}  // namespace

TEST_CASE("lora_linear equals x·W0ᵀ + b + γ·x_a·Aᵀ·Bᵀ") {
  const MatrixR<double> X = rnd(5, 6), Xa = rnd(5, 6), W0 = rnd(4, 6), A = rnd(2, 6), B = rnd(4, 2), b = rnd(1, 4);
  Tape<double> t;
  auto z = hyplora::ad::lora_linear(t.constant(X), t.constant(W0), t.constant(Xa), t.constant(A), t.constant(B), 0.25,
                                    t.constant(b));
  MatrixR<double> ref = X * W0.transpose() + 0.25 * Xa * A.transpose() * B.transpose();
  ref.rowwise() += b.row(0);
  CHECK((z.value() - ref).cwiseAbs().maxCoeff() < 1e-13);
}

TEST_CASE("lora_linear gradients match central differences") {
  for (bool same_input : {true, false}) {
    CAPTURE(same_input);
    const std::vector<MatrixR<double>> in = {rnd(3, 5), rnd(4, 5), rnd(3, 5), rnd(2, 5), rnd(4, 2), rnd(1, 4)};
    auto f = [same_input](Tape<double>&, const std::vector<Var<double>>& v) {
      return hyplora::ad::lora_linear(v[0], v[1], same_input ? v[0] : v[2], v[3], v[4], 0.5, v[5]);
    };
    auto res = hyplora::testing::gradcheck(f, in);
    CHECK_MESSAGE(res.ok, res.report);
  }
  // degenerate: one row, rank 1, one output
  const std::vector<MatrixR<double>> in = {rnd(1, 3), rnd(1, 3), rnd(1, 3), rnd(1, 1)};
  auto f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    return hyplora::ad::lora_linear(v[0], v[1], v[0], v[2], v[3], 2.0);
  };
  auto res = hyplora::testing::gradcheck(f, in);
  CHECK_MESSAGE(res.ok, res.report);
}

TEST_CASE("lora_linear shape errors name both shapes") {
  Tape<double> t;
  auto x = t.constant(rnd(2, 3));
  CHECK_THROWS_AS(hyplora::ad::lora_linear(x, t.constant(rnd(4, 3)), x, t.constant(rnd(2, 4)), t.constant(rnd(4, 2)), 1.0),
                  hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::ad::lora_linear(x, t.constant(rnd(4, 3)), x, t.constant(rnd(2, 3)), t.constant(rnd(4, 3)), 1.0),
                  hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::ad::lora_linear(x, t.constant(rnd(4, 2)), x, t.constant(rnd(2, 3)), t.constant(rnd(4, 2)), 1.0),
                  hyplora::shape_error);
}

}  // namespace autodiff_test_ops_lora
