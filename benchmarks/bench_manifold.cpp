// Batched manifold maps: rows per second for expmap0 / logmap0 / dist on both models, float and
// double. Run: build/benchmarks/bench_manifold --benchmark_repetitions=5
//              --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>

namespace {
using hyplora::MatrixR;

template <class T>
MatrixR<T> tangent(Eigen::Index n, Eigen::Index d, T scale) {
  return (MatrixR<T>::Random(n, d) * scale).eval();
}

// Lorentz: spatial maps at the origin (what HypLoRA uses) and the distance between points.
template <class T>
void Lorentz_expmap0(benchmark::State& st) {
  const auto n = st.range(0), d = st.range(1);
  hyplora::Lorentz<T> H(T(1));
  const MatrixR<T> V = tangent<T>(n, d, T(0.5));
  for (auto _ : st) benchmark::DoNotOptimize(H.expmap0_spatial(V).data());
  st.counters["rows/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
template <class T>
void Lorentz_logmap0(benchmark::State& st) {
  const auto n = st.range(0), d = st.range(1);
  hyplora::Lorentz<T> H(T(1));
  const MatrixR<T> Y = H.expmap0_spatial(tangent<T>(n, d, T(0.5)));
  for (auto _ : st) benchmark::DoNotOptimize(H.logmap0_spatial(Y).data());
  st.counters["rows/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
template <class T>
void Lorentz_dist(benchmark::State& st) {
  const auto n = st.range(0), d = st.range(1);
  hyplora::Lorentz<T> H(T(1));
  auto lift = [&](const MatrixR<T>& S) {
    MatrixR<T> U(S.rows(), S.cols() + 1);
    U.col(0).setZero();
    U.rightCols(S.cols()) = S;
    return H.expmap0(U);
  };
  const MatrixR<T> X = lift(tangent<T>(n, d, T(0.5))), Y = lift(tangent<T>(n, d, T(0.5)));
  for (auto _ : st) benchmark::DoNotOptimize(H.dist(X, Y).data());
  st.counters["rows/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}

template <class T>
void Poincare_expmap0(benchmark::State& st) {
  const auto n = st.range(0), d = st.range(1);
  hyplora::PoincareBall<T> P(T(1));
  const MatrixR<T> V = tangent<T>(n, d, T(0.5));
  for (auto _ : st) benchmark::DoNotOptimize(P.expmap0(V).data());
  st.counters["rows/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
template <class T>
void Poincare_logmap0(benchmark::State& st) {
  const auto n = st.range(0), d = st.range(1);
  hyplora::PoincareBall<T> P(T(1));
  const MatrixR<T> Y = P.expmap0(tangent<T>(n, d, T(0.5)));
  for (auto _ : st) benchmark::DoNotOptimize(P.logmap0(Y).data());
  st.counters["rows/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
template <class T>
void Poincare_dist(benchmark::State& st) {
  const auto n = st.range(0), d = st.range(1);
  hyplora::PoincareBall<T> P(T(1));
  const MatrixR<T> X = P.expmap0(tangent<T>(n, d, T(0.5))), Y = P.expmap0(tangent<T>(n, d, T(0.5)));
  for (auto _ : st) benchmark::DoNotOptimize(P.dist(X, Y).data());
  st.counters["rows/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
}  // namespace

#define HYPLORA_BENCH_BOTH(fn)                                                              \
  BENCHMARK_TEMPLATE(fn, float)->ArgNames({"rows", "d"})->Args({4096, 64})->Args({512, 4096}); \
  BENCHMARK_TEMPLATE(fn, double)->ArgNames({"rows", "d"})->Args({4096, 64})->Args({512, 4096})

HYPLORA_BENCH_BOTH(Lorentz_expmap0);
HYPLORA_BENCH_BOTH(Lorentz_logmap0);
HYPLORA_BENCH_BOTH(Lorentz_dist);
HYPLORA_BENCH_BOTH(Poincare_expmap0);
HYPLORA_BENCH_BOTH(Poincare_logmap0);
HYPLORA_BENCH_BOTH(Poincare_dist);

BENCHMARK_MAIN();
