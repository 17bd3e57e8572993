// Adapter benchmarks: one training step (forward, then backward w.r.t. x and the adapter's
// parameters; W0 and b frozen) of Linear + {LoRA, DoRA, HypLoRA exact, official, stereographic}
// in float32, plus the frozen Linear alone as the floor; and the same step of the adapter branch
// alone (AdaptedLinear::forward_branch: the frozen GEMM x·W0ᵀ and its backward excluded), as
// benchmarks/compare/torch_adapters.py times PyTorch's.
//
//   OMP_NUM_THREADS=2 ./bench_adapters --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//   OMP_NUM_THREADS=2 ./bench_adapters --benchmark_filter='Adapter/(lora|hyplora)/n:512/'
//       --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true
//       --benchmark_report_aggregates_only=true   (issue #4: HypLoRA exact / LoRA, interleaved)
//   scripts/bench-adapters.sh  (pairs every kind with LoRA per shape: time and memory ratios)
//   python3 benchmarks/compare/torch_adapters.py build/benchmarks/bench_adapters  (C++/PyTorch)
//
// Names: Adapter/<kind>/n:<N>/d:<D>/r:<R> (whole layer) and Branch/<kind>/n:<N>/d:<D>/r:<R>
// (adapter alone; DoRA's branch is s ⊙ γ·B·A·x, see forward_branch) (d = D_in = D_out). Counters: peak_bytes = heap bytes
// a step needs on a fresh tape (every buffer of the step: node values, gradients, saved
// tensors; parameters excluded), allocs_per_step = heap allocations of a steady-state step
// (expected 0: the tape reuses its buffers).
// Paired/<kind>/n:<N>/d:<D>/r:<R> (whole layer, kind ≠ linear, lora) alternates one LoRA step and
// one step of <kind> per iteration; counters ratio (median of per-pair time ratios kind/LoRA),
// ratio_q1, ratio_q3, lora_ms, kind_ms (medians), pairs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <hyplora/nn/adapted_linear.hpp>

#include "support/alloc_counter.hpp"  // live/peak heap bytes and allocation count

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace ad = hyplora::ad;
namespace nn = hyplora::nn;

struct Kind {
  const char* name;
  nn::AdapterKind kind;
};
const Kind kKinds[] = {{"linear", nn::AdapterKind::none},
                       {"lora", nn::AdapterKind::lora},
                       {"dora", nn::AdapterKind::dora},
                       {"hyplora", nn::AdapterKind::hyplora},
                       {"hyplora_official", nn::AdapterKind::hyplora_official},
                       {"hyplora_stereographic", nn::AdapterKind::hyplora_stereographic}};

/// One adapted layer (D_in = D_out = d) with its inputs and a tape: step() runs one training step.
struct Bench {
  ad::ParameterStore<float> store;
  nn::AdaptedLinear<float> layer;
  MatrixR<float> X, G;
  ad::Tape<float> tape;
  bool branch;

  Bench(nn::AdapterKind kind, Index n, Index d, int r, bool branch_only)
      : layer(store, "proj", d, d, true), X(n, d), G(n, d), branch(branch_only) {
    layer.base().init_kaiming_uniform(store, 1);
    if (kind == nn::AdapterKind::none) {
      store.set_trainable(layer.base().weight(), false);
      store.set_trainable(layer.base().bias(), false);
    } else {
      nn::AdapterConfig cfg;
      cfg.kind = kind;
      cfg.r = r;
      cfg.alpha = 2.0 * r;
      cfg.seed = 2;
      if (kind == nn::AdapterKind::hyplora_official) cfg.feature_scale = std::sqrt(static_cast<double>(d));  // official init
      layer.attach(store, cfg);
      // A trained-looking B (B = 0 would let some kinds take trivial paths).
      nn::uniform_(store.value(layer.lora_B()), -0.02, 0.02, 3);
    }
    nn::uniform_(X, -1.0, 1.0, 4);
    nn::uniform_(G, -1.0, 1.0, 5);
  }

  void step() {
    tape.clear();
    ad::Var<float> x = tape.leaf(X);
    ad::Var<float> z = branch ? layer.forward_branch(tape, store, x, /*training=*/false)
                              : layer.forward(tape, store, x, /*training=*/false);
    tape.backward(z, G);
    benchmark::DoNotOptimize(tape.node(x.id).own_grad.data());
  }
};

