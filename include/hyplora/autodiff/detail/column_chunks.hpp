// hyplora/autodiff/detail/column_chunks.hpp — per-column sums over rows (a norm's dγ and dβ, an
// embedding's scatter-add), split across OpenMP threads by column ranges.
//
// Why columns and not rows: splitting the rows would need per-thread partial sums added in a
// fixed order afterwards (extra buffers, and a result that changes with the thread count).
// Splitting the columns lets every task walk all rows in row order into its own columns, which
// is exactly the serial summation order: the result is bitwise the same for any thread count,
// with no partial buffers and no atomics.
#pragma once

#include <algorithm>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::parallel_for, kParallelMinElems

namespace hyplora::ad::detail {

/// Columns per task: 16 floats are one 64-byte cache line of a row, so two tasks never write the
/// same line of the (1, C) or (V, C) accumulator.
inline constexpr Index kColumnChunk = 16;

/// Calls f(c0, c1) for the ranges [c0, c1) of kColumnChunk columns that cover [0, C), on all
/// OpenMP threads when rows·C reaches kParallelMinElems (parallel_for). f must touch only columns
/// [c0, c1) and walk the rows in order (see the file comment).
template <class F>
void for_column_chunks(Index rows, Index C, F&& f) {
  const Index n = (C + kColumnChunk - 1) / kColumnChunk;
  parallel_for(n, rows * C, [&](Index k) {
    const Index c0 = k * kColumnChunk;
    f(c0, std::min(C, c0 + kColumnChunk));
  });
}

}  // namespace hyplora::ad::detail
