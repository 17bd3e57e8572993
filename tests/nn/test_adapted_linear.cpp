// Tests for include/hyplora/nn/adapted_linear.hpp: every adapter kind's gradients (input and every
// trainable parameter, central differences in double), B = 0 reproducing the base layer, a frozen
// base, LoRA/DoRA merge round trips, HypLoRA's merge refusal and merge_linearized, dropout, the
// adapter-file round trip, and the typed errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include <hyplora/io/adapter_file.hpp>
#include <hyplora/nn/adapted_linear.hpp>

#include "nn/layer_gradcheck.hpp"

namespace nn_test_adapted_linear {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::nn::AdaptedLinear;
using hyplora::nn::AdapterConfig;
using hyplora::nn::AdapterKind;
namespace ad = hyplora::ad;

constexpr Index kIn = 5, kOut = 6;

template <class T>
MatrixR<T> rnd(Index r, Index c, double scale, std::uint64_t seed) {
  MatrixR<T> m(r, c);
  hyplora::nn::uniform_(m, -scale, scale, seed);
  return m;
}

AdapterConfig cfg_of(AdapterKind k) {
  AdapterConfig c;
  c.kind = k;
  c.r = 2;
  c.alpha = 3.0;
  c.seed = 42;
  return c;
}

// A layer with random base weights and (optionally) a random, non-zero B.
template <class T>
struct Setup {
  ad::ParameterStore<T> store;
  AdaptedLinear<T> layer;
  explicit Setup(const AdapterConfig& c, bool random_B = true, double b_scale = 0.6)
      : layer(store, "blk.q_proj", kIn, kOut, true) {
    layer.base().init_kaiming_uniform(store, 7);
    layer.attach(store, c);
    if (random_B && hyplora::nn::has_low_rank(c.kind))
      store.value(layer.lora_B()) = rnd<T>(kOut, c.r, b_scale, 99);
  }
  ad::Var<T> fwd(ad::Tape<T>& t, ad::Var<T> x, bool training = false, std::uint64_t step = 0) {
    return layer.forward(t, store, x, training, step);
  }
};

const AdapterKind kAllKinds[] = {AdapterKind::lora, AdapterKind::dora, AdapterKind::hyplora,
                                 AdapterKind::hyplora_official, AdapterKind::hyplora_stereographic,
                                 AdapterKind::hyplora_official_simplified};
}  // namespace

TEST_CASE("every kind: gradients w.r.t. x and every trainable parameter match central differences") {
  for (AdapterKind kind : kAllKinds) {
    for (int variant = 0; variant < 3; ++variant) {
      AdapterConfig c = cfg_of(kind);
      const bool hyp = hyplora::nn::is_hyplora(kind);
      const bool has_sigma = kind == AdapterKind::hyplora || kind == AdapterKind::hyplora_official;
      if (variant >= 1 && !hyp && kind != AdapterKind::lora && kind != AdapterKind::dora) continue;
      if (variant == 1) {  // learned curvature (and σ where the kind has one), rsLoRA
        c.learn_curvature = hyp;
        c.learn_feature_scale = has_sigma;
        c.feature_scale = has_sigma ? 1.7 : 1.0;
        c.K = 0.7;
        c.rslora = true;
      }
      if (variant == 2) {  // dropout on the adapter input, σ_out = σ
        c.dropout = 0.3;
        c.scale_out_by_sigma = true;
        c.feature_scale = has_sigma ? 0.8 : 1.0;
        c.K = 2.0;
      }
      CAPTURE(hyplora::nn::to_string(kind));
      CAPTURE(variant);
      Setup<double> s(c);
      const MatrixR<double> X = rnd<double>(4, kIn, 1.2, 5);
      auto f = [&](ad::Tape<double>& t, ad::Var<double> x) { return s.fwd(t, x, variant == 2, 17); };
      // The published hook clamps the official node's ∂L/∂θ to [−0.01, 0.01] in every backward.
      auto clamp_theta = [&](const std::string& name, double num) {
        if (kind == AdapterKind::hyplora_official && name == "blk.q_proj.lora_k") return std::clamp(num, -0.01, 0.01);
        return num;
      };
      const auto res = nn_test::check_layer(f, s.store, X, clamp_theta);
      CHECK_MESSAGE(res.ok(), res.report);
      // Degenerate shapes: one token.
      const auto one = nn_test::check_layer(f, s.store, rnd<double>(1, kIn, 0.9, 6), clamp_theta);
      CHECK_MESSAGE(one.ok(), one.report);
    }
  }
}

