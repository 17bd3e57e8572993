// hyplora/cuda/kernels/flash_attention.cuh — fused (flash-style) causal multi-head self-attention
// forward and backward on the device, float and double. Same layout and math as the simple
// kernels (kernels/attention.cuh) and the CPU reference ad::causal_self_attention:
//   q, k, v, out: (B·T, C), C = H·Dh; token b·T + t, head h at columns [h·Dh, (h+1)·Dh); Dh ≤ 128.
//   Per (b, h), with s = 1/√Dh:  S = s·Q Kᵀ (j > i masked),  P = softmax_rows(S),  O = P V;
//   backward with G = dO = ∂L/∂O:  D_i = rowsum(dO_i ⊙ O_i),  P_ij = exp(S_ij − L_i),
//   dV = Pᵀ dO,  dS = P ⊙ (dO Vᵀ − D),  dQ = s·dS K,  dK = s·dSᵀ Q
//   (D_i = Σ_j P_ij dP_ij because O_i = Σ_j P_ij V_j, so dS is the softmax backward of the
//   simple kernels; L_i = m_i + log l_i is the row's log-sum-exp).
//
// The T×T matrices are never formed. Forward: one block per (b·h, tile of BT query rows) walks the
// key tiles up to the causal diagonal with an online softmax — a running max m and sum l per row;
// when m grows, the partial sum and the output accumulator are rescaled by exp(m_old − m_new),
// the same max-subtracted exp as the CPU softmax — and saves only L (B·H, T). Backward
// (FlashAttention-2 recomputation, deterministic): a row kernel for D; then one block per key
// tile accumulates dK, dV over the query tiles on and below the diagonal, and one block per
// query tile accumulates dQ over the key tiles up to the diagonal. Every gradient element is
// summed by one thread in a fixed order and written once (read–add–write): no atomics, so the
// results are bit-identical run to run. P and dS are recomputed in both backward passes (twice
// the score work of a single pass with atomic dQ, the price of determinism).
//
// Tiles: BT query rows × BT keys per step, held in static shared memory with rows padded to
// Dh + 1 (no bank conflicts when Dh is a multiple of 32); BT is the largest of 32, 16, 8 whose
// tiles fit kFlashSmemBudget for the head-dim class DMAX ∈ {32, 64, 128} chosen at run time.
// Inner products over d run to the runtime Dh; accumulators are per-thread register arrays.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/kernels/attention.cuh"  // detail::check_attention_args (the same checks and messages)

