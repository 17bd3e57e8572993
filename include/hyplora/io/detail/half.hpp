// hyplora/io/detail/half.hpp — IEEE binary16 (F16) and bfloat16 (BF16) <-> float/double, by hand.
//
// Storage formats only: nothing computes in half precision. Narrowing rounds to nearest, ties to
// even, directly from the source bits (double -> F16 is NOT done through float, which would round
// twice and break ties wrongly); overflow gives ±Inf, underflow gives subnormals / ±0, NaN stays a
// quiet NaN with the sign and the top payload bits kept. Widening is exact.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace hyplora::io::detail {

/// Bit layout of an IEEE-style binary format: E exponent bits, M stored mantissa bits.
template <int E, int M>
struct binary_format {
  static constexpr int exp_bits = E;
  static constexpr int man_bits = M;
  static constexpr std::uint64_t exp_all_ones = (std::uint64_t{1} << E) - 1;
  static constexpr std::int64_t bias = (std::int64_t{1} << (E - 1)) - 1;
  static constexpr std::uint64_t man_mask = (std::uint64_t{1} << M) - 1;
};
using f16_format = binary_format<5, 10>;
using bf16_format = binary_format<8, 7>;
using f32_format = binary_format<8, 23>;
using f64_format = binary_format<11, 52>;

template <class T>
struct source_format;
template <>
struct source_format<float> {
  using type = f32_format;
  using bits = std::uint32_t;
};
template <>
struct source_format<double> {
  using type = f64_format;
  using bits = std::uint64_t;
};

/// Round the value encoded by `src` (format S) to format D, nearest-even. D must be narrower in
/// both fields (true for f32/f64 -> f16/bf16).
template <class S, class D>
inline std::uint64_t narrow_bits(std::uint64_t src) {
  static_assert(S::man_bits > D::man_bits && S::exp_bits >= D::exp_bits, "narrowing only");
  const std::uint64_t sign = (src >> (S::exp_bits + S::man_bits)) & 1u;
  const std::uint64_t out_sign = sign << (D::exp_bits + D::man_bits);
  const std::uint64_t exp = (src >> S::man_bits) & S::exp_all_ones;
  std::uint64_t man = src & S::man_mask;

  if (exp == S::exp_all_ones) {
    if (man == 0) return out_sign | (D::exp_all_ones << D::man_bits);  // ±Inf
    // NaN: keep the top payload bits and force the quiet bit so it cannot become Inf.
    const std::uint64_t payload = man >> (S::man_bits - D::man_bits);
    return out_sign | (D::exp_all_ones << D::man_bits) | payload |
           (std::uint64_t{1} << (D::man_bits - 1));
  }
  if (exp == 0 && man == 0) return out_sign;  // ±0

  // value = sig * 2^(e - S::man_bits), sig with its leading one at bit S::man_bits.
  std::int64_t e;
  std::uint64_t sig;
  if (exp == 0) {  // source subnormal: normalise
    e = 1 - S::bias;
    while ((man >> S::man_bits) == 0) {
      man <<= 1;
      --e;
    }
    sig = man;
  } else {
    e = static_cast<std::int64_t>(exp) - S::bias;
    sig = man | (std::uint64_t{1} << S::man_bits);
  }

  const std::int64_t biased = e + D::bias;  // the destination's exponent field if normal
  if (biased >= static_cast<std::int64_t>(D::exp_all_ones)) {
    return out_sign | (D::exp_all_ones << D::man_bits);  // too large even before rounding
  }
  // Normal results drop (S::man_bits - D::man_bits) bits; subnormal ones (biased < 1) drop more.
  const std::int64_t shift =
      (S::man_bits - D::man_bits) + (biased < 1 ? 1 - biased : std::int64_t{0});
  if (shift > S::man_bits + 1) return out_sign;  // below half the smallest subnormal: rounds to 0
  std::uint64_t q = sig >> shift;
  const std::uint64_t rem = sig & ((std::uint64_t{1} << shift) - 1);
  const std::uint64_t half = std::uint64_t{1} << (shift - 1);
  if (rem > half || (rem == half && (q & 1u) != 0)) ++q;
  // q carries the implicit bit for normals, so adding it to (biased - 1) << M lets a rounding
  // carry bump the exponent (and reach Inf with a zero mantissa); a subnormal that rounds up to
  // 2^M becomes the smallest normal the same way.
  const std::uint64_t mag =
      biased < 1 ? q : ((static_cast<std::uint64_t>(biased - 1) << D::man_bits) + q);
  return out_sign | mag;
}

/// Exact value of `bits` in format S (narrower than double), as a double.
template <class S>
inline double widen_bits(std::uint64_t bits) {
  const bool neg = ((bits >> (S::exp_bits + S::man_bits)) & 1u) != 0;
  const std::uint64_t exp = (bits >> S::man_bits) & S::exp_all_ones;
  const std::uint64_t man = bits & S::man_mask;
  double v;
  if (exp == S::exp_all_ones) {
    v = man == 0 ? std::numeric_limits<double>::infinity()
                 : std::numeric_limits<double>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(static_cast<double>(man), static_cast<int>(1 - S::bias - S::man_bits));
  } else {
    v = std::ldexp(static_cast<double>(man | (std::uint64_t{1} << S::man_bits)),
                   static_cast<int>(static_cast<std::int64_t>(exp) - S::bias - S::man_bits));
  }
  return neg ? -v : v;
}

template <class T>
inline std::uint64_t bits_of(T x) {
  typename source_format<T>::bits b;
  static_assert(sizeof(b) == sizeof(T), "IEEE float/double expected");
  std::memcpy(&b, &x, sizeof(T));
  return static_cast<std::uint64_t>(b);
}

/// F16 bits of x (float or double), round-to-nearest-even.
template <class T>
inline std::uint16_t to_f16_bits(T x) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
  return static_cast<std::uint16_t>(
      narrow_bits<typename source_format<T>::type, f16_format>(bits_of(x)));
}

/// BF16 bits of x (float or double), round-to-nearest-even.
template <class T>
inline std::uint16_t to_bf16_bits(T x) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
  return static_cast<std::uint16_t>(
      narrow_bits<typename source_format<T>::type, bf16_format>(bits_of(x)));
}

/// Exact value of F16 bits (every F16 is a float, so casting the result to float is exact).
inline double f16_bits_to_double(std::uint16_t h) { return widen_bits<f16_format>(h); }

/// Exact value of BF16 bits.
inline double bf16_bits_to_double(std::uint16_t h) { return widen_bits<bf16_format>(h); }

}  // namespace hyplora::io::detail
