// hyplora/cuda/kernels/embedding.cuh — token + position embedding on the device: the gather-and-add
// a GPT's first layer does, and its deterministic scatter-add backward.
// Reference: ad::embedding (autodiff/ops_shape.hpp) followed by ad::add:
//   out_i = W[ids_i] + P[pos_i]                     (forward: two gathers and one add, fused)
//   dW_v += Σ_{i: ids_i = v} g_i                    (backward, per table)
// The backward runs one thread per (table row v, column c), each scanning all N tokens in order
// i = 0, 1, …: no float atomics, so the sums are bit-identical run to run and add in the CPU
// op's order (its serial loop over i). O(V·C·N) reads of the ids, which warps read as one
// broadcast; fine for byte vocabularies and block sizes (V, T ≤ a few thousand).
//   W: (V, C)  P: (T_max, C)  ids, pos: N device int64 (validate on the host: the kernels do not
//   range-check; check_embedding_ids does it)  out, g: (N, C)  dW: (V, C)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"

namespace hyplora::cuda {

namespace detail {

// out[i, c] = W[ids[i], c] (+ P[pos[i], c] when P is given), one thread per output element.
template <class T>
__global__ void embedding_forward_kernel(const T* __restrict__ W, const std::int64_t* __restrict__ ids,
                                         const T* __restrict__ P, const std::int64_t* __restrict__ pos,
                                         std::int64_t n, std::int64_t C, T* __restrict__ out) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t i = e / C, c = e % C;
    T v = W[ids[i] * C + c];
    if (P) v += P[pos[i] * C + c];
    out[e] = v;
  }
}

// dW[v, c] += Σ_{i: ids[i] = v} g[i, c], summed in token order (one thread per (v, c)).
template <class T>
__global__ void embedding_backward_kernel(const T* __restrict__ g, const std::int64_t* __restrict__ ids,
                                          std::int64_t N, std::int64_t V, std::int64_t C, T* __restrict__ dW) {
  const std::int64_t n = V * C;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t v = e / C, c = e % C;
    acc_t<T> s = acc_t<T>(0);
    bool any = false;
    for (std::int64_t i = 0; i < N; ++i)
      if (ids[i] == v) {
        s += static_cast<acc_t<T>>(g[i * C + c]);
        any = true;
      }
    if (any) dW[e] = static_cast<T>(static_cast<acc_t<T>>(dW[e]) + s);
  }
}

}  // namespace detail

/// Host-side check that every id lies in [0, rows); value_error naming the first bad one (the
/// CPU op's message). Call before uploading ids the kernels will index with.
inline void check_embedding_ids(const char* op, const std::vector<std::int64_t>& ids, Index rows) {
  for (std::size_t k = 0; k < ids.size(); ++k)
    if (ids[k] < 0 || ids[k] >= static_cast<std::int64_t>(rows))
      throw value_error(std::string(op) + ": id " + std::to_string(ids[k]) + " at position " + std::to_string(k) +
                        " is outside [0, V) for V = " + std::to_string(rows));
}

/// out = W[ids] (+ P[pos]).  W: (V, C)  P: (T_max, C) or absent (pos then unused)  out: (N, C);
/// ids, pos: out.rows device ids, already validated (check_embedding_ids).
template <class T>
void embedding_forward(const Context& ctx, DeviceView<const T> W, const std::int64_t* ids, DeviceView<const T> P,
                       const std::int64_t* pos, DeviceView<T> out) {
  const char* op = "cuda::embedding_forward";
  if (W.cols != out.cols) throw_shape(op, "table", W.rows, W.cols, "out", out.rows, out.cols);
  if (P.present() && P.cols != out.cols) throw_shape(op, "position table", P.rows, P.cols, "out", out.rows, out.cols);
  if (out.size() == 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(out.size()), detail::kFlatThreads, 0, ctx.stream, detail::embedding_forward_kernel<T>)(
      W.data, ids, P.present() ? P.data : nullptr, pos, out.size(), out.cols, out.data);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

/// dW += scatter of g by ids: dW_v += Σ_{i: ids_i = v} g_i.  g: (N, C)  dW: (V, C); ids: N device ids.
template <class T>
void embedding_backward(const Context& ctx, DeviceView<const T> g, const std::int64_t* ids, DeviceView<T> dW) {
  if (g.cols != dW.cols) throw_shape("cuda::embedding_backward", "g", g.rows, g.cols, "dW", dW.rows, dW.cols);
  if (dW.size() == 0 || g.rows == 0) return;
  HYPLORA_LAUNCH(detail::flat_blocks(dW.size()), detail::kFlatThreads, 0, ctx.stream, detail::embedding_backward_kernel<T>)(
      g.data, ids, g.rows, dW.rows, dW.cols, dW.data);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

}  // namespace hyplora::cuda
