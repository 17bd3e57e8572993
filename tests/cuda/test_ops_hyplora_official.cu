// Tests for include/hyplora/cuda/ops_hyplora_official.cuh: the device `hyplora` and
// `hyplora_simplified` branches against the CPU nodes (ad::hyplora_official_linear /
// _simplified_linear and their *_branch forms) on the same inputs: value, the per-token scalars
// and every gradient (x, x_a, W0, A, B, b, θ, s, k).
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances (device_compare.cuh, normwise: max|got − ref| / max|ref|): the CPU node in the same
// dtype (Tape<T>) is the reference, so both sides take the same branches of the published clamps
// (θ' thresholds, sinh clamp, n and q floors) from the same rounded K; only reduction orders differ.
// The scalar parameters' gradients are sums over tokens of terms of both signs: compared with
// 10× the gradient tolerance relative to their own size, as the exact variant's test does.
// The inputs (radial_hyplora_data.hpp) put rows in every branch: x = 0, |x| = 1e-9 (n floor, and
// q < 1e-7: q floor), θ' < 1 (e floor, g' = 0), 1 < θ' < 1.01 (√(2e)), θ' > 1.01 (arcosh), and
// n/(sR) = 11, 12.5, 30 (sinh clamp at 12); the coverage is checked on the CPU node's inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_hyplora_official.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/ops_hyplora_official.cuh>

#include "device_compare.cuh"
#include "radial_hyplora_checks.cuh"
#include "radial_hyplora_data.hpp"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;

// K = softplus(θ) + 1e-6 = 1.002: θ' = √(q²/K + 1/K²) is 0.998 at q = 0 (the e floor), 1.003 at
// q = 0.1 (√(2e)) and 1.12 at q = 0.5 (arcosh), each far from its threshold in float too.
const double kK = 1.002;
const double kTheta = std::log(std::expm1(kK - 1e-6));
const double kS = 0.9;
const double kGamma = 0.75;
const std::vector<RadialTarget> kOfficialTargets = {
    {RadialTarget::kY, 0.02}, {RadialTarget::kY, 0.1},  {RadialTarget::kY, 0.5},   {RadialTarget::kY, 3.0},
    {RadialTarget::kRho, 11}, {RadialTarget::kRho, 12.5}, {RadialTarget::kRho, 30}};

/// Which branches the CPU node's rows take (from its saved U and c1, in double): counts of
/// {n < 1e-7, n/(sR) > 12, θ' < 1 − 1e-4, 1 + 1e-4 < θ' < 1.01 − 1e-4, θ' > 1.01 + 1e-4}.
struct OfficialCoverage {
  int n_floor = 0, sinh_clamp = 0, e_floor = 0, small_angle = 0, arcosh = 0;
};
template <class T>
OfficialCoverage official_coverage(const MD& Xa, const MD& B, const MatrixR<T>& U, const MatrixR<T>& sc, double K,
                                   double s) {
  OfficialCoverage cov;
  const double R = std::sqrt(K);
  const MD M = B.transpose() * B;
  for (Index i = 0; i < Xa.rows(); ++i) {
    const double n = Xa.row(i).norm();
    if (n < 1e-7) ++cov.n_floor;
    if (n / (s * R) > 12.0) ++cov.sinh_clamp;
    const MD u = U.row(i).template cast<double>();
    const double c1 = static_cast<double>(sc(i, rl::kC1));
    const double q2 = c1 * c1 * (u * M * u.transpose())(0, 0);
    const double th = std::sqrt(q2 + 1.0 / K) / R;
    if (th < 1.0 - 1e-4) ++cov.e_floor;
    if (th > 1.0 + 1e-4 && th < 1.01 - 1e-4) ++cov.small_angle;
    if (th > 1.01 + 1e-4) ++cov.arcosh;
  }
  return cov;
}

