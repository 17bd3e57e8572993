// Tests for include/hyplora/autodiff/ops_dora.hpp: the fused DoRA scale s = m/‖W0 + γBA‖_row
// against central differences (w.r.t. W0, A, B, m) and against its composition from primitive
// ops (nn::dora_scale_composed: value and every gradient to 1e-12, double), in the regime where
// the quadratic form is used and in rows where it cancels and V_i is streamed (Eq. (261));
// B = 0; V_i = 0; accumulation into parameter slots; shape errors; memory and allocations. Then
// the data-path node dora_linear_scaled: gradcheck, nn::dora_linear == dora_linear_composed, the
// read-back of y for ∂s and its recomputed columns, shape errors, and peak heap against LoRA.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_dora.hpp>
#include <hyplora/autodiff/ops_dropout.hpp>
#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/nn/dora.hpp>
#include <hyplora/testing/gradcheck.hpp>

#include "support/alloc_counter.hpp"
#include "support/tape_bytes.hpp"

namespace autodiff_test_ops_dora {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::Index;
using hyplora::MatrixR;
namespace ad = hyplora::ad;
using MD = MatrixR<double>;

namespace {
MD rnd(Index r, Index c, double s) { return MD::Random(r, c) * s; }

/// W0, A, B, m for D_out = 7, D_in = 9, R = 3; with `cancel`, rows 2 and 5 of W0 are set to
/// −γB_iA plus a small part, so ‖V_i‖² < ‖W0_i‖²/16 and those rows take the streamed path.
std::vector<MD> inputs(double gamma, bool cancel, unsigned seed) {
  std::srand(seed);
  std::vector<MD> in = {rnd(7, 9, 0.5), rnd(3, 9, 0.6), rnd(7, 3, 0.7), rnd(1, 7, 1.0) + MD::Constant(1, 7, 1.5)};
  if (cancel) {
    for (Index i : {2, 5}) in[0].row(i) = -gamma * in[2].row(i) * in[1] + 0.05 * rnd(1, 9, 1.0);
  }
  return in;
}

/// The rows the node took the streamed path for (its saved per-row flag).
int exact_rows(ad::Var<double> s) {
  const auto& rows = s.tape->node(s.id).saved[ad::detail::kDoraRows];
  int k = 0;
  for (Index i = 0; i < rows.rows(); ++i) k += rows(i, ad::detail::kDoraExact) != 0.0 ? 1 : 0;
  return k;
}

double rel(const MD& a, const MD& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-300, b.cwiseAbs().maxCoeff());
}
}  // namespace

TEST_CASE("dora_scale: gradcheck w.r.t. W0, A, B, m (quadratic form and streamed rows)") {
  for (bool cancel : {false, true}) {
    CAPTURE(cancel);
    const double g = 1.3;
    auto f = [g](ad::Tape<double>&, const std::vector<ad::Var<double>>& v) { return ad::dora_scale(v[0], v[1], v[2], v[3], g); };
    const auto in = inputs(g, cancel, 11);
    const auto res = hyplora::testing::gradcheck(f, in);
    CHECK_MESSAGE(res.ok, res.report);
    ad::Tape<double> t;
    auto s = ad::dora_scale(t.constant(in[0]), t.constant(in[1]), t.constant(in[2]), t.constant(in[3]), g);
    CHECK(exact_rows(s) == (cancel ? 2 : 0));  // the test covers the path it says it covers
  }
}

TEST_CASE("dora_scale: fused == composed, value and every gradient (double, 1e-12 relative)") {
  for (bool cancel : {false, true})
    for (bool w0_grad : {false, true})
      for (double g : {0.5, 2.0}) {
        CAPTURE(cancel);
        CAPTURE(w0_grad);
        CAPTURE(g);
        const auto in = inputs(g, cancel, 23);
        std::srand(5);
        const MD seed = rnd(1, 7, 1.0);
        MD val[2], grad[2][4];
        for (int fused = 0; fused < 2; ++fused) {
          ad::Tape<double> t;
          auto W0 = t.leaf(in[0], w0_grad);
          auto A = t.leaf(in[1]), B = t.leaf(in[2]), m = t.leaf(in[3]);
          auto s = fused ? ad::dora_scale(W0, A, B, m, g) : hyplora::nn::dora_scale_composed(W0, A, B, m, g);
          t.backward(s, seed);
          val[fused] = s.value();
          const ad::Var<double> vs[4] = {W0, A, B, m};
          for (int k = 0; k < 4; ++k) grad[fused][k] = vs[k].grad();
          if (fused) CHECK(exact_rows(s) == (cancel ? 2 : 0));
        }
        CHECK(rel(val[1], val[0]) <= 1e-12);
        for (int k = 0; k < 4; ++k) {
          CAPTURE(k);
          if (k == 0 && !w0_grad) {
            CHECK(grad[1][0].cwiseAbs().maxCoeff() == 0.0);
            continue;
          }
          CHECK(grad[0][k].cwiseAbs().maxCoeff() > 0.0);
          CHECK(rel(grad[1][k], grad[0][k]) <= 1e-12);
        }
      }
}

