// hyplora/cuda/ops_hyplora_stereographic.cuh — device twin of the consistent stereographic
// HypLoRA node (autodiff/ops_hyplora_stereographic.hpp, docs/hyplora.md Eq. (194)–(199)):
//   z = x·W0ᵀ + b + γ·y/(1 + √(1 + |y|²/K)),  y = B·A·f_R(2x_a),  K = R².
//   x, x_a: (N, D_in)  W0: (D_out, D_in)  A: (R, D_in)  B: (D_out, R)  b: (1, D_out)
// The radial skeleton of cuda/ops_hyplora_official.cuh (same saved quantities, kernels and
// gradient semantics as the CPU node) with the per-token scalars of StereographicRow
// (autodiff/detail/hyplora_stereographic_rows.hpp), the CPU node's own row. W0 absent: the branch
// alone. R is a host scalar; its gradient is accumulated into a (1, 1) device tensor (a fixed-order
// double sum over tokens). A non-finite input row gives non-finite outputs (the CPU node throws).
#pragma once

#include <cmath>

#include "hyplora/autodiff/detail/hyplora_stereographic_rows.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/ops_hyplora_official.cuh"

namespace hyplora::cuda {

/// The stereographic node's operands.
template <class T>
struct HypLoRAStereographicInputs {
  DeviceView<const T> x, W0, x_a, A, B, bias;  // bias may be absent; W0 absent: the branch alone
  T R = T(1);                                  // √K, > 0
  T gamma = T(1);                              // α/r
};

/// Gradients to accumulate into; absent = not needed. R: (1, 1).
template <class T>
struct HypLoRAStereographicGrads {
  DeviceView<T> x, W0, x_a, A, B, bias, R;
};

namespace detail {

/// The CPU node's checks (hyplora_stereographic_node) and its per-token row.
template <class T>
ad::detail::StereographicRow<T> stereographic_row(const char* op, const HypLoRAStereographicInputs<T>& in) {
  radial::check_shapes(op, radial::Operands<T>{in.x, in.W0, in.x_a, in.A, in.B, in.bias});
  if (!(in.R > T(0)) || !std::isfinite(static_cast<double>(in.R)))
    radial::throw_value(op, "radius R = sqrt(K) must be finite and > 0", in.R);
  check_curvature(in.R * in.R);  // R² can underflow to 0 or overflow
  return ad::detail::StereographicRow<T>{in.R, in.gamma};
}

}  // namespace detail

/// z (resized to (N, D_out)) = [x·W0ᵀ + b] + γ·p(LLR(BA, p⁻¹(exp_0^P(x_a)))) (Eq. (194)).
template <class T>
void hyplora_stereographic_forward(const Context& ctx, const HypLoRAStereographicInputs<T>& in, DeviceTensor<T>& z,
                                   RadialHypLoRASaved<T>& s) {
  const auto row = detail::stereographic_row("cuda::hyplora_stereographic_forward", in);
  detail::radial::forward<T>(ctx, detail::radial::Operands<T>{in.x, in.W0, in.x_a, in.A, in.B, in.bias}, row, z, s);
}

/// Accumulates the gradients for G = ∂L/∂z (N, D_out) (Eq. (197)–(198)).
template <class T>
void hyplora_stereographic_backward(const Context& ctx, const HypLoRAStereographicInputs<T>& in,
                                    RadialHypLoRASaved<T>& s, DeviceView<const T> G,
                                    const HypLoRAStereographicGrads<T>& grads) {
  const char* op = "cuda::hyplora_stereographic_backward";
  (void)detail::stereographic_row(op, in);
  detail::radial::check_scalar_grad<T>(op, "R", grads.R);
  detail::radial::backward<T>(ctx, op, detail::radial::Operands<T>{in.x, in.W0, in.x_a, in.A, in.B, in.bias}, s, G,
                              {grads.x, grads.W0, grads.x_a, grads.A, grads.B, grads.bias}, grads.R,
                              DeviceView<T>{}, false, 0.0);
}

}  // namespace hyplora::cuda