/// The CPU node's θ gradient for G scaled by `scale`.
template <class T>
double cpu_theta_grad(const RadialCase& c, const RadialData& d, double scale) {
  ad::Tape<T> t;
  CpuLeaves<T> cpu(t, c, d);
  auto th = t.leaf(MatrixR<T>::Constant(1, 1, T(kTheta))), sv = t.leaf(MatrixR<T>::Constant(1, 1, T(kS)));
  auto z = c.base ? ad::hyplora_official_linear(cpu.x, cpu.W0, cpu.xa, cpu.A, cpu.B, th, sv, kGamma,
                                                c.bias ? cpu.b : ad::Var<T>{})
                  : ad::hyplora_official_branch(cpu.xa, cpu.A, cpu.B, th, sv, kGamma);
  t.backward(z, MatrixR<T>((d.G * scale).cast<T>()));
  return static_cast<double>(th.grad()(0, 0));
}

/// A scale of G at which the CPU node's θ gradient is clamped at ±0.01 (bind) or inside the clamp
/// (≤ 0.005 in size, non-zero): the gradient is linear in G until it clamps. 0 if none is found.
template <class T>
double g_scale_for(const RadialCase& c, const RadialData& d, bool bind) {
  for (int e = 0; e < 8; ++e) {
    const double scale = bind ? std::pow(100.0, e) : std::pow(1e-2, e);
    const double g = std::abs(cpu_theta_grad<T>(c, d, scale));
    if (bind ? g == static_cast<double>(T(0.01)) : (g <= 0.005 && g > 0.0)) return scale;
  }
  return 0.0;
}

}  // namespace

TEST_CASE_TEMPLATE("hyplora_official_forward/backward match ad::hyplora_official_linear in every clamp branch", T,
                   float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kRadialCases)
    for (int bind = 0; bind < 2; ++bind) {  // bind = 1: θ's gradient clamped at ±0.01; 0: inside it
      CAPTURE(c.N);
      CAPTURE(c.Din);
      CAPTURE(c.base);
      CAPTURE(bind);
      RadialData d = make_radial_data(c, kOfficialTargets, std::sqrt(kK), kS * std::sqrt(kK), 1.0);
      round_radial<T>(d);
      const double g_scale = g_scale_for<T>(c, d, bind != 0);
      REQUIRE(g_scale > 0.0);
      d.G = as<T>(MD(d.G * g_scale));
      ad::Tape<T> t;
      CpuLeaves<T> cpu(t, c, d);
      auto th = t.leaf(MatrixR<T>::Constant(1, 1, T(kTheta))), sv = t.leaf(MatrixR<T>::Constant(1, 1, T(kS)));
      auto z = c.base ? ad::hyplora_official_linear(cpu.x, cpu.W0, cpu.xa, cpu.A, cpu.B, th, sv, kGamma,
                                                    c.bias ? cpu.b : ad::Var<T>{})
                      : ad::hyplora_official_branch(cpu.xa, cpu.A, cpu.B, th, sv, kGamma);
      t.backward(z, MatrixR<T>(d.G.cast<T>()));
      const double cpu_dth = static_cast<double>(th.grad()(0, 0)), cpu_ds = static_cast<double>(sv.grad()(0, 0));
      if (bind) CHECK(std::abs(cpu_dth) == static_cast<double>(T(0.01)));
      else CHECK(std::abs(cpu_dth) < 0.0099);
      const auto& node = t.node(z.id);
      const OfficialCoverage cov =
          official_coverage<T>(d.Xa, d.B, node.saved[rl::kU], node.saved[rl::kSc], static_cast<double>(
              ad::detail::official_curvature(ad::detail::SoftplusF::f(T(kTheta), T(0), T(0)))), kS);
      CHECK(cov.n_floor == 2);  // rows 0 and 1
      CHECK(cov.sinh_clamp == 2);
      CHECK(cov.e_floor >= 2);
      CHECK(cov.small_angle >= 1);
      CHECK(cov.arcosh >= 3);

      DeviceData<T> dev(d, ctx);
      const MD dth0 = MD::Constant(1, 1, static_cast<double>(T(0.5 * cpu_dth)));
      const MD ds0 = MD::Constant(1, 1, static_cast<double>(T(-0.25 * cpu_ds)));
      auto gth = up<T>(dth0, ctx), gs = up<T>(ds0, ctx);
      hc::HypLoRAOfficialInputs<T> in{c.base ? dev.X.cview() : hc::DeviceView<const T>{},
                                      c.base ? dev.W0.cview() : hc::DeviceView<const T>{},
                                      c.separate_xa || !c.base ? dev.Xa.cview() : dev.X.cview(),
                                      dev.A.cview(),
                                      dev.B.cview(),
                                      c.base && c.bias ? dev.b.cview() : hc::DeviceView<const T>{},
                                      T(kTheta),
                                      T(kS),
                                      T(kGamma)};
      hc::HypLoRAOfficialGrads<T> gr{c.base ? dev.gX.view() : hc::DeviceView<T>{},
                                     c.base ? dev.gW0.view() : hc::DeviceView<T>{},
                                     c.separate_xa || !c.base ? dev.gXa.view() : dev.gX.view(),
                                     dev.gA.view(),
                                     dev.gB.view(),
                                     c.base && c.bias ? dev.gb.view() : hc::DeviceView<T>{},
                                     gth.view(),
                                     gs.view()};
      hc::DeviceTensor<T> dz;
      hc::RadialHypLoRASaved<T> saved;
      hc::hyplora_official_forward<T>(ctx, in, dz, saved);
      hc::hyplora_official_backward<T>(ctx, in, saved, dev.G.cview(), gr);
      check_matrices<T>(c, d, dev, dz, cpu, z, ctx);
      check_saved_scalars<T>(down(saved.scalars, ctx), node.saved[rl::kSc]);
      check_scalar(down(gth, ctx), dth0(0, 0), cpu_dth, 10 * tol_grad<T>());
      check_scalar(down(gs, ctx), ds0(0, 0), cpu_ds, 10 * tol_grad<T>());
    }
}

