// hyplora/autodiff/ops_elementwise.hpp — elementwise tape ops: broadcasting binary arithmetic,
// scalar affine ops, and the unary functions (exp, log, hyperbolic, activations).
//
// Broadcasting (2-D, NumPy rule per axis): the two extents are equal, or one of them is 1 and is
// repeated. So a: (N, C) with b: (N, C), (1, C) (a bias over rows), (N, 1) (a per-row scale) or
// (1, 1) (a scalar), either way round. The backward sums the gradient over the repeated axis.
//
// Each op records only its parents: the backward reads the parents' values and the node's own
// value (no saved copies), so a rebuilt graph of the same shapes allocates nothing.
#pragma once

#include <cmath>
#include <sstream>
#include <string>

#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/config.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

namespace detail {

/// Elementwise loops go parallel (OpenMP, when compiled with it) from this many elements on:
/// below it the fork/join costs more than the work on two cores.
inline constexpr Index kParallelMinElems = Index(1) << 16;

/// Runs f(i) for i in [0, n), on all OpenMP threads when `work` (elements touched) reaches
/// kParallelMinElems, else serially without entering a parallel region (whose fork/join would
/// dominate small ops). Iterations must be independent.
template <class F>
inline void parallel_for(Index n, Index work, F&& f) {
#ifdef _OPENMP
  if (work >= kParallelMinElems) {
#pragma omp parallel for
    for (Index i = 0; i < n; ++i) f(i);
    return;
  }
#else
  (void)work;
#endif
  for (Index i = 0; i < n; ++i) f(i);
}

/// Keeps a scalar argument out of template deduction, so `x * 2.0` works for Var<float>.
template <class T>
struct identity {
  using type = T;
};
template <class T>
using identity_t = typename identity<T>::type;

template <class T>
void check_same_tape(const char* op, const Var<T>& a, const Var<T>& b) {
  if (a.tape != b.tape || a.tape == nullptr)
    throw value_error(std::string(op) + ": operands are not on the same tape");
}

/// Broadcast output extent of one axis, or -1 when the extents do not fit.
inline Index broadcast_extent(Index a, Index b) {
  if (a == b) return a;
  if (a == 1) return b;
  if (b == 1) return a;
  return -1;
}

// ---- binary ops: value and partial derivatives (y = f(a, b)) --------------------------------
struct AddF {
  static constexpr const char* name = "add";
  template <class T> static T f(T a, T b) { return a + b; }
  template <class T> static T da(T, T, T) { return T(1); }
  template <class T> static T db(T, T, T) { return T(1); }
};
struct SubF {
  static constexpr const char* name = "sub";
  template <class T> static T f(T a, T b) { return a - b; }
  template <class T> static T da(T, T, T) { return T(1); }
  template <class T> static T db(T, T, T) { return T(-1); }
};
struct MulF {
  static constexpr const char* name = "mul";
  template <class T> static T f(T a, T b) { return a * b; }
  template <class T> static T da(T, T b, T) { return b; }
  template <class T> static T db(T a, T, T) { return a; }
};
struct DivF {
  static constexpr const char* name = "div";
  template <class T> static T f(T a, T b) { return a / b; }
  template <class T> static T da(T, T b, T) { return T(1) / b; }
  template <class T> static T db(T, T b, T y) { return -y / b; }  // −a/b² without squaring b
};

template <class T, class F>
void binary_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int ia = n.parents[0], ib = n.parents[1];
  const bool need_a = t.needs_grad(ia), need_b = t.needs_grad(ib);
  const Index r = n.rows, c = n.cols;
  const Index ar = t.node(ia).rows, ac = t.node(ia).cols, br = t.node(ib).rows, bc = t.node(ib).cols;
  const T* a = t.value(ia).data();
  const T* b = t.value(ib).data();
  const T* y = t.value(id).data();
  const T* g = t.grad_acc(id).data();
  if (ar == r && ac == c && br == r && bc == c) {
    // Same shapes: one contiguous loop per parent; a fresh gradient buffer (Tape::grad_out) is
    // assigned, which saves its zero-fill and a read.
    const Index m = r * c;
    if (need_a) {
      auto o = t.grad_out(ia);
      T* ga = o.view.data();
      if (o.fresh) parallel_for(m, m, [&](Index k) { ga[k] = g[k] * F::da(a[k], b[k], y[k]); });
      else parallel_for(m, m, [&](Index k) { ga[k] += g[k] * F::da(a[k], b[k], y[k]); });
    }
    if (need_b) {
      auto o = t.grad_out(ib);
      T* gb = o.view.data();
      if (o.fresh) parallel_for(m, m, [&](Index k) { gb[k] = g[k] * F::db(a[k], b[k], y[k]); });
      else parallel_for(m, m, [&](Index k) { gb[k] += g[k] * F::db(a[k], b[k], y[k]); });
    }
    return;
  }
  T* ga = need_a ? t.grad_acc(ia).data() : nullptr;
  T* gb = need_b ? t.grad_acc(ib).data() : nullptr;
  // Broadcast: a repeated axis has stride 0, so its gradient sums over that axis.
  const Index sar = ar == r ? ac : 0, sac = ac == c ? 1 : 0;
  const Index sbr = br == r ? bc : 0, sbc = bc == c ? 1 : 0;
  for (Index i = 0; i < r; ++i) {
    const T* gi = g + i * c;
    const T* yi = y + i * c;
    const T* ai = a + i * sar;
    const T* bi = b + i * sbr;
    for (Index j = 0; j < c; ++j) {
      const T av = ai[j * sac], bv = bi[j * sbc];
      if (ga) ga[i * sar + j * sac] += gi[j] * F::da(av, bv, yi[j]);
      if (gb) gb[i * sbr + j * sbc] += gi[j] * F::db(av, bv, yi[j]);
    }
  }
}

