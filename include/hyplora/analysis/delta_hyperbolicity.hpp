// hyplora/analysis/delta_hyperbolicity.hpp — Gromov δ-hyperbolicity of a finite metric space.
//
// Three estimators (docs/math.md §8.1), each on a distance matrix D (N, N) or, with the
// `_euclidean` suffix, on a point set X (N, D) whose Euclidean distances are computed in double:
//
//   delta_four_point   exact four-point δ, Eq. (231); O(N⁴) time, N <= four_point_max_n.
//   delta_base_point   δ_w from Gromov products at one base point w, Eq. (232)–(234); O(N³) time,
//                      O(N²) memory (the Gromov-product matrix only). The paper's estimator.
//   delta_sampled      max of Eq. (231) over random quadruples; O(n_samples) time.
//
// Which bounds which (Eq. (235)–(236)):  δ_sampled <= δ_4pt,   δ_w <= δ_4pt <= 2 δ_w,
// and δ_4pt = max_w δ_w exactly. Every result also carries diam = max D_ij and the relative
// δ_rel = 2δ/diam of Eq. (237) (0 when diam = 0).
//
// delta_per_prompt is the paper's protocol (Eq. (238)): per prompt, gather the input-embedding
// rows of its tokens, subsample to at most 1500 of them, take δ_rel with base point token 0,
// and report mean ± std (population std, numpy's default) over prompts.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "hyplora/analysis/detail/rng.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora {
namespace analysis {

/// δ (absolute), diam = max d_ij, and relative = 2δ/diam (Eq. (237); 0 when diam = 0).
struct delta_result {
  double delta = 0.0;
  double diam = 0.0;
  double relative = 0.0;
};

/// Largest N delta_four_point accepts: C(200, 4) = 6.5e7 quadruples, well under a second.
/// Past that use delta_base_point (and δ_w <= δ_4pt <= 2δ_w) or delta_sampled.
inline constexpr Index four_point_max_n = 200;

namespace detail {

inline delta_result make_delta_result(double delta, double diam) {
  return {delta, diam, diam > 0.0 ? 2.0 * delta / diam : 0.0};
}

/// (S1 − S2)/2 for the three pair sums of one quadruple, Eq. (231).
inline double four_point_gap(double s1, double s2, double s3) {
  if (s1 < s2) std::swap(s1, s2);
  if (s2 < s3) std::swap(s2, s3);
  if (s1 < s2) std::swap(s1, s2);  // now s1 >= s2 >= s3
  return 0.5 * (s1 - s2);
}

/// Rejects anything that is not a distance matrix: non-square (shape_error), or an entry that
/// is NaN/inf/negative, a non-zero diagonal, or D_ij != D_ji (value_error naming the entry).
template <class Derived>
void check_distance_matrix(const Eigen::MatrixBase<Derived>& D, const char* what) {
  static_assert(std::is_floating_point<typename Derived::Scalar>::value,
                "distance matrices hold float or double");
  if (D.rows() != D.cols()) {
    throw_shape(what, "distance matrix", D.rows(), D.cols(), "a square matrix", D.rows(),
                D.rows());
  }
  const Index n = D.rows();
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < n; ++j) {
      const double v = static_cast<double>(D(i, j));
      const bool bad = !std::isfinite(v) || v < 0.0 || (i == j && v != 0.0) ||
                       D(i, j) != D(j, i);
      if (bad) {
        std::ostringstream s;
        s << what << ": D(" << i << ", " << j << ") = " << v << " (D(" << j << ", " << i
          << ") = " << static_cast<double>(D(j, i))
          << "); a distance matrix is finite, >= 0, symmetric, with a zero diagonal";
        throw value_error(s.str());
      }
    }
  }
}

template <class Derived>
void check_points(const Eigen::MatrixBase<Derived>& X, const char* what) {
  static_assert(std::is_floating_point<typename Derived::Scalar>::value,
                "point sets hold float or double");
  for (Index i = 0; i < X.rows(); ++i) {
    for (Index c = 0; c < X.cols(); ++c) {
      if (!std::isfinite(static_cast<double>(X(i, c)))) {
        std::ostringstream s;
        s << what << ": point " << i << " (of " << X.rows() << ", width " << X.cols()
          << ") has a non-finite coordinate " << static_cast<double>(X(i, c)) << " at " << c;
        throw value_error(s.str());
      }
    }
  }
}

inline void check_base_point(Index w, Index n, const char* what) {
  if (w < 0 || w >= n) {
    std::ostringstream s;
    s << what << ": base point w = " << w << " is outside [0, " << n << ")";
    throw value_error(s.str());
  }
}

