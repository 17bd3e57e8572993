// Benchmarks of the tape: per-op overhead on tiny tensors, the matmul node against the raw GEMMs
// it runs, and the memory an MLP step allocates against what it must hold.
//
//   OMP_NUM_THREADS=2 ./bench_autodiff --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Pairs to compare: Matmul/Raw/<M>/<K>/<P> vs Matmul/Tape/<M>/<K>/<P> (same work: C = A·B,
// dA = G·Bᵀ, dB = Aᵀ·G; GFLOP/s counter). Goal: tape ≥ 0.90× raw.
// NarrowGemm/gemm/<M>/<N>/<K>/<ta> vs NarrowGemm/narrow/<M>/<N>/<K>/<ta>: the HypLoRA nodes' R×R
// products through detail::gemm (BLAS) and detail::narrow_gemm (register tiles), GMAC/s counter.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include <hyplora/autodiff/detail/narrow_gemm.hpp>
#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/autodiff/tape.hpp>

#include "support/alloc_counter.hpp"  // live/peak heap bytes and allocation count

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::ParameterStore;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;

// ---- tape overhead: a chain of 100 adds on tiny tensors -------------------------------------
void TapeOverhead_Chain100(benchmark::State& state) {
  const Index n = state.range(0);
  const MatrixR<double> x0 = MatrixR<double>::Random(n, n);
  Tape<double> t;
  for (auto _ : state) {
    t.clear();
    Var<double> x = t.leaf(x0);
    Var<double> y = x;
    for (int k = 0; k < 100; ++k) y = ad::add(y, x);
    t.backward(ad::sum(y));
    benchmark::DoNotOptimize(t.node(x.id).own_grad.data());
  }
  // forward + backward time per add node
  state.counters["time_per_op"] = benchmark::Counter(100.0, benchmark::Counter::kIsIterationInvariantRate |
                                                                benchmark::Counter::kInvert);
}
BENCHMARK(TapeOverhead_Chain100)->Arg(1)->Arg(4);

