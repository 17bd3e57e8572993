// hyplora/nn/init.hpp — deterministic parameter initialisers (PyTorch's formulas, our own PRNG).
//
// std:: distributions are implementation-defined (libstdc++ and libc++ differ), so a seed would
// not reproduce a model across platforms. Here everything is SplitMix64 (Steele et al. 2014) and
// 53-bit uniform doubles: the same seed gives the same bits everywhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora::nn {

/// SplitMix64: a 64-bit state advanced by the golden-ratio increment, then finalised.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) from the top 53 bits.
  double uniform01() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform01(); }

 private:
  std::uint64_t state_;
};

/// Fills m (any writable Eigen matrix, e.g. a ParameterStore view) with U(lo, hi), row-major order.
template <class Derived>
void uniform_(Eigen::MatrixBase<Derived>& m, double lo, double hi, std::uint64_t seed) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) {
    std::ostringstream s;
    s << "uniform_: need finite lo <= hi, got [" << lo << ", " << hi << ")";
    throw value_error(s.str());
  }
  using T = typename Derived::Scalar;
  SplitMix64 g(seed);
  for (Index i = 0; i < m.rows(); ++i)
    for (Index j = 0; j < m.cols(); ++j) m(i, j) = static_cast<T>(g.uniform(lo, hi));
}

/// The bound of torch.nn.init.kaiming_uniform_(w, a) for leaky-ReLU slope a (fan_in mode):
/// gain·√(3/fan_in) with gain = √(2/(1+a²)). PEFT's LoRA A and torch.nn.Linear use a = √5,
/// which gives exactly 1/√fan_in.
inline double kaiming_uniform_bound(Index fan_in, double a = std::sqrt(5.0)) {
  if (fan_in <= 0) throw value_error("kaiming_uniform: fan_in must be > 0, got " + std::to_string(fan_in));
  return std::sqrt(2.0 / (1.0 + a * a)) * std::sqrt(3.0 / static_cast<double>(fan_in));
}

/// torch.nn.init.kaiming_uniform_(w, a) for a weight w: (fan_out, fan_in) in PyTorch layout.
template <class Derived>
void kaiming_uniform_(Eigen::MatrixBase<Derived>& w, std::uint64_t seed, double a = std::sqrt(5.0)) {
  const double b = kaiming_uniform_bound(w.cols(), a);
  uniform_(w, -b, b, seed);
}

template <class Derived>
void kaiming_uniform_(Eigen::MatrixBase<Derived>&& w, std::uint64_t seed, double a = std::sqrt(5.0)) {
  kaiming_uniform_(w, seed, a);
}
template <class Derived>
void uniform_(Eigen::MatrixBase<Derived>&& m, double lo, double hi, std::uint64_t seed) {
  uniform_(m, lo, hi, seed);
}

}  // namespace hyplora::nn