namespace hyplora::cuda {

/// Largest head dimension Dh = C / H the flash kernels take (the shared-memory tiles are sized for it).
inline constexpr Index kFlashMaxHeadDim = 128;

/// What the forward leaves for the backward. q, k, v and out are views, not copies: the caller
/// keeps those tensors alive and unchanged until the backward has run (cuda::Graph does — node
/// values and the tensors a node reads stay until clear()). lse is the only saved state the
/// kernels write: B·H·T values of T, instead of the simple kernels' (B·H·T, T) probabilities.
template <class T>
struct FlashAttentionSaved {
  DeviceView<const T> q, k, v, out;  // (B·T, C) the forward's inputs and output (not owned)
  DeviceTensor<T> lse;               // (B·H, T) L_i = m_i + log l_i per query row
  DeviceTensor<T> delta;             // (B·H, T) backward scratch: D_i = rowsum(dO_i ⊙ O_i)
  /// Device bytes this struct owns (lse and the backward's delta scratch).
  std::size_t bytes() const { return lse.bytes() + delta.bytes(); }
};

namespace detail {

/// Threads per flash block (four warps).
inline constexpr int kFlashThreads = 128;
/// Static shared memory per block: under the 48 KB a block gets without opting in.
inline constexpr std::size_t kFlashSmemBudget = 46 * 1024;

// Forward tiles: Q (BT query rows), K then V in one buffer (BT key rows, V overwrites K once S
// is formed), the scores/probabilities (BT, BT) and the per-row m, l and rescale factor.
template <class T, int DMAX, int BT>
struct FlashFwdSmem {
  T q[BT * (DMAX + 1)];
  T kv[BT * (DMAX + 1)];
  T p[BT * (BT + 1)];
  T m[BT], l[BT], alpha[BT];
};

// Backward tiles: Q, dO (query rows), K, V (key rows), P and dS (BT, BT), L and D per query row.
template <class T, int DMAX, int BT>
struct FlashBwdSmem {
  T q[BT * (DMAX + 1)];
  T dout[BT * (DMAX + 1)];
  T k[BT * (DMAX + 1)];
  T v[BT * (DMAX + 1)];
  T p[BT * (BT + 1)];
  T ds[BT * (BT + 1)];
  T lse[BT], delta[BT];
};

template <class T, int DMAX>
constexpr int flash_fwd_tile() {
  return sizeof(FlashFwdSmem<T, DMAX, 32>) <= kFlashSmemBudget   ? 32
         : sizeof(FlashFwdSmem<T, DMAX, 16>) <= kFlashSmemBudget ? 16
                                                                 : 8;
}
template <class T, int DMAX>
constexpr int flash_bwd_tile() {
  return sizeof(FlashBwdSmem<T, DMAX, 32>) <= kFlashSmemBudget   ? 32
         : sizeof(FlashBwdSmem<T, DMAX, 16>) <= kFlashSmemBudget ? 16
                                                                 : 8;
}

// Rows [r0, r0 + BT) of one head of x (B·T, C) into a padded tile t[r·(Dh+1) + d]; rows ≥ T are 0.
// `base` is the offset of (token b·T, column h·Dh). Threads stride over the BT·Dh elements.
template <class T, int BT>
__device__ __forceinline__ void flash_load_tile(T* __restrict__ t, const T* __restrict__ x, std::int64_t base,
                                                std::int64_t r0, std::int64_t Tn, std::int64_t C, int Dh) {
  const int ld = Dh + 1;
  for (int e = static_cast<int>(threadIdx.x); e < BT * Dh; e += kFlashThreads) {
    const int r = e / Dh, d = e % Dh;
    const std::int64_t i = r0 + r;
    t[r * ld + d] = i < Tn ? x[base + i * C + d] : T(0);
  }
}

// Forward. Grid (B·H, ⌈T/BT⌉): block (bh, y) owns query tile it = ⌈T/BT⌉ − 1 − y (the longest
// tiles start first). Key tile jt ≤ it: jt < it is fully visible, jt = it is the diagonal tile
// (key j visible to row i iff j ≤ i); tiles past it are fully masked and skipped.
// Each thread owns the accumulator elements e = tid + a·kFlashThreads < BT·Dh (row e / Dh,
// column e % Dh) for the whole kernel; row r's m, l are updated by thread r alone.
template <class T, int DMAX, int BT>
__global__ void __launch_bounds__(kFlashThreads)
    flash_attention_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                   T* __restrict__ out, T* __restrict__ lse, std::int64_t Tn, std::int64_t H, int Dh,
                                   T scale) {
  __shared__ FlashFwdSmem<T, DMAX, BT> sm;
  constexpr int kAcc = (BT * DMAX + kFlashThreads - 1) / kFlashThreads;
  constexpr int LP = BT + 1;  // row stride of p
  const int tid = static_cast<int>(threadIdx.x), ld = Dh + 1;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H, C = H * Dh;
  const std::int64_t it = static_cast<std::int64_t>(gridDim.y) - 1 - blockIdx.y;
  const std::int64_t i0 = it * BT;
  const std::int64_t base = b * Tn * C + h * Dh;

  flash_load_tile<T, BT>(sm.q, q, base, i0, Tn, C, Dh);
  if (tid < BT) {
    sm.m[tid] = neg_inf<T>();
    sm.l[tid] = T(0);
  }
  T acc[kAcc];
#pragma unroll
  for (int a = 0; a < kAcc; ++a) acc[a] = T(0);

  for (std::int64_t jt = 0; jt <= it; ++jt) {
    const std::int64_t j0 = jt * BT;
    __syncthreads();  // Q, m, l written (first pass); the last pass's readers of kv (V) and p are done
    flash_load_tile<T, BT>(sm.kv, k, base, j0, Tn, C, Dh);
    __syncthreads();
    // S_rc = s·q_r·k_c for visible (i, j); −∞ marks a masked entry (j > i, or a padding row i ≥ T).
    for (int e = tid; e < BT * BT; e += kFlashThreads) {
      const int r = e / BT, c = e % BT;
      const std::int64_t i = i0 + r, j = j0 + c;
      T s = neg_inf<T>();
      if (i < Tn && j <= i) {
        T dot = T(0);
        for (int d = 0; d < Dh; ++d) dot += sm.q[r * ld + d] * sm.kv[c * ld + d];
        s = scale * dot;
      }
      sm.p[r * LP + c] = s;
    }
    __syncthreads();  // S complete, and every reader of K is done: V may overwrite kv
    if (tid < BT) {   // online softmax of row r over this tile
      const int r = tid;
      const T m_old = sm.m[r];
      T mx = m_old;
      for (int c = 0; c < BT; ++c) {
        const T s = sm.p[r * LP + c];
        mx = s > mx ? s : mx;
      }
      T alpha = T(1), sum = T(0);
      if (mx == neg_inf<T>()) {  // nothing visible yet (only padding rows i ≥ T): P = 0, keep the state
        for (int c = 0; c < BT; ++c) sm.p[r * LP + c] = T(0);
      } else {
        alpha = m_old == neg_inf<T>() ? T(0) : static_cast<T>(exp(m_old - mx));  // l = 0, acc = 0 before
        for (int c = 0; c < BT; ++c) {
          const T s = sm.p[r * LP + c];
          const T e = s == neg_inf<T>() ? T(0) : static_cast<T>(exp(s - mx));
          sm.p[r * LP + c] = e;
          sum += e;
        }
      }
      sm.m[r] = mx;
      sm.l[r] = alpha * sm.l[r] + sum;
      sm.alpha[r] = alpha;
    }
    flash_load_tile<T, BT>(sm.kv, v, base, j0, Tn, C, Dh);  // disjoint from p, m, l, alpha
    __syncthreads();
    // acc_rd ← alpha_r·acc_rd + Σ_c P_rc V_cd (c ascending: a fixed order).
#pragma unroll
    for (int a = 0; a < kAcc; ++a) {
      const int e = tid + a * kFlashThreads;
      if (e < BT * Dh) {
        const int r = e / Dh, d = e % Dh;
        T x = acc[a] * sm.alpha[r];
#pragma unroll
        for (int c = 0; c < BT; ++c) x += sm.p[r * LP + c] * sm.kv[c * ld + d];
        acc[a] = x;
      }
    }
  }
  // m and l were last written before the barrier that preceded the final accumulation.
#pragma unroll
  for (int a = 0; a < kAcc; ++a) {
    const int e = tid + a * kFlashThreads;
    if (e < BT * Dh) {
      const int r = e / Dh, d = e % Dh;
      const std::int64_t i = i0 + r;
      if (i < Tn) out[base + i * C + d] = acc[a] / sm.l[r];  // l ≥ 1: row i sees key i, exp(0) at its max
    }
  }
  if (tid < BT && i0 + tid < Tn) lse[bh * Tn + i0 + tid] = sm.m[tid] + static_cast<T>(log(sm.l[tid]));
}

// D_i = Σ_d dO_id O_id for every (token, head): one warp per pair, lanes stride over d, a fixed
// shuffle tree. Pairs w = row·H + h of B·T·H; delta[(b·H + h)·T + t]. Launch flat_blocks(32·pairs)
// blocks of kFlatThreads threads (the grid-stride loop is warp-uniform, so every shuffle is full).
template <class T>
__global__ void flash_attention_delta_kernel(const T* __restrict__ dout, const T* __restrict__ out,
                                             T* __restrict__ delta, std::int64_t pairs, std::int64_t Tn,
                                             std::int64_t H, int Dh) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (blockDim.x >> 5);
  const std::int64_t C = H * Dh;
  for (std::int64_t w = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) >> 5; w < pairs;
       w += warps) {
    const std::int64_t row = w / H, h = w % H;  // row = b·T + t
    const std::int64_t off = row * C + h * Dh;
    T s = T(0);
    for (int d = lane; d < Dh; d += 32) s += dout[off + d] * out[off + d];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) {
      const std::int64_t b = row / Tn, t = row % Tn;
      delta[(b * H + h) * Tn + t] = s;
    }
  }
}

