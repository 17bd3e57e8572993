// hyplora/optim/clip_grad.hpp — global gradient-norm clipping over the trainable parameters
// (docs/math.md Eq. (208)).
#pragma once

#include <cmath>
#include <string>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::optim {

/// ‖g‖₂ over every trainable parameter's gradient, accumulated in double (a float sum over
/// millions of squares would lose the small ones). Frozen parameters do not count.
template <class T>
double grad_norm(const ad::ParameterStore<T>& store) {
  const T* g = store.grads().data();
  double sum = 0.0;
  for (const auto& info : store.infos()) {
    if (!info.trainable) continue;
    const T* p = g + info.offset;
    const std::size_t n = info.size();
    // Four partial sums: one accumulator is a chain of dependent adds (latency-bound, ~4
    // cycles per element); four in a fixed order vectorise and stay deterministic.
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      const double x0 = static_cast<double>(p[i]), x1 = static_cast<double>(p[i + 1]);
      const double x2 = static_cast<double>(p[i + 2]), x3 = static_cast<double>(p[i + 3]);
      s0 += x0 * x0;
      s1 += x1 * x1;
      s2 += x2 * x2;
      s3 += x3 * x3;
    }
    for (; i < n; ++i) s0 += static_cast<double>(p[i]) * static_cast<double>(p[i]);
    sum += (s0 + s1) + (s2 + s3);
  }
  return std::sqrt(sum);
}

/// Scales the trainable gradients by max_norm/‖g‖ when ‖g‖ > max_norm, so the clipped norm is
/// max_norm (Eq. (208)), and returns the pre-clip norm. A non-finite norm leaves the gradients
/// untouched and is returned as is: the caller decides (skip the step, lower the loss scale).
/// Unlike torch.nn.utils.clip_grad_norm_ there is no +1e-6 in the denominator: the scale is
/// applied only when ‖g‖ > max_norm ≥ 0, so ‖g‖ > 0 there. max_norm = +inf never clips.
template <class T>
double clip_grad_norm(ad::ParameterStore<T>& store, double max_norm) {
  if (!(max_norm >= 0.0))
    throw value_error("clip_grad_norm: max_norm must be >= 0, got " + std::to_string(max_norm));
  const double norm = grad_norm(store);
  if (!std::isfinite(norm) || !(norm > max_norm)) return norm;
  const T scale = static_cast<T>(max_norm / norm);
  T* g = store.grads().data();
  for (const auto& info : store.infos()) {
    if (!info.trainable) continue;
    T* p = g + info.offset;
    for (std::size_t i = 0; i < info.size(); ++i) p[i] *= scale;
  }
  return norm;
}

}  // namespace hyplora::optim
