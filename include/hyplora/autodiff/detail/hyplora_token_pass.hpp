// hyplora/autodiff/detail/hyplora_token_pass.hpp — the token pass the CPU HypLoRA backwards share
// (ops_hyplora.hpp, ops_hyplora_official.hpp), and ∂B's R×R term (docs/hyplora.md Eq. (163)).
//
// Memory is the point of this layout: the node must cost about what LoRA costs (issue #4: ≤ 1.02×
// at every benchmark shape, including N 128, D 256, R 32, where a step is ≈ 0.56 MB). So the
// backward keeps no per-thread R×R partials. Per token it needs M·v_i, formed for a block of
// kHypLoRABlock tokens at a time by a small GEMM into a per-thread slot, and leaves one weight
// w_i; ∂B's term B·S with S = Vᵀ·diag(w)·V is two small products after the pass, using the (N, R)
// work buffer once the caller's GEMMs are done with it. One scratch buffer serves both phases:
//   during the pass:  [ w (N) | per thread: Q (kHypLoRABlock×R) + two split doubles, 64-byte padded ]
//   afterwards:       [ S (R×R) ] on detail::gemm's path (hyplora_add_bs; the register-tile path
//                     puts S in the work buffer instead)
// The small products go through detail::narrow_gemm (a register-tile kernel on AVX2 CPUs). The
// per-token math stays in each node.
#pragma once

#include <algorithm>
#include <utility>

#include "hyplora/autodiff/detail/hyplora_rows.hpp"
#include "hyplora/autodiff/detail/narrow_gemm.hpp"
#include "hyplora/autodiff/ops_matmul.hpp"  // detail::gemm
#include "hyplora/autodiff/tensor.hpp"