// Recomputes P_rc and dS_rc = P_rc (dO_r·V_c − D_r) of query row r, key c of the loaded tiles
// (both 0 where masked). Shared by the two backward passes, so both see the same values.
template <class T, int DMAX, int BT>
__device__ __forceinline__ void flash_p_ds(const FlashBwdSmem<T, DMAX, BT>& sm, int r, int c, std::int64_t i,
                                           std::int64_t j, std::int64_t Tn, int Dh, T scale, T& p, T& ds) {
  p = T(0);
  ds = T(0);
  if (i < Tn && j <= i) {
    const int ld = Dh + 1;
    T s = T(0), dp = T(0);
    for (int d = 0; d < Dh; ++d) {
      s += sm.q[r * ld + d] * sm.k[c * ld + d];
      dp += sm.dout[r * ld + d] * sm.v[c * ld + d];
    }
    p = static_cast<T>(exp(scale * s - sm.lse[r]));
    ds = p * (dp - sm.delta[r]);
  }
}

// Query rows [i0, i0 + BT) of Q, dO, L, D into shared memory (padding rows: 0).
template <class T, int DMAX, int BT>
__device__ __forceinline__ void flash_load_query_side(FlashBwdSmem<T, DMAX, BT>& sm, const T* __restrict__ q,
                                                      const T* __restrict__ dout, const T* __restrict__ lse,
                                                      const T* __restrict__ delta, std::int64_t bh, std::int64_t base,
                                                      std::int64_t i0, std::int64_t Tn, std::int64_t C, int Dh) {
  flash_load_tile<T, BT>(sm.q, q, base, i0, Tn, C, Dh);
  flash_load_tile<T, BT>(sm.dout, dout, base, i0, Tn, C, Dh);
  const int tid = static_cast<int>(threadIdx.x);
  if (tid < BT) {
    const std::int64_t i = i0 + tid;
    sm.lse[tid] = i < Tn ? lse[bh * Tn + i] : T(0);
    sm.delta[tid] = i < Tn ? delta[bh * Tn + i] : T(0);
  }
}

