// hyplora/autodiff/detail/hyplora_blocks.hpp — the block loop the CPU HypLoRA backwards share
// (ops_hyplora.hpp, ops_hyplora_official.hpp): tokens in blocks of kHypLoRABlock, blocks shared
// out statically over the OpenMP team, per-thread partial sums added in thread order afterwards
// (bitwise-reproducible for a fixed thread count). The per-token math stays in each node.
#pragma once

#include <algorithm>
#include <utility>

#include "hyplora/autodiff/detail/hyplora_rows.hpp"
#include "hyplora/autodiff/tensor.hpp"

namespace hyplora::ad::detail {

/// Tokens per block of the backward's R×R GEMMs: big enough for a GEMM, small enough that the
/// (kHypLoRABlock, R) scratch stays in L1/L2 and adds little to the node's memory. Blocks are also the
/// unit the threads share out.
constexpr Index kHypLoRABlock = 64;

/// Runs block(i0, nb, Qt, part, first, s0, s1) for every block [i0, i0 + nb) of N tokens, on a
/// team when `parallel` (and there is more than one block). On its thread a block gets Qt, that
/// thread's (kHypLoRABlock, R) scratch rows in Q; part, its row of `parts`, whose first R×R
/// entries are that thread's partial of the ∂B term (first = true: assign rather than add); and
/// s0, s1, its two double sums. Returns the sums over all tokens, and when S is given sets it to
/// the sum of the R×R partials — both added in thread order.
template <class T, class Block>
std::pair<double, double> hyplora_blocks(Index N, Index r, bool parallel, Tensor<T>& Q, Tensor<T>& parts,
                                         Tensor<T>* S, Block&& block) {
  const Index qrows = std::min<Index>(N, kHypLoRABlock), pcols = r * r + 4;
  Q.resize(hyplora_max_threads() * qrows, r);
  parts.resize(hyplora_max_threads(), pcols);
  const Index nblocks = (N + kHypLoRABlock - 1) / kHypLoRABlock;
  const int team = hyplora_run_team(parallel && nblocks > 1, [&](int tid, int nth) {
    Index b0, b1;
    hyplora_share(nblocks, tid, nth, b0, b1);
    T* Qt = Q.data() + tid * qrows * r;
    T* part = parts.data() + tid * pcols;
    double s0 = 0.0, s1 = 0.0;
    bool first = true;
    for (Index blk = b0; blk < b1; ++blk) {
      const Index i0 = blk * kHypLoRABlock;
      block(i0, std::min<Index>(kHypLoRABlock, N - i0), Qt, part, first, s0, s1);
      first = false;
    }
    if (first) std::fill(part, part + r * r, T(0));  // a thread that got no block
    store_split(s0, part + r * r);
    store_split(s1, part + r * r + 2);
  });
  std::pair<double, double> sums{0.0, 0.0};
  if (S) S->setZero(r, r);
  for (int th = 0; th < team; ++th) {  // fixed order
    const T* part = parts.data() + th * pcols;
    if (S) *S += Eigen::Map<const MatrixR<T>>(part, r, r);
    sums.first += load_split(part + r * r);
    sums.second += load_split(part + r * r + 2);
  }
  return sums;
}

}  // namespace hyplora::ad::detail
