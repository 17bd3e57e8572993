// hyplora/manifold/detail/lorentz_rows.hpp — per-row math of the Lorentz (hyperboloid) model.
//
// Convention (docs/math.md Eq. (1)): K > 0, R = √K, H = {x : −x0² + |x_s|² = −K, x0 > 0},
// origin o = (R, 0, …, 0). A point or ambient tangent vector is d+1 contiguous values, time first;
// a "spatial" vector is d values. Every function takes the spatial dimension `d` and the radius
// `R` (K = R² where needed), works on raw pointers, allocates nothing and never throws, so the
// Eigen API (manifold/lorentz.hpp), the tape's ops and CUDA kernels share one formula.
//
// Aliasing: unless a comment says otherwise, `out` may equal an input of the same length (all
// scalars a row needs are formed before the first write). apply_rotation and llr need out != x.
//
// Clamping: tangent lengths in radii fed to cosh/sinh are clamped at numerics<T>::max_exp_arg
// (clamp_exp_arg, Eq. (124)); past it an exp map keeps the direction and saturates the length at
// R·sinh(max_exp_arg) (Eq. (16)), so outputs stay finite for any finite input.
#pragma once

#include <cstddef>

#include "hyplora/core/config.hpp"
#include "hyplora/core/numerics.hpp"

