// Tests for examples/poincare_embeddings: the trainer on a synthetic closure (both models, both
// optimisers), the reconstruction metrics on a hand-made example, and the WordNet mammal counts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <random>
#include <vector>

#include "../../examples/poincare_embeddings/eval.hpp"
#include "../../examples/poincare_embeddings/graph.hpp"
#include "../../examples/poincare_embeddings/svg.hpp"
#include "../../examples/poincare_embeddings/trainer.hpp"
#include "../../examples/poincare_embeddings/wordnet_graph.hpp"

namespace examples_test_poincare_embeddings {  // one per test file: files share translation units (tests/CMakeLists.txt)

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
  {  // standard error of the mean AP: sample standard deviation of (5/6, 1/2, 1/3) over √3
    const double m = r.map, a0 = 5.0 / 6.0 - m, a1 = 0.5 - m, a2 = 1.0 / 3.0 - m;
    CHECK(r.map_se == doctest::Approx(std::sqrt((a0 * a0 + a1 * a1 + a2 * a2) / 2.0 / 3.0)));
  }
  // A perfect embedding: neighbours strictly closer than everything else.
  const double P[4][4] = {{0, 1, 1, 9}, {1, 0, 9, 9}, {1, 9, 0, 9}, {9, 9, 9, 0}};
  const emb::Reconstruction p =
      emb::evaluate_reconstruction(g, [&](emb::node_t a, emb::node_t b) { return P[a][b]; });
  CHECK(p.mean_rank == 1.0);
  CHECK(p.map == 1.0);
  CHECK(p.map_se == 0.0);
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
  opt.lr_decay_power = 2.0;  // 0.2·(1 − j/10)²: 0.2, 0.162, ..., 0.002
  CHECK(emb::epoch_lr(opt, 3) == doctest::Approx(0.02));  // burn-in unchanged
  CHECK(emb::epoch_lr(opt, 4) == doctest::Approx(0.2));
  CHECK(emb::epoch_lr(opt, 5) == doctest::Approx(0.162));
  CHECK(emb::epoch_lr(opt, 13) == doctest::Approx(0.002));
  for (double bad : {0.0, -1.0, std::nan("")}) {
    opt.lr_decay_power = bad;
    CHECK_THROWS_AS(emb::epoch_lr(opt, 5), hyplora::value_error);
  }
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

// Eq. (E8): degree_negatives = 1 after burn-in must draw exactly the burn-in's negatives (same
// RNG stream), so with burn-in's rate both runs agree bit for bit; 0 (uniform) must not.
TEST_CASE("degree negatives after burn-in use the burn-in sampler") {
  const emb::Graph g = emb::balanced_tree_closure(3, 3);
  emb::TrainOptions opt;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 3;
  opt.threads = 1;
  opt.negatives = 6;
  opt.lr = 0.2;
  opt.burnin_div = 1.0;
  const auto run = [&](int burnin, double degree_negatives) {
    emb::TrainOptions o = opt;
    o.burnin = burnin;
    o.degree_negatives = degree_negatives;
    auto e = emb::init_embedding<double>(g.n, o);
    emb::train_epoch(e, g, o, 0);
    return e.X;
  };
  const hyplora::MatrixR<double> burn = run(1, 0.0), degree = run(0, 1.0), uniform = run(0, 0.0),
                                 half = run(0, 0.5);
  CHECK((burn - degree).cwiseAbs().maxCoeff() == 0.0);
  CHECK((burn - uniform).cwiseAbs().maxCoeff() > 1e-6);
  CHECK((half - uniform).cwiseAbs().maxCoeff() > 1e-6);
  CHECK((half - degree).cwiseAbs().maxCoeff() > 1e-6);
  for (double bad : {-0.1, 1.5, std::nan("")}) {
    emb::TrainOptions o = opt;
    o.degree_negatives = bad;
    auto e = emb::init_embedding<double>(g.n, o);
    CHECK_THROWS_AS(emb::train_epoch(e, g, o, 0), hyplora::value_error);
  }
}

// Eq. (E9): the hard-negative cache only ever holds valid negatives of its row (not the row, not
// an ancestor with N&K's negatives, not related otherwise), fills during training, changes the
// draws, stays deterministic on one thread, is untouched during burn-in, and rejects bad options.
TEST_CASE("hard-negative cache holds valid negatives and is deterministic") {
  const emb::Graph g = emb::balanced_tree_closure(3, 4);  // 121 nodes
  emb::TrainOptions opt;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 3;
  opt.threads = 1;
  opt.negatives = 10;
  opt.lr = 0.3;
  opt.burnin = 2;
  opt.epochs = 12;
  opt.hard_slots = 4;
  const auto run = [&](double hard, bool directed) {
    emb::TrainOptions o = opt;
    o.hard_negatives = hard;
    o.directed_negatives = directed;
    auto e = emb::init_embedding<double>(g.n, o);
    for (int ep = 0; ep < o.epochs; ++ep) {
      emb::train_epoch(e, g, o, ep);
      if (ep < o.burnin) CHECK(e.hard.empty());  // burn-in: no cache
    }
    return e;
  };
  for (bool directed : {false, true}) {
    CAPTURE(directed);
    const auto a = run(0.5, directed), b = run(0.5, directed), off = run(0.0, directed);
    CHECK((a.X - b.X).cwiseAbs().maxCoeff() == 0.0);
    CHECK(a.hard == b.hard);
    CHECK(off.hard.empty());
    CHECK((a.X - off.X).cwiseAbs().maxCoeff() > 1e-6);
    REQUIRE(a.hard.size() == static_cast<std::size_t>(g.n) * 4);
    std::size_t filled = 0;
    bool valid = true;
    for (emb::node_t u = 0; u < g.n; ++u)
      for (int i = 0; i < 4; ++i) {
        const emb::node_t w = a.hard[static_cast<std::size_t>(u) * 4 + static_cast<std::size_t>(i)];
        if (w < 0) continue;
        ++filled;
        const auto& rel = directed ? g.out[static_cast<std::size_t>(u)] : g.adj[static_cast<std::size_t>(u)];
        valid = valid && w != u && w < g.n && !std::binary_search(rel.begin(), rel.end(), w);
      }
    CHECK(valid);
    CHECK(filled > 0);
    for (Index i = 0; i < a.X.rows(); ++i) REQUIRE(a.X.row(i).allFinite());
  }
  for (double bad : {-0.1, 1.5, std::nan("")}) {
    emb::TrainOptions o = opt;
    o.hard_negatives = bad;
    auto e = emb::init_embedding<double>(g.n, o);
    CHECK_THROWS_AS(emb::train_epoch(e, g, o, 3), hyplora::value_error);
  }
  emb::TrainOptions o = opt;
  o.hard_negatives = 0.5;
  o.hard_slots = 0;
  auto e = emb::init_embedding<double>(g.n, o);
  CHECK_THROWS_AS(emb::train_epoch(e, g, o, 3), hyplora::value_error);
}

// TrainOptions::hard_margin (Eq. (E9)): a negative w of edge (u, v) enters u's cache exactly when
// d(u, w) < d(u, v) + margin, at the distances before the step.
TEST_CASE("hard-negative cache margin admits the near-violators") {
  const emb::Graph g = emb::balanced_tree_closure(2, 3);  // 15 nodes
  emb::TrainOptions opt;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 4;
  opt.negatives = 6;
  opt.init_scale = 0.45;
  const emb::node_t u = 14, v = 6;  // a leaf and its parent
  const std::vector<emb::node_t> neg{7, 8, 1, 12, 3, 10};  // not related to 14 (ancestors 6, 2, 0)
  for (emb::node_t w : neg) REQUIRE_FALSE(g.adjacent(u, w));
  const emb::Embedding<double> e0 = emb::init_embedding<double>(g.n, opt);
  const double d_pos = e0.dist(u, v);
  std::vector<double> gap;  // d(u, w) − d(u, v)
  for (emb::node_t w : neg) gap.push_back(e0.dist(u, w) - d_pos);
  std::vector<double> sorted = gap;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(sorted.back() > 0.0);  // some negatives are not violators: the margin decides them
  const double mid = 0.5 * (sorted[2] + sorted[3]);
  for (double margin : {0.0, std::max(0.0, mid), sorted.back() + 1.0}) {
    CAPTURE(margin);
    emb::Embedding<double> e = e0;
    std::vector<emb::node_t> slots(static_cast<std::size_t>(g.n) * 8, -1);
    std::vector<std::uint8_t> next(static_cast<std::size_t>(g.n), 0);
    const emb::detail::HardCache hard{slots.data(), next.data(), 8, 0.0, margin};  // frac 0: no cache draws
    std::size_t k = 0;
    auto sampler = [&]() { return neg[k++ % neg.size()]; };
    emb::detail::Scratch<double> s;
    for (auto* vec : {&s.gu, &s.rg, &s.tmp, &s.tmp2}) vec->resize(4);
    std::mt19937_64 rng(3);
    emb::detail::train_edge(e, g, u, v, 0.05, opt, sampler, s, hard, &rng);
    std::vector<emb::node_t> want, got;
    for (std::size_t i = 0; i < neg.size(); ++i)
      if (gap[i] < margin) want.push_back(neg[i]);
    for (int i = 0; i < 8; ++i)
      if (slots[static_cast<std::size_t>(u) * 8 + static_cast<std::size_t>(i)] >= 0)
        got.push_back(slots[static_cast<std::size_t>(u) * 8 + static_cast<std::size_t>(i)]);
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    CHECK(got == want);
    if (margin > sorted.back()) CHECK(got.size() == neg.size());
    for (emb::node_t w = 0; w < g.n; ++w)  // only u's row is written
      if (w != u) CHECK(slots[static_cast<std::size_t>(w) * 8] == -1);
  }
  emb::TrainOptions o;
  o.hard_negatives = 0.2;
  o.hard_margin = -0.5;
  auto e = emb::init_embedding<double>(g.n, o);
  CHECK_THROWS_AS(emb::train_epoch(e, g, o, 20), hyplora::value_error);
}

// TrainOptions::hard_share (Eq. (E9')): with share 1 every cache draw of edge (u, v) reads v's
// row, with share 0 u's row; cached ancestors of u are still rejected.
TEST_CASE("shared hard-negative draws read the positive's cache row") {
  const emb::Graph g = emb::balanced_tree_closure(2, 3);  // 15 nodes
  emb::TrainOptions opt;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 4;
  opt.negatives = 6;
  opt.init_scale = 0.45;
  const emb::node_t u = 14, v = 2;  // a leaf and its grandparent (ancestors of 14: 6, 2, 0)
  const emb::node_t in_u = 7, in_v = 12, fresh = 9;  // none related to 14
  for (double share : {0.0, 1.0}) {
    CAPTURE(share);
    emb::Embedding<double> e = emb::init_embedding<double>(g.n, opt);
    std::vector<emb::node_t> slots(static_cast<std::size_t>(g.n) * 2, -1);
    slots[static_cast<std::size_t>(u) * 2] = slots[static_cast<std::size_t>(u) * 2 + 1] = in_u;
    slots[static_cast<std::size_t>(v) * 2] = in_v;
    slots[static_cast<std::size_t>(v) * 2 + 1] = 6;  // an ancestor of u: rejected, then a fresh draw
    std::vector<std::uint8_t> next(static_cast<std::size_t>(g.n), 0);
    const emb::detail::HardCache hard{slots.data(), next.data(), 2, 1.0, 1e9, share};  // every draw from a cache
    auto sampler = [&]() { return fresh; };
    emb::detail::Scratch<double> s;
    for (auto* vec : {&s.gu, &s.rg, &s.tmp, &s.tmp2}) vec->resize(4);
    std::mt19937_64 rng(5);
    emb::detail::train_edge(e, g, u, v, 0.05, opt, sampler, s, hard, &rng);
    REQUIRE(s.cand.size() == 7);
    CHECK(s.cand[0] == v);
    for (std::size_t j = 1; j < s.cand.size(); ++j) {
      CAPTURE(s.cand[j]);
      if (share == 0.0) CHECK(s.cand[j] == in_u);
      else CHECK((s.cand[j] == in_v || s.cand[j] == fresh));
    }
    if (share == 1.0) CHECK(std::count(s.cand.begin(), s.cand.end(), in_v) > 0);
  }
  emb::TrainOptions o;
  o.hard_negatives = 0.2;
  o.hard_share = 1.5;
  auto e = emb::init_embedding<double>(g.n, o);
  CHECK_THROWS_AS(emb::train_epoch(e, g, o, 20), hyplora::value_error);
}

// TrainOptions::hard_filter (Eq. (E9'')): a cached w is used for edge (u, v) only while
// d(u, w) < d(u, v) + margin; otherwise the usual draw replaces it.
TEST_CASE("filtered hard-negative draws keep only the current violators") {
  const emb::Graph g = emb::balanced_tree_closure(2, 3);  // 15 nodes
  emb::TrainOptions opt;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 4;
  opt.negatives = 8;
  const emb::node_t u = 14, v = 6, w_close = 7, w_far = 8, fresh = 9;  // 7, 8, 9 not related to 14
  emb::Embedding<double> e0 = emb::init_embedding<double>(g.n, opt);
  e0.X.row(u) << 0.5, 0.0, 0.0, 0.0;
  e0.X.row(v) << 0.3, 0.0, 0.0, 0.0;
  e0.X.row(w_close) << 0.45, 0.03, 0.0, 0.0;
  e0.X.row(w_far) << -0.5, 0.0, 0.0, 0.0;
  REQUIRE(e0.dist(u, w_close) < e0.dist(u, v));
  REQUIRE(e0.dist(u, w_far) > e0.dist(u, v) + 1.0);
  for (int mode = 0; mode < 3; ++mode) {  // filter off; on, margin 0; on, margin past w_far
    CAPTURE(mode);
    emb::Embedding<double> e = e0;
    std::vector<emb::node_t> slots(static_cast<std::size_t>(g.n) * 2, -1);
    slots[static_cast<std::size_t>(u) * 2] = w_close;
    slots[static_cast<std::size_t>(u) * 2 + 1] = w_far;
    std::vector<std::uint8_t> next(static_cast<std::size_t>(g.n), 0);
    const double margin = mode == 2 ? e0.dist(u, w_far) - e0.dist(u, v) + 0.1 : 0.0;
    const emb::detail::HardCache hard{slots.data(), next.data(), 2, 1.0, margin, 0.0, mode > 0};
    auto sampler = [&]() { return fresh; };
    emb::detail::Scratch<double> s;
    for (auto* vec : {&s.gu, &s.rg, &s.tmp, &s.tmp2}) vec->resize(4);
    std::mt19937_64 rng(11);
    emb::detail::train_edge(e, g, u, v, 0.05, opt, sampler, s, hard, &rng);
    REQUIRE(s.cand.size() == 9);
    const auto n_close = std::count(s.cand.begin(), s.cand.end(), w_close);
    const auto n_far = std::count(s.cand.begin(), s.cand.end(), w_far);
    const auto n_fresh = std::count(s.cand.begin(), s.cand.end(), fresh);
    CHECK(n_close > 0);
    CHECK(n_close + n_far + n_fresh == 8);
    if (mode == 1) {
      CHECK(n_far == 0);
      CHECK(n_fresh > 0);  // the filtered draws fell back to the sampler
    } else {
      CHECK(n_far > 0);
      CHECK(n_fresh == 0);
    }
  }
}

// TrainOptions::pin_roots: the row without ancestors keeps its initial point, the others move.
TEST_CASE("pinned root stays put") {
  const emb::Graph g = emb::balanced_tree_closure(2, 3);  // node 0 is the root
  for (emb::Model m : {emb::Model::poincare, emb::Model::lorentz}) {
    emb::TrainOptions opt;
    opt.model = m;
    opt.optimizer = emb::Optimizer::rsgd;
    opt.dim = 3;
    opt.threads = 1;
    opt.negatives = 5;
    opt.burnin = 1;
    opt.pin_roots = true;
    auto e = emb::init_embedding<double>(g.n, opt);
    const hyplora::MatrixR<double> x0 = e.X;
    for (int ep = 0; ep < 3; ++ep) emb::train_epoch(e, g, opt, ep);
    CHECK((e.X.row(0) - x0.row(0)).cwiseAbs().maxCoeff() == 0.0);
    for (Index i = 1; i < g.n; ++i) CHECK((e.X.row(i) - x0.row(i)).cwiseAbs().maxCoeff() > 0.0);
  }
}

// TrainOptions::ball_eps replaces numerics' 1e-5 in the Poincaré RSGD projection: with a rate
// far too high the rows pile up on the boundary, at (1 − ball_eps)R and never beyond.
TEST_CASE("Poincaré RSGD keeps rows inside (1 - ball_eps) R") {
  const emb::Graph g = emb::balanced_tree_closure(3, 3);
  for (double eps : {1e-5, 1e-10}) {
    emb::TrainOptions opt;
    opt.optimizer = emb::Optimizer::rsgd;
    opt.dim = 2;
    opt.threads = 1;
    opt.negatives = 10;
    opt.lr = 20.0;
    opt.burnin = 0;
    opt.K = 2.0;
    opt.ball_eps = eps;
    auto e = emb::init_embedding<double>(g.n, opt);
    for (int ep = 0; ep < 5; ++ep) emb::train_epoch(e, g, opt, ep);
    const double R = std::sqrt(opt.K);
    double rmax = 0.0;
    for (Index i = 0; i < e.X.rows(); ++i) rmax = std::max(rmax, e.X.row(i).norm() / R);
    CAPTURE(eps);
    CHECK(rmax <= (1.0 - eps) * (1.0 + 1e-15));
    CHECK(rmax >= 1.0 - 2.0 * eps);  // reached the shell: the clamp, not the data, bounds it
  }
  emb::TrainOptions opt;
  for (double bad : {0.0, 1e-13, 0.5, std::nan("")}) {
    opt.ball_eps = bad;
    CHECK_THROWS_AS(emb::init_embedding<double>(10, opt), hyplora::value_error);
  }
}

TEST_CASE("alias table draws nodes in proportion to their weights") {
  const std::vector<double> w{1.0, 2.0, 3.0, 0.0, 4.0, 0.5};
  const emb::detail::AliasTable t(w);
  std::mt19937_64 rng(3);
  const int n = 200000;
  std::vector<int> count(w.size(), 0);
  bool in_range = true;
  for (int i = 0; i < n; ++i) {
    const emb::node_t v = t(rng);
    in_range = in_range && v >= 0 && v < static_cast<emb::node_t>(w.size());
    if (in_range) ++count[static_cast<std::size_t>(v)];
  }
  REQUIRE(in_range);
  const double total = 10.5;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double p = w[i] / total;
    const double sd = std::sqrt(n * p * (1 - p));
    CHECK(std::abs(count[i] - n * p) <= 5.0 * sd + 0.5);  // 5 standard deviations
  }
  CHECK(count[3] == 0);
  CHECK_THROWS_AS(emb::detail::AliasTable(std::vector<double>{0.0, 0.0}), hyplora::value_error);
  CHECK_THROWS_AS(emb::detail::AliasTable(std::vector<double>{}), hyplora::value_error);
}

