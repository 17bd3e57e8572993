// emu_cublas.hpp — the cuBLAS GEMMs hyplora calls (column-major, as cuBLAS), on the host.
//
// Arguments are checked as cuBLAS checks them (m, n, k ≥ 0; lda, ldb, ldc at least the stored
// rows: CUBLAS_STATUS_INVALID_VALUE), and every operand's extent must lie inside one device
// allocation (CUBLAS_STATUS_EXECUTION_FAILED where the GPU would fault). β = 0 never reads C.
// Products accumulate in the compute type (float for S and the 32F Ex calls, double for D) with
// Eigen; half operands are widened to float first, results rounded once on store.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <cstdio>

#include "emu_runtime.hpp"
#include "emu_types.hpp"

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_64F = 70 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };

struct cublasContext {
  cudaStream_t stream;
};
using cublasHandle_t = cublasContext*;

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new cublasContext{nullptr};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!hyplora_emu::is_stream(s)) return CUBLAS_STATUS_INVALID_VALUE;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
inline const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
inline const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "cuBLAS error";
  }
}

namespace hyplora_emu::detail {

template <class T>
float widen(T v) {
  return static_cast<float>(v);
}
inline double widen(double v) { return v; }

// Bytes from p to one past the last element of a column-major (rows, cols) operand with stride ld.
template <class T>
std::size_t extent(int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return 0;
  return (static_cast<std::size_t>(cols - 1) * static_cast<std::size_t>(ld) + static_cast<std::size_t>(rows)) *
         sizeof(T);
}

template <class Acc, class Ti, class Tc>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, Acc alpha,
                    const Ti* A, int lda, const Ti* B, int ldb, Acc beta, Tc* C, int ldc, const char* call) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
  const int a_rows = an ? m : k, a_cols = an ? k : m, b_rows = bn ? k : n, b_cols = bn ? n : k;
  if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
      ldc < (m > 1 ? m : 1) || (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) {
    std::fprintf(stderr, "cuda_emu: %s: invalid arguments (m %d n %d k %d lda %d ldb %d ldc %d)\n", call, m, n, k,
                 lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if ((k > 0 && (!is_device_range(A, extent<Ti>(a_rows, a_cols, lda)) ||
                 !is_device_range(B, extent<Ti>(b_rows, b_cols, ldb)))) ||
      !is_device_range(C, extent<Tc>(m, n, ldc))) {
    std::fprintf(stderr, "cuda_emu: %s: an operand is not inside one device allocation\n", call);
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  using Mat = Eigen::Matrix<Acc, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  Mat a(m, k), b(k, n);
  for (int l = 0; l < k; ++l)
    for (int i = 0; i < m; ++i)
      a(i, l) = static_cast<Acc>(widen(an ? A[i + static_cast<std::size_t>(l) * lda] : A[l + static_cast<std::size_t>(i) * lda]));
  for (int j = 0; j < n; ++j)
    for (int l = 0; l < k; ++l)
      b(l, j) = static_cast<Acc>(widen(bn ? B[l + static_cast<std::size_t>(j) * ldb] : B[j + static_cast<std::size_t>(l) * ldb]));
  Mat c = Mat::Zero(m, n);
  if (k > 0) c.noalias() = a * b;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      Tc& out = C[i + static_cast<std::size_t>(j) * ldc];
      const Acc prior = beta == Acc(0) ? Acc(0) : beta * static_cast<Acc>(widen(out));
      out = Tc(alpha * c(i, j) + prior);
    }
  return CUBLAS_STATUS_SUCCESS;
}

template <class Acc, class Ti, class Tc>
cublasStatus_t gemm_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            Acc alpha, const Ti* A, int lda, long long sA, const Ti* B, int ldb, long long sB,
                            Acc beta, Tc* C, int ldc, long long sC, int batch, const char* call) {
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < batch; ++i) {
    const cublasStatus_t s =
        gemm<Acc>(h, ta, tb, m, n, k, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc, call);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}

// The typed pointer an Ex call's cudaDataType_t names, or NOT_SUPPORTED.
template <class F>
cublasStatus_t with_type(cudaDataType_t t, const void* p, F&& f) {
  switch (t) {
    case CUDA_R_32F: return f(static_cast<const float*>(p));
    case CUDA_R_16F: return f(static_cast<const __half*>(p));
    case CUDA_R_16BF: return f(static_cast<const __nv_bfloat16*>(p));
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

}  // namespace hyplora_emu::detail

inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float* alpha, const float* A, int lda, const float* B, int ldb,
                                  const float* beta, float* C, int ldc) {
  return hyplora_emu::detail::gemm<float>(h, ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, "cublasSgemm");
}
inline cublasStatus_t cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const double* alpha, const double* A, int lda, const double* B, int ldb,
                                  const double* beta, double* C, int ldc) {
  return hyplora_emu::detail::gemm<double>(h, ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, "cublasDgemm");
}
inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const float* alpha, const float* A, int lda,
                                                long long sA, const float* B, int ldb, long long sB,
                                                const float* beta, float* C, int ldc, long long sC, int batch) {
  return hyplora_emu::detail::gemm_batched<float>(h, ta, tb, m, n, k, *alpha, A, lda, sA, B, ldb, sB, *beta, C, ldc,
                                                  sC, batch, "cublasSgemmStridedBatched");
}
inline cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const double* alpha, const double* A, int lda,
                                                long long sA, const double* B, int ldb, long long sB,
                                                const double* beta, double* C, int ldc, long long sC, int batch) {
  return hyplora_emu::detail::gemm_batched<double>(h, ta, tb, m, n, k, *alpha, A, lda, sA, B, ldb, sB, *beta, C, ldc,
                                                   sC, batch, "cublasDgemmStridedBatched");
}

// FP32-compute Ex GEMMs (the only compute type hyplora asks for): A and B of one type, C of that
// type or float.
inline cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                 int n, int k, const void* alpha, const void* A, cudaDataType_t ta_t,
                                                 int lda, long long sA, const void* B, cudaDataType_t tb_t, int ldb,
                                                 long long sB, const void* beta, void* C, cudaDataType_t tc_t,
                                                 int ldc, long long sC, int batch, cublasComputeType_t compute,
                                                 cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F || ta_t != tb_t) return CUBLAS_STATUS_NOT_SUPPORTED;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  return hyplora_emu::detail::with_type(ta_t, A, [&](auto* a) {
    using Ti = std::remove_const_t<std::remove_pointer_t<decltype(a)>>;
    const Ti* b = static_cast<const Ti*>(B);
    return hyplora_emu::detail::with_type(tc_t, C, [&](auto* c) {
      using Tc = std::remove_const_t<std::remove_pointer_t<decltype(c)>>;
      return hyplora_emu::detail::gemm_batched<float>(h, ta, tb, m, n, k, al, a, lda, sA, b, ldb, sB, be,
                                                      const_cast<Tc*>(c), ldc, sC, batch, "cublasGemmEx");
    });
  });
}
inline cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* A, cudaDataType_t ta_t, int lda, const void* B,
                                   cudaDataType_t tb_t, int ldb, const void* beta, void* C, cudaDataType_t tc_t,
                                   int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, ta_t, lda, 0, B, tb_t, ldb, 0, beta, C, tc_t, ldc,
                                    0, 1, compute, algo);
}