TEST_CASE_TEMPLATE("hyplora_official_simplified_forward/backward match ad::hyplora_official_simplified_linear", T,
                   float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const double k = 0.7;
  for (const auto& c : kRadialCases) {
    CAPTURE(c.N);
    CAPTURE(c.Din);
    CAPTURE(c.base);
    // Targets at |x| = n·1, around the input map's turning point |x| = 1/√k (ρ = |x| here).
    RadialData d = make_radial_data(c, {{RadialTarget::kRho, 0.3}, {RadialTarget::kRho, 1.2}, {RadialTarget::kRho, 4}},
                                    1.0, 1.0, 1.0);
    round_radial<T>(d);
    ad::Tape<T> t;
    CpuLeaves<T> cpu(t, c, d);
    auto kv = t.leaf(MatrixR<T>::Constant(1, 1, T(k)));
    auto z = c.base ? ad::hyplora_official_simplified_linear(cpu.x, cpu.W0, cpu.xa, cpu.A, cpu.B, kv, kGamma,
                                                             c.bias ? cpu.b : ad::Var<T>{})
                    : ad::hyplora_official_simplified_branch(cpu.xa, cpu.A, cpu.B, kv, kGamma);
    t.backward(z, MatrixR<T>(d.G.cast<T>()));
    const double cpu_dk = static_cast<double>(kv.grad()(0, 0));

    DeviceData<T> dev(d, ctx);
    const MD dk0 = MD::Constant(1, 1, static_cast<double>(T(0.5 * cpu_dk)));
    auto gk = up<T>(dk0, ctx);
    hc::HypLoRAOfficialSimplifiedInputs<T> in{c.base ? dev.X.cview() : hc::DeviceView<const T>{},
                                              c.base ? dev.W0.cview() : hc::DeviceView<const T>{},
                                              c.separate_xa || !c.base ? dev.Xa.cview() : dev.X.cview(),
                                              dev.A.cview(),
                                              dev.B.cview(),
                                              c.base && c.bias ? dev.b.cview() : hc::DeviceView<const T>{},
                                              T(k),
                                              T(kGamma)};
    hc::HypLoRAOfficialSimplifiedGrads<T> gr{c.base ? dev.gX.view() : hc::DeviceView<T>{},
                                             c.base ? dev.gW0.view() : hc::DeviceView<T>{},
                                             c.separate_xa || !c.base ? dev.gXa.view() : dev.gX.view(),
                                             dev.gA.view(),
                                             dev.gB.view(),
                                             c.base && c.bias ? dev.gb.view() : hc::DeviceView<T>{},
                                             gk.view()};
    hc::DeviceTensor<T> dz;
    hc::RadialHypLoRASaved<T> saved;
    hc::hyplora_official_simplified_forward<T>(ctx, in, dz, saved);
    hc::hyplora_official_simplified_backward<T>(ctx, in, saved, dev.G.cview(), gr);
    check_matrices<T>(c, d, dev, dz, cpu, z, ctx);
    check_saved_scalars<T>(down(saved.scalars, ctx), t.node(z.id).saved[rl::kSc]);
    check_scalar(down(gk, ctx), dk0(0, 0), cpu_dk, 10 * tol_grad<T>());
  }
}

