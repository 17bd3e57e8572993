// hyplora/autodiff/ops_dora.hpp — the two fused DoRA nodes (docs/hyplora.md §9):
//
//   dora_scale:          s = m / ‖V‖_row,   V = W0 + γ·B·A                       (1, D_out)
//   dora_linear_scaled:  z = s ⊙ (x·W0ᵀ + γ·(x_a·Aᵀ)·Bᵀ) + b  (x_a = x; PEFT's form with dropout)
//
// The scale never forms V. Per output row i the squared norm is a quadratic form in B_i
// (Eq. (260)), read off W0·Aᵀ (D_out, R) and A·Aᵀ (R, R); the backward (Eq. (262)–(266)) needs
// the same two products and c ⊙ B (D_out, R). So the node holds O(D_out·R + R² + D_in) numbers
// where the composed graph (nn::dora_scale_composed) holds several (D_out, D_in) matrices, and
// costs two (D_out, D_in, R) GEMMs per step instead of three plus ~10 passes over (D_out, D_in).
// A row whose form cancels (‖V_i‖² small against its terms, numerics<T>::dora_exact_below) is
// recomputed from V_i itself, streamed through a (1, D_in) scratch (Eq. (261)), so the result is
// as accurate as the composed graph in every row. ∂W0 (only when W0 itself needs a gradient) is
// the one (D_out, D_in) buffer, and it is the gradient's own.
//
// The data path is LoRA's GEMMs with s folded into B (s ⊙_row B, (D_out, R)); its backward
// (Eq. (267)–(269)) scales G by s through a (64, D_out) block scratch and, with x_a = x, reads
// the unscaled output back from z for ∂s, so a DoRA step holds LoRA's (N, D) tensors and no more.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "hyplora/autodiff/detail/column_chunks.hpp"
#include "hyplora/autodiff/detail/dora_rows.hpp"
#include "hyplora/autodiff/detail/linear_base.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"  // detail::parallel_for, check_same_tape
#include "hyplora/autodiff/ops_matmul.hpp"       // detail::gemm
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/numerics.hpp"

namespace hyplora::ad {

namespace detail {

// kQ = W0·Aᵀ (D_out, R); kM = A·Aᵀ (R, R); kRows (D_out, 3) per row: ‖V_i‖, exact flag (1 =
// recomputed from V_i), c_i. Scratch: kWork (D_out, R) holds B·M, then C = c ⊙ B (one buffer:
// B·M is recomputed in the backward, O(D_out·R²)); kK = Cᵀ·B (R, R); kV one row V_i (1, D_in).
enum DoraSaved { kDoraQ = 0, kDoraM = 1, kDoraWork = 2, kDoraRows = 3, kDoraK = 4, kDoraV = 5, kDoraCount = 6 };
enum DoraRow { kDoraNorm = 0, kDoraExact = 1, kDoraCoef = 2 };

/// V_i = W0_i + γ·B_i·A into v (1, D_in): one (1, R)·(R, D_in) GEMM on row i.
template <class T>
void dora_row(const T* W0i, const T* Bi, const T* A, Index r, Index d_in, T gamma, T* v) {
  for (Index k = 0; k < d_in; ++k) v[k] = W0i[k];
  gemm<T>(1, d_in, r, gamma, Bi, r, false, A, d_in, false, T(1), v, d_in);
}

// parents: W0, A, B, m; attrs: {γ}.
template <class T>
void dora_scale_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int W0 = n.parents[0], A = n.parents[1], B = n.parents[2], m = n.parents[3];
  const bool needW = t.needs_grad(W0), needA = t.needs_grad(A), needB = t.needs_grad(B), needM = t.needs_grad(m);
  const T gamma = static_cast<T>(n.attrs[0]);
  const auto ds = t.grad_acc(id);  // (1, D_out)
  const auto W = t.value(W0);      // (D_out, D_in)
  const auto Av = t.value(A);      // (R, D_in)
  const auto Bv = t.value(B);      // (D_out, R)
  const auto mv = t.value(m);      // (1, D_out)
  Tensor<T>& rows = n.saved[kDoraRows];
  Tensor<T>& C = n.saved[kDoraWork];
  const Index d_out = W.rows(), d_in = W.cols(), r = Av.rows();

