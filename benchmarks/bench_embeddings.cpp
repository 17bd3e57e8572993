// Benchmarks for examples/poincare_embeddings: training throughput (edges/s) on the WordNet noun
// closure (82,115 nodes, 743,241 edges), dimension 10, 50 negatives, RSGD, for both models (and
// the Poincaré burn-in, whose negatives come from the degree^0.75 alias table). One
// iteration trains a fixed 20,000 edges of a shuffled epoch, so a run takes seconds. Skipped when
// WordNet is absent.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <string>

#include "../examples/poincare_embeddings/trainer.hpp"
#include "../examples/poincare_embeddings/wordnet_graph.hpp"

namespace emb = hyplora::examples::emb;

namespace {

const emb::Graph* nouns() {
  static const std::unique_ptr<emb::Graph> g = [] {
    if (!std::filesystem::exists(std::string(hyplora::wordnet::Database::default_dir) + "/data.noun"))
      return std::unique_ptr<emb::Graph>();
    const hyplora::wordnet::Database db;
    return std::make_unique<emb::Graph>(emb::wordnet_closure(db, "entity.n.01"));
  }();
  return g.get();
}

// burnin: 1 = every iteration is a burn-in epoch (negatives ∝ degree^0.75 from the alias table).
// recipe: the noun recipe of docs/embeddings.md after burn-in (half the negatives ∝ degree^0.75,
// a fifth from the 32-slot hard-negative cache of Eq. (E9), pinned root), to price the cache.
void BM_NounEdges(benchmark::State& state, emb::Model model, int burnin, bool recipe) {
  const emb::Graph* g = nouns();
  if (!g) {
    state.SkipWithError("WordNet not found");
    return;
  }
  emb::TrainOptions opt;
  opt.model = model;
  opt.optimizer = emb::Optimizer::rsgd;
  opt.dim = 10;
  opt.burnin = burnin > 0 ? 1 << 30 : 0;
  opt.lr = 0.1;  // the example's default (docs/embeddings.md)
  if (recipe) {
    opt.degree_negatives = 0.5;
    opt.hard_negatives = 0.2;
    opt.hard_slots = 32;
    opt.pin_roots = true;
    opt.directed_negatives = true;
    opt.ball_eps = 1e-10;
  }
  auto e = emb::init_embedding<double>(g->n, opt);
  const std::int64_t n_edges = 20000;
  int epoch = 0;
  for (auto _ : state) {
    const emb::EpochStats st = emb::train_epoch(e, *g, opt, epoch++, n_edges);
    benchmark::DoNotOptimize(st.loss);
  }
  state.counters["edges/s"] = benchmark::Counter(double(n_edges), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_NounEdges, poincare, emb::Model::poincare, 0, false)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_NounEdges, poincare_burnin, emb::Model::poincare, 1, false)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_NounEdges, poincare_recipe, emb::Model::poincare, 0, true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_NounEdges, lorentz, emb::Model::lorentz, 0, false)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
