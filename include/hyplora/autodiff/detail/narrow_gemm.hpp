// hyplora/autodiff/detail/narrow_gemm.hpp — the HypLoRA nodes' R×R-type products (BᵀB, U·M, the
// backward's per-block M·a, S = Vᵀ·(w ⊙ V), B·S): C = alpha·op(A)·B + beta·C where C and B have
// only R columns (the adapter rank, a multiple of 8).
//
// Why not detail::gemm: OpenBLAS spends most of such a call packing operands and in its driver
// when N = R = 32. `bench_autodiff --benchmark_filter=NarrowGemm` (docs/hyplora.md §8, one
// thread): U·M at N 512, R 32 24.2 µs through sgemm, 15.9 µs here; the backward's per-block
// 8×32×32 M·a 0.59 → 0.32 µs, N/8 times a step. A register tile of up to 6 rows × 16 columns,
// one pass over K with FMAs on AVX2, needs no packing or buffers.
//
// The AVX2 path is chosen at run time (the library is header-only and built without -mavx2);
// other CPUs, other compilers, double, and R not a multiple of 8 use detail::gemm. Each element
// of C is one sum over k in order, whatever the thread count: results are reproducible.
#pragma once

#include <algorithm>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "hyplora/autodiff/ops_matmul.hpp"  // detail::gemm, the fallback

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(HYPLORA_NO_X86_KERNELS)
#define HYPLORA_NARROW_GEMM_AVX2 1
#include <immintrin.h>
#endif

