// Tests for examples/poincare_embeddings: the trainer on a synthetic closure (both models, both
// optimisers), the reconstruction metrics on a hand-made example, and the WordNet mammal counts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "../../examples/poincare_embeddings/eval.hpp"
#include "../../examples/poincare_embeddings/graph.hpp"
#include "../../examples/poincare_embeddings/svg.hpp"
#include "../../examples/poincare_embeddings/trainer.hpp"
#include "../../examples/poincare_embeddings/wordnet_graph.hpp"

namespace emb = hyplora::examples::emb;
using hyplora::Index;

namespace {

emb::Reconstruction train_tree(emb::Model model, emb::Optimizer optim, double lr, int epochs) {
  const emb::Graph g = emb::balanced_tree_closure(3, 4);  // 121 nodes, 3·(3+9·2+27·3+81·4)/3 edges
  emb::TrainOptions opt;
  opt.model = model;
  opt.optimizer = optim;
  opt.dim = 5;
  opt.lr = lr;
  opt.epochs = epochs;
  opt.burnin = 5;
  opt.negatives = 20;
  opt.threads = 1;
  opt.seed = 7;
  emb::Embedding<double> e = emb::init_embedding<double>(g.n, opt);
  const double loss0 = emb::train_epoch(e, g, opt, 0).loss;
  double loss = loss0;
  for (int ep = 1; ep < epochs; ++ep) loss = emb::train_epoch(e, g, opt, ep).loss;
  CHECK(loss < 0.5 * loss0);
  for (Index i = 0; i < e.X.rows(); ++i) REQUIRE(e.X.row(i).allFinite());
  return emb::evaluate_reconstruction(g, [&](emb::node_t a, emb::node_t b) { return e.dist(a, b); });
}

}  // namespace

TEST_CASE("balanced tree closure: sizes and adjacency") {
  const emb::Graph g = emb::balanced_tree_closure(3, 4);
  CHECK(g.n == 1 + 3 + 9 + 27 + 81);
  CHECK(g.edges.size() == 3 * 1 + 9 * 2 + 27 * 3 + 81 * 4);
  CHECK(g.degree(0) == 120);                  // the root is every node's ancestor
  CHECK(g.degree(120) == 4);                  // a leaf: its four ancestors
  CHECK(g.adjacent(120, 0));
  CHECK(g.adjacent(0, 120));
  CHECK_FALSE(g.adjacent(120, 119));          // siblings are not related
  CHECK_THROWS_AS(emb::Graph::from_edges(3, {{0, 3}}), hyplora::value_error);
  CHECK_THROWS_AS(emb::Graph::from_edges(3, {{1, 1}}), hyplora::value_error);
}

TEST_CASE("reconstruction metrics on a hand-made example") {
  // 4 nodes; edges 0-1, 0-2 (node 3 isolated). Distances chosen by hand:
  //   from 0: d(1) = 1, d(3) = 2, d(2) = 3  -> neighbours 1 (rank 1), 2 (rank 2: 3 is closer)
  //     AP(0) = (1/1 + 2/3)/2 = 5/6
  //   from 1: neighbour 0 at 5, non-neighbours 2 at 1, 3 at 6 -> rank 2, AP = 1/2
  //   from 2: neighbour 0 at 3, non-neighbours 1 at 1, 3 at 2 -> rank 3, AP = 1/3
  const emb::Graph g = emb::Graph::from_edges(4, {{1, 0}, {2, 0}});
  const double D[4][4] = {{0, 1, 3, 2}, {5, 0, 1, 6}, {3, 1, 0, 2}, {2, 6, 2, 0}};
  const auto dist = [&](emb::node_t a, emb::node_t b) { return D[a][b]; };
  const emb::Reconstruction r = emb::evaluate_reconstruction(g, dist);
  CHECK(r.n_nodes == 3);
  CHECK(r.n_pairs == 4);
  CHECK(r.mean_rank == doctest::Approx((1.0 + 2.0 + 2.0 + 3.0) / 4.0));
  CHECK(r.map == doctest::Approx((5.0 / 6.0 + 0.5 + 1.0 / 3.0) / 3.0));
  // A perfect embedding: neighbours strictly closer than everything else.
  const double P[4][4] = {{0, 1, 1, 9}, {1, 0, 9, 9}, {1, 9, 0, 9}, {9, 9, 9, 0}};
  const emb::Reconstruction p =
      emb::evaluate_reconstruction(g, [&](emb::node_t a, emb::node_t b) { return P[a][b]; });
  CHECK(p.mean_rank == 1.0);
  CHECK(p.map == 1.0);
  // Restricted to one node.
  const emb::Reconstruction one = emb::evaluate_reconstruction(g, dist, {1});
  CHECK(one.n_nodes == 1);
  CHECK(one.map == doctest::Approx(0.5));
  // Directed (N&K's code): only 1 and 2 have out-neighbours (their ancestor 0); the root is
  // not evaluated, so the same distances give (1/2 + 1/3)/2 and ranks 2, 3.
  const emb::Reconstruction dir = emb::evaluate_reconstruction(g, dist, {}, emb::Relation::directed);
  CHECK(dir.n_nodes == 2);
  CHECK(dir.n_pairs == 2);
  CHECK(dir.mean_rank == doctest::Approx(2.5));
  CHECK(dir.map == doctest::Approx((0.5 + 1.0 / 3.0) / 2.0));
  // Directed, a descendant is a negative: from 0 nothing is evaluated, and from 1 the
  // descendant-free ranking is unchanged; on a 3-chain 2 -> 1 -> 0 node 1 ranks 0 against 2.
  const emb::Graph chain = emb::Graph::from_edges(3, {{2, 1}, {1, 0}, {2, 0}});
  const double C[3][3] = {{0, 2, 3}, {2, 0, 1}, {3, 1, 0}};
  const auto cd = [&](emb::node_t a, emb::node_t b) { return C[a][b]; };
  CHECK(emb::evaluate_reconstruction(chain, cd, {1}, emb::Relation::directed).mean_rank == 2.0);
  CHECK(emb::evaluate_reconstruction(chain, cd, {1}, emb::Relation::symmetric).mean_rank == 1.0);
}