  // c_i = −ds_i·m_i/‖V_i‖³ (Eq. (263)); 0 at V_i = 0, the subgradient the composed row_norm takes.
  // ∂m_i = ds_i/‖V_i‖ (Eq. (262)).
  for (Index i = 0; i < d_out; ++i) rows(i, kDoraCoef) = dora_norm_coef(ds(0, i), mv(0, i), rows(i, kDoraNorm));
  if (needM) {
    auto o = t.grad_out(m);
    for (Index i = 0; i < d_out; ++i) {
      const T g = ds(0, i) / rows(i, kDoraNorm);
      o.view(0, i) = o.fresh ? g : o.view(0, i) + g;
    }
  }
  if (!(needW || needA || needB)) return;

  // ∂B_i = γ·c_i·(Q_i + γ·(B·M)_i) (Eq. (265)), with B·M recomputed into the work buffer;
  // exact rows get γ·c_i·V_i·Aᵀ below.
  T* dB = nullptr;
  if (needB) {
    C.resize(d_out, r);
    gemm(T(1), Bv, false, n.saved[kDoraM], false, T(0), C);  // B·M
    auto o = t.grad_out(B);
    dB = o.view.data();
    const Tensor<T>& Q = n.saved[kDoraQ];
    auto dBv = o.view;
    parallel_for(d_out, d_out * r, [&](Index i) {
      const T c = rows(i, kDoraExact) != T(0) ? T(0) : gamma * rows(i, kDoraCoef);
      if (o.fresh) dBv.row(i) = c * (Q.row(i) + gamma * C.row(i));
      else dBv.row(i) += c * (Q.row(i) + gamma * C.row(i));
    });
  }

  // C = c ⊙_row B (D_out, R), over B·M.
  C.resize(d_out, r);
  parallel_for(d_out, d_out * r, [&](Index i) { C.row(i) = rows(i, kDoraCoef) * Bv.row(i); });

  // ∂W0 = c ⊙_row V = c ⊙_row W0 + γ·C·A (Eq. (266)): every row, exact ones too (no form here).
  if (needW) {
    auto o = t.grad_out(W0);
    auto dW = o.view;
    parallel_for(d_out, d_out * d_in, [&](Index i) {
      const T c = rows(i, kDoraCoef);
      if (o.fresh) dW.row(i) = c * W.row(i);
      else dW.row(i) += c * W.row(i);
    });
    gemm(gamma, C, false, Av, false, T(1), dW);
  }

  // The exact rows take the V_i-based terms below; drop them from the bulk (form-based) terms.
  Index n_exact = 0;
  for (Index i = 0; i < d_out; ++i)
    if (rows(i, kDoraExact) != T(0)) {
      C.row(i).setZero();
      ++n_exact;
    }

  // ∂A = γ·Cᵀ·W0 + γ²·(Cᵀ·B)·A (Eq. (264)); exact rows add γ·c_i·B_iᵀ·V_i below.
  T* dA = nullptr;
  if (needA) {
    auto o = t.grad_out(A);
    dA = o.view.data();
    Tensor<T>& K = n.saved[kDoraK];
    K.resize(r, r);
    gemm(T(1), C, true, Bv, false, T(0), K);
    gemm(gamma, C, true, W, false, o.fresh ? T(0) : T(1), o.view);
    gemm(gamma * gamma, K, false, Av, false, T(1), o.view);
  }