namespace hyplora {
namespace lorentz_rows {

using index_t = std::ptrdiff_t;

/// Scalars of f_R(v) = c·v (Eq. (17)): rho = |v|/R and c. A backward reuses them (Eq. (19)).
template <class T>
struct Exp0Scalars {
  T rho;  // |v|/R, unclamped
  T c;    // sinhc(rho), or sinh(max)/rho when rho is clamped (Eq. (16))
};

/// Scalars of f_R⁻¹(y) = c·y (Eq. (18)): tau = |y|/R and c = asinhc(tau).
template <class T>
struct Log0Scalars {
  T tau;
  T c;
};

// ---- small helpers ---------------------------------------------------------------------------

/// Euclidean dot of n values.
template <class T>
HYPLORA_HD_INLINE T dot(const T* a, const T* b, index_t n) {
  T s = T(0);
  for (index_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// Coefficients of an exp map at tangent length t (radii), Eq. (15)–(16):
/// out = ch·base + c·u with ch = cosh(t), c = sinhc(t); clamped: ch = cosh(m), c = sinh(m)/t.
template <class T>
HYPLORA_HD_INLINE T exp_coeff(T t) {  // c alone, for maps that never need cosh (f_R)
  using std::sinh;
  const T tc = clamp_exp_arg(t);
  return (t > tc) ? sinh(tc) / t : sinhc(t);
}
template <class T>
HYPLORA_HD_INLINE void exp_coeffs(T t, T& ch, T& c) {
  using std::cosh;
  ch = cosh(clamp_exp_arg(t));
  c = exp_coeff(t);
}

// ---- inner product, norm, projections (Eq. (10)–(13)) ---------------------------------------

/// ⟨x,y⟩_L = −x0 y0 + x_s·y_s, Eq. (10). x, y: (d+1).
template <class T>
HYPLORA_HD_INLINE T inner(const T* x, const T* y, index_t d) {
  return -x[0] * y[0] + dot(x + 1, y + 1, d);
}

/// ‖u‖_L = √max(⟨u,u⟩_L, 0), Eq. (13): ≥ 0 on tangent vectors, clamped against rounding.
template <class T>
HYPLORA_HD_INLINE T norm(const T* u, index_t d) {
  using std::sqrt;
  const T n2 = inner(u, u, d);
  return n2 > T(0) ? sqrt(n2) : T(0);
}

/// π(x) = (√(K + |x_s|²), x_s), Eq. (11). x, out: (d+1). When |x_s|² overflows (float past
/// |x_s| ≈ 1.8e19, e.g. exp_x of a clamped tangent at a point away from o) the norm is
/// recomputed scaled by max|x_i|, so x0 stays finite whenever the coordinates are.
template <class T>
HYPLORA_HD_INLINE void projx(const T* x, T* out, index_t d, T R) {
  using std::abs;
  using std::sqrt;
  T s2 = R * R + dot(x + 1, x + 1, d);
  T scale = T(1);
  if (!(s2 - s2 == T(0))) {  // s2 is inf (or NaN): true only when the sum overflowed
    scale = R;
    for (index_t i = 1; i <= d; ++i) scale = abs(x[i]) > scale ? abs(x[i]) : scale;
    s2 = (R / scale) * (R / scale);
    for (index_t i = 1; i <= d; ++i) s2 += (x[i] / scale) * (x[i] / scale);
  }
  for (index_t i = 1; i <= d; ++i) out[i] = x[i];
  out[0] = scale * sqrt(s2);
}

/// P_x(u) = u + (⟨x,u⟩_L/K)·x, the Minkowski-orthogonal projection onto T_xH, Eq. (12).
template <class T>
HYPLORA_HD_INLINE void proju(const T* x, const T* u, T* out, index_t d, T R) {
  const T a = inner(x, u, d) / (R * R);
  for (index_t i = 0; i <= d; ++i) out[i] = u[i] + a * x[i];
}

/// o = (R, 0, …, 0), Eq. (1).
template <class T>
HYPLORA_HD_INLINE void origin(T* out, index_t d, T R) {
  out[0] = R;
  for (index_t i = 1; i <= d; ++i) out[i] = T(0);
}

// ---- maps at the origin (Eq. (17)–(19)) -----------------------------------------------------

/// f_R(v) = sinhc(|v|/R)·v, the spatial part of exp_o((0, v)), Eq. (17). v, out: (d).
template <class T>
HYPLORA_HD_INLINE Exp0Scalars<T> expmap0_spatial(const T* v, T* out, index_t d, T R) {
  using std::sqrt;
  Exp0Scalars<T> s;
  s.rho = sqrt(dot(v, v, d)) / R;
  s.c = exp_coeff(s.rho);
  for (index_t i = 0; i < d; ++i) out[i] = s.c * v[i];
  return s;
}

/// f_R⁻¹(y) = asinhc(|y|/R)·y, the spatial part of log_o(x) with y = x_s, Eq. (18). No clamp:
/// asinh is defined everywhere. y, out: (d).
template <class T>
HYPLORA_HD_INLINE Log0Scalars<T> logmap0_spatial(const T* y, T* out, index_t d, T R) {
  using std::sqrt;
  Log0Scalars<T> s;
  s.tau = sqrt(dot(y, y, d)) / R;
  s.c = asinhc(s.tau);
  for (index_t i = 0; i < d; ++i) out[i] = s.c * y[i];
  return s;
}

/// c′(ρ)/ρ of the exp-map coefficient c(ρ) of f_R, Eq. (19): D1(ρ), or −c/ρ² where the length
/// is clamped (c = sinh(m)/ρ there). Every backward through f_R (here, the fused HypLoRA nodes,
/// the CUDA kernels) takes its radial derivative from this one function.
template <class T>
HYPLORA_HD_INLINE T exp0_dcoef(Exp0Scalars<T> s) {
  return (s.rho > clamp_exp_arg(s.rho)) ? -s.c / (s.rho * s.rho) : sinhc_d1(s.rho, s.c);
}

/// Vector–Jacobian product of f_R, Eq. (19): with c(ρ) the coefficient and Dc = c′(ρ)/ρ
/// (D1(ρ), or −c/ρ² where the length is clamped),
///   g_v = c·g + (Dc/K)(v·g)·v,   g_R = −ρ²·Dc/R·(v·g).
/// Reuses the forward's scalars. g_R may be null; g_v may alias g_out.
template <class T>
HYPLORA_HD_INLINE void expmap0_spatial_backward(const T* v, index_t d, T R, Exp0Scalars<T> s,
                                                const T* g_out, T* g_v, T* g_R) {
  const T rho = s.rho;
  const T Dc = exp0_dcoef(s);
  const T vg = dot(v, g_out, d);
  const T k = Dc / (R * R) * vg;
  for (index_t i = 0; i < d; ++i) g_v[i] = s.c * g_out[i] + k * v[i];
  if (g_R) *g_R = -rho * rho * Dc / R * vg;
}

/// As above, recomputing the forward scalars from v.
template <class T>
HYPLORA_HD_INLINE void expmap0_spatial_backward(const T* v, index_t d, T R, const T* g_out, T* g_v,
                                                T* g_R) {
  using std::sqrt;
  Exp0Scalars<T> s;
  s.rho = sqrt(dot(v, v, d)) / R;
  s.c = exp_coeff(s.rho);
  expmap0_spatial_backward(v, d, R, s, g_out, g_v, g_R);
}

/// Vector–Jacobian product of f_R⁻¹, Eq. (19): g_y = c·g + (D2(τ)/K)(y·g)·y,
/// g_R = −τ²·D2(τ)/R·(y·g). g_R may be null; g_y may alias g_out.
template <class T>
HYPLORA_HD_INLINE void logmap0_spatial_backward(const T* y, index_t d, T R, Log0Scalars<T> s,
                                                const T* g_out, T* g_y, T* g_R) {
  const T D = asinhc_d2(s.tau, s.c);
  const T yg = dot(y, g_out, d);
  const T k = D / (R * R) * yg;
  for (index_t i = 0; i < d; ++i) g_y[i] = s.c * g_out[i] + k * y[i];
  if (g_R) *g_R = -s.tau * s.tau * D / R * yg;
}

/// As above, recomputing the forward scalars from y.
template <class T>
HYPLORA_HD_INLINE void logmap0_spatial_backward(const T* y, index_t d, T R, const T* g_out, T* g_y,
                                                T* g_R) {
  using std::sqrt;
  Log0Scalars<T> s;
  s.tau = sqrt(dot(y, y, d)) / R;
  s.c = asinhc(s.tau);
  logmap0_spatial_backward(y, d, R, s, g_out, g_y, g_R);
}

/// exp_o(u) = (R cosh ρ, f_R(u_s)), Eq. (17). u: ambient tangent at o, (d+1); only u_s is read,
/// which is exp_o(P_o u) since P_o(u) = (0, u_s). out: (d+1).
template <class T>
HYPLORA_HD_INLINE Exp0Scalars<T> expmap0(const T* u, T* out, index_t d, T R) {
  using std::cosh;
  const Exp0Scalars<T> s = expmap0_spatial(u + 1, out + 1, d, R);
  out[0] = R * cosh(clamp_exp_arg(s.rho));
  return s;
}

/// log_o(x) = (0, f_R⁻¹(x_s)), Eq. (18): needs neither x0 nor an arcosh. x, out: (d+1).
template <class T>
HYPLORA_HD_INLINE Log0Scalars<T> logmap0(const T* x, T* out, index_t d, T R) {
  const Log0Scalars<T> s = logmap0_spatial(x + 1, out + 1, d, R);
  out[0] = T(0);
  return s;
}

// ---- exp and log anywhere, distances (Eq. (14)–(16), (20)–(23)) -----------------------------

/// exp_x(u) = cosh(θ)·x + sinhc(θ)·u with θ = ‖u‖_L/R (Eq. (14); no division by ‖u‖_L),
/// clamped as in Eq. (16), then the time coordinate is recomputed by π (Eq. (11)) so the result
/// satisfies the constraint to rounding. x, u, out: (d+1).
template <class T>
HYPLORA_HD_INLINE void expmap(const T* x, const T* u, T* out, index_t d, T R) {
  T ch, c;
  exp_coeffs(norm(u, d) / R, ch, c);
  for (index_t i = 1; i <= d; ++i) out[i] = ch * x[i] + c * u[i];
  projx(out, out, d, R);
}

/// ‖x−y‖²_L = |Δ_s|² − Δ0², Δ0 = Δ_s·(x_s+y_s)/(x0+y0), clamped at 0, Eq. (20). Exact on H and,
/// unlike −2K − 2⟨x,y⟩_L, free of cancellation for close points (float32: 4e-5 relative error at
/// separation 1e-3 instead of 4e-3).
template <class T>
HYPLORA_HD_INLINE T chord2(const T* x, const T* y, index_t d) {
  T ds2 = T(0), dsum = T(0);
  for (index_t i = 1; i <= d; ++i) {
    const T di = x[i] - y[i];
    ds2 += di * di;
    dsum += di * (x[i] + y[i]);
  }
  const T d0 = dsum / (x[0] + y[0]);
  const T c2 = ds2 - d0 * d0;
  return c2 > T(0) ? c2 : T(0);
}

/// e = −⟨x,y⟩_L/K − 1 = ‖x−y‖²_L/(2K) ≥ 0, Eq. (20), from whichever of two exact forms is
/// better conditioned: the chord |Δ_s|² − Δ0² (amplifies rounding by |Δ_s|²/‖x−y‖²_L: ≈ 1 for
/// close points, huge for far ones — d(o, x) at 40 radii would be lost entirely) or the inner
/// product (x0 y0 − x_s·y_s)/K − 1 (amplifies by (x0 y0 + |x_s·y_s|)/(x0 y0 − x_s·y_s): ≈ 1 for
/// far or origin-anchored pairs, huge for close ones). One pass over the coordinates.
template <class T>
HYPLORA_HD_INLINE T excess(const T* x, const T* y, index_t d, T R) {
  using std::abs;
  T ds2 = T(0), dsum = T(0), sp = T(0);
  for (index_t i = 1; i <= d; ++i) {
    const T di = x[i] - y[i];
    ds2 += di * di;
    dsum += di * (x[i] + y[i]);
    sp += x[i] * y[i];
  }
  const T d0 = dsum / (x[0] + y[0]);
  T c2 = ds2 - d0 * d0;
  c2 = c2 > T(0) ? c2 : T(0);
  const T pp = x[0] * y[0];
  const T ip = pp - sp;  // −⟨x,y⟩_L
  const T K = R * R;
  // Chord when its amplification ds2/c2 is the smaller (as a ratio: the products overflow);
  // identical points (ds2 = 0) take the chord and give exactly 0.
  if (ds2 <= c2 * ((pp + abs(sp)) / ip)) return c2 / (T(2) * K);
  const T f = ip / K - T(1);
  return f > T(0) ? f : T(0);
}

/// d(x,y) = 2R·asinh(‖x−y‖_L/(2R)) = 2R·asinh(√(e/2)), Eq. (21), with e from Eq. (20).
template <class T>
HYPLORA_HD_INLINE T dist(const T* x, const T* y, index_t d, T R) {
  using std::asinh;
  using std::sqrt;
  return T(2) * R * asinh(sqrt(excess(x, y, d, R) / T(2)));
}

/// d(o,x) = R·asinh(|x_s|/R), Eq. (22).
template <class T>
HYPLORA_HD_INLINE T dist0(const T* x, index_t d, T R) {
  using std::asinh;
  using std::sqrt;
  return R * asinh(sqrt(dot(x + 1, x + 1, d)) / R);
}

/// log_x(y) = u / sinhc(d/R), u = P_x(y) = (y − x) − e·x, Eq. (23): the difference y − x and
/// e from Eq. (20) keep u accurate for close points, and dividing by
/// sinhc (≥ 1) instead of multiplying by d/‖u‖_L avoids 0/0 at y = x. x, y, out: (d+1).
template <class T>
HYPLORA_HD_INLINE void logmap(const T* x, const T* y, T* out, index_t d, T R) {
  using std::asinh;
  using std::sqrt;
  const T e = excess(x, y, d, R);               // ‖x−y‖²_L/(2K), Eq. (20)
  const T dR = T(2) * asinh(sqrt(e / T(2)));     // d(x,y)/R, Eq. (21)
  const T inv = T(1) / sinhc(dR);
  for (index_t i = 0; i <= d; ++i) out[i] = ((y[i] - x[i]) - e * x[i]) * inv;
}

// ---- parallel transport, gradients, retraction (Eq. (24)–(28)) ------------------------------

/// PT_{x→y}(v) = v + ⟨y,v⟩_L/(K − ⟨x,y⟩_L)·(x + y), Eq. (24), with K − ⟨x,y⟩_L written as
/// K(2 + e) ≥ 2K (e of Eq. (20)): no cancellation, never 0. x, y, v, out: (d+1).
template <class T>
HYPLORA_HD_INLINE void transp(const T* x, const T* y, const T* v, T* out, index_t d, T R) {
  const T den = R * R * (T(2) + excess(x, y, d, R));
  const T a = inner(y, v, d) / den;
  for (index_t i = 0; i <= d; ++i) out[i] = v[i] + a * (x[i] + y[i]);
}

/// PT_{o→y}((0, u_s)) = (y_s·u_s/R, u_s + (y_s·u_s)/(R(R + y0))·y_s), Eq. (25). Only u_s is read
/// (the tangent part at o). y, u, out: (d+1).
template <class T>
HYPLORA_HD_INLINE void transp0(const T* y, const T* u, T* out, index_t d, T R) {
  const T a = dot(y + 1, u + 1, d) / R;
  const T b = a / (R + y[0]);
  for (index_t i = 1; i <= d; ++i) out[i] = u[i] + b * y[i];
  out[0] = a;
}

/// PT_{y→o}(w) = w − w0/(R + y0)·(y + o), Eq. (26); its time coordinate is exactly 0.
template <class T>
HYPLORA_HD_INLINE void transp0back(const T* y, const T* w, T* out, index_t d, T R) {
  const T b = w[0] / (R + y[0]);
  for (index_t i = 1; i <= d; ++i) out[i] = w[i] - b * y[i];
  out[0] = T(0);
}

/// Riemannian gradient P_x(J∇f) = J∇f + ((x·∇f)/K)·x with J = diag(−1, I), Eq. (27). Reads g,
/// writes out (which may alias g when the caller wants it in place; the Eigen API never does).
template <class T>
HYPLORA_HD_INLINE void egrad2rgrad(const T* x, const T* g, T* out, index_t d, T R) {
  const T a = dot(x, g, d + 1) / (R * R);
  out[0] = -g[0] + a * x[0];
  for (index_t i = 1; i <= d; ++i) out[i] = g[i] + a * x[i];
}

/// First-order retraction π(x + u), Eq. (28).
template <class T>
HYPLORA_HD_INLINE void retr(const T* x, const T* u, T* out, index_t d, T R) {
  for (index_t i = 1; i <= d; ++i) out[i] = x[i] + u[i];
  projx(out, out, d, R);
}

// ---- Lorentz group, low-rank operator (Eq. (29)–(32)) ---------------------------------------

/// Coefficients of Boost(w), Eq. (29): φ = |w|, ch = cosh φ, s = sinh(φ)/φ, h = (cosh φ − 1)/φ²
/// = sinhc(φ/2)²/2 (no division at φ = 0); φ clamped as in Eq. (16).
template <class T>
HYPLORA_HD_INLINE void boost_coeffs(const T* w, index_t d, T& ch, T& s, T& h) {
  using std::cosh;
  using std::sinh;
  using std::sqrt;
  const T phi = sqrt(dot(w, w, d));
  const T pc = clamp_exp_arg(phi);
  ch = cosh(pc);
  if (phi > pc) {
    s = sinh(pc) / phi;
    h = (ch - T(1)) / (phi * phi);
  } else {
    s = sinhc(phi);
    const T sh = sinhc(phi / T(2));
    h = sh * sh / T(2);
  }
}

/// Boost(w)·x without forming the matrix, Eq. (30):
/// out0 = cosh φ·x0 + s·(w·x_s),  out_s = x_s + (s·x0 + h·(w·x_s))·w. w: (d); x, out: (d+1).
template <class T>
HYPLORA_HD_INLINE void apply_boost(const T* w, const T* x, T* out, index_t d) {
  T ch, s, h;
  boost_coeffs(w, d, ch, s, h);
  const T x0 = x[0];
  const T a = dot(w, x + 1, d);
  const T b = s * x0 + h * a;
  for (index_t i = 1; i <= d; ++i) out[i] = x[i] + b * w[i - 1];
  out[0] = ch * x0 + s * a;
}

/// Rot(Q)·x = (x0, Q x_s), Eq. (31). Q: (d, d) row-major; x, out: (d+1), out != x.
template <class T>
HYPLORA_HD_INLINE void apply_rotation(const T* Q, const T* x, T* out, index_t d) {
  out[0] = x[0];
  for (index_t i = 0; i < d; ++i) out[i + 1] = dot(Q + i * d, x + 1, d);
}

/// W ⊗^K x = (√(|W x_s|² + K), W x_s) = π(diag(1, W)·x), Eq. (32).
/// W: (m, d) row-major; x: (d+1); out: (m+1), out != x.
template <class T>
HYPLORA_HD_INLINE void llr(const T* W, index_t m, const T* x, T* out, index_t d, T R) {
  for (index_t i = 0; i < m; ++i) out[i + 1] = dot(W + i * d, x + 1, d);
  projx(out, out, m, R);
}

/// Vector–Jacobian product of π (Eq. (11)), from its output p = π(x): with p0 = √(K + |x_s|²),
///   g_{x_s} = g_s + (g0/p0)·p_s,   g_R = g0·R/p0,   g_{x0} = 0 (π never reads x0).
/// The backward of llr (Eq. (32)) is this followed by the transposed linear map.
/// p, g: (d+1); g_s: (d), may alias g + 1; g_R may be null.
template <class T>
HYPLORA_HD_INLINE void projx_backward(const T* p, const T* g, index_t d, T R, T* g_s, T* g_R) {
  const T a = g[0] / p[0];  // p0 >= R > 0
  if (g_R) *g_R = a * R;
  for (index_t i = 0; i < d; ++i) g_s[i] = g[i + 1] + a * p[i + 1];
}

}  // namespace lorentz_rows
}  // namespace hyplora