TEST_CASE("dora_scale: B = 0 gives m/|W0|_row and no gradient to A") {
  for (int trial = 0; trial < 3; ++trial) {
    std::srand(40 + static_cast<unsigned>(trial));
    const MD W0 = rnd(5, 8, 1.0), A = rnd(2, 8, 1.0), m = rnd(1, 5, 1.0);
    ad::Tape<double> t;
    auto Av = t.leaf(A), Bv = t.leaf(MD::Zero(5, 2)), mv = t.leaf(m);
    auto s = ad::dora_scale(t.constant(W0), Av, Bv, mv, 1.7);
    t.backward(s, MD::Ones(1, 5));
    for (Index i = 0; i < 5; ++i) CHECK(std::abs(s.value()(0, i) - m(0, i) / W0.row(i).norm()) <= 1e-15 * std::abs(s.value()(0, i)));
    CHECK(Av.grad().cwiseAbs().maxCoeff() == 0.0);
    CHECK(Bv.grad().cwiseAbs().maxCoeff() > 0.0);  // B = 0 is not a stationary point for B
  }
}

TEST_CASE("dora_scale: a zero row V_i gives m_i/0 and the zero subgradient, as the composed graph") {
  const double g = 1.0;
  MD W0 = rnd(3, 4, 1.0), A = rnd(2, 4, 1.0), B = rnd(3, 2, 1.0), m = MD::Ones(1, 3);
  W0.row(1) = -g * B.row(1) * A;  // V_1 = 0 up to rounding of the product
  ad::Tape<double> t;
  auto Av = t.leaf(A), Bv = t.leaf(B);
  auto s = ad::dora_scale(t.constant(W0), Av, Bv, t.constant(m), g);
  CHECK(exact_rows(s) >= 1);
  CHECK(std::abs(s.value()(0, 1)) > 1e12);  // |V_1| is rounding-sized (or 0: inf)
  CHECK(std::isfinite(s.value()(0, 0)));
  MD seed = MD::Ones(1, 3);
  seed(0, 1) = 0.0;  // row 1 contributes nothing: the other rows' gradients stay finite
  t.backward(s, seed);
  CHECK(Av.grad().allFinite());
  CHECK(Bv.grad().allFinite());
}

TEST_CASE("dora_scale: gradients accumulate into shared parents and parameter slots") {
  // Two nodes on the same parents: the second backward contribution adds (non-fresh buffers).
  const auto in = inputs(0.8, true, 31);
  auto f = [](ad::Tape<double>&, const std::vector<ad::Var<double>>& v) {
    return ad::add(ad::dora_scale(v[0], v[1], v[2], v[3], 0.8), ad::mul(ad::dora_scale(v[0], v[1], v[2], v[3], 0.3), v[3]));
  };
  const auto res = hyplora::testing::gradcheck(f, in);
  CHECK_MESSAGE(res.ok, res.report);
  // Parameter slots accumulate across backward calls.
  ad::ParameterStore<double> store;
  auto pA = store.add("A", 3, 9), pB = store.add("B", 7, 3), pm = store.add("m", 1, 7);
  store.value(pA) = in[1];
  store.value(pB) = in[2];
  store.value(pm) = in[3];
  MD once[3];
  for (int pass = 0; pass < 2; ++pass) {
    ad::Tape<double> t;
    auto s = ad::dora_scale(t.constant(in[0]), t.param(store, pA), t.param(store, pB), t.param(store, pm), 0.8);
    t.backward(s, MD::Ones(1, 7));
    if (pass == 0) {
      once[0] = store.grad(pA);
      once[1] = store.grad(pB);
      once[2] = store.grad(pm);
    }
  }
  CHECK(rel(store.grad(pA), 2.0 * once[0]) <= 1e-15);
  CHECK(rel(store.grad(pB), 2.0 * once[1]) <= 1e-15);
  CHECK(rel(store.grad(pm), 2.0 * once[2]) <= 1e-15);
}

