// hyplora/autodiff/ops_matmul.hpp — the matrix product node, with optional transposes, and the
// GEMM every tape op calls (detail::gemm).
//
// out = op(a) · op(b), op(m) = m or mᵀ. With G = ∂L/∂out:
//   ∂L/∂op(a) = G · op(b)ᵀ,   ∂L/∂op(b) = op(a)ᵀ · G,
// and a transposed operand receives the transpose of that. Every product (forward and backward)
// is one GEMM on the operands in place (a transpose is a BLAS flag): no transposed copy is ever
// made. A backward GEMM assigns into a fresh gradient buffer (BLAS beta = 0, Tape::grad_out) and
// accumulates (beta = 1) into one that already holds a contribution or is a parameter's slot. A
// parent that needs no gradient (a frozen weight, a constant) costs no backward GEMM.
//
// Why detail::gemm instead of Eigen's `noalias() =`: Eigen evaluates `C.noalias() = A * B` as
// C.setZero() then C += A·B, an extra pass over C (callgrind: ~7% of a HypLoRA GPT step was
// memset), and only forwards some product forms to BLAS. detail::gemm calls sgemm/dgemm once
// with the right beta when hyplora is built with BLAS (HYPLORA_USE_BLAS), else Eigen.
//
// Threads: with OpenBLAS's OpenMP build (HYPLORA_BLAS_OPENMP, set by CMake), a BLAS GEMM outside
// a parallel region is split by detail::gemm itself into one single-threaded BLAS call per OpenMP
// thread, on disjoint row (or column) blocks of C. OpenBLAS's own threading of the mid-sized
// shapes a small transformer step is made of splits work finely and synchronises its threads with
// sched_yield spins; the coarse split needs only the join (docs/autodiff.md, "Ops", has the
// measurement). Each element of C is still one single-threaded BLAS call, so a fixed thread count
// gives bitwise reproducible results. Inside a parallel region (the attention loop over heads)
// the BLAS call is single-threaded as before.
#pragma once

#include <algorithm>
#include <climits>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

#if defined(HYPLORA_USE_BLAS) && defined(EIGEN_USE_BLAS)
/// GEMMs below this many multiply-adds run as one BLAS call, single-threaded inside OpenBLAS;
/// from here on OpenBLAS would thread the call itself (its default threshold is 4·65536 = 2¹⁸
/// multiply-adds), and its threaded level-3 driver mallocs a 512 KB buffer per call (gdb on a
/// 32×32×512 sgemm: sgemm_thread_nt → malloc(524288)), i.e. a heap allocation and fresh pages on
/// every training step. So every GEMM big enough for OpenBLAS to thread is split here instead
/// (docs/autodiff.md, "Threads").
inline constexpr double kGemmSplitMinMacs = double(1 << 18);
/// Block boundaries of the threaded split are multiples of this (whole BLAS micro-tiles).
inline constexpr Index kGemmSplitAlign = 16;

/// One BLAS call: row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a row-major
/// X is the column-major Xᵀ: so B comes first and both transpose flags carry over unchanged.
/// Dimensions were checked against INT_MAX by the caller.
template <class T>
void blas_gemm(Index M, Index N, Index K, T alpha, const T* A, Index lda, bool ta, const T* B, Index ldb, bool tb,
               T beta, T* C, Index ldc) {
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int ia = static_cast<int>(lda), ib = static_cast<int>(ldb), ic = static_cast<int>(ldc);
  const char* fb = tb ? "T" : "N";
  const char* fa = ta ? "T" : "N";
  if constexpr (std::is_same<T, float>::value) sgemm_(fb, fa, &m, &n, &k, &alpha, B, &ib, A, &ia, &beta, C, &ic);
  else dgemm_(fb, fa, &m, &n, &k, &alpha, B, &ib, A, &ia, &beta, C, &ic);
}
#endif

