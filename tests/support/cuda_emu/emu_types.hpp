// emu_types.hpp — the CUDA runtime's types for the host emulator: dim3/uint3, error codes,
// stream/event handles, device properties, and the half-precision storage types with the
// conversions hyplora uses (round to nearest even, subnormals, ±∞ and NaN as the hardware does).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

inline constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;

namespace hyplora_emu {
struct StreamObj {
  int id;
};
struct EventObj {
  double ms;  // host time of the last record
};
}  // namespace hyplora_emu
using cudaStream_t = hyplora_emu::StreamObj*;
using cudaEvent_t = hyplora_emu::EventObj*;

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major, minor;
  int multiProcessorCount;
};

enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
using cudaDataType = cudaDataType_t;

namespace hyplora_emu::detail {

inline std::uint32_t bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
inline float from_bits(std::uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// IEEE binary16, round to nearest even.
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t x = bits(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<std::uint16_t>(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // ≥ 65520 rounds to ∞
  if (ax < 0x38800000u) {                                                       // half subnormal (< 2^-14)
    if (ax <= 0x33000000u) return static_cast<std::uint16_t>(sign);             // ≤ 2^-25: ties to 0
    const std::uint32_t m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - (ax >> 23);
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);
  }
  const std::uint32_t r = ax - 0x38000000u;  // rebias 127 → 15
  std::uint32_t q = r >> 13;
  const std::uint32_t rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return static_cast<std::uint16_t>(sign | q);
}
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) return from_bits(sign | bits(std::ldexp(static_cast<float>(m), -24)));
  if (e == 31) return from_bits(sign | 0x7f800000u | (m << 13));
  return from_bits(sign | ((e + 112u) << 23) | (m << 13));
}
// bfloat16 (the top half of a float), round to nearest even.
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float bf16_to_float(std::uint16_t b) { return from_bits(static_cast<std::uint32_t>(b) << 16); }

}  // namespace hyplora_emu::detail

struct __half {
  std::uint16_t __x;
  __half() = default;
  __half(float f) : __x(hyplora_emu::detail::float_to_half(f)) {}
  __half(double d) : __half(static_cast<float>(d)) {}
  __half(int i) : __half(static_cast<float>(i)) {}
  operator float() const { return hyplora_emu::detail::half_to_float(__x); }
};

struct __nv_bfloat16 {
  std::uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(hyplora_emu::detail::float_to_bf16(f)) {}
  __nv_bfloat16(double d) : __nv_bfloat16(static_cast<float>(d)) {}
  __nv_bfloat16(int i) : __nv_bfloat16(static_cast<float>(i)) {}
  operator float() const { return hyplora_emu::detail::bf16_to_float(__x); }
};

inline float __half2float(__half h) { return hyplora_emu::detail::half_to_float(h.__x); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return hyplora_emu::detail::bf16_to_float(b.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }

// Round-to-nearest products that are never contracted into an FMA (the volatile store forces the
// rounding whatever the host compiler's -ffp-contract).
inline float __fmul_rn(float a, float b) {
  volatile float r = a * b;
  return r;
}
inline double __dmul_rn(double a, double b) {
  volatile double r = a * b;
  return r;
}
