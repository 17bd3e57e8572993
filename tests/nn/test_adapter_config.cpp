// Tests for include/hyplora/nn/adapter_config.hpp: kind names, γ, and validate()'s errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <hyplora/nn/adapter_config.hpp>

namespace nn_test_adapter_config {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::nn::AdapterConfig;
using hyplora::nn::AdapterKind;

TEST_CASE("parse_adapter_kind inverts to_string and rejects unknown names") {
  for (AdapterKind k : {AdapterKind::none, AdapterKind::full, AdapterKind::lora, AdapterKind::dora, AdapterKind::hyplora,
                        AdapterKind::hyplora_official, AdapterKind::hyplora_stereographic,
                        AdapterKind::hyplora_official_simplified})
    CHECK(hyplora::nn::parse_adapter_kind(hyplora::nn::to_string(k)) == k);
  CHECK(hyplora::nn::parse_adapter_kind("hyplora-official") == AdapterKind::hyplora_official);
  CHECK_THROWS_WITH_AS(hyplora::nn::parse_adapter_kind("loha"), doctest::Contains("'loha'"), hyplora::value_error);
}

TEST_CASE("scaling: alpha/r, or alpha/sqrt(r) with rsLoRA") {
  AdapterConfig c;
  c.r = 16;
  c.alpha = 32;
  CHECK(c.scaling() == 2.0);
  c.rslora = true;
  CHECK(c.scaling() == 8.0);
}

TEST_CASE("validate rejects bad ranks, curvatures, dropout and feature scales") {
  AdapterConfig c;
  c.kind = AdapterKind::lora;
  c.r = 4;
  CHECK_NOTHROW(c.validate(8, 4));
  c.r = 0;
  CHECK_THROWS_WITH_AS(c.validate(8, 4), doctest::Contains("rank r must be >= 1, got 0"), hyplora::value_error);
  c.r = 5;
  CHECK_THROWS_WITH_AS(c.validate(8, 4), doctest::Contains("exceeds min(D_in, D_out) = 4"), hyplora::value_error);
  c.r = 2;
  c.dropout = 1.0;
  CHECK_THROWS_WITH_AS(c.validate(8, 4), doctest::Contains("dropout"), hyplora::value_error);
  c.dropout = 0.0;
  c.kind = AdapterKind::hyplora;
  for (double K : {0.0, -2.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    c.K = K;
    CHECK_THROWS_WITH_AS(c.validate(8, 4), doctest::Contains("curvature K"), hyplora::value_error);
  }
  c.K = 1e-7;
  CHECK_NOTHROW(c.validate(8, 4));
  c.learn_curvature = true;  // softplus(θ) + 1e-6 cannot start at 1e-7
  CHECK_THROWS_WITH_AS(c.validate(8, 4), doctest::Contains("above 1e-6"), hyplora::value_error);
  c.K = 1.0;
  c.feature_scale = 0.0;
  CHECK_THROWS_WITH_AS(c.validate(8, 4), doctest::Contains("feature_scale"), hyplora::value_error);
  // Kinds without an adapter need no rank.
  c.kind = AdapterKind::full;
  c.r = 0;
  CHECK_NOTHROW(c.validate(8, 4));
  CHECK_THROWS_AS(c.validate(0, 4), hyplora::value_error);
}

}  // namespace nn_test_adapter_config