// ---- matmul node vs the raw GEMMs -------------------------------------------------------------
void set_gflops(benchmark::State& state, Index m, Index k, Index p) {
  const double flops = 3.0 * 2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(p);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// C = A·B, dA = G·Bᵀ, dB = Aᵀ·G: the three GEMMs of a matmul node's forward and backward.
void Matmul_Raw(benchmark::State& state) {
  const Index m = state.range(0), k = state.range(1), p = state.range(2);
  const MatrixR<float> A = MatrixR<float>::Random(m, k), B = MatrixR<float>::Random(k, p);
  const MatrixR<float> G = MatrixR<float>::Random(m, p);
  MatrixR<float> C(m, p), dA(m, k), dB(k, p);
  for (auto _ : state) {
    C.noalias() = A * B;
    dA.noalias() = G * B.transpose();
    dB.noalias() = A.transpose() * G;
    benchmark::DoNotOptimize(C.data());
    benchmark::DoNotOptimize(dA.data());
    benchmark::DoNotOptimize(dB.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, m, k, p);
}

// The same work through the tape: A and B are parameters (no copy into the tape), G the seed.
void Matmul_Tape(benchmark::State& state) {
  const Index m = state.range(0), k = state.range(1), p = state.range(2);
  ParameterStore<float> store;
  auto pa = store.add("A", MatrixR<float>::Random(m, k));
  auto pb = store.add("B", MatrixR<float>::Random(k, p));
  const MatrixR<float> G = MatrixR<float>::Random(m, p);
  Tape<float> t;
  for (auto _ : state) {
    t.clear();
    Var<float> c = ad::matmul(t.param(store, pa), t.param(store, pb));
    t.backward(c, G);
    benchmark::DoNotOptimize(store.grads().data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, m, k, p);
}

void matmul_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 1024, 1024})   // square
      ->Args({2048, 4096, 32})  // LoRA down-projection: x (N, D) · A (D, R)
      ->Args({2048, 32, 4096})  // LoRA up-projection:   h (N, R) · B (R, D)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}
BENCHMARK(Matmul_Raw)->Name("Matmul/Raw")->Apply(matmul_shapes);
BENCHMARK(Matmul_Tape)->Name("Matmul/Tape")->Apply(matmul_shapes);

// ---- the HypLoRA nodes' R×R products: detail::gemm vs detail::narrow_gemm ---------------------
// C (M, N) = op(A)·B with N = R columns; op(A) = A (M, K), or Aᵀ with A stored (K, M) when ta.
template <bool Narrow>
void NarrowGemm(benchmark::State& state) {
  const Index m = state.range(0), n = state.range(1), k = state.range(2);
  const bool ta = state.range(3) != 0;
  const MatrixR<float> A = ta ? MatrixR<float>(MatrixR<float>::Random(k, m)) : MatrixR<float>(MatrixR<float>::Random(m, k));
  const MatrixR<float> B = MatrixR<float>::Random(k, n);
  MatrixR<float> C(m, n);
  for (auto _ : state) {
    if (Narrow) ad::detail::narrow_gemm<float>(m, n, k, 1.0f, A.data(), A.cols(), ta, B.data(), n, 0.0f, C.data(), n);
    else ad::detail::gemm<float>(m, n, k, 1.0f, A.data(), A.cols(), ta, B.data(), n, false, 0.0f, C.data(), n);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tiled"] = ad::detail::narrow_gemm_tiled<float>(n) ? 1 : 0;
}

void narrow_shapes(benchmark::internal::Benchmark* b) {
  b->Args({8, 32, 32, 0})       // the backward's per-block M·a (8 tokens), R 32
      ->Args({512, 32, 32, 0})  // U·M, N 512, R 32
      ->Args({256, 32, 32, 0})  // B·S, D 256, R 32
      ->Args({4096, 32, 32, 0}) // B·S, D 4096, R 32
      ->Args({32, 32, 256, 1})  // BᵀB, D 256, R 32
      ->Args({32, 32, 4096, 1}) // BᵀB, D 4096, R 32
      ->Args({32, 32, 512, 1})  // S = aᵀ·(w ⊙ a), N 512, R 32
      ->Args({512, 8, 8, 0})    // U·M, N 512, R 8
      ->Args({8, 8, 256, 1})    // BᵀB, D 256, R 8
      ->UseRealTime();
}
BENCHMARK_TEMPLATE(NarrowGemm, false)->Name("NarrowGemm/gemm")->Apply(narrow_shapes);
BENCHMARK_TEMPLATE(NarrowGemm, true)->Name("NarrowGemm/narrow")->Apply(narrow_shapes);

// ---- memory of an MLP step ----------------------------------------------------------------------
// x (N, D) → gelu(x·W1ᵀ + b1) (N, H) → ·W2ᵀ + b2 (N, D) → mean((out − y)²).
// "required" = the bytes the graph holds by construction: every node's value plus the gradient of
// every node that needs one (parameters excluded: they live in the store, allocated before).
void MlpStep_Memory(benchmark::State& state) {
  const Index N = 2048, D = 512, H = 2048;
  ParameterStore<float> store;
  auto W1 = store.add("W1", MatrixR<float>::Random(H, D) * 0.05f);
  auto b1 = store.add("b1", MatrixR<float>::Zero(1, H));
  auto W2 = store.add("W2", MatrixR<float>::Random(D, H) * 0.05f);
  auto b2 = store.add("b2", MatrixR<float>::Zero(1, D));
  const MatrixR<float> X = MatrixR<float>::Random(N, D), Y = MatrixR<float>::Random(N, D);
  double peak = 0, required = 0, steady_allocs = 0;
  for (auto _ : state) {
    Tape<float> t;  // fresh tape: the first step allocates everything
    auto step = [&]() {
      t.clear();
      Var<float> x = t.constant(X), y = t.constant(Y);
      Var<float> h = ad::gelu(ad::matmul(x, t.param(store, W1), false, true) + t.param(store, b1));
      Var<float> out = ad::matmul(h, t.param(store, W2), false, true) + t.param(store, b2);
      Var<float> loss = ad::mean(ad::square(out - y));
      t.backward(loss);
      return loss.item();
    };
    const long long live0 = hyplora::testing::live_bytes();
    hyplora::testing::reset_peak();
    benchmark::DoNotOptimize(step());
    peak = static_cast<double>(hyplora::testing::peak_bytes() - live0);
    const long long count0 = hyplora::testing::allocations();
    benchmark::DoNotOptimize(step());  // steady state: should allocate nothing
    steady_allocs = static_cast<double>(hyplora::testing::allocations() - count0);
    required = 0;
    for (int id = 0; id < t.size(); ++id) {
      const auto& n = t.node(id);
      const double bytes = static_cast<double>(n.rows * n.cols) * sizeof(float);
      if (!n.ext_value) required += bytes;
      if (n.needs_grad && !n.ext_grad) required += bytes;
    }
  }
  state.counters["peak_bytes"] = peak;
  state.counters["required_bytes"] = required;
  state.counters["peak_over_required"] = peak / required;
  state.counters["allocs_step2"] = steady_allocs;
}
BENCHMARK(MlpStep_Memory)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
