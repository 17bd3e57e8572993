// Benchmarks for hyplora/analysis: the paper's δ estimator (base point, Eq. (232)–(234)) on
// N = 2000 random Gaussian points of width D = 64, as one prompt of the per-prompt protocol.
// Includes the Euclidean distances (in double) and the O(N³) max-min product.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>

#include <hyplora/analysis/delta_hyperbolicity.hpp>

namespace {

template <class T>
hyplora::MatrixR<T> gaussian_points(hyplora::Index n, hyplora::Index d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> N01;
  hyplora::MatrixR<T> X(n, d);
  for (hyplora::Index i = 0; i < n; ++i)
    for (hyplora::Index c = 0; c < d; ++c) X(i, c) = static_cast<T>(N01(rng));
  return X;
}

template <class T>
void BM_DeltaBasePoint(benchmark::State& state) {
  const auto n = static_cast<hyplora::Index>(state.range(0));
  const auto X = gaussian_points<T>(n, 64, 1);  // X: (N, 64)
  for (auto _ : state) {
    const auto r = hyplora::analysis::delta_base_point_euclidean(X, 0);
    benchmark::DoNotOptimize(r.delta);
  }
  state.counters["delta_rel"] = hyplora::analysis::delta_base_point_euclidean(X, 0).relative;
  // Min/max pairs of the max-min product (half of N³, M is symmetric).
  state.counters["minmax/s"] = benchmark::Counter(0.5 * double(n) * double(n) * double(n),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_DeltaBasePoint, float)->Arg(500)->Arg(2000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_DeltaBasePoint, double)->Arg(500)->Arg(2000)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
