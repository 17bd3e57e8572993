// hyplora/cuda/half.hpp — half-precision storage (IEEE binary16 `__half`, bfloat16 `__nv_bfloat16`)
// for the device ops: the compute type of a storage type, and the conversions between them.
//
// Half types are storage only: kernels load a value, compute in acc_t<T> (float for the half
// types, T itself for float and double, so those paths are unchanged), and round to T once on
// store. cuBLAS GEMMs on half operands use FP32 compute (cublas.hpp). The conversions go through
// the CUDA intrinsics (__half2float, __float2half_rn, ...), which are host and device functions:
// a plain static_cast<double>(__half) is ambiguous (__half also converts to short, int, ...).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "hyplora/core/config.hpp"

namespace hyplora::cuda {

/// True for the half-precision storage types.
template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

namespace detail {

/// Storage type T's compute ("accumulation") type and conversions; float and double are their
/// own compute type.
template <class T>
struct storage_traits {
  using acc = T;
  static HYPLORA_HD_INLINE acc to_acc(T v) { return v; }
  static HYPLORA_HD_INLINE T from_acc(acc v) { return v; }
};
template <>
struct storage_traits<__half> {
  using acc = float;
  static HYPLORA_HD_INLINE float to_acc(__half v) { return __half2float(v); }
  static HYPLORA_HD_INLINE __half from_acc(float v) { return __float2half_rn(v); }  // round to nearest even
};
template <>
struct storage_traits<__nv_bfloat16> {
  using acc = float;
  static HYPLORA_HD_INLINE float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
  static HYPLORA_HD_INLINE __nv_bfloat16 from_acc(float v) { return __float2bfloat16_rn(v); }
};

/// Accumulation type: per-row scalars, reductions and kernel arithmetic run in float for half
/// storage, in the storage type otherwise.
template <class T>
struct acc {
  using type = typename storage_traits<T>::acc;
};
template <class T>
using acc_t = typename acc<T>::type;

/// A stored value in its compute type (identity for float and double).
template <class T>
HYPLORA_HD_INLINE acc_t<T> to_acc(T v) {
  return storage_traits<T>::to_acc(v);
}
/// A computed value rounded (to nearest even) to storage type T (identity for float and double).
template <class T>
HYPLORA_HD_INLINE T from_acc(acc_t<T> v) {
  return storage_traits<T>::from_acc(v);
}

}  // namespace detail

/// The compute type of storage type T (float for the half types, T otherwise): the type of the
/// ops' host scalars (γ, R, σ), of GEMM alpha/beta, and of what the ops keep in float.
template <class T>
using compute_t = detail::acc_t<T>;

}  // namespace hyplora::cuda