TEST_CASE("rank 1, one output column") {
  for (AdapterKind kind : {AdapterKind::lora, AdapterKind::dora, AdapterKind::hyplora}) {
    ad::ParameterStore<double> store;
    AdaptedLinear<double> layer(store, "l", 3, 1, false);
    layer.base().init_kaiming_uniform(store, 1);
    AdapterConfig c = cfg_of(kind);
    c.r = 1;
    layer.attach(store, c);
    store.value(layer.lora_B()).setConstant(0.4);
    auto f = [&](ad::Tape<double>& t, ad::Var<double> x) { return layer.forward(t, store, x, false); };
    const auto res = nn_test::check_layer(f, store, rnd<double>(3, 3, 1.0, 2));
    CHECK_MESSAGE(res.ok(), res.report);
  }
}

TEST_CASE("B = 0 gives exactly the base layer's output (lora, dora, hyplora, stereographic)") {
  for (AdapterKind kind : {AdapterKind::lora, AdapterKind::dora, AdapterKind::hyplora, AdapterKind::hyplora_stereographic}) {
    CAPTURE(hyplora::nn::to_string(kind));
    AdapterConfig c = cfg_of(kind);
    c.K = 0.5;
    Setup<float> s(c, /*random_B=*/false);
    const MatrixR<float> X = rnd<float>(7, kIn, 2.0, 3);
    ad::Tape<float> t;
    const MatrixR<float> z = s.fwd(t, t.constant(X)).value();
    const MatrixR<float> base = s.layer.base().forward(t, s.store, t.constant(X)).value();
    CHECK((z - base).cwiseAbs().maxCoeff() == 0.0f);
  }
}

TEST_CASE("attach freezes the base: it gets no gradient; kind full trains it and adds nothing") {
  for (AdapterKind kind : kAllKinds) {
    Setup<double> s(cfg_of(kind));
    CHECK_FALSE(s.store.trainable(s.layer.base().weight()));
    CHECK_FALSE(s.store.trainable(s.layer.base().bias()));
    ad::Tape<double> t;
    auto x = t.leaf(rnd<double>(3, kIn, 1.0, 4));
    s.store.zero_grad();
    t.backward(ad::sum(s.fwd(t, x, true, 1)));
    CHECK(s.store.grad(s.layer.base().weight()).cwiseAbs().maxCoeff() == 0.0);
    CHECK(s.store.grad(s.layer.base().bias()).cwiseAbs().maxCoeff() == 0.0);
    CHECK(s.store.grad(s.layer.lora_A()).cwiseAbs().maxCoeff() > 0.0);
    CHECK(x.grad().cwiseAbs().maxCoeff() > 0.0);
  }
  ad::ParameterStore<double> store;
  AdaptedLinear<double> full(store, "f", kIn, kOut);
  AdapterConfig c;
  c.kind = AdapterKind::full;
  full.attach(store, c);
  CHECK(store.trainable(full.base().weight()));
  CHECK(store.count() == 2);
}

TEST_CASE("LoRA merge/unmerge round trip") {
  Setup<double> s(cfg_of(AdapterKind::lora));
  const MatrixR<double> X = rnd<double>(5, kIn, 1.0, 8);
  const MatrixR<double> W0 = s.store.value(s.layer.base().weight());
  ad::Tape<double> t;
  const MatrixR<double> z = s.fwd(t, t.constant(X)).value();
  s.layer.merge(s.store);
  CHECK(s.layer.merged());
  CHECK_THROWS_AS(s.layer.merge(s.store), hyplora::value_error);
  t.clear();
  const MatrixR<double> zm = s.fwd(t, t.constant(X)).value();
  CHECK((zm - z).cwiseAbs().maxCoeff() <= 1e-14 * (1.0 + z.cwiseAbs().maxCoeff()));
  CHECK((s.store.value(s.layer.base().weight()) - W0).cwiseAbs().maxCoeff() > 1e-3);  // it did change
  s.layer.unmerge(s.store);
  CHECK((s.store.value(s.layer.base().weight()) - W0).cwiseAbs().maxCoeff() <= 4 * std::numeric_limits<double>::epsilon());
  CHECK_THROWS_AS(s.layer.unmerge(s.store), hyplora::value_error);
}

