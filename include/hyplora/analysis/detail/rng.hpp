// hyplora/analysis/detail/rng.hpp — the seeded randomness of the analysis module.
//
// std::uniform_int_distribution and friends are implementation-defined, so the same seed would
// give different subsamples under libstdc++ and libc++. Everything here is defined bit for bit
// (std::mt19937_64's output sequence is fixed by the standard), so a seed reproduces a result on
// every platform.
#pragma once

#include <cstdint>
#include <random>

namespace hyplora {
namespace analysis {
namespace detail {

/// SplitMix64 finaliser: derives well-separated seeds from (seed, stream index) pairs.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Uniform integer in [0, n), n >= 1, without modulo bias (rejection of the top partial range).
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);  // multiple of n
  std::uint64_t r = rng();
  while (r >= limit) r = rng();
  return r % n;
}

/// Uniform double in (0, 1]: 53 random bits, never 0 (the power-law sampler takes its inverse).
inline double uniform_open0(std::mt19937_64& rng) {
  return (static_cast<double>(rng() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

}  // namespace detail
}  // namespace analysis
}  // namespace hyplora