// dK, dV. Grid (B·H, ⌈T/BT⌉): block (bh, jt) owns key tile jt and walks query tiles it = jt …
// (tiles before jt only hold rows i < j: fully masked). Thread-owned elements e = tid +
// a·kFlashThreads < BT·Dh (key row e / Dh, column e % Dh); sums over query rows ascending.
// dk, dv: (B·T, C), accumulated (+=) when non-null; they may be the same buffer (the same thread
// adds both of an element, in order).
template <class T, int DMAX, int BT>
__global__ void __launch_bounds__(kFlashThreads)
    flash_attention_backward_kv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                       const T* __restrict__ dout, const T* __restrict__ lse,
                                       const T* __restrict__ delta, T* dk, T* dv, std::int64_t Tn, std::int64_t H,
                                       int Dh, T scale) {
  __shared__ FlashBwdSmem<T, DMAX, BT> sm;
  constexpr int kAcc = (BT * DMAX + kFlashThreads - 1) / kFlashThreads;
  constexpr int LP = BT + 1;
  const int tid = static_cast<int>(threadIdx.x), ld = Dh + 1;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H, C = H * Dh;
  const std::int64_t jt = blockIdx.y, nt = gridDim.y;
  const std::int64_t j0 = jt * BT;
  const std::int64_t base = b * Tn * C + h * Dh;

  flash_load_tile<T, BT>(sm.k, k, base, j0, Tn, C, Dh);
  flash_load_tile<T, BT>(sm.v, v, base, j0, Tn, C, Dh);
  T adk[kAcc], adv[kAcc];
#pragma unroll
  for (int a = 0; a < kAcc; ++a) adk[a] = adv[a] = T(0);

  for (std::int64_t it = jt; it < nt; ++it) {
    const std::int64_t i0 = it * BT;
    __syncthreads();  // K, V loaded (first pass); the last pass's readers of q, dout, p, ds are done
    flash_load_query_side<T, DMAX, BT>(sm, q, dout, lse, delta, bh, base, i0, Tn, C, Dh);
    __syncthreads();
    for (int e = tid; e < BT * BT; e += kFlashThreads) {
      const int r = e / BT, c = e % BT;
      T p, ds;
      flash_p_ds<T, DMAX, BT>(sm, r, c, i0 + r, j0 + c, Tn, Dh, scale, p, ds);
      sm.p[r * LP + c] = p;
      sm.ds[r * LP + c] = ds;
    }
    __syncthreads();
    // dV_cd += Σ_r P_rc dO_rd,  dK_cd += Σ_r dS_rc Q_rd (s applied once at the end).
#pragma unroll
    for (int a = 0; a < kAcc; ++a) {
      const int e = tid + a * kFlashThreads;
      if (e < BT * Dh) {
        const int c = e / Dh, d = e % Dh;
        T xv = adv[a], xk = adk[a];
#pragma unroll
        for (int r = 0; r < BT; ++r) {
          xv += sm.p[r * LP + c] * sm.dout[r * ld + d];
          xk += sm.ds[r * LP + c] * sm.q[r * ld + d];
        }
        adv[a] = xv;
        adk[a] = xk;
      }
    }
  }
#pragma unroll
  for (int a = 0; a < kAcc; ++a) {
    const int e = tid + a * kFlashThreads;
    if (e < BT * Dh) {
      const int c = e / Dh, d = e % Dh;
      const std::int64_t j = j0 + c;
      if (j < Tn) {
        const std::int64_t at = base + j * C + d;
        if (dk) dk[at] += scale * adk[a];
        if (dv) dv[at] += adv[a];
      }
    }
  }
}

