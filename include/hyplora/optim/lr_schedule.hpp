// hyplora/optim/lr_schedule.hpp — learning-rate schedules as small value types: lr(step) is
// the learning rate of the update with 0-based index `step` (docs/math.md Eq. (209)–(211)).
//
//   for (std::int64_t t = 0; t < total; ++t) { opt.set_lr(sched.lr(t)); ...; opt.step(); }
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "hyplora/core/errors.hpp"

namespace hyplora::optim {

/// lr(t) = base (Eq. (209)).
struct ConstantLR {
  double base = 1e-3;
  double lr(std::int64_t /*step*/) const { return base; }
};

/// Linear warm-up then cosine decay to a floor (Eq. (210)–(211)): the closed forms of PyTorch's
/// LinearLR(start_factor, total_iters = warmup) followed by CosineAnnealingLR(T_max = total −
/// warmup, eta_min = floor), as SequentialLR chains them. start_factor = 0 (the default) is the
/// Hugging Face get_cosine_schedule_with_warmup warm-up, which starts at 0. Past `total` the
/// rate stays at the floor (PyTorch's cosine would climb again).
struct WarmupCosineLR {
  double base = 1e-3;
  double floor = 0.0;           // η_min
  std::int64_t warmup = 0;      // W, warm-up updates
  std::int64_t total = 1;       // S, updates in all (S ≥ W)
  double start_factor = 0.0;    // lr(0) = start_factor·base when W > 0

  WarmupCosineLR() = default;
  WarmupCosineLR(double base_, double floor_, std::int64_t warmup_, std::int64_t total_,
                 double start_factor_ = 0.0)
      : base(base_), floor(floor_), warmup(warmup_), total(total_), start_factor(start_factor_) {
    validate();
  }

  /// Throws value_error naming the inconsistent field.
  void validate() const {
    if (!(base >= 0.0) || !std::isfinite(base))
      throw value_error("WarmupCosineLR: base must be finite and >= 0, got " + std::to_string(base));
    if (!(floor >= 0.0 && floor <= base))
      throw value_error("WarmupCosineLR: floor must lie in [0, base = " + std::to_string(base) + "], got " +
                        std::to_string(floor));
    if (warmup < 0 || total < warmup)
      throw value_error("WarmupCosineLR: need 0 <= warmup <= total, got warmup " + std::to_string(warmup) +
                        ", total " + std::to_string(total));
    if (!(start_factor >= 0.0 && start_factor <= 1.0))
      throw value_error("WarmupCosineLR: start_factor must lie in [0, 1], got " + std::to_string(start_factor));
  }

  double lr(std::int64_t step) const {
    if (step < 0) step = 0;
    if (step < warmup) {  // Eq. (210)
      const double f = start_factor + (1.0 - start_factor) * static_cast<double>(step) / static_cast<double>(warmup);
      return base * f;
    }
    if (step >= total) return floor;
    // Eq. (211); here total > warmup since warmup <= step < total.
    const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
    const double pi = 3.14159265358979323846;
    return floor + (base - floor) * 0.5 * (1.0 + std::cos(pi * progress));
  }
};

}  // namespace hyplora::optim