namespace hyplora::ad::detail {

/// Tokens per block of the pass: the unit of the per-block GEMM Q = V_block·M (M = BᵀB) through
/// a thread's slot. Small on purpose: the slot, kHypLoRABlock·R values per thread, is the only
/// per-thread memory the node adds (at R 32 and two threads the whole scratch still fits in the
/// R×R that S needs afterwards, for N ≥ 128), and a GEMM of 8 rows is still one BLAS call.
constexpr Index kHypLoRABlock = 8;

/// Without the register-tile kernel (detail::narrow_gemm_tiled false: double, R not a multiple of
/// 8, a CPU without AVX2), up to this rank the per-block product Q = V_block·M is a plain loop
/// (hyplora_block_times_m). Measured at R 8 (the loop is faster than BLAS) and R 32 (BLAS is
/// faster); R 16 itself was not measured.
constexpr Index kHypLoRALoopMaxRank = 16;

/// Q = V·M for one block of nb ≤ kHypLoRABlock tokens: V (nb, R) rows, M (R, R), Q (nb, R).
/// At small R a BLAS call costs more in its driver than the nb·R² multiply-adds: each call takes
/// a buffer from OpenBLAS's pool and packs both operands, and a node makes N/8 of them. `perf
/// record` of a rank-8 GPT step (hyplora-finetune bench-step --pretrain-seq 48 --modes hyplora,
/// 2 threads): OpenBLAS's samples 7351 → 7024, its buffer-pool calls 99 → 27, with the loop;
/// Paired/hyplora at n 512, d 256, r 8 (2 threads, three runs each): 1.068–1.083 → 1.060–1.061.
/// At R 32 the loop was slower (n 128: 1.12–1.14 against 1.10–1.12), so above
/// kHypLoRALoopMaxRank it is one GEMM. Where narrow_gemm tiles (float, R a multiple of 8, AVX2),
/// its kernel does the block at any rank: 8×32×32 in 0.32 µs against 0.59 µs as one sgemm call
/// (bench_autodiff NarrowGemm, docs/hyplora.md §8).
template <class T>
void hyplora_block_times_m(const T* V, Index nb, Index r, const T* M, T* Q) {
  if (narrow_gemm_tiled<T>(r) || r > kHypLoRALoopMaxRank) {
    narrow_gemm<T>(nb, r, r, T(1), V, r, false, M, r, T(0), Q, r);
    return;
  }
  for (Index i = 0; i < nb; ++i) {
    const T* vi = V + i * r;
    T* qi = Q + i * r;
    for (Index j = 0; j < r; ++j) qi[j] = T(0);
    for (Index k = 0; k < r; ++k) {
      const T v = vi[k];
      const T* mk = M + k * r;
      for (Index j = 0; j < r; ++j) qi[j] += v * mk[j];
    }
  }
}

/// Elements of one thread's slot in the scratch: a (kHypLoRABlock, R) block and two split
/// doubles, rounded up to a 64-byte line so two threads never write the same line.
template <class T>
constexpr Index hyplora_thread_slot(Index r) {
  constexpr Index line = static_cast<Index>(64 / sizeof(T)) > 0 ? static_cast<Index>(64 / sizeof(T)) : 1;
  return (kHypLoRABlock * r + 4 + line - 1) / line * line;
}

/// Runs block(i0, nb, Q, w, s0, s1) for every block [i0, i0 + nb) of kHypLoRABlock tokens (the
/// last may be shorter), on an OpenMP team when `parallel` (each thread a contiguous share of
/// the blocks, hyplora_share). Q is the running thread's (kHypLoRABlock, R) slot; w points at
/// the per-token weights (block writes w[i] for its tokens, used by hyplora_add_bs); s0, s1 are
/// the thread's two double sums. Returns the sums over all tokens, added in thread order
/// (bitwise-reproducible for a fixed thread count).
template <class T, class Block>
std::pair<double, double> hyplora_token_pass(Index N, Index r, bool parallel, Tensor<T>& scratch, Block&& block) {
  const Index slot = hyplora_thread_slot<T>(r);
  const Index need = N + hyplora_max_threads() * slot;
  scratch.resize(std::max(need, r * r), 1);  // r·r: S reuses it (hyplora_add_bs)
  T* w = scratch.data();
  T* slots = scratch.data() + N;
  const Index nblocks = (N + kHypLoRABlock - 1) / kHypLoRABlock;
  const int team = hyplora_run_team(parallel && nblocks > 1, [&](int tid, int nth) {
    Index b0, b1;
    hyplora_share(nblocks, tid, nth, b0, b1);
    T* mine = slots + tid * slot;
    double s0 = 0.0, s1 = 0.0;
    for (Index blk = b0; blk < b1; ++blk) {
      const Index i0 = blk * kHypLoRABlock;
      block(i0, std::min<Index>(kHypLoRABlock, N - i0), mine, w, s0, s1);
    }
    store_split(s0, mine + kHypLoRABlock * r);
    store_split(s1, mine + kHypLoRABlock * r + 2);
  });
  std::pair<double, double> sums{0.0, 0.0};
  for (int th = 0; th < team; ++th) {  // fixed order
    const T* mine = slots + th * slot + kHypLoRABlock * r;
    sums.first += load_split(mine);
    sums.second += load_split(mine + 2);
  }
  return sums;
}

/// ∂B += B·S with S = Vᵀ·diag(w)·V (Eq. (163), second term; w from hyplora_token_pass, in
/// `scratch`). V: (N, R) — a (exact node) or U (radial nodes); work: an (N, R) buffer the caller
/// no longer needs; B: (D_out, R); dB: (D_out, R). With the register-tile kernel (and N ≥ R), V's
/// rows are scaled by w on the fly and S goes into `work`; otherwise `work` receives w ⊙ V for one
/// GEMM and S goes into `scratch` (w is dead by then).
template <class T>
void hyplora_add_bs(const T* V, Index N, Index r, T* work, Tensor<T>& scratch, const T* B, Index d_out, T* dB) {
  const T* w = scratch.data();
  T* S = nullptr;
  if (narrow_gemm_tiled<T>(r) && N >= r) {
    S = work;
    narrow_gemm_scaled<T>(r, r, N, T(1), V, r, true, w, V, r, T(0), S, r);
  } else {
    for (Index i = 0; i < N; ++i) {
      const T wi = w[i];
      const T* vi = V + i * r;
      T* oi = work + i * r;
      for (Index j = 0; j < r; ++j) oi[j] = wi * vi[j];
    }
    S = scratch.data();
    narrow_gemm<T>(r, r, N, T(1), V, r, true, work, r, T(0), S, r);
  }
  narrow_gemm<T>(d_out, r, r, T(1), B, r, false, S, r, T(1), dB, r);
}

}  // namespace hyplora::ad::detail
