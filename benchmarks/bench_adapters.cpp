// Adapter benchmarks: one training step (forward, then backward w.r.t. x and the adapter's
// parameters; W0 and b frozen) of Linear + {LoRA, DoRA, HypLoRA exact, official, stereographic}
// in float32, plus the frozen Linear alone as the floor.
//
//   OMP_NUM_THREADS=2 ./bench_adapters --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//   scripts/bench-adapters.sh  (pairs every kind with LoRA per shape: time and memory ratios)
//
// Names: Adapter/<kind>/n:<N>/d:<D>/r:<R> (d = D_in = D_out). Counters: peak_bytes = heap bytes
// a step needs on a fresh tape (every buffer of the step: node values, gradients, saved
// tensors; parameters excluded), allocs_per_step = heap allocations of a steady-state step
// (expected 0: the tape reuses its buffers).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <hyplora/nn/adapted_linear.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// ---- heap counter: operator new, and on glibc malloc/free too (Eigen allocates with malloc) ----
namespace {
std::atomic<long long> g_live{0};
std::atomic<long long> g_peak{0};
std::atomic<long long> g_count{0};
void note_alloc(long long bytes) {
  const long long now = g_live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  long long peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  g_count.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if defined(__GLIBC__)
#define HYPLORA_BENCH_COUNTS_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* malloc(std::size_t n) {
  void* p = __libc_malloc(n);
  if (p) note_alloc(static_cast<long long>(malloc_usable_size(p)));
  return p;
}
void* calloc(std::size_t n, std::size_t s) {
  void* p = __libc_calloc(n, s);
  if (p) note_alloc(static_cast<long long>(malloc_usable_size(p)));
  return p;
}
void* realloc(void* q, std::size_t n) {
  const long long old = q ? static_cast<long long>(malloc_usable_size(q)) : 0;
  void* p = __libc_realloc(q, n);
  if (p) {
    g_live.fetch_sub(old, std::memory_order_relaxed);
    note_alloc(static_cast<long long>(malloc_usable_size(p)));
  }
  return p;
}
void free(void* p) {
  if (p) g_live.fetch_sub(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
  __libc_free(p);
}
}
#endif

namespace {
void* counted_new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p) throw std::bad_alloc();
#if !defined(HYPLORA_BENCH_COUNTS_MALLOC)
  note_alloc(static_cast<long long>(n));
#endif
  return p;
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

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

void AdapterStep(benchmark::State& state, nn::AdapterKind kind, Index n, Index d, int r) {
  ad::ParameterStore<float> store;
  nn::AdaptedLinear<float> layer(store, "proj", d, d, true);
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
  MatrixR<float> X(n, d), G(n, d);
  nn::uniform_(X, -1.0, 1.0, 4);
  nn::uniform_(G, -1.0, 1.0, 5);

  ad::Tape<float> tape;
  auto step = [&]() {
    tape.clear();
    ad::Var<float> x = tape.leaf(X);
    ad::Var<float> z = layer.forward(tape, store, x, /*training=*/false);
    tape.backward(z, G);
    benchmark::DoNotOptimize(tape.node(x.id).own_grad.data());
  };
  // Peak heap of one step on a fresh tape (parameters already allocated).
  const long long live0 = g_live.load();
  g_peak = live0;
  step();
  const double peak = static_cast<double>(g_peak.load() - live0);
  step();  // warm
  const long long c0 = g_count.load();
  long long steps = 0;
  for (auto _ : state) {
    step();
    ++steps;
  }
  state.counters["peak_bytes"] = peak;
  state.counters["allocs_per_step"] = steps ? static_cast<double>(g_count.load() - c0) / static_cast<double>(steps) : 0.0;
}

void register_all() {
  for (Index d : {256, 1024, 4096})
    for (Index n : {128, 512, 2048})
      for (int r : {8, 32})
        for (const Kind& k : kKinds) {
          const std::string name = std::string("Adapter/") + k.name + "/n:" + std::to_string(n) + "/d:" + std::to_string(d) +
                                   "/r:" + std::to_string(r);
          benchmark::RegisterBenchmark(name.c_str(), [k, n, d, r](benchmark::State& s) { AdapterStep(s, k.kind, n, d, r); })
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
