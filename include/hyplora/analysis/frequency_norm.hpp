// hyplora/analysis/frequency_norm.hpp — token frequency against embedding norm (paper Table 1).
//
// Inputs are indexed by token id: counts (V) occurrences, norms (V) L2 norms of the input
// embeddings (embedding_norms computes them from the table (V, D), in double). Two views:
//   group_frequency_norm   per user-given group of ids: mean [min ~ max] of frequency and of
//                          norm, Eq. (250);
//   norm_frequency_binned  n_bins linear bins over the norm range of the tokens that occur, the
//                          mean frequency and the number of tokens per bin, Eq. (251).
// Turning raw token strings into ids (the paper strips characters outside [A-Za-z0-9$#] and
// keeps the most frequent variant) is the caller's job; here a token is its id.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora {
namespace analysis {

/// A named set of distinct token ids.
struct token_group {
  std::string name;
  std::vector<std::int64_t> ids;
};

/// Eq. (250) for one group: arithmetic mean, min and max of frequency and of norm.
struct group_stats {
  std::string name;
  Index n = 0;  ///< number of ids in the group
  double freq_mean = 0.0, freq_min = 0.0, freq_max = 0.0;
  double norm_mean = 0.0, norm_min = 0.0, norm_max = 0.0;
};

/// Eq. (251). Bin b covers [edges[b], edges[b+1]) (the last one also its right end), as numpy.
struct norm_frequency_curve {
  std::vector<double> edges;           ///< n_bins + 1 norm values, increasing
  std::vector<double> mean_frequency;  ///< n_bins; NaN where a bin holds no token
  std::vector<std::int64_t> n_tokens;  ///< n_bins; tokens per bin
};

/// Row norms of an embedding table (V, D), accumulated in double: (V).
template <class Derived>
VectorX<double> embedding_norms(const Eigen::MatrixBase<Derived>& E) {
  static_assert(std::is_floating_point<typename Derived::Scalar>::value,
                "embedding tables hold float or double");
  VectorX<double> out(E.rows());
  for (Index v = 0; v < E.rows(); ++v) out(v) = E.row(v).template cast<double>().norm();
  return out;
}

namespace detail {

template <class Derived>
void check_counts_norms(const std::vector<std::int64_t>& counts,
                        const Eigen::MatrixBase<Derived>& norms, const char* what) {
  if (norms.cols() != 1 || norms.rows() != static_cast<Index>(counts.size())) {
    throw_shape(what, "counts", static_cast<std::int64_t>(counts.size()), 1, "norms",
                norms.rows(), norms.cols());
  }
  for (std::size_t v = 0; v < counts.size(); ++v) {
    const double nv = static_cast<double>(norms(static_cast<Index>(v)));
    if (counts[v] < 0 || !std::isfinite(nv) || nv < 0.0) {
      std::ostringstream s;
      s << what << ": token " << v << " has count " << counts[v] << " and norm " << nv
        << "; counts must be >= 0 and norms finite and >= 0";
      throw value_error(s.str());
    }
  }
}

}  // namespace detail

/// Eq. (250) for every group, in order. counts: (V), norms: (V) column vector.
/// Throws value_error for an empty group, an id outside [0, V) or an id listed twice.
template <class Derived>
std::vector<group_stats> group_frequency_norm(const std::vector<std::int64_t>& counts,
                                              const Eigen::MatrixBase<Derived>& norms,
                                              const std::vector<token_group>& groups) {
  detail::check_counts_norms(counts, norms, "group_frequency_norm");
  const auto V = static_cast<std::int64_t>(counts.size());
  std::vector<group_stats> out;
  out.reserve(groups.size());
  for (const token_group& g : groups) {
    if (g.ids.empty()) throw value_error("group_frequency_norm: group '" + g.name + "' is empty");
    std::vector<std::int64_t> sorted = g.ids;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i] < 0 || sorted[i] >= V) {
        throw value_error("group_frequency_norm: group '" + g.name + "' has id " +
                          std::to_string(sorted[i]) + " outside [0, " + std::to_string(V) + ")");
      }
      if (i > 0 && sorted[i] == sorted[i - 1]) {
        throw value_error("group_frequency_norm: group '" + g.name + "' lists id " +
                          std::to_string(sorted[i]) + " twice");
      }
    }
    group_stats s;
    s.name = g.name;
    s.n = static_cast<Index>(g.ids.size());
    s.freq_min = s.norm_min = std::numeric_limits<double>::infinity();
    s.freq_max = s.norm_max = -std::numeric_limits<double>::infinity();
    double fsum = 0.0, nsum = 0.0;
    for (const std::int64_t id : g.ids) {
      const double f = static_cast<double>(counts[static_cast<std::size_t>(id)]);
      const double nv = static_cast<double>(norms(static_cast<Index>(id)));
      fsum += f;
      nsum += nv;
      s.freq_min = std::min(s.freq_min, f);
      s.freq_max = std::max(s.freq_max, f);
      s.norm_min = std::min(s.norm_min, nv);
      s.norm_max = std::max(s.norm_max, nv);
    }
    s.freq_mean = fsum / static_cast<double>(s.n);
    s.norm_mean = nsum / static_cast<double>(s.n);
    out.push_back(s);
  }
  return out;
}

