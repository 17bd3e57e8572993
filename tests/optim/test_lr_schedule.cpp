// Tests for include/hyplora/optim/lr_schedule.hpp: values at known steps, against PyTorch's
// SequentialLR(LinearLR, CosineAnnealingLR) (float64 values computed outside this code) and
// against the closed form at landmarks (start, end of warm-up, half-way, end).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include <hyplora/optim/lr_schedule.hpp>

namespace optim_test_lr_schedule {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::optim::ConstantLR;
using hyplora::optim::WarmupCosineLR;

TEST_CASE("ConstantLR") {
  ConstantLR s{0.02};
  CHECK(s.lr(0) == 0.02);
  CHECK(s.lr(123456) == 0.02);
}

TEST_CASE("WarmupCosineLR equals PyTorch's LinearLR + CosineAnnealingLR") {
  // torch: SGD(lr=0.5); LinearLR(start_factor=0.25, total_iters=4);
  //        CosineAnnealingLR(T_max=6, eta_min=0.05); SequentialLR(milestones=[4]).
  const double torch_lr[11] = {0.125, 0.21875, 0.3125, 0.40625, 0.5, 0.46985571585149871, 0.38750000000000001,
                               0.27500000000000002, 0.16250000000000009, 0.080144284148501305,
                               0.050000000000000003};
  const WarmupCosineLR s(0.5, 0.05, 4, 10, 0.25);
  for (int t = 0; t < 11; ++t) CHECK(s.lr(t) == doctest::Approx(torch_lr[t]).epsilon(1e-14));
  CHECK(s.lr(11) == 0.05);    // stays at the floor past the end
  CHECK(s.lr(1000) == 0.05);
}

TEST_CASE("WarmupCosineLR landmarks (Hugging Face style warm-up from 0)") {
  const double base = 3e-4, floor = 1e-5;
  const WarmupCosineLR s(base, floor, 100, 1100);
  CHECK(s.lr(0) == 0.0);
  CHECK(s.lr(50) == doctest::Approx(base / 2).epsilon(1e-15));
  CHECK(s.lr(100) == doctest::Approx(base).epsilon(1e-15));
  CHECK(s.lr(600) == doctest::Approx((base + floor) / 2).epsilon(1e-14));  // cos(π/2) = 0
  CHECK(s.lr(1099) > floor);
  CHECK(s.lr(1100) == floor);
  // Monotone: up during warm-up, down after.
  for (std::int64_t t = 1; t <= 100; ++t) CHECK(s.lr(t) > s.lr(t - 1));
  for (std::int64_t t = 101; t <= 1100; ++t) CHECK(s.lr(t) < s.lr(t - 1));
}

TEST_CASE("WarmupCosineLR without warm-up, and degenerate lengths") {
  const WarmupCosineLR s(1.0, 0.0, 0, 4);
  CHECK(s.lr(0) == 1.0);
  CHECK(s.lr(2) == doctest::Approx(0.5).epsilon(1e-15));
  CHECK(s.lr(4) == 0.0);
  const WarmupCosineLR w(1.0, 0.1, 3, 3);  // warm-up only, then the floor
  CHECK(w.lr(2) == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  CHECK(w.lr(3) == 0.1);
}

TEST_CASE("WarmupCosineLR rejects inconsistent settings") {
  CHECK_THROWS_AS(WarmupCosineLR(1.0, 2.0, 0, 10), hyplora::value_error);   // floor > base
  CHECK_THROWS_AS(WarmupCosineLR(1.0, 0.0, 11, 10), hyplora::value_error);  // warmup > total
  CHECK_THROWS_AS(WarmupCosineLR(-1.0, 0.0, 0, 10), hyplora::value_error);
  CHECK_THROWS_AS(WarmupCosineLR(1.0, 0.0, -1, 10), hyplora::value_error);
  CHECK_THROWS_AS(WarmupCosineLR(1.0, 0.0, 1, 10, 1.5), hyplora::value_error);
  CHECK_THROWS_AS(WarmupCosineLR(std::nan(""), 0.0, 1, 10), hyplora::value_error);
}

}  // namespace optim_test_lr_schedule
