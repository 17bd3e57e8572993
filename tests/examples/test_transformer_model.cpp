// Tests for examples/transformer/model.hpp: whole-model gradients, overfitting, adapter wiring.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../../examples/transformer/model.hpp"
#include "hyplora/testing/gradcheck.hpp"
#include "../../examples/transformer/train.hpp"

namespace examples_test_transformer_model {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace ex = hyplora::examples;
namespace ad = hyplora::ad;
namespace nn = hyplora::nn;
using hyplora::Index;

namespace {

ex::GPTConfig tiny(bool rms = false) {
  ex::GPTConfig c;
  c.vocab = 256;
  c.block_size = 8;
  c.width = 8;
  c.layers = 2;
  c.heads = 2;
  c.rms_norm = rms;
  c.seed = 7;
  return c;
}

std::vector<std::int64_t> some_ids(std::size_t n, std::uint64_t seed) {
  hyplora::nn::SplitMix64 g(seed);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = static_cast<std::int64_t>(g.next() % 256);
  return v;
}

// Central differences on a few entries of every trainable parameter vs the tape's gradient.
double worst_grad_error(ex::GPT<double>& m, ad::ParameterStore<double>& store, Index B, Index T) {
  const auto ids = some_ids(static_cast<std::size_t>(B * T), 1);
  auto tg = some_ids(static_cast<std::size_t>(B * T), 2);
  tg[1] = -1;  // an ignored position
  ad::Tape<double> tape;
  auto loss_at = [&]() {
    tape.clear();
    return m.loss(tape, store, ids, tg, B, T, false).item();
  };
  store.zero_grad();
  tape.clear();
  tape.backward(m.loss(tape, store, ids, tg, B, T, false));
  double worst = 0;
  int checked = 0;
  for (int k = 0; k < store.count(); ++k) {
    const auto p = store.at_index(k);
    if (!store.trainable(p)) continue;
    const auto& info = store.info(p);
    for (std::size_t e : {std::size_t(0), info.size() / 2, info.size() - 1}) {
      double& x = store.values()[info.offset + e];
      const double x0 = x, h = 1e-5;
      x = x0 + h;
      const double lp = loss_at();
      x = x0 - h;
      const double lm = loss_at();
      x = x0;
      const double num = (lp - lm) / (2 * h);
      const double a = store.grads()[info.offset + e];
      worst = std::max(worst, std::abs(a - num) / std::max({1.0, std::abs(a), std::abs(num)}));
      ++checked;
    }
  }
  CHECK(checked > 20);
  return worst;
}

}  // namespace

TEST_CASE("GPT: whole-model gradient matches central differences (double)") {
  for (bool rms : {false, true}) {
    CAPTURE(rms);
    ad::ParameterStore<double> store;
    ex::GPT<double> m(store, tiny(rms));
    CHECK(worst_grad_error(m, store, 2, 5) <= 1e-6);
  }
}

TEST_CASE("GPT: gradient with LoRA and HypLoRA adapters attached (double)") {
  for (auto kind : {nn::AdapterKind::lora, nn::AdapterKind::hyplora}) {
    CAPTURE(nn::to_string(kind));
    ad::ParameterStore<double> store;
    ex::GPT<double> m(store, tiny());
    nn::AdapterConfig c;
    c.kind = kind;
    c.r = 2;
    c.alpha = 4;
    c.feature_scale = std::sqrt(8.0);
    c.scale_out_by_sigma = true;
    m.attach(store, c, {"q", "v", "fc1", "fc2"});
    // B starts at zero, so nudge it: otherwise A's gradient is exactly zero and checks nothing.
    for (int k = 0; k < store.count(); ++k) {
      const auto p = store.at_index(k);
      if (store.info(p).name.find("lora_B") != std::string::npos) store.value(p).setConstant(0.05);
    }
    CHECK(worst_grad_error(m, store, 2, 4) <= 1e-6);
  }
}

TEST_CASE("GPT: deterministic init from the seed; shape errors name the shapes") {
  ad::ParameterStore<float> a, b, c;
  ex::GPT<float> ma(a, tiny()), mb(b, tiny());
  auto cfg = tiny();
  cfg.seed = 8;
  ex::GPT<float> mc(c, cfg);
  CHECK(a.values() == b.values());
  CHECK(a.values() != c.values());
  ad::Tape<float> tape;
  CHECK_THROWS_AS(ma.forward(tape, a, some_ids(7, 1), 2, 4), hyplora::shape_error);
  CHECK_THROWS_AS(ma.forward(tape, a, some_ids(18, 1), 2, 9), hyplora::shape_error);  // T > block_size
  auto bad = tiny();
  bad.heads = 3;
  CHECK_THROWS_AS(ex::GPT<float>(c, bad), hyplora::value_error);
}

TEST_CASE("GPT: causal — changing a later token leaves earlier logits unchanged") {
  ad::ParameterStore<double> store;
  ex::GPT<double> m(store, tiny());
  auto ids = some_ids(6, 3);
  ad::Tape<double> t1, t2;
  const hyplora::MatrixR<double> z1 = m.forward(t1, store, ids, 1, 6, false).value();
  ids[4] = (ids[4] + 1) % 256;
  const hyplora::MatrixR<double> z2 = m.forward(t2, store, ids, 1, 6, false).value();
  CHECK((z1.topRows(4) - z2.topRows(4)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((z1.row(4) - z2.row(4)).cwiseAbs().maxCoeff() > 0.0);
}

TEST_CASE("GPT: overfits one batch") {
  // A fixed batch of 2 x 16 bytes; 150 AdamW steps at lr 3e-3 take the loss from ln 256 ≈ 5.5
  // to below 0.5 (it memorises the text).
  ex::GPTConfig c;
  c.block_size = 16;
  c.width = 32;
  c.layers = 2;
  c.heads = 2;
  ad::ParameterStore<float> store;
  ex::GPT<float> m(store, c);
  ex::TrainConfig tc;
  tc.steps = 150;
  tc.lr = 3e-3;
  tc.min_lr = 3e-3;
  tc.warmup = 0;
  ex::Trainer<float> tr(m, store, tc);
  std::vector<std::int64_t> ids, tg;
  const std::string text = "the quick brown fox jumps over the lazy dog; a beagle is a kind of hound.";
  ex::lm_batch(text, 2, 16, 5, 0, ids, tg);
  const double first = tr.step(ids, tg, 2, 16);
  double last = first;
  for (int s = 1; s < tc.steps; ++s) last = tr.step(ids, tg, 2, 16);
  CHECK(first > 5.0);
  CHECK(last < 0.5);
}

TEST_CASE("GPT: attaching adapters freezes the base; full trains everything") {
  ad::ParameterStore<float> store;
  ex::GPT<float> m(store, tiny());
  nn::AdapterConfig c;
  c.kind = nn::AdapterKind::lora;
  c.r = 2;
  m.attach(store, c, {"q", "v"});
  std::size_t adapters = 0;
  for (int k = 0; k < store.count(); ++k) {
    const auto p = store.at_index(k);
    const bool is_adapter = store.info(p).name.find(".lora_") != std::string::npos;
    CHECK_MESSAGE(store.trainable(p) == is_adapter, store.info(p).name);
    adapters += is_adapter ? store.info(p).size() : 0;
  }
  // 2 layers x 2 targets x (A: 2x8 + B: 8x2)
  CHECK(adapters == 2u * 2u * (16u + 16u));
  CHECK(store.trainable_size() == adapters);

  // A training step changes adapter parameters only (the frozen base stays bitwise equal).
  const std::vector<float> before = store.values();
  ex::TrainConfig tc;
  tc.steps = 3;
  tc.warmup = 0;
  ex::Trainer<float> tr(m, store, tc);
  std::vector<std::int64_t> ids, tg;
  ex::lm_batch(std::string(64, 'a') + "bcdefgh", 2, 8, 1, 0, ids, tg);
  for (int s = 0; s < 3; ++s) tr.step(ids, tg, 2, 8);
  bool adapter_moved = false;
  for (int k = 0; k < store.count(); ++k) {
    const auto p = store.at_index(k);
    const auto& info = store.info(p);
    const bool same = std::equal(before.begin() + static_cast<std::ptrdiff_t>(info.offset),
                                 before.begin() + static_cast<std::ptrdiff_t>(info.offset + info.size()),
                                 store.values().begin() + static_cast<std::ptrdiff_t>(info.offset));
    if (!store.trainable(p)) CHECK_MESSAGE(same, info.name);
    else adapter_moved = adapter_moved || !same;
  }
  CHECK(adapter_moved);
  CHECK_THROWS_AS(m.attach(store, c, {"qq"}), hyplora::value_error);

  ad::ParameterStore<float> s2;
  ex::GPT<float> m2(s2, tiny());
  nn::AdapterConfig f;
  f.kind = nn::AdapterKind::full;
  m2.attach(s2, f, {"q"});
  CHECK(s2.trainable_size() == s2.values().size());
}

TEST_CASE("gelu_rows: gradchecked, and equal to ad::gelu in value and gradient") {
  using hyplora::MatrixR;
  // Degenerate shapes, one row / one column, and one past a chunk boundary (kGeluChunk).
  for (auto [r, c] : {std::pair<Index, Index>{1, 1}, {1, 7}, {6, 1}, {5, 9}}) {
    MatrixR<double> x = 3.0 * MatrixR<double>::Random(r, c);
    auto res = hyplora::testing::gradcheck(
        [](ad::Tape<double>&, const std::vector<ad::Var<double>>& v) { return ex::detail::gelu_rows(v[0]); }, {x});
    CHECK_MESSAGE(res.ok, res.report);
  }
  // Composition check: the same values and input gradient as the primitive ad::gelu, across
  // chunks and the OpenMP threshold (65536 elements).
  const auto compare = [](auto zero, Index r, Index c, double tol) {
    using T = decltype(zero);
    MatrixR<T> x = (T(4) * MatrixR<double>::Random(r, c)).template cast<T>();
    MatrixR<T> w = MatrixR<double>::Random(r, c).template cast<T>();
    ad::Tape<T> t1, t2;
    auto a1 = t1.leaf(x), a2 = t2.leaf(x);
    auto y1 = ex::detail::gelu_rows(a1), y2 = ad::gelu(a2);
    t1.backward(y1, w);
    t2.backward(y2, w);
    const double dv = (MatrixR<T>(y1.value()) - MatrixR<T>(y2.value())).cwiseAbs().maxCoeff();
    const double dg = (MatrixR<T>(a1.grad()) - MatrixR<T>(a2.grad())).cwiseAbs().maxCoeff();
    CHECK(dv <= tol);
    CHECK(dg <= tol);
  };
  compare(0.0, 3, 5000, 1e-12);
  compare(0.0, 70, 1000, 1e-12);
  compare(0.0f, 70, 1000, 4e-6);  // Eigen's vectorised float tanh is within a few ulp of tanhf
}

}  // namespace examples_test_transformer_model