// dQ. Grid (B·H, ⌈T/BT⌉): block (bh, y) owns query tile it = ⌈T/BT⌉ − 1 − y and walks key tiles
// jt = 0 … it. Thread-owned elements (query row e / Dh, column e % Dh); sums over keys ascending.
template <class T, int DMAX, int BT>
__global__ void __launch_bounds__(kFlashThreads)
    flash_attention_backward_q_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                      const T* __restrict__ dout, const T* __restrict__ lse,
                                      const T* __restrict__ delta, T* __restrict__ dq, std::int64_t Tn,
                                      std::int64_t H, int Dh, T scale) {
  __shared__ FlashBwdSmem<T, DMAX, BT> sm;
  constexpr int kAcc = (BT * DMAX + kFlashThreads - 1) / kFlashThreads;
  constexpr int LP = BT + 1;
  const int tid = static_cast<int>(threadIdx.x), ld = Dh + 1;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H, C = H * Dh;
  const std::int64_t it = static_cast<std::int64_t>(gridDim.y) - 1 - blockIdx.y;
  const std::int64_t i0 = it * BT;
  const std::int64_t base = b * Tn * C + h * Dh;

  flash_load_query_side<T, DMAX, BT>(sm, q, dout, lse, delta, bh, base, i0, Tn, C, Dh);
  T adq[kAcc];
#pragma unroll
  for (int a = 0; a < kAcc; ++a) adq[a] = T(0);

  for (std::int64_t jt = 0; jt <= it; ++jt) {
    const std::int64_t j0 = jt * BT;
    __syncthreads();  // query side loaded (first pass); the last pass's readers of k, ds are done
    flash_load_tile<T, BT>(sm.k, k, base, j0, Tn, C, Dh);
    flash_load_tile<T, BT>(sm.v, v, base, j0, Tn, C, Dh);
    __syncthreads();
    for (int e = tid; e < BT * BT; e += kFlashThreads) {
      const int r = e / BT, c = e % BT;
      T p, ds;
      flash_p_ds<T, DMAX, BT>(sm, r, c, i0 + r, j0 + c, Tn, Dh, scale, p, ds);
      sm.ds[r * LP + c] = ds;
    }
    __syncthreads();
    // dQ_rd += Σ_c dS_rc K_cd.
#pragma unroll
    for (int a = 0; a < kAcc; ++a) {
      const int e = tid + a * kFlashThreads;
      if (e < BT * Dh) {
        const int r = e / Dh, d = e % Dh;
        T x = adq[a];
#pragma unroll
        for (int c = 0; c < BT; ++c) x += sm.ds[r * LP + c] * sm.k[c * ld + d];
        adq[a] = x;
      }
    }
  }
#pragma unroll
  for (int a = 0; a < kAcc; ++a) {
    const int e = tid + a * kFlashThreads;
    if (e < BT * Dh) {
      const int r = e / Dh, d = e % Dh;
      const std::int64_t i = i0 + r;
      if (i < Tn) dq[base + i * C + d] += scale * adq[a];
    }
  }
}

/// True when the two views share any byte (absent or empty views share none).
template <class A, class B>
bool views_overlap(const DeviceView<A>& a, const DeviceView<B>& b) {
  if (!a.present() || !b.present() || a.size() == 0 || b.size() == 0) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a.data), pb = reinterpret_cast<std::uintptr_t>(b.data);
  const auto na = static_cast<std::uintptr_t>(a.size()) * sizeof(A);
  const auto nb = static_cast<std::uintptr_t>(b.size()) * sizeof(B);
  return pa < pb + nb && pb < pa + na;
}

