// tests/cuda/radial_hyplora_checks.cuh — what the radial HypLoRA device tests share
// (test_ops_hyplora_official.cu, test_ops_hyplora_stereographic.cu): the device copies of one
// case's inputs, the CPU tape's leaves, and the comparisons of the device results with the CPU
// node in the same dtype (tolerances from device_compare.cuh).
#pragma once

#include <doctest/doctest.h>

#include <cmath>

#include <hyplora/autodiff/detail/hyplora_official_rows.hpp>
#include <hyplora/autodiff/tape.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device_tensor.hpp>

#include "device_compare.cuh"
#include "radial_hyplora_data.hpp"

namespace hyplora::cuda::testing {

namespace rl = hyplora::ad::detail::radial_lora;

/// |got − ref| ≤ tol·|ref| for a scalar parameter's accumulated gradient (got − offset vs ref).
template <class T>
void check_scalar(const MatrixR<T>& got_t, double offset, double ref, double tol) {
  REQUIRE(got_t.rows() == 1);
  REQUIRE(got_t.cols() == 1);
  const double got = static_cast<double>(got_t(0, 0));
  CAPTURE(ref);
  CAPTURE(got - offset);
  CHECK(std::abs(got - offset - ref) <= tol * std::abs(ref));
}

/// Column-wise normwise error of the saved per-token scalars (N, 8) against the CPU node's.
template <class T>
void check_saved_scalars(const MatrixR<T>& got, const MatrixR<T>& cpu) {
  REQUIRE(got.rows() == cpu.rows());
  REQUIRE(got.cols() == rl::kCols);
  for (int j = 0; j < rl::kCols; ++j) {
    CAPTURE(j);
    CHECK(rel_err(MatrixR<T>(got.col(j)), MD(cpu.col(j).template cast<double>())) < tol_value<T>());
  }
}

/// The device buffers of one test: inputs, and the gradients preset to RadialData's offsets.
template <class T>
struct DeviceData {
  DeviceTensor<T> X, Xa, W0, A, B, b, G, gX, gXa, gW0, gA, gB, gb;
  DeviceData(const RadialData& d, const Context& ctx)
      : X(up<T>(d.X, ctx)), Xa(up<T>(d.Xa, ctx)), W0(up<T>(d.W0, ctx)), A(up<T>(d.A, ctx)), B(up<T>(d.B, ctx)),
        b(up<T>(d.b, ctx)), G(up<T>(d.G, ctx)), gX(up<T>(d.dX0, ctx)), gXa(up<T>(d.dXa0, ctx)),
        gW0(up<T>(d.dW00, ctx)), gA(up<T>(d.dA0, ctx)), gB(up<T>(d.dB0, ctx)), gb(up<T>(d.db0, ctx)) {}
};

/// The CPU tape's leaves for one case (x_a = x unless separate; no x, W0, b without a base).
template <class T>
struct CpuLeaves {
  ad::Var<T> x, xa, W0, A, B, b;
  CpuLeaves(ad::Tape<T>& t, const RadialCase& c, const RadialData& d) {
    xa = t.leaf(MatrixR<T>(d.Xa.cast<T>()));
    x = c.separate_xa ? t.leaf(MatrixR<T>(d.X.cast<T>())) : xa;
    W0 = t.leaf(MatrixR<T>(d.W0.cast<T>()));
    A = t.leaf(MatrixR<T>(d.A.cast<T>()));
    B = t.leaf(MatrixR<T>(d.B.cast<T>()));
    b = t.leaf(MatrixR<T>(d.b.cast<T>()));
  }
};

/// Value and matrix gradients of the device run against the CPU node (same dtype).
template <class T>
void check_matrices(const RadialCase& c, const RadialData& d, const DeviceData<T>& dev, const DeviceTensor<T>& dz,
                    const CpuLeaves<T>& cpu, const ad::Var<T>& z, const Context& ctx) {
  CHECK(rel_err(down(dz, ctx), MD(z.value().template cast<double>())) < tol_value<T>());
  if (c.base) {
    CHECK(rel_err(down(dev.gX, ctx), MD(d.dX0 + cpu.x.grad().template cast<double>())) < tol_grad<T>());
    CHECK(rel_err(down(dev.gW0, ctx), MD(d.dW00 + cpu.W0.grad().template cast<double>())) < tol_grad<T>());
    if (c.bias) CHECK(rel_err(down(dev.gb, ctx), MD(d.db0 + cpu.b.grad().template cast<double>())) < tol_grad<T>());
  }
  if (c.separate_xa || !c.base)
    CHECK(rel_err(down(dev.gXa, ctx), MD(d.dXa0 + cpu.xa.grad().template cast<double>())) < tol_grad<T>());
  CHECK(rel_err(down(dev.gA, ctx), MD(d.dA0 + cpu.A.grad().template cast<double>())) < tol_grad<T>());
  CHECK(rel_err(down(dev.gB, ctx), MD(d.dB0 + cpu.B.grad().template cast<double>())) < tol_grad<T>());
}

}  // namespace hyplora::cuda::testing
