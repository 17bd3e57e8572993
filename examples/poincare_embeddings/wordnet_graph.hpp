// examples/poincare_embeddings/wordnet_graph.hpp — a WordNet closure (io/wordnet.hpp) as a Graph.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graph.hpp"
#include "hyplora/io/wordnet.hpp"

namespace hyplora {
namespace examples {
namespace emb {

/// The transitive closure below `root` (e.g. "mammal.n.01", "entity.n.01" for all nouns) minus
/// `exclude`, with nodes renumbered 0..N-1 in synset order and named like "mammal.n.01".
inline Graph wordnet_closure(const wordnet::Database& db, std::string_view root,
                             const std::vector<std::string>& exclude = {}) {
  const std::vector<wordnet::SynsetId> nodes = db.closure_of(root, exclude);
  std::unordered_map<wordnet::SynsetId, node_t> index;
  index.reserve(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i], static_cast<node_t>(i));
  std::vector<std::pair<node_t, node_t>> edges;
  for (const auto& e : db.closure_edges(nodes)) edges.emplace_back(index.at(e.first), index.at(e.second));
  Graph g = Graph::from_edges(static_cast<Index>(nodes.size()), std::move(edges));
  g.names.reserve(nodes.size());
  for (wordnet::SynsetId s : nodes) g.names.push_back(db[s].name);
  return g;
}

}  // namespace emb
}  // namespace examples
}  // namespace hyplora