/// Eq. (251). counts: (V), norms: (V) column vector. Only tokens with count > 0 enter (the
/// paper lists tokens that occur) unless include_unseen. A norm range of zero width becomes
/// [x − ½, x + ½], as numpy.histogram does.
template <class Derived>
norm_frequency_curve norm_frequency_binned(const std::vector<std::int64_t>& counts,
                                           const Eigen::MatrixBase<Derived>& norms,
                                           Index n_bins = 100, bool include_unseen = false) {
  detail::check_counts_norms(counts, norms, "norm_frequency_binned");
  if (n_bins < 1) throw value_error("norm_frequency_binned: n_bins = " + std::to_string(n_bins) + " < 1");
  const auto used = [&](std::size_t v) { return include_unseen || counts[v] > 0; };
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (std::size_t v = 0; v < counts.size(); ++v) {
    if (!used(v)) continue;
    lo = std::min(lo, static_cast<double>(norms(static_cast<Index>(v))));
    hi = std::max(hi, static_cast<double>(norms(static_cast<Index>(v))));
  }
  if (!(lo <= hi)) throw value_error("norm_frequency_binned: no token occurs (all counts are 0)");
  if (lo == hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const auto nb = static_cast<std::size_t>(n_bins);
  norm_frequency_curve c;
  c.edges.resize(nb + 1);
  for (std::size_t b = 0; b <= nb; ++b) {
    c.edges[b] = lo + (hi - lo) * static_cast<double>(b) / static_cast<double>(nb);
  }
  c.edges[nb] = hi;
  std::vector<double> fsum(nb, 0.0);
  c.n_tokens.assign(nb, 0);
  for (std::size_t v = 0; v < counts.size(); ++v) {
    if (!used(v)) continue;
    const double x = static_cast<double>(norms(static_cast<Index>(v)));
    auto b = static_cast<std::size_t>(
        std::min(static_cast<double>(nb - 1), std::floor((x - lo) / (hi - lo) * static_cast<double>(nb))));
    // The formula can land one bin off an edge by rounding; the stored edges decide.
    while (b + 1 < nb && x >= c.edges[b + 1]) ++b;
    while (b > 0 && x < c.edges[b]) --b;
    fsum[b] += static_cast<double>(counts[v]);
    ++c.n_tokens[b];
  }
  c.mean_frequency.resize(nb);
  for (std::size_t b = 0; b < nb; ++b) {
    c.mean_frequency[b] = c.n_tokens[b] > 0 ? fsum[b] / static_cast<double>(c.n_tokens[b])
                                            : std::numeric_limits<double>::quiet_NaN();
  }
  return c;
}

/// "mean [min ~ max]" with `digits` decimals, the cell format of the paper's Table 1.
inline std::string format_mean_range(double mean, double min, double max, int digits = 2) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << mean << " [" << min << " ~ " << max << ']';
  return s.str();
}

}  // namespace analysis
}  // namespace hyplora