  if (n_exact == 0 || !(needA || needB)) return;
  Tensor<T>& v = n.saved[kDoraV];
  v.resize(1, d_in);
  for (Index i = 0; i < d_out; ++i) {
    if (rows(i, kDoraExact) == T(0)) continue;
    const T gc = gamma * rows(i, kDoraCoef);
    dora_row<T>(W.data() + i * d_in, Bv.data() + i * r, Av.data(), r, d_in, gamma, v.data());
    if (dB) gemm<T>(1, r, d_in, gc, v.data(), d_in, false, Av.data(), d_in, true, T(1), dB + i * r, r);
    if (dA) gemm<T>(r, d_in, 1, gc, Bv.data() + i * r, r, true, v.data(), d_in, false, T(1), dA, d_in);
  }
}

}  // namespace detail

/// The DoRA column scale s = m / ‖W0 + γ·B·A‖_row as one node (Eq. (260)–(266)).
///   W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  m: (1, D_out)  →  s: (1, D_out)
/// A row with V_i = 0 gives s_i = m_i/0 and the zero subgradient for V_i, as the composed graph.
template <class T>
Var<T> dora_scale(Var<T> W0, Var<T> A, Var<T> B, Var<T> m, T gamma) {
  detail::check_same_tape("dora_scale", W0, A);
  detail::check_same_tape("dora_scale", W0, B);
  detail::check_same_tape("dora_scale", W0, m);
  if (A.cols() != W0.cols()) throw_shape("dora_scale", "W0", W0.rows(), W0.cols(), "A", A.rows(), A.cols());
  if (B.rows() != W0.rows() || B.cols() != A.rows()) throw_shape("dora_scale", "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  if (m.rows() != 1 || m.cols() != W0.rows()) throw_shape("dora_scale", "W0", W0.rows(), W0.cols(), "magnitude", m.rows(), m.cols());
  Tape<T>& t = *W0.tape;
  const Index d_out = W0.rows(), d_in = W0.cols(), r = A.rows();
  const int id = t.push("dora_scale", 1, d_out, &detail::dora_scale_backward<T>, {W0.id, A.id, B.id, m.id});
  auto& n = t.node(id);
  n.attrs[0] = static_cast<double>(gamma);
  n.saved.resize(detail::kDoraCount);
  Tensor<T>& Q = n.saved[detail::kDoraQ];
  Tensor<T>& M = n.saved[detail::kDoraM];
  Tensor<T>& BM = n.saved[detail::kDoraWork];
  Tensor<T>& rows = n.saved[detail::kDoraRows];
  Q.resize(d_out, r);
  M.resize(r, r);
  BM.resize(d_out, r);
  rows.resize(d_out, 3);
  const auto W = t.value(W0.id);
  const auto Av = t.value(A.id);
  const auto Bv = t.value(B.id);
  const auto mv = t.value(m.id);
  auto s = t.value(id);
  detail::gemm(T(1), W, false, Av, true, T(0), Q);   // Q = W0·Aᵀ
  detail::gemm(T(1), Av, false, Av, true, T(0), M);  // M = A·Aᵀ
  detail::gemm(T(1), Bv, false, M, false, T(0), BM);  // B·M
  // ‖V_i‖² = ‖W0_i‖² + 2γ·Q_i·B_i + γ²·(B·M)_i·B_i (Eq. (260)). Its rounding error is relative
  // to (‖W0_i‖ + ‖γ·B_i·A‖)²; when ‖V_i‖² falls below dora_exact_below() of that, the form has
  // cancelled: stream V_i instead (Eq. (261)). The scalar test is detail::dora_form_norm, shared
  // with the device op.
  const T rho = numerics<T>::dora_exact_below();
  detail::parallel_for(d_out, d_out * (d_in + 2 * r), [&](Index i) {
    bool exact = false;
    const T nv = detail::dora_form_norm<T>(W.row(i).squaredNorm(), Q.row(i).dot(Bv.row(i)), BM.row(i).dot(Bv.row(i)),
                                           gamma, rho, exact);
    rows(i, detail::kDoraExact) = exact ? T(1) : T(0);
    rows(i, detail::kDoraNorm) = nv;
  });
  Index n_exact = 0;
  for (Index i = 0; i < d_out; ++i) n_exact += rows(i, detail::kDoraExact) != T(0) ? 1 : 0;
  if (n_exact > 0) {
    Tensor<T>& v = n.saved[detail::kDoraV];
    v.resize(1, d_in);
    for (Index i = 0; i < d_out; ++i) {
      if (rows(i, detail::kDoraExact) == T(0)) continue;
      detail::dora_row<T>(W.data() + i * d_in, Bv.data() + i * r, Av.data(), r, d_in, gamma, v.data());
      rows(i, detail::kDoraNorm) = v.norm();
    }
  }
  for (Index i = 0; i < d_out; ++i) s(0, i) = mv(0, i) / rows(i, detail::kDoraNorm);
  return Var<T>{&t, id};
}

namespace detail {

// Tokens per block of the backward's G ⊙ s (kBlock, D_out) scratch: big enough for an efficient
// GEMM against W0, small enough to add nothing measurable to the step's memory.
constexpr Index kDoraBlock = 64;
// kU = x_a·Aᵀ (N, R); kSB = s ⊙_row B (D_out, R); kY = x_a·W0ᵀ + γ·U·Bᵀ (N, D_out), only with a
// separate x_a; kP = γ·G·(s ⊙ B) (N, R); kGs the (kDoraBlock, D_out) scratch; kCols (4, D_out)
// per-column sums; kCol (N, 1) one recomputed column of y.
enum DoraLinearSaved { kDlU = 0, kDlSB, kDlY, kDlP, kDlGs, kDlCols, kDlCol, kDlCount };
// Rows of kCols: Σ_n G·z, Σ_n G, Σ_n |G|, Σ_n |G·(z − b)|.
enum DoraCol { kColGz = 0, kColG, kColAbsG, kColAbsGy };

/// Per-column sums over the rows of G, Y (N, D_out) into cols (4, D_out): Σ_n G·Y always; with a
/// bias b, also Σ_n G, Σ_n |G| and Σ_n |G·(Y − b)| (Eq. (269)). Each task keeps its kColumnChunk
/// columns in local accumulators and walks the rows in order (column_chunks.hpp): the same sums
/// for any thread count, and a fixed-width inner loop the compiler vectorises.
template <class T, class GV, class YV>
void dora_column_sums(const GV& G, const YV& Y, const T* b, Tensor<T>& cols) {
  const Index N = G.rows(), C = G.cols();
  cols.resize(4, C);
  for_column_chunks(N, C, [&](Index c0, Index c1) {
    T gy[kColumnChunk] = {}, g1[kColumnChunk] = {}, ag[kColumnChunk] = {}, agy[kColumnChunk] = {};
    auto run = [&](auto width) {
      for (Index i = 0; i < N; ++i) {
        const T* gi = G.data() + i * C + c0;
        const T* yi = Y.data() + i * C + c0;
        if (!b) {
          for (Index j = 0; j < width; ++j) gy[j] += gi[j] * yi[j];
          continue;
        }
        const T* bj = b + c0;
        for (Index j = 0; j < width; ++j) {
          using std::abs;
          gy[j] += gi[j] * yi[j];
          g1[j] += gi[j];
          ag[j] += abs(gi[j]);
          agy[j] += abs(gi[j] * (yi[j] - bj[j]));
        }
      }
    };
    if (c1 - c0 == kColumnChunk) run(std::integral_constant<Index, kColumnChunk>{});
    else run(c1 - c0);
    for (Index j = c0; j < c1; ++j) {
      cols(kColGz, j) = gy[j - c0];
      cols(kColG, j) = g1[j - c0];
      cols(kColAbsG, j) = ag[j - c0];
      cols(kColAbsGy, j) = agy[j - c0];
    }
  });
}

// parents: x, W0, x_a, A, B, s [, bias]; ints: {bias id or -1, x_a is x}; attrs: {γ}.
template <class T>
void dora_linear_backward(Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int x = n.parents[0], W0 = n.parents[1], xa = n.parents[2], A = n.parents[3], B = n.parents[4],
            s = n.parents[5];
  const int bias = static_cast<int>(n.ints[0]);
  const bool shared = n.ints[1] != 0;
  const T gamma = static_cast<T>(n.attrs[0]);
  const auto G = t.grad_acc(id);  // (N, D_out)
  const auto X = t.value(x);      // (N, D_in)
  const auto Xa = t.value(xa);    // (N, D_in)
  const auto W = t.value(W0);     // (D_out, D_in)
  const auto Av = t.value(A);     // (R, D_in)
  const auto Bv = t.value(B);     // (D_out, R)
  const auto sv = t.value(s);     // (1, D_out)
  const Tensor<T>& U = n.saved[kDlU];
  const Tensor<T>& SB = n.saved[kDlSB];
  const Index N = G.rows(), d_out = G.cols(), d_in = X.cols(), r = Av.rows();

  if (!shared) linear_base_backward(t, id, x, W0, bias);  // the x·W0ᵀ + b part
  else if (bias >= 0 && t.needs_grad(bias)) add_row_sums<T>(G, t.grad_acc(bias));

  // ∂s_j = Σ_n G_nj·y_nj (Eq. (268)). With x_a = x, y is read back from z = s⊙y + b:
  // Σ_n G_nj·(z_nj − b_j)/s_j, unless the bias dominates the column's error bound (Eq. (269)) or
  // s_j = 0; such a column is recomputed, y_:j = x·W0_jᵀ + γ·U·B_jᵀ.
  if (t.needs_grad(s)) {
    auto o = t.grad_out(s);
    auto ds = o.view;
    Tensor<T>& cols = n.saved[kDlCols];
    if (!shared) {
      dora_column_sums<T>(G, n.saved[kDlY], nullptr, cols);
      for (Index j = 0; j < d_out; ++j) ds(0, j) = o.fresh ? cols(kColGz, j) : ds(0, j) + cols(kColGz, j);
    } else {
      const T* bp = bias >= 0 ? t.value(bias).data() : nullptr;
      dora_column_sums<T>(G, t.value(id), bp, cols);
      const T kappa = numerics<T>::dora_readback_bias_ratio();
      Tensor<T>& col = n.saved[kDlCol];
      for (Index j = 0; j < d_out; ++j) {
        const T sj = sv(0, j), bj = bp ? bp[j] : T(0);
        T d;
        if (dora_readback_ok<T>(sj, bj, bp != nullptr, cols(kColAbsG, j), cols(kColAbsGy, j), kappa)) {
          d = dora_readback_ds<T>(cols(kColGz, j), cols(kColG, j), sj, bj, bp != nullptr);
        } else {
          col.resize(N, 1);
          gemm<T>(N, 1, d_in, T(1), X.data(), d_in, false, W.data() + j * d_in, d_in, true, T(0), col.data(), 1);
          gemm<T>(N, 1, r, gamma, U.data(), r, false, Bv.data() + j * r, r, true, T(1), col.data(), 1);
          d = T(0);
          for (Index i = 0; i < N; ++i) d += G(i, j) * col(i, 0);
        }
        ds(0, j) = o.fresh ? d : ds(0, j) + d;
      }
    }
  }

  const bool needA = t.needs_grad(A), needB = t.needs_grad(B), needXa = t.needs_grad(xa), needW = t.needs_grad(W0);
  // P = γ·(G ⊙ s)·B = γ·G·(s ⊙_row B) (N, R); ∂A = Pᵀ·x_a (Eq. (267)).
  Tensor<T>& P = n.saved[kDlP];
  if (needA || needXa) {
    P.resize(N, r);
    gemm(gamma, G, false, SB, false, T(0), P);
  }
  if (needA) {
    auto o = t.grad_out(A);
    gemm(T(1), P, true, Xa, false, o.fresh ? T(0) : T(1), o.view);
  }
  if (!(needXa || needW || needB)) return;
  // With s' = s (x_a = x) or s − 1 (a separate x_a; the base's G·W0, Gᵀ·x and Gᵀ·U terms are
  // added first), through a (kDoraBlock, D_out) scratch of G ⊙ s' (Eq. (267)):
  //   ∂x_a = (G ⊙ s')·W0 + P·A,   ∂W0 += (G ⊙ s')ᵀ·x_a,   ∂B = γ·(G ⊙ s)ᵀ·U.
  const T shift = shared ? T(0) : T(1);
  auto take = [&](bool need, int node, T*& ptr, bool& fresh) {
    if (!need) return;
    auto o = t.grad_out(node);
    ptr = o.view.data();
    fresh = o.fresh;
  };
  T *dX = nullptr, *dW = nullptr, *dB = nullptr;
  bool dX_fresh = false, dW_fresh = false, dB_fresh = false;
  take(needXa, xa, dX, dX_fresh);
  take(needW, W0, dW, dW_fresh);
  take(needB, B, dB, dB_fresh);
  if (dB && !shared) {
    gemm<T>(d_out, r, N, gamma, G.data(), d_out, true, U.data(), r, false, dB_fresh ? T(0) : T(1), dB, r);
    dB_fresh = false;
  }
  Tensor<T>& Gs = n.saved[kDlGs];
  Gs.resize(std::min<Index>(N, kDoraBlock), d_out);
  for (Index i0 = 0; i0 < N; i0 += kDoraBlock) {
    const Index nb = std::min<Index>(kDoraBlock, N - i0);
    const bool first = i0 == 0;
    parallel_for(nb, nb * d_out, [&](Index i) {
      for (Index j = 0; j < d_out; ++j) Gs(i, j) = G(i0 + i, j) * (sv(0, j) - shift);
    });
    if (dX) gemm<T>(nb, d_in, d_out, T(1), Gs.data(), d_out, false, W.data(), d_in, false, dX_fresh ? T(0) : T(1),
                    dX + i0 * d_in, d_in);
    if (dW) gemm<T>(d_out, d_in, nb, T(1), Gs.data(), d_out, true, Xa.data() + i0 * d_in, d_in, false,
                    dW_fresh && first ? T(0) : T(1), dW, d_in);
    if (dB) gemm<T>(d_out, r, nb, gamma, Gs.data(), d_out, true, U.data() + i0 * r, r, false,
                    dB_fresh && first ? T(0) : T(1), dB, r);
  }
  if (dX) gemm<T>(N, d_in, r, T(1), P.data(), r, false, Av.data(), d_in, false, T(1), dX, d_in);
}

}  // namespace detail

/// The DoRA layer's data path as one node, given the column scale s (ad::dora_scale):
///   z = s ⊙ (x·W0ᵀ + γ·(x·Aᵀ)·Bᵀ) + b                                      (x_a = x)
///   z = x·W0ᵀ + b + (s − 1) ⊙ (x_a·W0ᵀ) + s ⊙ γ·(x_a·Aᵀ)·Bᵀ                (x_a = dropout(x))
///   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  s, b: (1, D_out)  z: (N, D_out)
/// With x_a = x it keeps LoRA's buffers (value, U and P (N, R)) and reads y back from z for ∂s
/// (Eq. (268)–(269)); with a separate x_a it also saves y = x_a·W0ᵀ + γ·U·Bᵀ (N, D_out).
template <class T>
Var<T> dora_linear_scaled(Var<T> x, Var<T> W0, Var<T> x_a, Var<T> A, Var<T> B, Var<T> s, T gamma,
                          Var<T> bias = Var<T>{}) {
  Tape<T>& t = *x.tape;
  detail::check_same_tape("dora_linear_scaled", x, W0);
  detail::check_same_tape("dora_linear_scaled", x, x_a);
  detail::check_same_tape("dora_linear_scaled", x, A);
  detail::check_same_tape("dora_linear_scaled", x, B);
  detail::check_same_tape("dora_linear_scaled", x, s);
  const int b = bias.valid() ? bias.id : -1;
  if (b >= 0) detail::check_same_tape("dora_linear_scaled", x, bias);
  detail::check_linear_shapes("dora_linear_scaled", x, W0, b);
  if (x_a.rows() != x.rows() || x_a.cols() != x.cols()) throw_shape("dora_linear_scaled", "x", x.rows(), x.cols(), "x_a", x_a.rows(), x_a.cols());
  if (A.cols() != x.cols()) throw_shape("dora_linear_scaled", "x", x.rows(), x.cols(), "A", A.rows(), A.cols());
  if (B.rows() != W0.rows() || B.cols() != A.rows()) throw_shape("dora_linear_scaled", "A", A.rows(), A.cols(), "B", B.rows(), B.cols());
  if (s.rows() != 1 || s.cols() != W0.rows()) throw_shape("dora_linear_scaled", "W0", W0.rows(), W0.cols(), "scale", s.rows(), s.cols());
  const bool shared = x_a.id == x.id;
  const int id = t.push("dora_linear", x.rows(), W0.rows(), &detail::dora_linear_backward<T>, {x.id, W0.id, x_a.id, A.id, B.id, s.id});
  if (b >= 0) t.add_parent(id, b);
  auto& n = t.node(id);
  n.ints.assign({b, shared ? 1 : 0});
  n.attrs[0] = static_cast<double>(gamma);
  n.saved.resize(detail::kDlCount);
  const Index N = x.rows(), d_out = W0.rows(), r = A.rows();
  const auto sv = t.value(s.id);
  auto Z = t.value(id);
  Tensor<T>& U = n.saved[detail::kDlU];
  Tensor<T>& SB = n.saved[detail::kDlSB];
  U.resize(N, r);
  SB.resize(d_out, r);
  detail::gemm(T(1), t.value(x_a.id), false, t.value(A.id), true, T(0), U);  // U = x_a·Aᵀ
  const auto Bv = t.value(B.id);
  for (Index j = 0; j < d_out; ++j) SB.row(j) = sv(0, j) * Bv.row(j);
  if (shared) {
    // z = s ⊙ (x·W0ᵀ) + b, then += γ·U·(s ⊙ B)ᵀ.
    detail::gemm(T(1), t.value(x.id), false, t.value(W0.id), true, T(0), Z);
    const T* bp = b >= 0 ? t.value(b).data() : nullptr;
    detail::parallel_for(N, N * d_out, [&](Index i) {
      if (bp) {
        for (Index j = 0; j < d_out; ++j) Z(i, j) = sv(0, j) * Z(i, j) + bp[j];
      } else {
        for (Index j = 0; j < d_out; ++j) Z(i, j) *= sv(0, j);
      }
    });
  } else {
    // z = x·W0ᵀ + b + (s − 1) ⊙ Y with Y = x_a·W0ᵀ; then y = Y + γ·U·Bᵀ is kept for ∂s.
    detail::linear_base_forward(t, id, x.id, W0.id, b);
    Tensor<T>& Y = n.saved[detail::kDlY];
    Y.resize(N, d_out);
    detail::gemm(T(1), t.value(x_a.id), false, t.value(W0.id), true, T(0), Y);
    detail::parallel_for(N, N * d_out, [&](Index i) {
      for (Index j = 0; j < d_out; ++j) Z(i, j) += (sv(0, j) - T(1)) * Y(i, j);
    });
    detail::gemm(gamma, U, false, Bv, true, T(1), Y);
  }
  detail::gemm(gamma, U, false, SB, true, T(1), Z);
  return Var<T>{&t, id};
}

}  // namespace hyplora::ad