TEST_CASE("dora_scale: shape errors name both shapes") {
  ad::Tape<double> t;
  auto W0 = t.constant(rnd(3, 4, 1.0));
  auto A = t.constant(rnd(2, 4, 1.0));
  auto B = t.constant(rnd(3, 2, 1.0));
  auto m = t.constant(rnd(1, 3, 1.0));
  CHECK_THROWS_WITH_AS(ad::dora_scale(W0, t.constant(rnd(2, 5, 1.0)), B, m, 1.0), doctest::Contains("W0 (3, 4) vs A (2, 5)"),
                       hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_scale(W0, A, t.constant(rnd(3, 3, 1.0)), m, 1.0), doctest::Contains("A (2, 4) vs B (3, 3)"),
                       hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_scale(W0, A, t.constant(rnd(4, 2, 1.0)), m, 1.0), doctest::Contains("A (2, 4) vs B (4, 2)"),
                       hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_scale(W0, A, B, t.constant(rnd(3, 1, 1.0)), 1.0),
                       doctest::Contains("W0 (3, 4) vs magnitude (3, 1)"), hyplora::shape_error);
}

TEST_CASE("dora_scale: no (D_out, D_in) buffer, and no allocation when a tape is reused (float)") {
  using MF = MatrixR<float>;
  const Index d = 256, r = 4;
  ad::ParameterStore<float> store;
  auto pW = store.add("W0", MF::Random(d, d), false);
  auto pA = store.add("A", MF::Random(r, d) * 0.1f), pB = store.add("B", MF::Random(d, r) * 0.1f);
  auto pm = store.add("m", MF::Ones(1, d));
  const MF seed = MF::Ones(1, d);
  auto bytes_of = [&](bool fused) {
    ad::Tape<float> t;
    auto W = t.param(store, pW), A = t.param(store, pA), B = t.param(store, pB), m = t.param(store, pm);
    auto s = fused ? ad::dora_scale(W, A, B, m, 2.0f) : hyplora::nn::dora_scale_composed(W, A, B, m, 2.0f);
    t.backward(s, seed);
    return hyplora::testing::tape_bytes(t);
  };
  const long long dd = static_cast<long long>(d * d * sizeof(float));
  const long long fused = bytes_of(true), composed = bytes_of(false);
  MESSAGE("tape bytes: fused " << fused << ", composed " << composed << ", one (D, D) matrix " << dd);
  CHECK(fused < dd / 4);
  CHECK(composed > 3 * dd);
  // Small shapes (no BLAS threading, whose work buffers are not ours): zero allocations.
  const MF W0s = MF::Random(8, 16), As = MF::Random(3, 16), Bs = MF::Random(8, 3), ms = MF::Ones(1, 8);
  const MF seed_s = MF::Ones(1, 8);
  ad::Tape<float> t;
  long long before = 0;
  for (int step = 0; step < 3; ++step) {
    if (step == 2) before = hyplora::testing::allocations();
    t.clear();
    auto s = ad::dora_scale(t.constant(W0s), t.leaf(As), t.leaf(Bs), t.leaf(ms), 2.0f);
    t.backward(s, seed_s);
    CHECK(s.value().allFinite());
  }
  CHECK(hyplora::testing::allocations() - before == 0);
}

// ---- dora_linear_scaled: the data path given s ---------------------------------------------------

TEST_CASE("dora_linear_scaled: gradcheck w.r.t. x, x_a, W0, A, B, s, b (shared and separate x_a)") {
  std::srand(71);
  for (bool separate : {false, true})
    for (bool with_bias : {false, true}) {
      CAPTURE(separate);
      CAPTURE(with_bias);
      // x, W0, A, B, s, b, x_a
      const std::vector<MD> in = {rnd(4, 6, 1.0), rnd(5, 6, 0.5), rnd(2, 6, 0.6), rnd(5, 2, 0.7), rnd(1, 5, 1.0),
                                  rnd(1, 5, 0.3), rnd(4, 6, 1.0)};
      auto f = [&](ad::Tape<double>&, const std::vector<ad::Var<double>>& v) {
        const ad::Var<double> xa = separate ? v[6] : v[0];
        return ad::dora_linear_scaled(v[0], v[1], xa, v[2], v[3], v[4], 0.9, with_bias ? v[5] : ad::Var<double>{});
      };
      const auto res = hyplora::testing::gradcheck(f, in);
      CHECK_MESSAGE(res.ok, res.report);
    }
}