template <class T, class F>
Var<T> binary(Var<T> a, Var<T> b) {
  check_same_tape(F::name, a, b);
  Tape<T>& t = *a.tape;
  const Index ar = a.rows(), ac = a.cols(), br = b.rows(), bc = b.cols();
  const Index r = broadcast_extent(ar, br), c = broadcast_extent(ac, bc);
  if (r < 0 || c < 0) throw_shape(F::name, "a", ar, ac, "b", br, bc);
  const int id = t.push(F::name, r, c, &binary_backward<T, F>, {a.id, b.id});
  const T* pa = t.value(a.id).data();
  const T* pb = t.value(b.id).data();
  T* out = t.value(id).data();
  if (ar == r && ac == c && br == r && bc == c) {
    const Index m = r * c;
    parallel_for(m, m, [&](Index k) { out[k] = F::f(pa[k], pb[k]); });
  } else {
    const Index sar = ar == r ? ac : 0, sac = ac == c ? 1 : 0;
    const Index sbr = br == r ? bc : 0, sbc = bc == c ? 1 : 0;
    for (Index i = 0; i < r; ++i) {
      T* oi = out + i * c;
      const T* ai = pa + i * sar;
      const T* bi = pb + i * sbr;
      if (sac == 1 && sbc == 1) {
        for (Index j = 0; j < c; ++j) oi[j] = F::f(ai[j], bi[j]);
      } else if (sac == 1) {
        const T bv = bi[0];
        for (Index j = 0; j < c; ++j) oi[j] = F::f(ai[j], bv);
      } else if (sbc == 1) {
        const T av = ai[0];
        for (Index j = 0; j < c; ++j) oi[j] = F::f(av, bi[j]);
      } else {
        for (Index j = 0; j < c; ++j) oi[j] = F::f(ai[0], bi[0]);
      }
    }
  }
  return Var<T>{&t, id};
}

