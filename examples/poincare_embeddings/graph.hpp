// examples/poincare_embeddings/graph.hpp — the training data of the reconstruction experiment:
// a transitive closure as directed (child, ancestor) edges plus its symmetric adjacency.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora {
namespace examples {
namespace emb {

using node_t = std::int32_t;

/// N nodes, E directed closure edges (child, ancestor), and for every node the sorted list of
/// nodes it shares an edge with in either direction (`adj`: ancestors and descendants) and the
/// sorted list of its out-neighbours (`out`: its ancestors). Training negatives and the default
/// evaluation use `adj`; N&K's code evaluates with `out` (docs/embeddings.md, "Evaluation").
struct Graph {
  Index n = 0;
  std::vector<std::pair<node_t, node_t>> edges;
  std::vector<std::vector<node_t>> adj;
  std::vector<std::vector<node_t>> out;
  std::vector<std::string> names;  ///< optional labels (empty or n entries)

  bool adjacent(node_t u, node_t v) const {
    const auto& a = adj[static_cast<std::size_t>(u)];
    return std::binary_search(a.begin(), a.end(), v);
  }
  std::size_t degree(node_t u) const { return adj[static_cast<std::size_t>(u)].size(); }

  /// Throws value_error for an id outside [0, n) or a self loop; duplicate edges are kept once.
  static Graph from_edges(Index n, std::vector<std::pair<node_t, node_t>> edges) {
    Graph g;
    g.n = n;
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    g.adj.assign(static_cast<std::size_t>(n), {});
    g.out.assign(static_cast<std::size_t>(n), {});
    for (const auto& e : edges) {
      if (e.first < 0 || e.first >= n || e.second < 0 || e.second >= n || e.first == e.second)
        throw value_error("Graph::from_edges: bad edge (" + std::to_string(e.first) + ", " +
                          std::to_string(e.second) + ") for n = " + std::to_string(n));
      g.adj[static_cast<std::size_t>(e.first)].push_back(e.second);
      g.adj[static_cast<std::size_t>(e.second)].push_back(e.first);
      g.out[static_cast<std::size_t>(e.first)].push_back(e.second);  // edges are sorted: out is too
    }
    for (auto& a : g.adj) {
      std::sort(a.begin(), a.end());
      a.erase(std::unique(a.begin(), a.end()), a.end());
    }
    g.edges = std::move(edges);
    return g;
  }
};

/// Transitive closure of a balanced tree with `branching` children per node and `depth` levels
/// below the root: N = Σ_{l<=depth} b^l nodes, every (node, ancestor) pair an edge. Node 0 is the
/// root; children of node i are numbered breadth-first.
inline Graph balanced_tree_closure(int branching, int depth) {
  if (branching < 1 || depth < 0)
    throw value_error("balanced_tree_closure: branching = " + std::to_string(branching) +
                      ", depth = " + std::to_string(depth));
  std::vector<node_t> parent{-1};
  std::size_t level_begin = 0, level_end = 1;
  for (int l = 0; l < depth; ++l) {
    for (std::size_t p = level_begin; p < level_end; ++p)
      for (int c = 0; c < branching; ++c) parent.push_back(static_cast<node_t>(p));
    level_begin = level_end;
    level_end = parent.size();
  }
  std::vector<std::pair<node_t, node_t>> edges;
  for (std::size_t v = 0; v < parent.size(); ++v)
    for (node_t a = parent[v]; a >= 0; a = parent[static_cast<std::size_t>(a)])
      edges.emplace_back(static_cast<node_t>(v), a);
  return Graph::from_edges(static_cast<Index>(parent.size()), std::move(edges));
}

}  // namespace emb
}  // namespace examples
}  // namespace hyplora