/// δ_w = max_ij (M_ij − G_ij) with M_ij = max_k min(G_ik, G_kj), Eq. (233)–(234), from the
/// Gromov-product matrix G (N, N), symmetric. Streams M: a block of `kRows` rows of M times a
/// tile of `kCols` columns lives in a small buffer (L1-sized), each row k of G is read once per
/// block, and only j >= the block's first row is formed (M is symmetric). Rows are spread over
/// OpenMP threads. The inner loop is a branch-free min/max over contiguous memory, which
/// compilers vectorise. Everything is exact (min/max) except the final subtraction.
template <class T>
double max_min_excess(const MatrixR<T>& G) {
  constexpr Index kRows = 8;
  constexpr Index kCols = 512;
  const Index n = G.rows();
  const Index n_blocks = (n + kRows - 1) / kRows;
  const T* g = G.data();
  double best = 0.0;  // M_ij >= G_ij always (k = i gives min(G_ii, G_ij) = G_ij), so δ_w >= 0
#ifdef _OPENMP
#pragma omp parallel reduction(max : best)
#endif
  {
    std::vector<T> m(static_cast<std::size_t>(kRows * kCols));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (Index blk = 0; blk < n_blocks; ++blk) {
      const Index i0 = blk * kRows;
      const Index nb = std::min(kRows, n - i0);
      for (Index j0 = i0; j0 < n; j0 += kCols) {
        const Index nj = std::min(kCols, n - j0);
        std::fill(m.begin(), m.end(), std::numeric_limits<T>::lowest());
        for (Index k = 0; k < n; ++k) {
          const T* gk = g + k * n + j0;  // row k of G, columns [j0, j0 + nj)
          for (Index b = 0; b < nb; ++b) {
            const T gik = g[(i0 + b) * n + k];
            T* mb = m.data() + b * kCols;
            for (Index j = 0; j < nj; ++j) mb[j] = std::max(mb[j], std::min(gik, gk[j]));
          }
        }
        for (Index b = 0; b < nb; ++b) {
          const T* mb = m.data() + b * kCols;
          const T* gi = g + (i0 + b) * n + j0;
          for (Index j = 0; j < nj; ++j) {
            best = std::max(best, static_cast<double>(mb[j]) - static_cast<double>(gi[j]));
          }
        }
      }
    }
  }
  return best;
}

}  // namespace detail

/// Euclidean distance matrix of the rows of X (N, D), in double: (N, N).
template <class Derived>
MatrixR<double> euclidean_distances(const Eigen::MatrixBase<Derived>& X) {
  detail::check_points(X, "euclidean_distances");
  const MatrixR<double> Xd = X.template cast<double>();
  const Index n = Xd.rows();
  MatrixR<double> D(n, n);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8)
#endif
  for (Index i = 0; i < n; ++i) {
    D(i, i) = 0.0;
    for (Index j = i + 1; j < n; ++j) {
      const double d = (Xd.row(i) - Xd.row(j)).norm();
      D(i, j) = d;
      D(j, i) = d;
    }
  }
  return D;
}

/// Exact four-point δ, Eq. (231): max over quadruples of (S1 − S2)/2. D: (N, N), N <= 200.
template <class Derived>
delta_result delta_four_point(const Eigen::MatrixBase<Derived>& D) {
  detail::check_distance_matrix(D, "delta_four_point");
  const Index n = D.rows();
  if (n > four_point_max_n) {
    std::ostringstream s;
    s << "delta_four_point: N = " << n << " points is over the O(N^4) limit "
      << four_point_max_n << "; use delta_base_point (δ_w <= δ_4pt <= 2δ_w) or delta_sampled";
    throw value_error(s.str());
  }
  const MatrixR<double> d = D.template cast<double>();
  double best = 0.0;  // quadruples with a repeated point give exactly 0
  double diam = 0.0;
  for (Index i = 0; i < n; ++i) diam = std::max(diam, d.row(i).maxCoeff());
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(max : best)
#endif
  for (Index i = 0; i < n; ++i) {
    for (Index j = i + 1; j < n; ++j) {
      for (Index k = j + 1; k < n; ++k) {
        for (Index l = k + 1; l < n; ++l) {
          best = std::max(best, detail::four_point_gap(d(i, j) + d(k, l), d(i, k) + d(j, l),
                                                       d(i, l) + d(j, k)));
        }
      }
    }
  }
  return detail::make_delta_result(best, diam);
}

/// δ_w with base point w, Eq. (232)–(234). D: (N, N). Memory: one (N, N) matrix of Gromov
/// products in D's scalar type; time O(N³), parallel over rows with OpenMP.
template <class Derived>
delta_result delta_base_point(const Eigen::MatrixBase<Derived>& D, Index w = 0) {
  using T = typename Derived::Scalar;
  detail::check_distance_matrix(D, "delta_base_point");
  const Index n = D.rows();
  if (n == 0) return {};
  detail::check_base_point(w, n, "delta_base_point");
  MatrixR<T> G(n, n);
  double diam = 0.0;
  for (Index i = 0; i < n; ++i) {
    const double diw = static_cast<double>(D(i, w));
    for (Index j = 0; j < n; ++j) {
      const double dij = static_cast<double>(D(i, j));
      diam = std::max(diam, dij);
      G(i, j) = static_cast<T>(0.5 * (diw + static_cast<double>(D(j, w)) - dij));  // Eq. (232)
    }
  }
  return detail::make_delta_result(detail::max_min_excess(G), diam);
}

