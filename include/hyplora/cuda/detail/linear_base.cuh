// hyplora/cuda/detail/linear_base.cuh — the base map z = x·W0ᵀ + b shared by the device LoRA and
// HypLoRA ops; device twin of autodiff/detail/linear_base.hpp.
//   x: (N, D_in)  W0: (D_out, D_in)  b: (1, D_out) or absent  z: (N, D_out)
// T: float, double, or __half / __nv_bfloat16 storage (FP32-compute GEMMs, the bias added in float
// and rounded once, see half.hpp).
#pragma once

#include <cstdint>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/block_reduce.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/half.hpp"

namespace hyplora::cuda::detail {

// z_ij += b_j over all N·D_out elements (in acc_t<T>, one rounding to T).
template <class T>
__global__ void add_row_bias_kernel(T* __restrict__ z, const T* __restrict__ b, std::int64_t n, std::int64_t cols) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    z[e] = from_acc<T>(to_acc(z[e]) + to_acc(b[e % cols]));
}

/// Throws shape_error unless x (N, D_in), W0 (D_out, D_in) and b (1, D_out) fit.
template <class T>
void check_linear_shapes(const char* op, DeviceView<const T> x, DeviceView<const T> W0, DeviceView<const T> b) {
  if (x.cols != W0.cols) throw_shape(op, "x", x.rows, x.cols, "weight", W0.rows, W0.cols);
  if (b.present() && (b.rows != 1 || b.cols != W0.rows)) throw_shape(op, "weight", W0.rows, W0.cols, "bias", b.rows, b.cols);
}

/// z = x·W0ᵀ (+ b).
template <class T>
void linear_base_forward(const Context& ctx, DeviceView<const T> x, DeviceView<const T> W0, DeviceView<const T> b,
                         DeviceView<T> z) {
  using S = gemm_scalar_t<T>;
  gemm<T>(ctx.blas, Op::N, Op::T, x.rows, W0.rows, x.cols, S(1), x.data, x.cols, W0.data, W0.cols, S(0), z.data,
          z.cols);
  if (b.present() && z.size() > 0) {
    HYPLORA_LAUNCH(flat_blocks(z.size()), kFlatThreads, 0, ctx.stream, add_row_bias_kernel<T>)(
        z.data, b.data, z.size(), z.cols);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

/// dx += G·W0, dW0 += Gᵀ·x, db += Σ_rows G; absent gradients cost nothing.  G: (N, D_out).
template <class T>
void linear_base_backward(const Context& ctx, DeviceView<const T> x, DeviceView<const T> W0, DeviceView<const T> G,
                          DeviceView<T> dx, DeviceView<T> dW0, DeviceView<T> db) {
  using S = gemm_scalar_t<T>;
  const std::int64_t N = x.rows, Din = x.cols, Dout = W0.rows;
  if (dx.present()) gemm<T>(ctx.blas, Op::N, Op::N, N, Din, Dout, S(1), G.data, Dout, W0.data, Din, S(1), dx.data, Din);
  if (dW0.present()) gemm<T>(ctx.blas, Op::T, Op::N, Dout, Din, N, S(1), G.data, Dout, x.data, Din, S(1), dW0.data, Din);
  if (db.present() && Dout > 0) {
    HYPLORA_LAUNCH(col_blocks(Dout), kColThreads, 0, ctx.stream, add_col_sums_kernel<T>)(G.data, N, Dout, db.data);
    HYPLORA_CUDA_CHECK_LAUNCH();
  }
}

/// Throws shape_error unless a gradient view is absent or shaped like its value.
template <class T>
void check_grad_shape(const char* op, const char* name, DeviceView<const T> value, DeviceView<T> grad) {
  if (grad.present() && (grad.rows != value.rows || grad.cols != value.cols))
    throw_shape(op, name, value.rows, value.cols, (std::string("d") + name).c_str(), grad.rows, grad.cols);
}

}  // namespace hyplora::cuda::detail
