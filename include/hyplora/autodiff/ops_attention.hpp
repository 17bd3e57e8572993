// hyplora/autodiff/ops_attention.hpp — fused causal multi-head self-attention.
//
// q, k, v: (B·T, C), C = H·Dh; token b·T + t, head h occupies columns [h·Dh, (h+1)·Dh).
// Per (b, h), with Q, K, V the (T, Dh) head slices and s = 1/√Dh:
//   S = s·Q Kᵀ (entries j > i masked),  P = softmax_rows(S),  O = P V
// Backward, with G = ∂L/∂O:
//   dV = Pᵀ G,  dP = G Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = s·dS K,  dK = s·dSᵀ Q
// P is lower triangular, so O, dV, dQ and dK are triangular × dense products: they, and the
// scores S and dP, are computed block by block on the blocks on or below the diagonal only (see
// kAttentionBlock). Head slices are read and written in place as strided GEMM operands (no
// copies). The (b, h) pairs write disjoint slices, so they run in parallel under OpenMP; each
// pair's arithmetic is the same whatever the thread count, so results do not depend on it.
//
// Saved for backward: P for every (b, h) in saved[0] (B·H·T, T). When no gradient is needed
// (inference) only one (T, T) scratch per thread is kept instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::check_same_tape
#include "hyplora/autodiff/ops_matmul.hpp"       // detail::gemm
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hyplora::ad {

namespace detail {

inline int attention_max_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

inline int attention_thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Causal products block by block: rows and columns are cut into blocks of kAttentionBlock, and
// only the blocks on or below the diagonal are multiplied, each as one plain GEMM (detail::gemm,
// BLAS when built with it). Row block I of S = Q Kᵀ and of O = P V needs the column prefix
// [0, end of I); column block J of dV = Pᵀ G and dK = dSᵀ Q needs the row suffix [start of J, T).
// With T = 128 and blocks of 32 that is 10 of 16 blocks (62.5% of the dense flops; the exact
// triangle is 50%), with no copy of P or dS: Eigen's triangular products (BLAS trmm) first copy
// the triangular operand and the result, and callgrind put them at ~15% of a GPT step. Entries
// above the diagonal inside a diagonal block are set to 0 in P and dS, so the block products
// are exact; entries of blocks above the diagonal are never read or written.
inline constexpr Index kAttentionBlock = 32;

/// Row (or column) range of block I: [begin, begin + size).
struct AttnBlock {
  Index begin, size;
};
inline AttnBlock attention_block(Index I, Index Tn) {
  const Index b = I * kAttentionBlock;
  return AttnBlock{b, std::min(kAttentionBlock, Tn - b)};
}

// parents: q, k, v; ints = {B, T, H}; saved[0] = P (B·H·T, T); saved[1] = dS scratch per thread.
// For each (b, h), with Q, K, V, G the (T, Dh) head slices (row stride C) and P, dS (T, T):
//   row block I:    dP = G_I V_{0:e}ᵀ, dS = s·P ⊙ (dP − rowsum(dP ⊙ P)), dQ_I = dS_{I, 0:e} K_{0:e}
//   column block J: dV_J = P_{b:T, J}ᵀ G_{b:T},  dK_J = dS_{b:T, J}ᵀ Q_{b:T}
// (e = end of block I, b = start of block J). Every gradient row is written by one GEMM, so a
// fresh gradient buffer is assigned (beta = 0, Tape::grad_out) instead of zero-filled and added.
template <class T>
void causal_self_attention_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int iq = n.parents[0], ik = n.parents[1], iv = n.parents[2];
  const bool gq = t.needs_grad(iq), gk = t.needs_grad(ik), gv = t.needs_grad(iv);
  const Index B = static_cast<Index>(n.ints[0]), Tn = static_cast<Index>(n.ints[1]),
              H = static_cast<Index>(n.ints[2]);
  const Index C = n.cols, Dh = C / H, BH = B * H;
  if (Dh == 0 || Tn == 0) return;  // then the gradients are empty
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  const T* q = t.value(iq).data();
  const T* k = t.value(ik).data();
  const T* v = t.value(iv).data();
  const T* g = t.grad_acc(id).data();
  // grad_out mutates node state: fetch every buffer before the parallel loop. The order q, v, k
  // is the order in which each (b, h) first writes them (dQ in the row-block loop, then dV before
  // dK per column block), so when q, k, v are one node the first write assigns and later ones add.
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  T bq = T(1), bk = T(1), bv = T(1);  // GEMM beta: 0 into a fresh buffer
  if (gq) {
    auto o = t.grad_out(iq);
    dq = o.view.data();
    bq = o.fresh ? T(0) : T(1);
  }
  if (gv) {
    auto o = t.grad_out(iv);
    dv = o.view.data();
    bv = o.fresh ? T(0) : T(1);
  }
  if (gk) {
    auto o = t.grad_out(ik);
    dk = o.view.data();
    bk = o.fresh ? T(0) : T(1);
  }
  const T* P = n.saved[0].data();
  if (n.saved.size() < 2) n.saved.resize(2);
  const int nthreads = attention_max_threads();
  if (gq || gk) n.saved[1].resize(static_cast<Index>(nthreads) * Tn, Tn);
  T* scratch = n.saved[1].data();
  const Index nb = (Tn + kAttentionBlock - 1) / kAttentionBlock;

#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (BH > 1)
#endif
  for (Index bh = 0; bh < BH; ++bh) {
    const Index b = bh / H, h = bh % H;
    const Index off = b * Tn * C + h * Dh;
    const T* Ph = P + bh * Tn * Tn;
    const T* Gh = g + off;
    T* dS = (gq || gk) ? scratch + static_cast<Index>(attention_thread_id()) * Tn * Tn : nullptr;
    if (dS) {
      for (Index I = 0; I < nb; ++I) {
        const AttnBlock r = attention_block(I, Tn);
        const Index e = r.begin + r.size;
        T* dSI = dS + r.begin * Tn;
        gemm<T>(r.size, e, Dh, T(1), Gh + r.begin * C, C, false, v + off, C, true, T(0), dSI, Tn);  // dP
        for (Index i = r.begin; i < e; ++i) {
          Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> dSi(dS + i * Tn, i + 1);
          const Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>> Pi(Ph + i * Tn, i + 1);
          const T rs = (dSi * Pi).sum();
          dSi = scale * Pi * (dSi - rs);  // s·dS: the products below need no extra scaling
          std::fill(dS + i * Tn + i + 1, dS + i * Tn + e, T(0));
        }
        if (gq) gemm<T>(r.size, Dh, e, T(1), dSI, Tn, false, k + off, C, false, bq, dq + off + r.begin * C, C);
      }
    }
    for (Index J = 0; J < nb; ++J) {
      const AttnBlock c = attention_block(J, Tn);
      const Index depth = Tn - c.begin;
      if (gv)
        gemm<T>(c.size, Dh, depth, T(1), Ph + c.begin * Tn + c.begin, Tn, true, Gh + c.begin * C, C, false, bv,
                dv + off + c.begin * C, C);
      if (gk)
        gemm<T>(c.size, Dh, depth, T(1), dS + c.begin * Tn + c.begin, Tn, true, q + off + c.begin * C, C, false, bk,
                dk + off + c.begin * C, C);
    }
  }
}

}  // namespace detail

