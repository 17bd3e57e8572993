// bench_cuda_attention — causal multi-head self-attention on the device: the simple kernels
// (kernels/attention.cuh: cuBLAS per (batch, head) + masked softmax rows, P (B·H·T, T) saved)
// vs the fused flash kernels (kernels/flash_attention.cuh: online softmax, only the log-sum-exp
// saved), float, forward + backward with dq, dk, dv. Times one forward + backward with cudaEvents
// on the ops' stream; reports the median of `reps` repetitions after 3 warm-ups, the ratio, and
// the device bytes each path keeps between forward and backward (saved) and uses as backward
// scratch. Shapes: B 16, T 128, C 128, H 4 (the example GPT's) and B 4, T 1024, C 1024, H 16.
// Also prints max|Δ| between the two paths' outputs and gradients (a sanity check, not a test).
// Usage: bench_cuda_attention [reps]. Without a GPU it prints "SKIPPED: no CUDA device" and
// returns 77.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <hyplora/core/types.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/kernels/attention.cuh>
#include <hyplora/cuda/kernels/flash_attention.cuh>
#include <hyplora/cuda/stream.hpp>

#include "event_timing.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;

using hyplora::cuda::bench::median_ms;

double max_abs_diff(const hc::DeviceTensor<float>& a, const hc::DeviceTensor<float>& b, const hc::Context& ctx) {
  const MatrixR<float> x = a.to_host(ctx.stream), y = b.to_host(ctx.stream);
  return static_cast<double>((x - y).cwiseAbs().maxCoeff());
}

void bench_shape(const hc::DeviceContext& dc, Index B, Index Tn, Index C, Index H, int reps) {
  const auto ctx = dc.context();
  const Index N = B * Tn;
  auto Q = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(N, C), ctx.stream, *ctx.alloc);
  auto K = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(N, C), ctx.stream, *ctx.alloc);
  auto V = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(N, C), ctx.stream, *ctx.alloc);
  auto G = hc::DeviceTensor<float>::from_host(MatrixR<float>::Random(N, C), ctx.stream, *ctx.alloc);
  hc::DeviceTensor<float> out_s(N, C, *ctx.alloc), dq_s(N, C, *ctx.alloc), dk_s(N, C, *ctx.alloc), dv_s(N, C, *ctx.alloc);
  hc::DeviceTensor<float> out_f(N, C, *ctx.alloc), dq_f(N, C, *ctx.alloc), dk_f(N, C, *ctx.alloc), dv_f(N, C, *ctx.alloc);
  for (auto* t : {&dq_s, &dk_s, &dv_s, &dq_f, &dk_f, &dv_f}) t->set_zero(ctx.stream);

  hc::AttentionSaved<float> ss;
  const double t_simple = median_ms(dc, reps, [&] {
    hc::causal_attention_forward<float>(ctx, Q.cview(), K.cview(), V.cview(), B, Tn, H, out_s.view(), ss);
    hc::causal_attention_backward<float>(ctx, ss, B, Tn, H, G.cview(), dq_s.view(), dk_s.view(), dv_s.view());
  });
  const double f_simple = median_ms(dc, reps, [&] {
    hc::causal_attention_forward<float>(ctx, Q.cview(), K.cview(), V.cview(), B, Tn, H, out_s.view(), ss);
  });
  hc::FlashAttentionSaved<float> fs;
  const double t_flash = median_ms(dc, reps, [&] {
    hc::flash_attention_forward<float>(ctx, Q.cview(), K.cview(), V.cview(), B, Tn, H, out_f.view(), fs);
    hc::flash_attention_backward<float>(ctx, fs, B, Tn, H, G.cview(), dq_f.view(), dk_f.view(), dv_f.view());
  });
  const double f_flash = median_ms(dc, reps, [&] {
    hc::flash_attention_forward<float>(ctx, Q.cview(), K.cview(), V.cview(), B, Tn, H, out_f.view(), fs);
  });
  // Both paths accumulated the same number of backward calls into zeroed gradients.
  const double d_out = max_abs_diff(out_s, out_f, ctx), d_q = max_abs_diff(dq_s, dq_f, ctx),
               d_k = max_abs_diff(dk_s, dk_f, ctx), d_v = max_abs_diff(dv_s, dv_f, ctx);

  // Kept from forward to backward: the simple path's head-major q, k, v, P and o; the flash
  // path's log-sum-exp (q, k, v, out are the caller's tensors, viewed). Backward scratch: the
  // simple path's dP and head-major dq, dk, dv; the flash path's delta.
  const std::size_t saved_s = ss.q.bytes() + ss.k.bytes() + ss.v.bytes() + ss.P.bytes() + ss.o.bytes();
  const std::size_t scratch_s = ss.dP.bytes() + ss.dq.bytes() + ss.dk.bytes() + ss.dv.bytes();
  const std::size_t saved_f = fs.lse.bytes(), scratch_f = fs.delta.bytes();
  const long b = static_cast<long>(B), t = static_cast<long>(Tn), c = static_cast<long>(C), h = static_cast<long>(H);
  std::printf("attention simple B=%ld T=%ld C=%ld H=%ld fwd_bwd_ms %.4f fwd_ms %.4f saved_bytes %zu scratch_bytes %zu\n",
              b, t, c, h, t_simple, f_simple, saved_s, scratch_s);
  std::printf("attention flash  B=%ld T=%ld C=%ld H=%ld fwd_bwd_ms %.4f fwd_ms %.4f saved_bytes %zu scratch_bytes %zu\n",
              b, t, c, h, t_flash, f_flash, saved_f, scratch_f);
  std::printf("ratio flash/simple B=%ld T=%ld C=%ld H=%ld fwd_bwd %.4f fwd %.4f saved_bytes %.6f\n", b, t, c, h,
              t_flash / t_simple, f_flash / f_simple,
              saved_s > 0 ? static_cast<double>(saved_f) / static_cast<double>(saved_s) : 0.0);
  std::printf("check max|flash - simple| out %.3e dq %.3e dk %.3e dv %.3e\n", d_out, d_q, d_k, d_v);
}
}  // namespace

int main(int argc, char** argv) {
  if (hc::skip_without_device()) return hc::kSkipReturnCode;
  const int reps = argc > 1 ? std::max(5, std::atoi(argv[1])) : 20;
  hc::DeviceContext dc;
  cudaDeviceProp prop{};
  HYPLORA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n", prop.name);
  std::printf("float32, causal, forward + backward (dq, dk, dv), median of %d reps\n", reps);
  bench_shape(dc, 16, 128, 128, 4, reps);    // the example GPT's attention
  bench_shape(dc, 4, 1024, 1024, 16, reps);  // longer sequence, wider model (Dh 64)
  return 0;
}
