// hyplora/autodiff/detail/hyplora_rows.hpp — the per-token scalars of the exact HypLoRA node
// (docs/hyplora.md Eq. (156)–(167)), shared by the CPU node (autodiff/ops_hyplora.hpp) and the
// CUDA kernels (cuda/ops_hyplora.cuh) so each formula exists once. Raw scalars, HYPLORA_HD.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "hyplora/core/config.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hyplora::ad::detail {

/// Σ a_i·b_i over n values in 8 interleaved partial sums (sum k takes i ≡ k mod 8), added
/// pairwise at the end, then the tail. The per-token row norms over D = 4096 are otherwise one
/// latency-bound chain of n dependent adds (lorentz_rows::dot); independent sums let the compiler
/// vectorise and pipeline them. Fixed order for a given n: the same bits on any thread.
template <class T>
HYPLORA_HD_INLINE T dot_lanes(const T* a, const T* b, std::ptrdiff_t n) {
  T s[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  T tail = T(0);
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

/// As dot_lanes, accumulated in double (4 partial sums): the forward's |y|² = aᵀ(BᵀB)a, which
/// can lose digits when a is near B's null space. One chain of dependent double adds would be
/// the slowest part of the forward's token pass at R = 32.
template <class T>
HYPLORA_HD_INLINE double dot_lanes_double(const T* a, const T* b, std::ptrdiff_t n) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  std::ptrdiff_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) s[k] += static_cast<double>(a[i + k]) * static_cast<double>(b[i + k]);
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return (s[0] + s[1]) + (s[2] + s[3]) + tail;
}

/// Per-token scalars saved by the forward pass.
template <class T>
struct HypLoRARowScalars {
  T rho;  // |x_a|/(σR)
  T c;    // exp coefficient c(ρ) (sinhc, or its clamped form); c1 = c/σ
  T tau;  // |y|/R, y = B·a
  T c2;   // asinhc(τ), the log coefficient
};

/// Input side, Eq. (156): f_R(x/σ) = (c(ρ)/σ)·x with ρ = |x|/(σR) — the radius-σR exp
/// coefficient. `x_sq` = |x|².
template <class T>
HYPLORA_HD_INLINE void hyplora_in_scalars(T x_sq, T sigma, T R, T& rho, T& c) {
  using std::sqrt;
  rho = sqrt(x_sq) / (sigma * R);
  c = lorentz_rows::exp_coeff(rho);
}

/// Output side, Eq. (157)–(158): τ = |y|/R from |y|² = aᵀ(BᵀB)a (accumulated in double by the
/// callers: it can lose digits when a is near B's null space), c2 = asinhc(τ).
template <class T>
HYPLORA_HD_INLINE void hyplora_out_scalars(double y_sq, T R, T& tau, T& c2) {
  using std::sqrt;
  tau = static_cast<T>(sqrt(y_sq > 0.0 ? y_sq : 0.0)) / R;
  c2 = asinhc(tau);
}

/// Per-token gradient scalars of Eq. (165)–(167), given s_x = x·(Aᵀg_a) and s_y = y·g_out.
template <class T>
struct HypLoRARowGrads {
  T dR;  // contribution to ∂L/∂R, Eq. (166)
  T dS;  // contribution to ∂L/∂σ, Eq. (167)
  T kx;  // radial part of ∂L/∂x_a is kx·x_a, Eq. (165)
};

template <class T>
HYPLORA_HD_INLINE HypLoRARowGrads<T> hyplora_row_grads(HypLoRARowScalars<T> s, T s_x, T s_y, T sigma, T R,
                                                        bool scale_out_by_sigma) {
  const T Dc = lorentz_rows::exp0_dcoef(lorentz_rows::Exp0Scalars<T>{s.rho, s.c});  // c′(ρ)/ρ
  const T D2 = asinhc_d2(s.tau, s.c2);
  HypLoRARowGrads<T> g;
  g.dR = -s.rho * s.rho * Dc / (sigma * R) * s_x - s.tau * s.tau * D2 / R * s_y;
  // σ enters through c1 and, when σ_out = σ, through the output scale.
  g.dS = -(Dc * s.rho * s.rho + s.c) / (sigma * sigma) * s_x + (scale_out_by_sigma ? s.c2 * s_y / sigma : T(0));
  g.kx = Dc / (sigma * sigma * sigma * R * R) * s_x;
  return g;
}