// ---- unary ops: y = f(x; attrs), dy/dx = df(x, y; attrs) -----------------------------------
// attrs[0], attrs[1]: the op's scalar parameters (scale/shift, clamp bounds).

template <class T, class F>
void unary_backward(Tape<T>& t, int id) {
  Node<T>& n = t.node(id);
  const int ia = n.parents[0];
  if (!t.needs_grad(ia)) return;
  const T p0 = static_cast<T>(n.attrs[0]), p1 = static_cast<T>(n.attrs[1]);
  const Index m = n.rows * n.cols;
  const T* g = t.grad_acc(id).data();
  const T* y = t.value(id).data();
  const T* x = t.value(ia).data();
  T* ga = t.grad_acc(ia).data();
  parallel_for(m, m, [&](Index k) { ga[k] += g[k] * F::df(x[k], y[k], p0, p1); });
}

template <class T, class F>
Var<T> unary(Var<T> a, const char* name, double p0 = 0.0, double p1 = 0.0) {
  Tape<T>& t = *a.tape;
  const int id = t.push(name, a.rows(), a.cols(), &unary_backward<T, F>, {a.id});
  Node<T>& n = t.node(id);
  n.attrs[0] = p0;
  n.attrs[1] = p1;
  const T q0 = static_cast<T>(p0), q1 = static_cast<T>(p1);
  const Index m = n.rows * n.cols;
  const T* x = t.value(a.id).data();
  T* y = t.value(id).data();
  parallel_for(m, m, [&](Index k) { y[k] = F::f(x[k], q0, q1); });
  return Var<T>{&t, id};
}