/// The grid (B·H, ⌈T/BT⌉) of the flash kernels; value_error when it exceeds CUDA's grid limits.
inline dim3 flash_grid(const char* op, Index BH, Index Tn, int BT) {
  const Index nt = (Tn + BT - 1) / BT;
  if (BH > 2147483647 || nt > 65535)
    throw value_error(std::string(op) + ": batch·heads = " + std::to_string(BH) + " (at most 2^31 − 1) or " +
                      std::to_string(nt) + " tiles of " + std::to_string(BT) + " rows for seq_len " +
                      std::to_string(Tn) + " (at most 65535) exceed the grid");
  return dim3(static_cast<unsigned>(BH), static_cast<unsigned>(nt));
}

/// value_error unless 0 < Dh ≤ kFlashMaxHeadDim (Dh = 0 is handled before: nothing to do).
inline void check_flash_head_dim(const char* op, Index C, Index H) {
  const Index Dh = C / H;
  if (Dh > kFlashMaxHeadDim)
    throw value_error(std::string(op) + ": head dim Dh = C / heads = " + std::to_string(C) + " / " + std::to_string(H) +
                      " = " + std::to_string(Dh) + " exceeds the supported maximum " +
                      std::to_string(kFlashMaxHeadDim));
}

template <class T, int DMAX>
void flash_forward_launch(const Context& ctx, const char* op, const T* q, const T* k, const T* v, T* out, T* lse,
                          Index BH, Index Tn, Index H, Index Dh, T scale) {
  constexpr int BT = flash_fwd_tile<T, DMAX>();
  static_assert(sizeof(FlashFwdSmem<T, DMAX, BT>) <= 48 * 1024, "flash forward tiles exceed 48 KB of shared memory");
  const dim3 grid = flash_grid(op, BH, Tn, BT);
  HYPLORA_LAUNCH(grid, kFlashThreads, 0, ctx.stream, flash_attention_forward_kernel<T, DMAX, BT>)(
      q, k, v, out, lse, Tn, H, static_cast<int>(Dh), scale);
  HYPLORA_CUDA_CHECK_LAUNCH();
}

