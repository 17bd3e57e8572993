// bench_cuda_adapters — exact HypLoRA vs LoRA, forward + backward, on the device.
//   N = 2048 tokens, D_in = D_out = 4096, R = 32, float; W0 frozen (no dW0), gradients for
//   x, A and B, as in adapter fine-tuning. Times one forward + backward with cudaEvents on the
//   ops' stream; reports the median of 20 repetitions after 3 warm-ups, and the ratio.
// Usage: bench_cuda_adapters [N D R reps]. Without a GPU it prints "SKIPPED: no CUDA device"
// and returns 77.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <hyplora/core/types.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/ops_hyplora.cuh>
#include <hyplora/cuda/ops_lora.cuh>
#include <hyplora/cuda/stream.hpp>

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;

template <class F>
double median_ms(const hc::DeviceContext& dc, int reps, F&& step) {
  hc::Event start, stop;
  for (int i = 0; i < 3; ++i) step();  // warm-up: cuBLAS heuristics, allocator cache
  dc.synchronize();
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    start.record(dc.stream());
    step();
    stop.record(dc.stream());
    ms.push_back(stop.elapsed_ms_since(start));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  if (hc::skip_without_device()) return hc::kSkipReturnCode;
  const Index N = argc > 1 ? std::atol(argv[1]) : 2048;
  const Index D = argc > 2 ? std::atol(argv[2]) : 4096;
  const Index r = argc > 3 ? std::atol(argv[3]) : 32;
  const int reps = argc > 4 ? std::max(10, std::atoi(argv[4])) : 20;

  hc::DeviceContext dc;
  const auto ctx = dc.context();
  auto X = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(N, D), ctx.stream);
  auto W0 = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(D, D) * 0.02f, ctx.stream);
  auto A = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(r, D) * 0.02f, ctx.stream);
  auto B = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(D, r) * 0.02f, ctx.stream);
  auto G = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(N, D), ctx.stream);
  hc::DeviceTensor<float> gX(N, D), gA(r, D), gB(D, r), z;
  gX.set_zero(ctx.stream);
  gA.set_zero(ctx.stream);
  gB.set_zero(ctx.stream);

  hc::LoRASaved<float> ls;
  hc::LoRAInputs<float> li{X.cview(), W0.cview(), X.cview(), A.cview(), B.cview(), {}, 2.0f};
  hc::LoRAGrads<float> lg{gX.view(), {}, gX.view(), gA.view(), gB.view(), {}};
  const double t_lora = median_ms(dc, reps, [&] {
    hc::lora_forward<float>(ctx, li, z, ls);
    hc::lora_backward<float>(ctx, li, ls, G.cview(), lg);
  });

  hc::HypLoRASaved<float> hs;
  hc::HypLoRAInputs<float> hi{X.cview(), W0.cview(), X.cview(), A.cview(), B.cview(), {}, 1.0f, 1.0f, 2.0f, false};
  hc::HypLoRAGrads<float> hg{gX.view(), {}, gX.view(), gA.view(), gB.view(), {}, {}, {}};
  const double t_hyp = median_ms(dc, reps, [&] {
    hc::hyplora_forward<float>(ctx, hi, z, hs);
    hc::hyplora_backward<float>(ctx, hi, hs, G.cview(), hg);
  });

  cudaDeviceProp prop{};
  HYPLORA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  // Base-map FLOPs dominate: forward x·W0ᵀ and backward G·W0, 2·N·D·D each.
  const double gflop = 4.0 * double(N) * double(D) * double(D) * 1e-9;
  std::printf("device: %s\n", prop.name);
  std::printf("shape: N=%ld D_in=D_out=%ld R=%ld float32, median of %d reps (fwd+bwd, W0 frozen)\n",
              static_cast<long>(N), static_cast<long>(D), static_cast<long>(r), reps);
  std::printf("lora_fwd_bwd_ms    %.4f  (%.1f TFLOP/s on the base GEMMs)\n", t_lora, gflop / t_lora);
  std::printf("hyplora_fwd_bwd_ms %.4f\n", t_hyp);
  std::printf("ratio hyplora/lora %.4f\n", t_hyp / t_lora);
  std::printf("allocator cudaMalloc calls %zu, bytes cached %zu\n",
              hc::CachingAllocator::global().stats().malloc_calls, hc::CachingAllocator::global().stats().bytes_cached);
  return 0;
}