// y = p0·x + p1: neg, add_scalar, mul_scalar and scalar − x share it.
struct AffineF {
  template <class T> static T f(T x, T p0, T p1) { return p0 * x + p1; }
  template <class T> static T df(T, T, T p0, T) { return p0; }
};
// y = p0 / x
struct RdivF {
  template <class T> static T f(T x, T p0, T) { return p0 / x; }
  template <class T> static T df(T x, T y, T, T) { return -y / x; }
};
struct SqrtF {
  template <class T> static T f(T x, T, T) { using std::sqrt; return sqrt(x); }
  template <class T> static T df(T, T y, T, T) { return T(0.5) / y; }  // +inf at 0
};
struct ExpF {
  template <class T> static T f(T x, T, T) { using std::exp; return exp(x); }
  template <class T> static T df(T, T y, T, T) { return y; }
};
struct LogF {
  template <class T> static T f(T x, T, T) { using std::log; return log(x); }
  template <class T> static T df(T x, T, T, T) { return T(1) / x; }
};
struct SinhF {
  template <class T> static T f(T x, T, T) { using std::sinh; return sinh(x); }
  template <class T> static T df(T x, T, T, T) { using std::cosh; return cosh(x); }
};
struct CoshF {
  template <class T> static T f(T x, T, T) { using std::cosh; return cosh(x); }
  template <class T> static T df(T x, T, T, T) { using std::sinh; return sinh(x); }
};
struct TanhF {
  template <class T> static T f(T x, T, T) { using std::tanh; return tanh(x); }
  template <class T> static T df(T, T y, T, T) { return (T(1) - y) * (T(1) + y); }
};
struct AsinhF {
  template <class T> static T f(T x, T, T) { using std::asinh; return asinh(x); }
  // 1/√(1+x²) as 1/hypot(1, x): x² would overflow for |x| > 1e154 (double).
  template <class T> static T df(T x, T, T, T) { using std::hypot; return T(1) / hypot(T(1), x); }
};
// arcosh on [1, ∞). Below 1 (outside the domain; usually rounding of a quantity that is ≥ 1)
// the input is clamped to 1: value 0, gradient 0. At exactly 1 the gradient is +inf, the true
// one-sided derivative. In anomaly mode an input < 1 throws instead (see acosh()).
struct AcoshF {
  template <class T> static T f(T x, T, T) { using std::acosh; return x < T(1) ? T(0) : acosh(x); }
  // (x−1)(x+1) instead of x²−1: no cancellation near 1.
  template <class T> static T df(T x, T, T, T) {
    using std::sqrt;
    return x < T(1) ? T(0) : T(1) / sqrt((x - T(1)) * (x + T(1)));
  }
};
struct AtanhF {
  template <class T> static T f(T x, T, T) { using std::atanh; return atanh(x); }
  template <class T> static T df(T x, T, T, T) { return T(1) / ((T(1) - x) * (T(1) + x)); }
};
/// σ(x) without overflow: exp of a non-positive argument only.
template <class T>
inline T stable_sigmoid(T x) {
  using std::exp;
  if (x >= T(0)) return T(1) / (T(1) + exp(-x));
  const T e = exp(x);
  return e / (T(1) + e);
}
struct SoftplusF {
  // max(x, 0) + log1p(exp(−|x|)): never exponentiates a positive number.
  template <class T> static T f(T x, T, T) {
    using std::abs;
    using std::exp;
    using std::log1p;
    return (x > T(0) ? x : T(0)) + log1p(exp(-abs(x)));
  }
  template <class T> static T df(T x, T, T, T) { return stable_sigmoid(x); }
};
struct SigmoidF {
  template <class T> static T f(T x, T, T) { return stable_sigmoid(x); }
  template <class T> static T df(T, T y, T, T) { return y * (T(1) - y); }
};
struct SquareF {
  template <class T> static T f(T x, T, T) { return x * x; }
  template <class T> static T df(T x, T, T, T) { return T(2) * x; }
};
// Gradient 1 on the closed interval [lo, hi] (as PyTorch), 0 outside.
struct ClampF {
  template <class T> static T f(T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); }
  template <class T> static T df(T x, T, T lo, T hi) { return (x >= lo && x <= hi) ? T(1) : T(0); }
};
struct ReluF {
  template <class T> static T f(T x, T, T) { return x > T(0) ? x : T(0); }
  template <class T> static T df(T x, T, T, T) { return x > T(0) ? T(1) : T(0); }
};
// GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
struct GeluF {
  static constexpr double k0 = 0.7978845608028654;  // √(2/π)
  static constexpr double k1 = 0.044715;
  // The formula once, in pieces over a value type V with scalar type S: a scalar here and in the
  // CUDA kernels (cuda/kernels/gelu.cuh), an Eigen array in the vectorised row op of
  // examples/transformer/model.hpp. y = ½x(1 + th), th = tanh(k0(x + k1x³)),
  // y′ = ½(1 + th) + ½x(1 − th)(1 + th)·k0(1 + 3k1x²).
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class S, class V>
  static HYPLORA_HD_INLINE auto tanh_arg(const V& x) { return S(k0) * (x + S(k1) * x * x * x); }
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class S, class V, class W>
  static HYPLORA_HD_INLINE auto from_tanh(const V& x, const W& th) { return S(0.5) * x * (S(1) + th); }
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class S, class V, class W>
  static HYPLORA_HD_INLINE auto grad_from_tanh(const V& x, const W& th) {
    return S(0.5) * (S(1) + th) + S(0.5) * x * (S(1) - th) * (S(1) + th) * S(k0) * (S(1) + S(3 * k1) * x * x);
  }
  template <class T> static T f(T x, T, T) {
    using std::tanh;
    return from_tanh<T>(x, tanh(tanh_arg<T>(x)));
  }
  template <class T> static T df(T x, T, T, T) {
    using std::tanh;
    return grad_from_tanh<T>(x, tanh(tanh_arg<T>(x)));
  }
};
// GELU, exact: xΦ(x) = ½x(1 + erf(x/√2)); derivative Φ(x) + xφ(x).
struct GeluExactF {
  static constexpr double inv_sqrt2 = 0.7071067811865476;
  static constexpr double inv_sqrt2pi = 0.3989422804014327;
  template <class T> static T f(T x, T, T) {
    using std::erf;
    return T(0.5) * x * (T(1) + erf(x * T(inv_sqrt2)));
  }
  template <class T> static T df(T x, T, T, T) {
    using std::erf;
    using std::exp;
    return T(0.5) * (T(1) + erf(x * T(inv_sqrt2))) + x * T(inv_sqrt2pi) * exp(T(-0.5) * x * x);
  }
};

}  // namespace detail

