// examples/embedding_geometry/geometry.hpp — the paper's embedding-geometry analysis (HypLoRA,
// arXiv 2410.04010, §3) on a byte-level model: token frequencies of the training text against
// the norms of the input embeddings, and the δ-hyperbolicity of the embedded prompts.
//
// The pieces are the analysis/ headers (docs/math.md §8): the discrete power-law fit of the
// token frequencies (γ, x_min, σ; Eq. (242)–(247)), the frequency-vs-norm groups and binned
// curve (Eq. (250)–(251)) and δ_rel with the base-point estimator per prompt (Eq. (238)).
// Here a token is a byte (V = 256) and a prompt is one document (a synset gloss line) of the
// text. Header-only so tests/examples/test_embedding_geometry.cpp can drive it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "../poincare_embeddings/svg.hpp"
#include "hyplora/analysis/delta_hyperbolicity.hpp"
#include "hyplora/analysis/frequency_norm.hpp"
#include "hyplora/analysis/power_law.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/io/safetensors.hpp"

namespace hyplora {
namespace examples {
namespace geom {

/// The GPT example's token embedding: parameter "wte" (V, C), saved as "model.wte"
/// (examples/transformer/checkpoint.hpp).
inline constexpr const char* default_tensor = "model.wte";
inline constexpr Index byte_vocab = 256;

struct Options {
  Index top = 8;              ///< size of each frequency group (most frequent, mid, rare)
  Index n_bins = 20;          ///< bins of the norm axis for the binned curve, Eq. (251)
  std::size_t prompts = 200;  ///< documents used for δ_rel (the first ones of the text)
  Index min_prompt_bytes = 8; ///< shorter documents are skipped (δ of 3 points is 0)
  Index max_tokens = 1500;    ///< the paper's per-prompt cap (Eq. (238))
  std::uint64_t seed = 0;
};

struct Report {
  Index vocab = 0, width = 0;
  std::int64_t text_bytes = 0;
  Index distinct_bytes = 0;                     ///< bytes that occur in the text
  std::vector<std::int64_t> counts;             ///< (V) occurrences of each byte
  VectorX<double> norms;                        ///< (V) L2 norms of the embedding rows
  analysis::power_law_result power_law;         ///< fit to the counts of the occurring bytes
  std::vector<analysis::token_group> groups;    ///< most frequent / mid-frequency / rare
  std::vector<analysis::group_stats> group_stats;
  analysis::norm_frequency_curve curve;
  double spearman = 0.0;                        ///< rank correlation of count and norm (occurring bytes)
  analysis::prompt_delta_summary delta;         ///< per-prompt δ_rel, Eq. (238)
  std::size_t n_prompts = 0;
};

/// Reads the embedding table (V, C) named `tensor` from a safetensors file, as double.
/// Throws io_error for a missing tensor (naming the ones present) and shape_error unless V = 256.
inline MatrixR<double> load_embedding(const io::SafetensorsFile& f, const std::string& tensor) {
  if (!f.contains(tensor)) {
    std::string names;
    for (const std::string& n : f.names()) names += (names.empty() ? "" : ", ") + n;
    throw io_error("embedding_geometry: no tensor '" + tensor + "' in the checkpoint; it holds: " + names);
  }
  MatrixR<double> E = f.matrix<double>(tensor);
  if (E.rows() != byte_vocab)
    throw_shape("embedding_geometry: a byte-level embedding table", "expected", byte_vocab, E.cols(),
                tensor.c_str(), E.rows(), E.cols());
  return E;
}

/// Occurrences of each byte value in `text`: (256).
inline std::vector<std::int64_t> byte_counts(const std::string& text) {
  std::vector<std::int64_t> c(static_cast<std::size_t>(byte_vocab), 0);
  for (char ch : text) ++c[static_cast<unsigned char>(ch)];
  return c;
}

/// Byte ids of the occurring bytes, most frequent first (ties: smaller id first).
inline std::vector<std::int64_t> by_frequency(const std::vector<std::int64_t>& counts) {
  std::vector<std::int64_t> ids;
  for (std::size_t v = 0; v < counts.size(); ++v)
    if (counts[v] > 0) ids.push_back(static_cast<std::int64_t>(v));
  std::stable_sort(ids.begin(), ids.end(), [&](std::int64_t a, std::int64_t b) {
    return counts[static_cast<std::size_t>(a)] > counts[static_cast<std::size_t>(b)];
  });
  return ids;
}

/// Three disjoint groups of (at most) `top` occurring bytes by frequency rank: the most
/// frequent, those around the median rank, and the rarest (the paper's Table 1 rows).
inline std::vector<analysis::token_group> frequency_groups(const std::vector<std::int64_t>& counts, Index top) {
  if (top < 1) throw value_error("frequency_groups: top = " + std::to_string(top) + " < 1");
  const std::vector<std::int64_t> ids = by_frequency(counts);
  const auto m = static_cast<Index>(ids.size());
  if (m < 3) throw value_error("frequency_groups: only " + std::to_string(m) + " distinct tokens occur (need 3)");
  const Index k = std::min(top, m / 3);  // three disjoint groups
  const auto slice = [&](Index b) {
    return std::vector<std::int64_t>(ids.begin() + b, ids.begin() + b + k);
  };
  const Index mid = std::min(std::max(k, m / 2 - k / 2), m - 2 * k);
  return {{"top " + std::to_string(k) + " (most frequent)", slice(0)},
          {"mid " + std::to_string(k) + " (ranks " + std::to_string(mid + 1) + "-" + std::to_string(mid + k) + ")", slice(mid)},
          {"rare " + std::to_string(k) + " (least frequent)", slice(m - k)}};
}

/// Spearman rank correlation of a and b (average ranks for ties); 0 when either is constant.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ranks = [](const std::vector<double>& x) {
    std::vector<std::size_t> o(x.size());
    std::iota(o.begin(), o.end(), std::size_t{0});
    std::sort(o.begin(), o.end(), [&](std::size_t i, std::size_t j) { return x[i] < x[j]; });
    std::vector<double> r(x.size());
    for (std::size_t i = 0; i < o.size();) {
      std::size_t j = i;
      while (j + 1 < o.size() && x[o[j + 1]] == x[o[i]]) ++j;
      for (std::size_t t = i; t <= j; ++t) r[o[t]] = 0.5 * static_cast<double>(i + j) + 1.0;
      i = j + 1;
    }
    return r;
  };
  if (a.size() != b.size() || a.size() < 2) return 0.0;
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size()), mean = (n + 1.0) / 2.0;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

/// The first `max_prompts` documents ('\n'-separated) of at least `min_bytes` bytes, as byte ids.
inline std::vector<std::vector<std::int64_t>> document_prompts(const std::string& text, std::size_t max_prompts,
                                                                Index min_bytes) {
  std::vector<std::vector<std::int64_t>> out;
  std::size_t b = 0;
  while (b < text.size() && out.size() < max_prompts) {
    std::size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    if (static_cast<Index>(e - b) >= min_bytes) {
      std::vector<std::int64_t> ids;
      ids.reserve(e - b);
      for (std::size_t i = b; i < e; ++i) ids.push_back(static_cast<unsigned char>(text[i]));
      out.push_back(std::move(ids));
    }
    b = e + 1;
  }
  return out;
}

/// The whole analysis of embedding table E (256, C) against `text`.
inline Report analyse(const MatrixR<double>& E, const std::string& text, const Options& opt = {}) {
  if (E.rows() != byte_vocab)
    throw_shape("embedding_geometry::analyse", "expected", byte_vocab, E.cols(), "embedding", E.rows(), E.cols());
  Report r;
  r.vocab = E.rows();
  r.width = E.cols();
  r.text_bytes = static_cast<std::int64_t>(text.size());
  r.counts = byte_counts(text);
  r.norms = analysis::embedding_norms(E);
  std::vector<std::int64_t> occurring;
  std::vector<double> cf, nf;
  for (std::size_t v = 0; v < r.counts.size(); ++v) {
    if (r.counts[v] == 0) continue;
    occurring.push_back(r.counts[v]);
    cf.push_back(static_cast<double>(r.counts[v]));
    nf.push_back(r.norms(static_cast<Index>(v)));
  }
  r.distinct_bytes = static_cast<Index>(occurring.size());
  if (occurring.size() < 3)
    throw value_error("embedding_geometry: the text has " + std::to_string(occurring.size()) +
                      " distinct bytes; need at least 3");
  r.power_law = analysis::fit_power_law(occurring);
  r.groups = frequency_groups(r.counts, opt.top);
  r.group_stats = analysis::group_frequency_norm(r.counts, r.norms, r.groups);
  r.curve = analysis::norm_frequency_binned(r.counts, r.norms, opt.n_bins);
  r.spearman = spearman(cf, nf);
  const auto prompts = document_prompts(text, opt.prompts, opt.min_prompt_bytes);
  r.n_prompts = prompts.size();
  if (!prompts.empty()) {
    analysis::prompt_delta_options po;
    po.max_tokens = opt.max_tokens;
    po.seed = opt.seed;
    r.delta = analysis::delta_per_prompt(prompts, E, po);
  }
  return r;
}

/// log-log plot of byte frequency against frequency rank (occurring bytes).
inline emb::Svg rank_frequency_svg(const Report& r) {
  std::vector<double> x, y;
  std::vector<std::int64_t> c;
  for (std::int64_t v : r.counts)
    if (v > 0) c.push_back(v);
  std::sort(c.rbegin(), c.rend());
  for (std::size_t i = 0; i < c.size(); ++i) {
    x.push_back(static_cast<double>(i + 1));
    y.push_back(static_cast<double>(c[i]));
  }
  return emb::xy_plot(x, y, true, true, "byte frequency vs rank", "rank", "occurrences");
}

/// Embedding norm against byte frequency (one dot per occurring byte, log frequency).
inline emb::Svg norm_frequency_svg(const Report& r) {
  std::vector<double> x, y;
  for (std::size_t v = 0; v < r.counts.size(); ++v) {
    if (r.counts[v] == 0) continue;
    x.push_back(static_cast<double>(r.counts[v]));
    y.push_back(r.norms(static_cast<Index>(v)));
  }
  return emb::xy_plot(x, y, true, false, "input-embedding norm vs byte frequency", "occurrences", "norm");
}

}  // namespace geom
}  // namespace examples
}  // namespace hyplora
