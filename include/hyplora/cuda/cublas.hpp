// hyplora/cuda/cublas.hpp — RAII cuBLAS handle and row-major GEMM wrappers (float, double).
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
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>
#include <utility>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/error.hpp"

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

}  // namespace detail

/// Row-major C = alpha·op(A)·op(B) + beta·C.  C: (m, n)  op(A): (m, k)  op(B): (k, n);
/// lda/ldb/ldc are the row strides of A, B, C as stored (see the header comment).
/// m = 0 or n = 0 does nothing; k = 0 gives C = beta·C.
template <class T>
void gemm(cublasHandle_t h, Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* A,
          std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  HYPLORA_CUBLAS_CHECK(detail::gemm_cm(h, detail::to_cublas(opB), detail::to_cublas(opA), detail::to_int(n, "n"),
                                       detail::to_int(m, "m"), detail::to_int(k, "k"), &alpha, B,
                                       detail::to_int(detail::ld(ldb), "ldb"), A, detail::to_int(detail::ld(lda), "lda"), &beta, C,
                                       detail::to_int(detail::ld(ldc), "ldc")));
}

/// Row-major strided-batched GEMM: for b in [0, batch), C_b = alpha·op(A_b)·op(B_b) + beta·C_b with
/// X_b = X + b·strideX (elements). Shapes and leading dimensions as in gemm().
template <class T>
void gemm_strided_batched(cublasHandle_t h, Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                          const T* A, std::int64_t lda, std::int64_t strideA, const T* B, std::int64_t ldb,
                          std::int64_t strideB, T beta, T* C, std::int64_t ldc, std::int64_t strideC,
                          std::int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  HYPLORA_CUBLAS_CHECK(detail::gemm_batched_cm(
      h, detail::to_cublas(opB), detail::to_cublas(opA), detail::to_int(n, "n"), detail::to_int(m, "m"),
      detail::to_int(k, "k"), &alpha, B, detail::to_int(detail::ld(ldb), "ldb"), static_cast<long long>(strideB), A,
      detail::to_int(detail::ld(lda), "lda"), static_cast<long long>(strideA), &beta, C, detail::to_int(detail::ld(ldc), "ldc"),
      static_cast<long long>(strideC), detail::to_int(batch, "batch")));
}

}  // namespace hyplora::cuda