// ---- binary, broadcasting -------------------------------------------------------------------
// a: (N, C) or broadcastable  b: (N, C), (1, C), (N, 1) or (1, 1)  out: the broadcast shape

/// a + b with broadcasting.
template <class T> Var<T> add(Var<T> a, Var<T> b) { return detail::binary<T, detail::AddF>(a, b); }
/// a − b with broadcasting.
template <class T> Var<T> sub(Var<T> a, Var<T> b) { return detail::binary<T, detail::SubF>(a, b); }
/// a ⊙ b with broadcasting.
template <class T> Var<T> mul(Var<T> a, Var<T> b) { return detail::binary<T, detail::MulF>(a, b); }
/// a ⊘ b with broadcasting.
template <class T> Var<T> div(Var<T> a, Var<T> b) { return detail::binary<T, detail::DivF>(a, b); }

// ---- scalar ---------------------------------------------------------------------------------
/// −x.
template <class T> Var<T> neg(Var<T> x) { return detail::unary<T, detail::AffineF>(x, "neg", -1.0, 0.0); }
/// x + s.
template <class T> Var<T> add_scalar(Var<T> x, detail::identity_t<T> s) {
  return detail::unary<T, detail::AffineF>(x, "add_scalar", 1.0, static_cast<double>(s));
}
/// s·x.
template <class T> Var<T> mul_scalar(Var<T> x, detail::identity_t<T> s) {
  return detail::unary<T, detail::AffineF>(x, "mul_scalar", static_cast<double>(s), 0.0);
}
/// s − x (one node).
template <class T> Var<T> rsub_scalar(detail::identity_t<T> s, Var<T> x) {
  return detail::unary<T, detail::AffineF>(x, "rsub_scalar", -1.0, static_cast<double>(s));
}
/// s / x (one node).
template <class T> Var<T> rdiv_scalar(detail::identity_t<T> s, Var<T> x) {
  return detail::unary<T, detail::RdivF>(x, "rdiv_scalar", static_cast<double>(s), 0.0);
}

template <class T> Var<T> operator+(Var<T> a, Var<T> b) { return add(a, b); }
template <class T> Var<T> operator-(Var<T> a, Var<T> b) { return sub(a, b); }
template <class T> Var<T> operator*(Var<T> a, Var<T> b) { return mul(a, b); }
template <class T> Var<T> operator/(Var<T> a, Var<T> b) { return div(a, b); }
template <class T> Var<T> operator-(Var<T> a) { return neg(a); }
template <class T> Var<T> operator+(Var<T> a, detail::identity_t<T> s) { return add_scalar(a, s); }
template <class T> Var<T> operator+(detail::identity_t<T> s, Var<T> a) { return add_scalar(a, s); }
template <class T> Var<T> operator-(Var<T> a, detail::identity_t<T> s) { return add_scalar(a, -s); }
template <class T> Var<T> operator-(detail::identity_t<T> s, Var<T> a) { return rsub_scalar(s, a); }
template <class T> Var<T> operator*(Var<T> a, detail::identity_t<T> s) { return mul_scalar(a, s); }
template <class T> Var<T> operator*(detail::identity_t<T> s, Var<T> a) { return mul_scalar(a, s); }
/// x / s as x · (1/s).
template <class T> Var<T> operator/(Var<T> a, detail::identity_t<T> s) { return mul_scalar(a, T(1) / s); }
template <class T> Var<T> operator/(detail::identity_t<T> s, Var<T> a) { return rdiv_scalar(s, a); }