TEST_CASE("DoRA merge equals the adapted layer; unmerge restores W0") {
  Setup<double> s(cfg_of(AdapterKind::dora));
  s.store.value(s.layer.lora_magnitude()).array() *= 1.3;  // a trained magnitude
  const MatrixR<double> X = rnd<double>(5, kIn, 1.0, 8);
  const MatrixR<double> W0 = s.store.value(s.layer.base().weight());
  ad::Tape<double> t;
  const MatrixR<double> z = s.fwd(t, t.constant(X)).value();
  s.layer.merge(s.store);
  t.clear();
  const MatrixR<double> zm = s.fwd(t, t.constant(X)).value();
  CHECK((zm - z).cwiseAbs().maxCoeff() <= 1e-14 * (1.0 + z.cwiseAbs().maxCoeff()));
  // The merged rows have norm m.
  const MatrixR<double> Wm = s.store.value(s.layer.base().weight());
  for (Index i = 0; i < kOut; ++i)
    CHECK(Wm.row(i).norm() == doctest::Approx(s.store.value(s.layer.lora_magnitude())(0, i)).epsilon(1e-14));
  s.layer.unmerge(s.store);
  CHECK((s.store.value(s.layer.base().weight()) - W0).cwiseAbs().maxCoeff() <= 1e-15);
}

TEST_CASE("HypLoRA kinds refuse merge(); merge_linearized reports the measured output error") {
  for (AdapterKind kind : {AdapterKind::hyplora, AdapterKind::hyplora_official, AdapterKind::hyplora_stereographic,
                           AdapterKind::hyplora_official_simplified}) {
    CAPTURE(hyplora::nn::to_string(kind));
    Setup<double> s(cfg_of(kind));
    CHECK_THROWS_WITH_AS(s.layer.merge(s.store), doctest::Contains("nonlinear"), hyplora::value_error);
    const MatrixR<double> W0 = s.store.value(s.layer.base().weight());
    const MatrixR<double> X = rnd<double>(6, kIn, 1.5, 9);
    ad::Tape<double> t;
    const MatrixR<double> z = s.fwd(t, t.constant(X)).value();
    const double err = s.layer.merge_linearized(s.store, X);
    t.clear();
    const MatrixR<double> zm = s.fwd(t, t.constant(X)).value();
    CHECK(err == (z - zm).cwiseAbs().maxCoeff());
    CHECK(err > 1e-6);  // the adapter is not linear
    s.layer.unmerge(s.store);
    CHECK((s.store.value(s.layer.base().weight()) - W0).cwiseAbs().maxCoeff() <= 1e-15);
  }
  // Exact kind: the folded term is the small-|x| limit (Prop. 5.1), so the error falls as |x|³.
  Setup<double> s(cfg_of(AdapterKind::hyplora));
  const MatrixR<double> X = rnd<double>(6, kIn, 1.0, 10);
  const double e1 = s.layer.merge_linearized(s.store, X * 1e-1);
  s.layer.unmerge(s.store);
  const double e2 = s.layer.merge_linearized(s.store, X * 1e-2);
  s.layer.unmerge(s.store);
  CHECK(e2 < e1 * 2e-3);
  CHECK(e2 > 0.0);
}