/// C = alpha·op(A)·op(B) + beta·C on row-major storage with leading (row) strides lda, ldb, ldc.
/// op(A): (M, K) — A is stored (M, K), or (K, M) with ta; op(B): (K, N) — B is (K, N), or (N, K)
/// with tb; C: (M, N). beta = 0 never reads C (it may hold garbage, even NaN).
template <class T>
void gemm(Index M, Index N, Index K, T alpha, const T* A, Index lda, bool ta, const T* B, Index ldb, bool tb,
          T beta, T* C, Index ldc) {
  if (M <= 0 || N <= 0) return;
  using CMap = Eigen::Map<MatrixR<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
  CMap Cm(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {  // empty sum: BLAS would reject a zero leading dimension
    if (beta == T(0)) Cm.setZero();
    else Cm *= beta;
    return;
  }
#if defined(HYPLORA_USE_BLAS) && defined(EIGEN_USE_BLAS)
  constexpr bool kBlasType = std::is_same<T, float>::value || std::is_same<T, double>::value;
  if constexpr (kBlasType) {
    if (M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX) {
#if defined(_OPENMP) && defined(HYPLORA_BLAS_OPENMP)
      const int nt = omp_get_max_threads();
      if (nt > 1 && !omp_in_parallel() && double(M) * double(N) * double(K) >= kGemmSplitMinMacs) {
        // Rows of C when M ≥ N (row block i of op(A)), else columns (column block of op(B)).
        const bool by_rows = M >= N;
        const Index total = by_rows ? M : N;
        const Index chunk = ((total + nt - 1) / nt + kGemmSplitAlign - 1) / kGemmSplitAlign * kGemmSplitAlign;
#pragma omp parallel num_threads(nt)
        {
          const Index b0 = std::min(total, static_cast<Index>(omp_get_thread_num()) * chunk);
          const Index b1 = std::min(total, b0 + chunk);
          if (b1 > b0) {
            if (by_rows) blas_gemm(b1 - b0, N, K, alpha, ta ? A + b0 : A + b0 * lda, lda, ta, B, ldb, tb, beta, C + b0 * ldc, ldc);
            else blas_gemm(M, b1 - b0, K, alpha, A, lda, ta, tb ? B + b0 * ldb : B + b0, ldb, tb, beta, C + b0, ldc);
          }
        }
        return;
      }
#endif
      blas_gemm(M, N, K, alpha, A, lda, ta, B, ldb, tb, beta, C, ldc);
      return;
    }
  }
#endif
  using Map = Eigen::Map<const MatrixR<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
  const Map Am(A, ta ? K : M, ta ? M : K, Eigen::OuterStride<>(lda));
  const Map Bm(B, tb ? N : K, tb ? K : N, Eigen::OuterStride<>(ldb));
  if (beta == T(0)) Cm.setZero();
  else if (beta != T(1)) Cm *= beta;
  if (!ta && !tb) Cm.noalias() += alpha * (Am * Bm);
  else if (!ta && tb) Cm.noalias() += alpha * (Am * Bm.transpose());
  else if (ta && !tb) Cm.noalias() += alpha * (Am.transpose() * Bm);
  else Cm.noalias() += alpha * (Am.transpose() * Bm.transpose());
}

/// gemm on contiguous row-major operands (tensors, tape views): C = alpha·op(A)·op(B) + beta·C.
template <class T, class DA, class DB, class DC>
void gemm(T alpha, const DA& A, bool ta, const DB& B, bool tb, T beta, DC&& C) {
  const Index M = ta ? A.cols() : A.rows(), K = ta ? A.rows() : A.cols();
  const Index N = tb ? B.rows() : B.cols();
  gemm<T>(M, N, K, alpha, A.data(), A.cols(), ta, B.data(), B.cols(), tb, beta, C.data(), C.cols());
}

// attrs[0] = transpose_a, attrs[1] = transpose_b
template <class T>
void matmul_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int ia = n.parents[0], ib = n.parents[1];
  const bool ta = n.attrs[0] != 0.0, tb = n.attrs[1] != 0.0;
  auto G = t.grad_acc(id);  // (M, P)
  auto A = t.value(ia);     // (M, K) or, transposed, (K, M)
  auto B = t.value(ib);     // (K, P) or, transposed, (P, K)
  if (t.needs_grad(ia)) {
    auto dA = t.grad_out(ia);
    const T beta = dA.fresh ? T(0) : T(1);
    if (!ta) gemm(T(1), G, false, B, !tb, beta, dA.view);  // G·op(B)ᵀ: (M,P)(P,K)
    else gemm(T(1), B, tb, G, true, beta, dA.view);         // op(B)·Gᵀ: (K,P)(P,M)
  }
  if (t.needs_grad(ib)) {
    auto dB = t.grad_out(ib);
    const T beta = dB.fresh ? T(0) : T(1);
    if (!tb) gemm(T(1), A, !ta, G, false, beta, dB.view);  // op(A)ᵀ·G: (K,M)(M,P)
    else gemm(T(1), G, true, A, ta, beta, dB.view);         // Gᵀ·op(A): (P,M)(M,K)
  }
}

}  // namespace detail

/// op(a) · op(b), op = transpose when the flag is set.
/// a: (M, K) [or (K, M) with transpose_a]  b: (K, P) [or (P, K) with transpose_b]  out: (M, P).
/// E.g. matmul(x, W, false, true) = x·Wᵀ for a PyTorch-layout weight W (D_out, D_in).
template <class T>
Var<T> matmul(Var<T> a, Var<T> b, bool transpose_a = false, bool transpose_b = false) {
  detail::check_same_tape("matmul", a, b);
  Tape<T>& t = *a.tape;
  const Index M = transpose_a ? a.cols() : a.rows();
  const Index Ka = transpose_a ? a.rows() : a.cols();
  const Index Kb = transpose_b ? b.cols() : b.rows();
  const Index P = transpose_b ? b.rows() : b.cols();
  if (Ka != Kb)
    throw_shape("matmul (inner dimensions differ)", transpose_a ? "a^T" : "a", M, Ka, transpose_b ? "b^T" : "b", Kb, P);
  const int id = t.push("matmul", M, P, &detail::matmul_backward<T>, {a.id, b.id});
  Node<T>& n = t.node(id);
  n.attrs[0] = transpose_a ? 1.0 : 0.0;
  n.attrs[1] = transpose_b ? 1.0 : 0.0;
  detail::gemm(T(1), t.value(a.id), transpose_a, t.value(b.id), transpose_b, T(0), t.value(id));
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