// The fused Poincaré RSGD edge step (pair quantities of Eq. (76) kept from the distance pass)
// against its composition from the row functions: dist, dist_backward (Eq. (E1)),
// egrad2rgrad (Eq. (80)), x − lr·rg, projx.
TEST_CASE("Poincaré edge step equals its composition from row functions") {
  namespace pr = hyplora::poincare_rows;
  const emb::Graph g = emb::balanced_tree_closure(2, 3);  // 15 nodes
  emb::TrainOptions opt;
  opt.model = emb::Model::poincare;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 4;
  opt.K = 1.7;
  opt.negatives = 4;
  opt.init_scale = 0.45;  // well inside, but far from the origin
  emb::Embedding<double> a = emb::init_embedding<double>(g.n, opt);
  emb::Embedding<double> b = a;
  const emb::node_t u = 14, v = 6;  // a leaf and its parent
  const std::vector<emb::node_t> neg{7, 8, 1, 12};  // not related to 14 (ancestors 6, 2, 0)
  for (emb::node_t w : neg) REQUIRE_FALSE(g.adjacent(u, w));
  std::size_t next = 0;
  auto sampler = [&]() { return neg[next++ % neg.size()]; };
  emb::detail::Scratch<double> s;
  for (auto* vec : {&s.gu, &s.rg, &s.tmp, &s.tmp2}) vec->resize(4);
  const double lr = 0.05;
  const double loss = emb::detail::train_edge(a, g, u, v, lr, opt, sampler, s);
  // Reference on b.
  const Index d = 4;
  const double K = opt.K;
  std::vector<emb::node_t> cand{v};
  cand.insert(cand.end(), neg.begin(), neg.end());
  std::vector<double> dist(cand.size());
  double Z = 0.0;
  for (std::size_t j = 0; j < cand.size(); ++j) {
    dist[j] = pr::dist(b.X.row(u).data(), b.X.row(cand[j]).data(), d, K);
    Z += std::exp(-dist[j]);
  }
  CHECK(loss == doctest::Approx(dist[0] + std::log(Z)).epsilon(1e-12));
  const Eigen::RowVectorXd xu = b.X.row(u);
  Eigen::RowVectorXd gu = Eigen::RowVectorXd::Zero(d), gx(d), gy(d), rg(d);
  for (std::size_t j = 0; j < cand.size(); ++j) {
    const double gj = (j == 0 ? 1.0 : 0.0) - std::exp(-dist[j]) / Z;
    double* xc = b.X.row(cand[j]).data();
    pr::dist_backward(xu.data(), xc, d, K, gj, gx.data(), gy.data());
    gu += gx;
    pr::egrad2rgrad(xc, gy.data(), rg.data(), d, K);
    for (Index i = 0; i < d; ++i) xc[i] -= lr * rg[i];
    pr::projx(xc, xc, d, K);
  }
  pr::egrad2rgrad(xu.data(), gu.data(), rg.data(), d, K);
  for (Index i = 0; i < d; ++i) b.X(u, i) -= lr * rg[i];
  pr::projx(b.X.row(u).data(), b.X.row(u).data(), d, K);
  const double moved = (b.X - emb::init_embedding<double>(g.n, opt).X).cwiseAbs().maxCoeff();
  CHECK(moved > 1e-3);  // the step did something
  CHECK((a.X - b.X).cwiseAbs().maxCoeff() <= 1e-14);
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

}  // namespace examples_test_poincare_embeddings