TEST_CASE("out-neighbours are the ancestors") {
  const emb::Graph g = emb::balanced_tree_closure(3, 4);
  CHECK(g.out[0].empty());
  REQUIRE(g.out[120].size() == 4);
  CHECK(std::is_sorted(g.out[120].begin(), g.out[120].end()));
  CHECK(g.out[120].front() == 0);
  for (emb::node_t a : g.out[120]) CHECK(g.adjacent(120, a));
  std::size_t total = 0;
  for (const auto& o : g.out) total += o.size();
  CHECK(total == g.edges.size());
}

TEST_CASE("learning-rate schedule (Eq. (E7))") {
  emb::TrainOptions opt;
  opt.lr = 0.2;
  opt.epochs = 14;
  opt.burnin = 4;
  opt.burnin_div = 10.0;
  opt.lr_decay = false;
  CHECK(emb::epoch_lr(opt, 0) == doctest::Approx(0.02));
  CHECK(emb::epoch_lr(opt, 3) == doctest::Approx(0.02));
  CHECK(emb::epoch_lr(opt, 4) == 0.2);
  CHECK(emb::epoch_lr(opt, 13) == 0.2);
  opt.lr_decay = true;  // 10 post-burn-in epochs: 0.2, 0.18, ..., 0.02
  CHECK(emb::epoch_lr(opt, 3) == doctest::Approx(0.02));
  CHECK(emb::epoch_lr(opt, 4) == doctest::Approx(0.2));
  CHECK(emb::epoch_lr(opt, 5) == doctest::Approx(0.18));
  CHECK(emb::epoch_lr(opt, 13) == doctest::Approx(0.02));
  CHECK(emb::epoch_lr(opt, 20) == doctest::Approx(0.02));  // past the end: stays at the last rate
}

TEST_CASE("both directions trains every edge twice") {
  const emb::Graph g = emb::balanced_tree_closure(2, 3);
  emb::TrainOptions opt;
  opt.dim = 3;
  opt.threads = 1;
  opt.negatives = 5;
  opt.optimizer = emb::Optimizer::rsgd;
  auto e = emb::init_embedding<double>(g.n, opt);
  CHECK(emb::train_epoch(e, g, opt, 0).pairs == static_cast<std::int64_t>(g.edges.size()));
  opt.both_directions = true;
  CHECK(emb::train_epoch(e, g, opt, 1).pairs == static_cast<std::int64_t>(2 * g.edges.size()));
  CHECK(emb::train_epoch(e, g, opt, 2, 7).pairs == 7);
  for (Index i = 0; i < e.X.rows(); ++i) CHECK(e.X.row(i).allFinite());
}

// Riemannian Adam is only checked to halve the loss (inside train_tree): with the settings
// tried so far it reaches MAP ~0.86 here, not 0.9 (see docs/embeddings.md, "open").
TEST_CASE("riemannian adam trains (loss halves, points finite)") {
  SUBCASE("poincare") {
    const auto r = train_tree(emb::Model::poincare, emb::Optimizer::radam, 0.03, 100);
    MESSAGE("poincare radam: MAP ", r.map, ", mean rank ", r.mean_rank);
  }
  SUBCASE("lorentz") {
    const auto r = train_tree(emb::Model::lorentz, emb::Optimizer::radam, 0.03, 100);
    MESSAGE("lorentz radam: MAP ", r.map, ", mean rank ", r.mean_rank);
  }
}