namespace {
/// nn::dora_linear (fused) and nn::dora_linear_composed on the same inputs: value and the
/// gradients of x, W0 (when trainable), A, B, m, b; returns the worst relative difference.
double fused_vs_composed(const std::vector<MD>& in, bool dropout, bool with_bias, bool w0_grad, double g,
                         Index* recomputed_cols = nullptr) {
  std::srand(9);
  const MD seed = rnd(in[0].rows(), in[1].rows(), 1.0);
  MD out[2][8];
  for (int fused = 0; fused < 2; ++fused) {
    ad::Tape<double> t;
    auto x = t.leaf(in[0]);
    auto W0 = t.leaf(in[1], w0_grad);
    auto A = t.leaf(in[2]), B = t.leaf(in[3]), m = t.leaf(in[4]), b = t.leaf(in[5]);
    auto xa = dropout ? ad::dropout(x, 0.4, 3) : x;
    const ad::Var<double> bv = with_bias ? b : ad::Var<double>{};
    auto z = fused ? hyplora::nn::dora_linear(x, W0, xa, A, B, m, g, bv) : hyplora::nn::dora_linear_composed(x, W0, xa, A, B, m, g, bv);
    t.backward(z, seed);
    out[fused][0] = z.value();
    const ad::Var<double> vs[6] = {x, W0, A, B, m, b};
    for (int k = 0; k < 6; ++k) out[fused][k + 1] = vs[k].grad();
    if (fused && recomputed_cols) *recomputed_cols = t.node(z.id).saved[ad::detail::kDlCol].rows();
  }
  double worst = 0.0;
  for (int k = 0; k < 7; ++k) {
    if (out[0][k].cwiseAbs().maxCoeff() == 0.0) {
      worst = std::max(worst, out[1][k].cwiseAbs().maxCoeff());
      continue;
    }
    worst = std::max(worst, rel(out[1][k], out[0][k]));
  }
  return worst;
}
}  // namespace

TEST_CASE("dora_linear (fused scale + data path) == dora_linear_composed, value and every gradient") {
  for (bool dropout : {false, true})
    for (bool with_bias : {false, true})
      for (bool w0_grad : {false, true})
        for (bool cancel : {false, true}) {
          CAPTURE(dropout);
          CAPTURE(with_bias);
          CAPTURE(w0_grad);
          CAPTURE(cancel);
          const double g = 1.1;
          auto v = inputs(g, cancel, 57);  // W0 (7, 9), A, B, m
          std::srand(58);
          const std::vector<MD> in = {rnd(5, 9, 1.0), v[0], v[1], v[2], v[3], rnd(1, 7, 0.4)};
          CHECK(fused_vs_composed(in, dropout, with_bias, w0_grad, g) <= 1e-12);
        }
}

TEST_CASE("dora_linear: dL/ds read back from z, and recomputed for m_j = 0 or a dominating bias") {
  const double g = 0.7;
  auto v = inputs(g, false, 61);
  std::srand(62);
  std::vector<MD> in = {rnd(5, 9, 1.0), v[0], v[1], v[2], v[3], rnd(1, 7, 0.4)};
  Index recomputed = -1;
  CHECK(fused_vs_composed(in, false, true, false, g, &recomputed) <= 1e-12);
  CHECK(recomputed == 0);  // the ordinary case needs no column recomputed
  in[4](0, 2) = 0.0;       // s_2 = 0: y_:2 cannot be read back from z
  CHECK(fused_vs_composed(in, false, true, false, g, &recomputed) <= 1e-12);
  CHECK(recomputed == 5);
  in[4](0, 2) = 1.0;
  in[5](0, 4) = 1e9;  // z_:4 − b_4 would keep ~7 digits of s⊙y: recompute
  CHECK(fused_vs_composed(in, false, true, false, g, &recomputed) <= 1e-12);
  CHECK(recomputed == 5);
}

