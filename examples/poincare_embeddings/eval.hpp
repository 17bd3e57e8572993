// examples/poincare_embeddings/eval.hpp — reconstruction metrics (Nickel & Kiela 2017, §4.1):
// for every node u with neighbours, rank each true neighbour among all non-neighbours of u by
// distance to u. Mean rank = 1 + (number of non-neighbours strictly closer), averaged over all
// (u, neighbour) pairs; AP(u) = mean over u's neighbours p of precision at p's position, i.e.
// (#neighbours at distance <= d(u,p)) / (that + #non-neighbours strictly closer); MAP = mean AP.
// docs/embeddings.md Eq. (E5)–(E6).
// Which nodes count as u's neighbours: `Relation::symmetric` (ancestors and descendants, the
// default: "related" as the paper's text reads) or `Relation::directed` (ancestors only, every
// other node a negative, descendants included: what N&K's reference code computes, since its
// adjacency is built from the directed (child, ancestor) rows; the root is then not evaluated).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "graph.hpp"

namespace hyplora {
namespace examples {
namespace emb {

enum class Relation { symmetric, directed };

struct Reconstruction {
  double mean_rank = 0.0;
  double map = 0.0;
  double map_se = 0.0;  ///< standard error of `map` as a sample mean of AP(u) (for node samples)
  Index n_nodes = 0;  ///< nodes evaluated (those with at least one neighbour)
  Index n_pairs = 0;  ///< (u, neighbour) pairs ranked
};

/// dist(u, w) -> double for nodes u, w. `nodes`: the u to evaluate (empty = all). O(|nodes|·N);
/// the distance pass is parallel over u (OpenMP). Per u: the neighbours' distances are sorted
/// and each non-neighbour is binary-searched into them, so no (N) sort is needed.
template <class DistFn>
Reconstruction evaluate_reconstruction(const Graph& g, DistFn&& dist,
                                       const std::vector<node_t>& nodes = {},
                                       Relation rel = Relation::symmetric) {
  const auto& neighbours = rel == Relation::symmetric ? g.adj : g.out;
  std::vector<node_t> us = nodes;
  if (us.empty())
    for (node_t u = 0; u < g.n; ++u) us.push_back(u);
  double rank_sum = 0.0, ap_sum = 0.0, ap_sq_sum = 0.0;
  std::int64_t n_nodes = 0, n_pairs = 0;
  const auto nu = static_cast<std::int64_t>(us.size());
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : rank_sum, ap_sum, ap_sq_sum, n_nodes, n_pairs)
  for (std::int64_t k = 0; k < nu; ++k) {
    const node_t u = us[static_cast<std::size_t>(k)];
    const auto& nb = neighbours[static_cast<std::size_t>(u)];
    if (nb.empty()) continue;
    std::vector<double> pos(nb.size());
    for (std::size_t i = 0; i < nb.size(); ++i) pos[i] = dist(u, nb[i]);
    std::sort(pos.begin(), pos.end());
    // closer[i] = #non-neighbours w with d(u,w) < pos[i], via counts at the first pos > d.
    std::vector<std::int64_t> closer(nb.size() + 1, 0);
    std::size_t j = 0;  // walks nb (sorted) to skip neighbours without a binary search
    for (node_t w = 0; w < g.n; ++w) {
      if (w == u) continue;
      while (j < nb.size() && nb[j] < w) ++j;
      if (j < nb.size() && nb[j] == w) continue;
      const double dw = dist(u, w);
      const auto it = std::upper_bound(pos.begin(), pos.end(), dw);
      ++closer[static_cast<std::size_t>(it - pos.begin())];
    }
    double ap = 0.0;
    std::int64_t acc = 0;
    for (std::size_t i = 0; i < nb.size(); ++i) {
      acc += closer[i];  // prefix sum: non-neighbours closer than pos[i]
      rank_sum += 1.0 + static_cast<double>(acc);
      // Neighbours tied with pos[i] all count as retrieved at its position.
      std::size_t hi = i + 1;
      while (hi < nb.size() && pos[hi] == pos[i]) ++hi;
      ap += static_cast<double>(hi) / static_cast<double>(hi + static_cast<std::size_t>(acc));
    }
    ap /= static_cast<double>(nb.size());
    ap_sum += ap;
    ap_sq_sum += ap * ap;
    ++n_nodes;
    n_pairs += static_cast<std::int64_t>(nb.size());
  }
  Reconstruction r;
  r.n_nodes = n_nodes;
  r.n_pairs = n_pairs;
  if (n_pairs > 0) r.mean_rank = rank_sum / static_cast<double>(n_pairs);
  if (n_nodes > 0) r.map = ap_sum / static_cast<double>(n_nodes);
  if (n_nodes > 1) {  // sample variance of AP(u), then the standard error of its mean
    const double m = static_cast<double>(n_nodes);
    const double var = std::max(0.0, (ap_sq_sum - m * r.map * r.map) / (m - 1.0));
    r.map_se = std::sqrt(var / m);
  }
  return r;
}

}  // namespace emb
}  // namespace examples
}  // namespace hyplora
