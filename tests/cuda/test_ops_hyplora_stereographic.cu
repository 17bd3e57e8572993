// Tests for include/hyplora/cuda/ops_hyplora_stereographic.cuh: the device stereographic HypLoRA
// node against the CPU node (ad::hyplora_stereographic_linear and _branch) on the same inputs:
// value, the per-token scalars and every gradient (x, x_a, W0, A, B, b, R).
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances (device_compare.cuh, normwise): the CPU node in the same dtype (Tape<T>) is the
// reference, so both sides use numerics<T>'s series thresholds; only reduction orders differ. R's
// gradient is a sum over tokens of terms of both signs: 10× the gradient tolerance relative to its
// size, as the exact variant's test does. The adapter input's rows cover x = 0, |x| = 1e-9, the
// series branches of sinhc and D1 (ρ = 2|x|/R = 1e-3, 0.3), ρ = 2 and 10, and |y| = 5R (τ = 5).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_hyplora_stereographic.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/ops_hyplora_stereographic.cuh>

#include "device_compare.cuh"
#include "radial_hyplora_checks.cuh"
#include "radial_hyplora_data.hpp"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;

const double kR = 1.3;
const double kGamma = 0.75;
const std::vector<RadialTarget> kStereoTargets = {{RadialTarget::kRho, 1e-3}, {RadialTarget::kRho, 0.3},
                                                  {RadialTarget::kRho, 2.0},  {RadialTarget::kRho, 10.0},
                                                  {RadialTarget::kY, 5 * kR}};
}  // namespace

TEST_CASE_TEMPLATE("hyplora_stereographic_forward/backward match ad::hyplora_stereographic_linear", T, float,
                   double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kRadialCases) {
    CAPTURE(c.N);
    CAPTURE(c.Din);
    CAPTURE(c.base);
    RadialData d = make_radial_data(c, kStereoTargets, kR, kR / 2, 1.0);
    round_radial<T>(d);
    ad::Tape<T> t;
    CpuLeaves<T> cpu(t, c, d);
    auto R = t.leaf(MatrixR<T>::Constant(1, 1, T(kR)));
    auto z = c.base ? ad::hyplora_stereographic_linear(cpu.x, cpu.W0, cpu.xa, cpu.A, cpu.B, R, kGamma,
                                                       c.bias ? cpu.b : ad::Var<T>{})
                    : ad::hyplora_stereographic_branch(cpu.xa, cpu.A, cpu.B, R, kGamma);
    t.backward(z, MatrixR<T>(d.G.cast<T>()));
    const double cpu_dR = static_cast<double>(R.grad()(0, 0));

    DeviceData<T> dev(d, ctx);
    const MD dR0 = MD::Constant(1, 1, static_cast<double>(T(0.5 * cpu_dR)));
    auto gR = up<T>(dR0, ctx);
    hc::HypLoRAStereographicInputs<T> in{c.base ? dev.X.cview() : hc::DeviceView<const T>{},
                                         c.base ? dev.W0.cview() : hc::DeviceView<const T>{},
                                         c.separate_xa || !c.base ? dev.Xa.cview() : dev.X.cview(),
                                         dev.A.cview(),
                                         dev.B.cview(),
                                         c.base && c.bias ? dev.b.cview() : hc::DeviceView<const T>{},
                                         T(kR),
                                         T(kGamma)};
    hc::HypLoRAStereographicGrads<T> gr{c.base ? dev.gX.view() : hc::DeviceView<T>{},
                                        c.base ? dev.gW0.view() : hc::DeviceView<T>{},
                                        c.separate_xa || !c.base ? dev.gXa.view() : dev.gX.view(),
                                        dev.gA.view(),
                                        dev.gB.view(),
                                        c.base && c.bias ? dev.gb.view() : hc::DeviceView<T>{},
                                        gR.view()};
    hc::DeviceTensor<T> dz;
    hc::RadialHypLoRASaved<T> saved;
    hc::hyplora_stereographic_forward<T>(ctx, in, dz, saved);
    hc::hyplora_stereographic_backward<T>(ctx, in, saved, dev.G.cview(), gr);
    check_matrices<T>(c, d, dev, dz, cpu, z, ctx);
    check_saved_scalars<T>(down(saved.scalars, ctx), t.node(z.id).saved[rl::kSc]);
    check_scalar(down(gR, ctx), dR0(0, 0), cpu_dR, 10 * tol_grad<T>());
    // A second forward/backward on the same saved buffers accumulates the same gradients again.
    hc::hyplora_stereographic_forward<T>(ctx, in, dz, saved);
    hc::hyplora_stereographic_backward<T>(ctx, in, saved, dev.G.cview(), gr);
    check_scalar(down(gR, ctx), dR0(0, 0), 2 * cpu_dR, 10 * tol_grad<T>());
    CHECK(rel_err(down(dev.gA, ctx), MD(d.dA0 + 2 * cpu.A.grad().template cast<double>())) < tol_grad<T>());
  }
}

TEST_CASE("stereographic device ops reject bad shapes and values with the CPU node's messages") {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  auto x = up<float>(rnd(4, 6), ctx), W0 = up<float>(rnd(5, 6), ctx), A = up<float>(rnd(2, 6), ctx),
       B = up<float>(rnd(5, 2), ctx), G = up<float>(rnd(4, 5), ctx);
  hc::DeviceTensor<float> xbad(3, 6), g12(1, 2), z;
  hc::RadialHypLoRASaved<float> s;
  hc::HypLoRAStereographicInputs<float> in{x.cview(), W0.cview(), xbad.cview(), A.cview(), B.cview(), {}, 1.f, 1.f};
  try {
    hc::hyplora_stereographic_forward<float>(ctx, in, z, s);
    FAIL("no throw");
  } catch (const hyplora::shape_error& e) {
    const std::string w = e.what();
    CHECK(w.find("cuda::hyplora_stereographic_forward") != std::string::npos);
    CHECK(w.find("x_a (3, 6)") != std::string::npos);
  }
  in.x_a = x.cview();
  in.R = 0.f;
  CHECK_THROWS_AS(hc::hyplora_stereographic_forward<float>(ctx, in, z, s), hyplora::value_error);
  in.R = 1e30f;  // R² overflows float
  CHECK_THROWS_AS(hc::hyplora_stereographic_forward<float>(ctx, in, z, s), hyplora::value_error);
  in.R = 1.f;
  hc::hyplora_stereographic_forward<float>(ctx, in, z, s);
  hc::HypLoRAStereographicGrads<float> gr{};
  gr.R = g12.view();
  CHECK_THROWS_AS(hc::hyplora_stereographic_backward<float>(ctx, in, s, G.cview(), gr), hyplora::shape_error);
}