namespace hyplora::ad::detail {

/// Products from this many multiply-adds are split over the OpenMP team by rows of C (the same
/// threshold as detail::gemm's split).
inline constexpr double kNarrowSplitMinMacs = double(1 << 18);
/// Rows per register tile of the AVX2 kernel (6 rows × 2 vectors = 12 accumulators of 16).
inline constexpr Index kNarrowTileRows = 6;
/// K is taken in slices of this many (B's slice, kNarrowKc × R floats, stays in L1/L2).
inline constexpr Index kNarrowKc = 256;

#ifdef HYPLORA_NARROW_GEMM_AVX2
/// Whether this CPU runs the AVX2 + FMA kernel (checked once). __builtin_cpu_init first: the
/// first call may come from a static initialiser that runs before libgcc's own.
inline bool narrow_gemm_cpu_ok() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

/// One RB×(8·CB) tile of C: A(i, k) at A[i·ars + k·acs], B row-major with row stride ldb, B's
/// row k scaled by ks[k] when ks is given.
template <int RB, int CB>
__attribute__((target("avx2,fma"))) inline void narrow_tile_f32(Index K, float alpha, const float* A, Index ars,
                                                                Index acs, const float* B, Index ldb, const float* ks,
                                                                float beta, float* C, Index ldc) {
  __m256 acc[RB][CB];
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < CB; ++c) acc[r][c] = _mm256_setzero_ps();
  for (Index k = 0; k < K; ++k) {
    __m256 b[CB];
    for (int c = 0; c < CB; ++c) b[c] = _mm256_loadu_ps(B + k * ldb + 8 * c);
    if (ks != nullptr) {
      const __m256 s = _mm256_set1_ps(ks[k]);
      for (int c = 0; c < CB; ++c) b[c] = _mm256_mul_ps(s, b[c]);
    }
    for (int r = 0; r < RB; ++r) {
      const __m256 x = _mm256_set1_ps(A[r * ars + k * acs]);
      for (int c = 0; c < CB; ++c) acc[r][c] = _mm256_fmadd_ps(x, b[c], acc[r][c]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < CB; ++c) {
      float* cp = C + r * ldc + 8 * c;
      __m256 v = _mm256_mul_ps(va, acc[r][c]);
      if (beta != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(cp), v);  // beta = 0 never reads C
      _mm256_storeu_ps(cp, v);
    }
}

template <int RB>
inline void narrow_rows_f32(Index N, Index K, float alpha, const float* A, Index ars, Index acs, const float* B,
                            Index ldb, const float* ks, float beta, float* C, Index ldc) {
  Index j = 0;
  for (; j + 16 <= N; j += 16) narrow_tile_f32<RB, 2>(K, alpha, A, ars, acs, B + j, ldb, ks, beta, C + j, ldc);
  if (j < N) narrow_tile_f32<RB, 1>(K, alpha, A, ars, acs, B + j, ldb, ks, beta, C + j, ldc);
}

/// Rows [i0, i1) of C for one K range; N % 8 == 0. Tiles of 6 rows (12 accumulators at 16
/// columns); with N = 8, 12-row tiles, so that there are still 12 independent FMA chains.
inline void narrow_block_f32(Index i0, Index i1, Index N, Index K, float alpha, const float* A, Index ars,
                             Index acs, const float* B, Index ldb, const float* ks, float beta, float* C, Index ldc) {
  Index i = i0;
  if (N == 8)
    for (; i + 12 <= i1; i += 12)
      narrow_tile_f32<12, 1>(K, alpha, A + i * ars, ars, acs, B, ldb, ks, beta, C + i * ldc, ldc);
  for (; i + kNarrowTileRows <= i1; i += kNarrowTileRows)
    narrow_rows_f32<6>(N, K, alpha, A + i * ars, ars, acs, B, ldb, ks, beta, C + i * ldc, ldc);
  const float* Ai = A + i * ars;
  float* Ci = C + i * ldc;
  switch (i1 - i) {
    case 5: narrow_rows_f32<5>(N, K, alpha, Ai, ars, acs, B, ldb, ks, beta, Ci, ldc); break;
    case 4: narrow_rows_f32<4>(N, K, alpha, Ai, ars, acs, B, ldb, ks, beta, Ci, ldc); break;
    case 3: narrow_rows_f32<3>(N, K, alpha, Ai, ars, acs, B, ldb, ks, beta, Ci, ldc); break;
    case 2: narrow_rows_f32<2>(N, K, alpha, Ai, ars, acs, B, ldb, ks, beta, Ci, ldc); break;
    case 1: narrow_rows_f32<1>(N, K, alpha, Ai, ars, acs, B, ldb, ks, beta, Ci, ldc); break;
    default: break;
  }
}

/// Rows [i0, i1) of C over all of K, in slices of kNarrowKc: a long K (BᵀB over D_out, S over the
/// tokens) would otherwise stream B once per row tile from beyond L2. Each slice after the first
/// accumulates onto C (beta = 1).
inline void narrow_rows_all_k_f32(Index i0, Index i1, Index N, Index K, float alpha, const float* A, Index ars,
                                  Index acs, const float* B, Index ldb, const float* ks, float beta, float* C,
                                  Index ldc) {
  for (Index k0 = 0; k0 < K; k0 += kNarrowKc) {
    const Index kc = std::min(kNarrowKc, K - k0);
    narrow_block_f32(i0, i1, N, kc, alpha, A + k0 * acs, ars, acs, B + k0 * ldb, ldb, ks != nullptr ? ks + k0 : nullptr,
                     k0 == 0 ? beta : 1.0f, C, ldc);
  }
}
#endif

/// Whether narrow_gemm<T> with N columns takes the register-tile kernel on this CPU (else it is
/// detail::gemm). Tests use it to know which path they check.
template <class T>
inline bool narrow_gemm_tiled(Index N) {
#ifdef HYPLORA_NARROW_GEMM_AVX2
  return std::is_same<T, float>::value && N > 0 && N % 8 == 0 && narrow_gemm_cpu_ok();
#else
  (void)N;
  return false;
#endif
}

namespace narrow_detail {
/// The tiled product, split by rows over the OpenMP team outside a parallel region from
/// kNarrowSplitMinMacs multiply-adds; the caller has checked narrow_gemm_tiled<float>(N).
inline void tiled_f32(Index M, Index N, Index K, float alpha, const float* A, Index lda, bool ta, const float* B,
                      Index ldb, const float* ks, float beta, float* C, Index ldc) {
#ifdef HYPLORA_NARROW_GEMM_AVX2
  const Index ars = ta ? 1 : lda, acs = ta ? lda : 1;
#ifdef _OPENMP
  const int nt = omp_get_max_threads();
  if (nt > 1 && !omp_in_parallel() && M >= 2 * kNarrowTileRows &&
      double(M) * double(N) * double(K) >= kNarrowSplitMinMacs) {
    const Index tiles = (M + kNarrowTileRows - 1) / kNarrowTileRows;
#pragma omp parallel num_threads(nt)
    {
      const Index th = omp_get_thread_num(), team = omp_get_num_threads();
      const Index i0 = std::min(M, tiles * th / team * kNarrowTileRows);
      const Index i1 = std::min(M, tiles * (th + 1) / team * kNarrowTileRows);
      if (i1 > i0) narrow_rows_all_k_f32(i0, i1, N, K, alpha, A, ars, acs, B, ldb, ks, beta, C, ldc);
    }
    return;
  }
#endif
  narrow_rows_all_k_f32(0, M, N, K, alpha, A, ars, acs, B, ldb, ks, beta, C, ldc);
#else
  (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)ta, (void)B, (void)ldb, (void)ks, (void)beta,
      (void)C, (void)ldc;
#endif
}
}  // namespace narrow_detail

/// C (M, N) = alpha·op(A)·B + beta·C, row-major, B (K, N) untransposed with row stride ldb;
/// op(A) is A (M, K), or with ta A is stored (K, M). beta = 0 never reads C. Outside a parallel
/// region, products from kNarrowSplitMinMacs multiply-adds are split by rows over the team.
template <class T>
void narrow_gemm(Index M, Index N, Index K, T alpha, const T* A, Index lda, bool ta, const T* B, Index ldb, T beta,
                 T* C, Index ldc) {
  if constexpr (std::is_same<T, float>::value) {
    if (M > 0 && K > 0 && narrow_gemm_tiled<T>(N))
      return narrow_detail::tiled_f32(M, N, K, alpha, A, lda, ta, B, ldb, nullptr, beta, C, ldc);
  }
  gemm<T>(M, N, K, alpha, A, lda, ta, B, ldb, false, beta, C, ldc);
}

/// C (M, N) = alpha·op(A)·diag(w)·B + beta·C: narrow_gemm with B's row k scaled by w[k] (K values)
/// on the fly, so no scaled copy of B is formed. Shapes narrow_gemm would not tile form diag(w)·B
/// in a temporary (it allocates) for detail::gemm: callers on a hot path check narrow_gemm_tiled.
template <class T>
void narrow_gemm_scaled(Index M, Index N, Index K, T alpha, const T* A, Index lda, bool ta, const T* w, const T* B,
                        Index ldb, T beta, T* C, Index ldc) {
  if constexpr (std::is_same<T, float>::value) {
    if (M > 0 && K > 0 && narrow_gemm_tiled<T>(N))
      return narrow_detail::tiled_f32(M, N, K, alpha, A, lda, ta, B, ldb, w, beta, C, ldc);
  }
  MatrixR<T> WB(K, N);
  for (Index k = 0; k < K; ++k)
    for (Index j = 0; j < N; ++j) WB(k, j) = w[k] * B[k * ldb + j];
  gemm<T>(M, N, K, alpha, A, lda, ta, WB.data(), N, false, beta, C, ldc);
}

}  // namespace hyplora::ad::detail