/// Random-quadruple lower bound on δ_4pt (hgcn's estimator), Eq. (231) maximised over
/// n_samples quadruples drawn uniformly (with replacement) by a seeded generator that gives the
/// same draws on every platform. diam is exact (all pairs). D: (N, N).
template <class Derived>
delta_result delta_sampled(const Eigen::MatrixBase<Derived>& D, std::int64_t n_samples,
                           std::uint64_t seed = 0) {
  detail::check_distance_matrix(D, "delta_sampled");
  if (n_samples < 0) {
    throw value_error("delta_sampled: n_samples = " + std::to_string(n_samples) + " < 0");
  }
  const Index n = D.rows();
  if (n == 0) return {};
  double diam = 0.0;
  for (Index i = 0; i < n; ++i) diam = std::max(diam, static_cast<double>(D.row(i).maxCoeff()));
  std::mt19937_64 rng(seed);
  const auto un = static_cast<std::uint64_t>(n);
  double best = 0.0;
  for (std::int64_t s = 0; s < n_samples; ++s) {
    const auto i = static_cast<Index>(detail::uniform_below(rng, un));
    const auto j = static_cast<Index>(detail::uniform_below(rng, un));
    const auto k = static_cast<Index>(detail::uniform_below(rng, un));
    const auto l = static_cast<Index>(detail::uniform_below(rng, un));
    const auto d = [&](Index a, Index b) { return static_cast<double>(D(a, b)); };
    best = std::max(best, detail::four_point_gap(d(i, j) + d(k, l), d(i, k) + d(j, l),
                                                 d(i, l) + d(j, k)));
  }
  return detail::make_delta_result(best, diam);
}

// ---- point-set entry points: Euclidean distances in double ------------------------------------

/// delta_four_point on the Euclidean distances of X (N, D).
template <class Derived>
delta_result delta_four_point_euclidean(const Eigen::MatrixBase<Derived>& X) {
  if (X.rows() > four_point_max_n) {
    std::ostringstream s;
    s << "delta_four_point_euclidean: N = " << X.rows() << " points is over the O(N^4) limit "
      << four_point_max_n;
    throw value_error(s.str());
  }
  return delta_four_point(euclidean_distances(X));
}

/// delta_base_point on the Euclidean distances of X (N, D), streamed: distances are computed in
/// double straight into the (N, N) Gromov-product matrix (stored as X's scalar), so no distance
/// matrix is ever held.
template <class Derived>
delta_result delta_base_point_euclidean(const Eigen::MatrixBase<Derived>& X, Index w = 0) {
  using T = typename Derived::Scalar;
  detail::check_points(X, "delta_base_point_euclidean");
  const Index n = X.rows();
  if (n == 0) return {};
  detail::check_base_point(w, n, "delta_base_point_euclidean");
  const MatrixR<double> Xd = X.template cast<double>();
  VectorX<double> dw(n);
  for (Index i = 0; i < n; ++i) dw(i) = (Xd.row(i) - Xd.row(w)).norm();
  MatrixR<T> G(n, n);
  double diam = 0.0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) reduction(max : diam)
#endif
  for (Index i = 0; i < n; ++i) {
    G(i, i) = static_cast<T>(dw(i));  // (i|i)_w = d_iw
    for (Index j = i + 1; j < n; ++j) {
      const double dij = (Xd.row(i) - Xd.row(j)).norm();
      diam = std::max(diam, dij);
      const T gij = static_cast<T>(0.5 * (dw(i) + dw(j) - dij));  // Eq. (232)
      G(i, j) = gij;
      G(j, i) = gij;
    }
  }
  return detail::make_delta_result(detail::max_min_excess(G), diam);
}

