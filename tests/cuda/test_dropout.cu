// Tests for include/hyplora/cuda/kernels/dropout.cuh against ad::dropout (autodiff/ops_dropout.hpp)
// on a Tape<T> of the same dtype. The device recomputes the CPU's counter-based mask, so forward
// and backward must agree EXACTLY (==, not a tolerance) for float and double: the same zero
// pattern and the same survivors x·(1/(1 − p)), the same dx0 + g·(1/(1 − p)).
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include <hyplora/autodiff/ops_dropout.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/kernels/dropout.cuh>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;  // up, down, rnd, as

/// Uniform in ±[0.5, 1.5): never 0, so a zero after dropout means "dropped".
template <class T>
MatrixR<T> nonzero(Index r, Index c) {
  const MD u = rnd(r, c), v = rnd(r, c);
  return (u.array() < 0.0).select(-(1.0 + v.array() * 0.5), 1.0 + v.array() * 0.5).matrix().cast<T>();
}

/// Number of elements that are exactly 0.
template <class T>
Index zeros(const MatrixR<T>& m) {
  return static_cast<Index>((m.array() == T(0)).count());
}
}  // namespace

TEST_CASE_TEMPLATE("dropout forward and backward equal ad::dropout bit for bit", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  // 37·29 = 1073 elements: not a multiple of the 256-thread block. 613·411 = 251,943 elements:
  // ~1,000 blocks, the index runs past 2^17.
  const Index shapes[][2] = {{37, 29}, {613, 411}, {1, 1}};
  const std::uint64_t seeds[] = {0ull, 1ull, 0x9E3779B97F4A7C15ull, ~0ull};
  for (const auto& sh : shapes)
    for (double pd : {0.0, 0.1, 0.5, 0.9})
      for (std::uint64_t seed : seeds) {
        const Index R = sh[0], C = sh[1];
        CAPTURE(R);
        CAPTURE(C);
        CAPTURE(pd);
        CAPTURE(seed);
        const T p = static_cast<T>(pd);
        const MatrixR<T> X = nonzero<T>(R, C), G = nonzero<T>(R, C), D0 = rnd(R, C).cast<T>();

        ad::Tape<T> t;
        auto x = t.leaf(X);
        auto y = ad::dropout(x, p, seed);
        t.backward(y, G);
        const MatrixR<T> yref = y.value(), gref = x.grad();

        auto dX = hc::DeviceTensor<T>::from_host(X, ctx.stream, *ctx.alloc);
        auto dG = hc::DeviceTensor<T>::from_host(G, ctx.stream, *ctx.alloc);
        auto dD = hc::DeviceTensor<T>::from_host(D0, ctx.stream, *ctx.alloc);
        auto dZ = hc::DeviceTensor<T>::from_host(MatrixR<T>::Zero(R, C), ctx.stream, *ctx.alloc);
        hc::DeviceTensor<T> dY(R, C, *ctx.alloc);
        hc::dropout_forward<T>(ctx, dX.cview(), dY.view(), p, seed);
        hc::dropout_backward<T>(ctx, dG.cview(), dD.view(), p, seed);  // accumulates into dx0
        hc::dropout_backward<T>(ctx, dG.cview(), dZ.view(), p, seed);  // from 0: the tape's grad itself
        const MatrixR<T> Y = dY.to_host(ctx.stream), D = dD.to_host(ctx.stream), Z = dZ.to_host(ctx.stream);

        // The same mask: the same zero pattern, element by element.
        CHECK(zeros(Y) == zeros(yref));
        CHECK(((Y.array() == T(0)) == (yref.array() == T(0))).all());
        CHECK(((Z.array() == T(0)) == (Y.array() == T(0))).all());  // backward drops what forward dropped
        // And the same numbers.
        CHECK((Y.array() == yref.array()).all());
        CHECK((Z.array() == gref.array()).all());
        const MatrixR<T> Dref = D0 + gref;  // rounded in T like the device's dx + g·scale
        CHECK((D.array() == Dref.array()).all());
        if (pd == 0.0) {
          CHECK((Y.array() == X.array()).all());  // identity
          CHECK(zeros(Y) == 0);
        } else if (R * C > 1000) {
          // The kept fraction is 1 − p within 6 standard deviations (guards a constant mask).
          const double n = static_cast<double>(R * C), kept = n - static_cast<double>(zeros(Y));
          CHECK(std::abs(kept - (1.0 - pd) * n) < 6.0 * std::sqrt(n * pd * (1.0 - pd)) + 1.0);
        }
      }
}

TEST_CASE_TEMPLATE("different seeds draw different masks on the device", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index R = 64, C = 50;
  const MatrixR<T> X = MatrixR<T>::Ones(R, C);
  auto dX = hc::DeviceTensor<T>::from_host(X, ctx.stream, *ctx.alloc);
  hc::DeviceTensor<T> a(R, C, *ctx.alloc), b(R, C, *ctx.alloc);
  hc::dropout_forward<T>(ctx, dX.cview(), a.view(), T(0.5), 1);
  hc::dropout_forward<T>(ctx, dX.cview(), b.view(), T(0.5), 2);
  const MatrixR<T> A = a.to_host(ctx.stream), B = b.to_host(ctx.stream);
  CHECK(((A.array() == T(0)) != (B.array() == T(0))).count() > R * C / 4);
}

TEST_CASE("dropout rejects p outside [0, 1) like ad::dropout, and mismatched shapes") {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  hc::DeviceTensor<float> x(4, 6), y(4, 6), y2(6, 4);
  for (float p : {-0.1f, 1.0f, 1.5f, std::nanf("")}) {
    CAPTURE(p);
    CHECK_THROWS_AS(hc::dropout_forward<float>(ctx, x.cview(), y.view(), p, 0), hyplora::value_error);
    CHECK_THROWS_AS(hc::dropout_backward<float>(ctx, x.cview(), y.view(), p, 0), hyplora::value_error);
    // The CPU op's message, after the op name.
    std::string cpu, dev;
    try {
      ad::Tape<float> t;
      (void)ad::dropout(t.leaf(MatrixR<float>::Ones(2, 2)), p, 0);
    } catch (const hyplora::value_error& e) {
      cpu = e.what();
    }
    try {
      hc::dropout_forward<float>(ctx, x.cview(), y.view(), p, 0);
    } catch (const hyplora::value_error& e) {
      dev = e.what();
    }
    REQUIRE(cpu.find(": ") != std::string::npos);
    REQUIRE(dev.find(": ") != std::string::npos);
    CHECK(dev.substr(dev.find(": ")) == cpu.substr(cpu.find(": ")));
    CHECK(dev.find("p must be in [0, 1)") != std::string::npos);
  }
  CHECK_THROWS_AS(hc::dropout_forward<float>(ctx, x.cview(), y2.view(), 0.5f, 0), hyplora::shape_error);
  CHECK_THROWS_AS(hc::dropout_backward<float>(ctx, x.cview(), y2.view(), 0.5f, 0), hyplora::shape_error);
  CHECK_NOTHROW(hc::dropout_forward<float>(ctx, x.cview(), y.view(), 0.0f, 0));
  dc.synchronize();
}
