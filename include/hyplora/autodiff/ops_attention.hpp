// hyplora/autodiff/ops_attention.hpp — fused causal multi-head self-attention.
//
// q, k, v: (B·T, C), C = H·Dh; token b·T + t, head h occupies columns [h·Dh, (h+1)·Dh).
// Per (b, h), with Q, K, V the (T, Dh) head slices and s = 1/√Dh:
//   S = s·Q Kᵀ (entries j > i masked),  P = softmax_rows(S),  O = P V
// Backward, with G = ∂L/∂O:
//   dV = Pᵀ G,  dP = G Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = s·dS K,  dK = s·dSᵀ Q
// P is lower triangular, so O, dV, dQ and dK are triangular × dense products (half the flops).
// Head slices are read and written in place through strided Maps (no copies). The (b, h) pairs
// write disjoint slices, so they run in parallel under OpenMP; each pair's arithmetic is the
// same whatever the thread count, so results do not depend on it.
//
// Saved for backward: P for every (b, h) in saved[0] (B·H·T, T). When no gradient is needed
// (inference) only one (T, T) scratch per thread is kept instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::check_same_tape
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

template <class T>
using HeadMap = Eigen::Map<MatrixR<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstHeadMap = Eigen::Map<const MatrixR<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// parents: q, k, v; ints = {B, T, H}; saved[0] = P (B·H·T, T); saved[1] = dS scratch per thread.
template <class T>
void causal_self_attention_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int iq = n.parents[0], ik = n.parents[1], iv = n.parents[2];
  const bool gq = t.needs_grad(iq), gk = t.needs_grad(ik), gv = t.needs_grad(iv);
  const Index B = static_cast<Index>(n.ints[0]), Tn = static_cast<Index>(n.ints[1]),
              H = static_cast<Index>(n.ints[2]);
  const Index C = n.cols, Dh = C / H, BH = B * H;
  if (Dh == 0 || Tn == 0) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(Dh));
  const T* q = t.value(iq).data();
  const T* k = t.value(ik).data();
  const T* v = t.value(iv).data();
  const T* g = t.grad_acc(id).data();
  // grad_acc zeroes lazily and mutates node state: touch every buffer before the parallel loop.
  T* dq = gq ? t.grad_acc(iq).data() : nullptr;
  T* dk = gk ? t.grad_acc(ik).data() : nullptr;
  T* dv = gv ? t.grad_acc(iv).data() : nullptr;
  const T* P = n.saved[0].data();
  if (n.saved.size() < 2) n.saved.resize(2);
  const int nthreads = attention_max_threads();
  if (gq || gk) n.saved[1].resize(static_cast<Index>(nthreads) * Tn, Tn);
  T* scratch = n.saved[1].data();
  const Eigen::OuterStride<> stride(C);

#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (BH > 1)
#endif
  for (Index bh = 0; bh < BH; ++bh) {
    const Index b = bh / H, h = bh % H;
    const Index off = b * Tn * C + h * Dh;
    ConstHeadMap<T> Qh(q + off, Tn, Dh, stride), Kh(k + off, Tn, Dh, stride), Vh(v + off, Tn, Dh, stride);
    ConstHeadMap<T> G(g + off, Tn, Dh, stride);
    Eigen::Map<const MatrixR<T>> Ph(P + bh * Tn * Tn, Tn, Tn);
    if (gv) {
      HeadMap<T> dVh(dv + off, Tn, Dh, stride);
      dVh.noalias() += Ph.transpose().template triangularView<Eigen::Upper>() * G;
    }
    if (!gq && !gk) continue;
    Eigen::Map<MatrixR<T>> dS(scratch + static_cast<Index>(attention_thread_id()) * Tn * Tn, Tn, Tn);
    dS.noalias() = G * Vh.transpose();  // dP; only its lower triangle is used
    for (Index i = 0; i < Tn; ++i) {
      auto dSi = dS.row(i).head(i + 1).array();
      const auto Pi = Ph.row(i).head(i + 1).array();
      const T r = (dSi * Pi).sum();
      dSi = scale * Pi * (dSi - r);  // s·dS, so the products below need no extra scaling
    }
    if (gq) {
      HeadMap<T> dQh(dq + off, Tn, Dh, stride);
      dQh.noalias() += dS.template triangularView<Eigen::Lower>() * Kh;
    }
    if (gk) {
      HeadMap<T> dKh(dk + off, Tn, Dh, stride);
      dKh.noalias() += dS.transpose().template triangularView<Eigen::Upper>() * Qh;
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
  const Eigen::OuterStride<> stride(C);

#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (BH > 1)
#endif
  for (Index bh = 0; bh < BH; ++bh) {
    const Index b = bh / H, h = bh % H;
    const Index off = b * Tn * C + h * Dh;
    detail::ConstHeadMap<T> Qh(qp + off, Tn, Dh, stride), Kh(kp + off, Tn, Dh, stride), Vh(vp + off, Tn, Dh, stride);
    detail::HeadMap<T> Oh(out + off, Tn, Dh, stride);
    const Index slot = keep ? bh : static_cast<Index>(detail::attention_thread_id());
    Eigen::Map<MatrixR<T>> Ph(P + slot * Tn * Tn, Tn, Tn);
    Ph.noalias() = Qh * Kh.transpose();
    for (Index i = 0; i < Tn; ++i) {
      auto row = Ph.row(i).head(i + 1).array();
      const T m = row.maxCoeff();
      row = (scale * (row - m)).exp();  // the row max of S is scale·m (scale > 0)
      row /= row.sum();
      Ph.row(i).tail(Tn - i - 1).setZero();
    }
    Oh.noalias() = Ph.template triangularView<Eigen::Lower>() * Vh;
  }
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