template <class T, int DMAX>
void flash_backward_launch(const Context& ctx, const char* op, const FlashAttentionSaved<T>& s, const T* dout, T* dq,
                           T* dk, T* dv, Index BH, Index Tn, Index H, Index Dh, T scale) {
  constexpr int BT = flash_bwd_tile<T, DMAX>();
  static_assert(sizeof(FlashBwdSmem<T, DMAX, BT>) <= 48 * 1024, "flash backward tiles exceed 48 KB of shared memory");
  const dim3 grid = flash_grid(op, BH, Tn, BT);
  const int dh = static_cast<int>(Dh);
  if (dk || dv) {
    HYPLORA_LAUNCH(grid, kFlashThreads, 0, ctx.stream, flash_attention_backward_kv_kernel<T, DMAX, BT>)(
        s.q.data, s.k.data, s.v.data, dout, s.lse.data(), s.delta.data(), dk, dv, Tn, H, dh, scale);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
  if (dq) {
    HYPLORA_LAUNCH(grid, kFlashThreads, 0, ctx.stream, flash_attention_backward_q_kernel<T, DMAX, BT>)(
        s.q.data, s.k.data, s.v.data, dout, s.lse.data(), s.delta.data(), dq, Tn, H, dh, scale);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace detail

/// out = causal multi-head self-attention of (q, k, v), fused; saves views of q, k, v, out and
/// the per-row log-sum-exp for the backward.
///   q, k, v, out: (B·T, C), C = H·Dh, Dh ≤ kFlashMaxHeadDim; scale 1/√Dh; token i attends to j ≤ i.
/// Throws as causal_attention_forward (shape_error / value_error, the CPU op's messages), plus
/// value_error for Dh > 128 and for out overlapping q, k or v (blocks read q, k, v while others
/// write out).
template <class T>
void flash_attention_forward(const Context& ctx, DeviceView<const T> q, DeviceView<const T> k, DeviceView<const T> v,
                             Index B, Index Tn, Index H, DeviceView<T> out, FlashAttentionSaved<T>& s) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "flash attention: float or double");
  const char* op = "cuda::flash_attention_forward";
  detail::check_attention_args(op, q.rows, q.cols, k.rows, k.cols, v.rows, v.cols, B, Tn, H);
  if (out.rows != q.rows || out.cols != q.cols) throw_shape(op, "q", q.rows, q.cols, "out", out.rows, out.cols);
  detail::check_flash_head_dim(op, q.cols, H);
  for (const DeviceView<const T>* in : {&q, &k, &v})
    if (detail::views_overlap(*in, out))
      throw value_error(std::string(op) + ": out overlaps an input (q, k or v); it must be a separate tensor");
  const Index Dh = q.cols / H, BH = B * H;
  s.q = q;
  s.k = k;
  s.v = v;
  s.out = out;
  s.lse.resize(BH, Tn, *ctx.alloc);
  if (BH == 0 || Tn == 0 || Dh == 0) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  if (Dh <= 32)
    detail::flash_forward_launch<T, 32>(ctx, op, q.data, k.data, v.data, out.data, s.lse.data(), BH, Tn, H, Dh, scale);
  else if (Dh <= 64)
    detail::flash_forward_launch<T, 64>(ctx, op, q.data, k.data, v.data, out.data, s.lse.data(), BH, Tn, H, Dh, scale);
  else
    detail::flash_forward_launch<T, 128>(ctx, op, q.data, k.data, v.data, out.data, s.lse.data(), BH, Tn, H, Dh, scale);
}

/// Accumulates dq, dk, dv (+=; each may be absent) for G = ∂L/∂out (B·T, C), from the forward's
/// saved state (same B, T, H; q, k, v, out still alive and unchanged). Deterministic.
/// dq, dk, dv must not overlap G, q, k, v or out (value_error); they may overlap each other.
template <class T>
void flash_attention_backward(const Context& ctx, FlashAttentionSaved<T>& s, Index B, Index Tn, Index H,
                              DeviceView<const T> G, DeviceView<T> dq, DeviceView<T> dk, DeviceView<T> dv) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "flash attention: float or double");
  const char* op = "cuda::flash_attention_backward";
  detail::check_attention_args(op, G.rows, G.cols, G.rows, G.cols, G.rows, G.cols, B, Tn, H);
  const Index Dh = G.cols / H, BH = B * H;
  if (s.q.rows != G.rows || s.q.cols != G.cols) throw_shape(op, "G", G.rows, G.cols, "q (saved)", s.q.rows, s.q.cols);
  if (s.lse.rows() != BH || s.lse.cols() != Tn)
    throw_shape(op, "lse (saved)", s.lse.rows(), s.lse.cols(), "(B·H, T)", BH, Tn);
  detail::check_flash_head_dim(op, G.cols, H);
  for (const DeviceView<T>* d : {&dq, &dk, &dv}) {
    if (d->present() && (d->rows != G.rows || d->cols != G.cols))
      throw_shape(op, "G", G.rows, G.cols, "gradient", d->rows, d->cols);
    for (const DeviceView<const T>* in : {&G, &s.q, &s.k, &s.v, &s.out})
      if (detail::views_overlap(*d, *in))
        throw value_error(std::string(op) + ": a gradient overlaps G, q, k, v or out; it must be a separate tensor");
  }
  if (BH == 0 || Tn == 0 || Dh == 0) return;
  if (!dq.present() && !dk.present() && !dv.present()) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  s.delta.resize(BH, Tn, *ctx.alloc);
  const std::int64_t pairs = B * Tn * H;
  HYPLORA_LAUNCH(detail::flat_blocks(32 * pairs), detail::kFlatThreads, 0, ctx.stream, detail::flash_attention_delta_kernel<T>)(
      G.data, s.out.data, s.delta.data(), pairs, Tn, H, static_cast<int>(Dh));
  HYPLORA_CUDA_CHECK_LAUNCH();
  if (Dh <= 32)
    detail::flash_backward_launch<T, 32>(ctx, op, s, G.data, dq.data, dk.data, dv.data, BH, Tn, H, Dh, scale);
  else if (Dh <= 64)
    detail::flash_backward_launch<T, 64>(ctx, op, s, G.data, dq.data, dk.data, dv.data, BH, Tn, H, Dh, scale);
  else
    detail::flash_backward_launch<T, 128>(ctx, op, s, G.data, dq.data, dk.data, dv.data, BH, Tn, H, Dh, scale);
}

}  // namespace hyplora::cuda