/// Causal multi-head self-attention, fused (see the file comment for the math).
/// q, k, v: (B·T, C) with C = H·Dh  out: (B·T, C); scale 1/√Dh; token i attends to j <= i.
/// Throws shape_error when q, k, v differ in shape, have other than batch·seq_len rows, or C is
/// not divisible by heads; value_error for batch or seq_len < 0 or heads < 1.
template <class T>
Var<T> causal_self_attention(Var<T> q, Var<T> k, Var<T> v, Index batch, Index seq_len, Index heads) {
  const char* op = "causal_self_attention";
  if (batch < 0 || seq_len < 0 || heads < 1)
    throw value_error(std::string(op) + ": need batch >= 0, seq_len >= 0, heads >= 1; got batch " +
                      std::to_string(batch) + ", seq_len " + std::to_string(seq_len) + ", heads " +
                      std::to_string(heads));
  detail::check_same_tape(op, q, k);
  detail::check_same_tape(op, q, v);
  if (k.shape() != q.shape()) throw_shape(op, "q", q.rows(), q.cols(), "k", k.rows(), k.cols());
  if (v.shape() != q.shape()) throw_shape(op, "q", q.rows(), q.cols(), "v", v.rows(), v.cols());
  if (q.rows() != batch * seq_len)
    throw_shape(op, "q", q.rows(), q.cols(), "(batch·seq_len, C)", batch * seq_len, q.cols());
  if (q.cols() % heads != 0)
    throw shape_error(std::string(op) + ": q " + shape_str(q.rows(), q.cols()) + " has C = " +
                      std::to_string(q.cols()) + " columns, not divisible by heads = " + std::to_string(heads));

  Tape<T>& t = *q.tape;
  const Index B = batch, Tn = seq_len, H = heads, C = q.cols(), Dh = C / H, BH = B * H;
  const int id = t.push("causal_self_attention", q.rows(), C, &detail::causal_self_attention_backward<T>,
                        {q.id, k.id, v.id});
  auto& n = t.node(id);
  n.ints.assign({static_cast<std::int64_t>(B), static_cast<std::int64_t>(Tn), static_cast<std::int64_t>(H)});
  if (n.saved.empty()) n.saved.resize(1);
  const bool keep = n.needs_grad;
  const int nthreads = detail::attention_max_threads();
  n.saved[0].resize(keep ? BH * Tn : static_cast<Index>(nthreads) * Tn, Tn);
  if (Dh == 0 || Tn == 0) return Var<T>{&t, id};

  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  const T* qp = t.value(q.id).data();
  const T* kp = t.value(k.id).data();
  const T* vp = t.value(v.id).data();
  T* out = t.value(id).data();
  T* P = n.saved[0].data();
  const Index nb = (Tn + detail::kAttentionBlock - 1) / detail::kAttentionBlock;

#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (BH > 1)
#endif
  for (Index bh = 0; bh < BH; ++bh) {
    const Index b = bh / H, h = bh % H;
    const Index off = b * Tn * C + h * Dh;
    const Index slot = keep ? bh : static_cast<Index>(detail::attention_thread_id());
    T* Ph = P + slot * Tn * Tn;
    for (Index I = 0; I < nb; ++I) {  // row block I: S and P on [0, e), then O_I (see detail)
      const detail::AttnBlock r = detail::attention_block(I, Tn);
      const Index e = r.begin + r.size;
      T* PI = Ph + r.begin * Tn;
      detail::gemm<T>(r.size, e, Dh, scale, qp + off + r.begin * C, C, false, kp + off, C, true, T(0), PI, Tn);
      for (Index i = r.begin; i < e; ++i) {
        Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> row(Ph + i * Tn, i + 1);
        row = (row - row.maxCoeff()).exp();
        row /= row.sum();
        std::fill(Ph + i * Tn + i + 1, Ph + i * Tn + e, T(0));  // masked entries of the diagonal block
      }
      detail::gemm<T>(r.size, Dh, e, T(1), PI, Tn, false, vp + off, C, false, T(0), out + off + r.begin * C, C);
    }
  }
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
