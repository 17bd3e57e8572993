// hyplora/cuda/cublas.hpp — RAII cuBLAS handle and row-major GEMM wrappers (float, double, and
// __half / __nv_bfloat16 storage with FP32 compute).
//
// Row-major through a column-major library. A row-major (r × c) array with row stride ld is,
// read column-major, the (c × r) matrix Xᵀ with leading dimension ld. So for
//   C = op(A)·op(B)          C: (m × n), op(A): (m × k), op(B): (k × n), all row-major,
// transpose both sides: Cᵀ = op(B)ᵀ·op(A)ᵀ. Cᵀ is exactly what C's memory is column-major,
// and op(B)ᵀ is B's column-major view (Bᵀ) with the same op applied: op = N gives (Bᵀ) as
// stored, op = T gives (Bᵀ)ᵀ. Hence the column-major call is
//   gemm(opB, opA, n, m, k, alpha, B, ldb, A, lda, beta, C, ldc)
// — operands swapped, m and n swapped, the transpose flags passed through unchanged, and every
// leading dimension the row stride of the row-major array as stored (ldb = n for B (k × n)
// untransposed, k for B stored (n × k) and transposed, and so on).
//
// Half storage (__half, __nv_bfloat16): cublasGemmEx with CUBLAS_COMPUTE_32F — products and sums
// in float, C read (beta ≠ 0) and rounded to the storage type once, alpha and beta passed as
// float (gemm_scalar_t). gemm_mixed() takes half operands and writes a float C, for results the
// ops keep in float (HypLoRA's M = BᵀB, S).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/half.hpp"

