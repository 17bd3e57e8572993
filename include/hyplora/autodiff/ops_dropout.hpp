// hyplora/autodiff/ops_dropout.hpp — inverted dropout with a counter-based mask.
//
// The keep/drop decision of element e (row-major index into x) is a pure function of
// (seed, e): dropout_bits below, a splitmix64 finaliser applied to the seed's stream at position
// e. So the mask is deterministic, independent of thread count and evaluation order, needs no
// RNG state, and backward recomputes it instead of saving an (N, C) mask. It is HYPLORA_HD so a
// device kernel can draw the identical mask.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>

#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/config.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

HYPLORA_HD_INLINE std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// 53 uniform random bits for element `index` under `seed` (the seed is mixed first so nearby
/// seeds give unrelated streams).
HYPLORA_HD_INLINE std::uint64_t dropout_bits(std::uint64_t seed, std::uint64_t index) {
  return splitmix64_mix(splitmix64_mix(seed) + (index + 1) * 0x9E3779B97F4A7C15ull) >> 11;
}

/// Element kept iff dropout_bits >= threshold = ⌊p·2^53⌋, so P(keep) = 1 − p up to 2^-53.
inline std::uint64_t dropout_threshold(double p) {
  return static_cast<std::uint64_t>(p * 9007199254740992.0);  // 2^53
}

// parents: x; ints[0] = seed (bit pattern), ints[1] = threshold; attrs[0] = p.
template <class T>
void dropout_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int a = n.parents[0];
  if (!t.needs_grad(a)) return;
  std::uint64_t seed = 0, thr = 0;
  std::memcpy(&seed, &n.ints[0], sizeof seed);
  std::memcpy(&thr, &n.ints[1], sizeof thr);
  const T scale = T(1) / (T(1) - static_cast<T>(n.attrs[0]));
  auto g = t.grad_acc(id);
  auto dx = t.grad_acc(a);
  const Index size = g.size();
  const T* gp = g.data();
  T* dp = dx.data();
  for (Index e = 0; e < size; ++e)
    if (dropout_bits(seed, static_cast<std::uint64_t>(e)) >= thr) dp[e] += gp[e] * scale;
}

}  // namespace detail

/// Inverted dropout: each element is zeroed with probability p, survivors are scaled by
/// 1/(1 − p) so the expectation is unchanged.  x: (N, C)  out: (N, C).
/// The mask depends only on (seed, element index): pass a fresh seed per step and call site.
/// Returns x itself (no node) when p == 0 or when the tape's grad mode is off (evaluation).
/// Throws value_error unless 0 <= p < 1.
template <class T>
Var<T> dropout(Var<T> x, T p, std::uint64_t seed) {
  if (!(p >= T(0) && p < T(1))) {
    std::ostringstream s;
    s << "dropout: p must be in [0, 1), got " << static_cast<double>(p);
    throw value_error(s.str());
  }
  Tape<T>& t = *x.tape;
  if (p == T(0) || !t.grad_enabled()) return x;
  const int id = t.push("dropout", x.rows(), x.cols(), &detail::dropout_backward<T>, {x.id});
  auto& n = t.node(id);
  const std::uint64_t thr = detail::dropout_threshold(static_cast<double>(p));
  n.ints.resize(2);
  std::memcpy(&n.ints[0], &seed, sizeof seed);
  std::memcpy(&n.ints[1], &thr, sizeof thr);
  n.attrs[0] = static_cast<double>(p);
  const T scale = T(1) / (T(1) - p);
  auto X = t.value(x.id);
  auto Y = t.value(id);
  const Index size = X.size();
  const T* xp = X.data();
  T* yp = Y.data();
  for (Index e = 0; e < size; ++e)
    yp[e] = detail::dropout_bits(seed, static_cast<std::uint64_t>(e)) >= thr ? xp[e] * scale : T(0);
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