// ---- unary ----------------------------------------------------------------------------------
// x: (N, C)  out: (N, C)

/// √x; the gradient at 0 is +inf (caught by anomaly mode).
template <class T> Var<T> sqrt(Var<T> x) { return detail::unary<T, detail::SqrtF>(x, "sqrt"); }
template <class T> Var<T> exp(Var<T> x) { return detail::unary<T, detail::ExpF>(x, "exp"); }
/// log x; x ≤ 0 gives −inf/NaN, which anomaly mode reports as produced by 'log'.
template <class T> Var<T> log(Var<T> x) { return detail::unary<T, detail::LogF>(x, "log"); }
template <class T> Var<T> sinh(Var<T> x) { return detail::unary<T, detail::SinhF>(x, "sinh"); }
template <class T> Var<T> cosh(Var<T> x) { return detail::unary<T, detail::CoshF>(x, "cosh"); }
template <class T> Var<T> tanh(Var<T> x) { return detail::unary<T, detail::TanhF>(x, "tanh"); }
template <class T> Var<T> asinh(Var<T> x) { return detail::unary<T, detail::AsinhF>(x, "asinh"); }

/// arcosh x, derivative 1/√((x−1)(x+1)). Inputs < 1 are clamped to 1 (value 0, gradient 0);
/// in anomaly mode they throw value_error naming the first offending value instead.
template <class T> Var<T> acosh(Var<T> x) {
  if (x.tape->anomaly_detection()) {
    const auto v = x.value();
    for (Index k = 0; k < v.size(); ++k) {
      if (v.data()[k] < T(1)) {
        std::ostringstream s;
        s << "acosh: input " << static_cast<double>(v.data()[k]) << " < 1 at element " << k << " of x "
          << shape_str(v.rows(), v.cols()) << " (outside the domain)";
        throw value_error(s.str());
      }
    }
  }
  return detail::unary<T, detail::AcoshF>(x, "acosh");
}
/// artanh x for |x| < 1 (±inf at ±1, NaN outside; anomaly mode reports them).
template <class T> Var<T> atanh(Var<T> x) { return detail::unary<T, detail::AtanhF>(x, "atanh"); }
/// log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}), stable for any x.
template <class T> Var<T> softplus(Var<T> x) { return detail::unary<T, detail::SoftplusF>(x, "softplus"); }
/// 1/(1 + e^{−x}), stable for any x.
template <class T> Var<T> sigmoid(Var<T> x) { return detail::unary<T, detail::SigmoidF>(x, "sigmoid"); }
template <class T> Var<T> square(Var<T> x) { return detail::unary<T, detail::SquareF>(x, "square"); }
/// min(max(x, lo), hi); gradient 1 on [lo, hi], 0 outside. Throws value_error if lo > hi.
template <class T> Var<T> clamp(Var<T> x, detail::identity_t<T> lo, detail::identity_t<T> hi) {
  if (!(lo <= hi)) {
    std::ostringstream s;
    s << "clamp: lo " << static_cast<double>(lo) << " > hi " << static_cast<double>(hi);
    throw value_error(s.str());
  }
  return detail::unary<T, detail::ClampF>(x, "clamp", static_cast<double>(lo), static_cast<double>(hi));
}
/// max(x, 0); gradient 0 at 0.
template <class T> Var<T> relu(Var<T> x) { return detail::unary<T, detail::ReluF>(x, "relu"); }
/// GELU, tanh approximation (GPT-2 / PyTorch approximate="tanh").
template <class T> Var<T> gelu(Var<T> x) { return detail::unary<T, detail::GeluF>(x, "gelu"); }
/// GELU, exact (erf).
template <class T> Var<T> gelu_exact(Var<T> x) { return detail::unary<T, detail::GeluExactF>(x, "gelu_exact"); }

}  // namespace hyplora::ad