namespace hyplora::cuda {

/// Transpose flag of a row-major operand.
enum class Op { N, T };

/// An owned cuBLAS handle bound to a stream (default math mode: full FP32, no TF32, so results
/// compare with the CPU at float precision).
class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream = nullptr) {
    HYPLORA_CUBLAS_CHECK(cublasCreate(&h_));
    set_stream(stream);
  }
  ~CublasHandle() {
    if (h_) (void)cublasDestroy(h_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  CublasHandle(CublasHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CublasHandle& operator=(CublasHandle&&) = delete;
  cublasHandle_t get() const { return h_; }
  void set_stream(cudaStream_t s) { HYPLORA_CUBLAS_CHECK(cublasSetStream(h_, s)); }

 private:
  cublasHandle_t h_ = nullptr;
};

namespace detail {

inline cublasOperation_t to_cublas(Op o) { return o == Op::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

/// A leading dimension: cuBLAS wants >= 1 even when the operand is empty (k = 0).
inline std::int64_t ld(std::int64_t v) { return v > 0 ? v : 1; }

inline int to_int(std::int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw value_error(std::string("cuBLAS GEMM: ") + what + " = " + std::to_string(v) + " does not fit in int");
  return static_cast<int>(v);
}

inline cublasStatus_t gemm_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb,
                              const float* beta, float* C, int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t gemm_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const double* alpha, const double* A, int lda, const double* B, int ldb,
                              const double* beta, double* C, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t gemm_batched_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                      int k, const float* alpha, const float* A, int lda, long long sA,
                                      const float* B, int ldb, long long sB, const float* beta, float* C, int ldc,
                                      long long sC, int batch) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
inline cublasStatus_t gemm_batched_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                      int k, const double* alpha, const double* A, int lda, long long sA,
                                      const double* B, int ldb, long long sB, const double* beta, double* C,
                                      int ldc, long long sC, int batch) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}

/// cuBLAS's name of a storage type (for the *Ex calls).
template <class T>
struct cuda_data_type;
template <>
struct cuda_data_type<float> {
  static constexpr cudaDataType_t value = CUDA_R_32F;
};
template <>
struct cuda_data_type<double> {
  static constexpr cudaDataType_t value = CUDA_R_64F;
};
template <>
struct cuda_data_type<__half> {
  static constexpr cudaDataType_t value = CUDA_R_16F;
};
template <>
struct cuda_data_type<__nv_bfloat16> {
  static constexpr cudaDataType_t value = CUDA_R_16BF;
};

// Half operands, FP32 compute, C of type Tc (the storage type, or float). CUBLAS_GEMM_DEFAULT
// lets cuBLAS use tensor cores, which for 16-bit inputs keep FP32 accumulation.
template <class Ti, class Tc>
inline cublasStatus_t gemm_ex_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 const float* alpha, const Ti* A, int lda, const Ti* B, int ldb, const float* beta,
                                 Tc* C, int ldc) {
  return cublasGemmEx(h, ta, tb, m, n, k, alpha, A, cuda_data_type<Ti>::value, lda, B, cuda_data_type<Ti>::value,
                      ldb, beta, C, cuda_data_type<Tc>::value, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
inline cublasStatus_t gemm_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const __half* A, int lda, const __half* B, int ldb,
                              const float* beta, __half* C, int ldc) {
  return gemm_ex_cm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t gemm_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const __nv_bfloat16* A, int lda, const __nv_bfloat16* B, int ldb,
                              const float* beta, __nv_bfloat16* C, int ldc) {
  return gemm_ex_cm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
template <class T>
inline cublasStatus_t gemm_batched_ex_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float* alpha, const T* A, int lda, long long sA, const T* B,
                                         int ldb, long long sB, const float* beta, T* C, int ldc, long long sC,
                                         int batch) {
  constexpr cudaDataType_t t = cuda_data_type<T>::value;
  return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, t, lda, sA, B, t, ldb, sB, beta, C, t, ldc, sC,
                                    batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
inline cublasStatus_t gemm_batched_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                      int k, const float* alpha, const __half* A, int lda, long long sA,
                                      const __half* B, int ldb, long long sB, const float* beta, __half* C, int ldc,
                                      long long sC, int batch) {
  return gemm_batched_ex_cm(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
inline cublasStatus_t gemm_batched_cm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                      int k, const float* alpha, const __nv_bfloat16* A, int lda, long long sA,
                                      const __nv_bfloat16* B, int ldb, long long sB, const float* beta,
                                      __nv_bfloat16* C, int ldc, long long sC, int batch) {
  return gemm_batched_ex_cm(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}

}  // namespace detail

/// The type of a GEMM's alpha and beta for storage type T: float for the half types (FP32
/// compute), T otherwise.
template <class T>
using gemm_scalar_t = compute_t<T>;

/// Row-major C = alpha·op(A)·op(B) + beta·C.  C: (m, n)  op(A): (m, k)  op(B): (k, n);
/// lda/ldb/ldc are the row strides of A, B, C as stored (see the header comment).
/// m = 0 or n = 0 does nothing; k = 0 gives C = beta·C.
template <class T>
void gemm(cublasHandle_t h, Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k, gemm_scalar_t<T> alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, gemm_scalar_t<T> beta, T* C, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  HYPLORA_CUBLAS_CHECK(detail::gemm_cm(h, detail::to_cublas(opB), detail::to_cublas(opA), detail::to_int(n, "n"),
                                       detail::to_int(m, "m"), detail::to_int(k, "k"), &alpha, B,
                                       detail::to_int(detail::ld(ldb), "ldb"), A, detail::to_int(detail::ld(lda), "lda"), &beta, C,
                                       detail::to_int(detail::ld(ldc), "ldc")));
}

/// Row-major strided-batched GEMM: for b in [0, batch), C_b = alpha·op(A_b)·op(B_b) + beta·C_b with
/// X_b = X + b·strideX (elements). Shapes and leading dimensions as in gemm().
template <class T>
void gemm_strided_batched(cublasHandle_t h, Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k,
                          gemm_scalar_t<T> alpha, const T* A, std::int64_t lda, std::int64_t strideA, const T* B,
                          std::int64_t ldb, std::int64_t strideB, gemm_scalar_t<T> beta, T* C, std::int64_t ldc,
                          std::int64_t strideC, std::int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  HYPLORA_CUBLAS_CHECK(detail::gemm_batched_cm(
      h, detail::to_cublas(opB), detail::to_cublas(opA), detail::to_int(n, "n"), detail::to_int(m, "m"),
      detail::to_int(k, "k"), &alpha, B, detail::to_int(detail::ld(ldb), "ldb"), static_cast<long long>(strideB), A,
      detail::to_int(detail::ld(lda), "lda"), static_cast<long long>(strideA), &beta, C, detail::to_int(detail::ld(ldc), "ldc"),
      static_cast<long long>(strideC), detail::to_int(batch, "batch")));
}

/// Row-major C = alpha·op(A)·op(B) + beta·C with operands of storage type Ti and C of type Tc,
/// Tc = Ti (then exactly gemm<Ti>()) or Tc = float with Ti a half type (FP32 compute; C is
/// read and written in float). Shapes and leading dimensions as in gemm().
template <class Ti, class Tc>
void gemm_mixed(cublasHandle_t h, Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k,
                gemm_scalar_t<Ti> alpha, const Ti* A, std::int64_t lda, const Ti* B, std::int64_t ldb,
                gemm_scalar_t<Ti> beta, Tc* C, std::int64_t ldc) {
  if constexpr (std::is_same_v<Ti, Tc>) {
    gemm<Ti>(h, opA, opB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    static_assert(is_half_v<Ti> && std::is_same_v<Tc, float>, "gemm_mixed: C must be Ti or float with half Ti");
    if (m == 0 || n == 0) return;
    HYPLORA_CUBLAS_CHECK(detail::gemm_ex_cm(h, detail::to_cublas(opB), detail::to_cublas(opA), detail::to_int(n, "n"),
                                            detail::to_int(m, "m"), detail::to_int(k, "k"), &alpha, B,
                                            detail::to_int(detail::ld(ldb), "ldb"), A,
                                            detail::to_int(detail::ld(lda), "lda"), &beta, C,
                                            detail::to_int(detail::ld(ldc), "ldc")));
  }
}

}  // namespace hyplora::cuda
