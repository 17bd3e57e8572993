// hyplora/cuda/ops_lora.cuh — device twin of the fused LoRA node (autodiff/ops_lora.hpp):
//   z = x·W0ᵀ + b + γ·(x_a·Aᵀ)·Bᵀ,
//   x, x_a: (N, D_in)   W0: (D_out, D_in)   A: (R, D_in)   B: (D_out, R)   b: (1, D_out)
// Same saved quantity as the CPU node, U = x_a·Aᵀ (N, R), and the same four backward GEMMs:
//   P = γ·G·B,  dB += γ·Gᵀ·U,  dA += Pᵀ·x_a,  dx_a += P·A   (plus the base map's).
// Functions on device tensors with explicit saved/scratch buffers; used by the device tape
// (cuda/graph.cuh); ad::Tape's own device dispatch is a later step.
// T: float, double, or __half / __nv_bfloat16 storage (half.hpp): every tensor, U and P in T,
// the GEMMs with FP32 compute, γ in float; gradients accumulate in the GEMM's float epilogue
// (read, add, round once).
#pragma once

#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/half.hpp"

namespace hyplora::cuda {

/// The LoRA node's operands (x_a may view the same memory as x).
template <class T>
struct LoRAInputs {
  DeviceView<const T> x, W0, x_a, A, B, bias;  // bias may be absent
  compute_t<T> gamma = compute_t<T>(1);         // T for float/double, float for half storage
};

/// Gradients to accumulate into; an absent view means "not needed" (t.needs_grad false).
template <class T>
struct LoRAGrads {
  DeviceView<T> x, W0, x_a, A, B, bias;
};

/// Saved by the forward (U) and scratch of the backward (P); reused across steps.
template <class T>
struct LoRASaved {
  DeviceTensor<T> U;  // (N, R) = x_a·Aᵀ
  DeviceTensor<T> P;  // (N, R) = γ·G·B
};

namespace detail {
template <class T>
void check_lora_shapes(const char* op, const LoRAInputs<T>& in) {
  check_linear_shapes<T>(op, in.x, in.W0, in.bias);
  if (in.x_a.rows != in.x.rows || in.x_a.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "x_a", in.x_a.rows, in.x_a.cols);
  if (in.A.cols != in.x.cols) throw_shape(op, "x", in.x.rows, in.x.cols, "A", in.A.rows, in.A.cols);
  if (in.B.rows != in.W0.rows || in.B.cols != in.A.rows) throw_shape(op, "A", in.A.rows, in.A.cols, "B", in.B.rows, in.B.cols);
}
}  // namespace detail

/// z (resized to (N, D_out)) = x·W0ᵀ + b + γ·U·Bᵀ, saving U.
template <class T>
void lora_forward(const Context& ctx, const LoRAInputs<T>& in, DeviceTensor<T>& z, LoRASaved<T>& saved) {
  detail::check_lora_shapes("cuda::lora_forward", in);
  using S = gemm_scalar_t<T>;
  const Index N = in.x.rows, Din = in.x.cols, Dout = in.W0.rows, r = in.A.rows;
  z.resize(N, Dout, *ctx.alloc);
  saved.U.resize(N, r, *ctx.alloc);
  detail::linear_base_forward<T>(ctx, in.x, in.W0, in.bias, z.view());
  gemm<T>(ctx.blas, Op::N, Op::T, N, r, Din, S(1), in.x_a.data, Din, in.A.data, Din, S(0), saved.U.data(), r);
  gemm<T>(ctx.blas, Op::N, Op::T, N, Dout, r, in.gamma, saved.U.data(), r, in.B.data, r, S(1), z.data(), Dout);
}

/// Accumulates the gradients for G = ∂L/∂z (N, D_out).
template <class T>
void lora_backward(const Context& ctx, const LoRAInputs<T>& in, LoRASaved<T>& saved, DeviceView<const T> G,
                   const LoRAGrads<T>& grads) {
  const char* op = "cuda::lora_backward";
  using S = gemm_scalar_t<T>;
  detail::check_lora_shapes(op, in);
  const Index N = in.x.rows, Din = in.x.cols, Dout = in.W0.rows, r = in.A.rows;
  if (G.rows != N || G.cols != Dout) throw_shape(op, "z", N, Dout, "G", G.rows, G.cols);
  if (saved.U.rows() != N || saved.U.cols() != r) throw_shape(op, "U (saved)", saved.U.rows(), saved.U.cols(), "expected", N, r);
  detail::check_grad_shape<T>(op, "x", in.x, grads.x);
  detail::check_grad_shape<T>(op, "W0", in.W0, grads.W0);
  detail::check_grad_shape<T>(op, "x_a", in.x_a, grads.x_a);
  detail::check_grad_shape<T>(op, "A", in.A, grads.A);
  detail::check_grad_shape<T>(op, "B", in.B, grads.B);
  if (in.bias.present()) detail::check_grad_shape<T>(op, "bias", in.bias, grads.bias);
  detail::linear_base_backward<T>(ctx, in.x, in.W0, G, grads.x, grads.W0,
                                  in.bias.present() ? grads.bias : DeviceView<T>{});
  if (grads.A.present() || grads.x_a.present()) {
    saved.P.resize(N, r, *ctx.alloc);
    gemm<T>(ctx.blas, Op::N, Op::N, N, r, Dout, in.gamma, G.data, Dout, in.B.data, r, S(0), saved.P.data(), r);
  }
  if (grads.B.present())
    gemm<T>(ctx.blas, Op::T, Op::N, Dout, r, N, in.gamma, G.data, Dout, saved.U.data(), r, S(1), grads.B.data, r);
  if (grads.A.present())
    gemm<T>(ctx.blas, Op::T, Op::N, r, Din, N, S(1), saved.P.data(), r, in.x_a.data, Din, S(1), grads.A.data, Din);
  if (grads.x_a.present())
    gemm<T>(ctx.blas, Op::N, Op::N, N, Din, r, S(1), saved.P.data(), r, in.A.data, Din, S(1), grads.x_a.data, Din);
}

}  // namespace hyplora::cuda