TEST_CASE("dropout: only while training, reproducible per step seed, different across steps") {
  AdapterConfig c = cfg_of(AdapterKind::lora);
  c.dropout = 0.5;
  Setup<double> s(c);
  const MatrixR<double> X = rnd<double>(8, kIn, 1.0, 12);
  auto run = [&](bool training, std::uint64_t step) {
    ad::Tape<double> t;
    return MatrixR<double>(s.fwd(t, t.constant(X), training, step).value());
  };
  CHECK((run(true, 3) - run(true, 3)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((run(true, 3) - run(true, 4)).cwiseAbs().maxCoeff() > 1e-6);
  CHECK((run(false, 3) - run(true, 3)).cwiseAbs().maxCoeff() > 1e-6);
  CHECK((run(false, 3) - run(false, 4)).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("adapter file round trip through io::save_adapter/load_adapter reproduces outputs bit for bit") {
  const auto dir = std::filesystem::temp_directory_path() / "hyplora_nn_adapter_roundtrip";
  for (AdapterKind kind : {AdapterKind::lora, AdapterKind::hyplora, AdapterKind::hyplora_official,
                           AdapterKind::hyplora_stereographic, AdapterKind::hyplora_official_simplified}) {
    for (bool learned : {false, true}) {
      CAPTURE(hyplora::nn::to_string(kind));
      CAPTURE(learned);
      AdapterConfig c = cfg_of(kind);
      const bool has_sigma = kind == AdapterKind::hyplora || kind == AdapterKind::hyplora_official;
      c.K = 1.3;
      c.feature_scale = has_sigma ? 2.2360679 : 1.0;
      c.learn_curvature = learned && kind != AdapterKind::lora;
      c.learn_feature_scale = learned && has_sigma;
      Setup<float> a(c);
      if (c.learn_curvature) a.store.value(a.layer.lora_k())(0, 0) = 0.37f;  // "trained" values
      if (c.learn_feature_scale) a.store.value(a.layer.lora_norm_scale())(0, 0) = 1.9f;
      hyplora::io::Adapter file;
      file.config.r = c.r;
      file.config.lora_alpha = c.alpha;
      file.modules["blk.q_proj"] = a.layer.to_adapter_module(a.store);
      hyplora::io::save_adapter(dir, file);
      const hyplora::io::Adapter back = hyplora::io::load_adapter(dir);

      AdapterConfig c2 = c;
      c2.seed = 1234;  // different init, overwritten by the load
      Setup<float> b(c2, /*random_B=*/false);
      b.layer.load_adapter_module(b.store, back.modules.at("blk.q_proj"));
      const MatrixR<float> X = rnd<float>(5, kIn, 1.0, 13);
      ad::Tape<float> t;
      const MatrixR<float> za = a.fwd(t, t.constant(X)).value();
      const MatrixR<float> zb = b.fwd(t, t.constant(X)).value();
      CHECK((za - zb).cwiseAbs().maxCoeff() == 0.0f);
      CHECK(za.cwiseAbs().maxCoeff() > 0.0f);
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("bad input throws typed exceptions naming the problem") {
  ad::ParameterStore<double> store;
  AdaptedLinear<double> layer(store, "m", kIn, kOut);
  AdapterConfig c = cfg_of(AdapterKind::lora);
  c.r = 0;
  CHECK_THROWS_WITH_AS(layer.attach(store, c), doctest::Contains("rank r must be >= 1"), hyplora::value_error);
  c.r = 6;
  CHECK_THROWS_WITH_AS(layer.attach(store, c), doctest::Contains("exceeds min(D_in, D_out) = 5"), hyplora::value_error);
  c = cfg_of(AdapterKind::hyplora);
  c.K = 0.0;
  CHECK_THROWS_WITH_AS(layer.attach(store, c), doctest::Contains("curvature K"), hyplora::value_error);
  c.K = -1.0;
  CHECK_THROWS_AS(layer.attach(store, c), hyplora::value_error);
  c = cfg_of(AdapterKind::hyplora_stereographic);
  c.feature_scale = 2.0;
  CHECK_THROWS_WITH_AS(layer.attach(store, c), doctest::Contains("no feature scale"), hyplora::value_error);

  // NaN in the base weight at attach.
  store.value(layer.base().weight())(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(layer.attach(store, cfg_of(AdapterKind::lora)), doctest::Contains("base weight"), hyplora::value_error);
  store.value(layer.base().weight())(1, 2) = 0.5;
  layer.attach(store, cfg_of(AdapterKind::lora));
  CHECK_THROWS_WITH_AS(layer.attach(store, cfg_of(AdapterKind::lora)), doctest::Contains("already attached"), hyplora::value_error);

  // Load: shape mismatch names both shapes; NaN; HypLoRA scalars into a LoRA layer.
  hyplora::io::AdapterModule m = layer.to_adapter_module(store);
  hyplora::io::AdapterModule bad = m;
  bad.A = MatrixR<float>::Zero(2, kIn + 1);
  CHECK_THROWS_WITH_AS(layer.load_adapter_module(store, bad), doctest::Contains("(2, 5) vs file lora_A (2, 6)"),
                       hyplora::shape_error);
  bad = m;
  bad.B = MatrixR<float>::Zero(kOut, 3);
  CHECK_THROWS_AS(layer.load_adapter_module(store, bad), hyplora::shape_error);
  bad = m;
  bad.B(0, 0) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(layer.load_adapter_module(store, bad), doctest::Contains("non-finite"), hyplora::value_error);
  bad = m;
  bad.k = 1.0f;
  CHECK_THROWS_AS(layer.load_adapter_module(store, bad), hyplora::value_error);

  // Input of the wrong width.
  ad::Tape<double> t;
  CHECK_THROWS_WITH_AS(layer.forward(t, store, t.constant(MatrixR<double>::Zero(2, 4))), doctest::Contains("(2, 4)"),
                       hyplora::shape_error);

  // Fixed K contradicting the file's lora_k.
  ad::ParameterStore<double> s2;
  AdaptedLinear<double> h(s2, "h", kIn, kOut);
  h.attach(s2, cfg_of(AdapterKind::hyplora));
  hyplora::io::AdapterModule hm = h.to_adapter_module(s2);
  hm.k = *hm.k + 0.5f;
  CHECK_THROWS_WITH_AS(h.load_adapter_module(s2, hm), doctest::Contains("contradicts"), hyplora::value_error);
  hm.k = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(h.load_adapter_module(s2, hm), hyplora::value_error);
}

TEST_CASE("learned curvature: K = softplus(theta) + 1e-6 starts at the configured K") {
  AdapterConfig c = cfg_of(AdapterKind::hyplora);
  for (double K : {1e-3, 0.5, 1.0, 40.0, 800.0}) {
    c.K = K;
    c.learn_curvature = true;
    ad::ParameterStore<double> store;
    AdaptedLinear<double> l(store, "c", kIn, kOut);
    l.attach(store, c);
    CHECK(l.curvature(store) == doctest::Approx(K).epsilon(1e-12));
  }
}

TEST_CASE("forward_branch is forward() less the base map, with the same adapter gradients") {
  const MatrixR<double> X = rnd<double>(4, kIn, 1.2, 3), G = rnd<double>(4, kOut, 1.0, 4);
  for (AdapterKind k : {AdapterKind::lora, AdapterKind::dora, AdapterKind::hyplora, AdapterKind::hyplora_official,
                        AdapterKind::hyplora_stereographic, AdapterKind::hyplora_official_simplified}) {
    CAPTURE(hyplora::nn::to_string(k));
    AdapterConfig c = cfg_of(k);
    c.learn_curvature = hyplora::nn::is_hyplora(k);
    c.K = k == AdapterKind::hyplora_official_simplified ? 0.5 : 1.3;
    Setup<double> s(c);
    auto run = [&](bool branch) {
      s.store.zero_grad();
      ad::Tape<double> t;
      const ad::Var<double> x = t.leaf(X);
      const ad::Var<double> z = branch ? s.layer.forward_branch(t, s.store, x, false) : s.fwd(t, x);
      t.backward(z, G);
      std::vector<MatrixR<double>> out = {z.value(), s.store.grad(s.layer.lora_A()), s.store.grad(s.layer.lora_B())};
      if (s.layer.lora_k().valid()) out.push_back(s.store.grad(s.layer.lora_k()));
      return out;
    };
    const auto full = run(false), br = run(true);
    // What the branch leaves out: x·W0ᵀ + b, scaled per column by s = m/‖W0 + γBA‖_row for DoRA.
    MatrixR<double> base = X * MatrixR<double>(s.store.value(s.layer.base().weight())).transpose();
    if (k == AdapterKind::dora) {
      const MatrixR<double> W0 = s.store.value(s.layer.base().weight());
      const MatrixR<double> V = W0 + c.scaling() * (MatrixR<double>(s.store.value(s.layer.lora_B())) *
                                                    MatrixR<double>(s.store.value(s.layer.lora_A())));
      for (Index j = 0; j < kOut; ++j) base.col(j) *= s.store.value(s.layer.lora_magnitude())(0, j) / V.row(j).norm();
    }
    base.rowwise() += MatrixR<double>(s.store.value(s.layer.base().bias())).row(0);
    CHECK(br[0].cwiseAbs().maxCoeff() > 0.05);
    CHECK((full[0] - base - br[0]).cwiseAbs().maxCoeff() <= 1e-13);
    // DoRA's A, B gradients also flow through the left-out term (its s depends on B A).
    if (k != AdapterKind::dora)
      for (std::size_t i = 1; i < full.size(); ++i) {
        CAPTURE(i);
        CHECK((full[i] - br[i]).cwiseAbs().maxCoeff() <= 1e-13 * (1.0 + full[i].cwiseAbs().maxCoeff()));
      }
  }
  ad::Tape<double> t;
  ad::ParameterStore<double> store;
  AdaptedLinear<double> plain(store, "plain", kIn, kOut);
  CHECK_THROWS_AS(plain.forward_branch(t, store, t.constant(X)), hyplora::value_error);
}

}  // namespace nn_test_adapted_linear
