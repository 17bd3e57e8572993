// bench_cuda_adapters — exact HypLoRA vs LoRA, forward + backward, on the device.
//   N = 2048 tokens, D_in = D_out = 4096, R = 32, float; W0 frozen (no dW0), gradients for
//   x, A and B, as in adapter fine-tuning. Times one forward + backward with cudaEvents on the
//   ops' stream; reports the median of 20 repetitions after 3 warm-ups, and the ratio.
// Then the same pair with __half and __nv_bfloat16 storage (FP32-compute GEMMs, float per-token
// scalars; include/hyplora/cuda/half.hpp), printed after the float rows with an _fp16 / _bf16
// suffix (the float rows come first and keep their format).
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
#include <hyplora/cuda/half.hpp>
#include <hyplora/cuda/ops_hyplora.cuh>
#include <hyplora/cuda/ops_lora.cuh>
#include <hyplora/cuda/stream.hpp>

#include "event_timing.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;

using hyplora::cuda::bench::median_ms;

/// A device copy of a host float batch rounded to T.
template <class T>
hc::DeviceTensor<T> to_device(const MatrixR<float>& m, const hc::Context& ctx) {
  std::vector<T> h(static_cast<std::size_t>(m.size()));
  for (Index k = 0; k < m.size(); ++k) h[static_cast<std::size_t>(k)] = hc::detail::from_acc<T>(m.data()[k]);
  hc::DeviceTensor<T> d(m.rows(), m.cols());
  if (d.size() > 0) {
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(d.data(), h.data(), d.bytes(), cudaMemcpyHostToDevice, ctx.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  }
  return d;
}

/// LoRA vs HypLoRA forward + backward with T storage (as the float rows: W0 frozen, x, A, B
/// gradients, γ = 2), printed with the suffix `tag`.
template <class T>
void bench_half(const hc::DeviceContext& dc, Index N, Index D, Index r, int reps, const char* tag) {
  const auto ctx = dc.context();
  auto X = to_device<T>(MatrixR<float>::Random(N, D), ctx);
  auto W0 = to_device<T>(MatrixR<float>::Random(D, D) * 0.02f, ctx);
  auto A = to_device<T>(MatrixR<float>::Random(r, D) * 0.02f, ctx);
  auto B = to_device<T>(MatrixR<float>::Random(D, r) * 0.02f, ctx);
  auto G = to_device<T>(MatrixR<float>::Random(N, D), ctx);
  hc::DeviceTensor<T> gX(N, D), gA(r, D), gB(D, r), z;
  gX.set_zero(ctx.stream);
  gA.set_zero(ctx.stream);
  gB.set_zero(ctx.stream);

  hc::LoRASaved<T> ls;
  hc::LoRAInputs<T> li{X.cview(), W0.cview(), X.cview(), A.cview(), B.cview(), {}, 2.0f};
  hc::LoRAGrads<T> lg{gX.view(), {}, gX.view(), gA.view(), gB.view(), {}};
  const double t_lora = median_ms(dc, reps, [&] {
    hc::lora_forward<T>(ctx, li, z, ls);
    hc::lora_backward<T>(ctx, li, ls, G.cview(), lg);
  });
  hc::HypLoRASaved<T> hs;
  hc::HypLoRAInputs<T> hi{X.cview(), W0.cview(), X.cview(), A.cview(), B.cview(), {}, 1.0f, 1.0f, 2.0f, false};
  hc::HypLoRAGrads<T> hg{gX.view(), {}, gX.view(), gA.view(), gB.view(), {}, {}, {}};
  const double t_hyp = median_ms(dc, reps, [&] {
    hc::hyplora_forward<T>(ctx, hi, z, hs);
    hc::hyplora_backward<T>(ctx, hi, hs, G.cview(), hg);
  });
  const double gflop = 4.0 * double(N) * double(D) * double(D) * 1e-9;
  std::printf("shape: N=%ld D_in=D_out=%ld R=%ld %s storage, FP32 compute, median of %d reps (fwd+bwd, W0 frozen)\n",
              static_cast<long>(N), static_cast<long>(D), static_cast<long>(r), tag, reps);
  std::printf("lora_fwd_bwd_ms_%s    %.4f  (%.1f TFLOP/s on the base GEMMs)\n", tag, t_lora, gflop / t_lora);
  std::printf("hyplora_fwd_bwd_ms_%s %.4f\n", tag, t_hyp);
  std::printf("ratio hyplora/lora %s %.4f\n", tag, t_hyp / t_lora);
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
  bench_half<__half>(dc, N, D, r, reps, "fp16");
  bench_half<__nv_bfloat16>(dc, N, D, r, reps, "bf16");
  return 0;
}
