// Tests for include/hyplora/nn/init.hpp: determinism, bounds and moments of the initialisers.
#include <doctest/doctest.h>

#include <cmath>
#include <hyplora/core/types.hpp>
#include <hyplora/nn/init.hpp>

namespace nn_test_init {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::MatrixR;

TEST_CASE("SplitMix64 is deterministic, seed-dependent, and uniform01 lies in [0, 1)") {
  hyplora::nn::SplitMix64 a(1), b(1), c(2);
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t x = a.next();
    CHECK(x == b.next());
    CHECK(x != c.next());
  }
  hyplora::nn::SplitMix64 g(5);
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = g.uniform01();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  CHECK(lo >= 0.0);
  CHECK(lo < 1e-3);
  CHECK(hi < 1.0);
  CHECK(hi > 1 - 1e-3);
}

TEST_CASE("kaiming_uniform(a = sqrt 5) is U(+-1/sqrt(fan_in)) as in torch.nn.Linear and PEFT's lora_A") {
  CHECK(hyplora::nn::kaiming_uniform_bound(64) == doctest::Approx(1.0 / 8.0).epsilon(1e-15));
  CHECK(hyplora::nn::kaiming_uniform_bound(64, 0.0) == doctest::Approx(std::sqrt(6.0 / 64.0)).epsilon(1e-15));
  MatrixR<double> w(200, 64);
  hyplora::nn::kaiming_uniform_(w, 3);
  CHECK(w.cwiseAbs().maxCoeff() <= 1.0 / 8.0);
  CHECK(w.cwiseAbs().maxCoeff() > 0.99 / 8.0);
  // Var of U(−b, b) is b²/3; 12800 samples: relative standard error ≈ 1%.
  const double var = w.array().square().mean();
  CHECK(var == doctest::Approx(1.0 / (64.0 * 3.0)).epsilon(0.05));
  CHECK(std::abs(w.mean()) < 3e-3);
  MatrixR<double> w2(200, 64);
  hyplora::nn::kaiming_uniform_(w2, 3);
  CHECK(w == w2);
  hyplora::nn::kaiming_uniform_(w2, 4);
  CHECK(w != w2);
  CHECK_THROWS_AS(hyplora::nn::kaiming_uniform_bound(0), hyplora::value_error);
  CHECK_THROWS_AS(hyplora::nn::uniform_(w2, 1.0, -1.0, 0), hyplora::value_error);
}

}  // namespace nn_test_init