// ---- host side: threading of the CPU nodes' per-token passes (the CUDA kernels do not use it) ---
// The CPU HypLoRA nodes (ops_hyplora.hpp, ops_hyplora_official.hpp) run their per-token passes on
// OpenMP threads, as the GEMMs around them do. Sums over tokens (∂B's R×R term, the scalar
// parameters' gradients) are per-thread partials added in thread order after the parallel
// region, never atomics, so a fixed thread count gives bitwise-identical results.

/// A per-token pass goes parallel from this much work (tokens × elements touched per token):
/// below it the fork/join (a few µs with warm threads) costs about as much as the pass itself.
constexpr std::ptrdiff_t kHypLoRAParallelMinWork = 16384;

/// Threads a parallel region may get (sizes the per-thread scratch); 1 without OpenMP.
inline int hyplora_max_threads() {
#ifdef _OPENMP
  const int n = omp_get_max_threads();
  return n > 1 ? n : 1;
#else
  return 1;
#endif
}

/// Runs body(tid, team) on each thread of an OpenMP team when `parallel`, else body(0, 1) here
/// without entering the OpenMP runtime (a serialised region still costs runtime calls, and
/// LLVM's libomp allocates in them). Returns the team size: the number of partials written.
template <class F>
inline int hyplora_run_team(bool parallel, F&& body) {
#ifdef _OPENMP
  if (parallel) {
    int team = 1;
#pragma omp parallel
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      if (tid == 0) team = nth;
      body(tid, nth);
    }
    return team;
  }
#else
  (void)parallel;
#endif
  body(0, 1);
  return 1;
}

/// Thread tid's contiguous share [begin, end) of n items in a team of `team` (static, so fixed
/// for a fixed team size).
inline void hyplora_share(std::ptrdiff_t n, int tid, int team, std::ptrdiff_t& begin, std::ptrdiff_t& end) {
  begin = n * tid / team;
  end = n * (tid + 1) / team;
}

/// uᵀ M u in double for a symmetric R×R M (M = BᵀB), summed as Σ_j u_j·(Σ_k M_kj u_k): the inner
/// sums run over a fixed-size stack chunk of j so they vectorise (independent lanes, each summed
/// in k order) instead of one latency-bound dependent chain per j.
template <class T>
inline double quad_form_double(const T* M, const T* u, std::ptrdiff_t r) {
  constexpr std::ptrdiff_t kChunk = 32;
  double q = 0.0;
  for (std::ptrdiff_t j0 = 0; j0 < r; j0 += kChunk) {
    const std::ptrdiff_t nj = std::min<std::ptrdiff_t>(kChunk, r - j0);
    double mu[kChunk] = {};
    for (std::ptrdiff_t k = 0; k < r; ++k) {
      const double uk = static_cast<double>(u[k]);
      const T* Mk = M + k * r + j0;
      for (std::ptrdiff_t jj = 0; jj < nj; ++jj) mu[jj] += static_cast<double>(Mk[jj]) * uk;
    }
    for (std::ptrdiff_t jj = 0; jj < nj; ++jj) q += mu[jj] * static_cast<double>(u[j0 + jj]);
  }
  return q;
}

/// A double partial sum kept in two T slots, hi + lo (lo = 0 for T = double), so per-thread
/// partials can sit in the node's T buffers without giving up the double accumulation.
template <class T>
inline void store_split(double v, T* hl) {
  hl[0] = static_cast<T>(v);
  const double rest = v - static_cast<double>(hl[0]);
  hl[1] = std::isfinite(rest) ? static_cast<T>(rest) : T(0);  // hi overflowed to ±inf: keep it
}
template <class T>
inline double load_split(const T* hl) {
  return static_cast<double>(hl[0]) + static_cast<double>(hl[1]);
}

}  // namespace hyplora::ad::detail