TEST_CASE("RSGD on a balanced tree closure reaches MAP >= 0.9") {
  SUBCASE("poincare, rsgd") {
    const auto r = train_tree(emb::Model::poincare, emb::Optimizer::rsgd, 0.3, 60);
    MESSAGE("poincare rsgd: MAP ", r.map, ", mean rank ", r.mean_rank);
    CHECK(r.map >= 0.9);
  }
  SUBCASE("lorentz, rsgd") {
    const auto r = train_tree(emb::Model::lorentz, emb::Optimizer::rsgd, 0.3, 60);
    MESSAGE("lorentz rsgd: MAP ", r.map, ", mean rank ", r.mean_rank);
    CHECK(r.map >= 0.9);
  }
}

TEST_CASE("one thread is deterministic") {
  const emb::Graph g = emb::balanced_tree_closure(2, 3);
  emb::TrainOptions opt;
  opt.dim = 3;
  opt.threads = 1;
  opt.burnin = 1;
  opt.negatives = 5;
  for (emb::Model m : {emb::Model::poincare, emb::Model::lorentz}) {
    opt.model = m;
    auto a = emb::init_embedding<double>(g.n, opt);
    auto b = emb::init_embedding<double>(g.n, opt);
    for (int ep = 0; ep < 3; ++ep) {
      emb::train_epoch(a, g, opt, ep);
      emb::train_epoch(b, g, opt, ep);
    }
    CHECK((a.X - b.X).cwiseAbs().maxCoeff() == 0.0);
  }
}

TEST_CASE("svg writer escapes labels and produces a closed document") {
  emb::Svg s(100, 100);
  s.circle(50, 50, 40, "none", "#000");
  s.text(10, 10, "a<b & \"c\"", 8);
  const std::string out = s.str();
  CHECK(out.find("<svg") == 0);
  CHECK(out.find("</svg>") != std::string::npos);
  CHECK(out.find("a&lt;b &amp; &quot;c&quot;") != std::string::npos);
}

TEST_CASE("WordNet mammal closure: 1,180 nodes, 6,540 edges") {
  if (!std::filesystem::exists(std::string(hyplora::wordnet::Database::default_dir) + "/data.noun")) {
    MESSAGE("skipped: WordNet not found at ", hyplora::wordnet::Database::default_dir);
    return;
  }
  const hyplora::wordnet::Database db;
  const emb::Graph g = emb::wordnet_closure(db, "mammal.n.01", {"tusker.n.01", "female_mammal.n.01"});
  CHECK(g.n == 1180);
  CHECK(g.edges.size() == 6540);
  REQUIRE(g.names.size() == 1180);
  bool has_mammal = false;
  for (const auto& n : g.names) has_mammal = has_mammal || n == "mammal.n.01";
  CHECK(has_mammal);
}

// The goal of docs/embeddings.md, end to end: mammals at dimension 10, Poincaré RSGD with the
// example's defaults (lr 0.1 per edge, 10 burn-in epochs, negatives unrelated to u), 50 epochs
// on one thread (deterministic): symmetric MAP >= 0.95. About 3 s of CPU time.
TEST_CASE("WordNet mammals, dim 10, Poincaré RSGD: MAP >= 0.95 in 50 epochs") {
  if (!std::filesystem::exists(std::string(hyplora::wordnet::Database::default_dir) + "/data.noun")) {
    MESSAGE("skipped: WordNet not found at ", hyplora::wordnet::Database::default_dir);
    return;
  }
  const hyplora::wordnet::Database db;
  const emb::Graph g = emb::wordnet_closure(db, "mammal.n.01", {"tusker.n.01", "female_mammal.n.01"});
  emb::TrainOptions opt;
  opt.model = emb::Model::poincare;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 10;
  opt.epochs = 50;
  opt.threads = 1;
  emb::Embedding<double> e = emb::init_embedding<double>(g.n, opt);
  for (int ep = 0; ep < opt.epochs; ++ep) emb::train_epoch(e, g, opt, ep);
  const auto r = emb::evaluate_reconstruction(g, [&](emb::node_t a, emb::node_t b) { return e.dist(a, b); });
  MESSAGE("mammals poincare rsgd: MAP ", r.map, ", mean rank ", r.mean_rank);
  CHECK(r.map >= 0.95);
}