TEST_CASE("dora_linear_scaled: shape errors name both shapes") {
  ad::Tape<double> t;
  auto x = t.constant(rnd(2, 4, 1.0));
  auto W0 = t.constant(rnd(3, 4, 1.0));
  auto A = t.constant(rnd(2, 4, 1.0));
  auto B = t.constant(rnd(3, 2, 1.0));
  auto s = t.constant(rnd(1, 3, 1.0));
  CHECK_THROWS_WITH_AS(ad::dora_linear_scaled(x, W0, x, A, B, t.constant(rnd(1, 4, 1.0)), 1.0),
                       doctest::Contains("W0 (3, 4) vs scale (1, 4)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_linear_scaled(x, W0, t.constant(rnd(3, 4, 1.0)), A, B, s, 1.0),
                       doctest::Contains("x (2, 4) vs x_a (3, 4)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_linear_scaled(x, W0, x, t.constant(rnd(2, 5, 1.0)), B, s, 1.0),
                       doctest::Contains("x (2, 4) vs A (2, 5)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_linear_scaled(x, W0, x, A, t.constant(rnd(3, 3, 1.0)), s, 1.0),
                       doctest::Contains("A (2, 4) vs B (3, 3)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_linear_scaled(x, t.constant(rnd(3, 5, 1.0)), x, A, B, s, 1.0),
                       doctest::Contains("x (2, 4) vs weight (3, 5)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::dora_linear_scaled(x, W0, x, A, B, s, 1.0, t.constant(rnd(1, 2, 1.0))),
                       doctest::Contains("weight (3, 4) vs bias (1, 2)"), hyplora::shape_error);
}

namespace {
/// One float layer step (x requires a gradient; W0, b frozen; A, B, m trainable), LoRA or DoRA.
struct LayerStep {
  using MF = MatrixR<float>;
  MF X, G;
  ad::ParameterStore<float> store;
  ad::Parameter pW, pb, pA, pB, pm;
  LayerStep(Index n, Index d, Index r) {
    std::srand(3);
    X = MF::Random(n, d);
    G = MF::Random(n, d);
    const MF W0 = MF::Random(d, d) * 0.06f;
    pW = store.add("W0", W0, false);
    pb = store.add("b", MF::Random(1, d).eval(), false);
    pA = store.add("A", (MF::Random(r, d) * 0.1f).eval());
    pB = store.add("B", (MF::Random(d, r) * 0.02f).eval());
    pm = store.add("m", W0.rowwise().norm().transpose().eval());
  }
  bool run(ad::Tape<float>& t, bool dora, bool dropout) {
    t.clear();
    auto x = t.leaf(X);
    auto xa = dropout ? ad::dropout(x, 0.1f, 5) : x;
    auto W = t.param(store, pW), A = t.param(store, pA), B = t.param(store, pB), b = t.param(store, pb);
    auto z = dora ? hyplora::nn::dora_linear(x, W, xa, A, B, t.param(store, pm), 2.0f, b) : ad::lora_linear(x, W, xa, A, B, 2.0f, b);
    t.backward(z, G);
    return z.value().allFinite();
  }
};
}  // namespace

TEST_CASE("DoRA layer step: within 1.1x LoRA's tape bytes, and no allocation on a reused tape (float)") {
  LayerStep big(512, 256, 8);
  for (bool dropout : {false, true}) {
    CAPTURE(dropout);
    ad::Tape<float> tl, td;
    CHECK(big.run(tl, false, dropout));
    CHECK(big.run(td, true, dropout));
    const long long lora = hyplora::testing::tape_bytes(tl), dora = hyplora::testing::tape_bytes(td);
    MESSAGE("tape bytes of a step (N 512, D 256, R 8): LoRA " << lora << ", DoRA " << dora);
    // x_a = x: LoRA's four (N, D) tensors and small ones. A separate x_a: one (N, D) more, y.
    CHECK(static_cast<double>(dora) <= (dropout ? 1.3 : 1.1) * static_cast<double>(lora));
  }
  for (bool dropout : {false, true}) {
    LayerStep small(6, 16, 3);  // no BLAS threading, whose work buffers are not ours
    ad::Tape<float> t;
    long long before = 0;
    for (int k = 0; k < 3; ++k) {
      if (k == 2) before = hyplora::testing::allocations();
      CHECK(small.run(t, true, dropout));
    }
    CHECK(hyplora::testing::allocations() - before == 0);
  }
}

}  // namespace autodiff_test_ops_dora