TEST_CASE("official device ops reject bad shapes and values with the CPU node's messages") {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  auto x = up<float>(rnd(4, 6), ctx), W0 = up<float>(rnd(5, 6), ctx), A = up<float>(rnd(2, 6), ctx),
       B = up<float>(rnd(5, 2), ctx), G = up<float>(rnd(4, 5), ctx);
  hc::DeviceTensor<float> Bbad(5, 3), Gbad(4, 4), g11(1, 1), g21(2, 1), z;
  hc::RadialHypLoRASaved<float> s;
  hc::HypLoRAOfficialInputs<float> in{x.cview(), W0.cview(), x.cview(), A.cview(), Bbad.cview(), {}, 0.5f, 1.f, 1.f};
  try {
    hc::hyplora_official_forward<float>(ctx, in, z, s);
    FAIL("no throw");
  } catch (const hyplora::shape_error& e) {
    const std::string w = e.what();
    CHECK(w.find("cuda::hyplora_official_forward") != std::string::npos);
    CHECK(w.find("A (2, 6)") != std::string::npos);
    CHECK(w.find("B (5, 3)") != std::string::npos);
  }
  in.B = B.cview();
  in.theta = std::nanf("");
  CHECK_THROWS_AS(hc::hyplora_official_forward<float>(ctx, in, z, s), hyplora::value_error);
  in.theta = 0.5f;
  in.s = 0.f;
  CHECK_THROWS_AS(hc::hyplora_official_forward<float>(ctx, in, z, s), hyplora::value_error);
  in.s = 1.f;
  hc::hyplora_official_forward<float>(ctx, in, z, s);
  CHECK(z.rows() == 4);
  CHECK(z.cols() == 5);
  CHECK(down(z, ctx).allFinite());
  hc::HypLoRAOfficialGrads<float> gr{};
  CHECK_THROWS_AS(hc::hyplora_official_backward<float>(ctx, in, s, Gbad.cview(), gr), hyplora::shape_error);
  gr.theta = g21.view();
  CHECK_THROWS_AS(hc::hyplora_official_backward<float>(ctx, in, s, G.cview(), gr), hyplora::shape_error);
  gr.theta = g11.view();
  gr.A = W0.view();  // (5, 6) is not A's shape
  CHECK_THROWS_AS(hc::hyplora_official_backward<float>(ctx, in, s, G.cview(), gr), hyplora::shape_error);
  // Branch alone: A must fit x_a.
  hc::DeviceTensor<float> Anarrow(2, 5);
  hc::HypLoRAOfficialInputs<float> br{{}, {}, x.cview(), Anarrow.cview(), B.cview(), {}, 0.5f, 1.f, 1.f};
  CHECK_THROWS_AS(hc::hyplora_official_forward<float>(ctx, br, z, s), hyplora::shape_error);
  hc::HypLoRAOfficialSimplifiedInputs<float> si{x.cview(), W0.cview(), x.cview(), A.cview(), B.cview(), {}, 0.f, 1.f};
  CHECK_THROWS_AS(hc::hyplora_official_simplified_forward<float>(ctx, si, z, s), hyplora::value_error);
  si.k = 1.f;
  si.B = Bbad.cview();
  CHECK_THROWS_AS(hc::hyplora_official_simplified_forward<float>(ctx, si, z, s), hyplora::shape_error);
}