void AdapterStep(benchmark::State& state, nn::AdapterKind kind, Index n, Index d, int r, bool branch) {
  Bench bench(kind, n, d, r, branch);
  auto step = [&]() { bench.step(); };
  // Peak heap of one step on a fresh tape (parameters already allocated).
  const long long live0 = hyplora::testing::live_bytes();
  hyplora::testing::reset_peak();
  try {
    step();
  } catch (const hyplora::value_error& e) {  // a kind without a branch-only node
    state.SkipWithError(e.what());
    return;
  }
  const double peak = static_cast<double>(hyplora::testing::peak_bytes() - live0);
  step();  // warm
  const long long c0 = hyplora::testing::allocations();
  long long steps = 0;
  for (auto _ : state) {
    step();
    ++steps;
  }
  // Read the count before touching state.counters: its map insertions allocate too (they were
  // counted as "1 allocation per step" wherever the loop ran a single step).
  const long long allocs = hyplora::testing::allocations() - c0;
  state.counters["peak_bytes"] = peak;
  state.counters["allocs_per_step"] = steps ? static_cast<double>(allocs) / static_cast<double>(steps) : 0.0;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

/// Step-paired timing: each iteration runs one LoRA step and one step of `kind` back to back
/// (which goes first alternates), each timed on its own, and the counters give the median of the
/// per-pair time ratios kind/LoRA with its quartiles, and each layer's median step time. A pair
/// spans milliseconds, so the bursts of a shared VM (a stolen vCPU, another process) fall on both
/// members or on one pair that the median drops; separate runs seconds apart do not cancel them
/// (scripts/bench-adapters.sh --paired).
void PairedStep(benchmark::State& state, nn::AdapterKind kind, Index n, Index d, int r) {
  Bench ref(nn::AdapterKind::lora, n, d, r, false), other(kind, n, d, r, false);
  ref.step();  // warm: buffers allocated, pages touched
  other.step();
  using Clock = std::chrono::steady_clock;
  std::vector<double> t_ref, t_other, ratio;
  bool other_first = false;
  for (auto _ : state) {
    double tr = 0.0, to = 0.0;
    for (int k = 0; k < 2; ++k) {
      Bench& b = (k == 0) == other_first ? other : ref;
      const auto t0 = Clock::now();
      b.step();
      const double dt = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      (&b == &ref ? tr : to) = dt;
    }
    other_first = !other_first;
    t_ref.push_back(tr);
    t_other.push_back(to);
    ratio.push_back(to / tr);
  }
  if (ratio.empty()) return;
  std::vector<double> q = ratio;
  std::sort(q.begin(), q.end());
  state.counters["ratio"] = median_of(ratio);
  state.counters["ratio_q1"] = q[q.size() / 4];
  state.counters["ratio_q3"] = q[(3 * q.size()) / 4];
  state.counters["lora_ms"] = median_of(t_ref);
  state.counters["kind_ms"] = median_of(t_other);
  state.counters["pairs"] = static_cast<double>(ratio.size());
}

void register_all() {
  for (Index d : {256, 1024, 4096})
    for (Index n : {128, 512, 2048})
      for (int r : {8, 32})
        for (const bool branch : {false, true})
          for (const Kind& k : kKinds) {
            if (branch && k.kind == nn::AdapterKind::none) continue;  // no adapter, no branch
            const std::string name = std::string(branch ? "Branch/" : "Adapter/") + k.name + "/n:" + std::to_string(n) +
                                     "/d:" + std::to_string(d) + "/r:" + std::to_string(r);
            benchmark::RegisterBenchmark(name.c_str(),
                                         [k, n, d, r, branch](benchmark::State& s) { AdapterStep(s, k.kind, n, d, r, branch); })
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
          }
  for (Index d : {256, 1024, 4096})
    for (Index n : {128, 512, 2048})
      for (int r : {8, 32})
        for (const Kind& k : kKinds) {
          if (k.kind == nn::AdapterKind::none || k.kind == nn::AdapterKind::lora) continue;
          const std::string name = std::string("Paired/") + k.name + "/n:" + std::to_string(n) + "/d:" + std::to_string(d) +
                                   "/r:" + std::to_string(r);
          benchmark::RegisterBenchmark(name.c_str(), [k, n, d, r](benchmark::State& s) { PairedStep(s, k.kind, n, d, r); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
}
}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