/// delta_sampled on X (N, D): only the six distances of each drawn quadruple are computed
/// (O(1) extra memory); diam is exact, O(N² D).
template <class Derived>
delta_result delta_sampled_euclidean(const Eigen::MatrixBase<Derived>& X, std::int64_t n_samples,
                                     std::uint64_t seed = 0) {
  detail::check_points(X, "delta_sampled_euclidean");
  if (n_samples < 0) {
    throw value_error("delta_sampled_euclidean: n_samples = " + std::to_string(n_samples) +
                      " < 0");
  }
  const Index n = X.rows();
  if (n == 0) return {};
  const MatrixR<double> Xd = X.template cast<double>();
  const auto d = [&](Index a, Index b) { return (Xd.row(a) - Xd.row(b)).norm(); };
  double diam = 0.0;
  for (Index i = 0; i < n; ++i) {
    for (Index j = i + 1; j < n; ++j) diam = std::max(diam, d(i, j));
  }
  std::mt19937_64 rng(seed);
  const auto un = static_cast<std::uint64_t>(n);
  double best = 0.0;
  for (std::int64_t s = 0; s < n_samples; ++s) {
    const auto i = static_cast<Index>(detail::uniform_below(rng, un));
    const auto j = static_cast<Index>(detail::uniform_below(rng, un));
    const auto k = static_cast<Index>(detail::uniform_below(rng, un));
    const auto l = static_cast<Index>(detail::uniform_below(rng, un));
    best = std::max(best, detail::four_point_gap(d(i, j) + d(k, l), d(i, k) + d(j, l),
                                                 d(i, l) + d(j, k)));
  }
  return detail::make_delta_result(best, diam);
}

// ---- the paper's per-prompt protocol ------------------------------------------------------------

struct prompt_delta_options {
  Index max_tokens = 1500;  ///< longer prompts are subsampled to this many tokens (paper: 1500)
  std::uint64_t seed = 0;   ///< prompt p uses the stream mix_seed(seed, p)
};

struct prompt_delta_summary {
  std::vector<delta_result> per_prompt;  ///< one per prompt, in input order
  double mean_relative = 0.0;            ///< mean of per_prompt[p].relative
  double std_relative = 0.0;             ///< population std (ddof 0, numpy's default)
};

/// Eq. (238). prompts: P lists of token ids; embedding: the input-embedding table (V, D).
/// Per prompt: rows embedding[ids] (T_p, D); if T_p > max_tokens, a uniform subset of
/// max_tokens positions (kept in prompt order) is drawn; then delta_base_point_euclidean with
/// w = the first kept token. Repeated ids are kept (each occurrence is a point, as in the paper).
template <class Derived>
prompt_delta_summary delta_per_prompt(const std::vector<std::vector<std::int64_t>>& prompts,
                                      const Eigen::MatrixBase<Derived>& embedding,
                                      const prompt_delta_options& opt = {}) {
  using T = typename Derived::Scalar;
  if (prompts.empty()) throw value_error("delta_per_prompt: no prompts");
  if (opt.max_tokens < 1) {
    throw value_error("delta_per_prompt: max_tokens = " + std::to_string(opt.max_tokens) +
                      " < 1");
  }
  const Index V = embedding.rows();
  prompt_delta_summary out;
  out.per_prompt.reserve(prompts.size());
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const auto& ids = prompts[p];
    if (ids.empty()) throw value_error("delta_per_prompt: prompt " + std::to_string(p) + " is empty");
    for (const std::int64_t id : ids) {
      if (id < 0 || id >= V) {
        std::ostringstream s;
        s << "delta_per_prompt: prompt " << p << " has token id " << id
          << " outside the embedding table " << shape_str(V, embedding.cols());
        throw value_error(s.str());
      }
    }
    const auto len = static_cast<Index>(ids.size());
    std::vector<Index> pos(ids.size());
    for (Index t = 0; t < len; ++t) pos[static_cast<std::size_t>(t)] = t;
    if (len > opt.max_tokens) {
      // Partial Fisher–Yates: the first max_tokens entries become a uniform random subset.
      std::mt19937_64 rng(detail::mix_seed(opt.seed, p));
      for (Index t = 0; t < opt.max_tokens; ++t) {
        const auto r = t + static_cast<Index>(
                               detail::uniform_below(rng, static_cast<std::uint64_t>(len - t)));
        std::swap(pos[static_cast<std::size_t>(t)], pos[static_cast<std::size_t>(r)]);
      }
      pos.resize(static_cast<std::size_t>(opt.max_tokens));
      std::sort(pos.begin(), pos.end());
    }
    MatrixR<T> X(static_cast<Index>(pos.size()), embedding.cols());
    for (std::size_t t = 0; t < pos.size(); ++t) {
      X.row(static_cast<Index>(t)) = embedding.row(static_cast<Index>(ids[static_cast<std::size_t>(pos[t])]));
    }
    out.per_prompt.push_back(delta_base_point_euclidean(X, 0));
  }
  double sum = 0.0;
  for (const auto& r : out.per_prompt) sum += r.relative;
  out.mean_relative = sum / static_cast<double>(out.per_prompt.size());
  double ss = 0.0;
  for (const auto& r : out.per_prompt) ss += (r.relative - out.mean_relative) * (r.relative - out.mean_relative);
  out.std_relative = std::sqrt(ss / static_cast<double>(out.per_prompt.size()));
  return out;
}

}  // namespace analysis
}  // namespace hyplora
